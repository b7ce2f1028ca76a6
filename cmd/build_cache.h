/* build_cache.h - `cstore build --cache-to` / `--cache-from` (BuildKit's
 * spellings; type=local for now, cstore/rcache.h). Private to cmd/. */
#ifndef CSTORE_CMD_BUILD_CACHE_H
#define CSTORE_CMD_BUILD_CACHE_H

#include "build.h"
#include "cmd.h"
#include "cstore/rcache.h"
#include "cstore/strv.h"

typedef struct build_cache {
    char *to; /* --cache-to dest=DIR, owned; NULL: none */
    cs_rcache_mode mode;
    cs_strv from; /* --cache-from src=DIRs */
} build_cache;

/* CMD_CALL handlers (o->dst is a build_cache *): "type=local,dest=DIR[,mode=
 * min|max]" and "type=local,src=DIR"; anything else is a one-line usage
 * error (type=registry is not there yet). */
int build_cache_take_to(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);
int build_cache_take_from(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);
void build_cache_release(build_cache *bc);

/* Before the build: imports each --cache-from (a dir without a cache yet is
 * a warning, as BuildKit's); prints what it imported on stderr. */
int build_cache_import(cs_store *s, const build_cache *bc, cs_error **err);
/* After the build: the --cache-to export, and what fetches moved. */
int build_cache_export(cs_store *s, const build_cache *bc, const cs_build_result *res,
                       cs_error **err);
/* "cache: fetched ..." on stderr when this process fetched chunks. */
void build_cache_print_fetched(void);

#endif
