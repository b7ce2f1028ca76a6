/* pull.h - `cstore pull`: an image from a registry into the store.
 *
 * The manifest is fetched (an index or list resolved to one platform), then
 * the config; layers the store has (cstore/layerindex.h) are not
 * downloaded. Up to opts->jobs blobs download at once, each in its own
 * thread into a bounded in-memory pipe (CS_PULL_PIPE bytes: the download
 * blocks while its pipe is full), while the calling thread ingests the
 * layers in order from their pipes (cstore/pull.h): no layer touches the
 * disk before it is chunked, its sha256 is checked as it streams, and
 * nothing is stored unless every layer arrived whole. The image gets the id
 * and trees `cstore load` of the same image gives.
 * Thread rules: one call per store at a time; progress runs on the download
 * threads and the caller's, serialized (never two at once).
 */
#ifndef CSREG_PULL_H
#define CSREG_PULL_H

#include "cstore/load.h"
#include "cstore/store.h"
#include "registry.h"

#define CS_PULL_PIPE (4u << 20)

typedef enum cs_pull_ev_kind {
    CS_PULL_EV_RESOLVED, /* manifest chosen: digest (the image manifest's), nlayers */
    CS_PULL_EV_KNOWN,    /* layer in the store: not downloaded */
    CS_PULL_EV_START,    /* download of layer begins; total its size (-1 unknown) */
    CS_PULL_EV_BYTES,    /* bytes downloaded of layer so far */
    CS_PULL_EV_DONE,     /* download of layer complete: bytes, seconds */
} cs_pull_ev_kind;

typedef struct cs_pull_event {
    cs_pull_ev_kind kind;
    size_t layer, nlayers;
    const char *digest; /* the layer's blob (or the manifest's for RESOLVED) */
    uint64_t bytes;
    int64_t total;
    double seconds;
} cs_pull_event;

typedef void (*cs_pull_progress_fn)(void *ctx, const cs_pull_event *ev);

typedef struct cs_pull_opts {
    const char *platform; /* "OS/ARCH[/VARIANT]", NULL: the host's */
    cs_reg_opts reg;      /* --tls-verify=false, --cert-dir */
    unsigned jobs;        /* parallel blob downloads, 0: 4 */
    cs_pull_progress_fn progress;
    void *progress_ctx;
} cs_pull_opts;

typedef struct cs_pull_result {
    cs_digest id;             /* image id (config digest) */
    char *tag;                /* normalized tag set, NULL for a digest reference */
    char manifest_digest[72]; /* the image manifest's */
    uint64_t downloaded;      /* blob bytes downloaded */
    size_t layers, known;     /* layers, and those the store had */
} cs_pull_result;
void cs_pull_result_release(cs_pull_result *r);

/* Pulls ref (docker's forms: "golang", "127.0.0.1:5000/x/y:z",
 * "name@sha256:..."). Codes: cs_reg_ref_parse's, the registry's
 * (registry.h: CS_ENOTFOUND "manifest unknown", ...), CS_EPARSE for a
 * manifest that is not JSON or of an unknown type, CS_ENOTFOUND "no image for
 * platform ..." (with the platforms the index has), CS_ECORRUPT for a blob
 * whose bytes do not match its digest, the ingest's. Nothing is stored on
 * failure. */
int cs_pull(cs_store *s, const char *ref, const cs_pull_opts *opts, cs_pull_result *out,
            cs_error **err);

#endif
