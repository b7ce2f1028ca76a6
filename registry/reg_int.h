/* reg_int.h - the registry client's insides, shared by its .c files. */
#ifndef CSREG_REG_INT_H
#define CSREG_REG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include "curl_dl.h"
#include "cstore/util.h"
#include "regauth.h"
#include "registry.h"

enum { REG_AUTH_UNKNOWN, REG_AUTH_NONE, REG_AUTH_BASIC, REG_AUTH_BEARER };

typedef struct reg_token {
    char *scope;
    char *token;
    double expires; /* cs_now() */
} reg_token;

struct cs_registry {
    const cs_curl_api *cu;
    char *domain, *host, *repo;
    char *scope; /* "repository:REPO:pull[,push]" */
    unsigned actions;
    bool insecure;
    const cs_cancel *cancel;
    char *user_agent;
    /* TLS material, read at open from --cert-dir or certs.d. */
    char *ca_pem; /* concatenated *.crt, or NULL */
    size_t ca_len;
    char *client_cert, *client_key;
    /* Connection reuse between threads. */
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
    /* Under mu: where and how to talk. */
    pthread_mutex_t mu;
    char *base; /* "https://host[:port]" once probed */
    int auth;   /* REG_AUTH_* */
    char *realm, *service;
    bool cred_loaded;
    cs_reg_cred cred;
    char *refresh; /* refresh token an OAuth answer gave */
    reg_token *tokens;
    size_t ntokens;
    _Atomic uint64_t bytes_sent, uploads;
};

/* One response's head (of the last response when redirected) and body. */
typedef struct reg_resp {
    long status;
    char *location, *content_type, *digest, *www_auth, *range, *content_range;
    int64_t content_length; /* -1 when absent */
    double retry_after;     /* seconds, -1 when absent */
    cs_buf body;            /* non-2xx bodies (error JSON), and 2xx ones when buffered */
    bool transient;         /* the failure is worth retrying */
    int curl_rc;            /* CURLcode of a failed exchange, else 0 */
    char *foreign;          /* the origin a redirect led to when not the registry's, else NULL */
    int64_t delivered;      /* 2xx body bytes given to on_data */
} reg_resp;
void reg_resp_release(reg_resp *resp);
void reg_resp_reset(reg_resp *resp);

typedef int (*reg_data_fn)(void *ctx, const void *p, size_t n, reg_resp *resp, cs_error **err);

typedef struct reg_req {
    const char *method;         /* GET HEAD PUT POST PATCH DELETE */
    const char *url;            /* absolute, or a path ("/v2/...") on the registry */
    const char *scope;          /* NULL: the client's scope */
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated, or NULL */
    const void *body;
    size_t body_len;
    size_t max_body; /* 2xx bodies kept in resp->body up to this (over: CS_EINVAL); 0: dropped */
    reg_data_fn on_data; /* or: 2xx bodies streamed here */
    void *ctx;
    bool once;        /* no retry of transient failures here (the caller retries) */
    const char *what; /* for messages: "REGISTRY/REPO:TAG" */
} reg_req;

/* One request with authentication (challenge answered once), redirects
 * followed (Authorization only to the registry itself) and, unless once,
 * transient failures retried with backoff. 0 for any HTTP answer: the
 * caller judges resp->status (reg_http_error). */
int reg_do(cs_registry *r, const reg_req *q, reg_resp *resp, cs_error **err);

/* The one-line error for a non-2xx answer to q (see registry.h). */
int reg_http_error(cs_registry *r, const reg_req *q, const reg_resp *resp, cs_error **err);

/* Hands e to the caller's *err (when it wants one and has none yet), else
 * frees it. */
static inline void
reg_pass_error(cs_error **err, cs_error *e)
{
    if (err && !*err)
        *err = e;
    else
        cs_error_free(e);
}

/* Sleeps before attempt n (1, 2, ...): 0.25 s doubling to 8 s, or Retry-After
 * (capped at 60 s). -CS_ECANCELED when the cancel triggers meanwhile. */
int reg_backoff(cs_registry *r, int attempt, double retry_after, cs_error **err);
#define REG_ATTEMPTS 6

/* Auth (auth.c), under r->mu: the Authorization header line for scope, or
 * NULL when none is needed yet; and answering a 401's challenge. */
int reg_auth_header(cs_registry *r, const char *scope, char **out, cs_error **err);
int reg_auth_challenge(cs_registry *r, const char *www_auth, const char *scope, bool had_auth,
                       cs_error **err);

/* Picks r->base once (client.c): https, or http where allowed and https
 * does not answer; the probe's challenge primes the auth state. */
int reg_connect(cs_registry *r, cs_error **err);

/* blob.c, for upload.c: POST /v2/REPO/blobs/uploads/[QUERY] (202 or 201
 * in resp, else the error), and an upload's Location made absolute
 * (registries may answer with a path; NULL with *err when absent). */
int start_upload(cs_registry *r, const char *query, const char *scope, const char *what,
                 reg_resp *resp, cs_error **err);
char *upload_url(cs_registry *r, const reg_resp *resp, const char *what, cs_error **err);

/* One bare exchange (http.c): no auth logic, no redirect following. */
int reg_exchange(cs_registry *r, const char *method, const char *url, const char *auth,
                 const reg_req *q, reg_resp *resp, cs_error **err);
/* Percent-encodes s (unreserved characters kept). Caller frees. */
char *reg_urlenc(const char *s);
/* Base64 of p. Caller frees. */
char *reg_base64(const void *p, size_t n);
/* Decodes base64 s; NULL when it is not base64. Caller frees (NUL-terminated). */
char *reg_unbase64(const char *s, size_t *n);

#endif
