/* gc.h - garbage collection, disk usage and consistency checks. */
#ifndef CSTORE_GC_H
#define CSTORE_GC_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/store.h"

typedef struct cs_gc_stats {
    uint64_t images, trees, contents, chunks, layer_blobs; /* records freed */
    uint64_t chunk_bytes;                                  /* stored bytes of the freed chunks */
    uint64_t file_before, file_after;                      /* data.mdb bytes on disk */
    uint64_t tarsplits;                                    /* tarsplit records freed */
    uint64_t cache, statcache;          /* build cache and context stat cache records dropped */
    uint64_t snapshots, snapshot_bytes; /* unpacked snapshots removed */
    uint64_t blob_repos;                /* blob_repos records of freed trees */
    uint64_t copy_keys;                 /* copy_keys records of freed trees */
    uint64_t remote_chunks;             /* stale remote_chunks records (cs_rcache_gc) */
    uint64_t remote_trees;              /* stale remote_trees records (cs_rcache_gc_trees) */
} cs_gc_stats;

/* Mark from the tags, the build cache entries the policy keeps (see
 * cs_gc_opts) and the leases of live processes (lease.h) to the chunks, and
 * sweep the rest, in one write transaction: gc runs beside loads and builds
 * (open the store shared). dry_run: count only. compact: then copy with
 * MDB_CP_COMPACT and swap, which needs the store opened CS_OPEN_EXCLUSIVE. */
int cs_gc(cs_store *s, bool dry_run, bool compact, cs_gc_stats *out, cs_error **err);

/* Build cache policy: entries are kept, most recently used first, while
 * they are younger than keep_duration seconds and the file bytes of their
 * layers add up to at most keep_storage; the rest are dropped (and their
 * layers freed unless something else holds them). Snapshots (unpacked trees,
 * cstore/snapshot.h) share that budget, in the same least-recently-used
 * order, counted as their files' 4 KiB blocks: those that do not fit are
 * removed from disk (their trees stay), except those whose tree a live
 * process has leased (it may be running on them). */
#define CS_GC_KEEP_STORAGE  (10ull * 1000 * 1000 * 1000) /* 10 GB */
#define CS_GC_KEEP_DURATION (7 * 24 * 3600)              /* a week */
typedef struct cs_gc_opts {
    bool dry_run, compact;
    uint64_t keep_storage;  /* bytes */
    uint64_t keep_duration; /* seconds */
} cs_gc_opts;
int cs_gc_ex(cs_store *s, const cs_gc_opts *o, cs_gc_stats *out, cs_error **err);

typedef struct cs_du_stats {
    uint64_t images, tags, trees, contents, chunks;
    uint64_t tarsplits;       /* tarsplit records (original tar framing of loaded layers) */
    uint64_t logical_bytes;   /* sum over images of their layers' file bytes */
    uint64_t unique_bytes;    /* raw bytes of all chunks (each stored once) */
    uint64_t stored_bytes;    /* bytes of chunk values (after zstd) */
    uint64_t disk_bytes;      /* the store root's files on disk (allocated) */
    uint64_t snapshots;       /* snapshot records (unpacked trees, a cache) */
    uint64_t snapshot_bytes;  /* ROOT/snapshots on disk (allocated; part of disk_bytes) */
    uint64_t blobcache_bytes; /* ROOT/blobcache: exported layer blobs kept (part of disk_bytes) */
    double dedup_ratio;       /* logical / unique */
} cs_du_stats;
int cs_du(cs_store *s, cs_du_stats *out, cs_error **err);

/* Re-hashes every chunk and content, checks every reference. report is
 * called once per problem found, with a one-line description. Returns the
 * number of problems (0 = clean) or <0 on error. */
typedef void (*cs_fsck_report_fn)(void *ctx, const char *problem);
int cs_fsck(cs_store *s, cs_fsck_report_fn report, void *ctx, cs_error **err);

#endif
