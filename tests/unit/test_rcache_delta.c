/* test_rcache_delta.c - delta-encoded chunks in cache packs
 * (store/rcache_delta.c, rcache_dfetch.c): a delta decodes only with its
 * bases and its digest, an export packs a changed chunk of a file's new
 * version as a small delta, a fetch decodes it verified (fetching the base
 * when it is not local, only the delta when it is), a corrupted delta or a
 * wrong base is detected and the delta never stored, gc keeps a needed
 * base's record and prune a needed base's pack, and a chain of deltas is
 * at most RC_DELTA_DEPTH_MAX deep. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cstore/buildcache.h"
#include "cstore/db.h"
#include "cstore/gc.h"
#include "cstore/rcache.h"
#include "digestset.h"
#include "rcache_int.h"
#include "testutil.h"

#define SIZE     300000
#define CHUNK    16384 /* 19 chunks */
#define VERSIONS 7

/* Versions of one file "app": each changes chunk 6 and chunk 7 + k of the
 * previous one a little, so the previous version is the most alike. */
typedef struct fx {
    test_sandbox sb;
    cs_store *b;
    char *cache;
    cs_digest key[VERSIONS], tree[VERSIONS];
    uint8_t data[VERSIONS][SIZE];
} fx;

static void
make_versions(fx *f)
{
    test_fill_random(f->data[0], SIZE, 5);
    for (int k = 1; k < VERSIONS; k++) {
        memcpy(f->data[k], f->data[k - 1], SIZE);
        uint8_t noise[64];
        test_fill_random(noise, sizeof(noise), 100 + (uint64_t) k);
        memcpy(f->data[k] + 6 * CHUNK + 1000 + 80 * k, noise, sizeof(noise));
        memcpy(f->data[k] + (7 + k) * CHUNK + 500, noise, sizeof(noise));
    }
}

static void
put_version(fx *f, cs_store *s, int k, uint64_t last_used)
{
    MDB_txn *txn = test_begin(s, true);
    cs_db *db = cs_store_db(s);
    cs_digest c = test_put_content(db, txn, f->data[k], SIZE, CHUNK);
    cs_tree *t = cs_tree_new();
    test_tree_add_file(t, "app", &c, SIZE);
    f->tree[k] = test_put_tree(db, txn, t);
    char name[32];
    snprintf(name, sizeof(name), "key %d", k);
    f->key[k] = test_sha(name);
    cs_cache_entry e = { last_used, true, f->tree[k] };
    assert_int_equal(cs_cache_put(db, txn, &f->key[k], &e, &f->sb.err), 0);
    test_commit(txn);
}

static int
setup(void **state)
{
    if (test_sandbox_new(state, sizeof(fx), 0) < 0)
        return -1;
    fx *f = *state;
    make_versions(f);
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

/* Version k put into store a and exported with every earlier one. */
static void
export_version(fx *f, int k, cs_rcache_stats *st)
{
    put_version(f, f->sb.s, k, 1700000000);
    cs_rcache_build b = { .keys = f->key, .nkeys = (size_t) k + 1 };
    assert_int_equal(cs_rcache_export_local(f->sb.s, f->cache, &b, CS_RCACHE_MAX, st, &f->sb.err),
                     0);
}

/* Versions 0 and 1 exported, the cache imported into store b. */
static void
two_versions_in_b(fx *f)
{
    cs_rcache_stats st;
    export_version(f, 0, &st);
    export_version(f, 1, &st);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
}

/* Version 1's chunk 6 (a delta) is not in store b, only its remote record. */
static void
assert_delta_remote_only(fx *f)
{
    cs_digest d6;
    cs_sha256(f->data[1] + 6 * CHUNK, CHUNK, &d6);
    assert_false(test_has(f->b, CS_T_CHUNKS, d6.b, 32));
    assert_true(test_has(f->b, CS_T_REMOTE, d6.b, 32));
}

static void
a_delta_decodes_only_with_its_bases_and_a_corruption_is_detected(void **state)
{
    fx *f = *state;
    const uint8_t *old = f->data[0] + 6 * CHUNK, *nw = f->data[1] + 6 * CHUNK;
    cs_digest d;
    cs_sha256(nw, CHUNK, &d);
    cs_buf z, out;
    cs_buf_init(&z);
    cs_buf_init(&out);
    rc_delta_encode(nw, CHUNK, old, CHUNK, &z);
    assert_true(z.len < 400); /* 64 changed bytes */
    assert_int_equal(rc_delta_decode(&d, z.data, z.len, CHUNK, old, CHUNK, &out, &f->sb.err), 0);
    assert_int_equal(out.len, CHUNK);
    assert_memory_equal(out.data, nw, CHUNK);

    out.len = 0;
    const uint8_t *wrong = f->data[0] + 5 * CHUNK;
    assert_int_equal(rc_delta_decode(&d, z.data, z.len, CHUNK, wrong, CHUNK, &out, &f->sb.err),
                     -CS_ECORRUPT);
    test_assert_msg(f->sb.err, "do not give its digest");
    cs_error_clear(&f->sb.err);
    assert_int_equal(out.len, 0);
    z.data[z.len / 2] ^= 0x55;
    assert_int_equal(rc_delta_decode(&d, z.data, z.len, CHUNK, old, CHUNK, &out, &f->sb.err),
                     -CS_ECORRUPT);
    assert_int_equal(out.len, 0);
    cs_buf_release(&z);
    cs_buf_release(&out);
}

static void
a_new_version_is_packed_as_small_deltas_and_fetched_verified(void **state)
{
    fx *f = *state;
    cs_rcache_stats st;
    export_version(f, 0, &st);
    assert_int_equal(st.deltas, 0);
    /* Store c has the old version local: it will fetch only the deltas. */
    cs_autofree char *croot = cs_path_join(f->sb.work, "c");
    cs_store *c = NULL;
    assert_int_equal(cs_store_open(croot, 0, &c, &f->sb.err), 0);
    assert_int_equal(cs_rcache_import_local(c, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(cs_rcache_fetch_trees(c, &f->tree[0], 1, NULL, &f->sb.err), 0);

    export_version(f, 1, &st);
    assert_int_equal(st.deltas, 2);
    assert_int_equal(st.packs_written, 1);
    assert_true(st.bytes_written < 2000); /* plain: two 16 KiB chunks of random bytes */

    cs_rcache_stats fs = { 0 };
    assert_int_equal(cs_rcache_import_local(c, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(cs_rcache_fetch_trees(c, &f->tree[1], 1, &fs, &f->sb.err), 0);
    assert_int_equal(fs.fetched_chunks, 2);
    assert_true(fs.fetched_bytes < 2000);
    cs_tree *t = test_get_tree(c, &f->tree[1]);
    test_assert_content(c, &t->e[0].content, f->data[1], SIZE);
    cs_tree_free(t);
    cs_store_close(c);

    /* An empty store: the deltas and their bases. */
    memset(&fs, 0, sizeof(fs));
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[1], 1, &fs, &f->sb.err), 0);
    assert_int_equal(fs.fetched_chunks, 21);
    assert_int_equal(test_count(f->b, CS_T_CHUNKS), 21);
    t = test_get_tree(f->b, &f->tree[1]);
    test_assert_content(f->b, &t->e[0].content, f->data[1], SIZE);
    cs_tree_free(t);
    assert_int_equal(cs_fsck(f->b, NULL, NULL, &f->sb.err), 0);
}

/* Flips one byte in the middle of every delta pack. */
static void
corrupt_delta_packs(const char *cache)
{
    cs_autofree char *dir = cs_xasprintf("%s/blobs/sha256", cache);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        cs_autofree char *p = cs_path_join(dir, de->d_name);
        if (de->d_name[0] == '.')
            continue;
        cs_buf b;
        test_read_file(p, &b);
        if (b.len > 8 && !memcmp(b.data + b.len - 8, RC_PACK2_MAGIC, 8)) {
            b.data[20] ^= 0xff; /* inside the first chunk's frame */
            test_write_file(p, b.data, b.len, 0644);
            n++;
        }
        cs_buf_release(&b);
    }
    closedir(d);
    assert_int_equal(n, 1);
}

static void
a_corrupted_delta_fails_the_fetch_and_is_never_stored(void **state)
{
    fx *f = *state;
    two_versions_in_b(f);
    corrupt_delta_packs(f->cache);
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[1], 1, NULL, &f->sb.err), -CS_ECORRUPT);
    test_assert_msg(f->sb.err, "sha256:");
    /* The plain chunks are in (verified), neither delta is. */
    assert_int_equal(test_count(f->b, CS_T_CHUNKS), 19);
    assert_delta_remote_only(f);
}

static void
a_wrong_local_base_fails_the_fetch_and_the_delta_is_never_stored(void **state)
{
    fx *f = *state;
    two_versions_in_b(f);
    /* Store b "has" version 0's chunk 6, with other bytes. */
    cs_digest base;
    cs_sha256(f->data[0] + 6 * CHUNK, CHUNK, &base);
    uint8_t rec[5 + CHUNK];
    rec[0] = CS_CODEC_RAW;
    cs_be32_put(rec + 1, CHUNK);
    memcpy(rec + 5, f->data[0] + 5 * CHUNK, CHUNK);
    test_put_raw(f->b, CS_T_CHUNKS, base.b, 32, rec, sizeof(rec));
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[1], 1, NULL, &f->sb.err), -CS_ECORRUPT);
    assert_delta_remote_only(f);
}

static void
gc_keeps_the_remote_record_of_a_base_a_kept_delta_needs(void **state)
{
    fx *f = *state;
    two_versions_in_b(f);
    /* gc keeps version 1's chunks only: version 0's chunk 6 is a base. */
    cs_digestset *kept = cs_digestset_new(false);
    for (int i = 0; i * CHUNK < SIZE; i++) {
        cs_digest d;
        size_t n = SIZE - (size_t) i * CHUNK < CHUNK ? SIZE - (size_t) i * CHUNK : CHUNK;
        cs_sha256(f->data[1] + i * CHUNK, n, &d);
        cs_digestset_add(kept, d.b);
    }
    uint64_t dropped = 0;
    assert_int_equal(cs_rcache_gc(cs_store_db(f->b), kept, false, &dropped, &f->sb.err), 0);
    cs_digestset_free(kept);
    assert_int_equal(dropped, 0); /* version 0's chunks 6 and 8: the deltas' bases */
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[1], 1, NULL, &f->sb.err), 0);
    cs_tree *t = test_get_tree(f->b, &f->tree[1]);
    test_assert_content(f->b, &t->e[0].content, f->data[1], SIZE);
    cs_tree_free(t);
}

static void
gc_keeps_a_local_base_of_a_kept_delta_still_remote(void **state)
{
    fx *f = *state;
    cs_rcache_stats st;
    export_version(f, 0, &st);
    /* Store b has version 0 local, then imports version 1: its deltas stay
     * remote, their bases are b's own chunks of version 0. */
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[0], 1, NULL, &f->sb.err), 0);
    export_version(f, 1, &st);
    assert_int_equal(st.deltas, 2);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    /* Version 1's tree part and pack parts in, as a fetch reads them
     * first (no chunks): the deltas' records; the unchanged chunks are b's. */
    assert_int_equal(cs_rcache_fetch_parts(f->b, &f->tree[1], 1, &f->sb.err), 0);
    assert_true(rc_lazy_fetch_packs(f->b, &f->sb.err) >= 0);
    assert_delta_remote_only(f);
    /* Version 1's entry recent, version 0's old: gc frees version 0's tree. */
    MDB_txn *txn = test_begin(f->b, true);
    cs_cache_entry e = { (uint64_t) time(NULL), true, f->tree[1] };
    assert_int_equal(cs_cache_put(cs_store_db(f->b), txn, &f->key[1], &e, &f->sb.err), 0);
    test_commit(txn);
    cs_gc_opts o = { .keep_storage = UINT64_MAX, .keep_duration = 3600 };
    cs_gc_stats gs;
    assert_int_equal(cs_gc_ex(f->b, &o, &gs, &f->sb.err), 0);
    assert_false(test_has(f->b, CS_T_TREES, f->tree[0].b, 32));
    /* The bases stayed: version 1 decodes from them, nothing else fetched. */
    cs_rcache_stats fs = { 0 };
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[1], 1, &fs, &f->sb.err), 0);
    assert_int_equal(fs.fetched_chunks, 2);
    cs_tree *t = test_get_tree(f->b, &f->tree[1]);
    test_assert_content(f->b, &t->e[0].content, f->data[1], SIZE);
    cs_tree_free(t);
    assert_int_equal(cs_fsck(f->b, NULL, NULL, &f->sb.err), 0);
}

static void
a_delta_chain_is_at_most_four_deep_then_a_chunk_is_plain(void **state)
{
    fx *f = *state;
    cs_rcache_stats st;
    /* Chunk 6's chain: 1, 2, 3, 4 deep, then plain, then 1; chunk 7 + k
     * each time against the plain original. */
    static const uint64_t deltas[VERSIONS] = { 0, 2, 2, 2, 2, 1, 2 };
    for (int k = 0; k < VERSIONS; k++) {
        export_version(f, k, &st);
        assert_int_equal(st.deltas, deltas[k]);
    }
    rc_index x;
    rc_index_init(&x);
    cs_buf root;
    cs_buf_init(&root);
    assert_int_equal(rc_layout_read(f->cache, &root, &f->sb.err), 0);
    assert_int_equal(rc_index_merge(&x, f->cache, root.data, root.len, &f->sb.err), 0);
    uint64_t deepest = 0;
    size_t it = 0;
    const cs_digest *d;
    cs_digest deep = { 0 };
    while ((d = cs_digestset_next(x.depth, &it)))
        if (*cs_digestset_value(x.depth, d->b) > deepest) {
            deepest = *cs_digestset_value(x.depth, d->b);
            deep = *d;
        }
    assert_int_equal(deepest, RC_DELTA_DEPTH_MAX);
    assert_int_equal(rc_delta_depth(&x, &deep, 1), -1); /* no delta on it */
    cs_buf_release(&root);
    rc_index_release(&x);
    /* The last version, from an empty store: the whole chain decodes. */
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[VERSIONS - 1], 1, NULL, &f->sb.err), 0);
    cs_tree *t = test_get_tree(f->b, &f->tree[VERSIONS - 1]);
    test_assert_content(f->b, &t->e[0].content, f->data[VERSIONS - 1], SIZE);
    cs_tree_free(t);
}

/* Version 1: version 0 with every chunk changed a little (all deltas). */
static void
every_chunk_changed(fx *f)
{
    memcpy(f->data[1], f->data[0], SIZE);
    for (size_t off = 1000; off < SIZE; off += CHUNK)
        f->data[1][off] ^= 0x5a;
}

static void
prune_keeps_the_pack_of_a_kept_deltas_bases(void **state)
{
    fx *f = *state;
    /* Version 1 changes every chunk a little: its pack holds deltas only,
     * their bases are all in version 0's pack. */
    every_chunk_changed(f);
    cs_rcache_stats st;
    put_version(f, f->sb.s, 0, 1000);
    put_version(f, f->sb.s, 1, cs_rcache_now());
    cs_rcache_build b = { .keys = f->key, .nkeys = 1 };
    assert_int_equal(cs_rcache_export_local(f->sb.s, f->cache, &b, CS_RCACHE_MAX, &st, &f->sb.err),
                     0);
    b.nkeys = 2;
    assert_int_equal(cs_rcache_export_local(f->sb.s, f->cache, &b, CS_RCACHE_MAX, &st, &f->sb.err),
                     0);
    assert_int_equal(st.deltas, 19);
    cs_rcache_prune_opts o = { .keep_duration = 3600, .keep_storage = CS_RCACHE_KEEP_ALL };
    cs_rcache_prune_result r;
    assert_int_equal(cs_rcache_prune(f->cache, &o, &r, &f->sb.err), 0);
    assert_int_equal(r.entries, 1); /* version 0's */
    assert_int_equal(r.packs, 0);
    assert_int_equal(r.kept_packs, 2);
    cs_rcache_prune_result_release(&r);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(st.entries, 1);
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[1], 1, NULL, &f->sb.err), 0);
    cs_tree *t = test_get_tree(f->b, &f->tree[1]);
    test_assert_content(f->b, &t->e[0].content, f->data[1], SIZE);
    cs_tree_free(t);
}

static void
a_lazy_fetch_of_deltas_reads_their_bases_pack_part_not_every_pack_part(void **state)
{
    fx *f = *state;
    /* Version 1 changes every chunk a little: its pack holds deltas only,
     * their bases are in version 0's pack; version 2, unrelated, is in a
     * third pack. */
    every_chunk_changed(f);
    test_fill_random(f->data[2], SIZE, 77);
    cs_rcache_stats st;
    for (int k = 0; k < 3; k++)
        export_version(f, k, &st);
    assert_int_equal(cs_rcache_import_local(f->b, f->cache, &st, &f->sb.err), 0);
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 0); /* lazy: no pack part read yet */
    cs_rcache_stats fs = { 0 };
    assert_int_equal(cs_rcache_fetch_trees(f->b, &f->tree[1], 1, &fs, &f->sb.err), 0);
    assert_int_equal(fs.fetched_chunks, 38); /* 19 deltas, 19 bases */
    cs_tree *t = test_get_tree(f->b, &f->tree[1]);
    test_assert_content(f->b, &t->e[0].content, f->data[1], SIZE);
    cs_tree_free(t);
    /* Version 2's pack part was never read: none of its chunks placed. */
    assert_int_equal(test_count(f->b, CS_T_REMOTE), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            a_delta_decodes_only_with_its_bases_and_a_corruption_is_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_new_version_is_packed_as_small_deltas_and_fetched_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(a_corrupted_delta_fails_the_fetch_and_is_never_stored,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_wrong_local_base_fails_the_fetch_and_the_delta_is_never_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(gc_keeps_the_remote_record_of_a_base_a_kept_delta_needs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(gc_keeps_a_local_base_of_a_kept_delta_still_remote, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_delta_chain_is_at_most_four_deep_then_a_chunk_is_plain,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(prune_keeps_the_pack_of_a_kept_deltas_bases, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_lazy_fetch_of_deltas_reads_their_bases_pack_part_not_every_pack_part, setup,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
