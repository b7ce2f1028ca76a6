/* compress_pgz.c - gzip on several cores, as pigz does (see compress.h).
 *
 * The input is cut into blocks of PGZ_BLOCK bytes at fixed offsets. Each
 * block is raw-deflated on its own, primed with the 32 KiB of input before
 * it as the dictionary, and ended with a sync flush (an empty stored block:
 * byte-aligned, not final) or, for the last block, with the final block.
 * Their concatenation is one deflate stream; one gzip header before it and
 * the combined CRC-32 (crc32_combine) and length after it make one gzip
 * member. What a block compresses to depends only on its bytes, the 32 KiB
 * before them and the level: the output is the same for any number of
 * threads and any timing, and any gzip reader reads it.
 *
 * Blocks are compressed by a pool of threads (started with the second
 * block: a small layer costs no thread) through a ring of PGZ_RING jobs; the
 * calling thread fills them and emits the finished ones in order.
 */
#include <pthread.h>
#include <string.h>
#include <zlib.h>
#include "compress.h"

/* 512 KiB, not pigz's 128: the 32 KiB dictionary is hashed again for each
 * block, which cost 17% more CPU than one zlib stream with 128 KiB blocks
 * (bench_compress on a 100 MB tar of the Go toolchain). */
#define PGZ_BLOCK   (512u << 10)
#define PGZ_DICT    (32u << 10)
#define PGZ_THREADS 4
#define PGZ_RING    (2 * PGZ_THREADS + 2)

enum { JOB_FILLING, JOB_QUEUED, JOB_DONE };

typedef struct pgz_job {
    uint8_t *in; /* dictionary (dlen) then the block (len) */
    size_t dlen, len;
    bool last;
    uint8_t *out;
    size_t olen, ocap;
    uLong crc;
    int state, rc; /* rc: a zlib failure */
} pgz_job;

/* A thread's raw deflate stream, made once and reset for each block (as
 * fresh as a new one: the same bytes out). */
typedef struct pgz_stream {
    z_stream s;
    bool live;
} pgz_stream;

struct cs_pgz {
    int level;
    unsigned threads; /* workers to start; 0: compress on the calling thread */
    pgz_job ring[PGZ_RING];
    uint64_t fill, run, emit; /* seq of the job being filled, next to run, next to emit */
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t th[PGZ_THREADS];
    unsigned started;
    bool tried; /* the pool is started once or never: jobs run inline before it */
    bool stop;
    uLong crc;
    uint64_t total;
    bool header_out;
    pgz_stream inline_stream; /* the calling thread's, without a pool */
};

static pgz_job *
job(cs_pgz *z, uint64_t seq)
{
    return &z->ring[seq % PGZ_RING];
}

static int
stream_reset(pgz_stream *st, int level)
{
    if (st->live)
        return deflateReset(&st->s);
    int rc = deflateInit2(&st->s, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    st->live = rc == Z_OK;
    return rc;
}

static void
stream_end(pgz_stream *st)
{
    if (st->live)
        deflateEnd(&st->s);
    st->live = false;
}

/* Deflates one job's block (no lock held: the job is this thread's). */
static void
compress_job(pgz_stream *st, int level, pgz_job *j)
{
    j->rc = stream_reset(st, level);
    if (j->rc != Z_OK)
        return;
    z_stream *s = &st->s;
    if (j->dlen && (j->rc = deflateSetDictionary(s, j->in, (uInt) j->dlen)) != Z_OK)
        return;
    size_t need = deflateBound(s, (uLong) j->len) + 16;
    if (j->ocap < need) {
        free(j->out);
        j->out = cs_xmalloc(need);
        j->ocap = need;
    }
    s->next_in = j->in + j->dlen;
    s->avail_in = (uInt) j->len;
    s->next_out = j->out;
    s->avail_out = (uInt) j->ocap;
    for (;;) {
        int zr = deflate(s, j->last ? Z_FINISH : Z_SYNC_FLUSH);
        if (zr == Z_STREAM_ERROR) {
            j->rc = zr;
            break;
        }
        /* Done: the final block written, or everything flushed with room
         * to spare (zlib: avail_out 0 means "call again"). */
        if (j->last ? zr == Z_STREAM_END : s->avail_in == 0 && s->avail_out != 0)
            break;
        size_t used = j->ocap - s->avail_out;
        j->ocap *= 2;
        j->out = cs_xrealloc(j->out, j->ocap);
        s->next_out = j->out + used;
        s->avail_out = (uInt) (j->ocap - used);
    }
    j->olen = j->ocap - s->avail_out;
    j->crc = crc32(0, j->in + j->dlen, (uInt) j->len);
}

static void *
worker(void *arg)
{
    cs_pgz *z = arg;
    pgz_stream st = { .live = false };
    pthread_mutex_lock(&z->mu);
    for (;;) {
        while (!z->stop && z->run == z->fill)
            pthread_cond_wait(&z->work, &z->mu);
        if (z->run == z->fill)
            break; /* stopping, nothing queued */
        pgz_job *j = job(z, z->run++);
        pthread_mutex_unlock(&z->mu);
        compress_job(&st, z->level, j);
        pthread_mutex_lock(&z->mu);
        j->state = JOB_DONE;
        pthread_cond_broadcast(&z->done);
    }
    pthread_mutex_unlock(&z->mu);
    stream_end(&st);
    return NULL;
}

int
cs_pgz_new(int level, unsigned threads, cs_pgz **out, cs_error **err)
{
    if (level < 1 || level > 9)
        return cs_err(err, CS_EINVAL, 0, "gzip: level %d out of 1..9", level);
    cs_pgz *z = cs_xcalloc(1, sizeof(*z));
    z->level = level;
    z->threads = threads > PGZ_THREADS ? PGZ_THREADS : threads <= 1 ? 0 : threads;
    for (size_t i = 0; i < PGZ_RING; i++)
        z->ring[i].in = cs_xmalloc(PGZ_DICT + PGZ_BLOCK);
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->work, NULL);
    pthread_cond_init(&z->done, NULL);
    z->crc = crc32(0, NULL, 0);
    *out = z;
    return 0;
}

/* The fixed gzip header: no name, mtime 0, OS 255 (as Go writes it); XFL
 * as zlib sets it for the level. */
static int
emit_header(cs_pgz *z, cs_sink_fn emit, void *ctx, cs_error **err)
{
    uint8_t h[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255 };
    h[8] = z->level == 9 ? 2 : z->level == 1 ? 4 : 0;
    z->header_out = true;
    return emit(ctx, h, sizeof(h), err);
}

/* Emits job seq (waiting for it) and frees its slot. */
static int
emit_job(cs_pgz *z, cs_sink_fn emit, void *ctx, cs_error **err)
{
    pgz_job *j = job(z, z->emit);
    if (z->started) {
        pthread_mutex_lock(&z->mu);
        while (j->state != JOB_DONE)
            pthread_cond_wait(&z->done, &z->mu);
        pthread_mutex_unlock(&z->mu);
    } else if (j->state != JOB_DONE) {
        compress_job(&z->inline_stream, z->level, j);
        j->state = JOB_DONE;
    }
    if (j->rc != Z_OK)
        return cs_err(err, CS_EIO, 0, "gzip: deflate failed (%d)", j->rc);
    int r = z->header_out ? 0 : emit_header(z, emit, ctx, err);
    if (r == 0)
        r = emit(ctx, j->out, j->olen, err);
    z->crc = crc32_combine(z->crc, j->crc, (z_off_t) j->len);
    z->total += j->len;
    j->state = JOB_FILLING;
    z->emit++;
    return r;
}

/* Queues the job being filled and starts the next one, its dictionary the
 * last 32 KiB of this one. Starts the pool with the first queued job. */
static int
submit(cs_pgz *z, bool last, cs_sink_fn emit, void *ctx, cs_error **err)
{
    pgz_job *j = job(z, z->fill);
    j->last = last;
    if (!z->tried && z->threads && !last) {
        z->tried = true;
        for (unsigned i = 0; i < z->threads; i++)
            if (pthread_create(&z->th[i], NULL, worker, z) == 0)
                z->started++;
    }
    pthread_mutex_lock(&z->mu);
    j->state = JOB_QUEUED;
    z->fill++;
    if (!z->started)
        z->run = z->fill; /* no pool: emit_job compresses in order */
    pthread_cond_signal(&z->work);
    pthread_mutex_unlock(&z->mu);
    if (last)
        return 0;
    /* The ring is full: wait for the oldest job and emit it. */
    int r = 0;
    while (r == 0 && z->fill - z->emit >= PGZ_RING)
        r = emit_job(z, emit, ctx, err);
    pgz_job *n = job(z, z->fill);
    size_t have = j->dlen + j->len;
    size_t keep = have < PGZ_DICT ? have : PGZ_DICT;
    memcpy(n->in, j->in + have - keep, keep);
    n->dlen = keep;
    n->len = 0;
    return r;
}

int
cs_pgz_write(cs_pgz *z, const void *p, size_t n, cs_sink_fn emit, void *ctx, cs_error **err)
{
    const uint8_t *b = p;
    while (n > 0) {
        pgz_job *j = job(z, z->fill);
        size_t take = PGZ_BLOCK - j->len < n ? PGZ_BLOCK - j->len : n;
        memcpy(j->in + j->dlen + j->len, b, take);
        j->len += take;
        b += take;
        n -= take;
        if (j->len == PGZ_BLOCK) {
            int r = submit(z, false, emit, ctx, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int
cs_pgz_finish(cs_pgz *z, cs_sink_fn emit, void *ctx, cs_error **err)
{
    int r = submit(z, true, emit, ctx, err);
    while (r == 0 && z->emit < z->fill)
        r = emit_job(z, emit, ctx, err);
    if (r < 0)
        return r;
    uint8_t t[8];
    for (int i = 0; i < 4; i++) {
        t[i] = (uint8_t) (z->crc >> (8 * i));
        t[4 + i] = (uint8_t) (z->total >> (8 * i));
    }
    return emit(ctx, t, sizeof(t), err);
}

void
cs_pgz_free(cs_pgz *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&z->mu);
    z->stop = true;
    z->fill = z->run; /* drop what is queued: nobody will emit it */
    pthread_cond_broadcast(&z->work);
    pthread_mutex_unlock(&z->mu);
    for (unsigned i = 0; i < z->started; i++)
        pthread_join(z->th[i], NULL);
    stream_end(&z->inline_stream);
    for (size_t i = 0; i < PGZ_RING; i++) {
        free(z->ring[i].in);
        free(z->ring[i].out);
    }
    pthread_mutex_destroy(&z->mu);
    pthread_cond_destroy(&z->work);
    pthread_cond_destroy(&z->done);
    free(z);
}
