/* rcache_lazy.c - index parts fetched where they are needed (issue 9): the
 * root names each tree's and each image's part (RK_TREEPART, RK_IMAGEPART)
 * and carries the copy_keys records of the trees it holds (RK_COPYKEY). An
 * import takes the root, the parts of the images the store lacks, and
 * records every other tree part and every pack part in remote_trees:
 *   't' | tree digest       -> part digest | size u64 | cache dir
 *   'p' | pack part digest  -> part digest | size u64 | cache dir
 * (each value: part digest | size u64 | n u32 | n pack part digests | dir;
 * a tree's n: the pack parts its chunks are in, RK_TREEPACKS, 0 unknown).
 * A tree's part is fetched (and its record dropped) by the fetch seam
 * (cs_rcache_fetch_parts, cs_rcache_fetch_trees) where the tree is first
 * needed; its pack parts (chunk places) then when one of its chunks is
 * neither local nor in remote_chunks (every pack part when its list is not
 * known; a fetch that still meets such a chunk reads every pack part). Pack
 * part records stay: gc may drop the remote_chunks records of trees not yet
 * fetched, an import of the same dir replaces them. This module owns
 * remote_trees. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cstore/content.h"
#include "cstore/copykey.h"
#include "rcache_int.h"

#define REC_TREE 't'
#define REC_PACK 'p'
#define VAL_MIN  44 /* part digest | size | n */

/* ---- export ---- */

void
rc_lazy_name(rc_index *x, uint8_t kind, const cs_digest *obj, const cs_digest *part, uint64_t size)
{
    uint8_t v[40]; /* part digest | size */
    memcpy(v, part->b, 32);
    cs_be64_put(v + 32, size);
    rc_part_add(&x->root, kind, obj->b, 32, v, sizeof(v));
}

typedef struct ck_ctx {
    const cs_digestset *trees;
    rc_part *root;
} ck_ctx;

static int
copykey_rec(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    ck_ctx *c = ctx;
    cs_digest top;
    (void) err;
    if (k->mv_size == 32 && cs_copykey_record_tree(v->mv_data, v->mv_size, &top)
        && cs_digestset_has(c->trees, top.b))
        rc_part_add(c->root, RK_COPYKEY, k->mv_data, 32, v->mv_data, v->mv_size);
    return 0;
}

int
rc_lazy_copykeys(cs_db *db, MDB_txn *txn, const cs_digestset *trees, rc_part *root, cs_error **err)
{
    ck_ctx c = { trees, root };
    return cs_db_each(db, txn, CS_T_COPY_KEYS, "copy_keys", copykey_rec, &c, err);
}

/* ---- import ---- */

void
rc_lazy_init(rc_lazy *l)
{
    memset(l, 0, sizeof(*l));
    l->parts = cs_digestset_new(true);
    l->lists = cs_digestset_new(true);
}

void
rc_lazy_release(rc_lazy *l)
{
    cs_digestset_free(l->parts);
    cs_digestset_free(l->lists);
    cs_free_all(l->objs, l->lists_v, l->lists_n);
    memset(l, 0, sizeof(*l));
}

static void
add_list(rc_lazy *l, const void *tree, const void *v, uint32_t vn)
{
    if (!cs_digestset_add(l->lists, tree))
        return;
    if (l->nlists == l->caplists) {
        l->caplists = l->caplists ? l->caplists * 2 : 32;
        l->lists_v = cs_xrealloc(l->lists_v, l->caplists * sizeof(*l->lists_v));
        l->lists_n = cs_xrealloc(l->lists_n, l->caplists * sizeof(*l->lists_n));
    }
    l->lists_v[l->nlists] = v;
    l->lists_n[l->nlists] = vn / 32;
    *cs_digestset_value(l->lists, tree) = l->nlists++;
}

int
rc_lazy_rec(rc_lazy *l, cs_db *db, MDB_txn *txn, uint8_t kind, const void *k, const void *v,
            uint32_t vn, cs_rcache_stats *st, cs_error **err)
{
    if (kind == RK_TREEPACKS) {
        add_list(l, k, v, vn);
        return 0;
    }
    if (kind == RK_COPYKEY) {
        cs_digest top;
        if (!cs_copykey_record_tree(v, CS_COPYKEY_VLEN, &top))
            return cs_err(err, CS_ECORRUPT, 0, "cache index: a bad copy_keys record");
        int r = cs_db_put(db, txn, CS_T_COPY_KEYS, k, 32, v, CS_COPYKEY_VLEN, MDB_NOOVERWRITE, err);
        st->records += r > 0 ? (uint64_t) r : 0;
        return r < 0 ? r : 0;
    }
    if (kind != RK_TREEPART && kind != RK_IMAGEPART)
        return cs_err(err, CS_ECORRUPT, 0, "cache index: a record of kind %u in the root", kind);
    l->lazy |= kind == RK_TREEPART;
    if (!cs_digestset_add(l->parts, v))
        return 0; /* one part, one object */
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->objs = cs_xrealloc(l->objs, l->cap * sizeof(cs_digest));
    }
    memcpy(l->objs[l->n].b, k, 32);
    *cs_digestset_value(l->parts, v) = (uint64_t) kind << 32 | l->n++;
    return 0;
}

static int
put_remote_rec(cs_db *db, MDB_txn *txn, char type, const void *obj, const void *part,
               const void *size, const void *packs, uint32_t npacks, const char *dir,
               cs_error **err)
{
    uint8_t key[33];
    key[0] = (uint8_t) type;
    memcpy(key + 1, obj, 32);
    cs_buf b;
    cs_buf_init(&b);
    cs_buf_append(&b, part, 32);
    cs_buf_append(&b, size, 8);
    cs_buf_u32(&b, npacks);
    cs_buf_append(&b, packs, (size_t) npacks * 32);
    cs_buf_append(&b, dir, strlen(dir));
    int r = cs_db_put(db, txn, CS_T_RTREES, key, sizeof(key), b.data, b.len, 0, err);
    cs_buf_release(&b);
    return r < 0 ? r : 0;
}

/* A value's pack part list (n digests) and dir; false when malformed. */
static bool
rec_parse(const MDB_val *v, const uint8_t **packs, uint32_t *n, const char **dir, size_t *dn)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size <= VAL_MIN)
        return false;
    *n = cs_be32_get(p + 40);
    if ((uint64_t) *n * 32 >= v->mv_size - VAL_MIN)
        return false;
    *packs = p + VAL_MIN;
    *dir = (const char *) *packs + (size_t) *n * 32;
    *dn = v->mv_size - VAL_MIN - (size_t) *n * 32;
    return true;
}

static bool
rec_dir_is(const MDB_val *v, const char *dir)
{
    const uint8_t *packs;
    const char *d;
    uint32_t n;
    size_t dn;
    return rec_parse(v, &packs, &n, &d, &dn) && dn == strlen(dir) && !memcmp(d, dir, dn);
}

/* Drops dir's pack part records: this import names the ones it has now. */
static int
clear_packs(cs_db *db, MDB_txn *txn, const char *dir, cs_error **err)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, cs_db_dbi(db, CS_T_RTREES), &cur);
    if (rc)
        return cs_db_err(err, rc, "remote_trees");
    uint8_t first = REC_PACK;
    k = (MDB_val){ 1, &first };
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 33 || ((const uint8_t *) k.mv_data)[0] != REC_PACK)
            break;
        if (rec_dir_is(&v, dir) && (rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : cs_db_err(err, rc, "remote_trees");
}

/* 1 when the record of obj is in table t. */
static int
local_has(cs_db *db, MDB_txn *txn, cs_table t, const void *obj, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(db, txn, t, obj, 32, &v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    return r < 0 ? r : 1;
}

int
rc_lazy_part(rc_lazy *l, cs_db *db, MDB_txn *txn, const char *dir, uint8_t kind, const void *d,
             const void *v, cs_rcache_stats *st, cs_error **err)
{
    if (!l || !l->lazy)
        return 0; /* an older root: every part now */
    int r;
    if (kind == RK_PACKPART) {
        if (!l->cleared && (r = clear_packs(db, txn, dir, err)) < 0)
            return r;
        l->cleared = true;
        r = put_remote_rec(db, txn, REC_PACK, d, d, v, NULL, 0, dir, err);
        return r < 0 ? r : 1;
    }
    /* A part no record names: an older part of a tree (one the store then
     * exported with more layer_blobs records), or of an older root merged
     * in: its trees' entries are misses, never wrong. */
    if (!cs_digestset_has(l->parts, d))
        return 1;
    uint64_t slot = *cs_digestset_value(l->parts, d);
    const cs_digest *obj = &l->objs[(uint32_t) slot];
    if (slot >> 32 == RK_IMAGEPART) { /* a base image: now, unless the store has it */
        r = local_has(db, txn, CS_T_IMAGES, obj->b, err);
        return r;
    }
    if ((r = local_has(db, txn, CS_T_TREES, obj->b, err)) != 0)
        return r;
    uint64_t *li = cs_digestset_has(l->lists, obj->b) ? cs_digestset_value(l->lists, obj->b) : NULL;
    if ((r = put_remote_rec(db, txn, REC_TREE, obj->b, d, v, li ? l->lists_v[*li] : NULL,
                            li ? l->lists_n[*li] : 0, dir, err))
        < 0)
        return r;
    st->remote_trees++;
    return 1;
}

/* ---- fetch ---- */

typedef struct lz_want {
    uint8_t key[33];
    cs_digest part;
    int64_t size;
    char *dir;
    uint8_t *packs; /* a tree's: the pack parts of its chunks */
    uint32_t npacks;
    cs_buf bytes;
} lz_want;

typedef struct lz_wants {
    const cs_digest *trees;
    size_t ntrees;
    uint8_t only;  /* rc_import_part_bytes's */
    bool unknown;  /* a content put has a chunk neither local nor remote */
    cs_buf listed; /* then: the pack parts the trees name (digests) */
    bool all;      /* ... or every one: a tree without a list, or a listed one not there */
    lz_want *v;
    size_t n, cap;
    cs_rcache_stats st;
} lz_wants;

bool
rc_lazy_none(cs_db *db, MDB_txn *txn)
{
    MDB_stat ms;
    return mdb_stat(txn, cs_db_dbi(db, CS_T_RTREES), &ms) == 0 && ms.ms_entries == 0;
}

static void
want_add(lz_wants *w, const void *key, const MDB_val *v)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->v = cs_xrealloc(w->v, w->cap * sizeof(lz_want));
    }
    const uint8_t *p = v->mv_data, *packs;
    const char *dir;
    uint32_t n;
    size_t dn;
    if (!rec_parse(v, &packs, &n, &dir, &dn))
        return;
    lz_want *x = &w->v[w->n++];
    memcpy(x->key, key, 33);
    memcpy(x->part.b, p, 32);
    x->size = (int64_t) cs_be64_get(p + 32);
    x->dir = cs_xstrndup(dir, dn);
    x->npacks = n;
    x->packs = n ? cs_xmalloc((size_t) n * 32) : NULL;
    if (n)
        memcpy(x->packs, packs, (size_t) n * 32);
    cs_buf_init(&x->bytes);
}

/* 1 when layer_blobs holds a record of tree (keys start with its digest). */
static int
has_layer_blobs(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_error **err)
{
    MDB_cursor *cur;
    MDB_val k = { 32, (void *) tree->b }, v;
    int rc = mdb_cursor_open(txn, cs_db_dbi(db, CS_T_LAYER_BLOBS), &cur);
    if (rc)
        return cs_db_err(err, rc, "layer_blobs");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    bool has = rc == 0 && k.mv_size > 32 && !memcmp(k.mv_data, tree->b, 32);
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? has : cs_db_err(err, rc, "layer_blobs");
}

static int
want_trees_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    lz_wants *w = ctx;
    if (rc_lazy_none(db, txn))
        return 0;
    for (size_t i = 0; i < w->ntrees; i++) {
        uint8_t key[33] = { REC_TREE };
        memcpy(key + 1, w->trees[i].b, 32);
        MDB_val v;
        int r = cs_db_get(db, txn, CS_T_RTREES, key, sizeof(key), &v, err);
        if (r == -CS_ENOTFOUND || (r == 0 && v.mv_size <= VAL_MIN))
            continue;
        if (r < 0 || (r = local_has(db, txn, CS_T_TREES, w->trees[i].b, err)) < 0)
            return r;
        if (r == 0 && w->only == RK_LBLOB && (r = has_layer_blobs(db, txn, &w->trees[i], err)) < 0)
            return r;
        if (r == 0)
            want_add(w, key, &v);
    }
    return 0;
}

static int
want_pack_rec(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    (void) err;
    if (k->mv_size == 33 && ((const uint8_t *) k->mv_data)[0] == REC_PACK && v->mv_size > VAL_MIN)
        want_add(ctx, k->mv_data, v);
    return 0;
}

static int
want_packs_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    return cs_db_each(db, txn, CS_T_RTREES, "remote_trees", want_pack_rec, ctx, err);
}

/* The pack parts in w->listed; w->all when one has no record. */
static int
want_listed_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    lz_wants *w = ctx;
    for (size_t at = 0; at < w->listed.len; at += 32) {
        uint8_t key[33] = { REC_PACK };
        memcpy(key + 1, w->listed.data + at, 32);
        MDB_val v;
        int r = cs_db_get(db, txn, CS_T_RTREES, key, sizeof(key), &v, err);
        if (r < 0 && r != -CS_ENOTFOUND)
            return r;
        w->all |= r != 0;
        if (r == 0)
            want_add(w, key, &v);
    }
    return 0;
}

/* The union of the fetched trees' pack part lists into w->listed. */
static void
union_lists(lz_wants *w)
{
    cs_digestset *seen = cs_digestset_new(false);
    for (size_t i = 0; i < w->n; i++) {
        w->all |= w->v[i].npacks == 0;
        for (uint32_t j = 0; j < w->v[i].npacks; j++)
            if (cs_digestset_add(seen, w->v[i].packs + (size_t) j * 32))
                cs_buf_append(&w->listed, w->v[i].packs + (size_t) j * 32, 32);
    }
    cs_digestset_free(seen);
}

/* One write txn: every part's records; a tree's record then goes. */
static int
put_parts_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    lz_wants *w = ctx;
    for (size_t i = 0; i < w->n; i++) {
        lz_want *x = &w->v[i];
        int r = rc_import_part_bytes(db, txn, x->dir, &x->bytes, w->only, &w->st, err);
        if (r < 0)
            return cs_err_wrap(err, "cache part of '%s'", x->dir);
        MDB_val key = { 33, x->key };
        int rc = x->key[0] == REC_TREE && !w->only
                     ? mdb_del(txn, cs_db_dbi(db, CS_T_RTREES), &key, NULL)
                     : 0;
        if (rc && rc != MDB_NOTFOUND)
            return cs_db_err(err, rc, "remote_trees");
    }
    return 0;
}

typedef struct unknown_ctx {
    cs_db *db;
    MDB_txn *txn;
    lz_wants *w;
} unknown_ctx;

/* A content record of a part: is each chunk local or remote? */
static int
unknown_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
            cs_error **err)
{
    unknown_ctx *c = ctx;
    (void) k, (void) kn;
    cs_autofree cs_chunk_ref *refs = NULL;
    uint64_t size;
    uint32_t n;
    if (kind != RK_CONTENT || c->w->unknown || cs_content_decode(v, vn, &size, &refs, &n) < 0)
        return 0;
    for (uint32_t i = 0; i < n && !c->w->unknown; i++) {
        int r = cs_chunk_has(c->db, c->txn, &refs[i].d, err);
        if (r == 0)
            r = cs_rcache_has(c->db, c->txn, &refs[i].d, err);
        if (r < 0)
            return r;
        c->w->unknown = r == 0;
    }
    return 0;
}

static int
unknown_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    unknown_ctx c = { db, txn, ctx };
    int r = 0;
    for (size_t i = 0; i < c.w->n && r >= 0 && !c.w->unknown; i++)
        r = rc_index_each(c.w->v[i].bytes.data, c.w->v[i].bytes.len, unknown_rec, &c, err);
    return r;
}

/* Reads the parts of w's wants from from on, outside any txn. */
static int
read_parts(lz_wants *w, size_t from, cs_error **err)
{
    int r = 0;
    for (size_t i = from; i < w->n && r >= 0; i++)
        r = rc_blob_read(w->v[i].dir, &w->v[i].part, w->v[i].size, &w->v[i].bytes, err);
    return r;
}

/* Drops w's wants from from on. */
static void
wants_cut(lz_wants *w, size_t from)
{
    for (size_t i = from; i < w->n; i++) {
        cs_free_all(w->v[i].dir, w->v[i].packs);
        cs_buf_release(&w->v[i].bytes);
    }
    w->n = from;
}

/* Collects (fn), reads the parts outside any txn, puts them: 1 when there
 * were some. */
static int
fetch_parts(cs_store *s, lz_wants *w, cs_db_fn fn, cs_error **err)
{
    cs_db *db = cs_store_db(s);
    int r = cs_db_read(db, fn, w, err);
    if (r >= 0)
        r = read_parts(w, 0, err);
    if (r >= 0 && w->n)
        r = cs_db_write(db, put_parts_fn, w, err);
    bool some = w->n > 0;
    wants_cut(w, 0);
    free(w->v);
    return r < 0 ? r : some;
}

/* The pack parts placing the chunks of w's tree parts (the first ntrees
 * wants) that are neither local nor remote: those the trees list, or
 * every one (a tree without a list, a listed one not there). */
static int
want_pack_parts(cs_db *db, lz_wants *w, size_t ntrees, cs_error **err)
{
    int r = cs_db_read(db, unknown_fn, w, err);
    if (r < 0 || !w->unknown)
        return r;
    union_lists(w);
    if (!w->all)
        r = cs_db_read(db, want_listed_fn, w, err);
    if (r >= 0 && w->all) {
        wants_cut(w, ntrees);
        r = cs_db_read(db, want_packs_fn, w, err);
    }
    return r < 0 ? r : read_parts(w, ntrees, err);
}

int
cs_rcache_fetch_parts(cs_store *s, const cs_digest *trees, size_t n, cs_error **err)
{
    cs_db *db = cs_store_db(s);
    lz_wants w = { .trees = trees, .ntrees = n };
    cs_buf_init(&w.listed);
    int r = cs_db_read(db, want_trees_fn, &w, err);
    size_t ntrees = w.n;
    if (r >= 0)
        r = read_parts(&w, 0, err);
    if (r >= 0 && ntrees)
        r = want_pack_parts(db, &w, ntrees, err);
    /* One txn: a tree's records never without their chunks' places. */
    if (r >= 0 && w.n)
        r = cs_db_write(db, put_parts_fn, &w, err);
    wants_cut(&w, 0);
    free(w.v);
    cs_buf_release(&w.listed);
    return r < 0 ? r : 0;
}

int
cs_rcache_fetch_layer_blobs(cs_store *s, const cs_digest *trees, size_t n, cs_error **err)
{
    lz_wants w = { .trees = trees, .ntrees = n, .only = RK_LBLOB };
    int r = fetch_parts(s, &w, want_trees_fn, err);
    return r < 0 ? r : 0;
}

int
rc_lazy_fetch_packs(cs_store *s, cs_error **err)
{
    lz_wants w = { 0 };
    return fetch_parts(s, &w, want_packs_fn, err);
}

int
cs_rcache_tree_have(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_TREES, tree->b, 32, &v, err);
    if (r != -CS_ENOTFOUND)
        return r < 0 ? r : 1;
    r = cs_rcache_tree_remote(db, txn, tree, err);
    return r == 1 ? 2 : r;
}

int
cs_rcache_tree_remote(cs_db *db, MDB_txn *txn, const cs_digest *tree, cs_error **err)
{
    uint8_t key[33] = { REC_TREE };
    memcpy(key + 1, tree->b, 32);
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_RTREES, key, sizeof(key), &v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    return r < 0 ? r : 1;
}

int
rc_lazy_pull(const char *dir, const cs_digest *d, int64_t size, cs_buf *out, cs_error **err)
{
    if (size < 0 || (uint64_t) size > ((uint64_t) 1 << 30))
        return cs_err(err, CS_ENOTFOUND, 0, "cache blob of '%s': not there", dir);
    out->len = 0;
    cs_buf_reserve(out, (size_t) size);
    int r = rc_remote_read(dir, d, 0, (uint64_t) size, out->data, err);
    if (r < 0) {
        cs_autofree char *path = rc_blob_path(dir, d);
        return cs_err_wrap(err, "cache blob '%s': not in the dir, nor where it mirrors", path);
    }
    out->len = (size_t) size;
    cs_digest got;
    cs_sha256(out->data, out->len, &got);
    if (!cs_digest_eq(d, &got))
        return cs_err(err, CS_ECORRUPT, 0, "cache blob of '%s': digest mismatch", dir);
    /* Kept in the mirror: the next read is local. */
    r = rc_blob_write(dir, out->data, out->len, &got, err);
    return r < 0 ? r : 0;
}

/* ---- gc ---- */

typedef struct lz_gc {
    cs_db *db;
    MDB_txn *txn;
    const cs_digestset *kept;
    cs_buf doomed; /* 33-byte keys */
} lz_gc;

static bool
dir_gone(const MDB_val *v)
{
    const uint8_t *packs;
    const char *d;
    uint32_t n;
    size_t dn;
    if (!rec_parse(v, &packs, &n, &d, &dn))
        return true;
    cs_autofree char *dir = cs_xstrndup(d, dn);
    return access(dir, F_OK) < 0 && errno == ENOENT;
}

static int
gc_rec(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    lz_gc *g = ctx;
    const uint8_t *p = k->mv_data;
    int r = 0;
    if (k->mv_size != 33)
        return 0;
    bool drop = dir_gone(v);
    if (!drop && p[0] == REC_TREE && g->kept && !cs_digestset_has(g->kept, p + 1))
        drop = true;
    if (!drop && p[0] == REC_TREE && (r = local_has(g->db, g->txn, CS_T_TREES, p + 1, err)) != 0)
        drop = r > 0;
    if (drop)
        cs_buf_append(&g->doomed, p, 33);
    return r < 0 ? r : 0;
}

static int
gc_find_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    lz_gc *g = ctx;
    g->db = db;
    g->txn = txn;
    return cs_db_each(db, txn, CS_T_RTREES, "remote_trees", gc_rec, g, err);
}

static int
gc_del_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    lz_gc *g = ctx;
    for (size_t at = 0; at < g->doomed.len; at += 33) {
        MDB_val k = { 33, g->doomed.data + at };
        int rc = mdb_del(txn, cs_db_dbi(db, CS_T_RTREES), &k, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return cs_db_err(err, rc, "remote_trees");
    }
    return 0;
}

int
cs_rcache_gc_trees(cs_db *db, const struct cs_digestset *kept, bool dry_run, uint64_t *dropped,
                   cs_error **err)
{
    lz_gc g = { .kept = kept };
    cs_buf_init(&g.doomed);
    int r = cs_db_read(db, gc_find_fn, &g, err);
    if (r >= 0 && !dry_run && g.doomed.len)
        r = cs_db_write(db, gc_del_fn, &g, err);
    *dropped += r >= 0 ? g.doomed.len / 33 : 0;
    cs_buf_release(&g.doomed);
    return r < 0 ? r : 0;
}

/* ---- prune ---- */

static bool
named(const rc_index *x, const void *part)
{
    for (uint32_t i = 0; i < x->nparts; i++)
        if (!memcmp(x->parts[i].b, part, 32))
            return true;
    return false;
}

typedef struct keep_ctx {
    rc_index *x;
    cs_digestset *trees; /* trees whose part x names */
    bool copykeys;       /* second pass */
} keep_ctx;

static int
keep_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
         cs_error **err)
{
    keep_ctx *c = ctx;
    cs_digest top;
    (void) err;
    bool named_part = kind == RK_TREEPART || kind == RK_IMAGEPART;
    if (!c->copykeys && named_part && named(c->x, v)) {
        rc_part_add(&c->x->root, kind, k, kn, v, vn);
        if (kind == RK_TREEPART)
            cs_digestset_add(c->trees, k);
    }
    /* Second pass: what names a kept tree (a list's stale pack parts are
     * skipped by an import: it then reads every pack part). */
    if (c->copykeys && kind == RK_COPYKEY && cs_copykey_record_tree(v, vn, &top)
        && cs_digestset_has(c->trees, top.b))
        rc_part_add(&c->x->root, kind, k, kn, v, vn);
    if (c->copykeys && kind == RK_TREEPACKS && cs_digestset_has(c->trees, k))
        rc_part_add(&c->x->root, kind, k, kn, v, vn);
    return 0;
}

void
rc_lazy_prune_keep(const rc_part *keep, rc_index *x)
{
    if (!keep->n)
        return;
    keep_ctx c = { x, cs_digestset_new(false), false };
    cs_buf z;
    cs_buf_init(&z);
    rc_part_encode(keep, &z);
    cs_error *tmp = NULL;
    /* Records this process added and checked: the walks cannot fail. */
    if (rc_index_each(z.data, z.len, keep_rec, &c, &tmp) >= 0) {
        c.copykeys = true;
        rc_index_each(z.data, z.len, keep_rec, &c, &tmp);
    }
    cs_error_clear(&tmp);
    cs_digestset_free(c.trees);
    cs_buf_release(&z);
}
