/* df_int.h - internals shared by the Dockerfile parser (builder/df_*.c).
 *
 * Not a public API: builder/ callers use dockerfile.h. Unit tests may use it
 * to reach the word scanner directly.
 *
 * The files, in the order a Dockerfile flows through them:
 *   df_parse.c   physical lines -> logical lines (directives, comments,
 *                continuations), the instruction list and its stages
 *   df_heredoc.c heredoc words (<<EOF) and the bodies that follow a line
 *   df_words.c   the word scanner (flags, parseWords), whitespace split and
 *                the JSON exec form
 *   df_node.c    one logical line -> a cs_df_instr (keyword, flags, argument
 *                shape per instruction)
 *   df_check.c   BuildKit's per-instruction checks: flags and arguments
 *   df_health.c  HEALTHCHECK
 *   df_expand.c  flag lookup and expansion of arguments, ENV/LABEL pairs and
 *                heredoc bodies against an environment
 *   df_stage.c   stage lookup and ARG scoping
 */
#ifndef CSBUILD_DF_INT_H
#define CSBUILD_DF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include "cstore/strv.h"
#include "cstore/util.h"
#include "dockerfile.h"

/* The state of one cs_df_parse: the text, the read position and the cs_df
 * being built. cs_df_healthcheck builds one without text to share the
 * checks' error format. */
typedef struct df_parser {
    const char *path; /* for messages: "PATH:LINE: ..." */
    const char *text;
    size_t len, pos;
    int line; /* physical lines consumed so far */
    char esc;
    bool dir_done; /* parser directives are over */
    cs_df *df;
    cs_error **err;
} df_parser;

/* Sets *err to "PATH:LINE: message" (CS_EPARSE) and returns -CS_EPARSE. */
int df_perr(cs_error **err, const char *path, int line, const char *fmt, ...) CS_PRINTF(4, 5);
#define DF_ERR(p, ln, ...) df_perr((p)->err, (p)->path, (ln), __VA_ARGS__)

static inline bool
df_is_ws(int c) /* unicode.IsSpace, ASCII part */
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static inline bool
df_is_sep(int c) /* BuildKit's reWhitespace: [\t\v\f\r ] */
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* Lowercases s in place (ASCII); returns s. */
char *df_lower(char *s);
/* NUL-terminates b (not counted in b->len) and returns its bytes. */
char *df_buf_str(cs_buf *b);

/* ---- df_parse.c: physical lines ---- */
/* The next physical line, newline included; false at the end of the text. */
bool df_next_line(df_parser *p, const char **s, size_t *n);
/* n without the trailing \n and \r bytes of s. */
size_t df_trim_newline(const char *s, size_t n);

/* ---- df_words.c: the word scanner ---- */
/* BuildKit's extractBuilderFlags: the leading "--name[=value]" words of s,
 * quotes and escapes removed, appended to *in's flags; a bare "--" ends
 * them. Returns the text after the flags (inside s). */
const char *df_read_flags(const char *s, char esc, cs_df_instr *in);
/* BuildKit's parseWords: s split at unquoted whitespace, quotes and escapes
 * kept (the escape is literal inside single quotes). */
void df_split_words(const char *s, char esc, cs_strv *out);
/* BuildKit's parseStringsWhitespaceDelimited: s split at runs of
 * [\t\v\f\r ], nothing else special. */
void df_split_ws(const char *s, cs_strv *out);

enum { DF_JSON_NOT = 0, DF_JSON_OK = 1, DF_JSON_NOT_STRINGS = -1 };
/* A JSON array of strings: DF_JSON_OK, strings appended to out (one holding
 * \u0000 is cut there); valid JSON with other values: DF_JSON_NOT_STRINGS
 * (an error for Docker); anything else (shell form): DF_JSON_NOT. */
int df_parse_json(const char *s, cs_strv *out);

/* ---- df_heredoc.c ---- */
/* Returns 1 and fills h (name, chomp, expand, fd; release with
 * df_heredoc_release) when w is a heredoc word ("<<EOF", "3<<-'EOF'"), 0
 * when it is not, or the lexer's negative code (err set). */
int df_heredoc_word(const char *w, cs_df_heredoc *h, cs_error **err);
void df_heredoc_release(cs_df_heredoc *h);
/* True when w is a heredoc word; a word the lexer cannot read is none. */
bool df_is_heredoc_word(const char *w);
/* Reads from p the bodies of the heredocs named on line (the logical line
 * of in, which started at line start) into in->heredocs. */
int df_read_heredocs(df_parser *p, cs_df_instr *in, const char *line, int start);

/* ---- df_node.c ---- */
/* Fills *in (zeroed by the caller) from one logical line that starts at
 * line ln; on failure *in holds what was read (df_instr_release frees it). */
int df_parse_node(df_parser *p, const char *line, int ln, cs_df_instr *in);
void df_instr_release(cs_df_instr *in);

/* ---- df_check.c ---- */
/* BuildKit's checks of one parsed instruction (and of an ONBUILD trigger). */
int df_validate(df_parser *p, const cs_df_instr *in);
/* Checks in's flags against those its instruction accepts. */
int df_check_flags(df_parser *p, const cs_df_instr *in);

#endif
