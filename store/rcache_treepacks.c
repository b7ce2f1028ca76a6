/* rcache_treepacks.c - an export's RK_TREEPACKS records (see rcache_lazy.c):
 * for each tree the root names a part of and the store holds, the pack
 * parts holding its chunks and their delta bases. A fetch of a remote tree
 * then imports those pack parts only, not every pack part of the cache
 * (measured on hello-go: the eight pack parts are 671 kB, the final
 * image's own layer needs one). And before an export, the parts of the
 * remote trees it reads (rc_lazy_fetch_build). */
#include <stdlib.h>
#include <string.h>
#include "cstore/buildcache.h"
#include "cstore/content.h"
#include "cstore/image.h"
#include "cstore/tree.h"
#include "rcache_int.h"

typedef struct tp_ctx {
    rc_index *x;
    cs_digestset *where; /* chunk -> index of its pack part in x->parts */
    rc_bases bases;      /* delta chunk -> its bases: their pack parts too */
    uint32_t part;       /* the pack part being read */
    cs_digest *trees;    /* the trees the root names parts of */
    size_t ntrees;
} tp_ctx;

static int
chunk_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
          cs_error **err)
{
    tp_ctx *c = ctx;
    (void) kn, (void) err;
    if (kind != RK_CHUNK || !cs_digestset_add(c->where, k))
        return 0;
    *cs_digestset_value(c->where, k) = c->part;
    const uint8_t *b = NULL;
    uint8_t nb = rc_chunk_val_bases(v, vn, &b);
    rc_bases_add(&c->bases, k, nb, b);
    return 0;
}

/* Marks the pack part of chunk and those of its bases (a fetch of a delta
 * needs them; a bad index's chain is cut at the deepest depth). */
static void
mark_chunk(tp_ctx *c, const uint8_t *chunk, uint8_t *marks, int level)
{
    if (cs_digestset_has(c->where, chunk))
        marks[*cs_digestset_value(c->where, chunk)] = 1;
    const uint8_t *b;
    uint8_t nb = level < RC_DELTA_DEPTH_MAX ? rc_bases_get(&c->bases, chunk, &b) : 0;
    for (uint8_t i = 0; i < nb; i++)
        mark_chunk(c, b + 32u * i, marks, level + 1);
}

static int
tree_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
         cs_error **err)
{
    tp_ctx *c = ctx;
    (void) kn, (void) v, (void) vn, (void) err;
    if (kind == RK_TREEPART) {
        c->trees = cs_xrealloc(c->trees, (c->ntrees + 1) * sizeof(cs_digest));
        memcpy(c->trees[c->ntrees++].b, k, 32);
    }
    return 0;
}

/* The pack parts of tree t's chunks into its record (marks: one per part). */
static int
tree_packs(cs_db *db, MDB_txn *txn, tp_ctx *c, const cs_digest *t, uint8_t *marks, cs_error **err)
{
    cs_tree *tree = NULL;
    int r = cs_tree_get(db, txn, t, &tree, err);
    if (r == -CS_ENOTFOUND) { /* a tree of an older root, not here: its record came along */
        cs_error_clear(err);
        return 0;
    }
    memset(marks, 0, c->x->nparts);
    for (size_t i = 0; r >= 0 && i < tree->n; i++) {
        cs_autofree cs_chunk_ref *refs = NULL;
        uint64_t size;
        uint32_t n;
        if (!tree->e[i].has_content)
            continue;
        r = cs_content_get(db, txn, &tree->e[i].content, &size, &refs, &n, err);
        for (uint32_t j = 0; r >= 0 && j < n; j++)
            mark_chunk(c, refs[j].d.b, marks, 0);
    }
    cs_tree_free(tree);
    if (r == -CS_ENOTFOUND) { /* a content gone: no list, a fetch reads every pack part */
        cs_error_clear(err);
        return 0;
    }
    if (r < 0)
        return r;
    cs_buf v;
    cs_buf_init(&v);
    for (uint32_t i = 0; i < c->x->nparts; i++)
        if (marks[i])
            cs_buf_append(&v, c->x->parts[i].b, 32);
    rc_part_add(&c->x->root, RK_TREEPACKS, t->b, 32, v.data, v.len);
    cs_buf_release(&v);
    return 0;
}

static int
trees_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    tp_ctx *c = ctx;
    uint8_t *marks = cs_xmalloc(c->x->nparts ? c->x->nparts : 1);
    int r = 0;
    for (size_t i = 0; i < c->ntrees && r >= 0; i++)
        r = tree_packs(db, txn, c, &c->trees[i], marks, err);
    free(marks);
    return r;
}

int
rc_lazy_tree_packs(cs_store *s, const char *dir, rc_index *x, cs_error **err)
{
    tp_ctx c = { .x = x, .where = cs_digestset_new(true) };
    rc_bases_init(&c.bases);
    int r = 0;
    cs_buf b;
    cs_buf_init(&b);
    for (uint32_t i = 0; i < x->nparts && r >= 0; i++) {
        if (x->part_kinds[i] != RK_PACKPART)
            continue;
        c.part = i;
        b.len = 0;
        r = rc_blob_read(dir, &x->parts[i], (int64_t) x->part_sizes[i], &b, err);
        if (r >= 0)
            r = rc_index_each(b.data, b.len, chunk_rec, &c, err);
    }
    b.len = 0;
    if (r >= 0) {
        rc_part_encode(&x->root, &b);
        r = rc_index_each(b.data, b.len, tree_rec, &c, err);
    }
    if (r >= 0)
        r = cs_db_read(cs_store_db(s), trees_fn, &c, err);
    cs_buf_release(&b);
    cs_digestset_free(c.where);
    rc_bases_release(&c.bases);
    free(c.trees);
    return r;
}

/* ---- export from a store with remote trees ---- */

typedef struct build_trees {
    const cs_rcache_build *b;
    cs_rcache_mode mode;
    cs_digestset *final; /* mode=min: the final image's layers */
    cs_digest *v;        /* the remote trees the export reads */
    size_t n;
} build_trees;

/* Adds tree d when it is remote. */
static int
bt_add(cs_db *db, MDB_txn *txn, build_trees *t, const cs_digest *d, cs_error **err)
{
    int r = cs_rcache_tree_remote(db, txn, d, err);
    if (r > 0) {
        t->v = cs_xrealloc(t->v, (t->n + 1) * sizeof(cs_digest));
        t->v[t->n++] = *d;
    }
    return r < 0 ? r : 0;
}

/* The layers of image id (final: into t->final, else remote ones into t). */
static int
bt_image(cs_db *db, MDB_txn *txn, build_trees *t, const cs_digest *id, bool final, cs_error **err)
{
    cs_image *img = NULL;
    int r = cs_image_get(db, txn, id, &img, err);
    for (uint32_t i = 0; r >= 0 && i < img->nlayers; i++)
        if (final)
            cs_digestset_add(t->final, img->layers[i].b);
        else
            r = bt_add(db, txn, t, &img->layers[i], err);
    cs_image_free(img);
    return r;
}

static int
build_trees_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    build_trees *t = ctx;
    const cs_rcache_build *b = t->b;
    if (rc_lazy_none(db, txn))
        return 0;
    int r = t->mode == CS_RCACHE_MIN ? bt_image(db, txn, t, &b->final, true, err) : 0;
    for (size_t i = 0; i < b->nimages && r >= 0; i++)
        r = bt_image(db, txn, t, &b->images[i], false, err);
    for (size_t i = 0; i < b->nkeys && r >= 0; i++) {
        MDB_val v;
        cs_cache_entry e;
        r = cs_db_get(db, txn, CS_T_CACHE, b->keys[i].b, 32, &v, err);
        if (r == -CS_ENOTFOUND) { /* as rc_collect: a step never stored */
            r = 0;
            continue;
        }
        if (r >= 0 && (r = cs_cache_decode(v.mv_data, v.mv_size, &e, err)) >= 0 && e.has_layer
            && (t->mode != CS_RCACHE_MIN || cs_digestset_has(t->final, e.tree.b)))
            r = bt_add(db, txn, t, &e.tree, err);
    }
    return r;
}

int
rc_lazy_fetch_build(cs_store *s, const cs_rcache_build *b, cs_rcache_mode mode, cs_error **err)
{
    build_trees t = { .b = b, .mode = mode, .final = cs_digestset_new(false) };
    int r = cs_db_read(cs_store_db(s), build_trees_fn, &t, err);
    if (r >= 0 && t.n)
        r = cs_rcache_fetch_parts(s, t.v, t.n, err);
    cs_digestset_free(t.final);
    free(t.v);
    return r < 0 ? r : 0;
}
