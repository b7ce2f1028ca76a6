/* merged.c - layers added up into one sorted tree, and chroot-like path
 * resolution inside it (see cstore/merged.h).
 *
 * Applying a layer is linear in the size of both trees (the searches gallop
 * from one layer entry to the next, the survivors between two are copied
 * as one block): first every deletion the layer implies for the tree below
 * (whiteouts, opaque dirs, non-directories replacing directories) is marked
 * as index ranges of the merged tree, then the survivors are merged with the
 * layer's entries like two sorted runs. Deletions only ever look at the tree
 * below, so a layer's own entries are never hidden by its own whiteouts,
 * whatever their sort order (".wh..wh..opq" sorts after "D/.a").
 */
#include <string.h>
#include "merged_int.h"

/* ---- ranges in a sorted tree ---- */

/* Compares path with the key dir + c (dlen bytes of dir, then the byte c),
 * bytewise like strcmp. */
static int
cmp_key(const char *path, const char *dir, size_t dlen, char c)
{
    int r = strncmp(path, dir, dlen);
    if (r)
        return r;
    unsigned char p = (unsigned char) path[dlen];
    if (p != (unsigned char) c)
        return p < (unsigned char) c ? -1 : 1;
    return path[dlen + 1] ? 1 : 0;
}

static size_t
lower_bound(const cs_tree *t, size_t lo, size_t hi, const char *dir, size_t dlen, char c)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_key(t->e[mid].path, dir, dlen, c) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void
cs_tree_under(const cs_tree *t, const char *dir, size_t *lo, size_t *hi)
{
    if (!*dir) {
        /* Everything but a root entry (path ""), which sorts first. */
        *lo = t->n && !t->e[0].path[0] ? 1 : 0;
        *hi = t->n;
        return;
    }
    /* Paths sort bytewise, so "dir.x" and "dir-x" may sit between "dir" and
     * "dir/...": the entries with prefix "dir/" are exactly those in
     * ["dir/", "dir0") since '0' == '/' + 1. */
    size_t dlen = strlen(dir);
    *lo = lower_bound(t, 0, t->n, dir, dlen, '/');
    *hi = lower_bound(t, *lo, t->n, dir, dlen, '/' + 1);
}

/* Index of path in a sorted tree, or SIZE_MAX. */
static size_t
find_idx(const cs_tree *t, const char *path)
{
    const cs_entry *e = cs_tree_find(t, path);
    return e ? (size_t) (e - t->e) : SIZE_MAX;
}

/* The first index in [from, t->n) whose path is not below path: galloping
 * from `from` (1, 2, 4... entries on), then a binary search in the last
 * step. A layer's entries come in path order, so each search starts where
 * the last ended: a big layer over a small tree costs a compare or two per
 * entry, a small layer over a big tree a few dozen in all. */
static size_t
gallop(const cs_tree *t, size_t from, const char *path)
{
    size_t lo = from, step = 1, hi = from;
    while (hi < t->n && strcmp(t->e[hi].path, path) < 0) {
        lo = hi + 1;
        hi = from + step;
        step *= 2;
    }
    return cs_tree_lower_bound(t, lo, hi < t->n ? hi : t->n, path);
}

/* ---- applying a layer ---- */

typedef cs_wh_kind kind;

cs_wh_kind
cs_merged_classify(const char *path, const char **base)
{
    const char *slash = strrchr(path, '/');
    const char *b = slash ? slash + 1 : path;
    *base = b;
    if (!strcmp(b, WH_OPAQUE))
        return CS_K_OPAQUE;
    if (!strncmp(b, WH_META, strlen(WH_META)))
        return CS_K_IGNORE;
    if (strncmp(b, WH_PREFIX, strlen(WH_PREFIX)))
        return CS_K_ENTRY;
    const char *name = b + strlen(WH_PREFIX);
    if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
        return CS_K_IGNORE;
    return CS_K_WHITEOUT;
}

/* The layer's entry indices in path order, one per path (the last added wins,
 * as cs_tree_sort does). Trees from cs_tree_get are sorted already. */
static size_t *
layer_order(const cs_tree *l, size_t *n, bool *identity)
{
    size_t *ord = cs_xmalloc((l->n ? l->n : 1) * sizeof(*ord));
    bool sorted = true;
    for (size_t i = 0; i < l->n; i++) {
        ord[i] = i;
        if (i && strcmp(l->e[i - 1].path, l->e[i].path) >= 0)
            sorted = false;
    }
    *n = l->n;
    *identity = sorted;
    if (sorted)
        return ord;
    cs_path_idx *v = cs_xmalloc(l->n * sizeof(*v));
    for (size_t i = 0; i < l->n; i++) {
        v[i].path = l->e[i].path;
        v[i].idx = i;
    }
    qsort(v, l->n, sizeof(*v), cs_path_idx_cmp);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++)
        if (i + 1 == l->n || strcmp(v[i].path, v[i + 1].path))
            ord[k++] = v[i].idx;
    free(v);
    *n = k;
    return ord;
}

/* Marks [lo, hi) of the merged tree for deletion (a difference array, so
 * overlapping ranges cost nothing extra). */
static void
mark(long **diff, size_t n, size_t lo, size_t hi)
{
    if (lo >= hi)
        return;
    if (!*diff)
        *diff = cs_xcalloc(n + 1, sizeof(**diff));
    (*diff)[lo]++;
    (*diff)[hi]--;
}

/* The entry at path in a, else in b (NULL: none). */
static const cs_entry *
find_either(const cs_tree *a, const cs_tree *b, const char *path)
{
    const cs_entry *e = cs_tree_find(a, path);
    return e || !b ? e : cs_tree_find(b, path);
}

/* Points a hardlink at its target's content, looked up in a, else in b:
 * follows hardlink chains. */
static void
fix_hardlink(const cs_tree *a, const cs_tree *b, cs_entry *e)
{
    const cs_entry *t = e->link ? find_either(a, b, e->link) : NULL;
    for (int hops = 0; t && t->type == CS_E_HARDLINK && t->link && hops < MAX_SYMLINKS; hops++)
        t = find_either(a, b, t->link);
    if (!t || t == e)
        return;
    e->size = t->size;
    e->has_content = t->has_content;
    e->content = t->content;
}

/* A layer in path order with each entry's kind. */
typedef struct ordered {
    const cs_tree *layer;
    size_t *ord; /* entry indices in path order */
    size_t n;
    uint8_t *kinds;  /* kind of entry ord[j] */
    size_t nentries; /* of kind CS_K_ENTRY */
} ordered;

/* Marks what the layer entry e (of kind k) removes from the tree below.
 * *cur: where the last CS_K_ENTRY's search ended (they come in path order). */
static void
mark_removed(cs_tree *m, const cs_entry *e, kind k, const char *base, size_t *cur, long **diff)
{
    size_t lo, hi, i;
    if (k == CS_K_OPAQUE) {
        cs_autofree char *dir = cs_xstrndup(e->path, base > e->path ? base - e->path - 1 : 0);
        cs_tree_under(m, dir, &lo, &hi);
        mark(diff, m->n, lo, hi);
    } else if (k == CS_K_WHITEOUT) {
        cs_autofree char *victim =
            cs_xasprintf("%.*s%s", (int) (base - e->path), e->path, base + strlen(WH_PREFIX));
        if ((i = find_idx(m, victim)) != SIZE_MAX)
            mark(diff, m->n, i, i + 1);
        cs_tree_under(m, victim, &lo, &hi);
        mark(diff, m->n, lo, hi);
    } else if (k == CS_K_ENTRY) {
        /* The root stays a directory whatever a layer says. */
        if (!*e->path)
            return;
        i = *cur = gallop(m, *cur, e->path);
        if (i == m->n || strcmp(m->e[i].path, e->path))
            return;
        if (e->type != CS_E_DIR || m->e[i].type != CS_E_DIR) {
            cs_tree_under(m, e->path, &lo, &hi);
            mark(diff, m->n, lo, hi);
        }
    }
}

/* Phase 1: drops from m what the layer removes from the tree below. */
static void
apply_removals(cs_tree *m, ordered *o)
{
    cs_autofree long *diff = NULL;
    size_t cur = 0;
    for (size_t j = 0; j < o->n; j++) {
        const cs_entry *e = &o->layer->e[o->ord[j]];
        const char *base;
        kind k = cs_merged_classify(e->path, &base);
        o->kinds[j] = (uint8_t) k;
        o->nentries += k == CS_K_ENTRY;
        mark_removed(m, e, k, base, &cur, &diff);
    }
    if (!diff)
        return;
    long d = 0;
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++) {
        d += diff[i];
        if (d > 0)
            cs_entry_release(&m->e[i]);
        else
            m->e[k++] = m->e[i];
    }
    m->n = k;
}

/* Where path goes in t, searching from *from (paths come in order): the
 * index of the first entry not below it, times 2, plus 1 when that entry has
 * the same path (and counted in *nsame). */
static size_t
place(const cs_tree *t, size_t *from, const char *path, size_t *nsame)
{
    size_t i = *from = gallop(t, *from, path);
    bool same = i < t->n && !strcmp(t->e[i].path, path);
    *nsame += same;
    return i << 1 | same;
}

/* Where the layer's CS_K_ENTRY entries go among the survivors, in path order
 * (place's encoding). Returns the count. */
static size_t
entry_places(const cs_tree *m, const ordered *o, size_t *pos, size_t *nsame)
{
    size_t np = 0, i = 0;
    *nsame = 0;
    for (size_t j = 0; j < o->n; j++) {
        if (o->kinds[j] != CS_K_ENTRY)
            continue;
        pos[np++] = place(m, &i, o->layer->e[o->ord[j]].path, nsame);
    }
    return np;
}

/* Phase 2: merges the survivors with the layer's entries, in place and
 * from the end: the array grows once, each run of survivors moves once (a
 * small layer moves only what sorts after its first entry, and touches no
 * new page but the growth). On equal paths the layer's entry replaces the
 * one below. Hardlinks get their target's content once everything is in
 * place. */
static void
apply_entries(cs_tree *m, const ordered *o, cs_tree *owned)
{
    cs_autofree size_t *pos = cs_xmalloc((o->nentries ? o->nentries : 1) * sizeof(*pos));
    size_t nsame, np = entry_places(m, o, pos, &nsame);
    size_t total = m->n + np - nsame;
    if (total > m->cap) {
        size_t cap = total + total / 16 + 16; /* room for the next small layers */
        m->e = cs_entries_resize(m->e, m->cap, cap);
        m->cap = cap;
    }
    cs_autofree size_t *links = NULL;
    size_t nlinks = 0, dst = total, src = m->n, q = np;
    for (size_t j = o->n; j-- > 0;) {
        if (o->kinds[j] != CS_K_ENTRY)
            continue;
        size_t p = pos[--q] >> 1, from = p + (pos[q] & 1);
        dst -= src - from; /* the survivors after the entry, moved right */
        memmove(m->e + dst, m->e + from, (src - from) * sizeof(*m->e));
        if (pos[q] & 1)
            cs_entry_release(&m->e[p]);
        src = p;
        cs_entry *e = &m->e[--dst];
        if (owned) {
            *e = owned->e[o->ord[j]];
            memset(&owned->e[o->ord[j]], 0, sizeof(cs_entry));
        } else {
            cs_entry_copy(e, &o->layer->e[o->ord[j]]);
        }
        if (e->type == CS_E_HARDLINK) {
            if (!links)
                links = cs_xmalloc(np * sizeof(*links));
            links[nlinks++] = dst;
        }
    }
    m->n = total; /* dst == src: the survivors before the first entry stay */
    for (size_t j = 0; j < nlinks; j++)
        fix_hardlink(m, NULL, &m->e[links[j]]);
}

/* Phase 2 for a big plain layer (sorted, one entry per path, no whiteout)
 * that is owned: the survivors go into the layer's array, from the end,
 * rather than the layer's entries into the survivors'. A base layer's
 * thousands of entries then stay where its decode put them (pages touched
 * already) instead of moving into a fresh array. The layer's entry wins on
 * equal paths; its hardlinks get their target's content first, from the
 * layer or the survivors, as in apply_entries. */
static void
apply_into_layer(cs_tree *m, cs_tree *l)
{
    for (size_t k = 0; k < l->n; k++)
        if (l->e[k].type == CS_E_HARDLINK)
            fix_hardlink(l, m, &l->e[k]);
    cs_autofree size_t *pos = cs_xmalloc((m->n ? m->n : 1) * sizeof(*pos));
    size_t nsame = 0, i = 0;
    for (size_t j = 0; j < m->n; j++)
        pos[j] = place(l, &i, m->e[j].path, &nsame);
    size_t total = l->n + m->n - nsame;
    if (total > l->cap) {
        size_t cap = total + total / 16 + 16;
        l->e = cs_entries_resize(l->e, l->cap, cap);
        l->cap = cap;
    }
    size_t dst = total, src = l->n;
    for (size_t j = m->n; j-- > 0;) {
        size_t p = pos[j] >> 1;
        dst -= src - p; /* the layer's entries from the survivor's place on */
        memmove(l->e + dst, l->e + p, (src - p) * sizeof(*l->e));
        src = p;
        if (pos[j] & 1)
            cs_entry_release(&m->e[j]); /* replaced by the layer's */
        else
            l->e[--dst] = m->e[j];
    }
    cs_entries_resize(m->e, m->cap, 0); /* survivors moved out or released */
    m->e = l->e;
    m->n = total;
    m->cap = l->cap;
    l->e = NULL;
    l->n = l->cap = 0;
}

/* Applies layer on m. When owned is not NULL it is layer itself, writable:
 * its entries are moved into m instead of copied (what is left is freed by
 * the caller). */
static void
apply(cs_tree *m, const cs_tree *layer, cs_tree *owned)
{
    ordered o = { .layer = layer };
    bool identity;
    o.ord = layer_order(layer, &o.n, &identity);
    o.kinds = cs_xmalloc(o.n ? o.n : 1);
    apply_removals(m, &o);
    if (owned && identity && o.nentries == o.n && o.n > m->n)
        apply_into_layer(m, owned);
    else
        apply_entries(m, &o, owned);
    free(o.ord);
    free(o.kinds);
}

int
cs_merged_apply(cs_tree *merged, const cs_tree *layer, cs_error **err)
{
    (void) err; /* nothing can fail but allocation, which aborts */
    apply(merged, layer, NULL);
    return 0;
}

int
cs_merged_build(cs_db *db, MDB_txn *txn, const cs_digest *layers, size_t n, cs_tree **out,
                cs_error **err)
{
    cs_tree *m = cs_tree_new();
    for (size_t i = 0; i < n; i++) {
        cs_tree *l;
        if (cs_tree_get(db, txn, &layers[i], &l, err) < 0) {
            cs_tree_free(m);
            return cs_err_wrap(err, "merging layer %zu of %zu", i + 1, n);
        }
        apply(m, l, l);
        cs_tree_take_arenas(m, l); /* the entries moved in borrow from them */
        cs_tree_free(l);
    }
    *out = m;
    return 0;
}

/* ---- resolution ---- */

/* The resolved prefix: a clean path, NUL-terminated. */
typedef struct {
    char *p;
    size_t len, cap;
} pathbuf;

static void
pb_push(pathbuf *b, const char *s, size_t n)
{
    if (b->len + n + 2 > b->cap) {
        b->cap = (b->len + n + 2) * 2;
        b->p = cs_xrealloc(b->p, b->cap);
    }
    if (b->len)
        b->p[b->len++] = '/';
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void
pb_set_len(pathbuf *b, size_t len)
{
    b->len = len;
    if (b->p)
        b->p[len] = 0;
}

static void
pb_pop(pathbuf *b)
{
    size_t n = b->len;
    while (n && b->p[n - 1] != '/')
        n--;
    pb_set_len(b, n ? n - 1 : 0);
}

int
cs_resolve_with(cs_resolve_find find, void *ctx, const char *path, bool follow_last, char **real,
                const cs_entry **entry, cs_error **err)
{
    *real = NULL;
    *entry = NULL;
    pathbuf cur = { 0 };
    pb_push(&cur, "", 0); /* allocates; stays "" */
    cs_autofree char *rest = cs_xstrdup(path);
    const char *p = rest;
    int links = 0, ret;

    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t) (p - s);
        if (len == 1 && s[0] == '.')
            continue;
        if (len == 2 && s[0] == '.' && s[1] == '.') {
            pb_pop(&cur); /* at the root, stays at the root */
            continue;
        }
        const char *q = p;
        while (*q == '/')
            q++;
        bool last = !*q, slash = *p == '/';
        size_t parent = cur.len;
        pb_push(&cur, s, len);
        const cs_entry *e = NULL;
        if ((ret = find(ctx, cur.p, &e, err)) < 0)
            goto fail;
        if (!e) {
            if (last) {
                ret = 0;
                goto done;
            }
            ret = cs_err(err, CS_ENOTFOUND, 0, "path '%s': no such directory '%s'", path, cur.p);
            goto fail;
        }
        if (e->type == CS_E_SYMLINK && (!last || slash || follow_last)) {
            if (++links > MAX_SYMLINKS) {
                ret =
                    cs_err(err, CS_EINVAL, 0, "path '%s': too many levels of symbolic links", path);
                goto fail;
            }
            if (!e->link || !*e->link) {
                ret = cs_err(err, CS_ENOTFOUND, 0, "path '%s': empty symbolic link '%s'", path,
                             cur.p);
                goto fail;
            }
            /* The target takes the link's place: relative to the link's
             * directory, or to the root when absolute. */
            pb_set_len(&cur, e->link[0] == '/' ? 0 : parent);
            char *next = cs_xasprintf("%s%s", e->link, p);
            free(rest);
            rest = next;
            p = rest;
            continue;
        }
        if (e->type != CS_E_DIR && (!last || slash)) {
            ret = cs_err(err, CS_ENOTFOUND, 0, "path '%s': '%s' is not a directory", path, cur.p);
            goto fail;
        }
    }
    if (cur.len && (ret = find(ctx, cur.p, entry, err)) < 0)
        goto fail;
    ret = !cur.len || *entry; /* only verified entries enter cur: always 1 */
done:
    *real = cur.p;
    return ret;
fail:
    free(cur.p);
    *entry = NULL;
    return ret;
}

static int
tree_find(void *ctx, const char *path, const cs_entry **out, cs_error **err)
{
    (void) err;
    *out = cs_tree_find(ctx, path);
    return 0;
}

int
cs_tree_resolve(const cs_tree *t, const char *path, bool follow_last, char **real,
                const cs_entry **entry, cs_error **err)
{
    return cs_resolve_with(tree_find, (void *) t, path, follow_last, real, entry, err);
}
