/* fetch.h - ADD <url>: download an http(s) resource with libcurl.
 * Thread rules: any thread; curl_global_init is done once (pthread_once).
 */
#ifndef CSBUILD_FETCH_H
#define CSBUILD_FETCH_H

#include <stdint.h>
#include "cstore/error.h"

/* Writes the body of url (redirects followed, HTTP >= 400 is an error) to
 * fd from its current offset. *mtime gets Last-Modified in seconds since
 * the epoch, or -1 when the response had none. CS_EIO with the URL and
 * curl's or the server's reason on failure; a failed write to fd gives
 * cs_sys_code(errno) (CS_EFULL for a full disk); CS_EUNSUPPORTED when
 * libcurl cannot be loaded. */
int cs_fetch_url(const char *url, int fd, int64_t *mtime, cs_error **err);

/* The file name BuildKit gives a downloaded URL: the last element of the
 * URL's (percent-decoded) path, or "__unnamed__" when there is none.
 * Caller frees. */
char *cs_fetch_filename(const char *url);

#endif
