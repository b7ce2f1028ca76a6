/* merged_int.h - path resolution over any lookup of a merged file system:
 * cs_tree_resolve's walk, shared by the merged tree and the view of a layer
 * stack (merged_view.c). Inside store/ only. */
#ifndef CSTORE_MERGED_INT_H
#define CSTORE_MERGED_INT_H

#include "cstore/merged.h"

#define WH_PREFIX    ".wh."
#define WH_META      ".wh..wh." /* aufs metadata (.wh..wh.plnk...): ignored */
#define WH_OPAQUE    ".wh..wh..opq"
#define MAX_SYMLINKS 40 /* Linux MAXSYMLINKS */

/* What a layer entry is: an entry of the file system, a whiteout
 * (".wh.NAME"), an opaque dir's marker, or ignored (".wh..wh.*", ".wh."). */
typedef enum { CS_K_ENTRY, CS_K_WHITEOUT, CS_K_OPAQUE, CS_K_IGNORE } cs_wh_kind;
/* Classifies a layer entry's path; *base points at its last component. */
cs_wh_kind cs_merged_classify(const char *path, const char **base);

/* The entry at a clean path ("" never asked), or NULL; <0 on an error. */
typedef int (*cs_resolve_find)(void *ctx, const char *path, const cs_entry **out, cs_error **err);

/* cs_tree_resolve with find for the tree's lookups (same results). */
int cs_resolve_with(cs_resolve_find find, void *ctx, const char *path, bool follow_last,
                    char **real, const cs_entry **entry, cs_error **err);

#endif
