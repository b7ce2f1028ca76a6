/* statcache.h - the stat cache: which content a file of a build context had
 * when its path and stat were last seen, so a rebuild with nothing changed
 * never reads a file's bytes. This module owns the statcache table's
 * records; the builder (COPY/ADD) and gc use them only through here.
 *
 * Record, one per path, overwritten when the file changes:
 *   key   = the absolute path when at most CS_STATCACHE_MAXPATH bytes, else
 *           0x00 | sha256(path) (LMDB keys are at most 511 bytes)
 *   value = dev u64 | ino u64 | size u64 | mtime_ns u64 | ctime_ns u64 |
 *           mode u32 | content digest[32] (all zero for an empty file)
 *           = CS_STATCACHE_VLEN bytes, integers big-endian.
 * A record answers only when all six stat fields match; one of another
 * length is garbled and never answers. gc keeps a record as long as it keeps
 * the content the record names (cs_statcache_record_content), so records of
 * empty files go at the next gc; it sweeps them before contents, so the
 * content of a record is always stored (a lookup trusts it; fsck checks).
 *
 * Summary records (one per COPY source selection: a context, its ignore
 * patterns and one COPY request), in the same table so gc and fsck treat
 * them as the memo they are:
 *   key   = 0x01 | selection digest (33 bytes; a path key starts with '/',
 *           a hashed one with 0x00)
 *   value = state digest[32] | result digest[32] (CS_STATCACHE_SUMLEN)
 * The state digest covers every path the selection's walk met and its lstat
 * (dev, ino, size, mtime, ctime, mode, nlink, rdev); the result is what the
 * caller computed from them (COPY's sources digest). A record is written
 * only when every file of the walk was one the stat cache trusts, so a
 * matching state answers the result as 10,000 matching stat cache records
 * would, with one lookup. Its length is not CS_STATCACHE_VLEN: gc drops
 * every summary at its next run (nothing needs one; the next build writes it
 * again), fsck skips them.
 *
 * Listing records (one per directory of a context a walk listed):
 *   key   = 0x02 | the directory's absolute path (at most
 *           CS_STATCACHE_MAXPATH bytes), else 0x02 0x00 | sha256(path)
 *   value = dev u64 | ino u64 | size u64 | mtime_ns u64 | ctime_ns u64 |
 *           mode u32 (its lstat) | n u32 | n names, each NUL-terminated,
 *           in the order the caller keeps them | one 0 byte when the length
 *           would otherwise be CS_STATCACHE_VLEN or CS_STATCACHE_SUMLEN.
 * Adding, removing or renaming an entry changes a directory's mtime and
 * ctime (and no touch puts a ctime back), so a directory whose lstat
 * matches still has the names it had: a rebuild reads its names from here
 * instead of listing it (each listing of a large ext4 directory builds and
 * frees a hash tree in the kernel: a fifth of a 10,000-file no-op). Like a
 * file record, one is written only for a directory not changed within the
 * timestamp granularity. gc drops them with the summaries (never the
 * length of a file record), fsck skips them.
 *
 * Thread rules: a cs_statcache belongs to one thread (the one that drives
 * the ingest it reads through, when given one).
 */
#ifndef CSTORE_STATCACHE_H
#define CSTORE_STATCACHE_H

#include <stdbool.h>
#include <sys/stat.h>
#include "cstore/ingest.h"
#include "cstore/store.h"
#include "cstore/util.h"

#define CS_STATCACHE_MAXPATH 480
#define CS_STATCACHE_VLEN    (5 * 8 + 4 + 32)
#define CS_STATCACHE_SUMLEN  64

/* A read view of the stat cache (and of which contents are stored). */
typedef struct cs_statcache cs_statcache;

/* Opens a view: lookups run in ing's write transaction when ing is given
 * (they then see what ing stored so far; the view borrows ing and must be
 * closed before ing is committed or freed), else in a read transaction of
 * the view's own (the thread must then not be inside a write transaction of
 * s). Returns 0, or the code of the failed begin. */
int cs_statcache_open(cs_store *s, cs_ingest *ing, cs_statcache **out, cs_error **err);
/* Ends the view's own read transaction. NULL is fine. */
void cs_statcache_close(cs_statcache *sc);
CS_DEFINE_FREEP(cs_statcache, cs_statcache_close)

/* Looks path (absolute) up with its lstat st. Returns 1 on a hit: the
 * record matches st (its content is stored: see above; empty file: none);
 * *content gets the digest (all zero for an empty file). Returns 0 on a
 * miss (no record, a changed file, a garbled record), or a
 * negative code with *err set when the table cannot be read. */
int cs_statcache_get(cs_statcache *sc, const char *path, const struct stat *st, cs_digest *content,
                     cs_error **err);

/* Records that path with stat st holds content (zero digest for an empty
 * file), in ing's transaction (ing an ingest of s): visible to others once ing commits. The
 * caller decides whether st is safe to trust (a file modified within the
 * timestamp granularity may change again unseen). 0 or a negative code
 * (CS_EFULL when the map is full). */
int cs_statcache_put(cs_store *s, cs_ingest *ing, const char *path, const struct stat *st,
                     const cs_digest *content, cs_error **err);

/* The summary record of selection sel: 1 when its state digest is state
 * (*result gets its result), 0 when there is none or it has another state
 * (or is garbled), <0 with *err when the table cannot be read. */
int cs_statcache_summary_get(cs_statcache *sc, const cs_digest *sel, const cs_digest *state,
                             cs_digest *result, cs_error **err);
/* Writes (or overwrites) sel's summary record in ing's transaction. The
 * caller vouches that every file state covers is one the stat cache
 * trusts (see cs_statcache_put). 0 or a negative code (CS_EFULL). */
int cs_statcache_summary_put(cs_store *s, cs_ingest *ing, const cs_digest *sel,
                             const cs_digest *state, const cs_digest *result, cs_error **err);

/* The listing record of the directory path (absolute) with lstat st: 1
 * when it matches st, *names then points at its n names (NUL-terminated
 * one after the other, len bytes in all) inside the view's transaction:
 * valid until the next write in it or its end (copy them). 0 when there
 * is none, it has another stat or is garbled; <0 with *err when the table
 * cannot be read. */
int cs_statcache_dir_get(cs_statcache *sc, const char *path, const struct stat *st,
                         const char **names, size_t *len, size_t *n, cs_error **err);
/* Writes (or overwrites) the listing record of path: its n names, NUL-
 * terminated one after the other in names[0..len), as listed after st was
 * taken. The caller vouches that st is not within the timestamp
 * granularity of now. 0 or a negative code (CS_EFULL). */
int cs_statcache_dir_put(cs_store *s, cs_ingest *ing, const char *path, const struct stat *st,
                         const char *names, size_t len, size_t n, cs_error **err);

/* 1 when content d is stored as the view sees it, 0 when not, <0 on error.
 * For sources that are no context files (heredocs) but are ingested only
 * when missing. */
int cs_statcache_has_content(cs_statcache *sc, const cs_digest *d, cs_error **err);

/* For gc: the content digest a raw record value names; false when the
 * value is no well-formed record (gc then drops it). */
bool cs_statcache_record_content(const void *v, size_t len, cs_digest *content);

#endif
