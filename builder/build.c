/* build.c - the build engine (see build.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "build.h"
#include "copy.h"
#include "cstore/export.h"
#include "cstore/image.h"
#include "cstore/merged.h"
#include "dockerfile.h"
#include "ignore.h"
#include "run.h"
#include "run_mountflags.h"
#include "cstore/snapshot.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum { ST_UNUSED, ST_NEEDED, ST_BUILDING, ST_DONE };

typedef struct bstage {
    const cs_df_stage *st;
    int state;
    char *label;         /* "build", "stage-1" */
    json_t *cfg;         /* image config being built */
    cs_digest *layers;   /* tree digests, bottom first */
    cs_digest *diff_ids; /* diff_ids of the inherited layers */
    size_t nlayers, ninherited, cap;
    cs_digest key;   /* cache chain */
    cs_tree *merged; /* lazily built merged tree of layers */
    cs_df_env *env;  /* expansion scope: ENV and ARG values */
    bool cmd_set;    /* CMD given in this stage (ENTRYPOINT keeps it) */
} bstage;

typedef struct build {
    cs_store *s;
    cs_db *db;
    const cs_build_opts *o;
    cs_df *df;
    char *df_path;
    cs_df_env *global;
    cs_ignore *ignore;
    bstage *st;
    size_t nst;
    char *created; /* timestamp for config and history */
    int64_t epoch; /* SOURCE_DATE_EPOCH or -1 */
    unsigned step;
    bool tty;      /* live view: one line per step, redrawn when it ends */
    char *running; /* the step being drawn (tty) */
    cs_build_result res;
    /* cache keys that hit, to refresh their last-used time at the end */
    cs_digest *hits;
    size_t nhits, caphits;
} build;

/* ---- small helpers ---- */

static int
line_err(build *b, const cs_df_instr *in, cs_error **err)
{
    return cs_err_wrap(err, "%s:%d", b->df_path, in->line);
}

static void progress(build *b, const char *fmt, ...) CS_PRINTF(2, 3);

/* Plain lines: "#3 [build 2/4] COPY app.go .", then "#3 CACHED" / "#3 DONE 0.1s". */
static void
progress(build *b, const char *fmt, ...)
{
    if (b->o->progress == CS_PROGRESS_QUIET || !b->o->out || b->tty)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(b->o->out, fmt, ap);
    va_end(ap);
    fflush(b->o->out);
}

static unsigned step_start(build *b, const char *fmt, ...) CS_PRINTF(2, 3);

/* Starts step N: a plain line, or on a terminal a live line that step_end
 * redraws with the outcome. */
static unsigned
step_start(build *b, const char *fmt, ...)
{
    unsigned n = ++b->step;
    va_list ap;
    va_start(ap, fmt);
    char *desc = NULL;
    if (vasprintf(&desc, fmt, ap) < 0)
        abort();
    va_end(ap);
    if (b->tty) {
        free(b->running);
        b->running = desc;
        fprintf(b->o->out, "\033[34m => %s\033[0m", desc);
        fflush(b->o->out);
    } else {
        progress(b, "#%u %s\n", n, desc);
        free(desc);
    }
    return n;
}

/* state: "CACHED", "ERROR", or NULL for done in secs. */
static void
step_end(build *b, unsigned n, const char *state, double secs)
{
    if (b->tty) {
        if (!b->running)
            return;
        if (state)
            fprintf(b->o->out, "\r\033[K => %s  %s\n", b->running, state);
        else
            fprintf(b->o->out, "\r\033[K => %s  %.1fs\n", b->running, secs);
        fflush(b->o->out);
        free(b->running);
        b->running = NULL;
    } else if (state) {
        progress(b, "#%u %s\n\n", n, state);
    } else {
        progress(b, "#%u DONE %.1fs\n\n", n, secs);
    }
}

static void
hash_str(cs_sha256_ctx *h, const char *s)
{
    uint8_t len[4];
    size_t n = s ? strlen(s) : 0;
    len[0] = (uint8_t) (n >> 24), len[1] = (uint8_t) (n >> 16), len[2] = (uint8_t) (n >> 8),
    len[3] = (uint8_t) n;
    cs_sha256_update(h, len, 4);
    cs_sha256_update(h, s, n);
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

static json_t *
obj(json_t *parent, const char *key)
{
    json_t *o = json_object_get(parent, key);
    if (!json_is_object(o)) {
        o = json_object();
        json_object_set_new(parent, key, o);
    }
    return o;
}

static json_t *
strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* ---- stages ---- */

static void
stage_release(bstage *st)
{
    free(st->label);
    json_decref(st->cfg);
    free(st->layers);
    free(st->diff_ids);
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

/* Index of the stage a --from / FROM name refers to among stages before
 * `before`, -1 when it names none; -2 when it names a later stage. */
static long
stage_ref(build *b, const char *name, size_t before)
{
    const cs_df_stage *s = cs_df_stage_find(b->df, name);
    if (!s)
        return -1;
    if (s->index >= before)
        return -2;
    return (long) s->index;
}

/* Expands a stage's COPY --from (and RUN --mount from=) for planning. */
static int
from_flag(build *b, const cs_df_instr *in, char **out, cs_error **err)
{
    return cs_df_flag_expand(b->df, in, "from", b->global, out, err);
}

static int
plan(build *b, size_t i, cs_error **err)
{
    bstage *st = &b->st[i];
    if (st->state == ST_NEEDED)
        return 0;
    st->state = ST_NEEDED;
    cs_autofree char *base = NULL, *platform = NULL;
    int r = cs_df_stage_from(b->df, st->st, b->global, &base, &platform, err);
    if (r < 0)
        return r;
    long ref = stage_ref(b, base, i);
    if (ref >= 0 && (r = plan(b, (size_t) ref, err)) < 0)
        return r;
    for (size_t k = 0; k < st->st->ninstrs; k++) {
        const cs_df_instr *in = &st->st->instrs[k];
        if (in->cmd == CS_DF_RUN) {
            /* RUN --mount=...,from=STAGE needs that stage built first. */
            for (size_t f = 0; f < in->nflags; f++) {
                if (strcmp(in->flags[f].name, "mount") || !in->flags[f].value)
                    continue;
                cs_autofree char *spec = NULL;
                cs_runmount m;
                if (cs_df_word(b->df, in, in->flags[f].value, b->global, &spec, NULL) < 0
                    || cs_runmount_parse(spec, &m, NULL) < 0)
                    continue; /* reported when the RUN runs */
                ref = m.from ? stage_ref(b, m.from, i) : -1;
                bool self = m.from && cs_df_stage_find(b->df, m.from) == st->st;
                cs_runmount_release(&m);
                if (ref == -2 || self)
                    return cs_err(err, CS_EPARSE, 0,
                                  "%s:%d: RUN --mount from a later stage or itself (circular or "
                                  "forward stage reference)",
                                  b->df_path, in->line);
                if (ref >= 0 && (r = plan(b, (size_t) ref, err)) < 0)
                    return r;
            }
            continue;
        }
        if (in->cmd != CS_DF_COPY && in->cmd != CS_DF_ADD)
            continue;
        cs_autofree char *from = NULL;
        if ((r = from_flag(b, in, &from, err)) < 0)
            return r;
        if (!from)
            continue;
        ref = stage_ref(b, from, i);
        if (ref == -2 || (from && cs_df_stage_find(b->df, from) == st->st))
            return cs_err(err, CS_EPARSE, 0,
                          "%s:%d: COPY --from=%s refers to this or a later stage (circular or "
                          "forward stage reference)",
                          b->df_path, in->line, from);
        if (ref >= 0 && (r = plan(b, (size_t) ref, err)) < 0)
            return r;
    }
    return 0;
}

/* ---- merged trees ---- */

static int
stage_merged(build *b, bstage *st, const cs_tree **out, cs_error **err)
{
    if (!st->merged) {
        MDB_txn *txn;
        int r = cs_db_begin(b->db, MDB_RDONLY, &txn, err);
        if (r < 0)
            return r;
        r = cs_merged_build(b->db, txn, st->layers, st->nlayers, &st->merged, err);
        mdb_txn_abort(txn);
        if (r < 0)
            return r;
    }
    *out = st->merged;
    return 0;
}

/* Adds a layer made by an instruction; keeps the merged tree current. */
static int
stage_push_layer(build *b, bstage *st, const cs_digest *tree, cs_error **err)
{
    stage_add_layer(st, tree);
    if (!st->merged)
        return 0;
    MDB_txn *txn;
    int r = cs_db_begin(b->db, MDB_RDONLY, &txn, err);
    if (r < 0)
        return r;
    cs_tree *layer = NULL;
    r = cs_tree_get(b->db, txn, tree, &layer, err);
    mdb_txn_abort(txn);
    if (r == 0)
        r = cs_merged_apply(st->merged, layer, err);
    cs_tree_free(layer);
    return r;
}

/* ---- cache ---- */

static int
cache_get(build *b, const cs_digest *key, bool *has_layer, cs_digest *tree, cs_error **err)
{
    if (b->o->no_cache)
        return 0;
    MDB_txn *txn;
    int r = cs_db_begin(b->db, MDB_RDONLY, &txn, err);
    if (r < 0)
        return r;
    MDB_val v;
    r = cs_db_get(b->db, txn, CS_T_CACHE, key->b, 32, &v, err);
    int found = 0;
    if (r == 0 && v.mv_size == 41) {
        const uint8_t *p = v.mv_data;
        *has_layer = p[8] != 0;
        memcpy(tree->b, p + 9, 32);
        found = 1;
        /* The layer must still be there (gc may have taken it). */
        if (*has_layer && cs_db_get(b->db, txn, CS_T_TREES, tree->b, 32, &v, NULL) < 0)
            found = 0;
    }
    mdb_txn_abort(txn);
    if (r < 0 && r != -CS_ENOTFOUND)
        return r;
    if (found) {
        if (b->nhits == b->caphits) {
            b->caphits = b->caphits ? b->caphits * 2 : 16;
            b->hits = cs_xrealloc(b->hits, b->caphits * sizeof(cs_digest));
        }
        b->hits[b->nhits++] = *key;
    }
    return found;
}

static void
cache_value(uint8_t v[41], bool has_layer, const cs_digest *tree)
{
    uint64_t now = (uint64_t) time(NULL);
    for (int i = 0; i < 8; i++)
        v[i] = (uint8_t) (now >> (56 - 8 * i));
    v[8] = has_layer;
    if (has_layer)
        memcpy(v + 9, tree->b, 32);
    else
        memset(v + 9, 0, 32);
}

static int
cache_put_txn(build *b, MDB_txn *txn, const cs_digest *key, bool has_layer, const cs_digest *tree,
              cs_error **err)
{
    uint8_t v[41];
    cache_value(v, has_layer, tree);
    int r = cs_db_put(b->db, txn, CS_T_CACHE, key->b, 32, v, sizeof(v), 0, err);
    return r < 0 ? r : 0;
}

typedef struct touch_ctx {
    build *b;
} touch_ctx;

static int
touch_hits(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    build *b = ctx;
    (void) db;
    for (size_t i = 0; i < b->nhits; i++) {
        MDB_val v;
        if (cs_db_get(b->db, txn, CS_T_CACHE, b->hits[i].b, 32, &v, NULL) < 0 || v.mv_size != 41)
            continue;
        uint8_t nv[41];
        memcpy(nv, v.mv_data, 41);
        /* Within the hour is recent enough for the gc policy: a rebuild
         * with nothing changed then writes nothing (and syncs nothing). */
        uint64_t used = 0;
        for (int k = 0; k < 8; k++)
            used = used << 8 | nv[k];
        if (used + 3600 > (uint64_t) time(NULL))
            continue;
        cs_digest t;
        memcpy(t.b, nv + 9, 32);
        int r = cache_put_txn(b, txn, &b->hits[i], nv[8], &t, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- FROM ---- */

static json_t *
scratch_config(void)
{
    json_t *c = json_pack("{s:s, s:s, s:{}, s:{s:s, s:[]}, s:[]}", "architecture", "amd64", "os",
                          "linux", "config", "rootfs", "type", "layers", "diff_ids", "history");
    return c;
}

/* ENV of a config into an expansion scope. */
static void
env_from_config(cs_df_env *env, json_t *cfg)
{
    json_t *e = json_object_get(json_object_get(cfg, "config"), "Env");
    size_t i;
    json_t *v;
    json_array_foreach(e, i, v)
    {
        const char *s = json_string_value(v);
        const char *eq = s ? strchr(s, '=') : NULL;
        if (!eq)
            continue;
        cs_autofree char *k = cs_xstrndup(s, (size_t) (eq - s));
        cs_df_env_set(env, k, eq + 1);
    }
}

static void
config_set_env(json_t *cfg, const char *key, const char *value)
{
    json_t *c = obj(cfg, "config");
    json_t *e = json_object_get(c, "Env");
    if (!json_is_array(e)) {
        e = json_array();
        json_object_set_new(c, "Env", e);
    }
    cs_autofree char *kv = cs_xasprintf("%s=%s", key, value);
    size_t kl = strlen(key);
    size_t i;
    json_t *v;
    json_array_foreach(e, i, v)
    {
        const char *s = json_string_value(v);
        if (s && !strncmp(s, key, kl) && s[kl] == '=') {
            json_array_set_new(e, i, json_string(kv));
            return;
        }
    }
    json_array_append_new(e, json_string(kv));
}

static int do_instr(build *b, bstage *st, const cs_df_instr *in, size_t num, size_t total,
                    cs_error **err);

static int
run_onbuild(build *b, bstage *st, json_t *triggers, cs_error **err)
{
    size_t i;
    json_t *t;
    json_array_foreach(triggers, i, t)
    {
        const char *text = json_string_value(t);
        if (!text)
            continue;
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
        cs_df *saved = b->df;
        b->df = mini;
        r = do_instr(b, st, &in, 0, 0, err);
        b->df = saved;
        cs_df_free(mini);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
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
    size_t total = st->st->ninstrs + 1;
    unsigned step = step_start(b, "[%s 1/%zu] FROM %s", st->label, total, base);
    double t0 = cs_now();
    cs_sha256_ctx *h = cs_sha256_new();
    hash_str(h, "FROM");
    long ref = stage_ref(b, base, idx);
    json_t *onbuild = NULL;
    if (ref >= 0) {
        bstage *src = &b->st[ref];
        st->cfg = json_deep_copy(src->cfg);
        st->cap = src->nlayers + 16;
        st->layers = cs_xmalloc(st->cap * sizeof(cs_digest));
        memcpy(st->layers, src->layers, src->nlayers * sizeof(cs_digest));
        st->nlayers = src->nlayers;
        st->ninherited = src->ninherited;
        st->diff_ids = cs_xmalloc((src->ninherited + 1) * sizeof(cs_digest));
        memcpy(st->diff_ids, src->diff_ids, src->ninherited * sizeof(cs_digest));
        hash_str(h, "stage");
        cs_sha256_update(h, src->key.b, 32);
    } else if (!strcmp(base, "scratch")) {
        st->cfg = scratch_config();
        hash_str(h, "scratch");
    } else {
        MDB_txn *txn;
        r = cs_db_begin(b->db, MDB_RDONLY, &txn, err);
        if (r < 0) {
            cs_sha256_free(h);
            return r;
        }
        cs_digest id;
        cs_image *img = NULL;
        r = cs_image_resolve(b->db, txn, base, &id, err);
        if (r == 0)
            r = cs_image_get(b->db, txn, &id, &img, err);
        mdb_txn_abort(txn);
        if (r < 0) {
            cs_sha256_free(h);
            if (r == -CS_ENOTFOUND) {
                cs_error_clear(err);
                return cs_err(err, CS_ENOTFOUND, 0,
                              "%s:%d: FROM %s: no such stage or image in the store (load it "
                              "first with 'cstore load')",
                              b->df_path, in->line, base);
            }
            return line_err(b, in, err);
        }
        json_error_t je;
        st->cfg = json_loadb(img->config, img->config_len, 0, &je);
        if (!json_is_object(st->cfg)) {
            cs_image_free(img);
            cs_sha256_free(h);
            return cs_err(err, CS_ECORRUPT, 0, "%s:%d: FROM %s: stored config is not JSON",
                          b->df_path, in->line, base);
        }
        st->cap = img->nlayers + 16;
        st->layers = cs_xmalloc(st->cap * sizeof(cs_digest));
        memcpy(st->layers, img->layers, img->nlayers * sizeof(cs_digest));
        st->nlayers = img->nlayers;
        /* The base's own diff_ids describe its layers' original tars. */
        json_t *ids = json_object_get(json_object_get(st->cfg, "rootfs"), "diff_ids");
        st->diff_ids = cs_xmalloc((img->nlayers + 1) * sizeof(cs_digest));
        st->ninherited = json_array_size(ids) == img->nlayers ? img->nlayers : 0;
        for (size_t i = 0; i < st->ninherited; i++)
            if (!cs_digest_parse(json_string_value(json_array_get(ids, i)) ?: "", &st->diff_ids[i]))
                st->ninherited = 0;
        hash_str(h, "image");
        cs_sha256_update(h, img->id.b, 32);
        cs_image_free(img);
        onbuild = json_incref(json_object_get(json_object_get(st->cfg, "config"), "OnBuild"));
    }
    cs_sha256_final(h, &st->key);
    cs_sha256_free(h);
    /* Triggers run once, in the stage that uses the image. */
    json_object_del(obj(st->cfg, "config"), "OnBuild");
    json_t *c = obj(st->cfg, "config");
    json_t *e = json_object_get(c, "Env");
    bool has_path = false;
    size_t i;
    json_t *v;
    json_array_foreach(e, i, v) has_path |=
        json_string_value(v) && !strncmp(json_string_value(v), "PATH=", 5);
    if (!has_path) {
        if (!json_is_array(e)) {
            e = json_array();
            json_object_set_new(c, "Env", e);
        }
        json_array_append_new(e, json_string(DEFAULT_PATH));
    }
    st->env = cs_df_env_new();
    env_from_config(st->env, st->cfg);
    step_end(b, step, NULL, cs_now() - t0);
    r = 0;
    if (json_array_size(onbuild))
        r = run_onbuild(b, st, onbuild, err);
    json_decref(onbuild);
    return r;
}

/* ---- history and config ---- */

static void
add_history(build *b, bstage *st, const char *created_by, bool empty)
{
    json_t *h = json_object_get(st->cfg, "history");
    if (!json_is_array(h)) {
        h = json_array();
        json_object_set_new(st->cfg, "history", h);
    }
    json_t *e = json_pack("{s:s, s:s, s:s}", "created", b->created, "created_by", created_by,
                          "comment", "buildkit.dockerfile.v0");
    if (empty)
        json_object_set_new(e, "empty_layer", json_true());
    json_array_append_new(h, e);
}

/* The instruction as BuildKit's history shows it: "KEYWORD args". */
static char *
history_text(const cs_df_instr *in)
{
    const char *orig = in->original;
    /* original starts with the keyword as written: normalize it. */
    const char *sp = orig;
    while (*sp && *sp != ' ' && *sp != '\t')
        sp++;
    while (*sp == ' ' || *sp == '\t')
        sp++;
    return cs_xasprintf("%s %s", cs_df_cmd_name(in->cmd), sp);
}

/* Command for CMD/ENTRYPOINT/HEALTHCHECK: exec form as is, shell form through SHELL. */
static json_t *
command_json(bstage *st, const cs_df_instr *in, char *const *args, size_t n, bool json)
{
    if (json)
        return strv_json(args, n);
    json_t *shell = json_object_get(json_object_get(st->cfg, "config"), "Shell");
    json_t *a =
        json_array_size(shell) ? json_deep_copy(shell) : json_pack("[s,s]", "/bin/sh", "-c");
    (void) in;
    json_array_append_new(a, json_string(n ? args[0] : ""));
    return a;
}

static int
do_metadata(build *b, bstage *st, const cs_df_instr *in, cs_error **err)
{
    json_t *c = obj(st->cfg, "config");
    int r = 0;
    switch (in->cmd) {
    case CS_DF_ENV: {
        cs_df_kv *kvs = NULL;
        int n = cs_df_kvs(b->df, in, st->env, &kvs, err);
        if (n < 0)
            return line_err(b, in, err);
        for (int i = 0; i < n; i++) {
            config_set_env(st->cfg, kvs[i].key, kvs[i].value ? kvs[i].value : "");
            cs_df_env_set(st->env, kvs[i].key, kvs[i].value ? kvs[i].value : "");
        }
        cs_df_kvs_free(kvs, (size_t) n);
        break;
    }
    case CS_DF_LABEL: {
        cs_df_kv *kvs = NULL;
        int n = cs_df_kvs(b->df, in, st->env, &kvs, err);
        if (n < 0)
            return line_err(b, in, err);
        json_t *l = obj(c, "Labels");
        for (int i = 0; i < n; i++)
            json_object_set_new(l, kvs[i].key, json_string(kvs[i].value ? kvs[i].value : ""));
        cs_df_kvs_free(kvs, (size_t) n);
        break;
    }
    case CS_DF_ARG:
        r = cs_df_arg_apply(b->df, in, b->global, b->o->build_args, st->env, err);
        if (r < 0)
            return line_err(b, in, err);
        break;
    case CS_DF_MAINTAINER:
        json_object_set_new(st->cfg, "author", json_string(in->nargs ? in->args[0] : ""));
        break;
    case CS_DF_CMD:
    case CS_DF_ENTRYPOINT: {
        json_t *cmd = command_json(st, in, in->args, in->nargs, in->json);
        if (in->cmd == CS_DF_CMD) {
            json_object_set_new(c, "Cmd", cmd);
            st->cmd_set = true;
        } else {
            json_object_set_new(c, "Entrypoint", cmd);
            if (!st->cmd_set)
                json_object_set_new(c, "Cmd", json_null());
        }
        break;
    }
    case CS_DF_SHELL:
        json_object_set_new(c, "Shell", strv_json(in->args, in->nargs));
        break;
    case CS_DF_EXPOSE:
    case CS_DF_VOLUME:
    case CS_DF_USER:
    case CS_DF_STOPSIGNAL: {
        char **args = NULL;
        int n = cs_df_args(b->df, in, st->env, &args, err);
        if (n < 0)
            return line_err(b, in, err);
        if (in->cmd == CS_DF_EXPOSE) {
            json_t *p = obj(c, "ExposedPorts");
            for (int i = 0; i < n; i++) {
                cs_autofree char *port =
                    strchr(args[i], '/') ? cs_xstrdup(args[i]) : cs_xasprintf("%s/tcp", args[i]);
                for (char *q = port; *q; q++)
                    if (*q >= 'A' && *q <= 'Z')
                        *q = (char) (*q - 'A' + 'a');
                json_object_set_new(p, port, json_object());
            }
        } else if (in->cmd == CS_DF_VOLUME) {
            json_t *vol = obj(c, "Volumes");
            for (int i = 0; i < n; i++)
                if (*args[i])
                    json_object_set_new(vol, args[i], json_object());
        } else if (in->cmd == CS_DF_USER) {
            json_object_set_new(c, "User", json_string(n ? args[0] : ""));
        } else {
            json_object_set_new(c, "StopSignal", json_string(n ? args[0] : ""));
        }
        cs_df_strv_free(args);
        break;
    }
    case CS_DF_HEALTHCHECK: {
        cs_df_health hc = { 0 };
        r = cs_df_healthcheck(b->df, in, &hc, err);
        if (r < 0)
            return line_err(b, in, err);
        size_t n = 0;
        while (hc.test && hc.test[n])
            n++;
        json_t *j = json_pack("{s:o}", "Test", strv_json(hc.test, n));
        if (hc.interval_ns)
            json_object_set_new(j, "Interval", json_integer(hc.interval_ns));
        if (hc.timeout_ns)
            json_object_set_new(j, "Timeout", json_integer(hc.timeout_ns));
        if (hc.start_period_ns)
            json_object_set_new(j, "StartPeriod", json_integer(hc.start_period_ns));
        if (hc.start_interval_ns)
            json_object_set_new(j, "StartInterval", json_integer(hc.start_interval_ns));
        if (hc.retries)
            json_object_set_new(j, "Retries", json_integer(hc.retries));
        json_object_set_new(c, "Healthcheck", j);
        cs_df_health_release(&hc);
        break;
    }
    case CS_DF_ONBUILD: {
        json_t *o = json_object_get(c, "OnBuild");
        if (!json_is_array(o)) {
            o = json_array();
            json_object_set_new(c, "OnBuild", o);
        }
        json_array_append_new(o, json_string(in->nargs ? in->args[0] : ""));
        break;
    }
    default:
        return cs_err(err, CS_EINVAL, 0, "%s:%d: internal: not a metadata instruction", b->df_path,
                      in->line);
    }
    return 0;
}

/* ---- WORKDIR ---- */

static int
make_workdir_layer(build *b, bstage *st, const char *dir, cs_digest *tree, bool *made,
                   cs_error **err)
{
    const cs_tree *m;
    int r = stage_merged(b, st, &m, err);
    if (r < 0)
        return r;
    *made = false;
    /* mkdir -p: every missing component, resolved through symlinks. */
    cs_autofree char *path = cs_xstrdup(dir);
    cs_tree *layer = cs_tree_new();
    char *p = path;
    while (*p == '/')
        p++;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = 0;
        if (*path) {
            char *real = NULL;
            const cs_entry *e = NULL;
            r = cs_tree_resolve(m, path, true, &real, &e, NULL);
            if (r == 0 && real && !cs_tree_find(layer, real)) {
                cs_entry *ne = cs_tree_add(layer);
                ne->path = cs_xstrdup(real);
                ne->type = CS_E_DIR;
                ne->mode = 0755;
                ne->mtime_sec = b->epoch >= 0 ? b->epoch : 0;
                cs_tree_sort(layer);
            } else if (r == 1 && e && e->type != CS_E_DIR) {
                free(real);
                cs_tree_free(layer);
                return cs_err(err, CS_EINVAL, 0, "mkdir %s: not a directory", path);
            }
            free(real);
        }
        if (!slash)
            break;
        *slash = '/';
        p = slash + 1;
    }
    if (layer->n) {
        MDB_txn *txn;
        r = cs_db_begin(b->db, 0, &txn, err);
        if (r == 0) {
            r = cs_tree_put(b->db, txn, layer, tree, err);
            if (r == 0)
                r = cs_db_commit(txn, err);
            else
                mdb_txn_abort(txn);
        }
        *made = r == 0;
    }
    cs_tree_free(layer);
    return r;
}

/* The filesystem a --from names: a stage's merged tree (borrowed), or a
 * stored image's (*own, freed by the caller). *key gets what the cache key
 * needs of it: the stage's key or the image id. */
static int
source_tree(build *b, bstage *st, const cs_df_instr *in, const char *what, const char *from,
            const cs_tree **t, cs_tree **own, cs_digest *key, cs_error **err)
{
    *own = NULL;
    long ref = stage_ref(b, from, (size_t) (st - b->st));
    if (ref >= 0) {
        *key = b->st[ref].key;
        int r = stage_merged(b, &b->st[ref], t, err);
        return r < 0 ? line_err(b, in, err) : 0;
    }
    MDB_txn *txn;
    int r = cs_db_begin(b->db, MDB_RDONLY, &txn, err);
    if (r < 0)
        return line_err(b, in, err);
    cs_image *img = NULL;
    r = cs_image_resolve(b->db, txn, from, key, err);
    if (r == 0)
        r = cs_image_get(b->db, txn, key, &img, err);
    if (r == 0)
        r = cs_merged_build(b->db, txn, img->layers, img->nlayers, own, err);
    mdb_txn_abort(txn);
    cs_image_free(img);
    if (r == -CS_ENOTFOUND) {
        cs_error_clear(err);
        return cs_err(err, CS_ENOTFOUND, 0, "%s:%d: %s=%s: no such stage or image in the store",
                      b->df_path, in->line, what, from);
    }
    if (r < 0)
        return line_err(b, in, err);
    *t = *own;
    return 0;
}

/* ---- COPY / ADD ---- */

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

static int
do_copy(build *b, bstage *st, const cs_df_instr *in, cs_digest *key, cs_sha256_ctx *kh,
        bool *cached, cs_error **err)
{
    char **args = NULL;
    int n = cs_df_args(b->df, in, st->env, &args, err);
    if (n < 0)
        return line_err(b, in, err);
    int r = 0;
    cs_copy_opts o = { 0 };
    o.is_add = in->cmd == CS_DF_ADD;
    o.clamp_mtime = b->epoch;
    cs_copy_inline *inl = cs_xcalloc((size_t) n + 1, sizeof(*inl));
    char **srcs = cs_xcalloc((size_t) n + 1, sizeof(char *));
    char **bodies = cs_xcalloc((size_t) n + 1, sizeof(char *));
    cs_autofree char *from = NULL, *chown = NULL, *chmod = NULL, *checksum = NULL;
    cs_copy *cp = NULL;
    cs_ingest *ing = NULL;
    cs_tree *layer = NULL;
    char **excludes = NULL;
    size_t nexcl = 0;
    if (n < 2) {
        r = cs_err(err, CS_EPARSE, 0, "%s:%d: %s requires at least two arguments", b->df_path,
                   in->line, cs_df_cmd_name(in->cmd));
        goto out;
    }
    for (int i = 0; i < n - 1; i++) {
        const cs_df_heredoc *h = cs_df_heredoc_for_arg(in, args[i]);
        if (h) {
            r = cs_df_heredoc_body(b->df, in, h, st->env, &bodies[o.ninl], err);
            if (r < 0)
                goto line;
            inl[o.ninl].name = h->name;
            inl[o.ninl].data = bodies[o.ninl];
            inl[o.ninl].len = strlen(bodies[o.ninl]);
            o.ninl++;
        } else {
            srcs[o.nsrcs++] = args[i];
        }
    }
    o.srcs = srcs;
    o.inl = inl;
    o.dest = args[n - 1];
    json_t *wd = json_object_get(json_object_get(st->cfg, "config"), "WorkingDir");
    o.workdir = json_string_value(wd) && *json_string_value(wd) ? json_string_value(wd) : "/";
    if ((r = cs_df_flag_expand(b->df, in, "from", st->env, &from, err)) < 0
        || (r = cs_df_flag_expand(b->df, in, "chown", st->env, &chown, err)) < 0
        || (r = cs_df_flag_expand(b->df, in, "chmod", st->env, &chmod, err)) < 0
        || (r = cs_df_flag_expand(b->df, in, "checksum", st->env, &checksum, err)) < 0)
        goto line;
    for (size_t i = 0; i < in->nflags; i++) {
        if (strcmp(in->flags[i].name, "exclude"))
            continue;
        excludes = cs_xrealloc(excludes, (nexcl + 2) * sizeof(char *));
        r = cs_df_word(b->df, in, in->flags[i].value ? in->flags[i].value : "", st->env,
                       &excludes[nexcl], err);
        if (r < 0)
            goto line;
        excludes[++nexcl] = NULL;
    }
    o.excludes = excludes;
    o.nexcludes = nexcl;
    o.parents = cs_df_flag_bool(in, "parents");
    o.checksum = checksum;
    if (chmod) {
        o.chmod = true;
        if (parse_chmod(chmod, &o.mode) < 0) {
            r = cs_err(err, CS_EPARSE, 0, "%s:%d: invalid --chmod '%s': use octal permissions",
                       b->df_path, in->line, chmod);
            goto out;
        }
    }
    const cs_tree *dest_tree = NULL;
    if (chown) {
        /* Names are looked up in the stage's /etc/passwd: that needs its tree. */
        if ((r = stage_merged(b, st, &dest_tree, err)) < 0)
            goto line;
        MDB_txn *txn;
        if ((r = cs_db_begin(b->db, MDB_RDONLY, &txn, err)) < 0)
            goto line;
        r = cs_copy_lookup_user(b->s, txn, dest_tree, chown, &o.uid, &o.gid, err);
        mdb_txn_abort(txn);
        if (r < 0)
            goto line;
        o.chown = true;
    }
    cs_copy_from src = { 0 };
    if (from) {
        cs_digest fk;
        bool stage = stage_ref(b, from, (size_t) (st - b->st)) >= 0;
        /* An image's tree is owned here (freed at out with `layer`). */
        if ((r = source_tree(b, st, in, "COPY --from", from, &src.tree, &layer, &fk, err)) < 0)
            goto out;
        hash_str(kh, stage ? "from-stage" : "from-image");
        cs_sha256_update(kh, fk.b, 32);
    } else {
        src.context_dir = b->o->context;
        src.ignore = b->ignore;
    }
    /* No ingest (no write transaction) unless a context file changed: the
     * prepare step opens its own then. A rebuild with nothing changed only
     * reads. */
    cs_digest ckey;
    r = cs_copy_prepare(b->s, NULL, &src, &o, NULL, &cp, &ckey, err);
    if (r < 0)
        goto line;
    cs_sha256_update(kh, ckey.b, 32);
    cs_sha256_final(kh, key);
    bool has_layer = false;
    cs_digest tree;
    int hit = cache_get(b, key, &has_layer, &tree, err);
    if (hit < 0) {
        r = hit;
        goto line;
    }
    if (hit && has_layer) {
        *cached = true;
        r = stage_push_layer(b, st, &tree, err);
        goto out;
    }
    if ((r = stage_merged(b, st, &dest_tree, err)) < 0
        || (r = cs_ingest_begin(b->s, &ing, err)) < 0)
        goto line;
    cs_tree *nl = NULL;
    r = cs_copy_layer(b->s, ing, cp, dest_tree, &nl, err);
    if (r < 0)
        goto line;
    r = cs_tree_put(b->db, cs_ingest_txn(ing), nl, &tree, err);
    if (r == 0)
        r = cache_put_txn(b, cs_ingest_txn(ing), key, true, &tree, err);
    cs_tree_free(nl);
    if (r == 0)
        r = cs_ingest_commit(ing, err);
    if (r == 0)
        r = stage_push_layer(b, st, &tree, err);
    if (r < 0)
        goto line;
    goto out;
line:
    line_err(b, in, err);
out:
    cs_copy_free(cp);
    cs_ingest_free(ing);
    cs_tree_free(layer);
    for (size_t i = 0; i < o.ninl; i++)
        free(bodies[i]);
    free(bodies);
    free(inl);
    free(srcs);
    cs_df_strv_free(excludes);
    cs_df_strv_free(args);
    return r;
}

/* ---- RUN ---- */

/* The command RUN executes: exec form as is; shell form (or a heredoc that
 * is the whole command) through the stage's SHELL. */
static int
run_argv(build *b, bstage *st, const cs_df_instr *in, char ***argv, cs_error **err)
{
    json_t *shell = json_object_get(json_object_get(st->cfg, "config"), "Shell");
    char **v = NULL;
    size_t n = 0;
    if (in->json) {
        v = cs_xcalloc(in->nargs + 1, sizeof(char *));
        for (size_t i = 0; i < in->nargs; i++)
            v[n++] = cs_xstrdup(in->args[i]);
        *argv = v;
        return 0;
    }
    cs_autofree char *script = NULL;
    const char *cmd = in->nargs ? in->args[0] : "";
    if (in->nheredocs) {
        const cs_df_heredoc *h = cs_df_heredoc_for_arg(in, cmd);
        if (!h || in->nheredocs != 1)
            return cs_err(err, CS_EUNSUPPORTED, 0,
                          "%s:%d: RUN with a heredoc is supported only as the whole command "
                          "(RUN <<EOF)",
                          b->df_path, in->line);
        /* The body is a script for the shell, variables left to it. */
        int r = cs_df_heredoc_body(b->df, in, h, NULL, &script, err);
        if (r < 0)
            return line_err(b, in, err);
        cmd = script;
    }
    size_t ns = json_array_size(shell);
    v = cs_xcalloc((ns ? ns : 2) + 2, sizeof(char *)); /* shell, command, NULL */
    if (ns) {
        for (size_t i = 0; i < ns; i++)
            v[n++] = cs_xstrdup(json_string_value(json_array_get(shell, i)) ?: "");
    } else {
        v[n++] = cs_xstrdup("/bin/sh");
        v[n++] = cs_xstrdup("-c");
    }
    v[n++] = cs_xstrdup(cmd);
    *argv = v;
    return 0;
}

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st, (void) ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

/* rm -rf that never follows a symlink (FTW_PHYS). */
static void
remove_tree(const char *dir)
{
    nftw(dir, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static void
strv_free(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

/* KEY=VALUE for every ENV and ARG in scope, HOME added as Docker does. */
static char **
run_env(bstage *st)
{
    size_t n = cs_df_env_count(st->env);
    char **v = cs_xcalloc(n + 2, sizeof(char *));
    bool home = false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *key, *val;
        cs_df_env_at(st->env, i, &key, &val);
        if (!val)
            continue;
        home |= !strcmp(key, "HOME");
        v[k++] = cs_xasprintf("%s=%s", key, val);
    }
    if (!home)
        v[k++] = cs_xstrdup("HOME=/root");
    return v;
}

/* A directory holding the filesystem of stage or image `from`, for
 * RUN --mount=type=bind,from=... */
static int
from_dir(build *b, bstage *st, const cs_df_instr *in, const char *from, char **dir, cs_error **err)
{
    const cs_tree *t = NULL;
    cs_tree *own = NULL;
    MDB_txn *txn;
    cs_digest key;
    int r = source_tree(b, st, in, "RUN --mount from", from, &t, &own, &key, err);
    if (r < 0)
        return r;
    cs_digest d;
    if ((r = cs_db_begin(b->db, 0, &txn, err)) == 0) {
        r = cs_tree_put(b->db, txn, t, &d, err);
        r = r < 0 ? (mdb_txn_abort(txn), r) : cs_db_commit(txn, err);
    }
    cs_tree_free(own);
    if (r == 0)
        r = cs_snapshot_get(b->s, &d, dir, err);
    return r < 0 ? line_err(b, in, err) : 0;
}

static int
do_run(build *b, bstage *st, const cs_df_instr *in, cs_sha256_ctx *kh, cs_digest *key, bool *cached,
       cs_error **err)
{
    char **argv = NULL, **env = NULL;
    cs_runmount *mounts = NULL;
    cs_run_mount *rm = NULL;
    char **mdirs = NULL;
    size_t nm = 0;
    char **lowers = NULL;
    size_t nlowers = 0;
    cs_ingest *ing = NULL;
    cs_run_result res = { 0 };
    cs_autofree char *netflag = NULL;
    int r = run_argv(b, st, in, &argv, err);
    if (r < 0)
        return r;
    env = run_env(st);
    for (char **p = argv; *p; p++)
        hash_str(kh, *p);
    for (char **p = env; *p; p++)
        hash_str(kh, *p);
    json_t *c = json_object_get(st->cfg, "config");
    const char *user = json_string_value(json_object_get(c, "User"));
    const char *wd = json_string_value(json_object_get(c, "WorkingDir"));
    hash_str(kh, user ? user : "");
    hash_str(kh, wd ? wd : "/");
    if ((r = cs_df_flag_expand(b->df, in, "network", st->env, &netflag, err)) < 0)
        goto line;
    bool net_none = netflag ? !strcmp(netflag, "none") : b->o->network_none;
    if (netflag && strcmp(netflag, "none") && strcmp(netflag, "host")
        && strcmp(netflag, "default")) {
        r = cs_err(err, CS_EPARSE, 0, "%s:%d: RUN --network=%s: use default, none or host",
                   b->df_path, in->line, netflag);
        goto out;
    }
    hash_str(kh, net_none ? "net:none" : "net:host");
    for (size_t i = 0; i < in->nflags; i++) {
        if (strcmp(in->flags[i].name, "mount"))
            continue;
        cs_autofree char *spec = NULL;
        if ((r = cs_df_word(b->df, in, in->flags[i].value ?: "", st->env, &spec, err)) < 0)
            goto line;
        mounts = cs_xrealloc(mounts, (nm + 1) * sizeof(*mounts));
        if ((r = cs_runmount_parse(spec, &mounts[nm], err)) < 0)
            goto line;
        if (mounts[nm].from) { /* a stage's content is in its key */
            long ref = stage_ref(b, mounts[nm].from, (size_t) (st - b->st));
            if (ref >= 0)
                cs_sha256_update(kh, b->st[ref].key.b, 32);
        }
        nm++;
        hash_str(kh, spec);
    }
    cs_sha256_final(kh, key);
    bool has_layer = false;
    cs_digest tree;
    int hit = cache_get(b, key, &has_layer, &tree, err);
    if (hit < 0) {
        r = hit;
        goto line;
    }
    if (hit) {
        *cached = true;
        if (has_layer)
            r = stage_push_layer(b, st, &tree, err);
        goto out;
    }
    /* Lower dirs: one snapshot per layer (unpacked once, then shared). */
    lowers = cs_xcalloc(st->nlayers + 1, sizeof(char *));
    for (size_t i = 0; i < st->nlayers; i++, nlowers++)
        if ((r = cs_snapshot_get(b->s, &st->layers[i], &lowers[i], err)) < 0)
            goto line;
    const cs_tree *merged = NULL;
    if ((r = stage_merged(b, st, &merged, err)) < 0)
        goto line;
    uint32_t uid = 0, gid = 0;
    if (user && *user) {
        MDB_txn *txn;
        if ((r = cs_db_begin(b->db, MDB_RDONLY, &txn, err)) < 0)
            goto line;
        r = cs_copy_lookup_user(b->s, txn, merged, user, &uid, &gid, err);
        mdb_txn_abort(txn);
        if (r < 0)
            goto line;
    }
    rm = cs_xcalloc(nm + 1, sizeof(*rm));
    mdirs = cs_xcalloc(nm + 1, sizeof(char *));
    for (size_t i = 0; i < nm; i++) {
        cs_runmount *m = &mounts[i];
        rm[i].target = m->target;
        rm[i].readonly = !m->rw;
        if (!strcmp(m->type, "tmpfs")) {
            rm[i].type = "tmpfs";
        } else if (!strcmp(m->type, "cache")) {
            /* Persistent across builds and projects, by id. */
            cs_digest d;
            cs_sha256(m->id, strlen(m->id), &d);
            char hex[CS_DIGEST_HEX];
            cs_digest_hex(&d, hex);
            mdirs[i] = cs_xasprintf("%s/cache-mounts/%s", cs_store_root(b->s), hex);
            if ((r = cs_mkdir_p(mdirs[i], 0755, err)) < 0)
                goto line;
            rm[i].type = "bind";
            rm[i].source = mdirs[i];
        } else if (!m->from) {
            /* A bind of the context (read-only unless rw). */
            cs_autofree char *rel = NULL;
            if (cs_path_clean(m->source ? m->source : ".", &rel, err) < 0) {
                r = -CS_EINVAL;
                goto line;
            }
            mdirs[i] = cs_path_join(b->o->context, *rel ? rel : ".");
            rm[i].type = "bind";
            rm[i].source = mdirs[i];
        } else {
            /* Another stage's (or image's) filesystem: its merged tree is put
             * as one tree and unpacked as a snapshot (gc drops both later). */
            if ((r = from_dir(b, st, in, m->from, &mdirs[i], err)) < 0)
                goto out;
            cs_autofree char *rel = NULL;
            if (cs_path_clean(m->source ? m->source : ".", &rel, err) < 0) {
                r = -CS_EINVAL;
                goto line;
            }
            if (*rel) {
                char *full = cs_path_join(mdirs[i], rel);
                free(mdirs[i]);
                mdirs[i] = full;
            }
            rm[i].type = "bind";
            rm[i].source = mdirs[i];
        }
    }
    cs_run_opts ro = { 0 };
    ro.lowers = (const char *const *) lowers;
    ro.nlowers = nlowers;
    ro.argv = argv;
    ro.env = env;
    ro.cwd = wd && *wd ? wd : "/";
    ro.uid = uid;
    ro.gid = gid;
    ro.network_none = net_none;
    ro.mounts = rm;
    ro.nmounts = nm;
    ro.runtime = b->o->runtime;
    ro.keep_upper = true;
    int outfd = b->o->progress == CS_PROGRESS_QUIET || !b->o->out ? -1 : fileno(b->o->out);
    ro.out_fd = outfd;
    ro.err_fd = outfd;
    if (b->tty && b->running) {
        fputc('\n', b->o->out); /* the command's output goes below its step line */
        fflush(b->o->out);
    }
    if ((r = cs_run(b->s, &ro, &res, err)) < 0)
        goto line;
    if (res.status != 0) {
        const char *tail = res.tail ? res.tail : "";
        /* The last line it printed, in the one-line error; all of them above. */
        size_t tl = strlen(tail);
        while (tl && tail[tl - 1] == '\n')
            tl--;
        const char *last = tail + tl;
        while (last > tail && last[-1] != '\n')
            last--;
        if (outfd < 0 && *tail)
            fprintf(stderr, "%s", tail);
        cs_autofree char *text = history_text(in);
        r = cs_err(err, CS_EINVAL, 0, "%s:%d: %s: exit status %d%s%.*s%s", b->df_path, in->line,
                   text, res.status, tl ? " (last output: '" : "", (int) (tail + tl - last), last,
                   tl ? "')" : "");
        goto out;
    }
    /* The upper dir is the layer: ingest what changed, keep it as a snapshot. */
    cs_tree *layer = NULL;
    if ((r = cs_ingest_begin(b->s, &ing, err)) < 0)
        goto line;
    if ((r = cs_snapshot_diff(b->s, ing, res.upper, merged, &layer, err)) < 0)
        goto line;
    if (b->epoch >= 0) /* SOURCE_DATE_EPOCH clamps what the command wrote */
        for (size_t i = 0; i < layer->n; i++)
            if (layer->e[i].mtime_sec > b->epoch) {
                layer->e[i].mtime_sec = b->epoch;
                layer->e[i].mtime_nsec = 0;
            }
    r = cs_tree_put(b->db, cs_ingest_txn(ing), layer, &tree, err);
    cs_tree_free(layer);
    if (r == 0)
        r = cache_put_txn(b, cs_ingest_txn(ing), key, true, &tree, err);
    if (r == 0)
        r = cs_ingest_commit(ing, err);
    if (r == 0 && cs_snapshot_adopt(b->s, &tree, res.upper, NULL) == 0) {
        free(res.upper);
        res.upper = NULL;
    }
    if (r == 0)
        r = stage_push_layer(b, st, &tree, err);
    if (r < 0)
        goto line;
    goto out;
line:
    line_err(b, in, err);
out:
    if (res.upper) /* not adopted: it holds nothing the store needs */
        remove_tree(res.upper);
    cs_run_result_release(&res);
    cs_ingest_free(ing);
    for (size_t i = 0; i < nlowers; i++)
        free(lowers[i]);
    free(lowers);
    for (size_t i = 0; i < nm; i++) {
        cs_runmount_release(&mounts[i]);
        free(mdirs ? mdirs[i] : NULL);
    }
    free(mounts);
    free(mdirs);
    free(rm);
    strv_free(argv);
    strv_free(env);
    return r;
}

/* ---- one instruction ---- */

static int
do_instr(build *b, bstage *st, const cs_df_instr *in, size_t num, size_t total, cs_error **err)
{
    cs_autofree char *text = history_text(in);
    bool layer_kind = in->cmd == CS_DF_COPY || in->cmd == CS_DF_ADD || in->cmd == CS_DF_WORKDIR
                      || in->cmd == CS_DF_RUN;
    unsigned step = 0;
    double t0 = cs_now();
    if (layer_kind) {
        if (total)
            step = step_start(b, "[%s %zu/%zu] %s", st->label, num, total, text);
        else
            step = step_start(b, "[%s] ONBUILD %s", st->label, text);
        b->res.steps++;
    }
    /* The chain: previous key, the instruction as expanded below. */
    cs_sha256_ctx *kh = cs_sha256_new();
    cs_sha256_update(kh, st->key.b, 32);
    hash_str(kh, cs_df_cmd_name(in->cmd));
    int r = 0;
    bool cached = false;
    switch (in->cmd) {
    case CS_DF_COPY:
    case CS_DF_ADD: {
        /* The key hashes the expanded arguments and the sources. */
        char **args = NULL;
        int n = cs_df_args(b->df, in, st->env, &args, err);
        if (n < 0) {
            r = line_err(b, in, err);
            break;
        }
        for (int i = 0; i < n; i++)
            hash_str(kh, args[i]);
        cs_df_strv_free(args);
        for (size_t i = 0; i < in->nflags; i++) {
            hash_str(kh, in->flags[i].name);
            hash_str(kh, in->flags[i].value);
        }
        for (size_t i = 0; i < in->nheredocs; i++)
            hash_str(kh, in->heredocs[i].content);
        cs_digest key;
        r = do_copy(b, st, in, &key, kh, &cached, err);
        if (r == 0) {
            st->key = key;
            cs_autofree char *hist = cs_xasprintf("%s # buildkit", text);
            add_history(b, st, hist, false);
        }
        break;
    }
    case CS_DF_WORKDIR: {
        char **args = NULL;
        int n = cs_df_args(b->df, in, st->env, &args, err);
        if (n < 0) {
            r = line_err(b, in, err);
            break;
        }
        json_t *c = obj(st->cfg, "config");
        const char *cur = json_string_value(json_object_get(c, "WorkingDir"));
        const char *arg = n ? args[0] : "/";
        cs_autofree char *joined =
            arg[0] == '/' ? cs_xstrdup(arg) : cs_xasprintf("%s/%s", cur && *cur ? cur : "", arg);
        cs_autofree char *clean = NULL;
        if (cs_path_clean(joined, &clean, NULL) < 0)
            clean = cs_xstrdup("");
        cs_autofree char *wd = cs_xasprintf("/%s", clean);
        cs_df_strv_free(args);
        json_object_set_new(c, "WorkingDir", json_string(wd));
        hash_str(kh, wd);
        cs_digest key, tree;
        cs_sha256_final(kh, &key);
        bool has_layer = false;
        int hit = cache_get(b, &key, &has_layer, &tree, err);
        if (hit < 0) {
            r = line_err(b, in, err);
            break;
        }
        if (!hit) {
            r = make_workdir_layer(b, st, wd, &tree, &has_layer, err);
            if (r < 0) {
                r = line_err(b, in, err);
                break;
            }
            MDB_txn *txn;
            r = cs_db_begin(b->db, 0, &txn, err);
            if (r == 0) {
                r = cache_put_txn(b, txn, &key, has_layer, &tree, err);
                r = r < 0 ? (mdb_txn_abort(txn), r) : cs_db_commit(txn, err);
            }
            if (r < 0)
                break;
        } else {
            cached = true;
        }
        if (has_layer)
            r = stage_push_layer(b, st, &tree, err);
        st->key = key;
        add_history(b, st, text, !has_layer);
        break;
    }
    case CS_DF_RUN: {
        cs_digest key;
        r = do_run(b, st, in, kh, &key, &cached, err);
        if (r == 0) {
            st->key = key;
            /* As BuildKit records it: the command as run, shell included. */
            char **argv = NULL;
            cs_buf h;
            cs_buf_init(&h);
            cs_buf_append(&h, "RUN", 3);
            if (run_argv(b, st, in, &argv, NULL) == 0)
                for (char **p = argv; *p; p++) {
                    cs_buf_u8(&h, ' ');
                    cs_buf_append(&h, *p, strlen(*p));
                }
            strv_free(argv);
            cs_buf_append(&h, " # buildkit", 12); /* with the NUL */
            add_history(b, st, (const char *) h.data, false);
            cs_buf_release(&h);
        }
        break;
    }
    default:
        r = do_metadata(b, st, in, err);
        if (r == 0) {
            /* The chain sees the instruction and the scope it leaves (an
             * ARG's value or an ENV's expansion changes what follows). */
            hash_str(kh, in->original);
            size_t nenv = cs_df_env_count(st->env);
            for (size_t i = 0; i < nenv; i++) {
                const char *k, *v;
                cs_df_env_at(st->env, i, &k, &v);
                hash_str(kh, k);
                hash_str(kh, v);
            }
            cs_sha256_final(kh, &st->key);
            add_history(b, st, text, true);
        }
        break;
    }
    cs_sha256_free(kh);
    if (layer_kind && r == 0) {
        if (cached)
            b->res.cached++;
        step_end(b, step, cached ? "CACHED" : NULL, cs_now() - t0);
    } else if (layer_kind) {
        step_end(b, step, "ERROR", 0);
    }
    return r;
}

/* ---- stages and commit ---- */

static int
build_stage(build *b, size_t idx, cs_error **err)
{
    bstage *st = &b->st[idx];
    if (st->state == ST_DONE)
        return 0;
    st->state = ST_BUILDING;
    int r = do_from(b, idx, err);
    for (size_t k = 0; k < st->st->ninstrs && r == 0; k++)
        r = do_instr(b, st, &st->st->instrs[k], k + 2, st->st->ninstrs + 1, err);
    if (r == 0)
        st->state = ST_DONE;
    return r;
}

typedef struct hash_sink {
    cs_sha256_ctx *sha;
    uint64_t n;
} hash_sink;

static int
hash_write(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) err;
    hash_sink *h = ctx;
    cs_sha256_update(h->sha, p, n);
    h->n += n;
    return 0;
}

/* diff_id of a layer cstore made: the digest of the tar it exports as,
 * remembered in layer_blobs. */
static int
layer_diff_id(build *b, MDB_txn *txn, const cs_digest *tree, cs_digest *out, cs_error **err)
{
    cs_layer_blob lb;
    if (cs_layer_blob_get(b->db, txn, tree, CS_COMP_NONE, &lb, NULL) == 0) {
        *out = lb.diff_id;
        return 0;
    }
    cs_tree *t = NULL;
    int r = cs_tree_get(b->db, txn, tree, &t, err);
    if (r < 0)
        return r;
    hash_sink hs = { cs_sha256_new(), 0 };
    r = cs_tree_write_tar(b->db, txn, t, hash_write, &hs, err);
    cs_tree_free(t);
    if (r == 0) {
        cs_sha256_final(hs.sha, out);
        lb.diff_id = *out;
        lb.blob = *out;
        lb.size = hs.n;
        r = cs_layer_blob_put(b->db, txn, tree, CS_COMP_NONE, &lb, err);
    }
    cs_sha256_free(hs.sha);
    return r < 0 ? r : 0;
}

typedef struct commit_ctx {
    build *b;
    bstage *st;
    cs_digest *id;
} commit_ctx;

static int
commit_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    commit_ctx *cc = ctx;
    build *b = cc->b;
    bstage *st = cc->st;
    json_t *ids = json_array();
    for (size_t i = 0; i < st->nlayers; i++) {
        cs_digest d;
        if (i < st->ninherited) {
            d = st->diff_ids[i];
        } else {
            int r = layer_diff_id(b, txn, &st->layers[i], &d, err);
            if (r < 0) {
                json_decref(ids);
                return r;
            }
        }
        char s[CS_DIGEST_STR];
        cs_digest_str(&d, s);
        json_array_append_new(ids, json_string(s));
    }
    json_object_set_new(obj(st->cfg, "rootfs"), "diff_ids", ids);
    json_object_set_new(obj(st->cfg, "rootfs"), "type", json_string("layers"));
    json_object_set_new(st->cfg, "created", json_string(b->created));
    char *js = json_dumps(st->cfg, JSON_COMPACT | JSON_SORT_KEYS);
    cs_image img = { 0 };
    img.config = js;
    img.config_len = strlen(js);
    cs_sha256(js, img.config_len, &img.id);
    img.layers = st->layers;
    img.nlayers = (uint32_t) st->nlayers;
    /* Only what changed is written: a no-op rebuild leaves the txn clean. */
    MDB_val v;
    int r = 0;
    if (cs_db_get(db, txn, CS_T_IMAGES, img.id.b, 32, &v, NULL) < 0)
        r = cs_image_put(db, txn, &img, err);
    for (char **t = b->o->tags; r == 0 && t && *t; t++) {
        cs_autofree char *norm = NULL;
        cs_digest cur;
        r = cs_ref_normalize(*t, &norm, err);
        if (r == 0 && (cs_tag_get(db, txn, norm, &cur, NULL) < 0 || !cs_digest_eq(&cur, &img.id)))
            r = cs_tag_set(db, txn, norm, &img.id, err);
    }
    if (r == 0)
        r = touch_hits(db, txn, b, err);
    *cc->id = img.id;
    free(js);
    return r;
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
            return cs_err(err, CS_EIO, errno, "read Dockerfile from stdin");
        return 0;
    }
    int r = cs_read_file(path, 16u << 20, text, err);
    if (r == -CS_ENOTFOUND) {
        cs_error_clear(err);
        return cs_err(err, CS_ENOTFOUND, 0, "%s: no such Dockerfile", path);
    }
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
    const char *paths[2] = { specific, generic };
    for (int i = 0; i < 2; i++) {
        if (!paths[i])
            continue;
        cs_buf t;
        cs_buf_init(&t);
        int r = cs_read_file(paths[i], 16u << 20, &t, NULL);
        if (r == 0) {
            r = cs_ignore_parse((const char *) t.data, t.len, &b->ignore, err);
            cs_buf_release(&t);
            return r < 0 ? cs_err_wrap(err, "%s", paths[i]) : 0;
        }
        cs_buf_release(&t);
    }
    return 0;
}

int
cs_build(cs_store *s, const cs_build_opts *o, cs_build_result *out, cs_error **err)
{
    build b = { 0 };
    b.s = s;
    b.db = cs_store_db(s);
    b.o = o;
    b.epoch = -1;
    memset(out, 0, sizeof(*out));
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) {
        char *end;
        long long v = strtoll(sde, &end, 10);
        if (*end || v < 0)
            return cs_err(err, CS_EINVAL, 0, "SOURCE_DATE_EPOCH '%s' is not a number of seconds",
                          sde);
        b.epoch = v;
    }
    struct stat cst;
    if (stat(o->context, &cst) < 0 || !S_ISDIR(cst.st_mode))
        return cs_err(err, CS_ENOTFOUND, errno ? errno : ENOTDIR, "context '%s'", o->context);
    b.tty = o->progress == CS_PROGRESS_AUTO && o->out && isatty(fileno(o->out));
    cs_run_cleanup_stale(s, NULL); /* mounts a killed build left behind */
    double t0 = cs_now();
    unsigned step = step_start(&b, "[internal] load build definition from %s",
                               o->dockerfile ? o->dockerfile : "Dockerfile");
    cs_buf text;
    cs_buf_init(&text);
    int r = read_dockerfile(&b, &text, err);
    if (r == 0)
        r = cs_df_parse(b.df_path, (const char *) text.data, text.len, &b.df, err);
    cs_buf_release(&text);
    if (r == 0)
        r = read_ignore(&b, err);
    if (r == 0)
        r = cs_df_global_args(b.df, o->build_args, o->target, &b.global, err);
    step_end(&b, step, r < 0 ? "ERROR" : NULL, cs_now() - t0);
    if (r < 0)
        goto out;
    b.nst = b.df->nstages;
    b.st = cs_xcalloc(b.nst, sizeof(bstage));
    for (size_t i = 0; i < b.nst; i++) {
        b.st[i].st = &b.df->stages[i];
        b.st[i].label =
            b.df->stages[i].name ? cs_xstrdup(b.df->stages[i].name) : cs_xasprintf("stage-%zu", i);
    }
    size_t target = b.nst - 1;
    if (o->target) {
        const cs_df_stage *t = cs_df_stage_find(b.df, o->target);
        if (!t) {
            r = cs_err(err, CS_ENOTFOUND, 0, "%s: target stage '%s' could not be found", b.df_path,
                       o->target);
            goto out;
        }
        target = t->index;
    }
    if ((r = plan(&b, target, err)) < 0)
        goto out;
    /* created: SOURCE_DATE_EPOCH, else the Unix epoch, so that the same inputs
     * give the same image digest ("now" would make every build a new image). */
    b.created = format_time(b.epoch >= 0 ? b.epoch : 0);
    for (size_t i = 0; i <= target && r == 0; i++)
        if (b.st[i].state == ST_NEEDED)
            r = build_stage(&b, i, err);
    if (r < 0)
        goto out;
    t0 = cs_now();
    step = step_start(&b, "exporting to image");
    commit_ctx cc = { &b, &b.st[target], &out->id };
    r = cs_db_write(b.db, commit_fn, &cc, err);
    if (r < 0) {
        step_end(&b, step, "ERROR", 0);
        goto out;
    }
    char id[CS_DIGEST_STR];
    cs_digest_str(&out->id, id);
    progress(&b, "#%u writing image %s done\n", step, id);
    for (char **t = o->tags; t && *t; t++)
        progress(&b, "#%u naming to %s done\n", step, *t);
    step_end(&b, step, NULL, cs_now() - t0);
    out->steps = b.res.steps;
    out->cached = b.res.cached;
out:
    for (size_t i = 0; i < b.nst; i++)
        stage_release(&b.st[i]);
    free(b.st);
    if (b.running) /* a step that failed: end its live line */
        step_end(&b, b.step, "ERROR", 0);
    free(b.hits);
    free(b.created);
    free(b.df_path);
    cs_ignore_free(b.ignore);
    cs_df_env_free(b.global);
    cs_df_free(b.df);
    return r;
}
