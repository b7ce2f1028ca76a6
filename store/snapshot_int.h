/* snapshot_int.h - what the snapshot files share (private to libcstore).
 *
 * snapshot.c owns the records, the directory layout under ROOT/snapshots,
 * get, adopt and prune; snapshot_unpack.c writes a tree into a directory;
 * snapshot_diff.c turns an overlay upper dir back into layer entries.
 */
#ifndef CSTORE_SNAPSHOT_INT_H
#define CSTORE_SNAPSHOT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/snapshot.h"
#include "digestset.h"

#define WH_PREFIX  ".wh."
#define WH_META    ".wh..wh."
#define WH_OPAQUE  ".wh..wh..opq"
#define OVL_PREFIX "trusted.overlay."
#define OVL_OPAQUE "trusted.overlay.opaque"
#define OVL_REDIR  "trusted.overlay.redirect"
#define OVL_META   "trusted.overlay.metacopy"

/* Writes tree t into the directory fs (made if missing): entries one path
 * component at a time with O_NOFOLLOW, whiteouts turned into overlay ones
 * (see cstore/snapshot.h), file contents on up to 4 threads (one per core).
 * sync: syncfs once at the end (an output the user keeps); a snapshot is not
 * synced, see the boot id below. Reads contents in its own read
 * transactions of db. Codes: CS_ENOTFOUND, CS_EINVAL, CS_EIO, CS_EFULL. */
int cs_snapshot_unpack_to(cs_db *db, const cs_tree *t, const char *fs, bool sync, cs_error **err);
/* cs_snapshot_unpack_to with sync. */
int cs_snapshot_unpack(cs_db *db, const cs_tree *t, const char *fs, cs_error **err);

/* Snapshots are not flushed when made: each record holds the boot it was
 * written in (16 bytes of the sha256 of /proc/sys/kernel/random/boot_id), and a snapshot
 * recorded in another boot, or not recorded, is checked with
 * cs_snapshot_verify before use (rebuilt when it fails). A zero boot id
 * means "synced when made" (the boot id could not be read, or a record from
 * before boot ids), trusted as is.
 * The current boot id into out; false (out zeroed) when it cannot be read.
 * TEST ONLY: CSTORE_TEST_BOOT_ID_FILE names another file to read it from, so
 * a test can play "after a reboot"; it changes which snapshots are checked,
 * never what a check accepts. */
#define CS_BOOT_ID_LEN 16
bool cs_snapshot_boot_id(uint8_t out[CS_BOOT_ID_LEN]);
/* Compares fs, a snapshot of t as it is on disk now, with t: every entry is
 * there with its type, regular files and symlinks with their size (what a
 * crash before the data reached the disk changes on ext4 (data=ordered),
 * xfs and btrfs, which never write a size ahead of its data); a whiteout's
 * name is there. Times and contents are not compared: an adopted upper dir
 * has the command's real times. One fstatat per entry. CS_ECORRUPT names
 * the first difference; CS_EIO when fs cannot be opened. */
int cs_snapshot_verify(const cs_tree *t, const char *fs, cs_error **err);

/* The snapshot records (gc's budget): tree digest and last-used time. */
typedef struct cs_snapshot_rec {
    cs_digest tree;
    uint64_t last_used;
} cs_snapshot_rec;
typedef struct cs_snapshot_recs {
    cs_snapshot_rec *v; /* malloc'd, the caller frees it */
    size_t n, cap;
} cs_snapshot_recs;
/* Lists the records of txn into *out. */
int cs_snapshot_list(cs_db *db, MDB_txn *txn, cs_snapshot_recs *out, cs_error **err);
/* cs_snapshot_prune that also takes the snapshots in drop (a digest set with
 * values: tree digest -> the last-used time seen when they were chosen),
 * unless used since (their last-used time differs). drop may be NULL. */
int cs_snapshot_prune_ex(cs_store *s, uint64_t older_than, cs_digestset *drop, uint64_t *removed,
                         uint64_t *bytes, cs_error **err);

#endif
