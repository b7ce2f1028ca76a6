/* snapshot.h - trees unpacked on disk, for RUN's overlayfs lower dirs, and
 * overlay upper dirs turned back into layers.
 *
 * A snapshot is one layer's tree unpacked under ROOT/snapshots/<hex of tree
 * digest>/fs, with OCI whiteouts turned into overlay ones (".wh.NAME" -> a
 * 0/0 character device NAME; ".wh..wh..opq" -> the xattr
 * trusted.overlay.opaque="y" on its directory), so any stack of snapshots is
 * a valid lowerdir list. Snapshots are a cache: recorded in CS_T_SNAPSHOTS
 * (tree digest -> last-used u64 BE unix seconds | state u8, 1 = complete |
 * boot id, 16 bytes), made once (unpacked into ROOT/snapshots/<hex>.tmp-<pid>
 * on up to one thread per core, renamed to <hex>, then recorded), reused by
 * every build, evictable by gc when nothing references them, and rebuilt
 * from the store when missing (or <hex> is left without its fs dir).
 * Nothing is synced: the record holds the boot the snapshot was written in,
 * and one written in another boot (a crash may have lost what had not
 * reached the disk) or not recorded is compared with its tree before use
 * (every entry there, with its type and size: one fstatat each) and rebuilt
 * when it differs. When the boot id cannot be read, snapshots are synced
 * (syncfs) before they are recorded, as before. Files inside a snapshot of
 * this boot are not checked: a snapshot damaged in place must be pruned to
 * be rebuilt.
 * ROOT/snapshots and each <hex> dir are 0700: images' setuid files must not
 * be reachable by other users of the host.
 * Processes may race on one tree: each unpacks into its own temp dir, the
 * first rename wins, the others drop theirs and use it.
 * Thread rules: functions take no long-lived locks; callers serialize per
 * store process.
 */
#ifndef CSTORE_SNAPSHOT_H
#define CSTORE_SNAPSHOT_H

#include <stdbool.h>
#include "cstore/ingest.h"
#include "cstore/store.h"
#include "cstore/tree.h"

/* Makes sure the snapshot of tree exists (unpacking it from the store if
 * not) and returns its fs directory, ROOT/snapshots/<hex>/fs (malloc'd),
 * touching its last-used time (rewritten at most once a minute, so that a
 * hit costs no write transaction). Entries are created relative to the fs
 * dir, one path component at a time with O_NOFOLLOW: an entry below a
 * symlink or a non-directory of the tree fails with CS_EINVAL and nothing is
 * written outside. Xattrs "trusted.overlay.*" of entries are dropped;
 * unsupported "security.*" ones are skipped, any other failure is an error.
 * A hardlink to a file of the same layer is a link, to anything else a copy.
 * Codes: CS_ENOTFOUND (no such tree, missing content), CS_EINVAL, CS_EIO,
 * CS_EFULL. */
int cs_snapshot_get(cs_store *s, const cs_digest *tree, char **dir, cs_error **err);
/* Whether tree's snapshot dir is on disk (one lstat; cs_snapshot_get still
 * checks it before use). */
bool cs_snapshot_present(cs_store *s, const cs_digest *tree);

/* Turns an overlay upper dir (what a RUN changed on top of lower, the merged
 * tree of the layers below) into a new layer: new and changed files are
 * ingested through ing (chunked, deduplicated), overlay whiteouts (0/0 char
 * devices) become ".wh.NAME" entries, opaque directories get
 * ".wh..wh..opq". Unchanged directories that overlay copied up only because
 * something below them changed are kept (as BuildKit does); the upper root
 * itself is not an entry. Whiteouts and opaque markers are files of size 0,
 * mode 0, owner 0:0, mtime 0. Paths of one inode become a file (the first in
 * tree order) and hardlinks to it. Xattrs "trusted.overlay.*" are not copied.
 * The mount must not use redirect_dir or metacopy (redirect_dir=off,
 * metacopy=off, index=off): an upper dir holding a redirect or metacopy xattr
 * fails with CS_EUNSUPPORTED. Nothing may still write into upper.
 * *layer is sorted, owned by the caller; nothing is put in the store but file
 * contents (through ing: visible at its commit). lower may be NULL: overlay
 * already recorded in upper everything the diff needs. To keep the upper dir
 * as the new tree's snapshot, call cs_snapshot_adopt after cs_tree_put. */
int cs_snapshot_diff(cs_store *s, cs_ingest *ing, const char *upper, const cs_tree *lower,
                     cs_tree **layer, cs_error **err);
/* Moves a finished upper dir into place as the snapshot of tree (or drops it
 * if a trusted one exists already), recorded with this boot's id (no syncfs;
 * syncfs first when the boot id cannot be read). The upper dir's overlay whiteouts
 * are what the snapshot needs, so nothing is rewritten. upper must be on the
 * store root's filesystem (ROOT/tmp/...): a move across filesystems fails
 * with CS_EIO and leaves upper where it was. */
int cs_snapshot_adopt(cs_store *s, const cs_digest *tree, const char *upper, cs_error **err);
/* cs_snapshot_adopt inside ing's write transaction, for a tree ing has put:
 * the files are moved first, the record is put in ing's transaction and
 * written by its commit (no commit, hence no fdatasync, of its own). If that
 * commit fails, the dir stays unrecorded: checked against its tree before any
 * use, pruned by gc. It reads only through ing's transaction and its temp dir
 * name is its own, so it needs no lock against cs_snapshot_get (a lock that
 * another thread holds while it waits for the write transaction would
 * deadlock). On success upper is gone. */
int cs_snapshot_adopt_ingest(cs_ingest *ing, const cs_digest *tree, const char *upper,
                             cs_error **err);

/* Removes snapshots not used since before `older_than` (unix seconds) and
 * those whose tree no longer exists (record first, then the dir, renamed out
 * of sight and removed without following symlinks or crossing mounts), plus
 * unrecorded <hex> dirs older than ten minutes and the temp dirs of dead
 * processes. *removed counts snapshots, *bytes the disk blocks freed (either
 * may be NULL). Safe beside running builds: what they use is recent (touched
 * on use) and its tree is held (leases), and a dir just renamed into place
 * is given time to be recorded. */
int cs_snapshot_prune(cs_store *s, uint64_t older_than, uint64_t *removed, uint64_t *bytes,
                      cs_error **err);

/* Removes the temp dirs (<hex>.tmp-PID, <hex>.del-PID-N) of processes that
 * are gone (cs_store_pid_gone): half-made snapshots of killed processes. One
 * readdir of ROOT/snapshots; safe beside running processes (cs_store_open
 * calls it). Returns 0 or a negative code. */
int cs_snapshot_clean_stale(cs_store *s, cs_error **err);

#endif
