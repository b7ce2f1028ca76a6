/* cache_registry.c - `--cache-to/--cache-from type=registry,ref=REF`: the
 * cache of cstore/rcache.h kept in a registry through a mirror dir in the
 * store root (ROOT/rcache/<sha256(ref) prefix>): the manifest and index
 * blobs are synced down into it, an export is written into it and its
 * blobs pushed (HEAD first: a blob the registry has is not sent), and the
 * packs stay in the registry: chunks are read from them with HTTP Range
 * requests (cs_rcache_set_remote). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "build_cache.h"
#include "registry.h"

#define REF_FILE      "registry-ref"
#define MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"

/* One client per process, for the ref the hooks ask about. */
static pthread_mutex_t client_mu = PTHREAD_MUTEX_INITIALIZER;
static char *client_ref;
static cs_registry *client;
static cs_reg_ref client_rr;

static int
open_client(const char *ref, cs_registry **out, const cs_reg_ref **rr, cs_error **err)
{
    pthread_mutex_lock(&client_mu);
    int r = 0;
    if (!client_ref || strcmp(client_ref, ref)) {
        cs_registry_free(client);
        cs_reg_ref_release(&client_rr);
        free(client_ref);
        client = NULL;
        client_ref = NULL;
        cs_reg_opts o = { 0 };
        r = cs_reg_ref_parse(ref, &client_rr, err);
        if (r >= 0)
            r = cs_registry_open(client_rr.domain, client_rr.repo, CS_REG_PULL | CS_REG_PUSH, &o,
                                 &client, err);
        if (r >= 0)
            client_ref = cs_xstrdup(ref);
    }
    *out = client;
    *rr = &client_rr;
    pthread_mutex_unlock(&client_mu);
    return r < 0 ? r : 0;
}

/* The registry a mirror dir stands for. */
static int
dir_client(const char *dir, cs_registry **out, cs_error **err)
{
    cs_autofree char *path = cs_path_join(dir, REF_FILE);
    cs_buf b;
    cs_buf_init(&b);
    int r = cs_read_file(path, 4096, &b, err);
    if (r >= 0) {
        cs_buf_append(&b, "", 1);
        const cs_reg_ref *rr;
        r = open_client((const char *) b.data, out, &rr, err);
    }
    cs_buf_release(&b);
    return r;
}

static int
remote_has(const char *dir, const cs_digest *d, cs_error **err)
{
    cs_registry *r;
    char ds[CS_DIGEST_STR];
    bool exists = false;
    cs_digest_str(d, ds);
    int rc = dir_client(dir, &r, err);
    if (rc >= 0)
        rc = cs_registry_head_blob(r, ds, &exists, NULL, err);
    return rc < 0 ? rc : exists;
}

typedef struct range_sink {
    uint8_t *buf;
    uint64_t got, want;
} range_sink;

/* Takes what the range needs, then stops the transfer (-CS_EEXIST). */
static int
range_take(void *ctx, const void *p, size_t n, cs_error **err)
{
    range_sink *k = ctx;
    size_t take = n < k->want - k->got ? n : (size_t) (k->want - k->got);
    memcpy(k->buf + k->got, p, take);
    k->got += take;
    if (k->got == k->want)
        return cs_err(err, CS_EEXIST, 0, "range complete");
    return 0;
}

static int
remote_read(const char *dir, const cs_digest *d, uint64_t off, uint64_t len, void *buf,
            cs_error **err)
{
    cs_registry *r;
    char ds[CS_DIGEST_STR];
    cs_digest_str(d, ds);
    range_sink k = { buf, 0, len };
    int rc = dir_client(dir, &r, err);
    if (rc < 0 || len == 0)
        return rc;
    cs_error *tmp = NULL;
    rc = cs_registry_get_blob(r, ds, (int64_t) off, range_take, &k, NULL, &tmp);
    if (k.got == len) {
        cs_error_clear(&tmp);
        return 0;
    }
    if (rc >= 0)
        rc = cs_err(&tmp, CS_ECORRUPT, 0, "pack %s: short", ds);
    if (err && !*err)
        *err = cs_steal(&tmp);
    cs_error_clear(&tmp);
    return rc;
}

void
cache_registry_install(void)
{
    static const cs_rcache_remote hooks = { remote_has, remote_read };
    cs_rcache_set_remote(&hooks);
}

static int
buf_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) err;
    cs_buf_append(ctx, p, n);
    return 0;
}

/* Blob dstr into the mirror unless there, its digest checked. */
static int
pull_blob(cs_registry *r, const char *mirror, const char *dstr, cs_error **err)
{
    cs_digest d, got;
    if (!dstr || !cs_digest_parse(dstr, &d))
        return cs_err(err, CS_ECORRUPT, 0, "cache manifest: bad digest");
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(&d, hex);
    cs_autofree char *path = cs_xasprintf("%s/blobs/sha256/%s", mirror, hex);
    if (access(path, F_OK) == 0)
        return 0;
    cs_buf b;
    cs_buf_init(&b);
    int rc = cs_registry_get_blob(r, dstr, 0, buf_sink, &b, NULL, err);
    cs_sha256(b.data, b.len, &got);
    if (rc >= 0 && !cs_digest_eq(&d, &got))
        rc = cs_err(err, CS_ECORRUPT, 0, "cache blob %s: digest mismatch", dstr);
    if (rc >= 0)
        rc = cs_write_file_atomic(path, b.data, b.len, err);
    cs_buf_release(&b);
    return rc;
}

/* The mirror's index.json naming manifest m, as rcache's layout has it. */
static int
write_index(const char *mirror, const cs_reg_manifest *m, cs_error **err)
{
    json_t *j =
        json_pack("{s:i, s:[{s:s, s:s, s:I, s:{s:s}}]}", "schemaVersion", 2, "manifests",
                  "mediaType", MANIFEST_TYPE, "digest", m->digest, "size", (json_int_t) m->len,
                  "annotations", "org.opencontainers.image.ref.name", "cstore-cache");
    cs_autofree char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    cs_autofree char *path = cs_path_join(mirror, "index.json");
    return cs_write_file_atomic(path, s, strlen(s), err);
}

/* The registry's manifest and index blobs into the mirror (not the packs).
 * -CS_ENOTFOUND when the registry has no cache under the ref. */
static int
sync_down(cs_registry *r, const cs_reg_ref *rr, const char *mirror, cs_error **err)
{
    cs_reg_manifest m = { 0 };
    int rc = cs_registry_get_manifest(r, cs_reg_ref_object(rr), &m, err);
    json_t *j = rc >= 0 ? json_loadb(m.body, m.len, 0, NULL) : NULL;
    if (rc >= 0 && !j)
        rc = cs_err(err, CS_ECORRUPT, 0, "cache manifest: not JSON");
    cs_autofree char *mpath = cs_xasprintf("%s/blobs/sha256/%s", mirror, m.digest + 7);
    if (rc >= 0)
        rc = cs_write_file_atomic(mpath, m.body, m.len, err);
    if (rc >= 0)
        rc = pull_blob(r, mirror,
                       json_string_value(json_object_get(json_object_get(j, "config"), "digest")),
                       err);
    json_t *l;
    size_t i;
    json_array_foreach(json_object_get(j, "layers"), i, l)
    {
        const char *t = json_string_value(json_object_get(l, "mediaType"));
        if (rc >= 0 && (!t || strcmp(t, CS_RCACHE_PACK_TYPE)))
            rc = pull_blob(r, mirror, json_string_value(json_object_get(l, "digest")), err);
    }
    if (rc >= 0)
        rc = write_index(mirror, &m, err);
    json_decref(j);
    cs_reg_manifest_release(&m);
    return rc;
}

static ssize_t
file_source(void *ctx, void *buf, size_t n, cs_error **err)
{
    ssize_t got = cs_read_full(*(int *) ctx, buf, n);
    if (got < 0)
        return cs_err(err, CS_EIO, errno, "read cache blob");
    return got;
}

/* One blob of the mirror up, unless the registry has it. */
static int
push_blob(cs_registry *r, const char *mirror, const char *dstr, cs_error **err)
{
    bool exists = false;
    int64_t size = -1;
    if (!dstr || strncmp(dstr, "sha256:", 7))
        return cs_err(err, CS_ECORRUPT, 0, "cache manifest: bad digest");
    int rc = cs_registry_head_blob(r, dstr, &exists, NULL, err);
    if (rc < 0 || exists)
        return rc;
    cs_autofree char *path = cs_xasprintf("%s/blobs/sha256/%s", mirror, dstr + 7);
    cs_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0)
        return cs_err(err, CS_ENOTFOUND, errno, "cache blob '%s'", path);
    size = sb.st_size;
    return cs_registry_put_blob(r, dstr, size, file_source, &fd, err);
}

/* The mirror's cache manifest and its blobs up; the manifest last. */
static int
push_up(cs_registry *r, const cs_reg_ref *rr, const char *mirror, cs_error **err)
{
    cs_autofree char *ipath = cs_path_join(mirror, "index.json");
    cs_buf b, mb;
    cs_buf_init(&b);
    cs_buf_init(&mb);
    json_t *ij = NULL, *mj = NULL;
    int rc = cs_read_file(ipath, 1 << 20, &b, err);
    if (rc >= 0 && !(ij = json_loadb((const char *) b.data, b.len, 0, NULL)))
        rc = cs_err(err, CS_ECORRUPT, 0, "%s: not JSON", ipath);
    const char *md = json_string_value(
        json_object_get(json_array_get(json_object_get(ij, "manifests"), 0), "digest"));
    cs_autofree char *mpath = md ? cs_xasprintf("%s/blobs/sha256/%s", mirror, md + 7) : NULL;
    if (rc >= 0 && (!mpath || (rc = cs_read_file(mpath, 4 << 20, &mb, err)) < 0))
        rc = rc < 0 ? rc : cs_err(err, CS_ECORRUPT, 0, "%s: no manifest", ipath);
    if (rc >= 0 && !(mj = json_loadb((const char *) mb.data, mb.len, 0, NULL)))
        rc = cs_err(err, CS_ECORRUPT, 0, "cache manifest: not JSON");
    if (rc >= 0)
        rc = push_blob(r, mirror,
                       json_string_value(json_object_get(json_object_get(mj, "config"), "digest")),
                       err);
    json_t *l;
    size_t i;
    json_array_foreach(json_object_get(mj, "layers"), i, l)
    {
        if (rc >= 0)
            rc = push_blob(r, mirror, json_string_value(json_object_get(l, "digest")), err);
    }
    if (rc >= 0)
        rc = cs_registry_put_manifest(r, cs_reg_ref_object(rr), MANIFEST_TYPE, mb.data, mb.len,
                                      NULL, err);
    json_decref(ij);
    json_decref(mj);
    cs_buf_release(&b);
    cs_buf_release(&mb);
    return rc;
}

/* ROOT/rcache/<16 hex of sha256(ref)>, made, with the ref in REF_FILE. */
static int
mirror_dir(cs_store *s, const char *ref, char **out, cs_error **err)
{
    cs_digest d;
    char hex[CS_DIGEST_HEX];
    cs_sha256(ref, strlen(ref), &d);
    cs_digest_hex(&d, hex);
    hex[16] = 0;
    cs_autofree char *dir = cs_xasprintf("%s/rcache/%s/blobs/sha256/", cs_store_root(s), hex);
    int rc = cs_mkdir_p(dir, 0700, err);
    *out = cs_xasprintf("%s/rcache/%s", cs_store_root(s), hex);
    cs_autofree char *rf = cs_path_join(*out, REF_FILE);
    if (rc >= 0)
        rc = cs_write_file_atomic(rf, ref, strlen(ref), err);
    return rc;
}

int
cache_registry_import(cs_store *s, const char *ref, cs_rcache_stats *st, cs_error **err)
{
    cs_registry *r;
    const cs_reg_ref *rr;
    cs_autofree char *mirror = NULL;
    int rc = mirror_dir(s, ref, &mirror, err);
    if (rc >= 0)
        rc = open_client(ref, &r, &rr, err);
    if (rc >= 0)
        rc = sync_down(r, rr, mirror, err);
    if (rc >= 0)
        rc = cs_rcache_import_local(s, mirror, st, err);
    return rc < 0 ? cs_err_wrap(err, "cache '%s'", ref) : 0;
}

int
cache_registry_export(cs_store *s, const char *ref, const cs_rcache_build *b, cs_rcache_mode mode,
                      cs_rcache_stats *st, uint64_t *sent, uint64_t *uploads, cs_error **err)
{
    cs_registry *r;
    const cs_reg_ref *rr;
    cs_autofree char *mirror = NULL;
    cs_error *tmp = NULL;
    int rc = mirror_dir(s, ref, &mirror, err);
    if (rc >= 0)
        rc = open_client(ref, &r, &rr, err);
    /* What the registry has (other machines' entries) is merged in. */
    if (rc >= 0 && (rc = sync_down(r, rr, mirror, &tmp)) == -CS_ENOTFOUND)
        rc = 0;
    if (rc < 0 && err && !*err)
        *err = cs_steal(&tmp);
    cs_error_clear(&tmp);
    if (rc >= 0)
        rc = cs_rcache_export_local(s, mirror, b, mode, st, err);
    if (rc >= 0)
        rc = push_up(r, rr, mirror, err);
    if (rc >= 0)
        cs_registry_stats(r, sent, uploads);
    return rc < 0 ? cs_err_wrap(err, "cache '%s'", ref) : 0;
}

/* ---- for `cstore cache prune` (cache.c) ---- */

int
cache_registry_pull_index(cs_store *s, const char *ref, cs_registry *r, const cs_reg_ref *rr,
                          char **mirror, cs_error **err)
{
    int rc = mirror_dir(s, ref, mirror, err);
    return rc < 0 ? rc : sync_down(r, rr, *mirror, err);
}

int
cache_registry_push_index(cs_registry *r, const cs_reg_ref *rr, const char *mirror, cs_error **err)
{
    return push_up(r, rr, mirror, err);
}
