/* ingest_tar.c - one layer tar (gzip, zstd or plain) into the ingest: its
 * members as tree entries, its files through the pipeline, and the tarsplit
 * record that lets export give the same tar bytes back.
 */
#include "cstore/archive_dl.h"
#include <string.h>
#include "feeder.h"
#include "ingest_int.h"

/* Tar-split capture (cstore/tarsplit.h): libarchive says where a member's
 * headers begin (archive_read_header_position) and, once it returned the
 * entry, how far it consumed (archive_filter_bytes: the data start); the
 * header bytes in between were handed out by tar_read, in the current block
 * or, for headers across a block boundary, in the window of bytes kept from
 * earlier blocks. A member's data is what archive_read_data_block gives, so
 * the next member must start at data start + data rounded up to 512. Anything
 * else (holes, a header beyond the window, a gap) only drops the layer's
 * tarsplit record: export then regenerates the tar, as without one. */
#define TS_WINDOW (64u << 10)

typedef struct tar_src {
    cs_feeder *f;
    const uint8_t *cur; /* the block libarchive reads, at stream offset base */
    size_t len;
    uint64_t base;
    uint8_t *win; /* the last wlen bytes before base */
    size_t wlen;
} tar_src;

static la_ssize_t
tar_read(struct archive *a, void *ctx, const void **buf)
{
    (void) a;
    tar_src *src = ctx;
    if (src->len) {
        size_t k = src->len < TS_WINDOW ? src->len : TS_WINDOW;
        if (src->wlen + k > TS_WINDOW) {
            size_t keep = TS_WINDOW - k;
            memmove(src->win, src->win + src->wlen - keep, keep);
            src->wlen = keep;
        }
        memcpy(src->win + src->wlen, src->cur + src->len - k, k);
        src->wlen += k;
        src->base += src->len;
        src->len = 0;
    }
    ssize_t n = cs_feeder_next(src->f, buf);
    if (n > 0) {
        src->cur = *buf;
        src->len = (size_t) n;
    }
    return n;
}

/* Copies stream bytes [from, to) if tar_read still has them. */
static bool
tar_src_copy(const tar_src *src, uint64_t from, uint64_t to, cs_buf *out)
{
    if (from > to || from + src->wlen < src->base || to > src->base + src->len)
        return false;
    out->len = 0;
    if (from < src->base) {
        uint64_t w0 = src->base - src->wlen;
        uint64_t e = to < src->base ? to : src->base;
        cs_buf_append(out, src->win + (from - w0), (size_t) (e - from));
        from = e;
    }
    if (from < to)
        cs_buf_append(out, src->cur + (from - src->base), (size_t) (to - from));
    return true;
}

typedef struct capture {
    cs_tarsplit *ts; /* lives as long as pending files may point into it */
    bool ok;         /* false once given up */
    uint64_t next;   /* where the next member's headers must begin */
    cs_buf hdr;
} capture;

static void
capture_drop(capture *c)
{
    c->ok = false;
}

/* A member's headers were read: records them. Returns its index or -1. */
static ssize_t
capture_header(capture *c, struct archive *a, const tar_src *src, struct archive_entry *ae)
{
    if (!c->ok)
        return -1;
    la_int64_t hp = archive_read_header_position(a);
    la_int64_t de = archive_filter_bytes(a, 0);
    if (hp < 0 || (uint64_t) hp != c->next || de < hp || (de - hp) % 512 || de - hp > UINT32_MAX
        || archive_entry_sparse_count(ae) > 0
        || !tar_src_copy(src, (uint64_t) hp, (uint64_t) de, &c->hdr)) {
        capture_drop(c);
        return -1;
    }
    c->next = (uint64_t) de;
    return (ssize_t) cs_tarsplit_add(c->ts, c->hdr.data, (uint32_t) c->hdr.len, 0);
}

/* The member's data was read (size bytes). */
static void
capture_data(capture *c, ssize_t idx, uint64_t size)
{
    if (!c->ok || idx < 0)
        return;
    c->ts->m[idx].size = size;
    c->next += (size + 511) & ~(uint64_t) 511;
}

/* The entry type of a tar member's file type; false for none. */
static bool
entry_type(mode_t ft, cs_etype *out)
{
    static const struct {
        mode_t ft;
        cs_etype type;
    } types[] = {
        { AE_IFREG, CS_E_FILE }, { AE_IFDIR, CS_E_DIR },   { AE_IFLNK, CS_E_SYMLINK },
        { AE_IFCHR, CS_E_CHAR }, { AE_IFBLK, CS_E_BLOCK }, { AE_IFIFO, CS_E_FIFO },
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (types[i].ft == ft) {
            *out = types[i].type;
            return true;
        }
    return false;
}

static int
entry_from_archive(struct archive_entry *ae, const char *name, cs_entry *e, cs_error **err)
{
    const char *path = archive_entry_pathname(ae);
    if (!path)
        return cs_err(err, CS_EPARSE, 0, "%s: member without a name", name);
    /* "/" alone is the root (umoci writes it); any other absolute name is refused. */
    if (path[0] == '/' && path[strspn(path, "/")])
        return cs_err(err, CS_EINVAL, 0, "%s: member '%s' has an absolute path", name, path);
    int r = cs_path_clean(path, &e->path, err);
    if (r < 0)
        return cs_err_wrap(err, "%s", name);
    const char *hl = archive_entry_hardlink(ae);
    mode_t ft = archive_entry_filetype(ae);
    if (hl) {
        if (hl[0] == '/')
            return cs_err(err, CS_EINVAL, 0, "%s: hardlink '%s' points at absolute path '%s'", name,
                          path, hl);
        r = cs_path_clean(hl, &e->link, err);
        if (r < 0)
            return cs_err_wrap(err, "%s: hardlink '%s'", name, path);
        e->type = CS_E_HARDLINK;
    } else {
        if (!entry_type(ft, &e->type))
            return cs_err(err, CS_EUNSUPPORTED, 0, "%s: member '%s' has an unsupported type", name,
                          path);
        if (e->type == CS_E_SYMLINK)
            e->link = cs_xstrdup(archive_entry_symlink(ae) ? archive_entry_symlink(ae) : "");
    }
    e->mode = archive_entry_perm(ae) & 07777;
    int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
    if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX)
        return cs_err(err, CS_EINVAL, 0, "%s: member '%s' has an invalid owner", name, path);
    e->uid = (uint32_t) uid;
    e->gid = (uint32_t) gid;
    if (archive_entry_uname(ae) && *archive_entry_uname(ae))
        e->uname = cs_xstrdup(archive_entry_uname(ae));
    if (archive_entry_gname(ae) && *archive_entry_gname(ae))
        e->gname = cs_xstrdup(archive_entry_gname(ae));
    e->mtime_sec = archive_entry_mtime(ae);
    e->mtime_nsec = (uint32_t) archive_entry_mtime_nsec(ae);
    if (e->type == CS_E_CHAR || e->type == CS_E_BLOCK) {
        e->devmajor = (uint32_t) archive_entry_rdevmajor(ae);
        e->devminor = (uint32_t) archive_entry_rdevminor(ae);
    }
    archive_entry_xattr_reset(ae);
    const char *xn;
    const void *xv;
    size_t xl;
    while (archive_entry_xattr_next(ae, &xn, &xv, &xl) == ARCHIVE_OK)
        cs_entry_add_xattr(e, xn, xv, (uint32_t) xl);
    return 0;
}

/* Whether [p, p + n) lies in the block tar_read handed out last, and that
 * block is the caller's bytes in place: then it stays valid. */
static bool
in_stable(const tar_src *src, const void *p, size_t n)
{
    const uint8_t *b = p;
    return cs_feeder_in_place(src->f) && b >= src->cur && n <= src->len
           && (size_t) (b - src->cur) <= src->len - n;
}

static int
tar_file_data(cs_ingest *ing, struct archive *a, const tar_src *src, const char *name,
              const char *path, int64_t size, capture *cap, cs_error **err)
{
    const void *buf;
    size_t len;
    la_int64_t off, pos = 0;
    static const uint8_t zeros[65536];
    for (;;) {
        int rc = archive_read_data_block(a, &buf, &len, &off);
        if (rc == ARCHIVE_EOF)
            return 0;
        if (rc < ARCHIVE_WARN)
            return cs_err(err, CS_EPARSE, 0, "%s: '%s': %s", name, path, archive_error_string(a));
        if (pos < off)
            capture_drop(cap); /* holes have no bytes in the tar */
        while (pos < off) {    /* a hole of a sparse file */
            size_t k = (size_t) (off - pos) < sizeof(zeros) ? (size_t) (off - pos) : sizeof(zeros);
            int r = ingest_file_data(ing, zeros, k, err);
            if (r < 0)
                return r;
            pos += (la_int64_t) k;
        }
        int r = in_stable(src, buf, len)
                    ? ingest_file_data_stable(ing, buf, len, pos + (la_int64_t) len == size, err)
                    : ingest_file_data(ing, buf, len, err);
        if (r < 0)
            return r;
        pos += (la_int64_t) len;
    }
}

static int
ingest_archive(cs_ingest *ing, struct archive *a, const tar_src *src, capture *cap,
               const char *name, cs_tree *t, cs_error **err)
{
    struct archive_entry *ae;
    for (;;) {
        int rc = archive_read_next_header(a, &ae);
        if (rc == ARCHIVE_EOF)
            return 0;
        if (rc < ARCHIVE_WARN)
            return cs_err(err, CS_EPARSE, 0, "%s: %s", name,
                          archive_error_string(a) ? archive_error_string(a) : "bad tar archive");
        ssize_t ci = capture_header(cap, a, src, ae);
        cs_entry tmp = { 0 };
        int r = entry_from_archive(ae, name, &tmp, err);
        if (r < 0) {
            cs_entry_release(&tmp);
            return r;
        }
        if (!*tmp.path) { /* the root directory itself */
            cs_entry_release(&tmp);
            continue;
        }
        cs_entry *e = cs_tree_add(t);
        *e = tmp;
        if (e->type == CS_E_FILE) {
            r = ingest_file_begin(ing, t, t->n - 1, NULL, err);
            if (r >= 0 && ci >= 0) {
                pending *pf = ingest_current(ing);
                pf->ts = cap->ts;
                pf->ts_idx = (size_t) ci;
            }
            if (r >= 0)
                r = tar_file_data(ing, a, src, name, e->path, archive_entry_size(ae), cap, err);
            if (r >= 0) {
                uint64_t size = ingest_current(ing)->size;
                t->e[t->n - 1].size = size;
                capture_data(cap, ci, size);
                r = ingest_file_end(ing, err);
            }
            if (r < 0)
                return r;
        }
    }
}

/* Puts the layer's tarsplit record, unless capture gave up or the same
 * record is there. Only a store error fails. */
static int
store_tarsplit(cs_ingest *ing, capture *cap, const cs_layer_info *info, cs_error **err)
{
    if (!cap->ok || cap->next > info->tar_size)
        return 0;
    cs_digest have;
    cs_error *tmp = NULL;
    int r = cs_tarsplit_tree(ing->db, ing->txn, &info->diff_id, &have, &tmp);
    /* Not found is the usual answer; any other failure only costs a rewrite
     * of the record (and the put below reports a store that is broken). */
    cs_error_clear(&tmp);
    if (r == 0 && cs_digest_eq(&have, &info->tree))
        return 0; /* the same tar bytes gave the same record */
    cap->ts->tree = info->tree;
    cap->ts->tar_size = info->tar_size;
    cap->ts->trailer = info->tar_size - cap->next;
    return cs_tarsplit_put(ing->db, ing->txn, &info->diff_id, cap->ts, err);
}

/* Hardlinks in tar order. A hardlink member names the file its target is AT
 * THAT POINT of the tar, as extraction sees it; a later member of the
 * target's path replaces only the path. Entries are in tar order here (before
 * cs_tree_sort). A hardlink whose target was replaced later becomes the file
 * itself (its own header, the old target's content), and further hardlinks
 * to that old file point at it; any other one is pointed at the file at the
 * end of its chain. A target that comes only later is left to
 * ingest_check_layer. */
typedef struct hl_order {
    const cs_entry *e;
    size_t i;
} hl_order;

static int
cmp_hl_order(const void *a, const void *b)
{
    const hl_order *x = a, *y = b;
    int c = strcmp(x->e->path, y->e->path);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* The index of the last entry of path before `before`, or -1. */
static ssize_t
hl_find(const hl_order *v, size_t n, const char *path, size_t before)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* first slot after every (path, < before) */
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid].e->path, path);
        if (c < 0 || (c == 0 && v[mid].i < before))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || strcmp(v[lo - 1].e->path, path))
        return -1;
    return (ssize_t) v[lo - 1].i;
}

static void
resolve_hardlinks_in_order(cs_tree *t)
{
    size_t n = t->n, nl = 0;
    for (size_t i = 0; i < n; i++)
        nl += t->e[i].type == CS_E_HARDLINK;
    if (!nl)
        return;
    hl_order *v = cs_xmalloc(n * sizeof(*v));
    ssize_t *src = cs_xmalloc(n * sizeof(*src)); /* the file a hardlink names */
    ssize_t *rep = cs_xmalloc(n * sizeof(*rep)); /* the hardlink replacing a file */
    for (size_t i = 0; i < n; i++) {
        v[i] = (hl_order){ .e = &t->e[i], .i = i };
        src[i] = rep[i] = -1;
    }
    qsort(v, n, sizeof(*v), cmp_hl_order);
    for (size_t i = 0; i < n; i++) {
        cs_entry *e = &t->e[i];
        if (e->type != CS_E_HARDLINK)
            continue;
        ssize_t j = hl_find(v, n, e->link, i);
        if (j >= 0 && t->e[j].type == CS_E_HARDLINK)
            j = src[j];
        if (j < 0 || t->e[j].type != CS_E_FILE)
            continue;
        src[i] = j;
        if (hl_find(v, n, e->path, n) != (ssize_t) i)
            continue; /* replaced later itself */
        if (hl_find(v, n, t->e[j].path, n) == j) {
            free(e->link);
            e->link = cs_xstrdup(t->e[j].path);
        } else if (rep[j] >= 0) {
            free(e->link);
            e->link = cs_xstrdup(t->e[rep[j]].path);
        } else {
            rep[j] = (ssize_t) i;
            free(e->link);
            e->link = NULL;
            e->type = CS_E_FILE;
            e->size = t->e[j].size;
            e->has_content = t->e[j].has_content;
            e->content = t->e[j].content;
        }
    }
    free(v);
    free(src);
    free(rep);
}

static int ingest_tar(cs_ingest *ing, const char *name, cs_feeder *f, cs_layer_info *out,
                      cs_error **err);

/* A layer from rd, or (rd NULL) from the n bytes at p in place. */
static int
ingest_tar_from(cs_ingest *ing, const char *name, cs_read_fn rd, void *rctx, const void *p,
                size_t n, cs_layer_info *out, cs_error **err)
{
    int r = ingest_refuse_if_failed(ing, err);
    if (r < 0)
        return r;
    cs_feeder *f = NULL;
    r = cs_archive_load(name, err);
    if (r == 0)
        r = rd ? cs_feeder_start(rd, rctx, &f, err) : cs_feeder_start_mem(p, n, &f, err);
    if (r == 0)
        r = ingest_tar(ing, name, f, out, err);
    cs_feeder_free(f);
    ing->failed = r < 0;
    if (r < 0 && !rd) /* chunks in flight may point into p: none may outlive the call */
        ingest_discard_pending(ing);
    return r;
}

int
cs_ingest_tar(cs_ingest *ing, const char *name, cs_read_fn rd, void *rctx, cs_layer_info *out,
              cs_error **err)
{
    return ingest_tar_from(ing, name, rd, rctx, NULL, 0, out, err);
}

int
cs_ingest_tar_mem(cs_ingest *ing, const char *name, const void *p, size_t n, cs_layer_info *out,
                  cs_error **err)
{
    return ingest_tar_from(ing, name, NULL, NULL, p, n, out, err);
}

/* The layer read from f (started by the caller, who frees it). */
static int
ingest_tar(cs_ingest *ing, const char *name, cs_feeder *f, cs_layer_info *out, cs_error **err)
{
    int r;
    tar_src src = { .f = f, .win = cs_xmalloc(TS_WINDOW) };
    capture cap = { .ts = cs_tarsplit_new(), .ok = true };
    cs_buf_init(&cap.hdr);
    cs_tree *t = cs_tree_new();
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open(a, &src, NULL, tar_read, NULL) != ARCHIVE_OK) {
        r = cs_err(err, CS_EPARSE, 0, "%s: %s", name,
                   archive_error_string(a) ? archive_error_string(a) : "not a tar archive");
    } else {
        r = ingest_archive(ing, a, &src, &cap, name, t, err);
    }
    cs_layer_info info = { 0 };
    /* A read or decompression error explains a parse error better: prefer it. */
    cs_error *ferr = NULL;
    int fr = cs_feeder_finish(f, &info, &ferr);
    if (fr < 0) {
        cs_error_clear(err);
        r = cs_err(err, ferr->code, 0, "%s: %s", name, ferr->msg);
        cs_error_free(ferr);
    }
    archive_read_free(a);
    if (r >= 0)
        r = ingest_drain_all(ing, err);
    if (r >= 0) {
        resolve_hardlinks_in_order(t);
        cs_tree_sort(t);
        r = ingest_check_layer(t, name, err);
    }
    if (r >= 0)
        r = cs_tree_put(ing->db, ing->txn, t, &info.tree, err);
    if (r >= 0)
        r = store_tarsplit(ing, &cap, &info, err);
    cs_tree_free(t);
    cs_tarsplit_free(cap.ts);
    cs_buf_release(&cap.hdr);
    free(src.win);
    if (r < 0)
        return r;
    *out = info;
    return 0;
}
