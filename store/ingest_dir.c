/* ingest_dir.c - a directory tree into the ingest as one layer: owners,
 * modes, times and xattrs kept, one inode's paths as a file and hardlinks.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/xattr.h>
#include "cstore/fsentry.h"
#include "ingest_int.h"

typedef struct walk {
    cs_ingest *ing;
    cs_tree *t;
    /* dev/ino of files with several links -> first path (for hardlinks) */
    struct link {
        dev_t dev;
        ino_t ino;
        char *path;
    } * links;
    size_t nlinks, caplinks;
} walk;

static int
read_xattrs(const char *full, cs_entry *e, cs_error **err)
{
    ssize_t n = llistxattr(full, NULL, 0);
    if (n <= 0)
        return 0; /* none, or a filesystem without xattrs */
    cs_autofree char *names = cs_xmalloc((size_t) n);
    n = llistxattr(full, names, (size_t) n);
    if (n < 0)
        return cs_err(err, CS_EIO, errno, "%s: list xattrs", full);
    for (ssize_t i = 0; i < n; i += (ssize_t) strlen(names + i) + 1) {
        ssize_t vl = lgetxattr(full, names + i, NULL, 0);
        if (vl < 0)
            continue; /* removed meanwhile */
        cs_autofree uint8_t *val = cs_xmalloc((size_t) vl + 1);
        vl = lgetxattr(full, names + i, val, (size_t) vl);
        if (vl >= 0)
            cs_entry_add_xattr(e, names + i, val, (uint32_t) vl);
    }
    return 0;
}

static int walk_dir(walk *w, const char *full, const char *rel, cs_error **err);

/* Another path of an inode seen already becomes a hardlink to the first
 * (true); the first path of a many-linked inode is remembered. */
static bool
walk_link(walk *w, cs_entry *e, const char *rel, const struct stat *st)
{
    if (st->st_nlink <= 1)
        return false;
    for (size_t i = 0; i < w->nlinks; i++) {
        if (w->links[i].dev == st->st_dev && w->links[i].ino == st->st_ino) {
            e->type = CS_E_HARDLINK;
            e->link = cs_xstrdup(w->links[i].path);
            return true;
        }
    }
    if (w->nlinks == w->caplinks) {
        w->caplinks = w->caplinks ? w->caplinks * 2 : 16;
        w->links = cs_xrealloc(w->links, w->caplinks * sizeof(*w->links));
    }
    w->links[w->nlinks++] = (struct link){ st->st_dev, st->st_ino, cs_xstrdup(rel) };
    return false;
}

static int
walk_file(walk *w, const char *full, size_t idx, cs_error **err)
{
    cs_autoclose int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "%s", full);
    uint64_t total = 0;
    int r = ingest_file_begin(w->ing, w->t, idx, NULL, err);
    if (r >= 0)
        r = ingest_read_fd(w->ing, fd, full, &total, err);
    if (r < 0)
        return r;
    w->t->e[idx].size = total;
    return ingest_file_end(w->ing, err);
}

static int
walk_one(walk *w, const char *full, const char *rel, cs_error **err)
{
    struct stat st;
    if (lstat(full, &st) < 0)
        return cs_err(err, CS_EIO, errno, "%s", full);
    if (S_ISSOCK(st.st_mode))
        return 0; /* sockets cannot live in a layer: skip, as tar does */
    cs_entry *e = cs_tree_add(w->t);
    size_t idx = w->t->n - 1;
    cs_fsentry_meta(e, rel, &st);
    int r = read_xattrs(full, e, err);
    if (r >= 0)
        r = cs_fsentry_type(e, full, &st, err);
    if (r > 0)
        return cs_err(err, CS_EUNSUPPORTED, 0, "%s: unsupported file type", full);
    if (r < 0)
        return r;
    if (S_ISDIR(st.st_mode))
        return walk_dir(w, full, rel, err);
    if (!S_ISREG(st.st_mode) || walk_link(w, e, rel, &st))
        return 0;
    return walk_file(w, full, idx, err);
}

static int
walk_dir(walk *w, const char *full, const char *rel, cs_error **err)
{
    cs_autoclose int fd = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "%s", full);
    char **names = NULL;
    size_t n = 0;
    int r = cs_dir_names(fd, full, &names, &n, err);
    for (size_t i = 0; i < n && r >= 0; i++) {
        cs_autofree char *f = cs_path_join(full, names[i]);
        cs_autofree char *rl = *rel ? cs_xasprintf("%s/%s", rel, names[i]) : cs_xstrdup(names[i]);
        r = walk_one(w, f, rl, err);
    }
    cs_names_free(names, n);
    return r;
}

int
cs_ingest_dir(cs_ingest *ing, const char *dir, cs_digest *tree, cs_error **err)
{
    int r = ingest_refuse_if_failed(ing, err);
    if (r < 0)
        return r;
    walk w = { .ing = ing, .t = cs_tree_new() };
    r = walk_dir(&w, dir, "", err);
    if (r >= 0)
        r = ingest_drain_all(ing, err);
    if (r >= 0) {
        cs_tree_sort(w.t);
        r = ingest_check_layer(w.t, dir, err);
    }
    if (r >= 0)
        r = cs_tree_put(ing->db, ing->txn, w.t, tree, err);
    for (size_t i = 0; i < w.nlinks; i++)
        free(w.links[i].path);
    free(w.links);
    cs_tree_free(w.t);
    ing->failed = r < 0;
    return r < 0 ? r : 0;
}
