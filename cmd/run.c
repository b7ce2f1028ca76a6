/* run.c - `cstore run`: an image's command in a container, nothing left behind. */
#include <stdio.h>
#include <string.h>
#include "cmd.h"
#include "imagerun.h"

const char cmd_run_usage[] =
    "usage: cstore run [--network host|none] [--runtime PATH] [--snapshotter S] NAME\n"
    "                  [CMD [ARG...]]\n"
    "\n"
    "Run an image's entrypoint and command (CMD ARG... replaces the command) with its\n"
    "environment, user and working directory. stdout and stderr pass through; the exit\n"
    "status is the command's.\n"
    "\n"
    "Options:\n"
    "  --network MODE   host (default) or none\n"
    "  --runtime PATH   the OCI runtime (default runc)\n"
    "  --snapshotter S  the image's layers served by FUSE (fuse), unpacked (unpack) or\n"
    "                   auto (default: fuse when /dev/fuse works)\n"
    "  -h, --help       show this help\n";

int
cmd_run(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    int network = 0; /* host */
    const char *runtime = NULL;
    const cmd_opt opts[] = {
        CMD_OPT_CHOICE("network", &network, "host|none", NULL),
        CMD_OPT("runtime", 0, CMD_STRING, &runtime),
        CMD_OPT_CHOICE("snapshotter", &c->snapshotter, "auto|fuse|unpack", NULL),
        CMD_OPT_END,
    };
    /* Options stop at NAME: what follows is the command's own. */
    cmd_args args = { .min = 0, .max = -1, .stop_at_operand = true };
    int rc;
    if ((rc = cmd_parse(c, argc, argv, opts, &args, err)) != 0)
        return rc;
    if (args.n < 1)
        return cmd_usage_error(c, "an image name is required");
    cs_store *s;
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    cs_image_run_opts ro = {
        .network_none = network == 1, .runtime = runtime, .out_fd = 1, .err_fd = 2
    };
    int status;
    fflush(stdout);
    if ((rc = cs_image_run(s, args.v[0], args.v + 1, &ro, &status, err)) < 0)
        return rc;
    return status; /* the command's exit status is cstore's */
}
