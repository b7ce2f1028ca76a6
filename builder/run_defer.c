/* run_defer.c - the end of a run's teardown off the caller's path: unmounting
 * the overlay (the kernel then drops every dentry and inode the command
 * looked up through it: ~5 ms after a go build), the scan of mountinfo for
 * anything left under the run dir, and the run dir's removal, in a thread,
 * while the caller ingests the upper dir and goes on with the build.
 *
 * Only for a run that succeeded and keeps its upper dir (RUN): the upper dir
 * is renamed out of the run dir first, while the overlay is still mounted.
 * That is safe because nothing writes through the overlay any more (the
 * reaper killed whatever the command left running before the runtime's exit
 * reached us) and an overlay never looks at its upper dir's path. The next
 * run of the process waits for these teardowns before it mounts (a lower dir
 * that is still a mounted overlay's upper dir makes the kernel warn), and the
 * caller waits for them before it closes the store (cs_run_settle).
 * Crash-safe as before: a run dir left by a dead process, with whatever is
 * still mounted under it, goes with the next cs_run_cleanup_stale.
 */
#include "run_int.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct deferred {
    cs_store *s;
    char *rootfs, *dir;
} deferred;

static pthread_mutex_t defer_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t defer_cv = PTHREAD_COND_INITIALIZER;
static unsigned defer_pending;

static void
finish(deferred *d)
{
    cs_error *tmp = NULL;
    if (run_umount(d->rootfs, &tmp) < 0)
        cs_store_warn_error(d->s, "run cleanup", &tmp);
    if (run_umount_under(d->dir, &tmp) < 0)
        cs_store_warn_error(d->s, "run cleanup", &tmp);
    if (cs_rm_tree(d->dir, NULL, &tmp) < 0)
        cs_store_warn_error(d->s, "run cleanup", &tmp);
    free(d->rootfs);
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
    d->rootfs = cs_xstrdup(r->rootfs);
    d->dir = cs_xstrdup(r->dir);
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
cs_run_settle(void)
{
    pthread_mutex_lock(&defer_mu);
    while (defer_pending)
        pthread_cond_wait(&defer_cv, &defer_mu);
    pthread_mutex_unlock(&defer_mu);
}
