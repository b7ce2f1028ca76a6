/* ingest.c - tar streams and directories into chunks, contents and trees.
 *
 * Threads: the caller's thread parses (libarchive), cuts chunks (FastCDC),
 * hashes whole files and does every LMDB put in the one write transaction;
 * a feeder thread reads and decompresses ahead (feeder.c); worker threads
 * hash and zstd-compress chunks. Chunks travel through a ring of slots and
 * are put in submission order, so contents come out in file order.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <zstd.h>
#include "chunker.h"
#include "cstore/content.h"
#include "cstore/ingest.h"
#include "cstore/tarsplit.h"
#include "feeder.h"

#define NSLOTS     64
#define ZSTD_LEVEL 1

enum { SLOT_FREE, SLOT_READY, SLOT_DONE };

typedef struct slot {
    uint8_t *in;
    uint32_t len;
    int state;
    cs_digest d;
    uint8_t *out;
    size_t outlen;
    uint8_t codec;
    bool exists; /* already in the committed store: no put needed */
    size_t file; /* index into the pending-file queue */
} slot;

/* A file whose chunks are in flight; finished in order once all are put. */
typedef struct pending {
    cs_tree *tree; /* entry idx of tree gets the digest, or ... */
    size_t idx;
    cs_digest *dout; /* ... *dout does */
    uint64_t size;
    cs_chunk_ref *refs;
    uint32_t n, cap;
    uint32_t outstanding;
    bool ended, single;
    cs_digest digest; /* whole-file digest when !single */
    cs_tarsplit *ts;  /* when set, member ts_idx of ts gets the digest too */
    size_t ts_idx;
} pending;

struct cs_ingest {
    cs_store *s;
    cs_db *db;
    MDB_txn *txn;
    bool committed;
    cs_ingest_stats stats;

    /* worker pool */
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    slot ring[NSLOTS];
    uint64_t head, next_work, tail;
    bool stop;
    /* Set by the first failure: a half-ingested file may sit in the queue,
     * so the ingest can only be freed after that. */
    bool failed;

    /* pending files: a queue [pq_head, pq_tail) */
    pending *pq;
    size_t pq_head, pq_tail, pq_cap;

    /* current file */
    cs_buf pend;
    size_t pend_off;
    cs_sha256_ctx *filesha;
    bool cur_open;
    size_t cur;
    uint32_t cur_chunks;
};

/* ---- workers ---- */

typedef struct worker_arg {
    cs_ingest *ing;
} worker_arg;

static void *
worker(void *arg)
{
    cs_ingest *ing = arg;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    MDB_txn *rtxn = NULL;
    if (!cctx)
        abort();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
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
        pthread_mutex_unlock(&ing->mu);

        cs_sha256(sl->in, sl->len, &sl->d);
        sl->exists = rtxn && cs_chunk_has(ing->db, rtxn, &sl->d, NULL) == 1;
        if (!sl->exists) {
            size_t n =
                ZSTD_compress2(cctx, sl->out, ZSTD_compressBound(CS_CHUNK_MAX), sl->in, sl->len);
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
        const void *data = sl->codec == CS_CODEC_ZSTD ? sl->out : sl->in;
        size_t n = sl->codec == CS_CODEC_ZSTD ? sl->outlen : sl->len;
        int r = cs_chunk_put(ing->db, ing->txn, &sl->d, sl->codec, sl->len, data, n, err);
        if (r < 0)
            return r;
        if (r == 1) {
            ing->stats.new_chunks++;
            ing->stats.new_bytes += n + 5;
        }
    }
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
    ing->tail++;
    return finish_ready_files(ing, err);
}

static int
drain_all(cs_ingest *ing, cs_error **err)
{
    while (ing->tail < ing->head) {
        int r = drain_one(ing, err);
        if (r < 0)
            return r;
    }
    return finish_ready_files(ing, err);
}

static int
submit(cs_ingest *ing, const uint8_t *p, uint32_t n, cs_error **err)
{
    while (ing->head - ing->tail == NSLOTS) {
        int r = drain_one(ing, err);
        if (r < 0)
            return r;
    }
    slot *sl = &ing->ring[ing->head % NSLOTS];
    memcpy(sl->in, p, n);
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

static int
file_begin(cs_ingest *ing, cs_tree *tree, size_t idx, cs_digest *dout, cs_error **err)
{
    /* Grow the queue when full: only finished files may be dropped, so
     * drain first and then make room. */
    if (ing->pq_tail - ing->pq_head == ing->pq_cap) {
        int r = drain_all(ing, err);
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
    return submit(ing, p, (uint32_t) cut, err);
}

static int
file_data(cs_ingest *ing, const void *p, size_t n, cs_error **err)
{
    pending *pf = &ing->pq[ing->cur % ing->pq_cap];
    pf->size += n;
    ing->stats.bytes += n;
    while (n) {
        /* Keep at least CS_CHUNK_MAX bytes ahead of the chunker. */
        if (ing->pend_off && ing->pend.len - ing->pend_off < CS_CHUNK_MAX) {
            memmove(ing->pend.data, ing->pend.data + ing->pend_off, ing->pend.len - ing->pend_off);
            ing->pend.len -= ing->pend_off;
            ing->pend_off = 0;
        }
        size_t room = 2 * CS_CHUNK_MAX - ing->pend.len;
        size_t k = n < room ? n : room;
        cs_buf_append(&ing->pend, p, k);
        p = (const uint8_t *) p + k;
        n -= k;
        while (ing->pend.len - ing->pend_off >= CS_CHUNK_MAX) {
            size_t cut = cs_chunker_next(ing->pend.data + ing->pend_off,
                                         ing->pend.len - ing->pend_off, false);
            int r = emit_chunk(ing, cut, false, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static int
file_end(cs_ingest *ing, cs_error **err)
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

int
cs_ingest_begin(cs_store *s, cs_ingest **out, cs_error **err)
{
    cs_ingest *ing = cs_xcalloc(1, sizeof(*ing));
    ing->s = s;
    ing->db = cs_store_db(s);
    pthread_mutex_init(&ing->mu, NULL);
    pthread_cond_init(&ing->cv_work, NULL);
    pthread_cond_init(&ing->cv_done, NULL);
    for (int i = 0; i < NSLOTS; i++) {
        ing->ring[i].in = cs_xmalloc(CS_CHUNK_MAX);
        ing->ring[i].out = cs_xmalloc(ZSTD_compressBound(CS_CHUNK_MAX));
    }
    ing->pq_cap = 4096;
    ing->pq = cs_xcalloc(ing->pq_cap, sizeof(pending));
    cs_buf_init(&ing->pend);
    cs_buf_reserve(&ing->pend, 2 * CS_CHUNK_MAX);
    ing->filesha = cs_sha256_new();
    int r = cs_db_begin(ing->db, 0, &ing->txn, err);
    if (r < 0) {
        cs_ingest_free(ing);
        return r;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    ing->nthreads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int) ncpu;
    ing->threads = cs_xcalloc((size_t) ing->nthreads, sizeof(pthread_t));
    for (int i = 0; i < ing->nthreads; i++) {
        int rc = pthread_create(&ing->threads[i], NULL, worker, ing);
        if (rc) {
            ing->nthreads = i;
            cs_ingest_free(ing);
            return cs_err(err, CS_EIO, rc, "start worker thread");
        }
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
        mdb_txn_abort(ing->txn);
    for (size_t i = ing->pq_head; i < ing->pq_tail; i++)
        free(ing->pq[i % ing->pq_cap].refs);
    free(ing->pq);
    for (int i = 0; i < NSLOTS; i++) {
        free(ing->ring[i].in);
        free(ing->ring[i].out);
    }
    free(ing->threads);
    cs_buf_release(&ing->pend);
    cs_sha256_free(ing->filesha);
    pthread_mutex_destroy(&ing->mu);
    pthread_cond_destroy(&ing->cv_work);
    pthread_cond_destroy(&ing->cv_done);
    free(ing);
}

static int
refuse_if_failed(cs_ingest *ing, cs_error **err)
{
    if (ing->failed)
        return cs_err(err, CS_EINVAL, 0, "ingest already failed: it can only be abandoned");
    return 0;
}

int
cs_ingest_commit(cs_ingest *ing, cs_error **err)
{
    if (refuse_if_failed(ing, err) < 0)
        return -CS_EINVAL;
    int r = drain_all(ing, err);
    if (r < 0)
        return r;
    stop_workers(ing);
    ing->committed = true; /* the txn is gone whether commit succeeds or not */
    return cs_db_commit(ing->txn, err);
}

MDB_txn *
cs_ingest_txn(cs_ingest *ing)
{
    return ing->txn;
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
    if (refuse_if_failed(ing, err) < 0)
        return -CS_EINVAL;
    int r = ingest_fd(ing, fd, content, size, err);
    ing->failed = r < 0;
    return r;
}

static int
ingest_fd(cs_ingest *ing, int fd, cs_digest *content, uint64_t *size, cs_error **err)
{
    int r = file_begin(ing, NULL, 0, content, err);
    if (r < 0)
        return r;
    uint8_t *buf = cs_xmalloc(1 << 20);
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = cs_err(err, CS_EIO, errno, "read");
            break;
        }
        if (n == 0)
            break;
        total += (uint64_t) n;
        r = file_data(ing, buf, (size_t) n, err);
        if (r < 0)
            break;
    }
    free(buf);
    if (r < 0)
        return r;
    r = file_end(ing, err);
    if (r < 0)
        return r;
    *size = total;
    /* The caller wants the digest now: flush the pipeline. */
    return drain_all(ing, err);
}

/* ---- layer checks ---- */

/* Entries must not sit below a symlink of the same layer (that would write
 * through the link), and hardlinks must point at a file of the layer. */
static int
check_and_link(cs_tree *t, const char *name, cs_error **err)
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

/* ---- tar ---- */

/* Tar-split capture (cstore/tarsplit.h): libarchive says where a member's
 * headers begin (archive_read_header_position) and, once it returned the
 * entry, how far it consumed (archive_filter_bytes: the data start); the
 * header bytes in between were handed out by tar_read, in the current block
 * or, for headers across a block boundary, in the window of bytes kept from
 * earlier blocks. A member's data is what archive_read_data_block gives, so
 * the next member must start at data start + data rounded up to 512. Anything
 * else (holes, a header beyond the window, a gap) only drops the layer's
 * tarsplit record: export then regenerates the tar, as without one. */
#define TS_WINDOW (64u << 10)

typedef struct tar_src {
    cs_feeder *f;
    const uint8_t *cur; /* the block libarchive reads, at stream offset base */
    size_t len;
    uint64_t base;
    uint8_t *win; /* the last wlen bytes before base */
    size_t wlen;
} tar_src;

static la_ssize_t
tar_read(struct archive *a, void *ctx, const void **buf)
{
    (void) a;
    tar_src *src = ctx;
    if (src->len) {
        size_t k = src->len < TS_WINDOW ? src->len : TS_WINDOW;
        if (src->wlen + k > TS_WINDOW) {
            size_t keep = TS_WINDOW - k;
            memmove(src->win, src->win + src->wlen - keep, keep);
            src->wlen = keep;
        }
        memcpy(src->win + src->wlen, src->cur + src->len - k, k);
        src->wlen += k;
        src->base += src->len;
        src->len = 0;
    }
    ssize_t n = cs_feeder_next(src->f, buf);
    if (n > 0) {
        src->cur = *buf;
        src->len = (size_t) n;
    }
    return n;
}

/* Copies stream bytes [from, to) if tar_read still has them. */
static bool
tar_src_copy(const tar_src *src, uint64_t from, uint64_t to, cs_buf *out)
{
    if (from > to || from + src->wlen < src->base || to > src->base + src->len)
        return false;
    out->len = 0;
    if (from < src->base) {
        uint64_t w0 = src->base - src->wlen;
        uint64_t e = to < src->base ? to : src->base;
        cs_buf_append(out, src->win + (from - w0), (size_t) (e - from));
        from = e;
    }
    if (from < to)
        cs_buf_append(out, src->cur + (from - src->base), (size_t) (to - from));
    return true;
}

typedef struct capture {
    cs_tarsplit *ts; /* lives as long as pending files may point into it */
    bool ok;         /* false once given up */
    uint64_t next;   /* where the next member's headers must begin */
    cs_buf hdr;
} capture;

static void
capture_drop(capture *c)
{
    c->ok = false;
}

/* A member's headers were read: records them. Returns its index or -1. */
static ssize_t
capture_header(capture *c, struct archive *a, const tar_src *src, struct archive_entry *ae)
{
    if (!c->ok)
        return -1;
    la_int64_t hp = archive_read_header_position(a);
    la_int64_t de = archive_filter_bytes(a, 0);
    if (hp < 0 || (uint64_t) hp != c->next || de < hp || (de - hp) % 512 || de - hp > UINT32_MAX
        || archive_entry_sparse_count(ae) > 0
        || !tar_src_copy(src, (uint64_t) hp, (uint64_t) de, &c->hdr)) {
        capture_drop(c);
        return -1;
    }
    c->next = (uint64_t) de;
    return (ssize_t) cs_tarsplit_add(c->ts, c->hdr.data, (uint32_t) c->hdr.len, 0);
}

/* The member's data was read (size bytes). */
static void
capture_data(capture *c, ssize_t idx, uint64_t size)
{
    if (!c->ok || idx < 0)
        return;
    c->ts->m[idx].size = size;
    c->next += (size + 511) & ~(uint64_t) 511;
}

static int
entry_from_archive(struct archive_entry *ae, const char *name, cs_entry *e, cs_error **err)
{
    const char *path = archive_entry_pathname(ae);
    if (!path)
        return cs_err(err, CS_EPARSE, 0, "%s: member without a name", name);
    /* "/" alone is the root (umoci writes it); any other absolute name is refused. */
    if (path[0] == '/' && path[strspn(path, "/")])
        return cs_err(err, CS_EINVAL, 0, "%s: member '%s' has an absolute path", name, path);
    int r = cs_path_clean(path, &e->path, err);
    if (r < 0)
        return cs_err_wrap(err, "%s", name);
    const char *hl = archive_entry_hardlink(ae);
    mode_t ft = archive_entry_filetype(ae);
    if (hl) {
        if (hl[0] == '/')
            return cs_err(err, CS_EINVAL, 0, "%s: hardlink '%s' points at absolute path '%s'", name,
                          path, hl);
        r = cs_path_clean(hl, &e->link, err);
        if (r < 0)
            return cs_err_wrap(err, "%s: hardlink '%s'", name, path);
        e->type = CS_E_HARDLINK;
    } else {
        switch (ft) {
        case AE_IFREG:
            e->type = CS_E_FILE;
            break;
        case AE_IFDIR:
            e->type = CS_E_DIR;
            break;
        case AE_IFLNK:
            e->type = CS_E_SYMLINK;
            e->link = cs_xstrdup(archive_entry_symlink(ae) ? archive_entry_symlink(ae) : "");
            break;
        case AE_IFCHR:
            e->type = CS_E_CHAR;
            break;
        case AE_IFBLK:
            e->type = CS_E_BLOCK;
            break;
        case AE_IFIFO:
            e->type = CS_E_FIFO;
            break;
        default:
            return cs_err(err, CS_EUNSUPPORTED, 0, "%s: member '%s' has an unsupported type", name,
                          path);
        }
    }
    e->mode = archive_entry_perm(ae) & 07777;
    int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
    if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX)
        return cs_err(err, CS_EINVAL, 0, "%s: member '%s' has an invalid owner", name, path);
    e->uid = (uint32_t) uid;
    e->gid = (uint32_t) gid;
    if (archive_entry_uname(ae) && *archive_entry_uname(ae))
        e->uname = cs_xstrdup(archive_entry_uname(ae));
    if (archive_entry_gname(ae) && *archive_entry_gname(ae))
        e->gname = cs_xstrdup(archive_entry_gname(ae));
    e->mtime_sec = archive_entry_mtime(ae);
    e->mtime_nsec = (uint32_t) archive_entry_mtime_nsec(ae);
    if (e->type == CS_E_CHAR || e->type == CS_E_BLOCK) {
        e->devmajor = (uint32_t) archive_entry_rdevmajor(ae);
        e->devminor = (uint32_t) archive_entry_rdevminor(ae);
    }
    archive_entry_xattr_reset(ae);
    const char *xn;
    const void *xv;
    size_t xl;
    while (archive_entry_xattr_next(ae, &xn, &xv, &xl) == ARCHIVE_OK)
        cs_entry_add_xattr(e, xn, xv, (uint32_t) xl);
    return 0;
}

static int
tar_file_data(cs_ingest *ing, struct archive *a, const char *name, const char *path, capture *cap,
              cs_error **err)
{
    const void *buf;
    size_t len;
    la_int64_t off, pos = 0;
    static const uint8_t zeros[65536];
    for (;;) {
        int rc = archive_read_data_block(a, &buf, &len, &off);
        if (rc == ARCHIVE_EOF)
            return 0;
        if (rc < ARCHIVE_WARN)
            return cs_err(err, CS_EPARSE, 0, "%s: '%s': %s", name, path, archive_error_string(a));
        if (pos < off)
            capture_drop(cap); /* holes have no bytes in the tar */
        while (pos < off) {    /* a hole of a sparse file */
            size_t k = (size_t) (off - pos) < sizeof(zeros) ? (size_t) (off - pos) : sizeof(zeros);
            int r = file_data(ing, zeros, k, err);
            if (r < 0)
                return r;
            pos += (la_int64_t) k;
        }
        int r = file_data(ing, buf, len, err);
        if (r < 0)
            return r;
        pos += (la_int64_t) len;
    }
}

static int
ingest_archive(cs_ingest *ing, struct archive *a, const tar_src *src, capture *cap,
               const char *name, cs_tree *t, cs_error **err)
{
    struct archive_entry *ae;
    for (;;) {
        int rc = archive_read_next_header(a, &ae);
        if (rc == ARCHIVE_EOF)
            return 0;
        if (rc < ARCHIVE_WARN)
            return cs_err(err, CS_EPARSE, 0, "%s: %s", name,
                          archive_error_string(a) ? archive_error_string(a) : "bad tar archive");
        ssize_t ci = capture_header(cap, a, src, ae);
        cs_entry tmp = { 0 };
        int r = entry_from_archive(ae, name, &tmp, err);
        if (r < 0) {
            cs_entry_release(&tmp);
            return r;
        }
        if (!*tmp.path) { /* the root directory itself */
            cs_entry_release(&tmp);
            continue;
        }
        cs_entry *e = cs_tree_add(t);
        *e = tmp;
        if (e->type == CS_E_FILE) {
            r = file_begin(ing, t, t->n - 1, NULL, err);
            if (r >= 0 && ci >= 0) {
                pending *pf = &ing->pq[ing->cur % ing->pq_cap];
                pf->ts = cap->ts;
                pf->ts_idx = (size_t) ci;
            }
            if (r >= 0)
                r = tar_file_data(ing, a, name, e->path, cap, err);
            if (r >= 0) {
                uint64_t size = ing->pq[ing->cur % ing->pq_cap].size;
                t->e[t->n - 1].size = size;
                capture_data(cap, ci, size);
                r = file_end(ing, err);
            }
            if (r < 0)
                return r;
        }
    }
}

/* Puts the layer's tarsplit record, unless capture gave up or the same
 * record is there. Only a store error fails. */
static int
store_tarsplit(cs_ingest *ing, capture *cap, const cs_layer_info *info, cs_error **err)
{
    if (!cap->ok || cap->next > info->tar_size)
        return 0;
    cs_digest have;
    int r = cs_tarsplit_tree(ing->db, ing->txn, &info->diff_id, &have, NULL);
    if (r == 0 && cs_digest_eq(&have, &info->tree))
        return 0; /* the same tar bytes gave the same record */
    cap->ts->tree = info->tree;
    cap->ts->tar_size = info->tar_size;
    cap->ts->trailer = info->tar_size - cap->next;
    return cs_tarsplit_put(ing->db, ing->txn, &info->diff_id, cap->ts, err);
}

static int ingest_tar(cs_ingest *ing, const char *name, cs_read_fn rd, void *rctx,
                      cs_layer_info *out, cs_error **err);

int
cs_ingest_tar(cs_ingest *ing, const char *name, cs_read_fn rd, void *rctx, cs_layer_info *out,
              cs_error **err)
{
    if (refuse_if_failed(ing, err) < 0)
        return -CS_EINVAL;
    int r = ingest_tar(ing, name, rd, rctx, out, err);
    ing->failed = r < 0;
    return r;
}

static int
ingest_tar(cs_ingest *ing, const char *name, cs_read_fn rd, void *rctx, cs_layer_info *out,
           cs_error **err)
{
    cs_feeder *f = NULL;
    int r = cs_feeder_start(rd, rctx, &f, err);
    if (r < 0)
        return r;
    tar_src src = { .f = f, .win = cs_xmalloc(TS_WINDOW) };
    capture cap = { .ts = cs_tarsplit_new(), .ok = true };
    cs_buf_init(&cap.hdr);
    cs_tree *t = cs_tree_new();
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open(a, &src, NULL, tar_read, NULL) != ARCHIVE_OK) {
        r = cs_err(err, CS_EPARSE, 0, "%s: %s", name,
                   archive_error_string(a) ? archive_error_string(a) : "not a tar archive");
    } else {
        r = ingest_archive(ing, a, &src, &cap, name, t, err);
    }
    cs_layer_info info = { 0 };
    /* A read or decompression error explains a parse error better: prefer it. */
    cs_error *ferr = NULL;
    int fr = cs_feeder_finish(f, &info, &ferr);
    if (fr < 0) {
        cs_error_clear(err);
        r = cs_err(err, ferr->code, 0, "%s: %s", name, ferr->msg);
        cs_error_free(ferr);
    }
    archive_read_free(a);
    cs_feeder_free(f);
    if (r >= 0)
        r = drain_all(ing, err);
    if (r >= 0) {
        cs_tree_sort(t);
        r = check_and_link(t, name, err);
    }
    if (r >= 0)
        r = cs_tree_put(ing->db, ing->txn, t, &info.tree, err);
    if (r >= 0)
        r = store_tarsplit(ing, &cap, &info, err);
    cs_tree_free(t);
    cs_tarsplit_free(cap.ts);
    cs_buf_release(&cap.hdr);
    free(src.win);
    if (r < 0)
        return r;
    *out = info;
    return 0;
}

/* ---- directories ---- */

typedef struct walk {
    cs_ingest *ing;
    cs_tree *t;
    /* dev/ino of files with several links -> first path (for hardlinks) */
    struct link {
        dev_t dev;
        ino_t ino;
        char *path;
    } * links;
    size_t nlinks, caplinks;
} walk;

static int
read_xattrs(const char *full, cs_entry *e, cs_error **err)
{
    ssize_t n = llistxattr(full, NULL, 0);
    if (n <= 0)
        return 0; /* none, or a filesystem without xattrs */
    cs_autofree char *names = cs_xmalloc((size_t) n);
    n = llistxattr(full, names, (size_t) n);
    if (n < 0)
        return cs_err(err, CS_EIO, errno, "%s: list xattrs", full);
    for (ssize_t i = 0; i < n; i += (ssize_t) strlen(names + i) + 1) {
        ssize_t vl = lgetxattr(full, names + i, NULL, 0);
        if (vl < 0)
            continue; /* removed meanwhile */
        cs_autofree uint8_t *val = cs_xmalloc((size_t) vl + 1);
        vl = lgetxattr(full, names + i, val, (size_t) vl);
        if (vl >= 0)
            cs_entry_add_xattr(e, names + i, val, (uint32_t) vl);
    }
    return 0;
}

static int walk_dir(walk *w, const char *full, const char *rel, cs_error **err);

static int
walk_one(walk *w, const char *full, const char *rel, cs_error **err)
{
    struct stat st;
    if (lstat(full, &st) < 0)
        return cs_err(err, CS_EIO, errno, "%s", full);
    cs_entry *e = cs_tree_add(w->t);
    size_t idx = w->t->n - 1;
    e->path = cs_xstrdup(rel);
    e->mode = st.st_mode & 07777;
    e->uid = st.st_uid;
    e->gid = st.st_gid;
    e->mtime_sec = st.st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t) st.st_mtim.tv_nsec;
    if (read_xattrs(full, e, err) < 0)
        return -CS_EIO;
    switch (st.st_mode & S_IFMT) {
    case S_IFDIR:
        e->type = CS_E_DIR;
        return walk_dir(w, full, rel, err);
    case S_IFLNK: {
        e->type = CS_E_SYMLINK;
        char buf[4096];
        ssize_t n = readlink(full, buf, sizeof(buf) - 1);
        if (n < 0)
            return cs_err(err, CS_EIO, errno, "%s", full);
        buf[n] = 0;
        e->link = cs_xstrdup(buf);
        return 0;
    }
    case S_IFCHR:
    case S_IFBLK:
        e->type = S_ISCHR(st.st_mode) ? CS_E_CHAR : CS_E_BLOCK;
        e->devmajor = major(st.st_rdev);
        e->devminor = minor(st.st_rdev);
        return 0;
    case S_IFIFO:
        e->type = CS_E_FIFO;
        return 0;
    case S_IFSOCK:
        w->t->n--; /* sockets cannot live in a layer: skip, as tar does */
        cs_entry_release(&w->t->e[w->t->n]);
        return 0;
    case S_IFREG:
        break;
    default:
        return cs_err(err, CS_EUNSUPPORTED, 0, "%s: unsupported file type", full);
    }
    if (st.st_nlink > 1) {
        for (size_t i = 0; i < w->nlinks; i++) {
            if (w->links[i].dev == st.st_dev && w->links[i].ino == st.st_ino) {
                e->type = CS_E_HARDLINK;
                e->link = cs_xstrdup(w->links[i].path);
                return 0;
            }
        }
        if (w->nlinks == w->caplinks) {
            w->caplinks = w->caplinks ? w->caplinks * 2 : 16;
            w->links = cs_xrealloc(w->links, w->caplinks * sizeof(*w->links));
        }
        w->links[w->nlinks++] = (struct link){ st.st_dev, st.st_ino, cs_xstrdup(rel) };
    }
    e->type = CS_E_FILE;
    cs_autoclose int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "%s", full);
    int r = file_begin(w->ing, w->t, idx, NULL, err);
    uint8_t *buf = cs_xmalloc(1 << 20);
    uint64_t total = 0;
    while (r >= 0) {
        ssize_t n = read(fd, buf, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = cs_err(err, CS_EIO, errno, "%s", full);
            break;
        }
        if (n == 0)
            break;
        total += (uint64_t) n;
        r = file_data(w->ing, buf, (size_t) n, err);
    }
    free(buf);
    if (r < 0)
        return r;
    w->t->e[idx].size = total;
    return file_end(w->ing, err);
}

static int
walk_dir(walk *w, const char *full, const char *rel, cs_error **err)
{
    cs_autoclose int fd = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "%s", full);
    char **names = NULL;
    size_t n = 0;
    int r = cs_dir_names(fd, full, &names, &n, err);
    for (size_t i = 0; i < n && r >= 0; i++) {
        cs_autofree char *f = cs_path_join(full, names[i]);
        cs_autofree char *rl = *rel ? cs_xasprintf("%s/%s", rel, names[i]) : cs_xstrdup(names[i]);
        r = walk_one(w, f, rl, err);
    }
    cs_names_free(names, n);
    return r;
}

int
cs_ingest_dir(cs_ingest *ing, const char *dir, cs_digest *tree, cs_error **err)
{
    if (refuse_if_failed(ing, err) < 0)
        return -CS_EINVAL;
    walk w = { .ing = ing, .t = cs_tree_new() };
    int r = walk_dir(&w, dir, "", err);
    if (r >= 0)
        r = drain_all(ing, err);
    if (r >= 0) {
        cs_tree_sort(w.t);
        r = check_and_link(w.t, dir, err);
    }
    if (r >= 0)
        r = cs_tree_put(ing->db, ing->txn, w.t, tree, err);
    for (size_t i = 0; i < w.nlinks; i++)
        free(w.links[i].path);
    free(w.links);
    cs_tree_free(w.t);
    ing->failed = r < 0;
    return r < 0 ? r : 0;
}
