/* treeview_int.h - what treeview.c (views, inodes, directories) and
 * treeview_read.c (file bytes: per-thread transactions, the chunk cache)
 * share. Private to libcstore. */
#ifndef CSTORE_TREEVIEW_INT_H
#define CSTORE_TREEVIEW_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include "cstore/tree.h"
#include "cstore/treeview.h"

#define TV_MAX_VIEWS 4096

/* One view: a merged tree and its directory index. */
typedef struct tv_view {
    char name[CS_DIGEST_HEX];
    cs_tree *t;
    uint64_t base;     /* inode of entry i: base + i */
    uint32_t *kid_off; /* children of entry i: kids[kid_off[i] .. kid_off[i + 1]) */
    uint32_t *kids;    /* entry indices, in byte order of their names */
    uint32_t *parent;  /* parent entry (the root's is itself) */
    uint32_t *real;    /* the entry presented: a hardlink's target, else i */
    uint32_t *nlink;
} tv_view;

/* A decompressed chunk kept for the next reads. */
typedef struct tv_slot {
    cs_digest d;
    uint8_t *data;
    uint32_t len;
    uint64_t used; /* tick of the last use; 0: empty */
} tv_slot;

struct cs_treeview {
    cs_store *s;
    cs_db *db;
    pthread_mutex_t add_lock; /* one adder at a time */
    tv_view *views[TV_MAX_VIEWS];
    _Atomic size_t nviews; /* published after the view is complete */
    uint64_t next_ino;
    pthread_key_t txn_key; /* the thread's read transaction */
    pthread_mutex_t cache_lock;
    tv_slot *slots;
    size_t nslots;
    uint64_t tick;
    _Atomic uint64_t reads, hits, misses;
};

/* The view holding ino and the entry index in it; NULL for the root and
 * unknown inodes. */
tv_view *tv_find(cs_treeview *tv, uint64_t ino, uint32_t *idx);

/* treeview_read.c: the chunk cache and the per-thread transactions. */
void tv_read_init(cs_treeview *tv, size_t cache_chunks);
void tv_read_release(cs_treeview *tv);

#endif
