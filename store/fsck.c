/* fsck.c - re-hash every chunk and content, check every reference (see
 * cstore/gc.h).
 *
 * Re-hashing dominates, so it runs on every core: workers split the content
 * key space by first byte, read each content's chunks once, hash every chunk
 * the first time any worker meets it and the whole content as it streams by.
 * A second round verifies the chunks no content uses. References between
 * metadata records (trees, images, tags, layer blobs, tarsplit) are checked last, on
 * this thread. Read transactions are renewed every few tens of MB so a long
 * fsck does not pin freed pages. Problems are collected and reported sorted,
 * from the calling thread.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "cstore/content.h"
#include "cstore/gc.h"
#include "cstore/image.h"
#include "cstore/rcache.h"
#include "cstore/statcache.h"
#include "cstore/tarsplit.h"
#include "cstore/tree.h"
#include "cstore/strv.h"
#include "digestset.h"

#define FSCK_MAX_WORKERS 8
#define FSCK_BATCH_BYTES (64u << 20) /* raw bytes per read txn */
#define FSCK_ITEM_COST   4096        /* so small records also end a batch */

/* Problems found, one line each. */
typedef cs_strv fsck_list;

static void fsck_add(fsck_list *l, const char *fmt, ...) CS_PRINTF(2, 3);

static void
fsck_add(fsck_list *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cs_strv_push(l, cs_xvasprintf(fmt, ap));
    va_end(ap);
}

/* false, reported, when a record's key is not 32 bytes (a digest) */
static bool
key_ok(fsck_list *l, const char *kind, const MDB_val *k)
{
    if (k->mv_size == 32)
        return true;
    fsck_add(l, "%s record with a %zu-byte key", kind, k->mv_size);
    return false;
}

/* Reports record NAME that did not decode, with the decoder's error e (or
 * dflt), and frees e. */
static void
undecodable(fsck_list *l, const char *kind, const char *name, cs_error *e, const char *dflt)
{
    fsck_add(l, "%s %s: %s", kind, name, e && e->msg ? e->msg : dflt);
    cs_error_free(e);
}

static const char *
hexs(const void *d, char buf[CS_DIGEST_STR])
{
    cs_digest_str(d, buf);
    return buf;
}

typedef struct fsck_shared {
    cs_db *db;
    pthread_mutex_t lock;
    cs_digestset *seen; /* chunks hashed (or being hashed) by some worker */
} fsck_shared;

typedef struct fsck_worker {
    fsck_shared *sh;
    unsigned lo, hi; /* first key byte in [lo, hi) */
    pthread_t th;
    fsck_list problems;
    int rc;
    cs_error *err;
    cs_buf buf;
    cs_sha256_ctx *sha;
} fsck_worker;

typedef int (*fsck_item_fn)(fsck_worker *w, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
                            uint64_t *work);

/* Reads a chunk's raw bytes into w->buf and, when check is set, verifies and
 * reports them. 0 ok, 1 undecodable, 2 digest mismatch (the bytes are in
 * w->buf), <0 error. */
static int
fsck_chunk(fsck_worker *w, MDB_txn *txn, const cs_digest *d, bool check)
{
    char s[CS_DIGEST_STR];
    cs_error *e = NULL;

    w->buf.len = 0;
    int r = cs_chunk_read(w->sh->db, txn, d, false, &w->buf, &e);
    if (r == -CS_ECORRUPT) {
        cs_error_free(e);
        if (check)
            fsck_add(&w->problems, "chunk %s: cannot decode (bad codec, length or data)",
                     hexs(d, s));
        return 1;
    }
    if (r < 0) {
        w->err = e;
        return r;
    }
    if (check) {
        cs_digest got;
        cs_sha256(w->buf.data, w->buf.len, &got);
        if (!cs_digest_eq(&got, d)) {
            fsck_add(&w->problems, "chunk %s: digest mismatch", hexs(d, s));
            return 2;
        }
    }
    return 0;
}

/* Feeds a content's chunks to w->sha: 0 when all were there, 1 when a
 * problem was reported (or the chunk is remote-backed: nothing to hash). */
static int
content_chunks(fsck_worker *w, MDB_txn *txn, const cs_digest *key, const cs_chunk_ref *refs,
               uint32_t n)
{
    char s[CS_DIGEST_STR], s2[CS_DIGEST_STR];
    for (uint32_t i = 0; i < n; i++) {
        const cs_digest *d = &refs[i].d;
        MDB_val cv;
        int r = cs_db_get(w->sh->db, txn, CS_T_CHUNKS, d->b, 32, &cv, &w->err);
        if (r == -CS_ENOTFOUND) {
            /* Remote-backed (an imported build cache has it): not missing. */
            if ((r = cs_rcache_has(w->sh->db, txn, d, &w->err)) != 0)
                return r < 0 ? r : 1;
            fsck_add(&w->problems, "content %s: chunk %s missing", hexs(key, s), hexs(d, s2));
            return 1;
        }
        if (r < 0)
            return r;
        pthread_mutex_lock(&w->sh->lock);
        bool first = cs_digestset_add(w->sh->seen, d->b);
        pthread_mutex_unlock(&w->sh->lock);
        r = fsck_chunk(w, txn, d, first);
        if (r < 0)
            return r;
        if (r == 1) {
            fsck_add(&w->problems, "content %s: chunk %s unreadable", hexs(key, s), hexs(d, s2));
            return 1;
        }
        if (w->buf.len != refs[i].len) {
            fsck_add(&w->problems, "content %s: chunk %s is %zu bytes, record says %u",
                     hexs(key, s), hexs(d, s2), w->buf.len, refs[i].len);
            return 1;
        }
        cs_sha256_update(w->sha, w->buf.data, w->buf.len);
    }
    return 0;
}

static int
fsck_content(fsck_worker *w, MDB_txn *txn, const MDB_val *k, const MDB_val *v, uint64_t *work)
{
    char s[CS_DIGEST_STR];
    cs_digest key, got;
    uint64_t size;
    uint32_t n;
    cs_autofree cs_chunk_ref *refs = NULL;

    *work += FSCK_ITEM_COST;
    if (!key_ok(&w->problems, "content", k))
        return 0;
    memcpy(key.b, k->mv_data, 32);
    if (cs_content_decode(v->mv_data, v->mv_size, &size, &refs, &n) < 0) {
        const uint8_t *p = v->mv_data;
        if (v->mv_size >= 12 && v->mv_size == 12 + (size_t) cs_be32_get(p + 8) * 36) {
            uint64_t sum = 0;
            for (uint32_t i = 0; i < cs_be32_get(p + 8); i++)
                sum += cs_be32_get(p + 12 + (size_t) i * 36 + 32);
            fsck_add(&w->problems, "content %s: chunk lengths sum to %llu, size is %llu",
                     hexs(&key, s), (unsigned long long) sum,
                     (unsigned long long) (cs_be64_get(p)));
        } else {
            fsck_add(&w->problems, "content %s: bad record", hexs(&key, s));
        }
        return 0;
    }
    *work += size;
    /* The hash is finished whatever happened, so the worker's next content
     * starts from a fresh one. */
    int r = content_chunks(w, txn, &key, refs, n);
    cs_sha256_final(w->sha, &got);
    if (r < 0)
        return r;
    if (r == 0 && !cs_digest_eq(&got, &key))
        fsck_add(&w->problems, "content %s: digest mismatch", hexs(&key, s));
    return 0;
}

/* Chunks no content uses; runs after every content worker finished, so the
 * seen set is read-only here. */
static int
fsck_orphan_chunk(fsck_worker *w, MDB_txn *txn, const MDB_val *k, const MDB_val *v, uint64_t *work)
{
    cs_digest d;

    *work += FSCK_ITEM_COST + v->mv_size;
    if (!key_ok(&w->problems, "chunk", k))
        return 0;
    if (cs_digestset_has(w->sh->seen, k->mv_data))
        return 0;
    memcpy(d.b, k->mv_data, 32);
    int r = fsck_chunk(w, txn, &d, true);
    return r < 0 ? r : 0;
}

/* Walks the keys of table t whose first byte is in [w->lo, w->hi), in read
 * transactions renewed every FSCK_BATCH_BYTES of work. */
static int
fsck_walk(fsck_worker *w, cs_table t, fsck_item_fn fn)
{
    cs_db *db = w->sh->db;
    cs_buf pos;
    uint8_t lo = (uint8_t) w->lo;
    bool started = false, more = true;
    int r = 0;

    cs_buf_init(&pos);
    while (more && r >= 0) {
        MDB_txn *txn;
        MDB_cursor *cur;
        MDB_val k, v;
        uint64_t work = 0;

        r = cs_db_begin(db, MDB_RDONLY, &txn, &w->err);
        if (r < 0)
            break;
        int rc = mdb_cursor_open(txn, cs_db_dbi(db, t), &cur);
        if (rc) {
            mdb_txn_abort(txn);
            r = cs_db_err(&w->err, rc, "fsck");
            break;
        }
        if (!started) {
            k.mv_size = 1;
            k.mv_data = &lo;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        } else {
            k.mv_size = pos.len;
            k.mv_data = pos.data;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            if (rc == 0 && k.mv_size == pos.len && memcmp(k.mv_data, pos.data, pos.len) == 0)
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        started = true;
        more = false;
        for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size == 0 || ((const uint8_t *) k.mv_data)[0] >= w->hi)
                break;
            r = fn(w, txn, &k, &v, &work);
            if (r < 0)
                break;
            if (work >= FSCK_BATCH_BYTES) {
                pos.len = 0;
                cs_buf_append(&pos, k.mv_data, k.mv_size);
                more = true;
                break;
            }
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        if (r >= 0 && rc != 0 && rc != MDB_NOTFOUND)
            r = cs_db_err(&w->err, rc, "fsck");
    }
    cs_buf_release(&pos);
    return r;
}

typedef struct fsck_job {
    fsck_worker *w;
    cs_table t;
    fsck_item_fn fn;
} fsck_job;

static void *
fsck_thread(void *arg)
{
    fsck_job *j = arg;

    j->w->rc = fsck_walk(j->w, j->t, j->fn);
    return NULL;
}

/* Runs fn over table t in nw workers, one slice of the key space each. */
static int
fsck_parallel(fsck_worker *w, unsigned nw, cs_table t, fsck_item_fn fn, cs_error **err)
{
    fsck_job jobs[FSCK_MAX_WORKERS];
    bool started[FSCK_MAX_WORKERS] = { false };

    for (unsigned i = 0; i < nw; i++) {
        jobs[i] = (fsck_job){ .w = &w[i], .t = t, .fn = fn };
        w[i].rc = 0;
        /* The last slice runs on this thread. */
        if (i + 1 < nw && pthread_create(&w[i].th, NULL, fsck_thread, &jobs[i]) == 0)
            started[i] = true;
        else
            fsck_thread(&jobs[i]);
    }
    for (unsigned i = 0; i < nw; i++) {
        if (started[i])
            pthread_join(w[i].th, NULL);
    }
    for (unsigned i = 0; i < nw; i++) {
        if (w[i].rc < 0) {
            if (err && !*err)
                *err = cs_steal(&w[i].err);
            return w[i].rc;
        }
    }
    return 0;
}

/* ---- references between metadata records, on the calling thread ---- */

/* 1 present, 0 absent, <0 error. */
static int
fsck_has(cs_db *db, MDB_txn *txn, cs_table t, const void *key, size_t klen, MDB_val *v,
         cs_error **err)
{
    MDB_val tmp;
    int r = cs_db_get(db, txn, t, key, klen, v ? v : &tmp, err);
    if (r == -CS_ENOTFOUND)
        return 0;
    return r < 0 ? r : 1;
}

/* fsck_has for a tree: 2 when an imported cache holds it (its part not
 * fetched yet: rcache.h), which counts as present. */
static int
tree_has(cs_db *db, MDB_txn *txn, const void *tree, cs_error **err)
{
    int r = fsck_has(db, txn, CS_T_TREES, tree, 32, NULL, err);
    cs_digest d;
    memcpy(d.b, tree, 32);
    if (r == 0 && (r = cs_rcache_tree_remote(db, txn, &d, err)) == 1)
        return 2;
    return r;
}

typedef int (*fsck_rec_fn)(cs_db *db, MDB_txn *txn, fsck_list *l, const MDB_val *k,
                           const MDB_val *v, cs_error **err);

typedef struct fsck_each_ctx {
    cs_db *db;
    MDB_txn *txn;
    fsck_rec_fn fn;
    fsck_list *l;
} fsck_each_ctx;

static int
fsck_rec(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    fsck_each_ctx *w = ctx;
    return w->fn(w->db, w->txn, w->l, k, v, err);
}

static int
fsck_each(cs_db *db, MDB_txn *txn, cs_table t, fsck_rec_fn fn, fsck_list *l, cs_error **err)
{
    fsck_each_ctx w = { db, txn, fn, l };
    return cs_db_each(db, txn, t, "fsck", fsck_rec, &w, err);
}

static int
fsck_tree(cs_db *db, MDB_txn *txn, fsck_list *l, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    char s[CS_DIGEST_STR], s2[CS_DIGEST_STR];
    cs_digest got;
    cs_error *e = NULL;
    cs_tree *t = NULL;
    int r = 0;

    if (!key_ok(l, "tree", k))
        return 0;
    const char *name = hexs(k->mv_data, s);
    cs_sha256(v->mv_data, v->mv_size, &got);
    if (memcmp(got.b, k->mv_data, 32) != 0)
        fsck_add(l, "tree %s: digest mismatch", name);
    if (cs_tree_decode(v->mv_data, v->mv_size, &t, &e) < 0) {
        undecodable(l, "tree", name, e, "bad encoding");
        return 0;
    }
    for (size_t i = 0; i < t->n && r >= 0; i++) {
        const cs_entry *en = &t->e[i];
        MDB_val cv;
        if (!en->has_content) {
            if (en->size > 0)
                fsck_add(l, "tree %s: '%s': %llu bytes without content", name, en->path,
                         (unsigned long long) en->size);
            continue;
        }
        r = fsck_has(db, txn, CS_T_CONTENTS, en->content.b, 32, &cv, err);
        if (r == 0) {
            fsck_add(l, "tree %s: '%s': content %s missing", name, en->path,
                     hexs(&en->content, s2));
        } else if (r > 0 && cv.mv_size >= 8) {
            const uint8_t *p = cv.mv_data;
            uint64_t size = cs_be64_get(p);
            if (size != en->size)
                fsck_add(l, "tree %s: '%s': size %llu, content %s has %llu", name, en->path,
                         (unsigned long long) en->size, hexs(&en->content, s2),
                         (unsigned long long) size);
        }
    }
    cs_tree_free(t);
    return r < 0 ? r : 0;
}

static int
fsck_image(cs_db *db, MDB_txn *txn, fsck_list *l, const MDB_val *k, const MDB_val *v,
           cs_error **err)
{
    char s[CS_DIGEST_STR], s2[CS_DIGEST_STR];
    cs_digest got;
    cs_error *e = NULL;
    cs_image *img = NULL;
    json_error_t jerr;
    int r = 0;

    if (!key_ok(l, "image", k))
        return 0;
    const char *name = hexs(k->mv_data, s);
    if (cs_image_decode(v->mv_data, v->mv_size, &img, &e) < 0) {
        undecodable(l, "image", name, e, "bad record");
        return 0;
    }
    cs_sha256(img->config, img->config_len, &got);
    if (memcmp(got.b, k->mv_data, 32) != 0)
        fsck_add(l, "image %s: digest mismatch", name);
    json_t *j = json_loadb(img->config, img->config_len, 0, &jerr);
    if (!j)
        fsck_add(l, "image %s: config is not JSON: %s", name, jerr.text);
    json_decref(j);
    for (uint32_t i = 0; i < img->nlayers && r >= 0; i++) {
        r = tree_has(db, txn, img->layers[i].b, err);
        if (r == 0)
            fsck_add(l, "image %s: layer %u: tree %s missing", name, i, hexs(&img->layers[i], s2));
    }
    cs_image_free(img);
    return r < 0 ? r : 0;
}

static int
fsck_tag(cs_db *db, MDB_txn *txn, fsck_list *l, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    char s[CS_DIGEST_STR];
    int len = k->mv_size > 1024 ? 1024 : (int) k->mv_size;

    if (v->mv_size != 32) {
        fsck_add(l, "tag '%.*s': bad record", len, (const char *) k->mv_data);
        return 0;
    }
    int r = fsck_has(db, txn, CS_T_IMAGES, v->mv_data, 32, NULL, err);
    if (r == 0)
        fsck_add(l, "tag '%.*s': image %s missing", len, (const char *) k->mv_data,
                 hexs(v->mv_data, s));
    return r < 0 ? r : 0;
}

static int
fsck_layer_blob(cs_db *db, MDB_txn *txn, fsck_list *l, const MDB_val *k, const MDB_val *v,
                cs_error **err)
{
    char s[CS_DIGEST_STR];

    /* tree | compression, or tree | compression | diff_id of a replayed tar */
    if (k->mv_size != 33 && k->mv_size != 65) {
        fsck_add(l, "layer blob record with a %zu-byte key", k->mv_size);
        return 0;
    }
    const char *name = hexs(k->mv_data, s);
    unsigned comp = ((const uint8_t *) k->mv_data)[32];
    if (v->mv_size != 72)
        fsck_add(l, "layer blob of tree %s (compression %u): bad record", name, comp);
    int r = tree_has(db, txn, k->mv_data, err);
    if (r == 0)
        fsck_add(l, "layer blob of tree %s (compression %u): tree missing", name, comp);
    return r < 0 ? r : 0;
}

/* The original tar is not rebuilt here (export checks its sha256 each time):
 * the record must decode and its tree and contents must exist, sized as the
 * members say. */
static int
fsck_tarsplit(cs_db *db, MDB_txn *txn, fsck_list *l, const MDB_val *k, const MDB_val *v,
              cs_error **err)
{
    char s[CS_DIGEST_STR], s2[CS_DIGEST_STR];
    cs_error *e = NULL;
    cs_tarsplit *ts = NULL;
    MDB_val cv;

    if (!key_ok(l, "tarsplit", k))
        return 0;
    const char *name = hexs(k->mv_data, s);
    if (cs_tarsplit_decode(v->mv_data, v->mv_size, &ts, &e) < 0) {
        undecodable(l, "tarsplit", name, e, "bad record");
        return 0;
    }
    int r = tree_has(db, txn, ts->tree.b, err);
    if (r == 0)
        fsck_add(l, "tarsplit %s: tree %s missing", name, hexs(&ts->tree, s2));
    for (size_t i = 0; i < ts->n && r >= 0 && r != 2; i++) { /* 2: the contents come with it */
        const cs_tarsplit_member *m = &ts->m[i];
        if (!m->has_content) {
            if (m->size)
                fsck_add(l, "tarsplit %s: member %zu has %llu bytes and no content", name, i,
                         (unsigned long long) m->size);
            continue;
        }
        r = fsck_has(db, txn, CS_T_CONTENTS, m->content.b, 32, &cv, err);
        if (r == 0) {
            fsck_add(l, "tarsplit %s: member %zu: content %s missing", name, i,
                     hexs(&m->content, s2));
        } else if (r > 0 && cv.mv_size >= 8) {
            const uint8_t *p = cv.mv_data;
            uint64_t size = cs_be64_get(p);
            if (size != m->size)
                fsck_add(l, "tarsplit %s: member %zu: size %llu, content %s has %llu", name, i,
                         (unsigned long long) m->size, hexs(&m->content, s2),
                         (unsigned long long) size);
        }
    }
    cs_tarsplit_free(ts);
    return r < 0 ? r : 0;
}

/* A stat cache hit trusts that its content is stored (gc sweeps the records
 * first). Garbled records never answer: not checked. */
static int
fsck_statcache(cs_db *db, MDB_txn *txn, fsck_list *l, const MDB_val *k, const MDB_val *v,
               cs_error **err)
{
    static const cs_digest zero;
    char s[CS_DIGEST_STR];
    cs_digest d;
    if (!cs_statcache_record_content(v->mv_data, v->mv_size, &d) || cs_digest_eq(&d, &zero))
        return 0;
    int r = fsck_has(db, txn, CS_T_CONTENTS, d.b, 32, NULL, err);
    bool hashed = k->mv_size && ((const uint8_t *) k->mv_data)[0] == 0;
    int len = hashed ? 0 : k->mv_size > 512 ? 512 : (int) k->mv_size;
    if (r == 0)
        fsck_add(l, "stat cache record '%.*s%s': content %s missing", len,
                 (const char *) k->mv_data, hashed ? "(long path)" : "", hexs(&d, s));
    return r < 0 ? r : 0;
}

static int
fsck_refs_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    fsck_list *l = ctx;
    int r;

    if ((r = fsck_each(db, txn, CS_T_TREES, fsck_tree, l, err)) < 0
        || (r = fsck_each(db, txn, CS_T_IMAGES, fsck_image, l, err)) < 0
        || (r = fsck_each(db, txn, CS_T_TAGS, fsck_tag, l, err)) < 0
        || (r = fsck_each(db, txn, CS_T_LAYER_BLOBS, fsck_layer_blob, l, err)) < 0
        || (r = fsck_each(db, txn, CS_T_TARSPLIT, fsck_tarsplit, l, err)) < 0
        || (r = fsck_each(db, txn, CS_T_STATCACHE, fsck_statcache, l, err)) < 0)
        return r;
    return 0;
}

static int
fsck_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

int
cs_fsck(cs_store *s, cs_fsck_report_fn report, void *ctx, cs_error **err)
{
    fsck_shared sh = { .db = cs_store_db(s), .seen = cs_digestset_new(false) };
    fsck_worker w[FSCK_MAX_WORKERS];
    fsck_list all = { 0 };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned nw = ncpu < 1 ? 1 : ncpu > FSCK_MAX_WORKERS ? FSCK_MAX_WORKERS : (unsigned) ncpu;
    int r;

    pthread_mutex_init(&sh.lock, NULL);
    memset(w, 0, sizeof(w));
    for (unsigned i = 0; i < nw; i++) {
        w[i].sh = &sh;
        w[i].lo = i * 256 / nw;
        w[i].hi = (i + 1) * 256 / nw;
        w[i].sha = cs_sha256_new();
        cs_buf_init(&w[i].buf);
    }
    r = fsck_parallel(w, nw, CS_T_CONTENTS, fsck_content, err);
    if (r >= 0)
        r = fsck_parallel(w, nw, CS_T_CHUNKS, fsck_orphan_chunk, err);
    if (r >= 0)
        r = cs_db_read(sh.db, fsck_refs_fn, &all, err);

    for (unsigned i = 0; i < nw; i++) {
        for (size_t j = 0; j < w[i].problems.n; j++)
            fsck_add(&all, "%s", w[i].problems.v[j]);
        cs_strv_release(&w[i].problems);
        cs_error_free(w[i].err);
        cs_buf_release(&w[i].buf);
        cs_sha256_free(w[i].sha);
    }
    cs_digestset_free(sh.seen);
    pthread_mutex_destroy(&sh.lock);
    if (r >= 0) {
        if (all.n)
            qsort(all.v, all.n, sizeof(*all.v), fsck_cmp);
        for (size_t i = 0; i < all.n; i++) {
            if (report)
                report(ctx, all.v[i]);
        }
        r = all.n > INT32_MAX ? INT32_MAX : (int) all.n;
    }
    cs_strv_release(&all);
    return r < 0 ? cs_err_wrap(err, "fsck") : r;
}
