/* commit.h - committing a built image: the diff_ids of its new layers, the
 * image record and its tags.
 *
 * Owns nothing of its own: layer_blobs records are export's format
 * (cstore/export.h), images and tags image's (cstore/image.h). Each call is
 * one write transaction (the caller holds none in this thread); one that
 * finds everything in place writes, and syncs, nothing.
 */
#ifndef CSTORE_COMMIT_H
#define CSTORE_COMMIT_H

#include <stddef.h>
#include "cstore/image.h"

/* out[i] = the diff_id of trees[i]: the sha256 of the uncompressed tar the
 * export writes for it, remembered in layer_blobs (computed once). */
int cs_layer_diff_ids(cs_db *db, const cs_digest *trees, size_t n, cs_digest *out, cs_error **err);

/* Stores img unless an image with its id exists, and points every tag
 * (normalized here; CS_EINVAL for a malformed one) at it unless it already
 * does. tags is NULL-terminated and may be NULL. */
int cs_image_commit(cs_db *db, const cs_image *img, char *const *tags, cs_error **err);

#endif
