/* fuse_int.h - the store's hooks into the FUSE client (fuse_client.c).
 * Private to libcstore. */
#ifndef CSTORE_FUSE_INT_H
#define CSTORE_FUSE_INT_H

#include "cstore/fuse.h"

/* The store's FUSE client slot (owned by store.c, filled by fuse_client.c;
 * NULL until a snapshotter is set or a server started). */
struct cs_fuse_client **cs_store_fuse_slot(cs_store *s);
/* Frees a client (stopped first with cs_fuse_stop). NULL is fine. */
void cs_fuse_client_free(struct cs_fuse_client *c);

#endif
