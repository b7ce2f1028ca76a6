/* copy_src.c - what a source argument names: a path split at its first
 * wildcard (and --parents' "base/./pattern"), sources in a tree (COPY
 * --from), ADD's URLs, heredocs; and the cache key of the prepared sources.
 * Context paths are resolved in copy_ctx.c.
 */
#include "copy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "cstore/merged.h"
#include "fetch.h"

/* ---- source arguments ---- */

/* Splits a->clean at its first component with a wildcard. */
static void
split_wild(srcarg *a)
{
    const char *p = a->clean, *s = p;
    size_t d1len = 0;
    while (*s) {
        size_t cl = strcspn(s, "/");
        char *comp = cs_xstrndup(s, cl);
        if (a->comps.n || cs_glob_has_wildcards(comp)) {
            cs_strv_push(&a->comps, comp);
        } else {
            d1len = (size_t) (s - p) + cl;
            free(comp);
        }
        s += cl;
        if (*s)
            s++;
    }
    a->d1 = cs_xstrndup(p, d1len);
}

static int
srcarg_init(srcarg *a, const char *src, bool parents, cs_error **err)
{
    memset(a, 0, sizeof(*a));
    a->src = src;
    if (parents) {
        /* --parents: "base/./pattern" keeps the parents of pattern below
         * base; without "/./" base is the root. */
        const char *cut = strstr(src, "/./");
        a->base = cut ? cs_xstrndup(src, (size_t) (cut - src)) : cs_xstrdup("/");
        a->pattern = copy_rel_clean(cut ? cut + 3 : src);
        char *pv[1] = { a->pattern };
        int r = cs_ignore_new(pv, 1, &a->incl, err);
        if (r < 0)
            return r;
        a->src = a->base;
    }
    a->clean = copy_rel_clean(a->src);
    split_wild(a);
    return 0;
}

static void
srcarg_release(srcarg *a)
{
    cs_free_all(a->clean, a->d1, a->base, a->pattern);
    cs_strv_release(&a->comps);
    cs_ignore_free(a->incl);
}

/* A literal --parents path must exist (BuildKit's RequiredPaths). */
static int
parents_required(const cs_copy *c, const srcarg *a, size_t before, cs_error **err)
{
    if (cs_glob_has_wildcards(a->pattern) || cs_glob_has_wildcards(a->src) || c->nitems <= before
        || !*a->pattern)
        return 0;
    const item *it = &c->items[c->nitems - 1];
    for (size_t i = it->first; i < it->first + it->n; i++)
        if (!strcmp(c->nodes[i].path, a->pattern))
            return 0;
    return cs_err(err, CS_ENOTFOUND, 0, "lstat %s: no such file or directory", a->pattern);
}

/* ---- sources in a tree (COPY --from) ---- */

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

/* The file a hardlink of the tree ends at (chains followed), or NULL. */
static const char *
link_end(const cs_tree *t, const cs_entry *e)
{
    const char *p = e->link;
    for (size_t hops = 0; p && hops < t->n; hops++) {
        const cs_entry *x = cs_tree_find(t, p);
        if (!x || x->type != CS_E_HARDLINK)
            return x && x->type == CS_E_FILE ? p : NULL;
        p = x->link;
    }
    return NULL;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

void
copy_treesrc_release(treesrc *ts)
{
    for (size_t i = 0; i < ts->ntargets; i++)
        free(ts->targets[i]);
    free(ts->targets);
}

/* Gives the node just made from e (a file or hardlink of the tree) the path
 * of the inode's file as its link key, when other paths share it. */
static void
tree_link(treesrc *ts, const cs_entry *e)
{
    if (!ts->scanned) {
        ts->scanned = true;
        size_t cap = 0;
        for (size_t i = 0; i < ts->t->n; i++) {
            const char *end =
                ts->t->e[i].type == CS_E_HARDLINK ? link_end(ts->t, &ts->t->e[i]) : NULL;
            if (!end)
                continue;
            if (ts->ntargets == cap) {
                cap = cap ? cap * 2 : 16;
                ts->targets = cs_xrealloc(ts->targets, cap * sizeof(char *));
            }
            ts->targets[ts->ntargets++] = cs_xstrdup(end);
        }
        if (ts->ntargets)
            qsort(ts->targets, ts->ntargets, sizeof(char *), cmp_str);
    }
    const char *key = NULL;
    if (e->type == CS_E_HARDLINK)
        key = link_end(ts->t, e);
    else if (e->type == CS_E_FILE && ts->ntargets
             && bsearch(&e->path, ts->targets, ts->ntargets, sizeof(char *), cmp_str))
        key = e->path;
    if (key)
        copy_link_node(ts->c, ts->c->nnodes - 1, cs_xstrdup(key));
}

/* Which entries of t[lo, hi) (paths under a directory, item-relative from
 * off) are copied: those the patterns pick, then the directories holding a
 * picked entry (fsutil creates parents lazily). */
static bool *
tree_pick(const treesrc *ts, size_t lo, size_t hi, size_t off)
{
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
        cs_autofree char *p = cs_xstrdup(ts->t->e[i].path);
        for (char *s = strrchr(p, '/'); s; s = strrchr(p, '/')) {
            *s = '\0';
            if ((size_t) (s - p) < off)
                break; /* the directory copied itself */
            const cs_entry *pe = cs_tree_find(ts->t, p);
            if (!pe)
                break;
            size_t pi = (size_t) (pe - ts->t->e);
            if (pi < lo || pi >= hi || keep[pi - lo])
                break;
            keep[pi - lo] = true;
        }
    }
    return keep;
}

/* Entries of a tree directory real ("" = root), as an I_DIR item. */
static void
tree_dir_item(treesrc *ts, const char *real, const cs_entry *self, const char *name)
{
    cs_copy *c = ts->c;
    copy_add_item(c, I_DIR, name);
    cs_entry *root = copy_add_node(c);
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
    cs_autofree bool *keep = tree_pick(ts, lo, hi, off);
    for (size_t i = lo; i < hi; i++) {
        const cs_entry *e = &ts->t->e[i];
        if (keep[i - lo]) {
            node_from_entry(copy_add_node(c), e, e->path + off);
            tree_link(ts, e);
        }
    }
    copy_end_item(c);
}

/* Direct children of real in a sorted tree matching comps[k..]. */
static int
tree_glob(const cs_tree *t, const char *real, char **comps, size_t k, size_t n, const char *shown,
          cs_strv *out, cs_error **err)
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
            cs_strv_add(out, e->path);
        } else if (e->type == CS_E_DIR) {
            int r = tree_glob(t, e->path, comps, k + 1, n, shown, out, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* The tree paths a source argument names: itself, or what its wildcards
 * match. */
static int
tree_matches(treesrc *ts, const srcarg *a, cs_strv *m, cs_error **err)
{
    if (!a->comps.n) {
        cs_strv_add(m, a->clean);
        return 0;
    }
    cs_autofree char *real = NULL;
    const cs_entry *e = NULL;
    int r = cs_tree_resolve(ts->t, a->d1, true, &real, &e, err);
    if (r == -CS_ENOTFOUND)
        cs_error_clear(err); /* said again below, as Docker words it */
    if (r == 0 || r == -CS_ENOTFOUND || (r == 1 && e && e->type != CS_E_DIR))
        return cs_err(err, CS_ENOTFOUND, 0, "lstat %s: no such file or directory",
                      *a->d1 ? a->d1 : "/");
    if (r < 0)
        return r;
    return tree_glob(ts->t, real, a->comps.v, 0, a->comps.n, a->src, m, err);
}

static int
tree_match_item(treesrc *ts, const srcarg *a, const char *path, cs_error **err)
{
    cs_autofree char *real = NULL;
    const cs_entry *e = NULL;
    int r = cs_tree_resolve(ts->t, path, true, &real, &e, err);
    if (r == -CS_ENOTFOUND) {
        cs_error_clear(err); /* a missing parent: missing */
        r = 0;
    }
    if (r == 0 && !a->comps.n)
        return cs_err(err, CS_ENOTFOUND, 0, "lstat %s: no such file or directory",
                      *a->clean ? a->clean : "/");
    if (r != 1)
        return r;
    const char *name = *path ? copy_base_name(path) : ".";
    if (!e || e->type == CS_E_DIR) {
        tree_dir_item(ts, real, e, name);
    } else {
        copy_add_item(ts->c, I_FILE, name);
        node_from_entry(copy_add_node(ts->c), e, "");
        tree_link(ts, e);
        copy_end_item(ts->c);
    }
    return 1;
}

/* The items of a source argument: each path it names, in the context
 * (when there is one) or in the tree. */
static int
add_matches(ctxwalk *w, treesrc *ts, const srcarg *a, cs_error **err)
{
    cs_strv m = { 0 };
    bool ctx = w->root != NULL;
    w->incl = ts->incl = a->incl;
    int r = ctx ? copy_ctx_matches(w, a, &m, err) : tree_matches(ts, a, &m, err);
    for (size_t i = 0; r >= 0 && i < m.n; i++)
        r = ctx ? copy_ctx_match_item(w, a, m.v[i], err) : tree_match_item(ts, a, m.v[i], err);
    w->incl = ts->incl = NULL;
    cs_strv_release(&m);
    return r;
}

int
copy_add_source(ctxwalk *w, treesrc *ts, const char *src, const cs_copy_opts *o, cs_error **err)
{
    cs_copy *c = w->c;
    size_t before = c->nitems;
    srcarg a;
    int r = srcarg_init(&a, src, o->parents, err);
    if (r >= 0)
        r = add_matches(w, ts, &a, err);
    if (r >= 0 && o->parents)
        r = parents_required(c, &a, before, err);
    srcarg_release(&a);
    return r < 0 ? r : (int) (c->nitems - before);
}

/* ---- URLs and heredocs ---- */

bool
copy_is_url(const char *s)
{
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/* A one-file item (URL download, heredoc) whose content is stored. */
static void
file_item(cs_copy *c, ikind kind, const char *name, uint32_t mode, int64_t mtime, uint64_t size,
          const cs_digest *d)
{
    copy_add_item(c, kind, name);
    cs_entry *e = copy_add_node(c);
    e->path = cs_xstrdup("");
    e->type = CS_E_FILE;
    e->mode = mode;
    e->mtime_sec = mtime;
    e->size = size;
    e->has_content = size > 0;
    if (size)
        e->content = *d;
    copy_end_item(c);
}

static int
tmp_fd(cs_store *s, cs_error **err)
{
    int fd = open(cs_store_root(s), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "temporary file");
    return fd;
}

/* Downloads url into a temporary file and ingests it. */
static int
fetch_url(ctxwalk *w, const char *url, cs_digest *d, uint64_t *size, int64_t *mtime, cs_error **err)
{
    int r = copy_need_ingest(w, err);
    if (r < 0)
        return r;
    cs_autoclose int fd = tmp_fd(w->s, err);
    if (fd < 0)
        return fd;
    if ((r = cs_fetch_url(url, fd, mtime, err)) < 0)
        return r;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return cs_err(err, cs_sys_code(errno), errno, "seek");
    if ((r = cs_ingest_fd(w->ing, fd, d, size, err)) < 0)
        cs_err_wrap(err, "%s", url);
    return r;
}

int
copy_add_url(ctxwalk *w, const char *url, const cs_copy_opts *o, cs_error **err)
{
    cs_digest want;
    if (o->checksum) {
        if (strncmp(o->checksum, "sha256:", 7) != 0 || !cs_digest_parse(o->checksum, &want))
            return cs_err(err, CS_EPARSE, 0, "invalid checksum digest format '%s'", o->checksum);
    }
    cs_digest d;
    uint64_t size = 0;
    int64_t mtime = -1;
    int r = fetch_url(w, url, &d, &size, &mtime, err);
    if (r < 0)
        return r;
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
    file_item(w->c, I_URL, name, 0600, mtime > 0 ? mtime : 0, size, &d);
    return 0;
}

/* Stores a heredoc's bytes unless its content is stored already. */
static int
ingest_inline(ctxwalk *w, const cs_copy_inline *in, cs_digest *d, cs_error **err)
{
    int r = cs_statcache_has_content(w->sc, d, err);
    if (r != 0)
        return r < 0 ? r : 0;
    if ((r = copy_need_ingest(w, err)) < 0)
        return r;
    cs_autoclose int fd = memfd_create("cstore-heredoc", MFD_CLOEXEC);
    if (fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "memfd_create");
    if (cs_write_all(fd, in->data, in->len) < 0 || lseek(fd, 0, SEEK_SET) < 0)
        return cs_err(err, cs_sys_code(errno), errno, "heredoc %s", in->name);
    uint64_t size;
    return cs_ingest_fd(w->ing, fd, d, &size, err);
}

int
copy_add_inline(ctxwalk *w, const cs_copy_inline *in, cs_error **err)
{
    cs_digest d;
    cs_sha256(in->data, in->len, &d);
    int r = in->len ? ingest_inline(w, in, &d, err) : 0;
    if (r < 0)
        return r;
    cs_autofree char *name = copy_rel_clean(in->name);
    file_item(w->c, I_INLINE, *name ? name : in->name, 0644, 0, in->len, &d);
    return 0;
}

/* ---- the key ---- */

static void
h_u64(cs_sha256_ctx *h, uint64_t v)
{
    uint8_t b[8];
    cs_be64_put(b, v);
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

/* The flags both keys share: owner, mode, excludes, --parents, checksum,
 * the mtime clamp. */
static void
h_flags(cs_sha256_ctx *h, const cs_copy_opts *o)
{
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
}

static void
h_opts(cs_sha256_ctx *h, const cs_copy *c, const cs_copy_opts *o)
{
    h_str(h, "cstore-copy-v1");
    h_u64(h, o->is_add);
    h_str(h, c->dest);
    h_u64(h, c->dest_dir);
    h_flags(h, o);
}

/* Every field of the request (cs_copy_request_hash). A new field of
 * cs_copy_opts must be hashed here: the size check says so. */
_Static_assert(sizeof(void *) != 8 || sizeof(cs_copy_opts) == 120,
               "hash cs_copy_opts' new field in cs_copy_request_hash");

void
cs_copy_request_hash(cs_sha256_ctx *h, const cs_copy_opts *o)
{
    /* v2: the sources' digest has no mtimes. A new version keeps the
     * copy_keys records and summaries of one scheme away from the other's
     * (an older binary on the same store would otherwise read this one's). */
    h_str(h, "cstore-copy-request-v2");
    h_u64(h, o->is_add);
    h_u64(h, o->nsrcs);
    for (size_t i = 0; i < o->nsrcs; i++)
        h_str(h, o->srcs[i]);
    h_u64(h, o->ninl);
    for (size_t i = 0; i < o->ninl; i++) {
        h_str(h, o->inl[i].name);
        h_u64(h, o->inl[i].len);
        cs_sha256_update(h, o->inl[i].data, o->inl[i].len);
    }
    h_str(h, o->dest);
    h_str(h, o->workdir);
    h_flags(h, o);
}

static void
h_node(cs_sha256_ctx *h, const item *it, const cs_entry *e)
{
    h_str(h, e->path);
    h_u64(h, e->type);
    h_u64(h, e->mode);
    h_u64(h, e->uid);
    h_u64(h, e->gid);
    /* No mtime (BuildKit's content checksum, tarsum v1's header fields; ADD
     * <url>'s Last-Modified neither): a touched file, or a fresh clone of the
     * context on another machine, hits; the hit keeps the cached layer's
     * mtimes, as BuildKit's does. */
    (void) it;
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

void
copy_compute_key(const cs_copy *c, const cs_copy_opts *o, cs_digest *key)
{
    __attribute__((cleanup(cs_sha256_freep))) cs_sha256_ctx *h = cs_sha256_new();
    h_opts(h, c, o);
    h_u64(h, c->nitems);
    /* Which nodes are one inode (only when some are: older keys stay). */
    cs_autofree size_t *rep = c->nlinks ? copy_link_groups(c) : NULL;
    for (size_t i = 0; i < c->nlinks; i++) {
        if (rep[i] == SIZE_MAX)
            continue;
        h_str(h, "link");
        h_u64(h, c->links[i].node);
        h_u64(h, rep[i]);
    }
    for (size_t i = 0; i < c->nitems; i++) {
        const item *it = &c->items[i];
        h_u64(h, it->kind);
        h_str(h, it->name);
        h_u64(h, it->n);
        for (size_t j = it->first; j < it->first + it->n; j++)
            h_node(h, it, &c->nodes[j]);
    }
    cs_sha256_final(h, key);
}
