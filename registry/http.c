/* http.c - one HTTP exchange with the registry, and the loop around it:
 * authentication, redirects, retries. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "reg_int.h"

void
reg_resp_reset(reg_resp *resp)
{
    free(resp->location);
    free(resp->content_type);
    free(resp->digest);
    free(resp->www_auth);
    free(resp->range);
    free(resp->content_range);
    free(resp->foreign);
    cs_buf body = resp->body;
    body.len = 0;
    memset(resp, 0, sizeof(*resp));
    resp->body = body;
    resp->content_length = -1;
    resp->retry_after = -1;
}

void
reg_resp_release(reg_resp *resp)
{
    reg_resp_reset(resp);
    cs_buf_release(&resp->body);
}

typedef struct xfer {
    cs_registry *r;
    const reg_req *q;
    reg_resp *resp;
    cs_error *err; /* from on_data */
    int rc;
} xfer;

static void
set_header(char **slot, const char *v, size_t n)
{
    free(*slot);
    *slot = cs_strtrim_dup(v, n);
}

static size_t
on_header(char *p, size_t size, size_t n, void *ctx)
{
    xfer *x = ctx;
    reg_resp *resp = x->resp;
    size_t len = size * n;
    if (len > 5 && !strncmp(p, "HTTP/", 5)) {
        /* A new response (after 100 Continue or a proxy's answer): start over. */
        reg_resp_reset(resp);
        const char *sp = memchr(p, ' ', len);
        resp->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon)
        return len;
    size_t kl = (size_t) (colon - p);
    const char *v = colon + 1;
    size_t vl = len - kl - 1;
#define IS(name) (kl == sizeof(name) - 1 && !strncasecmp(p, name, kl))
    if (IS("location"))
        set_header(&resp->location, v, vl);
    else if (IS("content-type"))
        set_header(&resp->content_type, v, vl);
    else if (IS("docker-content-digest"))
        set_header(&resp->digest, v, vl);
    else if (IS("www-authenticate") && !resp->www_auth)
        set_header(&resp->www_auth, v, vl);
    else if (IS("range"))
        set_header(&resp->range, v, vl);
    else if (IS("content-range"))
        set_header(&resp->content_range, v, vl);
    else if (IS("content-length")) {
        cs_autofree char *s = cs_strtrim_dup(v, vl);
        resp->content_length = strtoll(s, NULL, 10);
    } else if (IS("retry-after")) {
        cs_autofree char *s = cs_strtrim_dup(v, vl);
        char *end;
        double d = strtod(s, &end);
        resp->retry_after = (end != s && d >= 0) ? d : -1;
    }
#undef IS
    return len;
}

static size_t
on_body(char *p, size_t size, size_t n, void *ctx)
{
    xfer *x = ctx;
    size_t len = size * n;
    reg_resp *resp = x->resp;
    bool ok = resp->status >= 200 && resp->status < 300;
    if (ok && x->q->on_data) {
        x->rc = x->q->on_data(x->q->ctx, p, len, resp, &x->err);
        if (x->rc < 0)
            return 0;
        resp->delivered += (int64_t) len;
        return len;
    }
    if (ok && !x->q->max_body)
        return len; /* not wanted */
    size_t max = ok ? x->q->max_body : 64 << 10;
    if (resp->body.len + len > max) {
        if (ok) {
            x->rc = cs_err(&x->err, CS_EINVAL, 0, "%s: response larger than %zu bytes", x->q->what,
                           max);
            return 0;
        }
        return len; /* an error body: keep its head only */
    }
    cs_buf_append(&resp->body, p, len);
    return len;
}

static int
on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void) dt, (void) dn, (void) ut, (void) un;
    xfer *x = ctx;
    return cs_cancel_reason(x->r->cancel) != 0; /* non-zero aborts the transfer */
}

static void
setup_tls(cs_registry *r, CURL *c)
{
    const cs_curl_api *cu = r->cu;
    if (r->insecure) {
        cu->easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        cu->easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (r->ca_pem) {
        /* Added to the system store (the default CA path stays in use). */
        struct curl_blob b = { r->ca_pem, r->ca_len, CURL_BLOB_NOCOPY };
        cu->easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
    }
    if (r->client_cert && r->client_key) {
        cu->easy_setopt(c, CURLOPT_SSLCERT, r->client_cert);
        cu->easy_setopt(c, CURLOPT_SSLKEY, r->client_key);
    }
}

static void
setup_easy(cs_registry *r, CURL *c, const char *method, const char *url, const reg_req *q, xfer *x,
           char *errbuf)
{
    const cs_curl_api *cu = r->cu;
    cu->easy_setopt(c, CURLOPT_URL, url);
    cu->easy_setopt(c, CURLOPT_SHARE, r->share);
    cu->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    cu->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cu->easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A transfer stalled for a minute is a broken one (retried). */
    cu->easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    cu->easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    cu->easy_setopt(c, CURLOPT_USERAGENT, r->user_agent);
    /* Blobs stream through on_body: 512 KiB reads instead of curl's 16 KiB. */
    if (q && q->on_data)
        cu->easy_setopt(c, CURLOPT_BUFFERSIZE, 512L << 10);
    cu->easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    cu->easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    cu->easy_setopt(c, CURLOPT_HEADERDATA, x);
    cu->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    cu->easy_setopt(c, CURLOPT_WRITEDATA, x);
    cu->easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    cu->easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    cu->easy_setopt(c, CURLOPT_XFERINFODATA, x);
    setup_tls(r, c);
    if (!strcmp(method, "HEAD")) {
        cu->easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        cu->easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        cu->easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (q ? q->body_len : 0));
        cu->easy_setopt(c, CURLOPT_POSTFIELDS, q && q->body ? q->body : "");
    }
}

static bool
transient_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

static int
curl_error(cs_registry *r, const reg_req *q, CURLcode rc, const char *errbuf, reg_resp *resp,
           cs_error **err)
{
    const char *why = *errbuf ? errbuf : r->cu->easy_strerror(rc);
    const char *what = q && q->what ? q->what : r->domain;
    resp->transient = transient_curl(rc);
    resp->curl_rc = (int) rc;
    if (rc == CURLE_ABORTED_BY_CALLBACK && cs_cancel_reason(r->cancel))
        return cs_cancel_check(r->cancel, err);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return cs_err(err, CS_EIO, 0, "%s: registry '%s' unreachable: %s", what, r->domain, why);
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR
        || rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE)
        return cs_err(err, CS_EIO, 0, "%s: TLS with '%s': %s", what, r->domain, why);
    return cs_err(err, CS_EIO, 0, "%s: %s", what, why);
}

int
reg_exchange(cs_registry *r, const char *method, const char *url, const char *auth,
             const reg_req *q, reg_resp *resp, cs_error **err)
{
    const cs_curl_api *cu = r->cu;
    CURL *c = cu->easy_init();
    if (!c)
        return cs_err(err, CS_EIO, 0, "%s: cannot start libcurl", r->domain);
    char errbuf[CURL_ERROR_SIZE] = "";
    xfer x = { .r = r, .q = q, .resp = resp };
    reg_resp_reset(resp);
    setup_easy(r, c, method, url, q, &x, errbuf);
    struct curl_slist *h = cu->slist_append(NULL, "Expect:");
    if (auth)
        h = cu->slist_append(h, auth);
    for (const char *const *p = q && q->headers ? q->headers : NULL; p && *p; p++)
        h = cu->slist_append(h, *p);
    cu->easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = cu->easy_perform(c);
    int ret = 0;
    if (x.rc < 0) {
        ret = x.rc;
        reg_pass_error(err, x.err);
    } else if (rc != CURLE_OK) {
        ret = curl_error(r, q, rc, errbuf, resp, err);
    } else {
        cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        if (resp->status >= 300 && resp->status < 400) {
            char *to = NULL;
            cu->easy_getinfo(c, CURLINFO_REDIRECT_URL, &to);
            free(resp->location);
            resp->location = to ? cs_xstrdup(to) : NULL;
        }
    }
    cu->slist_free_all(h);
    cu->easy_cleanup(c);
    return ret;
}

/* "scheme://authority" of url: its length. */
static size_t
origin_len(const char *url)
{
    const char *p = strstr(url, "://");
    if (!p)
        return 0;
    p += 3;
    return (size_t) (p - url) + strcspn(p, "/?#");
}

static bool
same_origin(const char *a, const char *b)
{
    size_t n = origin_len(a);
    return n && n == origin_len(b) && !strncasecmp(a, b, n);
}

/* One attempt: auth, then up to 10 redirects. */
static int
do_once(cs_registry *r, const reg_req *q, reg_resp *resp, cs_error **err)
{
    const char *scope = q->scope ? q->scope : r->scope;
    cs_autofree char *url =
        strstr(q->url, "://") ? cs_xstrdup(q->url) : cs_xasprintf("%s%s", r->base, q->url);
    bool challenged = false;
    for (int hops = 0;; hops++) {
        cs_autofree char *auth = NULL;
        /* Authorization goes to the registry only, never to where it redirects. */
        if (same_origin(url, r->base)) {
            pthread_mutex_lock(&r->mu);
            int rc = reg_auth_header(r, scope, &auth, err);
            pthread_mutex_unlock(&r->mu);
            if (rc < 0)
                return rc;
        }
        const char *method = q->method;
        if (hops > 0 && resp->status == 303)
            method = "GET";
        int rc = reg_exchange(r, method, url, auth, q, resp, err);
        if (rc == 0 && !same_origin(url, r->base))
            resp->foreign = cs_xstrndup(url, origin_len(url));
        if (rc < 0)
            return rc;
        if (resp->status == 401 && resp->www_auth && !challenged && same_origin(url, r->base)) {
            challenged = true;
            pthread_mutex_lock(&r->mu);
            rc = reg_auth_challenge(r, resp->www_auth, scope, auth != NULL, err);
            pthread_mutex_unlock(&r->mu);
            if (rc < 0)
                return rc;
            hops--;
            continue;
        }
        if (resp->status < 300 || resp->status >= 400 || resp->status == 304 || !resp->location)
            return 0;
        if (hops >= 10)
            return cs_err(err, CS_EIO, 0, "%s: too many redirects", q->what);
        free(url);
        url = cs_xstrdup(resp->location);
    }
}

int
reg_do(cs_registry *r, const reg_req *q, reg_resp *resp, cs_error **err)
{
    int crc = reg_connect(r, err);
    if (crc < 0)
        return crc;
    for (int attempt = 1;; attempt++) {
        int rc = cs_cancel_check(r->cancel, err);
        if (rc < 0)
            return rc;
        cs_error *e = NULL;
        rc = do_once(r, q, resp, &e);
        if (rc == 0 && (resp->status >= 500 || resp->status == 429 || resp->status == 408)) {
            resp->transient = true;
            if (q->once || attempt >= REG_ATTEMPTS)
                return 0; /* the caller reports the status */
        } else if (rc == 0) {
            return 0;
        } else if (!resp->transient || q->once || attempt >= REG_ATTEMPTS) {
            reg_pass_error(err, e);
            return rc;
        }
        cs_error_free(e);
        rc = reg_backoff(r, attempt, resp->retry_after, err);
        if (rc < 0)
            return rc;
    }
}

int
reg_backoff(cs_registry *r, int attempt, double retry_after, cs_error **err)
{
    double d = 0.25 * (double) (1 << (attempt < 6 ? attempt - 1 : 5));
    if (retry_after >= 0)
        d = retry_after < 60 ? retry_after : 60;
    double end = cs_now() + d;
    for (;;) {
        int rc = cs_cancel_check(r->cancel, err);
        if (rc < 0)
            return rc;
        double left = end - cs_now();
        if (left <= 0)
            return 0;
        if (left > 0.1)
            left = 0.1;
        struct timespec ts = { 0, (long) (left * 1e9) };
        nanosleep(&ts, NULL);
    }
}

/* The registry's own words: errors[0].message (or code), else NULL. */
static char *
error_message(const reg_resp *resp)
{
    if (!resp->body.len)
        return NULL;
    json_t *j = json_loadb((const char *) resp->body.data, resp->body.len, 0, NULL);
    json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
    const char *m = json_string_value(json_object_get(e0, "message"));
    if (!m || !*m)
        m = json_string_value(json_object_get(e0, "code"));
    char *out = NULL;
    if (m && *m) {
        out = cs_xstrdup(m);
        for (char *c = out; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
    }
    json_decref(j);
    return out;
}

int
reg_http_error(cs_registry *r, const reg_req *q, const reg_resp *resp, cs_error **err)
{
    cs_autofree char *m = error_message(resp);
    const char *what = q->what ? q->what : r->domain;
    long s = resp->status;
    if ((s == 401 || s == 403) && resp->foreign)
        return cs_err(err, CS_EINVAL, 0,
                      "%s: redirected to '%s', which asks for credentials (never sent to another "
                      "host)",
                      what, resp->foreign);
    if (s == 401 || s == 403) {
        pthread_mutex_lock(&r->mu);
        bool anon = !r->cred.user;
        bool basic = r->auth == REG_AUTH_BASIC;
        pthread_mutex_unlock(&r->mu);
        if (anon)
            return cs_err(err, CS_EINVAL, 0,
                          "%s: %s (no credentials for '%s': run `cstore login %s`)", what,
                          m ? m : "authentication required", r->domain, r->domain);
        if (s == 401 && basic)
            return cs_err(err, CS_EINVAL, 0, "%s: unauthorized: incorrect username or password",
                          what);
        return cs_err(err, CS_EINVAL, 0, "%s: %s: %s", what, s == 401 ? "unauthorized" : "denied",
                      m ? m : "access denied with the stored credentials");
    }
    if (s == 404)
        return cs_err(err, CS_ENOTFOUND, 0, "%s: %s", what, m ? m : "not found");
    if (s == 429)
        return cs_err(err, CS_EIO, 0, "%s: too many requests (HTTP 429), %d attempts", what,
                      REG_ATTEMPTS);
    return cs_err(err, CS_EIO, 0, "%s: HTTP %ld%s%s", what, s, m ? ": " : "", m ? m : "");
}

char *
reg_urlenc(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = cs_xmalloc(strlen(s) * 3 + 1), *w = out;
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p)) {
            *w++ = (char) *p;
        } else {
            *w++ = '%';
            *w++ = hex[*p >> 4];
            *w++ = hex[*p & 15];
        }
    }
    *w = 0;
    return out;
}

char *
reg_base64(const void *p, size_t n)
{
    char *out = cs_xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *) out, p, (int) n);
    return out;
}

char *
reg_unbase64(const char *s, size_t *n)
{
    size_t len = strlen(s);
    if (len % 4)
        return NULL;
    unsigned char *out = cs_xmalloc(len / 4 * 3 + 1);
    int k = EVP_DecodeBlock(out, (const unsigned char *) s, (int) len);
    if (k < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    for (size_t i = len; i > 0 && s[i - 1] == '='; i--)
        k--;
    out[k] = 0;
    *n = (size_t) k;
    return (char *) out;
}
