/* fetch.c - ADD <url> through libcurl.
 *
 * libcurl is loaded with dlopen on the first ADD of a URL (registry/curl_dl.h). */
#include "fetch.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include "cstore/util.h"
#include "curl_dl.h"

typedef struct sink {
    int fd;
    int sys_errno;
} sink;

static size_t
on_data(char *p, size_t size, size_t n, void *ctx)
{
    sink *s = ctx;
    if (cs_write_all(s->fd, p, size * n) < 0) {
        s->sys_errno = errno;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    return size * n;
}

int
cs_fetch_url(const char *url, int fd, int64_t *mtime, cs_error **err)
{
    const cs_curl_api *cu = cs_curl(url, err);
    if (!cu)
        return -CS_EUNSUPPORTED;
    CURL *c = cu->easy_init();
    if (!c)
        return cs_err(err, CS_EIO, 0, "%s: cannot start libcurl", url);
    char errbuf[CURL_ERROR_SIZE] = "";
    sink s = { fd, 0 };
    cu->easy_setopt(c, CURLOPT_URL, url);
    cu->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    cu->easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    cu->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    cu->easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    cu->easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    cu->easy_setopt(c, CURLOPT_FILETIME, 1L);
    cu->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cu->easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    cu->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    cu->easy_setopt(c, CURLOPT_WRITEDATA, &s);
    cu->easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    cu->easy_setopt(c, CURLOPT_USERAGENT, "cstore");
    CURLcode rc = cu->easy_perform(c);
    int r = 0;
    if (rc != CURLE_OK) {
        if (s.sys_errno)
            r = cs_err(err, cs_sys_code(s.sys_errno), s.sys_errno, "%s: write", url);
        else
            r = cs_err(err, CS_EIO, 0, "%s: %s", url, *errbuf ? errbuf : cu->easy_strerror(rc));
    } else {
        curl_off_t ft = -1;
        if (cu->easy_getinfo(c, CURLINFO_FILETIME_T, &ft) != CURLE_OK)
            ft = -1;
        *mtime = ft;
    }
    cu->easy_cleanup(c);
    return r;
}

static int
hexval(char c)
{
    int u = tolower((unsigned char) c);
    return isdigit(u) ? u - '0' : isxdigit(u) ? u - 'a' + 10 : -1;
}

char *
cs_fetch_filename(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    p += strcspn(p, "/?#"); /* skip the host */
    size_t n = strcspn(p, "?#");
    /* Percent-decode the path, then take its last non-empty element. */
    char *path = cs_xmalloc(n + 1);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            path[w++] = (char) (hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else {
            path[w++] = p[i];
        }
    }
    path[w] = '\0';
    while (w > 0 && path[w - 1] == '/')
        path[--w] = '\0';
    char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *out = (*base && strcmp(base, ".") != 0) ? cs_xstrdup(base) : cs_xstrdup("__unnamed__");
    free(path);
    return out;
}
