/* compress.h - a compressing, hashing byte sink for layer blobs.
 *
 * Bytes written are the uncompressed tar stream: they are hashed (diff_id),
 * compressed (gzip or zstd, or passed through), and the compressed bytes are
 * hashed (blob digest), counted and handed to the output sink. The output is
 * deterministic whatever the number of threads: gzip has mtime 0, no name
 * and OS byte 255 (as Go writes it) and is deflated in independent 512 KiB
 * blocks as pigz does (compress_pgz.c: one member, any gzip reader reads
 * it); zstd runs on nbWorkers >= 1 with a fixed job size, no checksum and no
 * content size.
 * Thread rules: one cs_csink belongs to one thread.
 */
#ifndef CSTORE_COMPRESS_H
#define CSTORE_COMPRESS_H

#include <stdint.h>
#include "cstore/content.h"
#include "cstore/ingest.h"
#include "cstore/util.h"

#define CS_GZIP_LEVEL_DEFAULT 1
#define CS_ZSTD_LEVEL_DEFAULT 3
#define CS_ZSTD_JOB_SIZE      (1 << 20) /* bytes per zstd worker job */

typedef struct cs_csink cs_csink;

typedef struct cs_csink_result {
    cs_digest diff_id;  /* sha256 of the bytes written */
    cs_digest blob;     /* sha256 of the compressed bytes */
    uint64_t tar_size;  /* bytes written */
    uint64_t blob_size; /* compressed bytes */
} cs_csink_result;

/* level 0 picks the default of the compression. out may be NULL (digests
 * only). The sink borrows out/octx until cs_csink_free. Compresses on
 * cs_csink_default_threads() threads. */
int cs_csink_new(cs_compression c, int level, cs_sink_fn out, void *octx, cs_csink **res,
                 cs_error **err);
/* cs_csink_new on `threads` threads (the output bytes do not depend on it). */
int cs_csink_new_mt(cs_compression c, int level, unsigned threads, cs_sink_fn out, void *octx,
                    cs_csink **res, cs_error **err);
/* One per online core, at most 4. */
unsigned cs_csink_default_threads(void);
/* A cs_sink_fn: ctx is the cs_csink. */
int cs_csink_write(void *ctx, const void *p, size_t n, cs_error **err);
/* Flushes the compressor and fills *res. The sink accepts no more bytes. */
int cs_csink_finish(cs_csink *s, cs_csink_result *res, cs_error **err);
void cs_csink_free(cs_csink *s);
CS_DEFINE_FREEP(cs_csink, cs_csink_free)

/* gzip in independent blocks on up to 4 threads (compress_pgz.c): bytes go
 * in through cs_pgz_write, the gzip member comes out, in order, through
 * emit (called on the calling thread only). threads <= 1: no thread. Level
 * 1..9, else CS_EINVAL. Codes: CS_EIO (zlib), or emit's. */
typedef struct cs_pgz cs_pgz;
int cs_pgz_new(int level, unsigned threads, cs_pgz **out, cs_error **err);
int cs_pgz_write(cs_pgz *z, const void *p, size_t n, cs_sink_fn emit, void *ctx, cs_error **err);
/* The last block, then the CRC-32 and length; no more writes after it. */
int cs_pgz_finish(cs_pgz *z, cs_sink_fn emit, void *ctx, cs_error **err);
void cs_pgz_free(cs_pgz *z);

/* A cs_sink_fn writing to a file descriptor: ctx points to the int fd. */
int cs_fd_sink(void *ctx, const void *p, size_t n, cs_error **err);

#endif
