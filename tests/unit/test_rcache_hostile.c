/* test_rcache_hostile.c - what a hostile or broken cache (a registry's
 * bytes, records an import put) can make a fetch do: one-line errors,
 * bounded memory and stack, nothing stored. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cstore/rcache.h"
#include "digestset.h"
#include "rcache_int.h"
#include "testutil.h"

static cs_digest
nth(size_t i)
{
    char name[32];
    snprintf(name, sizeof(name), "chunk %zu", i);
    return test_sha(name);
}

/* remote_chunks: chunk i a delta on chunk i + 1, for i < n (the last one
 * plain), all in one pack (not there) of the cache dir dir. */
static void
put_chain(cs_store *s, const char *dir, size_t n)
{
    MDB_txn *txn = test_begin(s, true);
    cs_db *db = cs_store_db(s);
    cs_digest pack = test_sha("pack");
    cs_buf b;
    cs_buf_init(&b);
    for (size_t i = 0; i <= n; i++) {
        uint8_t place[12], tail[2 + 32];
        cs_be64_put(place, (uint64_t) i * 100);
        cs_be32_put(place + 8, 100);
        cs_digest d = nth(i), base = nth(i + 1);
        tail[0] = 1; /* depth: what a hostile toc says */
        tail[1] = 1;
        memcpy(tail + 2, base.b, 32);
        b.len = 0;
        rc_remote_encode(&b, &pack, place, tail, i < n ? sizeof(tail) : 0, dir);
        cs_error *err = NULL;
        assert_true(cs_db_put(db, txn, CS_T_REMOTE, d.b, 32, b.data, b.len, 0, &err) >= 0);
    }
    cs_buf_release(&b);
    test_commit(txn);
}

static void
a_delta_chain_deeper_than_any_export_writes_fails_the_fetch_in_one_line(void **state)
{
    test_sandbox *sb = *state;
    /* Deep enough to overflow the stack if each link were a recursion. */
    put_chain(sb->s, sb->dir, 200000);
    cs_digest top = nth(0);
    assert_int_equal(rc_fetch_chunks(sb->s, &top, 1, NULL, &sb->err), -CS_ECORRUPT);
    test_assert_msg(sb->err, "deeper than");
    assert_null(strchr(sb->err->msg, '\n'));
    cs_error_clear(&sb->err);
    assert_int_equal(test_count(sb->s, CS_T_CHUNKS), 0);
    assert_int_equal(test_count(sb->s, CS_T_REMOTE), 200001);
}

static void
a_chain_as_deep_as_an_export_writes_is_still_wanted_whole(void **state)
{
    test_sandbox *sb = *state;
    /* 4 deltas, then the plain chunk: every link wanted, so the fetch gets
     * as far as the (missing) cache dir. */
    put_chain(sb->s, sb->dir, RC_DELTA_DEPTH_MAX);
    cs_digest top = nth(0);
    int r = rc_fetch_chunks(sb->s, &top, 1, NULL, &sb->err);
    assert_true(r < 0);
    assert_null(strstr(sb->err->msg, "deeper than"));
    cs_error_clear(&sb->err);
}

static void
a_delta_claiming_more_than_the_largest_chunk_is_refused_before_any_allocation(void **state)
{
    test_sandbox *sb = *state;
    uint8_t raw[4096], prefix[4096];
    test_fill_random(raw, sizeof(raw), 1);
    memcpy(prefix, raw, sizeof(prefix));
    prefix[100] ^= 1;
    cs_digest d;
    cs_sha256(raw, sizeof(raw), &d);
    cs_buf z, out;
    cs_buf_init(&z);
    cs_buf_init(&out);
    rc_delta_encode(raw, sizeof(raw), prefix, sizeof(prefix), &z);
    assert_int_equal(
        rc_delta_decode(&d, z.data, z.len, 0xfffffff0u, prefix, sizeof(prefix), &out, &sb->err),
        -CS_ECORRUPT);
    test_assert_msg(sb->err, "sha256:");
    cs_error_clear(&sb->err);
    assert_true(out.cap < ((size_t) 1 << 20)); /* not the 4 GiB it claims */
    assert_int_equal(out.len, 0);
    /* The honest length still decodes. */
    assert_int_equal(
        rc_delta_decode(&d, z.data, z.len, sizeof(raw), prefix, sizeof(prefix), &out, &sb->err), 0);
    assert_memory_equal(out.data, raw, sizeof(raw));
    cs_buf_release(&z);
    cs_buf_release(&out);
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

typedef struct chain_gc {
    cs_digestset *kept;
    int r;
    cs_error **err;
} chain_gc;

static int
gc_mark_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    chain_gc *c = ctx;
    (void) err;
    c->r = cs_rcache_gc_mark(db, txn, c->kept, c->err);
    return 0;
}

static void
gc_walks_a_long_delta_chain_once_not_once_per_link(void **state)
{
    test_sandbox *sb = *state;
    enum { N = 30000 }; /* a pass per link: 10^9 record visits */
    put_chain(sb->s, sb->dir, N);
    cs_digest top = nth(0);
    double t0 = now_s();
    /* gc's mark: chunk 0 is kept, so is its whole chain. */
    chain_gc c = { cs_digestset_new(false), 0, &sb->err };
    cs_digestset_add(c.kept, top.b);
    assert_int_equal(cs_db_read(cs_store_db(sb->s), gc_mark_fn, &c, &sb->err), 0);
    assert_int_equal(c.r, 0);
    assert_int_equal(cs_digestset_count(c.kept), N + 1);
    /* gc's sweep of remote records: the same chain stays (chunk 0 kept). */
    uint64_t dropped = 0;
    cs_digestset_free(c.kept);
    c.kept = cs_digestset_new(false);
    cs_digestset_add(c.kept, top.b);
    assert_int_equal(cs_rcache_gc(cs_store_db(sb->s), c.kept, true, &dropped, &sb->err), 0);
    assert_int_equal(dropped, 0);
    cs_digestset_free(c.kept);
    double took = now_s() - t0;
    if (took > 20) /* linear: well under a second */
        fail_msg("gc took %.1f s over a chain of %d deltas", took, N);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            a_delta_chain_deeper_than_any_export_writes_fails_the_fetch_in_one_line,
            test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(a_chain_as_deep_as_an_export_writes_is_still_wanted_whole,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(
            a_delta_claiming_more_than_the_largest_chunk_is_refused_before_any_allocation,
            test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(gc_walks_a_long_delta_chain_once_not_once_per_link,
                                        test_sandbox_setup, test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
