/* cache.c - `cstore cache prune`: a shared build cache (a registry ref or
 * a cache dir, as --cache-to wrote it) pruned by age and size
 * (cs_rcache_prune); in a registry, the blobs no longer named are deleted. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "build_cache.h"
#include "registry.h"
#include "regref.h"

const char cmd_cache_usage[] =
    "usage: cstore cache prune --ref REF [--keep-duration TIME] [--keep-storage SIZE]\n"
    "\n"
    "Prune a build cache that --cache-to wrote: entries not used for longer than\n"
    "--keep-duration go, then the least recently used until the packs the rest\n"
    "need fit in --keep-storage; the packs and index parts nothing left needs are\n"
    "deleted (a registry that refuses DELETE keeps them for its own garbage\n"
    "collector). Prints what it removed in one line.\n"
    "\n"
    "REF: a registry reference (REGISTRY/REPO:TAG), type=registry,ref=REF, or\n"
    "type=local,src=DIR for a cache directory.\n"
    "\n"
    "Options:\n"
    "  --ref REF              the cache (required)\n"
    "  --keep-duration TIME   keep entries used within TIME (units s, m, h, d;\n"
    "                         default: any age)\n"
    "  --keep-storage SIZE    keep at most SIZE of packs, most recent entries first\n"
    "                         (units B, kB, MB, GB, TB; default: no limit)\n"
    "  --tls-verify=false     allow plain http and skip certificate checks\n"
    "  --cert-dir DIR         CA (ca.crt) and client certificate (client.cert,\n"
    "                         client.key) for the registry\n"
    "  -h, --help             show this help\n";

static void
print_result(const cs_rcache_prune_result *r, const char *where)
{
    printf("cache prune: removed %" PRIu64 " entries, %" PRIu64 " base images, %" PRIu64
           " packs (%" PRIu64 " bytes), %" PRIu64 " index parts (%" PRIu64 " bytes); kept %" PRIu64
           " entries, %" PRIu64 " packs (%" PRIu64 " bytes) in %s\n",
           r->entries, r->images, r->packs, r->pack_bytes, r->parts, r->part_bytes, r->kept_entries,
           r->kept_packs, r->kept_pack_bytes, where);
}

/* The digests of the blobs manifest ref names (an index: its manifests'
 * too, one level) into used. */
static int
manifest_blobs(cs_registry *r, const char *ref, cs_strv *used, int depth, cs_error **err)
{
    cs_reg_manifest m = { 0 };
    int rc = cs_registry_get_manifest(r, ref, &m, err);
    json_t *j = rc >= 0 ? json_loadb(m.body, m.len, 0, NULL) : NULL, *l;
    const char *cd = json_string_value(json_object_get(json_object_get(j, "config"), "digest"));
    size_t i;
    if (cd)
        cs_strv_push(used, cs_xstrdup(cd));
    json_array_foreach(json_object_get(j, "layers"), i, l)
    {
        if (json_is_string(json_object_get(l, "digest")))
            cs_strv_push(used, cs_xstrdup(json_string_value(json_object_get(l, "digest"))));
    }
    json_array_foreach(json_object_get(j, "manifests"), i, l)
    {
        const char *d = json_string_value(json_object_get(l, "digest"));
        if (rc >= 0 && d && depth > 0)
            rc = manifest_blobs(r, d, used, depth - 1, err);
    }
    json_decref(j);
    cs_reg_manifest_release(&m);
    return rc;
}

/* The blobs the repository's other tags name: another cache or an image
 * there shares blobs by digest, and a DELETE removes a blob from the whole
 * repository. */
static int
other_tags_blobs(cs_registry *r, const cs_reg_ref *rr, cs_strv *used, cs_error **err)
{
    cmd_autostrv cs_strv tags = { 0 };
    int rc = cs_registry_list_tags(r, &tags, err);
    for (size_t i = 0; i < tags.n && rc >= 0; i++)
        if (!rr->tag || strcmp(tags.v[i], rr->tag))
            rc = manifest_blobs(r, tags.v[i], used, 1, err);
    return rc;
}

static bool
strv_has(const cs_strv *v, const char *s)
{
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->v[i], s))
            return true;
    return false;
}

/* DELETE of every blob no longer named (unless another tag names it); a
 * registry that refuses is told once and keeps them. */
static int
delete_gone(cs_registry *r, const cs_rcache_prune_result *res, const cs_strv *used, cs_error **err)
{
    size_t left = 0;
    for (size_t i = 0; i < res->ngone; i++) {
        char ds[CS_DIGEST_STR];
        bool deleted;
        cs_digest_str(&res->gone[i], ds);
        if (strv_has(used, ds))
            continue;
        cs_error *tmp = NULL;
        int rc = cs_registry_delete_blob(r, ds, &deleted, &tmp);
        if (rc == -CS_EUNSUPPORTED && left == 0)
            fprintf(stderr,
                    "cstore: warning: cache prune: %s; the unreferenced blobs are left to "
                    "the registry's garbage collector\n",
                    tmp->msg);
        if (rc == -CS_EUNSUPPORTED) {
            left++;
            cs_error_clear(&tmp);
            continue;
        }
        if (rc < 0) {
            if (err && !*err)
                *err = cs_steal(&tmp);
            cs_error_clear(&tmp);
            return rc;
        }
    }
    return 0;
}

static int
prune_registry(cmd_ctx *c, const char *ref, const cmd_reg_opts *ro, const cs_rcache_prune_opts *po,
               cs_error **err)
{
    cs_store *s;
    cs_reg_ref rr = { 0 };
    cs_reg_opts o;
    __attribute__((cleanup(cs_registry_freep))) cs_registry *r = NULL;
    cs_autofree char *mirror = NULL;
    char seen[72] = "";
    cs_rcache_prune_result res = { 0 };
    cmd_autostrv cs_strv used = { 0 };
    cmd_reg_opts_get(ro, &o);
    int rc = cs_reg_ref_parse(ref, &rr, err);
    if (rc >= 0)
        rc = cmd_open(c, 0, &s, err);
    if (rc >= 0)
        rc = cs_registry_open(rr.domain, rr.repo, CS_REG_PULL | CS_REG_PUSH, &o, &r, err);
    if (rc >= 0)
        rc = cache_registry_pull_index(s, ref, r, &rr, &mirror, seen, err);
    if (rc >= 0)
        rc = cs_rcache_prune(mirror, po, &res, err);
    if (rc >= 0 && res.ngone)
        rc = other_tags_blobs(r, &rr, &used, err);
    /* The new manifest first: a prune stopped after it leaves garbage, not
     * a cache naming deleted blobs. */
    if (rc >= 0 && res.ngone && (rc = cache_registry_push_index(r, &rr, mirror, seen, err)) == 1)
        rc = cs_err(err, CS_EBUSY, 0,
                    "another machine exported to the cache meanwhile: nothing deleted, run the "
                    "prune again");
    if (rc >= 0)
        rc = delete_gone(r, &res, &used, err);
    if (rc >= 0)
        print_result(&res, ref);
    cs_rcache_prune_result_release(&res);
    cs_reg_ref_release(&rr);
    return rc < 0 ? cs_err_wrap(err, "cache '%s'", ref) : 0;
}

int
cmd_cache(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    const char *ref = NULL;
    cmd_reg_opts ro = { 0 };
    cs_rcache_prune_opts po = { CS_RCACHE_KEEP_ALL, CS_RCACHE_KEEP_ALL };
    const cmd_opt opts[] = {
        CMD_OPT("ref", 0, CMD_STRING, &ref),
        CMD_OPT("keep-duration", 0, CMD_DURATION, &po.keep_duration),
        CMD_OPT("keep-storage", 0, CMD_SIZE, &po.keep_storage),
        CMD_OPTS_REGISTRY(&ro),
        CMD_OPT_END,
    };
    cmd_args args = { .min = 1, .max = 1 };
    int rc = cmd_parse(c, argc, argv, opts, &args, err);
    if (rc != 0)
        return rc;
    if (strcmp(args.v[0], "prune"))
        return cmd_usage_error(c, "unknown cache command '%s' (prune)", args.v[0]);
    if (!ref || !*ref)
        return cmd_usage_error(c, "prune: --ref is required");
    cs_autofree char *spec = NULL;
    if (strchr(ref, '=') && (rc = build_cache_parse_spec(c, "--ref", ref, "src", &spec)) != 0)
        return rc;
    if (!spec)
        spec = cs_xasprintf("R%s", ref);
    if (spec[0] == 'R')
        return prune_registry(c, spec + 1, &ro, &po, err);
    cs_rcache_prune_result res;
    rc = cs_rcache_prune(spec + 1, &po, &res, err);
    if (rc >= 0)
        print_result(&res, spec + 1);
    cs_rcache_prune_result_release(&res);
    return rc < 0 ? rc : 0;
}
