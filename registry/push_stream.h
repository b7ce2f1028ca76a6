/* push_stream.h - a layer blob generated in a thread of its own and read
 * by the upload (private to regpush.c).
 *
 * The store writes a blob (cs_push_layer_write, a sink); the registry
 * reads its upload body (cs_reg_source_fn). A bounded buffer between the
 * two: the generator blocks while it is full, the upload while it is empty.
 * No temp file, and at most PUSH_STREAM_BUF bytes in memory.
 */
#ifndef CSREG_PUSH_STREAM_H
#define CSREG_PUSH_STREAM_H

#include <sys/types.h>
#include "cstore/push.h"

#define PUSH_STREAM_BUF (1u << 20)

typedef struct push_stream push_stream;

/* Starts generating layer i of img. */
int push_stream_start(cs_push_image *img, uint32_t i, push_stream **out, cs_error **err);
/* A cs_reg_source_fn: the next bytes; 0 at the end; the generator's error
 * (moved into *err) when it failed. */
ssize_t push_stream_read(void *ctx, void *buf, size_t n, cs_error **err);
/* Stops the generator if it still runs (its sink fails), waits for it and
 * frees the stream. NULL is fine. */
void push_stream_close(push_stream *st);

#endif
