/* rcache.h - the build cache shared through a directory (an OCI layout):
 * `cstore build --cache-to type=local,dest=DIR` / `--cache-from
 * type=local,src=DIR` (issue 9, first cut).
 *
 * The cache is one OCI artifact: index.json names a manifest (tagged
 * "cstore-cache") whose config has the media type CS_RCACHE_CONFIG_TYPE and
 * whose layers are (a) the root index blob, (b) its part blobs and (c) the
 * chunk packs.
 *
 * Index blobs (root and parts): a zstd frame of "CSRCIX1\0" | n u32 | n x
 * (kind u8 | key bytes | value bytes) (bytes: u32 length + bytes). The root holds the cache
 * entries and names the parts and packs (digest -> size u64). A part holds
 * the records of one image (its record, tags, tarsplit records) or of one
 * tree (the tree, all its contents, its layer_blobs and tarsplit records),
 * copied verbatim from their tables, or a pack's chunk places (the pack,
 * then chunk digest -> pack number u32 | offset u64 | length u32). The same
 * tree or pack gives the same part blob, so an export after a one-line
 * change writes the root and the parts of the new trees and packs only
 * (measured on hello-go: the golang metadata alone is 4.8 MB). Each record
 * is checked by its owner's decoder before an import puts it.
 *
 * Pack blob: the chunk records AS STORED (codec u8 | raw length u32 | bytes:
 * no recompression), back to back, then a table of contents (n x (digest |
 * offset u64 | length u32)), then n u32 and "CSPACK1\0". Packs are cut over
 * the ordered chunk sequence (base images' layers, then the cache results'
 * trees, in build order) after a chunk whose digest ends in CS_RCACHE_CUT_BITS
 * zero bits, between CS_RCACHE_PACK_MIN and _MAX bytes: an unchanged run of
 * chunks gives the same pack blob, which a second export finds in blobs/
 * and does not write again.
 *
 * The root also names each tree's and each image's part (object digest ->
 * part digest | size u64), each tree's pack parts (those holding its
 * chunks) and carries the copy_keys records of the trees it holds. Import is lazy: the root's
 * records go into the store, and the parts of the images the store lacks; every tree part and pack
 * part is left remote (the remote_trees table, rcache_lazy.c) and read where it is first needed
 * (cs_rcache_fetch_parts, cs_rcache_fetch_trees): a tree's records then, and its chunks' places
 * (the pack parts) when some chunk is neither local nor placed. Chunks that are not local go into
 * the remote_chunks table: chunk digest -> pack digest | offset u64 | length u32 | source dir
 * (rest). cs_rcache_fetch_* make a tree's chunks local: every missing chunk read from its pack
 * (near ranges coalesced into requests of up to 8 MiB, gaps up to 64 KiB read along, 4 requests at
 * once; the calling thread does the LMDB writes), its digest checked (a bad chunk is read again
 * once, then the call fails: bad bytes are never stored), and put. This module owns remote_chunks.
 *
 * Delta chunks (rcache_delta.c, rcache_dfetch.c): an export packs a new
 * chunk of a file whose previous version (the same path in the trees of
 * the index's entries, local to the exporting store) the cache holds as a
 * zstd frame with the old version's overlapping chunks (its bases, at most
 * 3, chains at most 4 deep) as prefix, when that is at most half the plain
 * chunk: codec 0x80 in the pack, whose toc entries then carry depth u8 | nb
 * u8 | base digests and whose magic is "CSPACK2"; the pack part's chunk
 * places carry the same tail, remote_chunks records the bases (a versioned
 * record; old ones read as plain). A fetch brings a delta's bases along
 * unless local, decodes it with them, checks its digest and stores it
 * plain. Prune keeps the packs of kept chunks' bases; gc the records of
 * kept records' bases.
 */
#ifndef CSTORE_RCACHE_H
#define CSTORE_RCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/db.h"
#include "cstore/store.h"
#include "cstore/util.h"

#define CS_RCACHE_CONFIG_TYPE "application/vnd.cstore.cache.config.v1+json"
#define CS_RCACHE_INDEX_TYPE  "application/vnd.cstore.cache.index.v1"
#define CS_RCACHE_PART_TYPE   "application/vnd.cstore.cache.index.part.v1"
#define CS_RCACHE_PACK_TYPE   "application/vnd.cstore.cache.pack.v1"
#define CS_RCACHE_PACK_MIN    ((uint64_t) 8 << 20)
#define CS_RCACHE_PACK_MAX    ((uint64_t) 64 << 20)
#define CS_RCACHE_CUT_BITS    9

typedef enum cs_rcache_mode { CS_RCACHE_MIN, CS_RCACHE_MAX } cs_rcache_mode;

/* What an export or import did, or what fetches moved (counters add up). */
typedef struct cs_rcache_stats {
    uint64_t entries, records, chunks; /* exported / imported */
    uint64_t deltas;                   /* chunks an export packed as deltas */
    uint64_t packs, packs_written, bytes_written, index_bytes;
    uint64_t remote;                               /* chunks left remote by an import */
    uint64_t remote_trees;                         /* trees left remote by an import */
    uint64_t fetched_chunks, fetched_bytes, reads; /* by fetches: chunks, their bytes, requests */
    uint64_t read_bytes; /* by fetches: bytes requested (the chunks and the gaps read along) */
} cs_rcache_stats;

/* What a build used: every cache key it looked up (in build order) and the
 * images it resolved for FROM / COPY --from (their records, tags, layers
 * and chunks go along, so an empty store can import the cache). */
typedef struct cs_rcache_build {
    const cs_digest *keys;
    size_t nkeys;
    const cs_digest *images;
    size_t nimages;
    cs_digest final; /* the committed image: mode=min keeps what it uses */
} cs_rcache_build;

/* Exports to the OCI layout dir (made when missing). mode=max: every key;
 * min: the keys whose layer is in the final image (and those without a
 * layer) and the images all of whose layers are. Merges with the index
 * already there (entries of this build win), and again under an flock on
 * DIR/.cstore-lock just before the index is written, so concurrent exports
 * to one dir keep each other's entries; packs are never deleted. */
int cs_rcache_export_local(cs_store *s, const char *dir, const cs_rcache_build *b,
                           cs_rcache_mode mode, cs_rcache_stats *st, cs_error **err);

/* Imports dir's cache into the store, lazily (above). One write
 * transaction: an error leaves the store unchanged. */
int cs_rcache_import_local(cs_store *s, const char *dir, cs_rcache_stats *st, cs_error **err);

/* Makes the chunks of these trees local (nothing to do: one lookup). */
int cs_rcache_fetch_trees(cs_store *s, const cs_digest *trees, size_t n, cs_rcache_stats *st,
                          cs_error **err);
/* The same for one content (a file a build reads: /etc/passwd for --chown). */
int cs_rcache_fetch_content(cs_store *s, const cs_digest *content, cs_error **err);
/* The same for an image's layers, by name or id. */
int cs_rcache_fetch_image(cs_store *s, const char *name, cs_rcache_stats *st, cs_error **err);
/* Makes the records of these trees local (their index parts, where an
 * import left them remote: remote_trees, rcache_lazy.c); no chunks. The
 * caller holds no write txn. */
int cs_rcache_fetch_parts(cs_store *s, const cs_digest *trees, size_t n, cs_error **err);
/* Of these trees' parts, the layer_blobs records only (the trees stay
 * remote): what a commit needs for the diff_ids of a layer it reuses. */
int cs_rcache_fetch_layer_blobs(cs_store *s, const cs_digest *trees, size_t n, cs_error **err);
/* 1 when tree is not local but an imported cache's part holds it, 0 if
 * not: cache lookups, gc and fsck count such a tree as present. */
int cs_rcache_tree_remote(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_error **err);
/* Whether the store has tree: 1 its records, 2 an imported cache's part not
 * fetched yet (cs_rcache_tree_remote), 0 neither. */
int cs_rcache_tree_have(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_error **err);
/* gc: drops the remote_trees records that are stale: the tree is local now,
 * gc keeps no record that names it (kept: gc's marked trees), or the cache
 * dir is gone; *dropped counts them (dry_run: counts only). */
struct cs_digestset;
int cs_rcache_gc_trees(cs_db *db, const struct cs_digestset *kept, bool dry_run, uint64_t *dropped,
                       cs_error **err);
/* Fetch counters of this process (every fetch adds to them). */
void cs_rcache_fetched(cs_rcache_stats *out);

/* Where the blobs of a cache dir come from when the dir lacks them: a
 * mirror dir of a registry cache holds the manifest and index blobs, the
 * packs stay in the registry. The program sets this once (cmd/: the
 * registry client); store/ knows no registry. has: 1 / 0 / <0; read: len
 * bytes at off of blob d into buf. */
typedef struct cs_rcache_remote {
    int (*has)(const char *dir, const cs_digest *d, cs_error **err);
    int (*read)(const char *dir, const cs_digest *d, uint64_t off, uint64_t len, void *buf,
                cs_error **err);
} cs_rcache_remote;
void cs_rcache_set_remote(const cs_rcache_remote *r);

/* 1 when the chunk is remote-backed (an imported cache has it), 0 if not:
 * for gc and fsck, which count such chunks as present. */
int cs_rcache_has(cs_db *db, MDB_txn *txn, const cs_digest *chunk, cs_error **err);

/* ---- rcache_prune.c: `cstore cache prune` and gc's remote_chunks ---- */

/* Every cache entry in a root index carries a time: the last_used field of
 * its cache record, the exporting store's last use of the key (a build
 * that exports has just looked every key up; a hit's last use is renewed
 * at most once per CS_CACHE_TOUCH_SLACK, an hour: so exporting again
 * within the hour writes the same root). An export also stamps each base
 * image it carries with a root cache record keyed by the image id ({time,
 * no layer, tree field = image id}: an import skips it) as recent as the
 * build's newest entry; an image of an older index without a stamp counts
 * as the index's newest entry. "Now" is time(2), or $CSTORE_TEST_NOW
 * (Unix seconds; for tests only), which then is the time of every entry an
 * export writes, too. */
uint64_t cs_rcache_now(void);

#define CS_RCACHE_KEEP_ALL UINT64_MAX
typedef struct cs_rcache_prune_opts {
    uint64_t keep_duration; /* seconds; CS_RCACHE_KEEP_ALL: no age limit */
    uint64_t keep_storage;  /* bytes of packs; CS_RCACHE_KEEP_ALL: no budget */
} cs_rcache_prune_opts;

typedef struct cs_rcache_prune_result {
    uint64_t entries, images;   /* removed (entries: cache entries, images: base images) */
    uint64_t packs, pack_bytes; /* packs no longer named */
    uint64_t parts, part_bytes; /* index parts no longer named */
    uint64_t kept_entries, kept_packs, kept_pack_bytes;
    cs_digest *gone; /* the blobs no longer named (packs, parts, old root) */
    size_t ngone;
} cs_rcache_prune_result;
void cs_rcache_prune_result_release(cs_rcache_prune_result *r);

/* Prunes the cache in layout dir: entries (and base images) older than
 * keep_duration go; then, while the packs the rest need add up to more
 * than keep_storage, the least recently used go. Parts and packs nothing
 * left needs are dropped from the index, which is written as an export
 * writes it (root, manifest, index.json last: a prune killed before that
 * leaves the previous cache whole); then the dropped blobs that are in dir
 * are deleted (a pack shared by a kept entry stays whole). r->gone lists
 * them for a registry mirror's caller. -CS_ENOTFOUND when dir holds no
 * cache. Nothing changes when nothing is dropped. */
int cs_rcache_prune(const char *dir, const cs_rcache_prune_opts *o, cs_rcache_prune_result *r,
                    cs_error **err);

/* gc's mark, after the chunks of the contents it keeps are in kept: the
 * bases of every kept chunk a remote delta record stands for join kept (and
 * theirs, to the end of the chain), so a local base is not swept while a
 * delta that needs it may still be fetched. */
struct cs_digestset;
int cs_rcache_gc_mark(cs_db *db, MDB_txn *txn, struct cs_digestset *kept, cs_error **err);

/* gc: drops the remote_chunks records that are stale: the chunk is local
 * now, no content gc keeps uses it (kept: gc's marked chunks; NULL: not
 * this rule), or the source dir the record names is gone. In batches of
 * write transactions; *dropped counts them (dry_run: counts only). */
struct cs_digestset;
int cs_rcache_gc(cs_db *db, const struct cs_digestset *kept, bool dry_run, uint64_t *dropped,
                 cs_error **err);

#endif
