/* statcache.c - the stat cache records and the view the builder reads them
 * through (see cstore/statcache.h for the layout). */
#include "cstore/statcache.h"

#include <string.h>
#include "cstore/db.h"

/* The part of a value compared on lookup: everything but the digest. */
#define SC_STATLEN (CS_STATCACHE_VLEN - 32)
_Static_assert(CS_STATCACHE_SUMLEN != CS_STATCACHE_VLEN, "a summary must never read as a record");

struct cs_statcache {
    cs_db *db;
    MDB_txn *txn; /* the ingest's, or own_txn */
    MDB_txn *own_txn;
};

int
cs_statcache_open(cs_store *s, cs_ingest *ing, cs_statcache **out, cs_error **err)
{
    cs_statcache *sc = cs_xcalloc(1, sizeof(*sc));
    sc->db = cs_store_db(s);
    if (ing) {
        sc->txn = cs_ingest_txn(ing);
    } else {
        int r = cs_db_begin(sc->db, MDB_RDONLY, &sc->own_txn, err);
        if (r < 0) {
            free(sc);
            return r;
        }
        sc->txn = sc->own_txn;
    }
    *out = sc;
    return 0;
}

void
cs_statcache_close(cs_statcache *sc)
{
    if (!sc)
        return;
    if (sc->own_txn)
        mdb_txn_abort(sc->own_txn);
    free(sc);
}

static void
sc_key(const char *path, uint8_t *key, size_t *klen)
{
    size_t n = strlen(path);
    if (n <= CS_STATCACHE_MAXPATH) {
        memcpy(key, path, n);
        *klen = n;
        return;
    }
    cs_digest d;
    cs_sha256(path, n, &d);
    key[0] = 0;
    memcpy(key + 1, d.b, 32);
    *klen = 33;
}

static uint64_t
ts_ns(const struct timespec *ts)
{
    return (uint64_t) ts->tv_sec * 1000000000u + (uint64_t) ts->tv_nsec;
}

static void
sc_value(const struct stat *st, const cs_digest *d, uint8_t *v)
{
    cs_be64_put(v, (uint64_t) st->st_dev);
    cs_be64_put(v + 8, (uint64_t) st->st_ino);
    cs_be64_put(v + 16, (uint64_t) st->st_size);
    cs_be64_put(v + 24, ts_ns(&st->st_mtim));
    cs_be64_put(v + 32, ts_ns(&st->st_ctim));
    cs_be32_put(v + 40, st->st_mode);
    memcpy(v + SC_STATLEN, d->b, 32);
}

int
cs_statcache_has_content(cs_statcache *sc, const cs_digest *d, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(sc->db, sc->txn, CS_T_CONTENTS, d->b, 32, &v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    return r < 0 ? r : 1;
}

/* A listing record's key: 0x02 | sc_key(path) */
static void
dir_key(const char *path, uint8_t *key, size_t *klen)
{
    key[0] = 2;
    sc_key(path, key + 1, klen);
    (*klen)++;
}

/* The file (or, with dir, listing) record of path whose value starts with
 * st's fields: 1 (*v set), 0 when there is none or it has another stat, <0. */
static int
sc_lookup(cs_statcache *sc, const char *path, bool dir, const struct stat *st, MDB_val *v,
          cs_error **err)
{
    uint8_t key[CS_STATCACHE_MAXPATH + 2], want[CS_STATCACHE_VLEN];
    size_t klen;
    (dir ? dir_key : sc_key)(path, key, &klen);
    cs_digest zero = { 0 };
    sc_value(st, &zero, want);
    int r = cs_db_get(sc->db, sc->txn, CS_T_STATCACHE, key, klen, v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    if (r < 0)
        return r;
    return v->mv_size >= SC_STATLEN && memcmp(v->mv_data, want, SC_STATLEN) == 0;
}

int
cs_statcache_get(cs_statcache *sc, const char *path, const struct stat *st, cs_digest *content,
                 cs_error **err)
{
    MDB_val v;
    int r = sc_lookup(sc, path, false, st, &v, err);
    if (r <= 0)
        return r;
    if (v.mv_size != CS_STATCACHE_VLEN)
        return 0;
    memcpy(content->b, (const uint8_t *) v.mv_data + SC_STATLEN, 32);
    if (st->st_size == 0)
        memset(content->b, 0, 32);
    /* No lookup of the content: gc drops a record before the content it
     * names (fsck checks), and that lookup was a third of a no-op rebuild
     * of a 10,000-file context. */
    return 1;
}

int
cs_statcache_put(cs_store *s, cs_ingest *ing, const char *path, const struct stat *st,
                 const cs_digest *content, cs_error **err)
{
    uint8_t key[CS_STATCACHE_MAXPATH + 1], val[CS_STATCACHE_VLEN];
    size_t klen;
    sc_key(path, key, &klen);
    sc_value(st, content, val);
    int r = cs_db_put(cs_store_db(s), cs_ingest_txn(ing), CS_T_STATCACHE, key, klen, val,
                      sizeof(val), 0, err);
    return r < 0 ? r : 0;
}

/* ---- summary records ---- */

static void
sum_key(const cs_digest *sel, uint8_t key[33])
{
    key[0] = 1;
    memcpy(key + 1, sel->b, 32);
}

int
cs_statcache_summary_get(cs_statcache *sc, const cs_digest *sel, const cs_digest *state,
                         cs_digest *result, cs_error **err)
{
    uint8_t key[33];
    sum_key(sel, key);
    MDB_val v;
    int r = cs_db_get(sc->db, sc->txn, CS_T_STATCACHE, key, sizeof(key), &v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    if (r < 0)
        return r;
    if (v.mv_size != CS_STATCACHE_SUMLEN || memcmp(v.mv_data, state->b, 32) != 0)
        return 0;
    memcpy(result->b, (const uint8_t *) v.mv_data + 32, 32);
    return 1;
}

int
cs_statcache_summary_put(cs_store *s, cs_ingest *ing, const cs_digest *sel, const cs_digest *state,
                         const cs_digest *result, cs_error **err)
{
    uint8_t key[33], val[CS_STATCACHE_SUMLEN];
    sum_key(sel, key);
    memcpy(val, state->b, 32);
    memcpy(val + 32, result->b, 32);
    int r = cs_db_put(cs_store_db(s), cs_ingest_txn(ing), CS_T_STATCACHE, key, sizeof(key), val,
                      sizeof(val), 0, err);
    return r < 0 ? r : 0;
}

/* ---- listing records ---- */

int
cs_statcache_dir_get(cs_statcache *sc, const char *path, const struct stat *st, const char **names,
                     size_t *len, size_t *n, cs_error **err)
{
    MDB_val v;
    int r = sc_lookup(sc, path, true, st, &v, err);
    if (r <= 0)
        return r;
    const uint8_t *p = v.mv_data;
    if (v.mv_size < SC_STATLEN + 4)
        return 0;
    size_t cnt = cs_be32_get(p + SC_STATLEN), off = SC_STATLEN + 4;
    for (size_t i = 0; i < cnt; i++) { /* n non-empty names, each terminated */
        const uint8_t *end = off < v.mv_size ? memchr(p + off, 0, v.mv_size - off) : NULL;
        if (!end || end == p + off)
            return 0;
        off = (size_t) (end - p) + 1;
    }
    if (v.mv_size - off > 1 || (v.mv_size > off && p[off]))
        return 0;
    *names = (const char *) p + SC_STATLEN + 4;
    *len = off - (SC_STATLEN + 4);
    *n = cnt;
    return 1;
}

int
cs_statcache_dir_put(cs_store *s, cs_ingest *ing, const char *path, const struct stat *st,
                     const char *names, size_t len, size_t n, cs_error **err)
{
    uint8_t key[CS_STATCACHE_MAXPATH + 2];
    size_t klen, vlen = SC_STATLEN + 4 + len;
    dir_key(path, key, &klen);
    if (vlen == CS_STATCACHE_VLEN || vlen == CS_STATCACHE_SUMLEN)
        vlen++; /* never read as a file record or a summary */
    cs_autofree uint8_t *val = cs_xcalloc(1, vlen > CS_STATCACHE_VLEN ? vlen : CS_STATCACHE_VLEN);
    cs_digest zero = { 0 };
    sc_value(st, &zero, val);
    cs_be32_put(val + SC_STATLEN, (uint32_t) n);
    memcpy(val + SC_STATLEN + 4, names, len);
    int r =
        cs_db_put(cs_store_db(s), cs_ingest_txn(ing), CS_T_STATCACHE, key, klen, val, vlen, 0, err);
    return r < 0 ? r : 0;
}

bool
cs_statcache_record_content(const void *v, size_t len, cs_digest *content)
{
    if (len != CS_STATCACHE_VLEN)
        return false;
    memcpy(content->b, (const uint8_t *) v + SC_STATLEN, 32);
    return true;
}
