/* layerindex.c - blob digest and diff_id -> tree of the layers load and pull
 * ingested (see cstore/layerindex.h for the layout). */
#include "cstore/layerindex.h"

#include <string.h>

static void
li_key(uint8_t kind, const cs_digest *d, uint8_t key[33])
{
    key[0] = kind;
    memcpy(key + 1, d->b, 32);
}

int
cs_layerindex_put(cs_db *db, MDB_txn *txn, const cs_digest *blob, const cs_digest *diff_id,
                  const cs_digest *tree, cs_error **err)
{
    uint8_t key[33], v[64];
    memcpy(v, tree->b, 32);
    memcpy(v + 32, diff_id->b, 32);
    li_key('b', blob, key);
    int r = cs_db_put(db, txn, CS_T_LAYER_INDEX, key, sizeof(key), v, 64, 0, err);
    li_key('d', diff_id, key);
    if (r >= 0)
        r = cs_db_put(db, txn, CS_T_LAYER_INDEX, key, sizeof(key), v, 32, 0, err);
    return r < 0 ? r : 0;
}

/* 1 when the tree record exists. */
static int
tree_exists(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_TREES, tree->b, 32, &v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    return r < 0 ? r : 1;
}

/* Looks up one key; 1 with *tree set when it names an existing tree. */
static int
li_get(cs_db *db, MDB_txn *txn, uint8_t kind, const cs_digest *d, const cs_digest *diff_id,
       cs_digest *tree, cs_error **err)
{
    uint8_t key[33];
    MDB_val v;
    li_key(kind, d, key);
    int r = cs_db_get(db, txn, CS_T_LAYER_INDEX, key, sizeof(key), &v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    if (r < 0)
        return r;
    if (v.mv_size < 32 || (kind == 'b' && v.mv_size < 64))
        return 0;
    if (kind == 'b' && diff_id && memcmp((const uint8_t *) v.mv_data + 32, diff_id->b, 32))
        return 0;
    cs_digest t;
    memcpy(t.b, v.mv_data, 32);
    r = tree_exists(db, txn, &t, err);
    if (r == 1)
        *tree = t;
    return r;
}

int
cs_layerindex_find(cs_db *db, MDB_txn *txn, const cs_digest *blob, const cs_digest *diff_id,
                   cs_digest *tree, cs_error **err)
{
    int r = blob ? li_get(db, txn, 'b', blob, diff_id, tree, err) : 0;
    if (r == 0 && diff_id)
        r = li_get(db, txn, 'd', diff_id, NULL, tree, err);
    return r;
}

bool
cs_layerindex_record_tree(const void *v, size_t len, cs_digest *tree)
{
    if (len != 32 && len != 64)
        return false;
    memcpy(tree->b, v, 32);
    return true;
}
