/* build_secret.c - --secret and --ssh specs, and the values behind them
 * (see build.h, build_secret.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "build_secret.h"
#include "cstore/util.h"

void
cs_build_secret_release(cs_build_secret *s)
{
    free(s->id);
    free(s->src);
    free(s->env);
    memset(s, 0, sizeof *s);
}

void
cs_build_ssh_release(cs_build_ssh *s)
{
    free(s->id);
    free(s->socket);
    memset(s, 0, sizeof *s);
}

static int
secret_key(cs_build_secret *s, char *kv, bool *type_env, cs_error **err)
{
    char *eq = strchr(kv, '=');
    if (!eq)
        return cs_err(err, CS_EPARSE, 0, "--secret: '%s' must be a key=value pair", kv);
    *eq = 0;
    const char *v = eq + 1;
    char **dst = !strcmp(kv, "id")                             ? &s->id
                 : !strcmp(kv, "src") || !strcmp(kv, "source") ? &s->src
                 : !strcmp(kv, "env")                          ? &s->env
                                                               : NULL;
    if (dst) {
        free(*dst);
        *dst = cs_xstrdup(v);
    } else if (!strcmp(kv, "type") && (!strcmp(v, "file") || !strcmp(v, "env"))) {
        *type_env = !strcmp(v, "env");
    } else if (!strcmp(kv, "type")) {
        return cs_err(err, CS_EPARSE, 0, "--secret: unsupported type '%s'", v);
    } else {
        return cs_err(err, CS_EPARSE, 0, "--secret: unknown key '%s'", kv);
    }
    return 0;
}

/* The source as buildkit's secretsprovider settles it. */
static int
secret_source(cs_build_secret *s, bool type_env, cs_error **err)
{
    if (!s->id || !*s->id)
        return cs_err(err, CS_EPARSE, 0, "--secret: an id is required (id=ID)");
    if (type_env && !s->env)
        s->env = cs_steal(&s->src);
    if (s->env && s->src)
        return cs_err(err, CS_EPARSE, 0, "--secret id=%s: src and env both given", s->id);
    if (!s->env && !s->src) {
        if (getenv(s->id))
            s->env = cs_xstrdup(s->id);
        else
            s->src = cs_xstrdup(s->id);
    }
    struct stat st;
    if (s->src && stat(s->src, &st) < 0)
        return cs_err(err, errno == ENOENT ? CS_ENOTFOUND : CS_EIO, errno,
                      "--secret id=%s: stat '%s'", s->id, s->src);
    return 0;
}

int
cs_build_secret_parse(const char *spec, cs_build_secret *out, cs_error **err)
{
    memset(out, 0, sizeof *out);
    cs_autofree char *s = cs_xstrdup(spec);
    bool type_env = false;
    int rc = 0;
    for (char *save = NULL, *kv = strtok_r(s, ",", &save); kv && rc == 0;
         kv = strtok_r(NULL, ",", &save))
        rc = secret_key(out, kv, &type_env, err);
    if (rc == 0)
        rc = secret_source(out, type_env, err);
    if (rc < 0)
        cs_build_secret_release(out);
    return rc;
}

int
cs_build_ssh_parse(const char *spec, cs_build_ssh *out, cs_error **err)
{
    memset(out, 0, sizeof *out);
    const char *eq = strchr(spec, '=');
    out->id = eq ? cs_xstrndup(spec, (size_t) (eq - spec)) : cs_xstrdup(spec);
    const char *sock = eq ? eq + 1 : getenv("SSH_AUTH_SOCK");
    int rc = 0;
    struct stat st;
    if (!*out->id)
        rc =
            cs_err(err, CS_EPARSE, 0, "--ssh '%s': an id is required (default or ID=SOCKET)", spec);
    else if (!sock || !*sock)
        rc = cs_err(err, CS_EPARSE, 0,
                    "--ssh %s: no agent socket: SSH_AUTH_SOCK is not set (or give ID=SOCKET)",
                    out->id);
    else if (strchr(sock, ','))
        rc = cs_err(err, CS_EUNSUPPORTED, 0, "--ssh %s: one socket per id", out->id);
    else if (stat(sock, &st) < 0)
        rc = cs_err(err, errno == ENOENT ? CS_ENOTFOUND : CS_EIO, errno, "--ssh %s: stat '%s'",
                    out->id, sock);
    else if (!S_ISSOCK(st.st_mode))
        rc = cs_err(err, CS_EUNSUPPORTED, 0,
                    "--ssh %s: '%s' is not a socket (key files are not supported)", out->id, sock);
    if (rc < 0)
        cs_build_ssh_release(out);
    else
        out->socket = cs_xstrdup(sock);
    return rc;
}

int
build_secret_value(const cs_build_opts *o, const char *id, cs_buf *out, cs_error **err)
{
    const cs_build_secret *s = NULL;
    for (size_t i = 0; i < o->nsecrets; i++)
        if (!strcmp(o->secrets[i].id, id))
            s = &o->secrets[i];
    cs_buf_init(out);
    if (!s)
        return 0;
    if (s->env) {
        const char *v = getenv(s->env);
        if (!v)
            return 0;
        cs_buf_append(out, v, strlen(v));
        return 1;
    }
    if (cs_read_file(s->src, CS_BUILD_SECRET_MAX, out, err) < 0) {
        build_secret_wipe(out);
        return cs_err_wrap(err, "secret '%s'", id);
    }
    return 1;
}

void
build_secret_wipe(cs_buf *b)
{
    if (b->data)
        explicit_bzero(b->data, b->cap);
    cs_buf_release(b);
}

const char *
build_ssh_socket(const cs_build_opts *o, const char *id)
{
    const char *sock = NULL;
    for (size_t i = 0; i < o->nssh; i++)
        if (!strcmp(o->ssh[i].id, id))
            sock = o->ssh[i].socket;
    return sock;
}
