/* test_rawcache.c - the raw chunk cache (rawcache.c) and its two users: an
 * ingest's commit publishes the chunks its workers hashed (an aborted or
 * reset ingest's never), and cs_content_read serves them from memory. The
 * bytes and a layer's diff id are the same with and without the cache. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "commit_int.h"
#include "cstore/content.h"
#include "cstore/export.h"
#include "cstore/rawcache.h"

typedef test_sandbox fx;

enum { BIG = 700 * 1024 };

/* Each test starts from an empty cache with the default budget. */
static int
setup(void **state)
{
    cs_rawcache_set_budget(0);
    cs_rawcache_set_budget(CS_RAWCACHE_BUDGET);
    return test_sandbox_setup(state);
}

static cs_rawcache_stats
stats(void)
{
    cs_rawcache_stats st;
    cs_rawcache_stats_get(&st);
    return st;
}

/* A layer of one file app (n seeded bytes) and a small file, ingested and
 * committed; *content gets app's content digest. */
static cs_digest
ingest_layer(fx *f, const uint8_t *p, size_t n, cs_digest *content)
{
    test_tar t;
    test_tar_begin(&t);
    test_tar_file(&t, "app", p, n);
    test_tar_file(&t, "etc/small", "hello\n", 6);
    test_tar_end(&t);
    cs_layer_info info;
    test_ingest_tar(f->s, t.out.data, t.out.len, 0, &info, NULL);
    cs_buf_release(&t.out);
    cs_tree *tree = test_get_tree(f->s, &info.tree);
    const cs_entry *e = cs_tree_find(tree, "app");
    assert_non_null(e);
    *content = e->content;
    cs_tree_free(tree);
    return info.tree;
}

static int
read_content(fx *f, const cs_digest *d, cs_buf *out)
{
    out->len = 0;
    MDB_txn *txn = test_begin(f->s, false);
    int r = cs_content_read(f->db, txn, d, true, test_sink_buf, out, &f->err);
    mdb_txn_abort(txn);
    return r;
}

static void
chunks_of(fx *f, const cs_digest *d, cs_chunk_ref **refs, uint32_t *n)
{
    uint64_t size;
    MDB_txn *txn = test_begin(f->s, false);
    assert_int_equal(cs_content_get(f->db, txn, d, &size, refs, n, &f->err), 0);
    mdb_txn_abort(txn);
}

/* ingest_layer of BIG seeded bytes (seed) into p; *c: app's content, *refs
 * (caller frees) and *n: its chunks. */
static void
ingest_app(fx *f, uint8_t *p, uint64_t seed, cs_digest *c, cs_chunk_ref **refs, uint32_t *n)
{
    test_fill_random(p, BIG, seed);
    ingest_layer(f, p, BIG, c);
    chunks_of(f, c, refs, n);
}

static int
count_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) p;
    (void) err;
    *(size_t *) ctx += n;
    return 0;
}

/* 1 when the cache serves chunk d (len bytes) for db. */
static int
served(cs_db *db, const cs_digest *d, uint32_t len)
{
    size_t got = 0;
    int r = cs_rawcache_read(db, d, len, count_sink, &got, NULL);
    if (r == 1)
        assert_int_equal(got, len);
    return r;
}

static void
a_committed_ingests_chunks_are_read_from_memory_byte_for_byte(void **state)
{
    fx *f = *state;
    static uint8_t p[BIG];
    cs_digest c;
    cs_chunk_ref *refs;
    uint32_t n;
    ingest_app(f, p, 11, &c, &refs, &n);
    assert_true(n > 2);
    assert_true(stats().entries >= n);

    /* Through the cache: no chunk read from the store. */
    cs_buf a, b;
    cs_buf_init(&a);
    cs_buf_init(&b);
    uint64_t hits = stats().hits, misses = stats().misses;
    assert_int_equal(read_content(f, &c, &a), 0);
    assert_int_equal(stats().hits - hits, n);
    assert_int_equal(stats().misses, misses);
    assert_int_equal(a.len, sizeof p);
    assert_memory_equal(a.data, p, sizeof p);

    /* From the store (cache emptied): the same bytes. */
    cs_rawcache_set_budget(0);
    assert_int_equal(read_content(f, &c, &b), 0);
    assert_int_equal(stats().hits - hits, n);
    assert_int_equal(b.len, a.len);
    assert_memory_equal(b.data, a.data, a.len);
    cs_buf_release(&a);
    cs_buf_release(&b);
    free(refs);
}

static void
a_chunk_in_the_cache_is_served_even_where_the_store_went_bad(void **state)
{
    /* Proves the bytes come from memory: a corrupted record in the store is
     * not read while the cache holds the chunk, and is found once it does
     * not (the store's read still verifies). */
    fx *f = *state;
    static uint8_t p[BIG];
    cs_digest c;
    cs_chunk_ref *refs;
    uint32_t n;
    ingest_app(f, p, 12, &c, &refs, &n);
    uint8_t *rec = cs_xmalloc(5 + refs[1].len);
    rec[0] = CS_CODEC_RAW;
    cs_be32_put(rec + 1, refs[1].len);
    memset(rec + 5, 0xab, refs[1].len);
    test_put_raw(f->s, CS_T_CHUNKS, refs[1].d.b, 32, rec, 5 + refs[1].len);
    free(rec);

    cs_buf a;
    cs_buf_init(&a);
    assert_int_equal(read_content(f, &c, &a), 0);
    assert_memory_equal(a.data, p, sizeof p);
    cs_rawcache_forget(f->db);
    assert_int_equal(read_content(f, &c, &a), -CS_ECORRUPT);
    test_assert_msg(f->err, "do not match digest");
    cs_buf_release(&a);
    free(refs);
}

/* Ingests the n bytes of p as one file and frees the ingest uncommitted,
 * or resets it first (then ingests q and commits). */
static void
ingest_then_drop(fx *f, const uint8_t *p, size_t n, bool reset, const uint8_t *q, cs_digest *dq)
{
    char path[200];
    snprintf(path, sizeof path, "%s/file", f->work);
    test_write_file(path, p, n, 0644);
    cs_ingest *ing;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &f->err), 0);
    cs_digest d;
    uint64_t size;
    cs_autoclose int fd = open(path, O_RDONLY);
    assert_int_equal(cs_ingest_fd(ing, fd, &d, &size, &f->err), 0);
    assert_int_equal(size, n);
    if (reset) {
        assert_int_equal(cs_ingest_reset(ing, &f->err), 0);
        test_write_file(path, q, n, 0644);
        cs_autoclose int fd2 = open(path, O_RDONLY);
        assert_int_equal(cs_ingest_fd(ing, fd2, dq, &size, &f->err), 0);
        assert_int_equal(cs_ingest_commit(ing, &f->err), 0);
    }
    cs_ingest_free(ing);
}

static void
an_aborted_or_reset_ingests_chunks_are_never_served(void **state)
{
    fx *f = *state;
    static uint8_t p[12000], q[12000];
    test_fill_random(p, sizeof p, 13);
    test_fill_random(q, sizeof q, 14);
    cs_digest dp, dq; /* one chunk each: the chunk's digest is the file's */
    cs_sha256(p, sizeof p, &dp);

    ingest_then_drop(f, p, sizeof p, false, NULL, NULL);
    assert_int_equal(stats().entries, 0);
    assert_int_equal(served(f->db, &dp, sizeof p), 0);
    assert_false(test_has(f->s, CS_T_CHUNKS, dp.b, 32));

    ingest_then_drop(f, p, sizeof p, true, q, &dq);
    assert_int_equal(served(f->db, &dp, sizeof p), 0);
    assert_int_equal(served(f->db, &dq, sizeof q), 1);
    assert_int_equal(stats().entries, 1);
    /* Another store's reads are not served this store's chunks. */
    cs_store *b;
    assert_int_equal(test_peer_open(f, &b, NULL), 0);
    assert_int_equal(served(cs_store_db(b), &dq, sizeof q), 0);
    cs_store_close(b);
    /* Nor a reopened db (a new cs_db): the old one's entries went with it. */
    assert_int_equal(cs_store_reopen_db(f->s, &f->err), 0);
    f->db = cs_store_db(f->s);
    assert_int_equal(stats().entries, 0);
}

static void
a_batch_past_its_cap_keeps_nothing(void **state)
{
    fx *f = *state;
    static uint8_t p[3][1000];
    cs_digest d[3];
    for (int i = 0; i < 3; i++) {
        test_fill_random(p[i], sizeof p[i], 20 + (uint64_t) i);
        cs_sha256(p[i], sizeof p[i], &d[i]);
    }
    cs_rawcache_batch *b = cs_rawcache_batch_new(2500);
    cs_rawcache_batch_offer(b, &d[0], p[0], 1000);
    cs_rawcache_batch_offer(b, &d[1], p[1], 1000);
    cs_rawcache_batch_offer(b, &d[2], p[2], 1000); /* 3000 > 2500 */
    cs_rawcache_batch_offer(b, &d[0], p[0], 1000); /* full: refused */
    cs_rawcache_publish(b, f->db);
    assert_int_equal(stats().entries, 0);
    /* Cleared, it takes chunks again. */
    cs_rawcache_batch_clear(b);
    cs_rawcache_batch_offer(b, &d[0], p[0], 1000);
    cs_rawcache_batch_offer(b, &d[0], p[0], 1000); /* the same chunk twice: kept once */
    cs_rawcache_publish(b, f->db);
    assert_int_equal(stats().entries, 1);
    assert_int_equal(served(f->db, &d[0], 1000), 1);
    assert_int_equal(served(f->db, &d[0], 999), 0); /* not the length the content says */
    cs_rawcache_batch_free(b);
}

enum { NE = 12, ELEN = 20000 };

static void
publish_one(cs_db *db, const uint8_t *p, cs_digest *d)
{
    cs_sha256(p, ELEN, d);
    cs_rawcache_batch *b = cs_rawcache_batch_new(CS_RAWCACHE_INGEST_CAP);
    cs_rawcache_batch_offer(b, d, p, ELEN);
    cs_rawcache_publish(b, db);
    cs_rawcache_batch_free(b);
}

static void
eviction_keeps_the_cache_within_its_budget_least_recently_used_first(void **state)
{
    fx *f = *state;
    static uint8_t p[NE][ELEN];
    cs_digest d[NE];
    cs_rawcache_set_budget(5 * ELEN);
    for (int i = 0; i < 6; i++) {
        test_fill_random(p[i], ELEN, 30 + (uint64_t) i);
        publish_one(f->db, p[i], &d[i]);
        assert_true(stats().bytes <= 5 * ELEN);
    }
    assert_int_equal(stats().entries, 5);
    assert_int_equal(served(f->db, &d[0], ELEN), 0); /* the oldest went */
    assert_int_equal(served(f->db, &d[1], ELEN), 1); /* now the most recently used */
    test_fill_random(p[6], ELEN, 36);
    publish_one(f->db, p[6], &d[6]);
    assert_int_equal(served(f->db, &d[1], ELEN), 1);
    assert_int_equal(served(f->db, &d[2], ELEN), 0); /* the least recently used went */
    assert_int_equal(stats().bytes, 5 * ELEN);
    /* A chunk bigger than the whole budget is not kept. */
    cs_rawcache_set_budget(ELEN - 1);
    assert_int_equal(stats().entries, 0);
    publish_one(f->db, p[7], &d[7]);
    assert_int_equal(stats().entries, 0);
}

typedef struct reader {
    cs_db *db;
    cs_digest *d;
    atomic_bool *done;
    int hits, reads;
} reader;

static int
check_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) err;
    /* the bytes must be the chunk's: its sha256 is its digest */
    cs_digest got;
    cs_sha256(p, n, &got);
    return cs_digest_eq(&got, ctx) ? 0 : -CS_ECORRUPT;
}

static void *
read_loop(void *arg)
{
    reader *r = arg;
    /* Until the publisher is done and this reader had a hit: reads race
     * with publishing and eviction all along. */
    for (int k = 0; !atomic_load(r->done) || !r->hits; k++) {
        int i = k % NE;
        r->reads++;
        int rc = cs_rawcache_read(r->db, &r->d[i], ELEN, check_sink, &r->d[i], NULL);
        if (rc < 0)
            return (void *) 1;
        r->hits += rc;
    }
    return NULL;
}

static void
two_threads_read_while_one_publishes_and_evicts(void **state)
{
    fx *f = *state;
    static uint8_t p[NE][ELEN];
    static cs_digest d[NE];
    for (int i = 0; i < NE; i++) {
        test_fill_random(p[i], ELEN, 40 + (uint64_t) i);
        cs_sha256(p[i], ELEN, &d[i]);
    }
    cs_rawcache_set_budget(4 * ELEN); /* always evicting */
    atomic_bool done;
    atomic_init(&done, false);
    reader r[2] = { { f->db, d, &done, 0, 0 }, { f->db, d, &done, 0, 0 } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, read_loop, &r[i]), 0);
    for (int k = 0; k < 600; k++)
        publish_one(f->db, p[k % NE], &d[k % NE]);
    atomic_store(&done, true);
    /* A reader still without a hit gets one from what is left. */
    for (int i = 0; i < 2; i++) {
        void *ret;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
    assert_true(stats().bytes <= 4 * ELEN);
    assert_true(r[0].hits > 0 && r[1].hits > 0);
    print_message("reads %d + %d, hits %d + %d\n", r[0].reads, r[1].reads, r[0].hits, r[1].hits);
}

static int
hash_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) err;
    cs_buf_append(ctx, p, n);
    return 0;
}

static void
a_layers_diff_id_is_the_same_with_and_without_the_cache(void **state)
{
    fx *f = *state;
    static uint8_t p[BIG];
    test_fill_random(p, sizeof p, 15);
    cs_digest c;
    cs_digest tree = ingest_layer(f, p, sizeof p, &c);
    cs_layer_blob with, without;
    bool fresh;
    uint64_t hits = stats().hits;
    MDB_txn *txn = test_begin(f->s, false);
    assert_int_equal(commit_diff_id_of(f->db, txn, &tree, &with, &fresh, NULL, &f->err), 0);
    assert_true(fresh);
    assert_true(stats().hits > hits);

    cs_rawcache_set_budget(0);
    hits = stats().hits;
    assert_int_equal(commit_diff_id_of(f->db, txn, &tree, &without, &fresh, NULL, &f->err), 0);
    assert_int_equal(stats().hits, hits);
    assert_memory_equal(&with.diff_id, &without.diff_id, sizeof(cs_digest));
    assert_int_equal(with.size, without.size);

    /* The tar itself, written from the store and hashed here. */
    cs_tree *t = test_get_tree(f->s, &tree);
    cs_buf tar;
    cs_buf_init(&tar);
    assert_int_equal(cs_tree_write_tar(f->db, txn, t, hash_sink, &tar, &f->err), 0);
    mdb_txn_abort(txn);
    cs_digest d;
    cs_sha256(tar.data, tar.len, &d);
    assert_memory_equal(&d, &with.diff_id, sizeof d);
    assert_int_equal(tar.len, with.size);
    cs_buf_release(&tar);
    cs_tree_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            a_committed_ingests_chunks_are_read_from_memory_byte_for_byte, setup,
            test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(
            a_chunk_in_the_cache_is_served_even_where_the_store_went_bad, setup,
            test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(an_aborted_or_reset_ingests_chunks_are_never_served, setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(a_batch_past_its_cap_keeps_nothing, setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(
            eviction_keeps_the_cache_within_its_budget_least_recently_used_first, setup,
            test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(two_threads_read_while_one_publishes_and_evicts, setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(a_layers_diff_id_is_the_same_with_and_without_the_cache,
                                        setup, test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
