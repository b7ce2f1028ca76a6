/* oneshot.c - one record per transaction (see cstore/oneshot.h). */
#include "cstore/content.h"
#include "cstore/merged.h"
#include "cstore/oneshot.h"

typedef struct oneshot {
    const cs_digest *d;
    const cs_digest *layers;
    size_t n;
    const char *name;
    const cs_tree *in;
    cs_tree **tree;
    cs_digest *digest;
    cs_image **img;
    cs_buf *buf;
} oneshot;

static int
tree_load_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    oneshot *o = ctx;
    return cs_tree_get(db, txn, o->d, o->tree, err);
}

int
cs_tree_load(cs_db *db, const cs_digest *d, cs_tree **out, cs_error **err)
{
    oneshot o = { .d = d, .tree = out };
    return cs_db_read(db, tree_load_fn, &o, err);
}

static int
tree_store_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    oneshot *o = ctx;
    int r = cs_tree_put(db, txn, o->in, o->digest, err);
    return r < 0 ? r : 0;
}

int
cs_tree_store(cs_db *db, const cs_tree *t, cs_digest *out, cs_error **err)
{
    oneshot o = { .in = t, .digest = out };
    return cs_db_write(db, tree_store_fn, &o, err);
}

static int
merged_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    oneshot *o = ctx;
    return cs_merged_build(db, txn, o->layers, o->n, o->tree, err);
}

int
cs_merged_load(cs_db *db, const cs_digest *layers, size_t n, cs_tree **out, cs_error **err)
{
    oneshot o = { .layers = layers, .n = n, .tree = out };
    return cs_db_read(db, merged_fn, &o, err);
}

static int
image_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    oneshot *o = ctx;
    cs_digest id;
    int r = cs_image_resolve(db, txn, o->name, &id, err);
    return r < 0 ? r : cs_image_get(db, txn, &id, o->img, err);
}

int
cs_image_load(cs_db *db, const char *name, cs_image **out, cs_error **err)
{
    oneshot o = { .name = name, .img = out };
    return cs_db_read(db, image_fn, &o, err);
}

static int
buf_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) err;
    cs_buf_append(ctx, p, n);
    return 0;
}

static int
content_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    oneshot *o = ctx;
    o->buf->len = 0; /* a retried txn starts over */
    return cs_content_read(db, txn, o->d, false, buf_sink, o->buf, err);
}

int
cs_content_load(cs_db *db, const cs_digest *d, cs_buf *out, cs_error **err)
{
    oneshot o = { .d = d, .buf = out };
    return cs_db_read(db, content_fn, &o, err);
}
