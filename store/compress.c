/* compress.c - the compressing, hashing sink behind layer blobs. */
#include "compress.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define OUTBUF_SIZE (256u * 1024)

struct cs_csink {
    cs_compression comp;
    cs_sink_fn out;
    void *octx;
    cs_sha256_ctx *tar_hash, *blob_hash;
    uint64_t tar_size, blob_size;
    cs_pgz *gz;
    ZSTD_CCtx *zc;
    uint8_t *obuf;
    bool finished;
};

/* Hands compressed bytes to the output and hashes them. */
static int
emit(cs_csink *s, const void *p, size_t n, cs_error **err)
{
    if (n == 0)
        return 0;
    cs_sha256_update(s->blob_hash, p, n);
    s->blob_size += n;
    if (s->out)
        return s->out(s->octx, p, n, err);
    return 0;
}

/* emit as a cs_sink_fn for the gzip blocks. */
static int
emit_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    return emit(ctx, p, n, err);
}

unsigned
cs_csink_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4 ? 4 : (unsigned) n;
}

/* zstd on workers: nbWorkers >= 1 with a fixed job size gives the same
 * frame for any number of workers (checked by test_export); without
 * multithreading in libzstd, one thread (other, equally fixed, bytes). */
static void
zstd_params(ZSTD_CCtx *zc, int level, unsigned threads)
{
    ZSTD_CCtx_setParameter(zc, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(zc, ZSTD_c_checksumFlag, 0);
    ZSTD_CCtx_setParameter(zc, ZSTD_c_contentSizeFlag, 0);
    if (!ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_nbWorkers, (int) threads)))
        ZSTD_CCtx_setParameter(zc, ZSTD_c_jobSize, CS_ZSTD_JOB_SIZE);
}

int
cs_csink_new(cs_compression c, int level, cs_sink_fn out, void *octx, cs_csink **res,
             cs_error **err)
{
    return cs_csink_new_mt(c, level, cs_csink_default_threads(), out, octx, res, err);
}

int
cs_csink_new_mt(cs_compression c, int level, unsigned threads, cs_sink_fn out, void *octx,
                cs_csink **res, cs_error **err)
{
    cs_csink *s = cs_xcalloc(1, sizeof(*s));
    s->comp = c;
    s->out = out;
    s->octx = octx;
    s->tar_hash = cs_sha256_new();
    s->blob_hash = cs_sha256_new();
    switch (c) {
    case CS_COMP_NONE:
        break;
    case CS_COMP_GZIP:
        if (level == 0)
            level = CS_GZIP_LEVEL_DEFAULT;
        int r = cs_pgz_new(level, threads, &s->gz, err);
        if (r < 0) {
            cs_csink_free(s);
            return r;
        }
        break;
    case CS_COMP_ZSTD:
        if (level == 0)
            level = CS_ZSTD_LEVEL_DEFAULT;
        s->zc = ZSTD_createCCtx();
        if (!s->zc) {
            cs_csink_free(s);
            return cs_err(err, CS_EIO, 0, "zstd: cannot create context");
        }
        /* No checksum, no content size, fixed jobs: the same bytes in
         * always give the same frame out. */
        zstd_params(s->zc, level, threads);
        s->obuf = cs_xmalloc(OUTBUF_SIZE);
        break;
    default:
        cs_csink_free(s);
        return cs_err(err, CS_EINVAL, 0, "unknown compression %d", (int) c);
    }
    *res = s;
    return 0;
}

static int
zstd_run(cs_csink *s, const void *p, size_t n, ZSTD_EndDirective mode, cs_error **err)
{
    ZSTD_inBuffer in = { p, n, 0 };
    for (;;) {
        ZSTD_outBuffer o = { s->obuf, OUTBUF_SIZE, 0 };
        size_t r = ZSTD_compressStream2(s->zc, &o, &in, mode);
        if (ZSTD_isError(r))
            return cs_err(err, CS_EIO, 0, "zstd: %s", ZSTD_getErrorName(r));
        int rc = emit(s, s->obuf, o.pos, err);
        if (rc < 0)
            return rc;
        if (mode == ZSTD_e_end) {
            if (r == 0)
                return 0;
        } else if (in.pos == in.size) {
            return 0;
        }
    }
}

int
cs_csink_write(void *ctx, const void *p, size_t n, cs_error **err)
{
    cs_csink *s = ctx;
    if (s->finished)
        return cs_err(err, CS_EINVAL, 0, "write after finish");
    if (n == 0)
        return 0;
    cs_sha256_update(s->tar_hash, p, n);
    s->tar_size += n;
    switch (s->comp) {
    case CS_COMP_GZIP:
        return cs_pgz_write(s->gz, p, n, emit_sink, s, err);
    case CS_COMP_ZSTD:
        return zstd_run(s, p, n, ZSTD_e_continue, err);
    default:
        return emit(s, p, n, err);
    }
}

int
cs_csink_finish(cs_csink *s, cs_csink_result *res, cs_error **err)
{
    if (s->finished)
        return cs_err(err, CS_EINVAL, 0, "sink already finished");
    int rc = 0;
    if (s->comp == CS_COMP_GZIP)
        rc = cs_pgz_finish(s->gz, emit_sink, s, err);
    else if (s->comp == CS_COMP_ZSTD)
        rc = zstd_run(s, NULL, 0, ZSTD_e_end, err);
    s->finished = true;
    if (rc < 0)
        return rc;
    cs_sha256_final(s->tar_hash, &res->diff_id);
    cs_sha256_final(s->blob_hash, &res->blob);
    res->tar_size = s->tar_size;
    res->blob_size = s->blob_size;
    return 0;
}

void
cs_csink_free(cs_csink *s)
{
    if (!s)
        return;
    cs_pgz_free(s->gz);
    ZSTD_freeCCtx(s->zc);
    cs_sha256_free(s->tar_hash);
    cs_sha256_free(s->blob_hash);
    free(s->obuf);
    free(s);
}

int
cs_fd_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    int fd = *(int *) ctx;
    if (cs_write_all(fd, p, n) < 0)
        return cs_err(err, CS_EIO, errno, "write");
    return 0;
}
