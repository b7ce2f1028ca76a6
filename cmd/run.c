/* run.c - `cstore run`: an image's command in a container, nothing left behind. */
#include <stdio.h>
#include <string.h>
#include "cmd.h"
#include "imagerun.h"

const char cmd_run_usage[] =
    "usage: cstore run [--network host|none] [--runtime PATH] NAME [CMD [ARG...]]\n"
    "\n"
    "Run an image's entrypoint and command (CMD ARG... replaces the command) with its\n"
    "environment, user and working directory. stdout and stderr pass through; the exit\n"
    "status is the command's.\n"
    "\n"
    "Options:\n"
    "  --network MODE   host (default) or none\n"
    "  --runtime PATH   the OCI runtime (default runc)\n"
    "  -h, --help       show this help\n";

int
cmd_run(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    static const struct option opts[] = {
        { "network", required_argument, NULL, 'N' },
        { "runtime", required_argument, NULL, 'R' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool net_none = false;
    const char *runtime = NULL;
    int o, rc;
    /* Options stop at NAME: what follows is the command's own. */
    int nopt = 1;
    while (nopt < argc && argv[nopt][0] == '-') {
        if (!strcmp(argv[nopt], "--")) {
            break;
        }
        if ((!strcmp(argv[nopt], "--network") || !strcmp(argv[nopt], "--runtime"))
            && nopt + 1 < argc)
            nopt++;
        nopt++;
    }
    if (nopt < argc && !strcmp(argv[nopt], "--"))
        nopt++;
    while ((o = cmd_getopt(c, nopt, argv, "h", opts)) != -1) {
        switch (o) {
        case 'N':
            if (strcmp(optarg, "host") && strcmp(optarg, "none"))
                return cmd_usage_error(c, "--network must be host or none");
            net_none = !strcmp(optarg, "none");
            break;
        case 'R':
            runtime = optarg;
            break;
        default:
            return c->status;
        }
    }
    optind = nopt;
    if (optind >= argc)
        return cmd_usage_error(c, "an image name is required");
    const char *name = argv[optind];
    cs_store *s;
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    cs_image_run_opts ro = {
        .network_none = net_none, .runtime = runtime, .out_fd = 1, .err_fd = 2
    };
    int status;
    fflush(stdout);
    if ((rc = cs_image_run(s, name, argv + optind + 1, &ro, &status, err)) < 0)
        return rc;
    return status; /* the command's exit status is cstore's */
}
