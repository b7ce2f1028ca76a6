/* challenge.c - WWW-Authenticate parsing (RFC 7235). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "cstore/util.h"
#include "regauth.h"

void
cs_reg_challenge_release(cs_reg_challenge *c)
{
    free(c->scheme);
    free(c->realm);
    free(c->service);
    free(c->scope);
    free(c->error);
    memset(c, 0, sizeof(*c));
}

/* A token or quoted-string value at *p; advances *p past it. */
static char *
param_value(const char **p)
{
    const char *s = *p;
    if (*s != '"') {
        size_t n = strcspn(s, ", \t");
        *p = s + n;
        return cs_xstrndup(s, n);
    }
    s++;
    char *out = cs_xmalloc(strlen(s) + 1), *w = out;
    while (*s && *s != '"') {
        if (*s == '\\' && s[1])
            s++;
        *w++ = *s++;
    }
    *w = 0;
    *p = *s ? s + 1 : s;
    return out;
}

int
cs_reg_challenge_parse(const char *header, cs_reg_challenge *out, cs_error **err)
{
    memset(out, 0, sizeof(*out));
    const char *p = header;
    while (isspace((unsigned char) *p))
        p++;
    size_t n = strcspn(p, " \t,=");
    if (n == 0 || p[n] == '=')
        return cs_err(err, CS_EPARSE, 0, "WWW-Authenticate without a scheme");
    out->scheme = cs_xstrndup(p, n);
    p += n;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t kl = strcspn(p, "= \t,");
        if (p[kl] != '=') /* a second challenge's scheme: the first one is ours */
            break;
        const char *k = p;
        p += kl + 1;
        char *v = param_value(&p);
        char **slot = NULL;
        if (kl == 5 && !strncasecmp(k, "realm", 5))
            slot = &out->realm;
        else if (kl == 7 && !strncasecmp(k, "service", 7))
            slot = &out->service;
        else if (kl == 5 && !strncasecmp(k, "scope", 5))
            slot = &out->scope;
        else if (kl == 5 && !strncasecmp(k, "error", 5))
            slot = &out->error;
        if (slot) {
            free(*slot);
            *slot = v;
        } else {
            free(v);
        }
    }
    return 0;
}
