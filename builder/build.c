/* build.c - cs_build, the driver (see build.h): read the Dockerfile, plan
 * the target's stages, build them in order, commit the target as an image. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "build_int.h"
#include "cstore/commit.h"
#include "cstore/rcache.h"
#include "run.h"

int
line_err(build *b, const cs_df_instr *in, cs_error **err)
{
    return cs_err_wrap(err, "%s:%d", b->df_path, in->line);
}

static char *
format_time(int64_t t)
{
    time_t tt = (time_t) t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char buf[64];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return cs_xstrdup(buf);
}

static int
read_dockerfile(build *b, cs_buf *text, cs_error **err)
{
    const char *path = b->o->dockerfile;
    cs_autofree char *def = NULL;
    if (!path)
        path = def = cs_path_join(b->o->context, "Dockerfile");
    b->df_path = cs_xstrdup(b->o->dockerfile ? b->o->dockerfile : "Dockerfile");
    if (!strcmp(path, "-")) {
        uint8_t buf[65536];
        ssize_t n;
        while ((n = read(0, buf, sizeof(buf))) > 0)
            cs_buf_append(text, buf, (size_t) n);
        if (n < 0)
            return cs_err(err, cs_sys_code(errno), errno, "read Dockerfile from stdin");
        return 0;
    }
    int r = cs_read_file(path, 16u << 20, text, err);
    if (r == -CS_ENOTFOUND) {
        cs_error_clear(err);
        return cs_err(err, CS_ENOTFOUND, 0, "%s: no such Dockerfile", path);
    }
    return r;
}

/* One ignore file, 0 when it does not exist. One that cannot be read is
 * skipped with a warning, as if missing. */
static int
read_ignore_file(build *b, const char *path, cs_error **err)
{
    cs_buf t;
    cs_buf_init(&t);
    cs_error *tmp = NULL;
    int r = cs_read_file(path, 16u << 20, &t, &tmp);
    if (r == 0) {
        r = cs_ignore_parse((const char *) t.data, t.len, &b->ignore, err);
        cs_sha256(t.data, t.len, &b->ignore_id);
        r = r < 0 ? cs_err_wrap(err, "%s", path) : 1;
    } else {
        if (r != -CS_ENOTFOUND)
            cs_store_warn_error(b->s, ".dockerignore", &tmp);
        cs_error_clear(&tmp);
        r = 0;
    }
    cs_buf_release(&t);
    return r;
}

static int
read_ignore(build *b, cs_error **err)
{
    /* BuildKit reads DOCKERFILE.dockerignore first, then .dockerignore. */
    cs_autofree char *specific = NULL;
    if (b->o->dockerfile && strcmp(b->o->dockerfile, "-"))
        specific = cs_xasprintf("%s.dockerignore", b->o->dockerfile);
    cs_autofree char *generic = cs_path_join(b->o->context, ".dockerignore");
    int r = specific ? read_ignore_file(b, specific, err) : 0;
    if (r == 0)
        r = read_ignore_file(b, generic, err);
    return r < 0 ? r : 0;
}

/* The stages, labelled, and the index of the target. */
static int
find_target(build *b, cs_error **err)
{
    b->nst = b->df->nstages;
    b->st = cs_xcalloc(b->nst, sizeof(bstage));
    for (size_t i = 0; i < b->nst; i++) {
        b->st[i].st = &b->df->stages[i];
        b->st[i].df = b->df;
        b->st[i].label = b->df->stages[i].name ? cs_xstrdup(b->df->stages[i].name)
                                               : cs_xasprintf("stage-%zu", i);
    }
    b->target = b->nst - 1;
    if (!b->o->target)
        return 0;
    const cs_df_stage *t = cs_df_stage_find(b->df, b->o->target);
    if (!t)
        return cs_err(err, CS_ENOTFOUND, 0, "%s: target stage '%s' could not be found", b->df_path,
                      b->o->target);
    b->target = t->index;
    return 0;
}

/* The Dockerfile, its ignore files and global ARGs: step 1 of the output. */
static int
load_definition(build *b, cs_error **err)
{
    double t0 = cs_now();
    unsigned step = step_start(b, "[internal] load build definition from %s",
                               b->o->dockerfile ? b->o->dockerfile : "Dockerfile");
    cs_buf text;
    cs_buf_init(&text);
    int r = read_dockerfile(b, &text, err);
    if (r == 0)
        r = cs_df_parse(b->df_path, (const char *) text.data, text.len, &b->df, err);
    cs_buf_release(&text);
    if (r == 0)
        r = read_ignore(b, err);
    if (r == 0)
        r = cs_df_global_args(b->df, b->o->build_args, b->o->target, &b->global, err);
    step_end(b, step, r < 0 ? CS_BUILD_STEP_ERROR : CS_BUILD_STEP_DONE, cs_now() - t0);
    return r;
}

static int
source_date_epoch(build *b, cs_error **err)
{
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    b->epoch = -1;
    if (!sde || !*sde)
        return 0;
    char *end;
    long long v = strtoll(sde, &end, 10);
    if (*end || v < 0)
        return cs_err(err, CS_EINVAL, 0, "SOURCE_DATE_EPOCH '%s' is not a number of seconds", sde);
    b->epoch = v;
    return 0;
}

/* One --platform entry names the host's: "local", or [linux/]amd64[/v1-4]
 * with containerd's spellings of amd64, or "linux" alone (its arch is the
 * host's). */
static bool
host_platform(const char *p)
{
    static const char *const arch[] = { "amd64", "x86_64", "x86-64" };
    if (!strcasecmp(p, "local") || !strcasecmp(p, "linux"))
        return true;
    if (!strncasecmp(p, "linux/", 6))
        p += 6;
    for (size_t i = 0; i < sizeof(arch) / sizeof(arch[0]); i++) {
        size_t n = strlen(arch[i]);
        if (strncasecmp(p, arch[i], n))
            continue;
        const char *v = p + n;
        return !*v
               || (v[0] == '/' && (v[1] == 'v' || v[1] == 'V') && v[2] >= '1' && v[2] <= '4'
                   && !v[3]);
    }
    return false;
}

/* The options that need no store: refused before anything runs. */
static int
check_opts(const cs_build_opts *o, cs_error **err)
{
    cs_autofree char *pl = o->platform ? cs_xstrdup(o->platform) : NULL;
    for (char *save = NULL, *p = pl ? strtok_r(pl, ",", &save) : NULL; p;
         p = strtok_r(NULL, ",", &save))
        if (!host_platform(p))
            return cs_err(err, CS_EUNSUPPORTED, 0,
                          "platform '%s' is not supported: cstore builds for linux/amd64 only", p);
    int r;
    for (char **h = o->add_hosts; h && *h; h++) {
        cs_autofree char *line = NULL;
        if ((r = cs_run_host_parse(*h, &line, err)) < 0)
            return r;
    }
    cs_run_rlimit rl;
    for (char **u = o->ulimits; u && *u; u++)
        if ((r = cs_run_rlimit_parse(*u, &rl, err)) < 0)
            return r;
    return 0;
}

int
build_init(build *b, cs_store *s, const cs_build_opts *o, cs_error **err)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->snap_mu, NULL);
    pthread_mutex_init(&b->merged_mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->locks = true;
    b->s = s;
    b->db = cs_store_db(s);
    b->o = o;
    int r = check_opts(o, err);
    if (r == 0)
        r = source_date_epoch(b, err);
    if (r < 0)
        return r;
    struct stat cst;
    if (stat(o->context, &cst) < 0 || !S_ISDIR(cst.st_mode))
        return cs_err(err, CS_ENOTFOUND, errno ? errno : ENOTDIR, "context '%s'", o->context);
    cs_error *tmp = NULL; /* mounts a killed build left behind */
    if (cs_run_cleanup_stale(s, &tmp) < 0)
        cs_store_warn_error(s, "clean up after killed builds", &tmp);
    if ((r = load_definition(b, err)) < 0 || (r = find_target(b, err)) < 0
        || (r = plan(b, b->target, err)) < 0)
        return r;
    for (size_t i = 0; i < b->nst; i++)
        for (size_t k = 0; b->st[i].state == ST_NEEDED && k < b->st[i].st->ninstrs; k++)
            b->runs_left += b->st[i].st->instrs[k].cmd == CS_DF_RUN;
    /* created: SOURCE_DATE_EPOCH, else the Unix epoch, so that the same inputs
     * give the same image digest ("now" would make every build a new image). */
    b->created = format_time(b->epoch >= 0 ? b->epoch : 0);
    return 0;
}

void
build_diffs_start(build *b)
{
    build_lock(b);
    if (!b->diffs) {
        cs_error *tmp = NULL;
        if (cs_diffid_bg_start(b->s, &b->diffs, &tmp) < 0) /* then the commit does it */
            cs_store_warn_error(b->s, "build", &tmp);
    }
    build_unlock(b);
}

void
build_diffs_add(build *b, size_t idx, const cs_digest *layers, size_t n)
{
    if (idx != b->target)
        return;
    build_lock(b);
    bool missed = b->missed;
    build_unlock(b);
    if (missed)
        build_diffs_start(b); /* unless started */
    build_lock(b);
    cs_diffid_bg *bg = b->diffs;
    build_unlock(b);
    for (size_t i = 0; bg && i < n; i++)
        cs_diffid_bg_add(bg, &layers[i]);
}

void
build_release(build *b)
{
    cs_diffid_bg_free(b->diffs); /* stops a tar being hashed: nothing to undo */
    for (size_t i = 0; i < b->nst; i++)
        stage_release(&b->st[i]);
    cs_free_all(b->st, b->hits, b->created, b->df_path, b->res.keys, b->res.images);
    cs_ignore_free(b->ignore);
    cs_df_env_free(b->global);
    cs_df_free(b->df);
    if (b->locks) {
        pthread_mutex_destroy(&b->mu);
        pthread_mutex_destroy(&b->snap_mu);
        pthread_mutex_destroy(&b->merged_mu);
        pthread_cond_destroy(&b->cv);
    }
}

/* One stage, FROM to its last instruction (its state is the scheduler's). */
int
build_stage(build *b, size_t idx, cs_error **err)
{
    bstage *st = &b->st[idx];
    int r = do_from(b, idx, err);
    for (size_t k = 0; k < st->st->ninstrs && r == 0; k++)
        r = do_instr(b, st, &st->st->instrs[k], k + 2, st->st->ninstrs + 1, err);
    return r;
}

/* --label K=V: over the Dockerfile's LABELs, after the whole stage. */
static void
apply_labels(build *b, bstage *st)
{
    json_t *labels = NULL;
    for (char **l = b->o->labels; l && *l; l++) {
        if (!labels)
            labels = obj(obj(st->cfg, "config"), "Labels");
        const char *eq = strchr(*l, '=');
        cs_autofree char *k = eq ? cs_xstrndup(*l, (size_t) (eq - *l)) : cs_xstrdup(*l);
        json_object_set_new(labels, k, json_string(eq ? eq + 1 : ""));
    }
}

/* The final config: diff_ids of every layer (inherited ones as the base
 * recorded them), created, --label. Caller frees the JSON text. */
static int
final_config(build *b, bstage *st, char **out, cs_diff_pending *pend, cs_error **err)
{
    cs_autofree cs_digest *ids = cs_xcalloc(st->nlayers + 1, sizeof(cs_digest));
    if (st->ninherited) /* FROM scratch has none (and no array) */
        memcpy(ids, st->diff_ids, st->ninherited * sizeof(cs_digest));
    /* Layers an imported cache left remote: their layer_blobs records first. */
    size_t own = st->nlayers - st->ninherited;
    int r = cs_rcache_fetch_layer_blobs(b->s, st->layers + st->ninherited, own, err);
    if (r >= 0)
        r = cs_layer_diff_ids_pending_bg(b->db, b->diffs, st->layers + st->ninherited, own,
                                         ids + st->ninherited, pend, err);
    if (r < 0)
        return r;
    json_t *a = json_array();
    for (size_t i = 0; i < st->nlayers; i++) {
        char s[CS_DIGEST_STR];
        cs_digest_str(&ids[i], s);
        json_array_append_new(a, json_string(s));
    }
    json_object_set_new(obj(st->cfg, "rootfs"), "diff_ids", a);
    json_object_set_new(obj(st->cfg, "rootfs"), "type", json_string("layers"));
    json_object_set_new(st->cfg, "created", json_string(b->created));
    apply_labels(b, st);
    *out = json_dumps(st->cfg, JSON_COMPACT | JSON_SORT_KEYS);
    return 0;
}

/* The target stage as an image, its tags, the cache entries it used. */
static int
commit(build *b, cs_digest *id, cs_error **err)
{
    bstage *st = &b->st[b->target];
    cs_autofree char *js = NULL;
    /* the new layers' diff ids are recorded with the image: one commit */
    __attribute__((cleanup(cs_diff_pending_release))) cs_diff_pending pend = { 0 };
    int r = final_config(b, st, &js, &pend, err);
    if (r < 0)
        return r;
    cs_image img = { 0 };
    img.config = js;
    img.config_len = strlen(js);
    cs_sha256(js, img.config_len, &img.id);
    img.layers = st->layers;
    img.nlayers = (uint32_t) st->nlayers;
    if ((r = cs_image_commit_pending(b->db, &img, b->o->tags, &pend, err)) < 0
        || (r = cs_cache_touch(b->db, NULL, b->hits, b->nhits, err)) < 0
        || (r = cs_db_sync(b->db, err)) < 0) /* durable before "done" */
        return r;
    *id = img.id;
    return 0;
}

static int
export_step(build *b, cs_digest *id, cs_error **err)
{
    double t0 = cs_now();
    unsigned step = step_start(b, "exporting to image");
    int r = commit(b, id, err);
    if (r < 0) {
        step_end(b, step, CS_BUILD_STEP_ERROR, 0);
        return r;
    }
    char s[CS_DIGEST_STR];
    cs_digest_str(id, s);
    step_log(b, step, "writing image %s done", s);
    for (char **t = b->o->tags; t && *t; t++)
        step_log(b, step, "naming to %s done", *t);
    step_end(b, step, CS_BUILD_STEP_DONE, cs_now() - t0);
    return 0;
}

void
cs_build_result_release(cs_build_result *r)
{
    cs_free_all(r->keys, r->images);
    r->keys = r->images = NULL;
    r->nkeys = r->nimages = 0;
}

int
cs_build(cs_store *s, const cs_build_opts *o, cs_build_result *out, cs_error **err)
{
    build b;
    memset(out, 0, sizeof(*out));
    /* The context, resolved once: a RUN bind mount hands it to the runtime,
     * which resolves a relative source against its bundle dir, not our cwd.
     * One that does not resolve is left as given for build_init to report. */
    cs_build_opts ao = *o;
    cs_autofree char *abs = realpath(o->context, NULL);
    if (abs)
        ao.context = abs;
    int r = build_init(&b, s, &ao, err);
    if (r == 0)
        r = sched_run(&b, err);
    if (r == 0)
        r = export_step(&b, &out->id, err);
    if (r == 0) {
        out->steps = b.res.steps;
        out->cached = b.res.cached;
        out->keys = cs_steal(&b.res.keys);
        out->images = cs_steal(&b.res.images);
        out->nkeys = b.res.nkeys;
        out->nimages = b.res.nimages;
    }
    build_release(&b);
    return r;
}
