/* lex_env.c - cs_df_env, the ordered set of ARG and ENV values the lexer
 * expands against (see lex.h). Linear lookup: a Dockerfile sets tens of
 * variables, and insertion order is what the image config records. */
#include <string.h>
#include <sys/types.h>

#include "lex.h"

struct cs_df_env {
    char **keys, **vals;
    size_t n, cap;
};

cs_df_env *
cs_df_env_new(void)
{
    return cs_xcalloc(1, sizeof(cs_df_env));
}

cs_df_env *
cs_df_env_dup(const cs_df_env *e)
{
    cs_df_env *d = cs_df_env_new();
    for (size_t i = 0; e && i < e->n; i++)
        cs_df_env_set(d, e->keys[i], e->vals[i]);
    return d;
}

void
cs_df_env_free(cs_df_env *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++) {
        free(e->keys[i]);
        free(e->vals[i]);
    }
    free(e->keys);
    free(e->vals);
    free(e);
}

static ssize_t
env_find(const cs_df_env *e, const char *key, size_t klen)
{
    for (size_t i = 0; e && i < e->n; i++)
        if (strncmp(e->keys[i], key, klen) == 0 && e->keys[i][klen] == '\0')
            return (ssize_t) i;
    return -1;
}

void
cs_df_env_set(cs_df_env *e, const char *key, const char *value)
{
    ssize_t i = env_find(e, key, strlen(key));
    if (i >= 0) {
        free(e->vals[i]);
        e->vals[i] = cs_xstrdup(value);
        return;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->keys = cs_xrealloc(e->keys, e->cap * sizeof(char *));
        e->vals = cs_xrealloc(e->vals, e->cap * sizeof(char *));
    }
    e->keys[e->n] = cs_xstrdup(key);
    e->vals[e->n] = cs_xstrdup(value);
    e->n++;
}

bool
cs_df_env_unset(cs_df_env *e, const char *key)
{
    ssize_t i = env_find(e, key, strlen(key));
    if (i < 0)
        return false;
    free(e->keys[i]);
    free(e->vals[i]);
    memmove(&e->keys[i], &e->keys[i + 1], (e->n - (size_t) i - 1) * sizeof(char *));
    memmove(&e->vals[i], &e->vals[i + 1], (e->n - (size_t) i - 1) * sizeof(char *));
    e->n--;
    return true;
}

const char *
cs_df_env_get(const cs_df_env *e, const char *key)
{
    ssize_t i = env_find(e, key, strlen(key));
    return i < 0 ? NULL : e->vals[i];
}

size_t
cs_df_env_count(const cs_df_env *e)
{
    return e ? e->n : 0;
}

void
cs_df_env_at(const cs_df_env *e, size_t i, const char **key, const char **value)
{
    *key = e->keys[i];
    *value = e->vals[i];
}
