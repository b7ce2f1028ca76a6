/* load.h - images in: docker-archive, OCI archive, OCI layout dir, rootfs. */
#ifndef CSTORE_LOAD_H
#define CSTORE_LOAD_H

#include "cstore/store.h"
#include "cstore/util.h"

typedef struct cs_load_result {
    cs_digest id;   /* image id (config digest) */
    char **tags;    /* normalized tags applied, NULL-terminated; caller frees */
    uint64_t bytes; /* uncompressed layer bytes read */
} cs_load_result;
void cs_load_result_release(cs_load_result *r);

/* Loads the image in path (format detected). Every blob digest is checked
 * against the manifest; any failure stores nothing. extra_tag may be NULL. */
int cs_load(cs_store *s, const char *path, const char *extra_tag, cs_load_result *out,
            cs_error **err);
/* One-layer image from a rootfs tar (any compression) or directory. */
int cs_import(cs_store *s, const char *path, const char *tag, cs_load_result *out, cs_error **err);

#endif
