/* tree.c - layer trees and their canonical encoding (see cstore/tree.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "cstore/tree.h"
#include "record.h"
#include "tree_int.h"

static const char MAGIC[8] = "CSTREE1";

cs_tree *
cs_tree_new(void)
{
    return cs_xcalloc(1, sizeof(cs_tree));
}

void
cs_entry_release(cs_entry *e)
{
    if (!e->borrowed)
        cs_free_all(e->path, e->uname, e->gname, e->link);
    for (uint32_t i = 0; i < e->nxattrs; i++) {
        free(e->xattrs[i].name);
        free(e->xattrs[i].value);
    }
    free(e->xattrs);
    memset(e, 0, sizeof(*e));
}

void
cs_tree_free(cs_tree *t)
{
    if (!t)
        return;
    cs_entries_free(t->e, t->n, t->cap);
    for (size_t i = 0; i < t->narenas; i++)
        free(t->arenas[i]);
    free(t->arenas);
    free(t);
}

void
cs_tree_take_arenas(cs_tree *dst, cs_tree *src)
{
    if (!src->narenas)
        return;
    dst->arenas = cs_xrealloc(dst->arenas, (dst->narenas + src->narenas) * sizeof(void *));
    memcpy(dst->arenas + dst->narenas, src->arenas, src->narenas * sizeof(void *));
    dst->narenas += src->narenas;
    free(src->arenas);
    src->arenas = NULL;
    src->narenas = 0;
}

#define ENTRIES_MAP_MIN ((size_t) 256 * 1024)

static size_t
map_bytes(size_t cap)
{
    return cs_page_round(cap * sizeof(cs_entry));
}

static bool
is_mapped(size_t cap)
{
    return cap * sizeof(cs_entry) >= ENTRIES_MAP_MIN;
}

static cs_entry *
map_entries(size_t cap)
{
    void *m =
        mmap(NULL, map_bytes(cap), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        abort(); /* as cs_xmalloc does */
    madvise(m, map_bytes(cap), MADV_DONTFORK);
    return m;
}

/* Faults in the pages of [p, p + n) that will all be written at once, in
 * one call instead of one fault each (~1.6-6 us apiece; a base image's
 * decode writes ~800 pages): only big blocks, and never fatal (a kernel
 * before 5.14 has no MADV_POPULATE_WRITE: the pages fault as before). */
static void
prefault(void *p, size_t n)
{
    if (n < ENTRIES_MAP_MIN)
        return;
    uintptr_t pg = (uintptr_t) getpagesize();
    uintptr_t a = ((uintptr_t) p + pg - 1) & ~(pg - 1), e = ((uintptr_t) p + n) & ~(pg - 1);
    if (e > a)
        madvise((void *) a, e - a, MADV_POPULATE_WRITE);
}

cs_entry *
cs_entries_resize(cs_entry *e, size_t oldcap, size_t newcap)
{
    bool was = e && is_mapped(oldcap), will = newcap && is_mapped(newcap);
    if (!e)
        oldcap = 0;
    if (!was && !will) {
        if (!newcap) {
            free(e);
            return NULL;
        }
        return cs_xrealloc(e, newcap * sizeof(cs_entry));
    }
    if (was && will) {
        void *m = mremap(e, map_bytes(oldcap), map_bytes(newcap), MREMAP_MAYMOVE);
        if (m == MAP_FAILED)
            abort();
        return m;
    }
    size_t keep = (oldcap < newcap ? oldcap : newcap) * sizeof(cs_entry);
    cs_entry *n = will     ? map_entries(newcap)
                  : newcap ? cs_xmalloc(newcap * sizeof(cs_entry))
                           : NULL;
    if (n && keep)
        memcpy(n, e, keep);
    if (was)
        munmap(e, map_bytes(oldcap));
    else
        free(e);
    return n;
}

cs_entry *
cs_entries_add(cs_entry **e, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        *e = cs_entries_resize(*e, *cap, c);
        *cap = c;
    }
    cs_entry *x = &(*e)[(*n)++];
    memset(x, 0, sizeof(*x));
    return x;
}

void
cs_entries_free(cs_entry *e, size_t n, size_t cap)
{
    for (size_t i = 0; i < n; i++)
        cs_entry_release(&e[i]);
    cs_entries_resize(e, cap, 0);
}

cs_entry *
cs_tree_add(cs_tree *t)
{
    return cs_entries_add(&t->e, &t->n, &t->cap);
}

static char *
dup_or_null(const char *s)
{
    return s ? cs_xstrdup(s) : NULL;
}

void
cs_entry_copy(cs_entry *dst, const cs_entry *src)
{
    *dst = *src;
    dst->borrowed = false;
    dst->path = dup_or_null(src->path);
    dst->uname = dup_or_null(src->uname);
    dst->gname = dup_or_null(src->gname);
    dst->link = dup_or_null(src->link);
    dst->xattrs = NULL;
    dst->nxattrs = 0;
    for (uint32_t i = 0; i < src->nxattrs; i++)
        cs_entry_add_xattr(dst, src->xattrs[i].name, src->xattrs[i].value, src->xattrs[i].len);
}

void
cs_entry_add_xattr(cs_entry *e, const char *name, const void *value, uint32_t len)
{
    /* Keep sorted by name; a repeated name replaces the value. */
    uint32_t i = 0;
    while (i < e->nxattrs && strcmp(e->xattrs[i].name, name) < 0)
        i++;
    if (i < e->nxattrs && !strcmp(e->xattrs[i].name, name)) {
        free(e->xattrs[i].value);
    } else {
        e->xattrs = cs_xrealloc(e->xattrs, (e->nxattrs + 1) * sizeof(cs_xattr));
        memmove(&e->xattrs[i + 1], &e->xattrs[i], (e->nxattrs - i) * sizeof(cs_xattr));
        e->nxattrs++;
        e->xattrs[i].name = cs_xstrdup(name);
    }
    e->xattrs[i].value = cs_xmalloc(len ? len : 1);
    if (len)
        memcpy(e->xattrs[i].value, value, len);
    e->xattrs[i].len = len;
}

/* Sort key: path bytes; ties keep insertion order so that the last of equal
 * paths can win (a later tar member replaces an earlier one). */
typedef struct {
    cs_entry e;
    size_t idx;
} tagged;

static int
cmp_tagged(const void *a, const void *b)
{
    const tagged *x = a, *y = b;
    int c = strcmp(x->e.path, y->e.path);
    return c ? c : cs_cmp_size(x->idx, y->idx);
}

void
cs_tree_sort(cs_tree *t)
{
    if (t->n < 2)
        return;
    tagged *v = cs_xmalloc(t->n * sizeof(*v));
    for (size_t i = 0; i < t->n; i++) {
        v[i].e = t->e[i];
        v[i].idx = i;
    }
    qsort(v, t->n, sizeof(*v), cmp_tagged);
    size_t out = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (i + 1 < t->n && !strcmp(v[i].e.path, v[i + 1].e.path)) {
            cs_entry_release(&v[i].e);
            continue;
        }
        t->e[out++] = v[i].e;
    }
    t->n = out;
    free(v);
}

size_t
cs_tree_lower_bound(const cs_tree *t, size_t lo, size_t hi, const char *path)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->e[mid].path, path) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const cs_entry *
cs_tree_find(const cs_tree *t, const char *path)
{
    size_t i = cs_tree_lower_bound(t, 0, t->n, path);
    return i < t->n && !strcmp(t->e[i].path, path) ? &t->e[i] : NULL;
}

void
cs_tree_encode(const cs_tree *t, cs_buf *b)
{
    cs_buf_append(b, MAGIC, 8);
    cs_buf_u32(b, (uint32_t) t->n);
    for (size_t i = 0; i < t->n; i++) {
        const cs_entry *e = &t->e[i];
        cs_buf_u8(b, (uint8_t) e->type);
        cs_buf_u32(b, e->mode);
        cs_buf_u32(b, e->uid);
        cs_buf_u32(b, e->gid);
        cs_buf_u64(b, (uint64_t) e->mtime_sec);
        cs_buf_u32(b, e->mtime_nsec);
        cs_buf_u64(b, e->size);
        cs_buf_u8(b, e->has_content);
        if (e->has_content)
            cs_buf_append(b, e->content.b, 32);
        cs_buf_u32(b, e->devmajor);
        cs_buf_u32(b, e->devminor);
        cs_buf_str(b, e->path);
        cs_buf_str(b, e->link);
        cs_buf_str(b, e->uname);
        cs_buf_str(b, e->gname);
        cs_buf_u32(b, e->nxattrs);
        for (uint32_t j = 0; j < e->nxattrs; j++) {
            cs_buf_str(b, e->xattrs[j].name);
            cs_buf_bytes(b, e->xattrs[j].value, e->xattrs[j].len);
        }
    }
}

/* A string of the record, copied with its NUL into the arena at *ap; NULL
 * when empty (as cs_rd_str). */
static char *
arena_str(cs_rd *r, char **ap)
{
    uint32_t n;
    const char *p = cs_rd_bytes(r, &n);
    if (!p || !n)
        return NULL;
    char *s = *ap;
    memcpy(s, p, n);
    s[n] = 0;
    *ap += n + 1;
    return s;
}

/* One entry at r into e: its strings in the arena at *ap (borrowed), or
 * malloc'd when ap is NULL (owned). */
static void
decode_entry(cs_rd *r, cs_entry *e, char **ap)
{
    memset(e, 0, sizeof(*e));
    e->type = cs_rd_u8(r);
    e->mode = cs_rd_u32(r);
    e->uid = cs_rd_u32(r);
    e->gid = cs_rd_u32(r);
    e->mtime_sec = (int64_t) cs_rd_u64(r);
    e->mtime_nsec = cs_rd_u32(r);
    e->size = cs_rd_u64(r);
    e->has_content = cs_rd_u8(r) != 0;
    if (e->has_content) {
        const void *d = cs_rd_raw(r, 32);
        if (d)
            memcpy(e->content.b, d, 32);
    }
    e->devmajor = cs_rd_u32(r);
    e->devminor = cs_rd_u32(r);
    e->borrowed = ap != NULL;
    e->path = ap ? arena_str(r, ap) : cs_rd_str(r);
    e->link = ap ? arena_str(r, ap) : cs_rd_str(r);
    e->uname = ap ? arena_str(r, ap) : cs_rd_str(r);
    e->gname = ap ? arena_str(r, ap) : cs_rd_str(r);
    uint32_t nx = cs_rd_u32(r);
    for (uint32_t j = 0; j < nx && !r->bad; j++) {
        cs_autofree char *name = cs_rd_str(r);
        uint32_t vl;
        const void *v = cs_rd_bytes(r, &vl);
        if (!r->bad && name)
            cs_entry_add_xattr(e, name, v, vl);
    }
    if (!e->path && ap) {
        e->path = *ap;
        *(*ap)++ = 0;
    } else if (!e->path) {
        e->path = cs_xstrdup("");
    }
    if (e->type > CS_E_FIFO)
        r->bad = true;
}

int
cs_tree_decode(const void *p, size_t len, cs_tree **out, cs_error **err)
{
    cs_rd r;
    int rc = cs_rd_begin(&r, p, len, MAGIC, "tree", err);
    if (rc < 0)
        return rc;
    uint32_t n = cs_rd_u32(&r);
    /* Each entry takes at least 62 bytes: refuse counts the record cannot hold. */
    if (r.bad || (size_t) n > len / 62 + 1)
        return cs_err(err, CS_ECORRUPT, 0, "tree record: bad entry count");
    cs_tree *t = cs_tree_new();
    t->cap = n ? n : 1; /* one allocation, zeroed page by page as it fills */
    t->e = cs_entries_resize(NULL, 0, t->cap);
    prefault(t->e, n * sizeof(cs_entry));
    /* Every string of the record in one block: a string takes its bytes and
     * a NUL there, its bytes and a 4-byte length in the record, and a
     * missing path one byte for an entry of 62 or more. */
    char *arena = cs_xmalloc(len + 1), *ap = arena;
    prefault(arena, len + 1);
    t->arenas = cs_xmalloc(sizeof(void *));
    t->arenas[0] = arena;
    t->narenas = 1;
    for (uint32_t i = 0; i < n && !r.bad; i++)
        decode_entry(&r, &t->e[t->n++], &ap);
    if (r.bad || r.p != r.end) {
        cs_tree_free(t);
        return cs_err(err, CS_ECORRUPT, 0, "tree record: truncated or malformed");
    }
    *out = t;
    return 0;
}

/* ---- a record read in place (tree_int.h) ---- */

/* The fixed fields before an entry's device numbers: type .. has_content. */
#define FIXED_HEAD 34

int
cs_tree_index(const void *p, size_t len, uint32_t **off, size_t *n, cs_error **err)
{
    cs_rd r;
    int rc = cs_rd_begin(&r, p, len, MAGIC, "tree", err);
    if (rc < 0)
        return rc;
    uint32_t cnt = cs_rd_u32(&r);
    if (r.bad || (size_t) cnt > len / 62 + 1 || len > UINT32_MAX)
        return cs_err(err, CS_ECORRUPT, 0, "tree record: bad entry count");
    uint32_t *o = cs_xmalloc((cnt ? cnt : 1) * sizeof(*o));
    for (uint32_t i = 0; i < cnt && !r.bad; i++) {
        o[i] = (uint32_t) (r.p - (const uint8_t *) p);
        const uint8_t *h = cs_rd_raw(&r, FIXED_HEAD);
        if (h && h[FIXED_HEAD - 1])
            cs_rd_raw(&r, 32);
        cs_rd_raw(&r, 8);
        uint32_t sl;
        for (int k = 0; k < 4; k++)
            cs_rd_bytes(&r, &sl);
        uint32_t nx = cs_rd_u32(&r);
        for (uint32_t j = 0; j < nx && !r.bad; j++) {
            cs_rd_bytes(&r, &sl);
            cs_rd_bytes(&r, &sl);
        }
    }
    if (r.bad || r.p != r.end) {
        free(o);
        return cs_err(err, CS_ECORRUPT, 0, "tree record: truncated or malformed");
    }
    *off = o;
    *n = cnt;
    return 0;
}

const char *
cs_tree_index_path(const void *p, uint32_t off, uint32_t *plen)
{
    const uint8_t *e = (const uint8_t *) p + off;
    const uint8_t *s = e + FIXED_HEAD + (e[FIXED_HEAD - 1] ? 32 : 0) + 8;
    *plen = cs_be32_get(s);
    return (const char *) s + 4;
}

int
cs_tree_entry_at(const void *p, size_t len, uint32_t off, cs_entry *e, cs_error **err)
{
    cs_rd r;
    cs_rd_init(&r, (const uint8_t *) p + off, len - off);
    decode_entry(&r, e, NULL);
    if (r.bad) {
        cs_entry_release(e);
        return cs_err(err, CS_ECORRUPT, 0, "tree record: truncated or malformed");
    }
    return 0;
}

int
cs_tree_put(cs_db *db, MDB_txn *txn, const cs_tree *t, cs_digest *out, cs_error **err)
{
    cs_buf b;
    cs_buf_init(&b);
    cs_tree_encode(t, &b);
    cs_sha256(b.data, b.len, out);
    int r = cs_db_put(db, txn, CS_T_TREES, out->b, 32, b.data, b.len, MDB_NOOVERWRITE, err);
    cs_buf_release(&b);
    return r < 0 ? r : 0;
}

int
cs_tree_get(cs_db *db, MDB_txn *txn, const cs_digest *d, cs_tree **out, cs_error **err)
{
    MDB_val v;
    int r = cs_record_get(db, txn, CS_T_TREES, CS_ENOTFOUND, "tree", d, &v, err);
    if (r < 0)
        return r;
    return cs_tree_decode(v.mv_data, v.mv_size, out, err);
}

int
cs_path_clean(const char *in, char **out, cs_error **err)
{
    size_t n = strlen(in);
    char *res = cs_xmalloc(n + 1);
    size_t o = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t) (p - s);
        if (len == 0 || (len == 1 && s[0] == '.'))
            continue;
        if (len == 2 && s[0] == '.' && s[1] == '.') {
            free(res);
            return cs_err(err, CS_EINVAL, 0, "path '%s' leaves the layer ('..')", in);
        }
        if (o)
            res[o++] = '/';
        memcpy(res + o, s, len);
        o += len;
    }
    res[o] = 0;
    *out = res;
    return 0;
}
