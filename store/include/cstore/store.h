/* store.h - opening a store root: the directory, its lock and its LMDB env.
 *
 * Every process that uses a store holds a shared flock on ROOT/lock for as
 * long as the store is open; only `gc --compact` (which swaps the LMDB file)
 * holds it exclusively, so it waits for running loads and builds to finish,
 * and those wait for it, rather than fail. Plain gc runs beside them (its
 * roots include the leases of running processes: lease.h).
 */
#ifndef CSTORE_STORE_H
#define CSTORE_STORE_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>
#include "cstore/cancel.h"
#include "cstore/db.h"
#include "cstore/error.h"

typedef struct cs_store cs_store;

enum {
    CS_OPEN_EXCLUSIVE = 1 << 0, /* take the root lock exclusively (gc --compact) */
};

/* Returns the default root: $CSTORE_ROOT, else ${XDG_CACHE_HOME:-~/.cache}/cstore.
 * Caller frees. */
char *cs_store_default_root(void);
/* Opens (creating it) the store at root. Also removes what killed processes
 * left half-made in ROOT/snapshots (cs_snapshot_clean_stale) and the FUSE
 * mounts of dead clients in ROOT/mnt (cs_fuse_clean_stale); a failure of
 * that is only a warning. cs_store_close stops this process's FUSE server. */
int cs_store_open(const char *root, unsigned flags, cs_store **out, cs_error **err);
void cs_store_close(cs_store *s);
cs_db *cs_store_db(cs_store *s);
const char *cs_store_root(cs_store *s);
/* Closes and reopens the LMDB env (after gc --compact swapped the file).
 * Needs the exclusive lock. */
int cs_store_reopen_db(cs_store *s, cs_error **err);

/* ---- how the library reaches its caller: it never prints ----
 * Warnings (a secondary failure after the real one, a cleanup that did not
 * finish) go to the warn hook, one line each without "cstore: " or a final
 * newline; with no hook they are dropped. Thread rules: the hook may be
 * called from any thread that uses the store; set hooks before sharing s. */
typedef void (*cs_warn_fn)(void *ctx, const char *msg);
void cs_store_set_warn(cs_store *s, cs_warn_fn fn, void *ctx);
void cs_store_warn(cs_store *s, const char *fmt, ...) CS_PRINTF(2, 3);
/* Reports *tmp (a secondary failure kept in a local error) as a warning,
 * prefixed "what: ", and clears it. Nothing happens when *tmp is NULL. */
void cs_store_warn_error(cs_store *s, const char *what, cs_error **tmp);
/* The cancel flag long operations check (borrowed; NULL: never cancelled). */
void cs_store_set_cancel(cs_store *s, cs_cancel *c);
cs_cancel *cs_store_cancel(cs_store *s);

/* True when process pid, which made a temp file or dir at `made` (its mtime),
 * is gone: not running, or running but started after made (the pid was
 * reused). False for this process and when unsure. For names like
 * <x>.tmp-<pid>: what is half-made by a dead process can be removed. */
bool cs_store_pid_gone(pid_t pid, time_t made);

#endif
