/* bench_chunks.c - what one core does per chunk of a load, piece by piece: the FastCDC chunker,
 * SHA-256, memcpy, and zstd at several levels (compress MB/s, stored bytes, decompress MB/s), on
 * the chunks of FILE (cut over the whole file, as one big member), one line per case. It sizes
 * the parts of bench/bench_load.sh's table and picked ingest's zstd level.
 *
 *   bench_chunks FILE [RUNS]      (default 3; medians of CPU time of the calling thread)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_c_literalCompressionMode */
#include <zstd.h>
#include "chunker.h"
#include "cstore/util.h"
#include "bench_stats.h"

static double
cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct chunks {
    const uint8_t *base;
    size_t *off, *len, n;
} chunks;

static void
cut_all(const uint8_t *p, size_t n, chunks *c)
{
    c->base = p;
    c->n = 0;
    for (size_t o = 0; o < n;) {
        size_t k = cs_chunker_next(p + o, n - o, true);
        if (c->off) {
            c->off[c->n] = o;
            c->len[c->n] = k;
        }
        c->n++;
        o += k;
    }
}

enum { CASE_CHUNK, CASE_SHA, CASE_COPY, CASE_ZSTD, CASE_UNZSTD };

/* A zstd setting: a level, and optionally the fast strategy's tables and
 * raw literals (no Huffman stage). */
typedef struct zcase {
    const char *name;
    int level, hash_log, min_match;
    bool raw_literals;
} zcase;

static void
zstd_setup(ZSTD_CCtx *cc, const zcase *z)
{
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, z->level);
    if (z->hash_log)
        ZSTD_CCtx_setParameter(cc, ZSTD_c_hashLog, z->hash_log);
    if (z->min_match)
        ZSTD_CCtx_setParameter(cc, ZSTD_c_minMatch, z->min_match);
    if (z->raw_literals)
        ZSTD_CCtx_setParameter(cc, ZSTD_c_literalCompressionMode, ZSTD_ps_disable);
}

/* One run of a case over every chunk; *bytes gets the stored size for zstd. */
static double
run_case(int what, const zcase *z, const chunks *c, size_t total, uint8_t *out, uint8_t **packed,
         size_t *plen, size_t *bytes)
{
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    zstd_setup(cc, z);
    size_t cap = ZSTD_compressBound(CS_CHUNK_MAX), sum = 0;
    double t0 = cpu_now();
    if (what == CASE_CHUNK) {
        chunks tmp = { 0 };
        cut_all(c->base, total, &tmp);
        sum = tmp.n;
    }
    for (size_t i = 0; what != CASE_CHUNK && i < c->n; i++) {
        const uint8_t *p = c->base + c->off[i];
        cs_digest d;
        if (what == CASE_SHA)
            cs_sha256(p, c->len[i], &d);
        else if (what == CASE_COPY)
            memcpy(out, p, c->len[i]);
        else if (what == CASE_ZSTD) {
            size_t k = ZSTD_compress2(cc, packed[i], cap, p, c->len[i]);
            plen[i] = ZSTD_isError(k) || k >= c->len[i] ? 0 : k;
            sum += (plen[i] ? plen[i] : c->len[i]) + 5;
        } else if (plen[i]) {
            ZSTD_decompressDCtx(dc, out, CS_CHUNK_MAX, packed[i], plen[i]);
        }
    }
    double t = cpu_now() - t0;
    ZSTD_freeCCtx(cc);
    ZSTD_freeDCtx(dc);
    *bytes = sum;
    return t;
}

static double
median_case(int what, const zcase *z, int runs, const chunks *c, size_t total, uint8_t *out,
            uint8_t **packed, size_t *plen, size_t *bytes)
{
    double *t = calloc((size_t) runs, sizeof(double));
    for (int r = 0; r < runs; r++)
        t[r] = run_case(what, z, c, total, out, packed, plen, bytes);
    qsort(t, (size_t) runs, sizeof(double), bench_cmp_double);
    double m = t[runs / 2];
    free(t);
    return m;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_chunks FILE [RUNS]\n");
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    cs_buf in;
    cs_buf_init(&in);
    cs_error *err = NULL;
    if (cs_read_file(argv[1], SIZE_MAX, &in, &err) < 0) {
        fprintf(stderr, "bench_chunks: %s\n", err->msg);
        return 1;
    }
    size_t total = in.len;
    chunks c = { 0 };
    cut_all(in.data, total, &c);
    c.off = calloc(c.n, sizeof(size_t));
    c.len = calloc(c.n, sizeof(size_t));
    cut_all(in.data, total, &c);
    uint8_t *out = malloc(ZSTD_compressBound(CS_CHUNK_MAX));
    uint8_t **packed = calloc(c.n, sizeof(uint8_t *));
    size_t *plen = calloc(c.n, sizeof(size_t));
    for (size_t i = 0; i < c.n; i++)
        packed[i] = malloc(ZSTD_compressBound(c.len[i]));
    double mb = (double) total / 1e6;
    printf("# %s: %.0f MB, %zu chunks, medians of %d runs, CPU time of one thread\n", argv[1], mb,
           c.n, runs);
    printf("%-22s %10s %12s %14s\n", "case", "MB/s", "stored MB", "unzstd MB/s");
    static const char *names[] = { "chunker", "sha256", "memcpy" };
    size_t bytes = 0;
    zcase none = { 0 };
    for (int w = CASE_CHUNK; w <= CASE_COPY; w++)
        printf("%-22s %10.0f\n", names[w],
               mb / median_case(w, &none, runs, &c, total, out, packed, plen, &bytes));
    static const zcase zs[] = {
        { "zstd 3", 3, 0, 0, false },
        { "zstd 1", 1, 0, 0, false },
        { "zstd 1 hash12", 1, 12, 0, false },
        { "zstd 1 hash12 mm7", 1, 12, 7, false },
        { "zstd 1 raw literals", 1, 0, 0, true },
        { "zstd -1", -1, 0, 0, false },
        { "zstd -3", -3, 0, 0, false },
        { "zstd -5", -5, 0, 0, false },
    };
    for (size_t l = 0; l < sizeof(zs) / sizeof(zs[0]); l++) {
        double tc = median_case(CASE_ZSTD, &zs[l], runs, &c, total, out, packed, plen, &bytes);
        size_t ignored;
        double td = median_case(CASE_UNZSTD, &zs[l], runs, &c, total, out, packed, plen, &ignored);
        printf("%-22s %10.0f %12.1f %14.0f\n", zs[l].name, mb / tc, (double) bytes / 1e6, mb / td);
    }
    return 0;
}
