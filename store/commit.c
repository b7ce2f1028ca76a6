/* commit.c - a built image into the store (see cstore/commit.h). */
#include "cstore/commit.h"

#include <stdlib.h>
#include <string.h>
#include "commit_int.h"
#include "cstore/export.h"
#include "cstore/rcache.h"

typedef struct hash_sink {
    cs_sha256_ctx *sha;
    uint64_t n;
    const atomic_bool *stop;
} hash_sink;

static int
hash_write(void *ctx, const void *p, size_t n, cs_error **err)
{
    hash_sink *h = ctx;
    if (h->stop && atomic_load(h->stop))
        return cs_err(err, CS_ECANCELED, 0, "diff id: stopped");
    cs_sha256_update(h->sha, p, n);
    h->n += n;
    return 0;
}

/* A layer cstore made: the tar it exports as is hashed once, then its
 * digests are kept in layer_blobs like an exported layer's. *fresh: lb was
 * computed here, not found (the caller records it). */
int
commit_diff_id_of(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_layer_blob *lb, bool *fresh,
                  const atomic_bool *stop, cs_error **err)
{
    *fresh = false;
    int r = cs_layer_blob_get(db, txn, tree, CS_COMP_NONE, lb, err);
    if (r != -CS_ENOTFOUND)
        return r < 0 ? r : 0;
    cs_error_clear(err);
    __attribute__((cleanup(cs_tree_freep))) cs_tree *t = NULL;
    if ((r = cs_tree_get(db, txn, tree, &t, err)) < 0)
        return r;
    hash_sink hs = { cs_sha256_new(), 0, stop };
    r = cs_tree_write_tar(db, txn, t, hash_write, &hs, err);
    if (r == 0) {
        cs_sha256_final(hs.sha, &lb->diff_id);
        lb->blob = lb->diff_id;
        lb->size = hs.n;
        *fresh = true;
    }
    cs_sha256_free(hs.sha);
    return r < 0 ? r : 0;
}

static int
layer_diff_id(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_digest *out, cs_error **err)
{
    cs_layer_blob lb;
    bool fresh;
    int r = commit_diff_id_of(db, txn, tree, &lb, &fresh, NULL, err);
    if (r < 0)
        return r;
    *out = lb.diff_id;
    if (fresh && (r = cs_layer_blob_put(db, txn, tree, CS_COMP_NONE, &lb, err)) < 0)
        return r;
    return 0;
}

typedef struct commit_ctx {
    const cs_digest *trees;
    size_t n;
    cs_digest *out;
    cs_diff_pending *pend;
    cs_diffid_bg *bg;
    const cs_image *img;
    char *const *tags;
} commit_ctx;

static int
diff_ids_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    commit_ctx *c = ctx;
    for (size_t i = 0; i < c->n; i++) {
        int r = layer_diff_id(db, txn, &c->trees[i], &c->out[i], err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
cs_layer_diff_ids(cs_db *db, const cs_digest *trees, size_t n, cs_digest *out, cs_error **err)
{
    if (!n)
        return 0;
    commit_ctx c = { .trees = trees, .n = n, .out = out };
    return cs_db_write(db, diff_ids_fn, &c, err);
}

/* diffid_bg_take, for a tree txn still has: one a gc swept since the
 * background hashed it is left to the caller, which finds it missing as it
 * would have without the background (no image names a swept tree). */
static int
bg_take(cs_db *db, MDB_txn *txn, cs_diffid_bg *bg, const cs_digest *tree, cs_layer_blob *lb,
        bool *fresh, cs_error **err)
{
    int r = diffid_bg_take(bg, tree, lb, fresh, err);
    if (r != 1)
        return r;
    r = cs_rcache_tree_have(db, txn, tree, err);
    return r < 0 ? r : r > 0;
}

/* In a read transaction: the fresh ones go to c->pend. */
static int
diff_ids_pending_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    commit_ctx *c = ctx;
    cs_diff_pending *p = c->pend;
    for (size_t i = 0; i < c->n; i++) {
        cs_layer_blob lb;
        bool fresh;
        /* Done in the background, or else here. */
        int r = c->bg ? bg_take(db, txn, c->bg, &c->trees[i], &lb, &fresh, err) : 0;
        if (r == 0)
            r = commit_diff_id_of(db, txn, &c->trees[i], &lb, &fresh, NULL, err);
        if (r < 0)
            return r;
        c->out[i] = lb.diff_id;
        if (!fresh)
            continue;
        p->trees = cs_xrealloc(p->trees, (p->n + 1) * sizeof(*p->trees));
        p->blobs = cs_xrealloc(p->blobs, (p->n + 1) * sizeof(*p->blobs));
        p->trees[p->n] = c->trees[i];
        p->blobs[p->n++] = lb;
    }
    return 0;
}

int
cs_layer_diff_ids_pending(cs_db *db, const cs_digest *trees, size_t n, cs_digest *out,
                          cs_diff_pending *p, cs_error **err)
{
    return cs_layer_diff_ids_pending_bg(db, NULL, trees, n, out, p, err);
}

int
cs_layer_diff_ids_pending_bg(cs_db *db, cs_diffid_bg *bg, const cs_digest *trees, size_t n,
                             cs_digest *out, cs_diff_pending *p, cs_error **err)
{
    memset(p, 0, sizeof(*p));
    if (!n)
        return 0;
    commit_ctx c = { .trees = trees, .n = n, .out = out, .pend = p, .bg = bg };
    int r = cs_db_read(db, diff_ids_pending_fn, &c, err);
    if (r < 0)
        cs_diff_pending_release(p);
    return r;
}

void
cs_diff_pending_release(cs_diff_pending *p)
{
    if (!p)
        return;
    free(p->trees);
    free(p->blobs);
    memset(p, 0, sizeof(*p));
}

/* Points tag at id unless it already does. */
static int
tag_once(cs_db *db, MDB_txn *txn, const char *tag, const cs_digest *id, cs_error **err)
{
    cs_autofree char *norm = NULL;
    cs_digest cur;
    int r = cs_ref_normalize(tag, &norm, err);
    if (r < 0)
        return r;
    r = cs_tag_get(db, txn, norm, &cur, err);
    if (r == 0 && cs_digest_eq(&cur, id))
        return 0;
    if (r < 0 && r != -CS_ENOTFOUND)
        return r;
    cs_error_clear(err);
    return cs_tag_set(db, txn, norm, id, err);
}

/* The publishing transaction checks what it publishes: a layer a concurrent
 * gc took (it should not, leases hold them; this is the last line) fails the
 * commit instead of leaving an image with a dangling tree. */
static int
trees_exist(cs_db *db, MDB_txn *txn, const cs_image *img, cs_error **err)
{
    for (uint32_t i = 0; i < img->nlayers; i++) {
        /* An imported cache's tree not fetched yet counts (rcache.h). */
        int r = cs_rcache_tree_have(db, txn, &img->layers[i], err);
        if (r == 0) {
            char hex[CS_DIGEST_HEX];
            cs_digest_hex(&img->layers[i], hex);
            return cs_err(err, CS_ENOTFOUND, 0,
                          "layer %.12s is gone from the store (removed by gc?)", hex);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

static int
commit_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    commit_ctx *c = ctx;
    MDB_val v;
    int r = trees_exist(db, txn, c->img, err);
    for (size_t i = 0; r >= 0 && c->pend && i < c->pend->n; i++)
        r = cs_layer_blob_put(db, txn, &c->pend->trees[i], CS_COMP_NONE, &c->pend->blobs[i], err);
    if (r < 0)
        return r;
    /* Only what changed is written: a no-op rebuild leaves the txn clean. */
    r = cs_db_get(db, txn, CS_T_IMAGES, c->img->id.b, 32, &v, err);
    if (r == -CS_ENOTFOUND) {
        cs_error_clear(err);
        r = cs_image_put(db, txn, c->img, err);
    }
    for (char *const *t = c->tags; r >= 0 && t && *t; t++)
        r = tag_once(db, txn, *t, &c->img->id, err);
    return r < 0 ? r : 0;
}

int
cs_image_commit(cs_db *db, const cs_image *img, char *const *tags, cs_error **err)
{
    commit_ctx c = { .img = img, .tags = tags };
    return cs_db_write(db, commit_fn, &c, err);
}

int
cs_image_commit_pending(cs_db *db, const cs_image *img, char *const *tags, const cs_diff_pending *p,
                        cs_error **err)
{
    commit_ctx c = { .img = img, .tags = tags, .pend = (cs_diff_pending *) p };
    return cs_db_write_add_only(db, commit_fn, &c, err); /* a build syncs before "done" */
}
