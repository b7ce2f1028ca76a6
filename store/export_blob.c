/* export_blob.c - layer blobs: the deterministic tar of a tree (or the
 * original tar replayed from its tarsplit record), compressed, and the
 * layer_blobs cache of their digests.
 */
#include <errno.h>
#include <string.h>
#include "cstore/tarsplit.h"
#include "export_int.h"

/* ---- layer_blobs records ---- */

/* Key: tree | compression, for the tar generated from the tree; tree |
 * compression | diff_id for the original tar replayed from tarsplit[diff_id]
 * (gc keeps both while the tree lives: it looks at the first 32 bytes). */
#define LB_KEY_LEN    33
#define LB_TS_KEY_LEN 65
#define LB_VAL_LEN    72

/* Compressed blobs changed bytes when gzip went to independent blocks and
 * zstd to workers (compress.h): their keys carry LB_FORMAT2 in the
 * compression byte, so digests recorded for the old bytes are never read
 * again (gc drops them with their tree). Uncompressed tars did not change. */
#define LB_FORMAT2 0x80

static size_t
lb_key(uint8_t key[LB_TS_KEY_LEN], const cs_digest *tree, cs_compression c, const cs_digest *orig)
{
    memcpy(key, tree->b, 32);
    key[32] = (uint8_t) c | (c == CS_COMP_NONE ? 0 : LB_FORMAT2);
    if (!orig)
        return LB_KEY_LEN;
    memcpy(key + 33, orig->b, 32);
    return LB_TS_KEY_LEN;
}

static int
lb_get(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_compression c, const cs_digest *orig,
       cs_layer_blob *out, cs_error **err)
{
    uint8_t key[LB_TS_KEY_LEN];
    size_t klen = lb_key(key, tree, c, orig);
    MDB_val v;
    int rc = cs_db_get(db, txn, CS_T_LAYER_BLOBS, key, klen, &v, err);
    if (rc < 0)
        return rc;
    if (v.mv_size != LB_VAL_LEN) {
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(tree, hex);
        return cs_err(err, CS_ECORRUPT, 0, "layer_blobs record of tree %s has %zu bytes", hex,
                      v.mv_size);
    }
    cs_rd r;
    cs_rd_init(&r, v.mv_data, v.mv_size);
    memcpy(out->diff_id.b, cs_rd_raw(&r, 32), 32);
    memcpy(out->blob.b, cs_rd_raw(&r, 32), 32);
    out->size = cs_rd_u64(&r);
    return 0;
}

static int
lb_put(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_compression c, const cs_digest *orig,
       const cs_layer_blob *lb, cs_error **err)
{
    uint8_t key[LB_TS_KEY_LEN];
    size_t klen = lb_key(key, tree, c, orig);
    cs_buf v;
    cs_buf_init(&v);
    cs_buf_append(&v, lb->diff_id.b, 32);
    cs_buf_append(&v, lb->blob.b, 32);
    cs_buf_u64(&v, lb->size);
    int rc = cs_db_put(db, txn, CS_T_LAYER_BLOBS, key, klen, v.data, v.len, 0, err);
    cs_buf_release(&v);
    return rc < 0 ? rc : 0;
}

int
cs_layer_blob_get(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_compression c,
                  cs_layer_blob *out, cs_error **err)
{
    return lb_get(db, txn, tree, c, NULL, out, err);
}

int
cs_layer_blob_put(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_compression c,
                  const cs_layer_blob *lb, cs_error **err)
{
    return lb_put(db, txn, tree, c, NULL, lb, err);
}

bool
cs_layer_blob_record_blob(const void *v, size_t n, cs_digest *out)
{
    if (n != LB_VAL_LEN)
        return false;
    memcpy(out->b, (const uint8_t *) v + 32, 32);
    return true;
}

bool
export_lb_eq(const cs_layer_blob *a, const cs_layer_blob *b)
{
    return cs_digest_eq(&a->diff_id, &b->diff_id) && cs_digest_eq(&a->blob, &b->blob)
           && a->size == b->size;
}

/* The tarsplit diff_id of the layer's blob, or NULL when generated. */
static const cs_digest *
layer_orig(const layer *L)
{
    return L->ts ? &L->orig : NULL;
}

/* Two layers give the same blob. */
static bool
same_layer(const layer *a, const layer *b)
{
    return cs_digest_eq(&a->tree, &b->tree) && a->ts == b->ts
           && (!a->ts || cs_digest_eq(&a->orig, &b->orig));
}

int
export_read_blobs_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    exp *x = ctx;
    for (uint32_t i = 0; i < x->img->nlayers; i++) {
        layer *L = &x->layers[i];
        L->known = false;
        L->ts = false;
        cs_digest tt;
        cs_error *tmp = NULL;
        if (L->has_orig && !L->ts_bad && cs_tarsplit_tree(db, txn, &L->orig, &tt, &tmp) == 0)
            L->ts = cs_digest_eq(&tt, &L->tree);
        /* No usable tarsplit record (not found, or unreadable): the layer
         * is generated from its tree, which is always correct. */
        cs_error_clear(&tmp);
        int rc = lb_get(db, txn, &L->tree, x->comp, layer_orig(L), &L->lb, err);
        if (rc == -CS_ENOTFOUND) {
            cs_error_clear(err);
            continue;
        }
        if (rc < 0)
            return rc;
        L->known = true;
    }
    return 0;
}

typedef struct put_ctx {
    const cs_digest *tree;
    const cs_digest *orig;
    cs_compression comp;
    const cs_csink_result *res;
} put_ctx;

static int
put_blob_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    put_ctx *p = ctx;
    cs_layer_blob lb = { p->res->diff_id, p->res->blob, p->res->blob_size };
    int rc = lb_put(db, txn, p->tree, p->comp, p->orig, &lb, err);
    if (rc < 0 || p->comp == CS_COMP_NONE)
        return rc;
    /* The uncompressed tar came for free: record it too (docker-archive). */
    cs_layer_blob raw = { p->res->diff_id, p->res->diff_id, p->res->tar_size };
    return lb_put(db, txn, p->tree, CS_COMP_NONE, p->orig, &raw, err);
}

typedef struct put_many {
    exp *x;
    layer *const *L;
    const cs_csink_result *res;
    size_t n;
} put_many;

static int
put_blobs_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    put_many *m = ctx;
    int rc = 0;
    for (size_t i = 0; i < m->n && rc >= 0; i++) {
        put_ctx p = { &m->L[i]->tree, layer_orig(m->L[i]), m->x->comp, &m->res[i] };
        rc = put_blob_fn(db, txn, &p, err);
    }
    return rc;
}

void
export_record_blobs(exp *x, layer *const *L, const cs_csink_result *res, size_t n)
{
    put_many m = { x, L, res, n };
    /* The record only saves the next export a pass over the layer: failing
     * to write it (a full store file system, say, while the output goes
     * elsewhere) is a warning, never the export's failure. */
    cs_error *tmp = NULL;
    if (n > 0 && cs_db_write(x->db, put_blobs_fn, &m, &tmp) < 0)
        cs_store_warn_error(x->s, "recording layer digests", &tmp);
}

void
export_record_blob(exp *x, layer *L, const cs_csink_result *res)
{
    export_record_blobs(x, &L, res, 1);
}

bool
export_reuse_layer(exp *x, uint32_t i)
{
    layer *L = &x->layers[i];
    for (uint32_t j = 0; j < i; j++)
        if (same_layer(&x->layers[j], L)) {
            L->lb = x->layers[j].lb;
            L->known = true;
            return true;
        }
    return false;
}

/* ---- generating a layer ---- */

typedef struct gen_ctx {
    const cs_digest *tree;
    const cs_digest *orig; /* replay tarsplit[orig] */
    cs_compression comp;
    cs_sink_fn out;
    void *octx;
    cs_csink_result *res;
} gen_ctx;

static int
gen_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    gen_ctx *g = ctx;
    __attribute__((cleanup(cs_tree_freep))) cs_tree *t = NULL;
    __attribute__((cleanup(cs_tarsplit_freep))) cs_tarsplit *ts = NULL;
    int rc = g->orig ? cs_tarsplit_get(db, txn, g->orig, &ts, err)
                     : cs_tree_get(db, txn, g->tree, &t, err);
    if (rc < 0)
        return rc;
    cs_csink *s = NULL;
    rc = cs_csink_new(g->comp, 0, g->out, g->octx, &s, err);
    if (rc < 0)
        return rc;
    if (ts)
        rc = cs_tarsplit_write(db, txn, ts, cs_csink_write, s, err);
    else
        rc = cs_tree_write_tar(db, txn, t, cs_csink_write, s, err);
    if (rc == 0)
        rc = cs_csink_finish(s, g->res, err);
    cs_csink_free(s);
    return rc;
}

/* Generates the blob of tree, compressed with comp, into out. */
int
export_gen_layer(exp *x, const layer *L, cs_sink_fn out, void *octx, cs_csink_result *res,
                 cs_error **err)
{
    gen_ctx g = { &L->tree, layer_orig(L), x->comp, out, octx, res };
    int rc = cs_db_read(x->db, gen_fn, &g, err);
    if (rc < 0) {
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(&L->tree, hex);
        return cs_err_wrap(err, "layer %.12s", hex);
    }
    return 0;
}

/* A replay that does not hash to the diff_id it was recorded for (a corrupt
 * record) must not go out: the layer is generated from its tree instead. */
bool
export_replay_failed(layer *L, const cs_csink_result *res)
{
    if (!L->ts || cs_digest_eq(&res->diff_id, &L->orig))
        return false;
    L->ts = false;
    L->ts_bad = true;
    return true;
}

/* Generates the blob into the temp file fd (from its start). */
int
export_gen_layer_fd(exp *x, layer *L, int *fd, cs_csink_result *res, cs_error **err)
{
    int rc = export_gen_layer(x, L, cs_fd_sink, fd, res, err);
    if (rc == 0 && export_replay_failed(L, res)) {
        if (ftruncate(*fd, 0) < 0 || lseek(*fd, 0, SEEK_SET) < 0)
            return cs_err(err, CS_EIO, errno, "truncate temp file");
        rc = export_gen_layer(x, L, cs_fd_sink, fd, res, err);
    }
    return rc;
}
