/* bench_limits.c - single-core ceilings of the ingest path: sha256, zstd,
 * the gear chunker, and sha256 + zstd -1 together.
 *
 * Usage: bench_limits [--size MB] [--file PATH] [--runs N]
 *
 * Without --file the input is --size MB (default 256) of seeded data that
 * alternates random bytes with text-like words, in runs of 4 KiB to 1 MiB, so
 * about half of it compresses. With --file the file is read whole (or its
 * first --size MB when --size is given). One line per case: name, MB/s of
 * input, chunks/s; each the median of --runs runs (default 3).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "chunker.h"
#include "bench_stats.h"

#define BENCH_CHUNK (64u * 1024)
#define MAX_RUNS    15

typedef struct bench {
    const uint8_t *data;
    size_t len;
    EVP_MD_CTX *md;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    uint8_t *zbuf;    /* compressed pieces, each at i * zcap */
    size_t *zlen;     /* compressed length of chunk i */
    size_t zcap;      /* ZSTD_compressBound(BENCH_CHUNK) */
    uint8_t *scratch; /* one chunk of output */
    size_t nchunks;   /* fixed 64 KiB pieces of data */
    uint64_t sink;    /* keeps results alive */
    size_t zbytes;    /* compressed total of the last zstd run */
} bench;

typedef size_t (*bench_fn)(bench *b, int arg); /* returns chunks processed */

static uint64_t
rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void
gen_data(uint8_t *p, size_t len, uint64_t seed)
{
    static const char *const words[] = {
        "the ",   "func ", "return ",  "if ",       "err ",    "!= ",      "nil ",    "{\n",
        "}\n",    "\t",    "package ", "import ",   "string ", "int ",     "struct ", "for ",
        "range ", ":= ",   "type ",    "var ",      "const ",  "error ",   "fmt.",    "Println(",
        ") ",     "( ",    "byte ",    "len(",      "append(", "make(",    "map[",    "] ",
        "// ",    "case ", "switch ",  "default:",  "go ",     "chan ",    "select ", "defer ",
        "x ",     "y ",    "buf ",     "n, ",       "ok ",     "true ",    "false ",  "0 ",
        "1 ",     "i++ ",  "\n",       "interface", "{} ",     "context.", "Context", "ctx ",
    };
    size_t nwords = sizeof(words) / sizeof(words[0]);
    uint64_t s = seed;
    size_t off = 0;
    bool text = false;

    while (off < len) {
        size_t run = 4096 + rng_next(&s) % (1024 * 1024 - 4096);
        if (run > len - off)
            run = len - off;
        size_t end = off + run;
        if (!text) {
            for (; off < end; off += 8) {
                uint64_t z = rng_next(&s);
                memcpy(p + off, &z, end - off < 8 ? end - off : 8);
            }
        } else {
            while (off < end) {
                /* skewed word choice, like real text */
                uint64_t z = rng_next(&s);
                size_t w = (z % nwords) * ((z >> 32) % nwords) / nwords;
                size_t wl = strlen(words[w]);
                if (wl > end - off)
                    wl = end - off;
                memcpy(p + off, words[w], wl);
                off += wl;
            }
        }
        off = end;
        text = !text;
    }
}

static uint8_t *
read_file(const char *path, size_t limit, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "bench_limits: open '%s': %s\n", path, strerror(errno));
        exit(1);
    }
    size_t n = (size_t) st.st_size;
    if (limit && limit < n)
        n = limit;
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        abort();
    for (size_t off = 0; off < n;) {
        ssize_t r = read(fd, p + off, n - off);
        if (r <= 0) {
            fprintf(stderr, "bench_limits: read '%s': %s\n", path,
                    r < 0 ? strerror(errno) : "short file");
            exit(1);
        }
        off += (size_t) r;
    }
    close(fd);
    *len = n;
    return p;
}

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static size_t
piece_len(const bench *b, size_t i)
{
    size_t off = i * BENCH_CHUNK;
    return b->len - off < BENCH_CHUNK ? b->len - off : BENCH_CHUNK;
}

static void
sha256(bench *b, const uint8_t *p, size_t n)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int mdlen;

    if (!EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) || !EVP_DigestUpdate(b->md, p, n)
        || !EVP_DigestFinal_ex(b->md, md, &mdlen)) {
        fprintf(stderr, "bench_limits: sha256 failed\n");
        exit(1);
    }
    b->sink += md[0];
}

static size_t
compress_one(bench *b, size_t i, int level)
{
    size_t r = ZSTD_compressCCtx(b->cctx, b->zbuf + i * b->zcap, b->zcap, b->data + i * BENCH_CHUNK,
                                 piece_len(b, i), level);
    if (ZSTD_isError(r)) {
        fprintf(stderr, "bench_limits: zstd compress: %s\n", ZSTD_getErrorName(r));
        exit(1);
    }
    b->zlen[i] = r;
    return r;
}

static size_t
case_sha256(bench *b, int arg)
{
    (void) arg;
    for (size_t i = 0; i < b->nchunks; i++)
        sha256(b, b->data + i * BENCH_CHUNK, piece_len(b, i));
    return b->nchunks;
}

static size_t
case_zstd(bench *b, int level)
{
    size_t total = 0;
    for (size_t i = 0; i < b->nchunks; i++)
        total += compress_one(b, i, level);
    b->zbytes = total;
    return b->nchunks;
}

static size_t
case_unzstd(bench *b, int arg)
{
    (void) arg;
    for (size_t i = 0; i < b->nchunks; i++) {
        size_t r = ZSTD_decompressDCtx(b->dctx, b->scratch, BENCH_CHUNK, b->zbuf + i * b->zcap,
                                       b->zlen[i]);
        if (ZSTD_isError(r) || r != piece_len(b, i)) {
            fprintf(stderr, "bench_limits: zstd decompress: %s\n",
                    ZSTD_isError(r) ? ZSTD_getErrorName(r) : "wrong length");
            exit(1);
        }
        b->sink += b->scratch[0];
    }
    return b->nchunks;
}

static size_t
case_chunker(bench *b, int arg)
{
    (void) arg;
    size_t off = 0, n = 0;
    while (off < b->len) {
        off += cs_chunker_next(b->data + off, b->len - off, true);
        n++;
    }
    b->sink += n;
    return n;
}

static size_t
case_sha256_zstd(bench *b, int level)
{
    size_t total = 0;
    for (size_t i = 0; i < b->nchunks; i++) {
        sha256(b, b->data + i * BENCH_CHUNK, piece_len(b, i));
        total += compress_one(b, i, level);
    }
    b->zbytes = total;
    return b->nchunks;
}

/* What ingest does per file: cut, hash each chunk, compress it. */
static size_t
case_ingest(bench *b, int level)
{
    size_t off = 0, n = 0, total = 0;
    size_t cap = ZSTD_compressBound(CS_CHUNK_MAX);
    while (off < b->len) {
        size_t c = cs_chunker_next(b->data + off, b->len - off, true);
        sha256(b, b->data + off, c);
        size_t r = ZSTD_compressCCtx(b->cctx, b->zbuf, cap, b->data + off, c, level);
        if (ZSTD_isError(r))
            exit(1);
        total += r < c ? r : c; /* chunks zstd does not shrink are stored raw */
        off += c;
        n++;
    }
    b->zbytes = total;
    return n;
}

static void
run_case(bench *b, const char *name, bench_fn fn, int arg, int runs, bool ratio)
{
    double secs[MAX_RUNS];
    size_t ops = 0;

    for (int r = 0; r < runs; r++) {
        double t0 = now();
        ops = fn(b, arg);
        secs[r] = now() - t0;
    }
    qsort(secs, (size_t) runs, sizeof(secs[0]), bench_cmp_double);
    double t = secs[runs / 2];
    printf("%-20s %8.0f MB/s %9.0f ops/s", name, (double) b->len / 1e6 / t, (double) ops / t);
    if (ratio)
        printf("  ratio %.3f", (double) b->zbytes / (double) b->len);
    printf("\n");
    fflush(stdout);
}

static void
usage(void)
{
    fprintf(stderr, "usage: bench_limits [--size MB] [--file PATH] [--runs N]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    size_t size_mb = 0;
    const char *file = NULL;
    int runs = 3;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size_mb = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--file") && i + 1 < argc)
            file = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else
            usage();
    }
    if (runs < 1 || runs > MAX_RUNS)
        usage();

    bench b = { 0 };
    uint8_t *data;
    if (file) {
        data = read_file(file, size_mb << 20, &b.len);
    } else {
        b.len = (size_mb ? size_mb : 256) << 20;
        data = malloc(b.len);
        if (!data)
            abort();
        gen_data(data, b.len, 0x6c696d697473ull);
    }
    if (b.len == 0) {
        fprintf(stderr, "bench_limits: no data\n");
        return 1;
    }
    b.data = data;
    b.nchunks = (b.len + BENCH_CHUNK - 1) / BENCH_CHUNK;
    b.zcap = ZSTD_compressBound(BENCH_CHUNK);
    size_t zsize = b.nchunks * b.zcap;
    if (zsize < ZSTD_compressBound(CS_CHUNK_MAX))
        zsize = ZSTD_compressBound(CS_CHUNK_MAX); /* the ingest case reuses zbuf */
    b.zbuf = malloc(zsize);
    b.zlen = calloc(b.nchunks, sizeof(*b.zlen));
    b.scratch = malloc(BENCH_CHUNK);
    b.md = EVP_MD_CTX_new();
    b.cctx = ZSTD_createCCtx();
    b.dctx = ZSTD_createDCtx();
    if (!b.zbuf || !b.zlen || !b.scratch || !b.md || !b.cctx || !b.dctx)
        abort();

    printf("# %s: %.1f MB, %d runs each (median), zstd %s, 64 KiB pieces\n",
           file ? file : "seeded half-random half-text", (double) b.len / 1e6, runs,
           ZSTD_versionString());
    run_case(&b, "sha256", case_sha256, 0, runs, false);
    run_case(&b, "zstd-1", case_zstd, 1, runs, true);
    run_case(&b, "zstd--1", case_zstd, -1, runs, true);
    case_zstd(&b, 1); /* decompress what level 1 produced */
    run_case(&b, "unzstd(zstd-1)", case_unzstd, 0, runs, false);
    run_case(&b, "gear-chunker", case_chunker, 0, runs, false);
    run_case(&b, "sha256+zstd-1", case_sha256_zstd, 1, runs, true);
    run_case(&b, "sha256+zstd--1", case_sha256_zstd, -1, runs, true);
    run_case(&b, "cdc+sha256+zstd-1", case_ingest, 1, runs, true);

    EVP_MD_CTX_free(b.md);
    ZSTD_freeCCtx(b.cctx);
    ZSTD_freeDCtx(b.dctx);
    free(b.zbuf);
    free(b.zlen);
    free(b.scratch);
    free(data);
    return b.sink == 42 ? 3 : 0; /* never 3 in practice; uses sink */
}
