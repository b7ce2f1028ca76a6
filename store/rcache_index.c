/* rcache_index.c - the cache index blob: records in memory, encoding,
 * walking and merging an older index (see cstore/rcache.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "rcache_int.h"

void
rc_index_init(rc_index *x)
{
    memset(x, 0, sizeof(*x));
    cs_buf_init(&x->recs);
    x->seen = cs_digestset_new(false);
    x->chunks = cs_digestset_new(false);
}

void
rc_index_release(rc_index *x)
{
    cs_buf_release(&x->recs);
    cs_free_all(x->packs, x->pack_sizes, x->places);
    cs_digestset_free(x->seen);
    cs_digestset_free(x->chunks);
    memset(x, 0, sizeof(*x));
}

bool
rc_index_add(rc_index *x, uint8_t kind, const void *k, size_t kn, const void *v, size_t vn)
{
    cs_sha256_ctx *h = cs_sha256_new();
    cs_digest id;
    cs_sha256_update(h, &kind, 1);
    cs_sha256_update(h, k, kn);
    cs_sha256_final(h, &id);
    cs_sha256_free(h);
    if (!cs_digestset_add(x->seen, id.b))
        return false;
    cs_buf_u8(&x->recs, kind);
    cs_buf_bytes(&x->recs, k, (uint32_t) kn);
    cs_buf_bytes(&x->recs, v, (uint32_t) vn);
    x->nrecs++;
    return true;
}

uint32_t
rc_index_pack(rc_index *x, const cs_digest *d, uint64_t size)
{
    for (uint32_t i = 0; i < x->npacks; i++)
        if (cs_digest_eq(&x->packs[i], d))
            return i;
    if (x->npacks == x->cappacks) {
        x->cappacks = x->cappacks ? x->cappacks * 2 : 16;
        x->packs = cs_xrealloc(x->packs, x->cappacks * sizeof(cs_digest));
        x->pack_sizes = cs_xrealloc(x->pack_sizes, x->cappacks * sizeof(uint64_t));
    }
    x->packs[x->npacks] = *d;
    x->pack_sizes[x->npacks] = size;
    return x->npacks++;
}

void
rc_index_place(rc_index *x, const cs_digest *chunk, uint32_t pack, uint64_t off, uint32_t len)
{
    if (!cs_digestset_add(x->chunks, chunk->b))
        return;
    if (x->nplaces == x->capplaces) {
        x->capplaces = x->capplaces ? x->capplaces * 2 : 1024;
        x->places = cs_xrealloc(x->places, x->capplaces * sizeof(rc_place));
    }
    x->places[x->nplaces++] = (rc_place){ *chunk, pack, off, len };
}

void
rc_index_encode(const rc_index *x, cs_buf *out)
{
    cs_buf_append(out, RC_INDEX_MAGIC, 8);
    cs_buf_u32(out, (uint32_t) (x->nrecs + x->npacks + x->nplaces));
    cs_buf_append(out, x->recs.data, x->recs.len);
    for (uint32_t i = 0; i < x->npacks; i++) {
        uint8_t v[8];
        cs_be64_put(v, x->pack_sizes[i]);
        cs_buf_u8(out, RK_PACK);
        cs_buf_bytes(out, x->packs[i].b, 32);
        cs_buf_bytes(out, v, 8);
    }
    for (size_t i = 0; i < x->nplaces; i++) {
        const rc_place *p = &x->places[i];
        uint8_t v[16];
        cs_be32_put(v, p->pack);
        cs_be64_put(v + 4, p->off);
        cs_be32_put(v + 12, p->len);
        cs_buf_u8(out, RK_CHUNK);
        cs_buf_bytes(out, p->chunk.b, 32);
        cs_buf_bytes(out, v, 16);
    }
}

int
rc_index_each(const void *p, size_t n, rc_rec_fn fn, void *ctx, cs_error **err)
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
        if (kind == 0 || kind >= RK_COUNT || (kind >= RK_PACK && kn != 32)
            || (kind == RK_PACK && vn != 8) || (kind == RK_CHUNK && vn != 16))
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
    uint32_t *map; /* old pack number -> new */
    uint32_t nold, cap;
} merge_ctx;

static int
merge_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
          cs_error **err)
{
    merge_ctx *m = ctx;
    const uint8_t *b = v;
    if (kind == RK_PACK) {
        if (m->nold == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 16;
            m->map = cs_xrealloc(m->map, m->cap * sizeof(uint32_t));
        }
        cs_digest d;
        memcpy(d.b, k, 32);
        /* A pack someone removed: its chunks go into new packs. */
        cs_autofree char *path = rc_blob_path(m->dir, &d);
        m->map[m->nold++] =
            access(path, F_OK) ? UINT32_MAX : rc_index_pack(m->x, &d, cs_be64_get(b));
    } else if (kind == RK_CHUNK) {
        uint32_t pack = cs_be32_get(b);
        if (pack >= m->nold)
            return cs_err(err, CS_ECORRUPT, 0, "cache index: chunk in unknown pack %u", pack);
        cs_digest d;
        memcpy(d.b, k, 32);
        if (m->map[pack] != UINT32_MAX)
            rc_index_place(m->x, &d, m->map[pack], cs_be64_get(b + 4), cs_be32_get(b + 12));
    } else {
        rc_index_add(m->x, kind, k, kn, v, vn);
    }
    return 0;
}

int
rc_index_merge(rc_index *x, const char *dir, const void *p, size_t n, cs_error **err)
{
    merge_ctx m = { .x = x, .dir = dir };
    int rc = rc_index_each(p, n, merge_rec, &m, err);
    free(m.map);
    return rc;
}
