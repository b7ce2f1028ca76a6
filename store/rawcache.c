/* rawcache.c - raw bytes of chunks this process just ingested (see
 * cstore/rawcache.h).
 *
 * One process-wide table: 4096 hash chains by the digest's first bytes and
 * one least-recently-used list, under one mutex held only for pointer work
 * (copies happen outside it: a batch's offer copies before it links, a read
 * hands the bytes to its sink with a reference held, not the lock). An
 * entry evicted while a reader holds it is freed by the last reader.
 *
 * Entries (header and bytes) are carved from 2 MiB blocks of their own,
 * aligned and madvise'd for a transparent huge page. Fresh memory is what a
 * copy costs: into malloc'd 4 KiB pages, hello-go's 1.8 MB binary took its
 * ingest 1.45 ms, as much as hashing it, mostly the kernel faulting and
 * clearing page after page (perf: clear_page_erms); into huge pages the
 * ingest's extra CPU time fell from 0.84-1.14 to 0.23-0.48 ms
 * (bench/bench_rawcache.c). A block goes back to the kernel when its last
 * entry is gone (the budget counts the entries' bytes). Blocks are not
 * inherited by a fork (a RUN's reaper): written after it, they would fault
 * again, copy-on-write. */
#include "cstore/rawcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NBUCKETS 4096
#define BLOCK    (2u << 20)

/* A block: this header, then entries. refs: its entries, plus one while a
 * batch carves from it. */
typedef struct block {
    size_t size, used;
    atomic_int refs;
} block;

typedef struct ent {
    block *blk;
    cs_digest d;
    cs_db *db;
    uint32_t len;
    int refs;                /* readers in their sink now */
    bool dead;               /* out of the cache: the last reader frees it */
    struct ent *hnext;       /* hash chain; in a batch, its list */
    struct ent *prev, *next; /* the LRU list, oldest first */
    uint8_t data[];
} ent;

struct cs_rawcache_batch {
    ent *list;
    block *cur;        /* where the next entry is carved */
    size_t bytes, cap; /* bytes: taken so far */
    bool full;         /* went past cap: takes nothing more */
};

static struct {
    pthread_mutex_t mu;
    ent *tab[NBUCKETS];
    ent *oldest, *newest;
    size_t bytes, entries;
    atomic_size_t budget; /* written under the lock; 0: ingests offer nothing */
    atomic_size_t held;   /* entries, read without the lock: an empty cache costs no lock */
    atomic_uint_least64_t hits, misses;
} rc = { .mu = PTHREAD_MUTEX_INITIALIZER, .budget = CS_RAWCACHE_BUDGET };

static size_t
bucket(const cs_digest *d)
{
    return (size_t) cs_be32_get(d->b) % NBUCKETS;
}

/* A block of at least need bytes after its header; NULL when the kernel
 * refuses (the chunk is then not kept). */
static block *
block_new(size_t need)
{
    size_t size = need + sizeof(block) > BLOCK ? cs_page_round(need + sizeof(block)) : BLOCK;
    /* Twice the size, then the unaligned ends cut off: a 2 MiB-aligned
     * range, as a huge page needs. */
    size_t len = size + BLOCK;
    uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uint8_t *a = (uint8_t *) (((uintptr_t) m + BLOCK - 1) & ~((uintptr_t) BLOCK - 1));
    if (a > m)
        munmap(m, (size_t) (a - m));
    if (a + size < m + len)
        munmap(a + size, (size_t) (m + len - (a + size)));
    madvise(a, size, MADV_HUGEPAGE);
    madvise(a, size, MADV_DONTFORK);
    block *b = (block *) a;
    b->size = size;
    b->used = sizeof(block);
    atomic_init(&b->refs, 1);
    return b;
}

static void
block_unref(block *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        munmap(b, b->size);
}

static void
free_ent(ent *e)
{
    block_unref(e->blk);
}

static void
free_list(ent *e)
{
    while (e) {
        ent *next = e->hnext;
        free_ent(e);
        e = next;
    }
}

/* ---- batches ---- */

cs_rawcache_batch *
cs_rawcache_batch_new(size_t cap)
{
    cs_rawcache_batch *b = cs_xcalloc(1, sizeof(*b));
    b->cap = cap;
    return b;
}

/* Room for an entry of n bytes in b's current block (a new one when it is
 * full), or NULL. */
static ent *
carve(cs_rawcache_batch *b, size_t n)
{
    size_t need = (sizeof(ent) + n + 63) & ~(size_t) 63;
    if (!b->cur || b->cur->used + need > b->cur->size) {
        block_unref(b->cur);
        b->cur = block_new(need);
        if (!b->cur)
            return NULL;
    }
    ent *e = (ent *) ((uint8_t *) b->cur + b->cur->used);
    b->cur->used += need;
    atomic_fetch_add(&b->cur->refs, 1);
    memset(e, 0, sizeof(*e));
    e->blk = b->cur;
    return e;
}

void
cs_rawcache_batch_offer(cs_rawcache_batch *b, const cs_digest *d, const void *p, size_t n)
{
    if (b->full || !atomic_load_explicit(&rc.budget, memory_order_relaxed))
        return;
    if (b->bytes + n > b->cap) { /* past the cap: not a small ingest; what it took goes now */
        b->full = true;
        free_list(cs_steal(&b->list));
        block_unref(cs_steal(&b->cur));
        return;
    }
    ent *e = carve(b, n);
    if (!e)
        return;
    b->bytes += n;
    e->d = *d;
    e->len = (uint32_t) n;
    memcpy(e->data, p, n);
    e->hnext = b->list;
    b->list = e;
}

void
cs_rawcache_batch_clear(cs_rawcache_batch *b)
{
    free_list(cs_steal(&b->list));
    block_unref(cs_steal(&b->cur));
    b->bytes = 0;
    b->full = false;
}

void
cs_rawcache_batch_free(cs_rawcache_batch *b)
{
    if (!b)
        return;
    cs_rawcache_batch_clear(b);
    free(b);
}

/* ---- the cache (everything below under rc.mu) ---- */

static ent *
find(cs_db *db, const cs_digest *d)
{
    for (ent *e = rc.tab[bucket(d)]; e; e = e->hnext)
        if (e->db == db && cs_digest_eq(&e->d, d))
            return e;
    return NULL;
}

static void
lru_unlink(ent *e)
{
    *(e->prev ? &e->prev->next : &rc.oldest) = e->next;
    *(e->next ? &e->next->prev : &rc.newest) = e->prev;
    e->prev = e->next = NULL;
}

static void
lru_append(ent *e)
{
    e->prev = rc.newest;
    e->next = NULL;
    *(rc.newest ? &rc.newest->next : &rc.oldest) = e;
    rc.newest = e;
}

static void
drop(ent *e)
{
    ent **pp = &rc.tab[bucket(&e->d)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(e);
    rc.bytes -= e->len;
    rc.entries--;
    atomic_store(&rc.held, rc.entries);
    if (e->refs)
        e->dead = true;
    else
        free_ent(e);
}

static void
evict_to_budget(void)
{
    while (rc.bytes > rc.budget)
        drop(rc.oldest);
}

void
cs_rawcache_publish(cs_rawcache_batch *b, cs_db *db)
{
    ent *l = cs_steal(&b->list);
    b->bytes = 0;
    ent *extra = NULL; /* held already, or over the whole budget */
    pthread_mutex_lock(&rc.mu);
    while (l) {
        ent *e = l;
        l = e->hnext;
        e->db = db;
        if (e->len > rc.budget || find(db, &e->d)) {
            e->hnext = extra;
            extra = e;
            continue;
        }
        ent **head = &rc.tab[bucket(&e->d)];
        e->hnext = *head;
        *head = e;
        lru_append(e);
        rc.bytes += e->len;
        rc.entries++;
    }
    evict_to_budget();
    atomic_store(&rc.held, rc.entries);
    pthread_mutex_unlock(&rc.mu);
    free_list(extra);
}

int
cs_rawcache_read(cs_db *db, const cs_digest *d, uint32_t len, cs_sink_fn sink, void *ctx,
                 cs_error **err)
{
    if (!atomic_load_explicit(&rc.held, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&rc.misses, 1, memory_order_relaxed);
        return 0;
    }
    pthread_mutex_lock(&rc.mu);
    ent *e = find(db, d);
    if (!e || e->len != len) {
        pthread_mutex_unlock(&rc.mu);
        atomic_fetch_add_explicit(&rc.misses, 1, memory_order_relaxed);
        return 0;
    }
    lru_unlink(e);
    lru_append(e);
    e->refs++;
    pthread_mutex_unlock(&rc.mu);
    atomic_fetch_add_explicit(&rc.hits, 1, memory_order_relaxed);
    int r = sink(ctx, e->data, len, err);
    pthread_mutex_lock(&rc.mu);
    bool gone = --e->refs == 0 && e->dead;
    pthread_mutex_unlock(&rc.mu);
    if (gone)
        free_ent(e);
    return r < 0 ? r : 1;
}

void
cs_rawcache_forget(cs_db *db)
{
    if (!atomic_load(&rc.held))
        return;
    pthread_mutex_lock(&rc.mu);
    for (ent *e = rc.oldest, *next; e; e = next) {
        next = e->next;
        if (e->db == db)
            drop(e);
    }
    pthread_mutex_unlock(&rc.mu);
}

size_t
cs_rawcache_set_budget(size_t bytes)
{
    pthread_mutex_lock(&rc.mu);
    size_t old = rc.budget;
    rc.budget = bytes;
    evict_to_budget();
    pthread_mutex_unlock(&rc.mu);
    return old;
}

void
cs_rawcache_stats_get(cs_rawcache_stats *out)
{
    pthread_mutex_lock(&rc.mu);
    out->entries = rc.entries;
    out->bytes = rc.bytes;
    pthread_mutex_unlock(&rc.mu);
    out->hits = atomic_load(&rc.hits);
    out->misses = atomic_load(&rc.misses);
}
