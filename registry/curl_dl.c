/* curl_dl.c - the libcurl function table, dlopen'ed once (see curl_dl.h). */
#include "curl_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>

static cs_curl_api api;
static bool api_ok;
static pthread_once_t api_once = PTHREAD_ONCE_INIT;

#define SYM(field, name) (*(void **) &api.field = dlsym(h, name)) != NULL

static void
load_once(void)
{
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    CURLcode (*global_init)(long flags);
    *(void **) &global_init = dlsym(h, "curl_global_init");
    bool ok = global_init && SYM(easy_init, "curl_easy_init")
              && SYM(easy_setopt, "curl_easy_setopt") && SYM(easy_perform, "curl_easy_perform")
              && SYM(easy_getinfo, "curl_easy_getinfo") && SYM(easy_reset, "curl_easy_reset")
              && SYM(easy_cleanup, "curl_easy_cleanup") && SYM(easy_strerror, "curl_easy_strerror")
              && SYM(share_init, "curl_share_init") && SYM(share_setopt, "curl_share_setopt")
              && SYM(share_cleanup, "curl_share_cleanup") && SYM(slist_append, "curl_slist_append")
              && SYM(slist_free_all, "curl_slist_free_all");
    /* curl_global_init is not thread-safe in older libcurl: done here, once. */
    api_ok = ok && global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

const cs_curl_api *
cs_curl(const char *what, cs_error **err)
{
    pthread_once(&api_once, load_once);
    if (!api_ok) {
        cs_err(err, CS_EUNSUPPORTED, 0,
               "%s: libcurl (libcurl.so.4) cannot be loaded: install libcurl4", what);
        return NULL;
    }
    return &api;
}
