/* client.c - a registry client's life: open (TLS material), the https/http
 * probe, ping, free; the connection policy. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "cstore/strv.h"
#include "reg_int.h"

bool
cs_reg_http_allowed(const char *hostport, bool insecure)
{
    if (insecure)
        return true;
    cs_autofree char *h = NULL;
    if (hostport[0] == '[') {
        const char *e = strchr(hostport, ']');
        if (!e)
            return false;
        h = cs_xstrndup(hostport + 1, (size_t) (e - hostport - 1));
        if (e[1] && e[1] != ':')
            return false;
    } else {
        /* One ':' is a port; more is a bare IPv6 address. */
        const char *c = strchr(hostport, ':');
        h = (c && !strchr(c + 1, ':')) ? cs_xstrndup(hostport, (size_t) (c - hostport))
                                       : cs_xstrdup(hostport);
    }
    if (!strcasecmp(h, "localhost"))
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, h, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, h, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

char **
cs_reg_certs_d_roots(void)
{
    cs_strv v = { 0 };
    const char *e = getenv("CSTORE_CERTS_D");
    if (e && *e) {
        for (const char *p = e; *p;) {
            size_t n = strcspn(p, ":");
            if (n)
                cs_strv_push(&v, cs_xstrndup(p, n));
            p += n + (p[n] == ':');
        }
    } else {
        cs_strv_add(&v, "/etc/docker/certs.d");
        cs_strv_add(&v, "/etc/containers/certs.d");
    }
    return cs_strv_take(&v);
}

static bool
has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Reads dir's *.crt (CAs, concatenated) and the first *.cert with its *.key
 * (client certificate), as docker does. A missing dir is no error. */
static int
load_cert_dir(cs_registry *r, const char *dir, cs_error **err)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    cs_buf ca;
    cs_buf_init(&ca);
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        cs_autofree char *path = cs_path_join(dir, de->d_name);
        if (has_suffix(de->d_name, ".crt")) {
            cs_buf one;
            cs_buf_init(&one);
            rc = cs_read_file(path, 1 << 20, &one, err);
            cs_buf_append(&ca, one.data, one.len);
            cs_buf_append(&ca, "\n", 1);
            cs_buf_release(&one);
        } else if (has_suffix(de->d_name, ".cert") && !r->client_cert) {
            char *key = cs_xasprintf("%.*s.key", (int) (strlen(path) - 5), path);
            if (access(key, R_OK) == 0) {
                r->client_cert = cs_steal(&path);
                r->client_key = key;
            } else {
                rc =
                    cs_err(err, CS_EINVAL, 0, "client certificate '%s' has no key '%s'", path, key);
                free(key);
            }
        }
    }
    closedir(d);
    if (ca.len) {
        r->ca_pem = (char *) ca.data;
        r->ca_len = ca.len;
    } else {
        cs_buf_release(&ca);
    }
    return rc;
}

static int
load_tls(cs_registry *r, const char *cert_dir, cs_error **err)
{
    if (cert_dir) {
        if (access(cert_dir, R_OK | X_OK) != 0)
            return cs_err(err, CS_ENOTFOUND, errno, "--cert-dir '%s'", cert_dir);
        return load_cert_dir(r, cert_dir, err);
    }
    char **roots = cs_reg_certs_d_roots();
    int rc = 0;
    for (char **p = roots; rc == 0 && *p; p++) {
        cs_autofree char *dir = cs_path_join(*p, r->domain);
        if (access(dir, X_OK) == 0) {
            rc = load_cert_dir(r, dir, err);
            break;
        }
    }
    cs_strv_free(roots);
    return rc;
}

static void
share_lock(CURL *c, curl_lock_data data, curl_lock_access a, void *ctx)
{
    (void) c, (void) a;
    cs_registry *r = ctx;
    pthread_mutex_lock(&r->share_mu[data]);
}

static void
share_unlock(CURL *c, curl_lock_data data, void *ctx)
{
    (void) c;
    cs_registry *r = ctx;
    pthread_mutex_unlock(&r->share_mu[data]);
}

int
cs_registry_open(const char *domain, const char *repo, unsigned actions, const cs_reg_opts *opts,
                 cs_registry **out, cs_error **err)
{
    const cs_curl_api *cu = cs_curl(domain, err);
    if (!cu)
        return -CS_EUNSUPPORTED;
    cs_registry *r = cs_xcalloc(1, sizeof(*r));
    r->cu = cu;
    r->domain = cs_xstrdup(domain);
    r->host = cs_xstrdup(strcmp(domain, "docker.io") ? domain : "registry-1.docker.io");
    r->repo = cs_xstrdup(repo);
    r->actions = actions ? actions : CS_REG_PULL;
    /* No repository (login): tokens without a scope, as docker login asks. */
    r->scope = *repo ? cs_xasprintf("repository:%s:%s", repo,
                                    (r->actions & CS_REG_PUSH) ? "pull,push" : "pull")
                     : cs_xstrdup("");
    r->insecure = opts && opts->insecure;
    r->cancel = opts ? opts->cancel : NULL;
    r->user_agent = cs_xstrdup(opts && opts->user_agent ? opts->user_agent : "cstore");
    pthread_mutex_init(&r->mu, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&r->share_mu[i], NULL);
    r->share = cu->share_init();
    if (r->share) {
        cu->share_setopt(r->share, CURLSHOPT_LOCKFUNC, share_lock);
        cu->share_setopt(r->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        cu->share_setopt(r->share, CURLSHOPT_USERDATA, r);
        cu->share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        cu->share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        cu->share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    int rc = load_tls(r, opts ? opts->cert_dir : NULL, err);
    if (rc < 0) {
        cs_registry_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void
cs_registry_free(cs_registry *r)
{
    if (!r)
        return;
    if (r->share)
        r->cu->share_cleanup(r->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&r->share_mu[i]);
    pthread_mutex_destroy(&r->mu);
    for (size_t i = 0; i < r->ntokens; i++) {
        free(r->tokens[i].scope);
        free(r->tokens[i].token);
    }
    free(r->tokens);
    cs_reg_cred_release(&r->cred);
    free(r->refresh);
    free(r->realm);
    free(r->service);
    free(r->base);
    free(r->ca_pem);
    free(r->client_cert);
    free(r->client_key);
    free(r->user_agent);
    free(r->scope);
    free(r->repo);
    free(r->host);
    free(r->domain);
    free(r);
}

/* GET BASE/v2/ without auth: any HTTP answer means BASE works. */
static int
probe(cs_registry *r, const char *scheme, reg_resp *resp, cs_error **err)
{
    cs_autofree char *url = cs_xasprintf("%s://%s/v2/", scheme, r->host);
    reg_req q = { .method = "GET", .url = url, .what = r->domain };
    return reg_exchange(r, "GET", url, NULL, &q, resp, err);
}

int
reg_connect(cs_registry *r, cs_error **err)
{
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    if (r->base)
        goto out;
    reg_resp resp = { 0 };
    const char *scheme = "http";
    /* On loopback, plain http first: a plain registry answers /v2/ with 200
     * or 401 and we skip loading the system CA store (~0.1 s of CPU); a TLS
     * one answers 400 to plain http and goes on to https below. */
    if (cs_reg_http_allowed(r->host, false)) {
        cs_error *tmp = NULL;
        if (probe(r, scheme, &resp, &tmp) == 0 && (resp.status == 200 || resp.status == 401))
            goto found;
        cs_error_free(tmp);
    }
    scheme = "https";
    rc = probe(r, scheme, &resp, err);
    /* A certificate that fails verification is an answer, not a reason to
     * drop to plain http. */
    if (rc < 0 && rc != -CS_ECANCELED && cs_reg_http_allowed(r->host, r->insecure)
        && resp.curl_rc != CURLE_PEER_FAILED_VERIFICATION) {
        cs_error *https_err = err ? cs_steal(err) : NULL;
        scheme = "http";
        rc = probe(r, scheme, &resp, err);
        if (rc < 0) {
            /* Neither answered: the https failure says more. */
            cs_error_clear(err);
            if (err)
                *err = https_err;
            else
                cs_error_free(https_err);
        } else {
            cs_error_free(https_err);
        }
    }
found:
    if (rc == 0) {
        r->base = cs_xasprintf("%s://%s", scheme, r->host);
        if (resp.status == 401 && resp.www_auth) {
            rc = reg_auth_challenge(r, resp.www_auth, r->scope, false, err);
        } else if (resp.status >= 200 && resp.status < 300) {
            r->auth = REG_AUTH_NONE;
        } else if (resp.status == 404) {
            /* (reg_http_error would take r->mu, held here) */
            rc = cs_err(err, CS_EINVAL, 0, "%s: not a registry (GET /v2/ answered 404)", r->domain);
        }
        /* Anything else (a 5xx, a 429) is the next request's to retry. */
    }
    reg_resp_release(&resp);
out:
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void
cs_registry_set_credentials(cs_registry *r, const char *user, const char *secret)
{
    pthread_mutex_lock(&r->mu);
    cs_reg_cred_release(&r->cred);
    r->cred.user = cs_xstrdup(user);
    r->cred.secret = cs_xstrdup(secret);
    r->cred.source = cs_xstrdup("the command line");
    r->cred_loaded = true;
    pthread_mutex_unlock(&r->mu);
}

int
cs_registry_ping(cs_registry *r, cs_error **err)
{
    reg_resp resp = { 0 };
    /* /v2/ itself, with the token of the client's scope: that both checks
     * the credentials (token server or basic) and the registry. */
    reg_req q = { .method = "GET", .url = "/v2/", .what = r->domain };
    int rc = reg_do(r, &q, &resp, err);
    if (rc == 0 && (resp.status < 200 || resp.status >= 300))
        rc = reg_http_error(r, &q, &resp, err);
    reg_resp_release(&resp);
    return rc;
}

void
cs_registry_stats(cs_registry *r, uint64_t *bytes_sent, uint64_t *uploads)
{
    if (bytes_sent)
        *bytes_sent = atomic_load_explicit(&r->bytes_sent, memory_order_relaxed);
    if (uploads)
        *uploads = atomic_load_explicit(&r->uploads, memory_order_relaxed);
}
