/* export_int.h - what the export files share (private to libcstore).
 *
 * export.c resolves the image and runs the export (twice at most: a cached
 * record found wrong is corrected, then the export runs again);
 * export_blob.c owns layer blobs (generation, the layer_blobs cache);
 * export_oci.c writes the OCI and docker JSON; export_archive.c and
 * export_dir.c write the two kinds of output. One thread.
 */
#ifndef CSTORE_EXPORT_INT_H
#define CSTORE_EXPORT_INT_H

#include <jansson.h>
#include "compress.h"
#include "cstore/export.h"
#include "cstore/image.h"

#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_INDEX    "application/vnd.oci.image.index.v1+json"
#define MT_CONFIG   "application/vnd.oci.image.config.v1+json"
#define MT_LAYER    "application/vnd.oci.image.layer.v1.tar"
#define ANN_REF     "org.opencontainers.image.ref.name"
#define ANN_NAME    "io.containerd.image.name"
#define OCI_LAYOUT  "{\"imageLayoutVersion\":\"1.0.0\"}"
/* Docker schema 2 (a registry push with --format docker) */
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER    "application/vnd.docker.image.rootfs.diff.tar"

typedef struct layer {
    cs_digest tree;
    cs_digest orig; /* the config's diff_id, when has_orig */
    bool has_orig;
    bool ts;          /* replay tarsplit[orig] instead of generating */
    bool ts_bad;      /* a replay did not give orig back: generate */
    cs_layer_blob lb; /* for the export's compression, when known */
    bool known;
} layer;

typedef struct exp {
    cs_store *s; /* for warnings */
    cs_db *db;
    const char *name;
    cs_format fmt;
    cs_compression comp;
    cs_image *img;
    char *normalized;  /* "docker.io/library/golang:1.19" when NAME is a tag */
    char *tag;         /* "1.19" */
    char *const *more; /* more names to record (cs_export_names), may be NULL */
    char **names;      /* NAME and more, normalized, those that are tags of the
                          image still (a docker-archive's RepoTags) */
    size_t nnames;
    layer *layers;
    char *config; /* config to export (diff_ids as generated) */
    size_t config_len;
    cs_digest config_d;
    char *manifest;
    size_t manifest_len;
    cs_digest manifest_d;
    bool retry;  /* a cached record was wrong and has been corrected */
    bool docker; /* manifest with Docker schema 2 media types (push) */
} exp;

/* Frees what x owns (not x). */
void export_release(exp *x);

/* ---- layer blobs (export_blob.c) ---- */

/* A cs_db_fn: fills each layer's tarsplit choice and cached digests (known). */
int export_read_blobs_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err);
/* Generates layer L's blob, compressed as the export asks, into out. */
int export_gen_layer(exp *x, const layer *L, cs_sink_fn out, void *octx, cs_csink_result *res,
                     cs_error **err);
/* The same into the temp file *fd (from its start), regenerated from the
 * tree when a tarsplit replay does not give the diff_id back. */
int export_gen_layer_fd(exp *x, layer *L, int *fd, cs_csink_result *res, cs_error **err);
/* True (and L switched to generation) when a replay gave other bytes. */
bool export_replay_failed(layer *L, const cs_csink_result *res);
/* A mkostemp template for a temp file beside an output in dir:
 * "DIR/.BASE.cstore-tmp-PID-XXXXXX", so its owner is known. Caller frees. */
char *export_tmp_template(const char *dir, const char *base);
/* Removes the temp files (export_tmp_template) in dir of processes that are
 * gone (cs_store_pid_gone): left by killed exports. Failures are warnings. */
void export_clean_stale(exp *x, const char *dir);
/* Records the digests of a generated blob in layer_blobs. A record that
 * cannot be written (a full store file system) is only a warning. */
void export_record_blob(exp *x, layer *L, const cs_csink_result *res);
/* The same for n layers (L[i] with res[i]) in one transaction. */
void export_record_blobs(exp *x, layer *const *L, const cs_csink_result *res, size_t n);
bool export_lb_eq(const cs_layer_blob *a, const cs_layer_blob *b);
/* A layer whose blob an earlier layer of the image already gave takes its
 * digests (true): a tree used twice is written once. */
bool export_reuse_layer(exp *x, uint32_t i);

/* ---- JSON (export_oci.c) ---- */

/* Reads the config's rootfs.diff_ids into the layers' orig. */
void export_config_diff_ids(exp *x);
/* x->config (and its digest): the stored config with the diff_ids of the
 * blobs written. */
int export_build_config(exp *x, cs_error **err);
/* x->manifest (and its digest): OCI, or Docker schema 2 when x->docker. */
void export_build_manifest(exp *x);
const char *export_layer_media_type(const exp *x);
const char *export_config_media_type(const exp *x);
const char *export_manifest_media_type(const exp *x);
/* index.json: old (borrowed, may be NULL) with our manifest's entry. */
char *export_index_json(exp *x, json_t *old, size_t *len);
/* familiar: the names in Docker's short form (n of them, 0: untagged). */
char *export_docker_manifest_json(exp *x, char *const *familiar, size_t n, size_t *len);
char *export_docker_repositories_json(exp *x, char *const *familiar, size_t n, size_t *len);

/* ---- writers ---- */

int export_write_archive(exp *x, const char *path, cs_error **err);
int export_write_dir(exp *x, const char *path, cs_error **err);
/* Finishes temp file fd: mode 0644, fsync, close, rename to path. fd is
 * closed whatever happens; tmp is unlinked on failure. */
int export_commit_tmp(int fd, const char *tmp, const char *path, cs_error **err);

#endif
