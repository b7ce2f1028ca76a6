/* lex_pat.h - the shell patterns of ${v#p} ${v##p} ${v%p} ${v%%p} ${v/p/r}
 * and ${v//p/r} (builder/lex_pat.c; private to the lexer and its tests).
 *
 * A pattern is what BuildKit accepts: '*' (any bytes, possibly none), '?'
 * (one UTF-8 character), the escapes \* \? \\ \} \/ (the character itself)
 * and any other byte as itself; no bracket expressions. Removed and replaced
 * parts start and end on character boundaries.
 *
 * Matching simulates the pattern as an automaton over the value: time
 * O(len(value) * len(pattern)) per call (a replace-all makes a few passes),
 * memory O(len(pattern)), never exponential. The work is still bounded:
 * past CS_DF_PAT_BUDGET steps (pattern tokens times value bytes, over one
 * call) the call fails with -CS_EPARSE instead of running on.
 *
 * Thread rules: no state is kept between calls. */
#ifndef CSBUILD_LEX_PAT_H
#define CSBUILD_LEX_PAT_H

#include <stdbool.h>
#include <stddef.h>
#include "cstore/error.h"

/* A fraction of a second of matching. */
#define CS_DF_PAT_BUDGET ((size_t) 1 << 26)

/* ${v#p} (suffix false) / ${v%p} (suffix true); greedy for ## and %%.
 * *out is malloc'd (value itself when nothing matches). Returns 0 or
 * -CS_EPARSE (an invalid escape, the budget spent). */
int cs_df_pat_trim(const char *pattern, const char *value, bool greedy, bool suffix, char **out,
                   cs_error **err);

/* ${v/p/r} (all false) / ${v//p/r}: the leftmost match, the longest at that
 * position, replaced by repl (every non-overlapping one when all). *out is
 * malloc'd. Returns 0 or -CS_EPARSE. */
int cs_df_pat_replace(const char *pattern, const char *repl, const char *value, bool all,
                      char **out, cs_error **err);

#endif
