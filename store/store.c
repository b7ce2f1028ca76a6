/* store.c - the store root: directory, process lock, LMDB env (see cstore/store.h). */
#include <errno.h>
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

struct cs_store {
    char *root;
    int lockfd;
    cs_db *db;
    cs_warn_fn warn;
    void *warn_ctx;
    cs_cancel *cancel;
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

int
cs_store_open(const char *root, unsigned flags, cs_store **out, cs_error **err)
{
    int r = cs_mkdir_p(root, 0755, err);
    if (r < 0)
        return cs_err_wrap(err, "store root");
    cs_store *s = cs_xcalloc(1, sizeof(*s));
    s->root = cs_xstrdup(root);
    cs_autofree char *lock = cs_path_join(root, "lock");
    s->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lockfd < 0) {
        r = cs_err(err, CS_EIO, errno, "%s", lock);
        goto fail;
    }
    /* Shared for every user of the store; exclusive for gc, which must not
     * run while a load or build holds unreferenced content in flight. Both
     * wait rather than fail. */
    int op = (flags & CS_OPEN_EXCLUSIVE) ? LOCK_EX : LOCK_SH;
    while (flock(s->lockfd, op) < 0) {
        if (errno != EINTR) {
            r = cs_err(err, CS_EIO, errno, "lock %s", lock);
            goto fail;
        }
    }
    r = cs_db_open(root, &s->db, err);
    if (r < 0)
        goto fail;
    /* Half-made snapshots of killed processes: one readdir, and only a
     * cleanup (a failure is a warning, and goes nowhere before the caller
     * set its hook). */
    cs_error *tmp = NULL;
    if (cs_snapshot_clean_stale(s, &tmp) < 0)
        cs_store_warn_error(s, "cleaning up", &tmp);
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

/* The start time of process pid (unix seconds), or -1: /proc/PID/stat field
 * 22 (clock ticks since boot) plus btime from /proc/stat. */
static int64_t
pid_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long) pid);
    cs_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold anything */
    unsigned long long ticks = 0;
    /* After ")": state (field 3) ... starttime (field 22). */
    if (!p
        || sscanf(
               p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
               &ticks)
               != 1)
        return -1;
    FILE *f = fopen("/proc/stat", "re");
    long long btime = -1;
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    if (f)
        fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (btime < 0 || hz <= 0)
        return -1;
    return (int64_t) btime + (int64_t) (ticks / (unsigned long long) hz);
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
    int64_t start = pid_start_time(pid);
    return start >= 0 && start > (int64_t) made + 2;
}
