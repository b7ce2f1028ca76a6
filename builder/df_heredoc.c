/* df_heredoc.c - heredocs: recognizing "<<EOF" words and reading the bodies
 * that follow a RUN/COPY/ADD line, as BuildKit's parser does. */
#include <string.h>

#include "df_int.h"

static size_t
count_quotes(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\'' || *s == '"';
    return n;
}

/* Past ^(\d*)<<(-?)\s*: the delimiter text, or NULL when w is no heredoc
 * word (no "<<", an empty delimiter or another '<' in it). */
static const char *
heredoc_prefix(const char *w, unsigned *fd, bool *chomp)
{
    const char *p = w;
    *fd = 0;
    while (*p >= '0' && *p <= '9')
        *fd = *fd * 10 + (unsigned) (*p++ - '0');
    if (p[0] != '<' || p[1] != '<')
        return NULL;
    p += 2;
    *chomp = *p == '-';
    if (*chomp)
        p++;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\f' || *p == '\r')
        p++;
    if (!*p || strchr(p, '<'))
        return NULL;
    return p;
}

int
df_heredoc_word(const char *w, cs_df_heredoc *h, cs_error **err)
{
    unsigned fd;
    bool chomp;
    const char *p = heredoc_prefix(w, &fd, &chomp);
    if (!p)
        return 0;
    char **plain __attribute__((cleanup(cs_df_strv_freep))) = NULL;
    char **raw __attribute__((cleanup(cs_df_strv_freep))) = NULL;
    int n = cs_df_words(p, '\\', CS_DF_LEX_KEEP_UNSET, NULL, &plain, err);
    if (n != 1)
        return n < 0 ? n : 0;
    int m = cs_df_words(p, '\\', CS_DF_LEX_KEEP_UNSET | CS_DF_LEX_RAW_QUOTES, NULL, &raw, err);
    if (m < 0)
        return m;
    if (m != n)
        return cs_err(err, CS_EPARSE, 0,
                      "internal lexing of heredoc produced inconsistent results: %s", p);
    h->name = cs_xstrdup(plain[0]);
    h->chomp = chomp;
    /* Any quoted part of the delimiter turns expansion off. */
    h->expand = count_quotes(plain[0]) == count_quotes(raw[0]);
    h->fd = fd;
    return 1;
}

void
df_heredoc_release(cs_df_heredoc *h)
{
    free(h->name);
    free(h->content);
}

/* Fills *h for w, or returns false. A word the lexer cannot read (an open
 * quote) is simply no heredoc word, as in BuildKit: its error is not a
 * failure of the caller and is freed here. */
static bool
heredoc_of(const char *w, cs_df_heredoc *h)
{
    cs_error *not_heredoc = NULL;
    int rc = df_heredoc_word(w, h, &not_heredoc);
    cs_error_free(not_heredoc);
    return rc == 1;
}

bool
df_is_heredoc_word(const char *w)
{
    cs_df_heredoc h = { 0 };
    bool yes = heredoc_of(w, &h);
    df_heredoc_release(&h);
    return yes;
}

const cs_df_heredoc *
cs_df_heredoc_for_arg(const cs_df_instr *in, const char *arg)
{
    cs_df_heredoc h = { 0 };
    if (!heredoc_of(arg, &h))
        return NULL;
    const cs_df_heredoc *found = NULL;
    for (size_t i = 0; i < in->nheredocs && !found; i++)
        if (strcmp(in->heredocs[i].name, h.name) == 0)
            found = &in->heredocs[i];
    df_heredoc_release(&h);
    return found;
}

/* Reads lines up to the delimiter into h->content. */
static int
read_body(df_parser *p, cs_df_heredoc *h, int start)
{
    cs_buf body;
    cs_buf_init(&body);
    size_t dn = strlen(h->name);
    const char *s;
    size_t sn;
    while (df_next_line(p, &s, &sn)) {
        p->line++;
        size_t tn = df_trim_newline(s, sn);
        const char *t = s;
        if (h->chomp)
            while (tn && *t == '\t') {
                t++;
                tn--;
            }
        if (tn == dn && memcmp(t, h->name, tn) == 0) {
            h->content = cs_xstrdup(df_buf_str(&body));
            cs_buf_release(&body);
            return 0;
        }
        cs_buf_append(&body, s, sn);
    }
    cs_buf_release(&body);
    return DF_ERR(p, start, "unterminated heredoc");
}

/* The words of a line as BuildKit's heredocsFromLine reads them. A line the
 * lexer cannot split names no heredocs (BuildKit drops that error too): the
 * instruction's own checks report what is wrong with it. */
static char **
line_words(const char *line, int *n)
{
    char **words = NULL;
    cs_error *unsplittable = NULL;
    *n =
        cs_df_words(line, '\\', CS_DF_LEX_RAW_QUOTES | CS_DF_LEX_RAW_ESCAPES | CS_DF_LEX_KEEP_UNSET,
                    NULL, &words, &unsplittable);
    cs_error_free(unsplittable);
    return words;
}

int
df_read_heredocs(df_parser *p, cs_df_instr *in, const char *line, int start)
{
    int n;
    char **words __attribute__((cleanup(cs_df_strv_freep))) = line_words(line, &n);
    for (int i = 0; i < n; i++) {
        cs_df_heredoc h = { 0 };
        cs_error *e = NULL;
        int rc = df_heredoc_word(words[i], &h, &e);
        if (rc < 0) {
            DF_ERR(p, start, "%s", e->msg);
            cs_error_free(e);
            return rc;
        }
        if (rc == 0)
            continue;
        if ((rc = read_body(p, &h, start)) < 0) {
            df_heredoc_release(&h);
            return rc;
        }
        in->heredocs = cs_xrealloc(in->heredocs, (in->nheredocs + 1) * sizeof(cs_df_heredoc));
        in->heredocs[in->nheredocs++] = h;
    }
    return 0;
}

char *
cs_df_with_heredocs(const char *text, const cs_df_instr *in)
{
    cs_buf s;
    cs_buf_init(&s);
    cs_buf_append(&s, text, strlen(text));
    for (size_t i = 0; i < in->nheredocs; i++) {
        const cs_df_heredoc *h = &in->heredocs[i];
        cs_buf_u8(&s, '\n');
        cs_buf_append(&s, h->content, strlen(h->content));
        cs_buf_append(&s, h->name, strlen(h->name));
    }
    return df_buf_str(&s); /* the buffer's bytes are the caller's now */
}

/* BuildKit's dispatchRun: a heredoc that is the whole command is run as its
 * body; any other line with heredocs is handed to the shell as a script with
 * the bodies inline, for the shell to read (<<-, quoting, expansion). */
int
cs_df_run_script(const cs_df *df, const cs_df_instr *in, char **out, cs_error **err)
{
    const char *cmd = in->nargs ? in->args[0] : "";
    const cs_df_heredoc *whole = in->nheredocs ? cs_df_heredoc_for_arg(in, cmd) : NULL;
    if (whole) /* the body is the script, its variables left to the shell */
        return cs_df_heredoc_body(df, in, whole, NULL, out, err);
    *out = cs_df_with_heredocs(cmd, in);
    return 0;
}
