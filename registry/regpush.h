/* regpush.h - `cstore push`: an image of the store into a registry.
 *
 * The blobs (store's cstore/push.h: layers as export makes them, config)
 * go up several at once (opts->jobs, default 4), each: HEAD, and nothing
 * more when the registry has it; else a cross-repository mount when the
 * store knows the blob in another repository of the same registry
 * (cstore/blobrepo.h); else an upload (registry.h: monolithic or chunked),
 * streamed from the generator: no temp file. Then the manifest, under the
 * destination's tag. At the end the blobs found or put in the repository
 * are recorded in blob_repos (one small write transaction), so the store
 * stays as it was when the push is killed, but for that record. The
 * config is recorded and mounted like a layer.
 *
 * Thread rules: cs_reg_push runs in the caller's thread and its own worker
 * threads; the progress callback is called from those, one call at a time.
 */
#ifndef CSREG_PUSH_H
#define CSREG_PUSH_H

#include <stdint.h>
#include "cstore/push.h"
#include "registry.h"

typedef enum cs_push_ev_kind {
    CS_PUSH_EV_EXISTS,   /* the registry has the blob: nothing sent */
    CS_PUSH_EV_MOUNTED,  /* mounted from repository `from` */
    CS_PUSH_EV_START,    /* upload started (size) */
    CS_PUSH_EV_BYTES,    /* upload progress (done of size), at most every 256 KiB */
    CS_PUSH_EV_DONE,     /* upload finished */
    CS_PUSH_EV_MANIFEST, /* the manifest is in: digest */
} cs_push_ev_kind;

typedef struct cs_push_event {
    cs_push_ev_kind kind;
    const char *digest; /* "sha256:<hex>" of the blob (or the manifest) */
    const char *what;   /* "layer", "config" or "manifest" */
    uint64_t size;
    uint64_t done;    /* BYTES, DONE: bytes sent so far */
    const char *from; /* MOUNTED: the source repository */
} cs_push_event;

typedef void (*cs_push_progress_fn)(void *ctx, const cs_push_event *ev);

typedef struct cs_reg_push_opts {
    cs_reg_opts reg;              /* TLS, cert dir, cancel */
    cs_push_format format;        /* CS_PUSH_OCI (default) or CS_PUSH_DOCKER */
    cs_compression compression;   /* default CS_COMP_GZIP (callers set it) */
    int jobs;                     /* blobs at once; 0: 4 */
    cs_push_progress_fn progress; /* may be NULL */
    void *progress_ctx;
} cs_reg_push_opts;

typedef struct cs_reg_push_result {
    char digest[72];                     /* the manifest's "sha256:<hex>" */
    uint64_t bytes_sent;                 /* blob bytes uploaded */
    unsigned uploaded, mounted, existed; /* blobs, config included */
} cs_reg_push_result;

/* Pushes image NAME of s (a reference or an id) to dest, a reference with
 * a tag ("127.0.0.1:5000/x/y:z"; no tag: "latest"; a digest: refused).
 * Codes: cs_push_image_open/prepare's (CS_ENOTFOUND "image 'NAME' not found",
 * CS_EINVAL), cs_reg_ref_parse's, the registry's (registry.h), CS_ECORRUPT
 * when the registry names another manifest digest than ours. */
int cs_reg_push(cs_store *s, const char *name, const char *dest, const cs_reg_push_opts *opts,
                cs_reg_push_result *out, cs_error **err);

#endif
