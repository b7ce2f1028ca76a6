/* upload.c - blob upload: POST, then one PUT (small) or PATCH chunks and a
 * final PUT (big), each chunk held in memory so a broken PATCH can be sent
 * again from where the registry says it stopped. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "reg_int.h"

typedef struct upload {
    cs_registry *r;
    const char *what;
    char *url;     /* the upload's current Location (absolute) */
    uint8_t *buf;  /* the chunk in hand */
    size_t n;      /* its length */
    size_t cap;    /* the buffer's size: CS_REG_CHUNK, or a smaller blob's size */
    int64_t start; /* its offset in the blob */
} upload;

/* Fills u->buf with up to u->cap next bytes of the source. */
static int
fill(upload *u, cs_reg_source_fn source, void *ctx, cs_error **err)
{
    u->n = 0;
    while (u->n < u->cap) {
        ssize_t k = source(ctx, u->buf + u->n, u->cap - u->n, err);
        if (k < 0)
            return (int) k;
        if (k == 0)
            break;
        u->n += (size_t) k;
    }
    return 0;
}

static void
new_location(upload *u, const reg_resp *resp)
{
    if (resp->location && *resp->location) {
        cs_error *tmp = NULL;
        char *nu = upload_url(u->r, resp, u->what, &tmp);
        cs_error_free(tmp); /* cannot fail: location is set */
        free(u->url);
        u->url = nu;
    }
}

/* How many bytes the registry holds of the upload (GET on it: "Range:
 * 0-END"); -1 when it does not say. */
static int64_t
upload_status(upload *u)
{
    reg_req q = { .method = "GET", .url = u->url, .once = true, .what = u->what };
    reg_resp resp = { 0 };
    cs_error *tmp = NULL;
    int64_t have = -1;
    long long a, b;
    if (reg_do(u->r, &q, &resp, &tmp) == 0 && resp.status == 204 && resp.range
        && sscanf(resp.range, "%lld-%lld", &a, &b) == 2)
        have = b + 1;
    cs_error_free(tmp); /* only a hint: without it the whole chunk goes again */
    if (have >= 0)
        new_location(u, &resp);
    reg_resp_release(&resp);
    return have;
}

/* PATCH the chunk in hand, resending what a broken attempt did not deliver. */
static int
patch_chunk(upload *u, cs_error **err)
{
    size_t from = 0;
    for (int attempt = 1;; attempt++) {
        char cr[96];
        snprintf(cr, sizeof(cr), "Content-Range: %" PRId64 "-%" PRId64, u->start + (int64_t) from,
                 u->start + (int64_t) u->n - 1);
        const char *hdrs[] = { cr, "Content-Type: application/octet-stream", NULL };
        reg_req q = { .method = "PATCH",
                      .url = u->url,
                      .headers = hdrs,
                      .body = u->buf + from,
                      .body_len = u->n - from,
                      .once = true,
                      .what = u->what };
        reg_resp resp = { 0 };
        cs_error *e = NULL;
        int rc = reg_do(u->r, &q, &resp, &e);
        if (rc == 0 && resp.status == 202) {
            new_location(u, &resp);
            atomic_fetch_add_explicit(&u->r->bytes_sent, u->n - from, memory_order_relaxed);
            reg_resp_release(&resp);
            return 0;
        }
        if (rc == 0)
            rc = reg_http_error(u->r, &q, &resp, &e);
        bool again = resp.transient && attempt < REG_ATTEMPTS;
        double ra = resp.retry_after;
        reg_resp_release(&resp);
        if (!again) {
            reg_pass_error(err, e);
            return rc;
        }
        cs_error_free(e);
        rc = reg_backoff(u->r, attempt, ra, err);
        if (rc < 0)
            return rc;
        int64_t have = upload_status(u);
        if (have >= u->start && have <= u->start + (int64_t) u->n)
            from = (size_t) (have - u->start);
        if (from == u->n)
            return 0; /* the broken PATCH had arrived after all */
    }
}

/* The closing PUT ?digest=D, with the last bytes as its body (or none). */
static int
finish(upload *u, const char *digest, const void *body, size_t len, cs_error **err)
{
    cs_autofree char *d = reg_urlenc(digest);
    cs_autofree char *url =
        cs_xasprintf("%s%sdigest=%s", u->url, strchr(u->url, '?') ? "&" : "?", d);
    const char *hdrs[] = { "Content-Type: application/octet-stream", NULL };
    reg_req q = {
        .method = "PUT", .url = url, .headers = hdrs, .body = body, .body_len = len, .what = u->what
    };
    reg_resp resp = { 0 };
    int rc = reg_do(u->r, &q, &resp, err);
    if (rc == 0 && resp.status != 201 && resp.status != 204) {
        bool bad = resp.status == 400 && resp.body.len
                   && memmem(resp.body.data, resp.body.len, "DIGEST_INVALID", 14);
        rc = reg_http_error(u->r, &q, &resp, err);
        if (bad && err && *err)
            (*err)->code = CS_ECORRUPT, rc = -CS_ECORRUPT;
    }
    if (rc == 0) {
        atomic_fetch_add_explicit(&u->r->bytes_sent, len, memory_order_relaxed);
        atomic_fetch_add_explicit(&u->r->uploads, 1, memory_order_relaxed);
    }
    reg_resp_release(&resp);
    return rc;
}

static int
put_blob(upload *u, const char *digest, int64_t size, cs_reg_source_fn source, void *ctx,
         cs_error **err)
{
    reg_resp resp = { 0 };
    int rc = fill(u, source, ctx, err);
    if (rc == 0)
        rc = start_upload(u->r, "", NULL, u->what, &resp, err);
    if (rc == 0)
        u->url = upload_url(u->r, &resp, u->what, err);
    reg_resp_release(&resp);
    if (rc < 0 || !u->url)
        return rc < 0 ? rc : -CS_EIO;
    bool mono = size >= 0 ? size < (int64_t) CS_REG_CHUNK : u->n < CS_REG_CHUNK;
    if (mono) {
        rc = finish(u, digest, u->buf, u->n, err);
        u->start = (int64_t) u->n;
    } else {
        while (rc == 0 && u->n > 0) {
            rc = patch_chunk(u, err);
            u->start += (int64_t) u->n;
            if (rc == 0)
                rc = fill(u, source, ctx, err);
        }
        if (rc == 0)
            rc = finish(u, digest, NULL, 0, err);
    }
    if (rc == 0 && size >= 0 && u->start != size)
        rc = cs_err(err, CS_EINVAL, 0, "%s: source gave %" PRId64 " bytes, not %" PRId64, u->what,
                    u->start, size);
    return rc;
}

int
cs_registry_put_blob(cs_registry *r, const char *digest, int64_t size, cs_reg_source_fn source,
                     void *ctx, cs_error **err)
{
    cs_autofree char *what = cs_xasprintf("%s/%s@%s", r->domain, r->repo, digest);
    /* A small blob of known size needs no whole chunk buffer. */
    size_t cap = size >= 0 && size < (int64_t) CS_REG_CHUNK ? (size_t) size : CS_REG_CHUNK;
    upload u = { .r = r, .what = what, .cap = cap, .buf = cs_xmalloc(cap ? cap : 1) };
    int rc = put_blob(&u, digest, size, source, ctx, err);
    free(u.url);
    free(u.buf);
    return rc;
}
