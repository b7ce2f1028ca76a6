/* fuse.c - the FUSE server: tree views (treeview.h) through libfuse3's
 * low-level API (see cstore/fuse.h).
 *
 * Designed for the warm path, where round trips cost more than
 * decompression: entries and attributes never time out (trees never
 * change), OPEN and OPENDIR are answered ENOSYS so the kernel stops sending
 * them (and RELEASE) and keeps page cache and directory cache, READDIRPLUS
 * always, symlinks cached, reads up to 1 MiB, several threads. Replies are
 * built from memory: splice would only help for bytes held in a file. */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <unistd.h>
#include "cstore/fuse.h"
#include "cstore/treeview.h"

#define FOREVER    (86400.0 * 365 * 10) /* seconds: entries and attributes never change */
#define MAX_LAYERS 4096

typedef struct srv {
    cs_store *s;
    cs_treeview *tv;
    struct fuse_session *se;
    const char *mnt;
    int ctl;
} srv;

static cs_treeview *
req_tv(fuse_req_t req)
{
    return ((srv *) fuse_req_userdata(req))->tv;
}

static void
op_init(void *data, struct fuse_conn_info *c)
{
    (void) data;
    c->want |= c->capable & (FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_READDIRPLUS);
    c->want &= ~(unsigned) (FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_AUTO_INVAL_DATA);
    c->max_readahead = 1 << 20;
    c->time_gran = 1;
}

static void
fill_entry(struct fuse_entry_param *e, const struct stat *st)
{
    memset(e, 0, sizeof(*e));
    e->ino = st->st_ino;
    e->attr = *st;
    e->attr_timeout = FOREVER;
    e->entry_timeout = FOREVER;
}

static void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct stat st;
    struct fuse_entry_param e;
    int rc = cs_treeview_lookup(req_tv(req), parent, name, &st);
    if (rc == -ENOENT && parent != CS_TV_ROOT) {
        /* A negative entry, cached as long as the rest (views come and go
         * only at the root). */
        memset(&e, 0, sizeof(e));
        e.entry_timeout = FOREVER;
        fuse_reply_entry(req, &e);
        return;
    }
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    fill_entry(&e, &st);
    fuse_reply_entry(req, &e);
}

static void
op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void) fi;
    struct stat st;
    int rc = cs_treeview_getattr(req_tv(req), ino, &st);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, FOREVER);
}

static void
op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    const char *target;
    int rc = cs_treeview_readlink(req_tv(req), ino, &target);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_readlink(req, target);
}

/* No open round trips: the kernel remembers ENOSYS (no_open, no_opendir)
 * and opens with page cache and directory cache kept. */
static void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void) ino;
    if (fi->flags & (O_WRONLY | O_RDWR)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    fuse_reply_err(req, ENOSYS);
}

static void
op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void) fi;
    cs_autofree char *buf = cs_xmalloc(size ? size : 1);
    ssize_t n = cs_treeview_read(req_tv(req), ino, (uint64_t) off, size, buf);
    if (n < 0)
        fuse_reply_err(req, (int) -n);
    else
        fuse_reply_buf(req, buf, (size_t) n);
}

static void
do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
    cs_treeview *tv = req_tv(req);
    cs_autofree char *buf = cs_xmalloc(size);
    size_t used = 0;
    for (uint64_t idx = (uint64_t) off;; idx++) {
        const char *name;
        struct stat st;
        int rc = cs_treeview_dirent(tv, ino, idx, &name, &st);
        if (rc < 0 && !used) {
            fuse_reply_err(req, -rc);
            return;
        }
        if (rc <= 0)
            break;
        size_t need;
        if (plus) {
            struct fuse_entry_param e;
            fill_entry(&e, &st);
            need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t) idx + 1);
        } else {
            need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t) idx + 1);
        }
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
}

static void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void) fi;
    do_readdir(req, ino, size, off, false);
}

static void
op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void) fi;
    do_readdir(req, ino, size, off, true);
}

static void
op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    const void *v;
    size_t len;
    int rc = cs_treeview_getxattr(req_tv(req), ino, name, &v, &len);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else if (!size)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, v, len);
}

static void
op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    cs_autofree char *buf = size ? cs_xmalloc(size) : NULL;
    ssize_t n = cs_treeview_listxattr(req_tv(req), ino, buf, size);
    if (n < 0)
        fuse_reply_err(req, (int) -n);
    else if (!size)
        fuse_reply_xattr(req, (size_t) n);
    else
        fuse_reply_buf(req, buf, (size_t) n);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .open = op_open,
    .opendir = op_open,
    .read = op_read,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
};

/* ---- the control socket ---- */

static void
ctl_reply(srv *v, const char *word, const char *arg)
{
    cs_autofree char *line = cs_xasprintf("%s %s\n", word, arg);
    if (cs_write_all(v->ctl, line, strlen(line)) < 0)
        cs_store_warn(v->s, "fuse server: control socket: %s", strerror(errno));
}

/* The root lists the views, the one directory that changes: its attributes
 * and cached listing are dropped when a view is added (the kernel would
 * otherwise keep a listing read before, views missing, for ever). */
static void
root_changed(srv *v)
{
    int e = fuse_lowlevel_notify_inval_inode(v->se, FUSE_ROOT_ID, 0, 0);
    if (e < 0 && e != -ENOENT && e != -ENOTCONN)
        cs_store_warn(v->s, "fuse server: invalidate the root: %s", strerror(-e));
}

/* "view N HEX.." -> "ok NAME" or "err MESSAGE". */
static void
ctl_command(srv *v, char *line)
{
    char *save = NULL, *w = strtok_r(line, " ", &save);
    char *ns = strtok_r(NULL, " ", &save);
    long n = ns ? strtol(ns, NULL, 10) : -1;
    if (!w || strcmp(w, "view") || n < 0 || n > MAX_LAYERS)
        return ctl_reply(v, "err bad request", w ? w : "");
    cs_autofree cs_digest *layers = cs_xcalloc((size_t) n + 1, sizeof(cs_digest));
    for (long i = 0; i < n; i++) {
        char *h = strtok_r(NULL, " ", &save);
        cs_autofree char *full = cs_xasprintf("sha256:%s", h ? h : "");
        if (!cs_digest_parse(full, &layers[i]))
            return ctl_reply(v, "err bad layer digest", h ? h : "");
    }
    char name[CS_DIGEST_HEX];
    cs_error *err = NULL;
    if (cs_treeview_add(v->tv, layers, (size_t) n, name, &err) < 0) {
        ctl_reply(v, "err", err->msg);
        cs_error_free(err);
        return;
    }
    root_changed(v);
    ctl_reply(v, "ok", name);
}

/* The kernel reads ahead at most the mount's bdi read_ahead_kb (128 KiB by
 * default, whatever max_readahead says): 1 MiB halves the round trips of a
 * cold read and lets one request decompress several chunks. Best effort. */
static void
raise_readahead(const char *mnt)
{
    struct stat st;
    if (stat(mnt, &st) < 0)
        return;
    cs_autofree char *p =
        cs_xasprintf("/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev), minor(st.st_dev));
    cs_autoclose int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd >= 0 && cs_write_all(fd, "1024", 4) < 0)
        return; /* the kernel's default stays */
}

/* Serves requests until the socket closes, then unmounts (lazily: an
 * overlay may still use the mount; the loop ends when the kernel drops it). */
static void *
ctl_thread(void *arg)
{
    srv *v = arg;
    cs_buf in;
    cs_buf_init(&in);
    char chunk[4096];
    /* Here, not before the loop: stat of the mount point is a request. */
    raise_readahead(v->mnt);
    if (cs_write_all(v->ctl, "ready\n", 6) < 0)
        cs_store_warn(v->s, "fuse server: control socket: %s", strerror(errno));
    for (;;) {
        ssize_t r = read(v->ctl, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        cs_buf_append(&in, chunk, (size_t) r);
        char *nl;
        while ((nl = memchr(in.data, '\n', in.len))) {
            *nl = 0;
            ctl_command(v, (char *) in.data);
            size_t used = (size_t) (nl - (char *) in.data) + 1;
            memmove(in.data, nl + 1, in.len - used);
            in.len -= used;
        }
    }
    cs_buf_release(&in);
    fuse_session_exit(v->se);
    /* The client may have unmounted and removed it already. */
    if (umount2(v->mnt, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        cs_store_warn(v->s, "fuse server: unmount '%s': %s", v->mnt, strerror(errno));
    return NULL;
}

/* ---- the server ---- */

/* libfuse's own messages go to the warn hook: the library never prints. One
 * server per process, so one store to report to. */
static cs_store *log_store;

static void __attribute__((format(printf, 2, 0)))
fuse_log_warn(enum fuse_log_level level, const char *fmt, va_list ap)
{
    if (level > FUSE_LOG_WARNING)
        return;
    cs_autofree char *m = cs_xvasprintf(fmt, ap);
    size_t n = strlen(m);
    while (n && m[n - 1] == '\n')
        m[--n] = 0;
    cs_store_warn(log_store, "fuse server: %s", m);
}

static int
serve_mounted(srv *v, cs_error **err)
{
    pthread_t th;
    int e = pthread_create(&th, NULL, ctl_thread, v);
    if (e)
        return cs_err(err, CS_EIO, e, "fuse server: thread");
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, 16);
    fuse_loop_cfg_set_idle_threads(cfg, 4);
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    int rc = fuse_session_loop_mt(v->se, cfg);
    fuse_loop_cfg_destroy(cfg);
    shutdown(v->ctl, SHUT_RDWR); /* a loop that ended by itself: stop the thread */
    pthread_join(th, NULL);
    if (rc < 0 && rc != -ENODEV)
        return cs_err(err, CS_EIO, -rc, "fuse server: request loop");
    return 0;
}

int
cs_fuse_serve(cs_store *s, const char *mnt, int ctl, cs_error **err)
{
    char *argv[] = { "cstore", "-o",
                     "ro,allow_other,default_permissions,fsname=cstore,subtype=cstore", NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    srv v = { .s = s, .mnt = mnt, .ctl = ctl };
    log_store = s;
    fuse_set_log_func(fuse_log_warn);
    v.tv = cs_treeview_new(s, 0);
    v.se = fuse_session_new(&args, &ops, sizeof(ops), &v);
    int rc;
    if (!v.se)
        rc = cs_err(err, CS_EIO, 0, "fuse server: session");
    else if (fuse_session_mount(v.se, mnt) != 0)
        rc = cs_err(err, access("/dev/fuse", R_OK | W_OK) ? CS_EUNSUPPORTED : CS_EIO, errno,
                    "fuse server: mount '%s'", mnt);
    else {
        rc = serve_mounted(&v, err);
        fuse_session_unmount(v.se);
    }
    if (v.se)
        fuse_session_destroy(v.se);
    fuse_opt_free_args(&args);
    cs_treeview_free(v.tv);
    return rc;
}
