/* image_tag.c - giving images names and taking them away: `tag` and `rmi`
 * (see cstore/image.h). Trees and contents stay: gc frees them. */
#include <string.h>
#include "cstore/image.h"

typedef struct tag_ctx {
    const char *src;
    const char *dst; /* normalized */
} tag_ctx;

static int
tag_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    tag_ctx *x = ctx;
    cs_digest id;
    int rc = cs_image_resolve(db, txn, x->src, &id, err);
    return rc < 0 ? rc : cs_tag_set(db, txn, x->dst, &id, err);
}

int
cs_image_tag(cs_store *s, const char *src, const char *dst, cs_error **err)
{
    tag_ctx x = { src, dst };
    return cs_db_write(cs_store_db(s), tag_fn, &x, err);
}

void
cs_image_removal_release(cs_image_removal *r)
{
    cs_strv_release(&r->untagged);
}

typedef struct remove_ctx {
    const char *name;
    const char *norm; /* name normalized, or NULL when it is no reference */
    cs_image_removal *out;
} remove_ctx;

/* NAME is a tag: remove it; the image goes when no other tag names it.
 * Returns 1 when the image stays. */
static int
remove_tag(cs_db *db, MDB_txn *txn, remove_ctx *x, cs_error **err)
{
    cs_strv others = { 0 };
    int rc;
    if ((rc = cs_tag_delete(db, txn, x->norm, err)) < 0)
        return rc;
    cs_strv_add(&x->out->untagged, x->norm);
    rc = cs_image_tags(db, txn, &x->out->id, &others, err);
    size_t left = others.n;
    cs_strv_release(&others);
    if (rc < 0)
        return rc;
    return left ? 1 : 0;
}

/* NAME is an image id: remove all its tags. */
static int
remove_tags_of_id(cs_db *db, MDB_txn *txn, remove_ctx *x, cs_error **err)
{
    cs_image_removal *r = x->out;
    int rc;
    if ((rc = cs_image_resolve(db, txn, x->name, &r->id, err)) < 0)
        return rc;
    if ((rc = cs_image_tags(db, txn, &r->id, &r->untagged, err)) < 0)
        return rc;
    for (size_t i = 0; i < r->untagged.n; i++)
        if ((rc = cs_tag_delete(db, txn, r->untagged.v[i], err)) < 0)
            return rc;
    return 0;
}

static int
remove_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    remove_ctx *x = ctx;
    cs_error *probe = NULL;
    int rc;

    cs_image_removal_release(x->out); /* idempotent if run again */
    x->out->deleted = false;
    /* A reference first (as docker does): "abcd" may name a tag or an id.
     * A tag that cannot be read falls through to the id path, which reads
     * it again and reports. */
    if (x->norm && cs_tag_get(db, txn, x->norm, &x->out->id, &probe) == 0)
        rc = remove_tag(db, txn, x, err);
    else
        rc = remove_tags_of_id(db, txn, x, err);
    cs_error_free(probe);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if ((rc = cs_image_delete(db, txn, &x->out->id, err)) < 0)
        return rc;
    x->out->deleted = true;
    return 0;
}

int
cs_image_remove(cs_store *s, const char *name, cs_image_removal *out, cs_error **err)
{
    cs_autofree char *norm = NULL;
    cs_error *notref = NULL;
    memset(out, 0, sizeof(*out));
    /* Not a reference is no failure: NAME may still be an image id. */
    if (cs_ref_normalize(name, &norm, &notref) < 0)
        norm = NULL;
    cs_error_free(notref);
    remove_ctx x = { name, norm, out };
    int rc = cs_db_write(cs_store_db(s), remove_fn, &x, err);
    if (rc < 0)
        cs_image_removal_release(out);
    return rc < 0 ? rc : 0;
}
