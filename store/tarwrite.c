/* tarwrite.c - a tree as a deterministic tar stream (cs_tree_write_tar).
 *
 * libarchive's restricted pax writer: plain ustar headers unless a field
 * needs a pax record (long or non-ASCII names, xattrs, big ids), no atime,
 * ctime or birthtime, 10240-byte blocks with the last one unpadded. Nothing
 * in the output depends on the clock, the process or the host, so the same
 * tree always gives the same bytes. Names are written as the tree stores
 * them; the process must keep the C locale for LC_CTYPE (libarchive converts
 * non-ASCII names from the locale's charset).
 */
#include "cstore/archive_dl.h"
#include <string.h>
#include <sys/stat.h>

#include "cstore/export.h"

typedef struct tar_out {
    cs_sink_fn sink;
    void *ctx;
    cs_error *err; /* the sink's error, kept while libarchive unwinds */
    bool failed;   /* no more output (after an error) */
} tar_out;

static la_ssize_t
tar_out_write(struct archive *a, void *client, const void *buf, size_t n)
{
    (void) a;
    tar_out *o = client;
    if (o->failed)
        return -1;
    if (o->sink(o->ctx, buf, n, &o->err) < 0) {
        if (!o->err)
            cs_err(&o->err, CS_EIO, 0, "tar output failed");
        o->failed = true;
        return -1;
    }
    return (la_ssize_t) n;
}

/* Fails with the sink's error when there is one, else libarchive's. */
static int
tar_fail(tar_out *o, struct archive *a, cs_error **err, const char *what, const char *path)
{
    if (o->err) {
        if (err && !*err) {
            *err = cs_steal(&o->err);
            return cs_err_wrap(err, "%s '%s'", what, path);
        }
        int code = (int) o->err->code;
        cs_error_clear(&o->err);
        return -code;
    }
    return cs_err(err, CS_EIO, 0, "%s '%s': %s", what, path, archive_error_string(a));
}

typedef struct data_out {
    struct archive *a;
    uint64_t written;
} data_out;

static int
data_write(void *ctx, const void *p, size_t n, cs_error **err)
{
    data_out *d = ctx;
    while (n > 0) {
        la_ssize_t w = archive_write_data(d->a, p, n);
        if (w < 0)
            return cs_err(err, CS_EIO, 0, "tar data: %s", archive_error_string(d->a));
        if (w == 0)
            return cs_err(err, CS_ECORRUPT, 0, "content longer than its entry");
        d->written += (uint64_t) w;
        p = (const uint8_t *) p + w;
        n -= (size_t) w;
    }
    return 0;
}

/* How each entry goes out: hardlinks whose target does not come first are
 * reordered by turning the first member of the link group into the file. */
typedef struct plan {
    const char *linkto; /* emit as a hardlink to this path */
    ssize_t src;        /* emit as a copy of this entry (the link group's target) */
    bool as_file;       /* emit as a file with own metadata (target absent) */
} plan;

static ssize_t
tree_index(const cs_tree *t, const char *path)
{
    const cs_entry *e = cs_tree_find(t, path);
    return e ? e - t->e : -1;
}

static void
plan_links(const cs_tree *t, plan *pl)
{
    size_t nlinks = 0;
    for (size_t i = 0; i < t->n; i++) {
        pl[i].src = -1;
        if (t->e[i].type == CS_E_HARDLINK)
            nlinks++;
    }
    if (nlinks == 0)
        return;
    /* path: the final target after following hardlink chains; idx: the link */
    cs_path_idx *refs = cs_xcalloc(nlinks, sizeof(*refs));
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->e[i].type != CS_E_HARDLINK)
            continue;
        /* Follow chains (a link to a link) to the entry holding the inode;
         * a cycle ends after n steps and counts as an absent target. */
        const char *root = t->e[i].link ? t->e[i].link : "";
        for (size_t step = 0; step < t->n; step++) {
            ssize_t j = tree_index(t, root);
            if (j < 0 || t->e[j].type != CS_E_HARDLINK || !t->e[j].link)
                break;
            root = t->e[j].link;
        }
        refs[k].path = root;
        refs[k].idx = i;
        k++;
    }
    qsort(refs, nlinks, sizeof(*refs), cs_path_idx_cmp);
    for (size_t g = 0; g < nlinks;) {
        size_t end = g + 1;
        while (end < nlinks && strcmp(refs[end].path, refs[g].path) == 0)
            end++;
        ssize_t r = tree_index(t, refs[g].path);
        if (r >= 0 && t->e[r].type == CS_E_HARDLINK)
            r = -1; /* a cycle: no entry holds the inode */
        if (r >= 0 && t->e[r].type == CS_E_DIR) {
            /* Hardlinks to directories are invalid anyway: leave them. */
            g = end;
            continue;
        }
        size_t first = refs[g].idx; /* smallest index in the group */
        if (r >= 0 && (size_t) r < first) {
            for (size_t m = g; m < end; m++)
                pl[refs[m].idx].linkto = t->e[r].path;
        } else {
            /* The first link in order becomes the file; every later member,
             * the original target included, links to it. */
            if (r >= 0) {
                pl[first].src = r;
                pl[r].linkto = t->e[first].path;
            } else {
                pl[first].as_file = true;
            }
            for (size_t m = g + 1; m < end; m++)
                pl[refs[m].idx].linkto = t->e[first].path;
        }
        g = end;
    }
    free(refs);
}

static unsigned
etype_to_ae(cs_etype t)
{
    switch (t) {
    case CS_E_DIR:
        return AE_IFDIR;
    case CS_E_SYMLINK:
        return AE_IFLNK;
    case CS_E_CHAR:
        return AE_IFCHR;
    case CS_E_BLOCK:
        return AE_IFBLK;
    case CS_E_FIFO:
        return AE_IFIFO;
    default:
        return AE_IFREG;
    }
}

/* Fills ae for entry e (path from pe, metadata and content from e). */
static void
fill_entry(struct archive_entry *ae, const cs_entry *pe, const cs_entry *e, const char *linkto,
           bool as_file)
{
    archive_entry_clear(ae);
    if (pe->path[0] == '\0') {
        archive_entry_copy_pathname(ae, "./");
    } else if (e->type == CS_E_DIR && !linkto) {
        cs_autofree char *p = cs_xasprintf("%s/", pe->path);
        archive_entry_copy_pathname(ae, p);
    } else {
        archive_entry_copy_pathname(ae, pe->path);
    }
    cs_etype type = as_file ? CS_E_FILE : e->type;
    archive_entry_set_filetype(ae, etype_to_ae(type));
    archive_entry_set_perm(ae, e->mode & 07777);
    archive_entry_set_uid(ae, e->uid);
    archive_entry_set_gid(ae, e->gid);
    if (e->uname)
        archive_entry_copy_uname(ae, e->uname);
    if (e->gname)
        archive_entry_copy_gname(ae, e->gname);
    archive_entry_set_mtime(ae, e->mtime_sec, e->mtime_nsec);
    if (linkto) {
        archive_entry_copy_hardlink(ae, linkto);
        archive_entry_set_size(ae, 0);
    } else {
        if (type == CS_E_SYMLINK)
            archive_entry_copy_symlink(ae, e->link ? e->link : "");
        if (type == CS_E_CHAR || type == CS_E_BLOCK) {
            archive_entry_set_rdevmajor(ae, e->devmajor);
            archive_entry_set_rdevminor(ae, e->devminor);
        }
        archive_entry_set_size(ae, type == CS_E_FILE ? (la_int64_t) e->size : 0);
    }
    for (uint32_t x = 0; x < e->nxattrs; x++)
        archive_entry_xattr_add_entry(ae, e->xattrs[x].name, e->xattrs[x].value, e->xattrs[x].len);
}

int
cs_tree_write_tar(cs_db *db, MDB_txn *txn, const cs_tree *t, cs_sink_fn sink, void *ctx,
                  cs_error **err)
{
    tar_out o = { sink, ctx, NULL, false };
    int rc = cs_archive_load("tar", err);
    if (rc < 0)
        return rc;
    plan *pl = cs_xcalloc(t->n ? t->n : 1, sizeof(*pl));
    plan_links(t, pl);

    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    if (!a || !ae)
        abort();
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK
        || archive_write_set_bytes_per_block(a, 10240) != ARCHIVE_OK
        || archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK
        || archive_write_open(a, &o, NULL, tar_out_write, NULL) != ARCHIVE_OK) {
        rc = tar_fail(&o, a, err, "tar", "open");
        goto out;
    }

    for (size_t i = 0; i < t->n; i++) {
        const cs_entry *pe = &t->e[i];
        const cs_entry *e = pl[i].src >= 0 ? &t->e[pl[i].src] : pe;
        bool as_file = pl[i].as_file;
        const char *linkto = pl[i].linkto;
        if (!linkto && e->type == CS_E_HARDLINK && !as_file)
            linkto = e->link; /* a link to a directory: passed through */
        fill_entry(ae, pe, e, linkto, as_file);
        int ar = archive_write_header(a, ae);
        if (ar < ARCHIVE_WARN) {
            rc = tar_fail(&o, a, err, "tar header", pe->path);
            goto out;
        }
        bool is_file = !linkto && (as_file || e->type == CS_E_FILE);
        if (!is_file || e->size == 0)
            continue;
        if (!e->has_content) {
            rc = cs_err(err, CS_ECORRUPT, 0, "tree entry '%s' has size %llu and no content",
                        pe->path, (unsigned long long) e->size);
            goto out;
        }
        data_out d = { a, 0 };
        rc = cs_content_read(db, txn, &e->content, true, data_write, &d, err);
        if (rc < 0) {
            if (o.err) {
                cs_error_clear(err);
                rc = tar_fail(&o, a, err, "tar data", pe->path);
            } else {
                rc = cs_err_wrap(err, "'%s'", pe->path);
            }
            goto out;
        }
        if (d.written != e->size) {
            rc = cs_err(err, CS_ECORRUPT, 0, "'%s': content has %llu bytes, entry says %llu",
                        pe->path, (unsigned long long) d.written, (unsigned long long) e->size);
            goto out;
        }
    }
    if (archive_write_close(a) != ARCHIVE_OK) {
        rc = tar_fail(&o, a, err, "tar", "close");
        goto out;
    }

out:
    /* After a failure, archive_write_free must not write the trailer. */
    o.failed = o.failed || rc < 0;
    archive_entry_free(ae);
    archive_write_free(a);
    cs_error_clear(&o.err);
    free(pl);
    return rc;
}
