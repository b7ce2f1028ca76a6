/* dockerfile.h - the Dockerfile language: parser, AST, validation, stages,
 * ARG scoping and per-instruction expansion, with BuildKit's rules
 * (dockerfile:1 syntax).
 *
 * cs_df_parse turns the text into a cs_df: parser directives, then the
 * instructions in order, each validated as BuildKit validates it (flags per
 * instruction, argument counts, JSON forms, heredocs...), then grouped into
 * stages. Nothing is expanded at parse time: values are kept as written, and
 * the cs_df_* expansion helpers apply an environment later (ARG and ENV values
 * are known only while building).
 *
 * Ownership: a cs_df owns everything reachable from it; the structs below are
 * read-only for callers and live until cs_df_free. Errors read
 * "PATH:LINE: message" with PATH the path_for_errors given to cs_df_parse and
 * LINE the first line of the instruction (1-based).
 *
 * Thread rules: a parsed cs_df is immutable, so several threads may read it
 * and call the const helpers at once.
 *
 * Implemented by builder/df_*.c (see df_int.h for which file does what).
 */
#ifndef CSBUILD_DOCKERFILE_H
#define CSBUILD_DOCKERFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cstore/error.h"
#include "cstore/util.h"
#include "lex.h"

typedef enum cs_df_cmd {
    CS_DF_ADD = 1,
    CS_DF_ARG,
    CS_DF_CMD,
    CS_DF_COPY,
    CS_DF_ENTRYPOINT,
    CS_DF_ENV,
    CS_DF_EXPOSE,
    CS_DF_FROM,
    CS_DF_HEALTHCHECK,
    CS_DF_LABEL,
    CS_DF_MAINTAINER,
    CS_DF_ONBUILD,
    CS_DF_RUN,
    CS_DF_SHELL,
    CS_DF_STOPSIGNAL,
    CS_DF_USER,
    CS_DF_VOLUME,
    CS_DF_WORKDIR,
} cs_df_cmd;

/* "RUN", "COPY"... (static string). */
const char *cs_df_cmd_name(cs_df_cmd cmd);

/* A --name[=value] flag, quotes and escapes removed, variables unexpanded. */
typedef struct cs_df_flag {
    char *name;  /* without the leading "--" */
    char *value; /* NULL when written without '=' (boolean flags) */
} cs_df_flag;

/* ENV/LABEL pair or ARG declaration, as written (quotes kept). */
typedef struct cs_df_kv {
    char *key;
    char *value; /* ARG without default: NULL */
    bool legacy; /* "ENV key value" form (no '=') */
} cs_df_kv;

typedef struct cs_df_heredoc {
    char *name;    /* the delimiter word, quotes removed */
    char *content; /* lines between the instruction and the delimiter, each
                    * with its newline; leading tabs kept even for <<- (see
                    * cs_df_heredoc_body) */
    bool chomp;    /* <<-: strip leading tabs */
    bool expand;   /* false when any part of the delimiter was quoted */
    unsigned fd;   /* 3<<EOF: 3; 0 when not given */
} cs_df_heredoc;

typedef struct cs_df_instr cs_df_instr;
struct cs_df_instr {
    cs_df_cmd cmd;
    char *keyword;      /* as written ("run", "Run"...) */
    int line, end_line; /* first and last line (1-based; heredocs included) */
    char *original;     /* the logical line: continuations joined, comments
                         * inside it dropped, as BuildKit's Node.Original */
    char *rest;         /* the argument text after the flags, trimmed ("" when none) */
    cs_df_flag *flags;  /* in order */
    size_t nflags;
    /* Arguments, unexpanded, per instruction:
     *  RUN CMD ENTRYPOINT SHELL: exec form: the JSON strings (json = true);
     *      shell form: one string, the text as written (none when empty)
     *  COPY ADD VOLUME: the JSON strings, or the text split at whitespace
     *  FROM EXPOSE: the text split at whitespace (FROM: image [AS name])
     *  ARG: the words, quotes kept (see kvs too)
     *  ENV LABEL: none (see kvs)
     *  MAINTAINER USER WORKDIR STOPSIGNAL: one string, the text as written
     *  HEALTHCHECK: args[0] the type (NONE/CMD as written), then the command
     *      as for CMD (json tells its form)
     *  ONBUILD: args[0] the trigger text; see trigger */
    char **args; /* NULL-terminated too */
    size_t nargs;
    bool json;     /* exec (JSON array) form */
    cs_df_kv *kvs; /* ENV LABEL ARG */
    size_t nkvs;
    cs_df_heredoc *heredocs; /* RUN COPY ADD (also as an ONBUILD trigger) */
    size_t nheredocs;
    cs_df_instr *trigger; /* ONBUILD: the nested instruction (its heredocs are
                           * on the trigger) */
};

typedef struct cs_df_stage {
    size_t index;
    char *name;                /* lowercased AS name, or NULL */
    const cs_df_instr *from;   /* the FROM instruction */
    const char *base;          /* image or stage, as written (from->args[0]) */
    const char *platform;      /* --platform as written, or NULL */
    const cs_df_instr *instrs; /* the instructions after FROM */
    size_t ninstrs;
} cs_df_stage;

typedef struct cs_df {
    char *path;          /* path_for_errors */
    char *syntax;        /* "# syntax=" value or NULL */
    char *check;         /* "# check=" value or NULL */
    char escape;         /* '\\' or '`' */
    cs_df_instr *instrs; /* every instruction in order */
    size_t ninstrs;
    size_t nmeta; /* instrs[0..nmeta) are the ARGs before the first FROM */
    cs_df_stage *stages;
    size_t nstages;
} cs_df;

/* Parses and validates a Dockerfile. text need not be NUL-terminated; a
 * UTF-8 BOM is skipped. *out is owned by the caller (cs_df_free). Returns 0,
 * or -CS_EPARSE with "PATH:LINE: message", e.g. "unknown instruction: FOO",
 * "unknown flag: --foo", "unterminated heredoc", "FROM requires either one or
 * three arguments", "no build stage in current context", "file with no
 * instructions". */
int cs_df_parse(const char *path_for_errors, const char *text, size_t len, cs_df **out,
                cs_error **err);
void cs_df_free(cs_df *df);
CS_DEFINE_FREEP(cs_df, cs_df_free)

/* ---- flags ---- */
/* The last occurrence of --name, or NULL (borrowed from in). */
const cs_df_flag *cs_df_flag_find(const cs_df_instr *in, const char *name);
/* Value of a boolean flag: false when absent or =false. */
bool cs_df_flag_bool(const cs_df_instr *in, const char *name);

/* ---- expansion (errors: "PATH:LINE: failed to process ...") ---- */
/* One word with the file's escape character (BuildKit's ProcessWord): quotes
 * removed, variables from env (may be NULL) substituted. *out malloc'd. */
int cs_df_word(const cs_df *df, const cs_df_instr *in, const char *word, const cs_df_env *env,
               char **out, cs_error **err);
/* The instruction's arguments after environment replacement, as BuildKit
 * dispatches them: ADD COPY VOLUME WORKDIR USER STOPSIGNAL: each argument
 * expanded as one word; EXPOSE: each argument expanded and split into words;
 * every other instruction: the arguments unchanged (RUN/CMD/ENTRYPOINT/SHELL
 * are left to the shell; use cs_df_stage_from for FROM, cs_df_kvs for
 * ENV/LABEL, cs_df_arg_apply for ARG). *out is a malloc'd NULL-terminated
 * vector (cs_strv_free). Returns the count or the lexer's negative code
 * (-CS_EPARSE). */
int cs_df_args(const cs_df *df, const cs_df_instr *in, const cs_df_env *env, char ***out,
               cs_error **err);
/* ENV/LABEL pairs with keys and values expanded against env (all pairs see
 * the same env: "ENV a=1 b=$a" gives b the previous a). *out malloc'd, free
 * with cs_df_kvs_free. Returns the count or a negative code. */
int cs_df_kvs(const cs_df *df, const cs_df_instr *in, const cs_df_env *env, cs_df_kv **out,
              cs_error **err);
void cs_df_kvs_free(cs_df_kv *kvs, size_t n);
/* A flag's value expanded as one word; *out is NULL when the flag is absent. */
int cs_df_flag_expand(const cs_df *df, const cs_df_instr *in, const char *name,
                      const cs_df_env *env, char **out, cs_error **err);
/* A heredoc's body: leading tabs stripped for <<-, and variables expanded
 * (quotes kept, escape '\\') when h->expand and env is not NULL. *out malloc'd. */
int cs_df_heredoc_body(const cs_df *df, const cs_df_instr *in, const cs_df_heredoc *h,
                       const cs_df_env *env, char **out, cs_error **err);

/* text followed, for each heredoc of in, by a newline, its body as written
 * and its delimiter: BuildKit's form of a line with heredocs as one text (the
 * script a RUN hands its shell, an ONBUILD trigger kept in the config). */
char *cs_df_with_heredocs(const char *text, const cs_df_instr *in);
/* The command a shell-form RUN hands its shell, as BuildKit makes it: the
 * text as written; for a heredoc that is the whole command ("RUN <<EOF"), its
 * body (tabs stripped for <<-, nothing expanded); for any other line with
 * heredocs ("cat <<EOF > /f", "<<EOF sh", "cat <<A <<B"), the line followed,
 * for each heredoc, by a newline, its body as written and its delimiter: one
 * script the shell reads (its <<-, quoting and expansion rules apply).
 * *out malloc'd. */
int cs_df_run_script(const cs_df *df, const cs_df_instr *in, char **out, cs_error **err);

/* The heredoc an argument stands for ("<<EOF", "<<-'EOF'"... as a COPY/ADD
 * source), or NULL when arg is not a heredoc word. Borrowed from in. */
const cs_df_heredoc *cs_df_heredoc_for_arg(const cs_df_instr *in, const char *arg);

/* ---- stages and ARG scoping ---- */
/* The stage named name (case-insensitive) or, when name is a decimal number,
 * with that index; NULL when none. Borrowed from df. */
const cs_df_stage *cs_df_stage_find(const cs_df *df, const char *name);

/* Adds the predefined platform ARGs for linux/amd64 (BUILDPLATFORM BUILDOS
 * BUILDOSVERSION BUILDARCH BUILDVARIANT TARGETPLATFORM TARGETOS
 * TARGETOSVERSION TARGETARCH TARGETVARIANT, and TARGETSTAGE = target or
 * "default"), each overridden by build_args (may be NULL) when given there. */
void cs_df_predefined_args(cs_df_env *env, const cs_df_env *build_args, const char *target);
/* True for the proxy ARGs usable without declaration (HTTP_PROXY http_proxy
 * HTTPS_PROXY https_proxy FTP_PROXY ftp_proxy NO_PROXY no_proxy ALL_PROXY
 * all_proxy): a --build-arg of these reaches RUN without an ARG line and is
 * kept out of the image history. */
bool cs_df_arg_is_proxy(const char *key);

/* The global scope: the predefined ARGs, then the ARGs before the first FROM
 * in order (a --build-arg value wins over the default; defaults are expanded
 * against the scope so far). target is the --target stage name or NULL (the
 * last stage). *out is owned by the caller. */
int cs_df_global_args(const cs_df *df, const cs_df_env *build_args, const char *target,
                      cs_df_env **out, cs_error **err);
/* A stage's FROM evaluated in the global scope: *base is the image or stage
 * reference (errors when it expands to ""), *platform the expanded
 * --platform or NULL. Both malloc'd. */
int cs_df_stage_from(const cs_df *df, const cs_df_stage *st, const cs_df_env *global, char **base,
                     char **platform, cs_error **err);
/* Applies an ARG instruction inside a stage to env (the stage's ARG+ENV
 * scope, used for expansion): for each name, the --build-arg value if given;
 * else the default expanded against env; else, for a bare "ARG NAME", the
 * global value (the redeclaration that makes a global ARG visible in a
 * stage). A name with no value at all stays unset. */
int cs_df_arg_apply(const cs_df *df, const cs_df_instr *in, const cs_df_env *global,
                    const cs_df_env *build_args, cs_df_env *env, cs_error **err);

/* ---- HEALTHCHECK ---- */
typedef struct cs_df_health {
    char **test; /* NULL-terminated: {"NONE"}, {"CMD", argv...} or {"CMD-SHELL", cmd} */
    int64_t interval_ns, timeout_ns, start_period_ns, start_interval_ns; /* 0: default */
    int retries;                                                         /* 0: default */
} cs_df_health;
/* Parses a HEALTHCHECK instruction (flags are Go durations: "30s", "1m30s").
 * Fills the caller-owned *out (release with cs_df_health_release). */
int cs_df_healthcheck(const cs_df *df, const cs_df_instr *in, cs_df_health *out, cs_error **err);
void cs_df_health_release(cs_df_health *h);

#endif
