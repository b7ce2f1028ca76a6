/* treeview.h - stacks of layers served as read-only file systems, straight
 * from the store: the store side of the FUSE server (fuse.h).
 *
 * A view is the merged tree of a stack of layers (cstore/merged.h: whiteouts
 * and opaque dirs applied, so a view holds none). Every view gets a range of
 * inode numbers, one per tree entry: inode base + i for entry i (a hardlink
 * presents its target's inode, attributes and link count). Inode 1
 * (CS_TV_ROOT) is a directory holding each view under its name, the hex of
 * sha256(layer digests, bottom first): cs_treeview_name. Parent directories a
 * tree lacks are presented as root-owned 0755 dirs with mtime 0. Xattrs are
 * as stored, but "trusted.overlay.*" (as cs_snapshot_get drops them).
 * File bytes are read from the chunks, decompressed through a small cache of
 * chunks shared by all threads; each thread keeps one read transaction, reset
 * after every call and renewed by the next (one mdb_txn_renew per request).
 * A view's layers are leased (cstore/lease.h) for as long as the store stays
 * open, so gc cannot free what a mount serves.
 * The lookups return 0 or a NEGATIVE ERRNO (they are the answers to a kernel
 * request): -ENOENT, -ENOTDIR, -ENODATA, -ERANGE, -EIO (a store failure, also
 * reported through the store's warn hook).
 * Thread rules: every call but cs_treeview_free may run from any thread at
 * once; views are only ever added (never changed or dropped) until the free.
 */
#ifndef CSTORE_TREEVIEW_H
#define CSTORE_TREEVIEW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "cstore/store.h"
#include "cstore/util.h"

#define CS_TV_ROOT 1

typedef struct cs_treeview cs_treeview;

/* A tree view over store s (borrowed; it outlives the view), keeping at most
 * cache_chunks decompressed chunks (0: 64). */
cs_treeview *cs_treeview_new(cs_store *s, size_t cache_chunks);
void cs_treeview_free(cs_treeview *tv);

/* The name of the view of layers[0..n), bottom first. */
void cs_treeview_name(const cs_digest *layers, size_t n, char name[CS_DIGEST_HEX]);
/* Adds the view of layers[0..n) (leased first, then merged in one read
 * transaction) unless it is there; name gets its name. Codes: CS_ENOTFOUND
 * (a layer is gone), CS_ECORRUPT, CS_EIO (the lease). */
int cs_treeview_add(cs_treeview *tv, const cs_digest *layers, size_t n, char name[CS_DIGEST_HEX],
                    cs_error **err);

/* The attributes of inode ino (st_ino, st_mode with its type, st_nlink,
 * uid, gid, size, blocks, mtime as ctime and atime too, rdev). */
int cs_treeview_getattr(cs_treeview *tv, uint64_t ino, struct stat *st);
/* The child name of directory parent: its attributes. */
int cs_treeview_lookup(cs_treeview *tv, uint64_t parent, const char *name, struct stat *st);
/* Entry idx of directory ino: "." and ".." first, then the children in
 * byte order. Returns 1 with *name (borrowed: lives as long as tv) and *st,
 * 0 past the end, or a negative errno. */
int cs_treeview_dirent(cs_treeview *tv, uint64_t ino, uint64_t idx, const char **name,
                       struct stat *st);
/* A symlink's target (borrowed: lives as long as tv). -EINVAL when ino is
 * not a symlink. */
int cs_treeview_readlink(cs_treeview *tv, uint64_t ino, const char **target);
/* Reads up to size bytes at off of file ino into buf: the count (short only
 * at the end of the file) or a negative errno (-EISDIR, -EIO). */
ssize_t cs_treeview_read(cs_treeview *tv, uint64_t ino, uint64_t off, size_t size, void *buf);
/* The value of xattr name (borrowed: lives as long as tv). -ENODATA. */
int cs_treeview_getxattr(cs_treeview *tv, uint64_t ino, const char *name, const void **value,
                         size_t *len);
/* The NUL-separated names of ino's xattrs into buf (size 0: only the
 * length): the length, or -ERANGE when size is too small. */
ssize_t cs_treeview_listxattr(cs_treeview *tv, uint64_t ino, char *buf, size_t size);

/* Counters since the start (for tests and measurement). */
typedef struct cs_treeview_stats {
    uint64_t reads, chunk_hits, chunk_misses;
} cs_treeview_stats;
void cs_treeview_get_stats(cs_treeview *tv, cs_treeview_stats *out);

#endif
