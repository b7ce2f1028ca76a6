/* image.h - image records, tags and image references.
 *
 * images: sha256(config JSON) -> "CSIMG1\0\0" | config bytes | n u32 | n x tree digest
 * tags:   normalized "registry/repo:tag" -> image digest (32 bytes)
 *
 * This module owns both tables. The txn-level functions (db, txn) run inside
 * the caller's cs_db_read/cs_db_write callback; the store-level ones
 * (cs_store *) run their own transaction. Thread rules: those of cs_db.
 */
#ifndef CSTORE_IMAGE_H
#define CSTORE_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/db.h"
#include "cstore/store.h"
#include "cstore/strv.h"
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

/* Appends to out (owned by the caller) copies of the normalized tags naming
 * image id, in key order. 0, or a negative code from LMDB. */
int cs_image_tags(cs_db *db, MDB_txn *txn, const cs_digest *id, cs_strv *out, cs_error **err);

/* ---- listing (image_list.c) ---- */

typedef struct cs_image_layer {
    cs_digest tree;
    uint64_t bytes;   /* sum of the regular files' sizes */
    uint64_t entries; /* all entries, whiteouts included */
} cs_image_layer;

/* An image as `images` and `inspect` show it. Everything in it is owned by
 * the struct: cs_image_info_release frees it. */
typedef struct cs_image_info {
    cs_digest id;
    cs_strv tags;  /* normalized, in key order; tags.v is NULL when untagged */
    char *created; /* the config's "created" string, or NULL */
    uint64_t size; /* sum of layers[].bytes (before dedup and compression) */
    char *config;  /* the config JSON, NUL-terminated */
    size_t config_len;
    cs_image_layer *layers; /* bottom first */
    uint32_t nlayers;
} cs_image_info;

void cs_image_info_release(cs_image_info *in);
/* Releases n entries and frees the array (NULL is fine). */
void cs_image_list_free(cs_image_info *v, size_t n);

/* Every image with its tags, in one read transaction, sorted by id. *out
 * (caller frees with cs_image_list_free) holds *n entries; NULL when the
 * store has none. A tag naming no image is left out (fsck reports it).
 * Codes: CS_ECORRUPT ("image 'ID': config: ..." when a config is not JSON,
 * or a bad record), CS_ENOTFOUND ("image 'ID': ..." for a missing layer
 * tree), LMDB's. */
int cs_image_list(cs_store *s, cs_image_info **out, size_t *n, cs_error **err);

/* The image NAME resolves to (cs_image_resolve) with its tags and layers,
 * into *out (caller releases with cs_image_info_release). Codes: those of
 * cs_image_resolve, CS_ECORRUPT for a config that is not JSON, CS_ENOTFOUND
 * for a missing layer tree. */
int cs_image_info_get(cs_store *s, const char *name, cs_image_info *out, cs_error **err);

/* ---- naming (image_tag.c) ---- */

/* Gives the image SRC resolves to (cs_image_resolve) the name dst, which
 * must be normalized (cs_ref_normalize); an existing tag dst is moved. One
 * write transaction. Codes: those of cs_image_resolve, LMDB's. */
int cs_image_tag(cs_store *s, const char *src, const char *dst, cs_error **err);

typedef struct cs_image_removal {
    cs_digest id;     /* the image NAME named */
    cs_strv untagged; /* normalized tags removed, in key order */
    bool deleted;     /* the image record went too */
} cs_image_removal;

/* Releases out's vector (the struct is the caller's). */
void cs_image_removal_release(cs_image_removal *r);

/* `rmi NAME`, in one write transaction. A NAME that is a reference naming
 * a tag removes that tag, and the image when no other tag names it; else
 * NAME is resolved as an image id (cs_image_resolve) and the image goes with
 * all its tags. Trees and contents stay until gc. *out (zeroed first,
 * caller releases) says what went. Codes: CS_ENOTFOUND "image 'NAME' not
 * found", CS_EINVAL (ambiguous id prefix, or NAME neither a valid reference
 * nor an id), LMDB's. */
int cs_image_remove(cs_store *s, const char *name, cs_image_removal *out, cs_error **err);

#endif
