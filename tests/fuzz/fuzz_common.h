/* fuzz_common.h - what the store-backed fuzz targets share: one store in a
 * temp dir for the whole run, removed at exit, with warnings silenced. */
#ifndef CSTORE_FUZZ_COMMON_H
#define CSTORE_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include "cstore/store.h"
#include "cstore/util.h"

static char fuzz_dir[64];
static cs_store *fuzz_store;

static void
fuzz_cleanup(void)
{
    cs_error *err = NULL;
    cs_store_close(fuzz_store);
    fuzz_store = NULL;
    if (fuzz_dir[0] && cs_rm_tree(fuzz_dir, NULL, &err) < 0)
        cs_error_free(err);
}

static void
fuzz_quiet(void *ctx, const char *msg)
{
    (void) ctx;
    (void) msg;
}

/* The store, opened on first use (abort on failure: nothing to fuzz). */
static cs_store *
fuzz_store_get(void)
{
    if (fuzz_store)
        return fuzz_store;
    cs_error *err = NULL;
    snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/cs-fuzz.XXXXXX");
    if (!mkdtemp(fuzz_dir))
        abort();
    atexit(fuzz_cleanup);
    char *root = cs_xasprintf("%s/store", fuzz_dir);
    if (cs_store_open(root, 0, &fuzz_store, &err) < 0) {
        fprintf(stderr, "fuzz: %s\n", err->msg);
        abort();
    }
    free(root);
    cs_store_set_warn(fuzz_store, fuzz_quiet, NULL);
    return fuzz_store;
}

#endif
