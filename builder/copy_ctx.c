/* copy_ctx.c - sources in the build context: a source path resolved with the
 * context as root, wildcards matched, .dockerignore/--exclude/--parents
 * applied while walking, and every file's content found through the stat
 * cache (or ingested when it changed).
 */
#include "copy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "cstore/fsentry.h"

/* A file changed this recently (ns), or ahead of the clock, is not trusted:
 * another change in the same timestamp tick could go unnoticed. A timestamp
 * in whole seconds, from a filesystem that keeps no more (ext4 with 128-byte
 * inodes, HFS+, NFS; FAT: 2 s), is racy for COARSE_NS more. */
#define RACY_NS   100000000
#define COARSE_NS 2000000000
/* Names a directory needs for its subdirectories to be offered to the
 * helper (as copy_stat_batch shares no fewer than 32 lstats). */
#define PREFETCH_MIN 32

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

/* w->buf as a context-relative path, for messages. */
static const char *
ctx_rel(const ctxwalk *w)
{
    return w->buf + w->rootlen + 1;
}

int
copy_ctx_open(ctxwalk *w, const char *context_dir, cs_error **err)
{
    w->root = realpath(context_dir, NULL);
    if (!w->root)
        return cs_err(err, cs_sys_code(errno), errno, "context '%s'", context_dir);
    w->rootlen = strlen(w->root);
    if (w->rootlen == 1) /* "/" as the context */
        w->rootlen = 0, w->root[0] = '\0';
    buf_set(w, 0, w->root);
    return 0;
}

int
copy_need_ingest(ctxwalk *w, cs_error **err)
{
    if (w->ing)
        return 0;
    int r = cs_ingest_begin(w->s, &w->own_ing, err);
    if (r < 0)
        return r;
    w->ing = w->own_ing;
    return 0;
}

/* ---- file contents: the stat cache, else ingest ---- */

static void
set_content(cs_entry *e, uint64_t size, const cs_digest *d)
{
    e->size = size;
    e->has_content = size > 0;
    if (size > 0)
        e->content = *d;
}

static int64_t
ts_ns(const struct timespec *ts)
{
    return (int64_t) ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static bool
racy_ts(const ctxwalk *w, const struct timespec *ts)
{
    return w->now - ts_ns(ts) < RACY_NS + (ts->tv_nsec ? 0 : COARSE_NS);
}

static bool
is_racy(const ctxwalk *w, const struct stat *st)
{
    return racy_ts(w, &st->st_mtim) || racy_ts(w, &st->st_ctim);
}

static bool
same_stat(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size
           && ts_ns(&a->st_mtim) == ts_ns(&b->st_mtim) && ts_ns(&a->st_ctim) == ts_ns(&b->st_ctim)
           && a->st_mode == b->st_mode;
}

/* Remembers the content of the file just read, unless it changed while
 * read (fst, after opening, against st, before) or is too recent to trust.
 * The summary is written only when every file was remembered as the walk
 * saw it. */
static int
remember(ctxwalk *w, const struct stat *fst, const struct stat *st, uint64_t size,
         const cs_digest *d, cs_error **err)
{
    if (!same_stat(fst, st))
        w->untrusted = true;
    if (is_racy(w, fst) || size != (uint64_t) fst->st_size || fst->st_size != st->st_size) {
        w->untrusted = true;
        return 0;
    }
    cs_digest zero = { 0 };
    return cs_statcache_put(w->s, w->ing, w->buf, fst, size > 0 ? d : &zero, err);
}

static int
ingest_file(ctxwalk *w, int dirfd, const char *name, const struct stat *st, cs_entry *e,
            cs_error **err)
{
    int r = copy_need_ingest(w, err);
    if (r < 0)
        return r;
    cs_autoclose int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "open %s", ctx_rel(w));
    struct stat fst;
    if (fstat(fd, &fst) < 0)
        return cs_err(err, cs_sys_code(errno), errno, "stat %s", ctx_rel(w));
    cs_digest d;
    uint64_t size = 0;
    if ((r = cs_ingest_fd(w->ing, fd, &d, &size, err)) < 0) {
        cs_err_wrap(err, "%s", ctx_rel(w));
        return r;
    }
    set_content(e, size, &d);
    return remember(w, &fst, st, size, &d, err);
}

/* ---- the summary's state and pending contents ---- */

/* One entry the walk met: its item-relative path and lstat. One changed
 * within the racy window keeps the summary unwritten, whatever its type: a
 * symlink replaced in the same timestamp tick may get the same inode, size
 * and times (a file's content is guarded by remember() as well). */
static void
sum_entry(ctxwalk *w, const char *rel, const struct stat *st)
{
    if (is_racy(w, st))
        w->untrusted = true;
    size_t n = strlen(rel);
    uint8_t b[9 * 8];
    uint64_t f[9] = { 'e',
                      n,
                      (uint64_t) st->st_dev,
                      (uint64_t) st->st_ino,
                      (uint64_t) st->st_size,
                      (uint64_t) ts_ns(&st->st_mtim),
                      (uint64_t) ts_ns(&st->st_ctim),
                      (uint64_t) st->st_mode << 32 | (uint32_t) st->st_nlink,
                      (uint64_t) st->st_rdev };
    for (size_t i = 0; i < 9; i++)
        cs_be64_put(b + 8 * i, f[i]);
    cs_sha256_update(w->sum, b, sizeof(b));
    cs_sha256_update(w->sum, rel, n);
}

void
copy_ctx_state(ctxwalk *w, cs_digest *state)
{
    cs_sha256_final(w->sum, state);
}

/* The file w->buf (lstat st) of node e: its content is looked up later. */
static void
defer_content(ctxwalk *w, const struct stat *st, cs_entry *e)
{
    if (w->npend == w->cappend) {
        w->cappend = w->cappend ? w->cappend * 2 : 256;
        w->pend = cs_xrealloc(w->pend, w->cappend * sizeof(*w->pend));
    }
    w->pend[w->npend++] = (struct pending){
        (size_t) (e - w->c->nodes), (uint32_t) (w->roots.n - 1), st->st_mode, (uint64_t) st->st_dev,
        (uint64_t) st->st_ino,      (uint64_t) st->st_size,      st->st_mtim, st->st_ctim
    };
}

/* An item begins at w->buf: its pending files' paths start there. */
static void
sum_item(ctxwalk *w, int kind, const char *name)
{
    uint8_t b[3 * 8];
    cs_be64_put(b, 'i');
    cs_be64_put(b + 8, (uint64_t) kind);
    cs_be64_put(b + 16, strlen(name));
    cs_sha256_update(w->sum, b, sizeof(b));
    cs_sha256_update(w->sum, name, strlen(name));
    cs_strv_add(&w->roots, w->buf);
}

void
copy_ctx_release(ctxwalk *w)
{
    cs_sha256_free(w->sum);
    free(w->pend);
    cs_strv_release(&w->roots);
    copy_listings_release(w);
    copy_defer_release(w);
}

/* The directory of the context file w->buf, opened one component at a time
 * without following a symlink (the walk followed none below the context). */
static int
open_parent(ctxwalk *w, cs_error **err)
{
    char *rel = w->buf + w->rootlen + 1;
    int fd = open(w->rootlen ? w->root : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (char *s = strchr(rel, '/'); fd >= 0 && s; s = strchr(rel, '/')) {
        *s = '\0';
        int nfd = openat(fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        *s = '/';
        close(fd);
        fd = nfd;
        rel = s + 1;
    }
    if (fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "open %s", ctx_rel(w));
    return fd;
}

static int file_content_now(ctxwalk *w, int dirfd, const char *name, const struct stat *st,
                            cs_entry *e, cs_error **err);

int
copy_ctx_resolve(ctxwalk *w, cs_error **err)
{
    int r = 0;
    copy_defer_nodes(w);
    for (size_t i = 0; i < w->npend && r >= 0; i++) {
        const struct pending *p = &w->pend[i];
        struct stat st = { .st_dev = (dev_t) p->dev,
                           .st_ino = (ino_t) p->ino,
                           .st_size = (off_t) p->size,
                           .st_mtim = p->mtim,
                           .st_ctim = p->ctim,
                           .st_mode = p->mode };
        cs_entry *e = &w->c->nodes[p->node];
        buf_set(w, 0, w->roots.v[p->root]);
        if (*e->path) {
            size_t at = strlen(w->buf);
            w->buf[at++] = '/';
            buf_set(w, at, e->path);
        }
        cs_digest d;
        if ((r = cs_statcache_get(w->sc, w->buf, &st, &d, err)) != 0) {
            if (r > 0)
                set_content(e, p->size, &d);
            continue;
        }
        cs_autoclose int dfd = open_parent(w, err);
        if ((r = dfd) >= 0)
            r = file_content_now(w, dfd, copy_base_name(w->buf), &st, e, err);
    }
    if (r >= 0)
        r = copy_listings_put(w, err);
    return r < 0 ? r : 0;
}

/* The content of the regular file w->buf (name in dirfd, lstat st): from
 * the stat cache when path and stat match and the content is still stored,
 * else read and ingested; with a summary, later (copy_ctx_resolve). */
static int
file_content(ctxwalk *w, int dirfd, const char *name, const struct stat *st, cs_entry *e,
             cs_error **err)
{
    if (w->sum) {
        defer_content(w, st, e);
        return 0;
    }
    return file_content_now(w, dirfd, name, st, e, err);
}

static int
file_content_now(ctxwalk *w, int dirfd, const char *name, const struct stat *st, cs_entry *e,
                 cs_error **err)
{
    cs_digest d;
    int r = cs_statcache_get(w->sc, w->buf, st, &d, err);
    if (r < 0)
        return r;
    if (r == 0)
        return ingest_file(w, dirfd, name, st, e, err);
    set_content(e, (uint64_t) st->st_size, &d);
    return 0;
}

int
copy_read_link(ctxwalk *w, int dirfd, const char *name, const struct stat *st, char **out,
               cs_error **err)
{
    size_t cap = st->st_size > 0 ? (size_t) st->st_size + 1 : PATH_MAX;
    char *t = cs_xmalloc(cap);
    ssize_t n = readlinkat(dirfd, name, t, cap - 1);
    if (n < 0) {
        free(t);
        return cs_err(err, cs_sys_code(errno), errno, "readlink %s", ctx_rel(w));
    }
    t[n] = '\0';
    *out = t;
    return 0;
}

/* Fills e from a context entry (uid/gid 0, as BuildKit's context transfer
 * resets them). Returns 1 for what a layer cannot hold (sockets). */
static int
ctx_entry(ctxwalk *w, int dirfd, const char *name, const struct stat *st, cs_entry *e,
          cs_error **err)
{
    if (w->sum)
        sum_entry(w, e->path, st);
    e->mode = st->st_mode & 07777;
    e->mtime_sec = st->st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t) st->st_mtim.tv_nsec;
    if (cs_fsentry_kind(e, st) != 0)
        return 1;
    if (e->type == CS_E_FILE && st->st_nlink > 1)
        copy_link_node(w->c, (size_t) (e - w->c->nodes),
                       cs_xasprintf("%ju:%ju", (uintmax_t) st->st_dev, (uintmax_t) st->st_ino));
    if (e->type == CS_E_FILE)
        return file_content(w, dirfd, name, st, e, err);
    if (e->type == CS_E_SYMLINK)
        return copy_read_link(w, dirfd, name, st, &e->link, err);
    return 0;
}

/* ---- the walk ---- */

/* A node for the entry w->buf (item-relative path irel), or its record. */
static int
add_entry(ctxwalk *w, int dirfd, const char *name, const struct stat *st, const char *irel,
          cs_error **err)
{
    if (w->deferring) {
        sum_entry(w, irel, st);
        return copy_defer_add(w, dirfd, name, st, irel, err);
    }
    cs_entry *e = copy_add_node(w->c);
    e->path = cs_xstrdup(irel);
    int r = ctx_entry(w, dirfd, name, st, e, err);
    if (r == 1) {
        copy_pop_node(w->c);
        r = 0;
    }
    return r;
}

static int walk_ctx(ctxwalk *w, int dirfd, const struct stat *st, size_t len, size_t item_off,
                    dirlist *pre, cs_error **err);

/* A directory met by the walk: its node, then what is inside (listed ahead
 * by the helper: pre, taken). A skipped directory (skip) is kept only when
 * something inside it was. */
static int
walk_dir(ctxwalk *w, int dirfd, const char *name, const struct stat *st, size_t item_off, bool skip,
         dirlist *pre, cs_error **err)
{
    size_t mark = w->c->nnodes + w->nrecs;
    int r = add_entry(w, dirfd, name, st, w->buf + item_off, err);
    int cfd = r < 0 ? -1 : openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0) {
        if (pre)
            copy_dirlist_free(pre);
        return r < 0 ? r : cs_err(err, cs_sys_code(errno), errno, "open %s", ctx_rel(w));
    }
    r = walk_ctx(w, cfd, st, strlen(w->buf), item_off, pre, err);
    close(cfd);
    if (r >= 0 && skip && w->c->nnodes + w->nrecs == mark + 1) {
        if (w->deferring)
            w->nrecs--;
        else
            copy_pop_node(w->c);
    }
    return r;
}

/* What the walk does with the directory w->buf: 0 leaves it out, 1 walks
 * it, 2 walks it though it is skipped, as an exception (or the include
 * pattern) may pick something inside it. */
static int
dir_action(ctxwalk *w, size_t item_off)
{
    const char *crel = ctx_rel(w);
    const char *irel = w->buf + item_off;
    bool ign = w->ig && cs_ignore_match(w->ig, crel, true);
    bool exc = w->excl && cs_ignore_match(w->excl, irel, true);
    bool inc = !w->incl || cs_ignore_match(w->incl, irel, true);
    if ((ign && cs_ignore_skip_dir(w->ig, crel)) || (exc && cs_ignore_skip_dir(w->excl, irel))
        || (!inc && !cs_ignore_may_match_inside(w->incl, irel)))
        return 0;
    return ign || exc || !inc ? 2 : 1;
}

/* One non-directory of a walked directory, now in w->buf. */
static int
walk_file(ctxwalk *w, int dirfd, const char *name, const struct stat *st, size_t item_off,
          cs_error **err)
{
    const char *irel = w->buf + item_off;
    bool ign = w->ig && cs_ignore_match(w->ig, ctx_rel(w), false);
    bool exc = w->excl && cs_ignore_match(w->excl, irel, false);
    bool inc = !w->incl || cs_ignore_match(w->incl, irel, false);
    return ign || exc || !inc ? 0 : add_entry(w, dirfd, name, st, irel, err);
}

/* w->buf (a directory's path up to len) + "/" + name. */
static void
set_name(ctxwalk *w, size_t len, const char *name)
{
    size_t at = len;
    if (w->buf[len - 1] != '/')
        w->buf[at++] = '/';
    buf_set(w, at, name);
}

static void
need_pool(ctxwalk *w)
{
    if (!w->sp && !w->sp_tried)
        w->sp = copy_statpool_new();
    w->sp_tried = true;
}

/* The listing of the directory open as dirfd (w->buf, lstat st), made
 * here: its names from dl (known), its listing record or the directory. */
static int
list_here(ctxwalk *w, int dirfd, const struct stat *st, dirlist *dl, cs_error **err)
{
    int r = dl->names ? 1 : copy_listing_known(w, st, dl, err);
    if (r == 0)
        r = copy_list_names(dirfd, w->buf, dl, err);
    if (r < 0)
        return r;
    if (dl->n >= 32)
        need_pool(w);
    dl->sts = cs_xmalloc((dl->n ? dl->n : 1) * sizeof(struct stat));
    dl->errs = cs_xmalloc((dl->n ? dl->n : 1) * sizeof(int));
    copy_stat_batch(w->sp, dirfd, dl->names, dl->n, dl->sts, dl->errs);
    return 0;
}

/* act[i]: dir_action of dl's name i (0 for a non-directory); the
 * directories the walk enters (subs, in order) offered to the helper. */
static prefetch *
plan_dirs(ctxwalk *w, int dirfd, const dirlist *dl, size_t len, size_t item_off, uint8_t *act,
          char **subs)
{
    size_t nsub = 0;
    for (size_t i = 0; i < dl->n; i++) {
        act[i] = 0;
        if (dl->errs[i] || !S_ISDIR(dl->sts[i].st_mode))
            continue;
        set_name(w, len, dl->names[i]);
        if ((act[i] = (uint8_t) dir_action(w, item_off)))
            subs[nsub++] = dl->names[i];
    }
    w->buf[len] = '\0';
    /* In a small directory the helper's wake-ups (a futex and an IPI each,
     * costly in a VM) cost more than the listings it would take: a tree of
     * 3 subdirectories per level went from 28 to 44 ms offering each. */
    if (dl->n < PREFETCH_MIN || nsub < 2)
        return NULL;
    need_pool(w);
    if (!w->sp)
        return NULL;
    dirlist *known = copy_listings_known(w, dl, len, act, nsub); /* the helper only lstats */
    prefetch *f = copy_prefetch_begin(w->sp, dirfd, subs, known, nsub);
    free(known);
    return f;
}

/* Walks the directory open as dirfd (lstat st), whose context path is in
 * w->buf up to len (w->buf[len] == '\0'); item-relative paths start at
 * item_off. Its listing is pre (taken) when the helper made it (or its
 * names, when known). */
static int
walk_ctx(ctxwalk *w, int dirfd, const struct stat *st, size_t len, size_t item_off, dirlist *pre,
         cs_error **err)
{
    dirlist dl = { 0 };
    int r = 0;
    if (pre)
        dl = *pre, *pre = (dirlist){ 0 };
    if (!dl.sts && (r = list_here(w, dirfd, st, &dl, err)) < 0) {
        copy_dirlist_free(&dl);
        return r;
    }
    if (w->sum && dl.listed && !is_racy(w, st))
        copy_listing_note(w, st, &dl);
    uint8_t *act = cs_xmalloc(dl.n ? dl.n : 1);
    char **subs = cs_xmalloc((dl.n ? dl.n : 1) * sizeof(char *));
    prefetch *f = plan_dirs(w, dirfd, &dl, len, item_off, act, subs);
    for (size_t i = 0, k = 0; i < dl.n && r >= 0; i++) {
        set_name(w, len, dl.names[i]);
        if (dl.errs[i]) {
            r = cs_err(err, cs_sys_code(dl.errs[i]), dl.errs[i], "lstat %s", ctx_rel(w));
        } else if (!S_ISDIR(dl.sts[i].st_mode)) {
            r = walk_file(w, dirfd, dl.names[i], &dl.sts[i], item_off, err);
        } else if (act[i]) {
            dirlist sub = { 0 };
            bool got = copy_prefetch_take(f, k++, &sub);
            r = walk_dir(w, dirfd, dl.names[i], &dl.sts[i], item_off, act[i] == 2,
                         got || sub.names ? &sub : NULL, err);
        }
    }
    copy_prefetch_end(f);
    free(act);
    free(subs);
    copy_dirlist_free(&dl);
    return r < 0 ? r : 0;
}

/* ---- resolving a source path ---- */

typedef struct resolver {
    const ctxwalk *w;
    const char *rel; /* as asked, for messages */
    char *cur;       /* resolved so far */
    char *rest;      /* still to resolve */
    int links;
} resolver;

static char *
next_comp(resolver *rs)
{
    size_t cl = strcspn(rs->rest, "/");
    char *comp = cs_xstrndup(rs->rest, cl);
    char *next = cs_xstrdup(rs->rest[cl] ? rs->rest + cl + 1 : "");
    free(rs->rest);
    rs->rest = next;
    return comp;
}

static void
set_cur(resolver *rs, char *p)
{
    free(rs->cur);
    rs->cur = p;
}

/* Puts the target of the symlink at full in front of what is left: relative
 * to the root or to cur, cleaned lexically, keeping ".." parts for the loop
 * to pop. */
static int
follow_link(resolver *rs, const char *full, cs_error **err)
{
    if (++rs->links > 40)
        return cs_err(err, CS_EINVAL, 0, "%s: too many levels of symbolic links", rs->rel);
    char t[PATH_MAX];
    ssize_t n = readlink(full, t, sizeof(t) - 1);
    if (n < 0)
        return cs_err(err, cs_sys_code(errno), errno, "readlink %s", rs->rel);
    t[n] = '\0';
    if (t[0] == '/')
        rs->cur[0] = '\0';
    cs_autofree char *nr = *rs->rest ? cs_xasprintf("%s/%s", t, rs->rest) : cs_xstrdup(t);
    free(rs->rest);
    rs->rest = cs_ignore_clean(nr);
    if (rs->rest[0] == '/')
        memmove(rs->rest, rs->rest + 1, strlen(rs->rest));
    if (!strcmp(rs->rest, "."))
        rs->rest[0] = '\0';
    return 0;
}

/* The next component. 1: go on; 0: the path does not exist (cur holds
 * where it would be); <0: error. */
static int
resolve_step(resolver *rs, bool follow_last, struct stat *st, cs_error **err)
{
    cs_autofree char *comp = next_comp(rs);
    if (!strcmp(comp, "..")) {
        char *s = strrchr(rs->cur, '/');
        *(s ? s : rs->cur) = '\0';
        return 1;
    }
    char *cand = copy_join(rs->cur, comp);
    cs_autofree char *full = cs_xasprintf("%s/%s", rs->w->root, cand);
    if (lstat(full, st) < 0) {
        int se = errno;
        set_cur(rs, cand);
        if (se != ENOENT && se != ENOTDIR)
            return cs_err(err, cs_sys_code(se), se, "lstat %s", cand);
        if (*rs->rest)
            set_cur(rs, copy_join(rs->cur, rs->rest));
        return 0;
    }
    if (S_ISLNK(st->st_mode) && (*rs->rest || follow_last)) {
        free(cand);
        int r = follow_link(rs, full, err);
        return r < 0 ? r : 1;
    }
    set_cur(rs, cand);
    return *rs->rest && !S_ISDIR(st->st_mode) ? 0 : 1;
}

/* Resolves rel inside the context as a chroot would (BuildKit follows a
 * source's symlinks with the context as the root, so none leads out).
 * *out gets the clean context-relative result. Returns 1 when it exists
 * (*st filled), 0 when not (or a parent is not a directory), <0 on error. */
static int
ctx_resolve(ctxwalk *w, const char *rel, bool follow_last, char **out, struct stat *st,
            cs_error **err)
{
    resolver rs = { w, rel, cs_xstrdup(""), copy_rel_clean(rel), 0 };
    int r = 1;
    while (r == 1 && *rs.rest)
        r = resolve_step(&rs, follow_last, st, err);
    free(rs.rest);
    if (r == 1 && !*rs.cur) {
        cs_autofree char *full = cs_xasprintf("%s/", w->root);
        if (lstat(full, st) < 0)
            r = cs_err(err, cs_sys_code(errno), errno, "lstat context");
    }
    if (r < 0) {
        free(rs.cur);
        return r;
    }
    *out = rs.cur;
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

/* ---- items ---- */

static void
buf_set_ctx(ctxwalk *w, const char *crel)
{
    buf_set(w, 0, w->root);
    if (*crel) {
        w->buf[w->rootlen] = '/';
        buf_set(w, w->rootlen + 1, crel);
    }
}

/* The item for a non-directory at crel (in w->buf). 1 added, 0 skipped. */
static int
ctx_file_item(ctxwalk *w, const char *crel, const char *name, const struct stat *st, cs_error **err)
{
    cs_copy *c = w->c;
    if (w->sum)
        sum_item(w, I_FILE, name);
    item *it = copy_add_item(c, I_FILE, name);
    it->abs = cs_xstrdup(w->buf);
    cs_entry *e = copy_add_node(c);
    e->path = cs_xstrdup("");
    cs_autofree char *dir = cs_xstrndup(w->buf, (size_t) (strrchr(w->buf, '/') - w->buf));
    cs_autoclose int dfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "open %s", *crel ? crel : ".");
    int r = ctx_entry(w, dfd, copy_base_name(w->buf), st, e, err);
    if (r == 1) {
        copy_pop_node(c);
        copy_pop_item(c);
        return 0;
    }
    copy_end_item(c);
    return r < 0 ? r : 1;
}

/* The item for the directory at crel (in w->buf): it and its contents. 1
 * added, 0 when all of it is ignored (the caller reports it missing). */
static int
ctx_dir_item(ctxwalk *w, const char *crel, const char *name, const struct stat *st, cs_error **err)
{
    cs_copy *c = w->c;
    if (w->sum) {
        sum_item(w, I_DIR, name);
        sum_entry(w, "", st);
    }
    copy_add_item(c, I_DIR, name);
    cs_entry *e = copy_add_node(c);
    e->path = cs_xstrdup("");
    e->type = CS_E_DIR;
    e->mode = st->st_mode & 07777;
    e->mtime_sec = st->st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t) st->st_mtim.tv_nsec;
    cs_autoclose int fd = open(w->buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "open %s", *crel ? crel : ".");
    size_t len = strlen(w->buf), recs = w->nrecs;
    w->deferring = w->sum && !w->incl; /* --parents reads the nodes: none deferred */
    int r = walk_ctx(w, fd, st, len, len + 1, NULL, err);
    w->deferring = false;
    copy_end_item(c);
    if (r < 0)
        return r;
    if (*crel && w->ig && cs_ignore_match(w->ig, crel, true) && c->items[c->nitems - 1].n == 1
        && w->nrecs == recs)
        return 0;
    return 1;
}

/* ---- source arguments ---- */

/* Matches comps[k..] under the context directory crel (walked without
 * following symlinks, like filepath.Walk). */
static int
ctx_glob(ctxwalk *w, const char *crel, char **comps, size_t k, size_t n, const char *shown,
         cs_strv *out, cs_error **err)
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
        char *child = copy_join(crel, names[i]);
        struct stat st;
        if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0
            || ctx_ignored(w, child, S_ISDIR(st.st_mode))) {
            free(child);
        } else if (k + 1 == n) {
            cs_strv_push(out, child);
        } else {
            if (S_ISDIR(st.st_mode))
                r = ctx_glob(w, child, comps, k + 1, n, shown, out, err);
            free(child);
        }
    }
    cs_names_free(names, nn);
    return r;
}

int
copy_ctx_matches(ctxwalk *w, const srcarg *a, cs_strv *m, cs_error **err)
{
    if (!a->comps.n) {
        cs_strv_add(m, a->clean);
        return 0;
    }
    cs_autofree char *real = NULL;
    struct stat st;
    int r = ctx_resolve(w, a->d1, true, &real, &st, err);
    if (r == 0 || (r == 1 && !S_ISDIR(st.st_mode)))
        return cs_err(err, CS_ENOTFOUND, 0, "lstat %s: no such file or directory",
                      *a->d1 ? a->d1 : ".");
    if (r < 0)
        return r;
    return ctx_glob(w, real, a->comps.v, 0, a->comps.n, a->src, m, err);
}

int
copy_ctx_match_item(ctxwalk *w, const srcarg *a, const char *path, cs_error **err)
{
    cs_autofree char *real = NULL;
    struct stat st;
    int r = ctx_resolve(w, path, true, &real, &st, err);
    if (r == 1 && ctx_ignored(w, real, S_ISDIR(st.st_mode)))
        r = 0;
    if (r == 1) {
        const char *name = *path ? copy_base_name(path) : ".";
        buf_set_ctx(w, real);
        if (S_ISDIR(st.st_mode))
            r = ctx_dir_item(w, real, name, &st, err);
        else
            r = ctx_file_item(w, real, name, &st, err);
    }
    if (r == 0 && !a->comps.n)
        r = cs_err(err, CS_ENOTFOUND, 0, "lstat %s: no such file or directory",
                   *a->clean ? a->clean : ".");
    return r;
}
