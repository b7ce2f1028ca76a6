/* snapshot_unpack.c - one tree written into a directory, for overlayfs:
 * entries made relative to the root one component at a time (nothing
 * followed), OCI whiteouts turned into overlay ones, hardlinks made after
 * every file, directory times last (see cstore/snapshot.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include "cstore/content.h"
#include "snapshot_int.h"

/* A read txn is renewed after this many bytes or files, so that a long
 * unpack does not pin freed pages (the file would grow). */
#define TXN_BYTES (256u << 20)
#define TXN_FILES 4096u

typedef struct unpack {
    cs_db *db;
    const cs_tree *t;
    int root;    /* the fs dir */
    char *cpath; /* the last parent dir opened, and its fd */
    int cfd;
    MDB_txn *txn; /* read txn for contents, renewed in batches */
    uint64_t txn_bytes;
    unsigned txn_files;
} unpack;

/* Opens the directory at rel (length len) under the root, one component at a
 * time with O_NOFOLLOW, so that no symlink (of this tree or not) can lead a
 * write outside. Missing parents are made (root-owned, 0755), as tar does. */
static int
open_dir(unpack *u, const char *rel, size_t len, int *out, cs_error **err)
{
    int fd = dup(u->root);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "dup");
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && rel[j] != '/')
            j++;
        cs_autofree char *comp = cs_xstrndup(rel + i, j - i);
        if (!*comp || !strcmp(comp, ".") || !strcmp(comp, "..")) {
            close(fd);
            return cs_err(err, CS_EINVAL, 0, "unclean path '%.*s'", (int) len, rel);
        }
        int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT) {
            if (mkdirat(fd, comp, 0700) < 0 && errno != EEXIST) {
                int e = errno;
                close(fd);
                return cs_err(err, cs_sys_code(e), e, "mkdir '%.*s'", (int) j, rel);
            }
            nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (nfd >= 0 && fchmod(nfd, 0755) < 0) {
                int e = errno;
                close(nfd);
                close(fd);
                return cs_err(err, CS_EIO, e, "chmod '%.*s'", (int) j, rel);
            }
        }
        int e = errno;
        close(fd);
        if (nfd < 0) {
            if (e == ELOOP || e == ENOTDIR)
                return cs_err(err, CS_EINVAL, 0, "'%.*s' is not a directory (symlink or file)",
                              (int) j, rel);
            return cs_err(err, CS_EIO, e, "open '%.*s'", (int) j, rel);
        }
        fd = nfd;
        i = j + 1;
    }
    *out = fd;
    return 0;
}

/* The directory holding path (borrowed fd, cached for the next entry: sorted
 * entries mostly share their parent) and the last component in *name. */
static int
parent_fd(unpack *u, const char *path, const char **name, int *out, cs_error **err)
{
    const char *sl = strrchr(path, '/');
    if (!sl) {
        *name = path;
        *out = u->root;
        return 0;
    }
    *name = sl + 1;
    size_t len = (size_t) (sl - path);
    if (u->cpath && strlen(u->cpath) == len && !memcmp(u->cpath, path, len)) {
        *out = u->cfd;
        return 0;
    }
    int fd = -1;
    int r = open_dir(u, path, len, &fd, err);
    if (r < 0)
        return r;
    free(u->cpath);
    if (u->cfd >= 0)
        close(u->cfd);
    u->cpath = cs_xstrndup(path, len);
    u->cfd = fd;
    *out = fd;
    return 0;
}

/* Sets e's xattrs on fd, or (fd < 0) on name in pfd without following it.
 * Overlay's own xattrs are never taken from a layer: they would change what
 * the mount shows (opaque, redirect, metacopy). Security xattrs the
 * filesystem does not support are dropped; any other failure is an error. */
static int
set_xattrs(const cs_entry *e, int fd, int pfd, const char *name, cs_error **err)
{
    cs_autofree char *proc = NULL;
    for (uint32_t i = 0; i < e->nxattrs; i++) {
        const cs_xattr *x = &e->xattrs[i];
        if (!strncmp(x->name, OVL_PREFIX, strlen(OVL_PREFIX)))
            continue;
        int rc;
        if (fd >= 0) {
            rc = fsetxattr(fd, x->name, x->value, x->len, 0);
        } else {
            /* No lsetxattrat: go through the parent's fd, which was opened
             * safely; only the last component is looked up, unfollowed. */
            if (!proc)
                proc = cs_xasprintf("/proc/self/fd/%d/%s", pfd, name);
            rc = lsetxattr(proc, x->name, x->value, x->len, 0);
        }
        if (rc < 0) {
            if ((errno == ENOTSUP || errno == EOPNOTSUPP) && !strncmp(x->name, "security.", 9))
                continue;
            return cs_err(err, cs_sys_code(errno), errno, "'%s': set xattr '%s'", e->path, x->name);
        }
    }
    return 0;
}

static void
entry_times(const cs_entry *e, struct timespec ts[2])
{
    ts[0].tv_sec = ts[1].tv_sec = (time_t) e->mtime_sec;
    ts[0].tv_nsec = ts[1].tv_nsec = e->mtime_nsec < 1000000000u ? (long) e->mtime_nsec : 0;
}

static int
sink_fd(void *ctx, const void *p, size_t n, cs_error **err)
{
    if (cs_write_all(*(int *) ctx, p, n) < 0)
        return cs_err(err, cs_sys_code(errno), errno, "write");
    return 0;
}

static int
write_content(unpack *u, int fd, const cs_entry *e, cs_error **err)
{
    if (u->txn && (u->txn_bytes >= TXN_BYTES || u->txn_files >= TXN_FILES)) {
        mdb_txn_reset(u->txn);
        int rc = mdb_txn_renew(u->txn);
        if (rc) {
            mdb_txn_abort(u->txn);
            u->txn = NULL;
            return cs_db_err(err, rc, "renew transaction");
        }
        u->txn_bytes = 0;
        u->txn_files = 0;
    }
    if (!u->txn) {
        int r = cs_db_begin(u->db, MDB_RDONLY, &u->txn, err);
        if (r < 0)
            return r;
    }
    u->txn_bytes += e->size;
    u->txn_files++;
    /* Unverified, as for COPY: chunks were verified when stored, fsck
     * re-checks them, and a snapshot is a cache. */
    return cs_content_read(u->db, u->txn, &e->content, false, sink_fd, &fd, err);
}

/* Creates a regular file with e's content and metadata (also for hardlinks
 * whose target is in another layer: they become a copy). */
static int
make_file(unpack *u, int pfd, const char *name, const cs_entry *e, cs_error **err)
{
    cs_autoclose int fd =
        openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "create '%s'", e->path);
    if (e->has_content) {
        int r = write_content(u, fd, e, err);
        if (r < 0)
            return cs_err_wrap(err, "'%s'", e->path);
    }
    /* chown clears setuid/setgid: chmod after it. */
    if (fchown(fd, e->uid, e->gid) < 0 || fchmod(fd, e->mode & 07777) < 0)
        return cs_err(err, CS_EIO, errno, "'%s': set owner and mode", e->path);
    int r = set_xattrs(e, fd, -1, NULL, err);
    if (r < 0)
        return r;
    struct timespec ts[2];
    entry_times(e, ts);
    if (futimens(fd, ts) < 0)
        return cs_err(err, CS_EIO, errno, "'%s': set times", e->path);
    return 0;
}

/* Owner, mode, xattrs and times of a node that cannot be opened (symlink,
 * device, fifo): everything through its parent, nothing followed. */
static int
node_meta(int pfd, const char *name, const cs_entry *e, bool chmod, cs_error **err)
{
    if (fchownat(pfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
        return cs_err(err, CS_EIO, errno, "'%s': set owner", e->path);
    /* Not a symlink (chmod is false for those), so following is moot. */
    if (chmod && fchmodat(pfd, name, e->mode & 07777, 0) < 0)
        return cs_err(err, CS_EIO, errno, "'%s': set mode", e->path);
    int r = set_xattrs(e, -1, pfd, name, err);
    if (r < 0)
        return r;
    struct timespec ts[2];
    entry_times(e, ts);
    if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return cs_err(err, CS_EIO, errno, "'%s': set times", e->path);
    return 0;
}

static int
dir_meta(int fd, const cs_entry *e, cs_error **err)
{
    if (fchown(fd, e->uid, e->gid) < 0 || fchmod(fd, e->mode & 07777) < 0)
        return cs_err(err, CS_EIO, errno, "'%s': set owner and mode", e->path);
    return set_xattrs(e, fd, -1, NULL, err);
}

static bool
is_whiteout(const char *path)
{
    const char *sl = strrchr(path, '/');
    return !strncmp(sl ? sl + 1 : path, WH_PREFIX, strlen(WH_PREFIX));
}

/* True when the layer itself has path or anything below it. */
static bool
tree_has(const cs_tree *t, const char *path)
{
    if (cs_tree_find(t, path))
        return true;
    cs_autofree char *pfx = cs_xasprintf("%s/", path);
    size_t i = cs_tree_lower_bound(t, 0, t->n, pfx);
    return i < t->n && !strncmp(t->e[i].path, pfx, strlen(pfx));
}

/* OCI whiteouts to overlay ones: ".wh.NAME" -> a 0/0 char device NAME,
 * ".wh..wh..opq" -> the opaque xattr on the directory. */
static int
make_whiteout(unpack *u, int pfd, const char *name, const cs_entry *e, cs_error **err)
{
    if (!strcmp(name, WH_OPAQUE)) {
        if (fsetxattr(pfd, OVL_OPAQUE, "y", 1, 0) < 0)
            return cs_err(err, CS_EIO, errno, "'%s': set opaque xattr", e->path);
        return 0;
    }
    if (!strncmp(name, WH_META, strlen(WH_META)))
        return 0; /* other aufs metadata (.wh..wh.plnk, ...): meaningless here */
    const char *target = name + strlen(WH_PREFIX);
    /* A layer that both removes and (re)creates NAME: what it creates wins,
     * and overlay cannot hold both at one name. */
    size_t plen = (size_t) (name - e->path);
    cs_autofree char *tpath = cs_xasprintf("%.*s%s", (int) plen, e->path, target);
    if (tree_has(u->t, tpath))
        return 0;
    if (mknodat(pfd, target, S_IFCHR | 0, makedev(0, 0)) < 0)
        return cs_err(err, CS_EIO, errno, "'%s': make whiteout", e->path);
    return 0;
}

static int
make_entry(unpack *u, const cs_entry *e, cs_error **err)
{
    if (!*e->path) {
        if (e->type != CS_E_DIR)
            return cs_err(err, CS_EINVAL, 0, "root entry is not a directory");
        return dir_meta(u->root, e, err);
    }
    const char *name;
    int pfd = -1;
    int r = parent_fd(u, e->path, &name, &pfd, err);
    if (r < 0)
        return r;
    if (!strncmp(name, WH_PREFIX, strlen(WH_PREFIX)))
        return make_whiteout(u, pfd, name, e, err);
    switch (e->type) {
    case CS_E_DIR: {
        if (mkdirat(pfd, name, 0700) < 0)
            return cs_err(err, cs_sys_code(errno), errno, "mkdir '%s'", e->path);
        cs_autoclose int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return cs_err(err, CS_EIO, errno, "open '%s'", e->path);
        return dir_meta(fd, e, err); /* times once its children are made */
    }
    case CS_E_FILE:
        return make_file(u, pfd, name, e, err);
    case CS_E_SYMLINK:
        if (symlinkat(e->link ? e->link : "", pfd, name) < 0)
            return cs_err(err, cs_sys_code(errno), errno, "symlink '%s'", e->path);
        return node_meta(pfd, name, e, false, err);
    case CS_E_CHAR:
    case CS_E_BLOCK:
    case CS_E_FIFO: {
        mode_t type = e->type == CS_E_CHAR ? S_IFCHR : e->type == CS_E_BLOCK ? S_IFBLK : S_IFIFO;
        dev_t dev = e->type == CS_E_FIFO ? 0 : makedev(e->devmajor, e->devminor);
        if (mknodat(pfd, name, type | 0600, dev) < 0)
            return cs_err(err, cs_sys_code(errno), errno, "mknod '%s'", e->path);
        return node_meta(pfd, name, e, true, err);
    }
    case CS_E_HARDLINK:
        return 0; /* after every file: the target may sort later */
    }
    return cs_err(err, CS_EINVAL, 0, "'%s': unknown entry type %d", e->path, (int) e->type);
}

/* A hardlink to a file of this layer is a link; to anything else (a file of
 * a layer below: overlay cannot link across layers) a copy of its content. */
static int
make_hardlink(unpack *u, const cs_entry *e, cs_error **err)
{
    const cs_entry *target = e->link ? cs_tree_find(u->t, e->link) : NULL;
    for (size_t hops = 0; target && target->type == CS_E_HARDLINK && hops < u->t->n; hops++)
        target = target->link ? cs_tree_find(u->t, target->link) : NULL;
    const char *name;
    int pfd = -1;
    if (target && target->type == CS_E_FILE && *target->path) {
        const char *tname;
        int tfd = -1;
        int r = parent_fd(u, target->path, &tname, &tfd, err);
        if (r < 0)
            return r;
        /* parent_fd's cache holds one dir: keep the target's open apart. */
        cs_autoclose int tdup = dup(tfd);
        if (tdup < 0)
            return cs_err(err, CS_EIO, errno, "dup");
        r = parent_fd(u, e->path, &name, &pfd, err);
        if (r < 0)
            return r;
        if (linkat(tdup, tname, pfd, name, 0) == 0)
            return 0;
        if (errno != ENOENT)
            return cs_err(err, cs_sys_code(errno), errno, "link '%s' to '%s'", e->path,
                          target->path);
        /* The target was not made (a whiteout name, say): copy instead. */
    } else {
        int r = parent_fd(u, e->path, &name, &pfd, err);
        if (r < 0)
            return r;
    }
    return make_file(u, pfd, name, e, err);
}

static int
dir_times(unpack *u, const cs_entry *e, cs_error **err)
{
    struct timespec ts[2];
    entry_times(e, ts);
    if (!*e->path) {
        if (futimens(u->root, ts) < 0)
            return cs_err(err, CS_EIO, errno, "root: set times");
        return 0;
    }
    const char *name;
    int pfd = -1;
    int r = parent_fd(u, e->path, &name, &pfd, err);
    if (r < 0)
        return r;
    if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return cs_err(err, CS_EIO, errno, "'%s': set times", e->path);
    return 0;
}

/* Regular files are the bytes: their contents are read (chunks
 * decompressed) and written on up to UNPACK_THREADS threads, each with its
 * own read transaction and parent-dir cache, over contiguous runs of the
 * sorted entries balanced by bytes (siblings stay on one thread). Below
 * UNPACK_MIN_BYTES one thread does it all: a thread costs more than it
 * saves. */
#define UNPACK_THREADS   4
#define UNPACK_MIN_BYTES (8u << 20)

typedef struct file_run {
    unpack u;
    size_t from, to; /* entries [from, to) of u.t */
    int r;
    cs_error *err;
} file_run;

static void
unpack_release(unpack *u)
{
    if (u->txn)
        mdb_txn_abort(u->txn);
    u->txn = NULL;
    free(u->cpath);
    u->cpath = NULL;
    if (u->cfd >= 0)
        close(u->cfd);
    u->cfd = -1;
}

static void *
file_run_main(void *arg)
{
    file_run *fr = arg;
    fr->r = 0;
    for (size_t i = fr->from; i < fr->to && fr->r >= 0; i++) {
        const cs_entry *e = &fr->u.t->e[i];
        if (e->type != CS_E_FILE || !*e->path || is_whiteout(e->path))
            continue;
        const char *name;
        int pfd = -1;
        fr->r = parent_fd(&fr->u, e->path, &name, &pfd, &fr->err);
        if (fr->r >= 0)
            fr->r = make_file(&fr->u, pfd, name, e, &fr->err);
    }
    unpack_release(&fr->u);
    return NULL;
}

static size_t
unpack_threads(uint64_t bytes)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = cpus < 1 ? 1 : cpus > UNPACK_THREADS ? UNPACK_THREADS : (size_t) cpus;
    return bytes < UNPACK_MIN_BYTES ? 1 : n;
}

/* The files of t (directories exist by now), split over threads; the
 * calling thread takes the first run. Returns the first error. */
static int
make_files(unpack *u, cs_error **err)
{
    const cs_tree *t = u->t;
    uint64_t total = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].type == CS_E_FILE)
            total += t->e[i].size + 1;
    size_t n = unpack_threads(total);
    file_run runs[UNPACK_THREADS];
    pthread_t th[UNPACK_THREADS];
    bool started[UNPACK_THREADS] = { false };
    uint64_t acc = 0;
    size_t at = 0;
    for (size_t k = 0; k < n; k++) {
        runs[k] = (file_run){ .u = { .db = u->db, .t = t, .root = u->root, .cfd = -1 } };
        runs[k].from = at;
        uint64_t goal = total / n * (k + 1);
        while (at < t->n && (k == n - 1 || acc < goal)) {
            if (t->e[at].type == CS_E_FILE)
                acc += t->e[at].size + 1;
            at++;
        }
        runs[k].to = at;
    }
    for (size_t k = 1; k < n; k++)
        started[k] = pthread_create(&th[k], NULL, file_run_main, &runs[k]) == 0;
    file_run_main(&runs[0]);
    /* A thread that could not start: its run on this thread. */
    for (size_t k = 1; k < n; k++) {
        if (started[k])
            pthread_join(th[k], NULL);
        else
            file_run_main(&runs[k]);
    }
    int r = 0;
    for (size_t k = 0; k < n; k++) {
        if (runs[k].r < 0 && r == 0) {
            r = runs[k].r;
            if (err && !*err)
                *err = cs_steal(&runs[k].err);
        }
        cs_error_clear(&runs[k].err);
    }
    return r;
}

int
cs_snapshot_unpack_to(cs_db *db, const cs_tree *t, const char *fs, bool sync, cs_error **err)
{
    unpack u = { .db = db, .t = t, .root = -1, .cfd = -1 };
    if (mkdir(fs, 0755) < 0 && errno != EEXIST)
        return cs_err(err, cs_sys_code(errno), errno, "mkdir '%s'", fs);
    u.root = open(fs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u.root < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", fs);
    int r = fchmod(u.root, 0755) < 0 ? cs_err(err, CS_EIO, errno, "chmod '%s'", fs) : 0;
    /* Everything but the files first, so that their parents exist. */
    for (size_t i = 0; i < t->n && r >= 0; i++)
        if (t->e[i].type != CS_E_FILE || !*t->e[i].path || is_whiteout(t->e[i].path))
            r = make_entry(&u, &t->e[i], err);
    if (r >= 0)
        r = make_files(&u, err);
    for (size_t i = 0; i < t->n && r >= 0; i++)
        if (t->e[i].type == CS_E_HARDLINK && !is_whiteout(t->e[i].path))
            r = make_hardlink(&u, &t->e[i], err);
    /* Directory times last: making their children changed them. */
    for (size_t i = 0; i < t->n && r >= 0; i++)
        if (t->e[i].type == CS_E_DIR && !is_whiteout(t->e[i].path))
            r = dir_times(&u, &t->e[i], err);
    /* sync: one flush for the whole tree before the caller publishes it. */
    if (r >= 0 && sync && syncfs(u.root) < 0)
        r = cs_err(err, CS_EIO, errno, "sync '%s'", fs);
    unpack_release(&u);
    close(u.root);
    return r;
}

int
cs_snapshot_unpack(cs_db *db, const cs_tree *t, const char *fs, cs_error **err)
{
    return cs_snapshot_unpack_to(db, t, fs, true, err);
}
