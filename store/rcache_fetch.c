/* rcache_fetch.c - the one seam where an imported cache's bytes are needed:
 * the missing chunks of some trees read from their packs (near ranges
 * coalesced into bounded requests, up to FETCHERS at once), checked against
 * their digests by the fetching thread and put by the calling thread (see
 * cstore/rcache.h). This module owns remote_chunks. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cstore/content.h"
#include "cstore/image.h"
#include "cstore/oneshot.h"
#include "cstore/tree.h"
#include "rcache_int.h"

/* A read this large or a gap this small is one request (one pread from a
 * dir); measured in bench/RESULTS-cache.md. */
#define RANGE_MAX ((uint64_t) 8 << 20)
#define GAP_MAX   ((uint64_t) 64 << 10)
#define FETCHERS  4 /* ranges read at once */
#define QUEUE_MAX 4 /* fetched ranges waiting for the commit */

typedef struct want {
    cs_digest chunk, pack;
    uint64_t off;
    uint32_t len;
    uint8_t nb; /* a delta: its bases */
    cs_digest bases[RC_DELTA_BASES_MAX];
    char *src;
} want;

typedef struct wants {
    cs_db *db;
    MDB_txn *txn;
    want *v;
    size_t n, cap;
    cs_digestset *seen;
    size_t unknown; /* chunks neither local nor remote: a pack part not imported yet */
} wants;

static pthread_mutex_t totals_mu = PTHREAD_MUTEX_INITIALIZER;
static cs_rcache_stats totals;

void
cs_rcache_fetched(cs_rcache_stats *out)
{
    pthread_mutex_lock(&totals_mu);
    *out = totals;
    pthread_mutex_unlock(&totals_mu);
}

int
cs_rcache_has(cs_db *db, MDB_txn *txn, const cs_digest *chunk, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_REMOTE, chunk->b, 32, &v, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    return r < 0 ? r : 1;
}

bool
rc_remote_decode(const void *v, size_t n, rc_remote_rec *out)
{
    const uint8_t *p = v;
    if (n < 45)
        return false;
    *out = (rc_remote_rec){ .pack = p, .off = cs_be64_get(p + 32), .len = cs_be32_get(p + 40) };
    size_t at = 44;
    if (p[44] == 0) { /* versioned: 0 | 1 | nb | bases */
        if (n < 47 || p[45] != 1 || !p[46] || p[46] > RC_DELTA_BASES_MAX || n <= 47 + 32u * p[46])
            return false;
        out->nb = p[46];
        out->bases = p + 47;
        at = 47 + 32u * p[46];
    }
    out->src = (const char *) p + at;
    out->srclen = n - at;
    return true;
}

void
rc_remote_encode(cs_buf *b, const cs_digest *pack, const uint8_t place[12], const uint8_t *delta,
                 size_t dn, const char *src)
{
    cs_buf_append(b, pack->b, 32);
    cs_buf_append(b, place, 12);
    if (dn >= 2) { /* depth | nb | bases: the depth is the index's business */
        cs_buf_u8(b, 0);
        cs_buf_u8(b, 1);
        cs_buf_append(b, delta + 1, dn - 1);
    }
    cs_buf_append(b, src, strlen(src));
}

int
rc_remote_del(cs_db *db, MDB_txn *txn, const cs_digest *d, cs_error **err)
{
    MDB_val key = { 32, (void *) d->b };
    int rc = mdb_del(txn, cs_db_dbi(db, CS_T_REMOTE), &key, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return cs_db_err(err, rc, "remote_chunks");
    return 0;
}

static bool
remote_empty(cs_db *db, MDB_txn *txn)
{
    MDB_stat ms;
    return mdb_stat(txn, cs_db_dbi(db, CS_T_REMOTE), &ms) == 0 && ms.ms_entries == 0;
}

/* Adds chunk d when it is remote and not local; level: how many deltas
 * down from a chunk wanted for itself (an export writes at most
 * RC_DELTA_DEPTH_MAX in a row: a cache's records saying more are bad, and
 * would make this recursion unbounded). */
static int
want_chunk(wants *w, const cs_digest *d, int level, cs_error **err)
{
    if (!cs_digestset_add(w->seen, d->b))
        return 0;
    MDB_val v;
    rc_remote_rec rec;
    int r = cs_db_get(w->db, w->txn, CS_T_REMOTE, d->b, 32, &v, err);
    if (r == -CS_ENOTFOUND) { /* local, or its pack part not imported yet (rcache_lazy.c) */
        r = cs_chunk_has(w->db, w->txn, d, err);
        w->unknown += r == 0;
        return r < 0 ? r : 0;
    }
    if (r == 0 && !rc_remote_decode(v.mv_data, v.mv_size, &rec))
        return 0; /* not ours */
    if (r < 0 || (r = cs_chunk_has(w->db, w->txn, d, err)) != 0)
        return r < 0 ? r : 0;
    if (rec.nb && level >= RC_DELTA_DEPTH_MAX) {
        char hex[CS_DIGEST_HEX];
        cs_digest_hex(d, hex);
        return cs_err(err, CS_ECORRUPT, 0,
                      "cache chunk sha256:%s: a delta chain deeper than %d (a bad cache index)",
                      hex, RC_DELTA_DEPTH_MAX);
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        w->v = cs_xrealloc(w->v, w->cap * sizeof(want));
    }
    want *x = &w->v[w->n++];
    x->chunk = *d;
    memcpy(x->pack.b, rec.pack, 32);
    x->off = rec.off;
    x->len = rec.len;
    x->nb = rec.nb;
    if (rec.nb)
        memcpy(x->bases, rec.bases, 32u * rec.nb);
    x->src = cs_xstrndup(rec.src, rec.srclen);
    /* A delta's bases come along unless local (this batch decodes it). */
    cs_digest bases[RC_DELTA_BASES_MAX];
    uint8_t nb = rec.nb;
    memcpy(bases, x->bases, sizeof(bases));
    for (uint8_t i = 0; i < nb && r >= 0; i++)
        r = want_chunk(w, &bases[i], level + 1, err);
    return r;
}

static int
want_content(wants *w, const cs_digest *content, cs_error **err)
{
    cs_autofree cs_chunk_ref *refs = NULL;
    uint64_t size;
    uint32_t n;
    int r = cs_content_get(w->db, w->txn, content, &size, &refs, &n, err);
    for (uint32_t j = 0; r >= 0 && j < n; j++)
        r = want_chunk(w, &refs[j].d, 0, err);
    return r;
}

static int
want_tree(wants *w, const cs_digest *tree, cs_error **err)
{
    cs_tree *t = NULL;
    int r = cs_tree_get(w->db, w->txn, tree, &t, err);
    for (size_t i = 0; r >= 0 && t && i < t->n; i++)
        if (t->e[i].has_content)
            r = want_content(w, &t->e[i].content, err);
    cs_tree_free(t);
    return r;
}

typedef struct collect_ctx {
    wants *w;
    const cs_digest *trees, *chunks, *content;
    size_t ntrees, nchunks;
} collect_ctx;

static int
collect_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    collect_ctx *c = ctx;
    c->w->db = db;
    c->w->txn = txn;
    if (remote_empty(db, txn) && rc_lazy_none(db, txn))
        return 0;
    int r = 0;
    for (size_t i = 0; i < c->ntrees && r >= 0; i++)
        r = want_tree(c->w, &c->trees[i], err);
    for (size_t i = 0; i < c->nchunks && r >= 0; i++)
        r = want_chunk(c->w, &c->chunks[i], 0, err);
    if (c->content && r >= 0)
        r = want_content(c->w, c->content, err);
    return r;
}

static int
want_cmp(const void *a, const void *b)
{
    const want *x = a, *y = b;
    int c = strcmp(x->src, y->src);
    if (!c)
        c = memcmp(x->pack.b, y->pack.b, 32);
    return c ? c : (x->off > y->off) - (x->off < y->off);
}

/* One coalesced range: wants [i, j) of one pack. */
typedef struct range {
    const want *v;
    size_t n;
    uint64_t off, len;
    uint8_t *buf; /* its bytes, fetched and verified */
} range;

typedef struct put_ctx {
    range **v;
    size_t n;
    rc_pending *pend; /* deltas, decoded once the batch is in */
} put_ctx;

/* The committing thread's one write txn for the ranges fetched so far. */
static int
put_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    put_ctx *pc = ctx;
    for (size_t k = 0; k < pc->n; k++) {
        range *g = pc->v[k];
        for (size_t i = 0; i < g->n; i++) {
            const want *x = &g->v[i];
            const uint8_t *p = g->buf + (x->off - g->off);
            int r = x->nb
                        ? rc_pending_add(pc->pend, &x->chunk, x->nb, x->bases[0].b, p, x->len, err)
                        : cs_chunk_put(db, txn, &x->chunk, p[0], cs_be32_get(p + 1), p + 5,
                                       x->len - 5, err);
            if (r >= 0 && !x->nb)
                r = rc_remote_del(db, txn, &x->chunk, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static cs_rcache_remote remote;

void
cs_rcache_set_remote(const cs_rcache_remote *r)
{
    remote = *r;
}

int
rc_remote_has(const char *dir, const cs_digest *d, cs_error **err)
{
    cs_autofree char *path = rc_blob_path(dir, d);
    if (access(path, F_OK) == 0)
        return 1;
    return remote.has ? remote.has(dir, d, err) : 0;
}

int
rc_remote_read(const char *dir, const cs_digest *d, uint64_t off, uint64_t len, void *buf,
               cs_error **err)
{
    if (!remote.read)
        return cs_err(err, CS_ENOTFOUND, 0, "cache blob of '%s': not there", dir);
    return remote.read(dir, d, off, len, buf, err);
}

/* n bytes at off of the range's pack: from the dir's file (fd), else from
 * where the remote reader finds it. */
static int
read_at(const range *g, int fd, void *p, uint64_t n, uint64_t off, const char *path, cs_error **err)
{
    if (fd < 0)
        return remote.read(g->v[0].src, &g->v[0].pack, off, n, p, err);
    ssize_t got = pread(fd, p, n, (off_t) off);
    if (got < 0 || (uint64_t) got != n)
        return cs_err(err, CS_ECORRUPT, got < 0 ? errno : 0, "pack '%s': short read", path);
    return 0;
}

/* Checks each chunk of the range; a bad one is read once more, then fails. */
static int
check_range(range *g, int fd, const char *path, cs_error **err)
{
    cs_buf raw;
    cs_buf_init(&raw);
    int r = 0;
    for (size_t i = 0; i < g->n && r >= 0; i++) {
        const want *x = &g->v[i];
        uint8_t *p = g->buf + (x->off - g->off);
        if (x->nb)
            continue; /* a delta: checked once decoded (rcache_dfetch.c) */
        raw.len = 0;
        cs_error *tmp = NULL;
        if (x->len >= 5 && cs_chunk_decode(&x->chunk, p, x->len, true, &raw, &tmp) == 0)
            continue;
        cs_error_clear(&tmp);
        raw.len = 0;
        if ((r = read_at(g, fd, p, x->len, x->off, path, err)) < 0)
            break;
        if (x->len < 5 || (r = cs_chunk_decode(&x->chunk, p, x->len, true, &raw, err)) < 0)
            r = cs_err_wrap(err, "cache pack '%s' at %llu", path, (unsigned long long) x->off);
    }
    cs_buf_release(&raw);
    return r;
}

/* Reads and verifies one range (any thread: no LMDB). */
static int
fetch_range(range *g, cs_error **err)
{
    cs_autofree char *path = rc_blob_path(g->v[0].src, &g->v[0].pack);
    cs_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && (errno != ENOENT || !remote.read))
        return cs_err(err, CS_ENOTFOUND, errno, "cache pack '%s'", path);
    g->buf = cs_xmalloc(g->len ? g->len : 1);
    int r = read_at(g, fd, g->buf, g->len, g->off, path, err);
    if (r >= 0)
        r = check_range(g, fd, path, err);
    if (r < 0) {
        free(g->buf);
        g->buf = NULL;
    }
    return r;
}

/* Up to FETCHERS threads read and verify ranges; the calling thread puts
 * them (one write txn per batch it finds queued). At most QUEUE_MAX ranges
 * wait for it: a slow commit holds the fetchers back. */
typedef struct fetch_run {
    range *g;
    size_t ng, next; /* ranges, the next one a fetcher takes */
    range *q[QUEUE_MAX];
    size_t qhead, qlen;
    size_t running; /* fetchers not finished */
    bool stop;
    rc_pending pend;
    int rc;
    cs_error *err; /* the first failure */
    pthread_mutex_t mu;
    pthread_cond_t cv_put, cv_take; /* room in the queue / something to take */
} fetch_run;

static void
run_fail(fetch_run *f, int rc, cs_error **e)
{
    if (!f->rc) {
        f->rc = rc;
        f->err = cs_steal(e);
    }
    cs_error_clear(e);
    f->stop = true;
    pthread_cond_broadcast(&f->cv_put);
    pthread_cond_broadcast(&f->cv_take);
}

static void *
fetcher(void *arg)
{
    fetch_run *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stop && f->next < f->ng) {
        range *g = &f->g[f->next++];
        pthread_mutex_unlock(&f->mu);
        cs_error *e = NULL;
        int r = fetch_range(g, &e);
        pthread_mutex_lock(&f->mu);
        if (r < 0) {
            run_fail(f, r, &e);
            break;
        }
        while (f->qlen == QUEUE_MAX && !f->stop)
            pthread_cond_wait(&f->cv_put, &f->mu);
        if (f->stop) {
            free(g->buf);
            g->buf = NULL;
            break;
        }
        f->q[(f->qhead + f->qlen++) % QUEUE_MAX] = g;
        pthread_cond_signal(&f->cv_take);
    }
    f->running--;
    pthread_cond_signal(&f->cv_take);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* The committing side: takes what is queued, puts it, until the fetchers
 * are done. */
static void
commit_loop(cs_store *s, fetch_run *f, cs_rcache_stats *st)
{
    range *batch[QUEUE_MAX];
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->qlen && f->running)
            pthread_cond_wait(&f->cv_take, &f->mu);
        if (!f->qlen)
            break;
        put_ctx pc = { batch, 0, &f->pend };
        for (; f->qlen; f->qlen--, f->qhead = (f->qhead + 1) % QUEUE_MAX)
            batch[pc.n++] = f->q[f->qhead];
        pthread_cond_broadcast(&f->cv_put);
        bool stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        cs_error *e = NULL;
        int r = stop ? 0 : cs_db_write(cs_store_db(s), put_fn, &pc, &e);
        for (size_t k = 0; k < pc.n; k++) {
            range *g = batch[k];
            for (size_t i = 0; i < g->n && r >= 0 && !stop; i++)
                st->fetched_bytes += g->v[i].len;
            st->fetched_chunks += r >= 0 && !stop ? g->n : 0;
            st->read_bytes += r >= 0 && !stop ? g->len : 0;
            st->reads += r >= 0 && !stop ? 1 : 0;
            free(g->buf);
            g->buf = NULL;
        }
        pthread_mutex_lock(&f->mu);
        if (r < 0)
            run_fail(f, r, &e);
    }
    pthread_mutex_unlock(&f->mu);
}

/* The wants sorted by source, pack and offset, cut into ranges: a gap up to
 * GAP_MAX is read along, a range stops at RANGE_MAX. */
static range *
coalesce(wants *w, size_t *nout)
{
    qsort(w->v, w->n, sizeof(want), want_cmp);
    range *v = cs_xcalloc(w->n ? w->n : 1, sizeof(range));
    size_t n = 0;
    for (size_t i = 0, j; i < w->n; i = j) {
        range *g = &v[n++];
        g->v = &w->v[i];
        g->off = w->v[i].off;
        uint64_t end = w->v[i].off + w->v[i].len;
        for (j = i + 1;
             j < w->n && !strcmp(w->v[j].src, w->v[i].src)
             && cs_digest_eq(&w->v[j].pack, &w->v[i].pack) && w->v[j].off >= end
             && w->v[j].off - end <= GAP_MAX && w->v[j].off + w->v[j].len - g->off <= RANGE_MAX;
             j++)
            end = w->v[j].off + w->v[j].len;
        g->n = j - i;
        g->len = end - g->off;
    }
    *nout = n;
    return v;
}

static int
fetch_all(cs_store *s, wants *w, cs_rcache_stats *st, cs_error **err)
{
    fetch_run f = { 0 };
    f.g = coalesce(w, &f.ng);
    pthread_mutex_init(&f.mu, NULL);
    pthread_cond_init(&f.cv_put, NULL);
    pthread_cond_init(&f.cv_take, NULL);
    pthread_t th[FETCHERS];
    size_t nth = f.ng < FETCHERS ? f.ng : FETCHERS;
    size_t started = 0;
    int terr = 0;
    for (; started < nth; started++) {
        f.running++;
        if ((terr = pthread_create(&th[started], NULL, fetcher, &f)) != 0) {
            f.running--;
            break;
        }
    }
    if (!started) {
        cs_error *e = NULL;
        run_fail(&f, cs_err(&e, CS_EIO, terr, "cache fetch: no thread"), &e);
    }
    commit_loop(s, &f, st);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&f.mu);
    pthread_cond_destroy(&f.cv_put);
    pthread_cond_destroy(&f.cv_take);
    free(f.g);
    if (!f.rc && f.pend.n) {
        cs_error *e = NULL;
        int r = rc_pending_resolve(s, &f.pend, &e);
        if (r < 0)
            run_fail(&f, r, &e);
    }
    rc_pending_release(&f.pend);
    if (f.rc < 0 && err && !*err)
        *err = cs_steal(&f.err);
    cs_error_clear(&f.err);
    return f.rc;
}

static int
fetch(cs_store *s, collect_ctx *c, cs_rcache_stats *st, cs_error **err)
{
    wants w = { .seen = cs_digestset_new(false) };
    c->w = &w;
    cs_rcache_stats mine = { 0 };
    int r = cs_db_read(cs_store_db(s), collect_fn, c, err);
    if (r >= 0 && w.unknown && (r = rc_lazy_fetch_packs(s, err)) > 0) {
        cs_digestset_free(w.seen); /* the chunks' places are known now: again */
        w.seen = cs_digestset_new(false);
        for (size_t i = 0; i < w.n; i++)
            free(w.v[i].src);
        w.n = w.unknown = 0;
        r = cs_db_read(cs_store_db(s), collect_fn, c, err);
    }
    if (r >= 0 && w.n)
        r = fetch_all(s, &w, &mine, err);
    for (size_t i = 0; i < w.n; i++)
        free(w.v[i].src);
    free(w.v);
    cs_digestset_free(w.seen);
    pthread_mutex_lock(&totals_mu);
    totals.fetched_chunks += mine.fetched_chunks;
    totals.fetched_bytes += mine.fetched_bytes;
    totals.reads += mine.reads;
    totals.read_bytes += mine.read_bytes;
    pthread_mutex_unlock(&totals_mu);
    if (st) {
        st->fetched_chunks += mine.fetched_chunks;
        st->fetched_bytes += mine.fetched_bytes;
        st->reads += mine.reads;
        st->read_bytes += mine.read_bytes;
    }
    return r;
}

int
rc_fetch_chunks(cs_store *s, const cs_digest *chunks, size_t n, cs_rcache_stats *st, cs_error **err)
{
    collect_ctx c = { .chunks = chunks, .nchunks = n };
    return fetch(s, &c, st, err);
}

int
cs_rcache_fetch_trees(cs_store *s, const cs_digest *trees, size_t n, cs_rcache_stats *st,
                      cs_error **err)
{
    collect_ctx c = { .trees = trees, .ntrees = n };
    int r = cs_rcache_fetch_parts(s, trees, n, err);
    return r < 0 ? r : fetch(s, &c, st, err);
}

int
cs_rcache_fetch_content(cs_store *s, const cs_digest *content, cs_error **err)
{
    collect_ctx c = { .content = content };
    return fetch(s, &c, NULL, err);
}

int
cs_rcache_fetch_image(cs_store *s, const char *name, cs_rcache_stats *st, cs_error **err)
{
    cs_image *img = NULL;
    int r = cs_image_load(cs_store_db(s), name, &img, err);
    if (r >= 0)
        r = cs_rcache_fetch_trees(s, img->layers, img->nlayers, st, err);
    cs_image_free(img);
    return r;
}
