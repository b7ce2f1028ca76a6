/* regref.h - image references as docker writes them.
 *
 * "golang", "golang:1.22", "ghcr.io/o/r:t", "name@sha256:<hex>",
 * "name:tag@sha256:<hex>", "127.0.0.1:5000/x/y:z". The name part is checked
 * and normalized by store's cs_ref_normalize (one parser); this adds the
 * digest and the split into registry, repository and tag.
 * Thread rules: none (pure functions).
 */
#ifndef CSREG_REF_H
#define CSREG_REF_H

#include "cstore/error.h"

typedef struct cs_reg_ref {
    char *domain; /* "docker.io", "ghcr.io", "127.0.0.1:5000": the key of credentials */
    char *host;   /* where to connect: domain, but "registry-1.docker.io" for docker.io */
    char *repo;   /* "library/golang", "o/r", "x/y" */
    char *tag;    /* "1.22"; "latest" when neither tag nor digest was given; NULL when only a
                     digest was */
    char *digest; /* "sha256:<64 hex>", or NULL */
    char *name;   /* the local tag name cs_ref_normalize gives: "docker.io/library/golang:1.22"
                     ("...:latest" for a digest-only reference) */
} cs_reg_ref;

/* Parses s into out (all strings owned by out). CS_EINVAL, one line naming
 * s, on a malformed reference or digest (only sha256 with 64 lowercase hex
 * digits is accepted). */
int cs_reg_ref_parse(const char *s, cs_reg_ref *out, cs_error **err);
void cs_reg_ref_release(cs_reg_ref *r);

/* "tag" or "digest" of r to ask the registry for: the digest when there is
 * one (it wins over a tag, as in docker), else the tag. Borrowed from r. */
const char *cs_reg_ref_object(const cs_reg_ref *r);

/* A registry name as a user gives it to login/logout ("docker.io",
 * "https://index.docker.io/v1/", "localhost:5000", "ghcr.io/"): the domain
 * it stands for, as in cs_reg_ref. Caller frees. CS_EINVAL when empty. */
int cs_reg_domain_normalize(const char *s, char **out, cs_error **err);

#endif
