/* rcache_delta.c - delta-encoded chunks in cache packs: a new chunk of a
 * file whose previous version the cache holds is packed as a zstd frame
 * with the old version's overlapping chunks (its bases) as prefix, when
 * that is clearly smaller than the plain chunk (see cstore/rcache.h). The
 * format helpers, the encoder and the export's choice of bases; the fetch
 * side's decoding is rcache_dfetch.c. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include "cstore/buildcache.h"
#include "cstore/content.h"
#include "cstore/tree.h"
#include "chunker.h"
#include "rcache_int.h"

#define DELTA_LEVEL  19
#define DELTA_WINLOG 21                    /* 2 MiB: 3 bases and the chunk (256 KiB each at most) */
#define DELTA_MARGIN ((uint64_t) 32 << 10) /* old chunks this near the new one's range count */

bool
rc_chunk_val_ok(const uint8_t *v, uint32_t vn)
{
    if (vn == 16)
        return true;
    return vn >= 18 && v[16] >= 1 && v[16] <= RC_DELTA_DEPTH_MAX && v[17] >= 1
           && v[17] <= RC_DELTA_BASES_MAX && vn == 18 + 32u * v[17];
}

uint8_t
rc_chunk_val_bases(const uint8_t *v, uint32_t vn, const uint8_t **bases)
{
    if (vn < 18)
        return 0;
    *bases = v + 18;
    return v[17];
}

void
rc_delta_note(rc_index *x, const void *chunk, const uint8_t *v, uint32_t vn)
{
    if (vn < 18 || !cs_digestset_add(x->depth, chunk))
        return;
    *cs_digestset_value(x->depth, chunk) = v[16];
}

int
rc_delta_depth(rc_index *x, const cs_digest *bases, uint8_t nb)
{
    int depth = 0;
    for (uint8_t i = 0; i < nb; i++) {
        if (!cs_digestset_has(x->chunks, bases[i].b))
            return -1;
        uint64_t *d = cs_digestset_value(x->depth, bases[i].b);
        if (d && (int) *d > depth)
            depth = (int) *d;
    }
    return depth + 1 > RC_DELTA_DEPTH_MAX ? -1 : depth + 1;
}

void
rc_delta_encode(const void *raw, size_t n, const void *prefix, size_t pn, cs_buf *out)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (!c)
        abort();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, DELTA_LEVEL);
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, DELTA_WINLOG);
    ZSTD_CCtx_refPrefix(c, prefix, pn);
    size_t cap = ZSTD_compressBound(n);
    cs_buf_reserve(out, cap);
    size_t zn = ZSTD_compress2(c, out->data + out->len, cap, raw, n);
    ZSTD_freeCCtx(c);
    if (ZSTD_isError(zn))
        abort(); /* only out of memory: the bound is enough */
    out->len += zn;
}

int
rc_delta_decode(const cs_digest *d, const void *frame, size_t n, uint32_t raw_len,
                const void *prefix, size_t pn, cs_buf *out, cs_error **err)
{
    if (raw_len > CS_CHUNK_MAX) { /* a bad pack entry: no chunk is that big */
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(d, hex);
        return cs_err(err, CS_ECORRUPT, 0, "delta chunk sha256:%s: a length of %u bytes", hex,
                      raw_len);
    }
    ZSTD_DCtx *z = ZSTD_createDCtx();
    if (!z)
        abort();
    cs_buf_reserve(out, raw_len ? raw_len : 1);
    ZSTD_DCtx_refPrefix(z, prefix, pn);
    size_t got = ZSTD_decompressDCtx(z, out->data + out->len, raw_len, frame, n);
    ZSTD_freeDCtx(z);
    cs_digest sum;
    if (!ZSTD_isError(got) && got == raw_len)
        cs_sha256(out->data + out->len, raw_len, &sum);
    if (ZSTD_isError(got) || got != raw_len || !cs_digest_eq(&sum, d)) {
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(d, hex);
        return cs_err(err, CS_ECORRUPT, 0,
                      "delta chunk sha256:%s: its frame and bases do not give its digest", hex);
    }
    out->len += raw_len;
    return 0;
}

/* ---- the bases of chunks (prune, gc) ---- */

void
rc_bases_init(rc_bases *b)
{
    b->at = cs_digestset_new(true);
    cs_buf_init(&b->buf);
}

void
rc_bases_release(rc_bases *b)
{
    cs_digestset_free(b->at);
    b->at = NULL;
    cs_buf_release(&b->buf);
}

void
rc_bases_add(rc_bases *b, const void *chunk, uint8_t nb, const uint8_t *bases)
{
    if (!nb || !cs_digestset_add(b->at, chunk))
        return;
    *cs_digestset_value(b->at, chunk) = b->buf.len;
    cs_buf_u8(&b->buf, nb);
    cs_buf_append(&b->buf, bases, 32u * nb);
}

uint8_t
rc_bases_get(rc_bases *b, const void *chunk, const uint8_t **bases)
{
    uint64_t *at = cs_digestset_value(b->at, chunk);
    if (!at)
        return 0;
    *bases = b->buf.data + *at + 1;
    return b->buf.data[*at];
}

void
rc_bases_close(rc_bases *b, cs_digestset *set)
{
    cs_buf todo; /* chunks of set b knows the bases of, not walked yet */
    cs_buf_init(&todo);
    size_t it = 0;
    const cs_digest *d;
    while ((d = cs_digestset_next(b->at, &it)))
        if (cs_digestset_has(set, d->b))
            cs_buf_append(&todo, d->b, 32);
    while (todo.len) {
        uint8_t c[32];
        todo.len -= 32;
        memcpy(c, todo.data + todo.len, 32);
        const uint8_t *bases;
        uint8_t nb = rc_bases_get(b, c, &bases);
        for (uint8_t i = 0; i < nb; i++)
            if (cs_digestset_add(set, bases + 32u * i))
                cs_buf_append(&todo, bases + 32u * i, 32);
    }
    cs_buf_release(&todo);
}

/* ---- the export's plan ---- */

typedef struct cand {
    uint8_t nb;
    cs_digest b[RC_DELTA_BASES_MAX];
} cand;

struct rc_dplan {
    rc_index *x;
    cs_digestset *at; /* new chunk -> index in c */
    cand *c;
    size_t n, cap;
    cs_buf raw, prefix;
};

/* One file of some entry's tree: its path and content. */
typedef struct fver {
    char *path;
    cs_digest content;
} fver;

typedef struct plan_ctx {
    cs_db *db;
    MDB_txn *txn;
    rc_dplan *p;
    cs_digestset *news, *trees;
    fver *f;
    size_t nf, capf;
} plan_ctx;

static int
root_tree(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
          cs_error **err)
{
    plan_ctx *c = ctx;
    cs_cache_entry e;
    cs_error *tmp = NULL;
    (void) k, (void) kn, (void) err;
    if (kind == RK_CACHE && cs_cache_decode(v, vn, &e, &tmp) == 0 && e.has_layer)
        cs_digestset_add(c->trees, e.tree.b);
    cs_error_clear(&tmp);
    return 0;
}

/* The files of each entry's tree that this store has. */
static int
collect_files(plan_ctx *c, cs_error **err)
{
    size_t it = 0;
    const cs_digest *t;
    while ((t = cs_digestset_next(c->trees, &it))) {
        cs_tree *tree = NULL;
        int r = cs_tree_get(c->db, c->txn, t, &tree, err);
        if (r == -CS_ENOTFOUND) { /* an older entry's tree this store lacks */
            cs_error_clear(err);
            continue;
        }
        if (r < 0)
            return r;
        for (size_t i = 0; i < tree->n; i++) {
            if (!tree->e[i].has_content)
                continue;
            if (c->nf == c->capf) {
                c->capf = c->capf ? c->capf * 2 : 256;
                c->f = cs_xrealloc(c->f, c->capf * sizeof(fver));
            }
            c->f[c->nf++] = (fver){ cs_xstrdup(tree->e[i].path), tree->e[i].content };
        }
        cs_tree_free(tree);
    }
    return 0;
}

static int
fver_cmp(const void *a, const void *b)
{
    const fver *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : memcmp(x->content.b, y->content.b, 32);
}

typedef struct basecand {
    cs_digest d;
    uint64_t off, overlap;
    uint32_t len;
} basecand;

static int
by_overlap(const void *a, const void *b)
{
    const basecand *x = a, *y = b;
    if (x->overlap != y->overlap)
        return x->overlap > y->overlap ? -1 : 1;
    return (x->off > y->off) - (x->off < y->off);
}

static int
by_off(const void *a, const void *b)
{
    const basecand *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

/* How far old chunk b is from [off, off + len) (it does not overlap). */
static uint64_t
dist(const basecand *b, uint64_t off, uint32_t len)
{
    return b->off >= off + len ? b->off - (off + len) : off - (b->off + b->len);
}

/* Bases for the new chunk at [off, off + len) among old's chunks: those
 * the cache holds, this store has and a delta may use, overlapping the
 * range, the most overlapping first (none: the nearest within the margin);
 * kept in the old file's order. */
static int
pick_bases(plan_ctx *c, uint64_t off, uint32_t len, const cs_chunk_ref *old, uint32_t nold,
           cand *out, cs_error **err)
{
    basecand s[64];
    size_t ns = 0;
    uint64_t lo = off > DELTA_MARGIN ? off - DELTA_MARGIN : 0, hi = off + len + DELTA_MARGIN;
    for (uint64_t o = 0, i = 0; i < nold && o < hi && ns < 64; o += old[i++].len) {
        uint64_t e = o + old[i].len;
        uint64_t *depth = cs_digestset_value(c->p->x->depth, old[i].d.b);
        if (e <= lo || !cs_digestset_has(c->p->x->chunks, old[i].d.b)
            || (depth && *depth >= RC_DELTA_DEPTH_MAX))
            continue; /* not in the cache, or no delta on it */
        int r = cs_chunk_has(c->db, c->txn, &old[i].d, err);
        if (r <= 0) {
            if (r < 0)
                return r;
            continue;
        }
        uint64_t a = o > off ? o : off, b = e < off + len ? e : off + len;
        s[ns++] = (basecand){ old[i].d, o, b > a ? b - a : 0, old[i].len };
    }
    qsort(s, ns, sizeof(basecand), by_overlap);
    size_t k = 0; /* the overlapping ones; else the nearest */
    while (k < ns && k < RC_DELTA_BASES_MAX && s[k].overlap)
        k++;
    if (!k && ns) {
        for (size_t i = 1; i < ns; i++)
            if (dist(&s[i], off, len) < dist(&s[0], off, len))
                s[0] = s[i];
        k = 1;
    }
    ns = k;
    qsort(s, ns, sizeof(basecand), by_off);
    out->nb = (uint8_t) ns;
    for (size_t i = 0; i < ns; i++)
        out->b[i] = s[i].d;
    return 0;
}

static void
plan_add(rc_dplan *p, const cs_digest *d, const cand *cd)
{
    if (!cd->nb || !cs_digestset_add(p->at, d->b))
        return;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->c = cs_xrealloc(p->c, p->cap * sizeof(cand));
    }
    *cs_digestset_value(p->at, d->b) = p->n;
    p->c[p->n++] = *cd;
}

/* The new chunks of a file (refs nr) against old, an earlier version of
 * the same path. */
static int
plan_content(plan_ctx *c, const cs_chunk_ref *nr, uint32_t nn, const cs_digest *old, cs_error **err)
{
    cs_autofree cs_chunk_ref *orefs = NULL;
    uint64_t size, off = 0;
    uint32_t no;
    int r = cs_content_get(c->db, c->txn, old, &size, &orefs, &no, err);
    for (uint32_t i = 0; r >= 0 && i < nn; off += nr[i++].len) {
        if (!cs_digestset_has(c->news, nr[i].d.b) || cs_digestset_has(c->p->at, nr[i].d.b))
            continue;
        cand cd = { 0 };
        if ((r = pick_bases(c, off, nr[i].len, orefs, no, &cd, err)) >= 0)
            plan_add(c->p, &nr[i].d, &cd);
    }
    return r;
}

/* How alike old is to a file whose chunks are mine: the chunks they share,
 * then those of old the cache holds (0: none held, no use). */
static int
likeness(plan_ctx *c, const cs_digestset *mine, const cs_digest *old, uint64_t *score,
         cs_error **err)
{
    cs_autofree cs_chunk_ref *refs = NULL;
    uint64_t size, shared = 0, held = 0;
    uint32_t n;
    int r = cs_content_get(c->db, c->txn, old, &size, &refs, &n, err);
    for (uint32_t i = 0; r >= 0 && i < n; i++) {
        shared += cs_digestset_has(mine, refs[i].d.b);
        held += cs_digestset_has(c->p->x->chunks, refs[i].d.b);
    }
    *score = held ? shared << 32 | held : 0;
    return r;
}

/* File a of a path's versions f[0, n): its new chunks against the most
 * alike other version. */
static int
plan_file(plan_ctx *c, const fver *f, size_t n, size_t a, cs_error **err)
{
    cs_autofree cs_chunk_ref *refs = NULL;
    uint64_t size, best = 0, score;
    uint32_t nr;
    int r = cs_content_get(c->db, c->txn, &f[a].content, &size, &refs, &nr, err);
    bool news = false;
    for (uint32_t i = 0; r >= 0 && i < nr; i++)
        news |= cs_digestset_has(c->news, refs[i].d.b);
    if (r < 0 || !news)
        return r;
    cs_digestset *mine = cs_digestset_new(false);
    for (uint32_t i = 0; i < nr; i++)
        cs_digestset_add(mine, refs[i].d.b);
    size_t pick = n;
    for (size_t b = 0; b < n && r >= 0; b++)
        if (b != a && (r = likeness(c, mine, &f[b].content, &score, err)) >= 0 && score > best)
            best = score, pick = b;
    cs_digestset_free(mine);
    if (r >= 0 && pick < n)
        r = plan_content(c, refs, nr, &f[pick].content, err);
    return r;
}

/* Each path with several contents: the ones holding new chunks against the
 * others (the previous versions). */
static int
plan_paths(plan_ctx *c, cs_error **err)
{
    qsort(c->f, c->nf, sizeof(fver), fver_cmp);
    size_t k = 0; /* the same file in several trees: once */
    for (size_t i = 0; i < c->nf; i++) {
        if (k && !fver_cmp(&c->f[k - 1], &c->f[i]))
            free(c->f[i].path);
        else
            c->f[k++] = c->f[i];
    }
    c->nf = k;
    int r = 0;
    for (size_t i = 0, j; i < c->nf && r >= 0; i = j) {
        for (j = i + 1; j < c->nf && !strcmp(c->f[j].path, c->f[i].path); j++)
            ;
        for (size_t a = i; j - i > 1 && a < j && r >= 0; a++) {
            r = plan_file(c, c->f + i, j - i, a - i, err);
            if (r == -CS_ENOTFOUND) { /* a content record this store lacks: no plan */
                cs_error_clear(err);
                r = 0;
            }
        }
    }
    return r;
}

int
rc_dplan_new(cs_db *db, MDB_txn *txn, rc_index *x, const cs_digest *order, size_t n, rc_dplan **out,
             cs_error **err)
{
    rc_dplan *p = cs_xcalloc(1, sizeof(*p));
    p->x = x;
    p->at = cs_digestset_new(true);
    cs_buf_init(&p->raw);
    cs_buf_init(&p->prefix);
    *out = p;
    if (!n || !cs_digestset_count(x->chunks))
        return 0; /* a first export: no previous version */
    plan_ctx c = { .db = db, .txn = txn, .p = p };
    c.news = cs_digestset_new(false);
    c.trees = cs_digestset_new(false);
    for (size_t i = 0; i < n; i++)
        cs_digestset_add(c.news, order[i].b);
    cs_buf root;
    cs_buf_init(&root);
    rc_part_encode(&x->root, &root);
    int r = rc_index_each(root.data, root.len, root_tree, &c, err);
    if (r >= 0)
        r = collect_files(&c, err);
    if (r >= 0)
        r = plan_paths(&c, err);
    for (size_t i = 0; i < c.nf; i++)
        free(c.f[i].path);
    free(c.f);
    cs_buf_release(&root);
    cs_digestset_free(c.news);
    cs_digestset_free(c.trees);
    return r < 0 ? r : 0;
}

void
rc_dplan_free(rc_dplan *p)
{
    if (!p)
        return;
    cs_digestset_free(p->at);
    free(p->c);
    cs_buf_release(&p->raw);
    cs_buf_release(&p->prefix);
    free(p);
}

int
rc_dplan_try(rc_dplan *p, cs_db *db, MDB_txn *txn, const cs_digest *d, const void *stored, size_t n,
             cs_buf *entry, cs_buf *tail, cs_error **err)
{
    uint64_t *ix = cs_digestset_value(p->at, d->b);
    if (!ix)
        return 0;
    const cand *cd = &p->c[*ix];
    int depth = rc_delta_depth(p->x, cd->b, cd->nb);
    if (depth < 0)
        return 0; /* a chain long enough: plain */
    p->raw.len = p->prefix.len = 0;
    int r = cs_chunk_decode(d, stored, n, false, &p->raw, err);
    for (uint8_t i = 0; i < cd->nb && r >= 0; i++)
        r = cs_chunk_read(db, txn, &cd->b[i], true, &p->prefix, err);
    if (r < 0)
        return r;
    entry->len = tail->len = 0;
    cs_buf_u8(entry, RC_CODEC_DELTA);
    cs_buf_u32(entry, (uint32_t) p->raw.len);
    rc_delta_encode(p->raw.data, p->raw.len, p->prefix.data, p->prefix.len, entry);
    if (entry->len * 2 > n)
        return 0; /* not clearly smaller than the plain chunk */
    cs_buf_u8(tail, (uint8_t) depth);
    cs_buf_u8(tail, cd->nb);
    for (uint8_t i = 0; i < cd->nb; i++)
        cs_buf_append(tail, cd->b[i].b, 32);
    return 1;
}
