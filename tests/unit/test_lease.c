/* test_lease.c - leases: what a running process relies on survives a gc
 * that runs beside it; leases of dead processes do not. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cstore/oneshot.h"
#include "testutil.h"
#include "cstore/gc.h"
#include "cstore/image.h"
#include "cstore/lease.h"

typedef test_sandbox fx;

static cs_digest
one_file_tree(fx *f, const char *name)
{
    MDB_txn *txn;
    assert_int_equal(cs_db_begin(f->db, 0, &txn, &f->err), 0);
    uint8_t data[100];
    test_fill_random(data, sizeof(data), (uint64_t) name[0]);
    cs_digest c = test_put_content(f->db, txn, data, sizeof(data), 64);
    cs_tree *t = cs_tree_new();
    test_tree_add_file(t, name, &c, sizeof(data));
    cs_digest d = test_put_tree(f->db, txn, t);
    assert_int_equal(cs_db_commit(txn, &f->err), 0);
    return d;
}

static cs_digest
tagged_image(fx *f, const char *tag)
{
    cs_digest layer = one_file_tree(f, "file");
    MDB_txn *txn;
    assert_int_equal(cs_db_begin(f->db, 0, &txn, &f->err), 0);
    cs_digest id = test_put_image(f->db, txn, "{\"architecture\":\"amd64\"}", &layer, 1, tag);
    assert_int_equal(cs_db_commit(txn, &f->err), 0);
    return id;
}

static void
gc(fx *f, cs_gc_stats *st)
{
    cs_gc_opts o = { false, false, CS_GC_KEEP_STORAGE, CS_GC_KEEP_DURATION };
    if (cs_gc_ex(f->s, &o, st, &f->err) < 0)
        fail_msg("gc: %s", f->err->msg);
}

static bool
has_image(fx *f, const cs_digest *id)
{
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(id, hex);
    cs_image *img = NULL;
    int r = cs_image_load(f->db, hex, &img, &f->err);
    cs_image_free(img);
    cs_error_clear(&f->err);
    return r == 0;
}

static void
leased_image_keeps_its_layers_through_rmi_and_gc(void **state)
{
    fx *f = *state;
    cs_digest id = tagged_image(f, "docker.io/library/base:1");
    cs_image *img = NULL;
    assert_int_equal(cs_lease_image(f->s, "base:1", &img, &f->err), 0);
    assert_true(cs_digest_eq(&img->id, &id));
    cs_image_free(img);

    cs_image_removal rm;
    assert_int_equal(cs_image_remove(f->s, "base:1", &rm, &f->err), 0);
    cs_image_removal_release(&rm);
    assert_false(has_image(f, &id)); /* rmi takes the record at once */
    cs_gc_stats st;
    gc(f, &st);
    assert_int_equal(st.trees, 0); /* the lease holds the layers */
    assert_int_equal(st.contents, 0);

    cs_lease_release(f->s);
    gc(f, &st);
    assert_int_equal(st.trees, 1);
    assert_int_equal(st.contents, 1);
}

static void
leased_tree_survives_gc_until_released(void **state)
{
    fx *f = *state;
    cs_tree *t = cs_tree_new();
    test_tree_add(t, "dir", CS_E_DIR);
    cs_digest d;
    assert_int_equal(cs_lease_tree_store(f->s, t, &d, &f->err), 0);
    cs_tree_free(t);
    cs_gc_stats st;
    gc(f, &st);
    assert_int_equal(st.trees, 0);
    cs_lease_release(f->s);
    gc(f, &st);
    assert_int_equal(st.trees, 1);
}

static void
lease_of_a_dead_process_is_ignored_and_removed(void **state)
{
    fx *f = *state;
    cs_digest tree = one_file_tree(f, "orphan");
    /* pid 999999 with a start time no process has: a killed build's lease. */
    char dir[256], path[300], line[80], hex[CS_DIGEST_HEX];
    snprintf(dir, sizeof(dir), "%s/leases", f->root);
    mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/999999-12345", dir);
    cs_digest_hex(&tree, hex);
    snprintf(line, sizeof(line), "t %s\n", hex);
    test_write_file(path, line, strlen(line), 0600);

    cs_gc_stats st;
    gc(f, &st);
    assert_int_equal(st.trees, 1);
    assert_int_equal(access(path, F_OK), -1);
}

static void
leasing_an_unknown_image_fails_and_leases_nothing(void **state)
{
    fx *f = *state;
    cs_image *img = NULL;
    assert_int_equal(cs_lease_image(f->s, "nosuch:1", &img, &f->err), -CS_ENOTFOUND);
    assert_null(img);
    assert_int_equal(-(int) f->err->code, -CS_ENOTFOUND);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(leased_image_keeps_its_layers_through_rmi_and_gc,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(leased_tree_survives_gc_until_released, test_sandbox_setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(lease_of_a_dead_process_is_ignored_and_removed,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(leasing_an_unknown_image_fails_and_leases_nothing,
                                        test_sandbox_setup, test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
