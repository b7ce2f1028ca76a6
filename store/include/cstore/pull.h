/* pull.h - an image from a registry into the store: the store side.
 *
 * The registry side (registry/pull.c) fetches the manifest and config and
 * streams the layer blobs; this stores them exactly as cs_load stores the
 * same image (same id, same trees): one ingest transaction, committed at the
 * end, so a failed or killed pull stores nothing. Layers the store already
 * has (layer index, by blob digest or diff_id) are not read at all.
 * Thread rules: called from one thread (the ingest's); the source's
 * callbacks run on it.
 */
#ifndef CSTORE_PULL_H
#define CSTORE_PULL_H

#include <stdbool.h>
#include "cstore/ingest.h"
#include "cstore/load.h"
#include "cstore/manifest.h"

typedef struct cs_pull_source {
    /* Opens layer i's blob as a byte stream (layers in order, only those
     * the store lacks). The bytes are hashed and checked against the
     * manifest's digest and size while they are ingested. */
    int (*open)(void *ctx, size_t i, cs_read_fn *rd, void **rctx, cs_error **err);
    /* Ends what open returned; ok is false when the ingest failed. */
    void (*close)(void *ctx, size_t i, void *rctx, bool ok);
    /* Layer i is in the store already (may be NULL). */
    void (*known)(void *ctx, size_t i);
    void *ctx;
} cs_pull_source;

/* Which layers of image manifest m (config: its config blob) the store has:
 * known[i] set for those (m->n entries). One read transaction. */
int cs_pull_known(cs_store *s, const cs_manifest *m, const void *config, size_t config_len,
                  bool *known, cs_error **err);
/* Stores the image of manifest m: config is its config blob (checked
 * against m's digest), tag a reference to set (normalized here; NULL for
 * none). Codes: CS_ECORRUPT for a digest or size mismatch, CS_EPARSE for a
 * config that does not list the layers, the source's codes, the ingest's. */
int cs_pull_store(cs_store *s, const cs_manifest *m, const void *config, size_t config_len,
                  const char *tag, const cs_pull_source *src, cs_load_result *out, cs_error **err);

#endif
