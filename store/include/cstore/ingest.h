/* ingest.h - turning tar streams and directories into chunks, contents and
 * trees, using every core.
 *
 * A cs_ingest owns one LMDB write transaction for its whole life: everything
 * it stores becomes visible atomically at cs_ingest_commit, and nothing at
 * all when it is freed uncommitted (a failed or killed load leaves the store
 * as it was). Worker threads hash and compress chunks outside the
 * transaction; the calling thread parses, chunks and puts.
 * Thread rules: one cs_ingest is driven by the thread that began it.
 */
#ifndef CSTORE_INGEST_H
#define CSTORE_INGEST_H

#include <stdint.h>
#include <sys/types.h>
#include "cstore/store.h"
#include "cstore/tree.h"
#include "cstore/util.h"

typedef enum cs_compression {
    CS_COMP_NONE = 0,
    CS_COMP_GZIP = 1,
    CS_COMP_ZSTD = 2,
} cs_compression;

/* A byte source: returns bytes read (0 at end) or -1 with errno set. */
typedef ssize_t (*cs_read_fn)(void *ctx, void *buf, size_t len);
/* A cs_read_fn over the current member of a libarchive reader (ctx: a
 * struct archive *): a failed read is -1 with errno EIO. */
ssize_t cs_archive_read(void *ctx, void *buf, size_t len);

typedef struct cs_layer_info {
    cs_digest tree;      /* tree digest */
    cs_digest blob;      /* sha256 of the bytes read (as compressed) */
    cs_digest diff_id;   /* sha256 of the uncompressed tar stream */
    uint64_t blob_size;  /* bytes read */
    uint64_t tar_size;   /* uncompressed tar bytes */
    cs_compression comp; /* detected from the magic bytes */
} cs_layer_info;

typedef struct cs_ingest_stats {
    uint64_t files, bytes;          /* regular files and their bytes seen */
    uint64_t new_chunks, new_bytes; /* chunks written and their stored bytes */
} cs_ingest_stats;

typedef struct cs_ingest cs_ingest;

int cs_ingest_begin(cs_store *s, cs_ingest **out, cs_error **err);
/* Aborts the transaction unless committed; joins the workers. */
void cs_ingest_free(cs_ingest *ing);
/* An ingest's buffers (one mapping, tens of MiB of address space, its touched
 * pages) are kept for the process's next ingest once it is freed; this
 * unmaps them (a process done ingesting). Thread-safe. */
void cs_ingest_drop_spare(void);
CS_DEFINE_FREEP(cs_ingest, cs_ingest_free)
int cs_ingest_commit(cs_ingest *ing, cs_error **err);
/* Drops everything ing stored since it began or was last reset, as freeing
 * it uncommitted would, and makes it usable again, after a failure too (a
 * failed ingest otherwise refuses all further work): waits for the chunks in
 * flight and discards them with every pending file, aborts the write
 * transaction and begins a new one. The worker threads and buffers are kept,
 * so this is much cheaper than cs_ingest_free + cs_ingest_begin. Stats
 * restart at zero; cs_ingest_txn returns the new transaction (the old
 * pointer, and any record read through it, is dead). Returns 0, CS_EINVAL
 * after cs_ingest_commit, or cs_db_begin's code (then ing can only be freed,
 * or reset again). */
int cs_ingest_reset(cs_ingest *ing, cs_error **err);
/* The write transaction, to put image and tag records in the same commit. */
MDB_txn *cs_ingest_txn(cs_ingest *ing);
/* The store ing writes into (borrowed). */
cs_store *cs_ingest_store(cs_ingest *ing);
const cs_ingest_stats *cs_ingest_stats_get(const cs_ingest *ing);

/* Ingests one layer tar (gzip, zstd or plain, detected) read from rd.
 * name is used in errors ("NAME: ..."). Hostile members (".." parts, writes
 * through a symlink of the layer, hardlinks leaving the layer) fail with
 * CS_EINVAL. The tree is put in the transaction. */
int cs_ingest_tar(cs_ingest *ing, const char *name, cs_read_fn rd, void *rctx, cs_layer_info *out,
                  cs_error **err);
/* The same for a layer in memory (a mapped file): the n bytes at p must
 * stay valid and unchanged until the call returns (nothing points into them
 * after, failed or not). A plain tar is chunked and hashed in place, nothing
 * copied; its diff_id is hashed by a thread of its own meanwhile. */
int cs_ingest_tar_mem(cs_ingest *ing, const char *name, const void *p, size_t n, cs_layer_info *out,
                      cs_error **err);
/* Ingests a directory tree as one layer (owners, modes, times, xattrs kept). */
int cs_ingest_dir(cs_ingest *ing, const char *dir, cs_digest *tree, cs_error **err);
/* Ingests one file's bytes from fd; *content is its digest (size 0: zero digest). */
int cs_ingest_fd(cs_ingest *ing, int fd, cs_digest *content, uint64_t *size, cs_error **err);

#endif
