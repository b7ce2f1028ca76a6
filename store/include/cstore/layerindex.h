/* layerindex.h - the layers the store already has, by blob digest and by
 * diff_id, so a pull skips downloading them.
 *
 * layer_index: 'b' + blob digest -> tree digest, diff_id
 *              'd' + diff_id     -> tree digest
 * Written by load and pull in the transaction that ingests the layer (the
 * blob digest is that of the bytes as read: compressed or not). The value
 * starts with the tree digest in both forms: gc drops a record whose tree
 * it frees (cs_layerindex_record_tree). A hit is only used when its tree
 * is still there (cs_layerindex_find checks, in the caller's txn).
 * This module owns the table. Thread rules: those of cs_db.
 */
#ifndef CSTORE_LAYERINDEX_H
#define CSTORE_LAYERINDEX_H

#include <stdbool.h>
#include "cstore/db.h"
#include "cstore/util.h"

/* Records both forms for one ingested layer. */
int cs_layerindex_put(cs_db *db, MDB_txn *txn, const cs_digest *blob, const cs_digest *diff_id,
                      const cs_digest *tree, cs_error **err);
/* The tree of a layer whose blob digest (blob, may be NULL) or diff_id
 * (may be NULL) is recorded and whose tree record still exists: 1 with *tree
 * set (and *diff_id_out, when the blob matched and it is not NULL), 0 when
 * unknown, <0 on a store error. A blob hit whose diff_id differs from
 * diff_id (when given) is no hit. */
int cs_layerindex_find(cs_db *db, MDB_txn *txn, const cs_digest *blob, const cs_digest *diff_id,
                       cs_digest *tree, cs_error **err);
/* For gc: the tree a record value names; false for a malformed value. */
bool cs_layerindex_record_tree(const void *v, size_t len, cs_digest *tree);

#endif
