/* build_output.h - what `cstore build` writes after the build: -o/--output
 * (buildx's oci, docker, tar and local exporters) and --metadata-file.
 * Private to cmd/build.c.
 */
#ifndef CSTORE_CMD_BUILD_OUTPUT_H
#define CSTORE_CMD_BUILD_OUTPUT_H

#include "cmd.h"

typedef enum build_out_type {
    BUILD_OUT_NONE, /* no -o */
    BUILD_OUT_OCI,
    BUILD_OUT_DOCKER,
    BUILD_OUT_TAR,
    BUILD_OUT_LOCAL,
} build_out_type;

typedef struct build_out {
    build_out_type type;
    char *dest; /* "-" for stdout; owned */
} build_out;

/* The CMD_CALL handler of -o/--output (o->dst is a build_out *): buildx's
 * forms "type=T[,dest=PATH]", "DIR" (type=local) and "-" (type=tar to
 * stdout); tar and oci without dest go to stdout, docker without dest is
 * buildx's load (nothing written: the image is stored). Bad forms, a second
 * -o and an archive for a terminal are one-line usage errors. */
int build_out_take(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);
void build_out_release(build_out *out);
/* A build_out released when it goes out of scope. */
#define build_out_auto __attribute__((cleanup(build_out_release)))

/* True when the output goes to stdout (then the image id is not printed there). */
bool build_out_stdout(const build_out *out);
/* Writes the built image id (tagged tags[0] first when given) as out says. */
int build_out_write(cs_store *s, const build_out *out, const cs_digest *id, char **tags,
                    cs_error **err);
/* Writes buildx's metadata JSON for image id and its -t names to path:
 * containerimage.config.digest (the id), containerimage.digest (the OCI
 * manifest digest with gzip layers), image.name. */
int build_metadata_write(cs_store *s, const char *path, const cs_digest *id, char **tags,
                         cs_error **err);

#endif
