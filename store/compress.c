/* compress.c - the compressing, hashing sink behind layer blobs. */
#include "compress.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define OUTBUF_SIZE (256u * 1024)

struct cs_csink {
    cs_compression comp;
    cs_sink_fn out;
    void *octx;
    cs_sha256_ctx *tar_hash, *blob_hash;
    uint64_t tar_size, blob_size;
    z_stream z;
    bool z_live;
    gz_header gzh;
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

int
cs_csink_new(cs_compression c, int level, cs_sink_fn out, void *octx, cs_csink **res,
             cs_error **err)
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
        /* windowBits 15 + 16: a gzip wrapper. */
        if (deflateInit2(&s->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            cs_csink_free(s);
            return cs_err(err, CS_EIO, 0, "gzip: cannot initialize deflate");
        }
        s->z_live = true;
        /* Fixed header: mtime 0, no name, OS "unknown" as Go's gzip writes. */
        s->gzh.time = 0;
        s->gzh.os = 255;
        if (deflateSetHeader(&s->z, &s->gzh) != Z_OK) {
            cs_csink_free(s);
            return cs_err(err, CS_EIO, 0, "gzip: cannot set header");
        }
        s->obuf = cs_xmalloc(OUTBUF_SIZE);
        break;
    case CS_COMP_ZSTD:
        if (level == 0)
            level = CS_ZSTD_LEVEL_DEFAULT;
        s->zc = ZSTD_createCCtx();
        if (!s->zc) {
            cs_csink_free(s);
            return cs_err(err, CS_EIO, 0, "zstd: cannot create context");
        }
        /* Single-threaded, no checksum, no content size: the same bytes in
         * always give the same frame out. */
        ZSTD_CCtx_setParameter(s->zc, ZSTD_c_compressionLevel, level);
        ZSTD_CCtx_setParameter(s->zc, ZSTD_c_checksumFlag, 0);
        ZSTD_CCtx_setParameter(s->zc, ZSTD_c_contentSizeFlag, 0);
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
gzip_run(cs_csink *s, const void *p, size_t n, int flush, cs_error **err)
{
    s->z.next_in = (Bytef *) p;
    s->z.avail_in = 0;
    size_t left = n;
    for (;;) {
        /* avail_in is 32-bit: feed at most 1 GiB at a time. */
        if (s->z.avail_in == 0 && left > 0) {
            uInt take = left > (1u << 30) ? (1u << 30) : (uInt) left;
            s->z.avail_in = take;
            left -= take;
        }
        s->z.next_out = s->obuf;
        s->z.avail_out = OUTBUF_SIZE;
        int zr = deflate(&s->z, left > 0 ? Z_NO_FLUSH : flush);
        if (zr == Z_STREAM_ERROR)
            return cs_err(err, CS_EIO, 0, "gzip: deflate failed");
        int rc = emit(s, s->obuf, OUTBUF_SIZE - s->z.avail_out, err);
        if (rc < 0)
            return rc;
        if (flush == Z_FINISH) {
            if (zr == Z_STREAM_END)
                return 0;
        } else if (s->z.avail_in == 0 && left == 0 && s->z.avail_out != 0) {
            return 0;
        }
    }
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
        return gzip_run(s, p, n, Z_NO_FLUSH, err);
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
        rc = gzip_run(s, NULL, 0, Z_FINISH, err);
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
    if (s->z_live)
        deflateEnd(&s->z);
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
