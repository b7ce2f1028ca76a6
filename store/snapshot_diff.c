/* snapshot_diff.c - an overlay upper dir turned back into layer entries:
 * new and changed files ingested, overlay whiteouts and opaque dirs turned
 * into OCI markers, one inode's paths into a file and its hardlinks (see
 * cs_snapshot_diff in cstore/snapshot.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include "cstore/fsentry.h"
#include "snapshot_int.h"

typedef struct dlink {
    dev_t dev;
    ino_t ino;
    char *first; /* the inode's first path in tree order: the file; others link to it */
    cs_digest content;
    uint64_t size;
} dlink;

typedef struct dmember {
    char *path;
    size_t link;
} dmember;

typedef struct diff {
    cs_ingest *ing;
    cs_tree *t;
    dlink *links;
    size_t nlinks, caplinks;
    dmember *members;
    size_t nmembers, capmembers;
} diff;

/* Copies the xattrs of full into e, except overlay's own. Reports the
 * opaque marker, and refuses what a plain walk cannot turn into a layer:
 * renamed directories (redirect) and metadata-only copy-ups (metacopy), which
 * take their content from a lower layer. */
static int
diff_xattrs(const char *full, cs_entry *e, bool *opaque, cs_error **err)
{
    ssize_t n = llistxattr(full, NULL, 0);
    if (n < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
        return 0;
    if (n < 0)
        return cs_err(err, CS_EIO, errno, "'%s': list xattrs", full);
    if (n == 0)
        return 0;
    cs_autofree char *names = cs_xmalloc((size_t) n);
    n = llistxattr(full, names, (size_t) n);
    if (n < 0)
        return cs_err(err, CS_EIO, errno, "'%s': list xattrs", full);
    for (ssize_t i = 0; i < n; i += (ssize_t) strlen(names + i) + 1) {
        const char *name = names + i;
        ssize_t vl = lgetxattr(full, name, NULL, 0);
        if (vl < 0 && errno == ENODATA)
            continue;
        cs_autofree uint8_t *val = vl >= 0 ? cs_xmalloc((size_t) vl + 1) : NULL;
        if (vl >= 0)
            vl = lgetxattr(full, name, val, (size_t) vl);
        if (vl < 0)
            return cs_err(err, CS_EIO, errno, "'%s': get xattr '%s'", full, name);
        if (strncmp(name, OVL_PREFIX, strlen(OVL_PREFIX))) {
            cs_entry_add_xattr(e, name, val, (uint32_t) vl);
            continue;
        }
        /* "y": opaque; "x" (6.7+) only marks a dir holding xwhiteouts. */
        if (!strcmp(name, OVL_OPAQUE) && vl == 1 && val[0] == 'y')
            *opaque = true;
        else if (!strcmp(name, OVL_REDIR))
            return cs_err(err, CS_EUNSUPPORTED, 0,
                          "'%s': renamed directory (overlay redirect); mount with redirect_dir=off",
                          full);
        else if (!strcmp(name, OVL_META))
            return cs_err(err, CS_EUNSUPPORTED, 0,
                          "'%s': metadata-only copy-up; mount with metacopy=off", full);
    }
    return 0;
}

static cs_entry *
add_marker(cs_tree *t, const char *parent, size_t plen, const char *name)
{
    cs_entry *e = cs_tree_add(t);
    e->path = cs_xasprintf("%.*s%s", (int) plen, parent, name);
    e->type = CS_E_FILE; /* size 0, mode 0, root, time 0: as docker and buildkit write them */
    return e;
}

static int diff_dir(diff *d, const char *full, const char *rel, cs_error **err);

static int
diff_file(diff *d, const char *full, const char *rel, const struct stat *st, size_t idx,
          cs_error **err)
{
    size_t li = d->nlinks;
    if (st->st_nlink > 1) {
        for (li = 0; li < d->nlinks; li++)
            if (d->links[li].dev == st->st_dev && d->links[li].ino == st->st_ino)
                break;
        if (d->nmembers == d->capmembers) {
            d->capmembers = d->capmembers ? d->capmembers * 2 : 16;
            d->members = cs_xrealloc(d->members, d->capmembers * sizeof(dmember));
        }
        d->members[d->nmembers++] = (dmember){ cs_xstrdup(rel), li };
    }
    cs_entry *e = &d->t->e[idx];
    if (li < d->nlinks) {
        /* Another path of an inode seen already: same content, no re-read. */
        dlink *l = &d->links[li];
        if (strcmp(rel, l->first) < 0) {
            free(l->first);
            l->first = cs_xstrdup(rel);
        }
        e->content = l->content;
        e->size = l->size;
        e->has_content = l->size > 0;
        return 0;
    }
    cs_autoclose int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", full);
    cs_digest c;
    uint64_t size;
    int r = cs_ingest_fd(d->ing, fd, &c, &size, err);
    if (r < 0)
        return cs_err_wrap(err, "'%s'", full);
    e = &d->t->e[idx];
    e->content = c;
    e->size = size;
    e->has_content = size > 0;
    if (st->st_nlink > 1) {
        if (d->nlinks == d->caplinks) {
            d->caplinks = d->caplinks ? d->caplinks * 2 : 16;
            d->links = cs_xrealloc(d->links, d->caplinks * sizeof(dlink));
        }
        d->links[d->nlinks++] = (dlink){ st->st_dev, st->st_ino, cs_xstrdup(rel), c, size };
    }
    return 0;
}

static int
diff_one(diff *d, const char *full, const char *rel, const char *name, cs_error **err)
{
    struct stat st;
    if (lstat(full, &st) < 0)
        return cs_err(err, CS_EIO, errno, "'%s'", full);
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
        cs_autofree char *wh = cs_xasprintf(WH_PREFIX "%s", name);
        add_marker(d->t, rel, strlen(rel) - strlen(name), wh);
        return 0;
    }
    if (S_ISSOCK(st.st_mode))
        return 0; /* sockets cannot live in a layer: skipped, as tar does */
    cs_entry *e = cs_tree_add(d->t);
    size_t idx = d->t->n - 1;
    cs_fsentry_meta(e, rel, &st);
    bool opaque = false;
    int r = diff_xattrs(full, e, &opaque, err);
    if (r < 0)
        return r;
    r = cs_fsentry_type(e, full, &st, err);
    if (r < 0)
        return r;
    if (r > 0)
        return cs_err(err, CS_EUNSUPPORTED, 0, "'%s': unsupported file type", full);
    if (S_ISREG(st.st_mode))
        return diff_file(d, full, rel, &st, idx, err);
    if (!S_ISDIR(st.st_mode))
        return 0;
    if (opaque) {
        cs_autofree char *dir = cs_xasprintf("%s/", rel);
        add_marker(d->t, dir, strlen(dir), WH_OPAQUE);
    }
    return diff_dir(d, full, rel, err);
}

static int
diff_dir(diff *d, const char *full, const char *rel, cs_error **err)
{
    cs_autoclose int fd = open(full, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "open '%s'", full);
    char **names;
    size_t n;
    int r = cs_dir_names(fd, full, &names, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n && r >= 0; i++) {
        cs_autofree char *f = cs_path_join(full, names[i]);
        cs_autofree char *rl = *rel ? cs_xasprintf("%s/%s", rel, names[i]) : cs_xstrdup(names[i]);
        r = diff_one(d, f, rl, names[i], err);
    }
    cs_names_free(names, n);
    return r;
}

int
cs_snapshot_diff(cs_store *s, cs_ingest *ing, const char *upper, const cs_tree *lower,
                 cs_tree **layer, cs_error **err)
{
    /* Everything needed is in the upper dir: overlay made it whiteouts
     * where lower names went away and opaque dirs where lower dirs were
     * replaced, and copied up every parent of a change. */
    (void) s;
    (void) lower;
    diff d = { .ing = ing, .t = cs_tree_new() };
    int r = diff_dir(&d, upper, "", err);
    if (r >= 0) {
        cs_tree_sort(d.t);
        /* Several paths of one inode: the first in tree order is the file
         * (tar needs the target before its links), the others link to it. */
        for (size_t i = 0; i < d.nmembers; i++) {
            const dlink *l = &d.links[d.members[i].link];
            if (!strcmp(d.members[i].path, l->first))
                continue;
            cs_entry *e = (cs_entry *) cs_tree_find(d.t, d.members[i].path);
            if (!e)
                continue;
            e->type = CS_E_HARDLINK;
            free(e->link);
            e->link = cs_xstrdup(l->first);
        }
    }
    for (size_t i = 0; i < d.nlinks; i++)
        free(d.links[i].first);
    for (size_t i = 0; i < d.nmembers; i++)
        free(d.members[i].path);
    free(d.links);
    free(d.members);
    if (r < 0) {
        cs_tree_free(d.t);
        return cs_err_wrap(err, "diff '%s'", upper);
    }
    *layer = d.t;
    return 0;
}
