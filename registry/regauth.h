/* regauth.h - the credentials docker and podman users have set up, and the
 * challenges registries send.
 *
 * Lookup order for a registry domain (podman's, which reads docker's too):
 *   1. $REGISTRY_AUTH_FILE, else ${XDG_RUNTIME_DIR}/containers/auth.json:
 *      "auths" entry.
 *   2. $DOCKER_CONFIG/config.json (default ~/.docker/config.json):
 *      "credHelpers"[domain] -> docker-credential-NAME get;
 *      "auths"[domain] ("auth": base64 user:password, "identitytoken");
 *      "credsStore" -> docker-credential-NAME get.
 * Keys match with or without a scheme and path ("https://index.docker.io/v1/"
 * is docker.io's key, as docker writes it).
 * Thread rules: none shared; helpers are spawned (fork+exec, JSON on
 * stdin/stdout) in the calling thread.
 */
#ifndef CSREG_AUTH_H
#define CSREG_AUTH_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/error.h"

typedef struct cs_reg_cred {
    char *user;          /* NULL: no credentials */
    char *secret;        /* password, or the identity token when identity_token */
    bool identity_token; /* secret is an OAuth refresh token (user "<token>" from helpers) */
    char *source;        /* where it came from, for messages: "config.json", "helper 'pass'" */
} cs_reg_cred;
/* Wipes the secret before freeing. */
void cs_reg_cred_release(cs_reg_cred *c);

/* Finds credentials for domain (cs_reg_ref domain) by the order above.
 * Nothing found is 0 with c->user NULL. A helper that fails other than with
 * "credentials not found" is CS_EIO; an unreadable or malformed config
 * file is CS_EPARSE naming the file (never its contents). */
int cs_reg_cred_lookup(const char *domain, cs_reg_cred *c, cs_error **err);

/* Stores user/secret for domain where docker would: through the
 * credHelpers entry or credsStore helper when configured, else as an
 * "auths" entry of config.json (written atomically, mode 0600, other keys
 * kept). *where (may be NULL) gets a description for the message. */
int cs_reg_cred_store(const char *domain, const char *user, const char *secret, char **where,
                      cs_error **err);

/* Removes domain's credentials from wherever cs_reg_cred_store puts them
 * and from the auth.json of step 1. CS_ENOTFOUND when there were none. */
int cs_reg_cred_erase(const char *domain, cs_error **err);

/* The path of docker's config.json ($DOCKER_CONFIG/config.json or
 * $HOME/.docker/config.json). Caller frees. */
char *cs_reg_docker_config_path(void);

/* One WWW-Authenticate challenge: scheme "Basic" or "Bearer" (as sent) and
 * its parameters. */
typedef struct cs_reg_challenge {
    char *scheme;
    char *realm;
    char *service;
    char *scope;
    char *error; /* Bearer error="insufficient_scope" etc., or NULL */
} cs_reg_challenge;
void cs_reg_challenge_release(cs_reg_challenge *c);

/* Parses a WWW-Authenticate header value (RFC 7235: scheme then
 * comma-separated key=value / key="quoted \" value"); the first challenge
 * is taken. CS_EPARSE when it has no scheme. */
int cs_reg_challenge_parse(const char *header, cs_reg_challenge *out, cs_error **err);

#endif
