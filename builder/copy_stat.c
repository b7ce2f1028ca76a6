/* copy_stat.c - lstat of a directory's names on two threads.
 *
 * On a 10,000-file context the stat calls are most of a no-op rebuild, and
 * they parallelize (path lookup is CPU). The caller posts a directory's
 * names and takes them in chunks from a shared counter; the helper thread,
 * once awake, takes chunks from the same counter. The caller never waits
 * for the helper to wake: one woken late finds the work done. (Splitting
 * each directory in halves made the caller sleep until the helper's half
 * was done: two sleeps and wake-ups per directory, 11% of a 10,000-file
 * no-op in the scheduler.)
 *
 * The helper also lists directories ahead of the walk: a directory whose
 * subdirectories the walk will enter offers them (copy_prefetch_begin); the
 * helper lists and lstats them from the last one down while the walk takes
 * them from the first one up (copy_prefetch_take), so both meet in the
 * middle. A stat job goes first (the walk waits for it). The walk's order
 * and what it sees do not change: a listing the helper could not make is
 * made again by the walk, which reports its error. A subdirectory whose
 * names the stat cache's listing record has (copy_list.c) comes with them:
 * the helper (or the walk) only lstats those.
 */
#include "copy_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cstore/error.h"

#define CHUNK 8 /* names per take */

enum { S_FREE, S_HELPER, S_DONE, S_FAILED, S_CALLER };

/* The subdirectories one walked directory offers (all under the pool's mu
 * but the helper's listing itself). */
struct prefetch {
    statpool *p;
    prefetch *outer; /* the directory it is in, when that offers too */
    int dirfd;
    char **names;     /* the subdirectories, in walk order */
    size_t n, lo, hi; /* lo..hi: claimed by nobody yet */
    size_t inflight;  /* listings the helper is making */
    struct slot {
        int state;
        dirlist dl;
    } * slots;
};

struct statpool {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t job_cv;  /* a job was posted, or quit */
    pthread_cond_t idle_cv; /* the helper left a job */
    /* the job, set under mu while the helper is not busy */
    int dirfd;
    char **names;
    struct stat *sts;
    int *errs;
    size_t n;
    atomic_size_t next; /* the next name to take */
    atomic_size_t done; /* names stat'ed */
    unsigned gen;       /* jobs posted */
    prefetch *top;      /* the innermost directory offering subdirectories */
    bool busy;          /* the helper is taking from the job */
    bool quit;
};

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void
stat_range(int dirfd, char **names, struct stat *sts, int *errs, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++)
        errs[i] = fstatat(dirfd, names[i], &sts[i], AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
}

/* Takes chunks of the job until none is left. Touches the arrays only for
 * an index below n: once done reaches n, every later take finds none. */
static void
take(statpool *p, int dirfd, char **names, struct stat *sts, int *errs, size_t n)
{
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, CHUNK);
        if (i >= n)
            return;
        size_t hi = i + CHUNK < n ? i + CHUNK : n;
        stat_range(dirfd, names, sts, errs, i, hi);
        atomic_fetch_add(&p->done, hi - i);
    }
}

/* The innermost directory with a subdirectory nobody claimed, or NULL. */
static prefetch *
claimable(statpool *p)
{
    for (prefetch *f = p->top; f; f = f->outer)
        if (f->lo < f->hi)
            return f;
    return NULL;
}

static int
cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* dl's names: the n names one after the other in a (taken). */
static void
set_names(dirlist *dl, char *a, size_t n)
{
    dl->arena = a;
    dl->n = n;
    dl->names = cs_xmalloc((n ? n : 1) * sizeof(char *));
    for (size_t i = 0, off = 0; i < n; off += strlen(a + off) + 1)
        dl->names[i++] = a + off;
}

/* The names of the directory open as fd (but "." and ".."), sorted by
 * strcmp as cs_dir_names sorts them: read with getdents64 into one block
 * (no allocation per name). 0, or an errno. */
static int
read_names(int fd, dirlist *dl)
{
    union {
        char b[32768];
        struct dirent64 align;
    } u;
    size_t len = 0, cap = 0, n = 0;
    char *a = NULL;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return errno;
    for (;;) {
        ssize_t got = getdents64(fd, u.b, sizeof(u.b));
        if (got < 0) {
            int e = errno;
            free(a);
            return e;
        }
        if (got == 0)
            break;
        for (ssize_t off = 0; off < got;) {
            const struct dirent64 *de = (const struct dirent64 *) (u.b + off);
            off += de->d_reclen;
            const char *nm = de->d_name;
            if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
                continue;
            size_t l = strlen(nm) + 1;
            if (len + l > cap)
                a = cs_xrealloc(a, cap = (len + l) * 2 > 4096 ? (len + l) * 2 : 4096);
            memcpy(a + len, nm, l);
            len += l;
            n++;
        }
    }
    set_names(dl, a, n);
    qsort(dl->names, n, sizeof(char *), cmp_name);
    dl->listed = true;
    return 0;
}

void
copy_dirlist_set(dirlist *dl, const char *names, size_t len, size_t n)
{
    char *a = cs_xmalloc(len ? len : 1);
    memcpy(a, names, len);
    set_names(dl, a, n);
    dl->listed = false;
}

int
copy_list_names(int fd, const char *what, dirlist *dl, cs_error **err)
{
    int e = read_names(fd, dl);
    if (e)
        return cs_err(err, CS_EIO, e, "read dir '%s'", what);
    return 0;
}

/* The helper's listing of name in dirfd (its names already in dl when the
 * stat cache had them); false when it could not make it (the walk makes it
 * again and reports why). */
static bool
list_dir(int dirfd, const char *name, dirlist *dl)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (!dl->names && read_names(fd, dl)) {
        close(fd);
        return false;
    }
    dl->sts = cs_xmalloc((dl->n ? dl->n : 1) * sizeof(struct stat));
    dl->errs = cs_xmalloc((dl->n ? dl->n : 1) * sizeof(int));
    stat_range(fd, dl->names, dl->sts, dl->errs, 0, dl->n);
    close(fd);
    return true;
}

/* Lists the last unclaimed subdirectory of f (mu held; dropped meanwhile). */
static void
prefetch_one(statpool *p, prefetch *f)
{
    size_t k = --f->hi;
    f->slots[k].state = S_HELPER;
    f->inflight++;
    dirlist dl = f->slots[k].dl; /* the names, when known */
    pthread_mutex_unlock(&p->mu);
    bool ok = list_dir(f->dirfd, f->names[k], &dl);
    if (!ok)
        copy_dirlist_free(&dl);
    pthread_mutex_lock(&p->mu);
    f->slots[k].dl = dl;
    f->slots[k].state = ok ? S_DONE : S_FAILED;
    f->inflight--;
    pthread_cond_broadcast(&p->idle_cv);
}

static void *
statpool_main(void *arg)
{
    statpool *p = arg;
    unsigned seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        prefetch *f = NULL;
        while (p->gen == seen && !p->quit && !(f = claimable(p)))
            pthread_cond_wait(&p->job_cv, &p->mu);
        if (p->quit)
            break;
        if (p->gen == seen) {
            prefetch_one(p, f);
            continue;
        }
        seen = p->gen;
        int dirfd = p->dirfd;
        char **names = p->names;
        struct stat *sts = p->sts;
        int *errs = p->errs;
        size_t n = p->n;
        p->busy = true; /* no new job (no reset of next) until we leave */
        pthread_mutex_unlock(&p->mu);
        take(p, dirfd, names, sts, errs, n);
        pthread_mutex_lock(&p->mu);
        p->busy = false;
        pthread_cond_broadcast(&p->idle_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

statpool *
copy_statpool_new(void)
{
    const char *serial = getenv("CSTORE_TEST_WALK_SERIAL"); /* test only: see copy_int.h */
    if (serial && *serial && strcmp(serial, "0"))
        return NULL;
    statpool *p = cs_xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->job_cv, NULL);
    pthread_cond_init(&p->idle_cv, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->done, 0);
    if (pthread_create(&p->th, NULL, statpool_main, p)) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->job_cv);
        pthread_cond_destroy(&p->idle_cv);
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
    pthread_cond_broadcast(&p->job_cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->job_cv);
    pthread_cond_destroy(&p->idle_cv);
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
    while (p->busy) /* it left the last job's arrays alone; about to go idle */
        pthread_cond_wait(&p->idle_cv, &p->mu);
    p->dirfd = dirfd;
    p->names = names;
    p->sts = sts;
    p->errs = errs;
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->done, 0);
    p->gen++;
    pthread_cond_signal(&p->job_cv);
    pthread_mutex_unlock(&p->mu);
    take(p, dirfd, names, sts, errs, n);
    /* The helper may still hold its last chunk (a few stats, microseconds):
     * spin that long before sleeping (a helper preempted mid-chunk). */
    for (int spin = 0; spin < 1000 && atomic_load(&p->done) < n; spin++)
        cpu_relax();
    if (atomic_load(&p->done) < n) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->done) < n)
            pthread_cond_wait(&p->idle_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

void
copy_dirlist_free(dirlist *dl)
{
    free(dl->names);
    free(dl->arena);
    free(dl->sts);
    free(dl->errs);
    *dl = (dirlist){ 0 };
}

prefetch *
copy_prefetch_begin(statpool *p, int dirfd, char **names, dirlist *known, size_t n)
{
    if (!p || n < 2)
        return NULL;
    prefetch *f = cs_xcalloc(1, sizeof(*f));
    f->p = p;
    f->dirfd = dirfd;
    f->names = names;
    f->n = f->hi = n;
    f->slots = cs_xcalloc(n, sizeof(*f->slots));
    for (size_t i = 0; known && i < n; i++)
        f->slots[i].dl = known[i], known[i] = (dirlist){ 0 };
    pthread_mutex_lock(&p->mu);
    f->outer = p->top;
    p->top = f;
    pthread_cond_signal(&p->job_cv);
    pthread_mutex_unlock(&p->mu);
    return f;
}

bool
copy_prefetch_take(prefetch *f, size_t k, dirlist *dl)
{
    if (!f || k >= f->n)
        return false;
    statpool *p = f->p;
    pthread_mutex_lock(&p->mu);
    if (k < f->hi) { /* the walk's own: it and those before it */
        for (size_t i = f->lo; i <= k; i++)
            f->slots[i].state = S_CALLER;
        f->lo = k + 1;
        *dl = f->slots[k].dl; /* its names, when known */
        f->slots[k].dl = (dirlist){ 0 };
        pthread_mutex_unlock(&p->mu);
        return false;
    }
    while (f->slots[k].state == S_HELPER)
        pthread_cond_wait(&p->idle_cv, &p->mu);
    bool ok = f->slots[k].state == S_DONE;
    if (ok) {
        *dl = f->slots[k].dl;
        f->slots[k].dl = (dirlist){ 0 };
    }
    f->slots[k].state = S_CALLER;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

void
copy_prefetch_end(prefetch *f)
{
    if (!f)
        return;
    statpool *p = f->p;
    pthread_mutex_lock(&p->mu);
    f->hi = f->lo; /* nothing more to claim */
    while (f->inflight)
        pthread_cond_wait(&p->idle_cv, &p->mu);
    p->top = f->outer; /* the innermost: those inside it ended first */
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < f->n; i++) /* listed, or names known, and not taken */
        copy_dirlist_free(&f->slots[i].dl);
    free(f->slots);
    free(f);
}
