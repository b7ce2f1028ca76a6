/* treeview_read.c - the bytes of a view's files (see cstore/treeview.h):
 * one read transaction per thread, reset after each request and renewed by
 * the next, and a cache of decompressed chunks shared by the threads (the
 * kernel reads a file in pieces smaller than a chunk, and keeps what it read
 * in its page cache, so a few dozen chunks are enough). */
#include <errno.h>
#include <string.h>
#include "cstore/content.h"
#include "treeview_int.h"

static void
txn_destroy(void *p)
{
    mdb_txn_abort(p);
}

void
tv_read_init(cs_treeview *tv, size_t cache_chunks)
{
    pthread_key_create(&tv->txn_key, txn_destroy);
    pthread_mutex_init(&tv->cache_lock, NULL);
    tv->nslots = cache_chunks ? cache_chunks : 64;
    tv->slots = cs_xcalloc(tv->nslots, sizeof(tv_slot));
}

void
tv_read_release(cs_treeview *tv)
{
    MDB_txn *txn = pthread_getspecific(tv->txn_key); /* the calling thread's */
    if (txn)
        mdb_txn_abort(txn);
    pthread_key_delete(tv->txn_key);
    for (size_t i = 0; i < tv->nslots; i++)
        free(tv->slots[i].data);
    free(tv->slots);
    pthread_mutex_destroy(&tv->cache_lock);
}

/* The thread's read transaction, renewed (begun on its first use). */
static int
thread_txn(cs_treeview *tv, MDB_txn **out, cs_error **err)
{
    MDB_txn *txn = pthread_getspecific(tv->txn_key);
    if (txn) {
        int rc = mdb_txn_renew(txn);
        if (!rc) {
            *out = txn;
            return 0;
        }
        mdb_txn_abort(txn);
        pthread_setspecific(tv->txn_key, NULL);
        return cs_db_err(err, rc, "renew read transaction");
    }
    int rc = cs_db_begin(tv->db, MDB_RDONLY, &txn, err);
    if (rc < 0)
        return rc;
    pthread_setspecific(tv->txn_key, txn);
    *out = txn;
    return 0;
}

/* Copies n bytes at off of cached chunk d into dst: true on a hit. */
static bool
cache_copy(cs_treeview *tv, const cs_digest *d, uint32_t off, void *dst, size_t n)
{
    bool hit = false;
    pthread_mutex_lock(&tv->cache_lock);
    for (size_t i = 0; i < tv->nslots; i++) {
        tv_slot *s = &tv->slots[i];
        if (s->used && cs_digest_eq(&s->d, d) && (size_t) off + n <= s->len) {
            memcpy(dst, s->data + off, n);
            s->used = ++tv->tick;
            hit = true;
            break;
        }
    }
    pthread_mutex_unlock(&tv->cache_lock);
    return hit;
}

/* Keeps chunk d (taking b's bytes) in place of the least recently used. */
static void
cache_put(cs_treeview *tv, const cs_digest *d, cs_buf *b)
{
    pthread_mutex_lock(&tv->cache_lock);
    tv_slot *lru = &tv->slots[0];
    for (size_t i = 0; i < tv->nslots; i++) {
        if (tv->slots[i].used && cs_digest_eq(&tv->slots[i].d, d)) {
            lru = NULL; /* another thread put it meanwhile */
            break;
        }
        if (tv->slots[i].used < lru->used)
            lru = &tv->slots[i];
    }
    if (lru) {
        free(lru->data);
        lru->d = *d;
        lru->data = cs_steal(&b->data);
        lru->len = (uint32_t) b->len;
        lru->used = ++tv->tick;
    }
    pthread_mutex_unlock(&tv->cache_lock);
    cs_buf_release(b);
}

/* n bytes at off of chunk ref into dst, from the cache or decompressed. */
static int
chunk_copy(cs_treeview *tv, MDB_txn *txn, const cs_chunk_ref *ref, uint32_t off, void *dst,
           size_t n, cs_error **err)
{
    if (cache_copy(tv, &ref->d, off, dst, n)) {
        atomic_fetch_add(&tv->hits, 1);
        return 0;
    }
    atomic_fetch_add(&tv->misses, 1);
    cs_buf b;
    cs_buf_init(&b);
    int rc = cs_chunk_read(tv->db, txn, &ref->d, false, &b, err);
    if (rc == 0 && (b.len != ref->len || (size_t) off + n > b.len))
        rc = cs_err(err, CS_ECORRUPT, 0, "chunk length mismatch");
    if (rc < 0) {
        cs_buf_release(&b);
        return rc;
    }
    memcpy(dst, b.data + off, n);
    cache_put(tv, &ref->d, &b);
    return 0;
}

/* Copies [off, off + size) of content c into buf, chunk by chunk. */
static int
content_copy(cs_treeview *tv, MDB_txn *txn, const cs_digest *c, uint64_t off, size_t size,
             uint8_t *buf, cs_error **err)
{
    uint64_t total;
    uint32_t n;
    cs_autofree cs_chunk_ref *refs = NULL;
    int rc = cs_content_get(tv->db, txn, c, &total, &refs, &n, err);
    uint64_t pos = 0, end = off + size;
    for (uint32_t i = 0; rc == 0 && i < n && pos < end; pos += refs[i++].len) {
        if (pos + refs[i].len <= off)
            continue;
        uint64_t from = off > pos ? off - pos : 0;
        uint64_t to = end - pos < refs[i].len ? end - pos : refs[i].len;
        rc = chunk_copy(tv, txn, &refs[i], (uint32_t) from, buf + (pos + from - off), to - from,
                        err);
    }
    if (rc == 0 && pos < end)
        rc = cs_err(err, CS_ECORRUPT, 0, "content shorter than its entry");
    return rc;
}

ssize_t
cs_treeview_read(cs_treeview *tv, uint64_t ino, uint64_t off, size_t size, void *buf)
{
    uint32_t i;
    tv_view *v = tv_find(tv, ino, &i);
    if (!v)
        return ino == CS_TV_ROOT ? -EISDIR : -ENOENT;
    const cs_entry *e = &v->t->e[v->real[i]];
    if (e->type == CS_E_DIR)
        return -EISDIR;
    atomic_fetch_add(&tv->reads, 1);
    if (off >= e->size || !e->has_content)
        return 0;
    if (size > e->size - off)
        size = (size_t) (e->size - off);
    cs_error *err = NULL;
    MDB_txn *txn = NULL;
    int rc = thread_txn(tv, &txn, &err);
    if (rc == 0) {
        rc = content_copy(tv, txn, &e->content, off, size, buf, &err);
        mdb_txn_reset(txn);
    }
    if (rc < 0) {
        cs_store_warn(tv->s, "tree view: read '%s': %s", e->path, err ? err->msg : "failed");
        cs_error_free(err);
        return -EIO;
    }
    return (ssize_t) size;
}

void
cs_treeview_get_stats(cs_treeview *tv, cs_treeview_stats *out)
{
    out->reads = atomic_load(&tv->reads);
    out->chunk_hits = atomic_load(&tv->hits);
    out->chunk_misses = atomic_load(&tv->misses);
}
