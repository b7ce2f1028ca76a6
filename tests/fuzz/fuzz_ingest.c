/* fuzz_ingest.c - libFuzzer target: a layer tar (plain, gzip or zstd, as
 * detected) through cs_ingest_tar. One store and one ingest (one write
 * transaction) serve many inputs; the ingest is aborted, never committed,
 * after an error or every 256 inputs, so the store stays empty and the
 * transaction small. */
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
static unsigned uses;

static void
ingest_end(void)
{
    cs_ingest_free(ing); /* aborts: nothing reaches the store */
    ing = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_error *err = NULL;
    if (!ing) {
        if (cs_ingest_begin(fuzz_store_get(), &ing, &err) < 0) {
            fprintf(stderr, "fuzz: %s\n", err->msg);
            abort();
        }
        static bool registered;
        if (!registered)
            atexit(ingest_end);
        registered = true;
        uses = 0;
    }
    mem_rd m = { data, size, 0 };
    cs_layer_info info;
    int rc = cs_ingest_tar(ing, "layer", mem_read, &m, &info, &err);
    cs_error_free(err);
    if (rc < 0 || ++uses >= 256)
        ingest_end();
    return 0;
}
