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
    char *type;              /* cache, bind, tmpfs */
    char *target;            /* absolute, cleaned */
    char *source;            /* bind: path in the context or the from stage */
    char *from;              /* bind/cache: stage or image, NULL for the context */
    char *id;                /* cache: id (default: the target) */
    bool rw;                 /* bind: rw, cache: always rw */
    uint32_t mode, uid, gid; /* cache: the directory's, when it is made */
} cs_runmount;

/* Parses "type=cache,target=/root/.cache,id=x,sharing=locked" (already
 * expanded). CS_EPARSE with a message naming the bad key. */
int cs_runmount_parse(const char *spec, cs_runmount *out, cs_error **err);
void cs_runmount_release(cs_runmount *m);

#endif
