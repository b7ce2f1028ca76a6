/* ingest_int.h - the ingest pipeline as ingest_tar.c and ingest_dir.c use
 * it (private to libcstore).
 *
 * A file goes in as ingest_file_begin, any number of ingest_file_data (or
 * one ingest_read_fd), ingest_file_end; its digest lands in its tree entry
 * once all its chunks are put (ingest_drain_all waits for that). Only the
 * thread that began the ingest calls these.
 */
#ifndef CSTORE_INGEST_INT_H
#define CSTORE_INGEST_INT_H

#include <pthread.h>
#include "chunker.h"
#include "cstore/content.h"
#include "cstore/ingest.h"
#include "cstore/rawcache.h"
#include "cstore/tarsplit.h"

#define NSLOTS 64

enum { SLOT_FREE, SLOT_READY, SLOT_DONE };

typedef struct slot {
    int buf; /* the buffers in and out are cs_ingest's bufs[buf] */
    uint8_t *in;
    const uint8_t *src; /* the chunk's bytes: in, or the caller's (stable) */
    uint32_t len;
    int state;
    cs_digest d;
    uint8_t *out;
    size_t outlen;
    uint8_t codec;
    bool exists; /* already in the committed store: no put needed */
    size_t file; /* index into the pending-file queue */
} slot;

/* A file whose chunks are in flight; finished in order once all are put. */
typedef struct pending {
    cs_tree *tree; /* entry idx of tree gets the digest, or ... */
    size_t idx;
    cs_digest *dout; /* ... *dout does */
    uint64_t size;
    cs_chunk_ref *refs;
    uint32_t n, cap;
    uint32_t outstanding;
    bool ended, single;
    cs_digest digest; /* whole-file digest when !single */
    cs_tarsplit *ts;  /* when set, member ts_idx of ts gets the digest too */
    size_t ts_idx;
} pending;

struct cs_ingest {
    cs_store *s;
    cs_db *db;
    MDB_txn *txn;
    bool committed;
    cs_ingest_stats stats;

    /* worker pool: started on demand (submit), up to maxthreads */
    pthread_t *threads;
    int nthreads, maxthreads;
    /* One anonymous mapping carved into the slots' buffers and the pending
     * queue: pages are touched (and faulted in) only when used, so a small
     * ingest maps and touches little. (An fd is read straight into pend.) */
    uint8_t *slab;
    size_t slab_len;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    slot ring[NSLOTS];
    uint64_t head, next_work, tail;
    /* The slots' buffers, the last freed reused first (a chunk is put as
     * soon as its worker is done): an ingest that the workers keep up with
     * touches the pages of a few buffers, not of one per chunk. */
    struct {
        uint8_t *in, *out;
    } bufs[NSLOTS];
    int freebufs[NSLOTS], nfree;
    bool stop;
    /* Bumped by cs_ingest_reset once its new write txn has begun: a worker
     * that sees a new value renews its read txn, so what it takes for
     * stored (and skips) is what the new write txn sees. */
    uint64_t gen;
    /* Copies of the chunks' raw bytes (hashed by the workers), taken as
     * each chunk is put; published to the raw chunk cache only by a
     * successful commit (an aborted or reset ingest's are never served). */
    cs_rawcache_batch *raw;
    /* Set by the first failure: a half-ingested file may sit in the queue,
     * so the ingest can only be freed or reset (cs_ingest_reset) after that. */
    bool failed;

    /* pending files: a queue [pq_head, pq_tail) */
    pending *pq;
    size_t pq_head, pq_tail, pq_cap;

    /* current file */
    cs_buf pend;
    size_t pend_off;
    cs_sha256_ctx *filesha;
    bool cur_open;
    size_t cur;
    uint32_t cur_chunks;
};

/* Starts a file: its digest goes to entry idx of tree (when tree is set) or
 * to *dout. */
int ingest_file_begin(cs_ingest *ing, cs_tree *tree, size_t idx, cs_digest *dout, cs_error **err);
int ingest_file_data(cs_ingest *ing, const void *p, size_t n, cs_error **err);
/* The same for bytes that stay valid and unchanged until the ingest is
 * drained, freed or reset (a mapped file): they are chunked in place and
 * the workers read them there, with no copy. last: they are the file's
 * final bytes. */
int ingest_file_data_stable(cs_ingest *ing, const void *p, size_t n, bool last, cs_error **err);
int ingest_file_end(cs_ingest *ing, cs_error **err);
/* Feeds the current file with fd's bytes to its end; *total gets their
 * count. what names fd in errors. */
int ingest_read_fd(cs_ingest *ing, int fd, const char *what, uint64_t *total, cs_error **err);
/* The file begun last. */
pending *ingest_current(cs_ingest *ing);
/* Puts every submitted chunk and finishes every ended file. */
int ingest_drain_all(cs_ingest *ing, cs_error **err);
/* Waits for the chunks in flight and drops them unput, with every pending
 * file (after a failure: nothing points into the caller's bytes after). */
void ingest_discard_pending(cs_ingest *ing);
/* CS_EINVAL once an ingest failed (until cs_ingest_reset): a half-ingested
 * file may be queued. */
int ingest_refuse_if_failed(cs_ingest *ing, cs_error **err);
/* Checks a sorted layer (nothing below a symlink or a non-directory of the
 * layer; hardlinks point at files of the layer) and gives hardlinks their
 * target's content. name prefixes errors (CS_EINVAL). */
int ingest_check_layer(cs_tree *t, const char *name, cs_error **err);

#endif
