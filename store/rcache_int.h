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
    RK_PACK,      /* pack digest -> size u64 */
    RK_CHUNK,     /* chunk digest -> pack number u32 (in this blob's packs) | offset u64 | len u32
                     [| depth u8 | nb u8 | nb x base digest: a delta, rcache_delta.c] */
    RK_PART,      /* a part blob of records: digest -> size u64 */
    RK_PACKPART,  /* a pack's part (its RK_PACK, then its RK_CHUNKs): digest -> size u64 */
    RK_TREEPART,  /* root: tree digest -> its part's digest | size u64 (rcache_lazy.c) */
    RK_IMAGEPART, /* root: image id -> its part's digest | size u64 */
    RK_COPYKEY,   /* root: a copy_keys record (copykey.h) whose top tree the cache holds */
    RK_TREEPACKS, /* root: tree digest -> the pack parts holding its chunks (n x digest) */
    RK_COUNT
};
#define RC_INDEX_MAGIC "CSRCIX1"
#define RC_PACK_MAGIC  "CSPACK1"
#define RC_PACK2_MAGIC "CSPACK2" /* a pack with deltas: its toc entries carry their bases */
#define RC_REF_NAME    "cstore-cache"

/* The records of one blob: the root index or a part. */
typedef struct rc_part {
    cs_buf recs;
    uint32_t n;
    cs_digestset *seen; /* sha256(kind | key) of each record */
} rc_part;

void rc_part_init(rc_part *p);
void rc_part_release(rc_part *p);
/* Adds a record unless (kind, key) is there; true when added. */
bool rc_part_add(rc_part *p, uint8_t kind, const void *k, size_t kn, const void *v, size_t vn);
void rc_part_encode(const rc_part *p, cs_buf *out);

/* An index in memory: the root's records (cache entries), the parts and
 * packs it names (kind RK_PART / RK_PACKPART per part), and the chunks some
 * pack holds. */
typedef struct rc_index {
    rc_part root;
    cs_digest *parts, *packs;
    uint64_t *part_sizes, *pack_sizes;
    uint8_t *part_kinds;
    uint32_t nparts, capparts, npacks, cappacks;
    cs_digestset *chunks;
    cs_digestset *depth; /* the delta chunks some pack holds -> their chain depth */
} rc_index;

void rc_index_init(rc_index *x);
void rc_index_release(rc_index *x);
void rc_index_part(rc_index *x, uint8_t kind, const cs_digest *d, uint64_t size);
void rc_index_pack(rc_index *x, const cs_digest *d, uint64_t size);
/* Writes part p as a blob of dir and names it in x. */
int rc_index_put_part(rc_index *x, const char *dir, uint8_t kind, const rc_part *p,
                      cs_rcache_stats *st, cs_error **err);
/* The same; *d and *size get the part blob's digest and size. */
int rc_index_put_part_d(rc_index *x, const char *dir, uint8_t kind, const rc_part *p,
                        cs_rcache_stats *st, cs_digest *d, uint64_t *size, cs_error **err);
/* The root blob: its records, then the parts and packs. */
void rc_index_encode(const rc_index *x, cs_buf *out);
/* Walks a blob's records. */
typedef int (*rc_rec_fn)(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v,
                         uint32_t vn, cs_error **err);
int rc_index_each(const void *p, size_t n, rc_rec_fn fn, void *ctx, cs_error **err);
/* Merges an older root of layout dir into x: its cache entries where x has
 * none, its parts and packs still in dir, the chunks of those packs. */
int rc_index_merge(rc_index *x, const char *dir, const void *p, size_t n, cs_error **err);

/* The store records a build's results need: cache entries into x's root,
 * each image's and each tree's records into a part of their own (the same
 * tree gives the same part blob: written once); the chunks in order into
 * *order (a digest array). Runs in the caller's read txn. */
int rc_collect(cs_db *db, MDB_txn *txn, const char *dir, const cs_rcache_build *b,
               cs_rcache_mode mode, rc_index *x, cs_digest **order, size_t *norder,
               cs_rcache_stats *st, cs_error **err);

/* ---- rcache_layout.c: the OCI layout dir ---- */
char *rc_blob_path(const char *dir, const cs_digest *d);
/* Writes a blob unless present (temp file, fsync, rename). 1 written, 0 present. */
int rc_blob_write(const char *dir, const void *p, size_t n, cs_digest *out, cs_error **err);
/* Reads a blob and checks its digest (and size when size >= 0). */
int rc_blob_read(const char *dir, const cs_digest *d, int64_t size, cs_buf *out, cs_error **err);
/* Reads the root index blob the layout's cache manifest names (digest
 * checked); -CS_ENOTFOUND when dir holds no cache. */
int rc_layout_read(const char *dir, cs_buf *index, cs_error **err);
/* Writes config, manifest (root index, parts, packs) and index.json. */
int rc_layout_write(const char *dir, const cs_digest *index, uint64_t index_size, const rc_index *x,
                    cs_error **err);

/* ---- rcache_pack.c ---- */
/* Writes the packs of the chunks in order, and a part for each naming its
 * chunks' places. */
int rc_packs_write(cs_db *db, MDB_txn *txn, const char *dir, const cs_digest *order, size_t n,
                   rc_index *x, cs_rcache_stats *st, cs_error **err);

/* ---- rcache_prune.c ---- */
/* $CSTORE_TEST_NOW (Unix seconds; tests only), else 0. */
uint64_t rc_test_now(void);

/* ---- rcache_fetch.c ---- */
/* 1 when blob d is in dir or, through the remote, where dir mirrors. */
int rc_remote_has(const char *dir, const cs_digest *d, cs_error **err);
/* Makes these chunks local where an imported cache holds them. */
int rc_fetch_chunks(cs_store *s, const cs_digest *chunks, size_t n, cs_rcache_stats *st,
                    cs_error **err);

/* A remote_chunks record: pack digest | offset u64 | length u32 [| 0 | 1 |
 * nb u8 | nb x base digest] | source dir (rest; an absolute path, so the
 * version byte 0 never starts an old record: those decode as plain). */
typedef struct rc_remote_rec {
    const uint8_t *pack, *bases;
    uint64_t off;
    uint32_t len;
    uint8_t nb;
    const char *src;
    size_t srclen;
} rc_remote_rec;
/* false when v is not such a record. */
bool rc_remote_decode(const void *v, size_t n, rc_remote_rec *out);
/* The record of a chunk at place (offset u64 | length u32) of pack;
 * delta: an RK_CHUNK value's tail after those 16 bytes (depth | nb | bases),
 * dn bytes (0: plain). */
void rc_remote_encode(cs_buf *b, const cs_digest *pack, const uint8_t place[12],
                      const uint8_t *delta, size_t dn, const char *src);
/* Drops chunk d's remote_chunks record (none: fine). */
int rc_remote_del(cs_db *db, MDB_txn *txn, const cs_digest *d, cs_error **err);

/* ---- rcache_delta.c: delta-encoded chunks (see cstore/rcache.h) ---- */
#define RC_CODEC_DELTA     0x80 /* in packs only: a zstd frame with the bases as prefix */
#define RC_DELTA_BASES_MAX 3
#define RC_DELTA_DEPTH_MAX 4

/* An RK_CHUNK value (16 bytes, or a delta's 18 + 32 nb) is well formed. */
bool rc_chunk_val_ok(const uint8_t *v, uint32_t vn);
/* Its bases (0: plain) and chain depth. */
uint8_t rc_chunk_val_bases(const uint8_t *v, uint32_t vn, const uint8_t **bases);
/* Notes a merged chunk's depth in x (plain chunks: nothing). */
void rc_delta_note(rc_index *x, const void *chunk, const uint8_t *v, uint32_t vn);
/* The depth a delta on these bases has (1 + the deepest base's), or -1
 * when it would exceed RC_DELTA_DEPTH_MAX or a base is not in x's packs. */
int rc_delta_depth(rc_index *x, const cs_digest *bases, uint8_t nb);

/* Raw chunk -> zstd frame (level 19) with prefix as the bases' bytes. */
void rc_delta_encode(const void *raw, size_t n, const void *prefix, size_t pn, cs_buf *out);
/* A frame back to d's raw bytes (appended to out), checked by sha256:
 * CS_ECORRUPT on a bad frame, length or digest (out unchanged then). */
int rc_delta_decode(const cs_digest *d, const void *frame, size_t n, uint32_t raw_len,
                    const void *prefix, size_t pn, cs_buf *out, cs_error **err);

/* An export's delta candidates: for each new chunk, old chunks of the
 * previous version of the same path (see rc_dplan_new). */
typedef struct rc_dplan rc_dplan;
/* Finds, for the chunks in order (those the cache lacks), bases among the
 * chunks x's packs hold: the same path in the trees of x's root entries,
 * another content there, its local chunks overlapping the new chunk's
 * range (+ a margin). Runs in the caller's read txn. */
int rc_dplan_new(cs_db *db, MDB_txn *txn, rc_index *x, const cs_digest *order, size_t n,
                 rc_dplan **out, cs_error **err);
void rc_dplan_free(rc_dplan *p);
/* The pack entry of chunk d (stored: its record as stored): 1 and a delta
 * in *entry (codec | raw length u32 | frame) and *tail (depth | nb |
 * bases) when it is clearly smaller than the plain one, else 0. */
int rc_dplan_try(rc_dplan *p, cs_db *db, MDB_txn *txn, const cs_digest *d, const void *stored,
                 size_t n, cs_buf *entry, cs_buf *tail, cs_error **err);

/* A chunk's bases by digest (prune, gc). */
typedef struct rc_bases {
    cs_digestset *at; /* chunk -> offset in buf of nb u8 | bases */
    cs_buf buf;
} rc_bases;
void rc_bases_init(rc_bases *b);
void rc_bases_release(rc_bases *b);
void rc_bases_add(rc_bases *b, const void *chunk, uint8_t nb, const uint8_t *bases);
uint8_t rc_bases_get(rc_bases *b, const void *chunk, const uint8_t **bases);
/* Adds to set the bases b knows of its chunks, transitively (one walk:
 * linear in the chain, however long a bad cache made it). */
void rc_bases_close(rc_bases *b, cs_digestset *set);

/* Fetched delta chunks waiting for their bases (rcache_fetch.c's put). */
typedef struct rc_pending {
    struct rc_pend *v;
    size_t n, cap;
} rc_pending;
/* Copies a fetched delta (its pack entry, n bytes) with its bases. */
int rc_pending_add(rc_pending *p, const cs_digest *d, uint8_t nb, const uint8_t *bases,
                   const void *entry, size_t n, cs_error **err);
void rc_pending_release(rc_pending *p);
/* Decodes the pending deltas whose bases are local (those decoded first
 * count), checks each by sha256, puts it plain and drops its remote
 * record, in one write txn: nothing unverified is stored; a delta whose
 * base is missing fails the call. */
int rc_pending_resolve(cs_store *s, rc_pending *p, cs_error **err);
/* Reads len bytes at off of blob d where dir mirrors a remote (no remote: -CS_ENOTFOUND). */
int rc_remote_read(const char *dir, const cs_digest *d, uint64_t off, uint64_t len, void *buf,
                   cs_error **err);

/* ---- rcache_import.c ---- */
/* Puts a part blob's records (its bytes in b, digest checked) in the
 * caller's write txn; only: 0, or the one kind of record to put. */
int rc_import_part_bytes(cs_db *db, MDB_txn *txn, const char *dir, const cs_buf *b, uint8_t only,
                         cs_rcache_stats *st, cs_error **err);

/* ---- rcache_lazy.c: index parts fetched where they are needed ---- */
/* Export: names part (digest, size) as the one of object obj (a tree or an
 * image id) in x's root (kind RK_TREEPART / RK_IMAGEPART). */
void rc_lazy_name(rc_index *x, uint8_t kind, const cs_digest *obj, const cs_digest *part,
                  uint64_t size);
/* Export: the copy_keys records whose top tree is in trees, into root. */
int rc_lazy_copykeys(cs_db *db, MDB_txn *txn, const cs_digestset *trees, rc_part *root,
                     cs_error **err);
/* Import: what the root says of its parts. */
typedef struct rc_lazy {
    cs_digestset *parts; /* part digest -> index into objs | kind << 32 */
    cs_digest *objs;
    size_t n, cap;
    cs_digestset *lists;     /* tree -> index into lists_v / lists_n (RK_TREEPACKS) */
    const uint8_t **lists_v; /* in the root's walk buffer: valid during the import */
    uint32_t *lists_n;
    size_t nlists, caplists;
    bool lazy;    /* the root names its trees' parts: they stay remote */
    bool cleared; /* the dir's old pack part records dropped */
} rc_lazy;
void rc_lazy_init(rc_lazy *l);
void rc_lazy_release(rc_lazy *l);
/* A root record of kind RK_TREEPART, RK_IMAGEPART, RK_COPYKEY or RK_TREEPACKS. */
int rc_lazy_rec(rc_lazy *l, cs_db *db, MDB_txn *txn, uint8_t kind, const void *k, const void *v,
                uint32_t vn, cs_rcache_stats *st, cs_error **err);
/* The root's part d (kind RK_PART / RK_PACKPART, v its size): 1 when it is
 * left remote or not needed, 0 to import it now. l may be NULL. */
int rc_lazy_part(rc_lazy *l, cs_db *db, MDB_txn *txn, const char *dir, uint8_t kind, const void *d,
                 const void *v, cs_rcache_stats *st, cs_error **err);
/* Fetch: 1 when remote_trees holds pack parts (then they are imported), 0 if not. */
int rc_lazy_fetch_packs(cs_store *s, cs_error **err);
/* 1 when remote_trees is empty. */
bool rc_lazy_none(cs_db *db, MDB_txn *txn);
/* rc_blob_read's fallback: blob d of dir (size bytes) from the remote dir mirrors, kept in dir. */
int rc_lazy_pull(const char *dir, const cs_digest *d, int64_t size, cs_buf *out, cs_error **err);
/* Export (rcache_treepacks.c): for each tree x's root names a part of, the
 * pack parts of x holding its chunks and their delta bases (RK_TREEPACKS): a fetch of the tree
 * then reads those pack parts only. Reads the pack parts from dir. */
int rc_lazy_tree_packs(cs_store *s, const char *dir, rc_index *x, cs_error **err);
/* Export (rcache_treepacks.c): the parts of the trees the build's entries and images name that
 * are still remote here (a hit on an imported cache), so the export reads
 * their records as a local tree's. */
int rc_lazy_fetch_build(cs_store *s, const cs_rcache_build *b, cs_rcache_mode mode, cs_error **err);
/* Prune: the root records of kinds >= RK_TREEPART are kept in keep; those
 * whose part (or, for RK_COPYKEY, whose top tree's part) x still names go
 * into x's root. */
void rc_lazy_prune_keep(const rc_part *keep, rc_index *x);

#endif
