/* ignore.h - path patterns with Docker's semantics (moby/patternmatcher):
 * .dockerignore files, COPY --exclude and the include pattern of --parents.
 *
 * Patterns are trimmed and cleaned (filepath.Clean; a leading "/" dropped),
 * a leading '!' makes an exception, and the last pattern that matches a path
 * wins. '*' and '?' match within one path component, '[...]' is a class
 * ('^' negates), '\\' escapes the next character, and "**" matches any number
 * of components (also none). A path is matched when it or one of its parent
 * directories matches a pattern, so a matched directory takes its contents
 * with it unless an exception re-includes something inside it.
 * Patterns can match the Dockerfile and .dockerignore themselves (the builder
 * reads those anyway).
 * Thread rules: a parsed cs_ignore is immutable; readers may share it.
 */
#ifndef CSBUILD_IGNORE_H
#define CSBUILD_IGNORE_H

#include <stdbool.h>
#include <stddef.h>
#include "cstore/error.h"

typedef struct cs_ignore cs_ignore;

/* Parses a .dockerignore file (text need not be NUL-terminated): an UTF-8
 * BOM is dropped, lines starting with '#' are comments, blank lines are
 * skipped. *out owned by the caller. CS_EPARSE on a malformed pattern
 * ("bad pattern '[a'") or a lone "!". */
int cs_ignore_parse(const char *text, size_t len, cs_ignore **out, cs_error **err);
/* The same matcher from a list of patterns (COPY --exclude, --parents). */
int cs_ignore_new(char *const *patterns, size_t n, cs_ignore **out, cs_error **err);
void cs_ignore_free(cs_ignore *ig);

/* True when relpath (a clean path relative to the root, no leading "/", not
 * "" or ".") is matched: ignored for a .dockerignore, excluded for
 * --exclude, included for --parents. is_dir is accepted for callers' clarity:
 * Docker's patterns do not distinguish directories (a trailing "/" in a
 * pattern is cleaned away). A NULL ig matches nothing. */
bool cs_ignore_match(const cs_ignore *ig, const char *relpath, bool is_dir);

/* True when the directory reldir is matched and no exception could
 * re-include anything under it, so a walk may skip it wholesale without
 * looking inside. False means: look inside (its entries may still all be
 * matched; then the directory itself is left out too, as BuildKit does). */
bool cs_ignore_skip_dir(const cs_ignore *ig, const char *reldir);

/* For include patterns (--parents): false when no pattern could match
 * anything under the directory reldir (so a walk need not enter it). */
bool cs_ignore_may_match_inside(const cs_ignore *ig, const char *reldir);

/* True when some pattern is an exception ('!'). */
bool cs_ignore_has_exceptions(const cs_ignore *ig);
/* Number of patterns (0 for NULL). */
size_t cs_ignore_count(const cs_ignore *ig);

/* Helpers shared with copy.c. */
/* Go's path.Clean: "" -> ".", "a//b/./c/.." -> "a/b", "/.." -> "/". Caller frees. */
char *cs_ignore_clean(const char *p);
/* Go's filepath.Match on one name (no '/' crossing); 1 match, 0 no match,
 * -1 malformed pattern. */
int cs_glob_match(const char *pattern, const char *name);
/* True when s has an unescaped '*', '?' or '['. */
bool cs_glob_has_wildcards(const char *s);

#endif
