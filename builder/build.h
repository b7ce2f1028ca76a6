/* build.h - `cstore build`: plan the stages a target needs, run each
 * instruction behind a cache key, commit the target stage as an image.
 *
 * Cache keys chain: a stage's key starts from its base image id (or the key
 * of the stage it is FROM) and each instruction hashes the previous key, its
 * expanded text and the digest of its inputs (context files, source stage).
 * Only instructions that may make a layer (COPY, ADD, WORKDIR, RUN) are
 * looked up; metadata instructions change the config and the chain only.
 * Cache records: key -> last-used time u64 BE | has_layer u8 | tree digest.
 */
#ifndef CSBUILD_BUILD_H
#define CSBUILD_BUILD_H

#include <stdbool.h>
#include <stdio.h>
#include "cstore/store.h"
#include "lex.h"

typedef enum cs_progress {
    CS_PROGRESS_AUTO,  /* plain lines (a live view on a terminal) */
    CS_PROGRESS_PLAIN, /* BuildKit-style "#3 [build 2/4] COPY . ." lines */
    CS_PROGRESS_QUIET, /* nothing but the digest */
} cs_progress;

typedef struct cs_build_opts {
    const char *context;    /* context directory */
    const char *dockerfile; /* path, default CONTEXT/Dockerfile; "-" for stdin */
    const char *target;     /* stage name, or NULL for the last stage */
    char **tags;            /* normalized or not; NULL-terminated, may be NULL */
    const cs_df_env *build_args;
    bool no_cache;
    bool network_none;   /* RUN without network unless RUN --network says otherwise */
    const char *runtime; /* OCI runtime for RUN (NULL: runc) */
    cs_progress progress;
    FILE *out; /* progress lines (stderr) */
} cs_build_opts;

typedef struct cs_build_result {
    cs_digest id; /* image id: sha256 of the config */
    unsigned steps, cached;
} cs_build_result;

/* Builds and commits. Errors read "DOCKERFILE:LINE: ..." where a line is
 * known. */
int cs_build(cs_store *s, const cs_build_opts *opts, cs_build_result *out, cs_error **err);

#endif
