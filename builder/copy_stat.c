/* copy_stat.c - lstat of a directory's names on two threads.
 *
 * On a 10,000-file context the stat calls are most of a no-op rebuild, and
 * they parallelize (path lookup is CPU): a second thread takes the first
 * half of each large directory while the caller does the second.
 */
#include "copy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>

struct statpool {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int dirfd;
    char **names;
    struct stat *sts;
    int *errs;
    size_t lo, hi;
    bool job, quit;
};

static void
stat_range(int dirfd, char **names, struct stat *sts, int *errs, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++)
        errs[i] = fstatat(dirfd, names[i], &sts[i], AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
}

static void *
statpool_main(void *arg)
{
    statpool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->job && !p->quit)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit)
            break;
        pthread_mutex_unlock(&p->mu);
        stat_range(p->dirfd, p->names, p->sts, p->errs, p->lo, p->hi);
        pthread_mutex_lock(&p->mu);
        p->job = false;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

statpool *
copy_statpool_new(void)
{
    statpool *p = cs_xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->th, NULL, statpool_main, p)) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return NULL;
    }
    return p;
}

void
copy_statpool_free(statpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

void
copy_stat_batch(statpool *p, int dirfd, char **names, size_t n, struct stat *sts, int *errs)
{
    if (!p || n < 32) {
        stat_range(dirfd, names, sts, errs, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->dirfd = dirfd;
    p->names = names;
    p->sts = sts;
    p->errs = errs;
    p->lo = 0;
    p->hi = n / 2;
    p->job = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    stat_range(dirfd, names, sts, errs, n / 2, n);
    pthread_mutex_lock(&p->mu);
    while (p->job)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
