/* feeder.c - read-ahead, hashing and decompression thread (see feeder.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#define ZLIB_CONST /* next_in reads in place (a mapped blob) */
#include <zlib.h>
#include <zstd.h>
#include "feeder.h"

#define BLOCK   (1u << 20)
#define NBLOCKS 16

typedef struct block {
    uint8_t *data;
    size_t len;
} block;

struct cs_feeder {
    cs_read_fn rd;
    void *rctx;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    block q[NBLOCKS];
    uint64_t head, tail; /* produced, consumed */
    bool eof, stop;
    int err_code;
    char *err_msg;
    cs_layer_info info;
    cs_sha256_ctx *raw_sha, *tar_sha;
    /* consumer side: block handed out by the last cs_feeder_next */
    bool holding;
    /* cs_feeder_start_mem: the caller's bytes; plain ones are handed out in
     * place (mem_given once they were) while the thread only hashes them */
    const uint8_t *mem;
    size_t mem_len, mem_off;
    bool mem_plain, mem_given;
};

static bool
stopped(cs_feeder *f)
{
    pthread_mutex_lock(&f->mu);
    bool s = f->stop;
    pthread_mutex_unlock(&f->mu);
    return s;
}

/* Producer: waits for a free block, returns it for filling. NULL when stopped. */
static block *
get_free(cs_feeder *f)
{
    pthread_mutex_lock(&f->mu);
    while (f->head - f->tail == NBLOCKS && !f->stop)
        pthread_cond_wait(&f->cv, &f->mu);
    block *b = f->stop ? NULL : &f->q[f->head % NBLOCKS];
    pthread_mutex_unlock(&f->mu);
    return b;
}

static void
publish(cs_feeder *f)
{
    pthread_mutex_lock(&f->mu);
    f->head++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void
fail(cs_feeder *f, cs_code code, const char *msg)
{
    pthread_mutex_lock(&f->mu);
    if (!f->err_code) {
        f->err_code = code;
        f->err_msg = cs_xstrdup(msg);
    }
    pthread_mutex_unlock(&f->mu);
}

/* The diff_id hash of a block going out. Plain input is its own tar: the
 * blob hash of read_in is the diff_id too, so its bytes are hashed once. */
static void
hash_tar(cs_feeder *f, const block *b)
{
    if (f->info.comp != CS_COMP_NONE)
        cs_sha256_update(f->tar_sha, b->data, b->len);
}

/* Emits decompressed bytes into queue blocks. false when stopped. */
static bool
emit(cs_feeder *f, block **cur, const uint8_t *p, size_t n)
{
    while (n) {
        if (!*cur) {
            *cur = get_free(f);
            if (!*cur)
                return false;
            if (!(*cur)->data) /* on first use: a small layer needs few */
                (*cur)->data = cs_xmalloc(BLOCK);
            (*cur)->len = 0;
        }
        size_t room = BLOCK - (*cur)->len;
        size_t k = n < room ? n : room;
        memcpy((*cur)->data + (*cur)->len, p, k);
        (*cur)->len += k;
        p += k;
        n -= k;
        if ((*cur)->len == BLOCK) {
            hash_tar(f, *cur);
            f->info.tar_size += (*cur)->len;
            publish(f);
            *cur = NULL;
        }
    }
    return true;
}

static void
flush(cs_feeder *f, block **cur)
{
    if (*cur && (*cur)->len) {
        hash_tar(f, *cur);
        f->info.tar_size += (*cur)->len;
        publish(f);
        *cur = NULL;
    }
}

/* The producer's decoding state. */
typedef struct decoder {
    const uint8_t *in; /* the input block: buf, or in place in the caller's bytes */
    uint8_t *buf, *out;
    block *cur;
    z_stream zs;
    bool zinit;
    ZSTD_DStream *zd;
    bool stream_end; /* the compressed stream ended where input stopped */
    bool ok;         /* false after a failure or a stop: only hashing goes on */
} decoder;

/* Reads the next input block, hashing it as read. 0 at the end, -1 after a
 * read failure (reported). */
static ssize_t
read_in(cs_feeder *f, decoder *d)
{
    ssize_t n;
    if (f->mem) { /* compressed bytes in memory: read in place */
        size_t k = f->mem_len - f->mem_off < BLOCK ? f->mem_len - f->mem_off : BLOCK;
        d->in = f->mem + f->mem_off;
        f->mem_off += k;
        n = (ssize_t) k;
    } else {
        n = f->rd(f->rctx, d->buf, BLOCK);
        d->in = d->buf;
    }
    if (n < 0) {
        char m[256];
        snprintf(m, sizeof(m), "read: %s", strerror(errno));
        fail(f, CS_EIO, m);
        return -1;
    }
    cs_sha256_update(f->raw_sha, d->in, (size_t) n);
    f->info.blob_size += (uint64_t) n;
    return n;
}

/* The magic needs 4 bytes: a pipe may hand out fewer at first. Then the
 * compression is told by the magic. */
static ssize_t
detect(cs_feeder *f, decoder *d, ssize_t n)
{
    const uint8_t *in = d->in;
    while (n < 4 && !f->mem) { /* (in memory, the first block is all there is) */
        ssize_t k = f->rd(f->rctx, d->buf + n, BLOCK - (size_t) n);
        if (k <= 0)
            break;
        cs_sha256_update(f->raw_sha, d->buf + n, (size_t) k);
        f->info.blob_size += (uint64_t) k;
        n += k;
    }
    if (n >= 2 && in[0] == 0x1f && in[1] == 0x8b) {
        f->info.comp = CS_COMP_GZIP;
        d->out = cs_xmalloc(BLOCK); /* only compressed layers decode into it */
        memset(&d->zs, 0, sizeof(d->zs));
        if (inflateInit2(&d->zs, 16 + MAX_WBITS) != Z_OK)
            abort();
        d->zinit = true;
    } else if (n >= 4 && in[0] == 0x28 && in[1] == 0xb5 && in[2] == 0x2f && in[3] == 0xfd) {
        f->info.comp = CS_COMP_ZSTD;
        d->out = cs_xmalloc(BLOCK);
        d->zd = ZSTD_createDStream();
        if (!d->zd)
            abort();
    }
    return n;
}

static void
decode_gzip(cs_feeder *f, decoder *d, size_t n)
{
    d->zs.next_in = d->in;
    d->zs.avail_in = (uInt) n;
    while (d->ok && d->zs.avail_in) {
        if (d->stream_end) {
            /* Concatenated gzip members are one stream (gzip -d does so). */
            if (inflateReset(&d->zs) != Z_OK)
                abort();
            d->stream_end = false;
        }
        d->zs.next_out = d->out;
        d->zs.avail_out = BLOCK;
        int rc = inflate(&d->zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            fail(f, CS_ECORRUPT, "gzip data is corrupt");
            d->ok = false;
            return;
        }
        d->ok = emit(f, &d->cur, d->out, BLOCK - d->zs.avail_out);
        if (rc == Z_STREAM_END)
            d->stream_end = true;
        else if (rc == Z_BUF_ERROR && d->zs.avail_in == 0)
            return;
    }
}

static void
decode_zstd(cs_feeder *f, decoder *d, size_t n)
{
    ZSTD_inBuffer ib = { d->in, n, 0 };
    while (d->ok && ib.pos < ib.size) {
        ZSTD_outBuffer ob = { d->out, BLOCK, 0 };
        size_t rc = ZSTD_decompressStream(d->zd, &ob, &ib);
        if (ZSTD_isError(rc)) {
            fail(f, CS_ECORRUPT, "zstd data is corrupt");
            d->ok = false;
            return;
        }
        d->ok = emit(f, &d->cur, d->out, ob.pos);
        d->stream_end = rc == 0;
    }
}

static void
decode(cs_feeder *f, decoder *d, size_t n)
{
    if (f->info.comp == CS_COMP_NONE)
        d->ok = emit(f, &d->cur, d->in, n);
    else if (f->info.comp == CS_COMP_GZIP)
        decode_gzip(f, d, n);
    else
        decode_zstd(f, d, n);
}

/* The end of the input: a truncated stream is an error, else the last
 * block goes out; then the consumer is told. */
static void
finish(cs_feeder *f, decoder *d)
{
    bool stop = stopped(f);
    if (d->ok && !stop && f->info.comp != CS_COMP_NONE && !d->stream_end)
        fail(f, CS_ECORRUPT, "compressed stream is truncated");
    if (d->ok && !stop)
        flush(f, &d->cur);
    if (d->zinit)
        inflateEnd(&d->zs);
    ZSTD_freeDStream(d->zd);
    free(d->buf);
    free(d->out);
    pthread_mutex_lock(&f->mu);
    f->eof = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void *
run(void *arg)
{
    cs_feeder *f = arg;
    decoder d = { .buf = f->mem ? NULL : cs_xmalloc(BLOCK), .ok = true };
    bool first = true;
    for (;;) {
        ssize_t n = read_in(f, &d);
        if (n < 0)
            d.ok = false;
        if (n <= 0)
            break;
        if (first)
            n = detect(f, &d, n);
        first = false;
        if (stopped(f))
            break; /* abandoned: no digest will be asked for */
        if (d.ok)  /* else keep hashing the source to its end */
            decode(f, &d, (size_t) n);
    }
    finish(f, &d);
    return NULL;
}

static cs_feeder *
feeder_new(void)
{
    cs_feeder *f = cs_xcalloc(1, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->raw_sha = cs_sha256_new();
    f->tar_sha = cs_sha256_new();
    return f;
}

static int
feeder_run(cs_feeder *f, void *(*fn)(void *), cs_feeder **out, cs_error **err)
{
    int rc = pthread_create(&f->thread, NULL, fn, f);
    if (rc) {
        cs_feeder_free(f);
        return cs_err(err, CS_EIO, rc, "start reader thread");
    }
    f->started = true;
    *out = f;
    return 0;
}

int
cs_feeder_start(cs_read_fn rd, void *rctx, cs_feeder **out, cs_error **err)
{
    cs_feeder *f = feeder_new();
    f->rd = rd;
    f->rctx = rctx;
    return feeder_run(f, run, out, err);
}

/* The thread of plain bytes in memory: it only hashes them, in steps, so
 * that a stop ends it early; the consumer reads them in place meanwhile. */
#define MEM_STEP (4u << 20)

static void *
run_hash(void *arg)
{
    cs_feeder *f = arg;
    for (size_t off = 0; off < f->mem_len && !stopped(f); off += MEM_STEP) {
        size_t k = f->mem_len - off < MEM_STEP ? f->mem_len - off : MEM_STEP;
        cs_sha256_update(f->raw_sha, f->mem + off, k);
    }
    return NULL;
}

int
cs_feeder_start_mem(const void *p, size_t n, cs_feeder **out, cs_error **err)
{
    cs_feeder *f = feeder_new();
    const uint8_t *b = p;
    f->mem = p;
    f->mem_len = n;
    bool gz = n >= 2 && b[0] == 0x1f && b[1] == 0x8b;
    bool zst = n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd;
    if (gz || zst)
        return feeder_run(f, run, out, err); /* read_in reads f->mem in place */
    f->mem_plain = true;
    f->info.blob_size = f->info.tar_size = n;
    return feeder_run(f, run_hash, out, err);
}

bool
cs_feeder_in_place(const cs_feeder *f)
{
    return f->mem_plain;
}

ssize_t
cs_feeder_next(cs_feeder *f, const void **p)
{
    if (f->mem_plain) { /* the whole input at once, in place */
        if (f->mem_given)
            return 0;
        f->mem_given = true;
        *p = f->mem;
        return (ssize_t) f->mem_len;
    }
    pthread_mutex_lock(&f->mu);
    if (f->holding) {
        f->tail++;
        f->holding = false;
        pthread_cond_broadcast(&f->cv);
    }
    while (f->head == f->tail && !f->eof && !f->err_code)
        pthread_cond_wait(&f->cv, &f->mu);
    ssize_t r;
    if (f->head != f->tail) {
        block *b = &f->q[f->tail % NBLOCKS];
        *p = b->data;
        r = (ssize_t) b->len;
        f->holding = true;
    } else {
        r = f->err_code ? -1 : 0;
    }
    pthread_mutex_unlock(&f->mu);
    return r;
}

int
cs_feeder_finish(cs_feeder *f, cs_layer_info *out, cs_error **err)
{
    /* Discard what the consumer did not read, so the source is hashed whole. */
    const void *p;
    while (cs_feeder_next(f, &p) > 0)
        ;
    if (f->started) {
        pthread_join(f->thread, NULL);
        f->started = false;
    }
    if (f->err_code)
        return cs_err(err, (cs_code) f->err_code, 0, "%s", f->err_msg);
    cs_sha256_final(f->raw_sha, &f->info.blob);
    if (f->info.comp == CS_COMP_NONE)
        f->info.diff_id = f->info.blob; /* hashed once: see hash_tar */
    else
        cs_sha256_final(f->tar_sha, &f->info.diff_id);
    out->blob = f->info.blob;
    out->diff_id = f->info.diff_id;
    out->blob_size = f->info.blob_size;
    out->tar_size = f->info.tar_size;
    out->comp = f->info.comp;
    return 0;
}

void
cs_feeder_free(cs_feeder *f)
{
    if (!f)
        return;
    if (f->started) {
        pthread_mutex_lock(&f->mu);
        f->stop = true;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
    }
    for (int i = 0; i < NBLOCKS; i++)
        free(f->q[i].data);
    cs_sha256_free(f->raw_sha);
    cs_sha256_free(f->tar_sha);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f->err_msg);
    free(f);
}
