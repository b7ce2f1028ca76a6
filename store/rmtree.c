/* rmtree.c - removing a tree without following symlinks or leaving its file
 * system (see cs_rm_tree in cstore/util.h). Used for snapshots, run dirs and
 * anything half-made a killed process left in the store root. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cstore/util.h"

/* Removes everything inside directory dfd. Bytes freed are added to *bytes:
 * every inode's blocks when its last link goes. */
static int
rm_contents(int dfd, dev_t dev, uint64_t *bytes, const char *what, cs_error **err)
{
    char **names;
    size_t n;
    int r = cs_dir_names(dfd, what, &names, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n && r >= 0; i++) {
        struct stat st;
        if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                r = cs_err(err, cs_sys_code(errno), errno, "remove '%s/.../%s'", what, names[i]);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (st.st_dev != dev) {
                r = cs_err(err, CS_EBUSY, 0, "remove '%s/.../%s': a mount point", what, names[i]);
                break;
            }
            cs_autoclose int cfd =
                openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) {
                r = cs_err(err, cs_sys_code(errno), errno, "remove '%s/.../%s'", what, names[i]);
                break;
            }
            r = rm_contents(cfd, dev, bytes, what, err);
            if (r >= 0 && unlinkat(dfd, names[i], AT_REMOVEDIR) < 0)
                r = cs_err(err, cs_sys_code(errno), errno, "remove '%s/.../%s'", what, names[i]);
        } else if (unlinkat(dfd, names[i], 0) < 0) {
            if (errno != ENOENT)
                r = cs_err(err, cs_sys_code(errno), errno, "remove '%s/.../%s'", what, names[i]);
            continue;
        }
        if (bytes && (S_ISDIR(st.st_mode) || st.st_nlink <= 1))
            *bytes += (uint64_t) st.st_blocks * 512;
    }
    cs_names_free(names, n);
    return r;
}

/* Removes path (a tree, a file, or nothing at all): see util.h. */
int
cs_rm_tree(const char *path, uint64_t *bytes, cs_error **err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : cs_err(err, cs_sys_code(errno), errno, "remove '%s'", path);
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return cs_err(err, cs_sys_code(errno), errno, "remove '%s'", path);
        if (bytes && st.st_nlink <= 1)
            *bytes += (uint64_t) st.st_blocks * 512;
        return 0;
    }
    cs_autoclose int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "remove '%s'", path);
    int r = rm_contents(fd, st.st_dev, bytes, path, err);
    if (r < 0)
        return r;
    if (rmdir(path) < 0)
        return cs_err(err, cs_sys_code(errno), errno, "remove '%s'", path);
    if (bytes)
        *bytes += (uint64_t) st.st_blocks * 512;
    return 0;
}
