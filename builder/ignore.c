/* ignore.c - Docker's path patterns (moby/patternmatcher semantics). */
#include "ignore.h"

#include <stdint.h>
#include <string.h>
#include "cstore/util.h"

/* How a pattern is matched, as patternmatcher decides it while compiling:
 * plain strings compare (exact), "x/" + "**" is a prefix test, a leading
 * "**" followed only by literal text is a suffix test, the rest walk tokens. */
typedef enum { M_EXACT, M_PREFIX, M_SUFFIX, M_TOKENS } mtype;

typedef enum {
    T_LIT,         /* one rune */
    T_ANY,         /* '?': one rune but '/' */
    T_STAR,        /* '*': runes but '/' */
    T_CLASS,       /* '[...]': class text in pat[a, b) */
    T_DSTAR_SLASH, /* "**" inside: nothing, or anything ending with '/' */
    T_DSTAR_ALL,   /* "**" at the end: anything */
} ttype;

typedef struct tok {
    ttype t;
    uint32_t r; /* T_LIT */
    uint32_t a, b;
} tok;

typedef struct pat {
    char *s; /* cleaned pattern without '!' */
    bool excl;
    mtype m;
    tok *toks;
    size_t ntoks;
} pat;

struct cs_ignore {
    pat *p;
    size_t n;
    bool exclusions;
    bool prefix_only_exceptions; /* no exception has wildcards (but a trailing one) */
};

/* ---- small helpers ---- */

/* Decodes one UTF-8 rune of s (NUL-terminated); *n gets its length (>= 1).
 * Invalid bytes decode as themselves, one byte long (0xFFFD-like). */
static uint32_t
rune_at(const char *s, size_t *n)
{
    const unsigned char *u = (const unsigned char *) s;
    if (u[0] < 0x80) {
        *n = 1;
        return u[0];
    }
    int len = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 1;
    uint32_t r = len == 4 ? (u[0] & 7u) : len == 3 ? (u[0] & 15u) : (u[0] & 31u);
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *n = 1;
            return 0xFFFD;
        }
        r = (r << 6) | (u[i] & 63u);
    }
    if (len == 1) {
        *n = 1;
        return 0xFFFD;
    }
    *n = (size_t) len;
    return r;
}

char *
cs_ignore_clean(const char *p)
{
    size_t n = strlen(p);
    if (n == 0)
        return cs_xstrdup(".");
    bool rooted = p[0] == '/';
    char *out = cs_xmalloc(n + 2);
    size_t w = 0, r = 0, dotdot = 0;
    if (rooted) {
        out[w++] = '/';
        r = 1;
        dotdot = 1;
    }
    while (r < n) {
        if (p[r] == '/') {
            r++;
        } else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
            r++;
        } else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            for (; r < n && p[r] != '/'; r++)
                out[w++] = p[r];
        }
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = '\0';
    return out;
}

/* ---- Go's filepath.Match ---- */

/* One class member: an optionally escaped rune. -1 on a malformed class. */
static int
get_esc(const char **chunk, const char *end, uint32_t *r)
{
    const char *c = *chunk;
    if (c >= end || *c == '-' || *c == ']')
        return -1;
    if (*c == '\\') {
        c++;
        if (c >= end)
            return -1;
    }
    size_t n;
    *r = rune_at(c, &n);
    c += n;
    if (c >= end)
        return -1;
    *chunk = c;
    return 0;
}

/* Matches chunk [c, end) at the start of s. Returns 1 and sets *rest on a
 * match, 0 on no match, -1 on a malformed chunk (checked even after a
 * mismatch, like Go). */
static int
match_chunk(const char *c, const char *end, const char *s, const char **rest)
{
    bool failed = false;
    while (c < end) {
        if (!failed && *s == '\0')
            failed = true;
        switch (*c) {
        case '[': {
            uint32_t r = 0;
            size_t n;
            if (!failed) {
                r = rune_at(s, &n);
                s += n;
            }
            c++;
            bool negated = false;
            if (c < end && *c == '^') {
                negated = true;
                c++;
            }
            bool match = false;
            int nrange = 0;
            for (;;) {
                if (c < end && *c == ']' && nrange > 0) {
                    c++;
                    break;
                }
                uint32_t lo, hi;
                if (get_esc(&c, end, &lo) < 0)
                    return -1;
                hi = lo;
                if (*c == '-') {
                    c++;
                    if (get_esc(&c, end, &hi) < 0)
                        return -1;
                }
                if (lo <= r && r <= hi)
                    match = true;
                nrange++;
            }
            if (match == negated)
                failed = true;
            break;
        }
        case '?':
            if (!failed) {
                size_t n;
                if (*s == '/')
                    failed = true;
                rune_at(s, &n);
                s += n;
            }
            c++;
            break;
        case '\\':
            c++;
            if (c >= end)
                return -1;
            /* fall through */
        default:
            if (!failed) {
                if (*c != *s)
                    failed = true;
                s++;
            }
            c++;
            break;
        }
    }
    if (failed)
        return 0;
    *rest = s;
    return 1;
}

/* Splits off the next "*...chunk" of the pattern. */
static void
scan_chunk(const char **pp, bool *star, const char **cb, const char **ce)
{
    const char *p = *pp;
    *star = false;
    while (*p == '*') {
        p++;
        *star = true;
    }
    bool inrange = false;
    const char *i = p;
    for (; *i; i++) {
        if (*i == '\\') {
            if (i[1])
                i++;
        } else if (*i == '[') {
            inrange = true;
        } else if (*i == ']') {
            inrange = false;
        } else if (*i == '*' && !inrange) {
            break;
        }
    }
    *cb = p;
    *ce = i;
    *pp = i;
}

int
cs_glob_match(const char *pattern, const char *name)
{
    const char *p = pattern;
    while (*p) {
        bool star;
        const char *cb, *ce, *t;
        scan_chunk(&p, &star, &cb, &ce);
        if (star && cb == ce)
            return strchr(name, '/') == NULL;
        int ok = match_chunk(cb, ce, name, &t);
        if (ok == 1 && (*t == '\0' || *p)) {
            name = t;
            continue;
        }
        if (ok < 0)
            return -1;
        if (star) {
            bool found = false;
            for (size_t i = 0; name[i] && name[i] != '/'; i++) {
                ok = match_chunk(cb, ce, name + i + 1, &t);
                if (ok == 1) {
                    if (!*p && *t)
                        continue;
                    name = t;
                    found = true;
                    break;
                }
                if (ok < 0)
                    return -1;
            }
            if (found)
                continue;
        }
        /* No match: the rest of the pattern must still be well formed. */
        while (*p) {
            scan_chunk(&p, &star, &cb, &ce);
            if (match_chunk(cb, ce, "", &t) < 0)
                return -1;
        }
        return 0;
    }
    return *name == '\0';
}

bool
cs_glob_has_wildcards(const char *s)
{
    for (; *s; s++) {
        if (*s == '\\') {
            if (!s[1])
                break;
            s++;
        } else if (*s == '*' || *s == '?' || *s == '[') {
            return true;
        }
    }
    return false;
}

/* ---- compiling patterns ---- */

static void
push_tok(pat *p, size_t *cap, tok t)
{
    if (p->ntoks == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        p->toks = cs_xrealloc(p->toks, *cap * sizeof(tok));
    }
    p->toks[p->ntoks++] = t;
}

/* Mirrors how patternmatcher turns a pattern into a regexp, and which kind
 * of match it settles on. */
static void
compile(pat *p)
{
    const char *s = p->s;
    size_t len = strlen(s), cap = 0;
    mtype m = M_EXACT;
    for (size_t i = 0, iter = 0; i < len; iter++) {
        char ch = s[i];
        if (ch == '*') {
            if (s[i + 1] == '*') {
                i += 2;
                if (s[i] == '/')
                    i++;
                if (i == len) {
                    if (m == M_EXACT) {
                        m = M_PREFIX;
                    } else {
                        push_tok(p, &cap, (tok){ .t = T_DSTAR_ALL });
                        m = M_TOKENS;
                    }
                } else {
                    push_tok(p, &cap, (tok){ .t = T_DSTAR_SLASH });
                    m = M_TOKENS;
                }
                if (iter == 0)
                    m = M_SUFFIX;
                continue;
            }
            push_tok(p, &cap, (tok){ .t = T_STAR });
            m = M_TOKENS;
            i++;
        } else if (ch == '?') {
            push_tok(p, &cap, (tok){ .t = T_ANY });
            m = M_TOKENS;
            i++;
        } else if (ch == '\\') {
            i++;
            if (i < len) {
                size_t n;
                uint32_t r = rune_at(s + i, &n);
                push_tok(p, &cap, (tok){ .t = T_LIT, .r = r });
                i += n;
                m = M_TOKENS;
            } else {
                push_tok(p, &cap, (tok){ .t = T_LIT, .r = '\\' });
            }
        } else if (ch == '[') {
            /* The class runs to its closing ']' (validated by the
             * filepath.Match check before). */
            size_t a = i + 1, j = a;
            if (s[j] == '^')
                j++;
            bool first = true;
            while (j < len && (s[j] != ']' || first)) {
                if (s[j] == '\\' && j + 1 < len)
                    j++;
                j++;
                first = false;
            }
            push_tok(p, &cap, (tok){ .t = T_CLASS, .a = (uint32_t) a, .b = (uint32_t) j });
            i = j < len ? j + 1 : j;
            m = M_TOKENS;
        } else {
            size_t n;
            uint32_t r = rune_at(s + i, &n);
            push_tok(p, &cap, (tok){ .t = T_LIT, .r = r });
            i += n;
        }
    }
    p->m = m;
}

static bool
class_match(const char *s, uint32_t a, uint32_t b, uint32_t r)
{
    const char *c = s + a, *end = s + b;
    bool neg = false;
    if (c < end && *c == '^') {
        neg = true;
        c++;
    }
    bool in = false;
    while (c < end) {
        size_t n;
        if (*c == '\\' && c + 1 < end)
            c++;
        uint32_t lo = rune_at(c, &n), hi = lo;
        c += n;
        if (c + 1 < end && *c == '-') {
            c++;
            if (*c == '\\' && c + 1 < end)
                c++;
            hi = rune_at(c, &n);
            c += n;
        }
        if (lo <= r && r <= hi)
            in = true;
    }
    return in != neg;
}

/* A match of one path: '*' and '**' try each way on, so the same (token,
 * offset) pair can be reached many times; a bit per pair remembers a failed
 * one (allocated at the first star), so each is worked out once: polynomial
 * time where plain backtracking was exponential in the number of stars. */
typedef struct mctx {
    const pat *p;
    const char *path;
    size_t len;
    uint8_t *failed; /* (ntoks + 1) x (len + 1) bits, or NULL */
} mctx;

static bool match_toks(mctx *m, size_t ti, const char *s);

static bool
match_memo(mctx *m, size_t ti, const char *s)
{
    if (!m->failed)
        m->failed = cs_xcalloc(((m->p->ntoks + 1) * (m->len + 1) + 7) / 8, 1);
    size_t bit = ti * (m->len + 1) + (size_t) (s - m->path);
    if (m->failed[bit / 8] & (1u << (bit % 8)))
        return false;
    if (match_toks(m, ti, s))
        return true;
    m->failed[bit / 8] |= (uint8_t) (1u << (bit % 8));
    return false;
}

static bool
match_toks(mctx *m, size_t ti, const char *s)
{
    const pat *p = m->p;
    for (; ti < p->ntoks; ti++) {
        const tok *t = &p->toks[ti];
        size_t n;
        uint32_t r;
        switch (t->t) {
        case T_LIT:
            if (!*s)
                return false;
            r = rune_at(s, &n);
            if (r != t->r)
                return false;
            s += n;
            break;
        case T_ANY:
            if (!*s || *s == '/')
                return false;
            rune_at(s, &n);
            s += n;
            break;
        case T_CLASS:
            if (!*s)
                return false;
            r = rune_at(s, &n);
            if (!class_match(p->s, t->a, t->b, r))
                return false;
            s += n;
            break;
        case T_STAR:
            for (;;) {
                if (match_memo(m, ti + 1, s))
                    return true;
                if (!*s || *s == '/')
                    return false;
                rune_at(s, &n);
                s += n;
            }
        case T_DSTAR_SLASH:
            if (match_memo(m, ti + 1, s))
                return true;
            for (const char *q = s; *q; q++)
                if (*q == '/' && match_memo(m, ti + 1, q + 1))
                    return true;
            return false;
        case T_DSTAR_ALL:
            return true;
        }
    }
    return *s == '\0';
}

static bool
pat_match(const pat *p, const char *path)
{
    size_t pl, sl;
    switch (p->m) {
    case M_EXACT:
        return strcmp(path, p->s) == 0;
    case M_PREFIX:
        return strncmp(path, p->s, strlen(p->s) - 2) == 0;
    case M_SUFFIX: {
        const char *suffix = p->s + 2;
        pl = strlen(path);
        sl = strlen(suffix);
        if (sl <= pl && memcmp(path + pl - sl, suffix, sl) == 0)
            return true;
        return suffix[0] == '/' && strcmp(path, suffix + 1) == 0;
    }
    case M_TOKENS: {
        mctx m = { .p = p, .path = path, .len = strlen(path) };
        bool ok = match_toks(&m, 0, path);
        free(m.failed);
        return ok;
    }
    }
    return false;
}

/* ---- building ---- */

static const char *
without_trailing_glob(const char *s, size_t *len)
{
    size_t n = strlen(s);
    if (n >= 3 && strcmp(s + n - 3, "/**") == 0)
        n -= 3;
    else if (n >= 2 && strcmp(s + n - 2, "/*") == 0)
        n -= 2;
    *len = n;
    return s;
}

static int
add_pattern(cs_ignore *ig, size_t *cap, const char *raw, cs_error **err)
{
    cs_autofree char *t = cs_strtrim_dup(raw, strlen(raw));
    if (!*t)
        return 0;
    char *c = cs_ignore_clean(t);
    bool excl = false;
    const char *body = c;
    if (c[0] == '!') {
        if (!c[1]) {
            free(c);
            return cs_err(err, CS_EPARSE, 0, "illegal exclusion pattern: \"!\"");
        }
        excl = true;
        body = c + 1;
    }
    if (cs_glob_match(body, ".") < 0) {
        int r = cs_err(err, CS_EPARSE, 0, "bad pattern '%s'", t);
        free(c);
        return r;
    }
    if (ig->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        ig->p = cs_xrealloc(ig->p, *cap * sizeof(pat));
    }
    pat *p = &ig->p[ig->n++];
    memset(p, 0, sizeof(*p));
    p->s = cs_xstrdup(body);
    p->excl = excl;
    free(c);
    compile(p);
    if (excl) {
        ig->exclusions = true;
        size_t n;
        const char *s = without_trailing_glob(p->s, &n);
        for (size_t i = 0; i < n; i++)
            if (strchr("*[]?^\\", s[i]))
                ig->prefix_only_exceptions = false;
    }
    return 0;
}

static cs_ignore *
ignore_alloc(void)
{
    cs_ignore *ig = cs_xcalloc(1, sizeof(*ig));
    ig->prefix_only_exceptions = true;
    return ig;
}

int
cs_ignore_new(char *const *patterns, size_t n, cs_ignore **out, cs_error **err)
{
    cs_ignore *ig = ignore_alloc();
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        int r = add_pattern(ig, &cap, patterns[i], err);
        if (r < 0) {
            cs_ignore_free(ig);
            return r;
        }
    }
    *out = ig;
    return 0;
}

int
cs_ignore_parse(const char *text, size_t len, cs_ignore **out, cs_error **err)
{
    cs_ignore *ig = ignore_alloc();
    size_t cap = 0;
    const char *p = text, *end = text + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    int lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t) (le - p);
        if (n && p[n - 1] == '\r')
            n--;
        lineno++;
        const char *line = p;
        p = nl ? nl + 1 : end;
        if (n && line[0] == '#')
            continue;
        cs_autofree char *t = cs_strtrim_dup(line, n);
        if (!*t)
            continue;
        bool invert = t[0] == '!';
        cs_autofree char *body = invert ? cs_strtrim_dup(t + 1, strlen(t + 1)) : cs_xstrdup(t);
        cs_autofree char *pattern = NULL;
        if (*body) {
            char *c = cs_ignore_clean(body);
            if (strlen(c) > 1 && c[0] == '/')
                memmove(c, c + 1, strlen(c));
            pattern = invert ? cs_xasprintf("!%s", c) : cs_xstrdup(c);
            free(c);
        } else {
            pattern = cs_xstrdup(invert ? "!" : "");
        }
        int r = add_pattern(ig, &cap, pattern, err);
        if (r < 0) {
            cs_ignore_free(ig);
            cs_err_wrap(err, ".dockerignore line %d", lineno);
            return r;
        }
    }
    *out = ig;
    return 0;
}

void
cs_ignore_free(cs_ignore *ig)
{
    if (!ig)
        return;
    for (size_t i = 0; i < ig->n; i++) {
        free(ig->p[i].s);
        free(ig->p[i].toks);
    }
    free(ig->p);
    free(ig);
}

/* ---- matching ---- */

/* The pattern matches path or one of its parent directories. buf is a
 * writable copy of path. */
static bool
match_or_parent(const pat *p, char *buf)
{
    if (pat_match(p, buf))
        return true;
    for (char *s = buf; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        bool m = pat_match(p, buf);
        *s = '/';
        if (m)
            return true;
    }
    return false;
}

bool
cs_ignore_match(const cs_ignore *ig, const char *relpath, bool is_dir)
{
    (void) is_dir;
    if (!ig || !ig->n)
        return false;
    size_t n = strlen(relpath);
    char stackbuf[1024];
    char *buf = n < sizeof(stackbuf) ? stackbuf : cs_xmalloc(n + 1);
    memcpy(buf, relpath, n + 1);
    bool matched = false;
    for (size_t i = 0; i < ig->n; i++) {
        const pat *p = &ig->p[i];
        /* An inclusion cannot change a match, an exception cannot change a
         * non-match: skip them (as patternmatcher does). */
        if (p->excl != matched)
            continue;
        if (match_or_parent(p, buf))
            matched = !p->excl;
    }
    if (buf != stackbuf)
        free(buf);
    return matched;
}

bool
cs_ignore_skip_dir(const cs_ignore *ig, const char *reldir)
{
    if (!cs_ignore_match(ig, reldir, true))
        return false;
    if (!ig->exclusions)
        return true;
    if (!ig->prefix_only_exceptions)
        return false;
    size_t dl = strlen(reldir);
    for (size_t i = 0; i < ig->n; i++) {
        const pat *p = &ig->p[i];
        if (!p->excl)
            continue;
        size_t n;
        const char *s = without_trailing_glob(p->s, &n);
        /* s + "/" starts with reldir + "/": the exception lies inside. */
        if (n + 1 >= dl + 1 && memcmp(s, reldir, dl) == 0 && (n == dl ? true : s[dl] == '/'))
            return false;
    }
    return true;
}

bool
cs_ignore_may_match_inside(const cs_ignore *ig, const char *reldir)
{
    if (!ig)
        return false;
    size_t dl = strlen(reldir);
    for (size_t i = 0; i < ig->n; i++) {
        const pat *p = &ig->p[i];
        if (p->excl)
            continue;
        /* The literal leading components of the pattern, up to the first
         * one with a wildcard. */
        const char *s = p->s;
        size_t lit = 0;
        for (const char *c = s;;) {
            size_t cl = strcspn(c, "/");
            bool wild = false;
            for (size_t k = 0; k < cl; k++)
                if (strchr("*?[]\\^", c[k]))
                    wild = true;
            if (wild)
                break;
            lit = (size_t) (c - s) + cl;
            if (!c[cl])
                break;
            c += cl + 1;
        }
        if (lit == 0)
            return true;
        /* reldir lies inside the literal prefix, or contains it. */
        if (dl <= lit && memcmp(s, reldir, dl) == 0 && (dl == lit || s[dl] == '/'))
            return true;
        if (dl > lit && memcmp(s, reldir, lit) == 0 && reldir[lit] == '/')
            return true;
    }
    return false;
}

bool
cs_ignore_has_exceptions(const cs_ignore *ig)
{
    return ig && ig->exclusions;
}

size_t
cs_ignore_count(const cs_ignore *ig)
{
    return ig ? ig->n : 0;
}
