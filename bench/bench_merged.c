/* bench_merged.c - the merged tree of an image's layers, as a COPY or RUN on
 * it makes it (cs_merged_load), then one small layer applied on top as a
 * later instruction's layer is (cs_merged_apply): medians of many rounds.
 *
 *   bench_merged ROOT IMAGE [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "cstore/image.h"
#include "cstore/merged.h"
#include "cstore/oneshot.h"
#include "cstore/store.h"
#include "bench_stats.h"

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_merged ROOT IMAGE [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 31;
    cs_store *s;
    cs_error *err = NULL;
    cs_image *img = NULL;
    if (cs_store_open(argv[1], 0, &s, &err) < 0
        || cs_image_load(cs_store_db(s), argv[2], &img, &err) < 0) {
        fprintf(stderr, "bench_merged: %s\n", err->msg);
        return 1;
    }
    double *load = calloc((size_t) rounds, sizeof(double));
    double *apply = calloc((size_t) rounds, sizeof(double));
    double *fr = calloc((size_t) rounds, sizeof(double));
    size_t n = 0;
    for (int i = 0; i < rounds; i++) {
        cs_tree *m = NULL;
        double t0 = bench_ms(CLOCK_MONOTONIC);
        if (cs_merged_load(cs_store_db(s), img->layers, img->nlayers, &m, &err) < 0) {
            fprintf(stderr, "bench_merged: %s\n", err->msg);
            return 1;
        }
        double t1 = bench_ms(CLOCK_MONOTONIC);
        /* a WORKDIR's layer: one directory */
        cs_tree *l = cs_tree_new();
        cs_entry *e = cs_tree_add(l);
        e->path = cs_xstrdup("src");
        e->type = CS_E_DIR;
        e->mode = 0755;
        cs_merged_apply(m, l, &err);
        double t2 = bench_ms(CLOCK_MONOTONIC);
        n = m->n;
        cs_tree_free(l);
        cs_tree_free(m);
        double t3 = bench_ms(CLOCK_MONOTONIC);
        load[i] = t1 - t0;
        apply[i] = t2 - t1;
        fr[i] = t3 - t2;
    }
    printf("%s: %zu entries, %u layers: load %.3f ms, apply of 1 entry %.3f ms, free %.3f ms "
           "(medians of %d)\n",
           argv[2], n, img->nlayers, bench_median(load, rounds), bench_median(apply, rounds),
           bench_median(fr, rounds), rounds);
    cs_image_free(img);
    cs_store_close(s);
    return 0;
}
