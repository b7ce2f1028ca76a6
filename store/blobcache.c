/* blobcache.c - layer blobs kept on disk (see blobcache.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "blobcache.h"

#define TMP_PREFIX ".tmp-"

static char *
cache_dir(cs_store *s)
{
    return cs_path_join(cs_store_root(s), "blobcache");
}

static char *
blob_path(cs_store *s, const cs_digest *d)
{
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(d, hex);
    cs_autofree char *dir = cache_dir(s);
    return cs_path_join(dir, hex);
}

int
cs_blobcache_open(cs_store *s, const cs_digest *d, uint64_t size)
{
    if (size > CS_BLOBCACHE_MAX)
        return -1;
    cs_autofree char *p = blob_path(s, d);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return fd;
    if (fstat(fd, &st) == 0 && (uint64_t) st.st_size == size) {
        if (time(NULL) - st.st_mtime > 3600)
            (void) futimens(fd, NULL); /* used: gc's budget drops the least recent */
        return fd;
    }
    close(fd);
    cs_blobcache_drop(s, d); /* cut short (no fsync) or damaged */
    return -1;
}

/* size bytes of fd from its start into out, or hashed into h when out is
 * NULL: 0, 1 when fd is short or unreadable, or out's error (< 0). */
static int
pass(int fd, uint64_t size, uint8_t *buf, cs_sha256_ctx *h, cs_sink_fn out, void *octx,
     cs_error **err)
{
    for (uint64_t off = 0; off < size;) {
        size_t want = size - off < (1u << 20) ? (size_t) (size - off) : (1u << 20);
        ssize_t r = pread(fd, buf, want, (off_t) off);
        if (r != (ssize_t) want)
            return 1;
        int rc = out ? out(octx, buf, want, err) : (cs_sha256_update(h, buf, want), 0);
        if (rc < 0)
            return rc;
        off += want;
    }
    return 0;
}

int
cs_blobcache_stream(cs_store *s, const cs_digest *d, uint64_t size, cs_sink_fn out, void *octx,
                    cs_error **err)
{
    cs_autoclose int fd = cs_blobcache_open(s, d, size);
    if (fd < 0)
        return 0;
    /* Two passes over one open file: cached blobs are renamed into place,
     * never rewritten, so both read the same bytes. */
    cs_autofree uint8_t *buf = cs_xmalloc(1u << 20);
    __attribute__((cleanup(cs_sha256_freep))) cs_sha256_ctx *h = cs_sha256_new();
    cs_digest got;
    if (pass(fd, size, buf, h, NULL, NULL, err) != 0
        || (cs_sha256_final(h, &got), !cs_digest_eq(&got, d))) {
        cs_blobcache_drop(s, d);
        return 0;
    }
    int rc = pass(fd, size, buf, NULL, out, octx, err);
    if (rc == 1)
        return cs_err(err, CS_EIO, errno, "blob cache: read");
    return rc < 0 ? rc : 1;
}

void
cs_blobcache_drop(cs_store *s, const cs_digest *d)
{
    cs_autofree char *p = blob_path(s, d);
    if (unlink(p) < 0 && errno != ENOENT) {
        cs_error *tmp = NULL;
        cs_err(&tmp, CS_EIO, errno, "remove '%s'", p);
        cs_store_warn_error(s, "blob cache", &tmp);
    }
}

int
cs_blobcache_tmp(cs_store *s, int *fd, char **path, cs_error **err)
{
    cs_autofree char *dir = cache_dir(s);
    int rc = cs_mkdir_p(dir, 0700, err);
    if (rc < 0)
        return rc;
    char *p = cs_xasprintf("%s/" TMP_PREFIX "%ld-XXXXXX", dir, (long) getpid());
    *fd = mkostemp(p, O_CLOEXEC);
    if (*fd < 0) {
        rc = cs_err(err, cs_sys_code(errno), errno, "temp file in '%s'", dir);
        free(p);
        return rc;
    }
    *path = p;
    return 0;
}

void
cs_blobcache_keep(cs_store *s, const char *path, const cs_digest *d, uint64_t size)
{
    cs_error *tmp = NULL;
    if (size > CS_BLOBCACHE_MAX) {
        if (unlink(path) < 0 && errno != ENOENT)
            cs_err(&tmp, CS_EIO, errno, "remove '%s'", path);
    } else {
        cs_autofree char *p = blob_path(s, d);
        if (rename(path, p) < 0) {
            cs_err(&tmp, CS_EIO, errno, "rename '%s' to '%s'", path, p);
            unlink(path);
        }
    }
    if (tmp)
        cs_store_warn_error(s, "blob cache", &tmp);
}

void
cs_blobcache_put_fd(cs_store *s, int fd, const cs_digest *d, uint64_t size)
{
    if (size > CS_BLOBCACHE_MAX)
        return;
    int out = -1;
    cs_autofree char *path = NULL;
    cs_error *tmp = NULL;
    if (cs_blobcache_tmp(s, &out, &path, &tmp) < 0) {
        cs_error_clear(&tmp);
        return;
    }
    cs_autofree uint8_t *buf = cs_xmalloc(1u << 20);
    uint64_t off = 0;
    while (off < size) {
        size_t want = size - off < (1u << 20) ? (size_t) (size - off) : (1u << 20);
        ssize_t r = pread(fd, buf, want, (off_t) off);
        if (r <= 0 || cs_write_all(out, buf, (size_t) r) < 0)
            break;
        off += (uint64_t) r;
    }
    if (close(out) == 0 && off == size)
        cs_blobcache_keep(s, path, d, size);
    else
        unlink(path);
}

/* Whether name is a temp file of a process that is gone. */
static bool
stale_tmp(int dfd, const char *name)
{
    if (strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)))
        return false;
    char *end;
    long pid = strtol(name + strlen(TMP_PREFIX), &end, 10);
    struct stat st;
    return pid > 0 && *end == '-' && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
           && cs_store_pid_gone((pid_t) pid, st.st_mtime);
}

typedef struct kept_blob {
    char *name;
    time_t used;
    uint64_t size;
} kept_blob;

static int
cmp_used(const void *a, const void *b)
{
    const kept_blob *x = a, *y = b;
    return x->used < y->used ? -1 : x->used > y->used;
}

static int
remove_name(int fd, const char *dir, const char *name, uint64_t size, uint64_t *removed,
            uint64_t *bytes, cs_error **err)
{
    if (unlinkat(fd, name, 0) < 0 && errno != ENOENT)
        return cs_err(err, CS_EIO, errno, "remove '%s/%s'", dir, name);
    (*removed)++;
    *bytes += size;
    return 0;
}

int
cs_blobcache_prune(cs_store *s, const cs_digestset *keep, uint64_t budget, uint64_t *removed,
                   uint64_t *bytes, cs_error **err)
{
    *removed = *bytes = 0;
    cs_autofree char *dir = cache_dir(s);
    cs_autoclose int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : cs_err(err, CS_EIO, errno, "open '%s'", dir);
    char **names = NULL;
    size_t n = 0, nk = 0;
    int rc = cs_dir_names(fd, dir, &names, &n, err);
    cs_autofree kept_blob *k = cs_xmalloc((n ? n : 1) * sizeof(*k));
    uint64_t total = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        cs_digest d;
        bool blob = cs_digest_parse(names[i], &d);
        if (!blob && !stale_tmp(fd, names[i]))
            continue;
        struct stat st;
        bool ok = fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0;
        uint64_t sz = ok ? (uint64_t) st.st_size : 0;
        if (blob && ok && cs_digestset_has(keep, d.b)) {
            k[nk++] = (kept_blob){ names[i], st.st_mtime, sz };
            total += sz;
            continue;
        }
        rc = remove_name(fd, dir, names[i], sz, removed, bytes, err);
    }
    if (nk)
        qsort(k, nk, sizeof(*k), cmp_used);
    for (size_t i = 0; i < nk && rc == 0 && total > budget; i++) {
        rc = remove_name(fd, dir, k[i].name, k[i].size, removed, bytes, err);
        total -= k[i].size;
    }
    cs_names_free(names, n);
    return rc;
}
