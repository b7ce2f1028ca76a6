/* record.h - store-internal: lookups shared by the modules whose records are
 * keyed by a digest (chunks, contents, trees). */
#ifndef CSTORE_RECORD_H
#define CSTORE_RECORD_H

#include "cstore/db.h"
#include "cstore/util.h"

/* Gets record d of table t into *v (borrowed until txn ends). A missing one
 * is code (CS_ENOTFOUND, or CS_ECORRUPT where another record refers to it)
 * with "WHAT sha256:HEX missing". Returns 0 or a negative code. */
int cs_record_get(cs_db *db, MDB_txn *txn, cs_table t, cs_code code, const char *what,
                  const cs_digest *d, MDB_val *v, cs_error **err);

#endif
