/* rootfs.c - an image's merged root filesystem as a tar stream or a
 * directory (cstore/rootfs.h), from the merged tree (merged.c), the
 * deterministic tar writer (tarwrite.c) and the snapshot unpacker
 * (snapshot_unpack.c), which makes a plain tree when it is given one without
 * whiteouts, as a merged tree is.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cstore/export.h"
#include "cstore/oneshot.h"
#include "cstore/rootfs.h"
#include "snapshot_int.h"

/* The merged tree of image NAME (one txn for the image, one for the tree). */
static int
load_merged(cs_db *db, const char *name, cs_tree **out, cs_error **err)
{
    cs_image *img = NULL;
    int rc = cs_image_load(db, name, &img, err);
    if (rc == 0)
        rc = cs_merged_load(db, img->layers, img->nlayers, out, err);
    cs_image_free(img);
    return rc;
}

static int
fd_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    if (cs_write_all(*(int *) ctx, p, n) < 0)
        return cs_err(err, cs_sys_code(errno), errno, "write");
    return 0;
}

typedef struct tar_job {
    const cs_tree *t;
    int fd;
} tar_job;

static int
tar_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    tar_job *j = ctx;
    return cs_tree_write_tar(db, txn, j->t, fd_sink, &j->fd, err);
}

int
cs_image_write_rootfs_tar(cs_store *s, const char *name, int fd, cs_error **err)
{
    cs_db *db = cs_store_db(s);
    cs_tree *t = NULL;
    int rc = load_merged(db, name, &t, err);
    if (rc == 0) {
        tar_job j = { t, fd };
        rc = cs_db_read(db, tar_fn, &j, err);
    }
    cs_tree_free(t);
    return rc < 0 ? cs_err_wrap(err, "root filesystem of '%s' as tar", name) : rc;
}

/* 0 when dir is missing (made) or an empty directory. */
static int
prepare_dir(const char *dir, cs_error **err)
{
    int rc = cs_mkdir_p(dir, 0755, err);
    if (rc < 0)
        return rc;
    cs_autoclose int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "open '%s'", dir);
    char **names = NULL;
    size_t n = 0;
    rc = cs_dir_names(fd, dir, &names, &n, err);
    cs_names_free(names, n);
    if (rc < 0)
        return rc;
    if (n > 0)
        return cs_err(err, CS_EEXIST, 0, "'%s' is not empty", dir);
    return 0;
}

int
cs_image_unpack(cs_store *s, const char *name, const char *dir, cs_error **err)
{
    cs_db *db = cs_store_db(s);
    cs_tree *t = NULL;
    int rc = load_merged(db, name, &t, err);
    if (rc == 0)
        rc = prepare_dir(dir, err);
    if (rc == 0)
        rc = cs_snapshot_unpack(db, t, dir, err);
    cs_tree_free(t);
    return rc < 0 ? cs_err_wrap(err, "root filesystem of '%s' into '%s'", name, dir) : rc;
}
