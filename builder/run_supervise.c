/* run_supervise.c - the runtime's process: letting it start (under its
 * reaper, run_reaper.c, forked before the mount) in its own process group,
 * teeing its output while keeping a tail for error messages, and stopping
 * the container when the store's cancel flag is triggered. */
#include "run_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define TAIL_LINES 20
#define TAIL_KEEP  8192 /* bytes of output kept for the tail */
#define KILL_RETRY 0.05 /* seconds between looks for a container not created yet */

/* ---- processes ---- */

/* Starts argv[0] (searched in PATH) in its own process group (a Ctrl-C on the
 * terminal reaches cstore only, which then stops the container itself) with
 * the given stdio; -1 means /dev/null. */
static int
spawn(char *const argv[], int out, int errfd, pid_t *pid, cs_error **err)
{
    cs_autoclose int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return cs_err(err, CS_EIO, errno, "open '/dev/null'");
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, null, 0);
    posix_spawn_file_actions_adddup2(&fa, out >= 0 ? out : null, 1);
    posix_spawn_file_actions_adddup2(&fa, errfd >= 0 ? errfd : null, 2);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK
                                      | POSIX_SPAWN_SETSIGDEF);
    int e = posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (e)
        return cs_err(err, CS_EIO, e, "run '%s'", argv[0]);
    return 0;
}

int
run_wait_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* Runs a runtime command that needs no output (kill, delete). */
static int
run_quiet(char *const argv[], cs_error **err)
{
    pid_t pid;
    int rc = spawn(argv, -1, -1, &pid, err);
    if (rc < 0)
        return rc;
    int st = run_wait_status(pid);
    if (st != 0)
        return cs_err(err, CS_EIO, 0, "'%s %s' exited with status %d", argv[0], argv[3], st);
    return 0;
}

int
run_runtime_delete(const char *runtime, const char *state_root, const char *id, cs_error **err)
{
    /* runc run deletes its container when it exits; only a run that was
     * killed or interrupted leaves state behind. */
    cs_autofree char *state = cs_path_join(state_root, id);
    if (access(state, F_OK) < 0)
        return 0;
    char *argv[] = { (char *) runtime, "--root", (char *) state_root, "delete", "--force",
                     (char *) id,      NULL };
    return run_quiet(argv, err);
}

/* Whether the container's init was signalled. Fails while the container is
 * not created yet (or already gone): the caller retries, and kills the
 * runtime itself in the end. */
static bool
kill_container(run *r)
{
    char *argv[] = { (char *) r->runtime, "--root", r->state, "kill", r->id, "KILL", NULL };
    cs_error *tmp = NULL;
    if (run_quiet(argv, &tmp) < 0) {
        cs_error_free(tmp);
        return false;
    }
    return true;
}

/* ---- output ---- */

static void
tail_add(run *r, const char *p, size_t n)
{
    if (n >= TAIL_KEEP) {
        r->tail.len = 0;
        p += n - TAIL_KEEP;
        n = TAIL_KEEP;
    } else if (r->tail.len + n > 2 * TAIL_KEEP) {
        size_t drop = r->tail.len + n - TAIL_KEEP;
        memmove(r->tail.data, r->tail.data + drop, r->tail.len - drop);
        r->tail.len -= drop;
    }
    cs_buf_append(&r->tail, p, n);
}

char *
run_tail_lines(run *r)
{
    size_t end = r->tail.len, start = end, lines = 0;
    const char *d = (const char *) r->tail.data;
    if (end && d[end - 1] == '\n')
        start--;
    while (start > 0) {
        if (d[start - 1] == '\n' && ++lines == TAIL_LINES)
            break;
        start--;
    }
    return cs_xstrndup(d ? d + start : "", end - start);
}

char *
run_runtime_error(run *r)
{
    cs_autofree char *log = cs_path_join(r->dir, "runc.log");
    FILE *f = fopen(log, "re");
    if (!f)
        return NULL;
    char *line = NULL, *msg = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        const char *lvl = json_string_value(json_object_get(j, "level"));
        const char *m = json_string_value(json_object_get(j, "msg"));
        if (lvl && m && (!strcmp(lvl, "error") || !strcmp(lvl, "fatal"))) {
            free(msg);
            msg = cs_xstrdup(m);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    return msg;
}

/* ---- supervision ---- */

/* The runtime being watched. */
typedef struct sup {
    run *r;
    pid_t pid;
    int stfd;                      /* the reaper's control socket (r->ctl, not ours) */
    int cancel_fd;                 /* -1 once cancelled (or never cancellable) */
    int fds[2];                    /* read ends of its stdout, stderr; -1 once closed */
    bool fwd_ok[2];                /* forwarding still works (else only the tail sees it) */
    bool exited;                   /* its status is known */
    int status, sig;               /* exit status; the cancel's signal */
    double cancelled_at;           /* when *sig was set */
    double last_kill;              /* the last `runtime kill` */
    bool kill_landed;              /* a `runtime kill` signalled the container's init */
    double killed_at;              /* when the reaper was told to kill it all */
    double exited_at;              /* when its status came */
    struct pollfd p[5];            /* this round's poll set */
    int ifd[2], icancel, ist, ixw; /* their indices in p, -1 if not polled */
} sup;

/* The reaper, waiting since before the mount, starts the runtime; its
 * output pipes are ours from here on, its status comes on r->ctl. */
static void
start_runtime(sup *u)
{
    run *r = u->r;
    if (r->o->on_exit && r->o->keep_upper)
        run_exitwatch_start(&r->xw, r->state, r->id);
    run_reaper_go(r);
    if (r->o->on_start)
        r->o->on_start(r->o->hook_ctx);
    u->pid = r->reaper;
    u->fds[0] = r->rt_fds[0];
    u->fds[1] = r->rt_fds[1];
    u->stfd = r->ctl;
    r->rt_fds[0] = r->rt_fds[1] = -1;
}

/* One round of poll over the pipes, the cancel fd and the control socket. */
static int
wait_events(sup *u)
{
    int np = 0;
    int xw = u->sig || u->exited ? -1 : run_exitwatch_fd(&u->r->xw);
    int fds[5] = { u->fds[0], u->fds[1], u->cancel_fd, u->exited ? -1 : u->stfd, xw };
    int *idx[5] = { &u->ifd[0], &u->ifd[1], &u->icancel, &u->ist, &u->ixw };
    for (int i = 0; i < 5; i++) {
        *idx[i] = -1;
        if (fds[i] >= 0) {
            *idx[i] = np;
            u->p[np++] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
        }
    }
    int timeout = (u->sig || u->exited) ? 200 : -1;
    if (u->sig && !u->kill_landed && !u->exited)
        timeout = (int) (KILL_RETRY * 1000);
    return poll(u->p, (nfds_t) np, timeout);
}

static bool
ready(const sup *u, int i, int pr)
{
    return pr > 0 && i >= 0 && (u->p[i].revents & (POLLIN | POLLHUP | POLLERR));
}

/* Copies what the runtime wrote to the tail and to the caller's fds. */
static void
drain_output(sup *u, int pr)
{
    char buf[65536];
    int dest[2] = { u->r->o->out_fd, u->r->o->err_fd };
    for (int i = 0; i < 2; i++) {
        if (!ready(u, u->ifd[i], pr))
            continue;
        ssize_t n = read(u->fds[i], buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            close(u->fds[i]);
            u->fds[i] = -1;
            continue;
        }
        tail_add(u->r, buf, (size_t) n);
        /* on a write error keep draining the pipe; the tail still sees it */
        if (dest[i] >= 0 && u->fwd_ok[i] && cs_write_all(dest[i], buf, (size_t) n) < 0)
            u->fwd_ok[i] = false;
    }
}

static void
check_cancel(sup *u, int pr)
{
    int reason = cs_cancel_reason(u->r->cancel);
    if (u->sig || (!reason && !ready(u, u->icancel, pr)))
        return;
    u->sig = reason ? reason : SIGTERM;
    u->cancel_fd = -1; /* stays readable: stop polling it */
    u->cancelled_at = u->last_kill = cs_now();
    u->kill_landed = kill_container(u->r);
}

/* The reaper's status byte: the runtime has exited and all it left is gone
 * (the reaper lives on until the teardown releases it). The end of the socket
 * without it: the reaper itself failed and exited; its exit status is the
 * status. block: wait for it, else only when poll (result pr) says it came. */
static void
take_status(sup *u, int pr, bool block)
{
    if (u->exited || (!block && !ready(u, u->ist, pr)))
        return;
    unsigned char b;
    ssize_t n = read(u->stfd, &b, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n == 1) {
        u->status = b;
    } else if (n == 0) {
        u->status = run_wait_status(u->pid);
        u->r->reaper = 0; /* reaped */
    }
    u->exited = true;
    u->exited_at = cs_now();
}

/* Whether the runtime has recorded the container (its state.json, written
 * before the command is let run): from then on `runtime kill` finds it. */
static bool
recorded(const run *r)
{
    cs_autofree char *json = cs_xasprintf("%s/%s/state.json", r->state, r->id);
    return access(json, F_OK) == 0;
}

/* After a cancel: the container may not exist yet when the signal came (the
 * runtime is still creating it, and then starts the command), so until a kill
 * lands its state is looked for every KILL_RETRY seconds and the kill sent
 * again as soon as it is there (the command is stopped at its start), else
 * each second; in the end the reaper kills the runtime and the container
 * (its state is deleted after). */
static void
escalate(sup *u, double now)
{
    if (!u->sig || u->exited)
        return;
    if (now - u->cancelled_at > 10 && !u->killed_at) {
        run_reaper_kill(u->r);
        u->killed_at = now;
    } else if (now - u->last_kill > 1 || (!u->kill_landed && recorded(u->r))) {
        u->kill_landed = kill_container(u->r) || u->kill_landed;
        u->last_kill = now;
    }
}

static void
close_pipes(sup *u)
{
    for (int i = 0; i < 2; i++) {
        if (u->fds[i] >= 0)
            close(u->fds[i]);
        u->fds[i] = -1;
    }
}

/* The runtime is gone but something (a process of the container) still
 * holds the pipes: delete the container, stop reading. */
static void
drop_stuck_pipes(sup *u, double now)
{
    if (!u->exited || (u->fds[0] < 0 && u->fds[1] < 0) || now - u->exited_at <= 5)
        return;
    cs_error *tmp = NULL;
    if (run_runtime_delete(u->r->runtime, u->r->state, u->r->id, &tmp) < 0)
        cs_store_warn_error(u->r->s, "delete container", &tmp);
    close_pipes(u);
}

int
run_supervise(run *r, int *status, int *sig, cs_error **err)
{
    sup u = { .r = r,
              .stfd = -1,
              .cancel_fd = cs_cancel_fd(r->cancel),
              .fds = { -1, -1 },
              .fwd_ok = { true, true },
              .status = -1 };
    *status = -1;
    *sig = cs_cancel_reason(r->cancel);
    if (*sig) /* cancelled before the runtime started: nothing to stop */
        return 0;
    int rc = 0;
    start_runtime(&u);
    if (r->cancel && getenv("CSTORE_TEST_CANCEL_AT_SPAWN")) /* test only: see run_int.h */
        cs_cancel_trigger(r->cancel, SIGTERM);
    while (u.fds[0] >= 0 || u.fds[1] >= 0 || !u.exited) {
        int pr = wait_events(&u);
        if (pr < 0 && errno != EINTR) {
            rc = cs_err(err, CS_EIO, errno, "poll");
            kill_container(r);
            run_reaper_kill(r); /* the reaper kills the runtime and the container */
            break;
        }
        drain_output(&u, pr);
        check_cancel(&u, pr);
        if (ready(&u, u.ixw, pr) && run_exitwatch_ready(&r->xw) && !u.sig)
            run_command_exited(r);
        take_status(&u, pr, false);
        double now = cs_now();
        escalate(&u, now);
        drop_stuck_pipes(&u, now);
    }
    close_pipes(&u);
    while (!u.exited) /* the poll failed: the reaper was told to kill it all */
        take_status(&u, 0, true);
    *status = u.status;
    *sig = u.sig;
    return rc;
}
