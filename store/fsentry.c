/* fsentry.c - tree entries from lstat results (see cstore/fsentry.h). */
#include <errno.h>
#include <sys/sysmacros.h>
#include "cstore/fsentry.h"

void
cs_fsentry_meta(cs_entry *e, const char *rel, const struct stat *st)
{
    e->path = cs_xstrdup(rel);
    e->mode = st->st_mode & 07777;
    e->uid = st->st_uid;
    e->gid = st->st_gid;
    e->mtime_sec = st->st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t) st->st_mtim.tv_nsec;
}

/* st_size of a symlink is its target's length: a longer read means the link
 * was replaced meanwhile. */
static int
read_link(cs_entry *e, const char *full, const struct stat *st, cs_error **err)
{
    size_t cap = (size_t) st->st_size + 1;
    cs_autofree char *buf = cs_xmalloc(cap);
    ssize_t n = readlink(full, buf, cap);
    if (n < 0)
        return cs_err(err, CS_EIO, errno, "readlink '%s'", full);
    if ((size_t) n >= cap)
        return cs_err(err, CS_EIO, 0, "readlink '%s': target changed", full);
    buf[n] = 0;
    e->type = CS_E_SYMLINK;
    e->link = cs_steal(&buf);
    return 0;
}

int
cs_fsentry_kind(cs_entry *e, const struct stat *st)
{
    switch (st->st_mode & S_IFMT) {
    case S_IFDIR:
        e->type = CS_E_DIR;
        return 0;
    case S_IFREG:
        e->type = CS_E_FILE;
        return 0;
    case S_IFLNK:
        e->type = CS_E_SYMLINK;
        return 0;
    case S_IFCHR:
    case S_IFBLK:
        e->type = S_ISCHR(st->st_mode) ? CS_E_CHAR : CS_E_BLOCK;
        e->devmajor = major(st->st_rdev);
        e->devminor = minor(st->st_rdev);
        return 0;
    case S_IFIFO:
        e->type = CS_E_FIFO;
        return 0;
    }
    return 1;
}

int
cs_fsentry_type(cs_entry *e, const char *full, const struct stat *st, cs_error **err)
{
    if (S_ISLNK(st->st_mode))
        return read_link(e, full, st, err);
    return cs_fsentry_kind(e, st);
}
