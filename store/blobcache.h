/* blobcache.h - layer blobs kept on disk (private to libcstore).
 *
 * An export generates each layer blob from its tree and compresses it; the
 * digests are cached in layer_blobs (export_blob.c) but the bytes were not,
 * so every export of an image paid its compression again (gzip: 90% of a
 * hello:multi export). The blob cache keeps the bytes of blobs up to
 * CS_BLOBCACHE_MAX in ROOT/blobcache/<hex of blob digest>, written by an
 * export that generated them (no fsync: a cache; every read is checked
 * against the digest by its reader) and read by later exports. gc removes
 * the files whose digest no kept layer_blobs record names, and the temp
 * files (.tmp-<pid>-XXXXXX) of dead processes.
 * Thread rules: any thread; files are made under temp names and renamed.
 */
#ifndef CSTORE_BLOBCACHE_H
#define CSTORE_BLOBCACHE_H

#include <stdint.h>
#include "cstore/content.h"
#include "cstore/store.h"
#include "digestset.h"

/* Larger blobs are not kept: their compression is one export's cost among
 * others (their I/O), while the disk they take would be the store's size
 * again. */
#define CS_BLOBCACHE_MAX (32u << 20)

/* The cached blob d opened for reading (>= 0), or -1 when there is none of
 * size bytes (a file of another size is removed). */
int cs_blobcache_open(cs_store *s, const cs_digest *d, uint64_t size);
/* The cached blob d of size bytes into out (1 MiB pieces), its sha256
 * checked before the first byte goes out: 1 when it was written, 0 when the
 * cache has no right copy (a wrong one is dropped; nothing was written),
 * < 0 when out failed. */
int cs_blobcache_stream(cs_store *s, const cs_digest *d, uint64_t size, cs_sink_fn out, void *octx,
                        cs_error **err);
/* Removes the cached blob d (its bytes were found wrong); failures are
 * warnings. */
void cs_blobcache_drop(cs_store *s, const cs_digest *d);
/* A temp file in the cache dir for a blob being generated: *fd (read and
 * write) and *path (malloc'd). */
int cs_blobcache_tmp(cs_store *s, int *fd, char **path, cs_error **err);
/* Keeps the temp file path (a complete blob d of size bytes) as the cached
 * blob d, or removes it when size is over CS_BLOBCACHE_MAX. Failures are
 * warnings. */
void cs_blobcache_keep(cs_store *s, const char *path, const cs_digest *d, uint64_t size);
/* Copies the complete blob d (size bytes from the start of fd) into the
 * cache, unless it is over CS_BLOBCACHE_MAX. Silent when it cannot (a full
 * store file system): a cache. */
void cs_blobcache_put_fd(cs_store *s, int fd, const cs_digest *d, uint64_t size);
/* gc: removes the cached blobs whose digest is not in keep, then the least
 * recently used (file mtime: set when made, renewed hourly by use) until the
 * rest take at most budget bytes, and dead processes' temp files; counts
 * them and their bytes. */
int cs_blobcache_prune(cs_store *s, const cs_digestset *keep, uint64_t budget, uint64_t *removed,
                       uint64_t *bytes, cs_error **err);

#endif
