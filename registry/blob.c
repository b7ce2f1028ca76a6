/* blob.c - blobs: streamed GET with resume, HEAD, cross-repository mount,
 * upload (monolithic or chunked). */
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
} blob_get;

static int
get_data(void *ctx, const void *p, size_t n, reg_resp *resp, cs_error **err)
{
    blob_get *g = ctx;
    if (g->cur < 0) {
        long long a = 0, t = -1;
        if (resp->status == 206 && resp->content_range
            && sscanf(resp->content_range, "bytes %lld-%*d/%lld", &a, &t) >= 1) {
            g->cur = a;
        } else {
            g->cur = 0; /* a 200: the whole blob again, whatever we asked */
            t = resp->content_length;
        }
        if (t >= 0)
            g->total = t;
    }
    const char *b = p;
    int64_t end = g->cur + (int64_t) n;
    if (end > g->pos) {
        size_t from = g->cur < g->pos ? (size_t) (g->pos - g->cur) : 0;
        if (g->cur > g->pos)
            return cs_err(err, CS_EIO, 0, "registry resumed past the byte asked for");
        int rc = g->sink(g->ctx, b + from, n - from, err);
        if (rc < 0)
            return rc;
        g->pos = end;
    }
    g->cur = end;
    return 0;
}

int
cs_registry_get_blob(cs_registry *r, const char *digest, int64_t offset, cs_reg_sink_fn sink,
                     void *ctx, int64_t *total, cs_error **err)
{
    cs_autofree char *what = blob_what(r, digest);
    cs_autofree char *url = cs_xasprintf("/v2/%s/blobs/%s", r->repo, digest);
    blob_get g = { .sink = sink, .ctx = ctx, .pos = offset, .total = -1 };
    reg_resp resp = { 0 };
    int rc = 0;
    for (int attempt = 1;; attempt++) {
        char range[64];
        snprintf(range, sizeof(range), "Range: bytes=%" PRId64 "-", g.pos);
        const char *hdrs[] = { range, NULL };
        reg_req q = { .method = "GET",
                      .url = url,
                      .headers = g.pos > 0 ? hdrs : NULL,
                      .on_data = get_data,
                      .ctx = &g,
                      .once = true,
                      .what = what };
        int64_t before = g.pos;
        g.cur = -1;
        cs_error *e = NULL;
        rc = reg_do(r, &q, &resp, &e);
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
    if (rc == 0 && total)
        *total = g.total;
    reg_resp_release(&resp);
    return rc;
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
