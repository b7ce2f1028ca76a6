/* run.c - `cstore run`: an image's command in a container, nothing left behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "build_cache.h"
#include "cmd.h"
#include "cstore/strv.h"
#include "imagerun.h"
#include "registry.h"
#include "runflags.h"

const char cmd_run_usage[] =
    "usage: cstore run [OPTIONS] NAME [CMD [ARG...]]\n"
    "\n"
    "Run an image's entrypoint and command (CMD ARG... replaces the command) with its\n"
    "environment, user and working directory. stdout and stderr pass through; the exit\n"
    "status is the command's.\n"
    "\n"
    "Options (docker run's spellings):\n"
    "  -e, --env K[=V]      set an environment variable (K alone: from the environment,\n"
    "                       left out when unset; repeatable)\n"
    "      --network MODE   host (default) or none\n"
    "      --add-host HOST:IP  add a line to /etc/hosts (repeatable; IP host-gateway:\n"
    "                       127.0.0.1, the host)\n"
    "      --shm-size SIZE  size of /dev/shm (default 64m; binary units)\n"
    "      --ulimit N=S[:H] a ulimit, e.g. nofile=1024:2048, core=-1 (repeatable)\n"
    "      --runtime PATH   the OCI runtime (default runc)\n"
    "      --snapshotter S  the image's layers served by FUSE (fuse), unpacked (unpack)\n"
    "                       or auto (default: fuse when /dev/fuse works)\n"
    "      --tls-verify=false  the image's bytes from a registry build cache: plain\n"
    "                       http and unverified https\n"
    "      --cert-dir DIR   CA (*.crt) and client certificate (client.cert/.key) for it\n"
    "  -h, --help           show this help\n";

/* -e K=V as given; -e K takes K's value from cstore's environment, and is
 * left out when K is unset (docker run). */
static int
take_env(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    (void) c, (void) err;
    if (strchr(arg, '='))
        cs_strv_add(o->dst, arg);
    else if (getenv(arg))
        cs_strv_push(o->dst, cs_xasprintf("%s=%s", arg, getenv(arg)));
    return 0;
}

int
cmd_run(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    int network = 0; /* host */
    const char *runtime = NULL;
    cmd_autostrv cs_strv env = { 0 };
    cmd_autostrv cs_strv hosts = { 0 };
    cmd_autostrv cs_strv ulimits = { 0 };
    uint64_t shm = 0;
    cmd_reg_opts reg = { 0 };
    const cmd_opt opts[] = {
        CMD_OPT_FN("env", 'e', CMD_CALL, &env, take_env),
        CMD_OPT_CHOICE("network", &network, "host|none", NULL),
        CMD_OPT_FN("add-host", 0, CMD_STRV, &hosts, cmd_check_add_host),
        CMD_OPT_FN("shm-size", 0, CMD_CALL, &shm, cmd_take_shm_size),
        CMD_OPT_FN("ulimit", 0, CMD_STRV, &ulimits, cmd_check_ulimit),
        CMD_OPT("runtime", 0, CMD_STRING, &runtime),
        CMD_OPT_CHOICE("snapshotter", &c->snapshotter, "auto|fuse|unpack", NULL),
        CMD_OPTS_REGISTRY(&reg),
        CMD_OPT_END,
    };
    /* Options stop at NAME: what follows is the command's own. */
    cmd_args args = { .min = 0, .max = -1, .stop_at_operand = true };
    int rc;
    if ((rc = cmd_parse(c, argc, argv, opts, &args, err)) != 0)
        return rc;
    if (args.n < 1)
        return cmd_usage_error(c, "an image name is required");
    cs_reg_opts regopts;
    cmd_reg_opts_get(&reg, &regopts);
    cache_registry_set_opts(&regopts); /* the build cache registry the bytes may come from */
    cs_store *s;
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    cs_image_run_opts ro = { .network_none = network == 1,
                             .runtime = runtime,
                             .out_fd = 1,
                             .err_fd = 2,
                             .env = env.v,
                             .add_hosts = hosts.v,
                             .ulimits = ulimits.v,
                             .shm_size = shm };
    int status;
    fflush(stdout);
    if ((rc = cs_image_run(s, args.v[0], args.v + 1, &ro, &status, err)) < 0)
        return rc;
    return status; /* the command's exit status is cstore's */
}
