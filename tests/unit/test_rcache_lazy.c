/* test_rcache_lazy.c - lazy index parts (rcache_lazy.c) seen from a store
 * that imported a cache and left its trees remote: what it may still do
 * with them (export them again, gc, fsck). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cstore/buildcache.h"
#include "cstore/gc.h"
#include "cstore/rcache.h"
#include "rcache_int.h"
#include "testutil.h"

#define SIZE  200000
#define CHUNK 16384

typedef struct fx {
    test_sandbox sb;
    cs_store *b; /* the importing store, opened by open_b */
    char cache[192], cache2[192];
    cs_digest key, tree;
    uint8_t data[SIZE];
} fx;

static int
setup(void **state)
{
    int r = test_sandbox_new(state, sizeof(fx), 0);
    fx *f = *state;
    if (r >= 0) {
        snprintf(f->cache, sizeof(f->cache), "%s/cache", f->sb.work);
        snprintf(f->cache2, sizeof(f->cache2), "%s/cache2", f->sb.work);
        test_fill_random(f->data, SIZE, 9);
    }
    return r;
}

static int
teardown(void **state)
{
    cs_store_close(((fx *) *state)->b);
    return test_sandbox_teardown(state);
}

static void
open_b(fx *f)
{
    assert_int_equal(test_peer_open(&f->sb, &f->b, NULL), 0);
}

/* Store a's one entry (a tree with one file) exported; store b imports it:
 * the entry's tree stays remote there. */
static void
a_exports_b_imports(fx *f)
{
    cs_store *a = f->sb.s;
    MDB_txn *txn = test_begin(a, true);
    cs_db *db = cs_store_db(a);
    cs_digest c = test_put_content(db, txn, f->data, SIZE, CHUNK);
    cs_tree *t = cs_tree_new();
    test_tree_add_file(t, "app", &c, SIZE);
    f->tree = test_put_tree(db, txn, t);
    f->key = test_sha("the step");
    cs_cache_entry e = { 1700000000, true, f->tree };
    assert_int_equal(cs_cache_put(db, txn, &f->key, &e, &f->sb.err), 0);
    test_commit(txn);
    cs_rcache_stats st;
    cs_rcache_build bd = { .keys = &f->key, .nkeys = 1 };
    assert_int_equal(cs_rcache_export_local(a, f->cache, &bd, CS_RCACHE_MAX, &st, &f->sb.err), 0);
    open_b(f);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_false(test_has(f->b, CS_T_TREES, f->tree.b, 32));
    assert_true(test_has(f->b, CS_T_CACHE, f->key.b, 32));
}

static void
a_store_whose_hit_is_still_remote_exports_it_again(void **state)
{
    fx *f = *state;
    a_exports_b_imports(f);
    /* B's all-cached build with --cache-from and --cache-to (a CI job's
     * usual pair): the entry's tree is remote in B. */
    cs_rcache_stats st;
    cs_rcache_build bd = { .keys = &f->key, .nkeys = 1 };
    int r = cs_rcache_export_local(f->b, f->cache, &bd, CS_RCACHE_MAX, &st, &f->sb.err);
    if (r < 0)
        fail_msg("export to the same dir: %s", f->sb.err ? f->sb.err->msg : "(no message)");
    /* To another dir: its parts and chunks come from the first. */
    r = cs_rcache_export_local(f->b, f->cache2, &bd, CS_RCACHE_MAX, &st, &f->sb.err);
    if (r < 0)
        fail_msg("export to another dir: %s", f->sb.err ? f->sb.err->msg : "(no message)");
    assert_int_equal(cs_fsck(f->b, NULL, NULL, &f->sb.err), 0);
    /* An empty store takes the second cache and gets the bytes back. */
    cs_autofree char *croot = cs_path_join(f->sb.work, "c");
    cs_store *c = NULL;
    assert_int_equal(cs_store_open(croot, 0, &c, &f->sb.err), 0);
    assert_int_equal(cs_rcache_import_local(c, f->cache2, &st, &f->sb.err), 0);
    assert_true(test_has(c, CS_T_CACHE, f->key.b, 32));
    assert_int_equal(cs_rcache_fetch_trees(c, &f->tree, 1, NULL, &f->sb.err), 0);
    cs_tree *t = test_get_tree(c, &f->tree);
    test_assert_content(c, &t->e[0].content, f->data, SIZE);
    cs_tree_free(t);
    cs_store_close(c);
}

static void
an_entry_whose_tree_is_gone_is_left_out_of_an_export_that_still_succeeds(void **state)
{
    fx *f = *state;
    a_exports_b_imports(f);
    /* An entry whose tree gc took since (a lookup misses it): an export
     * leaves it out. */
    cs_digest gone = test_sha("a tree gc took"), key2 = test_sha("another step");
    MDB_txn *txn = test_begin(f->b, true);
    cs_cache_entry e = { 1700000000, true, gone };
    assert_int_equal(cs_cache_put(cs_store_db(f->b), txn, &key2, &e, &f->sb.err), 0);
    test_commit(txn);
    cs_digest keys[2] = { f->key, key2 };
    cs_rcache_stats st;
    cs_rcache_build bd = { .keys = keys, .nkeys = 2 };
    int r = cs_rcache_export_local(f->b, f->cache2, &bd, CS_RCACHE_MAX, &st, &f->sb.err);
    if (r < 0)
        fail_msg("export: %s", f->sb.err ? f->sb.err->msg : "(no message)");
    assert_int_equal(st.entries, 1);
}

static void
an_export_of_an_image_whose_layer_is_gone_fails_naming_the_tree(void **state)
{
    fx *f = *state;
    cs_digest gone = test_sha("a layer gc took");
    open_b(f);
    MDB_txn *txn = test_begin(f->b, true);
    cs_digest id =
        test_put_image(cs_store_db(f->b), txn, "{\"architecture\":\"amd64\"}", &gone, 1, NULL);
    test_commit(txn);
    cs_rcache_stats st;
    cs_rcache_build bd = { .images = &id, .nimages = 1 };
    assert_int_equal(cs_rcache_export_local(f->b, f->cache2, &bd, CS_RCACHE_MAX, &st, &f->sb.err),
                     -CS_ENOTFOUND);
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(&gone, hex);
    test_assert_msg(f->sb.err, hex); /* not "unknown error" */
}

static void
report(void *ctx, const char *problem)
{
    (void) ctx;
    print_message("fsck: %s\n", problem);
}

/* Removes the cache dir's pack part blobs (what a registry that fails
 * mid-fetch would not give). */
static void
drop_pack_parts(const char *cache)
{
    rc_index x;
    rc_index_init(&x);
    cs_buf root;
    cs_buf_init(&root);
    cs_error *err = NULL;
    assert_int_equal(rc_layout_read(cache, &root, &err), 0);
    assert_int_equal(rc_index_merge(&x, cache, root.data, root.len, &err), 0);
    for (uint32_t i = 0; i < x.nparts; i++)
        if (x.part_kinds[i] == RK_PACKPART) {
            cs_autofree char *path = rc_blob_path(cache, &x.parts[i]);
            assert_int_equal(unlink(path), 0);
        }
    cs_buf_release(&root);
    rc_index_release(&x);
}

static void
a_fetch_of_a_trees_part_that_fails_on_its_pack_parts_leaves_the_store_fsck_clean(void **state)
{
    fx *f = *state;
    a_exports_b_imports(f);
    drop_pack_parts(f->cache);
    /* The tree's part is there, the pack parts placing its chunks are not. */
    assert_true(cs_rcache_fetch_parts(f->b, &f->tree, 1, &f->sb.err) < 0);
    cs_error_clear(&f->sb.err);
    assert_int_equal(cs_fsck(f->b, report, NULL, &f->sb.err), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_store_whose_hit_is_still_remote_exports_it_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            an_entry_whose_tree_is_gone_is_left_out_of_an_export_that_still_succeeds, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            an_export_of_an_image_whose_layer_is_gone_fails_naming_the_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_fetch_of_a_trees_part_that_fails_on_its_pack_parts_leaves_the_store_fsck_clean, setup,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
