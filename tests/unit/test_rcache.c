/* test_rcache.c - the build cache through a directory (store/rcache_*.c):
 * an export imported into another store is lazy (records, no chunk), a fetch
 * makes a tree's chunks local and verified, a second export writes no pack,
 * exports merge, a corrupted pack stores nothing, and a big tree is fetched
 * in several bounded requests by parallel fetchers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstore/buildcache.h"
#include "cstore/copykey.h"
#include "cstore/db.h"
#include "cstore/gc.h"
#include "cstore/rcache.h"
#include "testutil.h"

/* Store a (the sandbox's) with two cached layers; store b empty. */
typedef struct fx {
    test_sandbox sb;
    cs_store *b;
    char *cache;
    cs_digest key[2], tree[2];
    uint8_t data[2][300000];
} fx;

static void
fill(void *vf, cs_db *db, MDB_txn *txn)
{
    fx *f = vf;
    for (int i = 0; i < 2; i++) {
        test_fill_random(f->data[i], sizeof(f->data[i]), 7 + (uint64_t) i);
        cs_digest c = test_put_content(db, txn, f->data[i], sizeof(f->data[i]), 16384);
        cs_tree *t = cs_tree_new();
        test_tree_add_file(t, i ? "two" : "one", &c, sizeof(f->data[i]));
        f->tree[i] = test_put_tree(db, txn, t);
        f->key[i] = test_sha(i ? "key two" : "key one");
        cs_cache_entry e = { 1700000000, true, f->tree[i] };
        cs_error *err = NULL;
        assert_int_equal(cs_cache_put(db, txn, &f->key[i], &e, &err), 0);
    }
}

static int
setup(void **state)
{
    if (test_sandbox_fill(state, sizeof(fx), 0, fill) < 0)
        return -1;
    fx *f = *state;
    return test_peer_open(&f->sb, &f->b, &f->cache);
}

static int
teardown(void **state)
{
    fx *f = *state;
    cs_store_close(f->b);
    free(f->cache);
    return test_sandbox_teardown(state);
}

static int export(fx *f, size_t from, size_t n, cs_rcache_stats *st)
{
    cs_rcache_build b = { .keys = &f->key[from], .nkeys = n };
    return cs_rcache_export_local(f->sb.s, f->cache, &b, CS_RCACHE_MAX, st, &f->sb.err);
}

static void
import_is_lazy_and_a_fetch_makes_the_chunks_local(void **state)
{
    fx *f = *state;
    cs_rcache_stats st;
    assert_int_equal(export(f, 0, 2, &st), 0);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.chunks, 2 * 19); /* 300000 bytes in 16 KiB chunks */
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(st.entries, 2);
    /* The trees' parts and the pack's part stay in the cache (rcache_lazy.c). */
    assert_int_equal(st.remote_trees, 2);
    assert_int_equal(st.remote, 0);
    assert_int_equal(test_count(f->b, CS_T_RTREES), 3);
    assert_int_equal(test_count(f->b, CS_T_TREES), 0);
    assert_int_equal(test_count(f->b, CS_T_CONTENTS), 0);
    assert_int_equal(test_count(f->b, CS_T_CHUNKS), 0);
    cs_cache_entry e;
    cs_db *bdb = cs_store_db(f->b);
    /* A hit on a remote tree. */
    assert_int_equal(cs_cache_get(bdb, NULL, &f->key[1], &e, &f->sb.err), 0);
    assert_true(cs_digest_eq(&e.tree, &f->tree[1]));

    cs_rcache_stats fs = { 0 };
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[1], 1, &fs, &f->sb.err), 0);
    assert_int_equal(fs.fetched_chunks, 19);
    assert_int_equal(fs.reads, 1); /* adjacent ranges coalesced */
    assert_int_equal(test_count(f->b, CS_T_CHUNKS), 19);
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 19); /* the pack's part: tree two's too */
    assert_int_equal(test_count(f->b, CS_T_TREES), 1);
    assert_int_equal(test_count(f->b, CS_T_RTREES), 2); /* tree two's and the pack part's */
    cs_tree *t = test_get_tree(f->b, &f->tree[1]);
    test_assert_content(f->b, &t->e[0].content, f->data[1], sizeof(f->data[1]));
    cs_tree_free(t);
    /* Nothing left to fetch for it: no read. */
    memset(&fs, 0, sizeof(fs));
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[1], 1, &fs, &f->sb.err), 0);
    assert_int_equal(fs.reads, 0);
}

static void
a_second_export_writes_no_pack_and_exports_merge(void **state)
{
    fx *f = *state;
    cs_rcache_stats st;
    assert_int_equal(export(f, 0, 1, &st), 0);
    assert_true(st.packs_written >= 1);
    assert_int_equal(export(f, 0, 1, &st), 0);
    assert_int_equal(st.packs_written, 0);
    assert_int_equal(st.bytes_written, 0);
    assert_int_equal(st.index_bytes, 0); /* the same root and parts: nothing written */
    /* Another build's key: its chunks only go into a new pack; the first
     * key stays in the index. */
    assert_int_equal(export(f, 1, 1, &st), 0);
    assert_int_equal(st.packs_written, 1);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.remote_trees, 2);
    assert_int_equal(test_count(f->b, CS_T_RTREES), 4); /* two trees, two packs */
    cs_rcache_stats fs = { 0 };
    assert_int_equal(cs_rcache_fetch_trees(f->b, f->tree, 2, &fs, &f->sb.err), 0);
    assert_int_equal(fs.fetched_chunks, 38);
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 0);
}

/* Flips one byte in the middle of every pack blob (a blob ending in the pack
 * magic). */
static void
corrupt_packs(const char *cache)
{
    cs_autofree char *dir = cs_xasprintf("%s/blobs/sha256", cache);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        cs_autofree char *p = cs_path_join(dir, de->d_name);
        cs_buf b;
        test_read_file(p, &b);
        if (b.len > 8 && !memcmp(b.data + b.len - 8, "CSPACK1", 8)) {
            b.data[b.len / 3] ^= 0xff;
            test_write_file(p, b.data, b.len, 0644);
        }
        cs_buf_release(&b);
    }
    closedir(d);
}

static void
a_corrupted_pack_fails_the_fetch_and_stores_nothing(void **state)
{
    fx *f = *state;
    cs_rcache_stats st;
    assert_int_equal(export(f, 0, 1, &st), 0);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    corrupt_packs(f->cache);
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[0], 1, NULL, &f->sb.err), -CS_ECORRUPT);
    test_assert_msg(f->sb.err, "do not match digest");
    assert_int_equal(test_count(f->b, CS_T_CHUNKS), 0);
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 19);
}

/* One 20 MB file: its chunks make more than one 8 MiB request. */
#define BIG_SIZE  (20u << 20)
#define BIG_CHUNK (512u << 10) /* 40 chunks (a content names at most 64 here) */
typedef struct big {
    test_sandbox sb;
    cs_store *b;
    char *cache;
    cs_digest key, tree;
    uint8_t *data;
} big;

static void
fill_big(void *vf, cs_db *db, MDB_txn *txn)
{
    big *f = vf;
    f->data = cs_xmalloc(BIG_SIZE);
    test_fill_random(f->data, BIG_SIZE, 11);
    cs_digest c = test_put_content(db, txn, f->data, BIG_SIZE, BIG_CHUNK);
    cs_tree *t = cs_tree_new();
    test_tree_add_file(t, "big", &c, BIG_SIZE);
    f->tree = test_put_tree(db, txn, t);
    f->key = test_sha("key big");
    cs_cache_entry e = { 1700000000, true, f->tree };
    cs_error *err = NULL;
    assert_int_equal(cs_cache_put(db, txn, &f->key, &e, &err), 0);
}

static int
setup_big(void **state)
{
    if (test_sandbox_fill(state, sizeof(big), 0, fill_big) < 0)
        return -1;
    big *f = *state;
    return test_peer_open(&f->sb, &f->b, &f->cache);
}

static int
teardown_big(void **state)
{
    big *f = *state;
    cs_store_close(f->b);
    free(f->cache);
    free(f->data);
    return test_sandbox_teardown(state);
}

static void
a_fetch_of_several_bounded_ranges_in_parallel_puts_every_chunk(void **state)
{
    big *f = *state;
    cs_rcache_stats st;
    cs_rcache_build b = { .keys = &f->key, .nkeys = 1 };
    assert_int_equal(cs_rcache_export_local(f->sb.s, f->cache, &b, CS_RCACHE_MAX, &st, &f->sb.err),
                     0);
    assert_int_equal(st.chunks, BIG_SIZE / BIG_CHUNK);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    cs_rcache_stats fs = { 0 };
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree, 1, &fs, &f->sb.err), 0);
    assert_int_equal(fs.fetched_chunks, BIG_SIZE / BIG_CHUNK);
    assert_true(fs.reads >= 3); /* 20 MB in requests of at most 8 MiB */
    assert_true(fs.read_bytes <= (uint64_t) fs.reads * (8u << 20));
    assert_int_equal(fs.read_bytes, fs.fetched_bytes); /* the chunks are adjacent: no gap read */
    assert_int_equal(test_count(f->b, CS_T_CHUNKS), BIG_SIZE / BIG_CHUNK);
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 0);
    cs_tree *t = test_get_tree(f->b, &f->tree);
    test_assert_content(f->b, &t->e[0].content, f->data, BIG_SIZE);
    cs_tree_free(t);
}

static void
a_dir_without_a_cache_is_not_found_and_changes_nothing(void **state)
{
    fx *f = *state;
    cs_rcache_stats st;
    assert_int_equal(cs_rcache_import_local(f->b, f->sb.work, &st, &f->sb.err), -CS_ENOTFOUND);
    test_assert_store_empty(f->b);
}

/* Blob files of the cache dir. */
static size_t
blob_count(const char *cache)
{
    cs_autofree char *dir = cs_xasprintf("%s/blobs/sha256", cache);
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Key one exported at t=1000, key two at t=2000 ($CSTORE_TEST_NOW): one
 * pack each. */
static void
export_two_ages(fx *f, uint64_t *pack_two)
{
    cs_rcache_stats st;
    setenv("CSTORE_TEST_NOW", "1000", 1);
    assert_int_equal(export(f, 0, 1, &st), 0);
    setenv("CSTORE_TEST_NOW", "2000", 1);
    assert_int_equal(export(f, 1, 1, &st), 0);
    assert_int_equal(st.packs_written, 1);
    *pack_two = st.bytes_written;
}

static void
prune_by_age_drops_the_older_entry_its_part_and_its_pack(void **state)
{
    fx *f = *state;
    uint64_t two;
    export_two_ages(f, &two);
    size_t before = blob_count(f->cache);
    setenv("CSTORE_TEST_NOW", "2100", 1);
    cs_rcache_prune_opts o = { 500, CS_RCACHE_KEEP_ALL };
    cs_rcache_prune_result r;
    assert_int_equal(cs_rcache_prune(f->cache, &o, &r, &f->sb.err), 0);
    assert_int_equal(r.entries, 1);
    assert_int_equal(r.kept_entries, 1);
    assert_int_equal(r.packs, 1);
    assert_int_equal(r.kept_packs, 1);
    assert_int_equal(r.kept_pack_bytes, two);
    assert_int_equal(r.parts, 2); /* tree one's part and its pack's part */
    /* Gone from the dir: the pack, the two parts and the old root. */
    assert_int_equal(r.ngone, 4);
    assert_int_equal(blob_count(f->cache), before - 4 + 2); /* + the new root and manifest */
    cs_rcache_prune_result_release(&r);
    cs_rcache_stats st;
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.remote_trees, 1); /* the kept tree's part stays named */
    cs_cache_entry e;
    cs_db *bdb = cs_store_db(f->b);
    assert_int_equal(cs_cache_get(bdb, NULL, &f->key[0], &e, &f->sb.err), -CS_ENOTFOUND);
    assert_int_equal(cs_cache_get(bdb, NULL, &f->key[1], &e, &f->sb.err), 0);
    assert_int_equal(e.last_used, 2000); /* the export's time */
    cs_rcache_stats fs = { 0 };
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[1], 1, &fs, &f->sb.err), 0);
    assert_int_equal(fs.fetched_chunks, 19);
    /* Nothing more to drop: the index stays as it is. */
    assert_int_equal(cs_rcache_prune(f->cache, &o, &r, &f->sb.err), 0);
    unsetenv("CSTORE_TEST_NOW");
    assert_int_equal(r.ngone, 0);
    assert_int_equal(r.entries, 0);
    assert_int_equal(r.kept_entries, 1);
    cs_rcache_prune_result_release(&r);
}

static void
prune_by_size_keeps_the_most_recent_entries(void **state)
{
    fx *f = *state;
    uint64_t two;
    export_two_ages(f, &two);
    cs_rcache_prune_opts o = { CS_RCACHE_KEEP_ALL, two };
    cs_rcache_prune_result r;
    assert_int_equal(cs_rcache_prune(f->cache, &o, &r, &f->sb.err), 0);
    unsetenv("CSTORE_TEST_NOW");
    assert_int_equal(r.entries, 1);
    assert_int_equal(r.kept_pack_bytes, two);
    cs_rcache_prune_result_release(&r);
    cs_rcache_stats st;
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    cs_cache_entry e;
    assert_int_equal(cs_cache_get(cs_store_db(f->b), NULL, &f->key[1], &e, &f->sb.err), 0);
}

static void
prune_of_a_dir_without_a_cache_is_not_found(void **state)
{
    fx *f = *state;
    cs_rcache_prune_opts o = { 1, 1 };
    cs_rcache_prune_result r;
    assert_int_equal(cs_rcache_prune(f->sb.work, &o, &r, &f->sb.err), -CS_ENOTFOUND);
    cs_rcache_prune_result_release(&r);
}

static int
put_data_one(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    fx *f = ctx;
    (void) err;
    test_put_content(db, txn, f->data[0], sizeof(f->data[0]), 16384);
    return 0;
}

static void
gc_drops_remote_records_of_local_chunks_and_of_a_gone_source(void **state)
{
    fx *f = *state;
    cs_rcache_stats st;
    assert_int_equal(export(f, 0, 2, &st), 0);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    /* The trees' records, and with them the places of their chunks. */
    assert_int_equal(cs_rcache_fetch_parts(f->b, f->tree, 2, &f->sb.err), 0);
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 38);
    /* Tree one's chunks come local another way (a load of the same file). */
    assert_int_equal(cs_db_write(cs_store_db(f->b), put_data_one, f, &f->sb.err), 0);
    cs_gc_stats gs;
    /* The fixture's entries are from 2023: kept by a policy of any age. */
    cs_gc_opts go = { .keep_storage = CS_GC_KEEP_STORAGE, .keep_duration = (uint64_t) 1 << 40 };
    go.dry_run = true;
    assert_int_equal(cs_gc_ex(f->b, &go, &gs, &f->sb.err), 0);
    assert_int_equal(gs.remote_chunks, 19);
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 38);
    go.dry_run = false;
    assert_int_equal(cs_gc_ex(f->b, &go, &gs, &f->sb.err), 0);
    assert_int_equal(gs.remote_chunks, 19);
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 19);
    /* Tree two's stay while the cache dir is there; not once it is gone. */
    assert_int_equal(cs_gc_ex(f->b, &go, &gs, &f->sb.err), 0);
    assert_int_equal(gs.remote_chunks, 0);
    assert_int_equal(cs_rm_tree(f->cache, NULL, &f->sb.err), 0);
    assert_int_equal(cs_gc_ex(f->b, &go, &gs, &f->sb.err), 0);
    assert_int_equal(gs.remote_chunks, 19);
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 0);
}

static void
gc_drops_remote_records_no_kept_content_uses(void **state)
{
    fx *f = *state;
    cs_rcache_stats st;
    assert_int_equal(export(f, 0, 2, &st), 0);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(cs_rcache_fetch_parts(f->b, f->tree, 2, &f->sb.err), 0);
    /* A week's policy drops the 2023 entries: their trees' chunks are used
     * by nothing. */
    cs_gc_stats gs;
    assert_int_equal(cs_gc(f->b, false, false, &gs, &f->sb.err), 0);
    assert_int_equal(gs.cache, 2);
    assert_int_equal(gs.remote_chunks, 38);
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 0);
}

static void
copy_keys_records_travel_in_the_root_with_the_trees_they_name(void **state)
{
    fx *f = *state;
    cs_db *adb = cs_store_db(f->sb.s);
    cs_digest req = test_sha("req"), other = test_sha("other req"), src = test_sha("sources");
    cs_digest elsewhere = test_sha("a tree the cache does not hold"), got;
    assert_int_equal(cs_copykey_put(adb, &req, &src, &f->tree[1], &f->sb.err), 0);
    assert_int_equal(cs_copykey_put(adb, &other, &src, &elsewhere, &f->sb.err), 0);
    cs_rcache_stats st;
    assert_int_equal(export(f, 0, 2, &st), 0);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    cs_db *bdb = cs_store_db(f->b);
    assert_int_equal(cs_copykey_get(bdb, &req, &got, &f->sb.err), 1);
    assert_true(cs_digest_eq(&got, &src));
    assert_int_equal(cs_copykey_get(bdb, &other, &got, &f->sb.err), 0);
    assert_int_equal(test_count(f->b, CS_T_TREES), 0); /* no tree needed for it */
}

static void
gc_drops_remote_tree_records_of_local_or_unkept_trees_and_of_a_gone_dir(void **state)
{
    fx *f = *state;
    cs_rcache_stats st;
    assert_int_equal(export(f, 0, 2, &st), 0);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(test_count(f->b, CS_T_RTREES), 3);
    cs_gc_stats gs;
    cs_gc_opts go = { .keep_storage = CS_GC_KEEP_STORAGE, .keep_duration = (uint64_t) 1 << 40 };
    assert_int_equal(cs_gc_ex(f->b, &go, &gs, &f->sb.err), 0);
    assert_int_equal(gs.remote_trees, 0); /* the entries keep their trees */
    assert_int_equal(gs.cache, 0);
    /* Tree one's records come local: its record goes, the pack part's stays. */
    assert_int_equal(cs_rcache_fetch_parts(f->b, &f->tree[0], 1, &f->sb.err), 0);
    assert_int_equal(test_count(f->b, CS_T_RTREES), 2);
    assert_int_equal(test_count(f->b, CS_T_TREES), 1);
    /* A week's policy drops the 2023 entries: tree two is named by nothing. */
    go.keep_duration = 7 * 86400;
    go.dry_run = true;
    assert_int_equal(cs_gc_ex(f->b, &go, &gs, &f->sb.err), 0);
    assert_int_equal(gs.remote_trees, 1);
    assert_int_equal(test_count(f->b, CS_T_RTREES), 2);
    go.dry_run = false;
    assert_int_equal(cs_gc_ex(f->b, &go, &gs, &f->sb.err), 0);
    assert_int_equal(gs.remote_trees, 1);
    assert_int_equal(test_count(f->b, CS_T_RTREES), 1);
    /* The pack part's record stays while the dir is there; not once it is gone. */
    assert_int_equal(cs_gc_ex(f->b, &go, &gs, &f->sb.err), 0);
    assert_int_equal(gs.remote_trees, 0);
    assert_int_equal(cs_rm_tree(f->cache, NULL, &f->sb.err), 0);
    assert_int_equal(cs_gc_ex(f->b, &go, &gs, &f->sb.err), 0);
    assert_int_equal(gs.remote_trees, 1);
    assert_int_equal(test_count(f->b, CS_T_RTREES), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(import_is_lazy_and_a_fetch_makes_the_chunks_local, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_second_export_writes_no_pack_and_exports_merge, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_corrupted_pack_fails_the_fetch_and_stores_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_dir_without_a_cache_is_not_found_and_changes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_fetch_of_several_bounded_ranges_in_parallel_puts_every_chunk, setup_big,
            teardown_big),
        cmocka_unit_test_setup_teardown(prune_by_age_drops_the_older_entry_its_part_and_its_pack,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(prune_by_size_keeps_the_most_recent_entries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(prune_of_a_dir_without_a_cache_is_not_found, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            gc_drops_remote_records_of_local_chunks_and_of_a_gone_source, setup, teardown),
        cmocka_unit_test_setup_teardown(gc_drops_remote_records_no_kept_content_uses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            copy_keys_records_travel_in_the_root_with_the_trees_they_name, setup, teardown),
        cmocka_unit_test_setup_teardown(
            gc_drops_remote_tree_records_of_local_or_unkept_trees_and_of_a_gone_dir, setup,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
