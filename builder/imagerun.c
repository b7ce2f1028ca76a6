/* imagerun.c - an image's config turned into a run (see imagerun.h). */
#include "imagerun.h"
#include "cstore/lease.h"

#include <jansson.h>
#include <string.h>
#include "copy.h"
#include "cstore/image.h"
#include "cstore/merged.h"
#include "cstore/oneshot.h"
#include "cstore/rcache.h"
#include "cstore/fuse.h"
#include "cstore/strv.h"
#include "run.h"

/* The image as a run needs it. */
typedef struct image_spec {
    cs_store *s;
    const char *name;
    cs_image *img;
    json_t *cfg;       /* the image config */
    json_t *cc;        /* its "config" (borrowed from cfg) */
    uint32_t uid, gid; /* User, resolved */
} image_spec;

static void
image_spec_release(image_spec *is)
{
    cs_image_free(is->img);
    json_decref(is->cfg);
    is->img = NULL;
    is->cfg = is->cc = NULL;
}

/* The image, its config, and its User as ids (a name is looked up in the
 * image's own /etc/passwd). */
static int
load_image(image_spec *is, cs_error **err)
{
    cs_db *db = cs_store_db(is->s);
    int rc = cs_lease_image(is->s, is->name, &is->img, err);
    if (rc < 0)
        return rc;
    is->cfg = json_loadb(is->img->config, is->img->config_len, 0, NULL);
    if (!is->cfg)
        return cs_err(err, CS_ECORRUPT, 0, "image '%s': config is not JSON", is->name);
    is->cc = json_object_get(is->cfg, "config");
    const char *user = json_string_value(json_object_get(is->cc, "User"));
    is->uid = is->gid = 0;
    if (!user || !*user)
        return 0;
    cs_tree *merged = NULL;
    if ((rc = cs_rcache_fetch_parts(is->s, is->img->layers, is->img->nlayers, err)) == 0
        && (rc = cs_merged_load(db, is->img->layers, is->img->nlayers, &merged, err)) == 0)
        rc = cs_copy_lookup_owner(is->s, merged, user, &is->uid, &is->gid, err);
    cs_tree_free(merged);
    return rc;
}

static void
add_strings(cs_strv *v, json_t *a)
{
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) cs_strv_add(v, json_string_value(e) ?: "");
}

/* Entrypoint + (cmd, else Cmd), as Docker does. */
static int
make_argv(const image_spec *is, char *const *cmd, cs_strv *argv, cs_error **err)
{
    add_strings(argv, json_object_get(is->cc, "Entrypoint"));
    if (cmd && cmd[0])
        for (char *const *a = cmd; *a; a++)
            cs_strv_add(argv, *a);
    else
        add_strings(argv, json_object_get(is->cc, "Cmd"));
    if (!argv->n)
        return cs_err(err, CS_EINVAL, 0, "image '%s' has no command: give one", is->name);
    return 0;
}

/* Puts K=V into env, replacing an entry of the same K. */
static void
env_set(cs_strv *env, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t kl = eq ? (size_t) (eq - kv) : strlen(kv);
    for (size_t i = 0; i < env->n; i++)
        if (!strncmp(env->v[i], kv, kl) && env->v[i][kl] == '=') {
            free(env->v[i]);
            env->v[i] = cs_xstrdup(kv);
            return;
        }
    cs_strv_add(env, kv);
}

/* The image's env, -e over it, and HOME=/root when neither sets HOME. */
static void
make_env(const image_spec *is, const cs_image_run_opts *o, cs_strv *env)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(is->cc, "Env"), i, v)
    {
        const char *e = json_string_value(v);
        if (e)
            cs_strv_add(env, e);
    }
    for (char *const *e = o->env; e && *e; e++)
        env_set(env, *e);
    bool home = false;
    for (size_t k = 0; k < env->n; k++)
        home |= !strncmp(env->v[k], "HOME=", 5);
    if (!home)
        cs_strv_add(env, "HOME=/root");
}

/* --add-host and --ulimit as the runtime takes them. */
typedef struct run_flags {
    cs_strv hosts;
    cs_run_rlimit *rlimits;
    size_t nrlimits;
} run_flags;

static int
parse_flags(const cs_image_run_opts *o, run_flags *f, cs_error **err)
{
    int rc;
    for (char *const *h = o->add_hosts; h && *h; h++) {
        char *line = NULL;
        if ((rc = cs_run_host_parse(*h, &line, err)) < 0)
            return rc;
        cs_strv_push(&f->hosts, line);
    }
    for (char *const *u = o->ulimits; u && *u; u++) {
        f->rlimits = cs_xrealloc(f->rlimits, (f->nrlimits + 1) * sizeof(*f->rlimits));
        if ((rc = cs_run_rlimit_parse(*u, &f->rlimits[f->nrlimits], err)) < 0)
            return rc;
        f->nrlimits++;
    }
    return 0;
}

/* The layers' lower dirs: one served view, or the snapshots (unpacked on
 * first use), bottom first. */
static int
make_lowers(cs_store *s, const cs_image *img, cs_strv *lowers, cs_error **err)
{
    return cs_lowers_get(s, img->layers, img->nlayers, lowers, err);
}

static int
run_image(image_spec *is, char **argv, char **env, cs_strv *lowers, const cs_image_run_opts *o,
          const run_flags *f, int *status, cs_error **err)
{
    const char *wd = json_string_value(json_object_get(is->cc, "WorkingDir"));
    cs_run_opts ro = {
        .lowers = (const char *const *) lowers->v,
        .nlowers = lowers->n,
        .argv = argv,
        .env = env,
        .cwd = wd && *wd ? wd : "/",
        .uid = is->uid,
        .gid = is->gid,
        .network_none = o->network_none,
        .runtime = o->runtime,
        .hosts = f->hosts.v,
        .rlimits = f->rlimits,
        .nrlimits = f->nrlimits,
        .shm_size = o->shm_size,
        .out_fd = o->out_fd,
        .err_fd = o->err_fd,
    };
    cs_run_result res;
    int rc = cs_run(is->s, &ro, &res, err);
    *status = res.status;
    cs_run_result_release(&res);
    return rc;
}

int
cs_image_run(cs_store *s, const char *name, char *const *cmd, const cs_image_run_opts *o,
             int *status, cs_error **err)
{
    *status = -1;
    cs_error *tmp = NULL;
    if (cs_run_cleanup_stale(s, &tmp) < 0) /* mounts a killed cstore left behind */
        cs_store_warn_error(s, "cleaning stale runs", &tmp);
    image_spec is = { .s = s, .name = name };
    cs_strv argv = { 0 }, env = { 0 }, lowers = { 0 };
    run_flags f = { 0 };
    int rc = parse_flags(o, &f, err);
    if (rc == 0 && (rc = load_image(&is, err)) == 0
        && (rc = make_argv(&is, cmd, &argv, err)) == 0) {
        make_env(&is, o, &env);
        if ((rc = make_lowers(s, is.img, &lowers, err)) == 0)
            rc = run_image(&is, argv.v, env.v, &lowers, o, &f, status, err);
    }
    cs_strv_release(&f.hosts);
    free(f.rlimits);
    cs_strv_release(&argv);
    cs_strv_release(&env);
    cs_strv_release(&lowers);
    image_spec_release(&is);
    return rc;
}
