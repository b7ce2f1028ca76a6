/* rcache_pack.c - chunk packs: chunk records as stored, back to back, a
 * table of contents and a trailer; cut content-defined over the chunk
 * sequence (see cstore/rcache.h). */
#include <string.h>
#include "rcache_int.h"

typedef struct packer {
    cs_db *db;
    MDB_txn *txn;
    const char *dir;
    rc_index *x;
    cs_rcache_stats *st;
    cs_buf data, toc;
    uint32_t n;
    rc_dplan *plan;   /* delta candidates (rcache_delta.c) */
    cs_buf ent, tail; /* a delta's pack entry and toc tail */
    bool deltas;      /* this pack holds some: CSPACK2 */
} packer;

static bool
cut_here(const packer *p, const cs_digest *d)
{
    if (p->data.len >= CS_RCACHE_PACK_MAX)
        return true;
    uint32_t low = ((uint32_t) d->b[30] << 8 | d->b[31]) & ((1u << CS_RCACHE_CUT_BITS) - 1);
    return p->data.len >= CS_RCACHE_PACK_MIN && low == 0;
}

/* The toc: n x (digest | offset u64 | length u32), each followed in a
 * CSPACK2 pack by its tail (depth u8 | nb u8 | bases; 0 bytes: plain). */
static void
toc_append(packer *p)
{
    const uint8_t *t = p->toc.data;
    for (uint32_t i = 0; i < p->n; i++) {
        uint8_t tn = t[44];
        cs_buf_append(&p->data, t, 44);
        if (p->deltas) {
            cs_buf_u8(&p->data, tn ? t[45] : 0);
            cs_buf_u8(&p->data, tn ? t[46] : 0);
            cs_buf_append(&p->data, t + 47, tn ? tn - 2u : 0);
        }
        t += 45 + tn;
    }
}

/* Writes the pack (unless the layout has it) and places its chunks. */
static int
flush(packer *p, cs_error **err)
{
    if (!p->n)
        return 0;
    toc_append(p);
    cs_buf_u32(&p->data, p->n);
    cs_buf_append(&p->data, p->deltas ? RC_PACK2_MAGIC : RC_PACK_MAGIC, 8);
    cs_digest d;
    int r = rc_blob_write(p->dir, p->data.data, p->data.len, &d, err);
    if (r < 0)
        return r;
    rc_index_pack(p->x, &d, p->data.len);
    if (r == 1) {
        p->st->packs_written++;
        p->st->bytes_written += p->data.len;
    }
    /* The pack's part: the pack, then its chunks' places (pack number 0:
     * the first pack of that blob). */
    rc_part part;
    rc_part_init(&part);
    uint8_t v[16];
    cs_be64_put(v, p->data.len);
    rc_part_add(&part, RK_PACK, d.b, 32, v, 8);
    uint8_t cv[18 + 32 * RC_DELTA_BASES_MAX];
    const uint8_t *t = p->toc.data;
    for (uint32_t i = 0; i < p->n; i++) {
        uint8_t tn = t[44]; /* toc.data: entry | tail length u8 | tail */
        cs_be32_put(cv, 0);
        memcpy(cv + 4, t + 32, 12);
        memcpy(cv + 16, t + 45, tn);
        rc_part_add(&part, RK_CHUNK, t, 32, cv, 16u + tn);
        cs_digestset_add(p->x->chunks, t);
        rc_delta_note(p->x, t, cv, 16u + tn);
        t += 45 + tn;
    }
    r = rc_index_put_part(p->x, p->dir, RK_PACKPART, &part, p->st, err);
    rc_part_release(&part);
    p->data.len = p->toc.len = 0;
    p->n = 0;
    p->deltas = false;
    return r;
}

static int
add_chunk(packer *p, const cs_digest *d, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(p->db, p->txn, CS_T_CHUNKS, d->b, 32, &v, err);
    if (r < 0) {
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(d, hex);
        return cs_err_wrap(err, "chunk sha256:%s", hex);
    }
    int dr = rc_dplan_try(p->plan, p->db, p->txn, d, v.mv_data, v.mv_size, &p->ent, &p->tail, err);
    if (dr < 0)
        return dr;
    if (dr) {
        v.mv_data = p->ent.data;
        v.mv_size = p->ent.len;
        p->deltas = true;
        p->st->deltas++;
    }
    cs_buf_append(&p->toc, d->b, 32);
    cs_buf_u64(&p->toc, p->data.len);
    cs_buf_u32(&p->toc, (uint32_t) v.mv_size);
    cs_buf_u8(&p->toc, dr ? (uint8_t) p->tail.len : 0);
    cs_buf_append(&p->toc, p->tail.data, dr ? p->tail.len : 0);
    cs_buf_append(&p->data, v.mv_data, v.mv_size);
    p->n++;
    return cut_here(p, d) ? flush(p, err) : 0;
}

int
rc_packs_write(cs_db *db, MDB_txn *txn, const char *dir, const cs_digest *order, size_t n,
               rc_index *x, cs_rcache_stats *st, cs_error **err)
{
    packer p = { .db = db, .txn = txn, .dir = dir, .x = x, .st = st };
    cs_buf_init(&p.data);
    cs_buf_init(&p.toc);
    cs_buf_init(&p.ent);
    cs_buf_init(&p.tail);
    int r = rc_dplan_new(db, txn, x, order, n, &p.plan, err);
    for (size_t i = 0; i < n && r >= 0; i++)
        r = add_chunk(&p, &order[i], err);
    if (r >= 0)
        r = flush(&p, err);
    cs_buf_release(&p.data);
    cs_buf_release(&p.toc);
    cs_buf_release(&p.ent);
    cs_buf_release(&p.tail);
    rc_dplan_free(p.plan);
    return r < 0 ? r : 0;
}
