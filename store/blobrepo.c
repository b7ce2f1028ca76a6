/* blobrepo.c - the blob_repos table (see cstore/blobrepo.h). */
#include <string.h>
#include <time.h>
#include "cstore/blobrepo.h"
#include "cstore/db.h"

#define BR_VAL_LEN 40

static bool
name_ok(const char *registry, const char *repository)
{
    return registry && *registry && !strchr(registry, '/') && repository && *repository
           && repository[0] != '/';
}

/* A record younger than this is not written again: a re-push writes
 * nothing (the time only orders the repositories to mount from). */
#define BR_REFRESH_SECS 3600

typedef struct put_ctx {
    const cs_blob_repo *v;
    size_t n;
    bool *skip; /* entries already recorded, recently, with this tree */
    uint64_t now;
} put_ctx;

static void
br_key(cs_buf *k, const cs_blob_repo *e)
{
    k->len = 0;
    cs_buf_append(k, e->blob.b, 32);
    cs_buf_append(k, e->registry, strlen(e->registry));
    cs_buf_append(k, "/", 1);
    cs_buf_append(k, e->repository, strlen(e->repository));
}

static int
fresh_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    put_ctx *p = ctx;
    cs_buf k;
    cs_buf_init(&k);
    int rc = 0;
    for (size_t i = 0; i < p->n && rc >= 0; i++) {
        MDB_val v;
        br_key(&k, &p->v[i]);
        rc = cs_db_get(db, txn, CS_T_BLOB_REPOS, k.data, k.len, &v, err);
        if (rc == -CS_ENOTFOUND) {
            rc = 0;
            continue;
        }
        p->skip[i] = rc == 0 && v.mv_size == BR_VAL_LEN
                     && memcmp(v.mv_data, p->v[i].tree.b, 32) == 0
                     && cs_be64_get((const uint8_t *) v.mv_data + 32) + BR_REFRESH_SECS > p->now;
    }
    cs_buf_release(&k);
    return rc < 0 ? rc : 0;
}

static int
put_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    put_ctx *p = ctx;
    cs_buf k;
    cs_buf_init(&k);
    int rc = 0;
    for (size_t i = 0; i < p->n && rc >= 0; i++) {
        if (p->skip[i])
            continue;
        uint8_t val[BR_VAL_LEN];
        memcpy(val, p->v[i].tree.b, 32);
        cs_be64_put(val + 32, p->now);
        br_key(&k, &p->v[i]);
        rc = cs_db_put(db, txn, CS_T_BLOB_REPOS, k.data, k.len, val, sizeof(val), 0, err);
    }
    cs_buf_release(&k);
    return rc < 0 ? rc : 0;
}

int
cs_blob_repos_put(cs_store *s, const cs_blob_repo *v, size_t n, cs_error **err)
{
    for (size_t i = 0; i < n; i++)
        if (!name_ok(v[i].registry, v[i].repository))
            return cs_err(err, CS_EINVAL, 0, "bad repository '%s/%s'",
                          v[i].registry ? v[i].registry : "",
                          v[i].repository ? v[i].repository : "");
    if (n == 0)
        return 0;
    cs_autofree bool *skip = cs_xcalloc(n, sizeof(*skip));
    put_ctx p = { v, n, skip, (uint64_t) time(NULL) };
    int rc = cs_db_read(cs_store_db(s), fresh_fn, &p, err);
    size_t left = 0;
    for (size_t i = 0; i < n; i++)
        left += !skip[i];
    if (rc < 0 || left == 0)
        return rc;
    return cs_db_write(cs_store_db(s), put_fn, &p, err);
}

bool
cs_blob_repo_record_tree(const void *v, size_t len, cs_digest *tree)
{
    if (len != BR_VAL_LEN)
        return false;
    memcpy(tree->b, v, 32);
    return true;
}

typedef struct find_ctx {
    const cs_digest *blob;
    const char *registry;
    const char *except;
    char *best;
    uint64_t best_time;
} find_ctx;

/* The repository of key k when it is in f's registry and not f->except. */
static bool
find_match(const find_ctx *f, const MDB_val *k, const char **repo, size_t *len)
{
    size_t rl = strlen(f->registry);
    const char *name = (const char *) k->mv_data + 32;
    size_t nl = k->mv_size - 32;
    if (nl <= rl + 1 || memcmp(name, f->registry, rl) != 0 || name[rl] != '/')
        return false;
    *repo = name + rl + 1;
    *len = nl - rl - 1;
    return !f->except || strlen(f->except) != *len || memcmp(f->except, *repo, *len) != 0;
}

static int
find_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    find_ctx *f = ctx;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, cs_db_dbi(db, CS_T_BLOB_REPOS), &cur);
    if (rc)
        return cs_db_err(err, rc, "blob_repos");
    MDB_val k = { 32, (void *) f->blob->b }, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 32 || memcmp(k.mv_data, f->blob->b, 32) != 0)
            break;
        const char *repo;
        size_t len;
        if (v.mv_size != BR_VAL_LEN || !find_match(f, &k, &repo, &len))
            continue;
        uint64_t t = cs_be64_get((const uint8_t *) v.mv_data + 32);
        if (f->best && t <= f->best_time)
            continue;
        free(f->best);
        f->best = cs_xstrndup(repo, len);
        f->best_time = t;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : cs_db_err(err, rc, "blob_repos");
}

int
cs_blob_repo_find(cs_store *s, const cs_digest *blob, const char *registry, const char *except,
                  char **repo, cs_error **err)
{
    find_ctx f = { blob, registry, except, NULL, 0 };
    *repo = NULL;
    if (!registry || !*registry)
        return -CS_ENOTFOUND;
    int rc = cs_db_read(cs_store_db(s), find_fn, &f, err);
    if (rc < 0) {
        free(f.best);
        return rc;
    }
    if (!f.best)
        return -CS_ENOTFOUND;
    *repo = f.best;
    return 0;
}
