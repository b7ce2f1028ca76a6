/* rawcache.h - the raw bytes of chunks this process has just ingested, so a
 * read of them in the same process (a build's diff id, an export, a tar)
 * takes them from memory: no LMDB read, no zstd decompression, no re-hash.
 *
 * One job: a bounded, process-wide map chunk digest -> raw bytes, least
 * recently used out first (cs_rawcache_set_budget; 32 MiB by default).
 *
 * Why no verify: an entry's bytes were hashed by this process (an ingest
 * worker: sha256 of the chunk, then the copy from the same memory), so they
 * are the chunk's bytes by construction; hashing them again would check
 * this process's memory, not the store. A read from the store verifies as
 * before (fsck reads chunks through cs_chunk_read, never through here).
 *
 * Only committed chunks are served: an ingest collects its copies in a
 * batch that nothing reads; cs_rawcache_publish moves them into the cache
 * after the ingest's commit succeeded, and an aborted, reset or failed
 * ingest frees its batch unserved. Presence still comes from LMDB: a reader
 * (cs_content_read) looks a chunk up here only after it read, in its own
 * transaction, the content record naming the chunk. An entry is served for
 * the cs_db it was committed to only; cs_rawcache_forget drops a db's
 * entries (cs_db_close calls it: at cs_store_close).
 *
 * Thread rules: the cache's functions are thread-safe (one process-wide
 * mutex); a batch belongs to one thread at a time (its ingest's calling
 * thread, which puts the chunks). Memory: entries are copies in 2 MiB blocks of their
 * own (huge pages where the kernel gives them), a block unmapped with its
 * last entry; everything is freed by cs_rawcache_forget (cs_store_close),
 * cs_rawcache_set_budget(0), or at exit.
 */
#ifndef CSTORE_RAWCACHE_H
#define CSTORE_RAWCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cstore/content.h"
#include "cstore/db.h"
#include "cstore/util.h"

/* The default total budget of the cache (bytes of chunk data). */
#define CS_RAWCACHE_BUDGET (32u << 20)
/* The most one ingest may offer (bytes): an ingest that goes past it drops
 * what it collected and offers nothing more (a load of a 470 MB layer costs
 * at most this much copying; a build step's upper dir fits). */
#define CS_RAWCACHE_INGEST_CAP (16u << 20)

typedef struct cs_rawcache_batch cs_rawcache_batch;

/* A batch that holds at most cap bytes. Caller frees (cs_rawcache_batch_free). */
cs_rawcache_batch *cs_rawcache_batch_new(size_t cap);
/* Copies the n raw bytes of chunk d (their sha256 is d: the caller hashed
 * them) into b, unless b went past its cap: then everything b holds is
 * dropped and b takes nothing more until cs_rawcache_batch_clear. */
void cs_rawcache_batch_offer(cs_rawcache_batch *b, const cs_digest *d, const void *p, size_t n);
/* Drops what b holds and lets it take chunks again (an ingest's reset). */
void cs_rawcache_batch_clear(cs_rawcache_batch *b);
/* Moves b's chunks into the cache, served for db from now on (call after
 * the commit that stored them succeeded); b is empty after. Chunks the
 * cache holds already are dropped; the least recently used entries are
 * evicted down to the budget. */
void cs_rawcache_publish(cs_rawcache_batch *b, cs_db *db);
/* Frees b and what it holds (NULL is fine). */
void cs_rawcache_batch_free(cs_rawcache_batch *b);

/* Calls sink once with chunk d's len raw bytes when the cache holds them
 * for db: 1 then (or the sink's negative code), 0 when not held (nothing
 * called). The bytes stay valid during the call even if the entry is
 * evicted meanwhile. */
int cs_rawcache_read(cs_db *db, const cs_digest *d, uint32_t len, cs_sink_fn sink, void *ctx,
                     cs_error **err);
/* Drops every entry served for db. */
void cs_rawcache_forget(cs_db *db);
/* Sets the total budget (bytes) and evicts down to it; 0 empties the cache
 * and keeps it empty (batches then copy nothing: the cache is off).
 * Returns the previous budget. */
size_t cs_rawcache_set_budget(size_t bytes);

typedef struct cs_rawcache_stats {
    size_t entries, bytes; /* held now */
    uint64_t hits, misses; /* cs_rawcache_read since start */
} cs_rawcache_stats;
void cs_rawcache_stats_get(cs_rawcache_stats *out);

#endif
