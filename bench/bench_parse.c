/* bench_parse.c - Dockerfile parse time.
 *
 *   bench_parse [--lines N] [--runs R]   (default 10000 lines, 5 runs; median)
 *
 * Generates a deterministic multi-stage Dockerfile of N lines (every
 * instruction kind, continuations, heredocs) and times cs_df_parse on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cstore/util.h"
#include "dockerfile.h"
#include "bench_stats.h"

int
main(int argc, char **argv)
{
    long lines = 10000, runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--lines"))
            lines = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--runs"))
            runs = strtol(argv[i + 1], NULL, 10);
    }
    if (lines < 10 || runs < 1 || runs > 100) {
        fprintf(stderr, "usage: bench_parse [--lines N>=10] [--runs 1..100]\n");
        return 2;
    }
    cs_buf b;
    cs_buf_init(&b);
    static const char *const body[] = {
        "ENV PATH=/usr/local/bin:$PATH GOPATH=/go\n",
        "LABEL org.example.version=\"1.0\" org.example.name=demo\n",
        "COPY --chown=1000:1000 src/ /app/src/\n",
        "WORKDIR /app/${NAME:-x}\n",
        "ARG VERSION=1.2.3\n",
        "EXPOSE 8080/tcp 9090\n",
        "RUN set -e; \\\n    echo building $VERSION && \\\n    make -j2 all\n",
        "CMD [\"/app/bin\", \"--serve\"]\n",
        "COPY <<EOF /etc/motd\nhello $VERSION\nEOF\n",
        "# a comment line\n",
        "USER app:app\n",
        "HEALTHCHECK --interval=30s CMD [\"/app/bin\", \"health\"]\n",
    };
    long n = 0, stage = 0;
    while (n < lines) {
        char from[96];
        snprintf(from, sizeof(from), "FROM golang:1.19 AS s%ld\n", stage++);
        cs_buf_append(&b, from, strlen(from));
        n++;
        for (int k = 0; k < 40 && n < lines; k++) {
            const char *l = body[(size_t) (k + stage) % (sizeof(body) / sizeof(body[0]))];
            cs_buf_append(&b, l, strlen(l));
            for (const char *p = l; *p; p++)
                n += *p == '\n';
        }
    }
    double *t = calloc((size_t) runs, sizeof(double));
    size_t ninstrs = 0;
    for (long r = 0; r < runs; r++) {
        cs_df *df = NULL;
        cs_error *err = NULL;
        double t0 = cs_now();
        if (cs_df_parse("Dockerfile", (const char *) b.data, b.len, &df, &err) < 0) {
            fprintf(stderr, "bench_parse: %s\n", err->msg);
            return 1;
        }
        t[r] = cs_now() - t0;
        ninstrs = df->ninstrs;
        cs_df_free(df);
    }
    qsort(t, (size_t) runs, sizeof(double), bench_cmp_double);
    printf("parse  %ld lines  %zu instructions  %.2f ms (median of %ld)\n", n, ninstrs,
           t[runs / 2] * 1e3, runs);
    free(t);
    cs_buf_release(&b);
    return 0;
}
