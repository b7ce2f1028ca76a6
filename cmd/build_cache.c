/* build_cache.c - `cstore build --cache-to` / `--cache-from`: the specs,
 * and the calls around the build (see build_cache.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "build_cache.h"

#define ULL(x) ((unsigned long long) (x))

/* Parses "k=v,k=v" into type, the path key's value and mode. */
static int
take_spec(cmd_ctx *c, const char *opt, const char *arg, const char *pathkey, char **path,
          cs_rcache_mode *mode)
{
    cs_autofree char *spec = cs_xstrdup(arg);
    char *p = spec, *kv;
    bool local = false;
    while ((kv = strsep(&p, ",")) != NULL) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return cmd_usage_error(c, "%s '%s': '%s' is not KEY=VALUE", opt, arg, kv);
        *eq = '\0';
        const char *v = eq + 1;
        if (!strcmp(kv, "type") && strcmp(v, "local"))
            return cmd_usage_error(c, "%s: cache type '%s' is not supported (type=local is)", opt,
                                   v);
        if (!strcmp(kv, "type"))
            local = true;
        else if (!strcmp(kv, pathkey) && *v) {
            free(*path);
            *path = cs_xstrdup(v);
        } else if (mode && !strcmp(kv, "mode") && (!strcmp(v, "min") || !strcmp(v, "max")))
            *mode = !strcmp(v, "max") ? CS_RCACHE_MAX : CS_RCACHE_MIN;
        else
            return cmd_usage_error(c, "%s '%s': unsupported attribute '%s'", opt, arg, kv);
    }
    if (!local || !*path)
        return cmd_usage_error(c, "%s '%s': type=local,%s=DIR is required", opt, arg, pathkey);
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
        int rc = cs_rcache_import_local(s, bc->from.v[i], &st, err);
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
                bc->from.v[i]);
    }
    return 0;
}

void
build_cache_print_fetched(void)
{
    cs_rcache_stats st;
    cs_rcache_fetched(&st);
    if (st.fetched_chunks)
        fprintf(stderr, "cache: fetched %llu chunks, %llu bytes in %llu reads\n",
                ULL(st.fetched_chunks), ULL(st.fetched_bytes), ULL(st.reads));
}

int
build_cache_export(cs_store *s, const build_cache *bc, const cs_build_result *res, cs_error **err)
{
    build_cache_print_fetched();
    if (!bc->to)
        return 0;
    cs_rcache_build b = { res->keys, res->nkeys, res->images, res->nimages, res->id };
    cs_rcache_stats st;
    int rc = cs_rcache_export_local(s, bc->to, &b, bc->mode, &st, err);
    if (rc < 0)
        return rc;
    fprintf(stderr,
            "cache: exported %llu entries, %llu records, %llu chunks in %llu packs (%llu "
            "written, %llu bytes; index %llu bytes) to %s\n",
            ULL(st.entries), ULL(st.records), ULL(st.chunks), ULL(st.packs), ULL(st.packs_written),
            ULL(st.bytes_written), ULL(st.index_bytes), bc->to);
    return 0;
}
