/* delete.c - what `cstore cache prune` asks a registry: DELETE of a blob,
 * and the repository's tags (see registry.h). */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "cstore/strv.h"
#include "reg_int.h"

int
cs_registry_delete_blob(cs_registry *r, const char *digest, bool *deleted, cs_error **err)
{
    cs_autofree char *what = cs_xasprintf("%s/%s@%s", r->domain, r->repo, digest);
    cs_autofree char *url = cs_xasprintf("/v2/%s/blobs/%s", r->repo, digest);
    cs_autofree char *scope = cs_xasprintf("%s repository:%s:delete", r->scope, r->repo);
    reg_req q = { .method = "DELETE", .url = url, .scope = scope, .what = what, .max_body = 4096 };
    reg_resp resp = { 0 };
    *deleted = false;
    int rc = reg_do(r, &q, &resp, err);
    bool unsupported =
        resp.status == 405
        || (resp.body.len && memmem(resp.body.data, resp.body.len, "UNSUPPORTED", 11));
    if (rc == 0 && (resp.status == 202 || resp.status == 200 || resp.status == 204))
        *deleted = true;
    else if (rc == 0 && unsupported)
        rc = cs_err(err, CS_EUNSUPPORTED, 0, "%s: the registry does not delete blobs (HTTP %ld)",
                    what, resp.status);
    else if (rc == 0 && resp.status != 404)
        rc = reg_http_error(r, &q, &resp, err);
    reg_resp_release(&resp);
    return rc;
}

int
cs_registry_list_tags(cs_registry *r, cs_strv *out, cs_error **err)
{
    cs_autofree char *url = cs_xasprintf("/v2/%s/tags/list", r->repo);
    cs_autofree char *what = cs_xasprintf("%s/%s", r->domain, r->repo);
    reg_req q = { .method = "GET", .url = url, .what = what, .max_body = 16u << 20 };
    reg_resp resp = { 0 };
    int rc = reg_do(r, &q, &resp, err);
    if (rc == 0 && resp.status != 200)
        rc = resp.status == 404 ? 0 : reg_http_error(r, &q, &resp, err);
    else if (rc == 0) {
        json_t *j = json_loadb((const char *) resp.body.data, resp.body.len, 0, NULL), *t;
        size_t i;
        if (!j)
            rc = cs_err(err, CS_ECORRUPT, 0, "%s: tag list: not JSON", what);
        json_array_foreach(json_object_get(j, "tags"), i, t)
        {
            if (json_is_string(t))
                cs_strv_push(out, cs_xstrdup(json_string_value(t)));
        }
        json_decref(j);
    }
    reg_resp_release(&resp);
    return rc;
}
