/* push.c - `cstore push`: an image of the store into a registry. */
#include <stdio.h>
#include "cmd.h"
#include "push_progress.h"

const char cmd_push_usage[] =
    "usage: cstore push [OPTIONS] NAME [DEST]\n"
    "\n"
    "Push image NAME (a reference or an image id) to the registry reference DEST\n"
    "(default NAME). Blobs the registry has are skipped, blobs in another repository\n"
    "of the same registry are mounted from there. The manifest digest is the last\n"
    "line of stdout.\n"
    "\n"
    "Options:\n"
    "  --compression C        layer compression: gzip (default), zstd or none\n"
    "  --format FORMAT        manifest format: oci (default) or docker (schema 2)\n"
    "  --tls-verify=false     allow plain http and skip certificate checks\n"
    "  --cert-dir DIR         CA (*.crt) and client certificate (client.cert/.key)\n"
    "                         (default: /etc/docker/certs.d/HOST:PORT, then\n"
    "                         /etc/containers/certs.d/HOST:PORT)\n"
    "  --progress MODE        auto, plain or quiet (default auto)\n"
    "  -h, --help             show this help\n";

void
push_opts_init(cs_reg_push_opts *o, const cs_reg_opts *reg, cs_push_format fmt, cs_compression c)
{
    *o = (cs_reg_push_opts){ 0 };
    if (reg)
        o->reg = *reg;
    o->format = fmt;
    o->compression = c;
    o->progress = push_view_event;
}

int
cmd_push_one(cs_store *s, const char *name, const char *dest, cs_progress mode, cs_reg_push_opts *o,
             FILE *digest_out, cs_error **err)
{
    push_view *v = push_view_new(mode, stderr);
    o->progress_ctx = v;
    o->reg.cancel = cs_store_cancel(s);
    cs_reg_push_result res;
    int rc = cs_reg_push(s, name, dest, o, &res, err);
    push_view_free(v);
    o->progress_ctx = NULL;
    if (rc < 0)
        return rc;
    fprintf(digest_out, "%s\n", res.digest);
    return 0;
}

int
cmd_build_push(cs_store *s, char **tags, cs_progress mode, const cs_reg_opts *reg, cs_error **err)
{
    for (size_t i = 0; tags && tags[i]; i++) {
        cs_reg_push_opts o;
        push_opts_init(&o, reg, CS_PUSH_OCI, CS_COMP_GZIP);
        int rc = cmd_push_one(s, tags[i], tags[i], mode, &o, stderr, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int
cmd_push(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    /* In the order of the choices below. */
    static const cs_compression comps[] = { CS_COMP_GZIP, CS_COMP_ZSTD, CS_COMP_NONE };
    static const cs_push_format fmts[] = { CS_PUSH_OCI, CS_PUSH_DOCKER };
    static const cs_progress modes[] = { CS_PROGRESS_AUTO, CS_PROGRESS_PLAIN, CS_PROGRESS_QUIET };
    cmd_reg_opts ro = { 0 };
    int comp = 0, fmt = 0, progress = 0;
    const cmd_opt opts[] = {
        CMD_OPT_CHOICE("compression", &comp, "gzip|zstd|none", "compression"),
        CMD_OPT_CHOICE("format", &fmt, "oci|docker", "format"),
        CMD_OPTS_REGISTRY(&ro),
        CMD_OPT_CHOICE("progress", &progress, "auto|plain|quiet", NULL),
        CMD_OPT_END,
    };
    cmd_args args = { .min = 1, .max = 2 };
    int rc = cmd_parse(c, argc, argv, opts, &args, err);
    if (rc != 0)
        return rc;
    if (fmts[fmt] == CS_PUSH_DOCKER && comps[comp] == CS_COMP_ZSTD)
        return cmd_usage_error(c, "--format docker has no zstd layers (use --format oci)");
    cs_store *s;
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    cs_reg_opts reg;
    cmd_reg_opts_get(&ro, &reg);
    cs_reg_push_opts o;
    push_opts_init(&o, &reg, fmts[fmt], comps[comp]);
    return cmd_push_one(s, args.v[0], args.n > 1 ? args.v[1] : args.v[0], modes[progress], &o,
                        stdout, err);
}
