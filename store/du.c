/* du.c - disk usage of a store (see cstore/gc.h). */
#include <ftw.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include "cstore/gc.h"
#include "cstore/image.h"
#include "cstore/tree.h"
#include "digestset.h"

typedef struct du_ctx {
    cs_db *db;
    MDB_txn *txn;
    cs_du_stats *st;
    cs_digestset *tree_bytes; /* tree digest -> bytes of its files */
} du_ctx;

static int
du_count(cs_db *db, MDB_txn *txn, cs_table t, uint64_t *out, cs_error **err)
{
    MDB_stat ms;
    int rc = mdb_stat(txn, cs_db_dbi(db, t), &ms);
    if (rc)
        return cs_db_err(err, rc, "stat");
    *out = ms.ms_entries;
    return 0;
}

/* Bytes of the regular files of a tree (hardlinks are the same bytes),
 * decoded once per tree however many images share it. Missing or corrupt
 * trees count 0: reporting them is fsck's job. */
static uint64_t
du_tree_bytes(cs_db *db, MDB_txn *txn, du_ctx *c, const cs_digest *d)
{
    uint64_t *cached = cs_digestset_value(c->tree_bytes, d->b);
    if (cached)
        return *cached;
    uint64_t sum = 0;
    MDB_val v;
    cs_error *tmp = NULL; /* a missing or corrupt tree counts 0 (above) */
    if (cs_db_get(db, txn, CS_T_TREES, d->b, 32, &v, &tmp) == 0) {
        cs_tree *t = NULL;
        if (cs_tree_decode(v.mv_data, v.mv_size, &t, &tmp) == 0) {
            for (size_t i = 0; i < t->n; i++) {
                if (t->e[i].type == CS_E_FILE)
                    sum += t->e[i].size;
            }
        }
        cs_tree_free(t);
    }
    cs_error_clear(&tmp);
    cs_digestset_add(c->tree_bytes, d->b);
    *cs_digestset_value(c->tree_bytes, d->b) = sum;
    return sum;
}

static int
du_chunk(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    du_ctx *c = ctx;
    const uint8_t *p = v->mv_data;
    (void) k, (void) err;
    c->st->stored_bytes += v->mv_size;
    if (v->mv_size >= 5)
        c->st->unique_bytes += cs_be32_get(p + 1); /* raw length */
    return 0;
}

static int
du_image(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    du_ctx *c = ctx;
    cs_image *img = NULL;
    cs_error *tmp = NULL;
    (void) k, (void) err;
    if (cs_image_decode(v->mv_data, v->mv_size, &img, &tmp) < 0) {
        cs_error_clear(&tmp); /* a corrupt image is fsck's to report */
        return 0;
    }
    for (uint32_t i = 0; i < img->nlayers; i++)
        c->st->logical_bytes += du_tree_bytes(c->db, c->txn, c, &img->layers[i]);
    cs_image_free(img);
    return 0;
}

static int
du_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    du_ctx *c = ctx;
    cs_du_stats *st = c->st;
    int rc;

    if ((rc = du_count(db, txn, CS_T_IMAGES, &st->images, err)) < 0
        || (rc = du_count(db, txn, CS_T_TAGS, &st->tags, err)) < 0
        || (rc = du_count(db, txn, CS_T_TREES, &st->trees, err)) < 0
        || (rc = du_count(db, txn, CS_T_CONTENTS, &st->contents, err)) < 0
        || (rc = du_count(db, txn, CS_T_CHUNKS, &st->chunks, err)) < 0
        || (rc = du_count(db, txn, CS_T_TARSPLIT, &st->tarsplits, err)) < 0
        || (rc = du_count(db, txn, CS_T_SNAPSHOTS, &st->snapshots, err)) < 0)
        return rc;

    c->db = db;
    c->txn = txn;
    if ((rc = cs_db_each(db, txn, CS_T_CHUNKS, "chunks", du_chunk, c, err)) < 0)
        return rc;
    return cs_db_each(db, txn, CS_T_IMAGES, "images", du_image, c, err);
}

/* nftw has no context argument; a store is measured by one thread at a time
 * per call, so thread-local sums are enough. The caches under the root
 * (snapshots/, blobcache/) are also summed apart. */
enum { DU_SNAP, DU_BLOBS, DU_NCACHES };
static __thread uint64_t du_disk_sum, du_cache_sum[DU_NCACHES];
static __thread const char *du_cache_dir[DU_NCACHES];

static int
du_walk(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void) ftw;
    if (type == FTW_NS)
        return 0;
    uint64_t b = (uint64_t) sb->st_blocks * 512;
    du_disk_sum += b;
    for (int i = 0; i < DU_NCACHES; i++) {
        size_t n = strlen(du_cache_dir[i]);
        if (!strncmp(path, du_cache_dir[i], n) && (path[n] == '/' || !path[n]))
            du_cache_sum[i] += b;
    }
    return 0;
}

int
cs_du(cs_store *s, cs_du_stats *out, cs_error **err)
{
    du_ctx c = { .st = out, .tree_bytes = cs_digestset_new(true) };

    memset(out, 0, sizeof(*out));
    int r = cs_db_read(cs_store_db(s), du_fn, &c, err);
    cs_digestset_free(c.tree_bytes);
    if (r < 0)
        return cs_err_wrap(err, "du");
    out->dedup_ratio = out->unique_bytes ? (double) out->logical_bytes / out->unique_bytes : 0;

    cs_autofree char *snap = cs_path_join(cs_store_root(s), "snapshots");
    cs_autofree char *blobs = cs_path_join(cs_store_root(s), "blobcache");
    du_disk_sum = du_cache_sum[DU_SNAP] = du_cache_sum[DU_BLOBS] = 0;
    du_cache_dir[DU_SNAP] = snap;
    du_cache_dir[DU_BLOBS] = blobs;
    if (nftw(cs_store_root(s), du_walk, 16, FTW_PHYS) < 0)
        return cs_err(err, CS_EIO, errno, "walk '%s'", cs_store_root(s));
    out->disk_bytes = du_disk_sum;
    out->snapshot_bytes = du_cache_sum[DU_SNAP];
    out->blobcache_bytes = du_cache_sum[DU_BLOBS];
    return 0;
}
