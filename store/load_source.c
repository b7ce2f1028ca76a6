/* load_source.c - the input of a load: a directory, or a tar archive listed
 * in one pass with its small members (metadata) kept in memory; symlink
 * members (skopeo's docker-archive) are followed inside the archive only.
 */
#include "cstore/archive_dl.h"
#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "load_int.h"

void
load_source_release(source *src)
{
    for (size_t i = 0; i < src->n; i++) {
        free(src->m[i].name);
        free(src->m[i].link);
        cs_buf_release(&src->m[i].data);
    }
    free(src->m);
    if (src->map)
        munmap((void *) src->map, src->map_len);
    src->map = NULL;
}

static member *
find_exact(source *src, const char *name)
{
    for (size_t i = src->n; i-- > 0;) /* the last of equal names wins, as in tar */
        if (!strcmp(src->m[i].name, name))
            return &src->m[i];
    return NULL;
}

/* Finds a member by name, following symlink members (skopeo's docker-archive
 * has "<id>/layer.tar -> ../<digest>.tar"). */
member *
load_source_find(source *src, const char *name)
{
    member *m = find_exact(src, name);
    for (int hops = 0; m && m->link && hops < 8; hops++)
        m = find_exact(src, m->link);
    return m && !m->link ? m : NULL;
}

/* "dir/link" -> "../x" gives "x"; NULL when it leaves the archive. */
static char *
resolve_link(const char *name, const char *target)
{
    if (target[0] == '/')
        return NULL;
    const char *slash = strrchr(name, '/');
    cs_autofree char *joined =
        slash ? cs_xasprintf("%.*s/%s", (int) (slash - name), name, target) : cs_xstrdup(target);
    /* Fold "x/.." pairs; a ".." that climbs above the top is refused. */
    char **parts = cs_xcalloc(strlen(joined) + 1, sizeof(char *));
    size_t n = 0;
    bool bad = false;
    for (char *save = NULL, *p = strtok_r(joined, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (!strcmp(p, "."))
            continue;
        if (!strcmp(p, "..")) {
            if (!n) {
                bad = true;
                break;
            }
            n--;
            continue;
        }
        parts[n++] = p;
    }
    cs_buf b;
    cs_buf_init(&b);
    for (size_t i = 0; i < n && !bad; i++) {
        if (i)
            cs_buf_u8(&b, '/');
        cs_buf_append(&b, parts[i], strlen(parts[i]));
    }
    cs_buf_u8(&b, 0);
    free(parts);
    if (bad) {
        cs_buf_release(&b);
        return NULL;
    }
    return (char *) b.data;
}

int
load_open_outer(const char *path, struct archive **out, cs_error **err)
{
    int r = cs_archive_load("read archive", err);
    if (r < 0)
        return r;
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open_filename(a, path, 1 << 20) != ARCHIVE_OK) {
        r = cs_err(err, CS_EPARSE, 0, "%s",
                   archive_error_string(a) ? archive_error_string(a) : "not a tar archive");
        archive_read_free(a);
        return r;
    }
    *out = a;
    return 0;
}

int
load_next_member(struct archive *a, struct archive_entry **ae, cs_error **err)
{
    int rc = archive_read_next_header(a, ae);
    if (rc == ARCHIVE_EOF)
        return 0;
    if (rc < ARCHIVE_WARN)
        return cs_err(err, CS_EPARSE, 0, "%s", archive_error_string(a));
    return 1;
}

char *
load_member_name(const char *n)
{
    while (n[0] == '.' && n[1] == '/')
        n += 2;
    while (*n == '/')
        n++;
    return cs_xstrdup(n);
}

/* First pass: list members, keep the small ones in memory. */
int
load_source_scan_tar(source *src, cs_error **err)
{
    struct archive *a = NULL;
    int r = load_open_outer(src->path, &a, err);
    if (r < 0)
        return r;
    struct archive_entry *ae;
    size_t cap = 0;
    while ((r = load_next_member(a, &ae, err)) > 0) {
        bool is_link = archive_entry_filetype(ae) == AE_IFLNK && archive_entry_symlink(ae);
        if (archive_entry_filetype(ae) != AE_IFREG && !is_link)
            continue;
        if (src->n == cap) {
            cap = cap ? cap * 2 : 32;
            src->m = cs_xrealloc(src->m, cap * sizeof(member));
        }
        member *m = &src->m[src->n++];
        memset(m, 0, sizeof(*m));
        m->name = load_member_name(archive_entry_pathname(ae));
        if (is_link) {
            m->link = resolve_link(m->name, archive_entry_symlink(ae));
            if (!m->link)
                src->n--, free(m->name); /* leads out of the archive: ignore it */
            continue;
        }
        m->size = (uint64_t) archive_entry_size(ae);
        /* In a plain archive these are file offsets (load_source_map checks). */
        m->hdr_off = archive_read_header_position(a);
        m->data_off = archive_filter_bytes(a, 0);
        if (m->size <= SMALL_MAX) {
            cs_buf_reserve(&m->data, m->size + 1);
            la_ssize_t got = archive_read_data(a, m->data.data, m->size);
            if (got < 0 || (uint64_t) got != m->size) {
                r = cs_err(err, CS_EPARSE, 0, "'%s': %s", m->name,
                           got < 0 ? archive_error_string(a) : "truncated archive");
                break;
            }
            m->data.len = m->size;
            m->data.data[m->size] = 0;
            m->have = true;
        }
    }
    archive_read_free(a);
    return r;
}

/* A member's data is in place at data_off when its header is there (a tar
 * header block, "ustar" at 257) right before it and the data fits: what a
 * plain archive gives. In a compressed one, libarchive's offsets count
 * uncompressed bytes and no header is found there. Layers read this way
 * are still checked against their digests. */
static bool
member_in_map(const source *src, const member *m)
{
    if (m->hdr_off < 0 || m->data_off < m->hdr_off + 512 || (m->data_off - m->hdr_off) % 512
        || (uint64_t) m->data_off > src->map_len || m->size > src->map_len - (uint64_t) m->data_off)
        return false;
    return !memcmp(src->map + m->data_off - 512 + 257, "ustar", 5)
           && !memcmp(src->map + m->hdr_off + 257, "ustar", 5);
}

void
load_source_map(source *src)
{
    int fd = open(src->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 512) {
        void *p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            src->map = p;
            src->map_len = (size_t) st.st_size;
            madvise(p, src->map_len, MADV_SEQUENTIAL);
        }
    }
    close(fd);
    size_t any = 0;
    for (size_t i = 0; src->map && i < src->n; i++)
        if (!src->m[i].link)
            any += src->m[i].mapped = member_in_map(src, &src->m[i]);
    if (src->map && !any) {
        munmap((void *) src->map, src->map_len);
        src->map = NULL;
    }
}

/* Reads a small member or file fully (metadata). */
int
load_source_get(source *src, const char *name, cs_buf *out, cs_error **err)
{
    if (src->is_dir) {
        cs_autofree char *p = cs_path_join(src->path, name);
        struct stat st;
        if (stat(p, &st) < 0 && errno == ENOENT)
            return cs_err(err, CS_ENOTFOUND, 0, "'%s' is missing", name);
        if (stat(p, &st) == 0 && !S_ISREG(st.st_mode))
            return cs_err(err, CS_EINVAL, 0, "'%s' is not a regular file", name);
        int r = cs_read_file(p, SMALL_MAX, out, err);
        return r < 0 ? cs_err_wrap(err, "'%s'", name) : 0;
    }
    member *m = load_source_find(src, name);
    if (!m)
        return cs_err(err, CS_ENOTFOUND, 0, "'%s' is missing", name);
    if (!m->have)
        return cs_err(err, CS_EINVAL, 0, "'%s' is too large for metadata", name);
    out->len = 0;
    cs_buf_append(out, m->data.data, m->data.len);
    cs_buf_reserve(out, 1);
    out->data[out->len] = 0;
    return 0;
}
