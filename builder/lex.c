/* lex.c - shell-word lexer of the Dockerfile language (see lex.h).
 *
 * The behaviour follows BuildKit's frontend/dockerfile/shell lexer closely,
 * quirks included (e.g. "${a:-b}}" is "b}", an empty quoted string makes no
 * word of its own), so a Dockerfile expands here as it does under BuildKit.
 * The lexer works on bytes: every special character is ASCII, so UTF-8 text
 * passes through unchanged. */
#include <string.h>

#include "cstore/strv.h"
#include "lex.h"
#include "lex_pat.h"

/* ---- growable string ---- */

typedef struct sb {
    char *s;
    size_t len, cap;
} sb;

static void
sb_grow(sb *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap * 2 : 32;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->s = cs_xrealloc(b->s, cap);
    b->cap = cap;
}

static void
sb_addn(sb *b, const char *s, size_t n)
{
    if (!n)
        return;
    sb_grow(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void
sb_addc(sb *b, char c)
{
    sb_addn(b, &c, 1);
}

static void
sb_adds(sb *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

/* Returns the string (never NULL) and leaves b empty. */
static char *
sb_take(sb *b)
{
    char *s = b->s ? b->s : cs_xstrdup("");
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

/* ---- words under construction ---- */

typedef struct words {
    sb buf;
    cs_strv v;
    bool in_word;
} words;

static bool
is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void
words_push(words *w)
{
    cs_strv_push(&w->v, sb_take(&w->buf));
}

static void
words_raw(words *w, char c)
{
    if (!w)
        return;
    sb_addc(&w->buf, c);
    w->in_word = true;
}

/* An unquoted character: whitespace ends the current word. */
static void
words_char(words *w, char c)
{
    if (!w)
        return;
    if (is_space((unsigned char) c)) {
        if (w->in_word && w->buf.len) {
            words_push(w);
            w->in_word = false;
        }
    } else {
        words_raw(w, c);
    }
}

static void
words_str(words *w, const char *s, size_t n)
{
    for (size_t i = 0; w && i < n; i++)
        words_char(w, s[i]);
}

static void
words_rawstr(words *w, const char *s, size_t n)
{
    if (!w)
        return;
    sb_addn(&w->buf, s, n);
    w->in_word = true;
}

static void
words_release(words *w)
{
    free(w->buf.s);
    cs_strv_release(&w->v);
}

/* ---- the lexer ---- */

typedef struct lex {
    const char *s;
    size_t pos, len;
    int esc;
    unsigned flags;
    bool raw_escapes;
    const cs_df_env *env;
    cs_error **err;
} lex;

#define LEX_EOF (-1)

static int
peek(const lex *l)
{
    return l->pos < l->len ? (unsigned char) l->s[l->pos] : LEX_EOF;
}

static int
next(lex *l)
{
    return l->pos < l->len ? (unsigned char) l->s[l->pos++] : LEX_EOF;
}

static int lex_dollar(lex *l, sb *out);

/* Reads up to stop (consumed) or the end of input; appends the processed
 * text to out and feeds w (may be NULL). */
static int
lex_until(lex *l, int stop, bool raw_escapes, sb *out, words *w)
{
    bool saved = l->raw_escapes;
    l->raw_escapes = raw_escapes;
    int rc = 0;
    bool quotes = !(l->flags & CS_DF_LEX_NO_QUOTES);
    bool raw_quotes = l->flags & CS_DF_LEX_RAW_QUOTES;
    sb tmp = { 0 };

    for (;;) {
        int ch = peek(l);
        if (ch == LEX_EOF)
            break;
        if (stop != LEX_EOF && ch == stop) {
            next(l);
            goto done;
        }
        tmp.len = 0;
        if (ch == '$') {
            if ((rc = lex_dollar(l, &tmp)) < 0)
                goto done;
            sb_addn(out, tmp.s ? tmp.s : "", tmp.len);
            words_str(w, tmp.s, tmp.len);
        } else if (ch == '<') {
            /* "<<" and the blanks after it stay with the word that follows,
             * so "<< EOF" reads as one heredoc word. */
            next(l);
            sb_addc(&tmp, '<');
            if (peek(l) == '<') {
                sb_addc(&tmp, (char) next(l));
                while (peek(l) == ' ' || peek(l) == '\t' || peek(l) == '\r')
                    sb_addc(&tmp, (char) next(l));
            }
            sb_addn(out, tmp.s, tmp.len);
            words_rawstr(w, tmp.s, tmp.len);
        } else if (quotes && ch == '\'') {
            next(l);
            if (raw_quotes)
                sb_addc(&tmp, '\'');
            for (;;) {
                int c = next(l);
                if (c == LEX_EOF) {
                    rc = cs_err(l->err, CS_EPARSE, 0,
                                "unexpected end of statement while looking for matching "
                                "single-quote");
                    goto done;
                }
                if (c == '\'')
                    break;
                sb_addc(&tmp, (char) c);
            }
            if (raw_quotes)
                sb_addc(&tmp, '\'');
            sb_addn(out, tmp.s, tmp.len);
            words_rawstr(w, tmp.s, tmp.len);
        } else if (quotes && ch == '"') {
            next(l);
            if (raw_quotes)
                sb_addc(&tmp, '"');
            for (;;) {
                int c = peek(l);
                if (c == LEX_EOF) {
                    rc = cs_err(l->err, CS_EPARSE, 0,
                                "unexpected end of statement while looking for matching "
                                "double-quote");
                    goto done;
                }
                if (c == '"') {
                    next(l);
                    if (raw_quotes)
                        sb_addc(&tmp, '"');
                    break;
                }
                if (c == '$') {
                    if ((rc = lex_dollar(l, &tmp)) < 0)
                        goto done;
                    continue;
                }
                c = next(l);
                if (c == l->esc) {
                    if (l->raw_escapes)
                        sb_addc(&tmp, (char) c);
                    int n = peek(l);
                    if (n == LEX_EOF)
                        continue; /* reported as unterminated above */
                    /* Only " $ and the escape itself are escapable inside
                     * double quotes; otherwise the escape stays literal. */
                    if (n == '"' || n == '$' || n == l->esc)
                        c = next(l);
                }
                sb_addc(&tmp, (char) c);
            }
            sb_addn(out, tmp.s ? tmp.s : "", tmp.len);
            words_rawstr(w, tmp.s ? tmp.s : "", tmp.len);
        } else {
            ch = next(l);
            if (ch == l->esc) {
                if (l->raw_escapes) {
                    words_raw(w, (char) ch);
                    sb_addc(out, (char) ch);
                }
                ch = next(l);
                if (ch == LEX_EOF)
                    break; /* a trailing escape is dropped */
                words_raw(w, (char) ch);
            } else {
                words_char(w, (char) ch);
            }
            sb_addc(out, (char) ch);
        }
    }
    if (stop != LEX_EOF)
        rc = cs_err(l->err, CS_EPARSE, 0,
                    "unexpected end of statement while looking for matching %c", stop);
done:
    free(tmp.s);
    l->raw_escapes = saved;
    return rc;
}

static bool
is_special_param(int c)
{
    return c == '@' || c == '*' || c == '#' || c == '?' || c == '-' || c == '$' || c == '!'
           || c == '0';
}

static bool
is_name_char(int c)
{
    /* Non-ASCII bytes count as letters: BuildKit accepts Unicode letters. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
           || c >= 0x80;
}

/* Reads a variable name: letters, digits and _, or a run of digits, or one
 * special parameter character. */
static void
lex_name(lex *l, sb *name)
{
    int c = peek(l);
    if (c >= '0' && c <= '9') {
        while ((c = peek(l)) >= '0' && c <= '9')
            sb_addc(name, (char) next(l));
        return;
    }
    if (c != LEX_EOF && is_special_param(c)) {
        sb_addc(name, (char) next(l));
        return;
    }
    while ((c = peek(l)) != LEX_EOF && is_name_char(c))
        sb_addc(name, (char) next(l));
}

/* Positional and special parameters are never set in a Dockerfile. */
static const char *
getenv_name(const lex *l, const char *name)
{
    return cs_df_env_get(l->env, name);
}

/* Appends a pattern result (cs_df_pat_*: rc and *res) to out. */
static int
pat_add(int rc, char *res, sb *out)
{
    if (rc < 0)
        return rc;
    sb_adds(out, res);
    free(res);
    return 0;
}

/* At '$': appends the expansion to out. */
static int
lex_dollar(lex *l, sb *out)
{
    cs_autofree char *name = NULL;
    sb nb = { 0 };
    int rc;

    next(l);
    if (peek(l) != '{') {
        lex_name(l, &nb);
        name = sb_take(&nb);
        if (!*name) {
            sb_addc(out, '$');
            return 0;
        }
        const char *v = getenv_name(l, name);
        if (!v && (l->flags & CS_DF_LEX_KEEP_UNSET)) {
            sb_addc(out, '$');
            sb_adds(out, name);
        } else if (v) {
            sb_adds(out, v);
        }
        return 0;
    }
    next(l);
    switch (peek(l)) {
    case LEX_EOF:
        return cs_err(l->err, CS_EPARSE, 0, "syntax error: missing '}'");
    case '{':
    case '}':
    case ':':
        return cs_err(l->err, CS_EPARSE, 0, "syntax error: bad substitution");
    }
    lex_name(l, &nb);
    name = sb_take(&nb);
    int ch = next(l);
    char mod[3] = { (char) ch, 0, 0 };
    bool null_is_unset = false;
    const char *v;

    switch (ch) {
    case LEX_EOF:
        return cs_err(l->err, CS_EPARSE, 0, "syntax error: missing '}'");
    case '}':
        v = getenv_name(l, name);
        if (!v && (l->flags & CS_DF_LEX_KEEP_UNSET)) {
            sb_adds(out, "${");
            sb_adds(out, name);
            sb_addc(out, '}');
        } else if (v) {
            sb_adds(out, v);
        }
        return 0;
    case ':':
        null_is_unset = true;
        ch = next(l);
        mod[1] = ch == LEX_EOF ? '\0' : (char) ch;
        /* fallthrough */
    case '+':
    case '-':
    case '?':
    case '#':
    case '%': {
        bool raw = ch == '#' || ch == '%';
        if (null_is_unset && raw)
            return cs_err(l->err, CS_EPARSE, 0, "unsupported modifier (%s) in substitution", mod);
        sb wb = { 0 };
        if ((rc = lex_until(l, '}', raw, &wb, NULL)) < 0) {
            free(wb.s);
            if (peek(l) == LEX_EOF) {
                cs_error_clear(l->err);
                return cs_err(l->err, CS_EPARSE, 0, "syntax error: missing '}'");
            }
            return rc;
        }
        cs_autofree char *word = sb_take(&wb);
        v = getenv_name(l, name);
        if (!v && (l->flags & CS_DF_LEX_KEEP_UNSET)) {
            sb_adds(out, "${");
            sb_adds(out, name);
            sb_adds(out, mod);
            sb_adds(out, word);
            sb_addc(out, '}');
            return 0;
        }
        bool empty = !v || (null_is_unset && !*v);
        switch (ch) {
        case '-':
            sb_adds(out, empty ? word : v);
            return 0;
        case '+':
            if (!empty)
                sb_adds(out, word);
            return 0;
        case '?':
            if (!v)
                return cs_err(l->err, CS_EPARSE, 0, "%s: %s", name,
                              *word ? word : "is not allowed to be unset");
            if (null_is_unset && !*v)
                return cs_err(l->err, CS_EPARSE, 0, "%s: %s", name,
                              *word ? word : "is not allowed to be empty");
            sb_adds(out, v);
            return 0;
        case '#':
        case '%': {
            const char *pat = word;
            bool greedy = *pat == ch;
            if (greedy)
                pat++;
            char *res = NULL;
            rc = cs_df_pat_trim(pat, v ? v : "", greedy, ch == '%', &res, l->err);
            return pat_add(rc, res, out);
        }
        default:
            return cs_err(l->err, CS_EPARSE, 0, "unsupported modifier (%s) in substitution", mod);
        }
    }
    case '/': {
        bool all = peek(l) == '/';
        if (all)
            next(l);
        sb pb = { 0 }, rb = { 0 };
        if ((rc = lex_until(l, '/', true, &pb, NULL)) < 0) {
            free(pb.s);
            if (peek(l) == LEX_EOF) {
                cs_error_clear(l->err);
                return cs_err(l->err, CS_EPARSE, 0, "syntax error: missing '/' in ${}");
            }
            return rc;
        }
        cs_autofree char *pat = sb_take(&pb);
        if ((rc = lex_until(l, '}', true, &rb, NULL)) < 0) {
            free(rb.s);
            if (peek(l) == LEX_EOF) {
                cs_error_clear(l->err);
                return cs_err(l->err, CS_EPARSE, 0, "syntax error: missing '}'");
            }
            return rc;
        }
        cs_autofree char *repl = sb_take(&rb);
        v = getenv_name(l, name);
        if (!v && (l->flags & CS_DF_LEX_KEEP_UNSET)) {
            sb_adds(out, "${");
            sb_adds(out, name);
            sb_adds(out, all ? "//" : "/");
            sb_adds(out, pat);
            sb_addc(out, '/');
            sb_adds(out, repl);
            sb_addc(out, '}');
            return 0;
        }
        char *res = NULL;
        rc = cs_df_pat_replace(pat, repl, v ? v : "", all, &res, l->err);
        return pat_add(rc, res, out);
    }
    default:
        return cs_err(l->err, CS_EPARSE, 0, "unsupported modifier (%s) in substitution", mod);
    }
}

static int
lex_run(const char *word, int escape, unsigned flags, const cs_df_env *env, sb *out, words *w,
        cs_error **err)
{
    lex l = {
        .s = word,
        .len = strlen(word),
        .esc = escape,
        .flags = flags,
        .raw_escapes = flags & CS_DF_LEX_RAW_ESCAPES,
        .env = env,
        .err = err,
    };
    int rc = lex_until(&l, LEX_EOF, l.raw_escapes, out, w);
    if (rc < 0)
        cs_err_wrap(err, "failed to process \"%s\"", word);
    return rc;
}

int
cs_df_expand_ex(const char *word, int escape, unsigned flags, const cs_df_env *env, char **out,
                cs_error **err)
{
    sb b = { 0 };
    int rc = lex_run(word, escape, flags, env, &b, NULL, err);
    if (rc < 0) {
        free(b.s);
        return rc;
    }
    *out = sb_take(&b);
    return 0;
}

int
cs_df_expand(const char *word, const cs_df_env *env, char **out, cs_error **err)
{
    return cs_df_expand_ex(word, '\\', 0, env, out, err);
}

int
cs_df_words(const char *word, int escape, unsigned flags, const cs_df_env *env, char ***out,
            cs_error **err)
{
    sb b = { 0 };
    words w = { 0 };
    int rc = lex_run(word, escape, flags, env, &b, &w, err);
    free(b.s);
    if (rc < 0) {
        words_release(&w);
        return rc;
    }
    if (w.buf.len)
        words_push(&w);
    free(w.buf.s);
    int n = (int) w.v.n;
    *out = cs_strv_take(&w.v);
    return n;
}
