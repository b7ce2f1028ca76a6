/* rcache_gc.c - gc's part in remote_chunks: the records nothing can use
 * any more (see cs_rcache_gc in cstore/rcache.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cstore/content.h"
#include "rcache_int.h"

#define RGC_BATCH 2000

typedef struct rgc {
    cs_db *db;
    MDB_txn *txn;
    const cs_digestset *kept;
    cs_buf doomed;        /* 32-byte keys */
    cs_digestset *spared; /* records only gc's kept rule dooms */
    rc_bases bases;       /* the deltas among them: their bases */
    cs_digestset *needed; /* bases of the records kept */
    char *last_dir;
    bool last_gone;
    size_t at; /* deletion: the next key of doomed */
} rgc;

/* The record's source dir is gone (asked once per run of records). */
static bool
dir_gone(rgc *g, const uint8_t *v, size_t n)
{
    rc_remote_rec rec;
    if (!rc_remote_decode(v, n, &rec))
        return false;
    size_t dn = rec.srclen;
    if (!g->last_dir || strlen(g->last_dir) != dn || memcmp(g->last_dir, rec.src, dn)) {
        free(g->last_dir);
        g->last_dir = cs_xstrndup(rec.src, dn);
        g->last_gone = access(g->last_dir, F_OK) < 0 && errno == ENOENT;
    }
    return g->last_gone;
}

static int
find_rec(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    rgc *g = ctx;
    cs_digest d;
    if (k->mv_size != 32)
        return 0;
    memcpy(d.b, k->mv_data, 32);
    int r = cs_chunk_has(g->db, g->txn, &d, err);
    if (r < 0)
        return r;
    if (r == 1 || dir_gone(g, v->mv_data, v->mv_size)) {
        cs_buf_append(&g->doomed, d.b, 32);
        return 0;
    }
    rc_remote_rec rec = { 0 };
    rc_remote_decode(v->mv_data, v->mv_size, &rec);
    if (g->kept && !cs_digestset_has(g->kept, d.b)) { /* unless a kept delta's base */
        cs_digestset_add(g->spared, d.b);
        rc_bases_add(&g->bases, d.b, rec.nb, rec.bases);
        return 0;
    }
    for (uint8_t i = 0; i < rec.nb; i++)
        cs_digestset_add(g->needed, rec.bases + 32u * i);
    return 0;
}

/* The records the kept rule dooms that are (through other such records)
 * bases of kept ones stay; the others go. */
static void
doom_unneeded(rgc *g)
{
    rc_bases_close(&g->bases, g->needed);
    size_t it = 0;
    const cs_digest *d;
    while ((d = cs_digestset_next(g->spared, &it)))
        if (!cs_digestset_has(g->needed, d->b))
            cs_buf_append(&g->doomed, d->b, 32);
}

static int
find_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    rgc *g = ctx;
    g->db = db;
    g->txn = txn;
    int r = cs_db_each(db, txn, CS_T_REMOTE, "remote_chunks", find_rec, g, err);
    if (r >= 0)
        doom_unneeded(g);
    return r;
}

static int
del_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    rgc *g = ctx;
    size_t n = g->doomed.len / 32;
    for (size_t i = 0; g->at < n && i < RGC_BATCH; i++, g->at++) {
        MDB_val k = { 32, g->doomed.data + g->at * 32 };
        int rc = mdb_del(txn, cs_db_dbi(db, CS_T_REMOTE), &k, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return cs_db_err(err, rc, "remote_chunks");
    }
    return 0;
}

/* ---- the mark: a kept delta's bases are kept chunks ---- */

static int
mark_rec(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    rc_remote_rec rec;
    (void) err;
    if (k->mv_size == 32 && rc_remote_decode(v->mv_data, v->mv_size, &rec))
        rc_bases_add(ctx, k->mv_data, rec.nb, rec.bases);
    return 0;
}

int
cs_rcache_gc_mark(cs_db *db, MDB_txn *txn, struct cs_digestset *kept, cs_error **err)
{
    /* The remote deltas' bases, then a walk from the kept ones: a base may
     * be a remote delta itself. */
    rc_bases b;
    rc_bases_init(&b);
    int r = cs_db_each(db, txn, CS_T_REMOTE, "remote_chunks", mark_rec, &b, err);
    if (r >= 0)
        rc_bases_close(&b, kept);
    rc_bases_release(&b);
    return r < 0 ? r : 0;
}

int
cs_rcache_gc(cs_db *db, const struct cs_digestset *kept, bool dry_run, uint64_t *dropped,
             cs_error **err)
{
    rgc g = { .kept = kept, .needed = cs_digestset_new(false), .spared = cs_digestset_new(false) };
    cs_buf_init(&g.doomed);
    rc_bases_init(&g.bases);
    int r = cs_db_read(db, find_fn, &g, err);
    while (r >= 0 && !dry_run && g.at < g.doomed.len / 32)
        r = cs_db_write(db, del_fn, &g, err);
    *dropped += r >= 0 ? g.doomed.len / 32 : 0;
    cs_buf_release(&g.doomed);
    rc_bases_release(&g.bases);
    cs_digestset_free(g.spared);
    cs_digestset_free(g.needed);
    free(g.last_dir);
    return r < 0 ? r : 0;
}
