/* export.c - `cstore export`: images out. */
#include <string.h>
#include "cmd.h"
#include "cstore/export.h"

const char cmd_export_usage[] =
    "usage: cstore export NAME -o PATH [--format FORMAT] [--compression C]\n"
    "\n"
    "Write image NAME (a reference or an image id) to PATH.\n"
    "\n"
    "Options:\n"
    "  -o, --output PATH      where to write (required)\n"
    "  --format FORMAT        oci-archive (default), oci-dir or docker-archive\n"
    "  --compression C        layer compression: gzip (default), zstd or none\n"
    "  -h, --help             show this help\n";

int
cmd_export(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    static const struct option opts[] = {
        { "output", required_argument, NULL, 'o' },
        { "format", required_argument, NULL, 'f' },
        { "compression", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *out = NULL;
    cs_format fmt = CS_FMT_OCI_ARCHIVE;
    cs_compression comp = CS_COMP_GZIP;
    cs_store *s;
    int o, rc;

    while ((o = cmd_getopt(c, argc, argv, "o:h", opts)) != -1) {
        switch (o) {
        case 'o':
            out = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "oci-archive") == 0)
                fmt = CS_FMT_OCI_ARCHIVE;
            else if (strcmp(optarg, "oci-dir") == 0)
                fmt = CS_FMT_OCI_DIR;
            else if (strcmp(optarg, "docker-archive") == 0)
                fmt = CS_FMT_DOCKER_ARCHIVE;
            else
                return cmd_usage_error(c, "unknown format '%s'", optarg);
            break;
        case 'c':
            if (strcmp(optarg, "gzip") == 0)
                comp = CS_COMP_GZIP;
            else if (strcmp(optarg, "zstd") == 0)
                comp = CS_COMP_ZSTD;
            else if (strcmp(optarg, "none") == 0)
                comp = CS_COMP_NONE;
            else
                return cmd_usage_error(c, "unknown compression '%s'", optarg);
            break;
        default:
            return c->status;
        }
    }
    if ((rc = cmd_nargs(c, argc - optind, 1, 1)) != 0)
        return rc;
    if (!out || !*out)
        return cmd_usage_error(c, "-o PATH is required");

    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    return cs_export(s, argv[optind], out, fmt, comp, err);
}
