/* ref.c - image references: the name through store's cs_ref_normalize, plus
 * the digest and the split into registry, repository and tag. */
#include "regref.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "cstore/image.h"
#include "cstore/util.h"

static bool
valid_digest(const char *d)
{
    if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!isdigit((unsigned char) *p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    return true;
}

int
cs_reg_ref_parse(const char *s, cs_reg_ref *out, cs_error **err)
{
    memset(out, 0, sizeof(*out));
    cs_autofree char *name = cs_xstrdup(s);
    char *at = strchr(name, '@');
    if (at) {
        *at = 0;
        if (!valid_digest(at + 1))
            return cs_err(err, CS_EINVAL, 0,
                          "reference '%s': invalid digest (want sha256: and 64 hex digits)", s);
        out->digest = cs_xstrdup(at + 1);
    }
    /* Was a tag given? The last ':' after the last '/' (a port comes before a '/'). */
    char *slash = strrchr(name, '/');
    char *colon = strrchr(name, ':');
    bool has_tag = colon && (!slash || colon > slash);
    char *norm = NULL;
    if (cs_ref_normalize(name, &norm, err) < 0) {
        cs_reg_ref_release(out);
        return -CS_EINVAL;
    }
    out->name = norm;
    /* norm is "domain/path:tag" with a domain that has no '/'. */
    char *tc = strrchr(norm, ':');
    char *fs = strchr(norm, '/');
    out->domain = cs_xstrndup(norm, (size_t) (fs - norm));
    out->repo = cs_xstrndup(fs + 1, (size_t) (tc - fs - 1));
    if (has_tag || !out->digest)
        out->tag = cs_xstrdup(tc + 1);
    out->host = cs_xstrdup(strcmp(out->domain, "docker.io") ? out->domain : "registry-1.docker.io");
    return 0;
}

void
cs_reg_ref_release(cs_reg_ref *r)
{
    free(r->domain);
    free(r->host);
    free(r->repo);
    free(r->tag);
    free(r->digest);
    free(r->name);
    memset(r, 0, sizeof(*r));
}

const char *
cs_reg_ref_object(const cs_reg_ref *r)
{
    return r->digest ? r->digest : r->tag;
}

int
cs_reg_domain_normalize(const char *s, char **out, cs_error **err)
{
    const char *p = strstr(s, "://");
    p = p ? p + 3 : s;
    size_t n = strcspn(p, "/");
    if (n == 0)
        return cs_err(err, CS_EINVAL, 0, "registry name '%s' is empty", s);
    char *d = cs_xstrndup(p, n);
    for (char *c = d; *c; c++)
        *c = (char) tolower((unsigned char) *c);
    if (!strcmp(d, "index.docker.io") || !strcmp(d, "registry-1.docker.io")) {
        free(d);
        d = cs_xstrdup("docker.io");
    }
    *out = d;
    return 0;
}
