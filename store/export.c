/* export.c - images out: OCI layout dir, OCI archive, docker-archive.
 *
 * Layer blobs are generated from trees (tarwrite.c) and compressed
 * (compress.c). A layer whose config diff_id has a tarsplit record of the
 * same tree (a loaded layer) is instead the original tar, replayed
 * (tarsplit.c), so the config and the image id stay those loaded; a replay
 * whose sha256 is not the diff_id is dropped for a regenerated tar. Their digests are cached in
 * layer_blobs, so a layer whose digests are known is streamed straight into its destination; an
 * unknown one is generated into a temp file first (an archive entry needs its size before its
 * bytes). Should a cached record ever disagree with the bytes generated (a compressor that changed
 * its output), the record is corrected and the export runs once more.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "compress.h"
#include "cstore/export.h"
#include "cstore/image.h"
#include "cstore/tarsplit.h"

#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_INDEX    "application/vnd.oci.image.index.v1+json"
#define MT_CONFIG   "application/vnd.oci.image.config.v1+json"
#define MT_LAYER    "application/vnd.oci.image.layer.v1.tar"
#define ANN_REF     "org.opencontainers.image.ref.name"
#define ANN_NAME    "io.containerd.image.name"
#define INDEX_MAX   (64u << 20)

/* ---- layer_blobs records ---- */

/* Key: tree | compression, for the tar generated from the tree; tree |
 * compression | diff_id for the original tar replayed from tarsplit[diff_id]
 * (gc keeps both while the tree lives: it looks at the first 32 bytes). */
#define LB_KEY_LEN    33
#define LB_TS_KEY_LEN 65
#define LB_VAL_LEN    72

static size_t
lb_key(uint8_t key[LB_TS_KEY_LEN], const cs_digest *tree, cs_compression c, const cs_digest *orig)
{
    memcpy(key, tree->b, 32);
    key[32] = (uint8_t) c;
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

static bool
lb_eq(const cs_layer_blob *a, const cs_layer_blob *b)
{
    return cs_digest_eq(&a->diff_id, &b->diff_id) && cs_digest_eq(&a->blob, &b->blob)
           && a->size == b->size;
}

/* ---- export state ---- */

typedef struct layer {
    cs_digest tree;
    cs_digest orig; /* the config's diff_id, when has_orig */
    bool has_orig;
    bool ts;          /* replay tarsplit[orig] instead of generating */
    bool ts_bad;      /* a replay did not give orig back: generate */
    cs_layer_blob lb; /* for the export's compression, when known */
    bool known;
} layer;

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

typedef struct exp {
    cs_db *db;
    const char *name;
    cs_format fmt;
    cs_compression comp;
    cs_image *img;
    char *normalized; /* "docker.io/library/golang:1.19" when NAME is a tag */
    char *tag;        /* "1.19" */
    layer *layers;
    char *config; /* config to export (diff_ids as generated) */
    size_t config_len;
    cs_digest config_d;
    char *manifest;
    size_t manifest_len;
    cs_digest manifest_d;
    bool retry; /* a cached record was wrong and has been corrected */
} exp;

static void
exp_release(exp *x)
{
    cs_image_free(x->img);
    free(x->normalized);
    free(x->tag);
    free(x->layers);
    free(x->config);
    free(x->manifest);
}

static int
read_image_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    exp *x = ctx;
    cs_digest id;
    int rc = cs_image_resolve(db, txn, x->name, &id, err);
    if (rc < 0)
        return rc;
    cs_image_free(x->img);
    x->img = NULL;
    rc = cs_image_get(db, txn, &id, &x->img, err);
    if (rc < 0)
        return rc;
    /* A tag (not an id) gets its name recorded in the output. */
    free(x->normalized);
    x->normalized = NULL;
    if (strncmp(x->name, "sha256:", 7) != 0) {
        cs_error *e2 = NULL;
        char *norm = NULL;
        cs_digest tid;
        if (cs_ref_normalize(x->name, &norm, &e2) == 0 && cs_tag_get(db, txn, norm, &tid, &e2) == 0
            && cs_digest_eq(&tid, &id))
            x->normalized = cs_steal(&norm);
        free(norm);
        cs_error_clear(&e2);
    }
    return 0;
}

static int
read_blobs_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    exp *x = ctx;
    for (uint32_t i = 0; i < x->img->nlayers; i++) {
        layer *L = &x->layers[i];
        L->known = false;
        L->ts = false;
        cs_digest tt;
        if (L->has_orig && !L->ts_bad && cs_tarsplit_tree(db, txn, &L->orig, &tt, NULL) == 0)
            L->ts = cs_digest_eq(&tt, &L->tree);
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

static int
record_blob(exp *x, layer *L, const cs_csink_result *res, cs_error **err)
{
    put_ctx p = { &L->tree, layer_orig(L), x->comp, res };
    int rc = cs_db_write(x->db, put_blob_fn, &p, err);
    if (rc < 0)
        return cs_err_wrap(err, "recording layer digests");
    return 0;
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
static int
gen_layer(exp *x, const layer *L, cs_sink_fn out, void *octx, cs_csink_result *res, cs_error **err)
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
static bool
replay_failed(layer *L, const cs_csink_result *res)
{
    if (!L->ts || cs_digest_eq(&res->diff_id, &L->orig))
        return false;
    L->ts = false;
    L->ts_bad = true;
    return true;
}

/* Generates the blob into the temp file fd (from its start). */
static int
gen_layer_fd(exp *x, layer *L, int *fd, cs_csink_result *res, cs_error **err)
{
    int rc = gen_layer(x, L, cs_fd_sink, fd, res, err);
    if (rc == 0 && replay_failed(L, res)) {
        if (ftruncate(*fd, 0) < 0 || lseek(*fd, 0, SEEK_SET) < 0)
            return cs_err(err, CS_EIO, errno, "truncate temp file");
        rc = gen_layer(x, L, cs_fd_sink, fd, res, err);
    }
    return rc;
}

/* ---- config and manifest ---- */

static const char *
layer_media_type(cs_compression c)
{
    switch (c) {
    case CS_COMP_GZIP:
        return MT_LAYER "+gzip";
    case CS_COMP_ZSTD:
        return MT_LAYER "+zstd";
    default:
        return MT_LAYER;
    }
}

static json_t *
descriptor(const char *media_type, const cs_digest *d, uint64_t size)
{
    char ds[CS_DIGEST_STR];
    cs_digest_str(d, ds);
    json_t *o = json_object();
    json_object_set_new(o, "mediaType", json_string(media_type));
    json_object_set_new(o, "digest", json_string(ds));
    json_object_set_new(o, "size", json_integer((json_int_t) size));
    return o;
}

static char *
dump_json(json_t *j, size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (!s)
        abort();
    *len = strlen(s);
    return s;
}

/* The config's rootfs.diff_ids: the tarsplit records to look for. A config
 * without them (or with another count) has none. */
static void
config_diff_ids(exp *x)
{
    json_t *root = json_loadb(x->img->config, x->img->config_len, 0, NULL);
    json_t *ids = json_object_get(json_object_get(root, "rootfs"), "diff_ids");
    if (json_is_array(ids) && json_array_size(ids) == x->img->nlayers)
        for (uint32_t i = 0; i < x->img->nlayers; i++) {
            const char *s = json_string_value(json_array_get(ids, i));
            x->layers[i].has_orig = s && cs_digest_parse(s, &x->layers[i].orig);
        }
    json_decref(root);
}

/* The config to export: the stored one when its rootfs.diff_ids are the
 * diff_ids of our tars, else a copy with them replaced (images loaded from
 * elsewhere were made by other tar writers). Other fields keep their order. */
static int
build_config(exp *x, cs_error **err)
{
    const cs_image *img = x->img;
    json_error_t je;
    json_t *root = json_loadb(img->config, img->config_len, 0, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return cs_err(err, CS_EPARSE, 0, "image config: %s", root ? "not an object" : je.text);
    }
    json_t *rootfs = json_object_get(root, "rootfs");
    json_t *ids = json_is_object(rootfs) ? json_object_get(rootfs, "diff_ids") : NULL;
    bool same = json_is_array(ids) && json_array_size(ids) == img->nlayers;
    json_t *want = json_array();
    for (uint32_t i = 0; i < img->nlayers; i++) {
        char ds[CS_DIGEST_STR];
        cs_digest_str(&x->layers[i].lb.diff_id, ds);
        json_array_append_new(want, json_string(ds));
        if (same) {
            const char *have = json_string_value(json_array_get(ids, i));
            same = have && strcmp(have, ds) == 0;
        }
    }
    free(x->config);
    if (same) {
        json_decref(want);
        x->config = cs_xstrndup(img->config, img->config_len);
        x->config_len = img->config_len;
    } else {
        if (!json_is_object(rootfs)) {
            rootfs = json_object();
            json_object_set_new(rootfs, "type", json_string("layers"));
            json_object_set_new(root, "rootfs", rootfs);
        }
        json_object_set_new(rootfs, "diff_ids", want);
        x->config = dump_json(root, &x->config_len);
    }
    json_decref(root);
    cs_sha256(x->config, x->config_len, &x->config_d);
    return 0;
}

static void
build_manifest(exp *x)
{
    json_t *m = json_object();
    json_object_set_new(m, "schemaVersion", json_integer(2));
    json_object_set_new(m, "mediaType", json_string(MT_MANIFEST));
    json_object_set_new(m, "config", descriptor(MT_CONFIG, &x->config_d, x->config_len));
    json_t *ls = json_array();
    for (uint32_t i = 0; i < x->img->nlayers; i++)
        json_array_append_new(
            ls, descriptor(layer_media_type(x->comp), &x->layers[i].lb.blob, x->layers[i].lb.size));
    json_object_set_new(m, "layers", ls);
    free(x->manifest);
    x->manifest = dump_json(m, &x->manifest_len);
    json_decref(m);
    cs_sha256(x->manifest, x->manifest_len, &x->manifest_d);
}

static json_t *
manifest_descriptor(exp *x)
{
    json_t *d = descriptor(MT_MANIFEST, &x->manifest_d, x->manifest_len);
    if (x->normalized) {
        json_t *ann = json_object();
        json_object_set_new(ann, ANN_NAME, json_string(x->normalized));
        json_object_set_new(ann, ANN_REF, json_string(x->tag));
        json_object_set_new(d, "annotations", ann);
    }
    return d;
}

static char *
index_json(exp *x, json_t *old, size_t *len)
{
    json_t *idx = old;
    if (idx) {
        json_incref(idx);
    } else {
        idx = json_object();
        json_object_set_new(idx, "schemaVersion", json_integer(2));
        json_object_set_new(idx, "mediaType", json_string(MT_INDEX));
    }
    json_t *ms = json_object_get(idx, "manifests");
    if (!json_is_array(ms)) {
        ms = json_array();
        json_object_set_new(idx, "manifests", ms);
    }
    /* Our entry replaces the one of the same name (or, untagged, the same
     * untagged manifest). */
    char ds[CS_DIGEST_STR];
    cs_digest_str(&x->manifest_d, ds);
    for (size_t i = json_array_size(ms); i-- > 0;) {
        json_t *m = json_array_get(ms, i);
        const char *ref =
            json_string_value(json_object_get(json_object_get(m, "annotations"), ANN_REF));
        const char *dg = json_string_value(json_object_get(m, "digest"));
        bool drop = x->tag ? ref && strcmp(ref, x->tag) == 0 : !ref && dg && !strcmp(dg, ds);
        if (drop)
            json_array_remove(ms, i);
    }
    json_array_append_new(ms, manifest_descriptor(x));
    char *s = dump_json(idx, len);
    json_decref(idx);
    return s;
}

/* docker-archive manifest.json */
static char *
docker_manifest_json(exp *x, const char *familiar, size_t *len)
{
    char hex[CS_DIGEST_HEX];
    json_t *m = json_object();
    cs_digest_hex(&x->config_d, hex);
    char *cfg = cs_xasprintf("%s.json", hex);
    json_object_set_new(m, "Config", json_string(cfg));
    free(cfg);
    if (familiar) {
        json_t *tags = json_array();
        json_array_append_new(tags, json_string(familiar));
        json_object_set_new(m, "RepoTags", tags);
    } else {
        json_object_set_new(m, "RepoTags", json_null());
    }
    json_t *ls = json_array();
    for (uint32_t i = 0; i < x->img->nlayers; i++) {
        cs_digest_hex(&x->layers[i].lb.diff_id, hex);
        char *p = cs_xasprintf("%s/layer.tar", hex);
        json_array_append_new(ls, json_string(p));
        free(p);
    }
    json_object_set_new(m, "Layers", ls);
    json_t *arr = json_array();
    json_array_append_new(arr, m);
    char *s = dump_json(arr, len);
    json_decref(arr);
    return s;
}

/* docker-archive "repositories": {"golang":{"1.19":"<top layer id>"}} */
static char *
docker_repositories_json(exp *x, const char *familiar, size_t *len)
{
    char *repo = cs_xstrdup(familiar);
    char *slash = strrchr(repo, '/');
    char *colon = strrchr(slash ? slash : repo, ':');
    if (colon)
        *colon = '\0';
    char hex[CS_DIGEST_HEX] = "";
    if (x->img->nlayers > 0)
        cs_digest_hex(&x->layers[x->img->nlayers - 1].lb.diff_id, hex);
    json_t *tags = json_object();
    json_object_set_new(tags, x->tag, json_string(hex));
    json_t *r = json_object();
    json_object_set_new(r, repo, tags);
    free(repo);
    char *s = dump_json(r, len);
    json_decref(r);
    return s;
}

/* ---- outer tar (oci-archive, docker-archive) ---- */

typedef struct outer {
    struct archive *a;
    struct archive_entry *ae;
    int fd;
    int sys_errno; /* of a failed write */
    bool failed;
} outer;

static la_ssize_t
outer_write_cb(struct archive *a, void *client, const void *buf, size_t n)
{
    (void) a;
    outer *o = client;
    if (o->failed)
        return -1;
    if (cs_write_all(o->fd, buf, n) < 0) {
        o->sys_errno = errno;
        o->failed = true;
        return -1;
    }
    return (la_ssize_t) n;
}

static int
outer_fail(outer *o, cs_error **err, const char *what)
{
    if (o->sys_errno)
        return cs_err(err, o->sys_errno == ENOSPC ? CS_EFULL : CS_EIO, o->sys_errno, "%s", what);
    return cs_err(err, CS_EIO, 0, "%s: %s", what, archive_error_string(o->a));
}

static int
outer_open(outer *o, int fd, cs_error **err)
{
    memset(o, 0, sizeof(*o));
    o->fd = fd;
    o->a = archive_write_new();
    o->ae = archive_entry_new();
    if (!o->a || !o->ae)
        abort();
    if (archive_write_set_format_pax_restricted(o->a) != ARCHIVE_OK
        || archive_write_set_bytes_per_block(o->a, 10240) != ARCHIVE_OK
        || archive_write_set_bytes_in_last_block(o->a, 1) != ARCHIVE_OK
        || archive_write_open(o->a, o, NULL, outer_write_cb, NULL) != ARCHIVE_OK)
        return outer_fail(o, err, "archive");
    return 0;
}

static void
outer_free(outer *o)
{
    o->failed = true; /* no trailer after an error; a no-op after close */
    archive_entry_free(o->ae);
    if (o->a)
        archive_write_free(o->a);
    o->a = NULL;
    o->ae = NULL;
}

static int
outer_header(outer *o, const char *path, bool dir, uint64_t size, cs_error **err)
{
    archive_entry_clear(o->ae);
    archive_entry_copy_pathname(o->ae, path);
    archive_entry_set_filetype(o->ae, dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(o->ae, dir ? 0755 : 0644);
    archive_entry_set_mtime(o->ae, 0, 0);
    archive_entry_set_size(o->ae, dir ? 0 : (la_int64_t) size);
    if (archive_write_header(o->a, o->ae) < ARCHIVE_WARN)
        return outer_fail(o, err, path);
    return 0;
}

/* A cs_sink_fn into the current entry. Bytes beyond the declared size are
 * dropped: the caller compares the sizes afterwards. */
static int
outer_data(void *ctx, const void *p, size_t n, cs_error **err)
{
    outer *o = ctx;
    while (n > 0) {
        la_ssize_t w = archive_write_data(o->a, p, n);
        if (w < 0)
            return outer_fail(o, err, "archive data");
        if (w == 0)
            return 0;
        p = (const uint8_t *) p + w;
        n -= (size_t) w;
    }
    return 0;
}

static int
outer_file(outer *o, const char *path, const void *p, size_t n, cs_error **err)
{
    int rc = outer_header(o, path, false, n, err);
    if (rc == 0)
        rc = outer_data(o, p, n, err);
    return rc;
}

static int
outer_copy_fd(outer *o, const char *path, int fd, uint64_t size, cs_error **err)
{
    int rc = outer_header(o, path, false, size, err);
    if (rc < 0)
        return rc;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return cs_err(err, CS_EIO, errno, "seek temp file");
    cs_autofree uint8_t *buf = cs_xmalloc(1u << 20);
    uint64_t left = size;
    while (left > 0) {
        size_t want = left < (1u << 20) ? (size_t) left : (1u << 20);
        ssize_t r = cs_read_full(fd, buf, want);
        if (r < 0)
            return cs_err(err, CS_EIO, errno, "read temp file");
        if ((size_t) r != want)
            return cs_err(err, CS_EIO, 0, "temp file is short");
        rc = outer_data(o, buf, want, err);
        if (rc < 0)
            return rc;
        left -= want;
    }
    return 0;
}

/* ---- small helpers ---- */

static const char *
tmp_dir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* An anonymous temp file (already unlinked) in dir. */
static int
anon_tmpfile(const char *dir, int *out, cs_error **err)
{
    cs_autofree char *p = cs_xasprintf("%s/.cstore-export-XXXXXX", dir);
    int fd = mkostemp(p, O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "temp file in '%s'", dir);
    unlink(p);
    *out = fd;
    return 0;
}

static bool
seen_digest(const cs_digest *list, size_t n, const cs_digest *d)
{
    for (size_t i = 0; i < n; i++)
        if (cs_digest_eq(&list[i], d))
            return true;
    return false;
}

/* ---- archives ---- */

/* Writes layer L into the archive: streamed when its digests are known,
 * else generated into a temp file first. written/nwritten: blobs already in
 * the archive (by blob digest), skipped. */
static int
archive_layer(exp *x, outer *o, layer *L, cs_digest *written, size_t *nwritten, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    int rc;
    if (L->known) {
        if (seen_digest(written, *nwritten, &L->lb.blob))
            return 0;
    } else {
        cs_autoclose int fd = -1;
        rc = anon_tmpfile(tmp_dir(), &fd, err);
        if (rc < 0)
            return rc;
        cs_csink_result res;
        rc = gen_layer_fd(x, L, &fd, &res, err);
        if (rc < 0)
            return rc;
        rc = record_blob(x, L, &res, err);
        if (rc < 0)
            return rc;
        L->lb = (cs_layer_blob){ res.diff_id, res.blob, res.blob_size };
        L->known = true;
        if (seen_digest(written, *nwritten, &L->lb.blob))
            return 0;
        written[(*nwritten)++] = L->lb.blob;
        cs_digest_hex(&L->lb.blob, hex);
        if (x->fmt == CS_FMT_DOCKER_ARCHIVE) {
            cs_autofree char *d = cs_xasprintf("%s/", hex);
            cs_autofree char *v = cs_xasprintf("%s/VERSION", hex);
            cs_autofree char *l = cs_xasprintf("%s/layer.tar", hex);
            if ((rc = outer_header(o, d, true, 0, err)) < 0
                || (rc = outer_file(o, v, "1.0", 3, err)) < 0)
                return rc;
            return outer_copy_fd(o, l, fd, res.blob_size, err);
        }
        cs_autofree char *p = cs_xasprintf("blobs/sha256/%s", hex);
        return outer_copy_fd(o, p, fd, res.blob_size, err);
    }

    written[(*nwritten)++] = L->lb.blob;
    cs_digest_hex(&L->lb.blob, hex);
    cs_autofree char *p = NULL;
    if (x->fmt == CS_FMT_DOCKER_ARCHIVE) {
        cs_autofree char *d = cs_xasprintf("%s/", hex);
        cs_autofree char *v = cs_xasprintf("%s/VERSION", hex);
        if ((rc = outer_header(o, d, true, 0, err)) < 0
            || (rc = outer_file(o, v, "1.0", 3, err)) < 0)
            return rc;
        p = cs_xasprintf("%s/layer.tar", hex);
    } else {
        p = cs_xasprintf("blobs/sha256/%s", hex);
    }
    rc = outer_header(o, p, false, L->lb.size, err);
    if (rc < 0)
        return rc;
    cs_csink_result res;
    rc = gen_layer(x, L, outer_data, o, &res, err);
    if (rc < 0)
        return rc;
    if (replay_failed(L, &res)) {
        x->retry = true; /* then without the replay */
        return cs_err(err, CS_ECORRUPT, 0, "layer %.12s: tarsplit record gives other bytes", hex);
    }
    cs_layer_blob got = { res.diff_id, res.blob, res.blob_size };
    if (!lb_eq(&got, &L->lb)) {
        rc = record_blob(x, L, &res, err);
        if (rc < 0)
            return rc;
        x->retry = true;
        return cs_err(err, CS_ECORRUPT, 0, "layer %.12s: cached digests differ from its tar", hex);
    }
    return 0;
}

static int
oci_archive_meta(exp *x, outer *o, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    int rc;
    build_manifest(x);
    cs_digest_hex(&x->config_d, hex);
    cs_autofree char *cp = cs_xasprintf("blobs/sha256/%s", hex);
    if ((rc = outer_file(o, cp, x->config, x->config_len, err)) < 0)
        return rc;
    cs_digest_hex(&x->manifest_d, hex);
    cs_autofree char *mp = cs_xasprintf("blobs/sha256/%s", hex);
    if ((rc = outer_file(o, mp, x->manifest, x->manifest_len, err)) < 0)
        return rc;
    size_t ilen;
    cs_autofree char *idx = index_json(x, NULL, &ilen);
    return outer_file(o, "index.json", idx, ilen, err);
}

static int
docker_archive_meta(exp *x, outer *o, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    int rc;
    cs_digest_hex(&x->config_d, hex);
    cs_autofree char *familiar = x->normalized ? cs_ref_familiar(x->normalized) : NULL;
    cs_autofree char *cp = cs_xasprintf("%s.json", hex);
    if ((rc = outer_file(o, cp, x->config, x->config_len, err)) < 0)
        return rc;
    size_t mlen;
    cs_autofree char *man = docker_manifest_json(x, familiar, &mlen);
    if ((rc = outer_file(o, "manifest.json", man, mlen, err)) < 0)
        return rc;
    if (!familiar)
        return 0;
    size_t rlen;
    cs_autofree char *repos = docker_repositories_json(x, familiar, &rlen);
    return outer_file(o, "repositories", repos, rlen, err);
}

static int
write_archive_entries(exp *x, outer *o, cs_error **err)
{
    int rc;
    uint32_t n = x->img->nlayers;
    cs_autofree cs_digest *written = cs_xcalloc(n ? n : 1, sizeof(*written));
    size_t nwritten = 0;

    if (x->fmt == CS_FMT_OCI_ARCHIVE) {
        static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
        if ((rc = outer_file(o, "oci-layout", layout, sizeof(layout) - 1, err)) < 0
            || (rc = outer_header(o, "blobs/", true, 0, err)) < 0
            || (rc = outer_header(o, "blobs/sha256/", true, 0, err)) < 0)
            return rc;
    }
    for (uint32_t i = 0; i < n; i++) {
        layer *L = &x->layers[i];
        /* A tree used twice: its first export gave the digests. */
        for (uint32_t j = 0; j < i; j++)
            if (same_layer(&x->layers[j], L)) {
                L->lb = x->layers[j].lb;
                L->known = true;
            }
        if ((rc = archive_layer(x, o, L, written, &nwritten, err)) < 0)
            return rc;
    }
    if ((rc = build_config(x, err)) < 0)
        return rc;
    if (x->fmt == CS_FMT_OCI_ARCHIVE)
        return oci_archive_meta(x, o, err);
    return docker_archive_meta(x, o, err);
}

static int
write_archive(exp *x, int fd, cs_error **err)
{
    outer o;
    int rc = outer_open(&o, fd, err);
    if (rc == 0)
        rc = write_archive_entries(x, &o, err);
    if (rc == 0 && archive_write_close(o.a) != ARCHIVE_OK)
        rc = outer_fail(&o, err, "archive");
    outer_free(&o);
    return rc;
}

/* Writes the archive to a temp file next to path, renamed into place only
 * when complete. */
static int
export_archive(exp *x, const char *path, cs_error **err)
{
    cs_autofree char *dir = cs_xstrdup(path);
    char *slash = strrchr(dir, '/');
    const char *base = path;
    if (slash) {
        base = path + (slash - dir) + 1;
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    } else {
        free(dir);
        dir = cs_xstrdup(".");
    }
    cs_autofree char *tmp = cs_xasprintf("%s/.%s.tmp-XXXXXX", dir, base);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "create '%s'", tmp);
    int rc = write_archive(x, fd, err);
    if (rc == 0 && fchmod(fd, 0644) < 0)
        rc = cs_err(err, CS_EIO, errno, "chmod '%s'", tmp);
    if (rc == 0 && fsync(fd) < 0)
        rc = cs_err(err, errno == ENOSPC ? CS_EFULL : CS_EIO, errno, "fsync '%s'", tmp);
    if (close(fd) < 0 && rc == 0)
        rc = cs_err(err, CS_EIO, errno, "close '%s'", tmp);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = cs_err(err, CS_EIO, errno, "rename to '%s'", path);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* ---- OCI layout directory ---- */

static bool
file_has_size(const char *path, uint64_t size)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t) st.st_size == size;
}

static int
dir_layer(exp *x, const char *blobs, layer *L, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    if (L->known) {
        cs_digest_hex(&L->lb.blob, hex);
        cs_autofree char *p = cs_xasprintf("%s/%s", blobs, hex);
        if (file_has_size(p, L->lb.size))
            return 0;
    }
    cs_autofree char *tmp = cs_xasprintf("%s/.tmp-layer-XXXXXX", blobs);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "create '%s'", tmp);
    cs_csink_result res;
    int rc = gen_layer_fd(x, L, &fd, &res, err);
    if (rc == 0 && fchmod(fd, 0644) < 0)
        rc = cs_err(err, CS_EIO, errno, "chmod '%s'", tmp);
    if (rc == 0 && fsync(fd) < 0)
        rc = cs_err(err, errno == ENOSPC ? CS_EFULL : CS_EIO, errno, "fsync '%s'", tmp);
    if (close(fd) < 0 && rc == 0)
        rc = cs_err(err, CS_EIO, errno, "close '%s'", tmp);
    cs_digest_hex(&res.blob, hex);
    cs_autofree char *final = rc == 0 ? cs_xasprintf("%s/%s", blobs, hex) : NULL;
    if (rc == 0 && rename(tmp, final) < 0)
        rc = cs_err(err, CS_EIO, errno, "rename to '%s'", final);
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    cs_layer_blob got = { res.diff_id, res.blob, res.blob_size };
    if (!L->known || !lb_eq(&got, &L->lb)) {
        rc = record_blob(x, L, &res, err);
        if (rc < 0)
            return rc;
    }
    L->lb = got;
    L->known = true;
    return 0;
}

static int
dir_small_blob(const char *blobs, const void *p, size_t n, const cs_digest *d, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(d, hex);
    cs_autofree char *path = cs_xasprintf("%s/%s", blobs, hex);
    if (file_has_size(path, n))
        return 0;
    return cs_write_file_atomic(path, p, n, err);
}

static int
export_dir(exp *x, const char *path, cs_error **err)
{
    struct stat st;
    cs_autofree char *layout_path = cs_path_join(path, "oci-layout");
    cs_autofree char *index_path = cs_path_join(path, "index.json");
    json_t *old = NULL;
    char *idx = NULL;
    int rc = 0;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return cs_err(err, CS_EEXIST, 0, "'%s' exists and is not a directory", path);
        if (access(layout_path, F_OK) == 0) {
            /* An existing layout: our manifest joins its index. */
            if (access(index_path, F_OK) == 0) {
                cs_buf b;
                cs_buf_init(&b);
                rc = cs_read_file(index_path, INDEX_MAX, &b, err);
                if (rc < 0)
                    return rc;
                json_error_t je;
                old = json_loadb((const char *) b.data, b.len, 0, &je);
                cs_buf_release(&b);
                if (!json_is_object(old)) {
                    json_decref(old);
                    return cs_err(err, CS_EPARSE, 0, "'%s': %s", index_path,
                                  old ? "not an object" : je.text);
                }
            }
        } else {
            int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd < 0)
                return cs_err(err, CS_EIO, errno, "open '%s'", path);
            DIR *d = fdopendir(dfd);
            if (!d) {
                close(dfd);
                return cs_err(err, CS_EIO, errno, "open '%s'", path);
            }
            bool empty = true;
            struct dirent *de;
            while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                    empty = false;
            closedir(d);
            if (!empty)
                return cs_err(err, CS_EEXIST, 0, "'%s' exists and is not an OCI layout", path);
        }
    } else if (errno != ENOENT) {
        return cs_err(err, CS_EIO, errno, "stat '%s'", path);
    }

    cs_autofree char *blobs = cs_path_join(path, "blobs/sha256");
    if ((rc = cs_mkdir_p(blobs, 0755, err)) < 0)
        goto out;
    for (uint32_t i = 0; i < x->img->nlayers; i++) {
        layer *L = &x->layers[i];
        /* A tree used twice: its first export gave the digests. */
        bool dup = false;
        for (uint32_t j = 0; j < i && !dup; j++)
            if (same_layer(&x->layers[j], L)) {
                L->lb = x->layers[j].lb;
                L->known = dup = true;
            }
        if (!dup && (rc = dir_layer(x, blobs, L, err)) < 0)
            goto out;
    }
    if ((rc = build_config(x, err)) < 0)
        goto out;
    build_manifest(x);
    if ((rc = dir_small_blob(blobs, x->config, x->config_len, &x->config_d, err)) < 0
        || (rc = dir_small_blob(blobs, x->manifest, x->manifest_len, &x->manifest_d, err)) < 0)
        goto out;
    static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    if ((rc = cs_write_file_atomic(layout_path, layout, sizeof(layout) - 1, err)) < 0)
        goto out;
    size_t ilen;
    idx = index_json(x, old, &ilen);
    rc = cs_write_file_atomic(index_path, idx, ilen, err);
out:
    free(idx);
    json_decref(old);
    return rc;
}

/* ---- entry point ---- */

int
cs_export(cs_store *s, const char *name, const char *path, cs_format fmt, cs_compression c,
          cs_error **err)
{
    exp x = { 0 };
    x.db = cs_store_db(s);
    x.name = name;
    x.fmt = fmt;
    /* docker-archive layers are plain tars, whatever was asked. */
    x.comp = fmt == CS_FMT_DOCKER_ARCHIVE ? CS_COMP_NONE : c;
    if (x.comp != CS_COMP_NONE && x.comp != CS_COMP_GZIP && x.comp != CS_COMP_ZSTD)
        return cs_err(err, CS_EINVAL, 0, "unknown compression %d", (int) c);
    if (fmt != CS_FMT_OCI_DIR && fmt != CS_FMT_OCI_ARCHIVE && fmt != CS_FMT_DOCKER_ARCHIVE)
        return cs_err(err, CS_EINVAL, 0, "unknown export format %d", (int) fmt);

    int rc = cs_db_read(x.db, read_image_fn, &x, err);
    if (rc < 0)
        goto out;
    if (x.normalized) {
        const char *slash = strrchr(x.normalized, '/');
        const char *colon = strrchr(slash ? slash : x.normalized, ':');
        x.tag = cs_xstrdup(colon ? colon + 1 : "latest");
    }
    x.layers = cs_xcalloc(x.img->nlayers ? x.img->nlayers : 1, sizeof(*x.layers));
    for (uint32_t i = 0; i < x.img->nlayers; i++)
        x.layers[i].tree = x.img->layers[i];
    config_diff_ids(&x);

    for (int attempt = 0; attempt < 2; attempt++) {
        x.retry = false;
        rc = cs_db_read(x.db, read_blobs_fn, &x, err);
        if (rc < 0)
            break;
        if (fmt == CS_FMT_OCI_DIR)
            rc = export_dir(&x, path, err);
        else
            rc = export_archive(&x, path, err);
        if (rc == 0 || !x.retry)
            break;
        if (attempt == 0)
            cs_error_clear(err);
    }
    if (rc < 0)
        cs_err_wrap(err, "export to '%s'", path);
out:
    exp_release(&x);
    return rc;
}
