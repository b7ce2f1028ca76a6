/* gc.c - mark from the roots to the chunks, sweep the rest (see cstore/gc.h).
 *
 * Roots are the tags, the build cache entries the policy keeps (see
 * cs_gc_opts) and the leases of live processes (lease.h); stat cache records
 * go with the contents they name. gc runs beside loads and builds: it holds
 * the store's write gate exclusively (cs_db_gate_exclusive) from the mark to
 * the last sweep batch, so no writer commits between what gc marked and what
 * it deletes, and lease.lock from before it reads the leases until then.
 * The sweep deletes referrers before what they refer to (images, tarsplit,
 * trees, layer blobs, contents, chunks), so a crash between two batches never
 * leaves a dangling reference.
 * Why batches: one write transaction for a whole sweep was measured to stop
 * LMDB from reusing the freed pages: after gc of a freed golang image (16.8k
 * chunks), reloading it grew data.mdb from 162 MB to 320 MB, against 171 MB
 * with batches of 2000 deletes (t_dedup_gc checks it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "blobcache.h"
#include "cstore/blobrepo.h"
#include "cstore/buildcache.h"
#include "cstore/export.h"
#include "cstore/content.h"
#include "cstore/gc.h"
#include "cstore/image.h"
#include "cstore/layerindex.h"
#include "cstore/rcache.h"
#include "cstore/snapshot.h"
#include "cstore/copykey.h"
#include "cstore/statcache.h"
#include "cstore/tarsplit.h"
#include "cstore/tree.h"
#include "digestset.h"
#include "lease_int.h"
#include "snapshot_int.h"

/* Deletes per write txn (see above). */
#define GC_BATCH 2000

typedef struct gc_marks {
    const cs_gc_opts *o;
    cs_digestset *cache; /* build cache keys kept */
    cs_digestset *images, *trees, *contents, *chunks;
    cs_digestset *tarsplits; /* keys (diff_ids) of the tarsplit records kept */
    cs_digestset *in_use;    /* trees leased by live processes (and their images' layers) */
    cs_digestset *snap_drop; /* snapshots over the budget: tree -> last used seen */
    uint64_t budget_used;    /* bytes of --keep-storage the kept entries and snapshots take */
} gc_marks;

static int
mark_tag(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    gc_marks *m = ctx;
    (void) k, (void) err;
    if (v->mv_size == 32)
        cs_digestset_add(m->images, v->mv_data);
    return 0;
}

static int
mark_tags(cs_db *db, MDB_txn *txn, gc_marks *m, cs_error **err)
{
    return cs_db_each(db, txn, CS_T_TAGS, "tags", mark_tag, m, err);
}

typedef struct cache_ent {
    cs_digest key, tree;
    uint64_t used, bytes;
    bool has_layer;
    bool snap; /* a snapshot of tree, not a cache entry */
} cache_ent;

static int
cmp_recent(const void *a, const void *b)
{
    const cache_ent *x = a, *y = b;
    return x->used > y->used ? -1 : x->used < y->used;
}

typedef struct cache_list {
    cs_db *db;
    MDB_txn *txn;
    cache_ent *v;
    size_t n, cap;
} cache_list;

/* The file bytes of a tree into *bytes (0 when the tree is gone: a
 * dangling reference is fsck's business); block: each file rounded up to
 * that (a snapshot's files on disk), or 1. */
static int
tree_bytes(cs_db *db, MDB_txn *txn, const cs_digest *tree, uint64_t block, uint64_t *bytes,
           cs_error **err)
{
    *bytes = 0;
    MDB_val tv;
    int r = cs_db_get(db, txn, CS_T_TREES, tree->b, 32, &tv, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    __attribute__((cleanup(cs_tree_freep))) cs_tree *t = NULL;
    if (r < 0 || (r = cs_tree_decode(tv.mv_data, tv.mv_size, &t, err)) < 0)
        return r;
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].type == CS_E_FILE)
            *bytes += (t->e[i].size + block - 1) / block * block;
    return 0;
}

static int
layer_bytes(cs_db *db, MDB_txn *txn, const cs_cache_entry *e, uint64_t *bytes, cs_error **err)
{
    *bytes = 0;
    return e->has_layer ? tree_bytes(db, txn, &e->tree, 1, bytes, err) : 0;
}

static int
list_cache(void *ctx, const cs_digest *key, const cs_cache_entry *ce, cs_error **err)
{
    cache_list *l = ctx;
    uint64_t bytes;
    int r = layer_bytes(l->db, l->txn, ce, &bytes, err);
    if (r < 0)
        return r;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = cs_xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    cache_ent *e = &l->v[l->n++];
    *e = (cache_ent){ 0 };
    e->key = *key;
    e->tree = ce->tree;
    e->used = ce->last_used;
    e->has_layer = ce->has_layer;
    e->bytes = bytes;
    return 0;
}

/* Snapshots share the --keep-storage budget with the cache entries, least
 * recently used out first; their bytes are their files' 4 KiB blocks.
 * They are listed as entries with snap set (tree = the snapshot's tree). */
static int
list_snapshots(cs_db *db, MDB_txn *txn, cache_list *l, cs_error **err)
{
    cs_snapshot_recs sr;
    int r = cs_snapshot_list(db, txn, &sr, err);
    for (size_t i = 0; i < sr.n && r >= 0; i++) {
        uint64_t bytes;
        r = tree_bytes(db, txn, &sr.v[i].tree, 4096, &bytes, err);
        if (r < 0)
            break;
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 64;
            l->v = cs_xrealloc(l->v, l->cap * sizeof(*l->v));
        }
        l->v[l->n++] = (cache_ent){
            .tree = sr.v[i].tree, .used = sr.v[i].last_used, .bytes = bytes, .snap = true
        };
    }
    free(sr.v);
    return r;
}

/* A snapshot within the age limit: kept while it fits (always when a live
 * process relies on its tree: it may be a mounted lower dir), else dropped
 * from disk by the prune after the sweep. */
static void
budget_snapshot(gc_marks *m, const cache_ent *e, uint64_t now, uint64_t *total)
{
    if (now - e->used >= m->o->keep_duration)
        return; /* the prune takes it anyway */
    if (!cs_digestset_has(m->in_use, e->tree.b) && *total + e->bytes > m->o->keep_storage) {
        cs_digestset_add(m->snap_drop, e->tree.b);
        *cs_digestset_value(m->snap_drop, e->tree.b) = e->used;
        return;
    }
    *total += e->bytes;
}

/* Build cache records (cstore/buildcache.h): the policy keeps the most
 * recently used within the age and size limits; their trees are roots.
 * Malformed records are not listed, so the sweep drops them. */
static int
mark_cache(cs_db *db, MDB_txn *txn, gc_marks *m, cs_error **err)
{
    cache_list l = { db, txn, NULL, 0, 0 };
    int r = cs_cache_foreach(db, txn, list_cache, &l, err);
    if (r >= 0)
        r = list_snapshots(db, txn, &l, err);
    if (r < 0) {
        free(l.v);
        return r;
    }
    cache_ent *v = l.v;
    size_t n = l.n;
    if (n)
        qsort(v, n, sizeof(*v), cmp_recent);
    uint64_t now = (uint64_t) time(NULL), total = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].snap) {
            budget_snapshot(m, &v[i], now, &total);
            continue;
        }
        if (now - v[i].used >= m->o->keep_duration || total + v[i].bytes > m->o->keep_storage)
            continue;
        total += v[i].bytes;
        cs_digestset_add(m->cache, v[i].key.b);
        if (v[i].has_layer)
            cs_digestset_add(m->trees, v[i].tree.b);
    }
    free(v);
    m->budget_used = total;
    return 0;
}

/* Looks up a marked record; -CS_ENOTFOUND (no error set) when it is absent:
 * a dangling reference is fsck's business, there is nothing to mark. */
static int
mark_get(cs_db *db, MDB_txn *txn, cs_table t, const cs_digest *d, MDB_val *v, cs_error **err)
{
    return cs_db_get(db, txn, t, d->b, 32, v, err);
}

/* A record gc cannot decode may reference anything: refuse to sweep. */
static int
mark_corrupt(cs_error **err, const char *what, const cs_digest *d)
{
    char s[CS_DIGEST_STR];

    cs_digest_str(d, s);
    if (err && *err)
        return cs_err_wrap(err, "%s %s", what, s);
    return cs_err(err, CS_ECORRUPT, 0, "%s %s: bad record", what, s);
}

/* A tarsplit record lives as long as its tree, and keeps the contents of
 * its members (a member replaced by a later one of the same path is in no
 * tree). One that does not decode references nothing worth keeping: it is
 * swept (export regenerates such a layer). */
static int
mark_tarsplit(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    gc_marks *m = ctx;
    const uint8_t *p = v->mv_data;
    (void) err;
    if (k->mv_size != 32 || v->mv_size < 33 || !cs_digestset_has(m->trees, p + 1))
        return 0;
    cs_tarsplit *ts = NULL;
    if (cs_tarsplit_decode(v->mv_data, v->mv_size, &ts, NULL) < 0)
        return 0;
    cs_digestset_add(m->tarsplits, k->mv_data);
    for (size_t i = 0; i < ts->n; i++)
        if (ts->m[i].has_content)
            cs_digestset_add(m->contents, ts->m[i].content.b);
    cs_tarsplit_free(ts);
    return 0;
}

static int
mark_tarsplits(cs_db *db, MDB_txn *txn, gc_marks *m, cs_error **err)
{
    return cs_db_each(db, txn, CS_T_TARSPLIT, "tarsplit", mark_tarsplit, m, err);
}

static int
mark_image(gc_marks *m, const cs_digest *d, const MDB_val *v, cs_error **err)
{
    __attribute__((cleanup(cs_image_freep))) cs_image *img = NULL;
    if (cs_image_decode(v->mv_data, v->mv_size, &img, err) < 0)
        return mark_corrupt(err, "image", d);
    for (uint32_t i = 0; i < img->nlayers; i++)
        cs_digestset_add(m->trees, img->layers[i].b);
    return 0;
}

static int
mark_tree(gc_marks *m, const cs_digest *d, const MDB_val *v, cs_error **err)
{
    __attribute__((cleanup(cs_tree_freep))) cs_tree *t = NULL;
    if (cs_tree_decode(v->mv_data, v->mv_size, &t, err) < 0)
        return mark_corrupt(err, "tree", d);
    for (size_t i = 0; i < t->n; i++) {
        if (t->e[i].has_content)
            cs_digestset_add(m->contents, t->e[i].content.b);
    }
    return 0;
}

static int
mark_content(gc_marks *m, const cs_digest *d, const MDB_val *v, cs_error **err)
{
    uint64_t size;
    uint32_t n;
    cs_autofree cs_chunk_ref *refs = NULL;
    if (cs_content_decode(v->mv_data, v->mv_size, &size, &refs, &n) < 0)
        return mark_corrupt(err, "content", d);
    for (uint32_t i = 0; i < n; i++)
        cs_digestset_add(m->chunks, refs[i].d.b);
    return 0;
}

typedef int (*mark_rec_fn)(gc_marks *m, const cs_digest *d, const MDB_val *v, cs_error **err);

/* Marks what the record (in t) of each digest in set references. */
static int
mark_each(cs_db *db, MDB_txn *txn, gc_marks *m, cs_digestset *set, cs_table t, mark_rec_fn fn,
          cs_error **err)
{
    const cs_digest *d;
    MDB_val v;
    for (size_t it = 0; (d = cs_digestset_next(set, &it));) {
        int r = mark_get(db, txn, t, d, &v, err);
        if (r == -CS_ENOTFOUND)
            continue;
        if (r == 0)
            r = fn(m, d, &v, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Before anything else is marked, m->trees and m->images hold the leases
 * only: the trees live processes rely on, for the snapshot budget. */
static int
mark_in_use(cs_db *db, MDB_txn *txn, gc_marks *m, cs_error **err)
{
    const cs_digest *d;
    for (size_t it = 0; (d = cs_digestset_next(m->trees, &it));)
        cs_digestset_add(m->in_use, d->b);
    MDB_val v;
    for (size_t it = 0; (d = cs_digestset_next(m->images, &it));) {
        int r = mark_get(db, txn, CS_T_IMAGES, d, &v, err);
        if (r == -CS_ENOTFOUND)
            continue;
        if (r < 0)
            return r;
        __attribute__((cleanup(cs_image_freep))) cs_image *img = NULL;
        if (cs_image_decode(v.mv_data, v.mv_size, &img, err) < 0)
            return mark_corrupt(err, "image", d);
        for (uint32_t i = 0; i < img->nlayers; i++)
            cs_digestset_add(m->in_use, img->layers[i].b);
    }
    return 0;
}

static int
mark_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    gc_marks *m = ctx;
    int r = mark_in_use(db, txn, m, err);
    if (r == 0)
        r = mark_tags(db, txn, m, err);
    if (r == 0)
        r = mark_cache(db, txn, m, err);
    if (r == 0)
        r = mark_each(db, txn, m, m->images, CS_T_IMAGES, mark_image, err);
    if (r == 0)
        r = mark_each(db, txn, m, m->trees, CS_T_TREES, mark_tree, err);
    if (r == 0)
        r = mark_tarsplits(db, txn, m, err);
    if (r == 0)
        r = mark_each(db, txn, m, m->contents, CS_T_CONTENTS, mark_content, err);
    if (r == 0) /* a delta chunk still remote needs its bases */
        r = cs_rcache_gc_mark(db, txn, m->chunks, err);
    return r < 0 ? r : 0;
}

static bool
sweep_keep(cs_table t, const cs_digestset *keep, const MDB_val *k, const MDB_val *v)
{
    /* Stat cache records go with the content they remember. */
    if (t == CS_T_STATCACHE) {
        cs_digest d;
        return cs_statcache_record_content(v->mv_data, v->mv_size, &d)
               && cs_digestset_has(keep, d.b);
    }
    /* Layer index records go with the tree they name. */
    if (t == CS_T_LAYER_INDEX) {
        cs_digest d;
        return cs_layerindex_record_tree(v->mv_data, v->mv_size, &d) && cs_digestset_has(keep, d.b);
    }
    /* Registry locations of a blob go with the tree it was made from. */
    if (t == CS_T_BLOB_REPOS) {
        cs_digest d;
        return cs_blob_repo_record_tree(v->mv_data, v->mv_size, &d) && cs_digestset_has(keep, d.b);
    }
    /* What COPY --from selected of a source goes with its top layer. */
    if (t == CS_T_COPY_KEYS) {
        cs_digest d;
        return cs_copykey_record_tree(v->mv_data, v->mv_size, &d) && cs_digestset_has(keep, d.b);
    }
    /* layer_blobs keys are tree digest + compression byte [+ diff_id]. */
    if (k->mv_size != 32 && !(t == CS_T_LAYER_BLOBS && k->mv_size > 32))
        return false;
    return cs_digestset_has(keep, k->mv_data);
}

typedef struct gc_sweep {
    cs_table t;
    const cs_digestset *keep;
    bool dry_run;
    cs_buf pos; /* resume at the first key >= pos (empty: from the start) */
    /* Results of one batch; the caller applies them once the txn committed. */
    uint64_t freed, bytes;
    bool more;
    cs_buf next;
} gc_sweep;

/* One batch: deletes (or, dry, counts) up to GC_BATCH records of t whose key
 * is not in keep, from sw->pos on. */
static int
sweep_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    gc_sweep *sw = ctx;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t deleted = 0;

    sw->freed = sw->bytes = 0;
    sw->more = false;
    int rc = mdb_cursor_open(txn, cs_db_dbi(db, sw->t), &cur);
    if (rc)
        return cs_db_err(err, rc, "sweep");
    k.mv_size = sw->pos.len;
    k.mv_data = sw->pos.data;
    rc = mdb_cursor_get(cur, &k, &v, sw->pos.len ? MDB_SET_RANGE : MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (sweep_keep(sw->t, sw->keep, &k, &v))
            continue;
        sw->freed++;
        sw->bytes += v.mv_size;
        if (sw->dry_run)
            continue;
        /* The deleted key is where the next batch resumes (MDB_SET_RANGE
         * then finds its successor); copy it before the page changes. */
        sw->next.len = 0;
        cs_buf_append(&sw->next, k.mv_data, k.mv_size);
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        if (++deleted == GC_BATCH) {
            sw->more = true;
            rc = MDB_NOTFOUND;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : cs_db_err(err, rc, "sweep");
}

static int
sweep_table(cs_db *db, cs_table t, const cs_digestset *keep, bool dry_run, uint64_t *freed,
            uint64_t *bytes, cs_error **err)
{
    gc_sweep sw = { .t = t, .keep = keep, .dry_run = dry_run };
    int r;

    cs_buf_init(&sw.pos);
    cs_buf_init(&sw.next);
    do {
        r = dry_run ? cs_db_read(db, sweep_fn, &sw, err) : cs_db_write(db, sweep_fn, &sw, err);
        if (r < 0)
            break;
        *freed += sw.freed;
        if (bytes)
            *bytes += sw.bytes;
        cs_buf tmp = sw.pos;
        sw.pos = sw.next;
        sw.next = tmp;
    } while (sw.more);
    cs_buf_release(&sw.pos);
    cs_buf_release(&sw.next);
    return r < 0 ? r : 0;
}

static uint64_t
file_alloc(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return 0;
    return (uint64_t) st.st_blocks * 512;
}

static int
fsync_path(const char *path, int flags)
{
    cs_autoclose int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        return -1;
    return 0;
}

/* Copies the live data into ROOT/compact.tmp/data.mdb without free pages and
 * renames it over ROOT/data.mdb. A crash before the rename leaves the old
 * file (the leftover copy is removed next time); after it, the new one,
 * complete and synced. The exclusive store lock means no other process has
 * the old file mapped. */
static int
gc_compact(cs_store *s, cs_error **err)
{
    const char *root = cs_store_root(s);
    cs_autofree char *tmp = cs_path_join(root, "compact.tmp");
    cs_autofree char *tmpdb = cs_path_join(tmp, "data.mdb");
    cs_autofree char *dbpath = cs_path_join(root, "data.mdb");
    int r;

    if (unlink(tmpdb) < 0 && errno != ENOENT)
        return cs_err(err, CS_EIO, errno, "remove '%s'", tmpdb);
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return cs_err(err, CS_EIO, errno, "mkdir '%s'", tmp);
    int rc = mdb_env_copy2(cs_db_env(cs_store_db(s)), tmp, MDB_CP_COMPACT);
    if (rc) {
        r = cs_db_err(err, rc, "compact copy");
        goto fail;
    }
    if (fsync_path(tmpdb, O_RDONLY) < 0) {
        r = cs_err(err, errno == ENOSPC ? CS_EFULL : CS_EIO, errno, "sync '%s'", tmpdb);
        goto fail;
    }
    if (rename(tmpdb, dbpath) < 0) {
        r = cs_err(err, CS_EIO, errno, "rename '%s' to '%s'", tmpdb, dbpath);
        goto fail;
    }
    if (fsync_path(root, O_RDONLY | O_DIRECTORY) < 0)
        return cs_err(err, CS_EIO, errno, "sync '%s'", root);
    rmdir(tmp);
    r = cs_store_reopen_db(s, err);
    if (r < 0)
        return cs_err_wrap(err, "reopen after compact");
    return 0;
fail:
    unlink(tmpdb);
    rmdir(tmp);
    return r;
}

int
cs_gc(cs_store *s, bool dry_run, bool compact, cs_gc_stats *out, cs_error **err)
{
    cs_gc_opts o = { dry_run, compact, CS_GC_KEEP_STORAGE, CS_GC_KEEP_DURATION };
    return cs_gc_ex(s, &o, out, err);
}

static void
marks_release(gc_marks *m)
{
    cs_digestset_free(m->cache);
    cs_digestset_free(m->images);
    cs_digestset_free(m->trees);
    cs_digestset_free(m->contents);
    cs_digestset_free(m->chunks);
    cs_digestset_free(m->tarsplits);
    cs_digestset_free(m->in_use);
    cs_digestset_free(m->snap_drop);
}

static void
marks_init(gc_marks *m, const cs_gc_opts *o)
{
    *m = (gc_marks){
        .o = o,
        .cache = cs_digestset_new(false),
        .images = cs_digestset_new(false),
        .trees = cs_digestset_new(false),
        .contents = cs_digestset_new(false),
        .chunks = cs_digestset_new(false),
        .tarsplits = cs_digestset_new(false),
        .in_use = cs_digestset_new(false),
        .snap_drop = cs_digestset_new(true),
    };
}

/* Referrers go before what they refer to (images, tarsplit, trees, layer
 * blobs, contents, chunks). */
static int
sweep_all(cs_db *db, const gc_marks *m, bool dry_run, cs_gc_stats *out, cs_error **err)
{
    const struct {
        cs_table t;
        const cs_digestset *keep;
        uint64_t *freed;
    } tables[] = {
        { CS_T_CACHE, m->cache, &out->cache },
        { CS_T_IMAGES, m->images, &out->images },
        { CS_T_TARSPLIT, m->tarsplits, &out->tarsplits },
        { CS_T_BLOB_REPOS, m->trees, &out->blob_repos },
        { CS_T_COPY_KEYS, m->trees, &out->copy_keys },
        { CS_T_TREES, m->trees, &out->trees },
        { CS_T_LAYER_BLOBS, m->trees, &out->layer_blobs },
        { CS_T_LAYER_INDEX, m->trees, &out->layer_blobs },
        /* Before contents: a stat cache hit trusts its content is stored. */
        { CS_T_STATCACHE, m->contents, &out->statcache },
        { CS_T_CONTENTS, m->contents, &out->contents },
        { CS_T_CHUNKS, m->chunks, &out->chunks },
    };
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        int r = sweep_table(db, tables[i].t, tables[i].keep, dry_run, tables[i].freed,
                            tables[i].t == CS_T_CHUNKS ? &out->chunk_bytes : NULL, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The FUSE snapshotter's marks of served bases (ROOT/snapshots/<hex>.served,
 * fuse_client.c) whose tree was not kept: the tree is gone, so is what the
 * mark remembered. A mark is only a hint (served once, unpack next time):
 * failing to remove one is a warning. */
static void
drop_served_marks(cs_store *s, const cs_digestset *trees)
{
    static const char suffix[] = ".served";
    cs_autofree char *root = cs_path_join(cs_store_root(s), "snapshots");
    cs_autoclose int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return; /* no snapshots dir: no marks */
    char **names = NULL;
    size_t n = 0;
    cs_error *tmp = NULL;
    if (cs_dir_names(fd, root, &names, &n, &tmp) < 0)
        cs_store_warn_error(s, "gc: served marks", &tmp);
    for (size_t i = 0; i < n; i++) {
        char hex[CS_DIGEST_HEX];
        cs_digest d;
        size_t len = strlen(names[i]);
        if (len != CS_DIGEST_HEX - 1 + sizeof(suffix) - 1 || strcmp(names[i] + 64, suffix))
            continue;
        memcpy(hex, names[i], 64);
        hex[64] = '\0';
        if (!cs_digest_parse(hex, &d) || cs_digestset_has(trees, d.b))
            continue;
        if (unlinkat(fd, names[i], 0) < 0 && errno != ENOENT) {
            cs_err(&tmp, CS_EIO, errno, "remove '%s/%s'", root, names[i]);
            cs_store_warn_error(s, "gc", &tmp);
        }
    }
    cs_names_free(names, n);
}

static int
blob_of_record(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    (void) k;
    (void) err;
    cs_digest d;
    if (cs_layer_blob_record_blob(v->mv_data, v->mv_size, &d))
        cs_digestset_add(ctx, d.b);
    return 0;
}

static int
blobs_of_records(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    return cs_db_each(db, txn, CS_T_LAYER_BLOBS, "layer_blobs", blob_of_record, ctx, err);
}

/* The blob cache (blobcache.h) keeps the files of the layer_blobs records
 * the sweep kept, within what --keep-storage leaves after the build cache and
 * the snapshots (the most recently used first). A cache: failing to prune it
 * is a warning. */
static void
prune_blob_cache(cs_store *s, uint64_t budget)
{
    __attribute__((cleanup(cs_digestset_freep))) cs_digestset *keep = cs_digestset_new(false);
    uint64_t n, bytes;
    cs_error *tmp = NULL;
    if (cs_db_read(cs_store_db(s), blobs_of_records, keep, &tmp) < 0
        || cs_blobcache_prune(s, keep, budget, &n, &bytes, &tmp) < 0)
        cs_store_warn_error(s, "gc: blob cache", &tmp);
}

/* The mark, from the leases (read under lease.lock) and the records, then
 * the sweep in batches. Writers are held off by the gate meanwhile. */
static int
mark_and_sweep(cs_store *s, const cs_gc_opts *o, cs_gc_stats *out, cs_digestset **snap_drop,
               cs_error **err)
{
    cs_db *db = cs_store_db(s);
    gc_marks m;
    marks_init(&m, o);
    int lock_fd = -1;
    int r = o->dry_run ? 0 : cs_lease_gc_lock(s, &lock_fd, err);
    if (r >= 0)
        r = cs_lease_roots(s, m.images, m.trees, err);
    if (r >= 0)
        r = cs_db_read(db, mark_fn, &m, err);
    if (r >= 0)
        r = sweep_all(db, &m, o->dry_run, out, err);
    /* Chunks an imported cache holds that are local now or nothing uses. */
    if (r >= 0)
        r = cs_rcache_gc(db, m.chunks, o->dry_run, &out->remote_chunks, err);
    if (r >= 0) /* and trees: local now, or no record gc keeps names them */
        r = cs_rcache_gc_trees(db, m.trees, o->dry_run, &out->remote_trees, err);
    if (r >= 0 && !o->dry_run) {
        drop_served_marks(s, m.trees);
        prune_blob_cache(s, o->keep_storage > m.budget_used ? o->keep_storage - m.budget_used : 0);
    }
    cs_lease_gc_unlock(lock_fd); /* after the last batch committed */
    *snap_drop = cs_steal(&m.snap_drop);
    marks_release(&m);
    return r < 0 ? r : 0;
}

int
cs_gc_ex(cs_store *s, const cs_gc_opts *o, cs_gc_stats *out, cs_error **err)
{
    cs_db *db = cs_store_db(s);
    cs_autofree char *dbpath = cs_path_join(cs_store_root(s), "data.mdb");

    memset(out, 0, sizeof(*out));
    out->file_before = file_alloc(dbpath);
    __attribute__((cleanup(cs_digestset_freep))) cs_digestset *drop = NULL;
    int r = o->dry_run ? 0 : cs_db_gate_exclusive(db, true, err);
    if (r == 0) {
        r = mark_and_sweep(s, o, out, &drop, err);
        cs_error *tmp = NULL;
        if (!o->dry_run && cs_db_gate_exclusive(db, false, &tmp) < 0)
            cs_store_warn_error(s, "gc", &tmp);
    }
    if (r < 0 || o->dry_run)
        goto out;
    /* Snapshots are a cache of trees: drop those of freed trees, those
     * unused for longer than the build cache is kept and those over the
     * --keep-storage budget (least recently used first, chosen by the mark). */
    uint64_t now = (uint64_t) time(NULL);
    r = cs_snapshot_prune_ex(s, now > o->keep_duration ? now - o->keep_duration : 0, drop,
                             &out->snapshots, &out->snapshot_bytes, err);
    if (r == 0 && o->compact)
        r = gc_compact(s, err);
out:
    out->file_after = file_alloc(dbpath);
    return r;
}
