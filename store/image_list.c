/* image_list.c - reading images as `images` and `inspect` show them: each
 * image record with its tags, its config's creation time and its layers'
 * sizes (see cstore/image.h). */
#include <jansson.h>
#include <string.h>
#include "cstore/image.h"
#include "cstore/rcache.h"
#include "cstore/tree.h"

/* Trees already summed in this txn: images share base layers, and decoding
 * a tree is the costly part of a listing. */
typedef struct sum_cache {
    cs_image_layer *v;
    size_t n, cap;
} sum_cache;

static int
layer_sum(cs_db *db, MDB_txn *txn, sum_cache *c, const cs_digest *d, cs_image_layer *out,
          cs_error **err)
{
    for (size_t i = 0; i < c->n; i++) {
        if (cs_digest_eq(&c->v[i].tree, d)) {
            *out = c->v[i];
            return 0;
        }
    }
    cs_tree *t = NULL;
    /* An imported cache's tree not fetched yet: its sizes are not known here. */
    int rc = cs_rcache_tree_have(db, txn, d, err);
    if (rc != 2 && rc >= 0)
        rc = cs_tree_get(db, txn, d, &t, err);
    if (rc < 0)
        return rc;
    cs_image_layer s = { .tree = *d, .entries = t ? t->n : 0 };
    for (size_t i = 0; t && i < t->n; i++)
        if (t->e[i].type == CS_E_FILE)
            s.bytes += t->e[i].size;
    cs_tree_free(t);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = cs_xrealloc(c->v, c->cap * sizeof(cs_image_layer));
    }
    c->v[c->n++] = s;
    *out = s;
    return 0;
}

void
cs_image_info_release(cs_image_info *in)
{
    if (!in)
        return;
    cs_strv_release(&in->tags);
    free(in->created);
    free(in->config);
    free(in->layers);
    memset(in, 0, sizeof(*in));
}

void
cs_image_list_free(cs_image_info *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cs_image_info_release(&v[i]);
    free(v);
}

/* Takes the id and a copy of the config of img, and the config's "created". */
static int
info_config(const cs_image *img, cs_image_info *in, cs_error **err)
{
    json_error_t jerr;
    json_t *cfg = json_loadb(img->config, img->config_len, 0, &jerr);
    in->id = img->id;
    if (!cfg) {
        char id[CS_DIGEST_STR];
        cs_digest_str(&img->id, id);
        return cs_err(err, CS_ECORRUPT, 0, "image '%s': config: %s", id, jerr.text);
    }
    json_t *c = json_object_get(cfg, "created");
    if (json_is_string(c))
        in->created = cs_xstrdup(json_string_value(c));
    json_decref(cfg);
    in->config = cs_xstrndup(img->config, img->config_len);
    in->config_len = img->config_len;
    return 0;
}

static int
info_layers(cs_db *db, MDB_txn *txn, sum_cache *sc, const cs_image *img, cs_image_info *in,
            cs_error **err)
{
    in->layers = cs_xcalloc(img->nlayers ? img->nlayers : 1, sizeof(cs_image_layer));
    for (uint32_t i = 0; i < img->nlayers; i++) {
        int rc = layer_sum(db, txn, sc, &img->layers[i], &in->layers[i], err);
        if (rc < 0)
            return rc;
        in->nlayers++;
        in->size += in->layers[i].bytes;
    }
    return 0;
}

/* ---- every image ---- */

typedef struct list_ctx {
    cs_db *db;
    MDB_txn *txn;
    cs_image_info *v;
    size_t n, cap;
    sum_cache sc;
} list_ctx;

static void
list_clear(list_ctx *x)
{
    cs_image_list_free(x->v, x->n);
    free(x->sc.v);
    memset(x, 0, sizeof(*x));
}

static int
list_add(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    list_ctx *x = ctx;
    __attribute__((cleanup(cs_image_freep))) cs_image *img = NULL;
    int rc;
    if (k->mv_size != 32)
        return cs_err(err, CS_ECORRUPT, 0, "images: bad key");
    if ((rc = cs_image_decode(v->mv_data, v->mv_size, &img, err)) < 0)
        return rc;
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 16;
        x->v = cs_xrealloc(x->v, x->cap * sizeof(cs_image_info));
    }
    cs_image_info *in = &x->v[x->n++];
    memset(in, 0, sizeof(*in));
    if ((rc = info_config(img, in, err)) < 0)
        return rc;
    memcpy(in->id.b, k->mv_data, 32);
    if ((rc = info_layers(x->db, x->txn, &x->sc, img, in, err)) < 0) {
        char id[CS_DIGEST_STR];
        cs_digest_str(&in->id, id);
        return cs_err_wrap(err, "image '%s'", id);
    }
    return 0;
}

/* Hands each tag to the image it names; x->v is sorted by id. */
static int
list_tag(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    list_ctx *x = ctx;
    size_t lo = 0, hi = x->n;
    (void) err;
    if (v->mv_size != 32)
        return 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(x->v[mid].id.b, v->mv_data, 32);
        if (c == 0) {
            cs_strv_push(&x->v[mid].tags, cs_xstrndup(k->mv_data, k->mv_size));
            return 0;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* A tag naming no image record is fsck's to report. */
    return 0;
}

static int
list_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    list_ctx *x = ctx;
    list_clear(x); /* idempotent if run again */
    x->db = db;
    x->txn = txn;
    /* Keys are digests: the list comes out sorted by id, for list_tag. */
    int rc = cs_db_each(db, txn, CS_T_IMAGES, "images", list_add, x, err);
    if (rc < 0)
        return rc;
    return cs_db_each(db, txn, CS_T_TAGS, "tags", list_tag, x, err);
}

int
cs_image_list(cs_store *s, cs_image_info **out, size_t *n, cs_error **err)
{
    list_ctx x = { 0 };
    int rc = cs_db_read(cs_store_db(s), list_fn, &x, err);
    *out = NULL;
    *n = 0;
    if (rc < 0) {
        list_clear(&x);
        return rc;
    }
    free(x.sc.v);
    *out = x.v;
    *n = x.n;
    return 0;
}

/* ---- one image ---- */

typedef struct get_ctx {
    const char *name;
    cs_image_info *out;
    sum_cache sc;
} get_ctx;

static int
get_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    get_ctx *x = ctx;
    cs_digest id;
    int rc;
    __attribute__((cleanup(cs_image_freep))) cs_image *img = NULL;

    cs_image_info_release(x->out); /* idempotent if run again */
    if ((rc = cs_image_resolve(db, txn, x->name, &id, err)) < 0)
        return rc;
    if ((rc = cs_image_get(db, txn, &id, &img, err)) < 0)
        return rc;
    if ((rc = info_config(img, x->out, err)) < 0)
        return rc;
    if ((rc = cs_image_tags(db, txn, &id, &x->out->tags, err)) < 0)
        return rc;
    return info_layers(db, txn, &x->sc, img, x->out, err);
}

int
cs_image_info_get(cs_store *s, const char *name, cs_image_info *out, cs_error **err)
{
    get_ctx x = { name, out, { 0 } };
    memset(out, 0, sizeof(*out));
    int rc = cs_db_read(cs_store_db(s), get_fn, &x, err);
    free(x.sc.v);
    if (rc < 0)
        cs_image_info_release(out);
    return rc < 0 ? rc : 0;
}
