/* build_copy.c - the steps that write files without running anything:
 * COPY / ADD (sources prepared by copy.c) and WORKDIR. */
#include <string.h>
#include "build_int.h"
#include "cstore/copykey.h"
#include "cstore/lease.h"
#include "copy.h"
#include "cstore/merged.h"
#include "cstore/oneshot.h"
#include "cstore/strv.h"

/* Everything a COPY step holds until it ends. */
typedef struct copy_step {
    char **args; /* expanded arguments, the last is the destination */
    int nargs;
    cs_copy_opts o;
    cs_copy_inline *inl;
    char **srcs;
    cs_strv bodies; /* heredoc bodies */
    cs_strv excludes;
    char *from, *chown, *chmod, *checksum;
    cs_copy *cp;
    from_source fs;     /* --from's stage or image */
    cs_tree *from_tree; /* an image's tree for --from (a stage's is borrowed) */
    cs_digest req;      /* --from: the request's digest (cstore/copykey.h) */
    cs_copy_from ctx;   /* a context's sources: prepared again on a miss after a summary hit */
    cs_digest ckey;     /* the sources' digest the summary answered */
} copy_step;

static void
copy_step_release(copy_step *c)
{
    cs_copy_free(c->cp);
    cs_tree_free(c->from_tree);
    from_source_release(&c->fs);
    cs_strv_release(&c->bodies);
    cs_strv_release(&c->excludes);
    cs_free_all(c->inl, c->srcs, c->from, c->chown, c->chmod, c->checksum);
    cs_df_strv_free(c->args);
}

static int
parse_chmod(const char *s, uint32_t *mode)
{
    char *end;
    unsigned long v = strtoul(s, &end, 8);
    if (!*s || *end || v > 07777)
        return -1;
    *mode = (uint32_t) v;
    return 0;
}

/* Sources: files named in the context (or --from), and heredocs. */
static int
copy_sources(build *b, bstage *st, const cs_df_instr *in, copy_step *c, cs_error **err)
{
    int n = c->nargs;
    c->inl = cs_xcalloc((size_t) n + 1, sizeof(*c->inl));
    c->srcs = cs_xcalloc((size_t) n + 1, sizeof(char *));
    for (int i = 0; i < n - 1; i++) {
        const cs_df_heredoc *h = cs_df_heredoc_for_arg(in, c->args[i]);
        if (!h) {
            c->srcs[c->o.nsrcs++] = c->args[i];
            continue;
        }
        char *body = NULL;
        if (cs_df_heredoc_body(st->df, in, h, st->env, &body, err) < 0)
            return line_err(b, in, err);
        cs_strv_push(&c->bodies, body);
        c->inl[c->o.ninl++] = (cs_copy_inline){ h->name, body, strlen(body) };
    }
    c->o.srcs = c->srcs;
    c->o.inl = c->inl;
    c->o.dest = c->args[n - 1];
    json_t *wd = json_object_get(json_object_get(st->cfg, "config"), "WorkingDir");
    c->o.workdir = json_string_value(wd) && *json_string_value(wd) ? json_string_value(wd) : "/";
    return 0;
}

static int
copy_flags(build *b, bstage *st, const cs_df_instr *in, copy_step *c, cs_error **err)
{
    int r;
    if ((r = cs_df_flag_expand(st->df, in, "from", st->env, &c->from, err)) < 0
        || (r = cs_df_flag_expand(st->df, in, "chown", st->env, &c->chown, err)) < 0
        || (r = cs_df_flag_expand(st->df, in, "chmod", st->env, &c->chmod, err)) < 0
        || (r = cs_df_flag_expand(st->df, in, "checksum", st->env, &c->checksum, err)) < 0)
        return line_err(b, in, err);
    for (size_t i = 0; i < in->nflags; i++) {
        if (strcmp(in->flags[i].name, "exclude"))
            continue;
        char *w = NULL;
        if (cs_df_word(st->df, in, in->flags[i].value ?: "", st->env, &w, err) < 0)
            return line_err(b, in, err);
        cs_strv_push(&c->excludes, w);
    }
    c->o.excludes = c->excludes.v;
    c->o.nexcludes = c->excludes.n;
    c->o.parents = cs_df_flag_bool(in, "parents");
    c->o.checksum = c->checksum;
    if (c->chmod && parse_chmod(c->chmod, &c->o.mode) < 0)
        return cs_err(err, CS_EPARSE, 0, "%s:%d: invalid --chmod '%s': use octal permissions",
                      b->df_path, in->line, c->chmod);
    c->o.chmod = c->chmod != NULL;
    return 0;
}

/* --chown names are looked up in the stage's /etc/passwd: that needs its tree. */
static int
copy_chown(build *b, bstage *st, copy_step *c, cs_error **err)
{
    const cs_tree *dest = NULL;
    if (!c->chown)
        return 0;
    int r = stage_merged(b, st, &dest, err);
    if (r == 0)
        r = lookup_user(b, dest, c->chown, &c->o.uid, &c->o.gid, err);
    c->o.chown = r == 0;
    return r;
}

/* The digest copy_keys remembers COPY --from's sources under: the source's
 * layers (immutable trees) and every field of the request. */
static void
copy_request_key(const copy_step *c, cs_digest *out)
{
    __attribute__((cleanup(cs_sha256_freep))) cs_sha256_ctx *h = cs_sha256_new();
    hash_str(h, "copy-from-tree");
    uint8_t n[8];
    cs_be64_put(n, c->fs.nlayers);
    cs_sha256_update(h, n, sizeof(n));
    for (size_t i = 0; i < c->fs.nlayers; i++)
        cs_sha256_update(h, c->fs.layers[i].b, 32);
    cs_copy_request_hash(h, &c->o);
    cs_sha256_final(h, out);
}

/* Loads --from's tree and prepares the sources from it; remembers their
 * digest for the next build. */
static int
copy_prepare_tree(build *b, const cs_df_instr *in, copy_step *c, cs_digest *ckey, cs_error **err)
{
    cs_copy_from src = { 0 };
    int r = source_load(b, in, &c->fs, &src.tree, &c->from_tree, err);
    if (r < 0)
        return r;
    if (cs_copy_prepare(b->s, NULL, &src, &c->o, NULL, &c->cp, ckey, err) < 0)
        return line_err(b, in, err);
    if (!c->fs.nlayers)
        return 0;
    cs_error *tmp = NULL;
    if (cs_copykey_put(b->db, &c->req, ckey, &c->fs.layers[c->fs.nlayers - 1], &tmp) < 0)
        cs_store_warn_error(b->s, "remembering the sources of COPY --from", &tmp);
    return 0;
}

/* COPY --from: the sources' digest without the source's tree when a build
 * already computed it from the same layers (a hit leaves c->cp NULL: the
 * caller prepares them with copy_prepare_tree on a cache miss). */
static int
copy_prepare_from(build *b, bstage *st, const cs_df_instr *in, copy_step *c, cs_sha256_ctx *kh,
                  cs_digest *ckey, cs_error **err)
{
    int r = source_resolve(b, st, in, "COPY --from", c->from, &c->fs, err);
    if (r < 0)
        return r;
    hash_str(kh, c->fs.stage >= 0 ? "from-stage" : "from-image");
    cs_sha256_update(kh, c->fs.key.b, 32);
    copy_request_key(c, &c->req);
    if ((r = cs_copykey_get(b->db, &c->req, ckey, err)) < 0)
        return line_err(b, in, err);
    return r == 1 ? 0 : copy_prepare_tree(b, in, c, ckey, err);
}

/* Prepares the sources; the key gets their digest (and --from's). No ingest
 * (no write transaction) unless a context file changed: the prepare step
 * opens its own then, so a rebuild with nothing changed only reads. From a
 * context, the selection's summary record may answer the digest alone
 * (c->cp NULL; a miss prepares again: copy_sources_late). */
static int
copy_prepare(build *b, bstage *st, const cs_df_instr *in, copy_step *c, cs_sha256_ctx *kh,
             cs_error **err)
{
    cs_copy_from src = { 0 };
    const cs_build_context *nc = c->from ? named_context(b, c->from) : NULL;
    cs_digest ckey;
    src.summary = !b->o->no_cache; /* --no-cache: every step misses, the walk is needed */
    if (nc && nc->dir) {           /* read like the main context, without .dockerignore */
        src.context_dir = nc->dir;
        hash_str(kh, "from-context");
    } else if (c->from) {
        int r = copy_prepare_from(b, st, in, c, kh, &ckey, err);
        if (r < 0)
            return r;
        cs_sha256_update(kh, ckey.b, 32);
        return 0;
    } else {
        src.context_dir = b->o->context;
        src.ignore = b->ignore;
        src.ignore_id = b->ignore ? &b->ignore_id : NULL;
    }
    if (cs_copy_prepare(b->s, NULL, &src, &c->o, NULL, &c->cp, &ckey, err) < 0)
        return line_err(b, in, err);
    c->ctx = src;
    c->ckey = ckey;
    cs_sha256_update(kh, ckey.b, 32);
    return 0;
}

/* A cache miss after the context's summary answered: the sources now,
 * through the stat cache. They must be what the summary said: a context
 * that changed in between would give a layer its key does not describe. */
static int
copy_context_late(build *b, copy_step *c, cs_error **err)
{
    cs_copy_from src = c->ctx;
    src.summary = false;
    cs_digest got;
    int r = cs_copy_prepare(b->s, NULL, &src, &c->o, NULL, &c->cp, &got, err);
    if (r == 0 && memcmp(got.b, c->ckey.b, 32))
        r = cs_err(err, CS_EBUSY, 0, "the build context changed while the build read it");
    return r;
}

/* A cache miss after copy_prepare_from answered from copy_keys: the sources
 * from the tree now, and they must be those it remembered. */
static int
copy_sources_late(build *b, const cs_df_instr *in, copy_step *c, cs_error **err)
{
    cs_digest want, got;
    if (c->cp)
        return 0;
    if (c->ctx.context_dir)
        return copy_context_late(b, c, err);
    int r = cs_copykey_get(b->db, &c->req, &want, err);
    if (r < 0 || (r = copy_prepare_tree(b, in, c, &got, err)) < 0)
        return r;
    if (r == 0 && memcmp(want.b, got.b, 32))
        return cs_err(err, CS_ECORRUPT, 0,
                      "COPY --from: the remembered sources differ from the tree's "
                      "(run 'cstore fsck')");
    return 0;
}

/* A cache miss: the layer, its tree and cache entry in one ingest. */
static int
copy_make_layer(build *b, bstage *st, copy_step *c, const cs_digest *key, cs_digest *tree,
                cs_error **err)
{
    stage_fs fs = { 0 };
    cs_ingest *ing = NULL;
    cs_tree *nl = NULL;
    int r;
    /* The destination through a view of the layers: no merged tree is
     * built or waited for (the RUN after it gets one in the background). */
    if ((r = stage_fs_open(b, st, &fs, err)) == 0 && (r = cs_ingest_begin(b->s, &ing, err)) == 0)
        r = fs.view ? cs_copy_layer_view(b->s, ing, c->cp, fs.view, &nl, err)
                    : cs_copy_layer(b->s, ing, c->cp, fs.tree, &nl, err);
    stage_fs_close(&fs);
    if (r == 0 && (r = cs_cache_put_layer(b->db, ing, key, nl, tree, err)) == 0)
        r = cs_ingest_commit(ing, err);
    cs_tree_free(nl);
    cs_ingest_free(ing);
    return r;
}

int
do_copy(build *b, bstage *st, const cs_df_instr *in, cs_sha256_ctx *kh, cs_digest *key,
        bool *cached, cs_error **err)
{
    copy_step c = { 0 };
    c.o.is_add = in->cmd == CS_DF_ADD;
    c.o.clamp_mtime = b->epoch;
    int r = c.nargs = cs_df_args(st->df, in, st->env, &c.args, err);
    if (r < 0)
        return line_err(b, in, err);
    if (c.nargs < 2)
        r = cs_err(err, CS_EPARSE, 0, "%s:%d: %s requires at least two arguments", b->df_path,
                   in->line, cs_df_cmd_name(in->cmd));
    else if ((r = copy_sources(b, st, in, &c, err)) == 0
             && (r = copy_flags(b, st, in, &c, err)) == 0 && (r = copy_chown(b, st, &c, err)) < 0)
        line_err(b, in, err);
    if (r == 0 && (r = copy_prepare(b, st, in, &c, kh, err)) == 0) {
        cs_sha256_final(kh, key);
        cs_cache_entry e;
        r = cache_lookup(b, key, &e, err);
        *cached = r > 0 && e.has_layer;
        if (r >= 0 && !*cached && (r = copy_sources_late(b, in, &c, err)) == 0)
            r = copy_make_layer(b, st, &c, key, &e.tree, err);
        if (r >= 0)
            r = stage_push_layer(b, st, &e.tree, err);
        if (r < 0)
            line_err(b, in, err);
    }
    copy_step_release(&c);
    return r < 0 ? r : 0;
}

/* ---- WORKDIR ---- */

/* Who owns the directories WORKDIR makes: the stage's USER (BuildKit's
 * Mkdir WithUser), root without one. */
typedef struct wd_owner {
    const char *user; /* NULL or "" for root */
    bool looked_up;
    uint32_t uid, gid;
} wd_owner;

static int
wd_add_dir(build *b, bstage *st, wd_owner *ow, cs_tree *layer, const char *real, cs_error **err)
{
    if (!ow->looked_up && ow->user && *ow->user) {
        const cs_tree *m = NULL; /* the user's names: in the merged tree's files */
        int r = stage_merged(b, st, &m, err);
        if (r < 0 || (r = lookup_user(b, m, ow->user, &ow->uid, &ow->gid, err)) < 0)
            return r;
    }
    ow->looked_up = true;
    cs_entry *ne = cs_tree_add(layer);
    ne->path = cs_xstrdup(real);
    ne->type = CS_E_DIR;
    ne->mode = 0755;
    ne->uid = ow->uid;
    ne->gid = ow->gid;
    ne->mtime_sec = b->epoch >= 0 ? b->epoch : 0;
    return 0;
}

/* The layer of mkdir -p dir: every missing component, resolved through
 * symlinks; below the first missing one, every further one. */
static int
workdir_entries(build *b, bstage *st, stage_fs *fs, const char *dir, wd_owner *ow, cs_tree *layer,
                cs_error **err)
{
    cs_autofree char *real = cs_xstrdup(""); /* the resolved path so far */
    bool fresh = false;                      /* real was made by this layer */
    for (const char *p = dir; *p;) {
        size_t cl = strcspn(p, "/");
        cs_autofree char *comp = cs_xstrndup(p, cl);
        p += cl + (p[cl] == '/');
        if (!*comp)
            continue;
        char *cand = *real ? cs_xasprintf("%s/%s", real, comp) : cs_xstrdup(comp);
        free(real);
        real = cand;
        int r = 0;
        if (!fresh) {
            cs_autofree char *res = NULL;
            const cs_entry *e = NULL;
            cs_error *tmp = NULL; /* not resolvable: made where it was named */
            r = stage_fs_resolve(fs, real, true, &res, &e, &tmp);
            cs_error_clear(&tmp);
            if (r == 1 && e && e->type != CS_E_DIR)
                return cs_err(err, CS_EINVAL, 0, "mkdir /%s: not a directory", real);
            if (r >= 0 && res) {
                free(real);
                real = cs_steal(&res);
            }
            if (r == 1)
                continue;
            fresh = true;
        }
        if ((r = wd_add_dir(b, st, ow, layer, real, err)) < 0)
            return r;
    }
    cs_tree_sort(layer);
    return 0;
}

static int
make_workdir_layer(build *b, bstage *st, const char *dir, cs_digest *tree, bool *made,
                   cs_error **err)
{
    stage_fs fs;
    int r = stage_fs_open(b, st, &fs, err);
    if (r < 0)
        return r;
    wd_owner ow = { json_string_value(json_object_get(obj(st->cfg, "config"), "User")), false, 0,
                    0 };
    __attribute__((cleanup(cs_tree_freep))) cs_tree *layer = cs_tree_new();
    r = workdir_entries(b, st, &fs, dir, &ow, layer, err);
    stage_fs_close(&fs);
    if (r < 0)
        return r;
    *made = layer->n > 0;
    return *made ? cs_lease_tree_store(b->s, layer, tree, err) : 0;
}

/* The new working directory: absolute, clean. */
static char *
workdir_path(bstage *st, const cs_df_instr *in, cs_error **err)
{
    char **args = NULL;
    int n = cs_df_args(st->df, in, st->env, &args, err);
    if (n < 0)
        return NULL;
    const char *cur = json_string_value(json_object_get(obj(st->cfg, "config"), "WorkingDir"));
    const char *arg = n ? args[0] : "/";
    cs_autofree char *joined =
        arg[0] == '/' ? cs_xstrdup(arg) : cs_xasprintf("%s/%s", cur && *cur ? cur : "", arg);
    cs_df_strv_free(args);
    cs_autofree char *clean = NULL;
    cs_error *tmp = NULL;
    if (cs_path_clean(joined, &clean, &tmp) < 0) { /* ".." past the root: the root */
        cs_error_clear(&tmp);
        clean = cs_xstrdup("");
    }
    return cs_xasprintf("/%s", clean);
}

int
do_workdir(build *b, bstage *st, const cs_df_instr *in, cs_sha256_ctx *kh, cs_digest *key,
           bool *has_layer, bool *cached, cs_error **err)
{
    cs_autofree char *wd = workdir_path(st, in, err);
    if (!wd)
        return line_err(b, in, err);
    json_object_set_new(obj(st->cfg, "config"), "WorkingDir", json_string(wd));
    hash_str(kh, wd);
    /* The directories it makes are owned by USER's: the key sees it. */
    const char *user = json_string_value(json_object_get(obj(st->cfg, "config"), "User"));
    if (user && *user)
        hash_str(kh, user);
    cs_sha256_final(kh, key);
    cs_cache_entry e = { 0 };
    int r = cache_lookup(b, key, &e, err);
    if (r < 0)
        return line_err(b, in, err);
    *cached = r > 0;
    if (!*cached) {
        if ((r = make_workdir_layer(b, st, wd, &e.tree, &e.has_layer, err)) < 0)
            return line_err(b, in, err);
        if ((r = cs_cache_put(b->db, NULL, key, &e, err)) < 0)
            return r;
    }
    *has_layer = e.has_layer;
    return e.has_layer ? stage_push_layer(b, st, &e.tree, err) : 0;
}
