/* lease_int.h - gc's side of the leases (see cstore/lease.h). Internal to
 * store/. */
#ifndef CSTORE_LEASE_INT_H
#define CSTORE_LEASE_INT_H

#include "cstore/lease.h"
#include "digestset.h"

/* Takes ROOT/lease.lock exclusively; call inside gc's write transaction and
 * release with cs_lease_gc_unlock once it has committed or aborted. */
int cs_lease_gc_lock(cs_store *s, int *fd, cs_error **err);
void cs_lease_gc_unlock(int fd);
/* Adds the images and trees leased by live processes to the sets and
 * removes the lease files of dead ones (best effort: a file that cannot be
 * removed is left for the next gc). Returns the number of live leases. */
int cs_lease_roots(cs_store *s, cs_digestset *images, cs_digestset *trees, cs_error **err);
/* Removes the lease files of dead processes (killed: a clean exit removes
 * its own); store open calls it. */
int cs_lease_clean_stale(cs_store *s, cs_error **err);

/* A name "<pid>-<start time>" (a lease file's, a FUSE client's mount dir)
 * names a live process: pid runs and started at that time. */
bool cs_pid_name_live(const char *name);

/* The store's lease slot (owned by store.c, filled by lease.c). */
struct cs_lease **cs_store_lease_slot(cs_store *s);

#endif
