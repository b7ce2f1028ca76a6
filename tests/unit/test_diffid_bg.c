/* test_diffid_bg.c - new layers' diff ids in a background thread
 * (store/diffid_bg.c): the commit takes the same ids it computes itself,
 * a background error reaches the commit's chain, and freeing stops a tar
 * being hashed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cstore/commit.h"
#include "cstore/diffid_bg.h"
#include "cstore/gc.h"
#include "cstore/store.h"
#include "cstore/tree.h"
#include "testutil.h"

#define MiB (1024u * 1024u)

typedef test_sandbox fx;

/* A one-file layer tree of n random bytes (seed), committed. */
static cs_digest
layer(fx *f, const char *name, size_t n, uint64_t seed)
{
    cs_autofree uint8_t *p = cs_xmalloc(n);
    test_fill_random(p, n, seed);
    return test_store_file_tree(f->s, name, p, n, 256 * 1024);
}

/* A layer of nfiles files of 8 MiB random bytes each, committed. */
static cs_digest
big_layer(fx *f, int nfiles)
{
    size_t n = 8 * MiB;
    cs_autofree uint8_t *p = cs_xmalloc(n);
    MDB_txn *txn = test_begin(f->s, true);
    cs_tree *t = cs_tree_new();
    for (int i = 0; i < nfiles; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%02d", i);
        test_fill_random(p, n, 100 + (uint64_t) i);
        cs_digest c = test_put_content(f->db, txn, p, n, 256 * 1024);
        test_tree_add_file(t, name, &c, n);
    }
    cs_digest d = test_put_tree(f->db, txn, t);
    test_commit(txn);
    return d;
}

/* A layer whose file's content is not in the store. */
static cs_digest
broken_layer(fx *f)
{
    MDB_txn *txn = test_begin(f->s, true);
    cs_digest c = test_sha("no such content");
    cs_tree *t = cs_tree_new();
    test_tree_add_file(t, "lost", &c, 5);
    cs_digest d = test_put_tree(f->db, txn, t);
    test_commit(txn);
    return d;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
the_commit_takes_the_same_diff_ids_from_the_background(void **state)
{
    fx *f = *state;
    cs_digest trees[3] = { layer(f, "a", 1000, 1), layer(f, "b", 3 * MiB, 2),
                           layer(f, "c", 10, 3) };
    cs_digest want[3], got[3];
    cs_diff_pending pw, pg;
    assert_int_equal(cs_layer_diff_ids_pending(f->db, trees, 3, want, &pw, &f->err), 0);
    cs_diffid_bg *bg = NULL;
    assert_int_equal(cs_diffid_bg_start(f->s, &bg, &f->err), 0);
    cs_diffid_bg_add(bg, &trees[0]);
    cs_diffid_bg_add(bg, &trees[1]);
    cs_diffid_bg_add(bg, &trees[1]); /* once */
    cs_diffid_bg_settle(bg);         /* done in the background ... */
    cs_diffid_bg_add(bg, &trees[2]); /* ... and maybe not yet */
    assert_int_equal(cs_layer_diff_ids_pending_bg(f->db, bg, trees, 3, got, &pg, &f->err), 0);
    cs_diffid_bg_free(bg);
    assert_memory_equal(got, want, sizeof(want));
    assert_int_equal(pg.n, 3); /* all new: recorded with the image */
    assert_memory_equal(pg.trees, pw.trees, 3 * sizeof(cs_digest));
    assert_memory_equal(pg.blobs, pw.blobs, 3 * sizeof(cs_layer_blob));
    cs_diff_pending_release(&pw);
    cs_diff_pending_release(&pg);
    assert_int_equal(test_count(f->s, CS_T_LAYER_BLOBS), 0); /* nothing written */
}

static void
a_background_error_reaches_the_commit_with_its_message(void **state)
{
    fx *f = *state;
    cs_digest t = broken_layer(f), out;
    cs_diff_pending p;
    assert_true(cs_layer_diff_ids_pending(f->db, &t, 1, &out, &p, &f->err) < 0);
    cs_autofree char *want = cs_xstrdup(f->err->msg);
    cs_error_clear(&f->err);
    cs_diffid_bg *bg = NULL;
    assert_int_equal(cs_diffid_bg_start(f->s, &bg, &f->err), 0);
    cs_diffid_bg_add(bg, &t);
    cs_diffid_bg_settle(bg); /* failed in the background */
    assert_true(cs_layer_diff_ids_pending_bg(f->db, bg, &t, 1, &out, &p, &f->err) < 0);
    assert_int_equal(p.n, 0);
    test_assert_msg(f->err, want);
    cs_error_clear(&f->err);
    cs_diffid_bg_free(bg);
}

static void
freeing_stops_a_tar_being_hashed(void **state)
{
    fx *f = *state;
    cs_digest big = big_layer(f, 8), out; /* 64 MiB */
    cs_diff_pending p;
    double t0 = now_s();
    assert_int_equal(cs_layer_diff_ids_pending(f->db, &big, 1, &out, &p, &f->err), 0);
    double whole = now_s() - t0;
    cs_diff_pending_release(&p);
    cs_diffid_bg *bg = NULL;
    assert_int_equal(cs_diffid_bg_start(f->s, &bg, &f->err), 0);
    cs_diffid_bg_add(bg, &big);
    usleep((useconds_t) (whole * 1e6 / 4)); /* a quarter of the way through */
    t0 = now_s();
    cs_diffid_bg_free(bg);
    double stop = now_s() - t0;
    assert_true(stop < whole / 2);
}

static void
a_tree_gc_swept_after_the_background_hashed_it_fails_the_commit(void **state)
{
    fx *f = *state;
    cs_digest t = layer(f, "a", 1000, 1), out;
    cs_diffid_bg *bg = NULL;
    assert_int_equal(cs_diffid_bg_start(f->s, &bg, &f->err), 0);
    cs_diffid_bg_add(bg, &t);
    cs_diffid_bg_settle(bg); /* hashed while the tree was there */
    /* A concurrent gc sweeps it: nothing (no image, cache entry or lease) keeps it. */
    cs_gc_opts go = { .keep_storage = CS_GC_KEEP_STORAGE, .keep_duration = CS_GC_KEEP_DURATION };
    cs_gc_stats gs;
    assert_int_equal(cs_gc_ex(f->s, &go, &gs, &f->err), 0);
    assert_int_equal(test_count(f->s, CS_T_TREES), 0);
    /* As without the background: the commit finds the tree missing, no image names it. */
    cs_diff_pending p;
    assert_true(cs_layer_diff_ids_pending(f->db, &t, 1, &out, &p, &f->err) < 0);
    cs_autofree char *want = cs_xstrdup(f->err->msg);
    cs_error_clear(&f->err);
    assert_true(cs_layer_diff_ids_pending_bg(f->db, bg, &t, 1, &out, &p, &f->err) < 0);
    assert_int_equal(p.n, 0);
    test_assert_msg(f->err, want);
    cs_error_clear(&f->err);
    cs_diffid_bg_free(bg);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_sandbox_setup, test_sandbox_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(the_commit_takes_the_same_diff_ids_from_the_background),
        T(a_background_error_reaches_the_commit_with_its_message),
        T(freeing_stops_a_tar_being_hashed),
        T(a_tree_gc_swept_after_the_background_hashed_it_fails_the_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
