/* db.c - the LMDB environment and its named databases (see cstore/db.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include "cstore/db.h"
#include "cstore/rawcache.h"
#include "cstore/util.h"

/* Address space only: without MDB_WRITEMAP the file grows as pages are used,
 * so a map this large costs nothing and is never outgrown in practice. */
#define CS_MAPSIZE ((size_t) 1 << 40)

struct cs_db {
    MDB_env *env;
    MDB_dbi dbi[CS_T_COUNT];
    /* The write gate (ROOT/write.lock): every write transaction holds it
     * shared, gc's mark and sweep exclusively (cs_db_gate_exclusive). One
     * flock per process, counted: flock belongs to the open file, not the
     * thread. */
    int gate_fd;
    pthread_mutex_t gate_mu;
    int gate_users;
    bool gate_excl;
    MDB_txn *writer;      /* the process's write txn (LMDB allows one at a time) */
    bool writer_nometa;   /* it began with MDB_NOMETASYNC (add-only) */
    atomic_bool unsynced; /* an add-only commit's meta page is not synced yet */
};

static const char *const table_names[CS_T_COUNT] = {
    [CS_T_CHUNKS] = "chunks",
    [CS_T_CONTENTS] = "contents",
    [CS_T_TREES] = "trees",
    [CS_T_LAYER_BLOBS] = "layer_blobs",
    [CS_T_IMAGES] = "images",
    [CS_T_TAGS] = "tags",
    [CS_T_CACHE] = "cache",
    [CS_T_STATCACHE] = "statcache",
    [CS_T_SNAPSHOTS] = "snapshots",
    [CS_T_LEASES] = "leases",
    [CS_T_META] = "meta",
    [CS_T_TARSPLIT] = "tarsplit",
    [CS_T_LAYER_INDEX] = "layer_index",
    [CS_T_BLOB_REPOS] = "blob_repos",
    [CS_T_REMOTE] = "remote_chunks",
    [CS_T_COPY_KEYS] = "copy_keys",
    [CS_T_RTREES] = "remote_trees",
};

int
cs_db_err(cs_error **err, int rc, const char *what)
{
    switch (rc) {
    case MDB_NOTFOUND:
        return cs_err(err, CS_ENOTFOUND, 0, "%s: not found", what);
    case MDB_MAP_FULL:
        return cs_err(err, CS_EFULL, 0, "%s: store map full", what);
    case ENOSPC:
        return cs_err(err, CS_EFULL, ENOSPC, "%s", what);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
        return cs_err(err, CS_ECORRUPT, 0, "%s: store corrupted: %s", what, mdb_strerror(rc));
    default:
        if (rc > 0 && rc < 1000)
            return cs_err(err, CS_EIO, rc, "%s", what);
        return cs_err(err, CS_EIO, 0, "%s: %s", what, mdb_strerror(rc));
    }
}

/* Free bytes below which an EIO from LMDB is taken for a full disk: LMDB
 * reports a short write (the file system ran out mid-write) as EIO. */
#define CS_FULL_BYTES ((uint64_t) 1 << 20)

static bool
env_fs_full(MDB_env *env)
{
    const char *path;
    struct statvfs v;
    if (!env || mdb_env_get_path(env, &path) || statvfs(path, &v))
        return false;
    return (uint64_t) v.f_bavail * v.f_frsize < CS_FULL_BYTES;
}

int
cs_db_env_err(MDB_env *env, cs_error **err, int rc, const char *what)
{
    if ((rc == EIO || rc == ENOSPC || rc == EDQUOT) && env_fs_full(env))
        return cs_err(err, CS_EFULL, ENOSPC, "%s: store file system full", what);
    return cs_db_err(err, rc, what);
}

/* Takes the gate shared for one more write transaction of this process. */
static int
gate_enter(cs_db *db)
{
    int rc = 0;
    pthread_mutex_lock(&db->gate_mu);
    if (!db->gate_excl && db->gate_users++ == 0 && (rc = cs_flock(db->gate_fd, LOCK_SH)) != 0)
        db->gate_users--;
    pthread_mutex_unlock(&db->gate_mu);
    return rc;
}

static void
gate_leave(cs_db *db)
{
    pthread_mutex_lock(&db->gate_mu);
    if (!db->gate_excl && db->gate_users > 0 && --db->gate_users == 0)
        cs_flock(db->gate_fd, LOCK_UN);
    pthread_mutex_unlock(&db->gate_mu);
}

int
cs_db_gate_exclusive(cs_db *db, bool on, cs_error **err)
{
    int rc = 0;
    pthread_mutex_lock(&db->gate_mu);
    if (on && !db->gate_excl) {
        /* Called with no write transaction of this process in flight. */
        if ((rc = cs_flock(db->gate_fd, LOCK_EX)) == 0)
            db->gate_excl = true;
    } else if (!on && db->gate_excl) {
        db->gate_excl = false;
        cs_flock(db->gate_fd, LOCK_UN);
    }
    pthread_mutex_unlock(&db->gate_mu);
    return rc ? cs_err(err, CS_EIO, rc, "lock the store's write gate") : 0;
}

static int
begin(cs_db *db, unsigned flags, MDB_txn **out)
{
    /* Gate first, LMDB's writer lock second, as gc takes them. */
    if (!(flags & MDB_RDONLY)) {
        int g = gate_enter(db);
        if (g)
            return g;
    }
    unsigned lflags = flags & ~(unsigned) MDB_NOMETASYNC; /* ours: see cs_db_commit */
    int rc = mdb_txn_begin(db->env, NULL, lflags, out);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the map: adopt its size and retry. */
        mdb_env_set_mapsize(db->env, 0);
        rc = mdb_txn_begin(db->env, NULL, lflags, out);
    }
    if (!(flags & MDB_RDONLY)) {
        if (rc)
            gate_leave(db);
        else {
            db->writer = *out;
            db->writer_nometa = flags & MDB_NOMETASYNC;
        }
    }
    return rc;
}

/* After txn ended: leaves the gate if it was the write txn. */
static void
txn_ended(cs_db *db, MDB_txn *txn)
{
    if (db && txn == db->writer) {
        db->writer = NULL;
        gate_leave(db);
    }
}

/* The cs_db of a write txn (set as the env's user context at open). */
static cs_db *
txn_db(MDB_txn *txn)
{
    return mdb_env_get_userctx(mdb_txn_env(txn));
}

int
cs_db_begin(cs_db *db, unsigned flags, MDB_txn **out, cs_error **err)
{
    int rc = begin(db, flags, out);
    if (rc)
        return cs_db_err(err, rc, "begin transaction");
    return 0;
}

int
cs_db_commit(MDB_txn *txn, cs_error **err)
{
    MDB_env *env = mdb_txn_env(txn); /* the txn is gone after the commit */
    cs_db *db = txn_db(txn);
    bool nometa = db && txn == db->writer && db->writer_nometa;
    size_t id = mdb_txn_id(txn);
    /* LMDB 0.9.24 takes MDB_NOMETASYNC from the environment only: set for
     * this commit alone, which as the process's one writer no other thread's
     * commit can overlap. */
    if (nometa)
        mdb_env_set_flags(env, MDB_NOMETASYNC, 1);
    int rc = mdb_txn_commit(txn);
    if (nometa)
        mdb_env_set_flags(env, MDB_NOMETASYNC, 0);
    txn_ended(db, txn);
    if (rc)
        return cs_db_env_err(env, err, rc, "commit");
    MDB_envinfo info; /* a write txn that wrote nothing leaves the last id */
    if (nometa && mdb_env_info(env, &info) == 0 && info.me_last_txnid == id)
        atomic_store(&db->unsynced, true);
    return 0;
}

int
cs_db_sync(cs_db *db, cs_error **err)
{
    if (!atomic_exchange(&db->unsynced, false))
        return 0;
    int rc = mdb_env_sync(db->env, 1);
    if (rc) {
        atomic_store(&db->unsynced, true);
        return cs_db_err(err, rc, "sync the store");
    }
    return 0;
}

void
cs_db_abort(MDB_txn *txn)
{
    if (!txn)
        return;
    cs_db *db = txn_db(txn);
    mdb_txn_abort(txn);
    txn_ended(db, txn);
}

static int
run(cs_db *db, unsigned flags, cs_db_fn fn, void *ctx, cs_error **err)
{
    MDB_txn *txn;
    int r = cs_db_begin(db, flags, &txn, err);
    if (r < 0)
        return r;
    r = fn(db, txn, ctx, err);
    if (r < 0 || (flags & MDB_RDONLY)) {
        cs_db_abort(txn);
        return r;
    }
    int c = cs_db_commit(txn, err);
    return c < 0 ? c : r;
}

int
cs_db_read(cs_db *db, cs_db_fn fn, void *ctx, cs_error **err)
{
    return run(db, MDB_RDONLY, fn, ctx, err);
}

int
cs_db_write(cs_db *db, cs_db_fn fn, void *ctx, cs_error **err)
{
    return run(db, 0, fn, ctx, err);
}

int
cs_db_write_add_only(cs_db *db, cs_db_fn fn, void *ctx, cs_error **err)
{
    return run(db, MDB_NOMETASYNC, fn, ctx, err);
}

int
cs_db_get(cs_db *db, MDB_txn *txn, cs_table t, const void *key, size_t klen, MDB_val *val,
          cs_error **err)
{
    MDB_val k = { klen, (void *) key };
    int rc = mdb_get(txn, db->dbi[t], &k, val);
    if (rc == MDB_NOTFOUND)
        return -CS_ENOTFOUND;
    if (rc)
        return cs_db_err(err, rc, table_names[t]);
    return 0;
}

int
cs_db_put(cs_db *db, MDB_txn *txn, cs_table t, const void *key, size_t klen, const void *v,
          size_t vlen, unsigned flags, cs_error **err)
{
    MDB_val k = { klen, (void *) key }, d = { vlen, (void *) v };
    int rc = mdb_put(txn, db->dbi[t], &k, &d, flags);
    if (rc == MDB_KEYEXIST)
        return 0;
    if (rc) /* a put spills dirty pages to the file: a full disk shows here too */
        return cs_db_env_err(db->env, err, rc, table_names[t]);
    return 1;
}

MDB_env *
cs_db_env(cs_db *db)
{
    return db->env;
}

MDB_dbi
cs_db_dbi(cs_db *db, cs_table t)
{
    return db->dbi[t];
}

static int
open_tables(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    (void) ctx;
    for (int i = 0; i < CS_T_COUNT; i++) {
        int rc = mdb_dbi_open(txn, table_names[i], MDB_CREATE, &db->dbi[i]);
        if (rc)
            return cs_db_err(err, rc, table_names[i]);
    }
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_META, "schema", 6, &v, err);
    if (r == -CS_ENOTFOUND) {
        char ver[16];
        int n = snprintf(ver, sizeof(ver), "%d", CS_SCHEMA_VERSION);
        return cs_db_put(db, txn, CS_T_META, "schema", 6, ver, (size_t) n, 0, err) < 0 ? -CS_EIO
                                                                                       : 0;
    }
    if (r < 0)
        return r;
    char ver[16] = { 0 };
    memcpy(ver, v.mv_data, v.mv_size < 15 ? v.mv_size : 15);
    int have = atoi(ver);
    if (have > CS_SCHEMA_VERSION || have < 1)
        return cs_err(err, CS_EVERSION, 0,
                      "store schema version %s is not supported by this cstore (version %d); "
                      "use a newer cstore or another --root",
                      ver, CS_SCHEMA_VERSION);
    return 0;
}

int
cs_db_open(const char *dir, cs_db **out, cs_error **err)
{
    cs_db *db = cs_xcalloc(1, sizeof(*db));
    pthread_mutex_init(&db->gate_mu, NULL);
    cs_autofree char *gate = cs_path_join(dir, "write.lock");
    db->gate_fd = open(gate, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (db->gate_fd < 0) {
        int e = errno;
        free(db);
        return cs_err(err, cs_sys_code(e), e, "'%s'", gate);
    }
    int rc = mdb_env_create(&db->env);
    if (rc) {
        close(db->gate_fd);
        free(db);
        return cs_db_err(err, rc, "lmdb");
    }
    mdb_env_set_userctx(db->env, db);
    mdb_env_set_maxdbs(db->env, CS_T_COUNT + 4);
    mdb_env_set_maxreaders(db->env, 1022);
    mdb_env_set_mapsize(db->env, CS_MAPSIZE);
    rc = mdb_env_open(db->env, dir, MDB_NOTLS, 0644);
    if (rc) {
        mdb_env_close(db->env);
        close(db->gate_fd);
        free(db);
        cs_db_err(err, rc, "open store");
        return cs_err_wrap(err, "%s", dir);
    }
    int dead = 0;
    mdb_reader_check(db->env, &dead);
    int r = cs_db_write(db, open_tables, NULL, err);
    if (r < 0) {
        mdb_env_close(db->env);
        close(db->gate_fd);
        free(db);
        return cs_err_wrap(err, "%s", dir);
    }
    *out = db;
    return 0;
}

void
cs_db_close(cs_db *db)
{
    if (!db)
        return;
    cs_rawcache_forget(db); /* its entries die with it: no later db at this address gets them */
    mdb_env_close(db->env);
    close(db->gate_fd);
    pthread_mutex_destroy(&db->gate_mu);
    free(db);
}

int
cs_db_each(cs_db *db, MDB_txn *txn, cs_table t, const char *what, cs_db_rec_fn fn, void *ctx,
           cs_error **err)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int r = 0;
    int rc = mdb_cursor_open(txn, cs_db_dbi(db, t), &cur);
    if (rc)
        return cs_db_err(err, rc, what);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && r >= 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        r = fn(ctx, &k, &v, err);
    mdb_cursor_close(cur);
    if (r < 0)
        return r;
    if (rc != MDB_NOTFOUND)
        return cs_db_err(err, rc, what);
    return 0;
}
