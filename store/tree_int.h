/* tree_int.h - a tree record read in place, without decoding it whole
 * (merged_view.c): the offsets of its entries, an entry's path where it
 * lies, one entry decoded. Inside store/ only. */
#ifndef CSTORE_TREE_INT_H
#define CSTORE_TREE_INT_H

#include "cstore/tree.h"

/* Checks the framing of the encoding p[0..len) and gives the offset of each
 * of its *n entries (*off malloc'd). CS_ECORRUPT when malformed. */
int cs_tree_index(const void *p, size_t len, uint32_t **off, size_t *n, cs_error **err);
/* The path of the entry at off (an offset cs_tree_index gave): its bytes in
 * the record (not NUL-terminated) and their count. */
const char *cs_tree_index_path(const void *p, uint32_t off, uint32_t *plen);
/* The entry at off decoded into e, its strings owned (cs_entry_release). */
int cs_tree_entry_at(const void *p, size_t len, uint32_t off, cs_entry *e, cs_error **err);

#endif
