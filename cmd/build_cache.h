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
 * min|max]", "type=local,src=DIR", "type=registry,ref=REF[,mode=..]";
 * anything else is a one-line usage error. */
int build_cache_take_to(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);
int build_cache_take_from(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);
void build_cache_release(build_cache *bc);
/* A spec as --cache-from takes it (pathkey: "src"), into *out ('L' or 'R',
 * then the dir or ref; freed first): for `cache prune --ref`. */
int build_cache_parse_spec(cmd_ctx *c, const char *opt, const char *arg, const char *pathkey,
                           char **out);

/* Before the build: imports each --cache-from (a dir without a cache yet is
 * a warning, as BuildKit's); prints what it imported on stderr. */
int build_cache_import(cs_store *s, const build_cache *bc, cs_error **err);
/* After the build: the --cache-to export, and what fetches moved. */
int build_cache_export(cs_store *s, const build_cache *bc, const cs_build_result *res,
                       cs_error **err);
/* "cache: fetched ..." on stderr when this process fetched chunks. */
void build_cache_print_fetched(void);

/* ---- cache_registry.c: type=registry through a mirror dir in the root ---- */
/* Sets the hooks that read packs from the registry (cs_rcache_set_remote). */
void cache_registry_install(void);
int cache_registry_import(cs_store *s, const char *ref, cs_rcache_stats *st, cs_error **err);
/* The connection options (--tls-verify, --cert-dir) of the clients opened
 * after it; borrowed strings. */
void cache_registry_set_opts(const struct cs_reg_opts *o);
/* Read-merge-write: the ref's cache merged with this build's, pushed, and
 * the manifest PUT only when the ref still names what was merged (checked
 * again after the PUT); else merged again, up to 12 attempts with
 * exponential backoff and full jitter (CS_EBUSY after). sent/uploads: blob bytes and blobs pushed;
 * *retries: merges done again. */
int cache_registry_export(cs_store *s, const char *ref, const cs_rcache_build *b,
                          cs_rcache_mode mode, cs_rcache_stats *st, uint64_t *sent,
                          uint64_t *uploads, unsigned *retries, cs_error **err);

/* `cache prune` of a registry cache: the manifest and index blobs into the
 * mirror dir of ref (*mirror, made), and the mirror's manifest pushed (its
 * blobs HEAD first, the manifest last). */
struct cs_registry;
struct cs_reg_ref;
int cache_registry_pull_index(cs_store *s, const char *ref, struct cs_registry *r,
                              const struct cs_reg_ref *rr, char **mirror, char seen[72],
                              cs_error **err);
/* The mirror's manifest published unless the ref moved since seen (the
 * manifest digest pull_index gave): then 1, and nothing may be deleted. */
int cache_registry_push_index(struct cs_registry *r, const struct cs_reg_ref *rr,
                              const char *mirror, const char *seen, cs_error **err);

#endif
