/* regtool.c - drives the registry client (registry/) one call at a time, for
 * the integration tests (t_registry_*.sh); not installed.
 *
 *   regtool [--tls-verify=false] [--cert-dir DIR] VERB ARGS...
 *     ping DOMAIN                        GET /v2/ with auth
 *     manifest REF                       "DIGEST MEDIATYPE" line, then the body
 *     head-manifest REF                  "exists DIGEST SIZE MEDIATYPE" or "missing"
 *     blob REF DIGEST [OFFSET]           the blob's bytes on stdout
 *     parallel REF DIGEST N              N threads fetch the blob; one sha256 hex a line
 *     head-blob REF DIGEST               "exists SIZE" or "missing"
 *     mount REF DIGEST FROM_REPO         "mounted" or "not mounted"
 *     put-blob REF DIGEST FILE|- [SIZE]  upload (SIZE -1: unknown); "uploaded N bytes"
 *     put-manifest REF MEDIATYPE FILE    the manifest digest
 * REF names the repository (its tag or digest is the object for manifest
 * verbs). Errors: one line on stderr, exit 1.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cstore/util.h"
#include "registry.h"

static cs_reg_opts opts;

static int
out_sink(void *ctx, const void *buf, size_t n, cs_error **err)
{
    (void) ctx;
    if (cs_write_all(1, buf, n) < 0)
        return cs_err(err, CS_EIO, 0, "stdout");
    return 0;
}

static int
hash_sink(void *ctx, const void *buf, size_t n, cs_error **err)
{
    (void) err;
    cs_sha256_update(ctx, buf, n);
    return 0;
}

static ssize_t
fd_source(void *ctx, void *buf, size_t n, cs_error **err)
{
    ssize_t k = cs_read_full(*(int *) ctx, buf, n);
    if (k < 0)
        return cs_err(err, CS_EIO, 0, "read");
    return k;
}

typedef struct job {
    cs_registry *r;
    const char *digest;
    char hex[CS_DIGEST_HEX];
    cs_error *err;
} job;

static void *
fetch_job(void *p)
{
    job *j = p;
    cs_sha256_ctx *h = cs_sha256_new();
    if (cs_registry_get_blob(j->r, j->digest, 0, hash_sink, h, NULL, &j->err) == 0) {
        cs_digest d;
        cs_sha256_final(h, &d);
        cs_digest_hex(&d, j->hex);
    }
    cs_sha256_free(h);
    return NULL;
}

static int
parallel(cs_registry *r, const char *digest, int n, cs_error **err)
{
    job *jobs = cs_xcalloc((size_t) n, sizeof(*jobs));
    pthread_t *t = cs_xcalloc((size_t) n, sizeof(*t));
    for (int i = 0; i < n; i++) {
        jobs[i] = (job){ .r = r, .digest = digest };
        pthread_create(&t[i], NULL, fetch_job, &jobs[i]);
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        if (jobs[i].err && rc == 0) {
            rc = -(int) jobs[i].err->code;
            *err = jobs[i].err;
        } else if (jobs[i].err) {
            cs_error_free(jobs[i].err);
        } else {
            printf("%s\n", jobs[i].hex);
        }
    }
    free(jobs);
    free(t);
    return rc;
}

static int
verb_manifest(cs_registry *r, const cs_reg_ref *ref, char **a, cs_error **err)
{
    const char *v = a[0];
    if (!strcmp(v, "manifest")) {
        cs_reg_manifest m;
        int rc = cs_registry_get_manifest(r, cs_reg_ref_object(ref), &m, err);
        if (rc == 0) {
            printf("%s %s\n", m.digest, m.media_type);
            fwrite(m.body, 1, m.len, stdout);
            cs_reg_manifest_release(&m);
        }
        return rc;
    }
    if (!strcmp(v, "head-manifest")) {
        bool ex;
        char d[72];
        int64_t size;
        cs_autofree char *mt = NULL;
        int rc = cs_registry_head_manifest(r, cs_reg_ref_object(ref), &ex, d, &size, &mt, err);
        if (rc == 0 && ex)
            printf("exists %s %" PRId64 " %s\n", d, size, mt);
        else if (rc == 0)
            printf("missing\n");
        return rc;
    }
    cs_buf b;
    cs_buf_init(&b);
    int rc = cs_read_file(a[2], 4 << 20, &b, err);
    char d[72];
    if (rc == 0)
        rc = cs_registry_put_manifest(r, cs_reg_ref_object(ref), a[1], b.data, b.len, d, err);
    if (rc == 0)
        printf("%s\n", d);
    cs_buf_release(&b);
    return rc;
}

static int
verb_blob(cs_registry *r, char **a, int n, cs_error **err)
{
    const char *v = a[0];
    int rc;
    if (!strcmp(v, "blob"))
        return cs_registry_get_blob(r, a[1], n > 2 ? strtoll(a[2], NULL, 10) : 0, out_sink, NULL,
                                    NULL, err);
    if (!strcmp(v, "parallel") && n > 2)
        return parallel(r, a[1], atoi(a[2]), err);
    if (!strcmp(v, "head-blob")) {
        bool ex;
        int64_t size = -1;
        rc = cs_registry_head_blob(r, a[1], &ex, &size, err);
        if (rc == 0)
            ex ? printf("exists %" PRId64 "\n", size) : printf("missing\n");
        return rc;
    }
    if (!strcmp(v, "mount") && n > 2) {
        bool m;
        rc = cs_registry_mount_blob(r, a[1], a[2], &m, err);
        if (rc == 0)
            printf("%s\n", m ? "mounted" : "not mounted");
        return rc;
    }
    if (!strcmp(v, "put-blob") && n > 2) {
        int fd = strcmp(a[2], "-") ? open(a[2], O_RDONLY | O_CLOEXEC) : 0;
        if (fd < 0)
            return cs_err(err, CS_EIO, 0, "%s", a[2]);
        int64_t size = n > 3 ? strtoll(a[3], NULL, 10) : -1;
        uint64_t sent = 0;
        rc = cs_registry_put_blob(r, a[1], size, fd_source, &fd, err);
        cs_registry_stats(r, &sent, NULL);
        if (rc == 0)
            printf("uploaded %" PRIu64 " bytes\n", sent);
        if (fd > 0)
            close(fd);
        return rc;
    }
    return cs_err(err, CS_EINVAL, 0, "usage: see regtool.c");
}

int
main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        if (!strcmp(argv[i], "--tls-verify=false"))
            opts.insecure = true;
        else if (!strcmp(argv[i], "--cert-dir") && i + 1 < argc)
            opts.cert_dir = argv[++i];
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: regtool [--tls-verify=false] [--cert-dir DIR] VERB ARGS...\n");
        return 2;
    }
    char **a = argv + i;
    int n = argc - i - 1;
    cs_error *err = NULL;
    cs_registry *r = NULL;
    cs_reg_ref ref = { 0 };
    int rc;
    bool push = !strncmp(a[0], "put-", 4) || !strcmp(a[0], "mount");
    if (!strcmp(a[0], "ping")) {
        rc = cs_registry_open(a[1], "", CS_REG_PULL, &opts, &r, &err);
        if (rc == 0)
            rc = cs_registry_ping(r, &err);
    } else if ((rc = cs_reg_ref_parse(a[1], &ref, &err)) == 0
               && (rc = cs_registry_open(ref.domain, ref.repo,
                                         push ? CS_REG_PULL | CS_REG_PUSH : CS_REG_PULL, &opts, &r,
                                         &err))
                      == 0) {
        a[1] = a[0];
        if (strstr(a[0], "manifest"))
            rc = verb_manifest(r, &ref, a + 1, &err);
        else
            rc = verb_blob(r, a + 1, n, &err);
    }
    fflush(stdout);
    if (rc < 0)
        fprintf(stderr, "regtool: %s\n", err ? err->msg : "failed");
    cs_error_free(err);
    cs_registry_free(r);
    cs_reg_ref_release(&ref);
    return rc < 0 ? 1 : 0;
}
