/* run.c - the RUN executor: an overlayfs rootfs, an OCI bundle, runc.
 *
 * One run owns ROOT/tmp/run-<pid>-<n>/:
 *   l/0, l/1, ...   short symlinks to the lower dirs, top layer first
 *   empty/          the single lower dir of a FROM scratch run
 *   upper/ work/    the overlay's upper and work dirs
 *   bundle/         config.json and rootfs/ (the overlay mount point)
 *   runc.log        the runtime's JSON log (its own errors)
 * The container is "cstore-<pid>-<n>" in the runtime state dir ROOT/tmp/runc,
 * so a stale run dir names its container and its owner process.
 *
 * Nothing of a run survives it: the runtime's container is deleted, the
 * mount points the runtime had to create in the rootfs (/proc, /dev,
 * /etc/resolv.conf, ... of images that lack them) are removed again, as
 * BuildKit's mount stub cleaner does, so they do not leak into the layer; the
 * overlay is unmounted and the run dir removed. A kept upper dir is renamed to
 * ROOT/tmp/run-<pid>-<n>-upper first, so the caller adopts it with one
 * rename.
 */
#include "run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include "cstore/util.h"

extern char **environ;

#define TAIL_LINES   20
#define TAIL_KEEP    8192 /* bytes of output kept for the tail */
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static atomic_uint run_seq;

/* ---- safe recursive removal ---- */

/* Removes the entries of the open directory dfd, never following symlinks and
 * never descending into another filesystem (a mount point left in place). */
static int
rm_contents(int dfd, dev_t dev)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = errno;
        close(dfd);
        return e;
    }
    int first = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT && !first)
                first = errno;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (st.st_dev != dev) {
                if (!first)
                    first = EBUSY;
                continue;
            }
            int sub = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                if (!first)
                    first = errno;
                continue;
            }
            int e = rm_contents(sub, dev);
            if (e && !first)
                first = e;
            if (unlinkat(dirfd(d), n, AT_REMOVEDIR) < 0 && errno != ENOENT && !first)
                first = errno;
        } else if (unlinkat(dirfd(d), n, 0) < 0 && errno != ENOENT && !first) {
            first = errno;
        }
    }
    closedir(d);
    return first;
}

/* rm -rf path, without following symlinks or crossing mount points. */
static int
rm_tree(const char *path, cs_error **err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return cs_err(err, CS_EIO, errno, "stat '%s'", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return cs_err(err, CS_EIO, errno, "remove '%s'", path);
        return 0;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", path);
    int e = rm_contents(fd, st.st_dev);
    if (e)
        return cs_err(err, CS_EIO, e, "remove '%s'", path);
    if (rmdir(path) < 0 && errno != ENOENT)
        return cs_err(err, CS_EIO, errno, "remove '%s'", path);
    return 0;
}

/* ---- mounts ---- */

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

/* The mount points at or under dir, most recent (innermost) first. Caller
 * frees each and the array. */
static char **
mounts_under(const char *dir, size_t *n)
{
    *n = 0;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return NULL;
    char **v = NULL;
    size_t cap = 0, len = strlen(dir);
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
        if (strncmp(tok, dir, len) != 0 || (tok[len] != 0 && tok[len] != '/'))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            v = cs_xrealloc(v, cap * sizeof *v);
        }
        v[(*n)++] = cs_xstrdup(tok);
    }
    free(line);
    fclose(f);
    for (size_t i = 0; i < *n / 2; i++) {
        char *t = v[i];
        v[i] = v[*n - 1 - i];
        v[*n - 1 - i] = t;
    }
    return v;
}

/* Unmounts path: a plain umount first (so a busy mount is noticed), then,
 * after a few tries, a lazy one. */
static int
umount_path(const char *path, cs_error **err)
{
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

static int
umount_all_under(const char *dir, cs_error **err)
{
    size_t n;
    char **v = mounts_under(dir, &n);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (umount2(v[i], MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT
            && rc == 0)
            rc = cs_err(err, CS_EIO, errno, "unmount '%s'", v[i]);
        free(v[i]);
    }
    free(v);
    return rc;
}

/* ---- processes ---- */

/* Starts argv[0] (searched in PATH) in its own process group (a Ctrl-C on the
 * terminal reaches cstore only, which then stops the container itself) with
 * the given stdio; -1 means /dev/null. */
static int
spawn(char *const argv[], int in, int out, int errfd, pid_t *pid, cs_error **err)
{
    cs_autoclose int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return cs_err(err, CS_EIO, errno, "open '/dev/null'");
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, in >= 0 ? in : null, 0);
    posix_spawn_file_actions_adddup2(&fa, out >= 0 ? out : null, 1);
    posix_spawn_file_actions_adddup2(&fa, errfd >= 0 ? errfd : null, 2);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK
                                      | POSIX_SPAWN_SETSIGDEF);
    int e = posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (e)
        return cs_err(err, CS_EIO, e, "run '%s'", argv[0]);
    return 0;
}

static int
wait_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* Runs a runtime command that needs no output (kill, delete). */
static int
run_quiet(char *const argv[])
{
    pid_t pid;
    if (spawn(argv, -1, -1, -1, &pid, NULL) < 0)
        return -1;
    return wait_status(pid);
}

static void
runtime_delete(const char *runtime, const char *state_root, const char *id)
{
    /* runc run deletes its container when it exits; only a run that was
     * killed or interrupted leaves state behind. */
    cs_autofree char *state = cs_path_join(state_root, id);
    if (access(state, F_OK) < 0)
        return;
    char *argv[] = { (char *) runtime, "--root", (char *) state_root, "delete", "--force",
                     (char *) id,      NULL };
    run_quiet(argv);
}

/* ---- SIGINT/SIGTERM while runs are in flight ----
 * The handler only records the signal and writes a byte to a pipe that every
 * running cs_run polls; the pipe is never drained while runs are in flight, so
 * all of them see it. Each then kills its container, cleans up and returns an
 * error; cs_run_interrupted() tells the caller to stop. Installed when the
 * first run starts and restored when the last one ends; a signal that was
 * ignored stays ignored. */
static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static int sig_users;
static int sig_pipe[2] = { -1, -1 };
static struct sigaction sig_old[2];
static const int sig_nums[2] = { SIGINT, SIGTERM };
static volatile sig_atomic_t sig_caught;

static void
on_signal(int sig)
{
    int e = errno;
    if (!sig_caught)
        sig_caught = sig;
    if (sig_pipe[1] >= 0) {
        ssize_t r = write(sig_pipe[1], "x", 1);
        (void) r;
    }
    errno = e;
}

int
cs_run_interrupted(void)
{
    return sig_caught;
}

/* Returns the read end of the signal pipe (-1 if none could be made). */
static int
sig_acquire(void)
{
    pthread_mutex_lock(&sig_lock);
    if (sig_users++ == 0 && pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < 2; i++) {
            sigaction(sig_nums[i], &sa, &sig_old[i]);
            if (sig_old[i].sa_handler == SIG_IGN)
                sigaction(sig_nums[i], &sig_old[i], NULL);
        }
    }
    int fd = sig_pipe[0];
    pthread_mutex_unlock(&sig_lock);
    return fd;
}

static void
sig_release(void)
{
    pthread_mutex_lock(&sig_lock);
    if (--sig_users == 0 && sig_pipe[0] >= 0) {
        for (int i = 0; i < 2; i++)
            sigaction(sig_nums[i], &sig_old[i], NULL);
        int r = sig_pipe[0], w = sig_pipe[1];
        sig_pipe[0] = sig_pipe[1] = -1;
        close(r);
        close(w);
    }
    pthread_mutex_unlock(&sig_lock);
}

/* ---- mount stubs ---- */

/* A mount destination that did not exist in the rootfs: the runtime creates
 * it (and its missing parents). After the run, what is still empty of it is
 * removed again and the mtime of the directory that held it restored. */
typedef struct stub {
    char *target;          /* clean, relative to the rootfs: "etc/resolv.conf" */
    size_t root_len;       /* target[0..root_len) = the first missing component */
    struct timespec tm[2]; /* atime, mtime of its parent */
} stub;

/* "/a//./b/" -> "a/b"; NULL for ".." or the root itself. */
static char *
clean_rel(const char *p)
{
    char *out = cs_xmalloc(strlen(p) + 1);
    size_t o = 0;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = strchrnul(p, '/');
        size_t n = (size_t) (e - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            free(out);
            return NULL;
        }
        if (n && !(n == 1 && p[0] == '.')) {
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p = e;
    }
    out[o] = 0;
    if (!o) {
        free(out);
        return NULL;
    }
    return out;
}

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

static bool
stub_record(int rootfd, const char *dest, stub *out)
{
    char *rel = clean_rel(dest);
    if (!rel)
        return false;
    size_t len = strlen(rel);
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && rel[j] != '/')
            j++;
        int pfd = open_beneath(rootfd, rel, i ? i - 1 : 0);
        if (pfd < 0)
            break;
        char name[NAME_MAX + 1];
        struct stat st, pst;
        if (j - i > NAME_MAX) {
            close(pfd);
            break;
        }
        memcpy(name, rel + i, j - i);
        name[j - i] = 0;
        if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            bool missing = errno == ENOENT && fstat(pfd, &pst) == 0;
            close(pfd);
            if (!missing)
                break;
            out->target = rel;
            out->root_len = j;
            out->tm[0] = pst.st_atim;
            out->tm[1] = pst.st_mtim;
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

static void
stub_clean(int rootfd, stub *s)
{
    size_t len = strlen(s->target);
    bool removed_root = false;
    while (len >= s->root_len) {
        size_t slash = len;
        while (slash > 0 && s->target[slash - 1] != '/')
            slash--;
        int pfd = open_beneath(rootfd, s->target, slash ? slash - 1 : 0);
        if (pfd < 0)
            return;
        char name[NAME_MAX + 1];
        if (len - slash > NAME_MAX) {
            close(pfd);
            return;
        }
        memcpy(name, s->target + slash, len - slash);
        name[len - slash] = 0;
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
        if (ok && len == s->root_len) {
            removed_root = true;
            struct stat pst;
            if (fstat(pfd, &pst) == 0
                && (pst.st_mtim.tv_sec != s->tm[1].tv_sec
                    || pst.st_mtim.tv_nsec != s->tm[1].tv_nsec))
                futimens(pfd, s->tm);
        }
        close(pfd);
        if (!ok || removed_root || slash == 0)
            return;
        len = slash - 1;
    }
}

/* ---- config.json ---- */

/* Docker's (and BuildKit's) RLIMIT_NOFILE is 1048576, but raising a hard
 * limit takes CAP_SYS_RESOURCE, which a sandboxed root may lack (the runtime
 * then fails with EPERM): without it, stay at our own hard limit. */
static json_int_t
nofile_limit(void)
{
    const json_int_t want = 1048576;
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capget, &h, d) == 0 && (d[0].effective & (1u << CAP_SYS_RESOURCE)))
        return want;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY
        && (json_int_t) rl.rlim_max < want)
        return (json_int_t) rl.rlim_max;
    return want;
}

static json_t *
str_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

#define STRS(...)                                                                                  \
    str_array((const char *const[]){ __VA_ARGS__ },                                                \
              sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *))

static json_t *
mount_obj(const char *dst, const char *type, const char *src, json_t *opts)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type", type, "source", src,
                     "options", opts);
}

static const char *const default_caps[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};
#define NCAPS (sizeof default_caps / sizeof default_caps[0])

static size_t
path_depth(const char *p)
{
    size_t d = 0;
    for (; *p; p++)
        if (*p == '/' && p[1] && p[1] != '/')
            d++;
    return d;
}

static int
cmp_depth(const void *a, const void *b)
{
    json_t *const *x = a, *const *y = b;
    size_t dx = path_depth(json_string_value(json_object_get(*x, "destination")));
    size_t dy = path_depth(json_string_value(json_object_get(*y, "destination")));
    if (dx != dy)
        return dx < dy ? -1 : 1;
    /* stable: the array index kept in "_i" */
    json_int_t ix = json_integer_value(json_object_get(*x, "_i"));
    json_int_t iy = json_integer_value(json_object_get(*y, "_i"));
    return ix < iy ? -1 : ix > iy;
}

static bool
dest_eq(const char *a, const char *b)
{
    cs_autofree char *ca = clean_rel(a);
    cs_autofree char *cb = clean_rel(b);
    return ca && cb && !strcmp(ca, cb);
}

/* Builds the mounts as a json array: the defaults (dropped where the caller
 * mounts the same destination), then the caller's, ordered parents first. */
static int
make_mounts(const cs_run_opts *o, json_t **out, cs_error **err)
{
    json_t *list = json_array();
    json_array_append_new(list,
                          mount_obj("/proc", "proc", "proc", STRS("nosuid", "noexec", "nodev")));
    json_array_append_new(list,
                          mount_obj("/dev", "tmpfs", "tmpfs",
                                    STRS("nosuid", "strictatime", "mode=755", "size=65536k")));
    json_array_append_new(list, mount_obj("/dev/pts", "devpts", "devpts",
                                          STRS("nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                               "mode=0620", "gid=5")));
    json_array_append_new(list,
                          mount_obj("/dev/shm", "tmpfs", "shm",
                                    STRS("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")));
    json_array_append_new(
        list, mount_obj("/dev/mqueue", "mqueue", "mqueue", STRS("nosuid", "noexec", "nodev")));
    json_array_append_new(
        list, mount_obj("/sys", "sysfs", "sysfs", STRS("nosuid", "noexec", "nodev", "ro")));
    static const char *const host_files[] = { "/etc/resolv.conf", "/etc/hosts" };
    for (size_t i = 0; i < 2; i++) {
        struct stat st;
        if (stat(host_files[i], &st) == 0 && S_ISREG(st.st_mode))
            json_array_append_new(
                list, mount_obj(host_files[i], "bind", host_files[i], STRS("rbind", "ro")));
    }
    /* the caller's mounts replace defaults on the same destination */
    for (size_t i = 0; i < o->nmounts; i++) {
        size_t j = 0;
        while (j < json_array_size(list)) {
            const char *d =
                json_string_value(json_object_get(json_array_get(list, j), "destination"));
            if (dest_eq(d, o->mounts[i].target))
                json_array_remove(list, j);
            else
                j++;
        }
    }
    for (size_t i = 0; i < o->nmounts; i++) {
        const cs_run_mount *m = &o->mounts[i];
        if (!m->target || m->target[0] != '/' || !m->type) {
            json_decref(list);
            return cs_err(err, CS_EINVAL, 0, "mount target '%s' is not absolute",
                          m->target ? m->target : "");
        }
        json_t *mo;
        if (!strcmp(m->type, "bind")) {
            if (!m->source) {
                json_decref(list);
                return cs_err(err, CS_EINVAL, 0, "bind mount on '%s' has no source", m->target);
            }
            mo = mount_obj(m->target, "bind", m->source, STRS("rbind", m->readonly ? "ro" : "rw"));
        } else if (!strcmp(m->type, "tmpfs")) {
            mo = m->readonly ? mount_obj(m->target, "tmpfs", "tmpfs", STRS("nosuid", "nodev", "ro"))
                             : mount_obj(m->target, "tmpfs", "tmpfs", STRS("nosuid", "nodev"));
        } else {
            json_decref(list);
            return cs_err(err, CS_EUNSUPPORTED, 0, "mount type '%s'", m->type);
        }
        if (!mo) {
            json_decref(list);
            return cs_err(err, CS_EINVAL, 0, "mount on '%s' is not valid utf-8", m->target);
        }
        json_array_append_new(list, mo);
    }
    /* parents before children, otherwise in order */
    size_t n = json_array_size(list);
    json_t **arr = cs_xcalloc(n ? n : 1, sizeof *arr);
    for (size_t i = 0; i < n; i++) {
        arr[i] = json_incref(json_array_get(list, i));
        json_object_set_new(arr[i], "_i", json_integer((json_int_t) i));
    }
    qsort(arr, n, sizeof *arr, cmp_depth);
    json_t *sorted = json_array();
    for (size_t i = 0; i < n; i++) {
        json_object_del(arr[i], "_i");
        json_array_append_new(sorted, arr[i]);
    }
    free(arr);
    json_decref(list);
    *out = sorted;
    return 0;
}

/* json_string() refuses what is not UTF-8; such a string is an error, not a
 * silently dropped argument. */
static void
append_str(json_t *a, const char *s, const char **bad)
{
    json_t *v = json_string(s);
    if (!v) {
        if (!*bad)
            *bad = s;
        return;
    }
    json_array_append_new(a, v);
}

/* Writes the bundle's config.json; takes the reference to mounts. */
static int
write_config(const cs_run_opts *o, json_t *mounts, const char *path, cs_error **err)
{
    const char *bad = NULL;
    json_t *args = json_array();
    for (char *const *a = o->argv; *a; a++)
        append_str(args, *a, &bad);
    json_t *env = json_array();
    bool has_path = false;
    for (char *const *e = o->env; e && *e; e++) {
        has_path |= !strncmp(*e, "PATH=", 5);
        append_str(env, *e, &bad);
    }
    if (o->cwd) {
        json_t *c = json_string(o->cwd);
        if (!c)
            bad = o->cwd;
        json_decref(c);
    }
    if (!has_path)
        json_array_append_new(env, json_string(DEFAULT_PATH));
    json_t *gids = json_array();
    for (size_t i = 0; i < o->ngids; i++)
        json_array_append_new(gids, json_integer(o->gids[i]));
    /* Like Docker: a non-root user gets no effective or permitted
     * capabilities, and nothing is inheritable (CVE-2022-24769). */
    bool root = o->uid == 0;
    json_t *caps =
        json_pack("{s:o, s:o, s:o, s:[], s:[]}", "bounding", str_array(default_caps, NCAPS),
                  "effective", str_array(default_caps, root ? NCAPS : 0), "permitted",
                  str_array(default_caps, root ? NCAPS : 0), "inheritable", "ambient");
    json_int_t nofile = nofile_limit();
    json_t *process = json_pack(
        "{s:b, s:{s:I, s:I, s:o}, s:o, s:o, s:s, s:o, s:[{s:s, s:I, s:I}], s:b}", "terminal", 0,
        "user", "uid", (json_int_t) o->uid, "gid", (json_int_t) o->gid, "additionalGids", gids,
        "args", args, "env", env, "cwd", o->cwd ? o->cwd : "/", "capabilities", caps, "rlimits",
        "type", "RLIMIT_NOFILE", "hard", nofile, "soft", nofile, "noNewPrivileges", 0);
    json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}]", "type", "pid", "type", "mount", "type",
                           "ipc", "type", "uts");
    if (o->network_none)
        json_array_append_new(ns, json_pack("{s:s}", "type", "network"));
    json_t *linux_ = json_pack(
        "{s:o, s:{s:[{s:b, s:s}]}, s:o, s:o}", "namespaces", ns, "resources", "devices", "allow", 0,
        "access", "rwm", "maskedPaths",
        STRS("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
             "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
             "/sys/firmware", "/sys/devices/virtual/powercap"),
        "readonlyPaths",
        STRS("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"));
    json_t *cfg = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", "1.0.2",
                            "process", process, "root", "path", "rootfs", "readonly", 0, "hostname",
                            "cstore", "mounts", mounts, "linux", linux_);
    if (!cfg || bad) {
        json_decref(cfg);
        return cs_err(err, CS_EINVAL, 0, "run: '%s' is not valid utf-8", bad ? bad : "?");
    }
    int rc = json_dump_file(cfg, path, JSON_COMPACT);
    json_decref(cfg);
    if (rc < 0)
        return cs_err(err, CS_EIO, errno, "write '%s'", path);
    return 0;
}

/* ---- the run ---- */

typedef struct run {
    const cs_run_opts *o;
    const char *runtime;
    char *tmp;    /* ROOT/tmp */
    char *state;  /* ROOT/tmp/runc */
    char *dir;    /* ROOT/tmp/run-<pid>-<n> */
    char *rootfs; /* dir/bundle/rootfs */
    char *id;     /* cstore-<pid>-<n> */
    unsigned n;
    bool mounted, started;
    stub *stubs;
    size_t nstubs;
    cs_buf tail;
} run;

static int
make_dirs(run *r, cs_error **err)
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
    if (r->o->nlowers && stat(r->o->lowers[r->o->nlowers - 1], &st) < 0)
        return cs_err(err, CS_EIO, errno, "stat '%s'", r->o->lowers[r->o->nlowers - 1]);
    cs_autofree char *up = cs_path_join(r->dir, "upper");
    if (r->o->nlowers && (chown(up, st.st_uid, st.st_gid) < 0 || chmod(up, st.st_mode & 07777) < 0))
        return cs_err(err, CS_EIO, errno, "chmod '%s'", up);
    for (size_t i = 0; i < r->o->nlowers; i++) {
        cs_autofree char *l = cs_xasprintf("%s/l/%zu", r->dir, i);
        const char *target = r->o->lowers[r->o->nlowers - 1 - i];
        if (symlink(target, l) < 0)
            return cs_err(err, CS_EIO, errno, "symlink '%s'", l);
    }
    return 0;
}

static bool
overlay_safe(const char *s)
{
    return !strpbrk(s, ",:\\");
}

static int
mount_overlay(run *r, cs_error **err)
{
    size_t nl = r->o->nlowers;
    long page = sysconf(_SC_PAGESIZE);
    /* Full paths when they fit in a page (the kernel's limit on the options)
     * and need no escaping; else relative ones from a child that chdir()s
     * into the run dir, since a threaded process cannot change its own
     * working directory safely. */
    cs_buf b;
    cs_buf_init(&b);
    const char *base = r->dir;
    for (int pass = 0; pass < 2; pass++) {
        b.len = 0;
        const char *pre = pass == 0 ? base : ".";
        cs_buf_append(&b, "lowerdir=", 9);
        if (nl == 0) {
            cs_autofree char *e = cs_xasprintf("%s/empty", pre);
            cs_buf_append(&b, e, strlen(e));
        }
        for (size_t i = 0; i < nl; i++) {
            cs_autofree char *e = pass == 0 ? cs_xasprintf("%s%s/l/%zu", i ? ":" : "", pre, i)
                                            : cs_xasprintf("%sl/%zu", i ? ":" : "", i);
            cs_buf_append(&b, e, strlen(e));
        }
        cs_autofree char *rest = pass == 0
                                     ? cs_xasprintf(",upperdir=%s/upper,workdir=%s/work", pre, pre)
                                     : cs_xstrdup(",upperdir=upper,workdir=work");
        cs_buf_append(&b, rest, strlen(rest));
        static const char opts[] = ",index=off,redirect_dir=off,metacopy=off,xino=off";
        cs_buf_append(&b, opts, sizeof opts - 1);
        cs_buf_u8(&b, 0);
        if (pass == 0 && (long) b.len <= page - 1 && overlay_safe(base))
            break;
        if (pass == 1 && (long) b.len > page - 1) {
            cs_buf_release(&b);
            return cs_err(err, CS_EINVAL, 0, "%zu layers do not fit in one overlay mount", nl);
        }
        base = NULL;
    }
    const char *data = (const char *) b.data;
    int e = 0;
    if (base) {
        if (mount("overlay", r->rootfs, "overlay", 0, data) < 0)
            e = errno;
    } else {
        pid_t pid = fork();
        if (pid < 0) {
            e = errno;
        } else if (pid == 0) {
            if (chdir(r->dir) < 0)
                _exit(errno & 0xff);
            _exit(mount("overlay", "bundle/rootfs", "overlay", 0, data) < 0 ? errno & 0xff : 0);
        } else {
            int st = wait_status(pid);
            e = st < 0 ? ECHILD : st;
        }
    }
    if (e) {
        int rc = cs_err(err, CS_EIO, e, "mount overlay on '%s' (%zu layers)", r->rootfs, nl);
        cs_buf_release(&b);
        return rc;
    }
    cs_buf_release(&b);
    r->mounted = true;
    return 0;
}

static void
tail_add(run *r, const char *p, size_t n)
{
    if (n >= TAIL_KEEP) {
        r->tail.len = 0;
        p += n - TAIL_KEEP;
        n = TAIL_KEEP;
    } else if (r->tail.len + n > 2 * TAIL_KEEP) {
        size_t drop = r->tail.len + n - TAIL_KEEP;
        memmove(r->tail.data, r->tail.data + drop, r->tail.len - drop);
        r->tail.len -= drop;
    }
    cs_buf_append(&r->tail, p, n);
}

static char *
tail_lines(run *r)
{
    size_t end = r->tail.len, start = end, lines = 0;
    const char *d = (const char *) r->tail.data;
    if (end && d[end - 1] == '\n')
        start--;
    while (start > 0) {
        if (d[start - 1] == '\n' && ++lines == TAIL_LINES)
            break;
        start--;
    }
    return cs_xstrndup(d ? d + start : "", end - start);
}

/* The runtime's own failure (not the command's), from its JSON log. */
static char *
runtime_error(run *r)
{
    cs_autofree char *log = cs_path_join(r->dir, "runc.log");
    FILE *f = fopen(log, "re");
    if (!f)
        return NULL;
    char *line = NULL, *msg = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        const char *lvl = json_string_value(json_object_get(j, "level"));
        const char *m = json_string_value(json_object_get(j, "msg"));
        if (lvl && m && (!strcmp(lvl, "error") || !strcmp(lvl, "fatal"))) {
            free(msg);
            msg = cs_xstrdup(m);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    return msg;
}

static void
forward(int fd, bool *ok, const char *p, size_t n)
{
    if (fd >= 0 && *ok && cs_write_all(fd, p, n) < 0)
        *ok = false; /* keep draining the pipe; the tail still sees it */
}

static void
kill_container(run *r)
{
    char *argv[] = { (char *) r->runtime, "--root", r->state, "kill", r->id, "KILL", NULL };
    run_quiet(argv);
}

/* Runs the runtime and tees its output until it exits; *status = its exit
 * status, *sig = the signal that interrupted it (0 if none). */
static int
supervise(run *r, int sigfd, int *status, int *sig, cs_error **err)
{
    int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
    if (pipe2(outp, O_CLOEXEC) < 0)
        return cs_err(err, CS_EIO, errno, "pipe");
    if (pipe2(errp, O_CLOEXEC) < 0) {
        int e = errno;
        close(outp[0]);
        close(outp[1]);
        return cs_err(err, CS_EIO, e, "pipe");
    }
    if (sig_caught) {
        /* interrupted before the runtime started: nothing to stop */
        *sig = sig_caught;
        close(outp[0]);
        close(outp[1]);
        close(errp[0]);
        close(errp[1]);
        return 0;
    }
    cs_autofree char *bundle = cs_path_join(r->dir, "bundle");
    cs_autofree char *log = cs_path_join(r->dir, "runc.log");
    char *argv[] = {
        (char *) r->runtime, "--root", r->state, "--log", log, "--log-format", "json", "run",
        "--bundle",          bundle,   r->id,    NULL
    };
    pid_t pid;
    int rc = spawn(argv, -1, outp[1], errp[1], &pid, err);
    close(outp[1]);
    close(errp[1]);
    if (rc < 0) {
        close(outp[0]);
        close(errp[0]);
        return rc;
    }
    r->started = true;
    int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
    bool out_ok = true, err_ok = true, exited = false;
    int fds[2] = { outp[0], errp[0] };
    double interrupted_at = 0, last_kill = 0, killed_at = 0, exited_at = 0;
    *sig = 0;
    *status = -1;
    char buf[65536];
    while (fds[0] >= 0 || fds[1] >= 0 || !exited) {
        struct pollfd p[4];
        int np = 0, idx[2] = { -1, -1 }, isig = -1, ipid = -1;
        for (int i = 0; i < 2; i++) {
            if (fds[i] >= 0) {
                idx[i] = np;
                p[np++] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
            }
        }
        if (sigfd >= 0 && !*sig) {
            isig = np;
            p[np++] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
        }
        if (pidfd >= 0 && !exited) {
            ipid = np;
            p[np++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
        }
        int timeout = (pidfd < 0 || *sig || exited) ? 200 : -1;
        int pr = poll(p, (nfds_t) np, timeout);
        if (pr < 0 && errno != EINTR) {
            rc = cs_err(err, CS_EIO, errno, "poll");
            kill_container(r);
            kill(pid, SIGKILL);
            break;
        }
        for (int i = 0; pr > 0 && i < 2; i++) {
            if (idx[i] < 0 || !(p[idx[i]].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(fds[i], buf, sizeof buf);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                close(fds[i]);
                fds[i] = -1;
                continue;
            }
            tail_add(r, buf, (size_t) n);
            if (i == 0)
                forward(r->o->out_fd, &out_ok, buf, (size_t) n);
            else
                forward(r->o->err_fd, &err_ok, buf, (size_t) n);
        }
        if (!*sig && (sig_caught || (isig >= 0 && pr > 0 && p[isig].revents))) {
            *sig = sig_caught ? sig_caught : SIGTERM;
            interrupted_at = last_kill = cs_now();
            kill_container(r);
        }
        if (!exited && (ipid < 0 || (pr > 0 && p[ipid].revents) || pidfd < 0)) {
            int st;
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid) {
                exited = true;
                exited_at = cs_now();
                *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
        }
        double now = cs_now();
        if (*sig && !exited) {
            /* the container may not exist yet when the signal came: retry,
             * and in the end kill the runtime itself (its state is deleted
             * after) */
            if (now - interrupted_at > 10 && !killed_at) {
                kill(pid, SIGKILL);
                killed_at = now;
            } else if (now - last_kill > 1) {
                kill_container(r);
                last_kill = now;
            }
        }
        if (exited && (fds[0] >= 0 || fds[1] >= 0) && now - exited_at > 5) {
            /* the runtime is gone but something still holds the pipes */
            runtime_delete(r->runtime, r->state, r->id);
            for (int i = 0; i < 2; i++) {
                if (fds[i] >= 0)
                    close(fds[i]);
                fds[i] = -1;
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
    if (!exited) {
        *status = wait_status(pid);
    }
    if (pidfd >= 0)
        close(pidfd);
    return rc;
}

/* Undoes what was set up; keeps the first error. */
static int
teardown(run *r, bool keep_upper, char **upper, cs_error **err)
{
    int rc = 0;
    if (r->started)
        runtime_delete(r->runtime, r->state, r->id);
    if (r->mounted) {
        int rootfd = open(r->rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd >= 0) {
            for (size_t i = r->nstubs; i-- > 0;)
                stub_clean(rootfd, &r->stubs[i]);
            close(rootfd);
        }
        if (umount_path(r->rootfs, err) < 0)
            rc = -CS_EIO;
    }
    /* anything the runtime may have left mounted under the run dir */
    if (umount_all_under(r->dir, rc ? NULL : err) < 0 && !rc)
        rc = -CS_EIO;
    if (keep_upper && !rc) {
        cs_autofree char *from = cs_path_join(r->dir, "upper");
        char *to = cs_xasprintf("%s-upper", r->dir);
        if (rename(from, to) < 0) {
            rc = cs_err(err, CS_EIO, errno, "rename '%s'", from);
            free(to);
        } else {
            *upper = to;
        }
    }
    if (rm_tree(r->dir, rc ? NULL : err) < 0 && !rc)
        rc = -CS_EIO;
    return rc;
}

/* Mounts, writes the bundle and runs; teardown() undoes it all. */
static int
run_in(run *r, int sigfd, int *status, int *sig, cs_error **err)
{
    int rc;
    json_t *mounts = NULL;
    if ((rc = make_dirs(r, err)) < 0 || (rc = mount_overlay(r, err)) < 0
        || (rc = make_mounts(r->o, &mounts, err)) < 0)
        return rc;
    /* remember the mount points the runtime will have to create */
    int rootfd = open(r->rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        json_decref(mounts);
        return cs_err(err, CS_EIO, errno, "open '%s'", r->rootfs);
    }
    size_t nm = json_array_size(mounts);
    r->stubs = cs_xcalloc(nm ? nm : 1, sizeof *r->stubs);
    for (size_t i = 0; i < nm; i++) {
        const char *d =
            json_string_value(json_object_get(json_array_get(mounts, i), "destination"));
        cs_autofree char *cd = clean_rel(d);
        bool nested = false; /* created inside another mount, not in the rootfs */
        for (size_t j = 0; j < i && !nested && cd; j++) {
            cs_autofree char *cp = clean_rel(
                json_string_value(json_object_get(json_array_get(mounts, j), "destination")));
            size_t lp = cp ? strlen(cp) : 0;
            nested = cp && !strncmp(cd, cp, lp) && cd[lp] == '/';
        }
        if (!nested && stub_record(rootfd, d, &r->stubs[r->nstubs]))
            r->nstubs++;
    }
    close(rootfd);
    cs_autofree char *cfg = cs_path_join(r->dir, "bundle/config.json");
    if ((rc = write_config(r->o, mounts, cfg, err)) < 0)
        return rc;
    if ((rc = supervise(r, sigfd, status, sig, err)) < 0)
        return rc;
    if (*sig)
        return cs_err(err, CS_EIO, 0, "interrupted by signal %d (%s)", *sig, sigabbrev_np(*sig));
    if (*status == 1) {
        cs_autofree char *msg = runtime_error(r);
        if (msg)
            return cs_err(err, CS_EIO, 0, "runtime '%s': %s", r->runtime, msg);
    }
    if (*status < 0)
        return cs_err(err, CS_EIO, 0, "runtime '%s' did not exit normally", r->runtime);
    return 0;
}

int
cs_run(cs_store *s, const cs_run_opts *o, cs_run_result *out, cs_error **err)
{
    memset(out, 0, sizeof *out);
    out->status = -1;
    if (!o->argv || !o->argv[0]) {
        out->tail = cs_xstrdup("");
        return cs_err(err, CS_EINVAL, 0, "run: no command");
    }
    if (o->cwd && o->cwd[0] != '/') {
        out->tail = cs_xstrdup("");
        return cs_err(err, CS_EINVAL, 0, "run: working dir '%s' is not absolute", o->cwd);
    }
    for (size_t i = 0; i < o->nlowers; i++) {
        if (!o->lowers[i] || o->lowers[i][0] != '/') {
            out->tail = cs_xstrdup("");
            return cs_err(err, CS_EINVAL, 0, "run: lower dir '%s' is not absolute",
                          o->lowers[i] ? o->lowers[i] : "");
        }
    }
    if (sig_caught) {
        out->tail = cs_xstrdup("");
        return cs_err(err, CS_EIO, 0, "interrupted by signal %d (%s)", sig_caught,
                      sigabbrev_np(sig_caught));
    }
    run r = { .o = o, .runtime = o->runtime ? o->runtime : "runc" };
    cs_buf_init(&r.tail);
    r.tmp = cs_path_join(cs_store_root(s), "tmp");
    r.state = cs_path_join(r.tmp, "runc");
    int rc = 0;
    if (mkdir(r.tmp, 0700) < 0 && errno != EEXIST) {
        rc = cs_err(err, CS_EIO, errno, "mkdir '%s'", r.tmp);
        goto out;
    }
    for (;;) {
        r.n = atomic_fetch_add(&run_seq, 1);
        r.dir = cs_xasprintf("%s/run-%ld-%u", r.tmp, (long) getpid(), r.n);
        if (mkdir(r.dir, 0700) == 0)
            break;
        int e = errno;
        free(r.dir);
        r.dir = NULL;
        if (e != EEXIST) {
            rc = cs_err(err, CS_EIO, e, "mkdir run dir in '%s'", r.tmp);
            goto out;
        }
    }
    r.rootfs = cs_path_join(r.dir, "bundle/rootfs");
    r.id = cs_xasprintf("cstore-%ld-%u", (long) getpid(), r.n);

    int sigfd = sig_acquire();
    int status = -1, sig = 0;
    rc = run_in(&r, sigfd, &status, &sig, err);
    char *upper = NULL;
    int trc = teardown(&r, o->keep_upper && rc == 0, &upper, rc ? NULL : err);
    if (rc == 0)
        rc = trc;
    if (rc == 0) {
        out->upper = upper;
        out->status = status;
    } else if (upper) {
        rm_tree(upper, NULL);
        free(upper);
    }
    sig_release();
    for (size_t i = 0; i < r.nstubs; i++)
        free(r.stubs[i].target);
    free(r.stubs);
out:
    out->tail = tail_lines(&r);
    cs_buf_release(&r.tail);
    free(r.tmp);
    free(r.state);
    free(r.dir);
    free(r.rootfs);
    free(r.id);
    return rc;
}

void
cs_run_result_release(cs_run_result *r)
{
    if (!r)
        return;
    free(r->upper);
    free(r->tail);
    r->upper = r->tail = NULL;
}

int
cs_run_cleanup_stale(cs_store *s, cs_error **err)
{
    cs_autofree char *tmp = cs_path_join(cs_store_root(s), "tmp");
    cs_autofree char *state = cs_path_join(tmp, "runc");
    DIR *d = opendir(tmp);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return cs_err(err, CS_EIO, errno, "open '%s'", tmp);
    }
    int count = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "run-", 4) != 0)
            continue;
        char *end;
        long pid = strtol(de->d_name + 4, &end, 10);
        if (pid <= 0 || *end != '-' || pid == (long) getpid())
            continue;
        if (kill((pid_t) pid, 0) == 0 || errno != ESRCH)
            continue; /* alive (or not ours to judge) */
        cs_autofree char *path = cs_path_join(tmp, de->d_name);
        char *tail;
        unsigned long n = strtoul(end + 1, &tail, 10);
        if (*tail == 0) {
            /* a run dir: its container, its mounts, then the files */
            cs_autofree char *id = cs_xasprintf("cstore-%ld-%lu", pid, n);
            runtime_delete("runc", state, id);
            if (umount_all_under(path, rc ? NULL : err) < 0 && !rc)
                rc = cs_err_wrap(err, "stale run '%s'", de->d_name);
        }
        if (rm_tree(path, rc ? NULL : err) < 0) {
            if (!rc)
                rc = cs_err_wrap(err, "stale run '%s'", de->d_name);
            continue;
        }
        count++;
    }
    closedir(d);
    return rc < 0 ? rc : count;
}
