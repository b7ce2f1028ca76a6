/* rcache_collect.c - what a cache export holds: the build's cache entries
 * (in the root), the images it resolved and every tree they refer to, each
 * in a part of its own with the content, layer_blobs and tarsplit records
 * it needs, copied verbatim; the chunks in the order the packs are cut over
 * (see cstore/rcache.h). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "cstore/buildcache.h"
#include "cstore/content.h"
#include "cstore/image.h"
#include "cstore/strv.h"
#include "cstore/tree.h"
#include "rcache_int.h"

typedef struct coll {
    cs_db *db;
    MDB_txn *txn;
    const char *dir;
    rc_index *x;
    rc_part *part; /* the part being filled */
    cs_rcache_stats *st;
    cs_digestset *trees, *contents, *chunks, *final;
    cs_digest *order;
    size_t n, cap;
    cs_digest *imgs; /* the images exported, stamped last */
    size_t nimgs;
    uint64_t newest; /* the newest entry's time */
} coll;

/* Copies one record into the index; *out (optional) borrows its value. */
static int
copy_rec(coll *c, uint8_t kind, cs_table t, const void *k, size_t kn, MDB_val *out, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(c->db, c->txn, t, k, kn, &v, err);
    if (r < 0)
        return r;
    if (rc_part_add(c->part, kind, k, kn, v.mv_data, v.mv_size))
        c->st->records++;
    if (out)
        *out = v;
    return 0;
}

static int
add_content(coll *c, const cs_digest *d, cs_error **err)
{
    if (!cs_digestset_add(c->contents, d->b))
        return 0;
    MDB_val v;
    int r = copy_rec(c, RK_CONTENT, CS_T_CONTENTS, d->b, 32, &v, err);
    if (r < 0)
        return r;
    cs_autofree cs_chunk_ref *refs = NULL;
    uint64_t size;
    uint32_t n;
    if (cs_content_decode(v.mv_data, v.mv_size, &size, &refs, &n) < 0)
        return cs_err(err, CS_ECORRUPT, 0, "content record unreadable");
    for (uint32_t i = 0; i < n; i++) {
        if (!cs_digestset_add(c->chunks, refs[i].d.b))
            continue;
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 4096;
            c->order = cs_xrealloc(c->order, c->cap * sizeof(cs_digest));
        }
        c->order[c->n++] = refs[i].d;
    }
    return 0;
}

/* A tarsplit record when there is one (loaded layers have them). */
static int
add_tarsplit(coll *c, const void *diff_id, cs_error **err)
{
    /* cs_db_get reports a missing key by its code only. */
    int r = copy_rec(c, RK_TARSPLIT, CS_T_TARSPLIT, diff_id, 32, NULL, err);
    return r == -CS_ENOTFOUND ? 0 : r;
}

/* The tree's layer_blobs records (keys start with its digest): a commit on
 * the importing side then needs no bytes for the diff_id. */
static int
add_layer_blobs(coll *c, const cs_digest *tree, cs_error **err)
{
    MDB_cursor *cur;
    MDB_val k = { 32, (void *) tree->b }, v;
    int r = 0, rc = mdb_cursor_open(c->txn, cs_db_dbi(c->db, CS_T_LAYER_BLOBS), &cur);
    if (rc)
        return cs_db_err(err, rc, "layer_blobs");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && r >= 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 33 || memcmp(k.mv_data, tree->b, 32))
            break;
        if (rc_part_add(c->part, RK_LBLOB, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
            c->st->records++;
        if (k.mv_size == 65)
            r = add_tarsplit(c, (const uint8_t *) k.mv_data + 33, err);
        if (r >= 0 && v.mv_size >= 32)
            r = add_tarsplit(c, v.mv_data, err);
    }
    mdb_cursor_close(cur);
    if (r < 0)
        return r;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : cs_db_err(err, rc, "layer_blobs");
}

static int
tree_records(coll *c, const cs_digest *d, cs_error **err)
{
    MDB_val v;
    int r = copy_rec(c, RK_TREE, CS_T_TREES, d->b, 32, &v, err);
    cs_tree *t = NULL;
    if (r == -CS_ENOTFOUND) { /* cs_db_get says it by its code only */
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(d, hex);
        return cs_err(err, CS_ENOTFOUND, 0, "tree sha256:%s: not in the store", hex);
    }
    if (r < 0 || (r = cs_tree_decode(v.mv_data, v.mv_size, &t, err)) < 0)
        return r;
    for (size_t i = 0; i < t->n && r >= 0; i++)
        if (t->e[i].has_content)
            r = add_content(c, &t->e[i].content, err);
    cs_tree_free(t);
    return r < 0 ? r : add_layer_blobs(c, d, err);
}

/* A tree's part: the same tree gives the same blob (its contents are all
 * in it, whatever other trees hold), so an export finds it written. */
static int
add_tree(coll *c, const cs_digest *d, cs_error **err)
{
    if (!cs_digestset_add(c->trees, d->b))
        return 0;
    rc_part part;
    rc_part_init(&part);
    c->part = &part;
    c->contents = cs_digestset_new(false);
    int r = tree_records(c, d, err);
    cs_digest pd;
    uint64_t size;
    if (r >= 0
        && (r = rc_index_put_part_d(c->x, c->dir, RK_PART, &part, c->st, &pd, &size, err)) >= 0)
        rc_lazy_name(c->x, RK_TREEPART, d, &pd, size);
    cs_digestset_free(c->contents);
    c->contents = NULL;
    rc_part_release(&part);
    return r;
}

static bool
image_wanted(coll *c, const cs_image *img)
{
    if (!c->final)
        return true;
    for (uint32_t i = 0; i < img->nlayers; i++)
        if (!cs_digestset_has(c->final, img->layers[i].b))
            return false;
    return true;
}

/* The tarsplit records of the config's diff_ids: an export on the importing
 * side then gives back the original layer tars. */
static int
add_diff_ids(coll *c, const cs_image *img, cs_error **err)
{
    json_t *cfg = json_loadb(img->config, img->config_len, 0, NULL), *v;
    size_t i;
    int r = 0;
    json_array_foreach(json_object_get(json_object_get(cfg, "rootfs"), "diff_ids"), i, v)
    {
        cs_digest d;
        if (r >= 0 && json_is_string(v) && cs_digest_parse(json_string_value(v), &d))
            r = add_tarsplit(c, d.b, err);
    }
    json_decref(cfg);
    return r;
}

/* Each image's stamp for cs_rcache_prune (see rcache.h): a root cache
 * record keyed by its id, without a layer, naming the id (an import skips
 * it), as recent as the newest entry of the build (stable between exports,
 * as the entries' last-used times are). */
static void
stamp_images(coll *c)
{
    uint64_t now = cs_rcache_now();
    cs_cache_entry e = { .last_used = c->newest ? c->newest : now - now % 3600 };
    uint8_t rec[CS_CACHE_RECORD_LEN];
    cs_cache_encode(&e, rec);
    for (size_t i = 0; i < c->nimgs; i++) {
        memcpy(rec + CS_CACHE_RECORD_LEN - 32, c->imgs[i].b, 32); /* the tree field */
        rc_part_add(&c->x->root, RK_CACHE, c->imgs[i].b, 32, rec, sizeof(rec));
    }
}

static int
add_image(coll *c, const cs_digest *id, cs_error **err)
{
    cs_image *img = NULL;
    int r = cs_image_get(c->db, c->txn, id, &img, err);
    if (r < 0)
        return r;
    cs_strv tags = { 0 };
    rc_part part;
    rc_part_init(&part);
    c->part = &part;
    if (image_wanted(c, img) && (r = copy_rec(c, RK_IMAGE, CS_T_IMAGES, id->b, 32, NULL, err)) >= 0
        && (r = cs_image_tags(c->db, c->txn, id, &tags, err)) >= 0
        && (r = add_diff_ids(c, img, err)) >= 0) {
        for (size_t i = 0; i < tags.n; i++)
            rc_part_add(&part, RK_TAG, tags.v[i], strlen(tags.v[i]), id->b, 32);
        cs_digest pd;
        uint64_t size;
        if ((r = rc_index_put_part_d(c->x, c->dir, RK_PART, &part, c->st, &pd, &size, err)) >= 0)
            rc_lazy_name(c->x, RK_IMAGEPART, id, &pd, size);
        c->imgs = cs_xrealloc(c->imgs, (c->nimgs + 1) * sizeof(cs_digest));
        c->imgs[c->nimgs++] = *id;
        for (uint32_t i = 0; i < img->nlayers && r >= 0; i++)
            r = add_tree(c, &img->layers[i], err);
    }
    rc_part_release(&part);
    cs_strv_release(&tags);
    cs_image_free(img);
    return r;
}

static int
add_entry(coll *c, const cs_digest *key, cs_error **err)
{
    MDB_val v;
    cs_cache_entry e;
    int r = cs_db_get(c->db, c->txn, CS_T_CACHE, key->b, 32, &v, err);
    if (r == -CS_ENOTFOUND) /* a step that failed or was never stored */
        return 0;
    if (r < 0 || (r = cs_cache_decode(v.mv_data, v.mv_size, &e, err)) < 0)
        return r;
    if (c->final && e.has_layer && !cs_digestset_has(c->final, e.tree.b))
        return 0;
    MDB_val tv; /* gc took its tree since (cs_cache_get misses it): not exported */
    if (e.has_layer && (r = cs_db_get(c->db, c->txn, CS_T_TREES, e.tree.b, 32, &tv, err)) < 0)
        return r == -CS_ENOTFOUND ? 0 : r;
    /* Its last use is its time for cs_rcache_prune ($CSTORE_TEST_NOW's in tests). */
    uint8_t rec[CS_CACHE_RECORD_LEN];
    e.last_used = rc_test_now() ? rc_test_now() : e.last_used;
    c->newest = e.last_used > c->newest ? e.last_used : c->newest;
    cs_cache_encode(&e, rec);
    if (rc_part_add(&c->x->root, RK_CACHE, key->b, 32, rec, sizeof(rec)))
        c->st->entries++;
    return e.has_layer ? add_tree(c, &e.tree, err) : 0;
}

static int
final_layers(coll *c, const cs_digest *id, cs_error **err)
{
    cs_image *img = NULL;
    int r = cs_image_get(c->db, c->txn, id, &img, err);
    if (r < 0)
        return r;
    c->final = cs_digestset_new(false);
    for (uint32_t i = 0; i < img->nlayers; i++)
        cs_digestset_add(c->final, img->layers[i].b);
    cs_image_free(img);
    return 0;
}

int
rc_collect(cs_db *db, MDB_txn *txn, const char *dir, const cs_rcache_build *b, cs_rcache_mode mode,
           rc_index *x, cs_digest **order, size_t *norder, cs_rcache_stats *st, cs_error **err)
{
    coll c = { .db = db, .txn = txn, .dir = dir, .x = x, .st = st };
    c.trees = cs_digestset_new(false);
    c.chunks = cs_digestset_new(false);
    int r = mode == CS_RCACHE_MIN ? final_layers(&c, &b->final, err) : 0;
    for (size_t i = 0; i < b->nimages && r >= 0; i++)
        r = add_image(&c, &b->images[i], err);
    for (size_t i = 0; i < b->nkeys && r >= 0; i++)
        r = add_entry(&c, &b->keys[i], err);
    if (r >= 0)
        stamp_images(&c);
    if (r >= 0)
        r = rc_lazy_copykeys(db, txn, c.trees, &x->root, err);
    free(c.imgs);
    cs_digestset_free(c.trees);
    cs_digestset_free(c.chunks);
    cs_digestset_free(c.final);
    if (r < 0) {
        free(c.order);
        return r;
    }
    st->chunks = c.n;
    *order = c.order;
    *norder = c.n;
    return 0;
}
