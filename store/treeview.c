/* treeview.c - views of layer stacks: inodes, attributes, directories,
 * symlinks and xattrs (see cstore/treeview.h; bytes in treeview_read.c).
 *
 * A view is built once (merge, then an index: each entry's parent, its
 * children in name order, hardlink targets and link counts) and then only
 * read, so the calls of the FUSE threads take no lock: a view is published by
 * storing its pointer, then incrementing the count (release; readers load it
 * with acquire). */
#include <errno.h>
#include <string.h>
#include <sys/sysmacros.h>
#include "cstore/lease.h"
#include "cstore/merged.h"
#include "cstore/strv.h"
#include "treeview_int.h"

#define OVL_PREFIX "trusted.overlay."

cs_treeview *
cs_treeview_new(cs_store *s, size_t cache_chunks)
{
    cs_treeview *tv = cs_xcalloc(1, sizeof(*tv));
    tv->s = s;
    tv->db = cs_store_db(s);
    tv->next_ino = CS_TV_ROOT + 1;
    pthread_mutex_init(&tv->add_lock, NULL);
    tv_read_init(tv, cache_chunks);
    return tv;
}

static void
view_free(tv_view *v)
{
    if (!v)
        return;
    cs_tree_free(v->t);
    cs_free_all(v->kid_off, v->kids, v->parent, v->real, v->nlink);
    free(v);
}

void
cs_treeview_free(cs_treeview *tv)
{
    if (!tv)
        return;
    size_t n = atomic_load(&tv->nviews);
    for (size_t i = 0; i < n; i++)
        view_free(tv->views[i]);
    tv_read_release(tv);
    pthread_mutex_destroy(&tv->add_lock);
    free(tv);
}

void
cs_treeview_name(const cs_digest *layers, size_t n, char name[CS_DIGEST_HEX])
{
    cs_digest d;
    cs_sha256(n ? layers[0].b : (const uint8_t *) "", n * sizeof(cs_digest), &d);
    cs_digest_hex(&d, name);
}

/* ---- building a view ---- */

/* Adds the directories a tree names as parents but lacks (and the root),
 * root-owned 0755, mtime 0, so every entry has its parent. */
static void
add_missing_dirs(cs_tree *t)
{
    cs_strv miss = { 0 };
    if (!t->n || t->e[0].path[0])
        cs_strv_add(&miss, "");
    for (size_t i = 0; i < t->n; i++) {
        cs_autofree char *p = cs_xstrdup(t->e[i].path);
        char *slash;
        while ((slash = strrchr(p, '/'))) {
            *slash = 0;
            if (cs_tree_find(t, p) || (miss.n && !strcmp(miss.v[miss.n - 1], p)))
                break;
            cs_strv_add(&miss, p);
        }
    }
    for (size_t i = 0; i < miss.n; i++) {
        if (cs_tree_find(t, miss.v[i]))
            continue; /* found twice before the sort */
        cs_entry *e = cs_tree_add(t);
        e->path = cs_xstrdup(miss.v[i]);
        e->type = CS_E_DIR;
        e->mode = 0755;
    }
    cs_strv_release(&miss);
    cs_tree_sort(t);
}

/* The entry a hardlink presents: its final target when that is a file. */
static uint32_t
link_target(const cs_tree *t, uint32_t i)
{
    const cs_entry *e = &t->e[i];
    for (int hops = 0; e->type == CS_E_HARDLINK && e->link && hops < 40; hops++) {
        const cs_entry *x = cs_tree_find(t, e->link);
        if (!x)
            return i;
        e = x;
    }
    return e->type == CS_E_FILE ? (uint32_t) (e - t->e) : i;
}

/* Parent of every entry (binary search of its dir), hardlink targets, link
 * counts, then the children lists (counting sort by parent keeps the tree's
 * order, which is name order among siblings). */
static void
index_view(tv_view *v)
{
    const cs_tree *t = v->t;
    uint32_t n = (uint32_t) t->n;
    v->parent = cs_xcalloc(n + 1, sizeof(uint32_t));
    v->real = cs_xcalloc(n + 1, sizeof(uint32_t));
    v->nlink = cs_xcalloc(n + 1, sizeof(uint32_t));
    v->kid_off = cs_xcalloc(n + 2, sizeof(uint32_t));
    v->kids = cs_xcalloc(n + 1, sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++) {
        v->nlink[i] = t->e[i].type == CS_E_DIR ? 2 : 1;
        v->real[i] = i;
        v->parent[i] = UINT32_MAX;
    }
    for (uint32_t i = 1; i < n; i++) {
        const char *slash = strrchr(t->e[i].path, '/');
        cs_autofree char *dir = cs_xstrndup(t->e[i].path, slash ? slash - t->e[i].path : 0);
        const cs_entry *p = cs_tree_find(t, dir);
        if (p && p->type == CS_E_DIR) {
            v->parent[i] = (uint32_t) (p - t->e);
            v->kid_off[v->parent[i] + 1]++;
            if (t->e[i].type == CS_E_DIR)
                v->nlink[v->parent[i]]++;
        }
        if (t->e[i].type == CS_E_HARDLINK && (v->real[i] = link_target(t, i)) != i)
            v->nlink[v->real[i]]++;
    }
    for (uint32_t i = 0; i < n; i++)
        v->kid_off[i + 1] += v->kid_off[i];
    cs_autofree uint32_t *fill = cs_xcalloc(n + 1, sizeof(uint32_t));
    for (uint32_t i = 1; i < n; i++)
        if (v->parent[i] != UINT32_MAX)
            v->kids[v->kid_off[v->parent[i]] + fill[v->parent[i]]++] = i;
    v->parent[0] = 0;
}

typedef struct merge_ctx {
    const cs_digest *layers;
    size_t n;
    cs_tree *t;
} merge_ctx;

static int
merge_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    merge_ctx *m = ctx;
    return cs_merged_build(db, txn, m->layers, m->n, &m->t, err);
}

static tv_view *
view_by_name(cs_treeview *tv, const char *name)
{
    size_t n = atomic_load_explicit(&tv->nviews, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(tv->views[i]->name, name))
            return tv->views[i];
    return NULL;
}

static int
add_locked(cs_treeview *tv, const cs_digest *layers, size_t n, const char *name, cs_error **err)
{
    if (view_by_name(tv, name))
        return 0;
    if (atomic_load(&tv->nviews) == TV_MAX_VIEWS)
        return cs_err(err, CS_EFULL, 0, "tree view: more than %d views", TV_MAX_VIEWS);
    for (size_t i = 0; i < n; i++) {
        int rc = cs_lease_tree(tv->s, &layers[i], err);
        if (rc < 0)
            return rc;
    }
    merge_ctx m = { layers, n, NULL };
    int rc = cs_db_read(tv->db, merge_fn, &m, err);
    if (rc < 0)
        return rc;
    tv_view *v = cs_xcalloc(1, sizeof(*v));
    memcpy(v->name, name, CS_DIGEST_HEX);
    v->t = m.t;
    add_missing_dirs(v->t);
    index_view(v);
    v->base = tv->next_ino;
    tv->next_ino += v->t->n;
    size_t k = atomic_load(&tv->nviews);
    tv->views[k] = v;
    atomic_store_explicit(&tv->nviews, k + 1, memory_order_release);
    return 0;
}

int
cs_treeview_add(cs_treeview *tv, const cs_digest *layers, size_t n, char name[CS_DIGEST_HEX],
                cs_error **err)
{
    cs_treeview_name(layers, n, name);
    pthread_mutex_lock(&tv->add_lock);
    int rc = add_locked(tv, layers, n, name, err);
    pthread_mutex_unlock(&tv->add_lock);
    return rc < 0 ? cs_err_wrap(err, "tree view of %zu layers", n) : 0;
}

/* ---- lookups ---- */

tv_view *
tv_find(cs_treeview *tv, uint64_t ino, uint32_t *idx)
{
    size_t n = atomic_load_explicit(&tv->nviews, memory_order_acquire);
    size_t lo = 0, hi = n;
    while (lo < hi) { /* the last view with base <= ino */
        size_t mid = lo + (hi - lo) / 2;
        if (tv->views[mid]->base <= ino)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!lo)
        return NULL;
    tv_view *v = tv->views[lo - 1];
    if (ino - v->base >= v->t->n)
        return NULL;
    *idx = (uint32_t) (ino - v->base);
    return v;
}

static void
root_stat(struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = CS_TV_ROOT;
    st->st_mode = S_IFDIR | 0700;
    st->st_nlink = 2;
}

static mode_t
type_bits(cs_etype t)
{
    switch (t) {
    case CS_E_DIR:
        return S_IFDIR;
    case CS_E_SYMLINK:
        return S_IFLNK;
    case CS_E_CHAR:
        return S_IFCHR;
    case CS_E_BLOCK:
        return S_IFBLK;
    case CS_E_FIFO:
        return S_IFIFO;
    default:
        return S_IFREG;
    }
}

static void
entry_stat(const tv_view *v, uint32_t i, struct stat *st)
{
    uint32_t r = v->real[i];
    const cs_entry *e = &v->t->e[r];
    memset(st, 0, sizeof(*st));
    st->st_ino = v->base + r;
    st->st_mode = type_bits(e->type) | (e->mode & 07777);
    st->st_nlink = v->nlink[r];
    st->st_uid = e->uid;
    st->st_gid = e->gid;
    st->st_size = e->type == CS_E_SYMLINK && e->link ? (off_t) strlen(e->link) : (off_t) e->size;
    st->st_blocks = (st->st_size + 511) / 512;
    st->st_blksize = 65536;
    st->st_mtim.tv_sec = e->mtime_sec;
    st->st_mtim.tv_nsec = e->mtime_nsec;
    st->st_atim = st->st_ctim = st->st_mtim;
    if (e->type == CS_E_CHAR || e->type == CS_E_BLOCK)
        st->st_rdev = makedev(e->devmajor, e->devminor);
}

int
cs_treeview_getattr(cs_treeview *tv, uint64_t ino, struct stat *st)
{
    uint32_t i;
    if (ino == CS_TV_ROOT) {
        root_stat(st);
        return 0;
    }
    tv_view *v = tv_find(tv, ino, &i);
    if (!v)
        return -ENOENT;
    entry_stat(v, i, st);
    return 0;
}

static const char *
base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int
cs_treeview_lookup(cs_treeview *tv, uint64_t parent, const char *name, struct stat *st)
{
    uint32_t d;
    if (parent == CS_TV_ROOT) {
        tv_view *v = view_by_name(tv, name);
        if (!v)
            return -ENOENT;
        entry_stat(v, 0, st);
        return 0;
    }
    tv_view *v = tv_find(tv, parent, &d);
    if (!v)
        return -ENOENT;
    if (v->t->e[d].type != CS_E_DIR)
        return -ENOTDIR;
    uint32_t lo = v->kid_off[d], hi = v->kid_off[d + 1];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(base_name(v->t->e[v->kids[mid]].path), name);
        if (!c) {
            entry_stat(v, v->kids[mid], st);
            return 0;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -ENOENT;
}

static int
root_dirent(cs_treeview *tv, uint64_t idx, const char **name, struct stat *st)
{
    size_t n = atomic_load_explicit(&tv->nviews, memory_order_acquire);
    if (idx < 2) {
        *name = idx ? ".." : ".";
        root_stat(st);
        return 1;
    }
    if (idx - 2 >= n)
        return 0;
    *name = tv->views[idx - 2]->name;
    entry_stat(tv->views[idx - 2], 0, st);
    return 1;
}

int
cs_treeview_dirent(cs_treeview *tv, uint64_t ino, uint64_t idx, const char **name, struct stat *st)
{
    uint32_t d;
    if (ino == CS_TV_ROOT)
        return root_dirent(tv, idx, name, st);
    tv_view *v = tv_find(tv, ino, &d);
    if (!v)
        return -ENOENT;
    if (v->t->e[d].type != CS_E_DIR)
        return -ENOTDIR;
    if (idx < 2) {
        *name = idx ? ".." : ".";
        if (idx && !d)
            root_stat(st);
        else
            entry_stat(v, idx ? v->parent[d] : d, st);
        return 1;
    }
    uint64_t k = v->kid_off[d] + idx - 2;
    if (k >= v->kid_off[d + 1])
        return 0;
    *name = base_name(v->t->e[v->kids[k]].path);
    entry_stat(v, v->kids[k], st);
    return 1;
}

int
cs_treeview_readlink(cs_treeview *tv, uint64_t ino, const char **target)
{
    uint32_t i;
    tv_view *v = tv_find(tv, ino, &i);
    if (!v)
        return -ENOENT;
    const cs_entry *e = &v->t->e[i];
    if (e->type != CS_E_SYMLINK)
        return -EINVAL;
    *target = e->link ? e->link : "";
    return 0;
}

static const cs_entry *
xattr_entry(cs_treeview *tv, uint64_t ino)
{
    uint32_t i;
    tv_view *v = ino == CS_TV_ROOT ? NULL : tv_find(tv, ino, &i);
    return v ? &v->t->e[v->real[i]] : NULL;
}

int
cs_treeview_getxattr(cs_treeview *tv, uint64_t ino, const char *name, const void **value,
                     size_t *len)
{
    const cs_entry *e = xattr_entry(tv, ino);
    if (!e && ino != CS_TV_ROOT)
        return -ENOENT;
    if (!e || !strncmp(name, OVL_PREFIX, strlen(OVL_PREFIX)))
        return -ENODATA;
    for (uint32_t j = 0; j < e->nxattrs; j++)
        if (!strcmp(e->xattrs[j].name, name)) {
            *value = e->xattrs[j].value;
            *len = e->xattrs[j].len;
            return 0;
        }
    return -ENODATA;
}

ssize_t
cs_treeview_listxattr(cs_treeview *tv, uint64_t ino, char *buf, size_t size)
{
    const cs_entry *e = xattr_entry(tv, ino);
    if (!e && ino != CS_TV_ROOT)
        return -ENOENT;
    size_t total = 0;
    for (uint32_t j = 0; e && j < e->nxattrs; j++) {
        const char *n = e->xattrs[j].name;
        if (strncmp(n, OVL_PREFIX, strlen(OVL_PREFIX))) {
            size_t l = strlen(n) + 1;
            if (size && total + l <= size)
                memcpy(buf + total, n, l);
            total += l;
        }
    }
    return size && total > size ? -ERANGE : (ssize_t) total;
}
