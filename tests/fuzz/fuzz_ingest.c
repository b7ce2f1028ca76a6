/* fuzz_ingest.c - libFuzzer target: a layer tar (plain, gzip or zstd, as
 * detected) through cs_ingest_tar. One store and one ingest (its worker
 * threads and buffers) serve every input; cs_ingest_reset after each input
 * drops what it stored (the ingest is never committed, so the store stays
 * empty) and makes a failed ingest usable again, so each input runs against
 * the same empty transaction and a reproducer behaves alone as in the run.
 */
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "cstore/ingest.h"
#include "fuzz_common.h"

typedef struct mem_rd {
    const uint8_t *p;
    size_t n, off;
} mem_rd;

static ssize_t
mem_read(void *ctx, void *buf, size_t len)
{
    mem_rd *m = ctx;
    size_t k = m->n - m->off < len ? m->n - m->off : len;
    memcpy(buf, m->p + m->off, k);
    m->off += k;
    return (ssize_t) k;
}

static cs_ingest *ing;

static void
ingest_end(void)
{
    cs_ingest_free(ing); /* aborts: nothing reaches the store */
    ing = NULL;
}

static void
fuzz_fail(const char *what, cs_error *err)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, err->msg);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_error *err = NULL;
    if (!ing) {
        if (cs_ingest_begin(fuzz_store_get(), &ing, &err) < 0)
            fuzz_fail("begin", err);
        atexit(ingest_end);
    }
    mem_rd m = { data, size, 0 };
    cs_layer_info info;
    cs_ingest_tar(ing, "layer", mem_read, &m, &info, &err);
    cs_error_clear(&err);
    if (cs_ingest_reset(ing, &err) < 0)
        fuzz_fail("reset", err); /* the store itself failed: nothing to fuzz */
    return 0;
}
