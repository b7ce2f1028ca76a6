/* export.c - `cstore export`: images out. */
#include "build_cache.h"
#include "cmd.h"
#include "cstore/export.h"
#include "cstore/rcache.h"
#include "registry.h"

const char cmd_export_usage[] =
    "usage: cstore export NAME -o PATH [--format FORMAT] [--compression C]\n"
    "\n"
    "Write image NAME (a reference or an image id) to PATH.\n"
    "\n"
    "Options:\n"
    "  -o, --output PATH      where to write (required)\n"
    "  --format FORMAT        oci-archive (default), oci-dir or docker-archive\n"
    "  --compression C        layer compression: gzip (default), zstd or none\n"
    "  --tls-verify=false     the image's bytes from a registry build cache: plain http\n"
    "                         and unverified https\n"
    "  --cert-dir DIR         CA (*.crt) and client certificate (client.cert/.key) for it\n"
    "  -h, --help             show this help\n";

int
cmd_export(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    /* In the order of the choices below. */
    static const cs_format fmts[] = { CS_FMT_OCI_ARCHIVE, CS_FMT_OCI_DIR, CS_FMT_DOCKER_ARCHIVE };
    static const cs_compression comps[] = { CS_COMP_GZIP, CS_COMP_ZSTD, CS_COMP_NONE };
    const char *out = NULL;
    int fmt = 0, comp = 0;
    cmd_reg_opts ro = { 0 };
    const cmd_opt opts[] = {
        CMD_OPT("output", 'o', CMD_STRING, &out),
        CMD_OPT_CHOICE("format", &fmt, "oci-archive|oci-dir|docker-archive", "format"),
        CMD_OPT_CHOICE("compression", &comp, "gzip|zstd|none", "compression"),
        CMD_OPTS_REGISTRY(&ro),
        CMD_OPT_END,
    };
    cs_store *s;
    int rc;

    cmd_args args = { .min = 1, .max = 1 };
    if ((rc = cmd_parse(c, argc, argv, opts, &args, err)) != 0)
        return rc;
    if (!out || !*out)
        return cmd_usage_error(c, "-o PATH is required");
    cs_reg_opts regopts;
    cmd_reg_opts_get(&ro, &regopts);
    cache_registry_set_opts(&regopts); /* the build cache registry the bytes may come from */

    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    /* An image from an imported build cache: its bytes first. */
    if ((rc = cs_rcache_fetch_image(s, args.v[0], NULL, err)) < 0)
        return rc;
    build_cache_print_fetched();
    return cs_export(s, args.v[0], out, fmts[fmt], comps[comp], err);
}
