/* runstep.h - RUN --mount specs: parsing "type=cache,target=..." into a
 * cs_runmount. Internal to the build engine (build_plan.c plans the stages
 * a mount names, build_run.c makes the mounts). */
#ifndef CSBUILD_RUNSTEP_H
#define CSBUILD_RUNSTEP_H

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
