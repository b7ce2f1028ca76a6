/* blobrepo.h - where this store's blobs are known to be in registries.
 *
 * blob_repos: blob digest[32] | "REGISTRY/REPOSITORY" -> tree digest[32] |
 * time u64 (unix s, when last recorded)
 *
 * A push records each layer blob it pushed or found in the repository, so a
 * later push of the same blob to another repository of the same registry
 * can ask for a cross-repository mount instead of uploading it (a pull may
 * record what it fetched the same way). The tree is the layer the blob was
 * generated from (for a config blob: the image's top layer): gc drops a
 * record whose tree it frees. REGISTRY is the
 * host[:port] of a reference ("127.0.0.1:5000", "docker.io"), REPOSITORY its
 * path ("library/golang"); neither is empty, REGISTRY has no '/'.
 * Thread rules: those of cs_db (any thread; each call is one transaction).
 */
#ifndef CSTORE_BLOBREPO_H
#define CSTORE_BLOBREPO_H

#include "cstore/store.h"
#include "cstore/util.h"

typedef struct cs_blob_repo {
    cs_digest blob;
    cs_digest tree;
    const char *registry;
    const char *repository;
} cs_blob_repo;

/* Records the n entries in ONE write transaction (an entry already there
 * gets the new tree and time); none when every entry is recorded already,
 * with its tree, within the last hour (a re-push writes nothing). Codes:
 * CS_EINVAL for an empty or bad name, LMDB's (CS_EFULL). */
int cs_blob_repos_put(cs_store *s, const cs_blob_repo *v, size_t n, cs_error **err);

/* A repository of registry other than `except` (may be NULL) where blob is
 * recorded, the most recently recorded first; *repo is the caller's.
 * Returns 0, -CS_ENOTFOUND (no error set: err stays NULL) when there is
 * none, or an LMDB code with *err set. */
int cs_blob_repo_find(cs_store *s, const cs_digest *blob, const char *registry, const char *except,
                      char **repo, cs_error **err);

/* For gc: the tree a blob_repos value names (false when malformed). */
bool cs_blob_repo_record_tree(const void *v, size_t len, cs_digest *tree);

#endif
