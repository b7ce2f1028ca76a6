/* chunker.h - FastCDC content-defined chunking (gear hash, normalized).
 *
 * Pure: bytes in, cut points out; no I/O, no allocation, so it is trivial to
 * test and fuzz. Sizes: min 16 KiB, average 64 KiB, max 256 KiB.
 */
#ifndef CSTORE_CHUNKER_H
#define CSTORE_CHUNKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_CHUNK_MIN (16u * 1024)
#define CS_CHUNK_AVG (64u * 1024)
#define CS_CHUNK_MAX (256u * 1024)

/* Length of the chunk that starts at p[0]: the first cut point in p[0..len).
 * When fewer than CS_CHUNK_MAX bytes are given and eof is false, the caller
 * must supply more data unless a cut is found: returns 0 in that case.
 * With eof true, returns len when no cut is found (the last chunk).
 * Deterministic: the same bytes give the same cuts. */
size_t cs_chunker_next(const uint8_t *p, size_t len, bool eof);

#endif
