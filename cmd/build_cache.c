/* build_cache.c - `cstore build --cache-to` / `--cache-from`: the specs,
 * and the calls around the build (see build_cache.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "build_cache.h"

#define ULL(x) ((unsigned long long) (x))

/* Parses "k=v,k=v": type=local with the path key (dest or src), or
 * type=registry with ref; mode for --cache-to. *out: 'L' or 'R', then the
 * path or ref. */
static int
take_spec(cmd_ctx *c, const char *opt, const char *arg, const char *pathkey, char **out,
          cs_rcache_mode *mode)
{
    cs_autofree char *spec = cs_xstrdup(arg);
    char *p = spec, *kv, type = 0;
    const char *path = NULL, *ref = NULL;
    while ((kv = strsep(&p, ",")) != NULL) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return cmd_usage_error(c, "%s '%s': '%s' is not KEY=VALUE", opt, arg, kv);
        *eq = '\0';
        const char *v = eq + 1;
        if (!strcmp(kv, "type") && (!strcmp(v, "local") || !strcmp(v, "registry")))
            type = v[0] == 'l' ? 'L' : 'R';
        else if (!strcmp(kv, "type"))
            return cmd_usage_error(c, "%s: cache type '%s' is not supported (local, registry)", opt,
                                   v);
        else if (!strcmp(kv, pathkey) && *v)
            path = v;
        else if (!strcmp(kv, "ref") && *v)
            ref = v;
        else if (mode && !strcmp(kv, "mode") && (!strcmp(v, "min") || !strcmp(v, "max")))
            *mode = !strcmp(v, "max") ? CS_RCACHE_MAX : CS_RCACHE_MIN;
        else
            return cmd_usage_error(c, "%s '%s': unsupported attribute '%s'", opt, arg, kv);
    }
    if ((type == 'L' && !path) || (type == 'R' && !ref) || !type)
        return cmd_usage_error(c, "%s '%s': type=local,%s=DIR or type=registry,ref=REF is required",
                               opt, arg, pathkey);
    free(*out);
    *out = cs_xasprintf("%c%s", type, type == 'L' ? path : ref);
    return 0;
}

int
build_cache_take_to(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    build_cache *bc = o->dst;
    (void) err;
    if (bc->to)
        return cmd_usage_error(c, "--cache-to: only one is supported");
    return take_spec(c, "--cache-to", arg, "dest", &bc->to, &bc->mode);
}

int
build_cache_take_from(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    build_cache *bc = o->dst;
    char *src = NULL;
    (void) err;
    int rc = take_spec(c, "--cache-from", arg, "src", &src, NULL);
    if (rc == 0)
        cs_strv_push(&bc->from, src);
    else
        free(src);
    return rc;
}

void
build_cache_release(build_cache *bc)
{
    free(bc->to);
    cs_strv_release(&bc->from);
}

int
build_cache_import(cs_store *s, const build_cache *bc, cs_error **err)
{
    for (size_t i = 0; i < bc->from.n; i++) {
        cs_rcache_stats st;
        const char *src = bc->from.v[i] + 1;
        int rc = bc->from.v[i][0] == 'R' ? cache_registry_import(s, src, &st, err)
                                         : cs_rcache_import_local(s, src, &st, err);
        if (rc == -CS_ENOTFOUND) {
            fprintf(stderr, "cstore: warning: --cache-from: %s\n", (*err)->msg);
            cs_error_clear(err);
            continue;
        }
        if (rc < 0)
            return rc;
        fprintf(stderr,
                "cache: imported %llu entries, %llu records, %llu chunks (%llu left in %llu "
                "packs) from %s\n",
                ULL(st.entries), ULL(st.records), ULL(st.chunks), ULL(st.remote), ULL(st.packs),
                src);
    }
    return 0;
}

void
build_cache_print_fetched(void)
{
    cs_rcache_stats st;
    cs_rcache_fetched(&st);
    if (st.fetched_chunks)
        fprintf(stderr, "cache: fetched %llu chunks, %llu bytes in %llu reads of %llu bytes\n",
                ULL(st.fetched_chunks), ULL(st.fetched_bytes), ULL(st.reads), ULL(st.read_bytes));
}

int
build_cache_export(cs_store *s, const build_cache *bc, const cs_build_result *res, cs_error **err)
{
    build_cache_print_fetched();
    if (!bc->to)
        return 0;
    cs_rcache_build b = { res->keys, res->nkeys, res->images, res->nimages, res->id };
    cs_rcache_stats st;
    uint64_t sent = 0, uploads = 0;
    unsigned retries = 0;
    const char *dst = bc->to + 1;
    int rc = bc->to[0] == 'R'
                 ? cache_registry_export(s, dst, &b, bc->mode, &st, &sent, &uploads, &retries, err)
                 : cs_rcache_export_local(s, dst, &b, bc->mode, &st, err);
    if (rc < 0)
        return rc;
    fprintf(stderr,
            "cache: exported %llu entries, %llu records, %llu chunks in %llu packs (%llu "
            "written, %llu bytes; index %llu bytes) to %s\n",
            ULL(st.entries), ULL(st.records), ULL(st.chunks), ULL(st.packs), ULL(st.packs_written),
            ULL(st.bytes_written), ULL(st.index_bytes), dst);
    if (bc->to[0] == 'R')
        fprintf(stderr, "cache: pushed %llu blobs, %llu bytes (merged again %u times)\n",
                ULL(uploads), ULL(sent), retries);
    return 0;
}

int
build_cache_parse_spec(cmd_ctx *c, const char *opt, const char *arg, const char *pathkey,
                       char **out)
{
    return take_spec(c, opt, arg, pathkey, out, NULL);
}
