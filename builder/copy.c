/* copy.c - COPY and ADD with BuildKit's semantics (dockerfile2llb's
 * dispatchCopy, the file op backend and fsutil's copier), on trees: step 1,
 * cs_copy_prepare, as a row of steps, and the prepared sources it fills
 * (see copy_int.h for the other files and the model).
 */
#include "copy_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- prepared sources ---- */

cs_entry *
copy_add_node(cs_copy *c)
{
    return cs_entries_add(&c->nodes, &c->nnodes, &c->capnodes);
}

void
copy_pop_node(cs_copy *c)
{
    cs_entry_release(&c->nodes[--c->nnodes]);
    if (c->nlinks && c->links[c->nlinks - 1].node == c->nnodes)
        free(c->links[--c->nlinks].key);
}

void
copy_link_node(cs_copy *c, size_t node, char *key)
{
    if (c->nlinks == c->caplinks) {
        c->caplinks = c->caplinks ? c->caplinks * 2 : 16;
        c->links = cs_xrealloc(c->links, c->caplinks * sizeof(*c->links));
    }
    c->links[c->nlinks++] = (struct nodelink){ node, key };
}

const char *
copy_node_link(const cs_copy *c, size_t node)
{
    size_t lo = 0, hi = c->nlinks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->links[mid].node == node)
            return c->links[mid].key;
        if (c->links[mid].node < node)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t *
copy_link_groups(const cs_copy *c)
{
    size_t n = c->nlinks;
    size_t *rep = cs_xmalloc((n ? n : 1) * sizeof(size_t));
    cs_path_idx *ord = cs_xmalloc((n ? n : 1) * sizeof(cs_path_idx));
    for (size_t i = 0; i < n; i++)
        ord[i] = (cs_path_idx){ c->links[i].key, i };
    qsort(ord, n, sizeof(*ord), cs_path_idx_cmp);
    for (size_t g = 0, end; g < n; g = end) {
        for (end = g + 1; end < n && !strcmp(ord[end].path, ord[g].path);)
            end++;
        for (size_t k = g; k < end; k++)
            rep[ord[k].idx] = end - g > 1 ? c->links[ord[g].idx].node : SIZE_MAX;
    }
    free(ord);
    return rep;
}

item *
copy_add_item(cs_copy *c, ikind kind, const char *name)
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
copy_pop_item(cs_copy *c)
{
    item *it = &c->items[--c->nitems];
    free(it->name);
    free(it->abs);
}

void
copy_end_item(cs_copy *c)
{
    item *it = &c->items[c->nitems - 1];
    it->n = c->nnodes - it->first;
}

void
cs_copy_free(cs_copy *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nitems; i++)
        cs_free_all(c->items[i].name, c->items[i].abs);
    cs_entries_free(c->nodes, c->nnodes, c->capnodes);
    for (size_t i = 0; i < c->nlinks; i++)
        free(c->links[i].key);
    cs_free_all(c->links, c->items, c->dest, c);
}

/* ---- paths ---- */

char *
copy_rel_clean(const char *p)
{
    cs_autofree char *abs = cs_xasprintf("/%s", p);
    char *c = cs_ignore_clean(abs);
    memmove(c, c + 1, strlen(c));
    return c;
}

char *
copy_join(const char *a, const char *b)
{
    if (!*a)
        return cs_xstrdup(b);
    if (!*b)
        return cs_xstrdup(a);
    return cs_xasprintf("%s/%s", a, b);
}

const char *
copy_base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- step 1 ---- */

static int
check_opts(const cs_copy_opts *o, cs_error **err)
{
    if (o->nsrcs + o->ninl == 0)
        return cs_err(err, CS_EINVAL, 0, "no source files were specified");
    if (!o->checksum)
        return 0;
    if (!o->is_add)
        return cs_err(err, CS_EINVAL, 0, "checksum can't be specified for COPY");
    if (o->nsrcs + o->ninl != 1)
        return cs_err(err, CS_EINVAL, 0, "checksum can't be specified for multiple sources");
    if (!o->nsrcs || !copy_is_url(o->srcs[0]))
        return cs_err(err, CS_EINVAL, 0, "checksum requires HTTP(S) or Git sources");
    return 0;
}

static cs_copy *
copy_new(const cs_copy_opts *o)
{
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
        c->dest = copy_rel_clean(dest);
    } else {
        cs_autofree char *abs = cs_xasprintf("%s/%s", o->workdir ? o->workdir : "/", dest);
        c->dest = copy_rel_clean(abs);
    }
    return c;
}

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The state every source shares: the stat cache view (in the caller's
 * ingest, when given), the --exclude patterns and the context. */
static int
prep_open(ctxwalk *w, cs_store *s, cs_ingest *ing, const cs_copy_from *from, const cs_copy_opts *o,
          cs_copy *c, cs_ignore **excl, cs_error **err)
{
    memset(w, 0, sizeof(*w));
    w->s = s;
    w->c = c;
    w->ing = ing;
    w->ig = from ? from->ignore : NULL;
    w->now = now_ns();
    int r = 0;
    if (o->nexcludes && (r = cs_ignore_new(o->excludes, o->nexcludes, excl, err)) < 0)
        return r;
    w->excl = *excl;
    if ((r = cs_statcache_open(s, ing, &w->sc, err)) < 0)
        return r;
    if (!from || !from->context_dir || from->tree)
        return 0;
    /* An ADD <url> is downloaded every time: no summary answers for it. */
    bool url = false;
    for (size_t i = 0; i < o->nsrcs; i++)
        url = url || copy_is_url(o->srcs[i]);
    if (from->summary && !url)
        w->sum = cs_sha256_new();
    return copy_ctx_open(w, from->context_dir, err);
}

/* Commits the ingest prepare began itself (only when all went well) and
 * frees the state. Returns r, or the commit's code. */
static int
prep_close(ctxwalk *w, int r, cs_error **err)
{
    cs_statcache_close(w->sc);
    copy_ctx_release(w);
    if (r >= 0 && w->own_ing)
        r = cs_ingest_commit(w->own_ing, err);
    cs_ingest_free(w->own_ing);
    copy_statpool_free(w->sp);
    free(w->root);
    free(w->buf);
    return r;
}

/* One source argument: a URL, or a path in the context or the tree. */
static int
add_arg(ctxwalk *w, treesrc *ts, const char *src, const cs_copy_opts *o, size_t *matched,
        cs_error **err)
{
    if (copy_is_url(src)) {
        (*matched)++;
        if (!o->is_add)
            return cs_err(err, CS_EINVAL, 0, "source can't be a URL for COPY");
        return copy_add_url(w, src, o, err);
    }
    if (!w->root && !ts->t)
        return cs_err(err, CS_EINVAL, 0, "%s: no build context to copy from", src);
    int r = copy_add_source(w, ts, src, o, err);
    if (r > 0)
        *matched += (size_t) r;
    return r;
}

static int
add_sources(ctxwalk *w, treesrc *ts, const cs_copy_opts *o, cs_error **err)
{
    size_t matched = 0;
    int r = 0;
    for (size_t i = 0; r >= 0 && i < o->nsrcs; i++)
        r = add_arg(w, ts, o->srcs[i], o, &matched, err);
    for (size_t i = 0; r >= 0 && i < o->ninl; i++, matched++)
        r = copy_add_inline(w, &o->inl[i], err);
    if (r >= 0 && !matched)
        r = cs_err(err, CS_ENOTFOUND, 0, "no source files were specified: '%s': no match",
                   o->nsrcs ? o->srcs[0] : "");
    return r;
}

/* The selection a summary record is kept for: the context, its ignore
 * patterns and the request. */
static void
summary_selection(const ctxwalk *w, const cs_copy_from *from, const cs_copy_opts *o, cs_digest *sel)
{
    __attribute__((cleanup(cs_sha256_freep))) cs_sha256_ctx *h = cs_sha256_new();
    static const cs_digest none;
    cs_sha256_update(h, "cstore-copy-summary-v1", 23);
    cs_sha256_update(h, w->root, strlen(w->root) + 1);
    cs_sha256_update(h, (from->ignore_id ? from->ignore_id : &none)->b, 32);
    cs_copy_request_hash(h, o);
    cs_sha256_final(h, sel);
}

/* After the walk: the summary record answers (1, *key set), or the
 * pending contents are looked up, the key computed and, when every file
 * was trusted, the summary written for the next build (0). */
static int
prep_key(ctxwalk *w, const cs_copy_from *from, const cs_copy_opts *o, cs_digest *key,
         cs_error **err)
{
    cs_digest sel, state;
    if (w->sum) {
        summary_selection(w, from, o, &sel);
        copy_ctx_state(w, &state);
        int r = cs_statcache_summary_get(w->sc, &sel, &state, key, err);
        if (r != 0)
            return r;
        if ((r = copy_ctx_resolve(w, err)) < 0)
            return r;
    }
    copy_compute_key(w->c, o, key);
    if (!w->sum || w->untrusted)
        return 0;
    int r = copy_need_ingest(w, err);
    if (r == 0)
        r = cs_statcache_summary_put(w->s, w->ing, &sel, &state, key, err);
    return r;
}

int
cs_copy_prepare(cs_store *s, cs_ingest *ing, const cs_copy_from *from, const cs_copy_opts *opts,
                const cs_tree *dest_tree, cs_copy **out, cs_digest *key, cs_error **err)
{
    (void) dest_tree;
    int r = check_opts(opts, err);
    if (r < 0)
        return r;
    cs_copy *c = copy_new(opts);
    cs_ignore *excl = NULL;
    ctxwalk w;
    r = prep_open(&w, s, ing, from, opts, c, &excl, err);
    treesrc ts = { c, from ? from->tree : NULL, excl, NULL, NULL, 0, false };
    if (r >= 0)
        r = add_sources(&w, &ts, opts, err);
    if (r >= 0)
        r = prep_key(&w, from, opts, key, err);
    copy_treesrc_release(&ts);
    r = prep_close(&w, r, err);
    cs_ignore_free(excl);
    if (r != 0) { /* an error, or the summary answered */
        cs_copy_free(c);
        c = NULL;
    }
    *out = c;
    return r < 0 ? r : 0;
}
