/* copykey.c - the copy_keys records (see cstore/copykey.h). */
#include "cstore/copykey.h"

#include <string.h>

typedef struct copykey_op {
    const cs_digest *req;
    cs_digest *sources;
    const cs_digest *top;
} copykey_op;

static int
get_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    copykey_op *op = ctx;
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_COPY_KEYS, op->req->b, 32, &v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    if (r < 0)
        return r;
    if (v.mv_size != CS_COPYKEY_VLEN)
        return 0;
    memcpy(op->sources->b, v.mv_data, 32);
    return 1;
}

int
cs_copykey_get(cs_db *db, const cs_digest *req, cs_digest *sources, cs_error **err)
{
    copykey_op op = { .req = req, .sources = sources };
    return cs_db_read(db, get_fn, &op, err);
}

static int
put_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    copykey_op *op = ctx;
    uint8_t v[CS_COPYKEY_VLEN];
    memcpy(v, op->sources->b, 32);
    memcpy(v + 32, op->top->b, 32);
    int r = cs_db_put(db, txn, CS_T_COPY_KEYS, op->req->b, 32, v, sizeof(v), 0, err);
    return r < 0 ? r : 0;
}

int
cs_copykey_put(cs_db *db, const cs_digest *req, const cs_digest *sources, const cs_digest *top,
               cs_error **err)
{
    copykey_op op = { .req = req, .sources = (cs_digest *) sources, .top = top };
    return cs_db_write(db, put_fn, &op, err);
}

bool
cs_copykey_record_tree(const void *v, size_t len, cs_digest *tree)
{
    if (len != CS_COPYKEY_VLEN)
        return false;
    memcpy(tree->b, (const uint8_t *) v + 32, 32);
    return true;
}
