/* rcache_index.c - the cache index: blobs of records (the root and its
 * parts), encoding, walking, and merging an older root (see
 * cstore/rcache.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>
#include "rcache_int.h"

void
rc_part_init(rc_part *p)
{
    cs_buf_init(&p->recs);
    p->n = 0;
    p->seen = cs_digestset_new(false);
}

void
rc_part_release(rc_part *p)
{
    cs_buf_release(&p->recs);
    cs_digestset_free(p->seen);
    p->seen = NULL;
}

bool
rc_part_add(rc_part *p, uint8_t kind, const void *k, size_t kn, const void *v, size_t vn)
{
    cs_sha256_ctx *h = cs_sha256_new();
    cs_digest id;
    cs_sha256_update(h, &kind, 1);
    cs_sha256_update(h, k, kn);
    cs_sha256_final(h, &id);
    cs_sha256_free(h);
    if (!cs_digestset_add(p->seen, id.b))
        return false;
    cs_buf_u8(&p->recs, kind);
    cs_buf_bytes(&p->recs, k, (uint32_t) kn);
    cs_buf_bytes(&p->recs, v, (uint32_t) vn);
    p->n++;
    return true;
}

/* Index blobs are one zstd frame (level 3: the golang metadata, 4.8 MB of
 * records, is 2.4 MB so): raw replaced by the frame. */
static void
compress_blob(cs_buf *raw, size_t from)
{
    size_t n = raw->len - from, cap = ZSTD_compressBound(n);
    uint8_t *z = cs_xmalloc(cap);
    size_t zn = ZSTD_compress(z, cap, raw->data + from, n, 3);
    if (ZSTD_isError(zn))
        abort(); /* only out of memory: the bound is enough */
    raw->len = from;
    cs_buf_append(raw, z, zn);
    free(z);
}

void
rc_part_encode(const rc_part *p, cs_buf *out)
{
    size_t from = out->len;
    cs_buf_append(out, RC_INDEX_MAGIC, 8);
    cs_buf_u32(out, p->n);
    cs_buf_append(out, p->recs.data, p->recs.len);
    compress_blob(out, from);
}

void
rc_index_init(rc_index *x)
{
    memset(x, 0, sizeof(*x));
    rc_part_init(&x->root);
    x->chunks = cs_digestset_new(false);
    x->depth = cs_digestset_new(true);
}

void
rc_index_release(rc_index *x)
{
    rc_part_release(&x->root);
    cs_free_all(x->parts, x->part_sizes, x->part_kinds, x->packs, x->pack_sizes);
    cs_digestset_free(x->chunks);
    cs_digestset_free(x->depth);
    memset(x, 0, sizeof(*x));
}

/* Appends d unless there; the index of d. */
static uint32_t
add_digest(cs_digest **v, uint64_t **sizes, uint32_t *n, uint32_t *cap, const cs_digest *d,
           uint64_t size, bool *added)
{
    *added = false;
    for (uint32_t i = 0; i < *n; i++)
        if (cs_digest_eq(&(*v)[i], d))
            return i;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = cs_xrealloc(*v, *cap * sizeof(cs_digest));
        *sizes = cs_xrealloc(*sizes, *cap * sizeof(uint64_t));
    }
    (*v)[*n] = *d;
    (*sizes)[*n] = size;
    *added = true;
    return (*n)++;
}

void
rc_index_part(rc_index *x, uint8_t kind, const cs_digest *d, uint64_t size)
{
    bool added;
    uint32_t cap = x->capparts;
    uint32_t i = add_digest(&x->parts, &x->part_sizes, &x->nparts, &x->capparts, d, size, &added);
    if (x->capparts != cap)
        x->part_kinds = cs_xrealloc(x->part_kinds, x->capparts);
    if (added)
        x->part_kinds[i] = kind;
}

void
rc_index_pack(rc_index *x, const cs_digest *d, uint64_t size)
{
    bool added;
    add_digest(&x->packs, &x->pack_sizes, &x->npacks, &x->cappacks, d, size, &added);
}

int
rc_index_put_part_d(rc_index *x, const char *dir, uint8_t kind, const rc_part *p,
                    cs_rcache_stats *st, cs_digest *d, uint64_t *size, cs_error **err)
{
    cs_buf b;
    cs_buf_init(&b);
    rc_part_encode(p, &b);
    int r = rc_blob_write(dir, b.data, b.len, d, err);
    if (r >= 0) {
        rc_index_part(x, kind, d, b.len);
        st->index_bytes += r == 1 ? b.len : 0;
        *size = b.len;
    }
    cs_buf_release(&b);
    return r < 0 ? r : 0;
}

int
rc_index_put_part(rc_index *x, const char *dir, uint8_t kind, const rc_part *p, cs_rcache_stats *st,
                  cs_error **err)
{
    cs_digest d;
    uint64_t size;
    return rc_index_put_part_d(x, dir, kind, p, st, &d, &size, err);
}

static void
put_sized(cs_buf *out, uint8_t kind, const cs_digest *d, uint64_t size)
{
    uint8_t v[8];
    cs_be64_put(v, size);
    cs_buf_u8(out, kind);
    cs_buf_bytes(out, d->b, 32);
    cs_buf_bytes(out, v, 8);
}

void
rc_index_encode(const rc_index *x, cs_buf *out)
{
    size_t from = out->len;
    cs_buf_append(out, RC_INDEX_MAGIC, 8);
    cs_buf_u32(out, x->root.n + x->nparts + x->npacks);
    cs_buf_append(out, x->root.recs.data, x->root.recs.len);
    for (uint32_t i = 0; i < x->nparts; i++)
        put_sized(out, x->part_kinds[i], &x->parts[i], x->part_sizes[i]);
    for (uint32_t i = 0; i < x->npacks; i++)
        put_sized(out, RK_PACK, &x->packs[i], x->pack_sizes[i]);
    compress_blob(out, from);
}

#define INDEX_MAX ((uint64_t) 1 << 30)

static int each_raw(const void *p, size_t n, rc_rec_fn fn, void *ctx, cs_error **err);

int
rc_index_each(const void *p, size_t n, rc_rec_fn fn, void *ctx, cs_error **err)
{
    unsigned long long raw = ZSTD_getFrameContentSize(p, n);
    if (raw == ZSTD_CONTENTSIZE_ERROR || raw == ZSTD_CONTENTSIZE_UNKNOWN || raw > INDEX_MAX)
        return cs_err(err, CS_ECORRUPT, 0, "cache index: not a zstd frame of a known size");
    uint8_t *b = cs_xmalloc(raw ? raw : 1);
    size_t got = ZSTD_decompress(b, raw, p, n);
    int r = ZSTD_isError(got) || got != raw
                ? cs_err(err, CS_ECORRUPT, 0, "cache index: bad zstd frame")
                : each_raw(b, raw, fn, ctx, err);
    free(b);
    return r;
}

static int
each_raw(const void *p, size_t n, rc_rec_fn fn, void *ctx, cs_error **err)
{
    cs_rd r;
    int rc = cs_rd_begin(&r, p, n, RC_INDEX_MAGIC, "cache index", err);
    if (rc < 0)
        return rc;
    uint32_t count = cs_rd_u32(&r);
    for (uint32_t i = 0; i < count && !r.bad; i++) {
        uint8_t kind = cs_rd_u8(&r);
        uint32_t kn, vn;
        const void *k = cs_rd_bytes(&r, &kn);
        const void *v = cs_rd_bytes(&r, &vn);
        if (r.bad)
            break;
        bool sized = kind == RK_PACK || kind == RK_PART || kind == RK_PACKPART;
        bool named = kind == RK_TREEPART || kind == RK_IMAGEPART || kind == RK_COPYKEY;
        if (kind == 0 || kind >= RK_COUNT
            || ((sized || named || kind == RK_CHUNK || kind == RK_TREEPACKS) && kn != 32)
            || (sized && vn != 8) || (kind == RK_CHUNK && !rc_chunk_val_ok(v, vn))
            || (named && vn != (kind == RK_COPYKEY ? 64 : 40)) || (kind == RK_TREEPACKS && vn % 32))
            return cs_err(err, CS_ECORRUPT, 0, "cache index: bad record %u (kind %u)", i, kind);
        if ((rc = fn(ctx, kind, k, kn, v, vn, err)) < 0)
            return rc;
    }
    if (r.bad || r.p != r.end)
        return cs_err(err, CS_ECORRUPT, 0, "cache index: truncated or trailing bytes");
    return 0;
}

typedef struct merge_ctx {
    rc_index *x;
    const char *dir;
    bool gone; /* a pack part whose pack is gone from dir */
} merge_ctx;

static bool
in_dir(const char *dir, const void *digest)
{
    cs_digest d;
    memcpy(d.b, digest, 32);
    cs_error *tmp = NULL;
    int r = rc_remote_has(dir, &d, &tmp);
    cs_error_clear(&tmp); /* unknown: packed again, never lost */
    return r == 1;
}

/* A pack part's records: its pack (still there?) and its chunks. */
static int
merge_pack_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
               cs_error **err)
{
    merge_ctx *m = ctx;
    (void) kn, (void) err;
    if (kind == RK_PACK && !in_dir(m->dir, k))
        m->gone = true;
    if (kind == RK_PACK && !m->gone) {
        cs_digest d;
        memcpy(d.b, k, 32);
        rc_index_pack(m->x, &d, cs_be64_get(v));
    }
    if (kind == RK_CHUNK && !m->gone) {
        cs_digestset_add(m->x->chunks, k);
        rc_delta_note(m->x, k, v, vn);
    }
    return 0;
}

static int
merge_packpart(merge_ctx *m, const cs_digest *d, uint64_t size, cs_error **err)
{
    cs_buf b;
    cs_buf_init(&b);
    merge_ctx pm = { m->x, m->dir, false };
    int r = rc_blob_read(m->dir, d, (int64_t) size, &b, err);
    if (r >= 0)
        r = rc_index_each(b.data, b.len, merge_pack_rec, &pm, err);
    cs_buf_release(&b);
    if (r >= 0 && !pm.gone)
        rc_index_part(m->x, RK_PACKPART, d, size);
    return r;
}

static int
merge_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
          cs_error **err)
{
    merge_ctx *m = ctx;
    cs_digest d;
    if (kind == RK_PACK)
        return 0; /* named again by the pack parts still there */
    if (kind != RK_PART && kind != RK_PACKPART) {
        rc_part_add(&m->x->root, kind, k, kn, v, vn);
        return 0;
    }
    memcpy(d.b, k, 32);
    if (!in_dir(m->dir, k))
        return 0; /* someone removed it: what needs it is exported again */
    if (kind == RK_PACKPART)
        return merge_packpart(m, &d, cs_be64_get(v), err);
    rc_index_part(m->x, RK_PART, &d, cs_be64_get(v));
    return 0;
}

int
rc_index_merge(rc_index *x, const char *dir, const void *p, size_t n, cs_error **err)
{
    merge_ctx m = { .x = x, .dir = dir };
    return rc_index_each(p, n, merge_rec, &m, err);
}
