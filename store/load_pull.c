/* load_pull.c - the store side of a pull: a load plan made from a registry
 * manifest and config, its layers found in the layer index or streamed from
 * the caller's source, stored by load.c's commit (see cstore/pull.h). */
#include <string.h>
#include "cstore/layerindex.h"
#include "cstore/pull.h"
#include "load_int.h"

/* The plan of manifest m: layers named by their digest, the config's
 * diff_ids. */
static int
pull_plan(const cs_manifest *m, const void *config, size_t config_len, plan *p, cs_error **err)
{
    char want[CS_DIGEST_STR];
    cs_digest_str(&m->config.digest, want);
    if (m->is_index)
        return cs_err(err, CS_EINVAL, 0, "manifest: an index, not an image manifest");
    cs_buf_append(&p->config, config, config_len);
    cs_sha256(config, config_len, &p->config_digest);
    if (!cs_digest_eq(&p->config_digest, &m->config.digest))
        return cs_err(err, CS_ECORRUPT, 0, "config %s: digest does not match its content", want);
    p->n = m->n;
    p->layers = cs_xcalloc(p->n ? p->n : 1, sizeof(layer_plan));
    for (size_t i = 0; i < p->n; i++) {
        layer_plan *l = &p->layers[i];
        char d[CS_DIGEST_STR];
        cs_digest_str(&m->items[i].digest, d);
        l->name = cs_xstrdup(d);
        l->blob = m->items[i].digest;
        l->check_blob = true;
        l->size = m->items[i].size;
    }
    return load_plan_config(p, want, err);
}

/* Layer i from the layer index, if there: 1 when found. */
static int
find_known(cs_db *db, MDB_txn *txn, plan *p, size_t i, cs_error **err)
{
    layer_plan *l = &p->layers[i];
    int r = cs_layerindex_find(db, txn, &l->blob, &l->diff_id, &l->info.tree, err);
    if (r == 1) {
        l->info.blob = l->blob;
        l->info.diff_id = l->diff_id;
        l->info.blob_size = l->size >= 0 ? (uint64_t) l->size : 0;
        l->known = true;
    }
    return r;
}

typedef struct known_ctx {
    plan *p;
    bool *known;
} known_ctx;

static int
known_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    known_ctx *k = ctx;
    for (size_t i = 0; i < k->p->n; i++) {
        int r = find_known(db, txn, k->p, i, err);
        if (r < 0)
            return r;
        k->known[i] = r == 1;
    }
    return 0;
}

int
cs_pull_known(cs_store *s, const cs_manifest *m, const void *config, size_t config_len, bool *known,
              cs_error **err)
{
    plan p = { 0 };
    cs_buf_init(&p.config);
    int r = pull_plan(m, config, config_len, &p, err);
    known_ctx k = { &p, known };
    if (r == 0)
        r = cs_db_read(cs_store_db(s), known_fn, &k, err);
    load_plan_release(&p);
    return r;
}

/* Layer i: found in the store, or read from the source and verified. */
static int
pull_layer(cs_ingest *ing, plan *p, size_t i, const cs_pull_source *src, cs_error **err)
{
    layer_plan *l = &p->layers[i];
    int r = find_known(cs_store_db(cs_ingest_store(ing)), cs_ingest_txn(ing), p, i, err);
    if (r < 0)
        return r;
    if (r == 1) {
        if (src->known)
            src->known(src->ctx, i);
        return load_layer_done(p, i, 0, err);
    }
    cs_read_fn rd = NULL;
    void *rctx = NULL;
    r = src->open(src->ctx, i, &rd, &rctx, err);
    if (r < 0)
        return r;
    r = cs_ingest_tar(ing, l->name, rd, rctx, &l->info, err);
    r = load_layer_done(p, i, r, err);
    src->close(src->ctx, i, rctx, r == 0);
    return r;
}

int
cs_pull_store(cs_store *s, const cs_manifest *m, const void *config, size_t config_len,
              const char *tag, const cs_pull_source *src, cs_load_result *out, cs_error **err)
{
    memset(out, 0, sizeof(*out));
    plan p = { 0 };
    cs_buf_init(&p.config);
    cs_ingest *ing = NULL;
    int r = pull_plan(m, config, config_len, &p, err);
    if (r == 0)
        r = cs_ingest_begin(s, &ing, err);
    for (size_t i = 0; r == 0 && i < p.n; i++)
        if (!p.layers[i].done)
            r = pull_layer(ing, &p, i, src, err);
    if (r == 0)
        r = load_store_image(ing, s, &p, tag, out, err);
    cs_ingest_free(ing);
    load_plan_release(&p);
    return r;
}
