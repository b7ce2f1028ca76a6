/* runflags.h - the option checks `cstore build` and `cstore run` share for
 * their containers' settings, with docker's spellings and messages:
 * --add-host, --ulimit, --shm-size (cmd_opt handlers, see cmd.h). */
#ifndef CSTORE_CMD_RUNFLAGS_H
#define CSTORE_CMD_RUNFLAGS_H

#include "cmd.h"

/* --add-host HOST:IP: refused at once, as the run would refuse it. */
int cmd_check_add_host(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);
/* --ulimit NAME=SOFT[:HARD]: the same. */
int cmd_check_ulimit(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);
/* --shm-size in docker's binary units (64m is 64 MiB) into the uint64_t
 * o->dst. */
int cmd_take_shm_size(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);

#endif
