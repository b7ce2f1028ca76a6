/* manifest.c - manifests: GET (digest verified), HEAD, PUT. */
#include <stdlib.h>
#include <string.h>
#include "reg_int.h"

#define ACCEPT                                                                                     \
    "Accept: " CS_MT_OCI_MANIFEST ", " CS_MT_OCI_INDEX ", " CS_MT_DOCKER_MANIFEST                  \
    ", " CS_MT_DOCKER_LIST

void
cs_reg_manifest_release(cs_reg_manifest *m)
{
    free(m->body);
    free(m->media_type);
    memset(m, 0, sizeof(*m));
}

static char *
what_of(cs_registry *r, const char *ref)
{
    return cs_xasprintf("%s/%s%s%s", r->domain, r->repo, strchr(ref, ':') ? "@" : ":", ref);
}

/* Content-Type without parameters. */
static char *
bare_type(const char *ct)
{
    return ct ? cs_strtrim_dup(ct, strcspn(ct, ";")) : cs_xstrdup("");
}

static void
digest_of(const void *p, size_t n, char out[72])
{
    cs_digest d;
    cs_sha256(p, n, &d);
    cs_digest_str(&d, out);
}

int
cs_registry_get_manifest(cs_registry *r, const char *ref, cs_reg_manifest *out, cs_error **err)
{
    memset(out, 0, sizeof(*out));
    cs_autofree char *what = what_of(r, ref);
    cs_autofree char *url = cs_xasprintf("/v2/%s/manifests/%s", r->repo, ref);
    const char *hdrs[] = { ACCEPT, NULL };
    reg_req q = { .method = "GET", .url = url, .headers = hdrs, .max_body = 4 << 20, .what = what };
    reg_resp resp = { 0 };
    int rc = reg_do(r, &q, &resp, err);
    if (rc == 0 && resp.status == 404) {
        /* "manifest unknown" is what users (and tests) look for, whatever
         * the registry's words (NAME_UNKNOWN for an unknown repository). */
        cs_error *tmp = NULL;
        reg_http_error(r, &q, &resp, &tmp);
        const char *m = tmp->msg + strlen(what) + 2;
        if (strstr(m, "manifest unknown"))
            rc = cs_err(err, CS_ENOTFOUND, 0, "%s: manifest unknown", what);
        else
            rc = cs_err(err, CS_ENOTFOUND, 0, "%s: manifest unknown (%s)", what, m);
        cs_error_free(tmp);
    } else if (rc == 0 && resp.status != 200) {
        rc = reg_http_error(r, &q, &resp, err);
    }
    if (rc == 0) {
        digest_of(resp.body.data, resp.body.len, out->digest);
        if (strchr(ref, ':') && strcmp(ref, out->digest) != 0) {
            rc = cs_err(err, CS_ECORRUPT, 0, "%s: the registry sent a manifest with digest %s",
                        what, out->digest);
        } else {
            out->len = resp.body.len;
            cs_buf_u8(&resp.body, 0);
            out->body = (char *) cs_steal(&resp.body.data);
            out->media_type = bare_type(resp.content_type);
        }
    }
    reg_resp_release(&resp);
    if (rc < 0)
        cs_reg_manifest_release(out);
    return rc;
}

int
cs_registry_head_manifest(cs_registry *r, const char *ref, bool *exists, char digest[72],
                          int64_t *size, char **media_type, cs_error **err)
{
    cs_autofree char *what = what_of(r, ref);
    cs_autofree char *url = cs_xasprintf("/v2/%s/manifests/%s", r->repo, ref);
    const char *hdrs[] = { ACCEPT, NULL };
    reg_req q = { .method = "HEAD", .url = url, .headers = hdrs, .what = what };
    reg_resp resp = { 0 };
    *exists = false;
    int rc = reg_do(r, &q, &resp, err);
    if (rc == 0 && resp.status == 200) {
        *exists = true;
        snprintf(digest, 72, "%s", resp.digest ? resp.digest : "");
        if (size)
            *size = resp.content_length;
        if (media_type)
            *media_type = bare_type(resp.content_type);
    } else if (rc == 0 && resp.status != 404) {
        rc = reg_http_error(r, &q, &resp, err);
    }
    reg_resp_release(&resp);
    return rc;
}

int
cs_registry_put_manifest(cs_registry *r, const char *ref, const char *media_type, const void *body,
                         size_t len, char digest_out[72], cs_error **err)
{
    cs_autofree char *what = what_of(r, ref);
    cs_autofree char *url = cs_xasprintf("/v2/%s/manifests/%s", r->repo, ref);
    cs_autofree char *ct = cs_xasprintf("Content-Type: %s", media_type);
    const char *hdrs[] = { ct, NULL };
    reg_req q = {
        .method = "PUT", .url = url, .headers = hdrs, .body = body, .body_len = len, .what = what
    };
    reg_resp resp = { 0 };
    int rc = reg_do(r, &q, &resp, err);
    if (rc == 0 && resp.status != 201 && resp.status != 200)
        rc = reg_http_error(r, &q, &resp, err);
    if (rc == 0 && digest_out)
        digest_of(body, len, digest_out);
    reg_resp_release(&resp);
    return rc;
}
