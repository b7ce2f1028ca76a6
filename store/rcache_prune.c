/* rcache_prune.c - `cstore cache prune`: the entries a policy keeps, the
 * parts and packs they need, the root written again as an export writes
 * it, then the blobs nothing names deleted (see cstore/rcache.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cstore/buildcache.h"
#include "cstore/content.h"
#include "cstore/image.h"
#include "rcache_int.h"

uint64_t
rc_test_now(void)
{
    const char *t = getenv("CSTORE_TEST_NOW"); /* test only: see rcache.h */
    char *end;
    if (!t || !*t)
        return 0;
    unsigned long long v = strtoull(t, &end, 10);
    return *end ? 0 : v;
}

uint64_t
cs_rcache_now(void)
{
    uint64_t t = rc_test_now();
    return t ? t : (uint64_t) time(NULL);
}

/* What a part holds: a tree (and its chunks), an image (and its layers), a
 * pack's places, or something else (kept as it is). */
enum { PART_OTHER, PART_TREE, PART_IMAGE, PART_PACK };

typedef struct part {
    cs_digest d;
    uint64_t size;
    uint8_t kind; /* RK_PART or RK_PACKPART */
    uint8_t what;
    bool kept;
    cs_digest id; /* the tree, image or pack */
    cs_digest *v; /* the tree's chunks, the image's layers */
    uint32_t n, cap;
} part;

/* A root cache record: an entry, or an image's stamp (or an image without
 * one: no record). */
typedef struct unit {
    cs_digest key;
    uint8_t rec[CS_CACHE_RECORD_LEN];
    bool has_rec, image, kept;
    uint64_t time;
    cs_digest tree;
    bool has_tree;
    uint32_t *packs, npacks;
} unit;

typedef struct pruner {
    const char *dir;
    unit *u;
    size_t nu, capu;
    part *p;
    size_t np, capp;
    cs_digest *packs;
    uint64_t *pack_sizes;
    uint32_t npacks, cappacks;
    cs_digestset *by_id;   /* tree or image id -> part index */
    cs_digestset *chunk;   /* chunk -> pack index */
    cs_digestset *pack_ix; /* pack -> index */
    rc_bases bases;        /* delta chunk -> its bases */
    part *cur;
    rc_part lazy; /* the root's records of rcache_lazy.c */
} pruner;

static void
grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return;
    *cap = *cap ? *cap * 2 : 16;
    *v = cs_xrealloc(*v, *cap * elem);
}

static void
part_push(part *p, const void *d)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = cs_xrealloc(p->v, p->cap * sizeof(cs_digest));
    }
    memcpy(p->v[p->n++].b, d, 32);
}

static int
root_entry(pruner *pr, const void *k, uint32_t kn, const void *v, uint32_t vn, cs_error **err)
{
    cs_cache_entry e;
    if (kn != 32)
        return cs_err(err, CS_ECORRUPT, 0, "cache index: a cache key of %u bytes", kn);
    int r = cs_cache_decode(v, vn, &e, err);
    if (r < 0)
        return r;
    grow((void **) &pr->u, &pr->capu, pr->nu, sizeof(unit));
    unit *u = &pr->u[pr->nu++];
    memset(u, 0, sizeof(*u));
    memcpy(u->key.b, k, 32);
    memcpy(u->rec, v, CS_CACHE_RECORD_LEN);
    u->has_rec = true;
    u->time = e.last_used;
    u->image = !e.has_layer && !memcmp(e.tree.b, k, 32);
    u->has_tree = e.has_layer;
    u->tree = e.tree;
    return 0;
}

static int
root_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
         cs_error **err)
{
    pruner *pr = ctx;
    if (kind == RK_CACHE)
        return root_entry(pr, k, kn, v, vn, err);
    if (kind == RK_PACK) {
        uint32_t cap = pr->cappacks;
        if (pr->npacks == cap) {
            pr->cappacks = cap ? cap * 2 : 16;
            pr->packs = cs_xrealloc(pr->packs, pr->cappacks * sizeof(cs_digest));
            pr->pack_sizes = cs_xrealloc(pr->pack_sizes, pr->cappacks * sizeof(uint64_t));
        }
        memcpy(pr->packs[pr->npacks].b, k, 32);
        pr->pack_sizes[pr->npacks] = cs_be64_get(v);
        cs_digestset_add(pr->pack_ix, k);
        *cs_digestset_value(pr->pack_ix, k) = pr->npacks++;
        return 0;
    }
    if (kind == RK_PART || kind == RK_PACKPART) {
        grow((void **) &pr->p, &pr->capp, pr->np, sizeof(part));
        part *p = &pr->p[pr->np++];
        memset(p, 0, sizeof(*p));
        memcpy(p->d.b, k, 32);
        p->size = cs_be64_get(v);
        p->kind = kind;
        return 0;
    }
    if (kind >= RK_TREEPART) { /* kept when what they name is (rc_lazy_prune_keep) */
        rc_part_add(&pr->lazy, kind, k, kn, v, vn);
        return 0;
    }
    return cs_err(err, CS_ECORRUPT, 0, "cache index: a record of kind %u in the root", kind);
}

static int
content_chunks(part *p, const void *v, uint32_t vn, cs_error **err)
{
    uint64_t size;
    uint32_t n;
    cs_autofree cs_chunk_ref *refs = NULL;
    if (cs_content_decode(v, vn, &size, &refs, &n) < 0)
        return cs_err(err, CS_ECORRUPT, 0, "cache index: a bad content record");
    for (uint32_t i = 0; i < n; i++)
        part_push(p, refs[i].d.b);
    return 0;
}

static int
image_layers(part *p, const void *k, const void *v, uint32_t vn, cs_error **err)
{
    cs_image *img = NULL;
    int r = cs_image_decode(v, vn, &img, err);
    if (r < 0)
        return r;
    p->what = PART_IMAGE;
    memcpy(p->id.b, k, 32); /* the image id (an import checks it is the config's) */
    for (uint32_t i = 0; i < img->nlayers; i++)
        part_push(p, img->layers[i].b);
    cs_image_free(img);
    return 0;
}

static int
part_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
         cs_error **err)
{
    pruner *pr = ctx;
    part *p = pr->cur;
    if ((kind == RK_TREE || kind == RK_IMAGE) && kn != 32)
        return cs_err(err, CS_ECORRUPT, 0, "cache index: a key of %u bytes (kind %u)", kn, kind);
    switch (kind) {
    case RK_TREE:
        p->what = PART_TREE;
        memcpy(p->id.b, k, 32);
        return 0;
    case RK_CONTENT:
        return content_chunks(p, v, vn, err);
    case RK_IMAGE:
        return image_layers(p, k, v, vn, err);
    case RK_PACK: {
        p->what = PART_PACK;
        memcpy(p->id.b, k, 32);
        return 0;
    }
    case RK_CHUNK: {
        uint64_t *ix = cs_digestset_value(pr->pack_ix, p->id.b);
        if (p->what == PART_PACK && ix && cs_digestset_add(pr->chunk, k))
            *cs_digestset_value(pr->chunk, k) = *ix;
        const uint8_t *b;
        uint8_t nb = rc_chunk_val_bases(v, vn, &b);
        rc_bases_add(&pr->bases, k, nb, b);
        return 0;
    }
    }
    return 0;
}

/* Reads every part; names trees and images by their parts. */
static int
read_parts(pruner *pr, cs_error **err)
{
    int r = 0;
    for (size_t i = 0; i < pr->np && r >= 0; i++) {
        part *p = &pr->p[i];
        cs_buf b;
        cs_buf_init(&b);
        pr->cur = p;
        r = rc_blob_read(pr->dir, &p->d, (int64_t) p->size, &b, err);
        if (r >= 0)
            r = rc_index_each(b.data, b.len, part_rec, pr, err);
        cs_buf_release(&b);
        if (r >= 0 && (p->what == PART_TREE || p->what == PART_IMAGE)
            && cs_digestset_add(pr->by_id, p->id.b))
            *cs_digestset_value(pr->by_id, p->id.b) = i;
    }
    return r;
}

static part *
part_of(pruner *pr, const cs_digest *id)
{
    uint64_t *ix = cs_digestset_value(pr->by_id, id->b);
    return ix ? &pr->p[*ix] : NULL;
}

/* The pack of a chunk and those of its bases (a delta needs them), each
 * once per unit (seen[pack] == mark). */
static void
chunk_packs(pruner *pr, unit *u, const uint8_t *chunk, uint32_t *seen, uint32_t mark, int depth)
{
    uint64_t *ix = cs_digestset_value(pr->chunk, chunk);
    if (ix && seen[*ix] != mark) {
        seen[*ix] = mark;
        u->packs = cs_xrealloc(u->packs, (u->npacks + 1) * sizeof(uint32_t));
        u->packs[u->npacks++] = (uint32_t) *ix;
    }
    const uint8_t *b;
    uint8_t nb = depth <= RC_DELTA_DEPTH_MAX ? rc_bases_get(&pr->bases, chunk, &b) : 0;
    for (uint8_t i = 0; i < nb; i++)
        chunk_packs(pr, u, b + 32u * i, seen, mark, depth + 1);
}

static void
tree_packs(pruner *pr, unit *u, const cs_digest *tree, uint32_t *seen, uint32_t mark)
{
    part *t = part_of(pr, tree);
    if (!t || t->what != PART_TREE)
        return;
    for (uint32_t i = 0; i < t->n; i++)
        chunk_packs(pr, u, t->v[i].b, seen, mark, 0);
}

/* Images without a stamp (an older index) become units as old as the
 * newest entry; then each unit's packs. */
static void
unit_packs(pruner *pr)
{
    uint64_t newest = 0;
    cs_digestset *stamped = cs_digestset_new(false);
    for (size_t i = 0; i < pr->nu; i++) {
        newest = pr->u[i].time > newest ? pr->u[i].time : newest;
        if (pr->u[i].image)
            cs_digestset_add(stamped, pr->u[i].key.b);
    }
    for (size_t i = 0; i < pr->np; i++) {
        part *p = &pr->p[i];
        if (p->what != PART_IMAGE || !cs_digestset_add(stamped, p->id.b))
            continue;
        grow((void **) &pr->u, &pr->capu, pr->nu, sizeof(unit));
        unit *u = &pr->u[pr->nu++];
        *u = (unit){ .key = p->id, .image = true, .time = newest };
    }
    cs_digestset_free(stamped);
    uint32_t *seen = cs_xcalloc(pr->npacks ? pr->npacks : 1, sizeof(uint32_t));
    for (size_t i = 0; i < pr->nu; i++) {
        unit *u = &pr->u[i];
        part *img = u->image ? part_of(pr, &u->key) : NULL;
        if (u->has_tree)
            tree_packs(pr, u, &u->tree, seen, (uint32_t) i + 1);
        for (uint32_t j = 0; img && j < img->n; j++)
            tree_packs(pr, u, &img->v[j], seen, (uint32_t) i + 1);
    }
    free(seen);
}

static int
older_first(const void *a, const void *b)
{
    const unit *x = *(unit *const *) a, *y = *(unit *const *) b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return memcmp(x->key.b, y->key.b, 32);
}

static void
unit_drop(pruner *pr, unit *u, uint32_t *refs, uint64_t *total)
{
    u->kept = false;
    for (uint32_t j = 0; j < u->npacks; j++)
        if (--refs[u->packs[j]] == 0)
            *total -= pr->pack_sizes[u->packs[j]];
}

/* Marks the units the policy keeps; refs: per pack, the kept units that
 * need it. */
static void
apply_policy(pruner *pr, const cs_rcache_prune_opts *o, uint32_t *refs)
{
    uint64_t now = cs_rcache_now(), total = 0;
    uint64_t oldest = o->keep_duration == CS_RCACHE_KEEP_ALL || o->keep_duration > now
                          ? 0
                          : now - o->keep_duration;
    unit **order = cs_xcalloc(pr->nu ? pr->nu : 1, sizeof(unit *));
    size_t n = 0;
    for (size_t i = 0; i < pr->nu; i++) {
        unit *u = &pr->u[i];
        if (!(u->kept = u->time >= oldest))
            continue;
        order[n++] = u;
        for (uint32_t j = 0; j < u->npacks; j++)
            if (refs[u->packs[j]]++ == 0)
                total += pr->pack_sizes[u->packs[j]];
    }
    qsort(order, n, sizeof(unit *), older_first);
    for (size_t i = 0; i < n && o->keep_storage != CS_RCACHE_KEEP_ALL && total > o->keep_storage;
         i++)
        unit_drop(pr, order[i], refs, &total);
    free(order);
}

static void
keep_tree(pruner *pr, const cs_digest *tree)
{
    part *t = part_of(pr, tree);
    if (t && t->what == PART_TREE)
        t->kept = true;
}

/* The parts the kept units need, then the new index in x. */
static void
new_index(pruner *pr, const uint32_t *refs, rc_index *x)
{
    for (size_t i = 0; i < pr->nu; i++) {
        unit *u = &pr->u[i];
        part *img = u->image ? part_of(pr, &u->key) : NULL;
        if (!u->kept)
            continue;
        if (u->has_rec)
            rc_part_add(&x->root, RK_CACHE, u->key.b, 32, u->rec, CS_CACHE_RECORD_LEN);
        if (u->has_tree)
            keep_tree(pr, &u->tree);
        if (img)
            img->kept = true;
        for (uint32_t j = 0; img && j < img->n; j++)
            keep_tree(pr, &img->v[j]);
    }
    for (size_t i = 0; i < pr->np; i++) {
        part *p = &pr->p[i];
        uint64_t *ix = p->what == PART_PACK ? cs_digestset_value(pr->pack_ix, p->id.b) : NULL;
        if (p->what == PART_OTHER || (ix && refs[*ix]))
            p->kept = true;
        if (p->kept)
            rc_index_part(x, p->kind, &p->d, p->size);
    }
    for (uint32_t i = 0; i < pr->npacks; i++)
        if (refs[i])
            rc_index_pack(x, &pr->packs[i], pr->pack_sizes[i]);
    rc_lazy_prune_keep(&pr->lazy, x);
}

static void
gone_add(cs_rcache_prune_result *r, const cs_digest *d)
{
    r->gone = cs_xrealloc(r->gone, (r->ngone + 1) * sizeof(cs_digest));
    r->gone[r->ngone++] = *d;
}

/* The counts, and what is no longer named. */
static void
tally(pruner *pr, const uint32_t *refs, cs_rcache_prune_result *r)
{
    for (size_t i = 0; i < pr->nu; i++) {
        const unit *u = &pr->u[i];
        if (!u->image)
            *(u->kept ? &r->kept_entries : &r->entries) += 1;
        else if (!u->kept)
            r->images++;
    }
    for (size_t i = 0; i < pr->np; i++)
        if (!pr->p[i].kept) {
            r->parts++;
            r->part_bytes += pr->p[i].size;
            gone_add(r, &pr->p[i].d);
        }
    for (uint32_t i = 0; i < pr->npacks; i++) {
        if (refs[i]) {
            r->kept_packs++;
            r->kept_pack_bytes += pr->pack_sizes[i];
            continue;
        }
        r->packs++;
        r->pack_bytes += pr->pack_sizes[i];
        gone_add(r, &pr->packs[i]);
    }
}

/* The new root, as an export writes it (index.json last), then the old
 * blobs that are in dir deleted. */
static int
rewrite(pruner *pr, rc_index *x, const cs_buf *old, cs_rcache_prune_result *r, cs_error **err)
{
    cs_buf b;
    cs_buf_init(&b);
    rc_index_encode(x, &b);
    cs_digest d, od;
    int rc = rc_blob_write(pr->dir, b.data, b.len, &d, err);
    if (rc >= 0)
        rc = rc_layout_write(pr->dir, &d, b.len, x, err);
    cs_buf_release(&b);
    cs_sha256(old->data, old->len, &od);
    if (rc >= 0 && !cs_digest_eq(&d, &od))
        gone_add(r, &od);
    for (size_t i = 0; i < r->ngone && rc >= 0; i++) {
        cs_autofree char *path = rc_blob_path(pr->dir, &r->gone[i]);
        if (unlink(path) < 0 && errno != ENOENT)
            rc = cs_err(err, cs_sys_code(errno), errno, "remove '%s'", path);
    }
    return rc < 0 ? rc : 0;
}

static void
pruner_release(pruner *pr)
{
    for (size_t i = 0; i < pr->nu; i++)
        free(pr->u[i].packs);
    for (size_t i = 0; i < pr->np; i++)
        free(pr->p[i].v);
    cs_free_all(pr->u, pr->p, pr->packs, pr->pack_sizes);
    cs_digestset_free(pr->by_id);
    cs_digestset_free(pr->chunk);
    cs_digestset_free(pr->pack_ix);
    rc_bases_release(&pr->bases);
    rc_part_release(&pr->lazy);
}

void
cs_rcache_prune_result_release(cs_rcache_prune_result *r)
{
    free(r->gone);
    memset(r, 0, sizeof(*r));
}

int
cs_rcache_prune(const char *dir, const cs_rcache_prune_opts *o, cs_rcache_prune_result *r,
                cs_error **err)
{
    pruner pr = { .dir = dir };
    pr.by_id = cs_digestset_new(true);
    pr.chunk = cs_digestset_new(true);
    pr.pack_ix = cs_digestset_new(true);
    rc_bases_init(&pr.bases);
    rc_part_init(&pr.lazy);
    memset(r, 0, sizeof(*r));
    cs_buf old;
    cs_buf_init(&old);
    uint32_t *refs = NULL;
    rc_index x;
    rc_index_init(&x);
    int rc = rc_layout_read(dir, &old, err);
    if (rc >= 0)
        rc = rc_index_each(old.data, old.len, root_rec, &pr, err);
    if (rc >= 0)
        rc = read_parts(&pr, err);
    if (rc >= 0) {
        unit_packs(&pr);
        refs = cs_xcalloc(pr.npacks ? pr.npacks : 1, sizeof(uint32_t));
        apply_policy(&pr, o, refs);
        new_index(&pr, refs, &x);
        tally(&pr, refs, r);
    }
    if (rc >= 0 && (r->ngone || r->entries || r->images))
        rc = rewrite(&pr, &x, &old, r, err);
    free(refs);
    rc_index_release(&x);
    cs_buf_release(&old);
    pruner_release(&pr);
    if (rc < 0)
        return cs_err_wrap(err, "cache prune of '%s'", dir);
    return 0;
}
