/* build.h - `cstore build`: plan the stages a target needs, run each
 * instruction behind a cache key, commit the target stage as an image.
 *
 * Cache keys chain: a stage's key starts from its base image id (or the key
 * of the stage it is FROM) and each instruction hashes the previous key, its
 * expanded text and the digest of its inputs (context files, source stage).
 * Only instructions that may make a layer (COPY, ADD, WORKDIR, RUN) are
 * looked up; metadata instructions change the config and the chain only.
 * Cache records: cstore/buildcache.h.
 */
#ifndef CSBUILD_BUILD_H
#define CSBUILD_BUILD_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/store.h"
#include "lex.h"

/* Progress: the library never prints. It reports each step through
 * cs_build_opts.progress (BuildKit's plain view numbers them "#N"):
 *   STEP_START  a step began; text describes it ("[build 2/4] COPY . .")
 *   STEP_CACHED / STEP_DONE (seconds) / STEP_ERROR  how step `step` ended
 *   STEP_LOG    a line about step `step` ("writing image sha256:... done")
 *   RUN_OUTPUT  a RUN command starts writing its output
 *   RUN_TAIL    a failed RUN's last lines (text) when output_fd was -1
 *   RUN_LINE    a line the RUN of step `step` wrote (text, without its
 *               newline; seconds since the step started), when output_fd
 *               is not -1: output goes through events, not to output_fd
 * Steps of stages that run in parallel interleave (each event names its
 * step). Not every started step ends with an event: a FROM whose image is
 * missing returns the error without STEP_ERROR. */
typedef enum cs_build_event_kind {
    CS_BUILD_STEP_START,
    CS_BUILD_STEP_CACHED,
    CS_BUILD_STEP_DONE,
    CS_BUILD_STEP_ERROR,
    CS_BUILD_STEP_LOG,
    CS_BUILD_RUN_OUTPUT,
    CS_BUILD_RUN_TAIL,
    CS_BUILD_RUN_LINE,
} cs_build_event_kind;

typedef struct cs_build_event {
    cs_build_event_kind kind;
    unsigned step;    /* 1-based */
    const char *text; /* borrowed for the call; NULL when the kind has none */
    double seconds;   /* STEP_DONE */
} cs_build_event;

/* Called from the building threads, one call at a time; ev lives for the
 * call. */
typedef void (*cs_build_progress_fn)(void *ctx, const cs_build_event *ev);

/* A --secret: the value of secret `id` is read from file `src` or from
 * environment variable `env` (exactly one is set) when a RUN
 * --mount=type=secret needs it, on a cache miss only. */
typedef struct cs_build_secret {
    char *id, *src, *env;
} cs_build_secret;

/* Parses a --secret spec as buildx does: "id=ID,src=FILE" ("source" too),
 * "id=ID,env=VAR", "type=file|env" (type=env takes src as the variable's
 * name); "id=ID" alone reads variable ID when it is set, else file ID. A
 * file must exist (stat). Fills *out (release it). -CS_EPARSE naming the bad
 * key or a missing id, -CS_ENOTFOUND for a file that is not there. */
int cs_build_secret_parse(const char *spec, cs_build_secret *out, cs_error **err);
void cs_build_secret_release(cs_build_secret *s);

/* A --ssh: the agent socket forwarded to RUN --mount=type=ssh,id=ID. */
typedef struct cs_build_ssh {
    char *id, *socket;
} cs_build_ssh;

/* Parses "default" ($SSH_AUTH_SOCK), "ID" (the same socket under another
 * id) or "ID=SOCKET". The socket must be a unix socket (key files, which
 * buildx loads into an agent of its own, are not supported). Fills *out
 * (release it). -CS_EPARSE (no SSH_AUTH_SOCK, no id), -CS_ENOTFOUND,
 * -CS_EUNSUPPORTED (not a socket). */
int cs_build_ssh_parse(const char *spec, cs_build_ssh *out, cs_error **err);
void cs_build_ssh_release(cs_build_ssh *s);

/* A --build-context NAME=DIR or NAME=docker-image://REF (buildx): NAME in
 * FROM, COPY --from and RUN --mount from= means this instead of a stage or
 * image of that name. NAME is kept as BuildKit keys it: the reference
 * normalized, in its familiar form without ":latest" ("base", for base,
 * base:latest and docker.io/library/base alike; "base:v2"), and FROM names
 * match it the same way. Exactly one of dir (absolute) and image is set. */
typedef struct cs_build_context {
    char *name, *dir, *image;
} cs_build_context;

/* Parses a --build-context spec; a relative DIR is resolved against the
 * working directory and must be a directory. Fills *out (release it).
 * -CS_EPARSE (no '=', empty name or value, a name that is no reference,
 * e.g. upper case, another scheme), -CS_ENOTFOUND (no such directory). */
int cs_build_context_parse(const char *spec, cs_build_context *out, cs_error **err);
void cs_build_context_release(cs_build_context *c);

typedef struct cs_build_opts {
    const char *context;    /* context directory */
    const char *dockerfile; /* path, default CONTEXT/Dockerfile; "-" for stdin */
    const char *target;     /* stage name, or NULL for the last stage */
    char **tags;            /* normalized or not; NULL-terminated, may be NULL */
    /* "K=V" (or "K": an empty value), set in the image's config.Labels over
     * the Dockerfile's LABELs, in order (as BuildKit's --label); the cache
     * keys do not see them. NULL-terminated, may be NULL. */
    char **labels;
    const cs_df_env *build_args;
    /* --secret and --ssh (borrowed; the last one of an id wins). Neither the
     * values nor the sources reach a layer, the cache keys, the config or
     * the history: a RUN's key holds its --mount spec only. */
    const cs_build_secret *secrets;
    size_t nsecrets;
    const cs_build_ssh *ssh;
    size_t nssh;
    /* --build-context (borrowed; the last one of a name wins). A DIR's
     * .dockerignore is not read (nor the main context's); its files' digests
     * are in a COPY's key as the main context's, an image's id in the key
     * chain as a FROM image's. FROM a DIR fails, -CS_EUNSUPPORTED. */
    const cs_build_context *contexts;
    size_t ncontexts;
    bool no_cache;
    bool network_none;   /* RUN without network unless RUN --network says otherwise */
    const char *runtime; /* OCI runtime for RUN (NULL: runc) */
    /* --platform (BuildKit): NULL, "local" or the host's linux/amd64 (also
     * "amd64", "linux", "linux/amd64/v1".."v4", "linux/x86_64", any case; a
     * comma-separated list of them); anything else fails the build at once,
     * -CS_EUNSUPPORTED. The predefined TARGET and BUILD ARGs are the host's. */
    const char *platform;
    /* RUN's extra /etc/hosts entries, docker's --add-host HOST:IP
     * (cs_run_host_parse), NULL-terminated, may be NULL; its rlimits,
     * --ulimit NAME=SOFT[:HARD] (cs_run_rlimit_parse), the same; its /dev/shm
     * size in bytes (0: 64 MiB). Each is in the RUN steps' cache keys when
     * given (BuildKit keeps them in the exec op); bad ones fail the build at
     * once, -CS_EINVAL. */
    char **add_hosts;
    char **ulimits;
    uint64_t shm_size;
    /* Stages that do not need one another are built in parallel (BuildKit
     * does), at most `jobs` at a time (0: the number of online cores; 1: one
     * after the other). The image does not depend on it. */
    unsigned jobs;
    int output_fd;                 /* RUN commands' stdout and stderr go here (as RUN_LINE
                                      events when progress is set); -1: captured only */
    cs_build_progress_fn progress; /* may be NULL */
    void *progress_ctx;
    /* --pull: an image a FROM, COPY --from, RUN --mount=from or image build
     * context names is fetched into the store through resolve (cmd/ pulls it
     * from its registry; builder/ never links curl) when the store lacks it,
     * or every time with pull_always; NULL (--pull=never): the store only.
     * resolve returns 0 or a negative code with *err set; it may be called
     * from several stages' threads at once. */
    int (*resolve)(void *ctx, const char *name, cs_error **err);
    void *resolve_ctx;
    bool pull_always;
} cs_build_opts;

typedef struct cs_build_result {
    cs_digest id; /* image id: sha256 of the config */
    unsigned steps, cached;
    /* Every cache key looked up, in build order, and the images FROM and
     * COPY --from resolved (for --cache-to); owned: cs_build_result_release. */
    cs_digest *keys, *images;
    size_t nkeys, nimages;
} cs_build_result;

void cs_build_result_release(cs_build_result *r);

/* Builds and commits. Errors read "DOCKERFILE:LINE: ..." where a line is
 * known; -CS_ECANCELED when the store's cancel flag was triggered.
 * Warnings go to the store's warn hook. */
int cs_build(cs_store *s, const cs_build_opts *opts, cs_build_result *out, cs_error **err);

#endif
