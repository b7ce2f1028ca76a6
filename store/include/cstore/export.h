/* export.h - images out: deterministic tar layers generated from trees.
 *
 * The same tree always yields the same tar bytes, so the same digests; they
 * are cached in layer_blobs after the first export:
 *   key tree digest[32] | compression u8 -> diff_id[32] | blob[32] | size u64
 */
#ifndef CSTORE_EXPORT_H
#define CSTORE_EXPORT_H

#include <stdint.h>
#include "cstore/content.h"
#include "cstore/ingest.h"
#include "cstore/store.h"
#include "cstore/tree.h"

typedef enum cs_format {
    CS_FMT_OCI_ARCHIVE,
    CS_FMT_OCI_DIR,
    CS_FMT_DOCKER_ARCHIVE,
} cs_format;

typedef struct cs_layer_blob {
    cs_digest diff_id, blob;
    uint64_t size; /* compressed blob size */
} cs_layer_blob;

int cs_layer_blob_get(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_compression c,
                      cs_layer_blob *out, cs_error **err);
int cs_layer_blob_put(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_compression c,
                      const cs_layer_blob *lb, cs_error **err);
/* The blob digest a layer_blobs record value names (false: not a record);
 * gc keeps the blob cache's files of the records it keeps. */
bool cs_layer_blob_record_blob(const void *v, size_t n, cs_digest *out);

/* Writes the tree as a tar stream (uncompressed) to sink. */
int cs_tree_write_tar(cs_db *db, MDB_txn *txn, const cs_tree *t, cs_sink_fn sink, void *ctx,
                      cs_error **err);

/* Exports image NAME to path. */
int cs_export(cs_store *s, const char *name, const char *path, cs_format fmt, cs_compression c,
              cs_error **err);
/* cs_export recording more names too (NULL-terminated, may be NULL): a
 * docker-archive's manifest.json lists NAME and each of them that is a tag
 * of the image (as `docker save` of several tags of one image) in RepoTags,
 * and "repositories" all of them; an OCI index names NAME only. */
int cs_export_names(cs_store *s, const char *name, char *const *more, const char *path,
                    cs_format fmt, cs_compression c, cs_error **err);
/* The digest of the OCI manifest an export of image NAME with compression c
 * writes (what a registry would get: buildx's containerimage.digest). Layer
 * blobs not exported before are generated (and discarded) to learn their
 * digests, which are then cached in layer_blobs. Codes: those of cs_export. */
int cs_image_manifest_digest(cs_store *s, const char *name, cs_compression c, cs_digest *out,
                             cs_error **err);

#endif
