/* run_mount.c - the filesystem side of a run: the run dir, the overlay
 * rootfs, the mount stubs the runtime leaves in it, and unmounting (from
 * /proc/self/mountinfo) what a run or a killed process left mounted. */
#include "run_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cstore/strv.h"
#include "ocispec.h"

/* ---- the run dir and the overlay ---- */

void
run_unique_lowers(run *r)
{
    size_t n = r->o->nlowers;
    r->lowers = cs_xcalloc(n ? n : 1, sizeof *r->lowers);
    r->nlowers = 0;
    /* Top down, so the first copy met is the one kept; then reversed. Layer
     * counts are small (a few hundred at most): quadratic is fine. */
    for (size_t i = n; i-- > 0;) {
        const char *d = r->o->lowers[i];
        bool seen = false;
        for (size_t j = 0; j < r->nlowers && !seen; j++)
            seen = !strcmp(r->lowers[j], d);
        if (!seen)
            r->lowers[r->nlowers++] = d;
    }
    for (size_t i = 0; i < r->nlowers / 2; i++) {
        const char *t = r->lowers[i];
        r->lowers[i] = r->lowers[r->nlowers - 1 - i];
        r->lowers[r->nlowers - 1 - i] = t;
    }
}

int
run_make_dirs(run *r, cs_error **err)
{
    static const char *const sub[] = { "bundle", "bundle/rootfs", "upper", "work", "l", "empty" };
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        cs_autofree char *p = cs_path_join(r->dir, sub[i]);
        if (mkdir(p, 0755) < 0)
            return cs_err(err, CS_EIO, errno, "mkdir '%s'", p);
    }
    /* The merged root takes the upper dir's owner and mode: copy the top
     * layer's root. */
    struct stat st = { .st_mode = 0755 };
    if (r->nlowers && stat(r->lowers[r->nlowers - 1], &st) < 0)
        return cs_err(err, CS_EIO, errno, "stat '%s'", r->lowers[r->nlowers - 1]);
    cs_autofree char *up = cs_path_join(r->dir, "upper");
    if (r->nlowers && (chown(up, st.st_uid, st.st_gid) < 0 || chmod(up, st.st_mode & 07777) < 0))
        return cs_err(err, CS_EIO, errno, "chmod '%s'", up);
    for (size_t i = 0; i < r->nlowers; i++) {
        cs_autofree char *l = cs_xasprintf("%s/l/%zu", r->dir, i);
        const char *target = r->lowers[r->nlowers - 1 - i];
        if (symlink(target, l) < 0)
            return cs_err(err, CS_EIO, errno, "symlink '%s'", l);
    }
    return 0;
}

/* The overlay's options with the run dir's paths under prefix pre, or
 * relative to the run dir when pre is NULL. */
static void
overlay_options(run *r, const char *pre, cs_buf *b)
{
    size_t nl = r->nlowers;
    b->len = 0;
    cs_buf_append(b, "lowerdir=", 9);
    if (nl == 0) {
        cs_autofree char *e = cs_xasprintf("%s/empty", pre ? pre : ".");
        cs_buf_append(b, e, strlen(e));
    }
    for (size_t i = 0; i < nl; i++) {
        cs_autofree char *e = pre ? cs_xasprintf("%s%s/l/%zu", i ? ":" : "", pre, i)
                                  : cs_xasprintf("%sl/%zu", i ? ":" : "", i);
        cs_buf_append(b, e, strlen(e));
    }
    cs_autofree char *rest = pre ? cs_xasprintf(",upperdir=%s/upper,workdir=%s/work", pre, pre)
                                 : cs_xstrdup(",upperdir=upper,workdir=work");
    cs_buf_append(b, rest, strlen(rest));
    static const char opts[] = ",index=off,redirect_dir=off,metacopy=off,xino=off";
    cs_buf_append(b, opts, sizeof opts - 1);
    cs_buf_u8(b, 0);
}

/* Mounts with relative paths from a child that chdir()s into the run dir: a
 * threaded process cannot change its own working directory safely. Returns
 * an errno value. */
static int
mount_from_run_dir(run *r, const char *data)
{
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        if (chdir(r->dir) < 0)
            _exit(errno & 0xff);
        _exit(mount("overlay", "bundle/rootfs", "overlay", 0, data) < 0 ? errno & 0xff : 0);
    }
    int st = run_wait_status(pid);
    return st < 0 ? ECHILD : st;
}

/* Mounts the overlay with options data; an errno value. */
static int
mount_data(run *r, bool full, const char *data)
{
    if (!full)
        return mount_from_run_dir(r, data);
    return mount("overlay", r->rootfs, "overlay", 0, data) < 0 ? errno : 0;
}

/* Kernels before 5.10 refuse "volatile" (EINVAL): noticed once per process. */
static atomic_bool no_volatile;

/* Mounts the overlay with "volatile" added when the kernel takes it and it
 * fits: the kernel then never syncs the upper filesystem for this mount,
 * above all not on the unmount, which would otherwise flush the whole
 * filesystem the store is on (whatever any process left dirty) once per RUN.
 * Nothing is lost that matters: the upper dir is ingested into the store
 * (whose commit is the durability point) and adopted as a snapshot, a cache
 * recorded with the boot id and checked after a reboot (synced by the adopt
 * itself when there is no boot id). Returns an errno value. */
static int
mount_overlay_data(run *r, bool full, const cs_buf *b, size_t max)
{
    static const char vol[] = ",volatile";
    const char *data = (const char *) b->data;
    if (!atomic_load(&no_volatile) && b->len + sizeof vol - 1 <= max) {
        cs_autofree char *v = cs_xasprintf("%s%s", data, vol);
        int e = mount_data(r, full, v);
        if (e != EINVAL)
            return e;
        e = mount_data(r, full, data);
        if (e == 0) /* volatile alone was refused */
            atomic_store(&no_volatile, true);
        return e;
    }
    return mount_data(r, full, data);
}

int
run_mount_overlay(run *r, cs_error **err)
{
    size_t nl = r->nlowers;
    size_t max = (size_t) sysconf(_SC_PAGESIZE) - 1; /* the kernel's limit on the options */
    cs_buf b;
    cs_buf_init(&b);
    /* Full paths when they fit in a page and need no escaping, else relative
     * ones. */
    bool full = !strpbrk(r->dir, ",:\\");
    if (full) {
        overlay_options(r, r->dir, &b);
        full = b.len <= max;
    }
    if (!full)
        overlay_options(r, NULL, &b);
    if (b.len > max) {
        cs_buf_release(&b);
        return cs_err(err, CS_EINVAL, 0, "%zu layers do not fit in one overlay mount", nl);
    }
    int e = mount_overlay_data(r, full, &b, max);
    cs_buf_release(&b);
    if (e)
        return cs_err(err, CS_EIO, e, "mount overlay on '%s' (%zu layers)", r->rootfs, nl);
    r->mounted = true;
    return 0;
}

/* ---- mount stubs ---- */

/* Opens dir rel (clean, relative; "" = root) under rootfd without following
 * any symlink. */
static int
open_beneath(int rootfd, const char *rel, size_t len)
{
    int fd = dup(rootfd);
    size_t i = 0;
    while (fd >= 0 && i < len) {
        size_t j = i;
        while (j < len && rel[j] != '/')
            j++;
        char name[NAME_MAX + 1];
        if (j - i > NAME_MAX) {
            close(fd);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(name, rel + i, j - i);
        name[j - i] = 0;
        int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
        i = j + 1;
    }
    return fd;
}

/* Copies rel[i..j) into name; false when it is too long. */
static bool
component(const char *rel, size_t i, size_t j, char name[NAME_MAX + 1])
{
    if (j - i > NAME_MAX)
        return false;
    memcpy(name, rel + i, j - i);
    name[j - i] = 0;
    return true;
}

/* Finds the first component of dest missing from the rootfs. */
static bool
stub_record(int rootfd, const char *dest, run_stub *out)
{
    char *rel = cs_ocispec_clean_rel(dest);
    if (!rel)
        return false;
    size_t len = strlen(rel);
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && rel[j] != '/')
            j++;
        char name[NAME_MAX + 1];
        int pfd = component(rel, i, j, name) ? open_beneath(rootfd, rel, i ? i - 1 : 0) : -1;
        if (pfd < 0)
            break;
        struct stat st, pst;
        if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            bool missing = errno == ENOENT && fstat(pfd, &pst) == 0;
            close(pfd);
            if (!missing)
                break;
            *out = (run_stub){ .target = rel, .root_len = j, .tm = { pst.st_atim, pst.st_mtim } };
            return true;
        }
        close(pfd);
        if (!S_ISDIR(st.st_mode))
            break; /* exists (or goes through a symlink the runtime resolves) */
        i = j + 1;
    }
    free(rel);
    return false;
}

/* Whether destination i of the mounts lies inside an earlier one: then the
 * runtime creates it inside that mount, not in the rootfs. */
static bool
nested(json_t *mounts, size_t i)
{
    const char *d = json_string_value(json_object_get(json_array_get(mounts, i), "destination"));
    cs_autofree char *cd = cs_ocispec_clean_rel(d);
    for (size_t j = 0; j < i && cd; j++) {
        cs_autofree char *cp = cs_ocispec_clean_rel(
            json_string_value(json_object_get(json_array_get(mounts, j), "destination")));
        size_t lp = cp ? strlen(cp) : 0;
        if (cp && !strncmp(cd, cp, lp) && cd[lp] == '/')
            return true;
    }
    return false;
}

int
run_stubs_record(run *r, cs_error **err)
{
    cs_autoclose int rootfd = open(r->rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", r->rootfs);
    json_t *mounts = json_object_get(r->spec, "mounts");
    size_t nm = json_array_size(mounts);
    r->stubs = cs_xcalloc(nm ? nm : 1, sizeof *r->stubs);
    for (size_t i = 0; i < nm; i++) {
        const char *d =
            json_string_value(json_object_get(json_array_get(mounts, i), "destination"));
        if (!nested(mounts, i) && stub_record(rootfd, d, &r->stubs[r->nstubs]))
            r->nstubs++;
    }
    return 0;
}

/* Removes s->target and its parents up to the first missing one while they
 * are empty (a file stub: empty regular file). */
static void
stub_clean(int rootfd, run_stub *s)
{
    size_t len = strlen(s->target);
    while (len >= s->root_len) {
        size_t slash = len;
        while (slash > 0 && s->target[slash - 1] != '/')
            slash--;
        char name[NAME_MAX + 1];
        int pfd = component(s->target, slash, len, name)
                      ? open_beneath(rootfd, s->target, slash ? slash - 1 : 0)
                      : -1;
        if (pfd < 0)
            return;
        struct stat st;
        bool ok = true;
        if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISDIR(st.st_mode))
                ok = unlinkat(pfd, name, AT_REMOVEDIR) == 0;
            else if (S_ISREG(st.st_mode) && st.st_size == 0)
                ok = unlinkat(pfd, name, 0) == 0;
            else
                ok = false;
        }
        bool removed_root = ok && len == s->root_len;
        struct stat pst;
        if (removed_root && fstat(pfd, &pst) == 0
            && (pst.st_mtim.tv_sec != s->tm[1].tv_sec || pst.st_mtim.tv_nsec != s->tm[1].tv_nsec))
            futimens(pfd, s->tm);
        close(pfd);
        if (!ok || removed_root || slash == 0)
            return;
        len = slash - 1;
    }
}

void
run_stubs_clean(run *r)
{
    cs_autoclose int rootfd = open(r->rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return;
    for (size_t i = r->nstubs; i-- > 0;)
        stub_clean(rootfd, &r->stubs[i]);
}

/* ---- unmounting ---- */

/* Undoes the octal escapes of /proc/self/mountinfo (\040 for a space...). */
static void
unescape_mountinfo(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0'
            && r[3] <= '7') {
            *w++ = (char) ((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
}

/* The mount points at or under dir, in mount order (outermost first). */
static int
mounts_under(const char *dir, cs_strv *out, cs_error **err)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return cs_err(err, CS_EIO, errno, "open '/proc/self/mountinfo'");
    size_t len = strlen(dir);
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        /* id parent major:minor root mountpoint ... */
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        for (int i = 0; tok && i < 4; i++)
            tok = strtok_r(NULL, " ", &save);
        if (!tok)
            continue;
        unescape_mountinfo(tok);
        if (strncmp(tok, dir, len) == 0 && (tok[len] == 0 || tok[len] == '/'))
            cs_strv_add(out, tok);
    }
    free(line);
    fclose(f);
    return 0;
}

int
run_umount(const char *path, cs_error **err)
{
    /* A plain umount first, so a busy mount is noticed; after a few tries,
     * a lazy one. */
    for (int i = 0; i < 5; i++) {
        if (umount2(path, UMOUNT_NOFOLLOW) == 0 || errno == EINVAL || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            break;
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0 || errno == EINVAL)
        return 0;
    return cs_err(err, CS_EIO, errno, "unmount '%s'", path);
}

int
run_umount_under(const char *dir, cs_error **err)
{
    cs_strv v = { 0 };
    int rc = mounts_under(dir, &v, err);
    for (size_t i = v.n; i-- > 0;) { /* innermost (most recent) first */
        if (umount2(v.v[i], MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT
            && rc == 0)
            rc = cs_err(err, CS_EIO, errno, "unmount '%s'", v.v[i]);
    }
    cs_strv_release(&v);
    return rc;
}
