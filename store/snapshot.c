/* snapshot.c - the snapshot cache: its records (tree digest -> last used),
 * its directories under ROOT/snapshots, get (unpacking through
 * snapshot_unpack.c), adopt and prune (see cstore/snapshot.h).
 *
 * Layout under ROOT/snapshots/:
 *   <hex>/fs               a finished snapshot (recorded, or about to be)
 *   <hex>.tmp-<pid>/fs     being unpacked or adopted by process pid
 *   <hex>.del-<pid>-<n>    being removed by process pid
 * A directory only ever becomes <hex> by one rename of a finished temp dir,
 * and stops being <hex> by one rename to a .del name before it is emptied,
 * so <hex>/fs is always complete, recorded or not.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "cstore/rcache.h"
#include "snapshot_int.h"

#define SNAP_READY  1  /* state byte of a record: the dir is complete */
#define TOUCH_SLACK 60 /* seconds: last-used is rewritten at most once a minute */

static char *
snap_root(cs_store *s)
{
    return cs_path_join(cs_store_root(s), "snapshots");
}

/* ---- records: tree digest -> last-used u64 BE | state u8 | boot id ----
 * The boot id (16 bytes, snapshot_int.h) says in which boot the snapshot was
 * written, unsynced; zeros (or a 9-byte record from before boot ids) mean it
 * was synced when made. */

typedef struct rec {
    const cs_digest *d;
    uint64_t last_used;
    uint8_t boot[CS_BOOT_ID_LEN];
    bool found;
} rec;

static const uint8_t no_boot[CS_BOOT_ID_LEN];

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
    memset(c->boot, 0, CS_BOOT_ID_LEN);
    if (v.mv_size >= 9 + CS_BOOT_ID_LEN)
        memcpy(c->boot, (const uint8_t *) v.mv_data + 9, CS_BOOT_ID_LEN);
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
    cs_buf_append(&b, c->boot, CS_BOOT_ID_LEN);
    int r = cs_db_put(db, txn, CS_T_SNAPSHOTS, c->d->b, 32, b.data, b.len, 0, err);
    cs_buf_release(&b);
    return r;
}

/* Records d as used now, written (or checked) in boot. */
static int
rec_touch(cs_store *s, const cs_digest *d, const uint8_t boot[CS_BOOT_ID_LEN], cs_error **err)
{
    rec c = { .d = d, .last_used = (uint64_t) time(NULL) };
    memcpy(c.boot, boot, CS_BOOT_ID_LEN);
    /* add-only (db.h): a crash may undo the record, leaving a complete
     * <hex> dir without one, as between a rename and its record */
    return cs_db_write_add_only(cs_store_db(s), rec_put_fn, &c, err);
}

/* Whether the snapshot on disk may be used without a look: recorded, and
 * synced when made or written in this boot (the page cache holds whatever
 * has not reached the disk yet). */
static bool
trusted(const rec *c, const uint8_t cur[CS_BOOT_ID_LEN])
{
    return c->found
           && (!memcmp(c->boot, no_boot, CS_BOOT_ID_LEN) || !memcmp(c->boot, cur, CS_BOOT_ID_LEN));
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
make_snapshot(cs_store *s, const cs_digest *d, const char *final, const char *fs,
              const uint8_t boot[CS_BOOT_ID_LEN], cs_error **err)
{
    cs_db *db = cs_store_db(s);
    /* final without fs is damaged (a finished one always has fs). */
    int r = 0;
    if (!is_dir(fs) && access(final, F_OK) == 0 && (r = discard(final, NULL, err)) < 0)
        return r;
    tree_ctx tc = { .d = d };
    r = cs_db_read(db, tree_get_fn, &tc, err);
    if (r < 0)
        return r;
    cs_tree *t = tc.t;
    cs_autofree char *tmp = cs_xasprintf("%s.tmp-%ld", final, (long) getpid());
    cs_autofree char *tmpfs = cs_path_join(tmp, "fs");
    r = cs_rm_tree(tmp, NULL, err); /* left by a killed process that had our pid */
    if (r >= 0 && mkdir(tmp, 0700) < 0)
        r = cs_err(err, cs_sys_code(errno), errno, "mkdir '%s'", tmp);
    if (r >= 0)
        r = cs_snapshot_unpack_to(db, t, tmpfs, !memcmp(boot, no_boot, CS_BOOT_ID_LEN), err);
    cs_tree_free(t);
    /* Its mtime says "just made" to a concurrent prune (recently_made). */
    if (r >= 0)
        utimensat(AT_FDCWD, tmp, NULL, 0);
    if (r >= 0 && rename(tmp, final) < 0) {
        int e = errno;
        if ((e != ENOTEMPTY && e != EEXIST) || !is_dir(fs))
            r = cs_err(err, CS_EIO, e, "rename '%s'", tmp);
        /* else another process was first: use its snapshot, drop ours */
    } else if (r >= 0) {
        return rec_touch(s, d, boot, err);
    }
    /* A temp dir left behind costs only space: prune removes it. */
    cs_error *tmperr = NULL;
    if (cs_rm_tree(tmp, NULL, &tmperr) < 0)
        cs_store_warn_error(s, "snapshot temp dir", &tmperr);
    if (r < 0)
        return r;
    return rec_touch(s, d, boot, err);
}

/* A snapshot not trusted as is (written in another boot, or unrecorded:
 * maybe cut short by a crash) is compared with its tree: used and recorded
 * as checked in this boot when whole, replaced when not. */
static int
recheck(cs_store *s, const cs_digest *d, const char *final, const char *fs,
        const uint8_t boot[CS_BOOT_ID_LEN], cs_error **err)
{
    tree_ctx tc = { .d = d };
    int r = cs_db_read(cs_store_db(s), tree_get_fn, &tc, err);
    if (r < 0)
        return r;
    struct stat before;
    cs_error *bad = NULL;
    if (lstat(final, &before) < 0)
        r = cs_err(&bad, CS_EIO, errno, "stat '%s'", final);
    else
        r = cs_snapshot_verify(tc.t, fs, &bad);
    cs_tree_free(tc.t);
    if (r == 0)
        return rec_touch(s, d, boot, err);
    cs_store_warn_error(s, "snapshot not written in this boot is damaged, rebuilt", &bad);
    /* Unless another process replaced it meanwhile (then that one is new). */
    struct stat now;
    if (lstat(final, &now) == 0 && now.st_ino == before.st_ino && now.st_dev == before.st_dev
        && (r = discard(final, NULL, err)) < 0)
        return r;
    return make_snapshot(s, d, final, fs, boot, err);
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
    uint8_t boot[CS_BOOT_ID_LEN];
    cs_snapshot_boot_id(boot);
    int r = cs_db_read(cs_store_db(s), rec_get_fn, &c, err);
    if (r >= 0 && is_dir(fs) && !trusted(&c, boot)) {
        r = recheck(s, tree, final, fs, boot, err);
    } else if (r >= 0 && is_dir(fs)) {
        uint64_t now = (uint64_t) time(NULL);
        if (now >= c.last_used + TOUCH_SLACK || now < c.last_used)
            r = rec_touch(s, tree, c.boot, err);
    } else if (r >= 0) {
        r = cs_mkdir_p(root, 0700, err);
        /* A tree from an imported build cache: its bytes first. */
        if (r >= 0 && (r = cs_rcache_fetch_trees(s, tree, 1, NULL, err)) >= 0)
            r = make_snapshot(s, tree, final, fs, boot, err);
    }
    if (r < 0)
        return cs_err_wrap(err, "snapshot '%.12s'", hex);
    *dir = cs_steal(&fs);
    return 0;
}
bool
cs_snapshot_present(cs_store *s, const cs_digest *tree)
{
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(tree, hex);
    cs_autofree char *fs = cs_xasprintf("%s/snapshots/%s/fs", cs_store_root(s), hex);
    return is_dir(fs);
}

/* ---- adopt and prune ---- */

static int
adopt_into(const char *upper, const char *final, const char *fs, const uint8_t boot[CS_BOOT_ID_LEN],
           cs_error **err)
{
    static atomic_uint seq; /* adopts run outside the callers' lock (adopt_ingest) */
    int r = 0;
    if (access(final, F_OK) == 0 && (r = discard(final, NULL, err)) < 0)
        return r; /* final without fs: damaged */
    cs_autofree char *tmp =
        cs_xasprintf("%s.tmp-%ld-a%u", final, (long) getpid(), atomic_fetch_add(&seq, 1));
    cs_autofree char *tmpfs = cs_path_join(tmp, "fs");
    r = cs_rm_tree(tmp, NULL, err);
    if (r < 0)
        return r;
    /* Without a boot id to record, the command's writes must be on disk
     * before the snapshot is recorded; with one, a later boot checks them. */
    if (!memcmp(boot, no_boot, CS_BOOT_ID_LEN)) {
        cs_autoclose int ufd = open(upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (ufd < 0)
            return cs_err(err, CS_EIO, errno, "open '%s'", upper);
        if (syncfs(ufd) < 0)
            return cs_err(err, CS_EIO, errno, "sync '%s'", upper);
    }
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
            return cs_rm_tree(tmp, NULL, err);
        }
        /* Give the caller its upper dir back. */
        if (rename(tmpfs, upper) == 0)
            rmdir(tmp);
        return cs_err(err, CS_EIO, e, "rename '%s'", tmp);
    }
    return 0;
}

/* Whether fs, not trusted as is, passes the check against tree d, read in
 * txn (NULL: a read transaction of its own). */
static bool
intact(cs_store *s, MDB_txn *txn, const cs_digest *d, const char *fs)
{
    tree_ctx tc = { .d = d };
    cs_error *tmp = NULL;
    cs_db *db = cs_store_db(s);
    int r = txn ? tree_get_fn(db, txn, &tc, &tmp) : cs_db_read(db, tree_get_fn, &tc, &tmp);
    bool ok = r == 0 && cs_snapshot_verify(tc.t, fs, &tmp) == 0;
    cs_tree_free(tc.t);
    cs_error_clear(&tmp); /* not intact: replaced, which is the remedy */
    return ok;
}

/* The files of an adopt, reading in txn (NULL: read transactions of its
 * own): upper moved into place as tree's snapshot, or dropped when a good
 * one is there already. *c is tree's record as found; *rboot the boot id to
 * record. */
static int
adopt_files(cs_store *s, MDB_txn *txn, const cs_digest *tree, const char *upper, rec *c,
            uint8_t rboot[CS_BOOT_ID_LEN], cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(tree, hex);
    cs_autofree char *root = snap_root(s);
    cs_autofree char *final = cs_path_join(root, hex);
    cs_autofree char *fs = cs_path_join(final, "fs");
    cs_snapshot_boot_id(rboot);
    cs_db *db = cs_store_db(s);
    int r = cs_mkdir_p(root, 0700, err);
    if (r >= 0)
        r = txn ? rec_get_fn(db, txn, c, err) : cs_db_read(db, rec_get_fn, c, err);
    if (r >= 0 && is_dir(fs) && (trusted(c, rboot) || intact(s, txn, tree, fs))) {
        if (trusted(c, rboot))
            memcpy(rboot, c->boot, CS_BOOT_ID_LEN);
        r = cs_rm_tree(upper, NULL, err);
    } else if (r >= 0) {
        /* A damaged one is replaced by ours. */
        r = adopt_into(upper, final, fs, rboot, err);
    }
    if (r < 0)
        return cs_err_wrap(err, "adopt snapshot '%.12s'", hex);
    return 0;
}

int
cs_snapshot_adopt(cs_store *s, const cs_digest *tree, const char *upper, cs_error **err)
{
    rec c = { .d = tree };
    uint8_t boot[CS_BOOT_ID_LEN];
    int r = adopt_files(s, NULL, tree, upper, &c, boot, err);
    if (r >= 0)
        r = rec_touch(s, tree, boot, err);
    return r < 0 ? r : 0;
}

int
cs_snapshot_adopt_ingest(cs_ingest *ing, const cs_digest *tree, const char *upper, cs_error **err)
{
    cs_store *s = cs_ingest_store(ing);
    MDB_txn *txn = cs_ingest_txn(ing);
    rec c = { .d = tree };
    uint8_t boot[CS_BOOT_ID_LEN];
    int r = adopt_files(s, txn, tree, upper, &c, boot, err);
    if (r < 0)
        return r;
    rec n = { .d = tree, .last_used = (uint64_t) time(NULL) };
    memcpy(n.boot, boot, CS_BOOT_ID_LEN);
    r = rec_put_fn(cs_store_db(s), txn, &n, err);
    return r < 0 ? r : 0;
}

typedef struct prec {
    cs_digest d;
    bool victim;
} prec;

typedef struct prune {
    cs_db *db;
    MDB_txn *txn;
    uint64_t older_than;
    cs_digestset *drop; /* gc's budget: digest -> last used when it chose them */
    prec *v;
    size_t n, cap;
} prune;

static int
prune_scan_rec(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    prune *p = ctx;
    if (k->mv_size != 32)
        return 0;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->v = cs_xrealloc(p->v, p->cap * sizeof(prec));
    }
    prec *x = &p->v[p->n++];
    memcpy(x->d.b, k->mv_data, 32);
    cs_rd rd;
    cs_rd_init(&rd, v->mv_data, v->mv_size);
    uint64_t last_used = cs_rd_u64(&rd); /* 0 when short: old */
    MDB_val tv;
    int r = cs_db_get(p->db, p->txn, CS_T_TREES, x->d.b, 32, &tv, err);
    uint64_t *listed = p->drop ? cs_digestset_value(p->drop, x->d.b) : NULL;
    /* One used since gc chose it is not taken. */
    x->victim = r == -CS_ENOTFOUND || last_used < p->older_than || (listed && *listed == last_used);
    return r == -CS_ENOTFOUND ? 0 : r;
}

static int
prune_scan_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    prune *p = ctx;
    p->n = 0;
    p->db = db;
    p->txn = txn;
    return cs_db_each(db, txn, CS_T_SNAPSHOTS, "snapshots", prune_scan_rec, p, err);
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

/* Scan and delete in one write transaction: a snapshot a running build
 * touches (or whose tree it stores again) between the two cannot be taken. */
static int
prune_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    int r = prune_scan_fn(db, txn, ctx, err);
    return r < 0 ? r : prune_del_fn(db, txn, ctx, err);
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

/* A <hex> dir without a record may be one another process has just renamed
 * into place and is about to record (gc runs beside builds): leave those
 * changed (mtime: set right before the rename) less than UNRECORDED_GRACE
 * seconds ago to a later gc. */
#define UNRECORDED_GRACE 600
static bool
recently_made(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && st.st_mtime + UNRECORDED_GRACE > time(NULL);
}

/* The pid of a temp dir's name (<hex>.tmp-PID, <hex>.del-PID-N), or 0. */
static long
tmp_pid(const char *name)
{
    if (strlen(name) < 64 + 6 || name[64] != '.')
        return 0;
    const char *p = name + 65;
    if (strncmp(p, "tmp-", 4) && strncmp(p, "del-", 4))
        return 0;
    long pid = strtol(p + 4, NULL, 10);
    return pid > 0 ? pid : 0;
}

/* A temp dir (<hex>.tmp-PID, <hex>.del-PID-N) whose process is gone. */
static bool
stale_tmp(int dfd, const char *name)
{
    long pid = tmp_pid(name);
    struct stat st;
    return pid && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
           && cs_store_pid_gone((pid_t) pid, st.st_mtime);
}

int
cs_snapshot_clean_stale(cs_store *s, cs_error **err)
{
    cs_autofree char *root = snap_root(s);
    cs_autoclose int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : cs_err(err, CS_EIO, errno, "open '%s'", root);
    char **names = NULL;
    size_t n = 0;
    int r = cs_dir_names(fd, root, &names, &n, err);
    for (size_t i = 0; i < n && r >= 0; i++) {
        if (!stale_tmp(fd, names[i]))
            continue;
        cs_autofree char *path = cs_path_join(root, names[i]);
        r = cs_rm_tree(path, NULL, err);
    }
    cs_names_free(names, n);
    return r < 0 ? cs_err_wrap(err, "stale snapshot temp dirs") : 0;
}

static int
list_rec(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    cs_snapshot_recs *l = ctx;
    (void) err;
    if (k->mv_size != 32)
        return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = cs_xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    cs_snapshot_rec *x = &l->v[l->n++];
    memcpy(x->tree.b, k->mv_data, 32);
    cs_rd rd;
    cs_rd_init(&rd, v->mv_data, v->mv_size);
    x->last_used = cs_rd_u64(&rd);
    return 0;
}

int
cs_snapshot_list(cs_db *db, MDB_txn *txn, cs_snapshot_recs *out, cs_error **err)
{
    *out = (cs_snapshot_recs){ 0 };
    return cs_db_each(db, txn, CS_T_SNAPSHOTS, "snapshots", list_rec, out, err);
}

int
cs_snapshot_prune(cs_store *s, uint64_t older_than, uint64_t *removed, uint64_t *bytes,
                  cs_error **err)
{
    return cs_snapshot_prune_ex(s, older_than, NULL, removed, bytes, err);
}

int
cs_snapshot_prune_ex(cs_store *s, uint64_t older_than, cs_digestset *drop, uint64_t *removed,
                     uint64_t *bytes, cs_error **err)
{
    cs_autofree char *root = snap_root(s);
    prune p = { .older_than = older_than, .drop = drop };
    uint64_t nrem = 0, nbytes = 0;
    /* Records first, directories after: a dir without a record is never
     * used before it is complete, and removal renames it out of sight. */
    int r = cs_db_write(cs_store_db(s), prune_fn, &p, err);
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
            if (recorded || recently_made(path))
                continue;
            r = discard(path, &nbytes, err);
            nrem++;
        } else if (tmp_pid(names[i]) && stale_tmp(fd, names[i])) {
            /* gc runs beside builds: only a dead process's temp dir is
             * half-made for good. */
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
