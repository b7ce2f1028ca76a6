/* run.c - `cstore run`: an image's command in a container, nothing left behind. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h> /* optind */
#include "cmd.h"
#include "copy.h"
#include "cstore/image.h"
#include "cstore/merged.h"
#include "cstore/snapshot.h"
#include "run.h"

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

static void
push(char ***v, size_t *n, const char *s)
{
    *v = cs_xrealloc(*v, (*n + 2) * sizeof(char *));
    (*v)[(*n)++] = cs_xstrdup(s);
    (*v)[*n] = NULL;
}

static void
strv_free(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

int
cmd_run(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    int network = 0; /* host */
    const char *runtime = NULL;
    const cmd_opt opts[] = {
        CMD_OPT_CHOICE("network", &network, "host|none", NULL),
        CMD_OPT("runtime", 0, CMD_STRING, &runtime),
        CMD_OPT_END,
    };
    /* Options stop at NAME: what follows is the command's own. */
    cmd_args args = { .min = 0, .max = -1, .stop_at_operand = true };
    int rc;
    if ((rc = cmd_parse(c, argc, argv, opts, &args, err)) != 0)
        return rc;
    if (args.n < 1)
        return cmd_usage_error(c, "an image name is required");
    bool net_none = network == 1;
    optind = argc - args.n; /* argv[optind] is NAME, as the code below expects */
    const char *name = argv[optind];
    cs_store *s;
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    cs_run_cleanup_stale(s, NULL);
    cs_db *db = cs_store_db(s);
    MDB_txn *txn;
    if ((rc = cs_db_begin(db, MDB_RDONLY, &txn, err)) < 0)
        return rc;
    cs_digest id;
    cs_image *img = NULL;
    cs_tree *merged = NULL;
    rc = cs_image_resolve(db, txn, name, &id, err);
    if (rc == 0)
        rc = cs_image_get(db, txn, &id, &img, err);
    if (rc == 0)
        rc = cs_merged_build(db, txn, img->layers, img->nlayers, &merged, err);
    json_t *cfg = NULL;
    if (rc == 0) {
        cfg = json_loadb(img->config, img->config_len, 0, NULL);
        if (!cfg)
            rc = cs_err(err, CS_ECORRUPT, 0, "image '%s': config is not JSON", name);
    }
    json_t *cc = json_object_get(cfg, "config");
    const char *user = json_string_value(json_object_get(cc, "User"));
    uint32_t uid = 0, gid = 0;
    if (rc == 0 && user && *user)
        rc = cs_copy_lookup_user(s, txn, merged, user, &uid, &gid, err);
    mdb_txn_abort(txn);
    char **cmd = NULL, **env = NULL, **lowers = NULL;
    size_t ncmd = 0, nenv = 0, nl = 0;
    if (rc == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(cc, "Entrypoint"), i, v)
            push(&cmd, &ncmd, json_string_value(v) ?: "");
        if (optind + 1 < argc)
            for (int k = optind + 1; k < argc; k++)
                push(&cmd, &ncmd, argv[k]);
        else
            json_array_foreach(json_object_get(cc, "Cmd"), i, v)
                push(&cmd, &ncmd, json_string_value(v) ?: "");
        bool home = false;
        json_array_foreach(json_object_get(cc, "Env"), i, v)
        {
            const char *e = json_string_value(v);
            if (!e)
                continue;
            home |= !strncmp(e, "HOME=", 5);
            push(&env, &nenv, e);
        }
        if (!home)
            push(&env, &nenv, "HOME=/root");
        if (!ncmd)
            rc = cs_err(err, CS_EINVAL, 0, "image '%s' has no command: give one", name);
    }
    lowers = cs_xcalloc(img ? img->nlayers + 1 : 1, sizeof(char *));
    for (uint32_t i = 0; rc == 0 && i < img->nlayers; i++, nl++)
        rc = cs_snapshot_get(s, &img->layers[i], &lowers[i], err);
    cs_run_result res = { 0 };
    if (rc == 0) {
        const char *wd = json_string_value(json_object_get(cc, "WorkingDir"));
        cs_run_opts ro = { 0 };
        ro.lowers = (const char *const *) lowers;
        ro.nlowers = nl;
        ro.argv = cmd;
        ro.env = env;
        ro.cwd = wd && *wd ? wd : "/";
        ro.uid = uid;
        ro.gid = gid;
        ro.network_none = net_none;
        ro.runtime = runtime;
        ro.out_fd = 1;
        ro.err_fd = 2;
        fflush(stdout);
        rc = cs_run(s, &ro, &res, err);
    }
    int status = res.status;
    cs_run_result_release(&res);
    for (size_t i = 0; i < nl; i++)
        free(lowers[i]);
    free(lowers);
    strv_free(cmd);
    strv_free(env);
    json_decref(cfg);
    cs_tree_free(merged);
    cs_image_free(img);
    if (rc < 0)
        return rc;
    return status; /* the command's exit status is cstore's */
}
