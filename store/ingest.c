/* ingest.c - the ingest pipeline: worker threads, chunking, the pending-file
 * queue, the one write transaction and its commit. ingest_tar.c and
 * ingest_dir.c feed it files (see ingest_int.h).
 *
 * Threads: the caller's thread parses (libarchive), cuts chunks (FastCDC),
 * hashes whole files and does every LMDB put in the one write transaction;
 * a feeder thread reads and decompresses ahead (feeder.c); worker threads
 * hash and zstd-compress chunks. Chunks travel through a ring of slots and
 * are put in submission order, so contents come out in file order.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <zstd.h>
#include "ingest_int.h"

#define ZSTD_LEVEL 1
#define PQ_CAP     4096

/* ---- workers ---- */

static void *
worker(void *arg)
{
    cs_ingest *ing = arg;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    MDB_txn *rtxn = NULL;
    if (!cctx)
        abort();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
    pthread_mutex_lock(&ing->mu);
    uint64_t gen = ing->gen;
    pthread_mutex_unlock(&ing->mu);
    if (mdb_txn_begin(cs_db_env(ing->db), NULL, MDB_RDONLY, &rtxn))
        rtxn = NULL; /* then every chunk is compressed and the put decides */
    for (;;) {
        pthread_mutex_lock(&ing->mu);
        while (!ing->stop && ing->next_work == ing->head)
            pthread_cond_wait(&ing->cv_work, &ing->mu);
        if (ing->next_work == ing->head) {
            pthread_mutex_unlock(&ing->mu);
            break;
        }
        slot *sl = &ing->ring[ing->next_work++ % NSLOTS];
        bool renew = gen != ing->gen;
        gen = ing->gen;
        pthread_mutex_unlock(&ing->mu);
        if (renew && rtxn) {
            /* A reset began a new write txn (and a gc may have swept since
             * the old snapshot): look up in a snapshot no older than it. */
            mdb_txn_reset(rtxn);
            if (mdb_txn_renew(rtxn)) {
                mdb_txn_abort(rtxn);
                rtxn = NULL;
            }
        }

        cs_sha256(sl->src, sl->len, &sl->d);
        /* A failed look-up only costs a compression: the put decides. */
        cs_error *tmp = NULL;
        sl->exists = rtxn && cs_chunk_has(ing->db, rtxn, &sl->d, &tmp) == 1;
        cs_error_clear(&tmp);
        if (!sl->exists) {
            size_t n =
                ZSTD_compress2(cctx, sl->out, ZSTD_compressBound(CS_CHUNK_MAX), sl->src, sl->len);
            if (!ZSTD_isError(n) && n < sl->len) {
                sl->codec = CS_CODEC_ZSTD;
                sl->outlen = n;
            } else {
                sl->codec = CS_CODEC_RAW; /* zstd did not shrink it */
                sl->outlen = 0;
            }
        }
        pthread_mutex_lock(&ing->mu);
        sl->state = SLOT_DONE;
        pthread_cond_broadcast(&ing->cv_done);
        pthread_mutex_unlock(&ing->mu);
    }
    if (rtxn)
        mdb_txn_abort(rtxn);
    ZSTD_freeCCtx(cctx);
    return NULL;
}

/* ---- pending files ---- */

static int
finish_file(cs_ingest *ing, pending *pf, cs_error **err)
{
    if (pf->size == 0) {
        free(pf->refs);
        pf->refs = NULL;
        return 0; /* an empty file has no content record */
    }
    cs_digest d = pf->single ? pf->refs[0].d : pf->digest;
    int r = cs_content_put(ing->db, ing->txn, &d, pf->size, pf->refs, pf->n, err);
    if (r < 0)
        return r;
    if (pf->dout)
        *pf->dout = d;
    if (pf->tree) {
        cs_entry *e = &pf->tree->e[pf->idx];
        e->content = d;
        e->has_content = true;
    }
    if (pf->ts) {
        pf->ts->m[pf->ts_idx].content = d;
        pf->ts->m[pf->ts_idx].has_content = true;
    }
    free(pf->refs);
    pf->refs = NULL;
    return 0;
}

static int
finish_ready_files(cs_ingest *ing, cs_error **err)
{
    while (ing->pq_head < ing->pq_tail) {
        pending *pf = &ing->pq[ing->pq_head % ing->pq_cap];
        if (!pf->ended || pf->outstanding)
            break;
        int r = finish_file(ing, pf, err);
        if (r < 0)
            return r;
        ing->pq_head++;
    }
    return 0;
}

/* Puts the oldest submitted chunk once a worker is done with it. */
static int
drain_one(cs_ingest *ing, cs_error **err)
{
    slot *sl = &ing->ring[ing->tail % NSLOTS];
    pthread_mutex_lock(&ing->mu);
    while (sl->state != SLOT_DONE)
        pthread_cond_wait(&ing->cv_done, &ing->mu);
    pthread_mutex_unlock(&ing->mu);
    if (!sl->exists) {
        const void *data = sl->codec == CS_CODEC_ZSTD ? sl->out : sl->src;
        size_t n = sl->codec == CS_CODEC_ZSTD ? sl->outlen : sl->len;
        int r = cs_chunk_put(ing->db, ing->txn, &sl->d, sl->codec, sl->len, data, n, err);
        if (r < 0)
            return r;
        if (r == 1) {
            ing->stats.new_chunks++;
            ing->stats.new_bytes += n + 5;
        }
    }
    /* Here, not in the worker: a small ingest's one worker is its
     * bottleneck (zstd), this thread waits for it; the copy took 1.7-1.9 ms
     * of the ingest's wall time there, 0.6-0.7 ms here (bench_rawcache). */
    cs_rawcache_batch_offer(ing->raw, &sl->d, sl->src, sl->len);
    pending *pf = &ing->pq[sl->file % ing->pq_cap];
    if (pf->n == pf->cap) {
        pf->cap = pf->cap ? pf->cap * 2 : 4;
        pf->refs = cs_xrealloc(pf->refs, pf->cap * sizeof(cs_chunk_ref));
    }
    pf->refs[pf->n].d = sl->d;
    pf->refs[pf->n].len = sl->len;
    pf->n++;
    pf->outstanding--;
    sl->state = SLOT_FREE;
    ing->freebufs[ing->nfree++] = sl->buf;
    ing->tail++;
    return finish_ready_files(ing, err);
}

/* Whether the oldest submitted chunk is done (its put would not wait). */
static bool
oldest_done(cs_ingest *ing)
{
    if (ing->tail == ing->head)
        return false;
    pthread_mutex_lock(&ing->mu);
    bool done = ing->ring[ing->tail % NSLOTS].state == SLOT_DONE;
    pthread_mutex_unlock(&ing->mu);
    return done;
}

int
ingest_drain_all(cs_ingest *ing, cs_error **err)
{
    while (ing->tail < ing->head) {
        int r = drain_one(ing, err);
        if (r < 0)
            return r;
    }
    return finish_ready_files(ing, err);
}

/* Starts a worker when there is none yet, or when submitted chunks wait
 * for one (up to maxthreads): an ingest of a few small files starts one
 * thread, a big one ramps up to the full pool within its first chunks. */
static int
maybe_start_worker(cs_ingest *ing, cs_error **err)
{
    if (ing->nthreads == ing->maxthreads)
        return 0;
    pthread_mutex_lock(&ing->mu);
    bool backlog = ing->head != ing->next_work;
    pthread_mutex_unlock(&ing->mu);
    if (ing->nthreads && !backlog)
        return 0;
    int rc = pthread_create(&ing->threads[ing->nthreads], NULL, worker, ing);
    if (rc && !ing->nthreads)
        return cs_err(err, CS_EIO, rc, "start worker thread");
    if (!rc)
        ing->nthreads++;
    return 0; /* fewer workers than wanted: slower, not wrong */
}

/* Hands a chunk to the workers: a copy of p, or p itself when stable. */
static int
submit(cs_ingest *ing, const uint8_t *p, uint32_t n, bool stable, cs_error **err)
{
    /* what is done goes in now, freeing its buffers; a full ring waits */
    while (ing->head - ing->tail == NSLOTS || oldest_done(ing)) {
        int r = drain_one(ing, err);
        if (r < 0)
            return r;
    }
    int r = maybe_start_worker(ing, err);
    if (r < 0)
        return r;
    slot *sl = &ing->ring[ing->head % NSLOTS];
    sl->buf = ing->freebufs[--ing->nfree];
    sl->in = ing->bufs[sl->buf].in;
    sl->out = ing->bufs[sl->buf].out;
    if (!stable)
        memcpy(sl->in, p, n);
    sl->src = stable ? p : sl->in;
    sl->len = n;
    sl->file = ing->cur;
    sl->state = SLOT_READY;
    ing->pq[ing->cur % ing->pq_cap].outstanding++;
    pthread_mutex_lock(&ing->mu);
    ing->head++;
    pthread_cond_signal(&ing->cv_work);
    pthread_mutex_unlock(&ing->mu);
    return 0;
}

/* ---- the current file ---- */

int
ingest_file_begin(cs_ingest *ing, cs_tree *tree, size_t idx, cs_digest *dout, cs_error **err)
{
    /* Grow the queue when full: only finished files may be dropped, so
     * drain first and then make room. */
    if (ing->pq_tail - ing->pq_head == ing->pq_cap) {
        int r = ingest_drain_all(ing, err);
        if (r < 0)
            return r;
    }
    if (ing->pq_tail - ing->pq_head == ing->pq_cap) {
        /* still full: everything is finished, so the queue is empty */
        ing->pq_head = ing->pq_tail;
    }
    ing->cur = ing->pq_tail++;
    pending *pf = &ing->pq[ing->cur % ing->pq_cap];
    memset(pf, 0, sizeof(*pf));
    pf->tree = tree;
    pf->idx = idx;
    pf->dout = dout;
    ing->cur_open = true;
    ing->cur_chunks = 0;
    ing->pend.len = 0;
    ing->pend_off = 0;
    return 0;
}

static int
emit_chunk(cs_ingest *ing, size_t cut, bool whole_file, cs_error **err)
{
    const uint8_t *p = ing->pend.data + ing->pend_off;
    if (!whole_file)
        cs_sha256_update(ing->filesha, p, cut);
    ing->cur_chunks++;
    ing->pend_off += cut;
    return submit(ing, p, (uint32_t) cut, false, err);
}

/* Room for more bytes in pend: what the chunker has not cut moves to the
 * front once less than CS_CHUNK_MAX of it is left, so at least CS_CHUNK_MAX
 * bytes are always ahead of the chunker. */
static size_t
pend_room(cs_ingest *ing)
{
    if (ing->pend_off && ing->pend.len - ing->pend_off < CS_CHUNK_MAX) {
        memmove(ing->pend.data, ing->pend.data + ing->pend_off, ing->pend.len - ing->pend_off);
        ing->pend.len -= ing->pend_off;
        ing->pend_off = 0;
    }
    cs_buf_reserve(&ing->pend, 2 * CS_CHUNK_MAX - ing->pend.len);
    return 2 * CS_CHUNK_MAX - ing->pend.len;
}

/* n more bytes in pend (appended or read there): counted, and every cut
 * with CS_CHUNK_MAX bytes or more after it made. */
static int
pend_added(cs_ingest *ing, size_t n, cs_error **err)
{
    ing->pq[ing->cur % ing->pq_cap].size += n;
    ing->stats.bytes += n;
    while (ing->pend.len - ing->pend_off >= CS_CHUNK_MAX) {
        size_t cut =
            cs_chunker_next(ing->pend.data + ing->pend_off, ing->pend.len - ing->pend_off, false);
        int r = emit_chunk(ing, cut, false, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
ingest_file_data(cs_ingest *ing, const void *p, size_t n, cs_error **err)
{
    while (n) {
        size_t room = pend_room(ing);
        size_t k = n < room ? n : room;
        cs_buf_append(&ing->pend, p, k);
        p = (const uint8_t *) p + k;
        n -= k;
        int r = pend_added(ing, k, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
ingest_file_data_stable(cs_ingest *ing, const void *p, size_t n, bool last, cs_error **err)
{
    if (ing->pend.len > ing->pend_off) /* bytes before these wait in pend */
        return ingest_file_data(ing, p, n, err);
    pending *pf = ingest_current(ing);
    const uint8_t *b = p;
    size_t off = 0;
    /* The cuts ingest_file_data and ingest_file_end would make: a cut found
     * in CS_CHUNK_MAX bytes or more is final, and so is any at the end. */
    while (n - off >= CS_CHUNK_MAX || (last && off < n)) {
        size_t left = n - off;
        size_t cut = cs_chunker_next(b + off, left, last);
        bool whole = last && ing->cur_chunks == 0 && cut == left;
        pf->single = whole;
        if (!whole)
            cs_sha256_update(ing->filesha, b + off, cut);
        ing->cur_chunks++;
        pf->size += cut;
        ing->stats.bytes += cut;
        int r = submit(ing, b + off, (uint32_t) cut, true, err);
        if (r < 0)
            return r;
        off += cut;
    }
    return off < n ? ingest_file_data(ing, b + off, n - off, err) : 0;
}

int
ingest_file_end(cs_ingest *ing, cs_error **err)
{
    pending *pf = &ing->pq[ing->cur % ing->pq_cap];
    while (ing->pend.len > ing->pend_off) {
        size_t left = ing->pend.len - ing->pend_off;
        size_t cut = cs_chunker_next(ing->pend.data + ing->pend_off, left, true);
        /* A file that is one chunk has the chunk's digest: hash it once. */
        bool whole = ing->cur_chunks == 0 && cut == left;
        pf->single = whole;
        int r = emit_chunk(ing, cut, whole, err);
        if (r < 0)
            return r;
    }
    if (!pf->single)
        cs_sha256_final(ing->filesha, &pf->digest);
    pf->ended = true;
    ing->cur_open = false;
    ing->stats.files++;
    if (pf->size == 0) {
        /* Nothing to store: an empty file has no content record. */
        if (pf->dout)
            memset(pf->dout, 0, sizeof(*pf->dout));
    }
    return finish_ready_files(ing, err);
}

/* ---- lifecycle ---- */

/* A slot's buffers: a chunk in, its compressed bytes out. */
static size_t
slot_in_bytes(void)
{
    return cs_page_round(CS_CHUNK_MAX);
}

static size_t
slot_out_bytes(void)
{
    return cs_page_round(ZSTD_compressBound(CS_CHUNK_MAX));
}

/* One freed slab kept for the process's next ingest (a build ingests a
 * layer per COPY and RUN): its touched pages stay, not faulted in again. */
static pthread_mutex_t spare_mu = PTHREAD_MUTEX_INITIALIZER;
static void *spare;

static size_t
pq_bytes(void)
{
    return cs_page_round(PQ_CAP * sizeof(pending));
}

/* The slab: NSLOTS pairs of in and out buffers and the queue. */
static size_t
slab_bytes(void)
{
    return NSLOTS * (slot_in_bytes() + slot_out_bytes()) + pq_bytes();
}

void
cs_ingest_drop_spare(void)
{
    pthread_mutex_lock(&spare_mu);
    void *m = cs_steal(&spare);
    pthread_mutex_unlock(&spare_mu);
    if (m)
        munmap(m, slab_bytes());
}

/* Maps the slab (or takes the spare) and points the slots and the queue
 * into it (page-aligned parts: a small ingest faults in only the pages it
 * uses). */
static int
slab_map(cs_ingest *ing, cs_error **err)
{
    size_t in = slot_in_bytes(), out = slot_out_bytes();
    ing->slab_len = slab_bytes();
    pthread_mutex_lock(&spare_mu);
    void *m = cs_steal(&spare);
    pthread_mutex_unlock(&spare_mu);
    if (!m)
        m = mmap(NULL, ing->slab_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        ing->slab = NULL;
        return cs_err(err, cs_sys_code(errno), errno, "map the ingest's buffers");
    }
    /* Not in a forked child (a RUN's reaper): the pages written after a fork
     * would fault again, copy-on-write, while the child lives. */
    madvise(m, ing->slab_len, MADV_DONTFORK);
    uint8_t *p = ing->slab = m;
    for (int i = 0; i < NSLOTS; i++, p += in + out) {
        ing->bufs[i].in = p;
        ing->bufs[i].out = p + in;
        ing->freebufs[i] = NSLOTS - 1 - i; /* bufs[0] on top */
    }
    ing->nfree = NSLOTS;
    ing->pq_cap = PQ_CAP;
    ing->pq = (pending *) p; /* zeroed, as a fresh anonymous mapping is */
    return 0;
}

int
cs_ingest_begin(cs_store *s, cs_ingest **out, cs_error **err)
{
    cs_ingest *ing = cs_xcalloc(1, sizeof(*ing));
    ing->s = s;
    ing->db = cs_store_db(s);
    pthread_mutex_init(&ing->mu, NULL);
    pthread_cond_init(&ing->cv_work, NULL);
    pthread_cond_init(&ing->cv_done, NULL);
    cs_buf_init(&ing->pend);
    ing->filesha = cs_sha256_new();
    ing->raw = cs_rawcache_batch_new(CS_RAWCACHE_INGEST_CAP);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    ing->maxthreads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int) ncpu;
    ing->threads = cs_xcalloc((size_t) ing->maxthreads, sizeof(pthread_t));
    int r = slab_map(ing, err);
    if (r >= 0)
        r = cs_db_begin(ing->db, MDB_NOMETASYNC, &ing->txn, err);
    if (r < 0) {
        cs_ingest_free(ing);
        return r;
    }
    *out = ing;
    return 0;
}

static void
stop_workers(cs_ingest *ing)
{
    pthread_mutex_lock(&ing->mu);
    ing->stop = true;
    pthread_cond_broadcast(&ing->cv_work);
    pthread_mutex_unlock(&ing->mu);
    for (int i = 0; i < ing->nthreads; i++)
        pthread_join(ing->threads[i], NULL);
    ing->nthreads = 0;
}

void
cs_ingest_free(cs_ingest *ing)
{
    if (!ing)
        return;
    stop_workers(ing);
    if (ing->txn && !ing->committed)
        cs_db_abort(ing->txn);
    for (size_t i = ing->pq_head; ing->pq && i < ing->pq_tail; i++)
        free(ing->pq[i % ing->pq_cap].refs);
    if (ing->slab) {
        /* the queue must read as zeroes again, as a fresh mapping does */
        madvise(ing->pq, pq_bytes(), MADV_DONTNEED);
        pthread_mutex_lock(&spare_mu);
        if (!spare)
            spare = cs_steal(&ing->slab);
        pthread_mutex_unlock(&spare_mu);
        if (ing->slab)
            munmap(ing->slab, ing->slab_len);
    }
    free(ing->threads);
    cs_buf_release(&ing->pend);
    cs_sha256_free(ing->filesha);
    cs_rawcache_batch_free(ing->raw);
    pthread_mutex_destroy(&ing->mu);
    pthread_cond_destroy(&ing->cv_work);
    pthread_cond_destroy(&ing->cv_done);
    free(ing);
}

/* Waits for the workers to finish every submitted chunk, then drops them
 * unput, with every pending file: the ring and the queue are empty after. */
void
ingest_discard_pending(cs_ingest *ing)
{
    pthread_mutex_lock(&ing->mu);
    for (uint64_t i = ing->tail; i < ing->head; i++) {
        slot *sl = &ing->ring[i % NSLOTS];
        while (sl->state != SLOT_DONE)
            pthread_cond_wait(&ing->cv_done, &ing->mu);
        sl->state = SLOT_FREE;
        ing->freebufs[ing->nfree++] = sl->buf;
    }
    ing->tail = ing->head;
    pthread_mutex_unlock(&ing->mu);
    for (size_t i = ing->pq_head; i < ing->pq_tail; i++)
        free(ing->pq[i % ing->pq_cap].refs);
    ing->pq_head = ing->pq_tail = ing->cur = 0;
    ing->cur_open = false;
    ing->cur_chunks = 0;
    ing->pend.len = 0;
    ing->pend_off = 0;
    cs_digest unused;
    cs_sha256_final(ing->filesha, &unused); /* resets the file hash */
}

int
cs_ingest_reset(cs_ingest *ing, cs_error **err)
{
    if (ing->committed)
        return cs_err(err, CS_EINVAL, 0, "ingest already committed: it can only be freed");
    ingest_discard_pending(ing);
    cs_rawcache_batch_clear(ing->raw);
    cs_db_abort(ing->txn);
    ing->txn = NULL;
    memset(&ing->stats, 0, sizeof(ing->stats));
    int r = cs_db_begin(ing->db, MDB_NOMETASYNC, &ing->txn, err);
    ing->failed = r < 0; /* without a txn it can only be freed (or reset again) */
    if (r < 0)
        return r;
    pthread_mutex_lock(&ing->mu);
    ing->gen++;
    pthread_mutex_unlock(&ing->mu);
    return 0;
}

int
ingest_refuse_if_failed(cs_ingest *ing, cs_error **err)
{
    if (ing->failed)
        return cs_err(err, CS_EINVAL, 0, "ingest already failed: it can only be reset or freed");
    return 0;
}

int
cs_ingest_commit(cs_ingest *ing, cs_error **err)
{
    int r = ingest_refuse_if_failed(ing, err);
    if (r < 0)
        return r;
    r = ingest_drain_all(ing, err);
    if (r < 0)
        return r;
    stop_workers(ing);
    ing->committed = true; /* the txn is gone whether commit succeeds or not */
    r = cs_db_commit(ing->txn, err);
    if (r == 0)
        cs_rawcache_publish(ing->raw, ing->db);
    return r;
}

MDB_txn *
cs_ingest_txn(cs_ingest *ing)
{
    return ing->txn;
}

cs_store *
cs_ingest_store(cs_ingest *ing)
{
    return ing->s;
}

const cs_ingest_stats *
cs_ingest_stats_get(const cs_ingest *ing)
{
    return &ing->stats;
}

static int ingest_fd(cs_ingest *ing, int fd, cs_digest *content, uint64_t *size, cs_error **err);

int
cs_ingest_fd(cs_ingest *ing, int fd, cs_digest *content, uint64_t *size, cs_error **err)
{
    int r = ingest_refuse_if_failed(ing, err);
    if (r < 0)
        return r;
    r = ingest_fd(ing, fd, content, size, err);
    ing->failed = r < 0;
    return r;
}

/* Reads straight into pend, the chunker's window: no read buffer of its
 * own, one copy less. */
int
ingest_read_fd(cs_ingest *ing, int fd, const char *what, uint64_t *total, cs_error **err)
{
    *total = 0;
    for (;;) {
        size_t room = pend_room(ing);
        ssize_t n = read(fd, ing->pend.data + ing->pend.len, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cs_err(err, CS_EIO, errno, "%s", what);
        if (n == 0)
            return 0;
        *total += (uint64_t) n;
        ing->pend.len += (size_t) n;
        int r = pend_added(ing, (size_t) n, err);
        if (r < 0)
            return r;
    }
}

pending *
ingest_current(cs_ingest *ing)
{
    return &ing->pq[ing->cur % ing->pq_cap];
}

static int
ingest_fd(cs_ingest *ing, int fd, cs_digest *content, uint64_t *size, cs_error **err)
{
    int r = ingest_file_begin(ing, NULL, 0, content, err);
    uint64_t total = 0;
    if (r >= 0)
        r = ingest_read_fd(ing, fd, "read", &total, err);
    if (r >= 0)
        r = ingest_file_end(ing, err);
    if (r < 0)
        return r;
    *size = total;
    /* The caller wants the digest now: flush the pipeline. */
    return ingest_drain_all(ing, err);
}

/* ---- layer checks ---- */

/* Entries must not sit below a symlink of the same layer (that would write
 * through the link), and hardlinks must point at a file of the layer. */
int
ingest_check_layer(cs_tree *t, const char *name, cs_error **err)
{
    for (size_t i = 0; i < t->n; i++) {
        cs_entry *e = &t->e[i];
        const char *path = e->path;
        for (const char *sl = strchr(path, '/'); sl; sl = strchr(sl + 1, '/')) {
            /* Look the ancestor up by a copy: the entry itself must stay intact
             * for the binary search. */
            cs_autofree char *anc = cs_xstrndup(path, (size_t) (sl - path));
            const cs_entry *a = cs_tree_find(t, anc);
            if (a && a->type == CS_E_SYMLINK)
                return cs_err(err, CS_EINVAL, 0, "%s: '%s' is written through symlink '%.*s'", name,
                              path, (int) (sl - path), path);
            if (a && a->type != CS_E_DIR)
                return cs_err(err, CS_EINVAL, 0, "%s: '%s' is below non-directory '%.*s'", name,
                              path, (int) (sl - path), path);
        }
    }
    for (size_t i = 0; i < t->n; i++) {
        cs_entry *e = &t->e[i];
        if (e->type != CS_E_HARDLINK)
            continue;
        const cs_entry *target = cs_tree_find(t, e->link);
        for (size_t hops = 0; target && target->type == CS_E_HARDLINK && hops < t->n; hops++)
            target = cs_tree_find(t, target->link);
        if (!target || target->type != CS_E_FILE)
            return cs_err(err, CS_EINVAL, 0,
                          "%s: hardlink '%s' points at '%s', which is not a file of the layer",
                          name, e->path, e->link);
        e->size = target->size;
        e->has_content = target->has_content;
        e->content = target->content;
    }
    return 0;
}
