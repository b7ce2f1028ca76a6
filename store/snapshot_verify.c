/* snapshot_verify.c - why a snapshot needs no syncfs: the boot it was
 * written in, and the check of one written in another boot (see
 * snapshot_int.h).
 *
 * A snapshot is a cache of a tree that is in the store. Flushing the whole
 * file system each time one is made cost 2-11 s under other writers. Instead
 * its record holds the boot id: within that boot the page cache makes every
 * write visible whether it reached the disk or not; after a crash what is on
 * disk is all there is, and one fstatat per entry tells whether it is whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "snapshot_int.h"

#define BOOT_ID_FILE "/proc/sys/kernel/random/boot_id"

bool
cs_snapshot_boot_id(uint8_t out[CS_BOOT_ID_LEN])
{
    memset(out, 0, CS_BOOT_ID_LEN);
    const char *path = getenv("CSTORE_TEST_BOOT_ID_FILE"); /* test only: see the header */
    cs_autoclose int fd = open(path && *path ? path : BOOT_ID_FILE, O_RDONLY | O_CLOEXEC);
    char buf[64];
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
    if (n < 32)
        return false; /* a boot id is a 36-character UUID */
    /* Its first 16 bytes of sha256 stand for it (never all zeros in
     * practice; zeros mean "synced" in a record). */
    cs_digest d;
    cs_sha256(buf, (size_t) n, &d);
    memcpy(out, d.b, CS_BOOT_ID_LEN);
    return true;
}

static bool
is_whiteout_name(const char *path, const char **name)
{
    const char *sl = strrchr(path, '/');
    *name = sl ? sl + 1 : path;
    return !strncmp(*name, WH_PREFIX, strlen(WH_PREFIX));
}

/* What entry e should look like on disk; the path to stat into *at (the
 * target of a whiteout), NULL when there is nothing to check. */
static const char *
expected(const cs_entry *e, cs_buf *at)
{
    const char *name;
    if (!*e->path)
        return NULL;
    if (!is_whiteout_name(e->path, &name))
        return e->path;
    if (!strncmp(name, WH_META, strlen(WH_META)))
        return NULL; /* opaque marker (an xattr) or aufs metadata */
    at->len = 0;
    cs_buf_append(at, e->path, (size_t) (name - e->path));
    cs_buf_append(at, name + strlen(WH_PREFIX), strlen(name + strlen(WH_PREFIX)) + 1);
    return (const char *) at->data;
}

static bool
entry_matches(const cs_entry *e, const struct stat *st, bool whiteout)
{
    if (whiteout)
        return true; /* a 0/0 device, or what the layer recreated there */
    switch (e->type) {
    case CS_E_DIR:
        return S_ISDIR(st->st_mode);
    case CS_E_FILE:
        return S_ISREG(st->st_mode) && (uint64_t) st->st_size == e->size;
    case CS_E_HARDLINK:
        return S_ISREG(st->st_mode);
    case CS_E_SYMLINK:
        return S_ISLNK(st->st_mode) && (size_t) st->st_size == (e->link ? strlen(e->link) : 0);
    case CS_E_CHAR:
        return S_ISCHR(st->st_mode);
    case CS_E_BLOCK:
        return S_ISBLK(st->st_mode);
    case CS_E_FIFO:
        return S_ISFIFO(st->st_mode);
    }
    return false;
}

int
cs_snapshot_verify(const cs_tree *t, const char *fs, cs_error **err)
{
    cs_autoclose int root = open(fs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", fs);
    cs_buf at;
    cs_buf_init(&at);
    int r = 0;
    for (size_t i = 0; i < t->n && r == 0; i++) {
        const cs_entry *e = &t->e[i];
        const char *path = expected(e, &at);
        if (!path)
            continue;
        struct stat st;
        if (fstatat(root, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
            r = cs_err(err, CS_ECORRUPT, errno, "'%s' missing", path);
        else if (!entry_matches(e, &st, path != e->path))
            r = cs_err(err, CS_ECORRUPT, 0, "'%s' differs from its tree entry", path);
    }
    cs_buf_release(&at);
    return r;
}
