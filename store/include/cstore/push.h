/* push.h - an image as a registry push sends it: its layer blobs, config
 * and manifest, the same bytes `cstore export` writes for that format.
 *
 * Layer blobs are generated deterministically from trees (or replayed from
 * tarsplit records), as export does, and their digests come from the
 * layer_blobs cache. A layer whose digests are not cached yet is generated
 * once by cs_push_image_prepare to learn them (and they are cached); its
 * bytes are kept in memory for the upload while all kept blobs stay under
 * 32 MiB (a small new layer is generated once), else generated again by
 * cs_push_layer_write, streamed: never a temp file.
 * The image and its trees are leased (lease.h) while the store stays open.
 * Thread rules: open and free in one thread; cs_push_layer_write and the
 * getters may run in several threads at once.
 */
#ifndef CSTORE_PUSH_H
#define CSTORE_PUSH_H

#include <stdint.h>
#include "cstore/content.h"
#include "cstore/ingest.h"
#include "cstore/store.h"
#include "cstore/util.h"

typedef enum cs_push_format {
    CS_PUSH_OCI,    /* OCI image manifest, OCI media types */
    CS_PUSH_DOCKER, /* Docker schema 2 manifest (gzip or uncompressed layers) */
} cs_push_format;

/* A blob of the image: what HEAD, mount and upload need. */
typedef struct cs_push_blob {
    cs_digest digest;
    uint64_t size;
    const char *media_type; /* static */
    cs_digest tree;         /* layers: the tree it is made from */
    bool dup;               /* a layer an earlier layer of the image already is */
} cs_push_blob;

typedef struct cs_push_image cs_push_image;

/* Resolves NAME (a reference or an image id, as cs_image_resolve) and
 * leases it; cheap. Codes: CS_ENOTFOUND "image 'NAME' not found", CS_EINVAL
 * (zstd with the docker format, an unknown format or compression). *out is
 * the caller's (cs_push_image_free). */
int cs_push_image_open(cs_store *s, const char *name, cs_push_format fmt, cs_compression c,
                       cs_push_image **out, cs_error **err);
/* Learns every layer's digests (generating those not cached, and caching
 * them in one transaction) and builds the config and manifest: the getters
 * below need it. Codes: those of the generation (CS_ENOTFOUND for a missing
 * content or tree, CS_ECORRUPT). */
int cs_push_image_prepare(cs_push_image *p, cs_error **err);
void cs_push_image_free(cs_push_image *p);
CS_DEFINE_FREEP(cs_push_image, cs_push_image_free)

/* The image id (its stored config's digest). */
const cs_digest *cs_push_image_id(const cs_push_image *p);
uint32_t cs_push_image_nlayers(const cs_push_image *p);
/* Layer i (bottom first); borrowed until cs_push_image_free. */
const cs_push_blob *cs_push_image_layer(const cs_push_image *p, uint32_t i);
/* The config blob; *data (len bytes) borrowed until cs_push_image_free. */
const cs_push_blob *cs_push_image_config(const cs_push_image *p, const char **data, size_t *len);
/* The manifest: its bytes (borrowed), digest and media type in *desc. */
const char *cs_push_image_manifest(const cs_push_image *p, size_t *len, cs_push_blob *desc);

/* Streams layer i's blob into out, from its first byte; out's failure
 * stops the generation and is returned. Bytes that turn out not to be the
 * digest the manifest names fail CS_ECORRUPT after the last byte (the
 * cached record is corrected: a new push is right); a receiver that checks
 * the digest itself (a registry) never keeps them. Thread-safe. */
int cs_push_layer_write(cs_push_image *p, uint32_t i, cs_sink_fn out, void *octx, cs_error **err);

#endif
