/* content.h - chunk and content records.
 *
 * chunks:   sha256(raw bytes) -> codec u8 | raw_len u32 BE | bytes (zstd or raw)
 * contents: sha256(whole file) -> size u64 BE | n u32 BE | n x (digest[32] | len u32 BE)
 * A file of size 0 has no content record: its entry carries no digest.
 * Thread rules: functions take the caller's txn; reads may run in any thread
 * with its own read txn (each thread keeps its own zstd context).
 */
#ifndef CSTORE_CONTENT_H
#define CSTORE_CONTENT_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/db.h"
#include "cstore/util.h"

enum { CS_CODEC_RAW = 0, CS_CODEC_ZSTD = 1 };

typedef struct cs_chunk_ref {
    cs_digest d;
    uint32_t len; /* raw length */
} cs_chunk_ref;

/* Puts a chunk unless present. data is n stored bytes in the given codec.
 * Returns 1 when written, 0 when it was already there, <0 on error. */
int cs_chunk_put(cs_db *db, MDB_txn *txn, const cs_digest *d, uint8_t codec, uint32_t raw_len,
                 const void *data, size_t n, cs_error **err);
/* 1 if present, 0 if not, <0 on error. */
int cs_chunk_has(cs_db *db, MDB_txn *txn, const cs_digest *d, cs_error **err);
/* Appends the chunk's raw bytes to out. verify: re-hash and fail with
 * CS_ECORRUPT on mismatch. */
int cs_chunk_read(cs_db *db, MDB_txn *txn, const cs_digest *d, bool verify, cs_buf *out,
                  cs_error **err);
/* Appends the raw bytes of a chunk record as stored (codec u8 | raw length
 * u32 | bytes) to out; verify: re-hash against d. CS_ECORRUPT on a bad
 * codec, length or digest (out unchanged then). Any thread. */
int cs_chunk_decode(const cs_digest *d, const void *stored, size_t len, bool verify, cs_buf *out,
                    cs_error **err);
/* Stored size (value length) of a chunk; used by du. */
int cs_chunk_stored_size(cs_db *db, MDB_txn *txn, const cs_digest *d, uint64_t *out,
                         cs_error **err);

/* Puts a content record unless present. 1 written, 0 present, <0 error. */
int cs_content_put(cs_db *db, MDB_txn *txn, const cs_digest *d, uint64_t size,
                   const cs_chunk_ref *refs, uint32_t n, cs_error **err);
/* Decodes a content record; *refs is malloc'd (caller frees). */
int cs_content_get(cs_db *db, MDB_txn *txn, const cs_digest *d, uint64_t *size, cs_chunk_ref **refs,
                   uint32_t *n, cs_error **err);
int cs_content_decode(const void *p, size_t len, uint64_t *size, cs_chunk_ref **refs, uint32_t *n);

/* Streams the content's bytes to sink, chunk by chunk. A chunk this process
 * ingested and committed lately comes from the raw chunk cache (rawcache.h:
 * no read, no decompression, no verify: it was hashed from those bytes);
 * the content record always comes from txn. */
typedef int (*cs_sink_fn)(void *ctx, const void *p, size_t n, cs_error **err);
int cs_content_read(cs_db *db, MDB_txn *txn, const cs_digest *d, bool verify, cs_sink_fn sink,
                    void *ctx, cs_error **err);

#endif
