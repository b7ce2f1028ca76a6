/* copy_layer.c - step 2 of COPY/ADD, cs_copy_layer: the prepared sources
 * become the entries of a new layer on top of the stage's tree (destination
 * resolved through the stage's symlinks, missing parents made as fsutil's
 * MkdirAll makes them, ADD's local archives extracted). Reads only metadata,
 * plus the archives.
 */
#include "copy_int.h"

#include "cstore/archive_dl.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "cstore/merged.h"

typedef struct layer {
    cs_copy *c;
    cs_db *db;
    const cs_tree *dt;  /* the stage's merged tree (may be NULL) */
    cs_merged_view *dv; /* or a view of its layers */
    cs_tree *out;
    /* Paths this layer made, with the index of their entry in out
     * (directories created, and the file a lone source became). */
    struct made {
        char *path;
        size_t idx;
        bool dir;
    } * made;
    size_t nmade, capmade;
    /* Where nodes with a link key went: path = key (borrowed), idx into
     * paths (the layer path, owned). */
    cs_path_idx *linked;
    char **paths;
    size_t nlinked, caplinked;
} layer;

static void
linked_add(layer *l, const char *key, const char *path)
{
    if (l->nlinked == l->caplinked) {
        l->caplinked = l->caplinked ? l->caplinked * 2 : 16;
        l->linked = cs_xrealloc(l->linked, l->caplinked * sizeof(*l->linked));
        l->paths = cs_xrealloc(l->paths, l->caplinked * sizeof(char *));
    }
    l->paths[l->nlinked] = cs_xstrdup(path);
    l->linked[l->nlinked] = (cs_path_idx){ key, l->nlinked };
    l->nlinked++;
}

/* One inode's paths (linked[g, end)): the first in tree order stays the
 * file, the others become hardlinks to it (tar needs the target first);
 * an entry replaced since by another kind or content is left alone. */
static void
link_group(layer *l, size_t g, size_t end)
{
    cs_entry *file = NULL;
    for (size_t k = g; k < end; k++) {
        cs_entry *e = (cs_entry *) cs_tree_find(l->out, l->paths[l->linked[k].idx]);
        if (e && e->type == CS_E_FILE && (!file || e < file))
            file = e;
    }
    for (size_t k = g; file && k < end; k++) {
        cs_entry *e = (cs_entry *) cs_tree_find(l->out, l->paths[l->linked[k].idx]);
        if (!e || e == file || e->type != CS_E_FILE || e->size != file->size
            || (e->has_content && !cs_digest_eq(&e->content, &file->content)))
            continue;
        e->type = CS_E_HARDLINK;
        free(e->link);
        e->link = cs_xstrdup(file->path);
    }
}

/* After the sort: nodes of one inode become a file and its hardlinks. */
static void
link_all(layer *l)
{
    qsort(l->linked, l->nlinked, sizeof(*l->linked), cs_path_idx_cmp);
    for (size_t g = 0, end; g < l->nlinked; g = end) {
        for (end = g + 1; end < l->nlinked && !strcmp(l->linked[end].path, l->linked[g].path);)
            end++;
        if (end - g > 1)
            link_group(l, g, end);
    }
    for (size_t i = 0; i < l->nlinked; i++)
        free(l->paths[i]);
    cs_free_all(l->linked, l->paths);
}

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
    if (!l->dv && (!l->dt || !l->dt->n)) {
        *real = cs_xstrdup(path);
        return *path ? (strchr(path, '/') ? -CS_ENOTFOUND : 0) : 1;
    }
    *real = NULL;
    int r = l->dv ? cs_merged_view_resolve(l->dv, path, true, real, e, err)
                  : cs_tree_resolve(l->dt, path, true, real, e, err);
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
 * directory. Missing directories are added owned by the --chown user, as
 * fsutil's MkdirAll(dest, 0755, chown) makes them: the parents 0755, path
 * itself mode (0755, or --chmod where it is what is copied). */
static int
mkdir_all(layer *l, const char *path, uint32_t mode, char **real, cs_error **err)
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
        if ((r = mkdir_all(l, parent, 0755, &preal, err)) < 0)
            return r;
        rp = copy_join(preal, slash ? slash + 1 : path);
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
        if ((r = mkdir_all(l, parent, 0755, &preal, err)) < 0) {
            free(rp);
            return r;
        }
    }
    cs_entry *ne = cs_tree_add(l->out);
    ne->path = cs_xstrdup(rp);
    ne->type = CS_E_DIR;
    ne->mode = mode;
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
    const cs_entry *old = NULL;
    if (check && l->dv) {
        int r = cs_merged_view_find(l->dv, path, &old, err);
        if (r < 0)
            return r;
    } else if (check && l->dt) {
        old = cs_tree_find(l->dt, path);
    }
    if (old && n->type == CS_E_DIR && old->type != CS_E_DIR)
        return cs_err(err, CS_EEXIST, 0, "cannot copy to non-directory: /%s", path);
    if (old && n->type != CS_E_DIR && old->type == CS_E_DIR)
        return cs_err(err, CS_EEXIST, 0, "cannot replace to directory /%s with file", path);
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
    const char *key = copy_node_link(c, (size_t) (n - c->nodes));
    if (key)
        linked_add(l, key, path);
    return 0;
}

/* ---- ADD: local archives ---- */

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
 * Docker, by content: the first header must read. 1 or 0, or an error if
 * libarchive cannot be loaded. */
static int
is_archive(const char *name, const char *path, cs_error **err)
{
    int r = cs_archive_load(name, err);
    if (r < 0)
        return r;
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
    return ok ? 1 : 0;
}

/* Ingests the archive it->abs, decompressed, as a layer tar. */
static int
ingest_archive(cs_ingest *ing, const item *it, cs_layer_info *info, cs_error **err)
{
    int r = cs_archive_load(it->name, err);
    if (r < 0)
        return r;
    struct archive *a = archive_read_new();
    support_filters(a);
    archive_read_support_format_raw(a);
    struct archive_entry *ae;
    if (archive_read_open_filename(a, it->abs, 1 << 16) != ARCHIVE_OK
        || archive_read_next_header(a, &ae) != ARCHIVE_OK)
        r = cs_err(err, CS_EIO, 0, "%s: %s", it->name,
                   archive_error_string(a) ? archive_error_string(a) : "cannot read");
    else
        r = cs_ingest_tar(ing, it->name, cs_archive_read, a, info, err);
    archive_read_free(a);
    return r;
}

/* One entry of an extracted archive, under the directory dreal. */
static void
extracted_entry(layer *l, const cs_entry *e, const char *dreal)
{
    cs_entry *ne = cs_tree_add(l->out);
    cs_entry_copy(ne, e);
    free(ne->path);
    ne->path = copy_join(dreal, e->path);
    if (ne->type == CS_E_HARDLINK && ne->link) {
        char *lk = copy_join(dreal, ne->link);
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

/* Extracts the archive it->abs under the directory dreal (real path). */
static int
extract(layer *l, cs_ingest *ing, const item *it, const char *dreal, cs_error **err)
{
    cs_layer_info info;
    int r = ingest_archive(ing, it, &info, err);
    if (r < 0)
        return r;
    cs_tree *t = NULL;
    if ((r = cs_tree_get(l->db, cs_ingest_txn(ing), &info.tree, &t, err)) < 0)
        return r;
    for (size_t i = 0; i < t->n; i++)
        if (*t->e[i].path)
            extracted_entry(l, &t->e[i], dreal);
    cs_tree_free(t);
    return 0;
}

static int
add_archive(layer *l, cs_ingest *ing, const item *it, cs_error **err)
{
    cs_autofree char *dreal = NULL;
    /* fsutil's MkdirAll(dest, 0755, chown): --chmod does not apply. */
    int r = mkdir_all(l, l->c->dest, 0755, &dreal, err);
    if (r < 0)
        return r;
    if (!ing)
        return cs_err(err, CS_EINVAL, 0, "ADD %s: extracting needs an ingest", it->name);
    return extract(l, ing, it, dreal, err);
}

/* ---- items ---- */

/* Copying into an existing directory keeps its metadata but takes the
 * source directory's times (fsutil restores them). */
static void
take_times(const cs_copy *c, cs_entry *d, const cs_entry *root)
{
    d->mtime_sec = root->mtime_sec;
    d->mtime_nsec = root->mtime_nsec;
    clamp(c, d);
}

/* The directory a directory item's contents go to (*real), made when
 * missing; root is the item's own node. */
static int
dir_dest(layer *l, const cs_entry *root, char **real, cs_error **err)
{
    const cs_copy *c = l->c;
    const cs_entry *e;
    int r = dest_resolve(l, c->dest, real, &e, err);
    if (r < 0 && r != -CS_ENOTFOUND)
        return r;
    struct made *m = *real ? made_find(l, *real) : NULL;
    if ((r == 1 && e && e->type != CS_E_DIR) || (m && !m->dir))
        return cs_err(err, CS_EEXIST, 0, "cannot copy to non-directory: /%s", c->dest);
    if (m) {
        take_times(c, &l->out->e[m->idx], root);
        return 0;
    }
    if (r == 1) {
        if (e) {
            cs_entry *d = cs_tree_add(l->out);
            cs_entry_copy(d, e);
            take_times(c, d, root);
        }
        return 0;
    }
    free(*real);
    *real = NULL;
    /* The directory a source directory becomes takes --chmod; its
     * parents do not. */
    if ((r = mkdir_all(l, c->dest, c->chmod ? c->mode : 0755, real, err)) < 0)
        return r;
    m = made_find(l, *real);
    if (m)
        take_times(c, &l->out->e[m->idx], root);
    return 0;
}

static int
layer_dir_item(layer *l, const item *it, cs_error **err)
{
    const cs_copy *c = l->c;
    cs_autofree char *real = NULL;
    int r = dir_dest(l, &c->nodes[it->first], &real, err);
    if (r < 0)
        return r;
    for (size_t i = it->first + 1; i < it->first + it->n; i++) {
        cs_autofree char *p = copy_join(real, c->nodes[i].path);
        if ((r = emit(l, &c->nodes[i], p, true, err)) < 0)
            return r;
    }
    return 0;
}

/* Makes the parent directories of the clean path p. */
static int
mkdir_parent(layer *l, const char *p, char **preal, cs_error **err)
{
    const char *slash = strrchr(p, '/');
    if (!slash)
        return 0;
    cs_autofree char *parent = cs_xstrndup(p, (size_t) (slash - p));
    return mkdir_all(l, parent, 0755, preal, err);
}

/* Where a lone non-directory goes when dest does not end in "/": into dest
 * when it is a directory, else dest itself (the file a lone source
 * becomes). */
static int
file_target(layer *l, const item *it, size_t nfiles, char **target, cs_error **err)
{
    const cs_copy *c = l->c;
    const cs_entry *e;
    cs_autofree char *real = NULL;
    cs_autofree char *preal = NULL;
    int r = dest_resolve(l, c->dest, &real, &e, err);
    if (r < 0 && r != -CS_ENOTFOUND)
        return r;
    struct made *m = made_find(l, real);
    if ((r == 1 && (!e || e->type == CS_E_DIR)) || (m && m->dir)) {
        *target = copy_join(real, it->name);
    } else if (m || (r == 1 && nfiles > 1)) {
        return cs_err(err, CS_EINVAL, 0,
                      "when using COPY with more than one source file, the destination "
                      "must be a directory and end with a /");
    } else if (r == 1 || r == 0) {
        if ((r = mkdir_parent(l, real, &preal, err)) < 0)
            return r;
        *target = cs_xstrdup(real);
    } else {
        /* A parent is missing from the stage: dest has a "/". */
        if ((r = mkdir_parent(l, c->dest, &preal, err)) < 0)
            return r;
        *target = copy_join(preal, strrchr(c->dest, '/') + 1);
    }
    if (!made_find(l, *target))
        made_add(l, *target, SIZE_MAX, false);
    return 0;
}

static int
layer_file_item(layer *l, cs_ingest *ing, const item *it, size_t nfiles, cs_error **err)
{
    const cs_copy *c = l->c;
    const cs_entry *n = &c->nodes[it->first];
    int r;
    if (c->is_add && it->kind == I_FILE && it->abs && n->type == CS_E_FILE && n->has_content
        && (r = is_archive(it->name, it->abs, err)) != 0)
        return r < 0 ? r : add_archive(l, ing, it, err);
    cs_autofree char *target = NULL;
    if (c->dest_dir) {
        cs_autofree char *dreal = NULL;
        if ((r = mkdir_all(l, c->dest, 0755, &dreal, err)) < 0)
            return r;
        target = copy_join(dreal, it->name);
    } else if ((r = file_target(l, it, nfiles, &target, err)) < 0) {
        return r;
    }
    return emit(l, n, target, true, err);
}

static int
copy_layer(layer *lp, cs_ingest *ing, cs_tree **out, cs_error **err)
{
    layer l = *lp;
    cs_copy *c = l.c;
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
    if (r >= 0)
        cs_tree_sort(l.out);
    if (r >= 0 && l.nlinked)
        link_all(&l);
    for (size_t i = 0; r < 0 && i < l.nlinked; i++)
        free(l.paths[i]);
    if (r < 0) {
        cs_free_all(l.linked, l.paths);
        cs_tree_free(l.out);
        return r;
    }
    *out = l.out;
    return 0;
}

int
cs_copy_layer(cs_store *s, cs_ingest *ing, cs_copy *c, const cs_tree *dest_tree, cs_tree **out,
              cs_error **err)
{
    layer l = { .c = c, .db = cs_store_db(s), .dt = dest_tree };
    return copy_layer(&l, ing, out, err);
}

int
cs_copy_layer_view(cs_store *s, cs_ingest *ing, cs_copy *c, cs_merged_view *dest, cs_tree **out,
                   cs_error **err)
{
    layer l = { .c = c, .db = cs_store_db(s), .dv = dest };
    return copy_layer(&l, ing, out, err);
}
