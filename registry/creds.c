/* creds.c - the credentials docker and podman users have: config.json,
 * auth.json and docker-credential helpers (see regauth.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cstore/util.h"
#include "reg_int.h"
#include "regref.h"

extern char **environ;

/* The key docker writes for a domain. */
static const char *
server_key(const char *domain)
{
    return strcmp(domain, "docker.io") ? domain : "https://index.docker.io/v1/";
}

void
cs_reg_cred_release(cs_reg_cred *c)
{
    if (c->secret)
        explicit_bzero(c->secret, strlen(c->secret));
    free(c->user);
    free(c->secret);
    free(c->source);
    memset(c, 0, sizeof(*c));
}

char *
cs_reg_docker_config_path(void)
{
    const char *d = getenv("DOCKER_CONFIG");
    if (d && *d)
        return cs_path_join(d, "config.json");
    const char *home = getenv("HOME");
    return cs_xasprintf("%s/.docker/config.json", home && *home ? home : "/root");
}

static char *
podman_auth_path(void)
{
    const char *f = getenv("REGISTRY_AUTH_FILE");
    if (f && *f)
        return cs_xstrdup(f);
    const char *x = getenv("XDG_RUNTIME_DIR");
    return x && *x ? cs_xasprintf("%s/containers/auth.json", x) : NULL;
}

/* The JSON object in path; *out NULL when the file does not exist. */
static int
load_json(const char *path, json_t **out, cs_error **err)
{
    *out = NULL;
    if (access(path, F_OK) != 0)
        return 0;
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        /* Never je.text: it may quote the file's bytes. */
        return cs_err(err, CS_EPARSE, 0, "'%s': not a JSON object (line %d)", path, je.line);
    }
    *out = j;
    return 0;
}

/* The key of obj whose normalized registry name is domain, or NULL. */
static const char *
match_key(json_t *obj, const char *domain)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        cs_autofree char *d = NULL;
        cs_error *tmp = NULL;
        if (cs_reg_domain_normalize(k, &d, &tmp) == 0 && !strcmp(d, domain))
            return k;
        cs_error_free(tmp);
    }
    return NULL;
}

/* An "auths" entry: "auth" (base64 user:password) and/or "identitytoken". */
static int
from_auths(json_t *cfg, const char *domain, const char *path, cs_reg_cred *c, cs_error **err)
{
    json_t *auths = json_object_get(cfg, "auths");
    const char *k = match_key(auths, domain);
    if (!k)
        return 0;
    json_t *e = json_object_get(auths, k);
    const char *auth = json_string_value(json_object_get(e, "auth"));
    const char *idt = json_string_value(json_object_get(e, "identitytoken"));
    size_t n = 0;
    cs_autofree char *up = auth && *auth ? reg_unbase64(auth, &n) : NULL;
    char *colon = up ? strchr(up, ':') : NULL;
    if (auth && *auth && !colon)
        return cs_err(err, CS_EPARSE, 0, "'%s': the entry for '%s' is not base64 user:password",
                      path, k);
    if (idt && *idt) {
        c->user = colon ? cs_xstrndup(up, (size_t) (colon - up)) : cs_xstrdup("<token>");
        c->secret = cs_xstrdup(idt);
        c->identity_token = true;
    } else if (colon) {
        c->user = cs_xstrndup(up, (size_t) (colon - up));
        c->secret = cs_xstrdup(colon + 1);
    } else {
        return 0;
    }
    if (up)
        explicit_bzero(up, n);
    c->source = cs_xstrdup(path);
    return 0;
}

/* Runs docker-credential-NAME VERB with input on stdin; its stdout (up to
 * 64 KiB) in *out. Returns its exit status (>= 0) or a negative code. */
static int
run_helper(const char *name, const char *verb, const char *input, cs_buf *out, cs_error **err)
{
    cs_autofree char *prog = cs_xasprintf("docker-credential-%s", name);
    int in[2], o[2];
    /* stdin is a socket: send(MSG_NOSIGNAL) to a helper that exits without
     * reading fails with EPIPE instead of killing us with SIGPIPE (the
     * library installs no handlers). */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0)
        return cs_err(err, CS_EIO, errno, "socketpair");
    if (pipe2(o, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return cs_err(err, CS_EIO, errno, "pipe");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, o[1], 1);
    /* As docker: a helper's stderr is not shown (it is no place for our
     * messages, and what it says is not ours to print). */
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = { prog, (char *) verb, NULL };
    pid_t pid;
    int e = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(o[1]);
    if (e != 0) {
        close(in[1]);
        close(o[0]);
        return cs_err(err, CS_EIO, e, "credential helper '%s'", prog);
    }
    /* Inputs are small (under a socket buffer): write all, then read. */
    int we = 0;
    for (size_t off = 0, n = strlen(input); off < n && !we;) {
        ssize_t k = send(in[1], input + off, n - off, MSG_NOSIGNAL);
        if (k < 0 && errno != EINTR)
            we = errno;
        else if (k > 0)
            off += (size_t) k;
    }
    close(in[1]);
    char buf[4096];
    ssize_t k;
    while ((k = read(o[0], buf, sizeof(buf))) > 0 && out->len < (64 << 10))
        cs_buf_append(out, buf, (size_t) k);
    close(o[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (we && we != EPIPE)
        return cs_err(err, CS_EIO, we, "credential helper '%s'", prog);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int
helper_get(const char *name, const char *domain, cs_reg_cred *c, cs_error **err)
{
    cs_buf out;
    cs_buf_init(&out);
    int st = run_helper(name, "get", server_key(domain), &out, err);
    int rc = st < 0 ? st : 0;
    if (st > 0) {
        /* "credentials not found in native keychain" is "none" (docker's rule). */
        if (!out.len || !memmem(out.data, out.len, "not found", 9))
            rc = cs_err(err, CS_EIO, 0, "credential helper 'docker-credential-%s' failed (exit %d)",
                        name, st);
    } else if (st == 0) {
        json_t *j = json_loadb((const char *) out.data, out.len, 0, NULL);
        const char *u = json_string_value(json_object_get(j, "Username"));
        const char *s = json_string_value(json_object_get(j, "Secret"));
        if (u && s && *s) {
            c->identity_token = !strcmp(u, "<token>");
            c->user = cs_xstrdup(u);
            c->secret = cs_xstrdup(s);
            c->source = cs_xasprintf("helper '%s'", name);
        } else if (!j) {
            rc = cs_err(err, CS_EPARSE, 0,
                        "credential helper 'docker-credential-%s': answer is not JSON", name);
        }
        json_decref(j);
    }
    if (out.data)
        explicit_bzero(out.data, out.len);
    cs_buf_release(&out);
    return rc;
}

/* credHelpers[domain], else credsStore: the helper docker would use. */
static const char *
helper_for(json_t *cfg, const char *domain)
{
    json_t *h = json_object_get(cfg, "credHelpers");
    const char *k = match_key(h, domain);
    if (k)
        return json_string_value(json_object_get(h, k));
    const char *s = json_string_value(json_object_get(cfg, "credsStore"));
    return s && *s ? s : NULL;
}

int
cs_reg_cred_lookup(const char *domain, cs_reg_cred *c, cs_error **err)
{
    memset(c, 0, sizeof(*c));
    cs_autofree char *pa = podman_auth_path();
    json_t *j = NULL;
    int rc = pa ? load_json(pa, &j, err) : 0;
    if (rc == 0 && j)
        rc = from_auths(j, domain, pa, c, err);
    json_decref(j);
    if (rc < 0 || c->user)
        return rc;
    cs_autofree char *dc = cs_reg_docker_config_path();
    rc = load_json(dc, &j, err);
    if (rc < 0 || !j)
        return rc;
    json_t *h = json_object_get(j, "credHelpers");
    const char *k = match_key(h, domain);
    if (k)
        rc = helper_get(json_string_value(json_object_get(h, k)), domain, c, err);
    else
        rc = from_auths(j, domain, dc, c, err);
    const char *store = json_string_value(json_object_get(j, "credsStore"));
    if (rc == 0 && !c->user && !k && store && *store)
        rc = helper_get(store, domain, c, err);
    json_decref(j);
    return rc;
}

/* Writes j to path atomically with mode 0600 (the directory made 0700). */
static int
save_json(const char *path, json_t *j, cs_error **err)
{
    cs_autofree char *dir = cs_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return cs_err(err, CS_EIO, errno, "mkdir '%s'", dir);
    }
    cs_autofree char *text = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
    cs_autofree char *tmp = cs_xasprintf("%s.XXXXXX", path);
    int fd = mkstemp(tmp); /* 0600 from the start: the file holds secrets */
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "'%s'", tmp);
    size_t n = strlen(text);
    bool ok = cs_write_all(fd, text, n) == 0 && cs_write_all(fd, "\n", 1) == 0 && fsync(fd) == 0;
    int e = errno;
    explicit_bzero(text, n);
    if (close(fd) < 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok || rename(tmp, path) < 0) {
        e = ok ? errno : e;
        unlink(tmp);
        return cs_err(err, cs_sys_code(e), e, "'%s'", path);
    }
    return 0;
}

int
cs_reg_cred_store(const char *domain, const char *user, const char *secret, char **where,
                  cs_error **err)
{
    cs_autofree char *dc = cs_reg_docker_config_path();
    json_t *j = NULL;
    int rc = load_json(dc, &j, err);
    if (rc < 0)
        return rc;
    if (!j)
        j = json_object();
    const char *helper = helper_for(j, domain);
    if (helper) {
        json_t *in = json_pack("{s:s, s:s, s:s}", "ServerURL", server_key(domain), "Username", user,
                               "Secret", secret);
        cs_autofree char *text = json_dumps(in, JSON_COMPACT);
        json_decref(in);
        cs_buf out;
        cs_buf_init(&out);
        int st = run_helper(helper, "store", text, &out, err);
        explicit_bzero(text, strlen(text));
        cs_buf_release(&out);
        if (st > 0)
            rc = cs_err(err, CS_EIO, 0, "credential helper 'docker-credential-%s' failed (exit %d)",
                        helper, st);
        else
            rc = st;
        if (rc == 0 && where)
            *where = cs_xasprintf("credential helper 'docker-credential-%s'", helper);
        json_decref(j);
        return rc;
    }
    json_t *auths = json_object_get(j, "auths");
    if (!json_is_object(auths)) {
        auths = json_object();
        json_object_set_new(j, "auths", auths);
    }
    const char *old = match_key(auths, domain);
    if (old)
        json_object_del(auths, old);
    cs_autofree char *up = cs_xasprintf("%s:%s", user, secret);
    cs_autofree char *b64 = reg_base64(up, strlen(up));
    explicit_bzero(up, strlen(up));
    json_object_set_new(auths, server_key(domain), json_pack("{s:s}", "auth", b64));
    explicit_bzero(b64, strlen(b64));
    rc = save_json(dc, j, err);
    json_decref(j);
    if (rc == 0 && where)
        *where = cs_xstrdup(dc);
    return rc;
}

/* Drops domain's "auths" entry from the file at path; *found set when it had one. */
static int
erase_from_file(const char *path, const char *domain, bool *found, cs_error **err)
{
    json_t *j = NULL;
    int rc = load_json(path, &j, err);
    if (rc < 0 || !j)
        return rc;
    json_t *auths = json_object_get(j, "auths");
    const char *k = match_key(auths, domain);
    if (k) {
        json_object_del(auths, k);
        *found = true;
        rc = save_json(path, j, err);
    }
    json_decref(j);
    return rc;
}

int
cs_reg_cred_erase(const char *domain, cs_error **err)
{
    cs_autofree char *dc = cs_reg_docker_config_path();
    json_t *j = NULL;
    int rc = load_json(dc, &j, err);
    if (rc < 0)
        return rc;
    bool found = false;
    const char *helper = j ? helper_for(j, domain) : NULL;
    if (helper) {
        cs_buf out;
        cs_buf_init(&out);
        int st = run_helper(helper, "erase", server_key(domain), &out, err);
        bool nf = out.len && memmem(out.data, out.len, "not found", 9);
        cs_buf_release(&out);
        if (st < 0)
            rc = st;
        else if (st > 0 && !nf)
            rc = cs_err(err, CS_EIO, 0, "credential helper 'docker-credential-%s' failed (exit %d)",
                        helper, st);
        found = st == 0;
    }
    json_decref(j);
    if (rc == 0)
        rc = erase_from_file(dc, domain, &found, err);
    cs_autofree char *pa = podman_auth_path();
    if (rc == 0 && pa)
        rc = erase_from_file(pa, domain, &found, err);
    if (rc == 0 && !found)
        rc = cs_err(err, CS_ENOTFOUND, 0, "not logged in to '%s'", domain);
    return rc;
}
