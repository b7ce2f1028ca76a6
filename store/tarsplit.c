/* tarsplit.c - original tar framing of loaded layers (see cstore/tarsplit.h). */
#include <string.h>
#include <zstd.h>
#include "cstore/tarsplit.h"

#define TS_VERSION 1
#define TS_LEVEL   1
/* A decoded payload larger than this is refused as corrupt (a tar of a
 * million members has ~1 GB of headers at most with long pax records). */
#define TS_MAX_PAYLOAD ((uint64_t) 1 << 32)

cs_tarsplit *
cs_tarsplit_new(void)
{
    cs_tarsplit *ts = cs_xcalloc(1, sizeof(*ts));
    cs_buf_init(&ts->hdr);
    return ts;
}

void
cs_tarsplit_free(cs_tarsplit *ts)
{
    if (ts) {
        cs_buf_release(&ts->hdr);
        cs_free_all(ts->m, ts);
    }
}

size_t
cs_tarsplit_add(cs_tarsplit *ts, const void *hdr, uint32_t hdr_len, uint64_t size)
{
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? ts->cap * 2 : 256;
        ts->m = cs_xrealloc(ts->m, ts->cap * sizeof(*ts->m));
    }
    cs_tarsplit_member *m = &ts->m[ts->n];
    memset(m, 0, sizeof(*m));
    m->hdr_off = ts->hdr.len;
    m->hdr_len = hdr_len;
    m->size = size;
    cs_buf_append(&ts->hdr, hdr, hdr_len);
    return ts->n++;
}

void
cs_tarsplit_encode(const cs_tarsplit *ts, cs_buf *out)
{
    cs_buf pl;
    cs_buf_init(&pl);
    cs_buf_reserve(&pl, ts->hdr.len + ts->n * 48 + 32);
    cs_buf_u64(&pl, ts->tar_size);
    cs_buf_u64(&pl, ts->trailer);
    cs_buf_u32(&pl, (uint32_t) ts->n);
    for (size_t i = 0; i < ts->n; i++) {
        const cs_tarsplit_member *m = &ts->m[i];
        cs_buf_bytes(&pl, ts->hdr.data + m->hdr_off, m->hdr_len);
        cs_buf_u64(&pl, m->size);
        cs_buf_u8(&pl, m->has_content);
        if (m->has_content)
            cs_buf_append(&pl, m->content.b, 32);
    }
    out->len = 0;
    size_t bound = ZSTD_compressBound(pl.len);
    cs_buf_reserve(out, 33 + bound);
    cs_buf_u8(out, TS_VERSION);
    cs_buf_append(out, ts->tree.b, 32);
    size_t z = ZSTD_compress(out->data + out->len, bound, pl.data, pl.len, TS_LEVEL);
    if (ZSTD_isError(z))
        abort(); /* only with a bound too small, which compressBound rules out */
    out->len += z;
    cs_buf_release(&pl);
}

static int
ts_corrupt(cs_error **err, const char *why)
{
    return cs_err(err, CS_ECORRUPT, 0, "tarsplit record: %s", why);
}

int
cs_tarsplit_decode(const void *p, size_t len, cs_tarsplit **out, cs_error **err)
{
    const uint8_t *b = p;
    if (len < 33 || b[0] != TS_VERSION)
        return ts_corrupt(err, len < 33 ? "too short" : "unknown version");
    unsigned long long raw = ZSTD_getFrameContentSize(b + 33, len - 33);
    if (raw == ZSTD_CONTENTSIZE_ERROR || raw == ZSTD_CONTENTSIZE_UNKNOWN || raw > TS_MAX_PAYLOAD)
        return ts_corrupt(err, "bad zstd frame");
    cs_autofree uint8_t *pl = cs_xmalloc(raw ? raw : 1);
    size_t got = ZSTD_decompress(pl, raw, b + 33, len - 33);
    if (ZSTD_isError(got) || got != raw)
        return ts_corrupt(err, "bad zstd frame");
    cs_tarsplit *ts = cs_tarsplit_new();
    memcpy(ts->tree.b, b + 1, 32);
    cs_rd r;
    cs_rd_init(&r, pl, raw);
    ts->tar_size = cs_rd_u64(&r);
    ts->trailer = cs_rd_u64(&r);
    uint32_t n = cs_rd_u32(&r);
    /* Each member takes at least 13 bytes: a bogus count fails here, not in malloc. */
    if (r.bad || n > raw / 13) {
        cs_tarsplit_free(ts);
        return ts_corrupt(err, "bad member count");
    }
    cs_buf_reserve(&ts->hdr, raw);
    uint64_t total = ts->trailer;
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        uint32_t hl;
        const void *h = cs_rd_bytes(&r, &hl);
        uint64_t size = cs_rd_u64(&r);
        uint8_t has = cs_rd_u8(&r);
        if (r.bad || has > 1 || hl % 512 || size > TS_MAX_PAYLOAD << 12)
            break;
        size_t idx = cs_tarsplit_add(ts, h, hl, size); /* may move ts->m */
        cs_tarsplit_member *m = &ts->m[idx];
        if (has) {
            const void *d = cs_rd_raw(&r, 32);
            if (!d)
                break;
            memcpy(m->content.b, d, 32);
            m->has_content = true;
        }
        total += hl + ((size + 511) & ~(uint64_t) 511);
    }
    if (r.bad || ts->n != n || r.p != r.end || total != ts->tar_size) {
        cs_tarsplit_free(ts);
        return ts_corrupt(err, "members do not add up");
    }
    *out = ts;
    return 0;
}

int
cs_tarsplit_put(cs_db *db, MDB_txn *txn, const cs_digest *diff_id, const cs_tarsplit *ts,
                cs_error **err)
{
    cs_buf v;
    cs_buf_init(&v);
    cs_tarsplit_encode(ts, &v);
    int r = cs_db_put(db, txn, CS_T_TARSPLIT, diff_id->b, 32, v.data, v.len, 0, err);
    cs_buf_release(&v);
    return r < 0 ? r : 0;
}

int
cs_tarsplit_get(cs_db *db, MDB_txn *txn, const cs_digest *diff_id, cs_tarsplit **out,
                cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_TARSPLIT, diff_id->b, 32, &v, err);
    if (r < 0)
        return r;
    return cs_tarsplit_decode(v.mv_data, v.mv_size, out, err);
}

int
cs_tarsplit_tree(cs_db *db, MDB_txn *txn, const cs_digest *diff_id, cs_digest *tree, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_TARSPLIT, diff_id->b, 32, &v, err);
    if (r < 0)
        return r;
    if (v.mv_size < 33 || ((const uint8_t *) v.mv_data)[0] != TS_VERSION)
        return ts_corrupt(err, "bad header");
    memcpy(tree->b, (const uint8_t *) v.mv_data + 1, 32);
    return 0;
}

typedef struct count_sink {
    cs_sink_fn sink;
    void *ctx;
    uint64_t n, max;
} count_sink;

static int
count_write(void *ctx, const void *p, size_t n, cs_error **err)
{
    count_sink *c = ctx;
    if (c->n + n > c->max)
        return cs_err(err, CS_ECORRUPT, 0, "content longer than its tar member");
    c->n += n;
    return c->sink(c->ctx, p, n, err);
}

static int
write_zeros(cs_sink_fn sink, void *ctx, uint64_t n, cs_error **err)
{
    static const uint8_t zeros[8192];
    while (n) {
        size_t k = n < sizeof(zeros) ? (size_t) n : sizeof(zeros);
        int r = sink(ctx, zeros, k, err);
        if (r < 0)
            return r;
        n -= k;
    }
    return 0;
}

int
cs_tarsplit_write(cs_db *db, MDB_txn *txn, const cs_tarsplit *ts, cs_sink_fn sink, void *ctx,
                  cs_error **err)
{
    for (size_t i = 0; i < ts->n; i++) {
        const cs_tarsplit_member *m = &ts->m[i];
        int r = sink(ctx, ts->hdr.data + m->hdr_off, m->hdr_len, err);
        if (r < 0)
            return r;
        if (m->size == 0)
            continue;
        if (!m->has_content)
            return cs_err(err, CS_ECORRUPT, 0, "tarsplit member %zu has data and no content", i);
        count_sink c = { sink, ctx, 0, m->size };
        r = cs_content_read(db, txn, &m->content, true, count_write, &c, err);
        if (r < 0)
            return r;
        if (c.n != m->size)
            return cs_err(err, CS_ECORRUPT, 0,
                          "tarsplit member %zu: content has %llu bytes, not %llu", i,
                          (unsigned long long) c.n, (unsigned long long) m->size);
        r = write_zeros(sink, ctx, (512 - m->size % 512) % 512, err);
        if (r < 0)
            return r;
    }
    return write_zeros(sink, ctx, ts->trailer, err);
}
