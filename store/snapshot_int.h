/* snapshot_int.h - what the snapshot files share (private to libcstore).
 *
 * snapshot.c owns the records, the directory layout under ROOT/snapshots,
 * get, adopt and prune; snapshot_unpack.c writes a tree into a directory;
 * snapshot_diff.c turns an overlay upper dir back into layer entries.
 */
#ifndef CSTORE_SNAPSHOT_INT_H
#define CSTORE_SNAPSHOT_INT_H

#include "cstore/snapshot.h"

#define WH_PREFIX  ".wh."
#define WH_META    ".wh..wh."
#define WH_OPAQUE  ".wh..wh..opq"
#define OVL_PREFIX "trusted.overlay."
#define OVL_OPAQUE "trusted.overlay.opaque"
#define OVL_REDIR  "trusted.overlay.redirect"
#define OVL_META   "trusted.overlay.metacopy"

/* Writes tree t into the directory fs (made if missing) and syncs its file
 * system: entries one path component at a time with O_NOFOLLOW, whiteouts
 * turned into overlay ones (see cstore/snapshot.h). Reads contents in its
 * own read transactions of db. Codes: CS_ENOTFOUND, CS_EINVAL, CS_EIO,
 * CS_EFULL. */
int cs_snapshot_unpack(cs_db *db, const cs_tree *t, const char *fs, cs_error **err);

#endif
