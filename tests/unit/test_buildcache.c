/* test_buildcache.c - the build cache records (store/buildcache.c): round
 * trips, misses, malformed records, last-used refresh and gc's keep policy. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cstore/buildcache.h"
#include "cstore/gc.h"
#include "cstore/oneshot.h"
#include "cstore/store.h"
#include "testutil.h"

typedef test_sandbox fx;

static void
cache_put_then_get_returns_the_entry(void **state)
{
    fx *f = *state;
    cs_digest k1 = test_sha("copy"), k2 = test_sha("workdir");
    cs_cache_entry in = { 0, true, test_store_dir_tree(f->db, "app") }, out;
    assert_int_equal(cs_cache_put(f->db, NULL, &k1, &in, &f->err), 0);
    assert_int_equal(cs_cache_get(f->db, NULL, &k1, &out, &f->err), 0);
    assert_true(out.has_layer);
    assert_true(cs_digest_eq(&out.tree, &in.tree));
    uint64_t now = (uint64_t) time(NULL);
    assert_true(out.last_used <= now && out.last_used + 5 >= now);

    cs_cache_entry none = { 1234, false, { { 0 } } };
    assert_int_equal(cs_cache_put(f->db, NULL, &k2, &none, &f->err), 0);
    assert_int_equal(cs_cache_get(f->db, NULL, &k2, &out, &f->err), 0);
    assert_false(out.has_layer);
    assert_int_equal(out.last_used, 1234);
}

static void
cache_get_of_a_missing_key_is_not_found(void **state)
{
    fx *f = *state;
    cs_digest k = test_sha("nothing");
    cs_cache_entry out;
    assert_int_equal(cs_cache_get(f->db, NULL, &k, &out, &f->err), -CS_ENOTFOUND);
    assert_null(f->err);
}

static void
cache_get_misses_when_the_layer_tree_is_gone(void **state)
{
    fx *f = *state;
    cs_digest k = test_sha("collected"), t = test_sha("no such tree");
    cs_cache_entry in = { 0, true, t }, out;
    assert_int_equal(cs_cache_put(f->db, NULL, &k, &in, &f->err), 0);
    assert_int_equal(cs_cache_get(f->db, NULL, &k, &out, &f->err), -CS_ENOTFOUND);
}

static void
cache_refuses_a_short_or_long_record_as_corrupt(void **state)
{
    fx *f = *state;
    uint8_t bytes[64] = { 0 };
    cs_cache_entry out;
    assert_int_equal(cs_cache_decode(bytes, 40, &out, &f->err), -CS_ECORRUPT);
    cs_error_clear(&f->err);
    assert_int_equal(cs_cache_decode(bytes, 42, &out, &f->err), -CS_ECORRUPT);
    cs_error_clear(&f->err);
    cs_digest garbled = test_sha("garbled");
    test_put_raw(f->s, CS_T_CACHE, garbled.b, 32, bytes, 7);
    assert_int_equal(cs_cache_get(f->db, NULL, &garbled, &out, &f->err), -CS_ECORRUPT);
    assert_non_null(f->err);
    assert_int_equal(f->err->code, CS_ECORRUPT);
}

static void
cache_encode_and_decode_agree_on_the_layout(void **state)
{
    fx *f = *state;
    cs_cache_entry in = { 0x0102030405060708ull, true, test_sha("tree") }, out;
    uint8_t v[CS_CACHE_RECORD_LEN];
    cs_cache_encode(&in, v);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[7], 8);
    assert_int_equal(v[8], 1);
    assert_memory_equal(v + 9, in.tree.b, 32);
    assert_int_equal(cs_cache_decode(v, sizeof(v), &out, &f->err), 0);
    assert_int_equal(out.last_used, in.last_used);
    assert_true(out.has_layer);
    assert_true(cs_digest_eq(&out.tree, &in.tree));
}

static void
cache_touch_refreshes_only_entries_not_used_lately(void **state)
{
    fx *f = *state;
    uint64_t now = (uint64_t) time(NULL);
    cs_digest keys[3] = { test_sha("stale"), test_sha("fresh"), test_sha("absent") };
    cs_cache_entry stale = { now - 2 * CS_CACHE_TOUCH_SLACK, false, { { 0 } } };
    cs_cache_entry fresh = { now - 10, false, { { 0 } } }, out;
    assert_int_equal(cs_cache_put(f->db, NULL, &keys[0], &stale, &f->err), 0);
    assert_int_equal(cs_cache_put(f->db, NULL, &keys[1], &fresh, &f->err), 0);
    assert_int_equal(cs_cache_touch(f->db, NULL, keys, 3, &f->err), 0);
    assert_int_equal(cs_cache_get(f->db, NULL, &keys[0], &out, &f->err), 0);
    assert_true(out.last_used >= now);
    assert_int_equal(cs_cache_get(f->db, NULL, &keys[1], &out, &f->err), 0);
    assert_int_equal(out.last_used, now - 10);
}

static int
count_fn(void *ctx, const cs_digest *key, const cs_cache_entry *e, cs_error **err)
{
    (void) key, (void) e, (void) err;
    (*(int *) ctx)++;
    return 0;
}

static void
cache_foreach_skips_malformed_records(void **state)
{
    fx *f = *state;
    cs_digest k = test_sha("good");
    cs_cache_entry e = { 0, false, { { 0 } } };
    assert_int_equal(cs_cache_put(f->db, NULL, &k, &e, &f->err), 0);
    cs_digest bad = test_sha("bad");
    test_put_raw(f->s, CS_T_CACHE, bad.b, 32, "xyz", 3);
    int n = 0;
    assert_int_equal(cs_cache_foreach(f->db, NULL, count_fn, &n, &f->err), 0);
    assert_int_equal(n, 1);
}

static void
gc_keeps_recently_used_entries_and_drops_old_and_malformed_ones(void **state)
{
    fx *f = *state;
    uint64_t now = (uint64_t) time(NULL);
    cs_digest old = test_sha("old"), recent = test_sha("recent");
    cs_cache_entry o = { now - 30 * 24 * 3600, false, { { 0 } } }, r = { 0, false, { { 0 } } };
    cs_cache_entry out;
    assert_int_equal(cs_cache_put(f->db, NULL, &old, &o, &f->err), 0);
    assert_int_equal(cs_cache_put(f->db, NULL, &recent, &r, &f->err), 0);
    cs_digest bad = test_sha("bad");
    test_put_raw(f->s, CS_T_CACHE, bad.b, 32, "xyz", 3);
    cs_store_close(f->s);
    assert_int_equal(cs_store_open(f->root, CS_OPEN_EXCLUSIVE, &f->s, &f->err), 0);
    f->db = cs_store_db(f->s);
    cs_gc_opts go = { .keep_storage = CS_GC_KEEP_STORAGE, .keep_duration = CS_GC_KEEP_DURATION };
    cs_gc_stats st;
    assert_int_equal(cs_gc_ex(f->s, &go, &st, &f->err), 0);
    assert_int_equal(st.cache, 2);
    assert_int_equal(cs_cache_get(f->db, NULL, &old, &out, &f->err), -CS_ENOTFOUND);
    assert_int_equal(cs_cache_get(f->db, NULL, &recent, &out, &f->err), 0);
}

int
main(void)
{
#define T(n) cmocka_unit_test_setup_teardown(n, test_sandbox_setup, test_sandbox_teardown)
    const struct CMUnitTest tests[] = {
        T(cache_put_then_get_returns_the_entry),
        T(cache_get_of_a_missing_key_is_not_found),
        T(cache_get_misses_when_the_layer_tree_is_gone),
        T(cache_refuses_a_short_or_long_record_as_corrupt),
        T(cache_encode_and_decode_agree_on_the_layout),
        T(cache_touch_refreshes_only_entries_not_used_lately),
        T(cache_foreach_skips_malformed_records),
        T(gc_keeps_recently_used_entries_and_drops_old_and_malformed_ones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
