/* auth.c - answering a registry's challenge: Basic with the stored
 * credentials, or Bearer tokens from its token server (anonymous, with
 * credentials, or with a refresh / identity token), cached per scope until
 * they expire. Everything here runs under r->mu. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "reg_int.h"

static int
load_cred(cs_registry *r, cs_error **err)
{
    if (r->cred_loaded)
        return 0;
    int rc = cs_reg_cred_lookup(r->domain, &r->cred, err);
    if (rc < 0)
        return cs_err_wrap(err, "credentials for '%s'", r->domain);
    r->cred_loaded = true;
    return 0;
}

static reg_token *
find_token(cs_registry *r, const char *scope)
{
    for (size_t i = 0; i < r->ntokens; i++)
        if (!strcmp(r->tokens[i].scope, scope))
            return &r->tokens[i];
    return NULL;
}

/* "&scope=A&scope=B" for the space-separated scopes (GET), or "&scope=A%20B"
 * (the OAuth form). */
static char *
scope_params(const char *scope, bool oauth)
{
    if (!*scope)
        return cs_xstrdup("");
    if (oauth) {
        cs_autofree char *e = reg_urlenc(scope);
        return cs_xasprintf("&scope=%s", e);
    }
    cs_buf b;
    cs_buf_init(&b);
    for (const char *p = scope; *p;) {
        size_t n = strcspn(p, " ");
        if (n) {
            cs_autofree char *one = cs_xstrndup(p, n);
            cs_autofree char *e = reg_urlenc(one);
            cs_buf_append(&b, "&scope=", 7);
            cs_buf_append(&b, e, strlen(e));
        }
        p += n + (p[n] == ' ');
    }
    cs_buf_u8(&b, 0);
    return (char *) b.data;
}

/* The token server's answer into the cache. */
static int
take_token(cs_registry *r, const char *scope, const reg_resp *resp, cs_error **err)
{
    json_t *j = json_loadb((const char *) resp->body.data, resp->body.len, 0, NULL);
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (!tok || !*tok)
        tok = json_string_value(json_object_get(j, "access_token"));
    if (!tok || !*tok) {
        json_decref(j);
        return cs_err(err, CS_EPARSE, 0, "%s: token server answered without a token", r->domain);
    }
    json_int_t ttl = json_integer_value(json_object_get(j, "expires_in"));
    if (ttl < 60)
        ttl = 60; /* the distribution spec's minimum */
    const char *rt = json_string_value(json_object_get(j, "refresh_token"));
    if (rt && *rt) {
        free(r->refresh);
        r->refresh = cs_xstrdup(rt);
    }
    reg_token *t = find_token(r, scope);
    if (!t) {
        r->tokens = cs_xrealloc(r->tokens, (r->ntokens + 1) * sizeof(*r->tokens));
        t = &r->tokens[r->ntokens++];
        t->scope = cs_xstrdup(scope);
        t->token = NULL;
    }
    free(t->token);
    t->token = cs_xstrdup(tok);
    /* A margin for the requests in flight and clock skew. */
    t->expires = cs_now() + (double) ttl - 10;
    json_decref(j);
    return 0;
}

static int
token_error(cs_registry *r, const reg_resp *resp, cs_error **err)
{
    if (resp->status == 401 || resp->status == 403) {
        if (!r->cred.user)
            return cs_err(err, CS_EINVAL, 0, "%s: authentication required: run `cstore login %s`",
                          r->domain, r->domain);
        return cs_err(err, CS_EINVAL, 0, "%s: unauthorized: incorrect username or password",
                      r->domain);
    }
    return cs_err(err, CS_EIO, 0, "%s: token server '%s': HTTP %ld", r->domain, r->realm,
                  resp->status);
}

static int
fetch_token(cs_registry *r, const char *scope, cs_error **err)
{
    int rc = load_cred(r, err);
    if (rc < 0)
        return rc;
    const char *refresh = r->cred.identity_token ? r->cred.secret : r->refresh;
    cs_autofree char *svc = reg_urlenc(r->service ? r->service : "");
    cs_autofree char *sp = scope_params(scope, refresh != NULL);
    cs_autofree char *url = NULL, *body = NULL, *auth = NULL;
    const char *form[] = { "Content-Type: application/x-www-form-urlencoded", NULL };
    reg_req q = { .method = "GET", .max_body = 1 << 20, .what = r->domain };
    if (refresh) {
        cs_autofree char *rt = reg_urlenc(refresh);
        url = cs_xstrdup(r->realm);
        body = cs_xasprintf("grant_type=refresh_token&client_id=cstore&service=%s%s"
                            "&refresh_token=%s",
                            svc, sp, rt);
        q.method = "POST";
        q.body = body;
        q.body_len = strlen(body);
        q.headers = form;
    } else {
        url =
            cs_xasprintf("%s%sservice=%s%s", r->realm, strchr(r->realm, '?') ? "&" : "?", svc, sp);
        if (r->cred.user) {
            cs_autofree char *up = cs_xasprintf("%s:%s", r->cred.user, r->cred.secret);
            cs_autofree char *b64 = reg_base64(up, strlen(up));
            auth = cs_xasprintf("Authorization: Basic %s", b64);
            explicit_bzero(up, strlen(up));
        }
    }
    q.url = url;
    reg_resp resp = { 0 };
    rc = reg_exchange(r, q.method, url, auth, &q, &resp, err);
    if (auth)
        explicit_bzero(auth, strlen(auth));
    if (body)
        explicit_bzero(body, strlen(body));
    if (rc == 0 && resp.status != 200)
        rc = token_error(r, &resp, err);
    if (rc == 0)
        rc = take_token(r, scope, &resp, err);
    reg_resp_release(&resp);
    return rc;
}

int
reg_auth_header(cs_registry *r, const char *scope, char **out, cs_error **err)
{
    *out = NULL;
    if (r->auth == REG_AUTH_BASIC) {
        int rc = load_cred(r, err);
        if (rc < 0 || !r->cred.user || r->cred.identity_token)
            return rc;
        cs_autofree char *up = cs_xasprintf("%s:%s", r->cred.user, r->cred.secret);
        cs_autofree char *b64 = reg_base64(up, strlen(up));
        explicit_bzero(up, strlen(up));
        *out = cs_xasprintf("Authorization: Basic %s", b64);
        return 0;
    }
    if (r->auth != REG_AUTH_BEARER)
        return 0;
    reg_token *t = find_token(r, scope);
    if (!t || cs_now() >= t->expires) {
        int rc = fetch_token(r, scope, err);
        if (rc < 0)
            return rc;
        t = find_token(r, scope);
    }
    *out = cs_xasprintf("Authorization: Bearer %s", t->token);
    return 0;
}

int
reg_auth_challenge(cs_registry *r, const char *www_auth, const char *scope, bool had_auth,
                   cs_error **err)
{
    cs_reg_challenge ch;
    int rc = cs_reg_challenge_parse(www_auth, &ch, err);
    if (rc < 0)
        return cs_err_wrap(err, "%s", r->domain);
    if (!strcasecmp(ch.scheme, "basic")) {
        r->auth = REG_AUTH_BASIC;
    } else if (!strcasecmp(ch.scheme, "bearer") && ch.realm) {
        r->auth = REG_AUTH_BEARER;
        free(r->realm);
        free(r->service);
        r->realm = cs_steal(&ch.realm);
        r->service = cs_steal(&ch.service);
        /* The token we sent was refused (expired early, revoked, or short of
         * scope): the next request fetches a fresh one. */
        reg_token *t = had_auth ? find_token(r, scope) : NULL;
        if (t)
            t->expires = 0;
    } else {
        rc = cs_err(err, CS_EUNSUPPORTED, 0, "%s: unsupported authentication scheme '%s'",
                    r->domain, ch.scheme);
    }
    cs_reg_challenge_release(&ch);
    return rc;
}
