/* blob.c - blobs: streamed GET with resume (whole or a bounded range),
 * HEAD, cross-repository mount, upload (monolithic or chunked). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "reg_int.h"

static char *
blob_what(cs_registry *r, const char *digest)
{
    return cs_xasprintf("%s/%s@%s", r->domain, r->repo, digest);
}

typedef struct blob_get {
    cs_reg_sink_fn sink;
    void *ctx;
    int64_t pos;   /* absolute offset of the next byte the sink wants */
    int64_t cur;   /* absolute offset of the next byte of this response; -1 before its first */
    int64_t total; /* the blob's size, -1 while unknown */
    int64_t end;   /* one past the last byte wanted; -1: to the blob's end */
} blob_get;

/* A 206's Content-Range: "bytes A-B/T" (T may be "*"). Bounded requests
 * want exactly the range asked for to start where we are and not to run
 * past its end; an unbounded one takes what starts at or before pos. */
static int
take_range(blob_get *g, const reg_resp *resp, cs_error **err)
{
    long long a = 0, b = -1, t = -1;
    int n =
        resp->content_range ? sscanf(resp->content_range, "bytes %lld-%lld/%lld", &a, &b, &t) : 0;
    if (n < 2 || a < 0 || b < a || (g->end >= 0 && (a != g->pos || b >= g->end)))
        return cs_err(err, CS_EIO, 0, "registry answered a Range request with Content-Range '%s'",
                      resp->content_range ? resp->content_range : "");
    g->cur = a;
    if (n == 3)
        g->total = t;
    return 0;
}

static int
get_data(void *ctx, const void *p, size_t n, reg_resp *resp, cs_error **err)
{
    blob_get *g = ctx;
    if (g->cur < 0 && resp->status == 206) {
        int rc = take_range(g, resp, err);
        if (rc < 0)
            return rc;
    } else if (g->cur < 0) {
        g->cur = 0; /* a 200: the whole blob again, whatever we asked */
        if (resp->content_length >= 0)
            g->total = resp->content_length;
    }
    const char *b = p;
    int64_t end = g->cur + (int64_t) n;
    if (end > g->pos) {
        size_t from = g->cur < g->pos ? (size_t) (g->pos - g->cur) : 0;
        if (g->cur > g->pos)
            return cs_err(err, CS_EIO, 0, "registry resumed past the byte asked for");
        size_t upto = n;
        if (g->end >= 0 && end > g->end)
            upto = (size_t) (g->end - g->cur); /* a 200: the rest is not wanted */
        int rc = g->sink(g->ctx, b + from, upto - from, err);
        if (rc < 0)
            return rc;
        g->pos = g->cur + (int64_t) upto;
    }
    g->cur = end;
    if (g->end >= 0 && g->pos >= g->end)
        return cs_err(err, CS_EEXIST, 0, "range complete"); /* stops the transfer */
    return 0;
}

/* The GET of g's bytes, resumed where a broken transfer stopped. */
static int
get_blob(cs_registry *r, const char *digest, blob_get *gp, cs_error **err)
{
    cs_autofree char *what = blob_what(r, digest);
    cs_autofree char *url = cs_xasprintf("/v2/%s/blobs/%s", r->repo, digest);
    blob_get g = *gp;
    reg_resp resp = { 0 };
    int rc = 0;
    for (int attempt = 1;; attempt++) {
        char range[64];
        if (g.end >= 0)
            snprintf(range, sizeof(range), "Range: bytes=%" PRId64 "-%" PRId64, g.pos, g.end - 1);
        else
            snprintf(range, sizeof(range), "Range: bytes=%" PRId64 "-", g.pos);
        const char *hdrs[] = { range, NULL };
        reg_req q = { .method = "GET",
                      .url = url,
                      .headers = g.pos > 0 || g.end >= 0 ? hdrs : NULL,
                      .on_data = get_data,
                      .ctx = &g,
                      .once = true,
                      .what = what };
        int64_t before = g.pos;
        g.cur = -1;
        cs_error *e = NULL;
        rc = reg_do(r, &q, &resp, &e);
        if (rc == -CS_EEXIST && g.end >= 0 && g.pos >= g.end) {
            cs_error_free(e); /* stopped by get_data: the range is complete */
            rc = 0;
            break;
        }
        if (rc == 0 && (resp.status == 200 || resp.status == 206))
            break;
        if (rc == 0)
            rc = reg_http_error(r, &q, &resp, &e);
        if (g.pos > before)
            attempt = 1; /* progress: a flaky link, not a dead one */
        if (!resp.transient || attempt >= REG_ATTEMPTS) {
            reg_pass_error(err, e);
            break;
        }
        cs_error_free(e);
        rc = reg_backoff(r, attempt, resp.retry_after, err);
        if (rc < 0)
            break;
    }
    if (rc == 0 && g.end >= 0 && g.pos < g.end)
        rc = cs_err(err, CS_EIO, 0, "%s: blob ended at %" PRId64 ", before the range asked for",
                    what, g.pos);
    *gp = g;
    reg_resp_release(&resp);
    return rc;
}

int
cs_registry_get_blob(cs_registry *r, const char *digest, int64_t offset, cs_reg_sink_fn sink,
                     void *ctx, int64_t *total, cs_error **err)
{
    blob_get g = { .sink = sink, .ctx = ctx, .pos = offset, .total = -1, .end = -1 };
    int rc = get_blob(r, digest, &g, err);
    if (rc == 0 && total)
        *total = g.total;
    return rc;
}

int
cs_registry_get_blob_range(cs_registry *r, const char *digest, int64_t offset, int64_t len,
                           cs_reg_sink_fn sink, void *ctx, cs_error **err)
{
    if (offset < 0 || len <= 0)
        return cs_err(err, CS_EINVAL, 0, "blob range %" PRId64 "+%" PRId64 ": empty", offset, len);
    blob_get g = { .sink = sink, .ctx = ctx, .pos = offset, .total = -1, .end = offset + len };
    return get_blob(r, digest, &g, err);
}

int
cs_registry_head_blob(cs_registry *r, const char *digest, bool *exists, int64_t *size,
                      cs_error **err)
{
    cs_autofree char *what = blob_what(r, digest);
    cs_autofree char *url = cs_xasprintf("/v2/%s/blobs/%s", r->repo, digest);
    reg_req q = { .method = "HEAD", .url = url, .what = what };
    reg_resp resp = { 0 };
    *exists = false;
    int rc = reg_do(r, &q, &resp, err);
    if (rc == 0 && resp.status == 200) {
        *exists = true;
        if (size)
            *size = resp.content_length;
    } else if (rc == 0 && resp.status != 404) {
        rc = reg_http_error(r, &q, &resp, err);
    }
    reg_resp_release(&resp);
    return rc;
}

char *
upload_url(cs_registry *r, const reg_resp *resp, const char *what, cs_error **err)
{
    if (!resp->location || !*resp->location) {
        cs_err(err, CS_EIO, 0, "%s: registry started an upload without a Location", what);
        return NULL;
    }
    if (strstr(resp->location, "://"))
        return cs_xstrdup(resp->location);
    return cs_xasprintf("%s%s", r->base, resp->location);
}

/* DELETE of an upload we will not use: failures only warn nobody (best effort). */
static void
cancel_upload(cs_registry *r, const char *url, const char *what)
{
    reg_req q = { .method = "DELETE", .url = url, .once = true, .what = what };
    reg_resp resp = { 0 };
    cs_error *tmp = NULL;
    reg_do(r, &q, &resp, &tmp);
    cs_error_free(tmp); /* a leftover upload is the registry's to purge */
    reg_resp_release(&resp);
}

int
start_upload(cs_registry *r, const char *query, const char *scope, const char *what, reg_resp *resp,
             cs_error **err)
{
    cs_autofree char *url = cs_xasprintf("/v2/%s/blobs/uploads/%s", r->repo, query);
    reg_req q = { .method = "POST", .url = url, .scope = scope, .what = what };
    int rc = reg_do(r, &q, resp, err);
    if (rc == 0 && resp->status != 202 && resp->status != 201)
        rc = reg_http_error(r, &q, resp, err);
    return rc;
}

int
cs_registry_mount_blob(cs_registry *r, const char *digest, const char *from_repo, bool *mounted,
                       cs_error **err)
{
    cs_autofree char *what = blob_what(r, digest);
    cs_autofree char *d = reg_urlenc(digest);
    cs_autofree char *f = reg_urlenc(from_repo);
    cs_autofree char *query = cs_xasprintf("?mount=%s&from=%s", d, f);
    cs_autofree char *scope = cs_xasprintf("%s repository:%s:pull", r->scope, from_repo);
    reg_resp resp = { 0 };
    *mounted = false;
    int rc = start_upload(r, query, scope, what, &resp, err);
    if (rc == 0 && resp.status == 201) {
        *mounted = true;
    } else if (rc == 0) {
        cs_autofree char *u = upload_url(r, &resp, what, err);
        if (u)
            cancel_upload(r, u, what);
    }
    reg_resp_release(&resp);
    return rc;
}
