/* record.c - digest-keyed record lookups (see record.h). */
#include "record.h"

int
cs_record_get(cs_db *db, MDB_txn *txn, cs_table t, cs_code code, const char *what,
              const cs_digest *d, MDB_val *v, cs_error **err)
{
    int r = cs_db_get(db, txn, t, d->b, 32, v, err);
    if (r == -CS_ENOTFOUND) {
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(d, hex);
        return cs_err(err, code, 0, "%s sha256:%s missing", what, hex);
    }
    return r;
}
