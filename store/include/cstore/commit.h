/* commit.h - committing a built image: the diff_ids of its new layers, the
 * image record and its tags.
 *
 * Owns nothing of its own: layer_blobs records are export's format
 * (cstore/export.h), images and tags image's (cstore/image.h). Each call is
 * one write transaction (the caller holds none in this thread); one that
 * finds everything in place writes, and syncs, nothing. A build computes the
 * diff ids in a read transaction (cs_layer_diff_ids_pending) and records the
 * new ones with its image (cs_image_commit_pending): one commit, one
 * fdatasync, where two were.
 */
#ifndef CSTORE_COMMIT_H
#define CSTORE_COMMIT_H

#include <stddef.h>
#include "cstore/diffid_bg.h"
#include "cstore/export.h"
#include "cstore/image.h"

/* out[i] = the diff_id of trees[i]: the sha256 of the uncompressed tar the
 * export writes for it, remembered in layer_blobs (computed once). */
int cs_layer_diff_ids(cs_db *db, const cs_digest *trees, size_t n, cs_digest *out, cs_error **err);

/* Diff ids computed but not yet remembered in layer_blobs (a cache: losing
 * them costs only their computing again). */
typedef struct cs_diff_pending {
    cs_digest *trees;
    cs_layer_blob *blobs;
    size_t n;
} cs_diff_pending;

/* cs_layer_diff_ids in a read transaction: the layer_blobs records it found
 * missing are left in *p (reset here; release with cs_diff_pending_release)
 * for cs_image_commit_pending. */
int cs_layer_diff_ids_pending(cs_db *db, const cs_digest *trees, size_t n, cs_digest *out,
                              cs_diff_pending *p, cs_error **err);
/* The same, taking what bg (may be NULL) worked out already: the same
 * results, a background error reported here (diffid_bg.h). */
int cs_layer_diff_ids_pending_bg(cs_db *db, cs_diffid_bg *bg, const cs_digest *trees, size_t n,
                                 cs_digest *out, cs_diff_pending *p, cs_error **err);
void cs_diff_pending_release(cs_diff_pending *p);

/* Stores img unless an image with its id exists, and points every tag
 * (normalized here; CS_EINVAL for a malformed one) at it unless it already
 * does. tags is NULL-terminated and may be NULL. */
int cs_image_commit(cs_db *db, const cs_image *img, char *const *tags, cs_error **err);
/* cs_image_commit that also records p's layer_blobs (p may be NULL). */
int cs_image_commit_pending(cs_db *db, const cs_image *img, char *const *tags,
                            const cs_diff_pending *p, cs_error **err);

#endif
