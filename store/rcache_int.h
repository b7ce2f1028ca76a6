/* rcache_int.h - what the rcache_*.c files share (see cstore/rcache.h). */
#ifndef CSTORE_RCACHE_INT_H
#define CSTORE_RCACHE_INT_H

#include "cstore/rcache.h"
#include "digestset.h"

/* Kinds of index records; the first ones are table records copied verbatim. */
enum {
    RK_CACHE = 1,
    RK_TREE,
    RK_CONTENT,
    RK_LBLOB,
    RK_TARSPLIT,
    RK_IMAGE,
    RK_TAG,
    RK_PACK,  /* pack digest -> size u64 */
    RK_CHUNK, /* chunk digest -> pack number u32 | offset u64 | length u32 */
    RK_COUNT
};
#define RC_INDEX_MAGIC "CSRCIX1"
#define RC_PACK_MAGIC  "CSPACK1"
#define RC_REF_NAME    "cstore-cache"

typedef struct rc_place {
    cs_digest chunk;
    uint32_t pack;
    uint64_t off;
    uint32_t len;
} rc_place;

/* An index in memory: verbatim records (kind | key | value, as in the blob),
 * packs and chunk places. seen holds sha256(kind | key) of each record. */
typedef struct rc_index {
    cs_buf recs;
    uint32_t nrecs;
    cs_digest *packs;
    uint64_t *pack_sizes;
    uint32_t npacks, cappacks;
    rc_place *places;
    size_t nplaces, capplaces;
    cs_digestset *seen, *chunks;
} rc_index;

void rc_index_init(rc_index *x);
void rc_index_release(rc_index *x);
/* Adds a record unless (kind, key) is there; true when added. */
bool rc_index_add(rc_index *x, uint8_t kind, const void *k, size_t kn, const void *v, size_t vn);
uint32_t rc_index_pack(rc_index *x, const cs_digest *d, uint64_t size);
void rc_index_place(rc_index *x, const cs_digest *chunk, uint32_t pack, uint64_t off, uint32_t len);
void rc_index_encode(const rc_index *x, cs_buf *out);
/* Walks a blob's records; fn sees each (packs and places too). */
typedef int (*rc_rec_fn)(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v,
                         uint32_t vn, cs_error **err);
int rc_index_each(const void *p, size_t n, rc_rec_fn fn, void *ctx, cs_error **err);
/* Merges an older index blob of layout dir into x: its records, packs and
 * places where x has none (not the places in packs gone from dir). */
int rc_index_merge(rc_index *x, const char *dir, const void *p, size_t n, cs_error **err);

/* ---- rcache_fetch.c ---- */
/* Makes these chunks local where an imported cache holds them. */
int rc_fetch_chunks(cs_store *s, const cs_digest *chunks, size_t n, cs_rcache_stats *st,
                    cs_error **err);

/* The store records a build's results need, into x; the chunks in order
 * into *order (a digest array). Runs in the caller's read txn. */
int rc_collect(cs_db *db, MDB_txn *txn, const cs_rcache_build *b, cs_rcache_mode mode, rc_index *x,
               cs_digest **order, size_t *norder, cs_rcache_stats *st, cs_error **err);

/* ---- rcache_layout.c: the OCI layout dir ---- */
char *rc_blob_path(const char *dir, const cs_digest *d);
/* Writes a blob unless present (temp file, fsync, rename). 1 written, 0 present. */
int rc_blob_write(const char *dir, const void *p, size_t n, cs_digest *out, cs_error **err);
/* Reads the index blob the layout's cache manifest names (digest checked);
 * -CS_ENOTFOUND when dir holds no cache. */
int rc_layout_read(const char *dir, cs_buf *index, cs_error **err);
/* Writes config, manifest (index blob + packs) and index.json. */
int rc_layout_write(const char *dir, const cs_digest *index, uint64_t index_size, const rc_index *x,
                    cs_error **err);

/* ---- rcache_pack.c ---- */
/* Writes the packs of the chunks in order, placing each chunk in x. */
int rc_packs_write(cs_db *db, MDB_txn *txn, const char *dir, const cs_digest *order, size_t n,
                   rc_index *x, cs_rcache_stats *st, cs_error **err);

#endif
