/* image.h - image records, tags and image references.
 *
 * images: sha256(config JSON) -> "CSIMG1\0\0" | config bytes | n u32 | n x tree digest
 * tags:   normalized "registry/repo:tag" -> image digest (32 bytes)
 */
#ifndef CSTORE_IMAGE_H
#define CSTORE_IMAGE_H

#include <stdint.h>
#include "cstore/db.h"
#include "cstore/util.h"

typedef struct cs_image {
    cs_digest id; /* sha256 of config */
    char *config; /* OCI image config JSON, NUL-terminated */
    size_t config_len;
    cs_digest *layers; /* tree digests, bottom first */
    uint32_t nlayers;
} cs_image;

void cs_image_free(cs_image *img);
CS_DEFINE_FREEP(cs_image, cs_image_free)
int cs_image_put(cs_db *db, MDB_txn *txn, const cs_image *img, cs_error **err);
int cs_image_get(cs_db *db, MDB_txn *txn, const cs_digest *id, cs_image **out, cs_error **err);
int cs_image_decode(const void *p, size_t len, cs_image **out, cs_error **err);
/* Deletes the image record (not its trees: gc frees those). */
int cs_image_delete(cs_db *db, MDB_txn *txn, const cs_digest *id, cs_error **err);

/* Docker's normalization: "golang" -> "docker.io/library/golang:latest",
 * "library/golang:1.19" and "docker.io/library/golang:1.19" alike; a digest
 * reference ("name@sha256:...") is refused. CS_EINVAL on a malformed reference. */
int cs_ref_normalize(const char *ref, char **out, cs_error **err);
/* The short form Docker shows: "golang:1.19", "quay.io/x/y:z". Caller frees. */
char *cs_ref_familiar(const char *normalized);

int cs_tag_set(cs_db *db, MDB_txn *txn, const char *normalized, const cs_digest *id,
               cs_error **err);
int cs_tag_get(cs_db *db, MDB_txn *txn, const char *normalized, cs_digest *id, cs_error **err);
int cs_tag_delete(cs_db *db, MDB_txn *txn, const char *normalized, cs_error **err);

/* Resolves NAME: a reference (normalized first), "sha256:<hex>", or a hex
 * prefix of at least 4 characters of an image id (unique). CS_ENOTFOUND with
 * "image 'NAME' not found" otherwise. */
int cs_image_resolve(cs_db *db, MDB_txn *txn, const char *name, cs_digest *out, cs_error **err);

#endif
