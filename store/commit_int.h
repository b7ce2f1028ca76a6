/* commit_int.h - the diff id computation commit.c and diffid_bg.c share
 * (private to libcstore). */
#ifndef CSTORE_COMMIT_INT_H
#define CSTORE_COMMIT_INT_H

#include <stdatomic.h>
#include "cstore/diffid_bg.h"
#include "cstore/export.h"

/* The layer_blobs record of tree (uncompressed), or its tar hashed when
 * there is none (*fresh: lb computed here, for the caller to record). stop
 * (may be NULL): once set, the tar write fails CS_ECANCELED. */
int commit_diff_id_of(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_layer_blob *lb,
                      bool *fresh, const atomic_bool *stop, cs_error **err);
/* What the background made of tree: 1 *lb and *fresh set, 0 nothing (not
 * queued, not started yet: the caller computes it, the thread will not),
 * or the background's error (its chain moved to *err). Waits while tree
 * is being computed. */
int diffid_bg_take(cs_diffid_bg *bg, const cs_digest *tree, cs_layer_blob *lb, bool *fresh,
                   cs_error **err);

#endif
