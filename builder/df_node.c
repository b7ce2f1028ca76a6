/* df_node.c - one logical line into a cs_df_instr: the keyword, the flags and
 * the argument shape each instruction has (BuildKit's newNodeFromLine and
 * its per-instruction line parsers). Nothing is checked or expanded here:
 * df_check.c checks, df_expand.c expands. */
#include <string.h>
#include <strings.h>

#include "df_int.h"

/* Fills a (the future in->args) and the other argument fields of in from
 * rest, the text after the flags. */
typedef int (*shape_fn)(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a);

static int shape_exec_list(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a);
static int shape_exec(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a);
static int shape_name_val(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a);
static int shape_arg(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a);
static int shape_split(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a);
static int shape_text(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a);
static int shape_health(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a);
static int shape_onbuild(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a);

static const struct cmd_row {
    const char *name;
    cs_df_cmd cmd;
    shape_fn shape;
} cmds[] = {
    { "ADD", CS_DF_ADD, shape_exec_list },
    { "ARG", CS_DF_ARG, shape_arg },
    { "CMD", CS_DF_CMD, shape_exec },
    { "COPY", CS_DF_COPY, shape_exec_list },
    { "ENTRYPOINT", CS_DF_ENTRYPOINT, shape_exec },
    { "ENV", CS_DF_ENV, shape_name_val },
    { "EXPOSE", CS_DF_EXPOSE, shape_split },
    { "FROM", CS_DF_FROM, shape_split },
    { "HEALTHCHECK", CS_DF_HEALTHCHECK, shape_health },
    { "LABEL", CS_DF_LABEL, shape_name_val },
    { "MAINTAINER", CS_DF_MAINTAINER, shape_text },
    { "ONBUILD", CS_DF_ONBUILD, shape_onbuild },
    { "RUN", CS_DF_RUN, shape_exec },
    { "SHELL", CS_DF_SHELL, shape_exec },
    { "STOPSIGNAL", CS_DF_STOPSIGNAL, shape_text },
    { "USER", CS_DF_USER, shape_text },
    { "VOLUME", CS_DF_VOLUME, shape_exec_list },
    { "WORKDIR", CS_DF_WORKDIR, shape_text },
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

const char *
cs_df_cmd_name(cs_df_cmd cmd)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (cmds[i].cmd == cmd)
            return cmds[i].name;
    return "?";
}

static const struct cmd_row *
cmd_lookup(const char *s)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcasecmp(cmds[i].name, s) == 0)
            return &cmds[i];
    return NULL;
}

/* ---- argument shapes ---- */

static void
push_kv(cs_df_instr *in, const char *k, size_t kn, const char *v, bool legacy)
{
    in->kvs = cs_xrealloc(in->kvs, (in->nkvs + 1) * sizeof(cs_df_kv));
    in->kvs[in->nkvs].key = cs_xstrndup(k, kn);
    in->kvs[in->nkvs].value = v ? cs_xstrdup(v) : NULL;
    in->kvs[in->nkvs].legacy = legacy;
    in->nkvs++;
}

/* BuildKit's parseMaybeJSON(ToList): the JSON exec form, else the text as
 * one argument (to_list: split at whitespace). */
static int
maybe_json(df_parser *p, cs_df_instr *in, const char *rest, int ln, bool to_list, cs_strv *a)
{
    if (!*rest && !to_list)
        return 0;
    int rc = df_parse_json(rest, a);
    if (rc == DF_JSON_NOT_STRINGS)
        return DF_ERR(p, ln,
                      "when using JSON array syntax, arrays must be comprised of strings "
                      "only");
    if (rc == DF_JSON_OK)
        in->json = true;
    else if (to_list)
        df_split_ws(rest, a);
    else
        cs_strv_add(a, rest);
    return 0;
}

static int
shape_exec_list(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a)
{
    return maybe_json(p, in, rest, ln, true, a);
}

static int
shape_exec(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a)
{
    return maybe_json(p, in, rest, ln, false, a);
}

/* The legacy "ENV name value" form: the first word, then the rest as is. */
static int
legacy_name_val(df_parser *p, cs_df_instr *in, const char *rest, int ln)
{
    const char *s = rest;
    while (*s && !df_is_sep((unsigned char) *s))
        s++;
    const char *v = s;
    while (*v && df_is_sep((unsigned char) *v))
        v++;
    if (!*v && s == v)
        return DF_ERR(p, ln, "%s must have two arguments", cs_df_cmd_name(in->cmd));
    push_kv(in, rest, (size_t) (s - rest), v, true);
    return 0;
}

static int
name_val_pairs(df_parser *p, cs_df_instr *in, const cs_strv *w, int ln)
{
    for (size_t i = 0; i < w->n; i++) {
        const char *eq = strchr(w->v[i], '=');
        if (!eq)
            return DF_ERR(p, ln,
                          "syntax error - can't find = in \"%s\": must be of the form name=value",
                          w->v[i]);
        push_kv(in, w->v[i], (size_t) (eq - w->v[i]), eq + 1, false);
    }
    return 0;
}

/* ENV and LABEL: name=value words (quotes kept), or the legacy form when the
 * first word has no '='. */
static int
shape_name_val(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a)
{
    (void) a;
    cs_strv w = { 0 };
    df_split_words(rest, p->esc, &w);
    int rc = w.n && !strchr(w.v[0], '=') ? legacy_name_val(p, in, rest, ln)
                                         : name_val_pairs(p, in, &w, ln);
    cs_strv_release(&w);
    return rc;
}

/* ARG: words with quotes kept, each a name with an optional =default. */
static int
shape_arg(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a)
{
    (void) ln;
    df_split_words(rest, p->esc, a);
    for (size_t i = 0; i < a->n; i++) {
        const char *eq = strchr(a->v[i], '=');
        push_kv(in, a->v[i], eq ? (size_t) (eq - a->v[i]) : strlen(a->v[i]), eq ? eq + 1 : NULL,
                false);
    }
    return 0;
}

static int
shape_split(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a)
{
    (void) p, (void) in, (void) ln;
    df_split_ws(rest, a);
    return 0;
}

static int
shape_text(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a)
{
    (void) p, (void) in, (void) ln;
    if (*rest)
        cs_strv_add(a, rest);
    return 0;
}

/* HEALTHCHECK: the type word, then the command as for CMD. */
static int
shape_health(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a)
{
    if (!*rest)
        return 0;
    const char *s = rest;
    while (*s && !df_is_ws((unsigned char) *s))
        s++;
    cs_strv_push(a, cs_xstrndup(rest, (size_t) (s - rest)));
    while (*s && df_is_ws((unsigned char) *s))
        s++;
    return maybe_json(p, in, s, ln, false, a);
}

static int
shape_onbuild(df_parser *p, cs_df_instr *in, const char *rest, int ln, cs_strv *a)
{
    if (!*rest)
        return 0;
    cs_strv_add(a, rest);
    in->trigger = cs_xcalloc(1, sizeof(cs_df_instr));
    return df_parse_node(p, rest, ln, in->trigger);
}

/* ---- the node ---- */

int
df_parse_node(df_parser *p, const char *line, int ln, cs_df_instr *in)
{
    cs_autofree char *t = cs_strtrim_dup(line, strlen(line));
    const char *s = t;
    while (*s && !df_is_sep((unsigned char) *s))
        s++;
    in->keyword = cs_xstrndup(t, (size_t) (s - t));
    in->original = cs_xstrdup(line);
    in->line = in->end_line = ln;
    while (*s && df_is_sep((unsigned char) *s))
        s++;
    const char *rest = df_read_flags(s, p->esc, in);
    in->rest = cs_strtrim_dup(rest, strlen(rest));
    const struct cmd_row *row = cmd_lookup(in->keyword);
    cs_strv a = { 0 };
    int rc;
    if (row) {
        in->cmd = row->cmd;
        rc = row->shape(p, in, in->rest, ln, &a);
    } else {
        rc = DF_ERR(p, ln, "unknown instruction: %s", in->keyword);
    }
    /* args is a vector even when empty or after an error. */
    in->nargs = a.n;
    in->args = cs_strv_take(&a);
    return rc;
}

void
df_instr_release(cs_df_instr *in)
{
    cs_free_all(in->keyword, in->original, in->rest);
    for (size_t i = 0; i < in->nflags; i++) {
        free(in->flags[i].name);
        free(in->flags[i].value);
    }
    free(in->flags);
    cs_strv_free(in->args);
    cs_df_kvs_free(in->kvs, in->nkvs);
    for (size_t i = 0; i < in->nheredocs; i++)
        df_heredoc_release(&in->heredocs[i]);
    free(in->heredocs);
    if (in->trigger) {
        df_instr_release(in->trigger);
        free(in->trigger);
    }
}
