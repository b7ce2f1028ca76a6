/* copy.h - COPY and ADD: from the build context or from another stage's (or
 * image's) merged tree into a new layer, with Docker/BuildKit semantics.
 *
 * Two steps, so a rebuild with nothing changed never reads file bytes:
 *  1. cs_copy_prepare matches the sources (globs, .dockerignore, --exclude),
 *     makes sure every matched context file's content is in the store (a
 *     stat cache skips files whose path and stat did not change) and returns
 *     a digest of everything the result depends on, for the cache key;
 *  2. cs_copy_layer (on a cache miss) makes the layer: entries only, reusing
 *     content digests; no file bytes are read or written for COPY --from.
 */
#ifndef CSBUILD_COPY_H
#define CSBUILD_COPY_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/ingest.h"
#include "cstore/store.h"
#include "cstore/tree.h"
#include "ignore.h"

/* Where the sources come from. */
typedef struct cs_copy_from {
    const char *context_dir; /* the build context (COPY/ADD without --from) */
    const cs_ignore *ignore; /* its .dockerignore patterns (may be NULL) */
    const cs_tree *tree;     /* or: the merged tree of a stage/image (--from) */
    /* A context only: answer from the selection's summary record (cstore/
     * statcache.h) when nothing the walk meets changed since it was written:
     * one lookup instead of one per file, and no key to compute. A hit gives
     * *key and leaves *out NULL: prepare again with summary false for the
     * sources themselves. ignore_id digests the ignore patterns' text (NULL:
     * none; the patterns must be the same for the same id). */
    bool summary;
    const cs_digest *ignore_id;
} cs_copy_from;

/* Inline sources: COPY <<EOF /dest. */
typedef struct cs_copy_inline {
    const char *name; /* file name the heredoc creates (its delimiter word) */
    const char *data;
    size_t len;
} cs_copy_inline;

typedef struct cs_copy_opts {
    bool is_add; /* ADD: local archives are extracted, URLs fetched */
    char **srcs; /* expanded source arguments (globs allowed) */
    size_t nsrcs;
    const cs_copy_inline *inl; /* heredoc sources (their srcs are not listed above) */
    size_t ninl;
    const char *dest;    /* expanded destination, relative to workdir unless absolute */
    const char *workdir; /* the stage's WORKDIR ("/" by default) */
    bool chown;          /* --chown given: uid/gid apply to every new entry */
    uint32_t uid, gid;   /* resolved by the caller (cs_copy_lookup_owner) */
    bool chmod;          /* --chmod given */
    uint32_t mode;       /* its permission bits */
    char **excludes;     /* --exclude patterns */
    size_t nexcludes;
    bool parents;         /* --parents: keep the source paths' parent dirs */
    const char *checksum; /* ADD --checksum=sha256:... for URL sources */
    int64_t clamp_mtime;  /* SOURCE_DATE_EPOCH: mtimes above it are clamped; -1: none */
} cs_copy_opts;

typedef struct cs_copy cs_copy; /* the prepared sources */

/* Step 1. dest_tree is the stage's current merged tree (to see whether dest
 * is an existing directory, and follow its symlinks). Context file contents
 * are ingested through ing when missing from the store; all stat-cache
 * lookups run in ing's transaction. ing may be NULL: lookups then use a read
 * txn and, on a miss, prepare makes and commits its own ingest (the caller
 * must then hold no write txn). URLs are downloaded here (the key needs
 * their content). *key digests the sources (paths, metadata, content
 * digests) and the options. Errors name what is wrong without the
 * DOCKERFILE:LINE prefix, which the caller adds:
 *  - "no source files were specified: 'SRC': no match" when nothing at all
 *    matched (a wildcard matching nothing next to other sources is fine);
 *  - "lstat SRC: no such file or directory" for a missing literal source
 *    (or the directory part of a wildcard), CS_ENOTFOUND;
 *  - "digest mismatch for URL: sha256:... (expected: ...)", CS_ECORRUPT.
 * As BuildKit: "../" in a source is dropped (never leaves the context) and
 * symlinks in a source are resolved with the context as root; files the
 * .dockerignore matches are invisible. The prepared copy owns copies of
 * everything it needs (from->tree may be freed after this returns). */
int cs_copy_prepare(cs_store *s, cs_ingest *ing, const cs_copy_from *from, const cs_copy_opts *opts,
                    const cs_tree *dest_tree, cs_copy **out, cs_digest *key, cs_error **err);
void cs_copy_free(cs_copy *c);
/* Adds every field of o to h: with the source tree's layers, what decides
 * the key cs_copy_prepare computes from a tree (cstore/copykey.h). */
void cs_copy_request_hash(cs_sha256_ctx *h, const cs_copy_opts *o);

/* Step 2: the new layer's entries (sorted; parent directories that do not
 * exist in dest_tree are created as BuildKit does: mode 0755 (--chmod only
 * for the directory a source directory becomes), owned by the --chown user,
 * mtime clamp_mtime or 0). Reads only metadata,
 * plus local archives for ADD (extracted through ing, which must then be
 * non-NULL). Errors: "cannot copy to non-directory: /P", "when using COPY
 * with more than one source file, the destination must be a directory and
 * end with a /". *layer owned by caller. */
int cs_copy_layer(cs_store *s, cs_ingest *ing, cs_copy *c, const cs_tree *dest_tree,
                  cs_tree **layer, cs_error **err);
/* cs_copy_layer on a view of the stage's layers (cstore/merged.h) instead
 * of their merged tree: the same layer, without building the tree. */
struct cs_merged_view;
int cs_copy_layer_view(cs_store *s, cs_ingest *ing, cs_copy *c, struct cs_merged_view *dest,
                       cs_tree **layer, cs_error **err);

/* --chown USER[:GROUP] resolution against the stage's /etc/passwd and
 * /etc/group in tree (numbers used as they are; a name missing from the
 * files is CS_ENOTFOUND "unable to find user NAME" / "unable to find group
 * NAME"; files larger than 10 MiB are CS_EINVAL). tree is borrowed (may be
 * NULL: no files). Reads in a read transaction of its own: the thread must
 * not be inside a write transaction of s. */
int cs_copy_lookup_owner(cs_store *s, const cs_tree *tree, const char *spec, uint32_t *uid,
                         uint32_t *gid, cs_error **err);

#endif
