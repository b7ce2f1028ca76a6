/* dockerfile.c - Dockerfile parser, validation, stages and ARG scoping (see
 * dockerfile.h).
 *
 * The parse mirrors BuildKit's two layers: the line layer (directives,
 * comments, continuations, heredocs, the per-instruction argument shapes of
 * frontend/dockerfile/parser) and the instruction layer (flags, argument
 * counts and messages of frontend/dockerfile/instructions). Both run in one
 * pass over the text, so a 10,000-line file costs a few milliseconds. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dockerfile.h"

/* ---- small helpers ---- */

static bool
is_ws(int c) /* unicode.IsSpace, ASCII part */
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool
is_sep(int c) /* BuildKit's reWhitespace: [\t\v\f\r ] */
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

static char *
trim_dup(const char *s, size_t n)
{
    while (n && is_ws((unsigned char) *s)) {
        s++;
        n--;
    }
    while (n && is_ws((unsigned char) s[n - 1]))
        n--;
    return cs_xstrndup(s, n);
}

typedef struct strv {
    char **v;
    size_t n, cap;
} strv;

static void
strv_push(strv *a, char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4;
        a->v = cs_xrealloc(a->v, a->cap * sizeof(char *));
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

/* Ensures a NULL-terminated (possibly empty) vector. */
static char **
strv_finish(strv *a)
{
    if (!a->v)
        a->v = cs_xcalloc(1, sizeof(char *));
    return a->v;
}

static void
str_append(cs_buf *b, const char *s, size_t n)
{
    cs_buf_append(b, s, n);
}

static char *
buf_str(cs_buf *b)
{
    cs_buf_u8(b, 0);
    b->len--;
    return (char *) b->data;
}

/* Splits at runs of [\t\v\f\r ] (BuildKit's parseStringsWhitespaceDelimited). */
static void
split_ws(const char *s, strv *out)
{
    const char *p = s;
    while (*p) {
        while (*p && is_sep((unsigned char) *p))
            p++;
        if (!*p)
            break;
        const char *b = p;
        while (*p && !is_sep((unsigned char) *p))
            p++;
        strv_push(out, cs_xstrndup(b, (size_t) (p - b)));
    }
}

static const struct {
    const char *name;
    cs_df_cmd cmd;
} cmds[] = {
    { "ADD", CS_DF_ADD },
    { "ARG", CS_DF_ARG },
    { "CMD", CS_DF_CMD },
    { "COPY", CS_DF_COPY },
    { "ENTRYPOINT", CS_DF_ENTRYPOINT },
    { "ENV", CS_DF_ENV },
    { "EXPOSE", CS_DF_EXPOSE },
    { "FROM", CS_DF_FROM },
    { "HEALTHCHECK", CS_DF_HEALTHCHECK },
    { "LABEL", CS_DF_LABEL },
    { "MAINTAINER", CS_DF_MAINTAINER },
    { "ONBUILD", CS_DF_ONBUILD },
    { "RUN", CS_DF_RUN },
    { "SHELL", CS_DF_SHELL },
    { "STOPSIGNAL", CS_DF_STOPSIGNAL },
    { "USER", CS_DF_USER },
    { "VOLUME", CS_DF_VOLUME },
    { "WORKDIR", CS_DF_WORKDIR },
};

const char *
cs_df_cmd_name(cs_df_cmd cmd)
{
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (cmds[i].cmd == cmd)
            return cmds[i].name;
    return "?";
}

static cs_df_cmd
cmd_lookup(const char *s)
{
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcasecmp(cmds[i].name, s) == 0)
            return cmds[i].cmd;
    return 0;
}

/* ---- freeing ---- */

static void
heredoc_release(cs_df_heredoc *h)
{
    free(h->name);
    free(h->content);
}

static void
instr_release(cs_df_instr *in)
{
    free(in->keyword);
    free(in->original);
    free(in->rest);
    for (size_t i = 0; i < in->nflags; i++) {
        free(in->flags[i].name);
        free(in->flags[i].value);
    }
    free(in->flags);
    for (size_t i = 0; i < in->nargs; i++)
        free(in->args[i]);
    free(in->args);
    cs_df_kvs_free(in->kvs, in->nkvs);
    for (size_t i = 0; i < in->nheredocs; i++)
        heredoc_release(&in->heredocs[i]);
    free(in->heredocs);
    if (in->trigger) {
        instr_release(in->trigger);
        free(in->trigger);
    }
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

void
cs_df_free(cs_df *df)
{
    if (!df)
        return;
    for (size_t i = 0; i < df->ninstrs; i++)
        instr_release(&df->instrs[i]);
    free(df->instrs);
    for (size_t i = 0; i < df->nstages; i++)
        free(df->stages[i].name);
    free(df->stages);
    free(df->path);
    free(df->syntax);
    free(df->check);
    free(df);
}

/* ---- the parser state ---- */

typedef struct parser {
    const char *path;
    const char *text;
    size_t len, pos;
    int line; /* lines consumed so far */
    char esc;
    bool dir_done;
    cs_df *df;
    cs_error **err;
} parser;

#define PERR(p, ln, ...) perr((p)->err, (p)->path, (ln), __VA_ARGS__)

static int perr(cs_error **err, const char *path, int line, const char *fmt, ...) CS_PRINTF(4, 5);

static int
perr(cs_error **err, const char *path, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cs_err(err, CS_EPARSE, 0, "%s:%d: %s", path, line, msg);
}

/* Next physical line, newline included; false at the end. */
static bool
next_line(parser *p, const char **s, size_t *n)
{
    if (p->pos >= p->len)
        return false;
    const char *b = p->text + p->pos;
    const char *nl = memchr(b, '\n', p->len - p->pos);
    size_t l = nl ? (size_t) (nl - b) + 1 : p->len - p->pos;
    p->pos += l;
    *s = b;
    *n = l;
    return true;
}

static size_t
trim_newline(const char *s, size_t n)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    return n;
}

static bool
is_comment(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_ws((unsigned char) s[i]))
        i++;
    return i < n && s[i] == '#';
}

/* "# name=value" directives, only before anything else. */
static int
directive(parser *p, const char *s, size_t n)
{
    if (p->dir_done)
        return 0;
    if (!n || s[0] != '#') {
        p->dir_done = true;
        return 0;
    }
    size_t i = 1;
    while (i < n && is_ws((unsigned char) s[i]))
        i++;
    size_t ks = i;
    if (i >= n || !isalpha((unsigned char) s[i])) {
        p->dir_done = true;
        return 0;
    }
    while (i < n && isalnum((unsigned char) s[i]))
        i++;
    size_t ke = i;
    while (i < n && is_ws((unsigned char) s[i]))
        i++;
    if (i >= n || s[i] != '=') {
        p->dir_done = true;
        return 0;
    }
    i++;
    while (i < n && is_ws((unsigned char) s[i]))
        i++;
    size_t ve = n;
    while (ve > i && is_ws((unsigned char) s[ve - 1]))
        ve--;
    if (ve == i) {
        p->dir_done = true;
        return 0;
    }
    cs_autofree char *key = cs_xstrndup(s + ks, ke - ks);
    for (char *c = key; *c; c++)
        *c = (char) tolower((unsigned char) *c);
    char **slot;
    if (strcmp(key, "syntax") == 0)
        slot = &p->df->syntax;
    else if (strcmp(key, "check") == 0)
        slot = &p->df->check;
    else if (strcmp(key, "escape") == 0)
        slot = NULL;
    else {
        p->dir_done = true;
        return 0;
    }
    cs_autofree char *val = cs_xstrndup(s + i, ve - i);
    if (!slot) {
        if (p->df->escape != 0)
            return PERR(p, p->line, "only one escape parser directive can be used");
        if (strcmp(val, "`") != 0 && strcmp(val, "\\") != 0)
            return PERR(p, p->line, "invalid escape token '%s' does not match ` or \\", val);
        p->df->escape = val[0];
        p->esc = val[0];
        return 1;
    }
    if (*slot)
        return PERR(p, p->line, "only one %s parser directive can be used", key);
    *slot = cs_steal(&val);
    return 1;
}

/* Strips the newline (and leading blanks when asked), looks for a directive,
 * and drops a comment line to "". */
static int
process_line(parser *p, const char **s, size_t *n, bool strip_left)
{
    *n = trim_newline(*s, *n);
    if (strip_left)
        while (*n && is_ws((unsigned char) **s)) {
            (*s)++;
            (*n)--;
        }
    int rc = directive(p, *s, *n);
    if (rc < 0)
        return rc;
    if (is_comment(*s, *n))
        *n = 0;
    return 0;
}

/* The escape character as the last non-blank character continues the line,
 * unless it is itself escaped. Returns true at the end of the logical line. */
static bool
trim_continuation(const parser *p, const char *s, size_t *n)
{
    size_t k = *n;
    while (k && (s[k - 1] == ' ' || s[k - 1] == '\t'))
        k--;
    if (k && s[k - 1] == p->esc && (k == 1 || s[k - 2] != p->esc)) {
        *n = k - 1;
        return false;
    }
    return true;
}

/* ---- flags (BuildKit's extractBuilderFlags) ---- */

static void
extract_flags(const char *line, char esc, strv *words, const char **rest)
{
    enum { SPACES, WORD, QUOTE } phase = SPACES;
    cs_buf w;
    cs_buf_init(&w);
    char quote = 0;
    bool blank_ok = false;
    size_t len = strlen(line);

    *rest = line + len;
    for (size_t pos = 0; pos <= len; pos++) {
        char ch = pos < len ? line[pos] : 0;
        if (phase == SPACES) {
            if (pos == len)
                break;
            if (is_ws((unsigned char) ch))
                continue;
            if (ch != '-' || pos + 1 == len || line[pos + 1] != '-') {
                *rest = line + pos;
                break;
            }
            phase = WORD;
        }
        if (pos == len) {
            char *s = buf_str(&w);
            if (strcmp(s, "--") != 0 && (blank_ok || w.len))
                strv_push(words, cs_xstrdup(s));
            break;
        }
        if (phase == WORD) {
            if (is_ws((unsigned char) ch)) {
                char *s = buf_str(&w);
                phase = SPACES;
                if (strcmp(s, "--") == 0) {
                    *rest = line + pos;
                    break;
                }
                if (blank_ok || w.len)
                    strv_push(words, cs_xstrdup(s));
                w.len = 0;
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = QUOTE;
                continue;
            }
            if (ch == esc) {
                if (pos + 1 == len)
                    continue;
                ch = line[++pos];
            }
            cs_buf_u8(&w, (uint8_t) ch);
            continue;
        }
        /* QUOTE */
        if (ch == quote) {
            phase = WORD;
            continue;
        }
        if (ch == esc) {
            if (pos + 1 == len) {
                phase = WORD;
                continue;
            }
            ch = line[++pos];
        }
        cs_buf_u8(&w, (uint8_t) ch);
    }
    cs_buf_release(&w);
}

/* ---- argument shapes (BuildKit's line parsers) ---- */

/* Words with quotes and escapes kept (parseWords). */
static void
parse_words(const char *rest, char esc, strv *out)
{
    enum { SPACES, WORD, QUOTE } phase = SPACES;
    cs_buf w;
    cs_buf_init(&w);
    char quote = 0;
    bool blank_ok = false;
    size_t len = strlen(rest);

    for (size_t pos = 0; pos <= len; pos++) {
        char ch = pos < len ? rest[pos] : 0;
        if (phase == SPACES) {
            if (pos == len)
                break;
            if (is_ws((unsigned char) ch))
                continue;
            phase = WORD;
        }
        if (pos == len) {
            if (blank_ok || w.len)
                strv_push(out, cs_xstrdup(buf_str(&w)));
            break;
        }
        if (phase == WORD) {
            if (is_ws((unsigned char) ch)) {
                phase = SPACES;
                if (blank_ok || w.len)
                    strv_push(out, cs_xstrdup(buf_str(&w)));
                w.len = 0;
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = QUOTE;
            }
            if (ch == esc) {
                if (pos + 1 == len)
                    continue;
                cs_buf_u8(&w, (uint8_t) ch);
                ch = rest[++pos];
            }
            cs_buf_u8(&w, (uint8_t) ch);
            continue;
        }
        /* QUOTE */
        if (ch == quote)
            phase = WORD;
        if (ch == esc && quote != '\'') {
            if (pos + 1 == len) {
                phase = WORD;
                continue;
            }
            cs_buf_u8(&w, (uint8_t) ch);
            ch = rest[++pos];
        }
        cs_buf_u8(&w, (uint8_t) ch);
    }
    cs_buf_release(&w);
}

enum { JSON_NOT = 0, JSON_OK = 1, JSON_NOT_STRINGS = -1 };

/* A JSON array of strings: JSON_OK (a string holding \u0000 is cut there); valid JSON with other
 * values: JSON_NOT_STRINGS (an error for Docker); anything else is shell form. */
static int
parse_json(const char *rest, strv *out)
{
    while (is_ws((unsigned char) *rest))
        rest++;
    if (*rest != '[')
        return JSON_NOT;
    json_error_t jerr;
    json_t *a = json_loads(rest, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!a)
        return JSON_NOT;
    if (!json_is_array(a)) {
        json_decref(a);
        return JSON_NOT;
    }
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v)) {
            json_decref(a);
            return JSON_NOT_STRINGS;
        }
    }
    json_array_foreach(a, i, v)
    {
        strv_push(out, cs_xstrdup(json_string_value(v)));
    }
    json_decref(a);
    return JSON_OK;
}

/* ---- heredocs ---- */

static size_t
count_quotes(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\'' || *s == '"';
    return n;
}

/* Matches ^(\d*)<<(-?)\s*([^<]*)$ and reads the delimiter word. Returns 1 and
 * fills h (name, chomp, expand, fd) for a heredoc word, 0 otherwise. */
static int
heredoc_word(const char *w, cs_df_heredoc *h, cs_error **err)
{
    const char *p = w;
    unsigned fd = 0;
    while (*p >= '0' && *p <= '9')
        fd = fd * 10 + (unsigned) (*p++ - '0');
    if (p[0] != '<' || p[1] != '<')
        return 0;
    p += 2;
    bool chomp = *p == '-';
    if (chomp)
        p++;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\f' || *p == '\r')
        p++;
    if (!*p || strchr(p, '<'))
        return 0;
    char **plain __attribute__((cleanup(cs_df_strv_freep))) = NULL;
    char **raw __attribute__((cleanup(cs_df_strv_freep))) = NULL;
    int n = cs_df_words(p, '\\', CS_DF_LEX_KEEP_UNSET, NULL, &plain, err);
    if (n < 0)
        return n;
    if (n != 1)
        return 0;
    int m = cs_df_words(p, '\\', CS_DF_LEX_KEEP_UNSET | CS_DF_LEX_RAW_QUOTES, NULL, &raw, err);
    if (m < 0)
        return m;
    if (m != n)
        return cs_err(err, CS_EPARSE, 0,
                      "internal lexing of heredoc produced inconsistent results: %s", p);
    h->name = cs_xstrdup(plain[0]);
    h->chomp = chomp;
    h->expand = count_quotes(plain[0]) == count_quotes(raw[0]);
    h->fd = fd;
    return 1;
}

const cs_df_heredoc *
cs_df_heredoc_for_arg(const cs_df_instr *in, const char *arg)
{
    cs_df_heredoc h = { 0 };
    if (heredoc_word(arg, &h, NULL) != 1)
        return NULL;
    const cs_df_heredoc *found = NULL;
    for (size_t i = 0; i < in->nheredocs && !found; i++)
        if (strcmp(in->heredocs[i].name, h.name) == 0)
            found = &in->heredocs[i];
    heredoc_release(&h);
    return found;
}

/* Reads the bodies of the heredocs named on line (RUN/COPY/ADD in shell
 * form). */
static int
read_heredocs(parser *p, cs_df_instr *in, const char *line, int start)
{
    char **words __attribute__((cleanup(cs_df_strv_freep))) = NULL;
    cs_error *ignored = NULL;
    int n =
        cs_df_words(line, '\\', CS_DF_LEX_RAW_QUOTES | CS_DF_LEX_RAW_ESCAPES | CS_DF_LEX_KEEP_UNSET,
                    NULL, &words, &ignored);
    cs_error_free(ignored);
    for (int i = 0; i < n; i++) {
        cs_df_heredoc h = { 0 };
        cs_error *e = NULL;
        int rc = heredoc_word(words[i], &h, &e);
        if (rc < 0) {
            rc = PERR(p, start, "%s", e->msg);
            cs_error_free(e);
            return rc;
        }
        if (rc == 0)
            continue;
        cs_buf body;
        cs_buf_init(&body);
        bool done = false;
        const char *s;
        size_t sn;
        while (next_line(p, &s, &sn)) {
            p->line++;
            size_t tn = trim_newline(s, sn);
            const char *t = s;
            if (h.chomp)
                while (tn && *t == '\t') {
                    t++;
                    tn--;
                }
            if (tn == strlen(h.name) && memcmp(t, h.name, tn) == 0) {
                done = true;
                break;
            }
            str_append(&body, s, sn);
        }
        if (!done) {
            cs_buf_release(&body);
            heredoc_release(&h);
            return PERR(p, start, "unterminated heredoc");
        }
        h.content = cs_xstrdup(buf_str(&body));
        cs_buf_release(&body);
        in->heredocs = cs_xrealloc(in->heredocs, (in->nheredocs + 1) * sizeof(cs_df_heredoc));
        in->heredocs[in->nheredocs++] = h;
    }
    return 0;
}

/* ---- one logical line into an instruction (BuildKit's newNodeFromLine) ---- */

static void
set_args(cs_df_instr *in, strv *a)
{
    in->args = strv_finish(a);
    in->nargs = a->n;
}

static void
push_kv(cs_df_instr *in, const char *k, size_t kn, const char *v, bool legacy)
{
    in->kvs = cs_xrealloc(in->kvs, (in->nkvs + 1) * sizeof(cs_df_kv));
    in->kvs[in->nkvs].key = cs_xstrndup(k, kn);
    in->kvs[in->nkvs].value = v ? cs_xstrdup(v) : NULL;
    in->kvs[in->nkvs].legacy = legacy;
    in->nkvs++;
}

static int
parse_maybe_json(parser *p, cs_df_instr *in, const char *rest, int ln, bool to_list)
{
    strv a = { 0 };
    if (!*rest && !to_list) {
        set_args(in, &a);
        return 0;
    }
    int rc = parse_json(rest, &a);
    if (rc == JSON_NOT_STRINGS) {
        set_args(in, &a);
        return PERR(p, ln,
                    "when using JSON array syntax, arrays must be comprised of strings only");
    }
    if (rc == JSON_OK) {
        in->json = true;
    } else if (to_list) {
        split_ws(rest, &a);
    } else {
        strv_push(&a, cs_xstrdup(rest));
    }
    set_args(in, &a);
    return 0;
}

static int
parse_name_val(parser *p, cs_df_instr *in, const char *rest, int ln, const char *key)
{
    strv w = { 0 };
    int rc = 0;
    parse_words(rest, p->esc, &w);
    if (w.n == 0)
        goto out;
    if (!strchr(w.v[0], '=')) {
        /* the legacy "KEY name value" form */
        const char *s = rest;
        while (*s && !is_sep((unsigned char) *s))
            s++;
        const char *v = s;
        while (*v && is_sep((unsigned char) *v))
            v++;
        if (!*v && s == v) {
            rc = PERR(p, ln, "%s must have two arguments", key);
            goto out;
        }
        push_kv(in, rest, (size_t) (s - rest), v, true);
        goto out;
    }
    for (size_t i = 0; i < w.n; i++) {
        char *eq = strchr(w.v[i], '=');
        if (!eq) {
            rc =
                PERR(p, ln, "syntax error - can't find = in \"%s\": must be of the form name=value",
                     w.v[i]);
            goto out;
        }
        push_kv(in, w.v[i], (size_t) (eq - w.v[i]), eq + 1, false);
    }
out:
    cs_df_strv_free(strv_finish(&w));
    return rc;
}

static int parse_node(parser *p, const char *line, int ln, cs_df_instr *in);

static int
parse_args(parser *p, cs_df_instr *in, const char *rest, int ln)
{
    strv a = { 0 };
    switch (in->cmd) {
    case CS_DF_ADD:
    case CS_DF_COPY:
    case CS_DF_VOLUME:
        return parse_maybe_json(p, in, rest, ln, true);
    case CS_DF_RUN:
    case CS_DF_CMD:
    case CS_DF_ENTRYPOINT:
    case CS_DF_SHELL:
        return parse_maybe_json(p, in, rest, ln, false);
    case CS_DF_ENV:
        set_args(in, &a);
        return parse_name_val(p, in, rest, ln, "ENV");
    case CS_DF_LABEL:
        set_args(in, &a);
        return parse_name_val(p, in, rest, ln, "LABEL");
    case CS_DF_ARG:
        parse_words(rest, p->esc, &a);
        for (size_t i = 0; i < a.n; i++) {
            char *eq = strchr(a.v[i], '=');
            if (eq)
                push_kv(in, a.v[i], (size_t) (eq - a.v[i]), eq + 1, false);
            else
                push_kv(in, a.v[i], strlen(a.v[i]), NULL, false);
        }
        set_args(in, &a);
        return 0;
    case CS_DF_FROM:
    case CS_DF_EXPOSE:
        split_ws(rest, &a);
        set_args(in, &a);
        return 0;
    case CS_DF_MAINTAINER:
    case CS_DF_USER:
    case CS_DF_WORKDIR:
    case CS_DF_STOPSIGNAL:
        if (*rest)
            strv_push(&a, cs_xstrdup(rest));
        set_args(in, &a);
        return 0;
    case CS_DF_HEALTHCHECK: {
        if (!*rest) {
            set_args(in, &a);
            return 0;
        }
        const char *s = rest;
        while (*s && !is_ws((unsigned char) *s))
            s++;
        const char *c = s;
        while (*c && is_ws((unsigned char) *c))
            c++;
        cs_df_instr tmp = { .cmd = CS_DF_CMD };
        int rc = parse_maybe_json(p, &tmp, c, ln, false);
        strv_push(&a, cs_xstrndup(rest, (size_t) (s - rest)));
        for (size_t i = 0; i < tmp.nargs; i++)
            strv_push(&a, cs_steal(&tmp.args[i]));
        in->json = tmp.json;
        free(tmp.args);
        set_args(in, &a);
        return rc;
    }
    case CS_DF_ONBUILD:
        if (*rest) {
            strv_push(&a, cs_xstrdup(rest));
            in->trigger = cs_xcalloc(1, sizeof(cs_df_instr));
            set_args(in, &a);
            return parse_node(p, rest, ln, in->trigger);
        }
        set_args(in, &a);
        return 0;
    }
    set_args(in, &a);
    return 0;
}

static int
parse_node(parser *p, const char *line, int ln, cs_df_instr *in)
{
    cs_autofree char *t = trim_dup(line, strlen(line));
    const char *s = t;
    while (*s && !is_sep((unsigned char) *s))
        s++;
    in->keyword = cs_xstrndup(t, (size_t) (s - t));
    in->original = cs_xstrdup(line);
    in->line = in->end_line = ln;
    while (*s && is_sep((unsigned char) *s))
        s++;
    strv fl = { 0 };
    const char *rest = s;
    if (*s)
        extract_flags(s, p->esc, &fl, &rest);
    for (size_t i = 0; i < fl.n; i++) {
        in->flags = cs_xrealloc(in->flags, (in->nflags + 1) * sizeof(cs_df_flag));
        char *eq = strchr(fl.v[i] + 2, '=');
        cs_df_flag *f = &in->flags[in->nflags++];
        f->name = cs_xstrndup(fl.v[i] + 2, eq ? (size_t) (eq - fl.v[i] - 2) : strlen(fl.v[i] + 2));
        f->value = eq ? cs_xstrdup(eq + 1) : NULL;
    }
    cs_df_strv_free(strv_finish(&fl));
    in->rest = trim_dup(rest, strlen(rest));
    in->cmd = cmd_lookup(in->keyword);
    if (!in->cmd) {
        strv a = { 0 };
        set_args(in, &a);
        return PERR(p, ln, "unknown instruction: %s", in->keyword);
    }
    return parse_args(p, in, in->rest, ln);
}

/* ---- instruction checks (BuildKit's instructions package) ---- */

typedef struct flagspec {
    const char *name;
    char type; /* 'b' bool, 's' string, 'S' repeatable string */
} flagspec;

static const flagspec no_flags[] = { { NULL, 0 } };
static const flagspec add_flags[] = { { "chown", 's' },    { "chmod", 's' },
                                      { "link", 'b' },     { "keep-git-dir", 'b' },
                                      { "checksum", 's' }, { "unpack", 'b' },
                                      { "exclude", 'S' },  { NULL, 0 } };
static const flagspec copy_flags[] = { { "chown", 's' }, { "from", 's' },    { "chmod", 's' },
                                       { "link", 'b' },  { "exclude", 'S' }, { "parents", 'b' },
                                       { NULL, 0 } };
static const flagspec from_flags[] = { { "platform", 's' }, { NULL, 0 } };
static const flagspec run_flags[] = {
    { "mount", 'S' }, { "network", 's' }, { "security", 's' }, { "device", 'S' }, { NULL, 0 }
};
static const flagspec hc_flags[] = { { "interval", 's' },     { "timeout", 's' },
                                     { "start-period", 's' }, { "start-interval", 's' },
                                     { "retries", 's' },      { NULL, 0 } };

static int
check_flags(parser *p, const cs_df_instr *in, const flagspec *spec)
{
    for (size_t i = 0; i < in->nflags; i++) {
        const cs_df_flag *f = &in->flags[i];
        const flagspec *s = spec;
        while (s->name && strcmp(s->name, f->name) != 0)
            s++;
        if (!s->name)
            return PERR(p, in->line, "unknown flag: --%s", f->name);
        if (s->type != 'S')
            for (size_t j = 0; j < i; j++)
                if (strcmp(in->flags[j].name, f->name) == 0)
                    return PERR(p, in->line, "duplicate flag specified: --%s", f->name);
        if (s->type == 'b') {
            if (f->value && !*f->value)
                return PERR(p, in->line, "missing a value on flag: --%s", f->name);
            if (f->value && strcasecmp(f->value, "true") != 0 && strcasecmp(f->value, "false") != 0)
                return PERR(p, in->line, "expecting boolean value for flag --%s, not: %s", f->name,
                            f->value);
        } else if (!f->value) {
            return PERR(p, in->line, "missing a value on flag: --%s", f->name);
        }
    }
    return 0;
}

static bool
valid_stage_name(const char *s) /* ^[a-z][a-z0-9-_.]*$ */
{
    if (!(*s >= 'a' && *s <= 'z'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'
              || *s == '.'))
            return false;
    return true;
}

static int
validate(parser *p, const cs_df_instr *in)
{
    const char *name = cs_df_cmd_name(in->cmd);
    int ln = in->line;
    int rc;

    switch (in->cmd) {
    case CS_DF_ENV:
    case CS_DF_LABEL:
        if ((rc = check_flags(p, in, no_flags)) < 0)
            return rc;
        if (in->nkvs == 0)
            return PERR(p, ln, "%s requires at least one argument", name);
        for (size_t i = 0; i < in->nkvs; i++)
            if (!*in->kvs[i].key)
                return PERR(p, ln, "%s names can not be blank", name);
        return 0;
    case CS_DF_ARG:
        if (in->nkvs == 0)
            return PERR(p, ln, "ARG requires at least one argument");
        for (size_t i = 0; i < in->nkvs; i++)
            if (!*in->kvs[i].key)
                return PERR(p, ln, "ARG names can not be blank");
        return 0;
    case CS_DF_MAINTAINER:
    case CS_DF_WORKDIR:
    case CS_DF_USER:
        if (in->nargs != 1)
            return PERR(p, ln, "%s requires exactly one argument", name);
        return check_flags(p, in, no_flags);
    case CS_DF_STOPSIGNAL:
        if (in->nargs != 1)
            return PERR(p, ln, "STOPSIGNAL requires exactly one argument");
        return 0;
    case CS_DF_ADD:
    case CS_DF_COPY:
        if (in->nargs < 2)
            return PERR(p, ln,
                        "%s requires at least two arguments, but only one was provided. "
                        "Destination could not be determined",
                        name);
        if ((rc = check_flags(p, in, in->cmd == CS_DF_ADD ? add_flags : copy_flags)) < 0)
            return rc;
        {
            cs_df_heredoc h = { 0 };
            if (heredoc_word(in->args[in->nargs - 1], &h, NULL) == 1) {
                heredoc_release(&h);
                return PERR(p, ln, "%s cannot accept a heredoc as a destination", name);
            }
        }
        return 0;
    case CS_DF_FROM:
        if (in->nargs == 3 && strcasecmp(in->args[1], "as") == 0) {
            cs_autofree char *lower = cs_xstrdup(in->args[2]);
            for (char *c = lower; *c; c++)
                *c = (char) tolower((unsigned char) *c);
            if (!valid_stage_name(lower))
                return PERR(p, ln,
                            "invalid name for build stage: \"%s\", name can't start with a number "
                            "or contain symbols",
                            in->args[2]);
        } else if (in->nargs != 1) {
            return PERR(p, ln, "FROM requires either one or three arguments");
        }
        return check_flags(p, in, from_flags);
    case CS_DF_ONBUILD: {
        if (in->nargs == 0)
            return PERR(p, ln, "ONBUILD requires at least one argument");
        if ((rc = check_flags(p, in, no_flags)) < 0)
            return rc;
        const cs_df_instr *t = in->trigger;
        if (t->cmd == CS_DF_ONBUILD)
            return PERR(p, ln, "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
        if (t->cmd == CS_DF_MAINTAINER || t->cmd == CS_DF_FROM)
            return PERR(p, ln, "%s isn't allowed as an ONBUILD trigger", cs_df_cmd_name(t->cmd));
        return validate(p, t);
    }
    case CS_DF_RUN:
        return check_flags(p, in, run_flags);
    case CS_DF_CMD:
    case CS_DF_ENTRYPOINT:
        return check_flags(p, in, no_flags);
    case CS_DF_HEALTHCHECK: {
        if (in->nargs == 0)
            return PERR(p, ln, "HEALTHCHECK requires at least one argument");
        cs_df_health h = { 0 };
        rc = cs_df_healthcheck(p->df, in, &h, p->err);
        cs_df_health_release(&h);
        return rc;
    }
    case CS_DF_EXPOSE:
        if (in->nargs == 0)
            return PERR(p, ln, "EXPOSE requires at least one argument");
        return check_flags(p, in, no_flags);
    case CS_DF_VOLUME:
        if (in->nargs == 0)
            return PERR(p, ln, "VOLUME requires at least one argument");
        if ((rc = check_flags(p, in, no_flags)) < 0)
            return rc;
        for (size_t i = 0; i < in->nargs; i++) {
            cs_autofree char *v = trim_dup(in->args[i], strlen(in->args[i]));
            if (!*v)
                return PERR(p, ln, "VOLUME specified can not be an empty string");
        }
        return 0;
    case CS_DF_SHELL:
        if ((rc = check_flags(p, in, no_flags)) < 0)
            return rc;
        if (in->nargs == 0)
            return PERR(p, ln, "SHELL requires at least one argument");
        if (!in->json)
            return PERR(p, ln, "SHELL requires the arguments to be in JSON form");
        return 0;
    }
    return 0;
}

static bool
can_contain_heredoc(const cs_df_instr *in)
{
    if (in->cmd == CS_DF_ONBUILD && in->trigger)
        in = in->trigger;
    return (in->cmd == CS_DF_RUN || in->cmd == CS_DF_COPY || in->cmd == CS_DF_ADD) && !in->json;
}

/* ---- the file ---- */

static int
add_stage(parser *p, size_t idx, size_t *cap)
{
    cs_df *df = p->df;
    cs_df_instr *in = &df->instrs[idx];
    char *name = NULL;
    if (in->nargs == 3) {
        name = cs_xstrdup(in->args[2]);
        for (char *c = name; *c; c++)
            *c = (char) tolower((unsigned char) *c);
        for (size_t i = 0; i < df->nstages; i++)
            if (df->stages[i].name && strcmp(df->stages[i].name, name) == 0) {
                free(name);
                return PERR(p, in->line, "duplicate stage name \"%s\"", in->args[2]);
            }
    }
    if (df->nstages == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        df->stages = cs_xrealloc(df->stages, *cap * sizeof(cs_df_stage));
    }
    cs_df_stage *st = &df->stages[df->nstages];
    memset(st, 0, sizeof(*st));
    st->index = df->nstages++;
    st->name = name;
    /* Pointers are set once instrs stops moving; keep the index for now. */
    st->ninstrs = idx;
    return 0;
}

int
cs_df_parse(const char *path_for_errors, const char *text, size_t len, cs_df **out, cs_error **err)
{
    cs_df *df __attribute__((cleanup(cs_df_freep))) = cs_xcalloc(1, sizeof(cs_df));
    df->path = cs_xstrdup(path_for_errors ? path_for_errors : "Dockerfile");
    parser p = { .path = df->path, .text = text, .len = len, .esc = '\\', .df = df, .err = err };
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        p.pos = 3;
    size_t icap = 0, scap = 0;
    cs_buf line;
    cs_buf_init(&line);
    const char *s;
    size_t n;
    int rc = 0;

    while (next_line(&p, &s, &n)) {
        p.line++;
        if ((rc = process_line(&p, &s, &n, true)) < 0)
            goto fail;
        int start = p.line;
        bool eol = trim_continuation(&p, s, &n);
        if (eol && n == 0)
            continue;
        line.len = 0;
        str_append(&line, s, n);
        while (!eol) {
            const char *raw;
            size_t rn;
            if (!next_line(&p, &s, &n))
                break;
            p.line++;
            raw = s;
            rn = n;
            if ((rc = process_line(&p, &s, &n, false)) < 0)
                goto fail;
            if (is_comment(raw, rn))
                continue;
            size_t k = 0;
            while (k < n && is_ws((unsigned char) s[k]))
                k++;
            if (k == n)
                continue; /* an empty continuation line */
            eol = trim_continuation(&p, s, &n);
            str_append(&line, s, n);
        }
        const char *ltext = buf_str(&line);

        if (df->ninstrs == icap) {
            icap = icap ? icap * 2 : 64;
            df->instrs = cs_xrealloc(df->instrs, icap * sizeof(cs_df_instr));
        }
        cs_df_instr *in = &df->instrs[df->ninstrs++];
        memset(in, 0, sizeof(*in));
        if ((rc = parse_node(&p, ltext, start, in)) < 0)
            goto fail;
        if (can_contain_heredoc(in) && strstr(ltext, "<<")) {
            cs_df_instr *h = in->cmd == CS_DF_ONBUILD ? in->trigger : in;
            if ((rc = read_heredocs(&p, h, ltext, start)) < 0)
                goto fail;
        }
        in->end_line = p.line;
        if (in->trigger)
            in->trigger->end_line = p.line;
        if ((rc = validate(&p, in)) < 0)
            goto fail;
        if (in->cmd == CS_DF_FROM) {
            if ((rc = add_stage(&p, df->ninstrs - 1, &scap)) < 0)
                goto fail;
        } else if (df->nstages == 0) {
            if (in->cmd != CS_DF_ARG) {
                rc = PERR(&p, start, "no build stage in current context");
                goto fail;
            }
            df->nmeta++;
        }
    }
    if (df->ninstrs == 0) {
        rc = PERR(&p, p.line, "file with no instructions");
        goto fail;
    }
    cs_buf_release(&line);
    if (!df->escape)
        df->escape = '\\';
    for (size_t i = 0; i < df->nstages; i++) {
        cs_df_stage *st = &df->stages[i];
        size_t idx = st->ninstrs;
        size_t end = i + 1 < df->nstages ? df->stages[i + 1].ninstrs : df->ninstrs;
        st->from = &df->instrs[idx];
        st->base = st->from->args[0];
        const cs_df_flag *pf = cs_df_flag_find(st->from, "platform");
        st->platform = pf ? pf->value : NULL;
        st->instrs = &df->instrs[idx + 1];
        st->ninstrs = end - idx - 1;
    }
    /* The loop above reads the next stage's index before it is rewritten. */
    *out = cs_steal(&df);
    return 0;
fail:
    cs_buf_release(&line);
    return rc;
}

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

/* ---- expansion ---- */

int
cs_df_word(const cs_df *df, const cs_df_instr *in, const char *word, const cs_df_env *env,
           char **out, cs_error **err)
{
    if (cs_df_expand_ex(word, df->escape, 0, env, out, err) < 0)
        return cs_err_wrap(err, "%s:%d", df->path, in->line);
    return 0;
}

int
cs_df_args(const cs_df *df, const cs_df_instr *in, const cs_df_env *env, char ***out,
           cs_error **err)
{
    strv a = { 0 };
    for (size_t i = 0; i < in->nargs; i++) {
        char *w = NULL;
        switch (in->cmd) {
        case CS_DF_ADD:
        case CS_DF_COPY:
        case CS_DF_VOLUME:
        case CS_DF_WORKDIR:
        case CS_DF_USER:
        case CS_DF_STOPSIGNAL:
            if (cs_df_word(df, in, in->args[i], env, &w, err) < 0)
                goto fail;
            strv_push(&a, w);
            break;
        case CS_DF_EXPOSE: {
            char **ws = NULL;
            int n = cs_df_words(in->args[i], df->escape, 0, env, &ws, err);
            if (n < 0) {
                cs_err_wrap(err, "%s:%d", df->path, in->line);
                goto fail;
            }
            for (int j = 0; j < n; j++)
                strv_push(&a, ws[j]);
            free(ws);
            break;
        }
        default:
            strv_push(&a, cs_xstrdup(in->args[i]));
        }
    }
    *out = strv_finish(&a);
    return (int) a.n;
fail:
    cs_df_strv_free(strv_finish(&a));
    return -CS_EPARSE;
}

int
cs_df_kvs(const cs_df *df, const cs_df_instr *in, const cs_df_env *env, cs_df_kv **out,
          cs_error **err)
{
    cs_df_kv *kv = cs_xcalloc(in->nkvs + 1, sizeof(cs_df_kv));
    for (size_t i = 0; i < in->nkvs; i++) {
        kv[i].legacy = in->kvs[i].legacy;
        if (cs_df_word(df, in, in->kvs[i].key, env, &kv[i].key, err) < 0
            || cs_df_word(df, in, in->kvs[i].value ? in->kvs[i].value : "", env, &kv[i].value, err)
                   < 0) {
            cs_df_kvs_free(kv, in->nkvs);
            return -CS_EPARSE;
        }
    }
    *out = kv;
    return (int) in->nkvs;
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

int
cs_df_heredoc_body(const cs_df *df, const cs_df_instr *in, const cs_df_heredoc *h,
                   const cs_df_env *env, char **out, cs_error **err)
{
    cs_autofree char *body = NULL;
    if (h->chomp) {
        /* BuildKit strips leading tabs from every line of a <<- body. */
        size_t n = strlen(h->content), k = 0;
        body = cs_xmalloc(n + 1);
        bool bol = true;
        for (size_t i = 0; i < n; i++) {
            if (bol && h->content[i] == '\t')
                continue;
            bol = h->content[i] == '\n';
            body[k++] = h->content[i];
        }
        body[k] = '\0';
    } else {
        body = cs_xstrdup(h->content);
    }
    if (h->expand && env) {
        if (cs_df_expand_ex(body, '\\', CS_DF_LEX_NO_QUOTES, env, out, err) < 0)
            return cs_err_wrap(err, "%s:%d", df->path, in->line);
        return 0;
    }
    *out = cs_steal(&body);
    return 0;
}

/* ---- stages and ARG scoping ---- */

const cs_df_stage *
cs_df_stage_find(const cs_df *df, const char *name)
{
    for (size_t i = 0; i < df->nstages; i++)
        if (df->stages[i].name && strcasecmp(df->stages[i].name, name) == 0)
            return &df->stages[i];
    if (!*name)
        return NULL;
    char *end;
    errno = 0;
    unsigned long idx = strtoul(name, &end, 10);
    if (*end || errno || !isdigit((unsigned char) *name) || idx >= df->nstages)
        return NULL;
    return &df->stages[idx];
}

void
cs_df_predefined_args(cs_df_env *env, const cs_df_env *build_args, const char *target)
{
    const char *kv[][2] = {
        { "BUILDPLATFORM", "linux/amd64" },
        { "BUILDOS", "linux" },
        { "BUILDOSVERSION", "" },
        { "BUILDARCH", "amd64" },
        { "BUILDVARIANT", "" },
        { "TARGETPLATFORM", "linux/amd64" },
        { "TARGETOS", "linux" },
        { "TARGETOSVERSION", "" },
        { "TARGETARCH", "amd64" },
        { "TARGETVARIANT", "" },
        { "TARGETSTAGE", target && *target ? target : "default" },
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        const char *o = cs_df_env_get(build_args, kv[i][0]);
        cs_df_env_set(env, kv[i][0], o ? o : kv[i][1]);
    }
}

bool
cs_df_arg_is_proxy(const char *key)
{
    static const char *const names[] = { "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY",
                                         "ALL_PROXY" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(key, names[i]) == 0)
            return true;
        char lower[16];
        size_t j = 0;
        for (; names[i][j]; j++)
            lower[j] = (char) tolower((unsigned char) names[i][j]);
        lower[j] = '\0';
        if (strcmp(key, lower) == 0)
            return true;
    }
    return false;
}

int
cs_df_global_args(const cs_df *df, const cs_df_env *build_args, const char *target, cs_df_env **out,
                  cs_error **err)
{
    cs_df_env *env __attribute__((cleanup(cs_df_env_freep))) = cs_df_env_new();
    if (!target && df->nstages)
        target = df->stages[df->nstages - 1].name;
    cs_df_predefined_args(env, build_args, target);
    for (size_t i = 0; i < df->nmeta; i++) {
        const cs_df_instr *in = &df->instrs[i];
        for (size_t j = 0; j < in->nkvs; j++) {
            const cs_df_kv *kv = &in->kvs[j];
            const char *b = cs_df_env_get(build_args, kv->key);
            if (b) {
                cs_df_env_set(env, kv->key, b);
            } else if (kv->value) {
                cs_autofree char *v = NULL;
                if (cs_df_word(df, in, kv->value, env, &v, err) < 0)
                    return -CS_EPARSE;
                cs_df_env_set(env, kv->key, v);
            }
        }
    }
    *out = cs_steal(&env);
    return 0;
}

int
cs_df_stage_from(const cs_df *df, const cs_df_stage *st, const cs_df_env *global, char **base,
                 char **platform, cs_error **err)
{
    cs_autofree char *b = NULL;
    cs_autofree char *pl = NULL;
    if (cs_df_word(df, st->from, st->base, global, &b, err) < 0)
        return -CS_EPARSE;
    if (!*b)
        return perr(err, df->path, st->from->line, "base name (%s) should not be blank", st->base);
    if (st->platform && cs_df_word(df, st->from, st->platform, global, &pl, err) < 0)
        return -CS_EPARSE;
    *base = cs_steal(&b);
    *platform = cs_steal(&pl);
    return 0;
}

int
cs_df_arg_apply(const cs_df *df, const cs_df_instr *in, const cs_df_env *global,
                const cs_df_env *build_args, cs_df_env *env, cs_error **err)
{
    for (size_t i = 0; i < in->nkvs; i++) {
        const cs_df_kv *kv = &in->kvs[i];
        const char *b = cs_df_env_get(build_args, kv->key);
        if (b) {
            cs_df_env_set(env, kv->key, b);
        } else if (kv->value) {
            cs_autofree char *v = NULL;
            if (cs_df_word(df, in, kv->value, env, &v, err) < 0)
                return -CS_EPARSE;
            cs_df_env_set(env, kv->key, v);
        } else {
            const char *g = cs_df_env_get(global, kv->key);
            if (g)
                cs_df_env_set(env, kv->key, g);
        }
    }
    return 0;
}

/* ---- HEALTHCHECK ---- */

/* Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?unit)+, or "0". */
static int
parse_duration(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    double total = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (!*p)
        return -1;
    while (*p) {
        if (!(isdigit((unsigned char) *p) || *p == '.'))
            return -1;
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            return -1;
        p = end;
        static const struct {
            const char *u;
            double ns;
        } units[] = { { "ns", 1 },   { "us", 1e3 }, { "\xc2\xb5s", 1e3 }, { "\xce\xbcs", 1e3 },
                      { "ms", 1e6 }, { "s", 1e9 },  { "m", 60e9 },        { "h", 3600e9 } };
        size_t k, best = 0, bestlen = 0;
        for (k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
            size_t ul = strlen(units[k].u);
            if (strncmp(p, units[k].u, ul) == 0 && ul > bestlen) {
                best = k;
                bestlen = ul;
            }
        }
        if (!bestlen)
            return -1;
        total += v * units[best].ns;
        p += bestlen;
    }
    if (total > 9.2e18)
        return -1;
    *out = (int64_t) (neg ? -total : total);
    return 0;
}

void
cs_df_health_release(cs_df_health *h)
{
    cs_df_strv_free(h->test);
    h->test = NULL;
}

int
cs_df_healthcheck(const cs_df *df, const cs_df_instr *in, cs_df_health *out, cs_error **err)
{
    parser p = { .path = df->path, .esc = df->escape, .df = (cs_df *) df, .err = err };
    int ln = in->line, rc;
    strv t = { 0 };
    memset(out, 0, sizeof(*out));
    if (in->nargs == 0)
        return PERR(&p, ln, "HEALTHCHECK requires at least one argument");
    if (strcasecmp(in->args[0], "NONE") == 0) {
        if (in->nargs > 1)
            return PERR(&p, ln, "HEALTHCHECK NONE takes no arguments");
        strv_push(&t, cs_xstrdup("NONE"));
        out->test = strv_finish(&t);
        return 0;
    }
    if ((rc = check_flags(&p, in, hc_flags)) < 0)
        return rc;
    if (strcasecmp(in->args[0], "CMD") != 0)
        return PERR(&p, ln, "unknown type \"%s\" in HEALTHCHECK (try CMD)", in->args[0]);
    if (in->nargs < 2)
        return PERR(&p, ln, "missing command after HEALTHCHECK CMD");
    strv_push(&t, cs_xstrdup(in->json ? "CMD" : "CMD-SHELL"));
    for (size_t i = 1; i < in->nargs; i++)
        strv_push(&t, cs_xstrdup(in->args[i]));
    out->test = strv_finish(&t);

    static const char *const dn[] = { "interval", "timeout", "start-period", "start-interval" };
    int64_t *dv[] = { &out->interval_ns, &out->timeout_ns, &out->start_period_ns,
                      &out->start_interval_ns };
    for (size_t i = 0; i < 4; i++) {
        const cs_df_flag *f = cs_df_flag_find(in, dn[i]);
        if (!f || !*f->value)
            continue;
        if (parse_duration(f->value, dv[i]) < 0) {
            cs_df_health_release(out);
            return PERR(&p, ln, "time: invalid duration \"%s\"", f->value);
        }
        if (*dv[i] != 0 && *dv[i] < 1000000) {
            cs_df_health_release(out);
            return PERR(&p, ln, "interval \"%s\" cannot be less than 1ms", dn[i]);
        }
    }
    const cs_df_flag *r = cs_df_flag_find(in, "retries");
    if (r && *r->value) {
        char *end;
        errno = 0;
        long v = strtol(r->value, &end, 10);
        if (*end || errno || v > INT32_MAX || v < INT32_MIN) {
            cs_df_health_release(out);
            return PERR(&p, ln, "invalid --retries value \"%s\"", r->value);
        }
        if (v < 0) {
            cs_df_health_release(out);
            return PERR(&p, ln, "--retries cannot be negative (%ld)", v);
        }
        out->retries = (int) v;
    }
    return 0;
}
