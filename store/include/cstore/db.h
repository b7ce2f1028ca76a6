/* db.h - the LMDB environment of a store and its named databases.
 *
 * One cs_db (one MDB_env) per process, opened with MDB_NOTLS so read
 * transactions may live in worker threads; never used across fork().
 * The map is reserved large (virtual address space only) so it is never
 * grown in normal use; MDB_MAP_FULL surfaces as CS_EFULL.
 */
#ifndef CSTORE_DB_H
#define CSTORE_DB_H

#include <lmdb.h>
#include <stdbool.h>
#include "cstore/error.h"

#define CS_SCHEMA_VERSION 1

typedef enum cs_table {
    CS_T_CHUNKS,      /* sha256(raw chunk) -> codec u8, raw len u32, bytes */
    CS_T_CONTENTS,    /* sha256(file) -> size u64, n u32, n x (digest, len u32) */
    CS_T_TREES,       /* sha256(encoding) -> tree encoding (tree.h) */
    CS_T_LAYER_BLOBS, /* tree digest + compression u8 -> diff_id, blob digest, size u64 */
    CS_T_IMAGES,      /* sha256(config) -> image record (image.h) */
    CS_T_TAGS,        /* normalized name:tag -> image digest */
    CS_T_CACHE,       /* build cache key -> stage state, last-used */
    CS_T_STATCACHE,   /* path + stat -> content digest */
    CS_T_SNAPSHOTS,   /* tree digest -> unpacked dir, last-used */
    CS_T_LEASES,      /* lease id -> held objects, expiry */
    CS_T_META,        /* "schema" -> version */
    CS_T_TARSPLIT,    /* original diff_id -> tar framing of a loaded layer (tarsplit.h) */
    CS_T_LAYER_INDEX, /* 'b' blob / 'd' diff_id -> tree of an ingested layer (layerindex.h) */
    CS_T_BLOB_REPOS,  /* blob digest + "registry/repository" -> tree, time (blobrepo.h) */
    CS_T_REMOTE,      /* chunk digest -> where an imported build cache holds it (rcache.h) */
    CS_T_COPY_KEYS,   /* COPY --from request digest -> its sources' digest (copykey.h) */
    CS_T_RTREES,      /* 't' tree / 'p' pack part -> its part in an imported cache (rcache.h) */
    CS_T_COUNT
} cs_table;

typedef struct cs_db cs_db;

/* Opens (creating) the environment in dir. Refuses a store whose schema is
 * newer than CS_SCHEMA_VERSION with CS_EVERSION. Clears reader slots of
 * killed processes.
 * Durability: a commit is synced (its data pages, then its meta page) before
 * it returns, but for an add-only transaction (MDB_NOMETASYNC at
 * cs_db_begin, or cs_db_write_add_only): its meta page is written without
 * waiting, and made durable by the next commit's flush or by cs_db_sync. A
 * system crash may undo such commits, never damage the store (LMDB's ACI),
 * so only a transaction no file deletion relies on may be one: an undone
 * commit of a record's removal would name a file already gone. What a
 * command reports done it syncs first (cs_db_sync). */
int cs_db_open(const char *dir, cs_db **out, cs_error **err);
/* Makes every commit of this process durable: one fdatasync when an
 * add-only commit wrote since the last sync, nothing otherwise.
 * Thread-safe. */
int cs_db_sync(cs_db *db, cs_error **err);
/* Closes; does not sync (cs_db_sync first). */
void cs_db_close(cs_db *db);
MDB_env *cs_db_env(cs_db *db);
MDB_dbi cs_db_dbi(cs_db *db, cs_table t);

/* One callback = one txn. fn never commits, aborts or opens another txn and
 * has no side effects outside the txn. MDB_val data must be copied out
 * before fn returns: it dies with the txn. */
typedef int (*cs_db_fn)(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err);
int cs_db_read(cs_db *db, cs_db_fn fn, void *ctx, cs_error **err);
int cs_db_write(cs_db *db, cs_db_fn fn, void *ctx, cs_error **err);
/* cs_db_write for a transaction that only adds or updates records, with no
 * file removed on the strength of it (see cs_db_open: durable at the next
 * commit or cs_db_sync). */
int cs_db_write_add_only(cs_db *db, cs_db_fn fn, void *ctx, cs_error **err);

/* Long-lived transactions for ingest and gc (which drive their own loops).
 * A write txn belongs to the thread that began it. */
int cs_db_begin(cs_db *db, unsigned flags, MDB_txn **out, cs_error **err);
int cs_db_commit(MDB_txn *txn, cs_error **err);
/* Aborts a txn of cs_db_begin (NULL is fine). Use it, not mdb_txn_abort, for
 * write txns: it also leaves the write gate. */
void cs_db_abort(MDB_txn *txn);

/* The write gate: every write transaction holds ROOT/write.lock shared for
 * its life; gc holds it exclusively from its mark to its last sweep batch, so
 * no writer commits between what gc marked and what it deletes (a load that
 * deduplicates against a chunk gc is about to free waits, then stores it
 * again). on=true waits for in-flight write txns of other processes; this
 * process must have none. While held, this process's own write txns pass. */
int cs_db_gate_exclusive(cs_db *db, bool on, cs_error **err);

/* Maps an LMDB return code to a cs_error: MDB_NOTFOUND -> CS_ENOTFOUND,
 * MDB_MAP_FULL / ENOSPC -> CS_EFULL, MDB_CORRUPTED -> CS_ECORRUPT, else
 * CS_EIO. Returns the negative code. */
int cs_db_err(cs_error **err, int mdb_rc, const char *what);
/* cs_db_err for a write to env's file (a commit, a put that spills pages):
 * EIO (LMDB's short write), ENOSPC or EDQUOT while the store's file system
 * has (almost) no space left is CS_EFULL "WHAT: store file system full: No
 * space left on device". env may be NULL (plain cs_db_err). */
int cs_db_env_err(MDB_env *env, cs_error **err, int mdb_rc, const char *what);

/* Convenience: get into *val (borrowed until txn ends). 0, -CS_ENOTFOUND, or
 * another negative code with *err set. */
int cs_db_get(cs_db *db, MDB_txn *txn, cs_table t, const void *key, size_t klen, MDB_val *val,
              cs_error **err);
int cs_db_put(cs_db *db, MDB_txn *txn, cs_table t, const void *key, size_t klen, const void *v,
              size_t vlen, unsigned flags, cs_error **err);

/* One record of a walk; k and v are borrowed until the txn ends. Returns 0
 * to go on, or a negative code (with *err set) to stop the walk. */
typedef int (*cs_db_rec_fn)(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err);
/* Calls fn on every record of t, in key order. Returns 0, fn's negative
 * code, or, when the cursor fails, cs_db_err(err, rc, what). */
int cs_db_each(cs_db *db, MDB_txn *txn, cs_table t, const char *what, cs_db_rec_fn fn, void *ctx,
               cs_error **err);

#endif
