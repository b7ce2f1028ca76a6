/* test_copykey.c - the copy_keys records (store/copykey.c): round trips,
 * misses, garbled records, and gc dropping them with their top layer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "cstore/buildcache.h"
#include "cstore/copykey.h"
#include "cstore/gc.h"
#include "cstore/oneshot.h"
#include "cstore/store.h"
#include "testutil.h"

typedef test_sandbox fx;

static void
copykey_put_then_get_returns_the_sources_digest(void **state)
{
    fx *f = *state;
    cs_digest req = test_sha("req"), src = test_sha("sources"), top = test_sha("top"), out;
    assert_int_equal(cs_copykey_put(f->db, &req, &src, &top, &f->err), 0);
    assert_int_equal(cs_copykey_get(f->db, &req, &out, &f->err), 1);
    assert_true(cs_digest_eq(&out, &src));
}

static void
copykey_get_of_an_unknown_or_garbled_request_is_a_miss(void **state)
{
    fx *f = *state;
    cs_digest req = test_sha("never"), bad = test_sha("bad"), out;
    assert_int_equal(cs_copykey_get(f->db, &req, &out, &f->err), 0);
    test_put_raw(f->s, CS_T_COPY_KEYS, bad.b, 32, "short", 5);
    assert_int_equal(cs_copykey_get(f->db, &bad, &out, &f->err), 0);
    assert_null(f->err);
}

static void
copykey_record_names_its_top_layer_for_gc(void **state)
{
    (void) state;
    uint8_t v[CS_COPYKEY_VLEN];
    cs_digest top = test_sha("top"), got;
    memset(v, 0, 32);
    memcpy(v + 32, top.b, 32);
    assert_true(cs_copykey_record_tree(v, sizeof(v), &got));
    assert_true(cs_digest_eq(&got, &top));
    assert_false(cs_copykey_record_tree(v, 63, &got));
}

static void
gc_drops_records_whose_top_layer_it_frees_and_keeps_the_others(void **state)
{
    fx *f = *state;
    cs_digest kept = test_store_dir_tree(f->db, "kept"), gone = test_store_dir_tree(f->db, "gone");
    cs_cache_entry e = { 0, true, kept };
    cs_digest key = test_sha("cache key");
    assert_int_equal(cs_cache_put(f->db, NULL, &key, &e, &f->err), 0);
    cs_digest r1 = test_sha("r1"), r2 = test_sha("r2"), r3 = test_sha("r3"), s = test_sha("s");
    assert_int_equal(cs_copykey_put(f->db, &r1, &s, &kept, &f->err), 0);
    assert_int_equal(cs_copykey_put(f->db, &r2, &s, &gone, &f->err), 0);
    test_put_raw(f->s, CS_T_COPY_KEYS, r3.b, 32, "xyz", 3);
    cs_store_close(f->s);
    assert_int_equal(cs_store_open(f->root, CS_OPEN_EXCLUSIVE, &f->s, &f->err), 0);
    f->db = cs_store_db(f->s);
    cs_gc_opts go = { .keep_storage = CS_GC_KEEP_STORAGE, .keep_duration = CS_GC_KEEP_DURATION };
    cs_gc_stats st;
    assert_int_equal(cs_gc_ex(f->s, &go, &st, &f->err), 0);
    assert_int_equal(st.copy_keys, 2);
    cs_digest out;
    assert_int_equal(cs_copykey_get(f->db, &r1, &out, &f->err), 1);
    assert_int_equal(cs_copykey_get(f->db, &r2, &out, &f->err), 0);
}

int
main(void)
{
#define T(n) cmocka_unit_test_setup_teardown(n, test_sandbox_setup, test_sandbox_teardown)
    const struct CMUnitTest tests[] = {
        T(copykey_put_then_get_returns_the_sources_digest),
        T(copykey_get_of_an_unknown_or_garbled_request_is_a_miss),
        T(copykey_record_names_its_top_layer_for_gc),
        T(gc_drops_records_whose_top_layer_it_frees_and_keeps_the_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
