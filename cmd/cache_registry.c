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

#define REF_FILE        "registry-ref"
#define MANIFEST_TYPE   "application/vnd.oci.image.manifest.v1+json"
#define EXPORT_ATTEMPTS 12 /* read-merge-writes of one export when the ref keeps moving */

/* One client per ref, kept for the process's life: fetcher threads of
 * several --cache-from refs use theirs at once. */
#define MAX_CLIENTS 16
typedef struct ref_client {
    char *ref;
    cs_registry *r;
    cs_reg_ref rr;
} ref_client;
static pthread_mutex_t client_mu = PTHREAD_MUTEX_INITIALIZER;
static ref_client clients[MAX_CLIENTS];
static size_t nclients;
static cs_reg_opts client_opts;
static unsigned jitter_seed; /* export's waits: machines started together drift apart */

void
cache_registry_set_opts(const cs_reg_opts *o)
{
    pthread_mutex_lock(&client_mu);
    client_opts = *o;
    pthread_mutex_unlock(&client_mu);
}

static int
open_client(const char *ref, cs_registry **out, const cs_reg_ref **rr, cs_error **err)
{
    pthread_mutex_lock(&client_mu);
    int r = 0;
    size_t i = 0;
    while (i < nclients && strcmp(clients[i].ref, ref))
        i++;
    if (i == MAX_CLIENTS) {
        r = cs_err(err, CS_EINVAL, 0, "cache '%s': more than %d cache refs", ref, MAX_CLIENTS);
    } else if (i == nclients) {
        ref_client *c = &clients[i];
        r = cs_reg_ref_parse(ref, &c->rr, err);
        if (r >= 0)
            r = cs_registry_open(c->rr.domain, c->rr.repo, CS_REG_PULL | CS_REG_PUSH, &client_opts,
                                 &c->r, err);
        if (r >= 0) {
            c->ref = cs_xstrdup(ref);
            nclients++;
        } else {
            cs_reg_ref_release(&c->rr);
        }
    }
    *out = r >= 0 ? clients[i].r : NULL;
    *rr = r >= 0 ? &clients[i].rr : NULL;
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

static int
range_take(void *ctx, const void *p, size_t n, cs_error **err)
{
    range_sink *k = ctx;
    if (n > k->want - k->got)
        return cs_err(err, CS_EIO, 0, "registry sent more than the range asked for");
    memcpy(k->buf + k->got, p, n);
    k->got += n;
    return 0;
}

/* len bytes at off of pack d: one bounded Range request. */
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
    rc = cs_registry_get_blob_range(r, ds, (int64_t) off, (int64_t) len, range_take, &k, err);
    if (rc >= 0 && k.got != len)
        rc = cs_err(err, CS_ECORRUPT, 0, "pack %s: short range", ds);
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

/* The registry's manifest and root index blob into the mirror (not the
 * parts: a read of one the mirror lacks fetches it; not the packs);
 * seen (may be NULL) gets the manifest's digest. -CS_ENOTFOUND when the
 * registry has no cache under the ref. */
static int
sync_down(cs_registry *r, const cs_reg_ref *rr, const char *mirror, char seen[72], cs_error **err)
{
    cs_reg_manifest m = { 0 };
    int rc = cs_registry_get_manifest(r, cs_reg_ref_object(rr), &m, err);
    if (rc >= 0 && seen)
        snprintf(seen, 72, "%s", m.digest);
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
        /* The root only: parts are read where they are needed (rcache_lazy.c). */
        const char *t = json_string_value(json_object_get(l, "mediaType"));
        if (rc >= 0 && (!t || !strcmp(t, CS_RCACHE_INDEX_TYPE)))
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

/* The digest of the manifest the ref names now ("" when none). */
static int
ref_digest(cs_registry *r, const cs_reg_ref *rr, char out[72], cs_error **err)
{
    cs_reg_manifest m = { 0 };
    cs_error *tmp = NULL;
    int rc = cs_registry_get_manifest(r, cs_reg_ref_object(rr), &m, &tmp);
    out[0] = 0;
    if (rc == -CS_ENOTFOUND) {
        cs_error_clear(&tmp);
        return 0;
    }
    if (rc >= 0)
        snprintf(out, 72, "%s", m.digest);
    else if (err && !*err)
        *err = cs_steal(&tmp);
    cs_error_clear(&tmp);
    cs_reg_manifest_release(&m);
    return rc < 0 ? rc : 0;
}

/* Publishes manifest mb unless the ref moved since we read it (seen): 1
 * when it did, before or right after our PUT (merge again); 0 when the ref
 * names ours. Distribution has no If-Match on manifests: the check before
 * the PUT and the one after a short jittered wait narrow the window of a
 * lost update to a PUT landing between another export's check and its
 * own PUT (see ARCHITECTURE.md). */
static int
publish(cs_registry *r, const cs_reg_ref *rr, const char *seen, const cs_buf *mb, cs_error **err)
{
    char now[72], ours[72];
    int rc = ref_digest(r, rr, now, err);
    if (rc < 0 || strcmp(now, seen))
        return rc < 0 ? rc : 1;
    rc = cs_registry_put_manifest(r, cs_reg_ref_object(rr), MANIFEST_TYPE, mb->data, mb->len, ours,
                                  err);
    if (rc < 0)
        return rc;
    usleep(50000 + (useconds_t) (rand_r(&jitter_seed) % 150000));
    rc = ref_digest(r, rr, now, err);
    if (rc < 0)
        return rc;
    return strcmp(now, ours) ? 1 : 0;
}

/* The mirror's cache manifest and its blobs up; the manifest last, through
 * publish: 1 when the ref moved since seen. */
static int
push_up(cs_registry *r, const cs_reg_ref *rr, const char *mirror, const char *seen, cs_error **err)
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
        rc = publish(r, rr, seen, &mb, err);
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

/* The ref's mirror dir and client. */
static int
open_ref(cs_store *s, const char *ref, char **mirror, cs_registry **r, const cs_reg_ref **rr,
         cs_error **err)
{
    int rc = mirror_dir(s, ref, mirror, err);
    return rc < 0 ? rc : open_client(ref, r, rr, err);
}

int
cache_registry_import(cs_store *s, const char *ref, cs_rcache_stats *st, cs_error **err)
{
    cs_registry *r;
    const cs_reg_ref *rr;
    cs_autofree char *mirror = NULL;
    int rc = open_ref(s, ref, &mirror, &r, &rr, err);
    if (rc >= 0)
        rc = sync_down(r, rr, mirror, NULL, err);
    if (rc >= 0)
        rc = cs_rcache_import_local(s, mirror, st, err);
    return rc < 0 ? cs_err_wrap(err, "cache '%s'", ref) : 0;
}

/* One read-merge-write: the ref's cache into the mirror, this build's
 * merged into it, the blobs and the manifest up. 1: the ref moved. */
static int
export_once(cs_store *s, cs_registry *r, const cs_reg_ref *rr, const char *mirror,
            const cs_rcache_build *b, cs_rcache_mode mode, cs_rcache_stats *st, cs_error **err)
{
    char seen[72] = "";
    cs_error *tmp = NULL;
    /* What the registry has (other machines' entries) is merged in. */
    int rc = sync_down(r, rr, mirror, seen, &tmp);
    if (rc == -CS_ENOTFOUND) {
        seen[0] = 0;
        rc = 0;
    }
    if (rc < 0 && err && !*err)
        *err = cs_steal(&tmp);
    cs_error_clear(&tmp);
    if (rc >= 0)
        rc = cs_rcache_export_local(s, mirror, b, mode, st, err);
    if (rc >= 0)
        rc = push_up(r, rr, mirror, seen, err);
    return rc;
}

int
cache_registry_export(cs_store *s, const char *ref, const cs_rcache_build *b, cs_rcache_mode mode,
                      cs_rcache_stats *st, uint64_t *sent, uint64_t *uploads, unsigned *retries,
                      cs_error **err)
{
    cs_registry *r;
    const cs_reg_ref *rr;
    cs_autofree char *mirror = NULL;
    int rc = open_ref(s, ref, &mirror, &r, &rr, err);
    jitter_seed = (unsigned) getpid() ^ (unsigned) (cs_now() * 1e6);
    for (int attempt = 1; rc >= 0; attempt++) {
        if ((rc = export_once(s, r, rr, mirror, b, mode, st, err)) != 1)
            break;
        if (attempt == EXPORT_ATTEMPTS) {
            rc = cs_err(err, CS_EBUSY, 0,
                        "the ref changed under each of %d exports (other machines exporting)",
                        EXPORT_ATTEMPTS);
            break;
        }
        (*retries)++;
        /* Exponential backoff with full jitter: eight machines exporting
         * at once (t_cache_fleet) spread out within a few attempts. */
        unsigned cap = 100000u << (attempt < 5 ? attempt : 5); /* 0.2 .. 3.2 s */
        usleep((useconds_t) (50000 + rand_r(&jitter_seed) % cap));
    }
    if (rc >= 0)
        cs_registry_stats(r, sent, uploads);
    return rc < 0 ? cs_err_wrap(err, "cache '%s'", ref) : 0;
}

/* ---- for `cstore cache prune` (cache.c) ---- */

int
cache_registry_pull_index(cs_store *s, const char *ref, cs_registry *r, const cs_reg_ref *rr,
                          char **mirror, char seen[72], cs_error **err)
{
    int rc = mirror_dir(s, ref, mirror, err);
    return rc < 0 ? rc : sync_down(r, rr, *mirror, seen, err);
}

int
cache_registry_push_index(cs_registry *r, const cs_reg_ref *rr, const char *mirror,
                          const char *seen, cs_error **err)
{
    return push_up(r, rr, mirror, seen, err);
}
