/* build.c - `cstore build`: a Dockerfile into a stored, tagged image. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "build.h"
#include "cmd.h"
#include "progress.h"
#include "cstore/image.h"

const char cmd_build_usage[] =
    "usage: cstore build [OPTIONS] CONTEXT\n"
    "\n"
    "Build an image from a Dockerfile, reading the context directory in place.\n"
    "The image digest is the last line of stdout.\n"
    "\n"
    "Options:\n"
    "  -f, --file PATH          the Dockerfile (default CONTEXT/Dockerfile; - for stdin)\n"
    "  -t, --tag NAME[:TAG]     tag the image (repeatable)\n"
    "      --target STAGE       build this stage (default: the last)\n"
    "      --build-arg K[=V]    set a build argument (K alone: from the environment)\n"
    "      --no-cache           do not use the build cache\n"
    "      --progress MODE      auto, plain or quiet (default auto)\n"
    "      --iidfile PATH       write the image digest to PATH\n"
    "      --network MODE       host (default) or none, for RUN\n"
    "      --runtime PATH       OCI runtime for RUN (default runc)\n"
    "  -h, --help               show this help\n";

static const struct option build_opts[] = {
    { "file", required_argument, NULL, 'f' },    { "tag", required_argument, NULL, 't' },
    { "target", required_argument, NULL, 'T' },  { "build-arg", required_argument, NULL, 'a' },
    { "no-cache", no_argument, NULL, 'n' },      { "progress", required_argument, NULL, 'p' },
    { "iidfile", required_argument, NULL, 'i' }, { "network", required_argument, NULL, 'N' },
    { "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
};

int
cmd_build(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    cs_build_opts o = { 0 };
    cs_progress mode = CS_PROGRESS_AUTO;
    cs_autofree char **tags = cs_xcalloc((size_t) argc + 1, sizeof(char *));
    size_t ntags = 0;
    cs_df_env *args = cs_df_env_new();
    const char *iidfile = NULL;
    int opt, rc;
    while ((opt = cmd_getopt(c, argc, argv, "f:t:h", build_opts)) != -1) {
        switch (opt) {
        case 'f':
            o.dockerfile = optarg;
            break;
        case 't': {
            cs_autofree char *norm = NULL;
            if ((rc = cs_ref_normalize(optarg, &norm, err)) < 0) {
                cs_df_env_free(args);
                return rc;
            }
            tags[ntags++] = optarg;
            break;
        }
        case 'T':
            o.target = optarg;
            break;
        case 'a': {
            char *eq = strchr(optarg, '=');
            if (eq) {
                cs_autofree char *k = cs_xstrndup(optarg, (size_t) (eq - optarg));
                cs_df_env_set(args, k, eq + 1);
            } else if (getenv(optarg)) {
                cs_df_env_set(args, optarg, getenv(optarg));
            }
            break;
        }
        case 'n':
            o.no_cache = true;
            break;
        case 'p':
            if (!strcmp(optarg, "auto"))
                mode = CS_PROGRESS_AUTO;
            else if (!strcmp(optarg, "plain"))
                mode = CS_PROGRESS_PLAIN;
            else if (!strcmp(optarg, "quiet"))
                mode = CS_PROGRESS_QUIET;
            else {
                cs_df_env_free(args);
                return cmd_usage_error(c, "--progress must be auto, plain or quiet");
            }
            break;
        case 'i':
            iidfile = optarg;
            break;
        case 'N':
            if (strcmp(optarg, "host") && strcmp(optarg, "none")) {
                cs_df_env_free(args);
                return cmd_usage_error(c, "--network must be host or none");
            }
            o.network_none = !strcmp(optarg, "none");
            break;
        case 'R':
            o.runtime = optarg;
            break;
        default:
            cs_df_env_free(args);
            return c->status;
        }
    }
    if ((rc = cmd_nargs(c, argc - optind, 1, 1)) != 0) {
        cs_df_env_free(args);
        return rc;
    }
    o.context = argv[optind];
    o.tags = tags;
    o.build_args = args;
    cs_store *s;
    if ((rc = cmd_open(c, 0, &s, err)) < 0) {
        cs_df_env_free(args);
        return rc;
    }
    cs_build_result res;
    cmd_progress prog;
    cmd_progress_init(&prog, mode, stderr, &o);
    rc = cs_build(s, &o, &res, err);
    cmd_progress_finish(&prog);
    cs_df_env_free(args);
    if (rc < 0)
        return rc;
    char id[CS_DIGEST_STR];
    cs_digest_str(&res.id, id);
    if (iidfile && cs_write_file_atomic(iidfile, id, strlen(id), err) < 0)
        return cs_err_wrap(err, "--iidfile");
    printf("%s\n", id);
    return 0;
}
