/* fsentry.h - tree entries from files on disk.
 *
 * One place that maps lstat results to cs_entry fields, for every walk that
 * turns a directory into a layer: ingest_dir.c (a rootfs), snapshot_diff.c
 * (an overlay upper dir), and the builder's COPY. Thread rules: none.
 */
#ifndef CSTORE_FSENTRY_H
#define CSTORE_FSENTRY_H

#include <sys/stat.h>
#include "cstore/tree.h"

/* Sets e's path (a copy of rel), permission bits, owner and mtime from st. */
void cs_fsentry_meta(cs_entry *e, const char *rel, const struct stat *st);
/* Sets e's type from st, and a device's numbers; a symlink's target and a
 * file's content are left to the caller (each walk reads them its own way).
 * Returns 0, or 1 when st has no entry type (a socket, ...). */
int cs_fsentry_kind(cs_entry *e, const struct stat *st);
/* Sets e's type from st: a directory, a regular file, a fifo, a device (with
 * its numbers) or a symlink (its target read from full, not followed).
 * Returns 0, 1 when st has no entry type (a socket, ...: e is left as it
 * was), or -CS_EIO when the symlink cannot be read. */
int cs_fsentry_type(cs_entry *e, const char *full, const struct stat *st, cs_error **err);

#endif
