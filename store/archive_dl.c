/* archive_dl.c - the libarchive function table, dlopen'ed once (see
 * cstore/archive_dl.h). */
#define CS_ARCHIVE_DL_TABLE
#include "cstore/archive_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>

cs_archive_api cs_archive_fns;
static bool fns_ok;
static const char *missing; /* the first function not found, if the library was */
static pthread_once_t fns_once = PTHREAD_ONCE_INIT;

static void
load_once(void)
{
    void *h = dlopen("libarchive.so.13", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    cs_archive_api t;
#define CS_ARCHIVE_SYM(f)                                                                          \
    if (!(*(void **) &t.f = dlsym(h, #f))) {                                                       \
        missing = #f;                                                                              \
        return;                                                                                    \
    }
    CS_ARCHIVE_FUNCS(CS_ARCHIVE_SYM)
#undef CS_ARCHIVE_SYM
    cs_archive_fns = t;
    fns_ok = true;
}

int
cs_archive_load(const char *what, cs_error **err)
{
    pthread_once(&fns_once, load_once);
    if (fns_ok)
        return 0;
    if (missing)
        return cs_err(
            err, CS_EUNSUPPORTED, 0,
            "%s: libarchive (libarchive.so.13) has no %s: install libarchive13 3.6 or later", what,
            missing);
    return cs_err(err, CS_EUNSUPPORTED, 0,
                  "%s: libarchive (libarchive.so.13) cannot be loaded: install libarchive13", what);
}
