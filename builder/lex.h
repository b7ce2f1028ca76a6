/* lex.h - the Dockerfile shell-word lexer: variable expansion, quote removal
 * and word splitting with BuildKit's rules (frontend/dockerfile/shell).
 *
 * Supported: $VAR, ${VAR}, ${VAR:-w}, ${VAR-w}, ${VAR:+w}, ${VAR+w},
 * ${VAR:?msg}, ${VAR?msg}, ${VAR#pat}, ${VAR##pat}, ${VAR%pat}, ${VAR%%pat},
 * ${VAR/pat/repl}, ${VAR//pat/repl} (patterns: * and ?), single quotes
 * (literal), double quotes (only $ is expanded; the escape character escapes
 * " $ and itself), and the escape character outside quotes (escapes any
 * character; a trailing one is dropped). Positional and special parameters
 * ($1, $@, $#...) are never set. Unset variables expand to "".
 *
 * Thread rules: an env belongs to one thread; the functions keep no state.
 */
#ifndef CSBUILD_LEX_H
#define CSBUILD_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include "cstore/error.h"
#include "cstore/strv.h"
#include "cstore/util.h"

/* ---- an ordered set of variables (ARG and ENV values) ---- */
typedef struct cs_df_env cs_df_env;

/* Returns an empty env; never NULL (out of memory aborts). */
cs_df_env *cs_df_env_new(void);
/* Returns a deep copy of e (an empty env when e is NULL). */
cs_df_env *cs_df_env_dup(const cs_df_env *e);
void cs_df_env_free(cs_df_env *e);
CS_DEFINE_FREEP(cs_df_env, cs_df_env_free)
/* Copies key and value; an existing key keeps its position. */
void cs_df_env_set(cs_df_env *e, const char *key, const char *value);
/* Returns true when key was present. */
bool cs_df_env_unset(cs_df_env *e, const char *key);
/* Returns the value (borrowed: valid until the next set/unset/free of e), or
 * NULL when key is unset. e may be NULL (nothing is set). */
const char *cs_df_env_get(const cs_df_env *e, const char *key);
size_t cs_df_env_count(const cs_df_env *e);
/* The i-th variable in insertion order; both borrowed like cs_df_env_get. */
void cs_df_env_at(const cs_df_env *e, size_t i, const char **key, const char **value);

/* ---- expansion ---- */
enum {
    CS_DF_LEX_NO_QUOTES = 1 << 0,   /* quotes are ordinary characters (heredoc bodies) */
    CS_DF_LEX_KEEP_UNSET = 1 << 1,  /* leave $X / ${X...} as written when X is unset */
    CS_DF_LEX_RAW_QUOTES = 1 << 2,  /* keep quote characters in the result */
    CS_DF_LEX_RAW_ESCAPES = 1 << 3, /* keep escape characters in the result */
};

/* Expands word as one word (BuildKit's ProcessWord): quotes removed, escapes
 * applied, variables substituted, whitespace kept. escape is '\\' or '`'.
 * *out is malloc'd, owned by the caller. Returns 0, or -CS_EPARSE with
 * "failed to process \"WORD\": REASON" (bad substitution, unterminated quote,
 * ${X:?msg} on an unset X...). */
int cs_df_expand_ex(const char *word, int escape, unsigned flags, const cs_df_env *env, char **out,
                    cs_error **err);
/* cs_df_expand_ex with escape '\\' and no flags. */
int cs_df_expand(const char *word, const cs_df_env *env, char **out, cs_error **err);

/* Expands word and splits it into words (BuildKit's ProcessWords): unquoted
 * whitespace, including whitespace that comes from an unquoted variable,
 * separates words; quoted text never does. *out is a malloc'd NULL-terminated
 * vector (free with cs_strv_free). Returns the number of words or
 * -CS_EPARSE. */
int cs_df_words(const char *word, int escape, unsigned flags, const cs_df_env *env, char ***out,
                cs_error **err);

/* The former name of cs_strv_free (cstore/strv.h), kept for callers: frees
 * a NULL-terminated vector of malloc'd strings; NULL is fine. */
#define cs_df_strv_free cs_strv_free
static inline void
cs_df_strv_freep(char ***v)
{
    cs_df_strv_free(*v);
}

#endif
