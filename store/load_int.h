/* load_int.h - what the load files share (private to libcstore).
 *
 * load_source.c reads the input (a directory, or a tar archive listed in
 * one pass with its small members kept); load_manifest.c turns its
 * index/manifest/config JSON into a plan; load.c ingests the plan's layers
 * and stores the image. One thread.
 */
#ifndef CSTORE_LOAD_INT_H
#define CSTORE_LOAD_INT_H

#include "cstore/archive_dl.h"
#include "cstore/ingest.h"
#include "cstore/load.h"
#include "cstore/strv.h"

/* Metadata (index, manifests, configs) is small; blobs up to this size are
 * kept in memory on the first pass over an archive. */
#define SMALL_MAX (4u << 20)

typedef struct member {
    char *name;
    char *link; /* a symlink member's target (clean path in the archive) */
    uint64_t size;
    cs_buf data; /* filled when size <= SMALL_MAX */
    bool have;
    /* where its header and data begin in the archive (when known); the
     * data is in place in source.map when mapped */
    int64_t hdr_off, data_off;
    bool mapped;
} member;

typedef struct source {
    const char *path;
    bool is_dir;
    member *m;
    size_t n;
    /* a plain (uncompressed) tar archive mapped whole, read-only: its
     * members' bytes in place (load_source_map) */
    const uint8_t *map;
    size_t map_len;
} source;

typedef struct layer_plan {
    char *name;      /* member or file name of the blob */
    bool check_blob; /* blob digest/size known (OCI descriptor) */
    cs_digest blob;
    int64_t size;      /* -1 when unknown */
    cs_digest diff_id; /* from the config */
    bool done;
    bool known; /* found in the layer index: nothing ingested */
    cs_layer_info info;
} layer_plan;

typedef struct plan {
    cs_buf config;
    cs_digest config_digest;
    layer_plan *layers;
    size_t n;
    cs_strv tags; /* normalized, each once */
} plan;

/* ---- sources (load_source.c) ---- */

void load_source_release(source *src);
/* First pass over an archive: lists members, keeps the small ones. */
int load_source_scan_tar(source *src, cs_error **err);
/* Maps a plain tar archive whole and marks the members whose data lies in
 * it (member.mapped); a compressed one is left unmapped (the layers are then
 * read through libarchive). Never fails: without a map the reads remain. */
void load_source_map(source *src);
/* A member by name, following symlink members; NULL when missing. */
member *load_source_find(source *src, const char *name);
/* Reads a small member or file fully (metadata), NUL-terminated. */
int load_source_get(source *src, const char *name, cs_buf *out, cs_error **err);
/* Opens the archive at path for reading (CS_EPARSE when it is none). */
int load_open_outer(const char *path, struct archive **out, cs_error **err);
/* The next member's header: 1, 0 at the end, CS_EPARSE. */
int load_next_member(struct archive *a, struct archive_entry **ae, cs_error **err);
/* A member's name without leading "./" and "/" (malloc'd). */
char *load_member_name(const char *n);

/* ---- plans (load_manifest.c) ---- */

void load_plan_release(plan *p);
void load_plan_add_tag(plan *p, const char *norm);
/* The plan of an OCI layout (index.json) or a docker-archive (manifest.json). */
int load_plan_oci(source *src, plan *p, cs_error **err);
int load_plan_docker(source *src, plan *p, cs_error **err);
/* Reads the config's rootfs.diff_ids into the p->n layers (what names the
 * config in errors). */
int load_plan_config(plan *p, const char *what, cs_error **err);

/* ---- ingest and commit (load.c) ---- */

/* Verifies layer i just ingested (r: the ingest's result) against the
 * plan's digests and gives its result to every entry of the same blob. */
int load_layer_done(plan *p, size_t i, int r, cs_error **err);
/* Stores the image of plan p (extra_tag, un-normalized, may be NULL), its
 * tags and the layer index records of the layers ingested, and commits
 * ing. */
int load_store_image(cs_ingest *ing, cs_store *s, plan *p, const char *extra_tag,
                     cs_load_result *out, cs_error **err);

#endif
