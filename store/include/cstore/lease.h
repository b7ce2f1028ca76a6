/* lease.h - what a running process relies on, kept from a concurrent gc.
 *
 * gc runs beside builds: it marks from the tags, the build cache entries its
 * policy keeps, and the leases of live processes. A lease is a file
 * ROOT/leases/<pid>-<start time> of lines "i <image hex>" and "t <tree hex>",
 * written (never synced: it only matters while its process lives) by the
 * process and removed when it closes the store; gc ignores and removes those
 * of dead processes (pid gone, or reused: the start time differs).
 *
 * Why this is enough:
 * - A tree a build writes is leased BEFORE the write transaction that stores
 *   it commits. gc sweeps in one write transaction and reads the leases
 *   inside it, so it either runs wholly before that commit (the tree is not
 *   there yet) or sees the lease.
 * - An image a build starts from is resolved and leased under ROOT/lease.lock
 *   held shared; gc holds it exclusively from before it reads the leases
 *   until its transaction has committed. So the image is either leased before
 *   gc looks, or resolved after gc's deletions are visible.
 * Lock order: LMDB's writer lock, then lease.lock (gc); a resolver takes only
 * lease.lock and a read transaction, so there is no cycle.
 * Thread rules: the calls of one store may come from several threads (an
 * internal mutex serializes the file).
 */
#ifndef CSTORE_LEASE_H
#define CSTORE_LEASE_H

#include "cstore/image.h"
#include "cstore/store.h"
#include "cstore/tree.h"

/* Resolves NAME (cs_image_resolve) and reads the image; the image and its
 * layers are leased for as long as s stays open (`rmi` may still remove the
 * image record: the layers stay). *out is the caller's (cs_image_free). Codes: the
 * resolver's (CS_ENOTFOUND, CS_EINVAL), CS_EIO when the lease cannot be
 * written. */
int cs_lease_image(cs_store *s, const char *name, cs_image **out, cs_error **err);
/* Leases a tree about to be stored: call before the transaction that stores
 * it commits. */
int cs_lease_tree(cs_store *s, const cs_digest *tree, cs_error **err);
/* Stores t (committed before it returns), leased; *out is its digest. */
int cs_lease_tree_store(cs_store *s, const cs_tree *t, cs_digest *out, cs_error **err);
/* Drops this process's lease (also done by cs_store_close). */
void cs_lease_release(cs_store *s);

#endif
