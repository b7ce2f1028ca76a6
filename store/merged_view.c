/* merged_view.c - the merged file system of a layer stack answered from the
 * layers' tree records in place (see cstore/merged.h), without building it.
 *
 * Each layer is an index of its record's entry offsets (one pass over the
 * record, which LMDB maps: no copy, no page written but the index's), and a
 * lookup of path P in the stack after layers [0, k) (M_k) is, as
 * cs_merged_build computes M_k from M_(k-1) and layer k-1:
 *   - layer k-1's entry at P when it has one (the layer's entries win);
 *   - none when layer k-1 removes P from M_(k-1): an opaque marker in a
 *     directory above P, a whiteout of P or of a directory above it, or an
 *     entry at a directory Q above P where M_(k-1) has Q and one of the two
 *     is not a directory (what was under Q goes);
 *   - else the lookup in M_(k-1).
 * Whiteout names (".wh.*") are never entries. A hardlink found gets its
 * target's content as the merged tree's does when its layer is applied: the
 * target is looked up in M_k of its own layer, through hardlink chains.
 * Entries handed out are decoded once and kept until the view is freed.
 */
#include <string.h>
#include "merged_int.h"
#include "record.h"
#include "tree_int.h"

typedef struct vlayer {
    const uint8_t *rec; /* the tree record, in the view's read txn */
    size_t len;
    uint32_t *off; /* entry offsets, in path order */
    size_t n;
} vlayer;

/* An entry handed out: layer k's entry i, decoded. */
typedef struct got {
    struct got *next;
    size_t k, i;
    cs_entry e;
} got;

struct cs_merged_view {
    cs_db *db;
    MDB_txn *txn;
    vlayer *l;
    size_t n;
    got *got;
};

void
cs_merged_view_free(cs_merged_view *v)
{
    if (!v)
        return;
    for (got *g = v->got, *next; g; g = next) {
        next = g->next;
        cs_entry_release(&g->e);
        free(g);
    }
    for (size_t i = 0; i < v->n; i++)
        free(v->l[i].off);
    free(v->l);
    cs_db_abort(v->txn);
    free(v);
}

int
cs_merged_view_open(cs_db *db, const cs_digest *layers, size_t n, cs_merged_view **out,
                    cs_error **err)
{
    cs_merged_view *v = cs_xcalloc(1, sizeof(*v));
    v->db = db;
    v->l = cs_xcalloc(n ? n : 1, sizeof(*v->l));
    int r = cs_db_begin(db, MDB_RDONLY, &v->txn, err);
    for (size_t i = 0; r >= 0 && i < n; i++, v->n++) {
        MDB_val val;
        r = cs_record_get(db, v->txn, CS_T_TREES, CS_ENOTFOUND, "tree", &layers[i], &val, err);
        if (r >= 0) {
            v->l[i].rec = val.mv_data;
            v->l[i].len = val.mv_size;
            r = cs_tree_index(val.mv_data, val.mv_size, &v->l[i].off, &v->l[i].n, err);
        }
        if (r < 0)
            r = cs_err_wrap(err, "viewing layer %zu of %zu", i + 1, n);
    }
    if (r < 0) {
        cs_merged_view_free(v);
        return r;
    }
    *out = v;
    return 0;
}

/* Bytewise as strcmp: the record's path (pl bytes) against path. */
static int
path_cmp(const char *rp, uint32_t pl, const char *path, size_t len)
{
    int c = memcmp(rp, path, pl < len ? pl : len);
    return c ? c : pl < len ? -1 : pl > len;
}

/* Index of path (len bytes) in layer l, or SIZE_MAX. */
static size_t
layer_find(const vlayer *l, const char *path, size_t len)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t pl;
        const char *rp = cs_tree_index_path(l->rec, l->off[mid], &pl);
        int c = path_cmp(rp, pl, path, len);
        if (!c)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

static bool
layer_has(const vlayer *l, const char *path, size_t len)
{
    return layer_find(l, path, len) != SIZE_MAX;
}

static int find_at(cs_merged_view *v, const char *path, size_t k, const cs_entry **out,
                   cs_error **err);

/* A hardlink of layer k gets its target's content in M_(k+1), through
 * chains (fix_hardlink in merged.c). */
static int
fix_hardlink(cs_merged_view *v, size_t k, cs_entry *e, cs_error **err)
{
    const cs_entry *t = NULL;
    int r = find_at(v, e->link, k + 1, &t, err);
    for (int hops = 0; r >= 0 && t && t->type == CS_E_HARDLINK && t->link && hops < MAX_SYMLINKS;
         hops++)
        r = find_at(v, t->link, k + 1, &t, err);
    if (r < 0 || !t || t == e)
        return r < 0 ? r : 0;
    e->size = t->size;
    e->has_content = t->has_content;
    e->content = t->content;
    return 0;
}

/* Layer k's entry i, decoded once (kept before its hardlink fix, so a
 * chain back to it ends there). */
static int
got_entry(cs_merged_view *v, size_t k, size_t i, const cs_entry **out, cs_error **err)
{
    for (got *g = v->got; g; g = g->next)
        if (g->k == k && g->i == i) {
            *out = &g->e;
            return 0;
        }
    got *g = cs_xcalloc(1, sizeof(*g));
    int r = cs_tree_entry_at(v->l[k].rec, v->l[k].len, v->l[k].off[i], &g->e, err);
    if (r < 0) {
        free(g);
        return r;
    }
    g->k = k;
    g->i = i;
    g->next = v->got;
    v->got = g;
    *out = &g->e;
    if (g->e.type == CS_E_HARDLINK && g->e.link)
        return fix_hardlink(v, k, &g->e, err);
    return 0;
}

/* Has layer l an opaque marker in the directory path[0, dl) (dl 0: the
 * root)? The buffer q is scratch. */
static bool
hides_dir(const vlayer *l, const char *path, size_t dl, cs_buf *q)
{
    q->len = 0;
    cs_buf_append(q, path, dl);
    if (dl)
        cs_buf_append(q, "/", 1);
    cs_buf_append(q, WH_OPAQUE, strlen(WH_OPAQUE));
    return layer_has(l, (const char *) q->data, q->len);
}

/* Has layer l a whiteout of path[0, end) (end at a component's end)? */
static bool
whiteout_of(const vlayer *l, const char *path, size_t end, cs_buf *q)
{
    size_t b = end;
    while (b && path[b - 1] != '/')
        b--;
    q->len = 0;
    cs_buf_append(q, path, b);
    cs_buf_append(q, WH_PREFIX, strlen(WH_PREFIX));
    cs_buf_append(q, path + b, end - b);
    return layer_has(l, (const char *) q->data, q->len);
}

/* 1 when layer k removes path from M_k (mark_removed in merged.c), 0 when
 * not, <0 on an error. path is not "" (the root is never removed). */
static int
removed_by(cs_merged_view *v, size_t k, const char *path, cs_error **err)
{
    const vlayer *l = &v->l[k];
    size_t len = strlen(path);
    cs_buf q;
    cs_buf_init(&q);
    int r = hides_dir(l, path, 0, &q); /* an opaque root */
    for (size_t end = 0; !r && end <= len; end++) {
        if (end < len && path[end] != '/')
            continue;
        if (whiteout_of(l, path, end, &q)) {
            r = 1;
        } else if (end < len && hides_dir(l, path, end, &q)) {
            r = 1;
        } else if (end < len) {
            size_t i = layer_find(l, path, end);
            cs_autofree char *dir = i != SIZE_MAX ? cs_xstrndup(path, end) : NULL;
            const char *base;
            const cs_entry *below = NULL;
            if (dir && cs_merged_classify(dir, &base) == CS_K_ENTRY
                && (r = find_at(v, dir, k, &below, err)) >= 0)
                r = below && (l->rec[l->off[i]] != CS_E_DIR || below->type != CS_E_DIR);
        }
    }
    cs_buf_release(&q);
    return r;
}

/* The entry at path in M_k (the merged tree of layers [0, k)). */
static int
find_at(cs_merged_view *v, const char *path, size_t k, const cs_entry **out, cs_error **err)
{
    *out = NULL;
    const char *base;
    if (*path && cs_merged_classify(path, &base) != CS_K_ENTRY)
        return 0; /* whiteouts and aufs metadata are never entries */
    size_t len = strlen(path);
    while (k-- > 0) {
        size_t i = layer_find(&v->l[k], path, len);
        if (i != SIZE_MAX)
            return got_entry(v, k, i, out, err);
        int r = *path ? removed_by(v, k, path, err) : 0;
        if (r)
            return r < 0 ? r : 0;
    }
    return 0;
}

int
cs_merged_view_find(cs_merged_view *v, const char *path, const cs_entry **out, cs_error **err)
{
    return find_at(v, path, v->n, out, err);
}

static int
view_find(void *ctx, const char *path, const cs_entry **out, cs_error **err)
{
    return cs_merged_view_find(ctx, path, out, err);
}

int
cs_merged_view_resolve(cs_merged_view *v, const char *path, bool follow_last, char **real,
                       const cs_entry **entry, cs_error **err)
{
    return cs_resolve_with(view_find, v, path, follow_last, real, entry, err);
}
