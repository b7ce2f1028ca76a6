/* manifest.h - registry manifests: OCI image manifest and index, Docker
 * schema 2 manifest and manifest list; picking a platform from an index.
 *
 * Pure parsing (no I/O, no store): the pull reads a manifest from a
 * registry and hands the bytes here. Thread rules: none (no shared state).
 */
#ifndef CSTORE_MANIFEST_H
#define CSTORE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cstore/error.h"
#include "cstore/util.h"

/* The same names as registry/registry.h's (identical definitions). */
#ifndef CS_MT_OCI_MANIFEST
#    define CS_MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#    define CS_MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#    define CS_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#    define CS_MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#endif
/* The Accept header of a manifest request: the four types above. */
#define CS_MANIFEST_ACCEPT                                                                         \
    CS_MT_OCI_MANIFEST ", " CS_MT_OCI_INDEX ", " CS_MT_DOCKER_MANIFEST ", " CS_MT_DOCKER_LIST

typedef struct cs_platform {
    char *os, *arch, *variant; /* variant may be NULL */
} cs_platform;

typedef struct cs_descriptor {
    char *media_type;
    cs_digest digest;
    int64_t size;         /* -1 when absent */
    cs_platform platform; /* index entries only; os/arch NULL when absent */
} cs_descriptor;

typedef struct cs_manifest {
    bool is_index;
    char *media_type;
    cs_descriptor config; /* image manifests */
    cs_descriptor *items; /* layers (image manifest) or manifests (index) */
    size_t n;
} cs_manifest;

/* Parses a manifest. content_type (the HTTP Content-Type, may be NULL) is
 * used when the JSON has no mediaType. CS_EPARSE (one line) for bytes that
 * are not JSON, an unknown or unsupported media type (schema 1 included),
 * a missing config or layers, a malformed digest, a layer that is not a tar. */
int cs_manifest_parse(const void *p, size_t len, const char *content_type, cs_manifest **out,
                      cs_error **err);
void cs_manifest_free(cs_manifest *m);
CS_DEFINE_FREEP(cs_manifest, cs_manifest_free)

/* "OS/ARCH[/VARIANT]", normalized as containerd does (x86_64 -> amd64,
 * aarch64 -> arm64, arm64's variant v8 -> none, armhf -> arm/v7, armel ->
 * arm/v6, arm without variant -> arm/v7). CS_EINVAL for another shape. */
int cs_platform_parse(const char *s, cs_platform *out, cs_error **err);
/* The host's platform (uname), normalized. */
void cs_platform_host(cs_platform *out);
void cs_platform_release(cs_platform *p);
/* "os/arch[/variant]", malloc'd. */
char *cs_platform_str(const cs_platform *p);

/* The index entry for want: an exact match, else for arm a lower variant
 * it can run (v7 runs v6 and v5, as containerd). Entries that are not image
 * manifests or indexes, or have os "unknown" (attestations), are skipped.
 * *idx is its position. CS_ENOTFOUND "no image for PLATFORM (the index has:
 * a, b)" otherwise. */
int cs_manifest_select(const cs_manifest *index, const cs_platform *want, size_t *idx,
                       cs_error **err);

#endif
