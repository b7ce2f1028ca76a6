/* oneshot.h - store records read or written in a transaction of their own,
 * for callers outside store/ (the builder) that hold no transaction.
 *
 * Each call is one LMDB transaction: the caller must hold no write txn in
 * this thread. Results are owned by the caller. Codes are the callee's:
 * CS_ENOTFOUND for a missing record, CS_ECORRUPT, CS_EFULL, CS_EIO.
 */
#ifndef CSTORE_ONESHOT_H
#define CSTORE_ONESHOT_H

#include <stddef.h>
#include "cstore/image.h"
#include "cstore/tree.h"

/* The tree stored under d. */
int cs_tree_load(cs_db *db, const cs_digest *d, cs_tree **out, cs_error **err);
/* Stores t (committed before it returns); *out is its digest. */
int cs_tree_store(cs_db *db, const cs_tree *t, cs_digest *out, cs_error **err);
/* The merged tree of layers[0..n) (cstore/merged.h), read in one txn. */
int cs_merged_load(cs_db *db, const cs_digest *layers, size_t n, cs_tree **out, cs_error **err);
/* The image NAME resolves to (cs_image_resolve, then cs_image_get). */
int cs_image_load(cs_db *db, const char *name, cs_image **out, cs_error **err);

/* Appends the bytes of content d to out (caller-owned; the caller bounds
 * the size it accepts before calling, from the entry's size). */
int cs_content_load(cs_db *db, const cs_digest *d, cs_buf *out, cs_error **err);

#endif
