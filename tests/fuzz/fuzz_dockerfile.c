/* fuzz_dockerfile.c - libFuzzer target: the Dockerfile parser, then every
 * instruction's words through variable expansion (cs_df_args, cs_df_kvs,
 * flags, heredoc bodies, stage FROMs, HEALTHCHECK) and the raw lexer with
 * each flag combination. The input is the Dockerfile text. */
#include <stdint.h>
#include <stdlib.h>

#include "dockerfile.h"

static cs_df_env *fuzz_env;

static void
drop(int rc, cs_error **err)
{
    (void) rc;
    cs_error_free(*err);
    *err = NULL;
}

/* The raw lexer on one word: every flag set, both escapes, one and many words. */
static void
lex_word(const char *w, int escape)
{
    cs_error *err = NULL;
    for (unsigned flags = 0; flags < 16; flags++) {
        char *out = NULL;
        char **words = NULL;
        if (cs_df_expand_ex(w, escape, flags, fuzz_env, &out, &err) >= 0)
            free(out);
        drop(0, &err);
        if (cs_df_words(w, escape, flags, fuzz_env, &words, &err) >= 0)
            cs_strv_free(words);
        drop(0, &err);
    }
}

static void
expand_instr(const cs_df *df, const cs_df_instr *in)
{
    cs_error *err = NULL;
    char **args = NULL;
    int n = cs_df_args(df, in, fuzz_env, &args, &err);
    if (n >= 0)
        cs_strv_free(args);
    drop(n, &err);
    cs_df_kv *kvs = NULL;
    if ((n = cs_df_kvs(df, in, fuzz_env, &kvs, &err)) >= 0)
        cs_df_kvs_free(kvs, (size_t) n);
    drop(n, &err);
    for (size_t i = 0; i < in->nflags; i++) {
        char *v = NULL;
        if (cs_df_flag_expand(df, in, in->flags[i].name, fuzz_env, &v, &err) >= 0)
            free(v);
        drop(0, &err);
    }
    for (size_t i = 0; i < in->nheredocs; i++) {
        char *body = NULL;
        if (cs_df_heredoc_body(df, in, &in->heredocs[i], fuzz_env, &body, &err) >= 0)
            free(body);
        drop(0, &err);
    }
    if (in->cmd == CS_DF_HEALTHCHECK) {
        cs_df_health h = { 0 };
        if (cs_df_healthcheck(df, in, &h, &err) >= 0)
            cs_df_health_release(&h);
        drop(0, &err);
    }
    for (size_t i = 0; i < in->nargs; i++)
        lex_word(in->args[i], df->escape);
    lex_word(in->rest, df->escape);
    if (in->trigger)
        expand_instr(df, in->trigger);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_env) {
        fuzz_env = cs_df_env_new();
        cs_df_env_set(fuzz_env, "a",
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        cs_df_env_set(fuzz_env, "FILE", "/a/b/c.tar.gz");
        cs_df_env_set(fuzz_env, "U", "caf\xc3\xa9 \xe2\x82\xac \x80x");
        cs_df_env_set(fuzz_env, "E", "");
        cs_df_env_set(fuzz_env, "W", " two  words\t");
    }
    cs_df *df = NULL;
    cs_error *err = NULL;
    if (cs_df_parse("Dockerfile", (const char *) data, size, &df, &err) < 0) {
        cs_error_free(err);
        return 0;
    }
    for (size_t i = 0; i < df->ninstrs; i++)
        expand_instr(df, &df->instrs[i]);
    cs_df_env *global = NULL;
    if (cs_df_global_args(df, fuzz_env, NULL, &global, &err) >= 0) {
        for (size_t i = 0; i < df->nstages; i++) {
            char *base = NULL, *platform = NULL;
            if (cs_df_stage_from(df, &df->stages[i], global, &base, &platform, &err) >= 0) {
                free(base);
                free(platform);
            }
            drop(0, &err);
            cs_df_stage_find(df, df->stages[i].name ? df->stages[i].name : "0");
        }
        cs_df_env_free(global);
    }
    drop(0, &err);
    cs_df_free(df);
    return 0;
}
