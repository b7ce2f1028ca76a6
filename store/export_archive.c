/* export_archive.c - oci-archive and docker-archive: one outer tar written
 * to a temp file next to the destination, renamed into place when complete.
 */
#include "cstore/archive_dl.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include "blobcache.h"
#include "export_int.h"

/* ---- outer tar (oci-archive, docker-archive) ---- */

typedef struct outer {
    struct archive *a;
    struct archive_entry *ae;
    int fd;
    int sys_errno; /* of a failed write */
    bool failed;
} outer;

static la_ssize_t
outer_write_cb(struct archive *a, void *client, const void *buf, size_t n)
{
    (void) a;
    outer *o = client;
    if (o->failed)
        return -1;
    if (cs_write_all(o->fd, buf, n) < 0) {
        o->sys_errno = errno;
        o->failed = true;
        return -1;
    }
    return (la_ssize_t) n;
}

static int
outer_fail(outer *o, cs_error **err, const char *what)
{
    if (o->sys_errno)
        return cs_err(err, cs_sys_code(o->sys_errno), o->sys_errno, "%s", what);
    return cs_err(err, CS_EIO, 0, "%s: %s", what, archive_error_string(o->a));
}

static int
outer_open(outer *o, int fd, cs_error **err)
{
    memset(o, 0, sizeof(*o));
    o->fd = fd;
    o->a = archive_write_new();
    o->ae = archive_entry_new();
    if (!o->a || !o->ae)
        abort();
    if (archive_write_set_format_pax_restricted(o->a) != ARCHIVE_OK
        || archive_write_set_bytes_per_block(o->a, 10240) != ARCHIVE_OK
        || archive_write_set_bytes_in_last_block(o->a, 1) != ARCHIVE_OK
        || archive_write_open(o->a, o, NULL, outer_write_cb, NULL) != ARCHIVE_OK)
        return outer_fail(o, err, "archive");
    return 0;
}

static void
outer_free(outer *o)
{
    o->failed = true; /* no trailer after an error; a no-op after close */
    archive_entry_free(o->ae);
    if (o->a)
        archive_write_free(o->a);
    o->a = NULL;
    o->ae = NULL;
}

static int
outer_header(outer *o, const char *path, bool dir, uint64_t size, cs_error **err)
{
    archive_entry_clear(o->ae);
    archive_entry_copy_pathname(o->ae, path);
    archive_entry_set_filetype(o->ae, dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(o->ae, dir ? 0755 : 0644);
    archive_entry_set_mtime(o->ae, 0, 0);
    archive_entry_set_size(o->ae, dir ? 0 : (la_int64_t) size);
    if (archive_write_header(o->a, o->ae) < ARCHIVE_WARN)
        return outer_fail(o, err, path);
    return 0;
}

/* A cs_sink_fn into the current entry. Bytes beyond the declared size are
 * dropped: the caller compares the sizes afterwards. */
static int
outer_data(void *ctx, const void *p, size_t n, cs_error **err)
{
    outer *o = ctx;
    while (n > 0) {
        la_ssize_t w = archive_write_data(o->a, p, n);
        if (w < 0)
            return outer_fail(o, err, "archive data");
        if (w == 0)
            return 0;
        p = (const uint8_t *) p + w;
        n -= (size_t) w;
    }
    return 0;
}

static int
outer_file(outer *o, const char *path, const void *p, size_t n, cs_error **err)
{
    int rc = outer_header(o, path, false, n, err);
    if (rc == 0)
        rc = outer_data(o, p, n, err);
    return rc;
}

/* Copies size bytes of the file fd into the current entry, hashing them
 * into h (when not NULL). */
static int
outer_copy_fd(outer *o, int fd, uint64_t size, cs_sha256_ctx *h, cs_error **err)
{
    int rc;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return cs_err(err, CS_EIO, errno, "seek temp file");
    cs_autofree uint8_t *buf = cs_xmalloc(1u << 20);
    uint64_t left = size;
    while (left > 0) {
        size_t want = left < (1u << 20) ? (size_t) left : (1u << 20);
        ssize_t r = cs_read_full(fd, buf, want);
        if (r < 0)
            return cs_err(err, CS_EIO, errno, "read temp file");
        if ((size_t) r != want)
            return cs_err(err, CS_EIO, 0, "temp file is short");
        if (h)
            cs_sha256_update(h, buf, want);
        rc = outer_data(o, buf, want, err);
        if (rc < 0)
            return rc;
        left -= want;
    }
    return 0;
}

/* ---- small helpers ---- */

static const char *
tmp_dir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* An anonymous temp file (already unlinked) in dir. */
static int
anon_tmpfile(const char *dir, int *out, cs_error **err)
{
    cs_autofree char *p = cs_xasprintf("%s/.cstore-export-XXXXXX", dir);
    int fd = mkostemp(p, O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "temp file in '%s'", dir);
    unlink(p);
    *out = fd;
    return 0;
}

static bool
seen_digest(const cs_digest *list, size_t n, const cs_digest *d)
{
    for (size_t i = 0; i < n; i++)
        if (cs_digest_eq(&list[i], d))
            return true;
    return false;
}

/* ---- archives ---- */

/* Starts the archive entry of a layer blob of size bytes: blobs/sha256/<hex>
 * (OCI), or <hex>/ with its VERSION and <hex>/layer.tar (docker). */
static int
layer_entry(exp *x, outer *o, const cs_digest *blob, uint64_t size, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(blob, hex);
    if (x->fmt != CS_FMT_DOCKER_ARCHIVE) {
        cs_autofree char *p = cs_xasprintf("blobs/sha256/%s", hex);
        return outer_header(o, p, false, size, err);
    }
    cs_autofree char *d = cs_xasprintf("%s/", hex);
    cs_autofree char *v = cs_xasprintf("%s/VERSION", hex);
    cs_autofree char *l = cs_xasprintf("%s/layer.tar", hex);
    int rc;
    if ((rc = outer_header(o, d, true, 0, err)) < 0 || (rc = outer_file(o, v, "1.0", 3, err)) < 0)
        return rc;
    return outer_header(o, l, false, size, err);
}

/* A layer whose digests are unknown: generated into a temp file first (an
 * archive entry needs its size before its bytes), recorded, kept in the
 * blob cache, then copied. */
static int
archive_new_layer(exp *x, outer *o, layer *L, cs_digest *written, size_t *nwritten, cs_error **err)
{
    cs_autoclose int fd = -1;
    int rc = anon_tmpfile(tmp_dir(), &fd, err);
    if (rc < 0)
        return rc;
    cs_csink_result res;
    rc = export_gen_layer_fd(x, L, &fd, &res, err);
    if (rc < 0)
        return rc;
    export_record_blob(x, L, &res);
    cs_blobcache_put_fd(x->s, fd, &res.blob, res.blob_size);
    L->lb = (cs_layer_blob){ res.diff_id, res.blob, res.blob_size };
    L->known = true;
    if (seen_digest(written, *nwritten, &L->lb.blob))
        return 0;
    written[(*nwritten)++] = L->lb.blob;
    rc = layer_entry(x, o, &L->lb.blob, res.blob_size, err);
    if (rc < 0)
        return rc;
    return outer_copy_fd(o, fd, res.blob_size, NULL, err);
}

/* A layer whose blob is in the blob cache (fd): its bytes copied and
 * checked; a wrong file is dropped and the export runs again. */
static int
archive_cached_layer(exp *x, outer *o, layer *L, int fd, cs_error **err)
{
    __attribute__((cleanup(cs_sha256_freep))) cs_sha256_ctx *h = cs_sha256_new();
    int rc = layer_entry(x, o, &L->lb.blob, L->lb.size, err);
    if (rc == 0)
        rc = outer_copy_fd(o, fd, L->lb.size, h, err);
    if (rc < 0)
        return rc;
    cs_digest got;
    cs_sha256_final(h, &got);
    if (cs_digest_eq(&got, &L->lb.blob))
        return 0;
    cs_blobcache_drop(x->s, &L->lb.blob);
    x->retry = true;
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(&L->lb.blob, hex);
    return cs_err(err, CS_ECORRUPT, 0, "layer %.12s: the blob cache's copy differs", hex);
}

/* The entry's bytes, also written to a blob cache temp file (fd < 0: none,
 * or a write to it failed). */
typedef struct cache_tee {
    outer *o;
    int fd;
} cache_tee;

static int
tee_data(void *ctx, const void *p, size_t n, cs_error **err)
{
    cache_tee *t = ctx;
    if (t->fd >= 0 && cs_write_all(t->fd, p, n) < 0) {
        close(t->fd);
        t->fd = -1;
    }
    return outer_data(t->o, p, n, err);
}

/* A layer whose digests are cached: streamed straight into its entry, then
 * checked; a wrong cache record is corrected and the export runs again. */
static int
archive_known_layer(exp *x, outer *o, layer *L, cs_error **err)
{
    cs_autoclose int cfd = cs_blobcache_open(x->s, &L->lb.blob, L->lb.size);
    if (cfd >= 0)
        return archive_cached_layer(x, o, L, cfd, err);
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(&L->lb.blob, hex);
    int rc = layer_entry(x, o, &L->lb.blob, L->lb.size, err);
    if (rc < 0)
        return rc;
    /* Generated again: kept in the blob cache this time. */
    cache_tee t = { o, -1 };
    cs_autofree char *cpath = NULL;
    cs_error *tmp = NULL;
    if (L->lb.size <= CS_BLOBCACHE_MAX && cs_blobcache_tmp(x->s, &t.fd, &cpath, &tmp) < 0)
        cs_error_clear(&tmp); /* no cache this time: nothing lost */
    cs_csink_result res;
    rc = export_gen_layer(x, L, tee_data, &t, &res, err);
    bool cached = t.fd >= 0 && close(t.fd) == 0;
    if (rc == 0 && export_replay_failed(L, &res)) {
        x->retry = true; /* then without the replay */
        rc = cs_err(err, CS_ECORRUPT, 0, "layer %.12s: tarsplit record gives other bytes", hex);
    }
    cs_layer_blob got = { res.diff_id, res.blob, res.blob_size };
    if (rc == 0 && !export_lb_eq(&got, &L->lb)) {
        export_record_blob(x, L, &res);
        x->retry = true;
        rc = cs_err(err, CS_ECORRUPT, 0, "layer %.12s: cached digests differ from its tar", hex);
    }
    if (cpath && cached && rc == 0)
        cs_blobcache_keep(x->s, cpath, &res.blob, res.blob_size);
    else if (cpath)
        unlink(cpath);
    return rc;
}

/* Writes layer L into the archive. written/nwritten: blobs already in the
 * archive (by blob digest), skipped. */
static int
archive_layer(exp *x, outer *o, layer *L, cs_digest *written, size_t *nwritten, cs_error **err)
{
    if (!L->known)
        return archive_new_layer(x, o, L, written, nwritten, err);
    if (seen_digest(written, *nwritten, &L->lb.blob))
        return 0;
    written[(*nwritten)++] = L->lb.blob;
    return archive_known_layer(x, o, L, err);
}

static int
oci_archive_meta(exp *x, outer *o, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    int rc;
    export_build_manifest(x);
    cs_digest_hex(&x->config_d, hex);
    cs_autofree char *cp = cs_xasprintf("blobs/sha256/%s", hex);
    if ((rc = outer_file(o, cp, x->config, x->config_len, err)) < 0)
        return rc;
    cs_digest_hex(&x->manifest_d, hex);
    cs_autofree char *mp = cs_xasprintf("blobs/sha256/%s", hex);
    if ((rc = outer_file(o, mp, x->manifest, x->manifest_len, err)) < 0)
        return rc;
    size_t ilen;
    cs_autofree char *idx = export_index_json(x, NULL, &ilen);
    return outer_file(o, "index.json", idx, ilen, err);
}

static int
docker_archive_meta(exp *x, outer *o, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    int rc;
    cs_digest_hex(&x->config_d, hex);
    char **familiar = cs_xcalloc(x->nnames + 1, sizeof(char *));
    for (size_t i = 0; i < x->nnames; i++)
        familiar[i] = cs_ref_familiar(x->names[i]);
    cs_autofree char *cp = cs_xasprintf("%s.json", hex);
    size_t mlen, rlen;
    cs_autofree char *man = export_docker_manifest_json(x, familiar, x->nnames, &mlen);
    cs_autofree char *repos =
        x->nnames ? export_docker_repositories_json(x, familiar, x->nnames, &rlen) : NULL;
    cs_names_free(familiar, x->nnames);
    if ((rc = outer_file(o, cp, x->config, x->config_len, err)) < 0
        || (rc = outer_file(o, "manifest.json", man, mlen, err)) < 0 || !repos)
        return rc;
    return outer_file(o, "repositories", repos, rlen, err);
}

static int
write_archive_entries(exp *x, outer *o, cs_error **err)
{
    int rc;
    uint32_t n = x->img->nlayers;
    cs_autofree cs_digest *written = cs_xcalloc(n ? n : 1, sizeof(*written));
    size_t nwritten = 0;

    if (x->fmt == CS_FMT_OCI_ARCHIVE) {
        static const char layout[] = OCI_LAYOUT;
        if ((rc = outer_file(o, "oci-layout", layout, sizeof(layout) - 1, err)) < 0
            || (rc = outer_header(o, "blobs/", true, 0, err)) < 0
            || (rc = outer_header(o, "blobs/sha256/", true, 0, err)) < 0)
            return rc;
    }
    for (uint32_t i = 0; i < n; i++) {
        export_reuse_layer(x, i); /* then written already: skipped */
        if ((rc = archive_layer(x, o, &x->layers[i], written, &nwritten, err)) < 0)
            return rc;
    }
    if ((rc = export_build_config(x, err)) < 0)
        return rc;
    if (x->fmt == CS_FMT_OCI_ARCHIVE)
        return oci_archive_meta(x, o, err);
    return docker_archive_meta(x, o, err);
}

static int
write_archive(exp *x, int fd, cs_error **err)
{
    int rc = cs_archive_load("archive", err);
    if (rc < 0)
        return rc;
    outer o;
    rc = outer_open(&o, fd, err);
    if (rc == 0)
        rc = write_archive_entries(x, &o, err);
    if (rc == 0 && archive_write_close(o.a) != ARCHIVE_OK)
        rc = outer_fail(&o, err, "archive");
    outer_free(&o);
    return rc;
}

/* Writes the archive to a temp file next to path, renamed into place only
 * when complete. */
int
export_write_archive(exp *x, const char *path, cs_error **err)
{
    cs_autofree char *dir = cs_xstrdup(path);
    char *slash = strrchr(dir, '/');
    const char *base = path;
    if (slash) {
        base = path + (slash - dir) + 1;
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    } else {
        free(dir);
        dir = cs_xstrdup(".");
    }
    export_clean_stale(x, dir);
    cs_autofree char *tmp = export_tmp_template(dir, base);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "create '%s'", tmp);
    int rc = write_archive(x, fd, err);
    if (rc < 0) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    return export_commit_tmp(fd, tmp, path, err);
}
