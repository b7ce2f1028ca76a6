/* build_sched.c - the stages in parallel, as BuildKit solves independent
 * parts of its graph at once: a scheduler over the stage graph (the deps
 * build_plan.c records) with a job limit, one thread per running stage.
 *
 * The calling thread schedules: it starts every stage whose deps are done
 * while fewer than jobs run, then waits (poll) for a stage's end or the
 * caller's cancel flag. When nothing runs and one stage alone is ready (or
 * jobs is 1), it builds that stage itself: a thread would only cost its
 * start and a malloc arena (a no-op rebuild of a two-stage build started
 * two; bench/RESULTS-build.md). The stages' threads share the store (its thread rules
 * hold: each thread its own transactions; LMDB and the write gate serialize
 * the writes) and the build (build_int.h says what under which lock).
 *
 * Cancelling: while stages run, the store's cancel flag is the build's own
 * (b->cancel), which every step checks and every running container watches.
 * The first failing stage triggers it, so the others stop at once (a RUN's
 * container is killed and its run dir removed by the executor) and no more
 * start; the caller's flag (a signal) is mirrored into it by the scheduler.
 * The caller's flag is held meanwhile, so its signal handler triggers it
 * instead of taking the default action. A stage built on the calling thread
 * runs alone, so it watches the caller's flag itself: the store's flag is
 * the caller's for its duration, and mirrored into the build's after.
 *
 * Determinism: a stage's layers and keys depend only on its instructions and
 * the stages it needs, never on the order stages ran in.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "build_int.h"
#include "run.h"

void
build_lock(build *b)
{
    if (b->locks)
        pthread_mutex_lock(&b->mu);
}

void
build_unlock(build *b)
{
    if (b->locks)
        pthread_mutex_unlock(&b->mu);
}

typedef struct sched {
    build *b;
    unsigned jobs, running;
    int wake[2];     /* a stage thread writes a byte when it ends */
    int rc;          /* the first failure */
    cs_error *first; /* its error */
} sched;

typedef struct stage_job {
    sched *sc;
    size_t idx;
} stage_job;

/* The end of stage idx (under b->mu): its state, the first failure kept,
 * waiters woken. */
static void
stage_finished(build *b, size_t idx, int rc, cs_error **err, sched *sc)
{
    b->st[idx].state = rc < 0 ? ST_FAILED : ST_DONE;
    if (rc < 0 && sc && !sc->rc) {
        sc->rc = rc;
        sc->first = cs_steal(err);
    }
    cs_error_clear(err);
    pthread_cond_broadcast(&b->cv);
}

static void *
stage_thread(void *arg)
{
    stage_job *j = arg;
    sched *sc = j->sc;
    build *b = sc->b;
    cs_error *err = NULL;
    int rc = build_stage(b, j->idx, &err);
    build_lock(b);
    stage_finished(b, j->idx, rc, &err, sc);
    sc->running--;
    build_unlock(b);
    /* The others stop, after this error is kept: theirs ("interrupted")
     * come later and are dropped. */
    if (rc < 0)
        cs_cancel_trigger(b->cancel, SIGTERM);
    ssize_t w = write(sc->wake[1], "x", 1); /* a full pipe is readable anyway */
    (void) w;
    free(j);
    return NULL;
}

static bool
stage_ready(build *b, size_t i)
{
    if (b->st[i].state != ST_NEEDED)
        return false;
    for (size_t k = 0; k < b->st[i].ndeps; k++)
        if (b->st[b->st[i].deps[k]].state != ST_DONE)
            return false;
    return true;
}

/* The stage to build on the calling thread (under b->mu): the one ready
 * stage when nothing runs, or any ready one with a job limit of 1; else
 * SIZE_MAX. Marked ST_BUILDING. */
static size_t
inline_stage(sched *sc)
{
    build *b = sc->b;
    if (sc->running || sc->rc || cs_cancel_reason(b->cancel))
        return SIZE_MAX;
    size_t n = 0, idx = SIZE_MAX;
    for (size_t i = 0; i <= b->target; i++)
        if (stage_ready(b, i) && n++ == 0)
            idx = i;
    if (n == 0 || (n > 1 && sc->jobs > 1))
        return SIZE_MAX;
    b->st[idx].state = ST_BUILDING;
    return idx;
}

/* Builds stage idx on the calling thread, alone: the caller's flag is the
 * store's meanwhile, so a signal stops its steps and containers directly. */
static void
build_inline(sched *sc, size_t idx, cs_cancel *user)
{
    build *b = sc->b;
    cs_error *err = NULL;
    cs_store_set_cancel(b->s, user);
    int rc = build_stage(b, idx, &err);
    cs_store_set_cancel(b->s, b->cancel);
    if (cs_cancel_reason(user))
        cs_cancel_trigger(b->cancel, cs_cancel_reason(user));
    build_lock(b);
    stage_finished(b, idx, rc, &err, sc);
    build_unlock(b);
}

/* Starts what is ready, up to the job limit (under b->mu). */
static int
start_ready(sched *sc, cs_error **err)
{
    build *b = sc->b;
    if (sc->rc || cs_cancel_reason(b->cancel)) /* failed or cancelled: no more */
        return 0;
    for (size_t i = 0; i <= b->target && sc->running < sc->jobs; i++) {
        if (!stage_ready(b, i))
            continue;
        stage_job *j = cs_xmalloc(sizeof *j);
        *j = (stage_job){ sc, i };
        b->st[i].state = ST_BUILDING;
        int e = pthread_create(&b->st[i].thread, NULL, stage_thread, j);
        if (e) {
            free(j);
            b->st[i].state = ST_NEEDED;
            return cs_err(err, CS_EIO, e, "start a thread for stage '%s'", b->st[i].label);
        }
        b->st[i].threaded = true;
        sc->running++;
    }
    return 0;
}

/* Waits for a stage's end or the caller's cancel flag (fired: mirrored into
 * the build's, then no longer watched). */
static void
wait_event(sched *sc, int *user_fd)
{
    struct pollfd p[2] = { { sc->wake[0], POLLIN, 0 }, { *user_fd, POLLIN, 0 } };
    if (poll(p, *user_fd >= 0 ? 2 : 1, -1) < 0)
        return; /* EINTR: look again */
    char buf[64];
    if (p[0].revents)
        while (read(sc->wake[0], buf, sizeof buf) > 0)
            ;
    if (*user_fd >= 0 && p[1].revents) {
        cs_cancel_trigger(sc->b->cancel, cs_cancel_reason(cs_store_cancel(sc->b->s)));
        *user_fd = -1;
    }
}

/* The loop: start, wait, until nothing runs and nothing more can start. */
static int
sched_loop(sched *sc, cs_cancel *user, cs_error **err)
{
    build *b = sc->b;
    int user_fd = cs_cancel_fd(user), rc = 0;
    for (;;) {
        build_lock(b);
        size_t here = rc == 0 ? inline_stage(sc) : SIZE_MAX;
        if (rc == 0 && here == SIZE_MAX)
            rc = start_ready(sc, err);
        bool idle = sc->running == 0;
        build_unlock(b);
        if (here != SIZE_MAX) {
            build_inline(sc, here, user);
            continue;
        }
        if (rc < 0) /* stop what runs; the error is ours */
            cs_cancel_trigger(b->cancel, SIGTERM);
        if (idle)
            break;
        wait_event(sc, &user_fd);
    }
    for (size_t i = 0; i <= b->target; i++)
        if (b->st[i].threaded) {
            pthread_join(b->st[i].thread, NULL);
            b->st[i].threaded = false;
        }
    return rc;
}

/* What stopped the build: the scheduler's own failure, the first failed
 * stage's, the caller's signal; else the target was never reached. */
static int
sched_result(sched *sc, cs_cancel *user, int rc, cs_error **err)
{
    build *b = sc->b;
    if (rc < 0) {
        cs_error_clear(&sc->first);
        return rc;
    }
    if (sc->rc < 0) {
        if (err && !*err)
            *err = cs_steal(&sc->first);
        cs_error_clear(&sc->first);
        return sc->rc;
    }
    if ((rc = cs_cancel_check(user, err)) < 0)
        return rc;
    for (size_t i = 0; i <= b->target; i++)
        if (b->st[i].state == ST_NEEDED)
            return cs_err(err, CS_EINVAL, 0, "stage '%s' could not be scheduled", b->st[i].label);
    return 0;
}

static unsigned
default_jobs(const build *b)
{
    if (b->o->jobs)
        return b->o->jobs;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned) n : 1;
}

int
sched_run(build *b, cs_error **err)
{
    sched sc = { .b = b, .jobs = default_jobs(b) };
    if (pipe2(sc.wake, O_CLOEXEC | O_NONBLOCK) < 0)
        return cs_err(err, cs_sys_code(errno), errno, "scheduler pipe");
    cs_cancel *user = cs_store_cancel(b->s);
    int rc = cs_cancel_new(&b->cancel, err);
    if (rc == 0) {
        cs_cancel_hold(user);
        cs_store_set_cancel(b->s, b->cancel);
        if (cs_cancel_reason(user))
            cs_cancel_trigger(b->cancel, cs_cancel_reason(user));
        rc = sched_loop(&sc, user, err);
        /* the RUNs' teardowns left to threads (run_defer.c) end while a
         * signal still only triggers the flag */
        cs_run_settle_threads();
        cs_store_set_cancel(b->s, user);
        cs_cancel_unhold(user);
        rc = sched_result(&sc, user, rc, err);
    }
    close(sc.wake[0]);
    close(sc.wake[1]);
    cs_cancel_free(b->cancel);
    b->cancel = NULL;
    return rc;
}

int
stage_await(build *b, size_t idx, cs_error **err)
{
    bstage *st = &b->st[idx];
    build_lock(b);
    if (st->state == ST_UNUSED || st->state == ST_NEEDED) {
        /* Nothing runs it: build it here (its own deps are done or are
         * awaited the same way). */
        st->state = ST_BUILDING;
        build_unlock(b);
        int rc = build_stage(b, idx, err);
        build_lock(b);
        cs_error *none = NULL;
        stage_finished(b, idx, rc, &none, NULL);
        build_unlock(b);
        return rc;
    }
    while (st->state == ST_BUILDING && b->locks)
        pthread_cond_wait(&b->cv, &b->mu);
    bool failed = st->state != ST_DONE;
    build_unlock(b);
    return failed ? cs_err(err, CS_EINVAL, 0, "stage '%s' failed", st->label) : 0;
}
