/* content.c - chunk and content records (see cstore/content.h). */
#include <pthread.h>
#include <string.h>
#include <zstd.h>
#include "cstore/content.h"
#include "cstore/rawcache.h"
#include "record.h"

/* Reserves len bytes for a new record d in table t: 1 with *p to fill, 0
 * when d is stored already (records are immutable), or a negative code.
 * Reserve, then fill: one copy of the bytes into the map. */
static int
reserve(cs_db *db, MDB_txn *txn, cs_table t, const cs_digest *d, size_t len, const char *what,
        uint8_t **p, cs_error **err)
{
    MDB_val k = { 32, (void *) d->b }, v = { len, NULL };
    int rc = mdb_put(txn, cs_db_dbi(db, t), &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
    if (rc == MDB_KEYEXIST)
        return 0;
    if (rc)
        return cs_db_env_err(cs_db_env(db), err, rc, what);
    *p = v.mv_data;
    return 1;
}

int
cs_chunk_put(cs_db *db, MDB_txn *txn, const cs_digest *d, uint8_t codec, uint32_t raw_len,
             const void *data, size_t n, cs_error **err)
{
    uint8_t *p = NULL;
    int rc = reserve(db, txn, CS_T_CHUNKS, d, n + 5, "put chunk", &p, err);
    if (rc <= 0)
        return rc;
    p[0] = codec;
    cs_be32_put(p + 1, raw_len);
    memcpy(p + 5, data, n);
    return 1;
}

int
cs_chunk_has(cs_db *db, MDB_txn *txn, const cs_digest *d, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_CHUNKS, d->b, 32, &v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    return r < 0 ? r : 1;
}

int
cs_chunk_stored_size(cs_db *db, MDB_txn *txn, const cs_digest *d, uint64_t *out, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_CHUNKS, d->b, 32, &v, err);
    if (r == 0)
        *out = v.mv_size;
    return r;
}

/* One decompression context per thread, freed when the thread exits. */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;

static void
free_dctx(void *p)
{
    ZSTD_freeDCtx(p);
}

static void
make_key(void)
{
    pthread_key_create(&dctx_key, free_dctx);
}

static ZSTD_DCtx *
thread_dctx(void)
{
    pthread_once(&dctx_once, make_key);
    ZSTD_DCtx *d = pthread_getspecific(dctx_key);
    if (!d) {
        d = ZSTD_createDCtx();
        if (!d)
            abort();
        pthread_setspecific(dctx_key, d);
    }
    return d;
}

int
cs_chunk_decode(const cs_digest *d, const void *stored, size_t len, bool verify, cs_buf *out,
                cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    const uint8_t *p = stored;
    if (len < 5)
        goto corrupt;
    uint32_t raw = cs_be32_get(p + 1);
    cs_buf_reserve(out, raw);
    uint8_t *dst = out->data + out->len;
    if (p[0] == CS_CODEC_RAW) {
        if (len - 5 != raw)
            goto corrupt;
        memcpy(dst, p + 5, raw);
    } else if (p[0] == CS_CODEC_ZSTD) {
        size_t n = ZSTD_decompressDCtx(thread_dctx(), dst, raw, p + 5, len - 5);
        if (ZSTD_isError(n) || n != raw)
            goto corrupt;
    } else {
        goto corrupt;
    }
    if (verify) {
        cs_digest got;
        cs_sha256(dst, raw, &got);
        if (!cs_digest_eq(&got, d))
            goto corrupt;
    }
    out->len += raw;
    return 0;
corrupt:
    cs_digest_hex(d, hex);
    return cs_err(err, CS_ECORRUPT, 0, "chunk sha256:%s: stored bytes do not match digest", hex);
}

int
cs_chunk_read(cs_db *db, MDB_txn *txn, const cs_digest *d, bool verify, cs_buf *out, cs_error **err)
{
    MDB_val v;
    int r = cs_record_get(db, txn, CS_T_CHUNKS, CS_ECORRUPT, "chunk", d, &v, err);
    if (r < 0)
        return r;
    return cs_chunk_decode(d, v.mv_data, v.mv_size, verify, out, err);
}

int
cs_content_put(cs_db *db, MDB_txn *txn, const cs_digest *d, uint64_t size, const cs_chunk_ref *refs,
               uint32_t n, cs_error **err)
{
    uint8_t *p = NULL;
    int rc = reserve(db, txn, CS_T_CONTENTS, d, 12 + (size_t) n * 36, "put content", &p, err);
    if (rc <= 0)
        return rc;
    cs_be64_put(p, size);
    cs_be32_put(p + 8, n);
    p += 12;
    for (uint32_t i = 0; i < n; i++, p += 36) {
        memcpy(p, refs[i].d.b, 32);
        cs_be32_put(p + 32, refs[i].len);
    }
    return 1;
}

int
cs_content_decode(const void *data, size_t len, uint64_t *size, cs_chunk_ref **refs, uint32_t *n)
{
    const uint8_t *p = data;
    if (len < 12)
        return -CS_ECORRUPT;
    uint64_t sz = cs_be64_get(p);
    uint32_t cnt = cs_be32_get(p + 8);
    if (len != 12 + (size_t) cnt * 36)
        return -CS_ECORRUPT;
    cs_chunk_ref *r = cs_xmalloc(sizeof(*r) * (cnt ? cnt : 1));
    uint64_t total = 0;
    p += 12;
    for (uint32_t i = 0; i < cnt; i++, p += 36) {
        memcpy(r[i].d.b, p, 32);
        r[i].len = cs_be32_get(p + 32);
        total += r[i].len;
    }
    if (total != sz) {
        free(r);
        return -CS_ECORRUPT;
    }
    *size = sz;
    *refs = r;
    *n = cnt;
    return 0;
}

int
cs_content_get(cs_db *db, MDB_txn *txn, const cs_digest *d, uint64_t *size, cs_chunk_ref **refs,
               uint32_t *n, cs_error **err)
{
    MDB_val v;
    char hex[CS_DIGEST_HEX];
    int r = cs_record_get(db, txn, CS_T_CONTENTS, CS_ENOTFOUND, "content", d, &v, err);
    if (r < 0)
        return r;
    if (cs_content_decode(v.mv_data, v.mv_size, size, refs, n) < 0) {
        cs_digest_hex(d, hex);
        return cs_err(err, CS_ECORRUPT, 0, "content sha256:%s: bad record", hex);
    }
    return 0;
}

int
cs_content_read(cs_db *db, MDB_txn *txn, const cs_digest *d, bool verify, cs_sink_fn sink,
                void *ctx, cs_error **err)
{
    uint64_t size;
    cs_autofree cs_chunk_ref *refs = NULL;
    uint32_t n;
    int r = cs_content_get(db, txn, d, &size, &refs, &n, err);
    if (r < 0)
        return r;
    cs_buf b;
    cs_buf_init(&b);
    for (uint32_t i = 0; i < n && r >= 0; i++) {
        /* Bytes this process ingested and committed moments ago: as they
         * were hashed (rawcache.h), no read, decompression or re-hash. The
         * content record above came from txn: presence is the store's. */
        r = cs_rawcache_read(db, &refs[i].d, refs[i].len, sink, ctx, err);
        if (r != 0)
            continue;
        b.len = 0;
        r = cs_chunk_read(db, txn, &refs[i].d, verify, &b, err);
        if (r >= 0 && b.len != refs[i].len)
            r = cs_err(err, CS_ECORRUPT, 0, "chunk length mismatch");
        if (r >= 0)
            r = sink(ctx, b.data, b.len, err);
    }
    cs_buf_release(&b);
    return r < 0 ? r : 0;
}
