/* snapshot.c - trees unpacked on disk for overlayfs, and overlay upper dirs
 * turned back into layers (see cstore/snapshot.h).
 *
 * Layout under ROOT/snapshots/:
 *   <hex>/fs               a finished snapshot (recorded, or about to be)
 *   <hex>.tmp-<pid>/fs     being unpacked or adopted by process pid
 *   <hex>.del-<pid>-<n>    being removed by process pid
 * A directory only ever becomes <hex> by one rename of a finished temp dir,
 * and stops being <hex> by one rename to a .del name before it is emptied,
 * so <hex>/fs is always complete, recorded or not.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include "cstore/content.h"
#include "cstore/snapshot.h"

#define SNAP_READY  1  /* state byte of a record: the dir is complete */
#define TOUCH_SLACK 60 /* seconds: last-used is rewritten at most once a minute */
#define WH_PREFIX   ".wh."
#define WH_META     ".wh..wh."
#define WH_OPAQUE   ".wh..wh..opq"
#define OVL_PREFIX  "trusted.overlay."
#define OVL_OPAQUE  "trusted.overlay.opaque"
#define OVL_REDIR   "trusted.overlay.redirect"
#define OVL_META    "trusted.overlay.metacopy"
/* A read txn is renewed after this many bytes or files, so that a long
 * unpack does not pin freed pages (the file would grow). */
#define TXN_BYTES (256u << 20)
#define TXN_FILES 4096u

static char *
snap_root(cs_store *s)
{
    return cs_path_join(cs_store_root(s), "snapshots");
}

/* ---- records: tree digest -> last-used u64 BE | state u8 ---- */

typedef struct rec {
    const cs_digest *d;
    uint64_t last_used;
    bool found;
} rec;

static int
rec_get_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    rec *c = ctx;
    MDB_val v;
    c->found = false;
    int r = cs_db_get(db, txn, CS_T_SNAPSHOTS, c->d->b, 32, &v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    if (r < 0)
        return r;
    if (v.mv_size < 9 || ((const uint8_t *) v.mv_data)[8] != SNAP_READY)
        return 0; /* unknown: treated as unrecorded, and rewritten */
    cs_rd rd;
    cs_rd_init(&rd, v.mv_data, v.mv_size);
    c->last_used = cs_rd_u64(&rd);
    c->found = true;
    return 0;
}

static int
rec_put_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    rec *c = ctx;
    cs_buf b;
    cs_buf_init(&b);
    cs_buf_u64(&b, c->last_used);
    cs_buf_u8(&b, SNAP_READY);
    int r = cs_db_put(db, txn, CS_T_SNAPSHOTS, c->d->b, 32, b.data, b.len, 0, err);
    cs_buf_release(&b);
    return r;
}

static int
rec_touch(cs_store *s, const cs_digest *d, cs_error **err)
{
    rec c = { .d = d, .last_used = (uint64_t) time(NULL) };
    return cs_db_write(cs_store_db(s), rec_put_fn, &c, err);
}

/* Takes dir out of sight with one rename, then empties and removes it. */
static int
discard(const char *dir, uint64_t *bytes, cs_error **err)
{
    static unsigned seq;
    cs_autofree char *del = cs_xasprintf("%s.del-%ld-%u", dir, (long) getpid(), seq++);
    if (rename(dir, del) < 0)
        return errno == ENOENT ? 0 : cs_err(err, cs_sys_code(errno), errno, "remove '%s'", dir);
    return cs_rm_tree(del, bytes, err);
}

static bool
is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- unpacking a tree ---- */

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
    if (set_xattrs(e, fd, -1, NULL, err) < 0)
        return -CS_EIO;
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
    if (set_xattrs(e, -1, pfd, name, err) < 0)
        return -CS_EIO;
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

/* First index of t whose path is >= key (t sorted). */
static size_t
lower_bound(const cs_tree *t, const char *key)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->e[mid].path, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* True when the layer itself has path or anything below it. */
static bool
tree_has(const cs_tree *t, const char *path)
{
    if (cs_tree_find(t, path))
        return true;
    cs_autofree char *pfx = cs_xasprintf("%s/", path);
    size_t i = lower_bound(t, pfx);
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

static int
unpack_tree(cs_db *db, const cs_tree *t, const char *fs, cs_error **err)
{
    unpack u = { .db = db, .t = t, .root = -1, .cfd = -1 };
    if (mkdir(fs, 0755) < 0 && errno != EEXIST)
        return cs_err(err, cs_sys_code(errno), errno, "mkdir '%s'", fs);
    u.root = open(fs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u.root < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", fs);
    int r = fchmod(u.root, 0755) < 0 ? cs_err(err, CS_EIO, errno, "chmod '%s'", fs) : 0;
    for (size_t i = 0; i < t->n && r >= 0; i++)
        r = make_entry(&u, &t->e[i], err);
    for (size_t i = 0; i < t->n && r >= 0; i++)
        if (t->e[i].type == CS_E_HARDLINK && !is_whiteout(t->e[i].path))
            r = make_hardlink(&u, &t->e[i], err);
    /* Directory times last: making their children changed them. */
    for (size_t i = 0; i < t->n && r >= 0; i++)
        if (t->e[i].type == CS_E_DIR && !is_whiteout(t->e[i].path))
            r = dir_times(&u, &t->e[i], err);
    /* One flush for the whole snapshot before it is renamed into place and
     * recorded: a recorded snapshot must survive a crash intact. */
    if (r >= 0 && syncfs(u.root) < 0)
        r = cs_err(err, CS_EIO, errno, "sync '%s'", fs);
    if (u.txn)
        mdb_txn_abort(u.txn);
    free(u.cpath);
    if (u.cfd >= 0)
        close(u.cfd);
    close(u.root);
    return r;
}

typedef struct tree_ctx {
    const cs_digest *d;
    cs_tree *t;
} tree_ctx;

static int
tree_get_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    tree_ctx *c = ctx;
    return cs_tree_get(db, txn, c->d, &c->t, err);
}

/* Unpacks tree into ROOT/snapshots/<hex>.tmp-<pid>, renames that to final
 * and records it. Losing a race to another process is fine: its snapshot
 * is as good as ours. */
static int
make_snapshot(cs_store *s, const cs_digest *d, const char *final, const char *fs, cs_error **err)
{
    cs_db *db = cs_store_db(s);
    /* final without fs is damaged (a finished one always has fs). */
    if (!is_dir(fs) && access(final, F_OK) == 0 && discard(final, NULL, err) < 0)
        return -CS_EIO;
    tree_ctx tc = { .d = d };
    int r = cs_db_read(db, tree_get_fn, &tc, err);
    if (r < 0)
        return r;
    cs_tree *t = tc.t;
    cs_autofree char *tmp = cs_xasprintf("%s.tmp-%ld", final, (long) getpid());
    cs_autofree char *tmpfs = cs_path_join(tmp, "fs");
    r = cs_rm_tree(tmp, NULL, err); /* left by a killed process that had our pid */
    if (r >= 0 && mkdir(tmp, 0700) < 0)
        r = cs_err(err, cs_sys_code(errno), errno, "mkdir '%s'", tmp);
    if (r >= 0)
        r = unpack_tree(db, t, tmpfs, err);
    cs_tree_free(t);
    if (r >= 0 && rename(tmp, final) < 0) {
        int e = errno;
        if ((e != ENOTEMPTY && e != EEXIST) || !is_dir(fs))
            r = cs_err(err, CS_EIO, e, "rename '%s'", tmp);
        /* else another process was first: use its snapshot, drop ours */
    } else if (r >= 0) {
        return rec_touch(s, d, err);
    }
    cs_error *e2 = NULL;
    cs_rm_tree(tmp, NULL, &e2); /* best effort: prune removes what is left */
    cs_error_free(e2);
    if (r < 0)
        return r;
    return rec_touch(s, d, err);
}

int
cs_snapshot_get(cs_store *s, const cs_digest *tree, char **dir, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(tree, hex);
    cs_autofree char *root = snap_root(s);
    cs_autofree char *final = cs_path_join(root, hex);
    cs_autofree char *fs = cs_path_join(final, "fs");
    rec c = { .d = tree };
    int r = cs_db_read(cs_store_db(s), rec_get_fn, &c, err);
    if (r >= 0 && is_dir(fs)) {
        /* Recorded or not, <hex>/fs is complete (see the top of this file). */
        uint64_t now = (uint64_t) time(NULL);
        if (!c.found || now >= c.last_used + TOUCH_SLACK || now < c.last_used)
            r = rec_touch(s, tree, err);
    } else if (r >= 0) {
        r = cs_mkdir_p(root, 0700, err);
        if (r >= 0)
            r = make_snapshot(s, tree, final, fs, err);
    }
    if (r < 0)
        return cs_err_wrap(err, "snapshot '%.12s'", hex);
    *dir = cs_steal(&fs);
    return 0;
}

/* ---- upper dir -> layer ---- */

typedef struct dlink {
    dev_t dev;
    ino_t ino;
    char *first; /* the inode's first path in tree order: the file; others link to it */
    cs_digest content;
    uint64_t size;
} dlink;

typedef struct dmember {
    char *path;
    size_t link;
} dmember;

typedef struct diff {
    cs_ingest *ing;
    cs_tree *t;
    dlink *links;
    size_t nlinks, caplinks;
    dmember *members;
    size_t nmembers, capmembers;
} diff;

/* Copies the xattrs of full into e, except overlay's own. Reports the
 * opaque marker, and refuses what a plain walk cannot turn into a layer:
 * renamed directories (redirect) and metadata-only copy-ups (metacopy), which
 * take their content from a lower layer. */
static int
diff_xattrs(const char *full, cs_entry *e, bool *opaque, cs_error **err)
{
    ssize_t n = llistxattr(full, NULL, 0);
    if (n < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
        return 0;
    if (n < 0)
        return cs_err(err, CS_EIO, errno, "'%s': list xattrs", full);
    if (n == 0)
        return 0;
    cs_autofree char *names = cs_xmalloc((size_t) n);
    n = llistxattr(full, names, (size_t) n);
    if (n < 0)
        return cs_err(err, CS_EIO, errno, "'%s': list xattrs", full);
    for (ssize_t i = 0; i < n; i += (ssize_t) strlen(names + i) + 1) {
        const char *name = names + i;
        ssize_t vl = lgetxattr(full, name, NULL, 0);
        if (vl < 0 && errno == ENODATA)
            continue;
        cs_autofree uint8_t *val = vl >= 0 ? cs_xmalloc((size_t) vl + 1) : NULL;
        if (vl >= 0)
            vl = lgetxattr(full, name, val, (size_t) vl);
        if (vl < 0)
            return cs_err(err, CS_EIO, errno, "'%s': get xattr '%s'", full, name);
        if (strncmp(name, OVL_PREFIX, strlen(OVL_PREFIX))) {
            cs_entry_add_xattr(e, name, val, (uint32_t) vl);
            continue;
        }
        /* "y": opaque; "x" (6.7+) only marks a dir holding xwhiteouts. */
        if (!strcmp(name, OVL_OPAQUE) && vl == 1 && val[0] == 'y')
            *opaque = true;
        else if (!strcmp(name, OVL_REDIR))
            return cs_err(err, CS_EUNSUPPORTED, 0,
                          "'%s': renamed directory (overlay redirect); mount with redirect_dir=off",
                          full);
        else if (!strcmp(name, OVL_META))
            return cs_err(err, CS_EUNSUPPORTED, 0,
                          "'%s': metadata-only copy-up; mount with metacopy=off", full);
    }
    return 0;
}

static cs_entry *
add_marker(cs_tree *t, const char *parent, size_t plen, const char *name)
{
    cs_entry *e = cs_tree_add(t);
    e->path = cs_xasprintf("%.*s%s", (int) plen, parent, name);
    e->type = CS_E_FILE; /* size 0, mode 0, root, time 0: as docker and buildkit write them */
    return e;
}

static int diff_dir(diff *d, const char *full, const char *rel, cs_error **err);

static int
diff_file(diff *d, const char *full, const char *rel, const struct stat *st, size_t idx,
          cs_error **err)
{
    size_t li = d->nlinks;
    if (st->st_nlink > 1) {
        for (li = 0; li < d->nlinks; li++)
            if (d->links[li].dev == st->st_dev && d->links[li].ino == st->st_ino)
                break;
        if (d->nmembers == d->capmembers) {
            d->capmembers = d->capmembers ? d->capmembers * 2 : 16;
            d->members = cs_xrealloc(d->members, d->capmembers * sizeof(dmember));
        }
        d->members[d->nmembers++] = (dmember){ cs_xstrdup(rel), li };
    }
    cs_entry *e = &d->t->e[idx];
    if (li < d->nlinks) {
        /* Another path of an inode seen already: same content, no re-read. */
        dlink *l = &d->links[li];
        if (strcmp(rel, l->first) < 0) {
            free(l->first);
            l->first = cs_xstrdup(rel);
        }
        e->content = l->content;
        e->size = l->size;
        e->has_content = l->size > 0;
        return 0;
    }
    cs_autoclose int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", full);
    cs_digest c;
    uint64_t size;
    int r = cs_ingest_fd(d->ing, fd, &c, &size, err);
    if (r < 0)
        return cs_err_wrap(err, "'%s'", full);
    e = &d->t->e[idx];
    e->content = c;
    e->size = size;
    e->has_content = size > 0;
    if (st->st_nlink > 1) {
        if (d->nlinks == d->caplinks) {
            d->caplinks = d->caplinks ? d->caplinks * 2 : 16;
            d->links = cs_xrealloc(d->links, d->caplinks * sizeof(dlink));
        }
        d->links[d->nlinks++] = (dlink){ st->st_dev, st->st_ino, cs_xstrdup(rel), c, size };
    }
    return 0;
}

static int
diff_one(diff *d, const char *full, const char *rel, const char *name, cs_error **err)
{
    struct stat st;
    if (lstat(full, &st) < 0)
        return cs_err(err, CS_EIO, errno, "'%s'", full);
    size_t plen = strlen(rel) - strlen(name);
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
        cs_autofree char *wh = cs_xasprintf(WH_PREFIX "%s", name);
        add_marker(d->t, rel, plen, wh);
        return 0;
    }
    if (S_ISSOCK(st.st_mode))
        return 0; /* sockets cannot live in a layer: skipped, as tar does */
    cs_entry *e = cs_tree_add(d->t);
    size_t idx = d->t->n - 1;
    e->path = cs_xstrdup(rel);
    e->mode = st.st_mode & 07777;
    e->uid = st.st_uid;
    e->gid = st.st_gid;
    e->mtime_sec = st.st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t) st.st_mtim.tv_nsec;
    bool opaque = false;
    int r = diff_xattrs(full, e, &opaque, err);
    if (r < 0)
        return r;
    switch (st.st_mode & S_IFMT) {
    case S_IFDIR:
        e->type = CS_E_DIR;
        if (opaque) {
            cs_autofree char *dir = cs_xasprintf("%s/", rel);
            add_marker(d->t, dir, strlen(dir), WH_OPAQUE);
        }
        return diff_dir(d, full, rel, err);
    case S_IFLNK: {
        e->type = CS_E_SYMLINK;
        size_t cap = (size_t) st.st_size + 1;
        cs_autofree char *buf = cs_xmalloc(cap);
        ssize_t n = readlink(full, buf, cap);
        if (n < 0)
            return cs_err(err, CS_EIO, errno, "readlink '%s'", full);
        if ((size_t) n >= cap)
            return cs_err(err, CS_EIO, 0, "readlink '%s': target changed", full);
        buf[n] = 0;
        d->t->e[idx].link = cs_steal(&buf);
        return 0;
    }
    case S_IFCHR:
    case S_IFBLK:
        e->type = S_ISCHR(st.st_mode) ? CS_E_CHAR : CS_E_BLOCK;
        e->devmajor = major(st.st_rdev);
        e->devminor = minor(st.st_rdev);
        return 0;
    case S_IFIFO:
        e->type = CS_E_FIFO;
        return 0;
    case S_IFREG:
        e->type = CS_E_FILE;
        return diff_file(d, full, rel, &st, idx, err);
    }
    return cs_err(err, CS_EUNSUPPORTED, 0, "'%s': unsupported file type", full);
}

static int
diff_dir(diff *d, const char *full, const char *rel, cs_error **err)
{
    cs_autoclose int fd = open(full, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", full);
    char **names;
    size_t n;
    int r = cs_dir_names(fd, full, &names, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n && r >= 0; i++) {
        cs_autofree char *f = cs_path_join(full, names[i]);
        cs_autofree char *rl = *rel ? cs_xasprintf("%s/%s", rel, names[i]) : cs_xstrdup(names[i]);
        r = diff_one(d, f, rl, names[i], err);
    }
    cs_names_free(names, n);
    return r;
}

int
cs_snapshot_diff(cs_store *s, cs_ingest *ing, const char *upper, const cs_tree *lower,
                 cs_tree **layer, cs_error **err)
{
    /* Everything needed is in the upper dir: overlay made it whiteouts
     * where lower names went away and opaque dirs where lower dirs were
     * replaced, and copied up every parent of a change. */
    (void) s;
    (void) lower;
    diff d = { .ing = ing, .t = cs_tree_new() };
    int r = diff_dir(&d, upper, "", err);
    if (r >= 0) {
        cs_tree_sort(d.t);
        /* Several paths of one inode: the first in tree order is the file
         * (tar needs the target before its links), the others link to it. */
        for (size_t i = 0; i < d.nmembers; i++) {
            const dlink *l = &d.links[d.members[i].link];
            if (!strcmp(d.members[i].path, l->first))
                continue;
            cs_entry *e = (cs_entry *) cs_tree_find(d.t, d.members[i].path);
            if (!e)
                continue;
            e->type = CS_E_HARDLINK;
            free(e->link);
            e->link = cs_xstrdup(l->first);
        }
    }
    for (size_t i = 0; i < d.nlinks; i++)
        free(d.links[i].first);
    for (size_t i = 0; i < d.nmembers; i++)
        free(d.members[i].path);
    free(d.links);
    free(d.members);
    if (r < 0) {
        cs_tree_free(d.t);
        return cs_err_wrap(err, "diff '%s'", upper);
    }
    *layer = d.t;
    return 0;
}

/* ---- adopt and prune ---- */

static int
adopt_into(cs_store *s, const cs_digest *d, const char *upper, const char *final, const char *fs,
           cs_error **err)
{
    if (access(final, F_OK) == 0 && discard(final, NULL, err) < 0)
        return -CS_EIO; /* final without fs: damaged */
    cs_autofree char *tmp = cs_xasprintf("%s.tmp-%ld", final, (long) getpid());
    cs_autofree char *tmpfs = cs_path_join(tmp, "fs");
    int r = cs_rm_tree(tmp, NULL, err);
    if (r < 0)
        return r;
    /* The command's writes must be on disk before the snapshot is recorded. */
    cs_autoclose int ufd = open(upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ufd < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", upper);
    if (syncfs(ufd) < 0)
        return cs_err(err, CS_EIO, errno, "sync '%s'", upper);
    if (mkdir(tmp, 0700) < 0)
        return cs_err(err, cs_sys_code(errno), errno, "mkdir '%s'", tmp);
    if (rename(upper, tmpfs) < 0) {
        int e = errno;
        rmdir(tmp);
        return cs_err(err, CS_EIO, e, "move '%s' to '%s'", upper, tmpfs);
    }
    if (rename(tmp, final) < 0) {
        int e = errno;
        if ((e == ENOTEMPTY || e == EEXIST) && is_dir(fs)) {
            /* Another process adopted or unpacked the same tree first. */
            r = cs_rm_tree(tmp, NULL, err);
            return r < 0 ? r : rec_touch(s, d, err);
        }
        /* Give the caller its upper dir back. */
        if (rename(tmpfs, upper) == 0)
            rmdir(tmp);
        return cs_err(err, CS_EIO, e, "rename '%s'", tmp);
    }
    return rec_touch(s, d, err);
}

int
cs_snapshot_adopt(cs_store *s, const cs_digest *tree, const char *upper, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(tree, hex);
    cs_autofree char *root = snap_root(s);
    cs_autofree char *final = cs_path_join(root, hex);
    cs_autofree char *fs = cs_path_join(final, "fs");
    int r = cs_mkdir_p(root, 0700, err);
    if (r >= 0 && is_dir(fs)) {
        r = cs_rm_tree(upper, NULL, err);
        if (r >= 0)
            r = rec_touch(s, tree, err);
    } else if (r >= 0) {
        r = adopt_into(s, tree, upper, final, fs, err);
    }
    if (r < 0)
        return cs_err_wrap(err, "adopt snapshot '%.12s'", hex);
    return 0;
}

typedef struct prec {
    cs_digest d;
    bool victim;
} prec;

typedef struct prune {
    uint64_t older_than;
    prec *v;
    size_t n, cap;
} prune;

static int
prune_scan_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    prune *p = ctx;
    p->n = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, cs_db_dbi(db, CS_T_SNAPSHOTS), &cur);
    if (rc)
        return cs_db_err(err, rc, "snapshots");
    MDB_val k, v;
    int r = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc && r >= 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 32)
            continue;
        if (p->n == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 64;
            p->v = cs_xrealloc(p->v, p->cap * sizeof(prec));
        }
        prec *x = &p->v[p->n++];
        memcpy(x->d.b, k.mv_data, 32);
        cs_rd rd;
        cs_rd_init(&rd, v.mv_data, v.mv_size);
        uint64_t last_used = cs_rd_u64(&rd); /* 0 when short: old */
        MDB_val tv;
        r = cs_db_get(db, txn, CS_T_TREES, x->d.b, 32, &tv, err);
        x->victim = r == -CS_ENOTFOUND || last_used < p->older_than;
        if (r == -CS_ENOTFOUND)
            r = 0;
    }
    mdb_cursor_close(cur);
    if (r < 0)
        return r;
    if (rc && rc != MDB_NOTFOUND)
        return cs_db_err(err, rc, "snapshots");
    return 0;
}

static int
prune_del_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    prune *p = ctx;
    for (size_t i = 0; i < p->n; i++) {
        if (!p->v[i].victim)
            continue;
        MDB_val k = { 32, p->v[i].d.b };
        int rc = mdb_del(txn, cs_db_dbi(db, CS_T_SNAPSHOTS), &k, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return cs_db_err(err, rc, "snapshots");
    }
    return 0;
}

static bool
is_hex64(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == 64;
}

/* Temp dirs (<hex>.tmp-PID, <hex>.del-PID-N) of processes that are gone, or
 * of this one (its callers serialize: nothing of its own is in flight). */
static bool
is_stale_tmp(const char *name)
{
    if (strlen(name) < 64 + 6 || name[64] != '.')
        return false;
    const char *p = name + 65;
    if (strncmp(p, "tmp-", 4) && strncmp(p, "del-", 4))
        return false;
    long pid = strtol(p + 4, NULL, 10);
    if (pid <= 0)
        return false;
    return pid == (long) getpid() || (kill((pid_t) pid, 0) < 0 && errno == ESRCH);
}

int
cs_snapshot_prune(cs_store *s, uint64_t older_than, uint64_t *removed, uint64_t *bytes,
                  cs_error **err)
{
    cs_autofree char *root = snap_root(s);
    prune p = { .older_than = older_than };
    uint64_t nrem = 0, nbytes = 0;
    /* Records first, directories after: a dir without a record is never
     * used before it is complete, and removal renames it out of sight. */
    int r = cs_db_read(cs_store_db(s), prune_scan_fn, &p, err);
    if (r >= 0)
        r = cs_db_write(cs_store_db(s), prune_del_fn, &p, err);
    for (size_t i = 0; i < p.n && r >= 0; i++) {
        if (!p.v[i].victim)
            continue;
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(&p.v[i].d, hex);
        cs_autofree char *dir = cs_path_join(root, hex);
        r = discard(dir, &nbytes, err);
        nrem++;
    }
    /* Then what no record names: snapshots whose recording was cut short,
     * and the temp dirs of killed processes. */
    cs_autoclose int fd = r >= 0 ? open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (r >= 0 && fd < 0 && errno != ENOENT)
        r = cs_err(err, CS_EIO, errno, "open '%s'", root);
    char **names = NULL;
    size_t n = 0;
    if (fd >= 0)
        r = cs_dir_names(fd, root, &names, &n, err);
    for (size_t i = 0; i < n && r >= 0; i++) {
        cs_autofree char *path = cs_path_join(root, names[i]);
        if (is_hex64(names[i])) {
            cs_digest d;
            cs_digest_parse(names[i], &d);
            bool recorded = false;
            for (size_t j = 0; j < p.n && !recorded; j++)
                recorded = !p.v[j].victim && cs_digest_eq(&p.v[j].d, &d);
            if (recorded)
                continue;
            r = discard(path, &nbytes, err);
            nrem++;
        } else if (is_stale_tmp(names[i])) {
            r = cs_rm_tree(path, &nbytes, err);
        }
    }
    cs_names_free(names, n);
    free(p.v);
    if (r < 0)
        return cs_err_wrap(err, "prune snapshots");
    if (removed)
        *removed = nrem;
    if (bytes)
        *bytes = nbytes;
    return 0;
}
