/* copy_user.c - --chown USER[:GROUP] (and RUN's USER) resolved against the
 * stage's /etc/passwd and /etc/group, read from its merged tree.
 */
#include "copy_int.h"

#include <string.h>
#include "cstore/oneshot.h"
#include "cstore/merged.h"
#include "cstore/rcache.h"

/* Reads /etc/passwd or /etc/group of tree into b (empty when absent). */
static int
read_tree_file(cs_store *s, const cs_tree *t, const char *path, cs_buf *b, cs_error **err)
{
    if (!t)
        return 0;
    cs_autofree char *real = NULL;
    const cs_entry *e = NULL;
    int r = cs_tree_resolve(t, path, true, &real, &e, err);
    if (r == -CS_ENOTFOUND) {
        cs_error_clear(err);
        return 0;
    }
    if (r <= 0)
        return r;
    if (!e || (e->type != CS_E_FILE && e->type != CS_E_HARDLINK) || !e->has_content)
        return 0;
    if (e->size > (10u << 20))
        return cs_err(err, CS_EINVAL, 0, "%s: too large", path);
    /* A file from an imported build cache: its bytes first. */
    if ((r = cs_rcache_fetch_content(s, &e->content, err)) < 0)
        return r;
    return cs_content_load(cs_store_db(s), &e->content, b, err);
}

static bool
parse_id(const char *s, uint32_t *v)
{
    if (!*s)
        return false;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        x = x * 10 + (uint64_t) (*s - '0');
        if (x > UINT32_MAX)
            return false;
    }
    *v = (uint32_t) x;
    return true;
}

/* Finds name in a passwd/group file: field 3 (and 4) as numbers. */
static bool
lookup_name(const cs_buf *b, const char *name, uint32_t *f3, uint32_t *f4)
{
    const char *p = (const char *) b->data, *end = p + b->len;
    size_t nl = strlen(name);
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t) (end - p));
        const char *le = eol ? eol : end;
        if ((size_t) (le - p) > nl && !memcmp(p, name, nl) && p[nl] == ':') {
            cs_autofree char *line = cs_xstrndup(p, (size_t) (le - p));
            char *fields[4] = { 0 };
            char *tok = line;
            for (int i = 0; i < 4; i++) {
                char *colon = strchr(tok, ':');
                fields[i] = tok;
                if (!colon)
                    break;
                *colon = '\0';
                tok = colon + 1;
            }
            if (fields[2] && parse_id(fields[2], f3)) {
                if (f4 && !(fields[3] && parse_id(fields[3], f4)))
                    *f4 = 0;
                return true;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return false;
}

/* Finds name in the passwd/group file path of tree: 1 found (fields 3 and,
 * when f4, 4), 0 not, <0 error. */
static int
lookup_in(cs_store *s, const cs_tree *tree, const char *path, const char *name, uint32_t *f3,
          uint32_t *f4, cs_error **err)
{
    cs_buf b;
    cs_buf_init(&b);
    int r = read_tree_file(s, tree, path, &b, err);
    if (r >= 0)
        r = lookup_name(&b, name, f3, f4);
    cs_buf_release(&b);
    return r;
}

int
cs_copy_lookup_owner(cs_store *s, const cs_tree *tree, const char *spec, uint32_t *uid,
                     uint32_t *gid, cs_error **err)
{
    cs_autofree char *user = cs_xstrdup(spec);
    char *group = strchr(user, ':');
    if (group)
        *group++ = '\0';
    uint32_t u = 0, g = 0;
    int r;
    if (parse_id(user, &u)) {
        g = u;
    } else if (*user) {
        if ((r = lookup_in(s, tree, "/etc/passwd", user, &u, &g, err)) <= 0)
            return r < 0 ? r : cs_err(err, CS_ENOTFOUND, 0, "unable to find user %s", user);
    }
    if (group && *group && !parse_id(group, &g)) {
        if ((r = lookup_in(s, tree, "/etc/group", group, &g, NULL, err)) <= 0)
            return r < 0 ? r : cs_err(err, CS_ENOTFOUND, 0, "unable to find group %s", group);
    }
    *uid = u;
    *gid = g;
    return 0;
}
