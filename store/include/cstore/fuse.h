/* fuse.h - trees served straight from the store through FUSE: the server
 * (fuse.c) and the build's side of it (fuse_client.c).
 *
 * A server is a process of its own (`cstore` re-executed with an internal
 * verb, see cs_store_set_snapshotter) serving one tree view (treeview.h)
 * read-only at ROOT/mnt/<client pid>-<n>: each stack of layers a RUN needs is
 * a directory <view name> there, the single overlay lower dir of the RUN.
 * Everything served is immutable, so the kernel keeps entries, attributes,
 * symlinks and pages for as long as it likes, and is told never to send
 * OPEN/OPENDIR (no round trip per open).
 * The client talks to its server over a socket (fd 3 of the server): lines
 * "view N HEX1 .. HEXN" (layer digests, bottom first) answered "ok NAME" or
 * "err MESSAGE". When the socket closes (the client closed the store, or
 * died, even by SIGKILL) the server unmounts lazily and exits once the
 * kernel lets go of the mount (an overlay still using it keeps it alive until
 * that overlay is unmounted). A mount whose client is gone is unmounted by
 * the next process that opens the store (cs_fuse_clean_stale), so a killed
 * build leaves nothing that gc or rm could trip on.
 */
#ifndef CSTORE_FUSE_H
#define CSTORE_FUSE_H

#include <stdbool.h>
#include "cstore/store.h"
#include "cstore/strv.h"
#include "cstore/util.h"

/* The verb the server runs as: `EXE __fuse-serve ROOT MOUNTPOINT`, fd 3 the
 * control socket. */
#define CS_FUSE_VERB "__fuse-serve"

/* Serves s's trees at mnt (a directory) until the control socket ctl closes.
 * Mounts, writes "ready" on ctl, runs the request loop on several threads,
 * unmounts. Codes: CS_EIO (/dev/fuse, the mount), CS_EUNSUPPORTED (no FUSE
 * here). Prints nothing; failures of single requests go to the warn hook. */
int cs_fuse_serve(cs_store *s, const char *mnt, int ctl, cs_error **err);

/* How RUN gets its lower dirs: served by a FUSE server, or unpacked
 * snapshots (snapshot.h). AUTO: FUSE when /dev/fuse can be opened and a
 * server executable is set, else unpacked. */
typedef enum cs_snapshotter {
    CS_SNAP_AUTO = 0,
    CS_SNAP_FUSE,
    CS_SNAP_UNPACK,
} cs_snapshotter;

/* "auto", "fuse" or "unpack"; -CS_EINVAL "snapshotter 'x': use fuse, unpack
 * or auto". */
int cs_snapshotter_parse(const char *name, cs_snapshotter *out, cs_error **err);
/* Chooses the snapshotter of s; exe is the program that runs CS_FUSE_VERB
 * (copied; NULL: FUSE cannot be used). Call before the store is shared
 * between threads. */
void cs_store_set_snapshotter(cs_store *s, cs_snapshotter mode, const char *exe);
/* The snapshotter in effect (AUTO resolved; checks /dev/fuse once). */
cs_snapshotter cs_store_snapshotter(cs_store *s);
/* Whether a RUN's upper dir is kept as its layer's snapshot: always but
 * with the snapshotter FUSE chosen explicitly. */
bool cs_store_snapshotter_adopts(cs_store *s);

/* The lower dirs for a container on layers[0..n) (bottom first) appended
 * to lowers: one served view (the server started on first use), or the n
 * unpacked snapshots. AUTO serves a stack whose bottom layer (the base
 * image) was never served before and marks it; from its second use on the
 * base is hot and the stack is unpacked (measured: a fresh server pays
 * ~0.4 s to decompress what `go build` reads, an unpacked warm tree
 * nothing; the first build after a load is 2.5x faster served). n == 0 appends nothing. Codes:
 * those of cs_snapshot_get, or CS_EIO/CS_EUNSUPPORTED when the server could not start (with the
 * snapshotter FUSE) or answer. Thread rules: one caller at a time per store. */
int cs_lowers_get(cs_store *s, const cs_digest *layers, size_t n, cs_strv *lowers, cs_error **err);

/* Stops this store's server (cs_store_close does it): closes the socket and
 * waits for the server to exit. */
void cs_fuse_stop(cs_store *s);
/* Unmounts and removes ROOT/mnt/<pid>-<n> of clients that are gone. One
 * readdir when there is nothing to do; cs_store_open calls it. */
int cs_fuse_clean_stale(cs_store *s, cs_error **err);

#endif
