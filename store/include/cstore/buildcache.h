/* buildcache.h - the build cache table: what a cache key of the builder gave.
 *
 * Owner of the CS_T_CACHE record format; the builder (lookups, new entries,
 * last-used refresh) and gc (the keep policy) go through this module only.
 *
 *   key   cache key (32 bytes, builder/build_plan.c chains them)
 *   value last_used u64 BE (Unix seconds) | has_layer u8 | tree digest[32]
 *         (41 bytes; the tree is all zero when has_layer is 0)
 *
 * Thread rules: functions taking a txn run in it (NULL: in their own
 * transaction, then the caller must hold no write txn in this thread).
 */
#ifndef CSTORE_BUILDCACHE_H
#define CSTORE_BUILDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cstore/db.h"
#include "cstore/ingest.h"
#include "cstore/tree.h"
#include "cstore/util.h"

#define CS_CACHE_RECORD_LEN 41

/* A last-used time refreshed within this many seconds is left alone, so a
 * rebuild with nothing changed writes (and syncs) nothing. */
#define CS_CACHE_TOUCH_SLACK 3600

typedef struct cs_cache_entry {
    uint64_t last_used; /* Unix seconds */
    bool has_layer;     /* the instruction made a layer */
    cs_digest tree;     /* that layer's tree (zero when !has_layer) */
} cs_cache_entry;

/* The record bytes of e. */
void cs_cache_encode(const cs_cache_entry *e, uint8_t out[CS_CACHE_RECORD_LEN]);
/* Parses a record: 0, or -CS_ECORRUPT when it is not 41 bytes. */
int cs_cache_decode(const void *p, size_t len, cs_cache_entry *out, cs_error **err);

/* The entry of key: 0, -CS_ENOTFOUND (no error set) when there is none or
 * when its layer's tree is gone (gc took it: the entry is useless),
 * -CS_ECORRUPT for a malformed record, or a db error. */
int cs_cache_get(cs_db *db, MDB_txn *txn, const cs_digest *key, cs_cache_entry *out,
                 cs_error **err);

/* Stores key -> e (e->last_used 0: now). Overwrites. 0 or a db error. */
int cs_cache_put(cs_db *db, MDB_txn *txn, const cs_digest *key, const cs_cache_entry *e,
                 cs_error **err);

/* A layer an instruction made under key: stores the tree (*tree gets its
 * digest) and key -> {now, has_layer, tree} in ing's transaction, so both
 * land with the contents when ing commits, or none. */
int cs_cache_put_layer(cs_db *db, cs_ingest *ing, const cs_digest *key, const cs_tree *layer,
                       cs_digest *tree, cs_error **err);

/* Marks keys[0..n) used now, skipping those used within
 * CS_CACHE_TOUCH_SLACK and those gone or malformed. 0 or a db error. */
int cs_cache_touch(cs_db *db, MDB_txn *txn, const cs_digest *keys, size_t n, cs_error **err);

/* Calls fn for every well-formed record in key order (malformed ones are
 * skipped: nothing keeps them, so gc's sweep drops them). Stops at the first
 * fn that returns <0 and returns that. entry is borrowed for the call. */
typedef int (*cs_cache_each_fn)(void *ctx, const cs_digest *key, const cs_cache_entry *e,
                                cs_error **err);
int cs_cache_foreach(cs_db *db, MDB_txn *txn, cs_cache_each_fn fn, void *ctx, cs_error **err);

#endif
