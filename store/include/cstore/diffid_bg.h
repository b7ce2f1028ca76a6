/* diffid_bg.h - new layers' diff ids worked out in the background, so a
 * build's commit finds them done (commit.h: cs_layer_diff_ids_pending_bg).
 *
 * One thread per build, started by its first cache miss: it loads
 * libarchive first (cs_archive_load: the dlopen is then off the commit's
 * path), then takes the trees queued with cs_diffid_bg_add in order, each in
 * a read transaction of its own, writing nothing: the results stay in memory
 * until the commit takes them (and records them with the image). A queued
 * tree the commit wants before the thread got to it is computed by the
 * commit itself; one being computed is waited for; one whose tree a gc
 * swept since is computed (and found missing) by the commit. An error of the
 * background reaches the commit's error chain when it takes that tree.
 * A tree not local (an imported cache's part not fetched) is left to the
 * commit, which fetches its layer_blobs record first.
 *
 * Thread rules: cs_diffid_bg_add from any thread; cs_diffid_bg_free once,
 * after every other call: it stops a running tar write at its next block
 * (so a cancelled build ends promptly) and joins the thread.
 */
#ifndef CSTORE_DIFFID_BG_H
#define CSTORE_DIFFID_BG_H

#include "cstore/store.h"
#include "cstore/tree.h"

typedef struct cs_diffid_bg cs_diffid_bg;

/* Starts the thread (it loads libarchive, then waits for trees). */
int cs_diffid_bg_start(cs_store *s, cs_diffid_bg **out, cs_error **err);
/* Queues tree's diff id unless it is queued already. */
void cs_diffid_bg_add(cs_diffid_bg *bg, const cs_digest *tree);
/* Waits until the thread is done with every tree queued so far. */
void cs_diffid_bg_settle(cs_diffid_bg *bg);
/* Stops and joins the thread, drops the results (NULL is fine). */
void cs_diffid_bg_free(cs_diffid_bg *bg);

#endif
