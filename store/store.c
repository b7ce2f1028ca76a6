/* store.c - the store root: directory, process lock, LMDB env (see cstore/store.h). */
#include <errno.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include "cstore/snapshot.h"
#include "cstore/store.h"
#include "cstore/util.h"
#include "fuse_int.h"
#include "lease_int.h"

struct cs_store {
    char *root;
    int lockfd;
    cs_db *db;
    cs_warn_fn warn;
    void *warn_ctx;
    cs_cancel *cancel;
    struct cs_lease *lease;      /* lease.c: what this process relies on */
    struct cs_fuse_client *fuse; /* fuse_client.c: the snapshotter, its server */
};

char *
cs_store_default_root(void)
{
    const char *r = getenv("CSTORE_ROOT");
    if (r && *r)
        return cs_xstrdup(r);
    const char *x = getenv("XDG_CACHE_HOME");
    if (x && *x)
        return cs_path_join(x, "cstore");
    const char *h = getenv("HOME");
    return cs_xasprintf("%s/.cache/cstore", h && *h ? h : "/root");
}

/* What killed processes left: half-made snapshots, their leases, the copy of
 * a gc --compact (with ROOT/lock held shared no compact is running: it holds
 * the lock exclusively). Each is one readdir or stat when there is nothing;
 * a failure is only a warning (and goes nowhere before the caller set its
 * hook). */
static void
clean_killed(cs_store *s, unsigned flags)
{
    cs_error *tmp = NULL;
    if (cs_snapshot_clean_stale(s, &tmp) < 0)
        cs_store_warn_error(s, "cleaning up", &tmp);
    if (cs_lease_clean_stale(s, &tmp) < 0)
        cs_store_warn_error(s, "cleaning up", &tmp);
    if (cs_fuse_clean_stale(s, &tmp) < 0)
        cs_store_warn_error(s, "cleaning up", &tmp);
    cs_autofree char *compact = cs_path_join(s->root, "compact.tmp");
    if (!(flags & CS_OPEN_EXCLUSIVE) && cs_rm_tree(compact, NULL, &tmp) < 0)
        cs_store_warn_error(s, "cleaning up", &tmp);
}

int
cs_store_open(const char *root, unsigned flags, cs_store **out, cs_error **err)
{
    int r = cs_mkdir_p(root, 0755, err);
    if (r < 0)
        return cs_err_wrap(err, "store root");
    cs_store *s = cs_xcalloc(1, sizeof(*s));
    /* Absolute: mounts, bundles and the FUSE server name paths under it
     * from other working directories. */
    s->root = realpath(root, NULL);
    if (!s->root) {
        r = cs_err(err, CS_EIO, errno, "store root %s", root);
        free(s);
        return r;
    }
    root = s->root;
    cs_autofree char *lock = cs_path_join(root, "lock");
    s->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lockfd < 0) {
        r = cs_err(err, CS_EIO, errno, "%s", lock);
        goto fail;
    }
    /* Shared for every user of the store; exclusive for gc --compact, which
     * swaps data.mdb under every other process's map. Both wait rather than
     * fail. */
    int op = (flags & CS_OPEN_EXCLUSIVE) ? LOCK_EX : LOCK_SH;
    int e = cs_flock(s->lockfd, op);
    if (e) {
        r = cs_err(err, CS_EIO, e, "lock %s", lock);
        goto fail;
    }
    r = cs_db_open(root, &s->db, err);
    if (r < 0)
        goto fail;
    /* Half-made snapshots and lease files of killed processes: one readdir
     * each, and only a cleanup (a failure is a warning, and goes nowhere
     * before the caller set its hook). */
    clean_killed(s, flags);
    *out = s;
    return 0;
fail:
    cs_store_close(s);
    return r;
}

void
cs_store_close(cs_store *s)
{
    if (!s)
        return;
    cs_fuse_stop(s);
    cs_fuse_client_free(s->fuse);
    cs_lease_release(s);
    cs_error *tmp = NULL;
    if (s->db && cs_db_sync(s->db, &tmp) < 0)
        cs_store_warn_error(s, "close the store", &tmp);
    cs_db_close(s->db);
    if (s->lockfd >= 0)
        close(s->lockfd);
    free(s->root);
    free(s);
}

cs_db *
cs_store_db(cs_store *s)
{
    return s->db;
}

const char *
cs_store_root(cs_store *s)
{
    return s->root;
}

int
cs_store_reopen_db(cs_store *s, cs_error **err)
{
    cs_db_close(s->db);
    s->db = NULL;
    return cs_db_open(s->root, &s->db, err);
}

void
cs_store_set_warn(cs_store *s, cs_warn_fn fn, void *ctx)
{
    s->warn = fn;
    s->warn_ctx = ctx;
}

void
cs_store_warn(cs_store *s, const char *fmt, ...)
{
    if (!s || !s->warn)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *m = cs_xvasprintf(fmt, ap);
    va_end(ap);
    s->warn(s->warn_ctx, m);
    free(m);
}

void
cs_store_warn_error(cs_store *s, const char *what, cs_error **tmp)
{
    if (!*tmp)
        return;
    if (what)
        cs_store_warn(s, "%s: %s", what, (*tmp)->msg);
    else
        cs_store_warn(s, "%s", (*tmp)->msg);
    cs_error_clear(tmp);
}

void
cs_store_set_cancel(cs_store *s, cs_cancel *c)
{
    s->cancel = c;
}

cs_cancel *
cs_store_cancel(cs_store *s)
{
    return s->cancel;
}

bool
cs_store_pid_gone(pid_t pid, time_t made)
{
    if (pid <= 0 || pid == getpid())
        return false;
    if (kill(pid, 0) < 0)
        return errno == ESRCH;
    /* Alive: the same process only if it started before it made the thing
     * (2 s of slack for btime's rounding). */
    int64_t start = cs_pid_start_time(pid);
    return start >= 0 && start > (int64_t) made + 2;
}

struct cs_lease **
cs_store_lease_slot(cs_store *s)
{
    return &s->lease;
}

struct cs_fuse_client **
cs_store_fuse_slot(cs_store *s)
{
    return &s->fuse;
}
