/* load.c - `cstore load` and `cstore import`: images in. */
#include <stdio.h>
#include "cmd.h"
#include "cstore/image.h"
#include "cstore/load.h"

const char cmd_load_usage[] =
    "usage: cstore load FILE|DIR [-t NAME[:TAG]]\n"
    "\n"
    "Load an image from an OCI archive, an OCI layout directory or a docker-archive tar\n"
    "(as written by `docker save`); compressed archives are detected.\n"
    "\n"
    "Options:\n"
    "  -t, --tag NAME[:TAG]   also tag the image NAME[:TAG]\n"
    "  -h, --help             show this help\n";

const char cmd_import_usage[] =
    "usage: cstore import ROOTFS.tar|DIR -t NAME[:TAG]\n"
    "\n"
    "Make a one-layer image from a root filesystem: a tar (plain, gzip or zstd) or a\n"
    "directory. Prints the image id.\n"
    "\n"
    "Options:\n"
    "  -t, --tag NAME[:TAG]   tag the image NAME[:TAG] (required)\n"
    "  -h, --help             show this help\n";

/* Parses "PATH [-t NAME[:TAG]]" (the tag normalized; required by import),
 * then loads or imports PATH into *res. Returns 0, a result of cmd_parse or
 * cmd_usage_error the verb returns as is, or a negative code with *err set. */
static int
load_or_import(cmd_ctx *c, int argc, char **argv, bool import, cs_load_result *res, cs_error **err)
{
    const char *t = NULL;
    const cmd_opt opts[] = {
        CMD_OPT("tag", 't', CMD_STRING, &t),
        CMD_OPT_END,
    };
    cs_autofree char *tag = NULL;
    cs_store *s;
    int rc;

    cmd_args args = { .min = 1, .max = 1 };
    if ((rc = cmd_parse(c, argc, argv, opts, &args, err)) != 0)
        return rc;
    if (t && (rc = cs_ref_normalize(t, &tag, err)) < 0) /* the message names t */
        return rc;
    if (import && !tag)
        return cmd_usage_error(c, "-t NAME[:TAG] is required");
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    if (import)
        return cs_import(s, args.v[0], tag, res, err);
    return cs_load(s, args.v[0], tag, res, err);
}

/* load names the tags it loaded (else the id); import prints the id alone. */
static void
print_result(const cs_load_result *res, bool import)
{
    bool any = false;
    for (char **t = res->tags; !import && t && *t; t++) {
        cs_autofree char *fam = cs_ref_familiar(*t);
        printf("Loaded image: %s\n", fam ? fam : *t);
        any = true;
    }
    if (!any) {
        char id[CS_DIGEST_STR];
        cs_digest_str(&res->id, id);
        printf(import ? "%s\n" : "Loaded image ID: %s\n", id);
    }
}

static int
run(cmd_ctx *c, int argc, char **argv, bool import, cs_error **err)
{
    cs_load_result res = { 0 };
    int rc = load_or_import(c, argc, argv, import, &res, err);
    if (rc != 0)
        return rc;
    print_result(&res, import);
    cs_load_result_release(&res);
    return 0;
}

int
cmd_load(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    return run(c, argc, argv, false, err);
}

int
cmd_import(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    return run(c, argc, argv, true, err);
}
