/* run_mountflags.h - parsing the --mount flags of a RUN instruction
 * ("type=cache,target=/root/.cache,id=x") into cs_runmount. Parsing only: the
 * build resolves sources and hands cs_run_mount to the executor (run.h).
 * Internal to the builder. Thread rules: none. */
#ifndef CSBUILD_RUN_MOUNTFLAGS_H
#define CSBUILD_RUN_MOUNTFLAGS_H

#include <stdbool.h>
#include <stdint.h>
#include "dockerfile.h"
#include "run.h"

/* One parsed --mount of RUN. */
typedef struct cs_runmount {
    char *type;              /* cache, bind, tmpfs, secret, ssh */
    char *target;            /* absolute, cleaned; secret: default /run/secrets/ID (a
                                relative one is under /run/secrets); ssh: NULL unless
                                given (the build numbers /run/buildkit/ssh_agent.N) */
    char *source;            /* bind: path in the context or the from stage */
    char *from;              /* bind/cache: stage or image, NULL for the context */
    char *id;                /* cache: id (default: the target); secret: id (default: the
                                target's last component); ssh: id (default "default") */
    bool rw;                 /* bind: rw, cache and tmpfs: rw; secret, ssh: never */
    bool required;           /* secret, ssh: a missing one fails the RUN (default: the
                                mount is left out) */
    uint32_t mode, uid, gid; /* cache: the directory's, when it is made
                                (0755); secret: the file's (0400); ssh: the
                                socket's (0600); owner root by default */
} cs_runmount;

/* Parses "type=cache,target=/root/.cache,id=x,sharing=locked" (already
 * expanded). Defaults as BuildKit's (see the fields). CS_EPARSE with a
 * message naming the bad key, or for a secret with neither id nor target;
 * CS_EUNSUPPORTED for an unknown type. */
int cs_runmount_parse(const char *spec, cs_runmount *out, cs_error **err);
void cs_runmount_release(cs_runmount *m);

#endif
