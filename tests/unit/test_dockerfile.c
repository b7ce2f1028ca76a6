/* test_dockerfile.c - the Dockerfile language: parser, lexer, validation,
 * stages and ARG scoping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "build.h"
#include "df_int.h"
#include "dockerfile.h"
#include "lex.h"
#include "run_mountflags.h"

/* Parses text: with want NULL it must parse (the Dockerfile is returned),
 * else it must fail with exactly the message want (NULL is returned). */
static cs_df *
parse(const char *text, const char *want)
{
    cs_df *df = NULL;
    cs_error *err = NULL;
    int rc = cs_df_parse("Dockerfile", text, strlen(text), &df, &err);
    if (!want) {
        if (rc < 0)
            fail_msg("unexpected parse error: %s\n--- text:\n%s", err->msg, text);
        assert_non_null(df);
        return df;
    }
    if (rc >= 0)
        fail_msg("expected error '%s', parse succeeded:\n%s", want, text);
    assert_int_equal(rc, -CS_EPARSE);
    assert_null(df);
    if (strcmp(err->msg, want) != 0)
        fail_msg("error:\n  got  '%s'\n  want '%s'", err->msg, want);
    cs_error_free(err);
    return NULL;
}

static cs_df *
parse_ok(const char *text)
{
    return parse(text, NULL);
}

static void
parse_err(const char *text, const char *want)
{
    parse(text, want);
}

/* cmocka teardown of a test that left its Dockerfile in *state. */
static int
free_df(void **state)
{
    if (*state)
        cs_df_free(*state);
    return 0;
}

static char *
expand(const char *word, const cs_df_env *env)
{
    char *out = NULL;
    cs_error *err = NULL;
    if (cs_df_expand(word, env, &out, &err) < 0) {
        cs_error_free(err);
        return NULL;
    }
    return out;
}

/* The n words joined by sep into out (256 bytes). */
static void
join_words(char *const *w, size_t n, const char *sep, char *out)
{
    out[0] = '\0';
    for (size_t j = 0; j < n; j++) {
        if (j)
            strcat(out, sep);
        assert_true(strlen(out) + strlen(w[j]) < 250);
        strcat(out, w[j]);
    }
}

/* cs_df_expand_ex of word must succeed with want. */
static void
expect_expand_ex(const char *word, char esc, unsigned flags, const cs_df_env *env, const char *want)
{
    char *out = NULL;
    assert_int_equal(cs_df_expand_ex(word, esc, flags, env, &out, NULL), 0);
    assert_string_equal(out, want);
    free(out);
}

/* cs_df_args of instruction i must give n words, starting with want
 * (NULL-terminated). */
static void
expect_args(cs_df *df, size_t i, const cs_df_env *env, int n, const char *const *want)
{
    char **a = NULL;
    assert_int_equal(cs_df_args(df, &df->instrs[i], env, &a, NULL), n);
    for (int j = 0; j < n && want[j]; j++)
        assert_string_equal(a[j], want[j]);
    cs_strv_free(a);
}

#define WORDS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* ---- instructions ---- */

static void
every_instruction_parses_in_shell_and_exec_form(void **state)
{
    cs_df *df = *state = parse_ok("FROM --platform=linux/amd64 alpine:3.19 AS base\n"
                                  "RUN apk add curl\n"
                                  "RUN [\"/bin/sh\", \"-c\", \"echo hi\"]\n"
                                  "CMD echo hello\n"
                                  "CMD [\"echo\", \"hello\"]\n"
                                  "ENTRYPOINT top -b\n"
                                  "ENTRYPOINT [\"top\", \"-b\"]\n"
                                  "SHELL [\"/bin/bash\", \"-c\"]\n"
                                  "LABEL a=b \"c d\"=\"e f\"\n"
                                  "MAINTAINER someone <a@b.c>\n"
                                  "EXPOSE 80/tcp 443\n"
                                  "ENV PATH=/x:$PATH HOME=/root\n"
                                  "ENV LEGACY value with spaces\n"
                                  "ADD --chown=1:2 --chmod=644 --link a.tar /opt/\n"
                                  "ADD [\"a b\", \"/c d/\"]\n"
                                  "COPY --from=build --exclude=*.tmp --exclude=*.o src/ /dst/\n"
                                  "COPY [\"x\", \"y\"]\n"
                                  "VOLUME /data /logs\n"
                                  "VOLUME [\"/v\"]\n"
                                  "USER app:app\n"
                                  "WORKDIR /app\n"
                                  "ARG A B=2\n"
                                  "ONBUILD RUN make\n"
                                  "STOPSIGNAL SIGTERM\n"
                                  "HEALTHCHECK --interval=5s CMD curl -f http://localhost/\n"
                                  "HEALTHCHECK NONE\n");
    assert_int_equal(df->ninstrs, 26);
    assert_int_equal(df->nstages, 1);
    const cs_df_instr *in = df->instrs;

    assert_int_equal(in[0].cmd, CS_DF_FROM);
    assert_int_equal(in[0].nargs, 3);
    assert_string_equal(in[0].args[0], "alpine:3.19");
    assert_string_equal(cs_df_flag_find(&in[0], "platform")->value, "linux/amd64");

    assert_int_equal(in[1].cmd, CS_DF_RUN);
    assert_false(in[1].json);
    assert_int_equal(in[1].nargs, 1);
    assert_string_equal(in[1].args[0], "apk add curl");
    assert_true(in[2].json);
    assert_int_equal(in[2].nargs, 3);
    assert_string_equal(in[2].args[2], "echo hi");

    assert_false(in[3].json);
    assert_string_equal(in[3].args[0], "echo hello");
    assert_true(in[4].json);
    assert_int_equal(in[4].nargs, 2);
    assert_false(in[5].json);
    assert_true(in[6].json);
    assert_true(in[7].json);
    assert_int_equal(in[7].cmd, CS_DF_SHELL);

    assert_int_equal(in[8].cmd, CS_DF_LABEL);
    assert_int_equal(in[8].nkvs, 2);
    assert_string_equal(in[8].kvs[1].key, "\"c d\"");
    assert_string_equal(in[8].kvs[1].value, "\"e f\"");

    assert_int_equal(in[9].cmd, CS_DF_MAINTAINER);
    assert_string_equal(in[9].args[0], "someone <a@b.c>");
    assert_int_equal(in[10].nargs, 2);

    assert_int_equal(in[11].nkvs, 2);
    assert_false(in[11].kvs[0].legacy);
    assert_true(in[12].kvs[0].legacy);
    assert_string_equal(in[12].kvs[0].key, "LEGACY");
    assert_string_equal(in[12].kvs[0].value, "value with spaces");

    assert_int_equal(in[13].nflags, 3);
    assert_string_equal(in[13].flags[0].name, "chown");
    assert_string_equal(in[13].flags[0].value, "1:2");
    assert_null(in[13].flags[2].value);
    assert_true(cs_df_flag_bool(&in[13], "link"));
    assert_int_equal(in[13].nargs, 2);
    assert_true(in[14].json);
    assert_string_equal(in[14].args[1], "/c d/");

    assert_int_equal(in[15].nflags, 3);
    assert_string_equal(in[15].flags[2].value, "*.o");
    assert_string_equal(cs_df_flag_find(&in[15], "from")->value, "build");
    assert_true(in[16].json);
    assert_int_equal(in[17].nargs, 2);
    assert_true(in[18].json);
    assert_string_equal(in[19].args[0], "app:app");
    assert_string_equal(in[20].args[0], "/app");

    assert_int_equal(in[21].nkvs, 2);
    assert_null(in[21].kvs[0].value);
    assert_string_equal(in[21].kvs[1].value, "2");

    assert_int_equal(in[22].cmd, CS_DF_ONBUILD);
    assert_non_null(in[22].trigger);
    assert_int_equal(in[22].trigger->cmd, CS_DF_RUN);
    assert_string_equal(in[22].trigger->args[0], "make");

    assert_string_equal(in[23].args[0], "SIGTERM");
    assert_int_equal(in[24].cmd, CS_DF_HEALTHCHECK);
    assert_string_equal(in[24].args[0], "CMD");

    cs_df_health h;
    assert_int_equal(cs_df_healthcheck(df, &in[24], &h, NULL), 0);
    assert_string_equal(h.test[0], "CMD-SHELL");
    assert_string_equal(h.test[1], "curl -f http://localhost/");
    assert_int_equal(h.interval_ns, 5000000000LL);
    cs_df_health_release(&h);
    assert_int_equal(cs_df_healthcheck(df, &in[25], &h, NULL), 0);
    assert_string_equal(h.test[0], "NONE");
    assert_null(h.test[1]);
    cs_df_health_release(&h);
}

static void
keywords_are_case_insensitive_and_keep_their_spelling(void **state)
{
    cs_df *df = *state = parse_ok("from scratch\nRun echo\ncOpY a b\n");
    assert_int_equal(df->instrs[1].cmd, CS_DF_RUN);
    assert_string_equal(df->instrs[1].keyword, "Run");
    assert_int_equal(df->instrs[2].cmd, CS_DF_COPY);
    assert_string_equal(cs_df_cmd_name(df->instrs[2].cmd), "COPY");
}

static void
invalid_json_is_shell_form(void **state)
{
    cs_df *df = *state = parse_ok("FROM scratch\n"
                                  "CMD ['single', 'quotes']\n"
                                  "CMD [\"unterminated\"\n"
                                  "RUN [\"a\"] trailing\n"
                                  "ENTRYPOINT [\"ok\", \"\\u00e9\\n\"]\n"
                                  "COPY [\"a\" b\n");
    assert_false(df->instrs[1].json);
    assert_string_equal(df->instrs[1].args[0], "['single', 'quotes']");
    assert_false(df->instrs[2].json);
    assert_false(df->instrs[3].json);
    assert_true(df->instrs[4].json);
    assert_string_equal(df->instrs[4].args[1], "\xc3\xa9\n");
    assert_false(df->instrs[5].json);
    assert_int_equal(df->instrs[5].nargs, 2);
    assert_string_equal(df->instrs[5].args[0], "[\"a\"");
}

static void
flags_keep_order_and_lose_quotes(void **state)
{
    cs_df *df = *state = parse_ok("FROM scratch\n"
                                  "RUN --mount=type=cache,target=/root/.cache --network=none "
                                  "--mount=\"type=bind,source=a b\" make\n"
                                  "COPY --chown=$U -- --weird /dst\n");
    const cs_df_instr *r = &df->instrs[1];
    assert_int_equal(r->nflags, 3);
    assert_string_equal(r->flags[0].name, "mount");
    assert_string_equal(r->flags[0].value, "type=cache,target=/root/.cache");
    assert_string_equal(r->flags[2].value, "type=bind,source=a b");
    assert_string_equal(r->args[0], "make");
    const cs_df_instr *c = &df->instrs[2];
    assert_int_equal(c->nflags, 1);
    assert_int_equal(c->nargs, 2);
    assert_string_equal(c->args[0], "--weird");
}

static void
flag_words_drop_quotes_and_escapes_and_keep_empty_values(void **state)
{
    (void) state;
    cs_df *df = parse_ok("FROM scratch\n"
                         "RUN --mount=type=bind,source=a\\ b --network= make\n"
                         "RUN --mount='x\"y' --mount=\"p\\\"q\" --mount=a'b c'd true\n"
                         "COPY --chmod=\"\" --chown=u\\:g a b\n"
                         "RUN -x --mount=a make\n");
    const cs_df_instr *r = &df->instrs[1];
    assert_int_equal(r->nflags, 2);
    assert_string_equal(r->flags[0].value, "type=bind,source=a b"); /* escaped space */
    assert_string_equal(r->flags[1].name, "network");
    assert_non_null(r->flags[1].value); /* "--network=": empty, not absent */
    assert_string_equal(r->flags[1].value, "");
    assert_string_equal(r->rest, "make");
    r = &df->instrs[2];
    assert_int_equal(r->nflags, 3);
    assert_string_equal(r->flags[0].value, "x\"y");
    assert_string_equal(r->flags[1].value, "p\"q");
    assert_string_equal(r->flags[2].value, "ab cd"); /* quotes inside a word */
    assert_string_equal(r->args[0], "true");
    const cs_df_instr *c = &df->instrs[3];
    assert_int_equal(c->nflags, 2);
    assert_string_equal(c->flags[0].value, "");
    assert_string_equal(c->flags[1].value, "u:g");
    assert_int_equal(c->nargs, 2);
    r = &df->instrs[4]; /* flags stop at the first word that is none */
    assert_int_equal(r->nflags, 0);
    assert_string_equal(r->args[0], "-x --mount=a make");
    cs_df_free(df);

    df = parse_ok("# escape=`\nFROM scratch\nRUN --mount=a` b --network=\"n`\"\" x\n");
    assert_string_equal(df->instrs[1].flags[0].value, "a b");
    assert_string_equal(df->instrs[1].flags[1].value, "n\"");
    cs_df_free(df);

    parse_err("FROM scratch\nCOPY --link= a b\n", "Dockerfile:2: missing a value on flag: --link");
    parse_err("FROM scratch\nRUN --network make\n",
              "Dockerfile:2: missing a value on flag: --network");
}

static void
split_words_keeps_quotes_and_escapes(void **state)
{
    (void) state;
    static const struct {
        const char *in;
        char esc;
        const char *out; /* words joined with '|' */
    } t[] = {
        { "", '\\', "" },
        { "  a  b\t c ", '\\', "a|b|c" },
        { "a=\"x y\" b", '\\', "a=\"x y\"|b" },
        { "c\\ d e", '\\', "c\\ d|e" },
        { "'p\\q r' s", '\\', "'p\\q r'|s" }, /* the escape is literal in single quotes */
        { "\"p\\\" q\" s", '\\', "\"p\\\" q\"|s" },
        { "\"\" x", '\\', "\"\"|x" },
        { "a\\", '\\', "a" }, /* a trailing escape is dropped */
        { "a` b c", '`', "a` b|c" },
        { "a\\ b", '`', "a\\|b" },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        cs_strv w = { 0 };
        df_split_words(t[i].in, t[i].esc, &w);
        char joined[256];
        join_words(w.v, w.n, "|", joined);
        if (strcmp(joined, t[i].out) != 0)
            fail_msg("[%s]: want '%s', got '%s'", t[i].in, t[i].out, joined);
        cs_strv_release(&w);
    }
    cs_df *df = parse_ok("FROM scratch\nENV a=\"x y\" b=c\\ d e='p\\q'\nARG x= y\n");
    const cs_df_instr *e = &df->instrs[1];
    assert_int_equal(e->nkvs, 3);
    assert_string_equal(e->kvs[0].value, "\"x y\"");
    assert_string_equal(e->kvs[1].value, "c\\ d");
    assert_string_equal(e->kvs[2].value, "'p\\q'");
    const cs_df_instr *a = &df->instrs[2];
    assert_int_equal(a->nkvs, 2);
    assert_string_equal(a->kvs[0].value, "");
    assert_null(a->kvs[1].value);
    cs_df_free(df);
}

/* rc and *err must both say CS_EPARSE, and the message be msg (NULL: any);
 * clears *err. */
static void
expect_eparse(int rc, cs_error **err, const char *msg)
{
    assert_int_equal(rc, -CS_EPARSE);
    assert_non_null(*err);
    assert_int_equal(rc, -(int) (*err)->code);
    if (msg)
        assert_string_equal((*err)->msg, msg);
    cs_error_clear(err);
}

static void
expansion_errors_return_the_lexers_code(void **state)
{
    cs_df *df = *state =
        parse_ok("FROM scratch\nWORKDIR ${X:?unset}\nEXPOSE \"80\nENV k=${Y:?no}\n");
    char **a = NULL;
    cs_error *err = NULL;
    expect_eparse(cs_df_args(df, &df->instrs[1], NULL, &a, &err), &err,
                  "Dockerfile:2: failed to process \"${X:?unset}\": X: unset");
    expect_eparse(cs_df_args(df, &df->instrs[2], NULL, &a, &err), &err, NULL);
    cs_df_kv *kv = NULL;
    expect_eparse(cs_df_kvs(df, &df->instrs[3], NULL, &kv, &err), &err, NULL);
    /* without an error chain, the code is still the lexer's */
    assert_int_equal(cs_df_args(df, &df->instrs[1], NULL, &a, NULL), -CS_EPARSE);
}

/* ---- directives, comments, continuations ---- */

static void
parser_directives_are_read_only_at_the_top(void **state)
{
    (void) state;
    cs_df *df = parse_ok("# syntax=docker/dockerfile:1\n"
                         "#check=skip=all\n"
                         "# escape=\\\n"
                         "FROM scratch\n");
    assert_string_equal(df->syntax, "docker/dockerfile:1");
    assert_string_equal(df->check, "skip=all");
    assert_int_equal(df->escape, '\\');
    cs_df_free(df);

    /* after a comment or a blank line they are comments */
    df = parse_ok("# hello\n# escape=`\nFROM scratch\nRUN a \\\n b\n");
    assert_int_equal(df->escape, '\\');
    assert_string_equal(df->instrs[1].args[0], "a  b");
    cs_df_free(df);
    df = parse_ok("\n# syntax=x\nFROM scratch\n");
    assert_null(df->syntax);
    cs_df_free(df);

    parse_err("# escape=`\n# escape=\\\nFROM scratch\n",
              "Dockerfile:2: only one escape parser directive can be used");
    parse_err("# escape=x\nFROM scratch\n",
              "Dockerfile:1: invalid escape token 'x' does not match ` or \\");
}

static void
escape_backtick_continues_lines_and_escapes_words(void **state)
{
    cs_df *df = *state = parse_ok("# escape=`\n"
                                  "FROM scratch\n"
                                  "COPY testfile.txt c:\\\n"
                                  "RUN dir c:\\ `\n"
                                  "    /s\n"
                                  "ENV A=`$B\n");
    assert_int_equal(df->escape, '`');
    assert_string_equal(df->instrs[1].args[1], "c:\\");
    assert_int_equal(df->instrs[2].line, 4);
    assert_string_equal(df->instrs[2].args[0], "dir c:\\     /s");
    cs_df_kv *kv = NULL;
    assert_int_equal(cs_df_kvs(df, &df->instrs[3], NULL, &kv, NULL), 1);
    assert_string_equal(kv[0].value, "$B");
    cs_df_kvs_free(kv, 1);
}

static void
continuations_skip_comment_and_empty_lines(void **state)
{
    (void) state;
    cs_df *df = parse_ok("FROM scratch\n"
                         "# a comment\n"
                         "\n"
                         "RUN apt-get update && \\\n"
                         "# inside\n"
                         "    # indented comment\n"
                         "\n"
                         "   \n"
                         "    apt-get install -y x \\\n"
                         "  && done\n"
                         "RUN echo \\\\\n"
                         "RUN last \\");
    assert_int_equal(df->ninstrs, 4);
    const cs_df_instr *r = &df->instrs[1];
    assert_int_equal(r->line, 4);
    assert_int_equal(r->end_line, 10);
    assert_string_equal(r->args[0], "apt-get update &&     apt-get install -y x   && done");
    assert_string_equal(df->instrs[2].args[0], "echo \\\\");
    assert_string_equal(df->instrs[3].args[0], "last");
    assert_int_equal(df->instrs[3].line, 12);
    cs_df_free(df);

    /* CRLF line ends and a BOM */
    df = parse_ok("\xEF\xBB\xBF"
                  "FROM scratch\r\nRUN a \\\r\n b\r\n");
    assert_string_equal(df->instrs[1].args[0], "a  b");
    cs_df_free(df);
}

/* ---- heredocs ---- */

static void
heredocs_attach_to_run_copy_and_add(void **state)
{
    cs_df *df = *state = parse_ok("FROM scratch\n"
                                  "RUN <<EOF\n"
                                  "echo $HOME\n"
                                  "EOF\n"
                                  "RUN <<-FILE1 cat >/a && 3<<\"FILE2\" cat >/b\n"
                                  "\t\tindented\n"
                                  "\tFILE1\n"
                                  "no $expansion\n"
                                  "FILE2\n"
                                  "COPY <<'A' <<B /dest/\n"
                                  "a ${X}\n"
                                  "A\n"
                                  "b ${X}\n"
                                  "B\n"
                                  "ADD --chmod=755 <<E\"O\"F /x\n"
                                  "EOF\n"
                                  "ONBUILD RUN <<EOF\n"
                                  "nested\n"
                                  "EOF\n"
                                  "RUN [\"echo\", \"<<EOF\"]\n");
    assert_int_equal(df->ninstrs, 7);
    const cs_df_instr *r = &df->instrs[1];
    assert_int_equal(r->nheredocs, 1);
    assert_string_equal(r->heredocs[0].name, "EOF");
    assert_string_equal(r->heredocs[0].content, "echo $HOME\n");
    assert_true(r->heredocs[0].expand);
    assert_false(r->heredocs[0].chomp);
    assert_string_equal(r->args[0], "<<EOF");
    assert_int_equal(r->line, 2);
    assert_int_equal(r->end_line, 4);

    r = &df->instrs[2];
    assert_int_equal(r->line, 5);
    assert_int_equal(r->nheredocs, 2);
    assert_true(r->heredocs[0].chomp);
    assert_true(r->heredocs[0].expand);
    assert_string_equal(r->heredocs[0].content, "\t\tindented\n");
    char *body = NULL;
    assert_int_equal(cs_df_heredoc_body(df, r, &r->heredocs[0], NULL, &body, NULL), 0);
    assert_string_equal(body, "indented\n");
    free(body);
    assert_string_equal(r->heredocs[1].name, "FILE2");
    assert_false(r->heredocs[1].expand);
    assert_int_equal(r->heredocs[1].fd, 3);

    r = &df->instrs[3];
    assert_int_equal(r->nheredocs, 2);
    assert_false(r->heredocs[0].expand);
    assert_true(r->heredocs[1].expand);
    assert_int_equal(r->nargs, 3);
    const cs_df_heredoc *h = cs_df_heredoc_for_arg(r, r->args[1]);
    assert_non_null(h);
    assert_string_equal(h->name, "B");
    assert_null(cs_df_heredoc_for_arg(r, r->args[2]));
    cs_df_env *env = cs_df_env_new();
    cs_df_env_set(env, "X", "1");
    assert_int_equal(cs_df_heredoc_body(df, r, &r->heredocs[0], env, &body, NULL), 0);
    assert_string_equal(body, "a ${X}\n");
    free(body);
    assert_int_equal(cs_df_heredoc_body(df, r, &r->heredocs[1], env, &body, NULL), 0);
    assert_string_equal(body, "b 1\n");
    free(body);
    cs_df_env_free(env);

    r = &df->instrs[4];
    assert_int_equal(r->nheredocs, 1);
    assert_string_equal(r->heredocs[0].name, "EOF");
    assert_false(r->heredocs[0].expand);
    assert_string_equal(r->heredocs[0].content, "");

    r = &df->instrs[5];
    assert_int_equal(r->trigger->nheredocs, 1);
    assert_string_equal(r->trigger->heredocs[0].content, "nested\n");
    assert_int_equal(df->instrs[6].nheredocs, 0);
}

static void
heredoc_errors_name_the_instruction_line(void **state)
{
    (void) state;
    parse_err("FROM scratch\nRUN <<EOF\nnever ends\n", "Dockerfile:2: unterminated heredoc");
    parse_err("FROM scratch\nCOPY a <<EOF\nx\nEOF\n",
              "Dockerfile:2: COPY cannot accept a heredoc as a destination");
}

/* ---- the lexer ---- */

static void
variable_substitution_follows_buildkit(void **state)
{
    (void) state;
    cs_df_env *env = cs_df_env_new();
    cs_df_env_set(env, "PWD", "/home");
    cs_df_env_set(env, "SHELL", "bash");
    cs_df_env_set(env, "NULL", "");
    cs_df_env_set(env, "FILE", "/a/b/c.tar.gz");
    static const struct {
        const char *in, *out; /* out NULL: error */
    } t[] = {
        { "hello", "hello" },
        { "he'll'o", "hello" },
        { "he'llo", NULL },
        { "he\\'llo", "he'llo" },
        { "abc\\tdef", "abctdef" },
        { "\"abc\\tdef\"", "abc\\tdef" },
        { "\"abc\\\\tdef\"", "abc\\tdef" },
        { "'abc\\tdef'", "abc\\tdef" },
        { "hello\\", "hello" },
        { "hello\\\\", "hello\\" },
        { "\"hello", NULL },
        { "\"hello\\\"", NULL },
        { "'hello\\'", "hello\\" },
        { "\"''\"", "''" },
        { "$.", "$." },
        { "he$1x", "hex" },
        { "he$PWD", "he/home" },
        { "he\\$PWD", "he$PWD" },
        { "he\\\\$PWD", "he\\/home" },
        { "\"he\\$PWD\"", "he$PWD" },
        { "'he$PWD'", "he$PWD" },
        { "\\${}", "${}" },
        { "${}", NULL },
        { "he${hi}xx", "hexx" },
        { "he${PWD}", "he/home" },
        { "he${.}", NULL },
        { "he${XXX:-000}xx", "he000xx" },
        { "he${PWD:-000}xx", "he/homexx" },
        { "he${XXX:-$PWD}xx", "he/homexx" },
        { "he${XXX:-${YYY:-yyy}}xx", "heyyyxx" },
        { "he${NULL:-d}", "hed" },
        { "he${NULL-d}", "he" },
        { "he${XXX-d}", "hed" },
        { "he${XXX:+000}xx", "hexx" },
        { "he${PWD:+000}xx", "he000xx" },
        { "he${NULL:+x}", "he" },
        { "he${NULL+x}", "hex" },
        { "he${PWD:+${SHELL}}xx", "hebashxx" },
        { "he${XXX:YYY}", NULL },
        { "he${XXX?}", NULL },
        { "he${XXX:?custom}", NULL },
        { "he${PWD:?}", "he/home" },
        { "he${NULL?}", "he" },
        { "he${NULL:?}", NULL },
        { "\"he'$PWD'\"", "he'/home'" },
        { "he${PWD", NULL },
        { "he${PWD:=000}xx", NULL },
        { "he${XXX:-\\$PWD:}xx", "he$PWD:xx" },
        { "${aaa:-bbb}}", "bbb}" },
        { "${aaa:-bbb ${foo}", NULL },
        { "${aaa:-bbb {foo}", "bbb {foo" },
        { "${1:-bbb}", "bbb" },
        { "$@aaa", "aaa" },
        { "${FILE#*/}", "a/b/c.tar.gz" },
        { "${FILE##*/}", "c.tar.gz" },
        { "${FILE%.*}", "/a/b/c.tar" },
        { "${FILE%%.*}", "/a/b/c" },
        { "${FILE/b/x}", "/a/x/c.tar.gz" },
        { "${FILE//\\//_}", "_a_b_c.tar.gz" },
        { "${FILE:#x}", NULL },
        { "caf\xc3\xa9 '$PWD'", "caf\xc3\xa9 $PWD" },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char *got = expand(t[i].in, env);
        if (!t[i].out && got)
            fail_msg("%s: want an error, got '%s'", t[i].in, got);
        if (t[i].out && !got)
            fail_msg("%s: want '%s', got an error", t[i].in, t[i].out);
        if (got && strcmp(got, t[i].out) != 0)
            fail_msg("%s: want '%s', got '%s'", t[i].in, t[i].out, got);
        free(got);
    }

    cs_error *err = NULL;
    char *out = NULL;
    assert_int_equal(cs_df_expand("${XXX:?need it}", env, &out, &err), -CS_EPARSE);
    assert_string_equal(err->msg, "failed to process \"${XXX:?need it}\": XXX: need it");
    cs_error_free(err);
    err = NULL;
    assert_int_equal(cs_df_expand("${NULL:?}", env, &out, &err), -CS_EPARSE);
    assert_string_equal(err->msg,
                        "failed to process \"${NULL:?}\": NULL: is not allowed to be empty");
    cs_error_free(err);

    /* KEEP_UNSET leaves unknown variables as written */
    expect_expand_ex("$A ${B} ${C:-x} $PWD", '\\', CS_DF_LEX_KEEP_UNSET, env,
                     "$A ${B} ${C:-x} /home");
    /* NO_QUOTES (heredoc bodies) */
    expect_expand_ex("'$PWD' \"x\"", '\\', CS_DF_LEX_NO_QUOTES, env, "'/home' \"x\"");
    /* the backtick escape */
    expect_expand_ex("c:\\dir `$PWD", '`', 0, env, "c:\\dir $PWD");
    cs_df_env_free(env);
}

static void
words_split_on_unquoted_whitespace_after_expansion(void **state)
{
    (void) state;
    cs_df_env *env = cs_df_env_new();
    cs_df_env_set(env, "space", "abc  def");
    cs_df_env_set(env, "leading", "  ab c");
    static const struct {
        const char *in;
        const char *out; /* words joined by ',' */
    } t[] = {
        { "hello", "hello" },
        { "hello${space}bye", "helloabc,defbye" },
        { "hello\"${space}\"bye", "helloabc  defbye" },
        { "hello \"${space}\"bye", "hello,abc  defbye" },
        { "hello${leading}def", "hello,ab,cdef" },
        { "hello\" there  \"", "hello there  " },
        { "hello there     ", "hello,there" },
        { "hello\\ there", "hello there" },
        { "hello\\\" there", "hello\",there" },
        { "hello'$there'", "hello$there" },
        { "a '' b", "a,b" },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char **w = NULL;
        int n = cs_df_words(t[i].in, '\\', 0, env, &w, NULL);
        assert_true(n >= 0);
        char joined[256];
        join_words(w, (size_t) n, ",", joined);
        assert_null(w[n]);
        if (strcmp(joined, t[i].out) != 0)
            fail_msg("%s: want '%s', got '%s'", t[i].in, t[i].out, joined);
        cs_strv_free(w);
    }
    char **w = NULL;
    assert_true(cs_df_words("hello\" there", '\\', 0, env, &w, NULL) < 0);
    cs_df_env_free(env);
}

static void
instructions_expand_as_buildkit_dispatches_them(void **state)
{
    cs_df *df = *state = parse_ok("FROM busybox\n"
                                  "ENV foo /bar\n"
                                  "WORKDIR ${foo}\n"
                                  "ADD . $foo\n"
                                  "COPY \\$foo /quux\n"
                                  "EXPOSE $PORTS 9000\n"
                                  "ENV a=1 b=\"x $foo\" 'c'=$a\n"
                                  "LABEL \"com.example.vendor\"=\"ACME Inc\" version=${V:-1.0}\n"
                                  "RUN echo $foo\n"
                                  "USER ${U:-app}\n"
                                  "COPY --chown=${U}:grp a b\n");
    cs_df_env *env = cs_df_env_new();
    cs_df_env_set(env, "foo", "/bar");
    cs_df_env_set(env, "a", "old");
    cs_df_env_set(env, "PORTS", "80 443/udp");
    cs_df_env_set(env, "U", "me");
    expect_args(df, 2, env, 1, WORDS("/bar"));
    expect_args(df, 3, env, 2, WORDS(".", "/bar"));
    expect_args(df, 4, env, 2, WORDS("$foo"));
    expect_args(df, 5, env, 3, WORDS("80", "443/udp", "9000"));

    cs_df_kv *kv = NULL;
    assert_int_equal(cs_df_kvs(df, &df->instrs[1], env, &kv, NULL), 1);
    assert_string_equal(kv[0].key, "foo");
    assert_string_equal(kv[0].value, "/bar");
    cs_df_kvs_free(kv, 1);
    assert_int_equal(cs_df_kvs(df, &df->instrs[6], env, &kv, NULL), 3);
    assert_string_equal(kv[1].value, "x /bar");
    assert_string_equal(kv[2].key, "c");
    assert_string_equal(kv[2].value, "old"); /* pairs see the env before the instruction */
    cs_df_kvs_free(kv, 3);
    assert_int_equal(cs_df_kvs(df, &df->instrs[7], env, &kv, NULL), 2);
    assert_string_equal(kv[0].key, "com.example.vendor");
    assert_string_equal(kv[0].value, "ACME Inc");
    assert_string_equal(kv[1].value, "1.0");
    cs_df_kvs_free(kv, 2);

    expect_args(df, 8, env, 1, WORDS("echo $foo")); /* RUN is left to the shell */
    expect_args(df, 9, env, 1, WORDS("me"));
    char *chown = NULL;
    assert_int_equal(cs_df_flag_expand(df, &df->instrs[10], "chown", env, &chown, NULL), 0);
    assert_string_equal(chown, "me:grp");
    free(chown);
    assert_int_equal(cs_df_flag_expand(df, &df->instrs[10], "chmod", env, &chown, NULL), 0);
    assert_null(chown);

    char **a = NULL;
    cs_error *err = NULL;
    cs_df_env_set(env, "foo", "");
    cs_df_instr bad = df->instrs[2];
    bad.args = (char *[]){ "${foo:?must be set}", NULL };
    assert_true(cs_df_args(df, &bad, env, &a, &err) < 0);
    assert_string_equal(
        err->msg, "Dockerfile:3: failed to process \"${foo:?must be set}\": foo: must be set");
    cs_error_free(err);
    cs_df_env_free(env);
}

/* ---- ARG scoping ---- */

static void
global_args_are_visible_in_from_only(void **state)
{
    cs_df *df = *state = parse_ok("ARG CODE_VERSION=latest\n"
                                  "ARG BASE=base:${CODE_VERSION}\n"
                                  "ARG UNSET\n"
                                  "FROM ${BASE} AS one\n"
                                  "ARG CODE_VERSION\n"
                                  "ARG LOCAL=${CODE_VERSION}-x\n"
                                  "FROM --platform=$BUILDPLATFORM extras:${CODE_VERSION}\n"
                                  "RUN echo $CODE_VERSION\n"
                                  "FROM scratch\n"
                                  "ARG TARGETARCH\n"
                                  "ARG HTTP_PROXY\n");
    assert_int_equal(df->nmeta, 3);
    assert_int_equal(df->nstages, 3);

    cs_df_env *global = NULL;
    assert_int_equal(cs_df_global_args(df, NULL, NULL, &global, NULL), 0);
    assert_string_equal(cs_df_env_get(global, "BASE"), "base:latest");
    assert_null(cs_df_env_get(global, "UNSET"));
    assert_string_equal(cs_df_env_get(global, "TARGETPLATFORM"), "linux/amd64");
    assert_string_equal(cs_df_env_get(global, "TARGETARCH"), "amd64");
    assert_string_equal(cs_df_env_get(global, "TARGETVARIANT"), "");
    assert_string_equal(cs_df_env_get(global, "BUILDOS"), "linux");

    char *base = NULL, *plat = NULL;
    assert_int_equal(cs_df_stage_from(df, &df->stages[0], global, &base, &plat, NULL), 0);
    assert_string_equal(base, "base:latest");
    assert_null(plat);
    free(base);
    assert_int_equal(cs_df_stage_from(df, &df->stages[1], global, &base, &plat, NULL), 0);
    assert_string_equal(base, "extras:latest");
    assert_string_equal(plat, "linux/amd64");
    free(base);
    free(plat);

    /* inside a stage a global ARG exists only once redeclared */
    cs_df_env *env = cs_df_env_new();
    const cs_df_stage *one = &df->stages[0];
    char *w = NULL;
    assert_int_equal(cs_df_word(df, &one->instrs[0], "v=$CODE_VERSION", env, &w, NULL), 0);
    assert_string_equal(w, "v=");
    free(w);
    assert_int_equal(cs_df_arg_apply(df, &one->instrs[0], global, NULL, env, NULL), 0);
    assert_int_equal(cs_df_arg_apply(df, &one->instrs[1], global, NULL, env, NULL), 0);
    assert_string_equal(cs_df_env_get(env, "CODE_VERSION"), "latest");
    assert_string_equal(cs_df_env_get(env, "LOCAL"), "latest-x");
    cs_df_env_free(env);

    /* predefined ARGs too */
    env = cs_df_env_new();
    assert_int_equal(cs_df_arg_apply(df, &df->stages[2].instrs[0], global, NULL, env, NULL), 0);
    assert_string_equal(cs_df_env_get(env, "TARGETARCH"), "amd64");
    cs_df_env_free(env);
    cs_df_env_free(global);

    assert_true(cs_df_arg_is_proxy("HTTP_PROXY"));
    assert_true(cs_df_arg_is_proxy("no_proxy"));
    assert_false(cs_df_arg_is_proxy("Http_Proxy"));
    assert_false(cs_df_arg_is_proxy("PATH"));
}

static void
build_args_override_defaults_and_globals(void **state)
{
    cs_df *df = *state = parse_ok("ARG V=1\n"
                                  "ARG W=$V-w\n"
                                  "FROM img:$W\n"
                                  "ARG V\n"
                                  "ARG X=default\n"
                                  "ARG Y\n");
    cs_df_env *ba = cs_df_env_new();
    cs_df_env_set(ba, "V", "9");
    cs_df_env_set(ba, "X", "fromcli");
    cs_df_env_set(ba, "TARGETARCH", "arm64");
    cs_df_env *global = NULL;
    assert_int_equal(cs_df_global_args(df, ba, NULL, &global, NULL), 0);
    assert_string_equal(cs_df_env_get(global, "W"), "9-w");
    assert_string_equal(cs_df_env_get(global, "TARGETARCH"), "arm64");
    char *base = NULL, *plat = NULL;
    assert_int_equal(cs_df_stage_from(df, &df->stages[0], global, &base, &plat, NULL), 0);
    assert_string_equal(base, "img:9-w");
    free(base);

    cs_df_env *env = cs_df_env_new();
    for (size_t i = 0; i < df->stages[0].ninstrs; i++)
        assert_int_equal(cs_df_arg_apply(df, &df->stages[0].instrs[i], global, ba, env, NULL), 0);
    assert_string_equal(cs_df_env_get(env, "V"), "9");
    assert_string_equal(cs_df_env_get(env, "X"), "fromcli");
    assert_null(cs_df_env_get(env, "Y"));
    cs_df_env_free(env);
    cs_df_env_free(global);
    cs_df_env_free(ba);

    /* a FROM that expands to nothing */
    cs_df_env *empty = cs_df_env_new();
    cs_error *err = NULL;
    cs_df_stage st = df->stages[0];
    st.base = "$NOPE";
    assert_true(cs_df_stage_from(df, &st, empty, &base, &plat, &err) < 0);
    assert_string_equal(err->msg, "Dockerfile:3: base name ($NOPE) should not be blank");
    cs_error_free(err);
    cs_df_env_free(empty);
}

/* ---- errors ---- */

static void
errors_name_the_file_and_line(void **state)
{
    (void) state;
    static const struct {
        const char *text, *msg;
    } t[] = {
        { "FROM scratch\nFOO bar\n", "Dockerfile:2: unknown instruction: FOO" },
        { "FROM scratch\n\nRUN --foo=1 true\n", "Dockerfile:3: unknown flag: --foo" },
        { "FROM scratch\nCOPY --from=a --from=b x y\n",
          "Dockerfile:2: duplicate flag specified: --from" },
        { "FROM scratch\nCOPY --link=maybe x y\n",
          "Dockerfile:2: expecting boolean value for flag --link, not: maybe" },
        { "FROM scratch\nCOPY --chown x y\n", "Dockerfile:2: missing a value on flag: --chown" },
        { "FROM scratch\nADD --from=x a b\n", "Dockerfile:2: unknown flag: --from" },
        { "FROM scratch\nWORKDIR --x=1 /a\n", "Dockerfile:2: unknown flag: --x" },
        { "FROM --platform=linux --foo=1 scratch\n", "Dockerfile:1: unknown flag: --foo" },
        { "FROM scratch\nCMD [1, 2]\n",
          "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only" },
        { "FROM scratch\nSHELL /bin/sh -c\n",
          "Dockerfile:2: SHELL requires the arguments to be in JSON form" },
        { "FROM scratch\nSHELL []\n", "Dockerfile:2: SHELL requires at least one argument" },
        { "FROM\n", "Dockerfile:1: FROM requires either one or three arguments" },
        { "FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments" },
        { "FROM a AS 1st\n",
          "Dockerfile:1: invalid name for build stage: \"1st\", name can't start with a number or "
          "contain symbols" },
        { "FROM a AS x\nFROM b AS X\n", "Dockerfile:2: duplicate stage name \"X\"" },
        { "ARG A\nRUN true\nFROM a\n", "Dockerfile:2: no build stage in current context" },
        { "# just a comment\n\n", "Dockerfile:2: file with no instructions" },
        { "FROM scratch\nCOPY onlyone\n",
          "Dockerfile:2: COPY requires at least two arguments, but only one was provided. "
          "Destination could not be determined" },
        { "FROM scratch\nADD\n",
          "Dockerfile:2: ADD requires at least two arguments, but only one was provided. "
          "Destination could not be determined" },
        { "FROM scratch\nENV\n", "Dockerfile:2: ENV requires at least one argument" },
        { "FROM scratch\nENV ONLYKEY\n", "Dockerfile:2: ENV must have two arguments" },
        { "FROM scratch\nENV a=1 b\n",
          "Dockerfile:2: syntax error - can't find = in \"b\": must be of the form name=value" },
        { "FROM scratch\nLABEL =x\n", "Dockerfile:2: LABEL names can not be blank" },
        { "FROM scratch\nARG\n", "Dockerfile:2: ARG requires at least one argument" },
        { "FROM scratch\nARG =v\n", "Dockerfile:2: ARG names can not be blank" },
        { "FROM scratch\nMAINTAINER\n", "Dockerfile:2: MAINTAINER requires exactly one argument" },
        { "FROM scratch\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument" },
        { "FROM scratch\nUSER\n", "Dockerfile:2: USER requires exactly one argument" },
        { "FROM scratch\nSTOPSIGNAL\n", "Dockerfile:2: STOPSIGNAL requires exactly one argument" },
        { "FROM scratch\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument" },
        { "FROM scratch\nVOLUME\n", "Dockerfile:2: VOLUME requires at least one argument" },
        { "FROM scratch\nVOLUME [\"\"]\n",
          "Dockerfile:2: VOLUME specified can not be an empty string" },
        { "FROM scratch\nONBUILD\n", "Dockerfile:2: ONBUILD requires at least one argument" },
        { "FROM scratch\nONBUILD ONBUILD RUN x\n",
          "Dockerfile:2: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed" },
        { "FROM scratch\nONBUILD FROM x\n",
          "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger" },
        { "FROM scratch\nONBUILD maintainer x\n",
          "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger" },
        { "FROM scratch\nONBUILD COPY --bad=1 a b\n", "Dockerfile:2: unknown flag: --bad" },
        { "FROM scratch\nHEALTHCHECK\n",
          "Dockerfile:2: HEALTHCHECK requires at least one argument" },
        { "FROM scratch\nHEALTHCHECK NONE x\n",
          "Dockerfile:2: HEALTHCHECK NONE takes no arguments" },
        { "FROM scratch\nHEALTHCHECK CMD\n",
          "Dockerfile:2: missing command after HEALTHCHECK CMD" },
        { "FROM scratch\nHEALTHCHECK RUN x\n",
          "Dockerfile:2: unknown type \"RUN\" in HEALTHCHECK (try CMD)" },
        { "FROM scratch\nHEALTHCHECK --bogus=1 CMD x\n", "Dockerfile:2: unknown flag: --bogus" },
        { "FROM scratch\nHEALTHCHECK --interval=5 CMD x\n",
          "Dockerfile:2: time: invalid duration \"5\"" },
        { "FROM scratch\nHEALTHCHECK --timeout=1us CMD x\n",
          "Dockerfile:2: interval \"timeout\" cannot be less than 1ms" },
        { "FROM scratch\nHEALTHCHECK --retries=-1 CMD x\n",
          "Dockerfile:2: --retries cannot be negative (-1)" },
        { "FROM scratch\nRUN a \\\n  b\nBAD\n", "Dockerfile:4: unknown instruction: BAD" },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        parse_err(t[i].text, t[i].msg);

    /* the path given is the one named */
    cs_df *df = NULL;
    cs_error *err = NULL;
    assert_true(cs_df_parse("ctx/Dockerfile.dev", "FROM x\nNOPE\n", 12, &df, &err) < 0);
    assert_string_equal(err->msg, "ctx/Dockerfile.dev:2: unknown instruction: NOPE");
    cs_error_free(err);
}

static void
maintainer_and_healthcheck_forms_are_accepted(void **state)
{
    (void) state;
    cs_df *df =
        parse_ok("FROM scratch\n"
                 "MAINTAINER Jane Doe <jane@example.com>\n"
                 "HEALTHCHECK --interval=1m30s --timeout=10s --start-period=5s "
                 "--start-interval=500ms --retries=3 CMD [\"curl\", \"-f\", \"http://x/\"]\n");
    cs_df_health h;
    assert_int_equal(cs_df_healthcheck(df, &df->instrs[2], &h, NULL), 0);
    assert_string_equal(h.test[0], "CMD");
    assert_string_equal(h.test[3], "http://x/");
    assert_int_equal(h.interval_ns, 90000000000LL);
    assert_int_equal(h.timeout_ns, 10000000000LL);
    assert_int_equal(h.start_period_ns, 5000000000LL);
    assert_int_equal(h.start_interval_ns, 500000000LL);
    assert_int_equal(h.retries, 3);
    cs_df_health_release(&h);
    cs_df_free(df);
}

/* ---- stages: the classic multi-stage examples ---- */

static void
golang_build_then_scratch_copies_from_stage_zero(void **state)
{
    cs_df *df = *state = parse_ok("# syntax=docker/dockerfile:1\n"
                                  "FROM golang:1.21\n"
                                  "WORKDIR /src\n"
                                  "COPY <<EOF ./main.go\n"
                                  "package main\n"
                                  "\n"
                                  "import \"fmt\"\n"
                                  "\n"
                                  "func main() {\n"
                                  "  fmt.Println(\"hello, world\")\n"
                                  "}\n"
                                  "EOF\n"
                                  "RUN go build -o /bin/hello ./main.go\n"
                                  "\n"
                                  "FROM scratch\n"
                                  "COPY --from=0 /bin/hello /bin/hello\n"
                                  "CMD [\"/bin/hello\"]\n");
    assert_int_equal(df->nstages, 2);
    assert_null(df->stages[0].name);
    assert_string_equal(df->stages[0].base, "golang:1.21");
    assert_int_equal(df->stages[0].ninstrs, 3);
    const cs_df_instr *copy = &df->stages[0].instrs[1];
    assert_int_equal(copy->cmd, CS_DF_COPY);
    assert_int_equal(copy->nheredocs, 1);
    assert_string_equal(copy->heredocs[0].content,
                        "package main\n\nimport \"fmt\"\n\nfunc main() {\n"
                        "  fmt.Println(\"hello, world\")\n}\n");
    assert_non_null(cs_df_heredoc_for_arg(copy, copy->args[0]));
    assert_int_equal(df->stages[0].instrs[2].line, 13);
    assert_string_equal(df->stages[1].base, "scratch");
    assert_int_equal(df->stages[1].ninstrs, 2);
    const char *from = cs_df_flag_find(&df->stages[1].instrs[0], "from")->value;
    assert_string_equal(from, "0");
    assert_ptr_equal(cs_df_stage_find(df, from), &df->stages[0]);
    assert_int_equal(df->stages[1].from->line, 15);
}

static void
named_stages_are_lowercased_and_found_case_insensitively(void **state)
{
    cs_df *df = *state = parse_ok("FROM golang:1.21 as Build\n"
                                  "WORKDIR /src\n"
                                  "COPY . .\n"
                                  "RUN go build -o /bin/app\n"
                                  "FROM build AS test\n"
                                  "RUN go test ./...\n"
                                  "FROM alpine:latest AS production\n"
                                  "COPY --from=BUILD /bin/app /bin/\n"
                                  "COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf\n");
    assert_int_equal(df->nstages, 3);
    assert_string_equal(df->stages[0].name, "build");
    assert_string_equal(df->stages[1].name, "test");
    assert_string_equal(df->stages[1].base, "build");
    assert_ptr_equal(cs_df_stage_find(df, "BUILD"), &df->stages[0]);
    assert_ptr_equal(cs_df_stage_find(df, "Production"), &df->stages[2]);
    assert_ptr_equal(cs_df_stage_find(df, "2"), &df->stages[2]);
    assert_null(cs_df_stage_find(df, "3"));
    assert_null(cs_df_stage_find(df, "nginx:latest"));
    assert_int_equal(df->stages[2].ninstrs, 2);
    assert_int_equal(df->stages[2].index, 2);
}

/* ---- performance ---- */

static void
a_ten_thousand_line_dockerfile_parses_quickly(void **state)
{
    (void) state;
    cs_buf b;
    cs_buf_init(&b);
    char line[256];
    int lines = 0;
    for (int s = 0; lines < 10000; s++) {
        int n = snprintf(line, sizeof(line), "FROM base:%d AS stage%d\n", s, s);
        cs_buf_append(&b, line, (size_t) n);
        lines++;
        for (int i = 0; i < 48 && lines < 10000; i++, lines++) {
            switch (i % 6) {
            case 0:
                n = snprintf(line, sizeof(line), "RUN echo %d && \\\n    make -j2 target%d\n", i,
                             i);
                lines++;
                break;
            case 1:
                n = snprintf(line, sizeof(line), "COPY --chown=1:1 src/%d /dst/%d/\n", i, i);
                break;
            case 2:
                n = snprintf(line, sizeof(line), "ENV K%d=\"value %d\" X%d=$K%d\n", i, i, i, i);
                break;
            case 3:
                n = snprintf(line, sizeof(line), "# comment %d\n", i);
                break;
            case 4:
                n = snprintf(line, sizeof(line), "CMD [\"/bin/app\", \"--n=%d\"]\n", i);
                break;
            default:
                n = snprintf(line, sizeof(line), "LABEL l%d=v%d\n", i, i);
            }
            cs_buf_append(&b, line, (size_t) n);
        }
    }
    cs_df *df = NULL;
    double t0 = cs_now();
    assert_int_equal(cs_df_parse("Dockerfile", (const char *) b.data, b.len, &df, NULL), 0);
    double dt = cs_now() - t0;
    printf("parsed %d lines (%zu instructions, %zu stages, %zu bytes) in %.2f ms\n", lines,
           df->ninstrs, df->nstages, b.len, dt * 1e3);
    assert_true(df->nstages > 100);
    cs_df_free(df);
    cs_buf_release(&b);
}

/* ---- pattern matching: the reproducer of issue 12 and the former matcher ---- */

/* The matcher lex.c had before issue 12 (exponential in the stars), kept
 * as the reference the new one must agree with. */
enum { REF_STAR = -1, REF_ANY = -2 };

static size_t
ref_compile(const char *p, int *t)
{
    size_t k = 0;
    for (size_t i = 0; p[i]; i++) {
        if (p[i] == '*')
            t[k++] = REF_STAR;
        else if (p[i] == '?')
            t[k++] = REF_ANY;
        else if (p[i] == '\\' && p[i + 1])
            t[k++] = (unsigned char) p[++i];
        else
            t[k++] = (unsigned char) p[i];
    }
    return k;
}

static size_t
ref_utf8_len(const char *s, size_t n)
{
    size_t i = 1;
    while (i < n && ((unsigned char) s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

static bool
ref_match(const int *t, size_t tn, const char *s, size_t sn)
{
    while (tn) {
        if (t[0] == REF_STAR) {
            for (size_t i = 0;; i++) {
                if (ref_match(t + 1, tn - 1, s + i, sn - i))
                    return true;
                if (i == sn)
                    return false;
            }
        }
        if (!sn)
            return false;
        size_t cl = t[0] == REF_ANY ? ref_utf8_len(s, sn) : 1;
        if (t[0] != REF_ANY && (unsigned char) s[0] != t[0])
            return false;
        s += cl;
        sn -= cl;
        t++;
        tn--;
    }
    return sn == 0;
}

static bool
ref_boundary(const char *s, size_t i)
{
    return ((unsigned char) s[i] & 0xC0) != 0x80;
}

/* ${v#p} ${v##p} ${v%p} ${v%%p} into out (256 bytes) */
static void
ref_trim(const char *pat, const char *value, bool greedy, bool suffix, char *out)
{
    int t[64];
    size_t tn = ref_compile(pat, t), vn = strlen(value);
    for (size_t k = 0; k <= vn; k++) {
        size_t len = greedy ? vn - k : k, start = suffix ? vn - len : 0;
        if (start < vn && !ref_boundary(value, start))
            continue;
        if (!suffix && len < vn && !ref_boundary(value, len))
            continue;
        if (ref_match(t, tn, value + start, len)) {
            if (suffix)
                snprintf(out, 256, "%.*s", (int) start, value);
            else
                snprintf(out, 256, "%s", value + len);
            return;
        }
    }
    snprintf(out, 256, "%s", value);
}

/* ${v/p/r} ${v//p/r} into out (256 bytes) */
static void
ref_replace(const char *pat, const char *repl, const char *value, bool all, char *out)
{
    int t[64];
    size_t tn = ref_compile(pat, t), vn = strlen(value), i = 0, o = 0;
    bool replaced = false;
    out[0] = '\0';
    while (i <= vn) {
        bool found = false;
        size_t mlen = 0;
        if ((all || !replaced) && (i == vn || ref_boundary(value, i))) {
            for (size_t len = vn - i + 1; len-- > 0;) {
                if (i + len < vn && !ref_boundary(value, i + len))
                    continue;
                if (ref_match(t, tn, value + i, len)) {
                    found = true;
                    mlen = len;
                    break;
                }
            }
        }
        if (found) {
            o += (size_t) snprintf(out + o, 256 - o, "%s", repl);
            replaced = true;
            if (mlen) {
                i += mlen;
                continue;
            }
        }
        if (i == vn)
            break;
        size_t cl = ref_utf8_len(value + i, vn - i);
        o += (size_t) snprintf(out + o, 256 - o, "%.*s", (int) cl, value + i);
        i += cl;
    }
}

static uint64_t
xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Up to max pieces drawn from alphabet, concatenated into out. */
static void
random_text(uint64_t *seed, const char *const *alphabet, size_t na, size_t max, char *out)
{
    size_t n = xorshift(seed) % (max + 1);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        strcat(out, alphabet[xorshift(seed) % na]);
}

static void
pattern_matching_agrees_with_the_former_matcher(void **state)
{
    (void) state;
    /* Bytes that matter: literals, both wildcards, escapes, a two-byte
     * character, a lone continuation byte and a lone lead byte. */
    static const char *const pat_alpha[] = { "a",   "b",        "*",    "?",    "\\*", "\\?",
                                             "\\/", "\xc3\xa9", "\x80", "\xc3", "*",   "?" };
    static const char *const val_alpha[] = { "a", "b", "*", "?", "/", "\xc3\xa9", "\x80", "\xc3" };
    static const char *const ops[] = { "#", "##", "%", "%%", "/", "//" };
    uint64_t seed = 0x5eed12ULL;
    cs_df_env *env = cs_df_env_new();
    size_t cases = 0;
    for (int iter = 0; iter < 4000; iter++) {
        char pat[128], val[128], word[300], want[256];
        random_text(&seed, pat_alpha, sizeof(pat_alpha) / sizeof(pat_alpha[0]), 6, pat);
        random_text(&seed, val_alpha, sizeof(val_alpha) / sizeof(val_alpha[0]), 10, val);
        cs_df_env_set(env, "v", val);
        for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
            bool rep = ops[o][0] == '/', greedy = ops[o][1] != '\0';
            if (rep && !greedy && !*pat)
                continue; /* "${v//<>}" would read as a replace-all */
            if (rep) {
                snprintf(word, sizeof(word), "${v%s%s/<>}", ops[o], pat);
                ref_replace(pat, "<>", val, greedy, want);
            } else {
                snprintf(word, sizeof(word), "${v%s%s}", ops[o], pat);
                ref_trim(pat, val, greedy, ops[o][0] == '%', want);
            }
            char *got = expand(word, env);
            if (!got || strcmp(got, want) != 0)
                fail_msg("seed 0x5eed12 iteration %d: %s on '%s': want '%s', got '%s'", iter, word,
                         val, want, got ? got : "(error)");
            free(got);
            cases++;
        }
    }
    printf("%zu random patterns agree\n", cases);
    cs_df_env_free(env);
}

static void
pattern_matching_takes_polynomial_time_and_bounded_work(void **state)
{
    (void) state;
    /* issue 12: ENV a=<200 a's> then a replace of "*a*a*a*b" in it ran for minutes */
    char a[201];
    memset(a, 'a', 200);
    a[200] = '\0';
    cs_df_env *env = cs_df_env_new();
    cs_df_env_set(env, "a", a);
    cs_df *df = parse_ok("FROM scratch\n"
                         "ENV b=${a/*a*a*a*b/x} c=${a//*a*a*a*b/x} d=${a%*a*a*a*b} "
                         "e=${a%%*a*a*a*b} f=${a#*a*a*a*b} g=${a##*a*a*a*b} h=${a/a*a*a*a/x}\n");
    const cs_df_instr *in = &df->stages[0].instrs[0];
    cs_df_kv *kvs = NULL;
    cs_error *err = NULL;
    double t0 = cs_now();
    int n = cs_df_kvs(df, in, env, &kvs, &err);
    double dt = cs_now() - t0;
    assert_int_equal(n, 7);
    for (int i = 0; i < 6; i++)
        assert_string_equal(kvs[i].value, a);
    assert_string_equal(kvs[6].value, "x");
    cs_df_kvs_free(kvs, (size_t) n);
    printf("7 patterns with 4 stars over 200 bytes in %.2f ms\n", dt * 1e3);
    assert_true(dt < 1.0);

    /* A value and pattern past the budget fail with the line, not a hang. */
    size_t big = (size_t) 1 << 20;
    char *v = malloc(big + 1);
    memset(v, 'a', big);
    v[big] = '\0';
    cs_df_env_set(env, "a", v);
    free(v);
    char text[1024] = "FROM scratch\nENV b=${a/";
    for (int i = 0; i < 300; i++)
        strcat(text, "*a");
    strcat(text, "b/x}\n");
    cs_df_free(df);
    df = parse_ok(text);
    t0 = cs_now();
    assert_int_equal(cs_df_kvs(df, &df->stages[0].instrs[0], env, &kvs, &err), -CS_EPARSE);
    dt = cs_now() - t0;
    printf("budget spent in %.2f s\n", dt);
    assert_non_null(strstr(err->msg, "Dockerfile:2: failed to process"));
    assert_non_null(
        strstr(err->msg, "in substitution is too complex for a value of 1048576 bytes"));
    cs_error_free(err);
    cs_df_free(df);
    cs_df_env_free(env);
}

/* ---- the script RUN hands its shell (BuildKit's dispatchRun) ---- */

static void
assert_run_script(const cs_df *df, size_t i, const char *want)
{
    char *out = NULL;
    cs_error *err = NULL;
    if (cs_df_run_script(df, &df->instrs[i], &out, &err) < 0)
        fail_msg("cs_df_run_script: %s", err->msg);
    assert_string_equal(out, want);
    free(out);
}

static void
run_heredocs_become_an_inline_shell_script_unless_the_whole_command(void **state)
{
    cs_df *df = *state = parse_ok("FROM scratch\n"
                                  "RUN echo plain\n"
                                  "RUN <<-EOF\n"
                                  "\techo $HOME\n"
                                  "\tEOF\n"
                                  "RUN cat <<EOF > /file\n"
                                  "a $X\n"
                                  "EOF\n"
                                  "RUN <<EOF sh\n"
                                  "echo in sh\n"
                                  "EOF\n"
                                  "RUN cat <<A <<-\"B\" > /f\n"
                                  "a1\n"
                                  "A\n"
                                  "\tb $1\n"
                                  "\tB\n"
                                  "RUN cat <<EOF\n"
                                  "EOF\n");
    assert_run_script(df, 1, "echo plain");
    /* The whole command: the body alone, tabs stripped, variables left to the shell. */
    assert_run_script(df, 2, "echo $HOME\n");
    /* Anything else: the line, then each body as written and its delimiter. */
    assert_run_script(df, 3, "cat <<EOF > /file\na $X\nEOF");
    assert_run_script(df, 4, "<<EOF sh\necho in sh\nEOF");
    assert_run_script(df, 5, "cat <<A <<-\"B\" > /f\na1\nA\n\tb $1\nB");
    assert_run_script(df, 6, "cat <<EOF\nEOF");
}

/* An ONBUILD trigger kept in a config is its text with the heredocs after
 * it (BuildKit's Expression), so the child image parses it whole. */
static void
onbuild_trigger_text_carries_its_heredocs(void **state)
{
    cs_df *df = *state = parse_ok("FROM scratch\n"
                                  "ONBUILD RUN <<EOF cat > /x\n"
                                  "body $V\n"
                                  "EOF\n");
    const cs_df_instr *ob = &df->instrs[1];
    char *t = cs_df_with_heredocs(ob->args[0], ob->trigger);
    assert_string_equal(t, "RUN <<EOF cat > /x\nbody $V\nEOF");
    cs_df *child = NULL;
    cs_autofree char *src = cs_xasprintf("FROM scratch\n%s\n", t);
    free(t);
    assert_int_equal(cs_df_parse("Dockerfile", src, strlen(src), &child, NULL), 0);
    assert_int_equal(child->ninstrs, 2);
    assert_int_equal(child->instrs[1].nheredocs, 1);
    assert_string_equal(child->instrs[1].heredocs[0].content, "body $V\n");
    cs_df_free(child);
}

/* ---- RUN --mount=type=secret|ssh, --secret, --ssh (BuildKit's defaults) ---- */

static cs_runmount
mount_ok(const char *spec)
{
    cs_runmount m;
    cs_error *err = NULL;
    if (cs_runmount_parse(spec, &m, &err) < 0)
        fail_msg("'%s': %s", spec, err->msg);
    return m;
}

static void
mount_fails(const char *spec, int code, const char *want)
{
    cs_runmount m;
    cs_error *err = NULL;
    assert_int_equal(cs_runmount_parse(spec, &m, &err), -code);
    assert_string_equal(err->msg, want);
    cs_error_free(err);
}

static void
secret_mounts_default_to_run_secrets_id_read_only_0400_root_and_optional(void **state)
{
    (void) state;
    cs_runmount m = mount_ok("type=secret,id=tok");
    assert_string_equal(m.type, "secret");
    assert_string_equal(m.id, "tok");
    assert_string_equal(m.target, "/run/secrets/tok");
    assert_int_equal(m.mode, 0400);
    assert_int_equal(m.uid, 0);
    assert_int_equal(m.gid, 0);
    assert_false(m.required);
    assert_false(m.rw);
    cs_runmount_release(&m);
    m = mount_ok("type=secret,id=tok,target=/etc/t,required=true,mode=0440,uid=1000,gid=1001,rw");
    assert_string_equal(m.target, "/etc/t");
    assert_true(m.required);
    assert_int_equal(m.mode, 0440);
    assert_int_equal(m.uid, 1000);
    assert_int_equal(m.gid, 1001);
    assert_false(m.rw);
    cs_runmount_release(&m);
    m = mount_ok("type=secret,id=tok,required");
    assert_true(m.required);
    cs_runmount_release(&m);
    m = mount_ok("type=secret,id=tok,required=false");
    assert_false(m.required);
    cs_runmount_release(&m);
}

static void
secret_mount_ids_come_from_the_target_and_relative_targets_go_under_run_secrets(void **state)
{
    (void) state;
    cs_runmount m = mount_ok("type=secret,target=/root/.npmrc");
    assert_string_equal(m.id, ".npmrc");
    assert_string_equal(m.target, "/root/.npmrc");
    cs_runmount_release(&m);
    m = mount_ok("type=secret,id=a,target=sub/b");
    assert_string_equal(m.id, "a");
    assert_string_equal(m.target, "/run/secrets/sub/b");
    cs_runmount_release(&m);
    mount_fails("type=secret", CS_EPARSE, "--mount: type=secret needs an id or a target");
    mount_fails("type=secret,id=a,colour=red", CS_EPARSE, "--mount: unknown key 'colour'");
    mount_fails("type=npipe,target=/x", CS_EUNSUPPORTED, "--mount: type 'npipe' is not supported");
}

static void
ssh_mounts_default_to_the_default_id_0600_and_a_target_numbered_by_the_build(void **state)
{
    (void) state;
    cs_runmount m = mount_ok("type=ssh");
    assert_string_equal(m.id, "default");
    assert_null(m.target);
    assert_int_equal(m.mode, 0600);
    assert_false(m.required);
    cs_runmount_release(&m);
    m = mount_ok("type=ssh,id=gh,target=/agent.sock,required=true");
    assert_string_equal(m.id, "gh");
    assert_string_equal(m.target, "/agent.sock");
    assert_true(m.required);
    cs_runmount_release(&m);
    m = mount_ok("type=cache,target=/c"); /* the other kinds keep their defaults */
    assert_string_equal(m.id, "/c");
    assert_int_equal(m.mode, 0755);
    assert_true(m.rw);
    cs_runmount_release(&m);
}

static void
secret_specs_take_a_file_or_a_variable_as_buildx_does(void **state)
{
    (void) state;
    cs_build_secret s;
    cs_error *err = NULL;
    assert_int_equal(cs_build_secret_parse("id=tok,src=/dev/null", &s, &err), 0);
    assert_string_equal(s.id, "tok");
    assert_string_equal(s.src, "/dev/null");
    assert_null(s.env);
    cs_build_secret_release(&s);
    assert_int_equal(cs_build_secret_parse("id=tok,env=TOK_VAR", &s, &err), 0);
    assert_string_equal(s.env, "TOK_VAR");
    assert_null(s.src);
    cs_build_secret_release(&s);
    assert_int_equal(cs_build_secret_parse("type=env,id=tok,src=TOK_VAR", &s, &err), 0);
    assert_string_equal(s.env, "TOK_VAR");
    cs_build_secret_release(&s);
    /* id alone: the variable of that name when it is set, else the file */
    setenv("CS_TEST_SECRET_ID", "v", 1);
    assert_int_equal(cs_build_secret_parse("id=CS_TEST_SECRET_ID", &s, &err), 0);
    assert_string_equal(s.env, "CS_TEST_SECRET_ID");
    cs_build_secret_release(&s);
    unsetenv("CS_TEST_SECRET_ID");
    assert_int_equal(cs_build_secret_parse("id=CS_TEST_SECRET_ID", &s, &err), -CS_ENOTFOUND);
    assert_string_equal(err->msg,
                        "--secret id=CS_TEST_SECRET_ID: stat 'CS_TEST_SECRET_ID': No such file "
                        "or directory");
    cs_error_clear(&err);
    assert_int_equal(cs_build_secret_parse("src=/dev/null", &s, &err), -CS_EPARSE);
    assert_string_equal(err->msg, "--secret: an id is required (id=ID)");
    cs_error_clear(&err);
    assert_int_equal(cs_build_secret_parse("id=a,path=/x", &s, &err), -CS_EPARSE);
    assert_string_equal(err->msg, "--secret: unknown key 'path'");
    cs_error_clear(&err);
}

static void
ssh_specs_need_a_socket(void **state)
{
    (void) state;
    cs_build_ssh s;
    cs_error *err = NULL;
    const char *saved = getenv("SSH_AUTH_SOCK");
    cs_autofree char *keep = saved ? cs_xstrdup(saved) : NULL;
    unsetenv("SSH_AUTH_SOCK");
    assert_int_equal(cs_build_ssh_parse("default", &s, &err), -CS_EPARSE);
    assert_string_equal(
        err->msg, "--ssh default: no agent socket: SSH_AUTH_SOCK is not set (or give ID=SOCKET)");
    cs_error_clear(&err);
    assert_int_equal(cs_build_ssh_parse("key=/dev/null", &s, &err), -CS_EUNSUPPORTED);
    assert_string_equal(err->msg,
                        "--ssh key: '/dev/null' is not a socket (key files are not supported)");
    cs_error_clear(&err);
    assert_int_equal(cs_build_ssh_parse("=/x", &s, &err), -CS_EPARSE);
    cs_error_clear(&err);
    if (keep)
        setenv("SSH_AUTH_SOCK", keep, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(every_instruction_parses_in_shell_and_exec_form, free_df),
        cmocka_unit_test_teardown(keywords_are_case_insensitive_and_keep_their_spelling, free_df),
        cmocka_unit_test_teardown(invalid_json_is_shell_form, free_df),
        cmocka_unit_test_teardown(flags_keep_order_and_lose_quotes, free_df),
        cmocka_unit_test(flag_words_drop_quotes_and_escapes_and_keep_empty_values),
        cmocka_unit_test(split_words_keeps_quotes_and_escapes),
        cmocka_unit_test_teardown(expansion_errors_return_the_lexers_code, free_df),
        cmocka_unit_test(parser_directives_are_read_only_at_the_top),
        cmocka_unit_test_teardown(escape_backtick_continues_lines_and_escapes_words, free_df),
        cmocka_unit_test(continuations_skip_comment_and_empty_lines),
        cmocka_unit_test_teardown(heredocs_attach_to_run_copy_and_add, free_df),
        cmocka_unit_test(heredoc_errors_name_the_instruction_line),
        cmocka_unit_test(variable_substitution_follows_buildkit),
        cmocka_unit_test(words_split_on_unquoted_whitespace_after_expansion),
        cmocka_unit_test_teardown(instructions_expand_as_buildkit_dispatches_them, free_df),
        cmocka_unit_test_teardown(global_args_are_visible_in_from_only, free_df),
        cmocka_unit_test_teardown(build_args_override_defaults_and_globals, free_df),
        cmocka_unit_test(errors_name_the_file_and_line),
        cmocka_unit_test(maintainer_and_healthcheck_forms_are_accepted),
        cmocka_unit_test_teardown(golang_build_then_scratch_copies_from_stage_zero, free_df),
        cmocka_unit_test_teardown(named_stages_are_lowercased_and_found_case_insensitively,
                                  free_df),
        cmocka_unit_test(a_ten_thousand_line_dockerfile_parses_quickly),
        cmocka_unit_test(pattern_matching_agrees_with_the_former_matcher),
        cmocka_unit_test(pattern_matching_takes_polynomial_time_and_bounded_work),
        cmocka_unit_test_teardown(
            run_heredocs_become_an_inline_shell_script_unless_the_whole_command, free_df),
        cmocka_unit_test_teardown(onbuild_trigger_text_carries_its_heredocs, free_df),
        cmocka_unit_test(secret_mounts_default_to_run_secrets_id_read_only_0400_root_and_optional),
        cmocka_unit_test(
            secret_mount_ids_come_from_the_target_and_relative_targets_go_under_run_secrets),
        cmocka_unit_test(
            ssh_mounts_default_to_the_default_id_0600_and_a_target_numbered_by_the_build),
        cmocka_unit_test(secret_specs_take_a_file_or_a_variable_as_buildx_does),
        cmocka_unit_test(ssh_specs_need_a_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
