/* df_expand.c - reading an instruction against an environment: flag lookup,
 * arguments, ENV/LABEL pairs and heredoc bodies expanded as BuildKit
 * dispatches them. Errors name the instruction: "PATH:LINE: ...". */
#include <string.h>
#include <strings.h>

#include "df_int.h"

/* ---- flags ---- */

const cs_df_flag *
cs_df_flag_find(const cs_df_instr *in, const char *name)
{
    for (size_t i = in->nflags; i-- > 0;)
        if (strcmp(in->flags[i].name, name) == 0)
            return &in->flags[i];
    return NULL;
}

bool
cs_df_flag_bool(const cs_df_instr *in, const char *name)
{
    const cs_df_flag *f = cs_df_flag_find(in, name);
    return f && (!f->value || strcasecmp(f->value, "true") == 0);
}

int
cs_df_flag_expand(const cs_df *df, const cs_df_instr *in, const char *name, const cs_df_env *env,
                  char **out, cs_error **err)
{
    const cs_df_flag *f = cs_df_flag_find(in, name);
    *out = NULL;
    if (!f)
        return 0;
    return cs_df_word(df, in, f->value ? f->value : "", env, out, err);
}

/* ---- words and arguments ---- */

int
cs_df_word(const cs_df *df, const cs_df_instr *in, const char *word, const cs_df_env *env,
           char **out, cs_error **err)
{
    int rc = cs_df_expand_ex(word, df->escape, 0, env, out, err);
    if (rc < 0)
        cs_err_wrap(err, "%s:%d", df->path, in->line);
    return rc;
}

/* EXPOSE: one argument may expand to several words. */
static int
add_words(const cs_df *df, const cs_df_instr *in, const char *arg, const cs_df_env *env, cs_strv *a,
          cs_error **err)
{
    char **ws = NULL;
    int n = cs_df_words(arg, df->escape, 0, env, &ws, err);
    if (n < 0) {
        cs_err_wrap(err, "%s:%d", df->path, in->line);
        return n;
    }
    for (int j = 0; j < n; j++)
        cs_strv_push(a, ws[j]);
    free(ws);
    return 0;
}

static int
add_word(const cs_df *df, const cs_df_instr *in, const char *arg, const cs_df_env *env, cs_strv *a,
         cs_error **err)
{
    char *w = NULL;
    int rc = cs_df_word(df, in, arg, env, &w, err);
    if (rc < 0)
        return rc;
    cs_strv_push(a, w);
    return 0;
}

/* The instructions whose arguments BuildKit expands one word each. */
static bool
expands_words(cs_df_cmd cmd)
{
    switch (cmd) {
    case CS_DF_ADD:
    case CS_DF_COPY:
    case CS_DF_VOLUME:
    case CS_DF_WORKDIR:
    case CS_DF_USER:
    case CS_DF_STOPSIGNAL:
        return true;
    default:
        return false;
    }
}

int
cs_df_args(const cs_df *df, const cs_df_instr *in, const cs_df_env *env, char ***out,
           cs_error **err)
{
    cs_strv a = { 0 };
    int rc = 0;
    for (size_t i = 0; i < in->nargs && rc == 0; i++) {
        if (in->cmd == CS_DF_EXPOSE)
            rc = add_words(df, in, in->args[i], env, &a, err);
        else if (expands_words(in->cmd))
            rc = add_word(df, in, in->args[i], env, &a, err);
        else
            cs_strv_add(&a, in->args[i]);
    }
    if (rc < 0) {
        cs_strv_release(&a);
        return rc;
    }
    int n = (int) a.n;
    *out = cs_strv_take(&a);
    return n;
}

int
cs_df_kvs(const cs_df *df, const cs_df_instr *in, const cs_df_env *env, cs_df_kv **out,
          cs_error **err)
{
    cs_df_kv *kv = cs_xcalloc(in->nkvs + 1, sizeof(cs_df_kv));
    for (size_t i = 0; i < in->nkvs; i++) {
        const cs_df_kv *src = &in->kvs[i];
        kv[i].legacy = src->legacy;
        int rc = cs_df_word(df, in, src->key, env, &kv[i].key, err);
        if (rc == 0)
            rc = cs_df_word(df, in, src->value ? src->value : "", env, &kv[i].value, err);
        if (rc < 0) {
            cs_df_kvs_free(kv, in->nkvs);
            return rc;
        }
    }
    *out = kv;
    return (int) in->nkvs;
}

void
cs_df_kvs_free(cs_df_kv *kvs, size_t n)
{
    for (size_t i = 0; kvs && i < n; i++) {
        free(kvs[i].key);
        free(kvs[i].value);
    }
    free(kvs);
}

/* ---- heredoc bodies ---- */

/* BuildKit strips leading tabs from every line of a <<- body. */
static char *
strip_tabs(const char *s)
{
    size_t n = strlen(s), k = 0;
    char *body = cs_xmalloc(n + 1);
    bool bol = true;
    for (size_t i = 0; i < n; i++) {
        if (bol && s[i] == '\t')
            continue;
        bol = s[i] == '\n';
        body[k++] = s[i];
    }
    body[k] = '\0';
    return body;
}

int
cs_df_heredoc_body(const cs_df *df, const cs_df_instr *in, const cs_df_heredoc *h,
                   const cs_df_env *env, char **out, cs_error **err)
{
    cs_autofree char *body = h->chomp ? strip_tabs(h->content) : cs_xstrdup(h->content);
    if (h->expand && env) {
        int rc = cs_df_expand_ex(body, '\\', CS_DF_LEX_NO_QUOTES, env, out, err);
        if (rc < 0)
            cs_err_wrap(err, "%s:%d", df->path, in->line);
        return rc;
    }
    *out = cs_steal(&body);
    return 0;
}
