/* df_stage.c - stages and ARG scoping: finding a stage by name or index,
 * the predefined and global ARGs, a stage's FROM and an ARG inside a stage
 * (BuildKit's rules for which ARG value a line sees). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "df_int.h"

const cs_df_stage *
cs_df_stage_find(const cs_df *df, const char *name)
{
    for (size_t i = 0; i < df->nstages; i++)
        if (df->stages[i].name && strcasecmp(df->stages[i].name, name) == 0)
            return &df->stages[i];
    if (!*name)
        return NULL;
    char *end;
    errno = 0;
    unsigned long idx = strtoul(name, &end, 10);
    if (*end || errno || !isdigit((unsigned char) *name) || idx >= df->nstages)
        return NULL;
    return &df->stages[idx];
}

void
cs_df_predefined_args(cs_df_env *env, const cs_df_env *build_args, const char *target)
{
    const char *kv[][2] = {
        { "BUILDPLATFORM", "linux/amd64" },
        { "BUILDOS", "linux" },
        { "BUILDOSVERSION", "" },
        { "BUILDARCH", "amd64" },
        { "BUILDVARIANT", "" },
        { "TARGETPLATFORM", "linux/amd64" },
        { "TARGETOS", "linux" },
        { "TARGETOSVERSION", "" },
        { "TARGETARCH", "amd64" },
        { "TARGETVARIANT", "" },
        { "TARGETSTAGE", target && *target ? target : "default" },
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        const char *o = cs_df_env_get(build_args, kv[i][0]);
        cs_df_env_set(env, kv[i][0], o ? o : kv[i][1]);
    }
}

bool
cs_df_arg_is_proxy(const char *key)
{
    static const char *const names[] = { "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY",
                                         "ALL_PROXY" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(key, names[i]) == 0)
            return true;
        char lower[16];
        size_t j = 0;
        for (; names[i][j]; j++)
            lower[j] = (char) tolower((unsigned char) names[i][j]);
        lower[j] = '\0';
        if (strcmp(key, lower) == 0)
            return true;
    }
    return false;
}

/* The --build-arg value if given, else the default expanded against env.
 * Returns 1 when env got a value, 0 when the ARG has none. */
static int
arg_set(const cs_df *df, const cs_df_instr *in, const cs_df_kv *kv, const cs_df_env *build_args,
        cs_df_env *env, cs_error **err)
{
    const char *b = cs_df_env_get(build_args, kv->key);
    if (b) {
        cs_df_env_set(env, kv->key, b);
        return 1;
    }
    if (!kv->value)
        return 0;
    cs_autofree char *v = NULL;
    int rc = cs_df_word(df, in, kv->value, env, &v, err);
    if (rc < 0)
        return rc;
    cs_df_env_set(env, kv->key, v);
    return 1;
}

int
cs_df_global_args(const cs_df *df, const cs_df_env *build_args, const char *target, cs_df_env **out,
                  cs_error **err)
{
    cs_df_env *env __attribute__((cleanup(cs_df_env_freep))) = cs_df_env_new();
    if (!target && df->nstages)
        target = df->stages[df->nstages - 1].name;
    cs_df_predefined_args(env, build_args, target);
    for (size_t i = 0; i < df->nmeta; i++) {
        const cs_df_instr *in = &df->instrs[i];
        for (size_t j = 0; j < in->nkvs; j++) {
            int rc = arg_set(df, in, &in->kvs[j], build_args, env, err);
            if (rc < 0)
                return rc;
        }
    }
    *out = cs_steal(&env);
    return 0;
}

int
cs_df_stage_from(const cs_df *df, const cs_df_stage *st, const cs_df_env *global, char **base,
                 char **platform, cs_error **err)
{
    cs_autofree char *b = NULL;
    cs_autofree char *pl = NULL;
    int rc = cs_df_word(df, st->from, st->base, global, &b, err);
    if (rc < 0)
        return rc;
    if (!*b)
        return df_perr(err, df->path, st->from->line, "base name (%s) should not be blank",
                       st->base);
    if (st->platform && (rc = cs_df_word(df, st->from, st->platform, global, &pl, err)) < 0)
        return rc;
    *base = cs_steal(&b);
    *platform = cs_steal(&pl);
    return 0;
}

int
cs_df_arg_apply(const cs_df *df, const cs_df_instr *in, const cs_df_env *global,
                const cs_df_env *build_args, cs_df_env *env, cs_error **err)
{
    for (size_t i = 0; i < in->nkvs; i++) {
        const cs_df_kv *kv = &in->kvs[i];
        int rc = arg_set(df, in, kv, build_args, env, err);
        if (rc < 0)
            return rc;
        /* A bare "ARG NAME" in a stage makes the global value visible. */
        const char *g = rc == 0 ? cs_df_env_get(global, kv->key) : NULL;
        if (g)
            cs_df_env_set(env, kv->key, g);
    }
    return 0;
}
