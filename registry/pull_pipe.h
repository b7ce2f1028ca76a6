/* pull_pipe.h - a bounded byte pipe from a download thread to the ingest
 * (private to registry/pull*.c).
 *
 * One writer (the download, through cs_reg_sink_fn), one reader (the ingest,
 * through cs_read_fn). The writer blocks while the pipe is full, the reader
 * while it is empty; abort wakes both and makes further writes fail.
 */
#ifndef CSREG_PULL_PIPE_H
#define CSREG_PULL_PIPE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "cstore/error.h"

typedef struct pull_pipe {
    pthread_mutex_t mu;
    pthread_cond_t rcv, wcv; /* the reader's and the writer's */
    uint8_t *buf;
    size_t cap, head, len;
    /* Wake-ups are batched (curl delivers 16 KiB pieces, the ingest reads
     * 1 MiB): the reader sleeps until it can get `want` bytes, the writer
     * until a quarter of the pipe is free. */
    size_t want; /* bytes the sleeping reader waits for, 0: not sleeping */
    bool wsleep; /* the writer sleeps */
    bool eof, aborted;
    int code;      /* the writer's failure, 0 */
    cs_error *err; /* its message, kept for the reader's caller */
} pull_pipe;

void pull_pipe_init(pull_pipe *p, size_t cap);
void pull_pipe_release(pull_pipe *p);
/* cs_reg_sink_fn: blocks while full; -CS_ECANCELED once aborted. */
int pull_pipe_write(void *ctx, const void *buf, size_t n, cs_error **err);
/* cs_read_fn: blocks while empty; 0 at the end, -1 (errno EIO) when the
 * writer failed or the pipe was aborted. */
ssize_t pull_pipe_read(void *ctx, void *buf, size_t n);
/* The writer's end: code 0 (complete) or its failure (err taken). */
void pull_pipe_close(pull_pipe *p, int code, cs_error *err);
/* The reader gives up: the writer's next write fails. */
void pull_pipe_abort(pull_pipe *p);

#endif
