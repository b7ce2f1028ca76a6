/* build_config.c - the image config a stage builds: ENV, history, and the
 * metadata instructions (ENV, LABEL, CMD, USER, ...) that change only it. */
#include <string.h>
#include "build_int.h"
#include "cstore/strv.h"

/* parent[key] as an object or array (type), made when missing. */
static json_t *
member(json_t *parent, const char *key, json_type type)
{
    json_t *v = json_object_get(parent, key);
    if (!v || json_typeof(v) != type) {
        v = type == JSON_OBJECT ? json_object() : json_array();
        json_object_set_new(parent, key, v);
    }
    return v;
}

json_t *
obj(json_t *parent, const char *key)
{
    return member(parent, key, JSON_OBJECT);
}

static json_t *
arr(json_t *parent, const char *key)
{
    return member(parent, key, JSON_ARRAY);
}

json_t *
strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

json_t *
scratch_config(void)
{
    return json_pack("{s:s, s:s, s:{}, s:{s:s, s:[]}, s:[]}", "architecture", "amd64", "os",
                     "linux", "config", "rootfs", "type", "layers", "diff_ids", "history");
}

/* A PATH for a base that sets none, as BuildKit does. */
void
config_default_path(json_t *cfg)
{
    json_t *c = obj(cfg, "config");
    json_t *e = json_object_get(c, "Env");
    size_t i;
    json_t *v;
    json_array_foreach(e, i, v)
    {
        if (json_string_value(v) && !strncmp(json_string_value(v), "PATH=", 5))
            return;
    }
    json_array_append_new(arr(c, "Env"), json_string(DEFAULT_PATH));
}

/* ENV of a config into an expansion scope. */
void
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
    json_t *e = arr(obj(cfg, "config"), "Env");
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

void
add_history(build *b, bstage *st, const char *created_by, bool empty)
{
    json_t *e = json_pack("{s:s, s:s, s:s}", "created", b->created, "created_by", created_by,
                          "comment", "buildkit.dockerfile.v0");
    if (empty)
        json_object_set_new(e, "empty_layer", json_true());
    json_array_append_new(arr(st->cfg, "history"), e);
}

/* The instruction as BuildKit's history shows it: "KEYWORD args". */
char *
history_text(const cs_df_instr *in)
{
    /* original starts with the keyword as written: normalize it. */
    const char *sp = in->original;
    while (*sp && *sp != ' ' && *sp != '\t')
        sp++;
    while (*sp == ' ' || *sp == '\t')
        sp++;
    return cs_xasprintf("%s %s", cs_df_cmd_name(in->cmd), sp);
}

/* Command for CMD/ENTRYPOINT: exec form as is, shell form through SHELL. */
static json_t *
command_json(bstage *st, const cs_df_instr *in)
{
    if (in->json)
        return strv_json(in->args, in->nargs);
    json_t *shell = json_object_get(json_object_get(st->cfg, "config"), "Shell");
    json_t *a =
        json_array_size(shell) ? json_deep_copy(shell) : json_pack("[s,s]", "/bin/sh", "-c");
    json_array_append_new(a, json_string(in->nargs ? in->args[0] : ""));
    return a;
}

/* ---- one function per metadata instruction ---- */

static int
meta_env_label(build *b, bstage *st, const cs_df_instr *in, cs_error **err)
{
    cs_df_kv *kvs = NULL;
    int n = cs_df_kvs(st->df, in, st->env, &kvs, err);
    if (n < 0)
        return line_err(b, in, err);
    json_t *labels = in->cmd == CS_DF_LABEL ? obj(obj(st->cfg, "config"), "Labels") : NULL;
    for (int i = 0; i < n; i++) {
        const char *v = kvs[i].value ? kvs[i].value : "";
        if (labels) {
            json_object_set_new(labels, kvs[i].key, json_string(v));
        } else {
            config_set_env(st->cfg, kvs[i].key, v);
            cs_df_env_set(st->env, kvs[i].key, v);
        }
    }
    cs_df_kvs_free(kvs, (size_t) n);
    return 0;
}

static void
meta_command(bstage *st, const cs_df_instr *in)
{
    json_t *c = obj(st->cfg, "config");
    json_t *cmd = command_json(st, in);
    if (in->cmd == CS_DF_CMD) {
        json_object_set_new(c, "Cmd", cmd);
        st->cmd_set = true;
    } else {
        json_object_set_new(c, "Entrypoint", cmd);
        if (!st->cmd_set)
            json_object_set_new(c, "Cmd", json_null());
    }
}

static void
meta_expose(json_t *c, char **args, int n)
{
    json_t *p = obj(c, "ExposedPorts");
    for (int i = 0; i < n; i++) {
        cs_autofree char *port =
            strchr(args[i], '/') ? cs_xstrdup(args[i]) : cs_xasprintf("%s/tcp", args[i]);
        for (char *q = port; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char) (*q - 'A' + 'a');
        json_object_set_new(p, port, json_object());
    }
}

/* EXPOSE, VOLUME, USER, STOPSIGNAL: expanded words into the config. */
static int
meta_words(build *b, bstage *st, const cs_df_instr *in, cs_error **err)
{
    char **args = NULL;
    int n = cs_df_args(st->df, in, st->env, &args, err);
    if (n < 0)
        return line_err(b, in, err);
    json_t *c = obj(st->cfg, "config");
    if (in->cmd == CS_DF_EXPOSE) {
        meta_expose(c, args, n);
    } else if (in->cmd == CS_DF_VOLUME) {
        json_t *vol = obj(c, "Volumes");
        for (int i = 0; i < n; i++)
            if (*args[i])
                json_object_set_new(vol, args[i], json_object());
    } else {
        json_object_set_new(c, in->cmd == CS_DF_USER ? "User" : "StopSignal",
                            json_string(n ? args[0] : ""));
    }
    cs_df_strv_free(args);
    return 0;
}

static int
meta_healthcheck(build *b, bstage *st, const cs_df_instr *in, cs_error **err)
{
    cs_df_health hc = { 0 };
    int r = cs_df_healthcheck(st->df, in, &hc, err);
    if (r < 0)
        return line_err(b, in, err);
    json_t *j = json_pack("{s:o}", "Test", strv_json(hc.test, cs_strv_len(hc.test)));
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
    json_object_set_new(obj(st->cfg, "config"), "Healthcheck", j);
    cs_df_health_release(&hc);
    return 0;
}

/* An ONBUILD trigger as the config keeps it (BuildKit's Expression): the
 * text after ONBUILD with its heredocs, so that the child parses it whole. */
static json_t *
onbuild_text(const cs_df_instr *in)
{
    const char *arg0 = in->nargs ? in->args[0] : "";
    char *t = in->trigger ? cs_df_with_heredocs(arg0, in->trigger) : cs_xstrdup(arg0);
    json_t *j = json_string(t);
    free(t);
    return j;
}

int
do_metadata(build *b, bstage *st, const cs_df_instr *in, cs_error **err)
{
    json_t *c = obj(st->cfg, "config");
    const char *arg0 = in->nargs ? in->args[0] : "";
    switch (in->cmd) {
    case CS_DF_ENV:
    case CS_DF_LABEL:
        return meta_env_label(b, st, in, err);
    case CS_DF_ARG:
        if (cs_df_arg_apply(st->df, in, b->global, b->o->build_args, st->env, err) < 0)
            return line_err(b, in, err);
        return 0;
    case CS_DF_MAINTAINER:
        json_object_set_new(st->cfg, "author", json_string(arg0));
        return 0;
    case CS_DF_CMD:
    case CS_DF_ENTRYPOINT:
        meta_command(st, in);
        return 0;
    case CS_DF_SHELL:
        json_object_set_new(c, "Shell", strv_json(in->args, in->nargs));
        return 0;
    case CS_DF_EXPOSE:
    case CS_DF_VOLUME:
    case CS_DF_USER:
    case CS_DF_STOPSIGNAL:
        return meta_words(b, st, in, err);
    case CS_DF_HEALTHCHECK:
        return meta_healthcheck(b, st, in, err);
    case CS_DF_ONBUILD:
        json_array_append_new(arr(c, "OnBuild"), onbuild_text(in));
        return 0;
    default:
        return cs_err(err, CS_EINVAL, 0, "%s:%d: internal: not a metadata instruction", b->df_path,
                      in->line);
    }
}
