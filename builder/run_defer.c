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
 */
#include "run_int.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

typedef struct deferred {
    cs_store *s;
    int hold; /* O_PATH fd on the detached overlay's root; -1: unmounted already */
    char *dir;
} deferred;

static pthread_mutex_t defer_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t defer_cv = PTHREAD_COND_INITIALIZER;
static unsigned defer_pending;

static void
finish(deferred *d)
{
    cs_error *tmp = NULL;
    if (d->hold >= 0)
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
cs_run_settle(void)
{
    pthread_mutex_lock(&defer_mu);
    while (defer_pending)
        pthread_cond_wait(&defer_cv, &defer_mu);
    pthread_mutex_unlock(&defer_mu);
}
