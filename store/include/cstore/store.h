/* store.h - opening a store root: the directory, its lock and its LMDB env.
 *
 * Every process that uses a store holds a shared flock on ROOT/lock for as
 * long as the store is open; `gc` (which sweeps content no committed record
 * references) and `gc --compact` (which swaps the LMDB file) hold it
 * exclusively, so they wait for running loads and builds to finish, and those
 * wait for them, rather than fail.
 */
#ifndef CSTORE_STORE_H
#define CSTORE_STORE_H

#include <stdbool.h>
#include "cstore/db.h"
#include "cstore/error.h"

typedef struct cs_store cs_store;

enum {
    CS_OPEN_EXCLUSIVE = 1 << 0, /* take the root lock exclusively (gc) */
};

/* Returns the default root: $CSTORE_ROOT, else ${XDG_CACHE_HOME:-~/.cache}/cstore.
 * Caller frees. */
char *cs_store_default_root(void);
int cs_store_open(const char *root, unsigned flags, cs_store **out, cs_error **err);
void cs_store_close(cs_store *s);
cs_db *cs_store_db(cs_store *s);
const char *cs_store_root(cs_store *s);
/* Closes and reopens the LMDB env (after gc --compact swapped the file).
 * Needs the exclusive lock. */
int cs_store_reopen_db(cs_store *s, cs_error **err);

#endif
