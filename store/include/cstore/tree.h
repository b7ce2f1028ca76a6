/* tree.h - a layer as a sorted list of entries, and its canonical encoding.
 *
 * The tree digest is sha256 of the encoding: metadata and content digests
 * only, so making a tree never touches file bytes. Entries are sorted by
 * path (bytewise), so a directory precedes everything under it.
 *
 * Encoding: "CSTREE1\0" | count u32 | entries, each:
 *   type u8 | mode u32 | uid u32 | gid u32 | mtime_sec u64 | mtime_nsec u32 |
 *   size u64 | has_content u8 [| digest 32] | devmajor u32 | devminor u32 |
 *   path str | link str | uname str | gname str | nxattrs u32 | (name str, value bytes)*
 * (str/bytes: u32 length + bytes; integers big-endian).
 */
#ifndef CSTORE_TREE_H
#define CSTORE_TREE_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/db.h"
#include "cstore/util.h"

typedef enum cs_etype {
    CS_E_FILE = 0,
    CS_E_DIR,
    CS_E_SYMLINK,
    CS_E_HARDLINK,
    CS_E_CHAR,
    CS_E_BLOCK,
    CS_E_FIFO,
} cs_etype;

typedef struct cs_xattr {
    char *name;
    uint8_t *value;
    uint32_t len;
} cs_xattr;

typedef struct cs_entry {
    char *path; /* clean relative path: no leading "/" or "./", no "." or ".." parts */
    cs_etype type;
    uint32_t mode; /* permission bits with setuid/setgid/sticky (07777) */
    uint32_t uid, gid;
    char *uname, *gname; /* may be NULL */
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint64_t size;     /* bytes of a file (0 for others) */
    bool has_content;  /* file (or hardlink to a file) with size > 0 */
    bool borrowed;     /* path, link, uname and gname live in a tree's arena
                          (cs_tree_decode's): never freed or replaced one by one */
    cs_digest content; /* when has_content */
    char *link;        /* symlink target (verbatim), or hardlink target (clean path) */
    uint32_t devmajor, devminor;
    cs_xattr *xattrs; /* sorted by name */
    uint32_t nxattrs;
} cs_entry;

typedef struct cs_tree {
    cs_entry *e;
    size_t n, cap;
    void **arenas; /* the strings of borrowed entries, freed with the tree */
    size_t narenas;
} cs_tree;

cs_tree *cs_tree_new(void);
void cs_tree_free(cs_tree *t);
CS_DEFINE_FREEP(cs_tree, cs_tree_free)
/* Appends a zeroed entry owned by the tree; the pointer lives until the next add. */
cs_entry *cs_tree_add(cs_tree *t);
void cs_entry_release(cs_entry *e);
/* An array of entries e[0..*n) with room for *cap: add appends a zeroed entry
 * (the pointer lives until the next add); free releases each and the array. */
cs_entry *cs_entries_add(cs_entry **e, size_t *n, size_t *cap);
void cs_entries_free(cs_entry *e, size_t n, size_t cap);
/* An entry array of room oldcap given room newcap (0: freed, NULL back),
 * its entries kept (moved bytewise). Arrays of 256 KiB or more are
 * anonymous mappings of their own, not inherited by a fork (MADV_DONTFORK):
 * a RUN's reaper is a fork of cstore, and a merged tree's pages written while
 * (or after) it lives would fault again, copy-on-write. Every entry array is
 * resized and freed through here, with its exact room. */
cs_entry *cs_entries_resize(cs_entry *e, size_t oldcap, size_t newcap);
/* A deep copy (never borrowed). */
void cs_entry_copy(cs_entry *dst, const cs_entry *src);
/* Moves src's arenas to dst: for entries moved from src into dst. */
void cs_tree_take_arenas(cs_tree *dst, cs_tree *src);
void cs_entry_add_xattr(cs_entry *e, const char *name, const void *value, uint32_t len);
/* Sorts by path; for duplicate paths the later-added entry wins (tar order). */
void cs_tree_sort(cs_tree *t);
/* Binary search in a sorted tree; NULL when absent. */
const cs_entry *cs_tree_find(const cs_tree *t, const char *path);
/* The first index in [lo, hi) of a sorted tree whose path is not below path
 * (bytewise), hi when none is. */
size_t cs_tree_lower_bound(const cs_tree *t, size_t lo, size_t hi, const char *path);

void cs_tree_encode(const cs_tree *t, cs_buf *out);
int cs_tree_decode(const void *p, size_t len, cs_tree **out, cs_error **err);
/* Encodes, hashes and puts (unless present). The tree must be sorted. */
int cs_tree_put(cs_db *db, MDB_txn *txn, const cs_tree *t, cs_digest *out, cs_error **err);
int cs_tree_get(cs_db *db, MDB_txn *txn, const cs_digest *d, cs_tree **out, cs_error **err);

/* Normalizes a tar member name into a clean relative path: strips leading
 * "./" and "/" runs, collapses "//" and "/./", drops a trailing "/".
 * Fails with CS_EINVAL when a component is "..". "" (the root) is allowed. */
int cs_path_clean(const char *in, char **out, cs_error **err);

#endif
