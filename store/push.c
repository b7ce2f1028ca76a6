/* push.c - an image as a registry push sends it (see cstore/push.h): the
 * export's layer blobs, config and manifest (export_int.h), streamed.
 */
#include <pthread.h>
#include <string.h>
#include "cstore/lease.h"
#include "cstore/push.h"
#include "blobcache.h"
#include "export_int.h"

/* Bytes of learned blobs kept in memory, all layers together: a small new
 * layer (a one-line change) is then generated once, not twice. Bigger ones
 * are generated again into the upload. */
#define KEEP_MAX (32u << 20)

struct cs_push_image {
    exp x;
    cs_push_blob *layers;
    cs_buf *kept; /* per layer: the blob its learning pass made, when it fit */
    size_t kept_total;
    cs_push_blob config;
    cs_push_blob manifest;
    pthread_mutex_t mu; /* a corrected layer_blobs record */
};

/* A cs_sink_fn keeping a learned blob while the total stays under KEEP_MAX. */
typedef struct keep {
    cs_push_image *p;
    cs_buf *b;
    bool over;
} keep;

static int
keep_sink(void *ctx, const void *data, size_t n, cs_error **err)
{
    (void) err;
    keep *k = ctx;
    if (k->over)
        return 0;
    if (k->p->kept_total + n > KEEP_MAX) {
        k->over = true;
        k->p->kept_total -= k->b->len;
        cs_buf_release(k->b);
        cs_buf_init(k->b);
        return 0;
    }
    cs_buf_append(k->b, data, n);
    k->p->kept_total += n;
    return 0;
}

/* Learns the digests of layer i, not in layer_blobs: one pass of the
 * generator, its bytes kept when they fit. */
static int
learn_layer(cs_push_image *p, uint32_t i, cs_csink_result *res, cs_error **err)
{
    exp *x = &p->x;
    layer *L = &x->layers[i];
    keep k = { p, &p->kept[i], false };
    int rc = export_gen_layer(x, L, keep_sink, &k, res, err);
    if (rc == 0 && export_replay_failed(L, res)) {
        p->kept_total -= k.b->len;
        k.b->len = 0;
        k.over = false;
        rc = export_gen_layer(x, L, keep_sink, &k, res, err);
    }
    if (rc < 0)
        return rc;
    L->lb = (cs_layer_blob){ res->diff_id, res->blob, res->blob_size };
    L->known = true;
    return 0;
}

/* Every layer's digests: cached, or learned and then cached, all in one
 * transaction (as export records them). */
static int
learn_layers(cs_push_image *p, cs_error **err)
{
    exp *x = &p->x;
    uint32_t n = x->img->nlayers, nl = 0;
    cs_autofree layer **learned = cs_xcalloc(n ? n : 1, sizeof(*learned));
    cs_autofree cs_csink_result *res = cs_xcalloc(n ? n : 1, sizeof(*res));
    int rc = cs_db_read(x->db, export_read_blobs_fn, x, err);
    for (uint32_t i = 0; i < n && rc >= 0; i++) {
        layer *L = &x->layers[i];
        p->layers[i].dup = export_reuse_layer(x, i);
        if (L->known)
            continue;
        rc = learn_layer(p, i, &res[nl], err);
        learned[nl++] = L;
    }
    if (rc >= 0)
        export_record_blobs(x, learned, res, nl);
    return rc < 0 ? rc : 0;
}

static void
fill_descriptors(cs_push_image *p)
{
    exp *x = &p->x;
    for (uint32_t i = 0; i < x->img->nlayers; i++) {
        cs_push_blob *b = &p->layers[i];
        b->digest = x->layers[i].lb.blob;
        b->size = x->layers[i].lb.size;
        b->media_type = export_layer_media_type(x);
        b->tree = x->layers[i].tree;
    }
    p->config = (cs_push_blob){ .digest = x->config_d,
                                .size = x->config_len,
                                .media_type = export_config_media_type(x) };
    p->manifest = (cs_push_blob){ .digest = x->manifest_d,
                                  .size = x->manifest_len,
                                  .media_type = export_manifest_media_type(x) };
}

static int
check_options(cs_push_format fmt, cs_compression c, cs_error **err)
{
    if (fmt != CS_PUSH_OCI && fmt != CS_PUSH_DOCKER)
        return cs_err(err, CS_EINVAL, 0, "unknown push format %d", (int) fmt);
    if (c != CS_COMP_NONE && c != CS_COMP_GZIP && c != CS_COMP_ZSTD)
        return cs_err(err, CS_EINVAL, 0, "unknown compression %d", (int) c);
    if (fmt == CS_PUSH_DOCKER && c == CS_COMP_ZSTD)
        return cs_err(err, CS_EINVAL, 0,
                      "the docker format has no zstd layers: use --format oci or "
                      "--compression gzip");
    return 0;
}

int
cs_push_image_open(cs_store *s, const char *name, cs_push_format fmt, cs_compression c,
                   cs_push_image **out, cs_error **err)
{
    *out = NULL;
    int rc = check_options(fmt, c, err);
    if (rc < 0)
        return rc;
    cs_push_image *p = cs_xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    exp *x = &p->x;
    x->s = s;
    x->db = cs_store_db(s);
    x->name = name;
    x->fmt = CS_FMT_OCI_DIR; /* unused: no output file */
    x->comp = c;
    x->docker = fmt == CS_PUSH_DOCKER;
    rc = cs_lease_image(s, name, &x->img, err);
    if (rc < 0) {
        cs_push_image_free(p);
        return rc;
    }
    uint32_t n = x->img->nlayers;
    x->layers = cs_xcalloc(n ? n : 1, sizeof(*x->layers));
    p->layers = cs_xcalloc(n ? n : 1, sizeof(*p->layers));
    p->kept = cs_xcalloc(n ? n : 1, sizeof(*p->kept)); /* zeroed: empty cs_bufs */
    for (uint32_t i = 0; i < n; i++)
        x->layers[i].tree = x->img->layers[i];
    export_config_diff_ids(x);
    *out = p;
    return 0;
}

int
cs_push_image_prepare(cs_push_image *p, cs_error **err)
{
    exp *x = &p->x;
    int rc = learn_layers(p, err);
    if (rc >= 0)
        rc = export_build_config(x, err);
    if (rc < 0)
        return rc;
    export_build_manifest(x);
    fill_descriptors(p);
    return 0;
}

void
cs_push_image_free(cs_push_image *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; p->kept && i < p->x.img->nlayers; i++)
        cs_buf_release(&p->kept[i]);
    free(p->kept);
    export_release(&p->x);
    free(p->layers);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

const cs_digest *
cs_push_image_id(const cs_push_image *p)
{
    return &p->x.img->id;
}

uint32_t
cs_push_image_nlayers(const cs_push_image *p)
{
    return p->x.img->nlayers;
}

const cs_push_blob *
cs_push_image_layer(const cs_push_image *p, uint32_t i)
{
    return i < p->x.img->nlayers ? &p->layers[i] : NULL;
}

const cs_push_blob *
cs_push_image_config(const cs_push_image *p, const char **data, size_t *len)
{
    *data = p->x.config;
    *len = p->x.config_len;
    return &p->config;
}

const char *
cs_push_image_manifest(const cs_push_image *p, size_t *len, cs_push_blob *desc)
{
    *len = p->x.manifest_len;
    *desc = p->manifest;
    return p->x.manifest;
}

/* A kept blob into out, in pieces as a generator would give them. */
static int
write_kept(const cs_buf *b, cs_sink_fn out, void *octx, cs_error **err)
{
    for (size_t off = 0; off < b->len;) {
        size_t n = b->len - off < (1u << 20) ? b->len - off : (1u << 20);
        int rc = out(octx, b->data + off, n, err);
        if (rc < 0)
            return rc;
        off += n;
    }
    return 0;
}

int
cs_push_layer_write(cs_push_image *p, uint32_t i, cs_sink_fn out, void *octx, cs_error **err)
{
    if (i >= p->x.img->nlayers)
        return cs_err(err, CS_EINVAL, 0, "no layer %u", i);
    layer *L = &p->x.layers[i];
    if (p->kept[i].len > 0 && p->kept[i].len == L->lb.size)
        return write_kept(&p->kept[i], out, octx, err);
    int rc = cs_blobcache_stream(p->x.s, &L->lb.blob, L->lb.size, out, octx, err);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    cs_csink_result res;
    rc = export_gen_layer(&p->x, L, out, octx, &res, err);
    if (rc < 0)
        return rc;
    if (cs_digest_eq(&res.blob, &L->lb.blob) && res.blob_size == L->lb.size)
        return 0;
    /* The cached digests were wrong (a compressor whose output changed):
     * correct them for the next push; this one named them already. */
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(&L->tree, hex);
    if (!L->ts) {
        layer copy = *L;
        pthread_mutex_lock(&p->mu);
        export_record_blob(&p->x, &copy, &res);
        pthread_mutex_unlock(&p->mu);
    }
    return cs_err(err, CS_ECORRUPT, 0,
                  "layer %.12s: its blob is not the one its cached digest names (corrected: "
                  "push again)",
                  hex);
}

/* The manifest a push of name would send (export.h): the same preparation. */
int
cs_image_manifest_digest(cs_store *s, const char *name, cs_compression c, cs_digest *out,
                         cs_error **err)
{
    cs_push_image *p = NULL;
    int rc = cs_push_image_open(s, name, CS_PUSH_OCI, c, &p, err);
    if (rc == 0 && (rc = cs_push_image_prepare(p, err)) == 0) {
        cs_push_blob desc;
        size_t len;
        cs_push_image_manifest(p, &len, &desc);
        *out = desc.digest;
    }
    cs_push_image_free(p);
    return rc < 0 ? cs_err_wrap(err, "manifest of '%s'", name) : 0;
}
