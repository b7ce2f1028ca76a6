/* run_defer.c - the end of a run's teardown off the caller's path: the
 * kernel's teardown of the overlay (it drops every dentry and inode the
 * command looked up through it: ~5 ms after a go build), the scan of
 * mountinfo for anything left under the run dir, and the run dir's removal,
 * in a thread, while the caller ingests the upper dir and goes on with the
 * build.
 *
 * Only for a run that succeeded and keeps its upper dir (RUN): the upper dir
 * is renamed out of the run dir first, while the overlay is still mounted.
 * That is safe because nothing writes through the overlay any more (the
 * reaper killed whatever the command left running before the runtime's exit
 * reached us) and an overlay never looks at its upper dir's path. Then the
 * overlay leaves the mount table at once (a lazy unmount while an O_PATH fd
 * on its root keeps it alive): the reaper is gone by now, and no mount of
 * the run may outlive a killed cstore. The thread closes that fd, the last
 * reference, so the kernel's teardown runs in the thread. A killed cstore
 * drops the fd with its other files. The next run of the process waits for
 * these teardowns (cs_run_settle), as does the build before it gives up the
 * cancel flag. A run dir left by a dead process goes with the next
 * cs_run_cleanup_stale, as before.
 *
 * The build's last run (keep_overlay) keeps the reference instead: nothing
 * will mount its upper dir as a lower dir again, and its teardown (5-15 ms of
 * kernel time after a go build) would take a core from the layer's ingest
 * on a 2-core machine. The command hands such references to a `cat` it
 * spawns as it exits (cs_run_release_overlays), reading a pipe that ends
 * with the command, so the kernel's teardown runs in that process, after
 * the command is done; a killed cstore drops
 * them with its other files, and the next run of the process
 * (cs_run_settle) drops them first. An overlay with FUSE lower dirs is never
 * kept: the served view's unmount must not find it busy.
 */
#include "run_int.h"

#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

typedef struct deferred {
    cs_store *s;
    int hold;  /* O_PATH fd on the detached overlay's root; -1: unmounted already */
    bool keep; /* hold goes to kept[] (keep_overlay) */
    char *dir;
} deferred;

#define KEPT_MAX   8
#define FUSE_MAGIC 0x65735546

static pthread_mutex_t defer_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t defer_cv = PTHREAD_COND_INITIALIZER;
static unsigned defer_pending;
static int kept[KEPT_MAX]; /* detached overlays' last references (under defer_mu) */
static size_t nkept;

/* Puts fd in kept[]; false when full (the caller closes it). */
static bool
keep_hold(int fd)
{
    pthread_mutex_lock(&defer_mu);
    bool room = nkept < KEPT_MAX;
    if (room)
        kept[nkept++] = fd;
    pthread_mutex_unlock(&defer_mu);
    return room;
}

/* Takes kept[] over: *n fds into out. */
static void
take_kept(int out[KEPT_MAX], size_t *n)
{
    pthread_mutex_lock(&defer_mu);
    *n = nkept;
    memcpy(out, kept, nkept * sizeof(int));
    nkept = 0;
    pthread_mutex_unlock(&defer_mu);
}

/* Whether the overlay may be kept: the run asked and no lower dir is
 * served by FUSE. */
static bool
may_keep(const run *r)
{
    if (!r->o->keep_overlay)
        return false;
    for (size_t i = 0; i < r->o->nlowers; i++) {
        struct statfs sf;
        if (statfs(r->o->lowers[i], &sf) < 0 || sf.f_type == FUSE_MAGIC)
            return false;
    }
    return true;
}

static void
finish(deferred *d)
{
    cs_error *tmp = NULL;
    if (d->hold >= 0 && !(d->keep && keep_hold(d->hold)))
        close(d->hold); /* the overlay's last reference: the kernel tears it down here */
    if (run_umount_under(d->dir, &tmp) < 0)
        cs_store_warn_error(d->s, "run cleanup", &tmp);
    if (cs_rm_tree(d->dir, NULL, &tmp) < 0)
        cs_store_warn_error(d->s, "run cleanup", &tmp);
    free(d->dir);
    free(d);
    pthread_mutex_lock(&defer_mu);
    defer_pending--;
    pthread_cond_broadcast(&defer_cv);
    pthread_mutex_unlock(&defer_mu);
}

static void *
defer_main(void *arg)
{
    finish(arg);
    return NULL;
}

void
run_defer_teardown(run *r)
{
    deferred *d = cs_xcalloc(1, sizeof *d);
    d->s = r->s;
    d->dir = cs_xstrdup(r->dir);
    d->keep = may_keep(r);
    d->hold = open(r->rootfs, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d->hold >= 0 && umount2(r->rootfs, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
        close(d->hold);
        d->hold = -1;
    }
    if (d->hold < 0) { /* not detached: unmounted here, as without a thread */
        cs_error *tmp = NULL;
        if (run_umount(r->rootfs, &tmp) < 0)
            cs_store_warn_error(r->s, "run cleanup", &tmp);
    }
    pthread_mutex_lock(&defer_mu);
    defer_pending++;
    pthread_mutex_unlock(&defer_mu);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, defer_main, d) != 0)
        finish(d); /* no thread: here and now */
    pthread_attr_destroy(&at);
}

void
cs_run_settle_threads(void)
{
    pthread_mutex_lock(&defer_mu);
    while (defer_pending)
        pthread_cond_wait(&defer_cv, &defer_mu);
    pthread_mutex_unlock(&defer_mu);
}

void
cs_run_settle(void)
{
    cs_run_settle_threads();
    int fds[KEPT_MAX];
    size_t n;
    take_kept(fds, &n);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

extern char **environ;

void
cs_run_release_overlays(void)
{
    cs_run_settle_threads();
    int fds[KEPT_MAX];
    size_t n;
    take_kept(fds, &n);
    if (!n)
        return;
    /* `cat` inherits them (dup2 onto itself clears FD_CLOEXEC) and drops
     * them as it exits: at the end of its stdin, a pipe whose write end only
     * this process holds (close-on-exec, never closed here), so at our exit.
     * (A `true` exited before our close, and the teardown ran here.) Its
     * stdout and stderr are /dev/null, so no pipe of our caller waits. */
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        p[0] = p[1] = -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (p[0] >= 0)
        posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    for (int fd = 1; fd < 3; fd++)
        posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", O_WRONLY, 0);
    for (size_t i = 0; i < n; i++)
        posix_spawn_file_actions_adddup2(&fa, fds[i], fds[i]);
    pid_t pid;
    const char *probe = getenv("CSTORE_TEST_RELEASE_CMD"); /* test only: see t_runstart */
    if (probe && *probe) {
        char *sh[] = { "sh", "-c", (char *) probe, NULL };
        (void) posix_spawnp(&pid, "sh", &fa, NULL, sh, environ);
    } else {
        /* Debian's coreutils puts cat in /usr/bin (/bin is its link): no
         * PATH search, whose misses in a long PATH cost more than the spawn */
        char *argv[] = { "cat", NULL };
        if (posix_spawn(&pid, "/usr/bin/cat", &fa, NULL, argv, environ) != 0)
            (void) posix_spawnp(&pid, "cat", &fa, NULL, argv, environ);
    }
    posix_spawn_file_actions_destroy(&fa);
    if (p[0] >= 0)
        close(p[0]); /* p[1] stays open until we exit */
    for (size_t i = 0; i < n; i++)
        close(fds[i]); /* without `cat`, the last references: torn down here */
}
