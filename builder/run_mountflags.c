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

int
cs_runmount_parse(const char *spec, cs_runmount *m, cs_error **err)
{
    memset(m, 0, sizeof(*m));
    m->mode = 0755;
    cs_autofree char *s = cs_xstrdup(spec);
    bool ro_set = false, ro = true;
    for (char *save = NULL, *kv = strtok_r(s, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        const char *v = NULL;
        if (eq) {
            *eq = 0;
            v = eq + 1;
        }
        if (!strcmp(kv, "type")) {
            free(m->type);
            m->type = cs_xstrdup(v ? v : "");
        } else if (!strcmp(kv, "target") || !strcmp(kv, "dst") || !strcmp(kv, "destination")) {
            free(m->target);
            m->target = v ? abs_clean(v) : NULL;
        } else if (!strcmp(kv, "source") || !strcmp(kv, "src")) {
            free(m->source);
            m->source = cs_xstrdup(v ? v : "");
        } else if (!strcmp(kv, "from")) {
            free(m->from);
            m->from = cs_xstrdup(v ? v : "");
        } else if (!strcmp(kv, "id")) {
            free(m->id);
            m->id = cs_xstrdup(v ? v : "");
        } else if (!strcmp(kv, "rw") || !strcmp(kv, "readwrite")) {
            ro_set = true;
            ro = !parse_bool(v, true);
        } else if (!strcmp(kv, "ro") || !strcmp(kv, "readonly")) {
            ro_set = true;
            ro = parse_bool(v, true);
        } else if (!strcmp(kv, "mode") && v) {
            m->mode = (uint32_t) strtoul(v, NULL, 8) & 07777;
        } else if (!strcmp(kv, "uid") && v) {
            m->uid = (uint32_t) strtoul(v, NULL, 10);
        } else if (!strcmp(kv, "gid") && v) {
            m->gid = (uint32_t) strtoul(v, NULL, 10);
        } else if (!strcmp(kv, "sharing") || !strcmp(kv, "size") || !strcmp(kv, "required")) {
            /* accepted: every cache mount is shared by concurrent builds */
        } else {
            cs_runmount_release(m);
            return cs_err(err, CS_EPARSE, 0, "--mount: unknown key '%s'", kv);
        }
    }
    if (!m->type)
        m->type = cs_xstrdup("bind");
    if (strcmp(m->type, "cache") && strcmp(m->type, "bind") && strcmp(m->type, "tmpfs")) {
        int r = cs_err(err, CS_EUNSUPPORTED, 0, "--mount: type '%s' is not supported", m->type);
        cs_runmount_release(m);
        return r;
    }
    if (!m->target || !strcmp(m->target, "/")) {
        cs_runmount_release(m);
        return cs_err(err, CS_EPARSE, 0, "--mount: a target other than / is required");
    }
    /* As BuildKit: cache and tmpfs mounts are read-write, binds read-only,
     * unless rw/ro says otherwise. */
    bool rw_default = !strcmp(m->type, "cache") || !strcmp(m->type, "tmpfs");
    m->rw = ro_set ? !ro : rw_default;
    if (!m->id && !strcmp(m->type, "cache"))
        m->id = cs_xstrdup(m->target);
    return 0;
}
