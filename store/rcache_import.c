/* rcache_import.c - `build --cache-from type=local`: the index's records
 * into the store, each checked by its owner's decoder first; chunks that
 * are not local into remote_chunks (see cstore/rcache.h). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cstore/buildcache.h"
#include "cstore/content.h"
#include "cstore/image.h"
#include "cstore/tarsplit.h"
#include "cstore/tree.h"
#include "rcache_int.h"

typedef struct import_ctx {
    const char *dir; /* absolute */
    const cs_buf *index;
    cs_db *db;
    MDB_txn *txn;
    cs_digest *packs;
    uint32_t npacks, cap;
    bool in_part; /* walking a part, not the root */
    cs_rcache_stats *st;
    rc_lazy *lazy; /* the root's: which parts are left remote */
    uint8_t only;  /* not 0: the records of this kind only */
} import_ctx;

/* Table of each verbatim kind. */
static const cs_table kind_table[RK_PACK] = {
    [RK_CACHE] = CS_T_CACHE,       [RK_TREE] = CS_T_TREES,        [RK_CONTENT] = CS_T_CONTENTS,
    [RK_LBLOB] = CS_T_LAYER_BLOBS, [RK_TARSPLIT] = CS_T_TARSPLIT, [RK_IMAGE] = CS_T_IMAGES,
    [RK_TAG] = CS_T_TAGS,
};

static bool
image_ok(const void *k, const void *v, uint32_t vn)
{
    cs_image *img = NULL;
    cs_error *tmp = NULL;
    if (cs_image_decode(v, vn, &img, &tmp) < 0) {
        cs_error_clear(&tmp);
        return false;
    }
    cs_digest id;
    cs_sha256(img->config, img->config_len, &id);
    bool ok = !memcmp(id.b, k, 32);
    cs_image_free(img);
    return ok;
}

/* The owner's decoder (and the digest, where the key is one of the value). */
static bool
record_ok(uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn)
{
    cs_error *tmp = NULL;
    bool ok = true;
    cs_digest d;
    uint64_t size;
    uint32_t n;
    cs_chunk_ref *refs = NULL;
    cs_tree *t = NULL;
    cs_tarsplit *ts = NULL;
    cs_cache_entry ce;
    switch (kind) {
    case RK_CACHE:
        ok = kn == 32 && cs_cache_decode(v, vn, &ce, &tmp) == 0;
        break;
    case RK_TREE:
        cs_sha256(v, vn, &d);
        ok = kn == 32 && !memcmp(d.b, k, 32) && cs_tree_decode(v, vn, &t, &tmp) == 0;
        break;
    case RK_CONTENT:
        ok = kn == 32 && cs_content_decode(v, vn, &size, &refs, &n) == 0;
        break;
    case RK_LBLOB:
        ok = (kn == 33 || kn == 65) && vn == 72;
        break;
    case RK_TARSPLIT:
        ok = kn == 32 && cs_tarsplit_decode(v, vn, &ts, &tmp) == 0;
        break;
    case RK_IMAGE:
        ok = kn == 32 && image_ok(k, v, vn);
        break;
    case RK_TAG:
        ok = kn > 0 && vn == 32;
        break;
    }
    cs_error_clear(&tmp);
    free(refs);
    cs_tree_free(t);
    cs_tarsplit_free(ts);
    return ok;
}

/* An export's stamp of an image (cs_rcache_now in rcache.h), not an entry:
 * no layer, the tree field naming the key. */
static bool
image_stamp(const void *k, const void *v)
{
    cs_cache_entry e;
    cs_error *tmp = NULL;
    bool stamp = cs_cache_decode(v, CS_CACHE_RECORD_LEN, &e, &tmp) == 0 && !e.has_layer
                 && !memcmp(e.tree.b, k, 32);
    cs_error_clear(&tmp);
    return stamp;
}

static int
put_remote(import_ctx *c, const void *chunk, const uint8_t *v, uint32_t vn, cs_error **err)
{
    uint32_t pack = cs_be32_get(v);
    if (pack >= c->npacks)
        return cs_err(err, CS_ECORRUPT, 0, "cache index: chunk in unknown pack %u", pack);
    cs_digest d;
    memcpy(d.b, chunk, 32);
    int r = cs_chunk_has(c->db, c->txn, &d, err);
    if (r != 0)
        return r < 0 ? r : 0;
    cs_buf b;
    cs_buf_init(&b);
    rc_remote_encode(&b, &c->packs[pack], v + 4, v + 16, vn - 16, c->dir);
    r = cs_db_put(c->db, c->txn, CS_T_REMOTE, chunk, 32, b.data, b.len, 0, err);
    cs_buf_release(&b);
    c->st->remote++;
    return r < 0 ? r : 0;
}

static int
add_pack(import_ctx *c, const void *k, cs_error **err)
{
    if (c->npacks == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->packs = cs_xrealloc(c->packs, c->cap * sizeof(cs_digest));
    }
    memcpy(c->packs[c->npacks].b, k, 32);
    if (c->in_part) {
        c->npacks++;
        return 0; /* the root names every pack: checked there */
    }
    int r = rc_remote_has(c->dir, &c->packs[c->npacks++], err);
    if (r <= 0)
        return r < 0 ? r : cs_err(err, CS_ENOTFOUND, 0, "cache '%s': a pack is missing", c->dir);
    c->st->packs++;
    return 0;
}

static int import_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v,
                      uint32_t vn, cs_error **err);

/* A part blob, walked with a pack table of its own. */
static int
import_part(import_ctx *c, const void *k, const uint8_t *v, cs_error **err)
{
    cs_digest d;
    memcpy(d.b, k, 32);
    cs_buf b;
    cs_buf_init(&b);
    import_ctx pc = *c;
    pc.packs = NULL;
    pc.npacks = pc.cap = 0;
    pc.in_part = true;
    int r = rc_blob_read(c->dir, &d, (int64_t) cs_be64_get(v), &b, err);
    if (r >= 0)
        r = rc_index_each(b.data, b.len, import_rec, &pc, err);
    free(pc.packs);
    cs_buf_release(&b);
    return r;
}

static int
import_rec(void *ctx, uint8_t kind, const void *k, uint32_t kn, const void *v, uint32_t vn,
           cs_error **err)
{
    import_ctx *c = ctx;
    if (kind >= RK_TREEPART && c->lazy && !c->in_part)
        return rc_lazy_rec(c->lazy, c->db, c->txn, kind, k, v, vn, c->st, err);
    if (kind >= RK_TREEPART)
        return cs_err(err, CS_ECORRUPT, 0, "cache index: a root record in a part");
    int r = kind == RK_PART || kind == RK_PACKPART
                ? rc_lazy_part(c->lazy, c->db, c->txn, c->dir, kind, k, v, c->st, err)
                : 0;
    if (r != 0)
        return r < 0 ? r : 0;
    if (kind == RK_PART || kind == RK_PACKPART)
        return import_part(c, k, v, err);
    if (kind == RK_PACK)
        return add_pack(c, k, err);
    if (kind == RK_CHUNK) {
        c->st->chunks++;
        return put_remote(c, k, v, vn, err);
    }
    if (c->only && kind != c->only)
        return 0;
    if (!record_ok(kind, k, kn, v, vn))
        return cs_err(err, CS_ECORRUPT, 0, "cache index: a bad record (kind %u)", kind);
    if (kind == RK_CACHE && image_stamp(k, v))
        return 0;
    /* What the store has wins: its own cache entries, tags and records. */
    r = cs_db_put(c->db, c->txn, kind_table[kind], k, kn, v, vn, MDB_NOOVERWRITE, err);
    if (r < 0)
        return r;
    c->st->records += (uint64_t) r;
    c->st->entries += kind == RK_CACHE ? (uint64_t) r : 0;
    return 0;
}

static int
import_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    import_ctx *c = ctx;
    c->db = db;
    c->txn = txn;
    c->npacks = 0;
    cs_rcache_stats zero = { 0 };
    *c->st = zero;
    return rc_index_each(c->index->data, c->index->len, import_rec, c, err);
}

int
rc_import_part_bytes(cs_db *db, MDB_txn *txn, const char *dir, const cs_buf *b, uint8_t only,
                     cs_rcache_stats *st, cs_error **err)
{
    import_ctx c = { .dir = dir, .db = db, .txn = txn, .in_part = true, .st = st, .only = only };
    int r = rc_index_each(b->data, b->len, import_rec, &c, err);
    free(c.packs);
    return r;
}

int
cs_rcache_import_local(cs_store *s, const char *dir, cs_rcache_stats *st, cs_error **err)
{
    char abs[PATH_MAX];
    if (!realpath(dir, abs))
        return cs_err(err, CS_ENOTFOUND, errno, "cache import: '%s'", dir);
    cs_buf index;
    cs_buf_init(&index);
    rc_lazy lazy;
    rc_lazy_init(&lazy);
    import_ctx c = { .dir = abs, .index = &index, .st = st, .lazy = &lazy };
    int r = rc_layout_read(abs, &index, err);
    if (r >= 0)
        r = cs_db_write(cs_store_db(s), import_fn, &c, err);
    free(c.packs);
    rc_lazy_release(&lazy);
    cs_buf_release(&index);
    if (r < 0)
        return cs_err_wrap(err, "cache import from '%s'", dir);
    return 0;
}
