/* df_parse.c - cs_df_parse: the Dockerfile's line layer (parser directives,
 * comments, continuations), the instruction list and its stages.
 *
 * The parse mirrors BuildKit's two layers: the line layer here and in
 * df_heredoc.c (frontend/dockerfile/parser), and the instruction layer in
 * df_node.c and df_check.c (frontend/dockerfile/instructions). Both run in
 * one pass over the text, so a 10,000-line file costs a few milliseconds. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "df_int.h"

/* ---- helpers shared by df_*.c ---- */

int
df_perr(cs_error **err, const char *path, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cs_err(err, CS_EPARSE, 0, "%s:%d: %s", path, line, msg);
}

char *
df_lower(char *s)
{
    for (char *c = s; *c; c++)
        *c = (char) tolower((unsigned char) *c);
    return s;
}

char *
df_buf_str(cs_buf *b)
{
    cs_buf_u8(b, 0);
    b->len--;
    return (char *) b->data;
}

/* ---- physical lines ---- */

bool
df_next_line(df_parser *p, const char **s, size_t *n)
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

size_t
df_trim_newline(const char *s, size_t n)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    return n;
}

static size_t
skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && df_is_ws((unsigned char) s[i]))
        i++;
    return i;
}

static bool
is_comment(const char *s, size_t n)
{
    size_t i = skip_ws(s, 0, n);
    return i < n && s[i] == '#';
}

/* ---- parser directives ---- */

/* Splits "# key = value" into key and value spans; false when the line is
 * no directive (which ends the directives). */
static bool
directive_split(const char *s, size_t n, size_t *ks, size_t *ke, size_t *vs, size_t *ve)
{
    if (!n || s[0] != '#')
        return false;
    size_t i = skip_ws(s, 1, n);
    *ks = i;
    if (i >= n || !isalpha((unsigned char) s[i]))
        return false;
    while (i < n && isalnum((unsigned char) s[i]))
        i++;
    *ke = i;
    i = skip_ws(s, i, n);
    if (i >= n || s[i] != '=')
        return false;
    *vs = skip_ws(s, i + 1, n);
    *ve = n;
    while (*ve > *vs && df_is_ws((unsigned char) s[*ve - 1]))
        (*ve)--;
    return *ve > *vs;
}

static int
set_escape(df_parser *p, const char *val)
{
    if (p->df->escape != 0)
        return DF_ERR(p, p->line, "only one escape parser directive can be used");
    if (strcmp(val, "`") != 0 && strcmp(val, "\\") != 0)
        return DF_ERR(p, p->line, "invalid escape token '%s' does not match ` or \\", val);
    p->df->escape = val[0];
    p->esc = val[0];
    return 1;
}

/* "# name=value" directives, only before anything else. Returns 1 for a
 * directive, 0 for any other line. */
static int
directive(df_parser *p, const char *s, size_t n)
{
    size_t ks, ke, vs, ve;
    if (p->dir_done)
        return 0;
    if (!directive_split(s, n, &ks, &ke, &vs, &ve)) {
        p->dir_done = true;
        return 0;
    }
    cs_autofree char *key = df_lower(cs_xstrndup(s + ks, ke - ks));
    cs_autofree char *val = cs_xstrndup(s + vs, ve - vs);
    if (strcmp(key, "escape") == 0)
        return set_escape(p, val);
    char **slot = strcmp(key, "syntax") == 0  ? &p->df->syntax
                  : strcmp(key, "check") == 0 ? &p->df->check
                                              : NULL;
    if (!slot) {
        p->dir_done = true;
        return 0;
    }
    if (*slot)
        return DF_ERR(p, p->line, "only one %s parser directive can be used", key);
    *slot = cs_steal(&val);
    return 1;
}

/* ---- logical lines ---- */

/* Strips the newline (and leading blanks when asked), looks for a directive,
 * and drops a comment line to "". */
static int
process_line(df_parser *p, const char **s, size_t *n, bool strip_left)
{
    *n = df_trim_newline(*s, *n);
    if (strip_left) {
        size_t k = skip_ws(*s, 0, *n);
        *s += k;
        *n -= k;
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
trim_continuation(const df_parser *p, const char *s, size_t *n)
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

/* Appends the continuation lines to line; comment and blank lines inside a
 * continuation are skipped. */
static int
read_continuations(df_parser *p, cs_buf *line)
{
    const char *s;
    size_t n;
    bool eol = false;
    while (!eol && df_next_line(p, &s, &n)) {
        p->line++;
        const char *raw = s;
        size_t rn = n;
        int rc = process_line(p, &s, &n, false);
        if (rc < 0)
            return rc;
        if (is_comment(raw, rn) || skip_ws(s, 0, n) == n)
            continue;
        eol = trim_continuation(p, s, &n);
        cs_buf_append(line, s, n);
    }
    return 0;
}

/* The next logical line into line, its first line in *start. Returns 1, 0
 * at the end of the text, or a negative code. */
static int
read_logical_line(df_parser *p, cs_buf *line, int *start)
{
    const char *s;
    size_t n;
    while (df_next_line(p, &s, &n)) {
        p->line++;
        int rc = process_line(p, &s, &n, true);
        if (rc < 0)
            return rc;
        *start = p->line;
        bool eol = trim_continuation(p, s, &n);
        if (eol && n == 0)
            continue;
        line->len = 0;
        cs_buf_append(line, s, n);
        if (!eol && (rc = read_continuations(p, line)) < 0)
            return rc;
        return 1;
    }
    return 0;
}

/* ---- instructions and stages ---- */

static cs_df_instr *
new_instr(cs_df *df, size_t *cap)
{
    if (df->ninstrs == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        df->instrs = cs_xrealloc(df->instrs, *cap * sizeof(cs_df_instr));
    }
    cs_df_instr *in = &df->instrs[df->ninstrs++];
    memset(in, 0, sizeof(*in));
    return in;
}

static bool
can_contain_heredoc(const cs_df_instr *h)
{
    return h && (h->cmd == CS_DF_RUN || h->cmd == CS_DF_COPY || h->cmd == CS_DF_ADD) && !h->json;
}

/* Reads the heredoc bodies after the line (for an ONBUILD, its trigger's)
 * and sets where the instruction ends. */
static int
read_heredocs_of(df_parser *p, cs_df_instr *in, const char *text, int start)
{
    cs_df_instr *h = in->cmd == CS_DF_ONBUILD ? in->trigger : in;
    int rc = 0;
    if (can_contain_heredoc(h) && strstr(text, "<<"))
        rc = df_read_heredocs(p, h, text, start);
    in->end_line = p->line;
    if (in->trigger)
        in->trigger->end_line = p->line;
    return rc;
}

/* Opens a stage at FROM: its name is checked here, its pointers are set by
 * link_stages once df->instrs stops moving (ninstrs keeps the index). */
static int
add_stage(df_parser *p, size_t idx, size_t *cap)
{
    cs_df *df = p->df;
    cs_df_instr *in = &df->instrs[idx];
    cs_autofree char *name = in->nargs == 3 ? df_lower(cs_xstrdup(in->args[2])) : NULL;
    for (size_t i = 0; name && i < df->nstages; i++)
        if (df->stages[i].name && strcmp(df->stages[i].name, name) == 0)
            return DF_ERR(p, in->line, "duplicate stage name \"%s\"", in->args[2]);
    if (df->nstages == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        df->stages = cs_xrealloc(df->stages, *cap * sizeof(cs_df_stage));
    }
    cs_df_stage *st = &df->stages[df->nstages];
    memset(st, 0, sizeof(*st));
    st->index = df->nstages++;
    st->name = cs_steal(&name);
    st->ninstrs = idx;
    return 0;
}

/* A FROM opens a stage; before the first one only ARGs may stand. */
static int
place_instr(df_parser *p, cs_df_instr *in, size_t *scap)
{
    cs_df *df = p->df;
    if (in->cmd == CS_DF_FROM)
        return add_stage(p, (size_t) (in - df->instrs), scap);
    if (df->nstages)
        return 0;
    if (in->cmd != CS_DF_ARG)
        return DF_ERR(p, in->line, "no build stage in current context");
    df->nmeta++;
    return 0;
}

static void
link_stages(cs_df *df)
{
    for (size_t i = 0; i < df->nstages; i++) {
        cs_df_stage *st = &df->stages[i];
        size_t idx = st->ninstrs;
        /* The next stage's index is read before it is rewritten. */
        size_t end = i + 1 < df->nstages ? df->stages[i + 1].ninstrs : df->ninstrs;
        st->from = &df->instrs[idx];
        st->base = st->from->args[0];
        const cs_df_flag *pf = cs_df_flag_find(st->from, "platform");
        st->platform = pf ? pf->value : NULL;
        st->instrs = &df->instrs[idx + 1];
        st->ninstrs = end - idx - 1;
    }
}

/* Reads the instructions of the text into p->df, one logical line each. */
static int
read_instrs(df_parser *p)
{
    size_t icap = 0, scap = 0;
    cs_buf line;
    cs_buf_init(&line);
    int start = 0, rc;
    while ((rc = read_logical_line(p, &line, &start)) > 0) {
        const char *text = df_buf_str(&line);
        cs_df_instr *in = new_instr(p->df, &icap);
        if ((rc = df_parse_node(p, text, start, in)) < 0
            || (rc = read_heredocs_of(p, in, text, start)) < 0 || (rc = df_validate(p, in)) < 0
            || (rc = place_instr(p, in, &scap)) < 0)
            break;
    }
    cs_buf_release(&line);
    return rc;
}

int
cs_df_parse(const char *path_for_errors, const char *text, size_t len, cs_df **out, cs_error **err)
{
    cs_df *df __attribute__((cleanup(cs_df_freep))) = cs_xcalloc(1, sizeof(cs_df));
    df->path = cs_xstrdup(path_for_errors ? path_for_errors : "Dockerfile");
    df_parser p = { .path = df->path, .text = text, .len = len, .esc = '\\', .df = df, .err = err };
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        p.pos = 3; /* a UTF-8 BOM */
    int rc = read_instrs(&p);
    if (rc < 0)
        return rc;
    if (df->ninstrs == 0)
        return DF_ERR(&p, p.line, "file with no instructions");
    if (!df->escape)
        df->escape = '\\';
    link_stages(df);
    *out = cs_steal(&df);
    return 0;
}

void
cs_df_free(cs_df *df)
{
    if (!df)
        return;
    for (size_t i = 0; i < df->ninstrs; i++)
        df_instr_release(&df->instrs[i]);
    free(df->instrs);
    for (size_t i = 0; i < df->nstages; i++)
        free(df->stages[i].name);
    cs_free_all(df->stages, df->path, df->syntax, df->check, df);
}
