/* run_mountflags.c - parsing RUN --mount specs (see run_mountflags.h). */
#include <stdlib.h>
#include <string.h>
#include "cstore/tree.h"
#include "run_mountflags.h"

void
cs_runmount_release(cs_runmount *m)
{
    free(m->type);
    free(m->target);
    free(m->source);
    free(m->from);
    free(m->id);
    memset(m, 0, sizeof(*m));
}

static bool
parse_bool(const char *v, bool dflt)
{
    if (!v)
        return true; /* a bare key ("rw", "readonly") means true */
    if (!strcmp(v, "true") || !strcmp(v, "1"))
        return true;
    if (!strcmp(v, "false") || !strcmp(v, "0"))
        return false;
    return dflt;
}

static char *
abs_clean(const char *p)
{
    char *c = NULL;
    if (cs_path_clean(p, &c, NULL) < 0)
        return NULL;
    char *r = cs_xasprintf("/%s", c);
    free(c);
    return r;
}

/* A secret's or ssh socket's defaults (BuildKit's): the id from the target,
 * the target under /run/secrets; read-only, owned by root. */
static int
agent_defaults(cs_runmount *m, const char *raw_target, bool mode_set, cs_error **err)
{
    bool secret = !strcmp(m->type, "secret");
    if (!mode_set)
        m->mode = secret ? 0400 : 0600;
    m->rw = false;
    free(m->target);
    m->target = NULL;
    if (!secret) {
        if (raw_target && !(m->target = abs_clean(raw_target)))
            return cs_err(err, CS_EPARSE, 0, "--mount: bad target '%s'", raw_target);
        if (!m->id)
            m->id = cs_xstrdup("default");
        return 0;
    }
    if (!m->id && raw_target) {
        const char *slash = strrchr(raw_target, '/');
        m->id = cs_xstrdup(slash ? slash + 1 : raw_target);
    }
    if (!m->id || !*m->id)
        return cs_err(err, CS_EPARSE, 0, "--mount: type=secret needs an id or a target");
    cs_autofree char *t = !raw_target          ? cs_xasprintf("/run/secrets/%s", m->id)
                          : *raw_target == '/' ? cs_xstrdup(raw_target)
                                               : cs_xasprintf("/run/secrets/%s", raw_target);
    m->target = abs_clean(t);
    if (!m->target || !strcmp(m->target, "/"))
        return cs_err(err, CS_EPARSE, 0, "--mount: bad target '%s'", t);
    return 0;
}

/* One key=value of a spec into m; *raw_target, *ro and the flags say what
 * was given. */
static int
parse_key(cs_runmount *m, char *kv, const char **raw_target, bool *ro_set, bool *ro, bool *mode_set,
          cs_error **err)
{
    char *eq = strchr(kv, '=');
    const char *v = NULL;
    if (eq) {
        *eq = 0;
        v = eq + 1;
    }
    char **str = !strcmp(kv, "type")                           ? &m->type
                 : !strcmp(kv, "source") || !strcmp(kv, "src") ? &m->source
                 : !strcmp(kv, "from")                         ? &m->from
                 : !strcmp(kv, "id")                           ? &m->id
                                                               : NULL;
    if (str) {
        free(*str);
        *str = cs_xstrdup(v ? v : "");
    } else if (!strcmp(kv, "target") || !strcmp(kv, "dst") || !strcmp(kv, "destination")) {
        *raw_target = v;
    } else if (!strcmp(kv, "rw") || !strcmp(kv, "readwrite")) {
        *ro_set = true;
        *ro = !parse_bool(v, true);
    } else if (!strcmp(kv, "ro") || !strcmp(kv, "readonly")) {
        *ro_set = true;
        *ro = parse_bool(v, true);
    } else if (!strcmp(kv, "required")) {
        m->required = parse_bool(v, false);
    } else if (!strcmp(kv, "mode") && v) {
        m->mode = (uint32_t) strtoul(v, NULL, 8) & 07777;
        *mode_set = true;
    } else if (!strcmp(kv, "uid") && v) {
        m->uid = (uint32_t) strtoul(v, NULL, 10);
    } else if (!strcmp(kv, "gid") && v) {
        m->gid = (uint32_t) strtoul(v, NULL, 10);
    } else if (!strcmp(kv, "sharing") || !strcmp(kv, "size")) {
        /* accepted: every cache mount is shared by concurrent builds */
    } else {
        return cs_err(err, CS_EPARSE, 0, "--mount: unknown key '%s'", kv);
    }
    return 0;
}

static bool
known_type(const char *t)
{
    static const char *const types[] = { "cache", "bind", "tmpfs", "secret", "ssh" };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(t, types[i]))
            return true;
    return false;
}

static int
parse_spec(const char *spec, cs_runmount *m, cs_error **err)
{
    m->mode = 0755;
    cs_autofree char *s = cs_xstrdup(spec);
    const char *raw_target = NULL;
    bool ro_set = false, ro = true, mode_set = false;
    int rc;
    for (char *save = NULL, *kv = strtok_r(s, ",", &save); kv; kv = strtok_r(NULL, ",", &save))
        if ((rc = parse_key(m, kv, &raw_target, &ro_set, &ro, &mode_set, err)) < 0)
            return rc;
    if (!m->type)
        m->type = cs_xstrdup("bind");
    if (!known_type(m->type))
        return cs_err(err, CS_EUNSUPPORTED, 0, "--mount: type '%s' is not supported", m->type);
    if (!strcmp(m->type, "secret") || !strcmp(m->type, "ssh"))
        return agent_defaults(m, raw_target, mode_set, err);
    m->target = raw_target ? abs_clean(raw_target) : NULL;
    if (!m->target || !strcmp(m->target, "/"))
        return cs_err(err, CS_EPARSE, 0, "--mount: a target other than / is required");
    /* As BuildKit: cache and tmpfs mounts are read-write, binds read-only,
     * unless rw/ro says otherwise. */
    bool rw_default = !strcmp(m->type, "cache") || !strcmp(m->type, "tmpfs");
    m->rw = ro_set ? !ro : rw_default;
    if (!m->id && !strcmp(m->type, "cache"))
        m->id = cs_xstrdup(m->target);
    return 0;
}

int
cs_runmount_parse(const char *spec, cs_runmount *m, cs_error **err)
{
    memset(m, 0, sizeof(*m));
    int rc = parse_spec(spec, m, err);
    if (rc < 0)
        cs_runmount_release(m);
    return rc;
}
