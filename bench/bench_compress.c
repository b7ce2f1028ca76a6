/* bench_compress.c - the layer compressors (compress.h) on a file, by thread count: wall time,
 * CPU time, MB/s of input and output size, one line per case. Also zlib's single stream (what
 * export used before gzip went to blocks) for reference.
 *
 *   bench_compress FILE [RUNS]      (default 3; medians of wall and CPU time)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include "compress.h"
#include "bench_stats.h"

static double
now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
count_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) p, (void) err;
    *(size_t *) ctx += n;
    return 0;
}

/* One run: threads 0 means zlib's single gzip stream at level 1. */
static size_t
run(cs_compression c, unsigned threads, const uint8_t *in, size_t n)
{
    size_t out = 0;
    if (c == CS_COMP_GZIP && threads == 0) {
        z_stream z = { 0 };
        deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
        uint8_t buf[1 << 16];
        z.next_in = (Bytef *) in;
        z.avail_in = (uInt) n;
        int zr;
        do {
            z.next_out = buf;
            z.avail_out = sizeof(buf);
            zr = deflate(&z, Z_FINISH);
            out += sizeof(buf) - z.avail_out;
        } while (zr == Z_OK);
        deflateEnd(&z);
        return out;
    }
    cs_error *err = NULL;
    cs_csink *s;
    cs_csink_result r;
    if (cs_csink_new_mt(c, 0, threads, count_sink, &out, &s, &err) < 0
        || cs_csink_write(s, in, n, &err) < 0 || cs_csink_finish(s, &r, &err) < 0) {
        fprintf(stderr, "bench_compress: %s\n", err->msg);
        exit(1);
    }
    cs_csink_free(s);
    return out;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_compress FILE [RUNS]\n");
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    if (runs < 1 || runs > 99)
        runs = 3;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size_t n = (size_t) ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *in = malloc(n ? n : 1);
    if (!in || fread(in, 1, n, f) != n) {
        perror("read");
        return 1;
    }
    fclose(f);
    const struct {
        const char *name;
        cs_compression c;
        unsigned threads;
    } cases[] = {
        { "gzip-zlib-stream", CS_COMP_GZIP, 0 }, { "gzip-blocks-1", CS_COMP_GZIP, 1 },
        { "gzip-blocks-2", CS_COMP_GZIP, 2 },    { "zstd-mt-1", CS_COMP_ZSTD, 1 },
        { "zstd-mt-2", CS_COMP_ZSTD, 2 },
    };
    printf("%-18s %9s %9s %8s %12s\n", "case", "wall_s", "cpu_s", "MB/s", "out_bytes");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double w[99], c[99];
        size_t out = 0;
        for (int k = 0; k < runs; k++) {
            double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
            out = run(cases[i].c, cases[i].threads, in, n);
            w[k] = now(CLOCK_MONOTONIC) - w0;
            c[k] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
        qsort(w, (size_t) runs, sizeof(double), bench_cmp_double);
        qsort(c, (size_t) runs, sizeof(double), bench_cmp_double);
        printf("%-18s %9.3f %9.3f %8.1f %12zu\n", cases[i].name, w[runs / 2], c[runs / 2],
               n / 1e6 / w[runs / 2], out);
    }
    free(in);
    return 0;
}
