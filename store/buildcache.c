/* buildcache.c - the build cache records (see cstore/buildcache.h): their
 * encoding, lookups that check the layer is still there, and the last-used
 * refresh. */
#include <string.h>
#include <time.h>
#include "cstore/buildcache.h"
#include "cstore/lease.h"
#include "cstore/rcache.h"

void
cs_cache_encode(const cs_cache_entry *e, uint8_t out[CS_CACHE_RECORD_LEN])
{
    cs_be64_put(out, e->last_used);
    out[8] = e->has_layer;
    if (e->has_layer)
        memcpy(out + 9, e->tree.b, 32);
    else
        memset(out + 9, 0, 32);
}

int
cs_cache_decode(const void *p, size_t len, cs_cache_entry *out, cs_error **err)
{
    if (len != CS_CACHE_RECORD_LEN)
        return cs_err(err, CS_ECORRUPT, 0, "build cache record of %zu bytes (want %d)", len,
                      CS_CACHE_RECORD_LEN);
    const uint8_t *b = p;
    out->last_used = cs_be64_get(b);
    out->has_layer = b[8] != 0;
    memcpy(out->tree.b, b + 9, 32);
    return 0;
}

/* ---- one call, the caller's txn or our own ---- */

typedef struct cache_op {
    const cs_digest *keys;
    size_t n;
    cs_cache_entry *entry;
    cs_cache_each_fn each;
    void *ctx;
} cache_op;

static int
in_txn(cs_db *db, MDB_txn *txn, bool write, cs_db_fn fn, cache_op *op, cs_error **err)
{
    if (txn)
        return fn(db, txn, op, err);
    /* a put or a touch: add-only (db.h) */
    return write ? cs_db_write_add_only(db, fn, op, err) : cs_db_read(db, fn, op, err);
}

static int
get_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    cache_op *op = ctx;
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_CACHE, op->keys->b, 32, &v, err);
    if (r < 0)
        return r;
    if ((r = cs_cache_decode(v.mv_data, v.mv_size, op->entry, err)) < 0)
        return r;
    /* gc may have taken the layer since: then the entry gives nothing. An
     * imported cache's tree not fetched yet is there (rcache.h). */
    if (!op->entry->has_layer)
        return 0;
    r = cs_rcache_tree_have(db, txn, &op->entry->tree, err);
    return r == 0 ? -CS_ENOTFOUND : r < 0 ? r : 0;
}

int
cs_cache_get(cs_db *db, MDB_txn *txn, const cs_digest *key, cs_cache_entry *out, cs_error **err)
{
    cache_op op = { .keys = key, .n = 1, .entry = out };
    return in_txn(db, txn, false, get_fn, &op, err);
}

static int
put_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    cache_op *op = ctx;
    uint8_t v[CS_CACHE_RECORD_LEN];
    cs_cache_encode(op->entry, v);
    int r = cs_db_put(db, txn, CS_T_CACHE, op->keys->b, 32, v, sizeof(v), 0, err);
    return r < 0 ? r : 0;
}

int
cs_cache_put(cs_db *db, MDB_txn *txn, const cs_digest *key, const cs_cache_entry *e, cs_error **err)
{
    cs_cache_entry stamped = *e;
    if (!stamped.last_used)
        stamped.last_used = (uint64_t) time(NULL);
    cache_op op = { .keys = key, .n = 1, .entry = &stamped };
    return in_txn(db, txn, true, put_fn, &op, err);
}

int
cs_cache_put_layer(cs_db *db, cs_ingest *ing, const cs_digest *key, const cs_tree *layer,
                   cs_digest *tree, cs_error **err)
{
    int r = cs_tree_put(db, cs_ingest_txn(ing), layer, tree, err);
    /* Leased before the commit, so gc keeps it while this build runs even
     * when its policy drops the cache entry (lease.h). */
    if (r >= 0)
        r = cs_lease_tree(cs_ingest_store(ing), tree, err);
    if (r < 0)
        return r;
    cs_cache_entry e = { 0, true, *tree };
    return cs_cache_put(db, cs_ingest_txn(ing), key, &e, err);
}

static int
touch_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    cache_op *op = ctx;
    uint64_t now = (uint64_t) time(NULL);
    for (size_t i = 0; i < op->n; i++) {
        MDB_val v;
        cs_cache_entry e;
        int r = cs_db_get(db, txn, CS_T_CACHE, op->keys[i].b, 32, &v, err);
        if (r == -CS_ENOTFOUND)
            continue; /* gone since the lookup: nothing to refresh */
        if (r < 0)
            return r;
        if (v.mv_size != CS_CACHE_RECORD_LEN)
            continue; /* malformed: gc drops it, nothing to refresh */
        if ((r = cs_cache_decode(v.mv_data, v.mv_size, &e, err)) < 0)
            return r;
        if (e.last_used + CS_CACHE_TOUCH_SLACK > now)
            continue;
        e.last_used = now;
        cache_op put = { .keys = &op->keys[i], .n = 1, .entry = &e };
        if ((r = put_fn(db, txn, &put, err)) < 0)
            return r;
    }
    return 0;
}

int
cs_cache_touch(cs_db *db, MDB_txn *txn, const cs_digest *keys, size_t n, cs_error **err)
{
    if (!n)
        return 0;
    cache_op op = { .keys = keys, .n = n };
    return in_txn(db, txn, true, touch_fn, &op, err);
}

static int
each_rec(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    cache_op *op = ctx;
    cs_cache_entry e;
    cs_digest key;
    if (k->mv_size != 32 || v->mv_size != CS_CACHE_RECORD_LEN)
        return 0;
    memcpy(key.b, k->mv_data, 32);
    int r = cs_cache_decode(v->mv_data, v->mv_size, &e, err);
    return r == 0 ? op->each(op->ctx, &key, &e, err) : r;
}

static int
each_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    return cs_db_each(db, txn, CS_T_CACHE, "cache", each_rec, ctx, err);
}

int
cs_cache_foreach(cs_db *db, MDB_txn *txn, cs_cache_each_fn fn, void *ctx, cs_error **err)
{
    cache_op op = { .each = fn, .ctx = ctx };
    return in_txn(db, txn, false, each_fn, &op, err);
}
