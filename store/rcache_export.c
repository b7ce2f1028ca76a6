/* rcache_export.c - `build --cache-to type=local`: collect, merge with the
 * index already in the layout, pack the new chunks, then under the dir's
 * lock merge again and write the index and the manifest (see
 * cstore/rcache.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "rcache_int.h"

#define LOCK_FILE ".cstore-lock"

typedef struct export_ctx {
    const char *dir;
    const cs_rcache_build *b;
    cs_rcache_mode mode;
    rc_index *x;
    cs_digest *order;
    size_t n;
    cs_rcache_stats *st;
} export_ctx;

static int
collect_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    export_ctx *e = ctx;
    free(e->order);
    e->order = NULL;
    return rc_collect(db, txn, e->dir, e->b, e->mode, e->x, &e->order, &e->n, e->st, err);
}

static int
packs_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    export_ctx *e = ctx;
    return rc_packs_write(db, txn, e->dir, e->order, e->n, e->x, e->st, err);
}

/* The index already in dir: its entries stay unless this build has them;
 * one that cannot be read is replaced, with a warning. */
static int
merge_old(cs_store *s, const char *dir, rc_index *x, cs_error **err)
{
    cs_buf old;
    cs_buf_init(&old);
    cs_error *tmp = NULL;
    int r = rc_layout_read(dir, &old, &tmp);
    if (r >= 0)
        r = rc_index_merge(x, dir, old.data, old.len, &tmp);
    cs_buf_release(&old);
    if (r == -CS_ENOTFOUND)
        cs_error_clear(&tmp);
    else if (r == -CS_ECORRUPT)
        cs_store_warn_error(s, "cache export: the previous index is replaced", &tmp);
    else if (r < 0) {
        if (err && !*err)
            *err = cs_steal(&tmp);
        cs_error_clear(&tmp);
        return r;
    }
    return 0;
}

/* Keeps the chunks no pack of the index holds, in order. */
static void
new_chunks(export_ctx *e)
{
    size_t k = 0;
    for (size_t i = 0; i < e->n; i++)
        if (!cs_digestset_has(e->x->chunks, e->order[i].b))
            e->order[k++] = e->order[i];
    e->n = k;
}

/* Under an flock on DIR/.cstore-lock (exports to one dir from several
 * processes, or machines sharing the dir over a file system that has
 * flock): the index there now is merged in again (an export that finished
 * since this one read it added entries: the union is kept, merging is
 * idempotent), then the root and index.json are written. */
static int
write_index(cs_store *s, export_ctx *e, cs_error **err)
{
    cs_autofree char *lpath = cs_path_join(e->dir, LOCK_FILE);
    cs_autoclose int fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "cache lock '%s'", lpath);
    int r = cs_flock(fd, LOCK_EX);
    if (r != 0)
        return cs_err(err, CS_EIO, r, "cache lock '%s'", lpath);
    if ((r = merge_old(s, e->dir, e->x, err)) < 0
        || (r = rc_lazy_tree_packs(s, e->dir, e->x, err)) < 0)
        return r; /* closing fd drops the lock */
    cs_buf b;
    cs_buf_init(&b);
    rc_index_encode(e->x, &b);
    cs_digest d;
    r = rc_blob_write(e->dir, b.data, b.len, &d, err);
    e->st->index_bytes += r == 1 ? b.len : 0;
    if (r >= 0)
        r = rc_layout_write(e->dir, &d, b.len, e->x, err);
    cs_buf_release(&b);
    return r;
}

int
cs_rcache_export_local(cs_store *s, const char *dir, const cs_rcache_build *b, cs_rcache_mode mode,
                       cs_rcache_stats *st, cs_error **err)
{
    rc_index x;
    rc_index_init(&x);
    memset(st, 0, sizeof(*st));
    export_ctx e = { .dir = dir, .b = b, .mode = mode, .x = &x, .st = st };
    cs_db *db = cs_store_db(s);
    int r = cs_mkdir_p(dir, 0755, err);
    if (r >= 0) /* trees an imported cache left remote: their records first */
        r = rc_lazy_fetch_build(s, b, mode, err);
    if (r >= 0 && (r = cs_db_read(db, collect_fn, &e, err)) >= 0
        && (r = merge_old(s, dir, &x, err)) >= 0) {
        new_chunks(&e);
        /* Chunks this store holds only through a cache it imported. */
        r = rc_fetch_chunks(s, e.order, e.n, st, err);
    }
    if (r >= 0 && (r = cs_db_read(db, packs_fn, &e, err)) >= 0)
        r = write_index(s, &e, err);
    st->packs = x.npacks;
    free(e.order);
    rc_index_release(&x);
    if (r < 0)
        return cs_err_wrap(err, "cache export to '%s'", dir);
    return 0;
}
