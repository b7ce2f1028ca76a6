/* curl_dl.h - libcurl loaded with dlopen on first use.
 *
 * Linked, libcurl would pull ~30 shared libraries (TLS, Kerberos, LDAP...)
 * into every cstore start, a third of a no-op rebuild's time; so nothing in
 * cstore links it. Its headers give the types and constants; the functions
 * come from this table. Used by builder/fetch.c (ADD <url>) and the registry
 * client.
 * Thread rules: cs_curl() may be called from any thread; the dlopen and
 * curl_global_init run once (pthread_once). The table is immutable after.
 */
#ifndef CSREG_CURL_DL_H
#define CSREG_CURL_DL_H

#include <curl/curl.h>
#include "cstore/error.h"

typedef struct cs_curl_api {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
    CURLcode (*easy_perform)(CURL *c);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
    void (*easy_reset)(CURL *c);
    void (*easy_cleanup)(CURL *c);
    const char *(*easy_strerror)(CURLcode rc);
    CURLSH *(*share_init)(void);
    CURLSHcode (*share_setopt)(CURLSH *s, CURLSHoption opt, ...);
    CURLSHcode (*share_cleanup)(CURLSH *s);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
} cs_curl_api;

/* The loaded table, or NULL with CS_EUNSUPPORTED ("libcurl (libcurl.so.4)
 * cannot be loaded: install libcurl4"; what names the caller's job) on
 * failure. Borrowed for the life of the process. */
const cs_curl_api *cs_curl(const char *what, cs_error **err);

#endif
