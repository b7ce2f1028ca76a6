/* feeder.h - a thread that reads a (compressed) stream ahead of its consumer.
 *
 * It reads the source in blocks, hashes the bytes as read (the blob digest),
 * detects and undoes gzip or zstd compression, hashes the result (the
 * diff_id), and hands decompressed blocks to the consumer through a bounded
 * queue. It always reads the source to its end, so both digests cover the
 * whole stream even when the consumer stops early.
 */
#ifndef CSTORE_FEEDER_H
#define CSTORE_FEEDER_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/ingest.h"

typedef struct cs_feeder cs_feeder;

int cs_feeder_start(cs_read_fn rd, void *rctx, cs_feeder **out, cs_error **err);
/* The same over the n bytes at p, which must stay valid and unchanged
 * until cs_feeder_free and, for plain (uncompressed) input, as long as the
 * consumer uses the blocks: plain bytes are handed out in place, as one
 * block, while the thread hashes them (nothing is copied); compressed ones
 * are decompressed into queue blocks as from a reader. */
int cs_feeder_start_mem(const void *p, size_t n, cs_feeder **out, cs_error **err);
/* True when cs_feeder_next hands out the caller's bytes in place
 * (cs_feeder_start_mem of plain input): they stay valid after the next call. */
bool cs_feeder_in_place(const cs_feeder *f);
/* Next decompressed block: returns its length (0 at the end) or -1 on error.
 * *p stays valid until the next call. */
ssize_t cs_feeder_next(cs_feeder *f, const void **p);
/* Drains the rest, joins the thread and reports the digests. Returns 0, or
 * <0 with *err set when reading or decompressing failed. */
int cs_feeder_finish(cs_feeder *f, cs_layer_info *out, cs_error **err);
/* Stops and frees (after finish, or to abandon). */
void cs_feeder_free(cs_feeder *f);

#endif
