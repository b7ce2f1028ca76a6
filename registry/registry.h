/* registry.h - an OCI distribution (registry v2) client on libcurl.
 *
 * One cs_registry talks to one repository of one registry with a fixed set
 * of actions (pull, or pull+push). It finds the credentials the user set up
 * for docker or podman (regauth.h), answers Basic and Bearer challenges,
 * caches tokens per scope until they expire, reuses connections (a curl
 * share), follows redirects without ever sending Authorization to another
 * host, and retries transient failures (connection reset, 5xx, 429 with
 * Retry-After) with backoff.
 *
 * Thread rules: every call on one cs_registry may run from several threads
 * at once (pull streams up to 4 blobs in parallel); the auth state is under
 * a mutex. cs_registry_open/free belong to the owner. Callbacks run in the
 * calling thread.
 *
 * Secrets: no message this module makes (errors, warnings) contains a
 * password, token or Authorization header.
 *
 * Errors (negative cs_code, *err one line, registry's name in it):
 *   CS_ENOTFOUND  "manifest unknown", "blob unknown" (the registry's error
 *                 JSON code/message), 404
 *   CS_EINVAL     401/403: without credentials the message names
 *                 `cstore login REGISTRY`; with them "...: unauthorized:
 *                 incorrect username or password" (or the registry's words);
 *                 a redirect to another host that asks for credentials
 *   CS_EIO        "registry 'X' unreachable", TLS failures, other HTTP
 *                 errors, transient failures still there after 6 attempts
 *                 (about 8 s of backoff, or Retry-After up to 60 s each)
 *   CS_EPARSE     a malformed config.json / auth.json (named, never quoted),
 *                 a token server answer without a token
 *   CS_ECORRUPT   a manifest fetched by digest whose bytes do not match it
 *   CS_ECANCELED  the cs_cancel given in the options was triggered
 */
#ifndef CSREG_REGISTRY_H
#define CSREG_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "cstore/cancel.h"
#include "cstore/error.h"
#include "regref.h"

typedef struct cs_registry cs_registry;

/* Connection options of one registry (the --tls-verify / --cert-dir of the
 * CLI). cert_dir is read by cs_registry_open; cancel and user_agent are
 * borrowed for the life of the cs_registry. */
typedef struct cs_reg_opts {
    bool insecure;           /* --tls-verify=false: plain http allowed for any host, and
                                https certificates are not verified */
    const char *cert_dir;    /* --cert-dir DIR: *.crt (CAs), client.cert, client.key;
                                NULL: the certs.d dirs (see cs_reg_certs_d_roots) */
    const cs_cancel *cancel; /* may be NULL; checked between retries and while streaming */
    const char *user_agent;  /* NULL: "cstore" */
} cs_reg_opts;

/* Actions asked for in a token scope ("repository:REPO:pull,push"). */
enum {
    CS_REG_PULL = 1,
    CS_REG_PUSH = 2,
};

/* A client for repository repo ("library/golang") of registry domain (the
 * cs_reg_ref domain: "docker.io", "127.0.0.1:5000"; docker.io is reached as
 * registry-1.docker.io). Connects lazily: the first call probes /v2/ and
 * picks https, or http where cs_reg_http_allowed says so and https does not
 * answer (a certificate that fails verification never falls back); on
 * loopback plain http is tried first and kept when /v2/ answers 200 or 401.
 * repo "" (login): only ping works, with tokens asked for without a scope.
 * CS_EUNSUPPORTED when libcurl cannot be loaded. */
int cs_registry_open(const char *domain, const char *repo, unsigned actions,
                     const cs_reg_opts *opts, cs_registry **out, cs_error **err);
void cs_registry_free(cs_registry *r);
CS_DEFINE_FREEP(cs_registry, cs_registry_free)

/* Uses user/secret (copied) instead of the configured credentials: what
 * `cstore login` checks before it stores them. Call before the first
 * request. */
void cs_registry_set_credentials(cs_registry *r, const char *user, const char *secret);

/* GET /v2/ and authenticate (answering the challenge with the configured
 * credentials, or anonymously). 0 when the registry accepts us for the
 * client's actions. What `cstore login` verifies with. */
int cs_registry_ping(cs_registry *r, cs_error **err);

/* The four manifest media types, sent in every manifest Accept header. */
#define CS_MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define CS_MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define CS_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define CS_MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"

/* A manifest as the registry sent it. */
typedef struct cs_reg_manifest {
    char *body; /* the bytes, NUL-terminated (not counted in len) */
    size_t len;
    char *media_type; /* Content-Type, parameters dropped ("" when none) */
    char digest[72];  /* "sha256:<hex>" of body (computed, not trusted from the server) */
} cs_reg_manifest;
void cs_reg_manifest_release(cs_reg_manifest *m);

/* GET /v2/REPO/manifests/REF, ref a tag or "sha256:..." digest. With a
 * digest ref the body is verified against it (CS_ECORRUPT). No check of the
 * media type or of the JSON: the caller parses. Bodies over 4 MiB are
 * refused (CS_EINVAL). */
int cs_registry_get_manifest(cs_registry *r, const char *ref, cs_reg_manifest *out, cs_error **err);

/* HEAD /v2/REPO/manifests/REF: *exists false on 404 (returns 0). When it
 * exists, digest gets Docker-Content-Digest ("" when absent), *size the
 * Content-Length, *media_type (may be NULL: not wanted; caller frees). */
int cs_registry_head_manifest(cs_registry *r, const char *ref, bool *exists, char digest[72],
                              int64_t *size, char **media_type, cs_error **err);

/* PUT /v2/REPO/manifests/REF (tag or digest) with Content-Type media_type.
 * digest_out (may be NULL) gets sha256 of body. */
int cs_registry_put_manifest(cs_registry *r, const char *ref, const char *media_type,
                             const void *body, size_t len, char digest_out[72], cs_error **err);

/* The blob sink: called with consecutive bytes of the blob from the offset
 * asked for; returns 0, or a negative cs_code (with *err set) to stop the
 * transfer, which then returns that code. */
typedef int (*cs_reg_sink_fn)(void *ctx, const void *buf, size_t n, cs_error **err);

/* GET /v2/REPO/blobs/DIGEST streamed to sink, starting at byte offset
 * (Range). Verifies nothing (the caller hashes). A transfer that breaks is
 * retried with backoff and resumed where it stopped: with Range when the
 * registry (or the storage it redirects to) honours it, otherwise the bytes
 * already delivered are read again and skipped, so the sink never sees a
 * byte twice. *total (may be NULL) gets the blob's size when known, else -1. */
int cs_registry_get_blob(cs_registry *r, const char *digest, int64_t offset, cs_reg_sink_fn sink,
                         void *ctx, int64_t *total, cs_error **err);

/* GET of the len bytes at offset of blob DIGEST (len > 0), with a bounded
 * `Range: bytes=OFF-END`: a 206 must carry a Content-Range starting at the
 * byte asked for and ending within the range (else CS_EIO, one line); a
 * registry or storage that answers 200 with the whole blob still works: the
 * bytes before offset are skipped and the transfer is stopped after the
 * last one wanted. The sink sees exactly len bytes, once each (a broken
 * transfer is retried and resumed as above); a blob that ends before the
 * range does is CS_EIO. Verifies nothing (the caller hashes). Thread-safe
 * like every call: fetches of several ranges may run at once. */
int cs_registry_get_blob_range(cs_registry *r, const char *digest, int64_t offset, int64_t len,
                               cs_reg_sink_fn sink, void *ctx, cs_error **err);

/* HEAD /v2/REPO/blobs/DIGEST: *exists false on 404 (returns 0); *size (may
 * be NULL) the Content-Length. */
int cs_registry_head_blob(cs_registry *r, const char *digest, bool *exists, int64_t *size,
                          cs_error **err);

/* POST /v2/REPO/blobs/uploads/?mount=DIGEST&from=FROM_REPO (same registry):
 * *mounted true on 201. When the registry starts an upload instead (202:
 * blob unknown there, or mounting not allowed), that upload is cancelled and
 * *mounted is false (returns 0): the caller uploads. Needs CS_REG_PUSH; the
 * token asked for also covers pull on from_repo. */
int cs_registry_mount_blob(cs_registry *r, const char *digest, const char *from_repo, bool *mounted,
                           cs_error **err);

/* DELETE /v2/REPO/blobs/DIGEST: *deleted true when the registry removed it
 * (202), false when it had no such blob (404, returns 0); -CS_EUNSUPPORTED
 * when it refuses deletes (405 or UNSUPPORTED: distribution without
 * storage.delete.enabled). Asks for the delete action on the repository. */
int cs_registry_delete_blob(cs_registry *r, const char *digest, bool *deleted, cs_error **err);
/* GET /v2/REPO/tags/list: the repository's tags appended to out (none for
 * a repository the registry does not know; one page: no ?n= paging). */
struct cs_strv;
int cs_registry_list_tags(cs_registry *r, struct cs_strv *out, cs_error **err);

/* The upload source: fills buf with up to n next bytes of the blob; returns
 * the count (0 at the end) or a negative cs_code with *err set. Read once,
 * front to back: no rewinding is asked for. */
typedef ssize_t (*cs_reg_source_fn)(void *ctx, void *buf, size_t n, cs_error **err);

/* Uploads a blob of size bytes (-1: unknown) and digest "sha256:..." read
 * from source. Up to CS_REG_CHUNK bytes: one POST and a monolithic PUT
 * ?digest=; bigger: POST, PATCH chunks of CS_REG_CHUNK bytes (each held in
 * memory so a transient failure can resend it), final PUT ?digest=. The
 * registry checks the digest; a mismatch is CS_ECORRUPT. */
#define CS_REG_CHUNK (16u << 20)
int cs_registry_put_blob(cs_registry *r, const char *digest, int64_t size, cs_reg_source_fn source,
                         void *ctx, cs_error **err);

/* Where a blob upload is counted: bytes the client sent in blob bodies
 * since open (PATCH + PUT), and how many blob uploads it completed. For
 * progress and for tests; relaxed atomics. */
void cs_registry_stats(cs_registry *r, uint64_t *bytes_sent, uint64_t *uploads);

/* ---- connection policy (exposed for tests and for the CLI) ---- */

/* May a registry host[:port] be reached over plain http? True for
 * "localhost", 127.0.0.0/8 and ::1 (as dockerd: "[::1]:5000" form too), or
 * for any host when insecure (--tls-verify=false). Pure function. */
bool cs_reg_http_allowed(const char *hostport, bool insecure);

/* The certs.d roots searched for HOST:PORT/ (ca.crt, *.crt, client.cert,
 * client.key) when no --cert-dir is given: /etc/docker/certs.d and
 * /etc/containers/certs.d. CSTORE_CERTS_D (a ':'-separated list of
 * directories) replaces them: it is for tests, which cannot write /etc, and
 * only adds CAs the caller put there. NULL-terminated; caller frees with
 * cs_strv_free. */
char **cs_reg_certs_d_roots(void);

#endif
