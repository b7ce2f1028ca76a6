/* export_dir.c - an OCI layout directory: blobs written once each (a blob
 * already there with its size is kept), our manifest joining index.json.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "blobcache.h"
#include "export_int.h"

#define INDEX_MAX (64u << 20)

/* ---- OCI layout directory ---- */

static bool
file_has_size(const char *path, uint64_t size)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t) st.st_size == size;
}

/* A known layer whose blob is in the blob cache: copied (1), else 0. */
static int
dir_cached_layer(exp *x, const char *blobs, const char *final, layer *L, cs_error **err)
{
    cs_autofree char *tmp = export_tmp_template(blobs, "layer");
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "create '%s'", tmp);
    int rc = cs_blobcache_stream(x->s, &L->lb.blob, L->lb.size, cs_fd_sink, &fd, err);
    if (rc <= 0) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    rc = export_commit_tmp(fd, tmp, final, err);
    return rc < 0 ? rc : 1;
}

static int
dir_layer(exp *x, const char *blobs, layer *L, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    int rc;
    if (L->known) {
        cs_digest_hex(&L->lb.blob, hex);
        cs_autofree char *p = cs_xasprintf("%s/%s", blobs, hex);
        if (file_has_size(p, L->lb.size))
            return 0;
        if ((rc = dir_cached_layer(x, blobs, p, L, err)) != 0)
            return rc < 0 ? rc : 0;
    }
    cs_autofree char *tmp = export_tmp_template(blobs, "layer");
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "create '%s'", tmp);
    cs_csink_result res;
    rc = export_gen_layer_fd(x, L, &fd, &res, err);
    if (rc < 0) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    cs_blobcache_put_fd(x->s, fd, &res.blob, res.blob_size);
    cs_digest_hex(&res.blob, hex);
    cs_autofree char *final = cs_xasprintf("%s/%s", blobs, hex);
    rc = export_commit_tmp(fd, tmp, final, err);
    if (rc < 0)
        return rc;
    cs_layer_blob got = { res.diff_id, res.blob, res.blob_size };
    if (!L->known || !export_lb_eq(&got, &L->lb)) {
        export_record_blob(x, L, &res);
    }
    L->lb = got;
    L->known = true;
    return 0;
}

static int
dir_small_blob(const char *blobs, const void *p, size_t n, const cs_digest *d, cs_error **err)
{
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(d, hex);
    cs_autofree char *path = cs_xasprintf("%s/%s", blobs, hex);
    if (file_has_size(path, n))
        return 0;
    return cs_write_file_atomic(path, p, n, err);
}

/* A directory that is not an OCI layout must be empty. */
static int
dir_check_empty(const char *path, cs_error **err)
{
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", path);
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return cs_err(err, CS_EIO, errno, "open '%s'", path);
    }
    bool empty = true;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = false;
    closedir(d);
    if (!empty)
        return cs_err(err, CS_EEXIST, 0, "'%s' exists and is not an OCI layout", path);
    return 0;
}

/* The index of an existing layout (*old stays NULL when there is none). */
static int
dir_read_index(const char *index_path, json_t **old, cs_error **err)
{
    if (access(index_path, F_OK) != 0)
        return 0;
    cs_buf b;
    cs_buf_init(&b);
    int rc = cs_read_file(index_path, INDEX_MAX, &b, err);
    if (rc < 0)
        return rc;
    json_error_t je;
    json_t *j = json_loadb((const char *) b.data, b.len, 0, &je);
    cs_buf_release(&b);
    if (!json_is_object(j)) {
        json_decref(j);
        return cs_err(err, CS_EPARSE, 0, "'%s': %s", index_path, j ? "not an object" : je.text);
    }
    *old = j;
    return 0;
}

/* What is at path already: nothing, an empty directory, or an OCI layout
 * whose index our manifest joins (*old). */
static int
dir_prepare(const char *path, const char *layout_path, const char *index_path, json_t **old,
            cs_error **err)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno != ENOENT)
            return cs_err(err, CS_EIO, errno, "stat '%s'", path);
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return cs_err(err, CS_EEXIST, 0, "'%s' exists and is not a directory", path);
    if (access(layout_path, F_OK) == 0)
        return dir_read_index(index_path, old, err);
    return dir_check_empty(path, err);
}

/* Every layer blob, then the config and manifest blobs. */
static int
dir_blobs(exp *x, const char *blobs, cs_error **err)
{
    int rc = cs_mkdir_p(blobs, 0755, err);
    if (rc == 0)
        export_clean_stale(x, blobs);
    for (uint32_t i = 0; i < x->img->nlayers && rc >= 0; i++)
        if (!export_reuse_layer(x, i))
            rc = dir_layer(x, blobs, &x->layers[i], err);
    if (rc >= 0)
        rc = export_build_config(x, err);
    if (rc < 0)
        return rc;
    export_build_manifest(x);
    rc = dir_small_blob(blobs, x->config, x->config_len, &x->config_d, err);
    if (rc < 0)
        return rc;
    return dir_small_blob(blobs, x->manifest, x->manifest_len, &x->manifest_d, err);
}

int
export_write_dir(exp *x, const char *path, cs_error **err)
{
    static const char layout[] = OCI_LAYOUT;
    cs_autofree char *layout_path = cs_path_join(path, "oci-layout");
    cs_autofree char *index_path = cs_path_join(path, "index.json");
    cs_autofree char *blobs = cs_path_join(path, "blobs/sha256");
    json_t *old = NULL;
    int rc = dir_prepare(path, layout_path, index_path, &old, err);
    if (rc >= 0)
        rc = dir_blobs(x, blobs, err);
    if (rc >= 0)
        rc = cs_write_file_atomic(layout_path, layout, sizeof(layout) - 1, err);
    if (rc >= 0) {
        size_t ilen;
        cs_autofree char *idx = export_index_json(x, old, &ilen);
        rc = cs_write_file_atomic(index_path, idx, ilen, err);
    }
    json_decref(old);
    return rc;
}
