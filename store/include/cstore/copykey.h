/* copykey.h - what COPY --from's cache key needs of its sources, remembered
 * so a rebuild does not load the source's merged tree to compute it again.
 *
 * The digest of the sources COPY --from selects (cs_copy_prepare's key) is a
 * function of the source's layers (immutable trees) and of the request (the
 * instruction's sources, destination and flags) alone. copy_keys remembers it:
 *   key   = sha256 of the layers' digests and of the request (the builder's)
 *   value = the sources' digest[32] | the source's top layer tree digest[32]
 * gc drops a record with the top layer it names (cs_copykey_record_tree).
 * Any record is only ever a shortcut: a missing one is computed again.
 * This module owns the table. Each call is one transaction of its own: the
 * caller holds no write transaction in this thread.
 */
#ifndef CSTORE_COPYKEY_H
#define CSTORE_COPYKEY_H

#include <stdbool.h>
#include "cstore/db.h"
#include "cstore/util.h"

#define CS_COPYKEY_VLEN 64

/* 1 with *sources set when req is remembered, 0 when not, <0 on a store
 * error (a garbled record is a miss). */
int cs_copykey_get(cs_db *db, const cs_digest *req, cs_digest *sources, cs_error **err);
/* Remembers req -> sources; top is the source's top layer tree. */
int cs_copykey_put(cs_db *db, const cs_digest *req, const cs_digest *sources, const cs_digest *top,
                   cs_error **err);
/* For gc: the top layer a record value names; false for a malformed value. */
bool cs_copykey_record_tree(const void *v, size_t len, cs_digest *tree);

#endif
