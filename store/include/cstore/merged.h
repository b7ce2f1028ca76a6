/* merged.h - the filesystem an image's layers add up to, as one sorted tree,
 * and path resolution inside it (as a chroot would resolve them).
 *
 * Layers apply bottom first: an entry replaces the same path below it (a
 * non-directory replacing a directory removes what was under it); ".wh.NAME"
 * removes NAME and everything under it from the layers below; a directory's
 * ".wh..wh..opq" hides everything the layers below had under it. The merged
 * tree holds no whiteout entries. Hardlink entries keep their link target and
 * carry the target's content digest and size.
 * Thread rules: a built tree is immutable; readers may share it.
 */
#ifndef CSTORE_MERGED_H
#define CSTORE_MERGED_H

#include <stdbool.h>
#include <stddef.h>
#include "cstore/db.h"
#include "cstore/tree.h"

/* Merges layers[0..n) (tree digests, bottom first) read in txn. *out is
 * sorted (cs_tree_find works) and owned by the caller. n == 0 gives an empty
 * tree (FROM scratch). */
int cs_merged_build(cs_db *db, MDB_txn *txn, const cs_digest *layers, size_t n, cs_tree **out,
                    cs_error **err);

/* Applies one more layer on top of a merged tree in place (same rules). */
int cs_merged_apply(cs_tree *merged, const cs_tree *layer, cs_error **err);

/* Resolves path (absolute or relative to the root; "." and ".." allowed, ".."
 * stops at the root) inside the tree, following symlinks of every parent
 * component, and of the last one when follow_last, the way the kernel would
 * inside a chroot at the tree's root (absolute link targets start at the
 * root). *real gets the clean resolved path ("" for the root), malloc'd.
 * Returns 1 when the resolved path exists (*entry set, NULL for the root),
 * 0 when it does not (the parents exist; *real is where it would be), or
 * <0: CS_ENOTFOUND when a parent is missing or is not a directory, CS_EINVAL
 * after 40 symlinks ("too many levels of symbolic links"). */
int cs_tree_resolve(const cs_tree *t, const char *path, bool follow_last, char **real,
                    const cs_entry **entry, cs_error **err);

/* The index range [*lo, *hi) of the entries strictly under dir (a clean
 * path; "" for the root), in a sorted tree. */
void cs_tree_under(const cs_tree *t, const char *dir, size_t *lo, size_t *hi);

/* ---- the merged file system of a layer stack, without its tree ----
 * Lookups answered from the layers' tree records where they lie, top layer
 * first (whiteouts, opaque dirs and non-directories replacing directories
 * applied as cs_merged_build applies them): no record is decoded whole, so
 * a few lookups cost microseconds where the merged tree of a base image
 * costs milliseconds (golang: 13,925 entries, ~4 ms of first-touch page
 * faults). A view holds a read transaction until it is freed (so the calling
 * thread may also hold a write txn meanwhile); one thread at a time. The
 * layers' records must be local (cs_rcache_fetch_parts first). */
typedef struct cs_merged_view cs_merged_view;

/* A view of layers[0..n) (tree digests, bottom first; copied). */
int cs_merged_view_open(cs_db *db, const cs_digest *layers, size_t n, cs_merged_view **out,
                        cs_error **err);
void cs_merged_view_free(cs_merged_view *v);
CS_DEFINE_FREEP(cs_merged_view, cs_merged_view_free)

/* The entry the merged tree has at the clean path path (*out NULL: none):
 * what cs_tree_find on cs_merged_build's tree gives, field for field (a
 * hardlink carries its target's content as there; hardlink chains of more
 * than 40 hops aside). *out lives as long as the view. */
int cs_merged_view_find(cs_merged_view *v, const char *path, const cs_entry **out, cs_error **err);

/* cs_tree_resolve on the merged tree, through the view: the same results. */
int cs_merged_view_resolve(cs_merged_view *v, const char *path, bool follow_last, char **real,
                           const cs_entry **entry, cs_error **err);

#endif
