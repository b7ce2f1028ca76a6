/* build_instr.c - one instruction of a stage: its progress step, its key
 * in the chain, the step itself, and the history entry it leaves. */
#include <string.h>
#include "build_int.h"
#include "cstore/strv.h"

static bool
makes_layer(const cs_df_instr *in)
{
    return in->cmd == CS_DF_COPY || in->cmd == CS_DF_ADD || in->cmd == CS_DF_WORKDIR
           || in->cmd == CS_DF_RUN;
}

/* COPY/ADD: the key hashes the expanded arguments, flags and heredocs (the
 * sources' digest comes in do_copy). */
static int
key_copy_args(build *b, bstage *st, const cs_df_instr *in, cs_sha256_ctx *kh, cs_error **err)
{
    char **args = NULL;
    int n = cs_df_args(st->df, in, st->env, &args, err);
    if (n < 0)
        return line_err(b, in, err);
    for (int i = 0; i < n; i++)
        hash_str(kh, args[i]);
    cs_df_strv_free(args);
    for (size_t i = 0; i < in->nflags; i++) {
        hash_str(kh, in->flags[i].name);
        hash_str(kh, in->flags[i].value);
    }
    for (size_t i = 0; i < in->nheredocs; i++)
        hash_str(kh, in->heredocs[i].content);
    return 0;
}

static int
instr_copy(build *b, bstage *st, const cs_df_instr *in, const char *text, cs_sha256_ctx *kh,
           bool *cached, cs_error **err)
{
    cs_digest key;
    int r = key_copy_args(b, st, in, kh, err);
    if (r == 0)
        r = do_copy(b, st, in, kh, &key, cached, err);
    if (r < 0)
        return r;
    st->key = key;
    cs_autofree char *hist = cs_xasprintf("%s # buildkit", text);
    add_history(b, st, hist, false);
    return 0;
}

static int
instr_workdir(build *b, bstage *st, const cs_df_instr *in, const char *text, cs_sha256_ctx *kh,
              bool *cached, cs_error **err)
{
    cs_digest key;
    bool has_layer = false;
    int r = do_workdir(b, st, in, kh, &key, &has_layer, cached, err);
    if (r < 0)
        return r;
    st->key = key;
    add_history(b, st, text, !has_layer);
    return 0;
}

/* As BuildKit records a RUN: the command as run, shell included. */
static char *
run_history(build *b, bstage *st, const cs_df_instr *in)
{
    char **argv = NULL;
    cs_error *tmp = NULL;
    cs_buf h;
    cs_buf_init(&h);
    cs_buf_append(&h, "RUN", 3);
    if (run_argv(b, st, in, &argv, &tmp) == 0)
        for (char **p = argv; *p; p++) {
            cs_buf_u8(&h, ' ');
            cs_buf_append(&h, *p, strlen(*p));
        }
    cs_error_clear(&tmp); /* it ran with this argv: it cannot fail now */
    cs_strv_free(argv);
    cs_buf_append(&h, " # buildkit", 12); /* with the NUL */
    return (char *) h.data;
}

static int
instr_run(build *b, bstage *st, const cs_df_instr *in, cs_sha256_ctx *kh, bool *cached,
          cs_error **err)
{
    cs_digest key;
    int r = do_run(b, st, in, kh, &key, cached, err);
    if (r < 0)
        return r;
    st->key = key;
    cs_autofree char *hist = run_history(b, st, in);
    add_history(b, st, hist, false);
    return 0;
}

static int
instr_metadata(build *b, bstage *st, const cs_df_instr *in, const char *text, cs_error **err)
{
    int r = do_metadata(b, st, in, err);
    if (r < 0)
        return r;
    key_metadata(st, in, &st->key);
    add_history(b, st, text, true);
    return 0;
}

static int
instr_step(build *b, bstage *st, const cs_df_instr *in, const char *text, bool *cached,
           cs_error **err)
{
    /* The chain: previous key, the instruction as expanded by the step. */
    __attribute__((cleanup(cs_sha256_freep))) cs_sha256_ctx *kh = cs_sha256_new();
    cs_sha256_update(kh, st->key.b, 32);
    hash_str(kh, cs_df_cmd_name(in->cmd));
    switch (in->cmd) {
    case CS_DF_COPY:
    case CS_DF_ADD:
        return instr_copy(b, st, in, text, kh, cached, err);
    case CS_DF_WORKDIR:
        return instr_workdir(b, st, in, text, kh, cached, err);
    case CS_DF_RUN:
        return instr_run(b, st, in, kh, cached, err);
    default:
        return instr_metadata(b, st, in, text, err);
    }
}

int
do_instr(build *b, bstage *st, const cs_df_instr *in, size_t num, size_t total, cs_error **err)
{
    cs_autofree char *text = history_text(in);
    int r = cs_cancel_check(cs_store_cancel(b->s), err); /* the build's (build_sched.c) */
    if (r < 0)
        return r;
    if (!makes_layer(in))
        return instr_step(b, st, in, text, &(bool){ false }, err);
    unsigned step = total ? step_start(b, "[%s %zu/%zu] %s", st->label, num, total, text)
                          : step_start(b, "[%s] ONBUILD %s", st->label, text);
    st->step = step;
    double t0 = cs_now();
    bool cached = false;
    r = instr_step(b, st, in, text, &cached, err);
    if (r < 0) {
        step_end(b, step, CS_BUILD_STEP_ERROR, 0);
        return r;
    }
    build_lock(b);
    b->res.steps++;
    b->res.cached += cached;
    build_unlock(b);
    step_end(b, step, cached ? CS_BUILD_STEP_CACHED : CS_BUILD_STEP_DONE, cs_now() - t0);
    return 0;
}
