/* copy.c - COPY and ADD with BuildKit's semantics (dockerfile2llb's
 * dispatchCopy, the file op backend and fsutil's copier), on trees.
 *
 * Prepare turns every source argument into "items": a directory whose
 * contents are copied, or one non-directory (file, link, URL download,
 * heredoc). Their entries ("nodes") carry paths relative to the item and all
 * the metadata the layer needs, so the key can be computed and the layer
 * made without reading a byte of a context file again.
 */
#include "copy.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include "cstore/content.h"
#include "cstore/merged.h"
#include "fetch.h"

/* ---- prepared sources ---- */

typedef enum {
    I_DIR,    /* a directory: nodes are its entries, node 0 ("") itself */
    I_FILE,   /* one non-directory: node 0 */
    I_URL,    /* ADD <url>: node 0 */
    I_INLINE, /* heredoc: node 0 */
} ikind;

typedef struct item {
    ikind kind;
    char *name;      /* base name when copied into a directory */
    char *abs;       /* context file (ADD may extract it), else NULL */
    size_t first, n; /* its nodes */
} item;

struct cs_copy {
    bool is_add;
    char *dest;    /* clean, relative to the root ("" = root) */
    bool dest_dir; /* dest ends in "/" (or "/.", or is ".") */
    bool chown, chmod;
    uint32_t uid, gid, mode;
    int64_t clamp;
    item *items;
    size_t nitems, capitems;
    cs_entry *nodes; /* path = relative to the item */
    size_t nnodes, capnodes;
};

static cs_entry *
add_node(cs_copy *c)
{
    if (c->nnodes == c->capnodes) {
        c->capnodes = c->capnodes ? c->capnodes * 2 : 64;
        c->nodes = cs_xrealloc(c->nodes, c->capnodes * sizeof(cs_entry));
    }
    cs_entry *e = &c->nodes[c->nnodes++];
    memset(e, 0, sizeof(*e));
    return e;
}

static void
pop_node(cs_copy *c)
{
    cs_entry_release(&c->nodes[--c->nnodes]);
}

static item *
add_item(cs_copy *c, ikind kind, const char *name)
{
    if (c->nitems == c->capitems) {
        c->capitems = c->capitems ? c->capitems * 2 : 8;
        c->items = cs_xrealloc(c->items, c->capitems * sizeof(item));
    }
    item *it = &c->items[c->nitems++];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    it->name = cs_xstrdup(name);
    it->first = c->nnodes;
    return it;
}

void
cs_copy_free(cs_copy *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nitems; i++) {
        free(c->items[i].name);
        free(c->items[i].abs);
    }
    for (size_t i = 0; i < c->nnodes; i++)
        cs_entry_release(&c->nodes[i]);
    free(c->items);
    free(c->nodes);
    free(c->dest);
    free(c);
}

/* ---- paths ---- */

/* Clean relative form of p under the root: "/a/../b/" -> "b", "/" -> "".
 * ".." cannot climb above the root (BuildKit drops it). */
static char *
rel_clean(const char *p)
{
    cs_autofree char *abs = cs_xasprintf("/%s", p);
    char *c = cs_ignore_clean(abs);
    memmove(c, c + 1, strlen(c));
    return c;
}

static char *
join(const char *a, const char *b)
{
    if (!*a)
        return cs_xstrdup(b);
    if (!*b)
        return cs_xstrdup(a);
    return cs_xasprintf("%s/%s", a, b);
}

static const char *
base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the context: stat cache ---- */

/* statcache: key = absolute path (or 0x00 | sha256(path) when longer than
 * LMDB's key limit allows); value = dev u64 | ino u64 | size u64 |
 * mtime_ns u64 | ctime_ns u64 | mode u32 | content digest[32] (zero for an
 * empty file). One record per path, overwritten when the file changes. */
#define SC_VLEN    (5 * 8 + 4 + 32)
#define SC_MAXPATH 480

/* A second thread for lstat: on a 10,000-file context the stat calls are
 * most of a no-op rebuild, and they parallelize (path lookup is CPU). */
typedef struct statpool {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int dirfd;
    char **names;
    struct stat *sts;
    int *errs;
    size_t lo, hi;
    bool job, quit;
} statpool;

static void
stat_range(int dirfd, char **names, struct stat *sts, int *errs, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++)
        errs[i] = fstatat(dirfd, names[i], &sts[i], AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
}

static void *
statpool_main(void *arg)
{
    statpool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->job && !p->quit)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit)
            break;
        pthread_mutex_unlock(&p->mu);
        stat_range(p->dirfd, p->names, p->sts, p->errs, p->lo, p->hi);
        pthread_mutex_lock(&p->mu);
        p->job = false;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static statpool *
statpool_new(void)
{
    statpool *p = cs_xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->th, NULL, statpool_main, p)) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return NULL; /* then everything is stat'ed inline */
    }
    return p;
}

static void
statpool_free(statpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

/* lstat of every name in dirfd: sts[i], or errs[i] = errno. */
static void
stat_batch(statpool *p, int dirfd, char **names, size_t n, struct stat *sts, int *errs)
{
    if (!p || n < 32) {
        stat_range(dirfd, names, sts, errs, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->dirfd = dirfd;
    p->names = names;
    p->sts = sts;
    p->errs = errs;
    p->lo = 0;
    p->hi = n / 2;
    p->job = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    stat_range(dirfd, names, sts, errs, n / 2, n);
    pthread_mutex_lock(&p->mu);
    while (p->job)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

typedef struct ctxwalk {
    statpool *sp; /* made on the first large directory */
    cs_store *s;
    cs_db *db;
    cs_copy *c;
    MDB_txn *txn; /* lookups: the ingest's txn, or our own read txn */
    MDB_txn *rtxn;
    cs_ingest *ing; /* the caller's, or ours (made on the first miss) */
    cs_ingest *own_ing;
    const cs_ignore *ig;   /* .dockerignore: context-relative paths */
    const cs_ignore *excl; /* --exclude: item-relative paths */
    const cs_ignore *incl; /* --parents: item-relative paths */
    char *root;            /* realpath of the context */
    size_t rootlen;
    char *buf; /* root + "/" + context-relative path */
    size_t cap;
    int64_t now;
} ctxwalk;

static void
buf_set(ctxwalk *w, size_t at, const char *s)
{
    size_t n = strlen(s);
    if (at + n + 2 > w->cap) {
        w->cap = (at + n + 2) * 2;
        w->buf = cs_xrealloc(w->buf, w->cap);
    }
    memcpy(w->buf + at, s, n + 1);
}

static void
sc_key(const char *abs, uint8_t *key, size_t *klen)
{
    size_t n = strlen(abs);
    if (n <= SC_MAXPATH) {
        memcpy(key, abs, n);
        *klen = n;
        return;
    }
    cs_digest d;
    cs_sha256(abs, n, &d);
    key[0] = 0;
    memcpy(key + 1, d.b, 32);
    *klen = 33;
}

static void
put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}

static void
sc_value(const struct stat *st, const cs_digest *d, uint8_t *v)
{
    put_u64(v, (uint64_t) st->st_dev);
    put_u64(v + 8, (uint64_t) st->st_ino);
    put_u64(v + 16, (uint64_t) st->st_size);
    put_u64(v + 24, (uint64_t) st->st_mtim.tv_sec * 1000000000u + (uint64_t) st->st_mtim.tv_nsec);
    put_u64(v + 32, (uint64_t) st->st_ctim.tv_sec * 1000000000u + (uint64_t) st->st_ctim.tv_nsec);
    uint32_t m = st->st_mode;
    v[40] = (uint8_t) (m >> 24);
    v[41] = (uint8_t) (m >> 16);
    v[42] = (uint8_t) (m >> 8);
    v[43] = (uint8_t) m;
    memcpy(v + 44, d->b, 32);
}

static int
need_ingest(ctxwalk *w, cs_error **err)
{
    if (w->ing)
        return 0;
    int r = cs_ingest_begin(w->s, &w->own_ing, err);
    if (r < 0)
        return r;
    w->ing = w->own_ing;
    return 0;
}

/* The content digest of the regular file w->buf (name in dirfd, lstat st):
 * from the stat cache when path and stat match and the content is still
 * stored, else read and ingested. */
static int
file_content(ctxwalk *w, int dirfd, const char *name, const struct stat *st, cs_entry *e,
             cs_error **err)
{
    uint8_t key[SC_MAXPATH + 1], want[SC_VLEN];
    size_t klen;
    cs_digest zero = { 0 };
    sc_key(w->buf, key, &klen);
    sc_value(st, &zero, want);
    MDB_val k = { klen, key }, v;
    int rc = mdb_get(w->txn, cs_db_dbi(w->db, CS_T_STATCACHE), &k, &v);
    if (rc == 0 && v.mv_size == SC_VLEN && memcmp(v.mv_data, want, 44) == 0) {
        cs_digest d;
        memcpy(d.b, (const uint8_t *) v.mv_data + 44, 32);
        if (st->st_size == 0) {
            e->size = 0;
            return 0;
        }
        MDB_val ck = { 32, d.b }, cv;
        if (mdb_get(w->txn, cs_db_dbi(w->db, CS_T_CONTENTS), &ck, &cv) == 0) {
            e->size = (uint64_t) st->st_size;
            e->has_content = true;
            e->content = d;
            return 0;
        }
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        return cs_db_err(err, rc, "statcache");
    }
    int r = need_ingest(w, err);
    if (r < 0)
        return r;
    cs_autoclose int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "open %s", w->buf + w->rootlen + 1);
    struct stat fst;
    if (fstat(fd, &fst) < 0)
        return cs_err(err, CS_EIO, errno, "stat %s", w->buf + w->rootlen + 1);
    cs_digest d;
    uint64_t size = 0;
    r = cs_ingest_fd(w->ing, fd, &d, &size, err);
    if (r < 0)
        return cs_err_wrap(err, "%s", w->buf + w->rootlen + 1);
    e->size = size;
    e->has_content = size > 0;
    if (size > 0)
        e->content = d;
    /* Cache unless the file changed while read, or changed so recently that
     * another write in the same timestamp tick could go unnoticed. */
    int64_t m = (int64_t) fst.st_mtim.tv_sec * 1000000000 + fst.st_mtim.tv_nsec;
    int64_t ct = (int64_t) fst.st_ctim.tv_sec * 1000000000 + fst.st_ctim.tv_nsec;
    bool racy = w->now - m < 100000000 || w->now - ct < 100000000;
    if (!racy && size == (uint64_t) fst.st_size && fst.st_size == st->st_size) {
        uint8_t val[SC_VLEN];
        sc_value(&fst, size > 0 ? &d : &zero, val);
        r = cs_db_put(w->db, cs_ingest_txn(w->ing), CS_T_STATCACHE, key, klen, val, SC_VLEN, 0,
                      err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Fills e from a context entry (uid/gid 0, as BuildKit's context transfer
 * resets them). */
static int
ctx_entry(ctxwalk *w, int dirfd, const char *name, const struct stat *st, cs_entry *e,
          cs_error **err)
{
    e->mode = st->st_mode & 07777;
    e->mtime_sec = st->st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t) st->st_mtim.tv_nsec;
    switch (st->st_mode & S_IFMT) {
    case S_IFDIR:
        e->type = CS_E_DIR;
        return 0;
    case S_IFREG:
        e->type = CS_E_FILE;
        return file_content(w, dirfd, name, st, e, err);
    case S_IFLNK: {
        e->type = CS_E_SYMLINK;
        size_t cap = st->st_size > 0 ? (size_t) st->st_size + 1 : PATH_MAX;
        char *t = cs_xmalloc(cap);
        ssize_t n = readlinkat(dirfd, name, t, cap - 1);
        if (n < 0) {
            free(t);
            return cs_err(err, CS_EIO, errno, "readlink %s", w->buf + w->rootlen + 1);
        }
        t[n] = '\0';
        e->link = t;
        return 0;
    }
    case S_IFCHR:
    case S_IFBLK:
        e->type = S_ISCHR(st->st_mode) ? CS_E_CHAR : CS_E_BLOCK;
        e->devmajor = major(st->st_rdev);
        e->devminor = minor(st->st_rdev);
        return 0;
    case S_IFIFO:
        e->type = CS_E_FIFO;
        return 0;
    default:
        return 1; /* sockets: not representable in a layer, skipped */
    }
}

/* Walks the directory open as dirfd, whose context path is in w->buf up to
 * len (w->buf[len] == '\0'); item-relative paths start at item_off. */
static int
walk_ctx(ctxwalk *w, int dirfd, size_t len, size_t item_off, cs_error **err)
{
    char **names = NULL;
    size_t n = 0;
    int r = cs_dir_names(dirfd, w->buf, &names, &n, err);
    if (r < 0)
        return r;
    if (n >= 32 && !w->sp)
        w->sp = statpool_new();
    struct stat *sts = cs_xmalloc((n ? n : 1) * sizeof(struct stat));
    int *errs = cs_xmalloc((n ? n : 1) * sizeof(int));
    stat_batch(w->sp, dirfd, names, n, sts, errs);
    for (size_t i = 0; i < n && r >= 0; i++) {
        size_t at = len;
        if (w->buf[len - 1] != '/')
            w->buf[at++] = '/';
        buf_set(w, at, names[i]);
        const char *crel = w->buf + w->rootlen + 1;
        const char *irel = w->buf + item_off;
        struct stat st = sts[i];
        if (errs[i]) {
            r = cs_err(err, CS_EIO, errs[i], "lstat %s", crel);
            break;
        }
        bool ign = w->ig && cs_ignore_match(w->ig, crel, S_ISDIR(st.st_mode));
        bool exc = w->excl && cs_ignore_match(w->excl, irel, S_ISDIR(st.st_mode));
        bool inc = !w->incl || cs_ignore_match(w->incl, irel, S_ISDIR(st.st_mode));
        bool skip = ign || exc || !inc;
        if (!S_ISDIR(st.st_mode)) {
            if (skip)
                continue;
            cs_entry *e = add_node(w->c);
            e->path = cs_xstrdup(irel);
            r = ctx_entry(w, dirfd, names[i], &st, e, err);
            if (r == 1) {
                pop_node(w->c);
                r = 0;
            }
            continue;
        }
        /* A skipped directory is still entered when an exception (or the
         * include pattern) may pick something inside it; it is then kept
         * only if something was. */
        if ((ign && cs_ignore_skip_dir(w->ig, crel)) || (exc && cs_ignore_skip_dir(w->excl, irel))
            || (!inc && !cs_ignore_may_match_inside(w->incl, irel)))
            continue;
        size_t mark = w->c->nnodes;
        cs_entry *e = add_node(w->c);
        e->path = cs_xstrdup(irel);
        r = ctx_entry(w, dirfd, names[i], &st, e, err);
        if (r < 0)
            break;
        int cfd = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) {
            r = cs_err(err, CS_EIO, errno, "open %s", crel);
            break;
        }
        r = walk_ctx(w, cfd, strlen(w->buf), item_off, err);
        close(cfd);
        if (r >= 0 && skip && w->c->nnodes == mark + 1)
            pop_node(w->c);
    }
    free(sts);
    free(errs);
    cs_names_free(names, n);
    return r < 0 ? r : 0;
}

/* Resolves rel inside the context as a chroot would (BuildKit follows a
 * source's symlinks with the context as the root, so none leads out).
 * *out gets the clean context-relative result. Returns 1 when it exists
 * (*st filled), 0 when not (or a parent is not a directory), <0 on error. */
static int
ctx_resolve(ctxwalk *w, const char *rel, bool follow_last, char **out, struct stat *st,
            cs_error **err)
{
    char *rest = rel_clean(rel);
    char *cur = cs_xstrdup("");
    int links = 0, r = 1;
    while (*rest) {
        size_t cl = strcspn(rest, "/");
        char *comp = cs_xstrndup(rest, cl);
        char *next = cs_xstrdup(rest[cl] ? rest + cl + 1 : "");
        free(rest);
        rest = next;
        if (!strcmp(comp, "..")) {
            char *s = strrchr(cur, '/');
            if (s)
                *s = '\0';
            else
                cur[0] = '\0';
            free(comp);
            continue;
        }
        char *cand = join(cur, comp);
        free(comp);
        char *full = cs_xasprintf("%s/%s", w->root, cand);
        int sr = lstat(full, st);
        int se = errno;
        if (sr < 0) {
            free(full);
            free(cur);
            cur = cand;
            if (se == ENOENT || se == ENOTDIR) {
                r = 0;
                if (*rest) {
                    char *all = join(cur, rest);
                    free(cur);
                    cur = all;
                }
                break;
            }
            r = cs_err(err, CS_EIO, se, "lstat %s", cand);
            break;
        }
        if (S_ISLNK(st->st_mode) && (*rest || follow_last)) {
            if (++links > 40) {
                free(full);
                free(cand);
                r = cs_err(err, CS_EINVAL, 0, "%s: too many levels of symbolic links", rel);
                break;
            }
            char t[PATH_MAX];
            ssize_t n = readlink(full, t, sizeof(t) - 1);
            free(full);
            if (n < 0) {
                free(cand);
                r = cs_err(err, CS_EIO, errno, "readlink %s", rel);
                break;
            }
            t[n] = '\0';
            free(cand);
            if (t[0] == '/')
                cur[0] = '\0';
            char *nr = *rest ? cs_xasprintf("%s/%s", t, rest) : cs_xstrdup(t);
            free(rest);
            /* Relative to the root, or to cur: clean lexically, keeping
             * ".." parts for the loop to pop. */
            rest = cs_ignore_clean(nr);
            free(nr);
            if (rest[0] == '/')
                memmove(rest, rest + 1, strlen(rest));
            if (!strcmp(rest, "."))
                rest[0] = '\0';
            continue;
        }
        free(full);
        free(cur);
        cur = cand;
        if (*rest && !S_ISDIR(st->st_mode)) {
            r = 0;
            break;
        }
    }
    free(rest);
    if (r < 0) {
        free(cur);
        return r;
    }
    if (r == 1 && !*cur) {
        char *full = cs_xasprintf("%s/", w->root);
        if (lstat(full, st) < 0)
            r = cs_err(err, CS_EIO, errno, "lstat context");
        free(full);
    }
    *out = cur;
    return r;
}

static bool
ctx_ignored(ctxwalk *w, const char *crel, bool is_dir)
{
    if (!*crel || !w->ig)
        return false;
    if (!cs_ignore_match(w->ig, crel, is_dir))
        return false;
    /* An ignored directory is visible when an exception may keep
     * something inside it (checked by walking it). */
    return !is_dir || cs_ignore_skip_dir(w->ig, crel);
}

/* Adds the item for a resolved context path crel (name: its base name as
 * the source argument spelled it). */
static int
ctx_item(ctxwalk *w, const char *crel, const char *name, const struct stat *st, cs_error **err)
{
    cs_copy *c = w->c;
    buf_set(w, 0, w->root);
    if (*crel) {
        w->buf[w->rootlen] = '/';
        buf_set(w, w->rootlen + 1, crel);
    }
    if (!S_ISDIR(st->st_mode)) {
        item *it = add_item(c, I_FILE, name);
        it->abs = cs_xstrdup(w->buf);
        cs_entry *e = add_node(c);
        e->path = cs_xstrdup("");
        cs_autofree char *dir = cs_xstrndup(w->buf, (size_t) (strrchr(w->buf, '/') - w->buf));
        cs_autoclose int dfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            return cs_err(err, CS_EIO, errno, "open %s", *crel ? crel : ".");
        int r = ctx_entry(w, dfd, base_name(w->buf), st, e, err);
        if (r == 1) {
            pop_node(c);
            c->nitems--;
            free(it->name);
            free(it->abs);
            return 0;
        }
        it = &c->items[c->nitems - 1];
        it->n = c->nnodes - it->first;
        return r < 0 ? r : 1;
    }
    item *it = add_item(c, I_DIR, name);
    size_t idx = c->nitems - 1;
    cs_entry *e = add_node(c);
    e->path = cs_xstrdup("");
    e->type = CS_E_DIR;
    e->mode = st->st_mode & 07777;
    e->mtime_sec = st->st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t) st->st_mtim.tv_nsec;
    (void) it;
    cs_autoclose int fd = open(w->buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "open %s", *crel ? crel : ".");
    size_t len = strlen(w->buf);
    int r = walk_ctx(w, fd, len, len + 1, err);
    it = &c->items[idx];
    it->n = c->nnodes - it->first;
    if (r < 0)
        return r;
    if (*crel && w->ig && cs_ignore_match(w->ig, crel, true) && it->n == 1)
        return 0; /* all of it ignored: reported as missing by the caller */
    return 1;
}

/* ---- sources in a tree (COPY --from) ---- */

typedef struct treesrc {
    cs_copy *c;
    const cs_tree *t;
    const cs_ignore *excl, *incl;
} treesrc;

static void
node_from_entry(cs_entry *n, const cs_entry *e, const char *rel)
{
    cs_entry_copy(n, e);
    free(n->path);
    n->path = cs_xstrdup(rel);
    if (n->type == CS_E_HARDLINK) {
        /* The link's target is outside what is copied (or renamed): the
         * copy is a file with the same content. */
        n->type = CS_E_FILE;
        free(n->link);
        n->link = NULL;
    }
}

/* Entries of a tree directory real ("" = root), as an I_DIR item. */
static void
tree_dir_item(treesrc *ts, const char *real, const cs_entry *self, const char *name)
{
    cs_copy *c = ts->c;
    item *it = add_item(c, I_DIR, name);
    size_t idx = c->nitems - 1;
    (void) it;
    cs_entry *root = add_node(c);
    if (self) {
        node_from_entry(root, self, "");
    } else {
        root->path = cs_xstrdup("");
        root->type = CS_E_DIR;
        root->mode = 0755;
    }
    size_t lo, hi;
    cs_tree_under(ts->t, real, &lo, &hi);
    size_t off = *real ? strlen(real) + 1 : 0;
    /* Pass 1: entries picked by the patterns; pass 2: directories holding a
     * picked entry come along (fsutil creates parents lazily). */
    bool *keep = cs_xcalloc(hi - lo + 1, sizeof(bool));
    for (size_t i = lo; i < hi; i++) {
        const cs_entry *e = &ts->t->e[i];
        const char *rel = e->path + off;
        bool dir = e->type == CS_E_DIR;
        bool exc = ts->excl && cs_ignore_match(ts->excl, rel, dir);
        bool inc = !ts->incl || cs_ignore_match(ts->incl, rel, dir);
        keep[i - lo] = !exc && inc;
    }
    for (size_t i = lo; i < hi; i++) {
        if (!keep[i - lo])
            continue;
        const cs_entry *e = &ts->t->e[i];
        cs_autofree char *p = cs_xstrdup(e->path);
        for (char *s = strrchr(p, '/'); s; s = strrchr(p, '/')) {
            *s = '\0';
            if ((size_t) (s - p) < off)
                break; /* real itself */
            const cs_entry *pe = cs_tree_find(ts->t, p);
            if (!pe)
                break;
            size_t pi = (size_t) (pe - ts->t->e);
            if (pi < lo || pi >= hi || keep[pi - lo])
                break;
            keep[pi - lo] = true;
        }
    }
    for (size_t i = lo; i < hi; i++) {
        if (!keep[i - lo])
            continue;
        const cs_entry *e = &ts->t->e[i];
        node_from_entry(add_node(c), e, e->path + off);
    }
    free(keep);
    it = &c->items[idx];
    it->n = c->nnodes - it->first;
}

/* ---- source arguments ---- */

typedef struct match {
    char *path; /* clean, root-relative, as matched (not resolved) */
} match;

typedef struct matches {
    char **v;
    size_t n, cap;
} matches;

static void
matches_add(matches *m, char *p)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->v = cs_xrealloc(m->v, m->cap * sizeof(char *));
    }
    m->v[m->n++] = p;
}

static void
matches_release(matches *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i]);
    free(m->v);
    memset(m, 0, sizeof(*m));
}

/* Splits a clean relative path at its first component with a wildcard:
 * *d1 = the components before, comps = the rest. */
static size_t
split_wild(const char *p, char **d1, char ***comps)
{
    char **v = NULL;
    size_t n = 0;
    const char *s = p;
    size_t d1len = 0;
    bool found = false;
    while (*s) {
        size_t cl = strcspn(s, "/");
        char *comp = cs_xstrndup(s, cl);
        if (!found && cs_glob_has_wildcards(comp))
            found = true;
        if (found) {
            v = cs_xrealloc(v, (n + 1) * sizeof(char *));
            v[n++] = comp;
        } else {
            d1len = (size_t) (s - p) + cl;
            free(comp);
        }
        s += cl;
        if (*s)
            s++;
    }
    *d1 = cs_xstrndup(p, d1len);
    *comps = v;
    return n;
}

/* Matches comps[k..] under the context directory crel (walked without
 * following symlinks, like filepath.Walk). */
static int
ctx_glob(ctxwalk *w, const char *crel, char **comps, size_t k, size_t n, const char *shown,
         matches *out, cs_error **err)
{
    cs_autofree char *full = *crel ? cs_xasprintf("%s/%s", w->root, crel) : cs_xstrdup(w->root);
    cs_autoclose int fd = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* not a directory: nothing matches */
    char **names = NULL;
    size_t nn = 0;
    int r = cs_dir_names(fd, crel, &names, &nn, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < nn && r >= 0; i++) {
        int m = cs_glob_match(comps[k], names[i]);
        if (m < 0) {
            r = cs_err(err, CS_EPARSE, 0, "%s: syntax error in pattern", shown);
            break;
        }
        if (!m)
            continue;
        char *child = join(crel, names[i]);
        struct stat st;
        if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0
            || ctx_ignored(w, child, S_ISDIR(st.st_mode))) {
            free(child);
            continue;
        }
        if (k + 1 == n) {
            matches_add(out, child);
        } else {
            if (S_ISDIR(st.st_mode))
                r = ctx_glob(w, child, comps, k + 1, n, shown, out, err);
            free(child);
        }
    }
    cs_names_free(names, nn);
    return r;
}

/* Direct children of real in a sorted tree matching comps[k..]. */
static int
tree_glob(const cs_tree *t, const char *real, char **comps, size_t k, size_t n, const char *shown,
          matches *out, cs_error **err)
{
    size_t lo, hi;
    cs_tree_under(t, real, &lo, &hi);
    size_t off = *real ? strlen(real) + 1 : 0;
    for (size_t i = lo; i < hi; i++) {
        const cs_entry *e = &t->e[i];
        const char *name = e->path + off;
        if (strchr(name, '/'))
            continue;
        int m = cs_glob_match(comps[k], name);
        if (m < 0)
            return cs_err(err, CS_EPARSE, 0, "%s: syntax error in pattern", shown);
        if (!m)
            continue;
        if (k + 1 == n) {
            matches_add(out, cs_xstrdup(e->path));
        } else if (e->type == CS_E_DIR) {
            int r = tree_glob(t, e->path, comps, k + 1, n, shown, out, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static bool
is_url(const char *s)
{
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/* Resolves one source argument into items. Returns the number of items
 * added (0 for a wildcard matching nothing). */
static int
add_source(ctxwalk *w, treesrc *ts, const char *src, const cs_copy_opts *o, cs_error **err)
{
    cs_copy *c = w ? w->c : ts->c;
    size_t before = c->nitems;
    cs_autofree char *base = NULL;
    cs_autofree char *pattern = NULL;
    cs_ignore *incl = NULL;
    int r = 0;
    if (o->parents) {
        /* --parents: "base/./pattern" keeps the parents of pattern below
         * base; without "/./" base is the root. */
        const char *cut = strstr(src, "/./");
        if (cut) {
            base = cs_xstrndup(src, (size_t) (cut - src));
            pattern = rel_clean(cut + 3);
        } else {
            base = cs_xstrdup("/");
            pattern = rel_clean(src);
        }
        char *pv[1] = { pattern };
        if ((r = cs_ignore_new(pv, 1, &incl, err)) < 0)
            return r;
        if (w)
            w->incl = incl;
        else
            ts->incl = incl;
        src = base;
    }
    cs_autofree char *clean = rel_clean(src);
    char *d1 = NULL, **comps = NULL;
    size_t ncomps = split_wild(clean, &d1, &comps);
    matches m = { 0 };
    if (w) {
        if (ncomps) {
            cs_autofree char *real = NULL;
            struct stat st;
            r = ctx_resolve(w, d1, true, &real, &st, err);
            if (r == 0 || (r == 1 && !S_ISDIR(st.st_mode)))
                r = cs_err(err, CS_ENOTFOUND, 0, "lstat %s: no such file or directory",
                           *d1 ? d1 : ".");
            else if (r > 0)
                r = ctx_glob(w, real, comps, 0, ncomps, src, &m, err);
        } else {
            matches_add(&m, cs_xstrdup(clean));
        }
        for (size_t i = 0; r >= 0 && i < m.n; i++) {
            cs_autofree char *real = NULL;
            struct stat st;
            r = ctx_resolve(w, m.v[i], true, &real, &st, err);
            if (r == 1 && ctx_ignored(w, real, S_ISDIR(st.st_mode)))
                r = 0;
            if (r == 1)
                r = ctx_item(w, real, *m.v[i] ? base_name(m.v[i]) : ".", &st, err);
            if (r == 0 && !ncomps)
                r = cs_err(err, CS_ENOTFOUND, 0, "lstat %s: no such file or directory",
                           *clean ? clean : ".");
        }
        w->incl = NULL;
    } else {
        if (ncomps) {
            cs_autofree char *real = NULL;
            const cs_entry *e = NULL;
            r = cs_tree_resolve(ts->t, d1, true, &real, &e, err);
            if (r == -CS_ENOTFOUND)
                cs_error_clear(err);
            if (r == 0 || r == -CS_ENOTFOUND || (r == 1 && e && e->type != CS_E_DIR))
                r = cs_err(err, CS_ENOTFOUND, 0, "lstat %s: no such file or directory",
                           *d1 ? d1 : "/");
            else if (r > 0)
                r = tree_glob(ts->t, real, comps, 0, ncomps, src, &m, err);
        } else {
            matches_add(&m, cs_xstrdup(clean));
        }
        for (size_t i = 0; r >= 0 && i < m.n; i++) {
            cs_autofree char *real = NULL;
            const cs_entry *e = NULL;
            r = cs_tree_resolve(ts->t, m.v[i], true, &real, &e, err);
            if (r == -CS_ENOTFOUND) {
                cs_error_clear(err);
                r = 0;
            }
            if (r == 0 && !ncomps) {
                r = cs_err(err, CS_ENOTFOUND, 0, "lstat %s: no such file or directory",
                           *clean ? clean : "/");
            } else if (r == 1) {
                const char *name = *m.v[i] ? base_name(m.v[i]) : ".";
                if (!e || e->type == CS_E_DIR) {
                    tree_dir_item(ts, real, e, name);
                } else {
                    add_item(c, I_FILE, name);
                    node_from_entry(add_node(c), e, "");
                    c->items[c->nitems - 1].n = 1;
                }
            }
        }
        ts->incl = NULL;
    }
    if (r >= 0 && o->parents && !cs_glob_has_wildcards(pattern) && !cs_glob_has_wildcards(src)
        && c->nitems > before) {
        /* A literal --parents path must exist (BuildKit's RequiredPaths). */
        const item *it = &c->items[c->nitems - 1];
        bool found = !*pattern;
        for (size_t i = it->first; !found && i < it->first + it->n; i++)
            if (!strcmp(c->nodes[i].path, pattern))
                found = true;
        if (!found)
            r = cs_err(err, CS_ENOTFOUND, 0, "lstat %s: no such file or directory", pattern);
    }
    matches_release(&m);
    free(d1);
    for (size_t i = 0; i < ncomps; i++)
        free(comps[i]);
    free(comps);
    cs_ignore_free(incl);
    if (r < 0)
        return r;
    return (int) (c->nitems - before);
}

/* ---- URLs and heredocs ---- */

static int
tmp_fd(cs_store *s, cs_error **err)
{
    int fd = open(cs_store_root(s), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "temporary file");
    return fd;
}

static int
add_url(ctxwalk *w, cs_store *s, cs_copy *c, const char *url, const cs_copy_opts *o, cs_error **err)
{
    cs_digest want;
    if (o->checksum) {
        if (strncmp(o->checksum, "sha256:", 7) != 0 || !cs_digest_parse(o->checksum, &want))
            return cs_err(err, CS_EPARSE, 0, "invalid checksum digest format '%s'", o->checksum);
    }
    int r = need_ingest(w, err);
    if (r < 0)
        return r;
    cs_autoclose int fd = tmp_fd(s, err);
    if (fd < 0)
        return fd;
    int64_t mtime = -1;
    if ((r = cs_fetch_url(url, fd, &mtime, err)) < 0)
        return r;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return cs_err(err, CS_EIO, errno, "seek");
    cs_digest d;
    uint64_t size = 0;
    if ((r = cs_ingest_fd(w->ing, fd, &d, &size, err)) < 0)
        return cs_err_wrap(err, "%s", url);
    cs_digest got = d;
    if (size == 0)
        cs_sha256("", 0, &got);
    if (o->checksum && !cs_digest_eq(&got, &want)) {
        char gs[CS_DIGEST_STR];
        cs_digest_str(&got, gs);
        return cs_err(err, CS_ECORRUPT, 0, "digest mismatch for %s: %s (expected: %s)", url, gs,
                      o->checksum);
    }
    cs_autofree char *name = cs_fetch_filename(url);
    add_item(c, I_URL, name);
    cs_entry *e = add_node(c);
    e->path = cs_xstrdup("");
    e->type = CS_E_FILE;
    e->mode = 0600;
    e->mtime_sec = mtime > 0 ? mtime : 0;
    e->size = size;
    e->has_content = size > 0;
    if (size)
        e->content = d;
    c->items[c->nitems - 1].n = 1;
    return 0;
}

static int
add_inline(ctxwalk *w, cs_db *db, cs_copy *c, const cs_copy_inline *in, cs_error **err)
{
    cs_digest d;
    cs_sha256(in->data, in->len, &d);
    if (in->len) {
        MDB_val k = { 32, d.b }, v;
        int rc = mdb_get(w->txn, cs_db_dbi(db, CS_T_CONTENTS), &k, &v);
        if (rc == MDB_NOTFOUND) {
            int r = need_ingest(w, err);
            if (r < 0)
                return r;
            cs_autoclose int fd = memfd_create("cstore-heredoc", MFD_CLOEXEC);
            if (fd < 0)
                return cs_err(err, CS_EIO, errno, "memfd_create");
            if (cs_write_all(fd, in->data, in->len) < 0 || lseek(fd, 0, SEEK_SET) < 0)
                return cs_err(err, CS_EIO, errno, "heredoc %s", in->name);
            uint64_t size;
            if ((r = cs_ingest_fd(w->ing, fd, &d, &size, err)) < 0)
                return r;
        } else if (rc) {
            return cs_db_err(err, rc, "contents");
        }
    }
    cs_autofree char *name = rel_clean(in->name);
    add_item(c, I_INLINE, *name ? name : in->name);
    cs_entry *e = add_node(c);
    e->path = cs_xstrdup("");
    e->type = CS_E_FILE;
    e->mode = 0644;
    e->size = in->len;
    e->has_content = in->len > 0;
    if (in->len)
        e->content = d;
    c->items[c->nitems - 1].n = 1;
    return 0;
}

/* ---- the key ---- */

static void
h_u64(cs_sha256_ctx *h, uint64_t v)
{
    uint8_t b[8];
    put_u64(b, v);
    cs_sha256_update(h, b, 8);
}

static void
h_str(cs_sha256_ctx *h, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    h_u64(h, n);
    if (n)
        cs_sha256_update(h, s, n);
}

static void
compute_key(const cs_copy *c, const cs_copy_opts *o, cs_digest *key)
{
    cs_sha256_ctx *h = cs_sha256_new();
    h_str(h, "cstore-copy-v1");
    h_u64(h, o->is_add);
    h_str(h, c->dest);
    h_u64(h, c->dest_dir);
    h_u64(h, o->chown);
    h_u64(h, o->chown ? o->uid : 0);
    h_u64(h, o->chown ? o->gid : 0);
    h_u64(h, o->chmod);
    h_u64(h, o->chmod ? o->mode : 0);
    h_u64(h, o->nexcludes);
    for (size_t i = 0; i < o->nexcludes; i++)
        h_str(h, o->excludes[i]);
    h_u64(h, o->parents);
    h_str(h, o->checksum);
    h_u64(h, (uint64_t) o->clamp_mtime);
    h_u64(h, c->nitems);
    for (size_t i = 0; i < c->nitems; i++) {
        const item *it = &c->items[i];
        h_u64(h, it->kind);
        h_str(h, it->name);
        h_u64(h, it->n);
        for (size_t j = it->first; j < it->first + it->n; j++) {
            const cs_entry *e = &c->nodes[j];
            h_str(h, e->path);
            h_u64(h, e->type);
            h_u64(h, e->mode);
            h_u64(h, e->uid);
            h_u64(h, e->gid);
            /* ADD <url>: Last-Modified is not part of the key (Docker). */
            h_u64(h, it->kind == I_URL ? 0 : (uint64_t) e->mtime_sec);
            h_u64(h, it->kind == I_URL ? 0 : e->mtime_nsec);
            h_u64(h, e->size);
            h_u64(h, e->has_content);
            if (e->has_content)
                cs_sha256_update(h, e->content.b, 32);
            h_str(h, e->link);
            h_u64(h, e->devmajor);
            h_u64(h, e->devminor);
            h_str(h, e->uname);
            h_str(h, e->gname);
            h_u64(h, e->nxattrs);
            for (uint32_t x = 0; x < e->nxattrs; x++) {
                h_str(h, e->xattrs[x].name);
                h_u64(h, e->xattrs[x].len);
                cs_sha256_update(h, e->xattrs[x].value, e->xattrs[x].len);
            }
        }
    }
    cs_sha256_final(h, key);
    cs_sha256_free(h);
}

/* ---- step 1 ---- */

int
cs_copy_prepare(cs_store *s, cs_ingest *ing, const cs_copy_from *from, const cs_copy_opts *opts,
                const cs_tree *dest_tree, cs_copy **out, cs_digest *key, cs_error **err)
{
    (void) dest_tree;
    const cs_copy_opts *o = opts;
    cs_db *db = cs_store_db(s);
    if (o->nsrcs + o->ninl == 0)
        return cs_err(err, CS_EINVAL, 0, "no source files were specified");
    if (o->checksum) {
        if (!o->is_add)
            return cs_err(err, CS_EINVAL, 0, "checksum can't be specified for COPY");
        if (o->nsrcs + o->ninl != 1)
            return cs_err(err, CS_EINVAL, 0, "checksum can't be specified for multiple sources");
        if (!o->nsrcs || !is_url(o->srcs[0]))
            return cs_err(err, CS_EINVAL, 0, "checksum requires HTTP(S) or Git sources");
    }
    cs_copy *c = cs_xcalloc(1, sizeof(*c));
    c->is_add = o->is_add;
    c->chown = o->chown;
    c->uid = o->uid;
    c->gid = o->gid;
    c->chmod = o->chmod;
    c->mode = o->mode & 07777;
    c->clamp = o->clamp_mtime;
    const char *dest = o->dest && *o->dest ? o->dest : ".";
    size_t dl = strlen(dest);
    c->dest_dir =
        dest[dl - 1] == '/' || !strcmp(dest, ".") || (dl >= 2 && !strcmp(dest + dl - 2, "/."));
    if (dest[0] == '/') {
        c->dest = rel_clean(dest);
    } else {
        cs_autofree char *abs = cs_xasprintf("%s/%s", o->workdir ? o->workdir : "/", dest);
        c->dest = rel_clean(abs);
    }

    ctxwalk w = { 0 };
    w.s = s;
    w.db = db;
    w.c = c;
    w.ing = ing;
    w.ig = from ? from->ignore : NULL;
    w.now = now_ns();
    cs_ignore *excl = NULL;
    int r = 0;
    if (o->nexcludes)
        r = cs_ignore_new(o->excludes, o->nexcludes, &excl, err);
    w.excl = excl;
    if (r >= 0) {
        if (ing) {
            w.txn = cs_ingest_txn(ing);
        } else {
            r = cs_db_begin(db, MDB_RDONLY, &w.rtxn, err);
            w.txn = w.rtxn;
        }
    }
    bool ctx = from && from->context_dir && !from->tree;
    if (r >= 0 && ctx) {
        w.root = realpath(from->context_dir, NULL);
        if (!w.root)
            r = cs_err(err, CS_EIO, errno, "context '%s'", from->context_dir);
        else
            w.rootlen = strlen(w.root);
        if (r >= 0 && w.rootlen == 1) /* "/" as the context */
            w.rootlen = 0, w.root[0] = '\0';
        if (r >= 0)
            buf_set(&w, 0, w.root);
    }
    treesrc ts = { c, from ? from->tree : NULL, excl, NULL };
    size_t matched = 0;
    for (size_t i = 0; r >= 0 && i < o->nsrcs; i++) {
        const char *src = o->srcs[i];
        if (is_url(src)) {
            if (!o->is_add)
                r = cs_err(err, CS_EINVAL, 0, "source can't be a URL for COPY");
            else
                r = add_url(&w, s, c, src, o, err);
            matched++;
            continue;
        }
        if (!ctx && !(from && from->tree)) {
            r = cs_err(err, CS_EINVAL, 0, "%s: no build context to copy from", src);
            break;
        }
        r = add_source(ctx ? &w : NULL, ctx ? NULL : &ts, src, o, err);
        if (r > 0)
            matched += (size_t) r;
    }
    for (size_t i = 0; r >= 0 && i < o->ninl; i++) {
        r = add_inline(&w, db, c, &o->inl[i], err);
        matched++;
    }
    if (r >= 0 && !matched)
        r = cs_err(err, CS_ENOTFOUND, 0, "no source files were specified: '%s': no match",
                   o->nsrcs ? o->srcs[0] : "");
    if (r >= 0 && w.own_ing)
        r = cs_ingest_commit(w.own_ing, err);
    cs_ingest_free(w.own_ing);
    statpool_free(w.sp);
    if (w.rtxn)
        mdb_txn_abort(w.rtxn);
    cs_ignore_free(excl);
    free(w.root);
    free(w.buf);
    if (r < 0) {
        cs_copy_free(c);
        return r;
    }
    compute_key(c, o, key);
    *out = c;
    return 0;
}

/* ---- step 2: the layer ---- */

typedef struct layer {
    cs_copy *c;
    cs_db *db;
    const cs_tree *dt; /* the stage's merged tree (may be NULL) */
    cs_tree *out;
    /* Paths this layer made, with the index of their entry in out
     * (directories created, and the file a lone source became). */
    struct made {
        char *path;
        size_t idx;
        bool dir;
    } * made;
    size_t nmade, capmade;
} layer;

static struct made *
made_find(layer *l, const char *path)
{
    for (size_t i = l->nmade; i-- > 0;)
        if (!strcmp(l->made[i].path, path))
            return &l->made[i];
    return NULL;
}

static void
made_add(layer *l, const char *path, size_t idx, bool dir)
{
    if (l->nmade == l->capmade) {
        l->capmade = l->capmade ? l->capmade * 2 : 16;
        l->made = cs_xrealloc(l->made, l->capmade * sizeof(*l->made));
    }
    l->made[l->nmade++] = (struct made){ cs_xstrdup(path), idx, dir };
}

static void
clamp(const cs_copy *c, cs_entry *e)
{
    if (c->clamp >= 0 && e->mtime_sec > c->clamp) {
        e->mtime_sec = c->clamp;
        e->mtime_nsec = 0;
    }
}

/* Resolves path in the stage's tree through symlinks. 1 exists (*e may be
 * NULL: the root), 0 absent (*real where it would be), -CS_ENOTFOUND when a
 * parent is missing. */
static int
dest_resolve(layer *l, const char *path, char **real, const cs_entry **e, cs_error **err)
{
    *e = NULL;
    if (!l->dt || !l->dt->n) {
        *real = cs_xstrdup(path);
        return *path ? (strchr(path, '/') ? -CS_ENOTFOUND : 0) : 1;
    }
    *real = NULL;
    int r = cs_tree_resolve(l->dt, path, true, real, e, err);
    if (r == -CS_ENOTFOUND) {
        /* Parents missing from the stage: the path can only be under
         * directories this layer makes. */
        cs_error_clear(err);
        free(*real);
        *real = cs_xstrdup(path);
    }
    return r;
}

/* os.MkdirAll in the stage's tree plus this layer: *real gets the resolved
 * directory. Missing directories are added: mode 0755 (or --chmod),
 * owned by the --chown user, as fsutil's MkdirAll makes them. */
static int
mkdir_all(layer *l, const char *path, char **real, cs_error **err)
{
    const cs_entry *e;
    char *rp = NULL;
    int r = dest_resolve(l, path, &rp, &e, err);
    if (r < 0 && r != -CS_ENOTFOUND)
        return r;
    if (r == 1) {
        if (e && e->type != CS_E_DIR) {
            free(rp);
            return cs_err(err, CS_EEXIST, 0, "cannot copy to non-directory: /%s", path);
        }
        *real = rp;
        return 0;
    }
    if (r == -CS_ENOTFOUND) {
        free(rp);
        char *slash = strrchr(path, '/');
        cs_autofree char *parent = cs_xstrndup(path, slash ? (size_t) (slash - path) : 0);
        cs_autofree char *preal = NULL;
        if ((r = mkdir_all(l, parent, &preal, err)) < 0)
            return r;
        rp = join(preal, slash ? slash + 1 : path);
    }
    struct made *m = made_find(l, rp);
    if (m) {
        if (!m->dir) {
            r = cs_err(err, CS_EEXIST, 0, "cannot copy to non-directory: /%s", rp);
            free(rp);
            return r;
        }
        *real = rp;
        return 0;
    }
    if (strchr(rp, '/')) {
        cs_autofree char *parent = cs_xstrndup(rp, (size_t) (strrchr(rp, '/') - rp));
        cs_autofree char *preal = NULL;
        if ((r = mkdir_all(l, parent, &preal, err)) < 0) {
            free(rp);
            return r;
        }
    }
    cs_entry *ne = cs_tree_add(l->out);
    ne->path = cs_xstrdup(rp);
    ne->type = CS_E_DIR;
    ne->mode = l->c->chmod ? l->c->mode : 0755;
    ne->uid = l->c->chown ? l->c->uid : 0;
    ne->gid = l->c->chown ? l->c->gid : 0;
    ne->mtime_sec = l->c->clamp >= 0 ? l->c->clamp : 0;
    made_add(l, rp, l->out->n - 1, true);
    *real = rp;
    return 0;
}

/* Emits one copied entry at path with the options applied. */
static int
emit(layer *l, const cs_entry *n, const char *path, bool check, cs_error **err)
{
    const cs_copy *c = l->c;
    if (check && l->dt) {
        const cs_entry *old = cs_tree_find(l->dt, path);
        if (old && n->type == CS_E_DIR && old->type != CS_E_DIR)
            return cs_err(err, CS_EEXIST, 0, "cannot copy to non-directory: /%s", path);
        if (old && n->type != CS_E_DIR && old->type == CS_E_DIR)
            return cs_err(err, CS_EEXIST, 0, "cannot replace to directory /%s with file", path);
    }
    cs_entry *e = cs_tree_add(l->out);
    cs_entry_copy(e, n);
    free(e->path);
    e->path = cs_xstrdup(path);
    if (c->chown) {
        e->uid = c->uid;
        e->gid = c->gid;
        free(e->uname);
        free(e->gname);
        e->uname = e->gname = NULL;
    }
    if (c->chmod && e->type != CS_E_SYMLINK)
        e->mode = c->mode;
    clamp(c, e);
    return 0;
}

/* The compressions Docker recognizes in ADD. */
static void
support_filters(struct archive *a)
{
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_zstd(a);
}

/* ADD: is the file a tar archive (any compression libarchive knows)? Like
 * Docker, by content: the first header must read. */
static bool
is_archive(const char *path)
{
    struct archive *a = archive_read_new();
    support_filters(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    bool ok = false;
    if (archive_read_open_filename(a, path, 1 << 16) == ARCHIVE_OK) {
        struct archive_entry *ae;
        ok = archive_read_next_header(a, &ae) == ARCHIVE_OK;
    }
    archive_read_free(a);
    return ok;
}

typedef struct rawsrc {
    struct archive *a;
} rawsrc;

static ssize_t
raw_read(void *ctx, void *buf, size_t len)
{
    rawsrc *rs = ctx;
    la_ssize_t n = archive_read_data(rs->a, buf, len);
    if (n < 0) {
        errno = EIO;
        return -1;
    }
    return n;
}

/* Extracts the archive at abs under the directory dest (real path). */
static int
extract(layer *l, cs_ingest *ing, const item *it, const char *dreal, cs_error **err)
{
    struct archive *a = archive_read_new();
    support_filters(a);
    archive_read_support_format_raw(a);
    int r = 0;
    struct archive_entry *ae;
    if (archive_read_open_filename(a, it->abs, 1 << 16) != ARCHIVE_OK
        || archive_read_next_header(a, &ae) != ARCHIVE_OK) {
        r = cs_err(err, CS_EIO, 0, "%s: %s", it->name,
                   archive_error_string(a) ? archive_error_string(a) : "cannot read");
        archive_read_free(a);
        return r;
    }
    rawsrc rs = { a };
    cs_layer_info info;
    r = cs_ingest_tar(ing, it->name, raw_read, &rs, &info, err);
    archive_read_free(a);
    if (r < 0)
        return r;
    cs_tree *t = NULL;
    if ((r = cs_tree_get(l->db, cs_ingest_txn(ing), &info.tree, &t, err)) < 0)
        return r;
    for (size_t i = 0; i < t->n; i++) {
        cs_entry *e = &t->e[i];
        if (!*e->path)
            continue;
        cs_entry *ne = cs_tree_add(l->out);
        cs_entry_copy(ne, e);
        free(ne->path);
        ne->path = join(dreal, e->path);
        if (ne->type == CS_E_HARDLINK && ne->link) {
            char *lk = join(dreal, ne->link);
            free(ne->link);
            ne->link = lk;
        }
        free(ne->uname);
        free(ne->gname);
        ne->uname = ne->gname = NULL;
        if (l->c->chown) {
            ne->uid = l->c->uid;
            ne->gid = l->c->gid;
        }
        clamp(l->c, ne);
    }
    cs_tree_free(t);
    return 0;
}

static int
layer_dir_item(layer *l, const item *it, cs_error **err)
{
    const cs_copy *c = l->c;
    const cs_entry *root = &c->nodes[it->first];
    const cs_entry *e;
    cs_autofree char *real = NULL;
    int r = dest_resolve(l, c->dest, &real, &e, err);
    if (r < 0 && r != -CS_ENOTFOUND)
        return r;
    struct made *m = real ? made_find(l, real) : NULL;
    if ((r == 1 && e && e->type != CS_E_DIR) || (m && !m->dir))
        return cs_err(err, CS_EEXIST, 0, "cannot copy to non-directory: /%s", c->dest);
    if (r == 1 || m) {
        /* Copying into an existing directory keeps its metadata but takes
         * the source directory's times (fsutil restores them). */
        if (m) {
            cs_entry *d = &l->out->e[m->idx];
            d->mtime_sec = root->mtime_sec;
            d->mtime_nsec = root->mtime_nsec;
            clamp(c, d);
        } else if (e) {
            cs_entry *d = cs_tree_add(l->out);
            cs_entry_copy(d, e);
            d->mtime_sec = root->mtime_sec;
            d->mtime_nsec = root->mtime_nsec;
            clamp(c, d);
        }
    } else {
        free(real);
        real = NULL;
        if ((r = mkdir_all(l, c->dest, &real, err)) < 0)
            return r;
        m = made_find(l, real);
        if (m) {
            cs_entry *d = &l->out->e[m->idx];
            d->mtime_sec = root->mtime_sec;
            d->mtime_nsec = root->mtime_nsec;
            clamp(c, d);
        }
    }
    for (size_t i = it->first + 1; i < it->first + it->n; i++) {
        cs_autofree char *p = join(real, c->nodes[i].path);
        if ((r = emit(l, &c->nodes[i], p, true, err)) < 0)
            return r;
    }
    return 0;
}

static int
layer_file_item(layer *l, cs_ingest *ing, const item *it, size_t nfiles, cs_error **err)
{
    const cs_copy *c = l->c;
    const cs_entry *n = &c->nodes[it->first];
    cs_autofree char *target = NULL;
    int r;
    if (c->is_add && it->kind == I_FILE && it->abs && n->type == CS_E_FILE && n->has_content
        && is_archive(it->abs)) {
        cs_autofree char *dreal = NULL;
        /* fsutil's MkdirAll(dest, 0755, chown): --chmod does not apply. */
        bool chmod = l->c->chmod;
        l->c->chmod = false;
        r = mkdir_all(l, c->dest, &dreal, err);
        l->c->chmod = chmod;
        if (r < 0)
            return r;
        if (!ing)
            return cs_err(err, CS_EINVAL, 0, "ADD %s: extracting needs an ingest", it->name);
        return extract(l, ing, it, dreal, err);
    }
    if (c->dest_dir) {
        cs_autofree char *dreal = NULL;
        if ((r = mkdir_all(l, c->dest, &dreal, err)) < 0)
            return r;
        target = join(dreal, it->name);
    } else {
        const cs_entry *e;
        cs_autofree char *real = NULL;
        r = dest_resolve(l, c->dest, &real, &e, err);
        if (r < 0 && r != -CS_ENOTFOUND)
            return r;
        struct made *m = made_find(l, real);
        if ((r == 1 && (!e || e->type == CS_E_DIR)) || (m && m->dir)) {
            target = join(real, it->name);
        } else if (m || (r == 1 && nfiles > 1)) {
            return cs_err(err, CS_EINVAL, 0,
                          "when using COPY with more than one source file, the destination "
                          "must be a directory and end with a /");
        } else if (r == 1 || r == 0) {
            const char *slash = strrchr(real, '/');
            if (slash) {
                cs_autofree char *parent = cs_xstrndup(real, (size_t) (slash - real));
                cs_autofree char *preal = NULL;
                if ((r = mkdir_all(l, parent, &preal, err)) < 0)
                    return r;
            }
            target = cs_xstrdup(real);
        } else {
            const char *slash = strrchr(c->dest, '/');
            cs_autofree char *parent = cs_xstrndup(c->dest, (size_t) (slash - c->dest));
            cs_autofree char *preal = NULL;
            if ((r = mkdir_all(l, parent, &preal, err)) < 0)
                return r;
            target = join(preal, slash + 1);
        }
        if (!made_find(l, target))
            made_add(l, target, SIZE_MAX, false);
    }
    return emit(l, n, target, true, err);
}

int
cs_copy_layer(cs_store *s, cs_ingest *ing, cs_copy *c, const cs_tree *dest_tree, cs_tree **out,
              cs_error **err)
{
    layer l = { 0 };
    l.c = c;
    l.db = cs_store_db(s);
    l.dt = dest_tree;
    l.out = cs_tree_new();
    size_t nfiles = 0;
    for (size_t i = 0; i < c->nitems; i++)
        if (c->items[i].kind != I_DIR)
            nfiles++;
    int r = 0;
    for (size_t i = 0; r >= 0 && i < c->nitems; i++) {
        const item *it = &c->items[i];
        if (it->kind == I_DIR)
            r = layer_dir_item(&l, it, err);
        else
            r = layer_file_item(&l, ing, it, nfiles, err);
    }
    for (size_t i = 0; i < l.nmade; i++)
        free(l.made[i].path);
    free(l.made);
    if (r < 0) {
        cs_tree_free(l.out);
        return r;
    }
    cs_tree_sort(l.out);
    *out = l.out;
    return 0;
}

/* ---- --chown ---- */

static int
buf_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) err;
    cs_buf_append(ctx, p, n);
    return 0;
}

/* Reads /etc/passwd or /etc/group of tree into b (empty when absent). */
static int
read_tree_file(cs_store *s, MDB_txn *txn, const cs_tree *t, const char *path, cs_buf *b,
               cs_error **err)
{
    if (!t)
        return 0;
    cs_autofree char *real = NULL;
    const cs_entry *e = NULL;
    int r = cs_tree_resolve(t, path, true, &real, &e, err);
    if (r == -CS_ENOTFOUND) {
        cs_error_clear(err);
        return 0;
    }
    if (r <= 0)
        return r;
    if (!e || (e->type != CS_E_FILE && e->type != CS_E_HARDLINK) || !e->has_content)
        return 0;
    if (e->size > (10u << 20))
        return cs_err(err, CS_EINVAL, 0, "%s: too large", path);
    return cs_content_read(cs_store_db(s), txn, &e->content, false, buf_sink, b, err);
}

static bool
parse_id(const char *s, uint32_t *v)
{
    if (!*s)
        return false;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        x = x * 10 + (uint64_t) (*s - '0');
        if (x > UINT32_MAX)
            return false;
    }
    *v = (uint32_t) x;
    return true;
}

/* Finds name in a passwd/group file: field 3 (and 4) as numbers. */
static bool
lookup_name(const cs_buf *b, const char *name, uint32_t *f3, uint32_t *f4)
{
    const char *p = (const char *) b->data, *end = p + b->len;
    size_t nl = strlen(name);
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t) (end - p));
        const char *le = eol ? eol : end;
        if ((size_t) (le - p) > nl && !memcmp(p, name, nl) && p[nl] == ':') {
            cs_autofree char *line = cs_xstrndup(p, (size_t) (le - p));
            char *fields[4] = { 0 };
            char *tok = line;
            for (int i = 0; i < 4; i++) {
                char *colon = strchr(tok, ':');
                fields[i] = tok;
                if (!colon)
                    break;
                *colon = '\0';
                tok = colon + 1;
            }
            if (fields[2] && parse_id(fields[2], f3)) {
                if (f4 && !(fields[3] && parse_id(fields[3], f4)))
                    *f4 = 0;
                return true;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return false;
}

int
cs_copy_lookup_user(cs_store *s, MDB_txn *txn, const cs_tree *tree, const char *spec, uint32_t *uid,
                    uint32_t *gid, cs_error **err)
{
    cs_autofree char *user = cs_xstrdup(spec);
    char *group = strchr(user, ':');
    if (group)
        *group++ = '\0';
    uint32_t u = 0, g = 0;
    int r = 0;
    if (parse_id(user, &u)) {
        g = u;
    } else if (*user) {
        cs_buf b;
        cs_buf_init(&b);
        r = read_tree_file(s, txn, tree, "/etc/passwd", &b, err);
        bool found = r >= 0 && lookup_name(&b, user, &u, &g);
        cs_buf_release(&b);
        if (r < 0)
            return r;
        if (!found)
            return cs_err(err, CS_ENOTFOUND, 0, "unable to find user %s", user);
    }
    if (group && *group) {
        if (!parse_id(group, &g)) {
            cs_buf b;
            cs_buf_init(&b);
            r = read_tree_file(s, txn, tree, "/etc/group", &b, err);
            bool found = r >= 0 && lookup_name(&b, group, &g, NULL);
            cs_buf_release(&b);
            if (r < 0)
                return r;
            if (!found)
                return cs_err(err, CS_ENOTFOUND, 0, "unable to find group %s", group);
        }
    }
    *uid = u;
    *gid = g;
    return 0;
}
