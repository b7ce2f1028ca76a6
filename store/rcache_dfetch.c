/* rcache_dfetch.c - the fetch side of delta chunks: a fetched delta waits
 * until its bases are local (fetched in the same run or already there),
 * then is decoded with their bytes as prefix, checked by sha256 and put
 * plain, as a fetch puts any chunk (see cstore/rcache.h). */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include "cstore/content.h"
#include "rcache_int.h"

#define STORE_LEVEL 1 /* as ingest compresses chunks */

struct rc_pend {
    cs_digest d;
    uint8_t nb;
    bool done;
    cs_digest b[RC_DELTA_BASES_MAX];
    uint8_t *entry; /* codec | raw length u32 | frame */
    size_t n;
};

int
rc_pending_add(rc_pending *p, const cs_digest *d, uint8_t nb, const uint8_t *bases,
               const void *entry, size_t n, cs_error **err)
{
    const uint8_t *e = entry;
    if (n < 5 || e[0] != RC_CODEC_DELTA || !nb || nb > RC_DELTA_BASES_MAX) {
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(d, hex);
        return cs_err(err, CS_ECORRUPT, 0, "cache pack: chunk sha256:%s is not a delta", hex);
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = cs_xrealloc(p->v, p->cap * sizeof(struct rc_pend));
    }
    struct rc_pend *x = &p->v[p->n++];
    memset(x, 0, sizeof(*x));
    x->d = *d;
    x->nb = nb;
    memcpy(x->b, bases, 32u * nb);
    x->entry = cs_xmalloc(n);
    memcpy(x->entry, entry, n);
    x->n = n;
    return 0;
}

void
rc_pending_release(rc_pending *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].entry);
    free(p->v);
    memset(p, 0, sizeof(*p));
}

typedef struct resolver {
    rc_pending *p;
    cs_buf prefix, raw, z;
} resolver;

/* 1 when every base of x is local now. */
static int
bases_local(cs_db *db, MDB_txn *txn, const struct rc_pend *x, cs_error **err)
{
    for (uint8_t i = 0; i < x->nb; i++) {
        int r = cs_chunk_has(db, txn, &x->b[i], err);
        if (r <= 0)
            return r;
    }
    return 1;
}

/* Decodes and checks x, then puts it as ingest would store it. */
static int
resolve_one(resolver *rv, cs_db *db, MDB_txn *txn, struct rc_pend *x, cs_error **err)
{
    rv->prefix.len = rv->raw.len = 0;
    int r = 0;
    for (uint8_t i = 0; i < x->nb && r >= 0; i++)
        r = cs_chunk_read(db, txn, &x->b[i], true, &rv->prefix, err);
    if (r >= 0)
        r = rc_delta_decode(&x->d, x->entry + 5, x->n - 5, cs_be32_get(x->entry + 1),
                            rv->prefix.data, rv->prefix.len, &rv->raw, err);
    if (r < 0)
        return r;
    size_t cap = ZSTD_compressBound(rv->raw.len);
    rv->z.len = 0;
    cs_buf_reserve(&rv->z, cap);
    size_t zn = ZSTD_compress(rv->z.data, cap, rv->raw.data, rv->raw.len, STORE_LEVEL);
    uint32_t raw = (uint32_t) rv->raw.len;
    if (!ZSTD_isError(zn) && zn < rv->raw.len)
        r = cs_chunk_put(db, txn, &x->d, CS_CODEC_ZSTD, raw, rv->z.data, zn, err);
    else
        r = cs_chunk_put(db, txn, &x->d, CS_CODEC_RAW, raw, rv->raw.data, raw, err);
    if (r >= 0)
        r = rc_remote_del(db, txn, &x->d, err);
    x->done = r >= 0;
    return r;
}

static int
resolve_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    resolver *rv = ctx;
    rc_pending *p = rv->p;
    bool progress = true;
    size_t left = p->n;
    for (size_t i = 0; i < p->n; i++)
        p->v[i].done = false;
    while (left && progress) { /* a delta whose base is another pending delta: next pass */
        progress = false;
        for (size_t i = 0; i < p->n; i++) {
            struct rc_pend *x = &p->v[i];
            if (x->done)
                continue;
            int r = bases_local(db, txn, x, err);
            if (r > 0)
                r = resolve_one(rv, db, txn, x, err);
            else if (r == 0)
                continue;
            if (r < 0)
                return r;
            progress = true;
            left--;
        }
    }
    for (size_t i = 0; i < p->n; i++)
        if (!p->v[i].done) {
            char hex[CS_DIGEST_HEX];
            cs_digest_hex(&p->v[i].d, hex);
            return cs_err(err, CS_ENOTFOUND, 0,
                          "delta chunk sha256:%s: a base is neither local nor in the cache", hex);
        }
    return 0;
}

int
rc_pending_resolve(cs_store *s, rc_pending *p, cs_error **err)
{
    if (!p->n)
        return 0;
    resolver rv = { .p = p };
    cs_buf_init(&rv.prefix);
    cs_buf_init(&rv.raw);
    cs_buf_init(&rv.z);
    int r = cs_db_write(cs_store_db(s), resolve_fn, &rv, err);
    cs_buf_release(&rv.prefix);
    cs_buf_release(&rv.raw);
    cs_buf_release(&rv.z);
    return r < 0 ? r : 0;
}
