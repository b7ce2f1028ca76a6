/* strv.c - growable NULL-terminated string vectors (see cstore/strv.h). */
#include <string.h>
#include "cstore/strv.h"
#include "cstore/util.h"

void
cs_strv_push(cs_strv *a, char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->v = cs_xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

void
cs_strv_add(cs_strv *a, const char *s)
{
    cs_strv_push(a, cs_xstrdup(s));
}

char **
cs_strv_take(cs_strv *a)
{
    char **v = a->v ? a->v : cs_xcalloc(1, sizeof(*v));
    a->v = NULL;
    a->n = a->cap = 0;
    return v;
}

void
cs_strv_release(cs_strv *a)
{
    cs_strv_free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

void
cs_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t
cs_strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

bool
cs_strv_contains(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}
