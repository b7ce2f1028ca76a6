/* rootfs.h - an image's final root filesystem out of the store: the merged
 * tree of its layers (cstore/merged.h: later layers win, whiteouts applied
 * and dropped), as `buildx build -o type=tar|local` writes it.
 *
 * Both take NAME as cs_image_resolve does (a reference, "sha256:<hex>", an
 * id prefix). Codes: CS_ENOTFOUND (no such image, missing content),
 * CS_ECORRUPT, CS_EINVAL, CS_EIO. Thread rules: those of cs_db; the caller
 * holds no transaction.
 */
#ifndef CSTORE_ROOTFS_H
#define CSTORE_ROOTFS_H

#include "cstore/store.h"

/* Writes the root filesystem of image NAME to fd as one deterministic tar
 * stream (cs_tree_write_tar: the same image always gives the same bytes).
 * The whole stream is written in one read transaction; fd is not closed. */
int cs_image_write_rootfs_tar(cs_store *s, const char *name, int fd, cs_error **err);

/* Writes the root filesystem of image NAME into directory dir (made, with
 * missing parents, when absent; an existing one must be empty: CS_EEXIST
 * otherwise, so no file of the host is replaced). Entries are made as
 * cs_snapshot_get's unpack makes them (owners, modes, xattrs, times,
 * hardlinks; nothing followed out of dir) and synced. On failure what was
 * written is left for the caller to inspect or remove. */
int cs_image_unpack(cs_store *s, const char *name, const char *dir, cs_error **err);

#endif
