/* build_stage.c - a stage's filesystem: FROM (a stage, an image or
 * scratch), its layers and their merged tree, and what --from names. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "build_int.h"
#include "cstore/lease.h"
#include "copy.h"
#include "cstore/merged.h"
#include "cstore/oneshot.h"
#include "cstore/rcache.h"
#include "cstore/image.h"

static void merged_bg_join(bstage *st);

void
stage_release(bstage *st)
{
    merged_bg_join(st);
    cs_free_all(st->label, st->layers, st->diff_ids, st->deps);
    json_decref(st->cfg);
    cs_tree_free(st->merged);
    cs_df_env_free(st->env);
}

static void
stage_add_layer(bstage *st, const cs_digest *tree)
{
    if (st->nlayers == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 16;
        st->layers = cs_xrealloc(st->layers, st->cap * sizeof(cs_digest));
    }
    st->layers[st->nlayers++] = *tree;
}

/* The stage's layers starting as layers[0..n), room to add more. */
static void
stage_set_layers(bstage *st, const cs_digest *layers, size_t n)
{
    st->cap = n + 16;
    st->layers = cs_xmalloc(st->cap * sizeof(cs_digest));
    memcpy(st->layers, layers, n * sizeof(cs_digest));
    st->nlayers = n;
    st->diff_ids = cs_xmalloc((n + 1) * sizeof(cs_digest));
}

/* ---- the merged tree ---- */

/* A merged tree being made in a thread of its own, from a copy of the
 * stage's layers as they were at the start (stage_add_layer may move them). */
typedef struct merged_bg {
    pthread_t thread;
    cs_db *db;
    cs_digest *layers;
    size_t n;
    long delay_ms; /* CSTORE_TEST_MERGED_DELAY_MS, tests only */
    atomic_bool stop;
    atomic_bool done; /* the thread has ended (a join will not wait) */
    cs_tree *tree;    /* the result, once joined */
    int rc;
    cs_error *err;
} merged_bg;

static void *
merged_bg_main(void *arg)
{
    merged_bg *mb = arg;
    /* Tests: the tree comes late, so that a use before the join fails (a
     * released build's stop ends the wait: its tree is then never made). */
    for (long i = 0; i < mb->delay_ms && !atomic_load(&mb->stop); i++)
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    if (!atomic_load(&mb->stop))
        mb->rc = cs_merged_load(mb->db, mb->layers, mb->n, &mb->tree, &mb->err);
    atomic_store(&mb->done, true);
    return NULL;
}

bool
stage_merged_ready(const bstage *st)
{
    return !st->bg || atomic_load(&st->bg->done);
}

void
stage_merged_start(build *b, bstage *st)
{
    if (st->merged || st->bg || !st->nlayers)
        return;
    cs_error *tmp = NULL;
    /* An imported cache's trees: their records first (rcache.h); on a
     * failure stage_merged fetches again and reports it. */
    if (cs_rcache_fetch_parts(b->s, st->layers, st->nlayers, &tmp) < 0) {
        cs_error_clear(&tmp);
        return;
    }
    merged_bg *mb = cs_xcalloc(1, sizeof(*mb));
    mb->db = b->db;
    mb->n = st->nlayers;
    mb->layers = cs_xmalloc(mb->n * sizeof(cs_digest));
    memcpy(mb->layers, st->layers, mb->n * sizeof(cs_digest));
    const char *d = getenv("CSTORE_TEST_MERGED_DELAY_MS");
    mb->delay_ms = d ? strtol(d, NULL, 10) : 0;
    if (pthread_create(&mb->thread, NULL, merged_bg_main, mb)) { /* stage_merged makes it */
        cs_free_all(mb->layers, mb);
        return;
    }
    st->bg = mb;
}

/* Joins the thread; its tree becomes the stage's (a stop: freed). Returns
 * its code, *err its chain. */
static int
merged_bg_take(bstage *st, bool stop, cs_error **err)
{
    merged_bg *mb = st->bg;
    if (!mb)
        return 0;
    atomic_store(&mb->stop, stop);
    pthread_join(mb->thread, NULL);
    st->bg = NULL;
    int r = mb->rc;
    if (r < 0 && err && !*err) /* the thread's chain, now the caller's */
        *err = cs_steal(&mb->err);
    cs_error_free(mb->err);
    if (r >= 0 && !stop) {
        st->merged = mb->tree;
        st->nmerged = mb->n;
    } else {
        cs_tree_free(mb->tree);
    }
    cs_free_all(mb->layers, mb);
    return r;
}

static void
merged_bg_join(bstage *st)
{
    cs_error *tmp = NULL;
    merged_bg_take(st, true, &tmp);
    cs_error_clear(&tmp); /* nobody wanted the tree */
}

/* Applies the layers pushed after the tree was started. */
static int
merged_catch_up(build *b, bstage *st, cs_error **err)
{
    int r = 0;
    while (r >= 0 && st->nmerged < st->nlayers) {
        const cs_digest *d = &st->layers[st->nmerged];
        __attribute__((cleanup(cs_tree_freep))) cs_tree *layer = NULL;
        if ((r = cs_rcache_fetch_parts(b->s, d, 1, err)) >= 0
            && (r = cs_tree_load(b->db, d, &layer, err)) >= 0
            && (r = cs_merged_apply(st->merged, layer, err)) >= 0)
            st->nmerged++;
    }
    return r;
}

/* A done stage's merged tree may be wanted by several stages' threads at
 * once: made under merged_mu. A stage being built is its own thread's. */
int
stage_merged(build *b, bstage *st, const cs_tree **out, cs_error **err)
{
    bool shared = st->state == ST_DONE;
    if (shared)
        pthread_mutex_lock(&b->merged_mu);
    int r = merged_bg_take(st, false, err);
    /* An imported cache's trees: their records first (rcache.h). */
    if (r >= 0 && !st->merged
        && (r = cs_rcache_fetch_parts(b->s, st->layers, st->nlayers, err)) >= 0
        && (r = cs_merged_load(b->db, st->layers, st->nlayers, &st->merged, err)) >= 0)
        st->nmerged = st->nlayers;
    if (r >= 0)
        r = merged_catch_up(b, st, err);
    *out = r >= 0 ? st->merged : NULL;
    if (shared)
        pthread_mutex_unlock(&b->merged_mu);
    return r < 0 ? r : 0;
}

/* Adds a layer made by an instruction; keeps a made merged tree current
 * (one being made catches up when joined). */
int
stage_push_layer(build *b, bstage *st, const cs_digest *tree, cs_error **err)
{
    stage_add_layer(st, tree);
    build_diffs_add(b, (size_t) (st - b->st), tree, 1);
    return st->merged && !st->bg ? merged_catch_up(b, st, err) : 0;
}

int
stage_fs_open(build *b, bstage *st, stage_fs *fs, cs_error **err)
{
    *fs = (stage_fs){ 0 };
    if (st->merged && !st->bg && st->nmerged == st->nlayers) {
        fs->tree = st->merged;
        return 0;
    }
    int r = cs_rcache_fetch_parts(b->s, st->layers, st->nlayers, err);
    return r < 0 ? r : cs_merged_view_open(b->db, st->layers, st->nlayers, &fs->view, err);
}

void
stage_fs_close(stage_fs *fs)
{
    cs_merged_view_free(fs->view);
    *fs = (stage_fs){ 0 };
}

int
stage_fs_resolve(stage_fs *fs, const char *path, bool follow_last, char **real, const cs_entry **e,
                 cs_error **err)
{
    return fs->view ? cs_merged_view_resolve(fs->view, path, follow_last, real, e, err)
                    : cs_tree_resolve(fs->tree, path, follow_last, real, e, err);
}

/* ---- --build-context ---- */

void
cs_build_context_release(cs_build_context *c)
{
    cs_free_all(c->name, c->dir, c->image);
    memset(c, 0, sizeof *c);
}

static int
context_dir(const char *spec, const char *v, char **out, cs_error **err)
{
    char buf[PATH_MAX];
    struct stat sb;
    if (!realpath(v, buf) || stat(buf, &sb) < 0)
        return cs_err(err, cs_sys_code(errno), errno, "--build-context '%s': %s", spec, v);
    if (!S_ISDIR(sb.st_mode))
        return cs_err(err, CS_EPARSE, 0, "--build-context '%s': %s is not a directory", spec, v);
    *out = cs_xstrdup(buf);
    return 0;
}

/* The name a named context is known by, as BuildKit keys them (buildx's
 * ParseContextNames, dockerui's NamedContext): the reference normalized,
 * then in its familiar form without ":latest", so "base", "base:latest" and
 * "docker.io/library/base" are one name, "base:v2" another. NULL when name is
 * no reference (a digest one: compared as written). */
static char *
context_key(const char *name)
{
    cs_autofree char *norm = NULL;
    cs_error *tmp = NULL;
    if (cs_ref_normalize(name, &norm, &tmp) < 0) {
        cs_error_clear(&tmp);
        return NULL;
    }
    const char *f = norm;
    if (!strncmp(f, "docker.io/library/", 18))
        f += 18;
    else if (!strncmp(f, "docker.io/", 10))
        f += 10;
    size_t n = strlen(f);
    if (n > 7 && !strcmp(f + n - 7, ":latest"))
        n -= 7;
    return cs_xstrndup(f, n);
}

int
cs_build_context_parse(const char *spec, cs_build_context *out, cs_error **err)
{
    static const char img[] = "docker-image://";
    memset(out, 0, sizeof *out);
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return cs_err(err, CS_EPARSE, 0,
                      "--build-context '%s': expected NAME=DIR or NAME=docker-image://REF", spec);
    const char *v = eq + 1;
    int r = 0;
    if (!strncmp(v, img, sizeof img - 1) && v[sizeof img - 1])
        out->image = cs_xstrdup(v + sizeof img - 1);
    else if (strstr(v, "://"))
        r = cs_err(err, CS_EPARSE, 0,
                   "--build-context '%s': only a directory or docker-image://REF is supported",
                   spec);
    else
        r = context_dir(spec, v, &out->dir, err);
    cs_autofree char *name = cs_xstrndup(spec, (size_t) (eq - spec));
    if (r == 0 && !(out->name = context_key(name)))
        r = cs_err(err, CS_EPARSE, 0, "--build-context '%s': invalid context name '%s'", spec,
                   name);
    if (r < 0)
        cs_build_context_release(out);
    return r;
}

const cs_build_context *
named_context(build *b, const char *name)
{
    if (!b->o->ncontexts)
        return NULL;
    cs_autofree char *key = context_key(name);
    for (size_t i = b->o->ncontexts; i-- > 0;)
        if (!strcmp(b->o->contexts[i].name, key ? key : name))
            return &b->o->contexts[i];
    return NULL;
}

int
named_context_key(build *b, const cs_build_context *nc, cs_digest *key, cs_error **err)
{
    if (nc->image) {
        __attribute__((cleanup(cs_image_freep))) cs_image *img = NULL;
        int r = build_lease_image(b, nc->image, &img, err);
        if (r == 0)
            *key = img->id;
        return r < 0 ? cs_err_wrap(err, "build context '%s'", nc->name) : 0;
    }
    char *all[] = { ".", NULL };
    cs_copy_opts o = { .srcs = all, .nsrcs = 1, .dest = "/", .workdir = "/", .clamp_mtime = -1 };
    cs_copy_from src = { .context_dir = nc->dir, .summary = true }; /* the key alone */
    cs_copy *cp = NULL;
    int r = cs_copy_prepare(b->s, NULL, &src, &o, NULL, &cp, key, err);
    cs_copy_free(cp);
    return r < 0 ? cs_err_wrap(err, "build context '%s'", nc->name) : 0;
}

/* What a --from names, before any tree is loaded: a stage (awaited; its
 * layers borrowed) or a stored image (leased, in out->img). out->key gets
 * what the cache key needs of it: the stage's key or the image id. */
int
source_resolve(build *b, bstage *st, const cs_df_instr *in, const char *what, const char *from,
               from_source *out, cs_error **err)
{
    *out = (from_source){ .stage = stage_ref(b, from, (size_t) (st - b->st)) };
    if (out->stage >= 0) {
        int r = stage_await(b, (size_t) out->stage, err);
        if (r < 0)
            return line_err(b, in, err);
        bstage *src = &b->st[out->stage];
        out->key = src->key;
        out->layers = src->layers;
        out->nlayers = src->nlayers;
        return 0;
    }
    const cs_build_context *nc = named_context(b, from);
    if (nc && nc->dir)
        return cs_err(err, CS_EUNSUPPORTED, 0,
                      "%s:%d: %s=%s: a local build context cannot be used here", b->df_path,
                      in->line, what, from);
    const char *ref_name = nc ? nc->image : from;
    int r = build_lease_image(b, ref_name, &out->img, err);
    if (r == -CS_ENOTFOUND && !b->o->resolve) {
        cs_error_clear(err);
        return cs_err(err, CS_ENOTFOUND, 0, "%s:%d: %s=%s: no such stage or image in the store",
                      b->df_path, in->line, what, ref_name);
    }
    if (r < 0)
        return line_err(b, in, err);
    out->key = out->img->id;
    out->layers = out->img->layers;
    out->nlayers = out->img->nlayers;
    build_note(b, &b->res.images, &b->res.nimages, &out->img->id);
    return 0;
}

void
from_source_release(from_source *fs)
{
    cs_image_free(fs->img);
    fs->img = NULL;
}

/* The filesystem a resolved --from names: a stage's merged tree (borrowed),
 * or a stored image's (*own, freed by the caller). */
int
source_load(build *b, const cs_df_instr *in, const from_source *fs, const cs_tree **t,
            cs_tree **own, cs_error **err)
{
    *own = NULL;
    int r = fs->stage >= 0 ? stage_merged(b, &b->st[fs->stage], t, err)
                           : cs_rcache_fetch_parts(b->s, fs->layers, fs->nlayers, err);
    if (r >= 0 && fs->stage < 0)
        r = cs_merged_load(b->db, fs->layers, fs->nlayers, own, err);
    if (r < 0)
        return line_err(b, in, err);
    if (fs->stage < 0)
        *t = *own;
    return 0;
}

int
source_tree(build *b, bstage *st, const cs_df_instr *in, const char *what, const char *from,
            const cs_tree **t, cs_tree **own, cs_digest *key, cs_error **err)
{
    from_source fs;
    int r = source_resolve(b, st, in, what, from, &fs, err);
    if (r == 0) {
        *key = fs.key;
        r = source_load(b, in, &fs, t, own, err);
    }
    from_source_release(&fs);
    return r;
}

/* USER[:GROUP] as ids, names looked up in the tree's /etc/passwd and group. */
int
lookup_user(build *b, const cs_tree *tree, const char *spec, uint32_t *uid, uint32_t *gid,
            cs_error **err)
{
    return cs_copy_lookup_owner(b->s, tree, spec, uid, gid, err);
}

/* ---- FROM ---- */

/* A stage's config carries only its own ONBUILD lines (do_from drops what it
 * inherited): they go to *onbuild, as BuildKit runs a base stage's ONBUILD
 * commands in the stage built FROM it. */
static void
from_stage(bstage *st, bstage *src, cs_sha256_ctx *h, json_t **onbuild)
{
    st->cfg = json_deep_copy(src->cfg);
    *onbuild = json_incref(json_object_get(json_object_get(st->cfg, "config"), "OnBuild"));
    stage_set_layers(st, src->layers, src->nlayers);
    st->ninherited = src->ninherited;
    memcpy(st->diff_ids, src->diff_ids, src->ninherited * sizeof(cs_digest));
    hash_str(h, "stage");
    cs_sha256_update(h, src->key.b, 32);
}

/* The base's own diff_ids describe its layers' original tars. */
static void
inherit_diff_ids(bstage *st, size_t n)
{
    json_t *ids = json_object_get(json_object_get(st->cfg, "rootfs"), "diff_ids");
    st->ninherited = json_array_size(ids) == n ? n : 0;
    for (size_t i = 0; i < st->ninherited; i++)
        if (!cs_digest_parse(json_string_value(json_array_get(ids, i)) ?: "", &st->diff_ids[i]))
            st->ninherited = 0;
}

/* An image's ONBUILD triggers go to *onbuild. */
static int
from_image(build *b, bstage *st, const char *base, cs_sha256_ctx *h, json_t **onbuild,
           cs_error **err)
{
    const cs_df_instr *in = st->st->from;
    __attribute__((cleanup(cs_image_freep))) cs_image *img = NULL;
    int r = build_lease_image(b, base, &img, err);
    if (r == -CS_ENOTFOUND && !b->o->resolve) {
        cs_error_clear(err);
        return cs_err(err, CS_ENOTFOUND, 0,
                      "%s:%d: FROM %s: no such stage or image in the store (load it "
                      "first with 'cstore load')",
                      b->df_path, in->line, base);
    }
    if (r < 0)
        return line_err(b, in, err);
    build_note(b, &b->res.images, &b->res.nimages, &img->id);
    json_error_t je;
    st->cfg = json_loadb(img->config, img->config_len, 0, &je);
    if (!json_is_object(st->cfg))
        return cs_err(err, CS_ECORRUPT, 0, "%s:%d: FROM %s: stored config is not JSON", b->df_path,
                      in->line, base);
    stage_set_layers(st, img->layers, img->nlayers);
    inherit_diff_ids(st, img->nlayers);
    hash_str(h, "image");
    cs_sha256_update(h, img->id.b, 32);
    *onbuild = json_incref(json_object_get(json_object_get(st->cfg, "config"), "OnBuild"));
    return 0;
}

static int
run_trigger(build *b, bstage *st, const char *text, cs_error **err)
{
    cs_autofree char *src = cs_xasprintf("FROM scratch\n%s\n", text);
    cs_df *mini = NULL;
    int r = cs_df_parse(b->df_path, src, strlen(src), &mini, err);
    if (r < 0)
        return cs_err_wrap(err, "%s:%d: ONBUILD trigger of the base image", b->df_path,
                           st->st->from->line);
    if (mini->nstages != 1 || mini->stages[0].ninstrs != 1) {
        cs_df_free(mini);
        return cs_err(err, CS_EPARSE, 0, "%s:%d: bad ONBUILD trigger '%s' in the base image",
                      b->df_path, st->st->from->line, text);
    }
    /* Error lines of a trigger point at the FROM that ran it. */
    cs_df_instr in = mini->stages[0].instrs[0];
    in.line = st->st->from->line;
    st->df = mini;
    r = do_instr(b, st, &in, 0, 0, err);
    st->df = b->df;
    cs_df_free(mini);
    return r;
}

/* Triggers run once, in the stage that uses the image. */
static int
run_onbuild(build *b, bstage *st, json_t *triggers, cs_error **err)
{
    size_t i;
    json_t *t;
    json_array_foreach(triggers, i, t)
    {
        const char *text = json_string_value(t);
        int r = text ? run_trigger(b, st, text, err) : 0;
        if (r < 0)
            return r;
    }
    return 0;
}

/* The base of a stage: its config, layers and first key. */
static int
from_base(build *b, size_t idx, const char *base, json_t **onbuild, cs_error **err)
{
    bstage *st = &b->st[idx];
    __attribute__((cleanup(cs_sha256_freep))) cs_sha256_ctx *h = cs_sha256_new();
    hash_str(h, "FROM");
    long ref = stage_ref(b, base, idx);
    const cs_build_context *nc = named_context(b, base);
    int r = 0;
    if (nc && nc->dir) {
        return cs_err(err, CS_EUNSUPPORTED, 0,
                      "%s:%d: FROM %s: build context '%s' is a local directory, not an image",
                      b->df_path, st->st->from->line, base, base);
    } else if (nc) {
        if ((r = from_image(b, st, nc->image, h, onbuild, err)) < 0)
            return r;
    } else if (ref >= 0) {
        if ((r = stage_await(b, (size_t) ref, err)) < 0)
            return line_err(b, st->st->from, err);
        from_stage(st, &b->st[ref], h, onbuild);
        build_diffs_add(b, idx, st->layers + st->ninherited, st->nlayers - st->ninherited);
    } else if (!strcmp(base, "scratch")) {
        st->cfg = scratch_config();
        hash_str(h, "scratch");
    } else if ((r = from_image(b, st, base, h, onbuild, err)) < 0) {
        return r;
    }
    cs_sha256_final(h, &st->key);
    return 0;
}

int
do_from(build *b, size_t idx, cs_error **err)
{
    bstage *st = &b->st[idx];
    const cs_df_instr *in = st->st->from;
    cs_autofree char *base = NULL, *platform = NULL;
    int r = cs_df_stage_from(b->df, st->st, b->global, &base, &platform, err);
    if (r < 0)
        return r;
    if (platform && strcmp(platform, "linux/amd64") && strcmp(platform, "linux/x86_64"))
        return cs_err(err, CS_EUNSUPPORTED, 0,
                      "%s:%d: FROM --platform=%s: only linux/amd64 can be built here", b->df_path,
                      in->line, platform);
    unsigned step = step_start(b, "[%s 1/%zu] FROM %s", st->label, st->st->ninstrs + 1, base);
    double t0 = cs_now();
    json_t *onbuild = NULL;
    if ((r = from_base(b, idx, base, &onbuild, err)) < 0)
        return r;
    json_object_del(obj(st->cfg, "config"), "OnBuild");
    config_default_path(st->cfg);
    st->env = cs_df_env_new();
    env_from_config(st->env, st->cfg);
    step_end(b, step, CS_BUILD_STEP_DONE, cs_now() - t0);
    if (json_array_size(onbuild))
        r = run_onbuild(b, st, onbuild, err);
    json_decref(onbuild);
    return r;
}
