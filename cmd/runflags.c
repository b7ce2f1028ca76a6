/* runflags.c - option checks shared by build and run (see runflags.h). */
#include "runflags.h"
#include "cstore/units.h"
#include "run.h"

/* Checked as the option is read: a bad one is a usage error before the
 * store is opened. */
int
cmd_check_add_host(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    cs_autofree char *line = NULL;
    (void) c, (void) o;
    return cs_run_host_parse(arg, &line, err);
}

int
cmd_check_ulimit(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    cs_run_rlimit rl;
    (void) c, (void) o;
    return cs_run_rlimit_parse(arg, &rl, err);
}

int
cmd_take_shm_size(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    (void) err;
    if (!cs_parse_ram_size(arg, o->dst))
        return cmd_usage_error(c, "invalid size for --shm-size: '%s'", arg);
    return 0;
}
