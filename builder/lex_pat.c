/* lex_pat.c - shell patterns for ${v#p} ${v%p} ${v/p/r} (see lex_pat.h).
 *
 * The former matcher tried every start and end and recursed at each '*':
 * exponential in the number of stars (a replace of "*a*a*a*b" on 200 a's ran for
 * minutes). Here the pattern is an automaton whose states are token
 * positions, simulated over the value once (Thompson's construction, as in
 * Go's regexp, which BuildKit uses for these patterns):
 *
 *  - forward, for # ## / //: each live state remembers the leftmost start
 *    that reaches it (a later start in the same state has the same future,
 *    so it can only lose), which gives the leftmost match and, scanning on,
 *    the longest one from that start;
 *  - backward, for % %%: which positions start a match that ends at the end
 *    of the value.
 *
 * The matching rules are the former matcher's, byte for byte: '*' consumes
 * any bytes, '?' one character (a lead byte and the continuation bytes after
 * it), any other token one equal byte; a match starts and ends on a
 * character boundary (or at the end of the value). A '?' starting anywhere
 * inside a character lands on the next boundary, so the forward simulation
 * keeps the states that '?' carries over in `pend` until that boundary. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cstore/util.h"
#include "lex_pat.h"

enum { PAT_STAR = -1, PAT_ANY = -2 };
#define NONE SIZE_MAX

typedef struct pat {
    const char *src; /* for messages */
    int *t;          /* tokens: a byte, PAT_STAR or PAT_ANY */
    size_t n;        /* tokens; states are 0..n, n accepts */
    size_t steps;    /* work done, against CS_DF_PAT_BUDGET */
    size_t *mem;     /* cur, nxt and pend: one state set each */
    size_t *cur, *nxt, *pend;
} pat;

static void
pat_release(pat *p)
{
    free(p->t);
    free(p->mem);
}

/* Compiles a pattern (escapes kept raw by the lexer) into tokens. */
static int
pat_compile(pat *p, const char *src, cs_error **err)
{
    size_t len = strlen(src), k = 0;
    memset(p, 0, sizeof(*p));
    p->src = src;
    p->t = cs_xmalloc((len + 1) * sizeof(int));
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) src[i];
        if (c == '*') {
            p->t[k++] = PAT_STAR;
        } else if (c == '?') {
            p->t[k++] = PAT_ANY;
        } else if (c == '\\' && i + 1 < len) {
            unsigned char d = (unsigned char) src[++i];
            if (d != '}' && d != '/' && d != '*' && d != '?' && d != '\\')
                return cs_err(err, CS_EPARSE, 0,
                              "invalid pattern (%s) in substitution: invalid escape '\\%c'", src,
                              d);
            p->t[k++] = d;
        } else {
            p->t[k++] = c;
        }
    }
    p->n = k;
    p->cur = p->mem = cs_xmalloc(3 * (k + 1) * sizeof(size_t));
    p->nxt = p->cur + k + 1;
    p->pend = p->nxt + k + 1;
    return 0;
}

static bool
is_boundary(const char *s, size_t n, size_t i)
{
    return i == n || ((unsigned char) s[i] & 0xC0) != 0x80;
}

static size_t
utf8_len(const char *s, size_t n)
{
    size_t i = 1;
    while (i < n && ((unsigned char) s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

static int
pat_step(pat *p, size_t vn, cs_error **err)
{
    p->steps += p->n + 1;
    if (p->steps <= CS_DF_PAT_BUDGET)
        return 0;
    return cs_err(err, CS_EPARSE, 0,
                  "pattern (%s) in substitution is too complex for a value of %zu bytes", p->src,
                  vn);
}

static void
set_min(size_t *a, size_t v)
{
    if (v < *a)
        *a = v;
}

/* Moves the states at pos (p->cur, closed over '*') one byte on. */
static void
pat_advance(pat *p, unsigned char c)
{
    for (size_t j = 0; j <= p->n; j++)
        p->nxt[j] = NONE;
    for (size_t j = 0; j < p->n; j++) {
        size_t st = p->cur[j];
        if (st == NONE)
            continue;
        if (p->t[j] == PAT_STAR)
            set_min(&p->nxt[j], st);
        else if (p->t[j] == PAT_ANY)
            set_min(&p->pend[j + 1], st);
        else if (p->t[j] == c)
            set_min(&p->nxt[j + 1], st);
    }
    size_t *tmp = p->cur;
    p->cur = p->nxt;
    p->nxt = tmp;
}

/* Drops states that started after limit; returns whether any is left. */
static bool
pat_prune(pat *p, size_t limit)
{
    bool live = false;
    for (size_t j = 0; j <= p->n; j++) {
        if (p->cur[j] > limit)
            p->cur[j] = NONE;
        if (p->pend[j] > limit)
            p->pend[j] = NONE;
        live |= p->cur[j] != NONE || p->pend[j] != NONE;
    }
    return live;
}

/* The leftmost match in s[from..vn) (anchored: starting at from), the
 * longest from that start or, when shortest, the shortest. Returns 1 with
 * [*ms, *me), 0 when none, or -CS_EPARSE. */
static int
pat_search(pat *p, const char *s, size_t vn, size_t from, bool anchored, bool shortest, size_t *ms,
           size_t *me, cs_error **err)
{
    size_t best_s = NONE, best_e = 0;
    for (size_t j = 0; j <= p->n; j++)
        p->cur[j] = p->pend[j] = NONE;
    for (size_t pos = from;; pos++) {
        bool bound = is_boundary(s, vn, pos);
        if (bound) {
            for (size_t j = 0; j <= p->n; j++) {
                set_min(&p->cur[j], p->pend[j]);
                p->pend[j] = NONE;
            }
            if (best_s == NONE && (!anchored || pos == from))
                set_min(&p->cur[0], pos);
        }
        for (size_t j = 0; j < p->n; j++)
            if (p->t[j] == PAT_STAR)
                set_min(&p->cur[j + 1], p->cur[j]);
        size_t st = p->cur[p->n];
        if (bound && st != NONE && (st < best_s || (st == best_s && !shortest))) {
            best_s = st;
            best_e = pos;
            if (shortest && anchored)
                break;
        }
        if (pos == vn)
            break;
        if (!pat_prune(p, best_s) && (best_s != NONE || anchored))
            break;
        int rc = pat_step(p, vn, err);
        if (rc < 0)
            return rc;
        pat_advance(p, (unsigned char) s[pos]);
    }
    if (best_s == NONE)
        return 0;
    *ms = best_s;
    *me = best_e;
    return 1;
}

/* The start of the match that ends at vn: the smallest start when longest,
 * else the largest. Walks back with one row of states per position: ok[j]
 * says t[j..] matches s[pos..vn). Returns 1 with *start, 0 or -CS_EPARSE. */
static int
pat_suffix(pat *p, const char *s, size_t vn, bool longest, size_t *start, cs_error **err)
{
    size_t n = p->n;
    cs_autofree uint8_t *mem = cs_xmalloc(3 * (n + 1));
    uint8_t *ok = mem, *after = mem + n + 1, *cell = after + n + 1;
    int found = 0;
    ok[n] = 1;
    for (size_t j = n; j-- > 0;)
        ok[j] = p->t[j] == PAT_STAR && ok[j + 1];
    for (size_t pos = vn;; pos--) {
        if (ok[0] && is_boundary(s, vn, pos)) {
            *start = pos;
            found = 1;
            if (!longest)
                break;
        }
        if (pos == 0)
            break;
        int rc = pat_step(p, vn, err);
        if (rc < 0)
            return rc;
        /* ok moves to after (row pos); '?' at pos-1 lands on the first
         * boundary after it: the row kept in cell. */
        uint8_t *tmp = after;
        after = ok;
        ok = tmp;
        if (is_boundary(s, vn, pos))
            memcpy(cell, after, n + 1);
        unsigned char c = (unsigned char) s[pos - 1];
        ok[n] = 0;
        for (size_t j = n; j-- > 0;) {
            if (p->t[j] == PAT_STAR)
                ok[j] = ok[j + 1] || after[j];
            else if (p->t[j] == PAT_ANY)
                ok[j] = cell[j + 1];
            else
                ok[j] = p->t[j] == c && after[j + 1];
        }
    }
    return found;
}

int
cs_df_pat_trim(const char *pattern, const char *value, bool greedy, bool suffix, char **out,
               cs_error **err)
{
    __attribute__((cleanup(pat_release))) pat p;
    size_t vn = strlen(value), ms = 0, me = 0;
    int rc = pat_compile(&p, pattern, err);
    if (rc < 0)
        return rc;
    if (suffix) {
        rc = pat_suffix(&p, value, vn, greedy, &ms, err);
        if (rc >= 0)
            *out = rc ? cs_xstrndup(value, ms) : cs_xstrdup(value);
    } else {
        rc = pat_search(&p, value, vn, 0, true, !greedy, &ms, &me, err);
        if (rc >= 0)
            *out = cs_xstrdup(rc ? value + me : value);
    }
    return rc < 0 ? rc : 0;
}

int
cs_df_pat_replace(const char *pattern, const char *repl, const char *value, bool all, char **out,
                  cs_error **err)
{
    __attribute__((cleanup(pat_release))) pat p;
    size_t vn = strlen(value), i = 0, ms, me;
    int rc = pat_compile(&p, pattern, err);
    if (rc < 0)
        return rc;
    cs_buf b;
    cs_buf_init(&b);
    for (;;) {
        if ((rc = pat_search(&p, value, vn, i, false, false, &ms, &me, err)) <= 0)
            break;
        cs_buf_append(&b, value + i, ms - i);
        cs_buf_append(&b, repl, strlen(repl));
        i = me;
        if (!all)
            break;
        if (me == ms) {
            /* An empty match: keep the character after it, go on after it. */
            if (ms == vn)
                break;
            size_t cl = utf8_len(value + ms, vn - ms);
            cs_buf_append(&b, value + ms, cl);
            i = ms + cl;
        }
    }
    if (rc < 0) {
        cs_buf_release(&b);
        return rc;
    }
    cs_buf_append(&b, value + i, vn - i + 1); /* with the NUL */
    *out = (char *) b.data;
    return 0;
}
