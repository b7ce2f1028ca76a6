/* bench_rawcache.c - a build step's layer ingested and its diff id computed, with the raw chunk
 * cache (rawcache.c) off and on, interleaved in one process: what the copies cost the ingest
 * and what they save the diff id. The layer is one file: the first --size MB of FILE (default
 * this program; give a bigger binary, e.g. build/cstore: zstd shrinks it as it shrinks a go
 * binary), changed at 8 seeded
 * places each run (a rebuilt binary: most chunks stored already, a few new), ingested from a
 * directory as a RUN's upper dir is, committed; then its diff id as the commit computes it
 * (commit_diff_id_of in a read transaction). Medians; cpu = the process's CPU time (all
 * threads), the figure that load on the machine disturbs least.
 *
 *   bench_rawcache [--size MB] [--file FILE] [RUNS]      (defaults 1.8, this program, 21)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "commit_int.h"
#include "cstore/ingest.h"
#include "cstore/rawcache.h"
#include "bench_stats.h"

enum { OFF, ON };

static void
die(const char *what, cs_error *err)
{
    fprintf(stderr, "bench_rawcache: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

typedef struct diff_ctx {
    const cs_digest *tree;
    cs_layer_blob lb;
} diff_ctx;

static int
diff_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    diff_ctx *c = ctx;
    bool fresh;
    return commit_diff_id_of(db, txn, c->tree, &c->lb, &fresh, NULL, err);
}

/* One run: the file written, ingested and committed, its diff id. */
static void
one(cs_store *s, const char *dir, const uint8_t *base, size_t n, uint64_t seed, double out[4])
{
    uint8_t *p = cs_xmalloc(n);
    memcpy(p, base, n);
    for (int k = 0; k < 8; k++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        p[(seed >> 17) % n] ^= (uint8_t) (seed >> 56) | 1;
    }
    cs_autofree char *path = cs_xasprintf("%s/hello", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (fd < 0 || write(fd, p, n) != (ssize_t) n || close(fd) < 0)
        die("write the file", NULL);
    free(p);
    cs_error *err = NULL;
    cs_ingest *ing = NULL;
    cs_digest tree;
    double w0 = bench_ms(CLOCK_MONOTONIC), c0 = bench_ms(CLOCK_PROCESS_CPUTIME_ID);
    if (cs_ingest_begin(s, &ing, &err) < 0 || cs_ingest_dir(ing, dir, &tree, &err) < 0
        || cs_ingest_commit(ing, &err) < 0)
        die("ingest", err);
    cs_ingest_free(ing);
    double w1 = bench_ms(CLOCK_MONOTONIC), c1 = bench_ms(CLOCK_PROCESS_CPUTIME_ID);
    diff_ctx dc = { .tree = &tree };
    if (cs_db_read(cs_store_db(s), diff_fn, &dc, &err) < 0)
        die("diff id", err);
    double w2 = bench_ms(CLOCK_MONOTONIC), c2 = bench_ms(CLOCK_PROCESS_CPUTIME_ID);
    out[0] = w1 - w0;
    out[1] = c1 - c0;
    out[2] = w2 - w1;
    out[3] = c2 - c1;
}

int
main(int argc, char **argv)
{
    double mb = 1.8;
    int runs = 21;
    const char *file = "/proc/self/exe";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--file") && i + 1 < argc)
            file = argv[++i];
        else
            runs = atoi(argv[i]);
    }
    size_t n = (size_t) (mb * 1e6);
    uint8_t *base = cs_xmalloc(n);
    int fd = open(file, O_RDONLY);
    ssize_t got = fd < 0 ? -1 : read(fd, base, n);
    if (got < (ssize_t) n) {
        fprintf(stderr, "bench_rawcache: '%s' is smaller than %.1f MB\n", file, mb);
        return 1;
    }
    close(fd);
    char tmpl[] = "/var/tmp/cstore-bench-rawcache.XXXXXX";
    if (!mkdtemp(tmpl))
        die("mkdtemp", NULL);
    cs_autofree char *root = cs_xasprintf("%s/store", tmpl);
    cs_autofree char *dir = cs_xasprintf("%s/layer", tmpl);
    cs_error *err = NULL;
    cs_store *s = NULL;
    if (mkdir(dir, 0755) < 0 || cs_store_open(root, 0, &s, &err) < 0)
        die("open the store", err);
    double *v[2][4];
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 4; k++)
            v[m][k] = cs_xcalloc((size_t) runs, sizeof(double));
    double warm[4];
    one(s, dir, base, n, 1, warm); /* the file's first version: its chunks stored */
    for (int i = 0; i < runs; i++)
        for (int m = 0; m < 2; m++) {
            cs_rawcache_set_budget(m == ON ? CS_RAWCACHE_BUDGET : 0);
            double r[4];
            one(s, dir, base, n, 1000 + 2 * (uint64_t) i + (uint64_t) m, r);
            for (int k = 0; k < 4; k++)
                v[m][k][i] = r[k];
        }
    printf("%-6s %12s %12s %12s %12s %12s  (%.1f MB, medians of %d, ms)\n", "cache", "ingest",
           "ingest cpu", "diff id", "diff id cpu", "both cpu", mb, runs);
    for (int m = 0; m < 2; m++) {
        cs_autofree double *both = cs_xcalloc((size_t) runs, sizeof(double));
        for (int i = 0; i < runs; i++)
            both[i] = v[m][1][i] + v[m][3][i];
        double med[4];
        for (int k = 0; k < 4; k++)
            med[k] = bench_median(v[m][k], runs);
        printf("%-6s %12.3f %12.3f %12.3f %12.3f %12.3f\n", m == ON ? "on" : "off", med[0], med[1],
               med[2], med[3], bench_median(both, runs));
    }
    cs_store_close(s);
    if (cs_rm_tree(tmpl, NULL, &err) < 0)
        die("remove the work dir", err);
    return 0;
}
