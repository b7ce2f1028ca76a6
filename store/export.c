/* export.c - images out: OCI layout dir, OCI archive, docker-archive. This
 * file resolves the image and runs the export; see export_int.h for the rest.
 *
 * Layer blobs are generated from trees (tarwrite.c) and compressed
 * (compress.c). A layer whose config diff_id has a tarsplit record of the
 * same tree (a loaded layer) is instead the original tar, replayed
 * (tarsplit.c), so the config and the image id stay those loaded; a replay
 * whose sha256 is not the diff_id is dropped for a regenerated tar. Their digests are cached in
 * layer_blobs, so a layer whose digests are known is streamed straight into its destination; an
 * unknown one is generated into a temp file first (an archive entry needs its size before its
 * bytes). Should a cached record ever disagree with the bytes generated (a compressor that changed
 * its output), the record is corrected and the export runs once more.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include "export_int.h"

void
export_release(exp *x)
{
    cs_image_free(x->img);
    free(x->normalized);
    free(x->tag);
    cs_names_free(x->names, x->nnames);
    free(x->layers);
    free(x->config);
    free(x->manifest);
}

/* name normalized, when it is a tag that names image id (NULL otherwise:
 * an id, a name that does not normalize, a tag that moved on). */
static char *
tag_of(cs_db *db, MDB_txn *txn, const char *name, const cs_digest *id)
{
    if (!strncmp(name, "sha256:", 7))
        return NULL;
    cs_error *e2 = NULL;
    char *norm = NULL;
    cs_digest tid;
    if (cs_ref_normalize(name, &norm, &e2) == 0 && cs_tag_get(db, txn, norm, &tid, &e2) == 0
        && cs_digest_eq(&tid, id)) {
        cs_error_clear(&e2);
        return norm;
    }
    free(norm);
    cs_error_clear(&e2);
    return NULL;
}

/* x->names: NAME and the more names that are tags of the image, once each. */
static void
collect_names(exp *x, cs_db *db, MDB_txn *txn, const cs_digest *id)
{
    cs_names_free(x->names, x->nnames);
    x->names = NULL;
    x->nnames = 0;
    size_t nmore = 0;
    while (x->more && x->more[nmore])
        nmore++;
    x->names = cs_xcalloc(nmore + 2, sizeof(char *));
    for (size_t i = 0; i <= nmore; i++) {
        char *t = tag_of(db, txn, i ? x->more[i - 1] : x->name, id);
        for (size_t k = 0; t && k < x->nnames; k++)
            if (!strcmp(x->names[k], t)) {
                free(t);
                t = NULL;
            }
        if (t)
            x->names[x->nnames++] = t;
    }
}

static int
read_image_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    exp *x = ctx;
    cs_digest id;
    int rc = cs_image_resolve(db, txn, x->name, &id, err);
    if (rc < 0)
        return rc;
    cs_image_free(x->img);
    x->img = NULL;
    rc = cs_image_get(db, txn, &id, &x->img, err);
    if (rc < 0)
        return rc;
    /* A tag (not an id) gets its name recorded in the output. A name that
     * does not normalize, or whose tag moved on, is only left out of the
     * output: the image itself was resolved. */
    free(x->normalized);
    x->normalized = tag_of(db, txn, x->name, &id);
    collect_names(x, db, txn, &id);
    return 0;
}

int
export_commit_tmp(int fd, const char *tmp, const char *path, cs_error **err)
{
    int rc = 0;
    if (fchmod(fd, 0644) < 0)
        rc = cs_err(err, CS_EIO, errno, "chmod '%s'", tmp);
    if (rc == 0 && fsync(fd) < 0)
        rc = cs_err(err, cs_sys_code(errno), errno, "fsync '%s'", tmp);
    if (close(fd) < 0 && rc == 0)
        rc = cs_err(err, CS_EIO, errno, "close '%s'", tmp);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = cs_err(err, CS_EIO, errno, "rename to '%s'", path);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* ---- temp files beside the output ---- */

#define TMP_TAG ".cstore-tmp-"

char *
export_tmp_template(const char *dir, const char *base)
{
    return cs_xasprintf("%s/.%s" TMP_TAG "%ld-XXXXXX", dir, base, (long) getpid());
}

/* The pid in a temp file's name (.BASE.cstore-tmp-PID-XXXXXX), or 0. */
static long
tmp_owner(const char *name)
{
    const char *p = name[0] == '.' ? strstr(name, TMP_TAG) : NULL;
    if (!p)
        return 0;
    char *end;
    long pid = strtol(p + strlen(TMP_TAG), &end, 10);
    return pid > 0 && *end == '-' && strlen(end + 1) == 6 ? pid : 0;
}

void
export_clean_stale(exp *x, const char *dir)
{
    cs_autoclose int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return; /* not there yet: nothing to clean */
    char **names = NULL;
    size_t n = 0;
    cs_error *tmp = NULL;
    if (cs_dir_names(fd, dir, &names, &n, &tmp) < 0)
        cs_store_warn_error(x->s, "cleaning up", &tmp);
    for (size_t i = 0; i < n; i++) {
        long pid = tmp_owner(names[i]);
        struct stat st;
        if (!pid || fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)
            || !cs_store_pid_gone((pid_t) pid, st.st_mtime))
            continue;
        if (unlinkat(fd, names[i], 0) < 0 && errno != ENOENT) {
            cs_err(&tmp, CS_EIO, errno, "remove '%s/%s'", dir, names[i]);
            cs_store_warn_error(x->s, "cleaning up", &tmp);
        }
    }
    cs_names_free(names, n);
}

/* ---- entry point ---- */

int
cs_export(cs_store *s, const char *name, const char *path, cs_format fmt, cs_compression c,
          cs_error **err)
{
    return cs_export_names(s, name, NULL, path, fmt, c, err);
}

/* Resolves the image and sets up x for an export (x released by the
 * caller, also on failure). */
static int
exp_open(exp *x, cs_store *s, const char *name, char *const *more, cs_format fmt, cs_compression c,
         cs_error **err)
{
    x->s = s;
    x->db = cs_store_db(s);
    x->name = name;
    x->more = more;
    x->fmt = fmt;
    /* docker-archive layers are plain tars, whatever was asked. */
    x->comp = fmt == CS_FMT_DOCKER_ARCHIVE ? CS_COMP_NONE : c;
    if (x->comp != CS_COMP_NONE && x->comp != CS_COMP_GZIP && x->comp != CS_COMP_ZSTD)
        return cs_err(err, CS_EINVAL, 0, "unknown compression %d", (int) c);
    if (fmt != CS_FMT_OCI_DIR && fmt != CS_FMT_OCI_ARCHIVE && fmt != CS_FMT_DOCKER_ARCHIVE)
        return cs_err(err, CS_EINVAL, 0, "unknown export format %d", (int) fmt);
    int rc = cs_db_read(x->db, read_image_fn, x, err);
    if (rc < 0)
        return rc;
    if (x->normalized) {
        const char *slash = strrchr(x->normalized, '/');
        const char *colon = strrchr(slash ? slash : x->normalized, ':');
        x->tag = cs_xstrdup(colon ? colon + 1 : "latest");
    }
    x->layers = cs_xcalloc(x->img->nlayers ? x->img->nlayers : 1, sizeof(*x->layers));
    for (uint32_t i = 0; i < x->img->nlayers; i++)
        x->layers[i].tree = x->img->layers[i];
    export_config_diff_ids(x);
    return 0;
}

int
cs_export_names(cs_store *s, const char *name, char *const *more, const char *path, cs_format fmt,
                cs_compression c, cs_error **err)
{
    exp x = { 0 };
    int rc = exp_open(&x, s, name, more, fmt, c, err);
    if (rc < 0)
        goto out;
    for (int attempt = 0; attempt < 2; attempt++) {
        x.retry = false;
        rc = cs_db_read(x.db, export_read_blobs_fn, &x, err);
        if (rc < 0)
            break;
        if (fmt == CS_FMT_OCI_DIR)
            rc = export_write_dir(&x, path, err);
        else
            rc = export_write_archive(&x, path, err);
        if (rc == 0 || !x.retry)
            break;
        if (attempt == 0)
            cs_error_clear(err);
    }
    if (rc < 0)
        cs_err_wrap(err, "export to '%s'", path);
out:
    export_release(&x);
    return rc;
}
