/* fuse_client.c - the build's side of the FUSE server: choosing the
 * snapshotter, starting the server on first use, asking it for views,
 * stopping it, and unmounting what dead clients left (see cstore/fuse.h).
 *
 * ROOT/mnt/<pid>-<start time>/<n> is the mount point of client process pid's
 * n-th server: the start time tells a live client from a reused pid. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cstore/rcache.h"
#include "cstore/snapshot.h"
#include "cstore/treeview.h"
#include "fuse_int.h"
#include "lease_int.h"

struct cs_fuse_client {
    cs_snapshotter mode, resolved; /* as set; in effect (AUTO until resolved) */
    char *exe;                     /* runs CS_FUSE_VERB */
    pid_t pid;                     /* the server, 0 when none */
    int ctl;                       /* its control socket */
    char *dir, *mnt;               /* ROOT/mnt/<pid>-<start>, dir/<n> */
};

static struct cs_fuse_client *
client(cs_store *s)
{
    struct cs_fuse_client **slot = cs_store_fuse_slot(s);
    if (!*slot) {
        *slot = cs_xcalloc(1, sizeof(**slot));
        (*slot)->ctl = -1;
    }
    return *slot;
}

int
cs_snapshotter_parse(const char *name, cs_snapshotter *out, cs_error **err)
{
    static const char *const names[] = { "auto", "fuse", "unpack" };
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) {
            *out = (cs_snapshotter) i;
            return 0;
        }
    return cs_err(err, CS_EINVAL, 0, "snapshotter '%s': use fuse, unpack or auto", name);
}

void
cs_store_set_snapshotter(cs_store *s, cs_snapshotter mode, const char *exe)
{
    struct cs_fuse_client *c = client(s);
    c->mode = c->resolved = mode;
    free(c->exe);
    c->exe = exe ? cs_xstrdup(exe) : NULL;
}

cs_snapshotter
cs_store_snapshotter(cs_store *s)
{
    struct cs_fuse_client *c = client(s);
    if (c->resolved == CS_SNAP_AUTO) {
        int fd = c->exe ? open("/dev/fuse", O_RDWR | O_CLOEXEC) : -1;
        c->resolved = fd >= 0 ? CS_SNAP_FUSE : CS_SNAP_UNPACK;
        if (fd >= 0)
            close(fd);
    }
    return c->resolved;
}

bool
cs_store_snapshotter_adopts(cs_store *s)
{
    return client(s)->mode != CS_SNAP_FUSE;
}

/* AUTO: a base image served once is hot, and so is one already unpacked
 * (by --snapshotter unpack, or an earlier hot use). The mark is an empty
 * file beside the snapshots (ROOT/snapshots/<hex>.served); returns whether
 * the base is hot, marking it when not. */
static bool
base_hot(cs_store *s, const cs_digest *base)
{
    if (cs_snapshot_present(s, base))
        return true;
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(base, hex);
    cs_autofree char *dir = cs_path_join(cs_store_root(s), "snapshots");
    cs_autofree char *name = cs_xasprintf("%s.served", hex);
    cs_autofree char *path = cs_path_join(dir, name);
    if (access(path, F_OK) == 0)
        return true;
    cs_error *tmp = NULL;
    int fd =
        cs_mkdir_p(dir, 0700, &tmp) < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && !tmp)
        cs_err(&tmp, CS_EIO, errno, "'%s'", path);
    if (fd < 0)
        cs_store_warn_error(s, "mark a served base", &tmp);
    else
        close(fd);
    return false;
}

/* ---- the server process ---- */

/* Reads one line (without its newline) from the server into *line. */
static int
read_line(int fd, char **line, cs_error **err)
{
    cs_buf b;
    cs_buf_init(&b);
    char ch;
    for (;;) {
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            cs_buf_release(&b);
            return cs_err(err, CS_EIO, r < 0 ? errno : 0, "fuse server %s",
                          r < 0 ? "socket" : "exited (its error is above)");
        }
        if (ch == '\n')
            break;
        cs_buf_append(&b, &ch, 1);
    }
    cs_buf_u8(&b, 0);
    *line = (char *) cs_steal(&b.data);
    cs_buf_release(&b);
    return 0;
}

/* The mount point: ROOT/mnt/<pid>-<start>/<n>, made. */
static int
make_mountpoint(cs_store *s, struct cs_fuse_client *c, cs_error **err)
{
    static _Atomic unsigned seq;
    cs_autofree char *top = cs_path_join(cs_store_root(s), "mnt");
    free(c->dir);
    c->dir =
        cs_xasprintf("%s/%ld-%lld", top, (long) getpid(), (long long) cs_pid_start_time(getpid()));
    free(c->mnt);
    c->mnt = cs_xasprintf("%s/%u", c->dir, seq++);
    int rc = cs_mkdir_p(c->dir, 0700, err);
    if (rc == 0 && mkdir(c->mnt, 0700) < 0 && errno != EEXIST)
        rc = cs_err(err, CS_EIO, errno, "%s", c->mnt);
    return rc;
}

/* fork + exec of `exe __fuse-serve ROOT MNT` with fd 3 the socket, in its
 * own process group (a terminal's Ctrl-C must not take the mount away from
 * a build that is cleaning up); stdin and stdout /dev/null. */
static pid_t
spawn(cs_store *s, struct cs_fuse_client *c, int fd)
{
    char *argv[] = { c->exe, CS_FUSE_VERB, (char *) cs_store_root(s), c->mnt, NULL };
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int null = open("/dev/null", O_RDWR);
    if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(fd, 3) < 0)
        _exit(127);
    setpgid(0, 0);
    execv(c->exe, argv);
    _exit(127);
}

static int
start_server(cs_store *s, struct cs_fuse_client *c, cs_error **err)
{
    int sv[2];
    int rc = make_mountpoint(s, c, err);
    if (rc < 0)
        return rc;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return cs_err(err, CS_EIO, errno, "fuse server: socket");
    pid_t pid = spawn(s, c, sv[1]);
    int e = errno;
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return cs_err(err, CS_EIO, e, "fuse server: fork");
    }
    c->pid = pid;
    c->ctl = sv[0];
    cs_autofree char *line = NULL;
    rc = read_line(c->ctl, &line, err);
    if (rc == 0 && strcmp(line, "ready"))
        rc = cs_err(err, CS_EIO, 0, "fuse server: unexpected '%s'", line);
    if (rc < 0) {
        cs_fuse_stop(s);
        return rc;
    }
    return 0;
}

/* Asks the server for the view of layers: its directory. */
static int
request_view(struct cs_fuse_client *c, const cs_digest *layers, size_t n, char **dir,
             cs_error **err)
{
    cs_buf q;
    cs_buf_init(&q);
    cs_autofree char *head = cs_xasprintf("view %zu", n);
    cs_buf_append(&q, head, strlen(head));
    for (size_t i = 0; i < n; i++) {
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(&layers[i], hex);
        cs_buf_append(&q, " ", 1);
        cs_buf_append(&q, hex, 64);
    }
    cs_buf_append(&q, "\n", 1);
    int rc = cs_write_all(c->ctl, q.data, q.len) < 0
                 ? cs_err(err, CS_EIO, errno, "fuse server: socket")
                 : 0;
    cs_buf_release(&q);
    cs_autofree char *line = NULL;
    if (rc == 0 && (rc = read_line(c->ctl, &line, err)) == 0) {
        if (!strncmp(line, "ok ", 3))
            *dir = cs_path_join(c->mnt, line + 3);
        else
            rc = cs_err(err, CS_EIO, 0, "fuse server: %s",
                        strncmp(line, "err ", 4) ? line : line + 4);
    }
    return rc;
}

static int
served_lowers(cs_store *s, const cs_digest *layers, size_t n, cs_strv *lowers, cs_error **err)
{
    struct cs_fuse_client *c = client(s);
    cs_error *tmp = NULL;
    int rc = 0;
    if (!c->pid && c->mode == CS_SNAP_FUSE && (rc = start_server(s, c, err)) < 0)
        return rc;
    if (!c->pid && start_server(s, c, &tmp) < 0) { /* auto: unpack instead */
        cs_store_warn_error(s, "unpacking snapshots instead", &tmp);
        c->resolved = CS_SNAP_UNPACK;
        return 1;
    }
    char *dir = NULL;
    if ((rc = request_view(c, layers, n, &dir, err)) < 0)
        return rc;
    cs_strv_push(lowers, dir);
    return 0;
}

int
cs_lowers_get(cs_store *s, const cs_digest *layers, size_t n, cs_strv *lowers, cs_error **err)
{
    if (!n)
        return 0;
    if (cs_store_snapshotter(s) == CS_SNAP_FUSE
        && (client(s)->mode == CS_SNAP_FUSE || !base_hot(s, &layers[0]))) {
        /* A tree from an imported build cache: its bytes first (the
         * server reads chunks and cannot fetch them). */
        int rc = cs_rcache_fetch_trees(s, layers, n, NULL, err);
        if (rc < 0)
            return rc;
        rc = served_lowers(s, layers, n, lowers, err);
        if (rc <= 0)
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        char *dir = NULL;
        int rc = cs_snapshot_get(s, &layers[i], &dir, err);
        if (rc < 0)
            return rc;
        cs_strv_push(lowers, dir);
    }
    return 0;
}

/* ---- stopping, and what dead clients left ---- */

/* Unmounts (lazily: a mount of a dead server only answers ENOTCONN) and
 * removes the mount point path; then its parent dir when empty. */
static int
drop_mountpoint(const char *path, cs_error **err)
{
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        return cs_err(err, CS_EIO, errno, "unmount '%s'", path);
    if (rmdir(path) < 0 && errno != ENOENT)
        return cs_err(err, CS_EIO, errno, "remove '%s'", path);
    return 0;
}

void
cs_fuse_stop(cs_store *s)
{
    struct cs_fuse_client *c = *cs_store_fuse_slot(s);
    if (!c || !c->pid)
        return;
    /* The server unmounts and exits when its socket closes; unmounting here
     * too (lazily, so at once) frees the mount point without waiting ~30 ms
     * for that process to wind down. It is reaped if gone already, else it
     * exits by itself (a zombie until this process exits or stops another). */
    close(c->ctl);
    c->ctl = -1;
    cs_error *tmp = NULL;
    if (drop_mountpoint(c->mnt, &tmp) < 0)
        cs_store_warn_error(s, "fuse server", &tmp);
    rmdir(c->dir); /* fails while another server of this process uses it */
    waitpid(c->pid, NULL, WNOHANG);
    c->pid = 0;
}

void
cs_fuse_client_free(struct cs_fuse_client *c)
{
    if (!c)
        return;
    cs_free_all(c->exe, c->dir, c->mnt, c);
}

/* Unmounts and removes every mount point under ROOT/mnt/<name>. */
static int
clean_client_dir(const char *dir, cs_error **err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : cs_err(err, CS_EIO, errno, "%s", dir);
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            cs_autofree char *p = cs_path_join(dir, de->d_name);
            int r = drop_mountpoint(p, err);
            rc = rc < 0 ? rc : r;
        }
    closedir(d);
    if (rc == 0 && rmdir(dir) < 0 && errno != ENOENT)
        rc = cs_err(err, CS_EIO, errno, "remove '%s'", dir);
    return rc;
}

int
cs_fuse_clean_stale(cs_store *s, cs_error **err)
{
    cs_autofree char *top = cs_path_join(cs_store_root(s), "mnt");
    DIR *d = opendir(top);
    if (!d)
        return errno == ENOENT ? 0 : cs_err(err, CS_EIO, errno, "%s", top);
    cs_strv dead = { 0 };
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && !cs_pid_name_live(de->d_name))
            cs_strv_add(&dead, de->d_name);
    closedir(d);
    int rc = 0;
    for (size_t i = 0; i < dead.n; i++) {
        cs_autofree char *p = cs_path_join(top, dead.v[i]);
        int r = clean_client_dir(p, err);
        rc = rc < 0 ? rc : r;
    }
    cs_strv_release(&dead);
    return rc;
}
