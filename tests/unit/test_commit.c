/* test_commit.c - committing a built image (store/commit.c): the diff ids of
 * its new layers worked out in a read transaction and recorded with the image
 * (one commit), the same ids the one-transaction way gives. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "cstore/commit.h"
#include "cstore/store.h"
#include "cstore/tree.h"
#include "testutil.h"

typedef test_sandbox fx;

/* A one-file layer tree, committed. */
static cs_digest
layer(fx *f, const char *name, const char *text)
{
    size_t n = strlen(text);
    return test_store_file_tree(f->s, name, (const uint8_t *) text, n, n);
}

static bool
has_blob(fx *f, const cs_digest *tree)
{
    uint8_t k[33];
    memcpy(k, tree->b, 32);
    k[32] = CS_COMP_NONE;
    return test_has(f->s, CS_T_LAYER_BLOBS, k, sizeof(k));
}

static void
new_layers_diff_ids_are_recorded_by_the_image_commit(void **state)
{
    fx *f = *state;
    cs_digest trees[2] = { layer(f, "a", "first layer"), layer(f, "b", "second layer") };
    cs_digest got[2], want[2];
    cs_diff_pending p;
    assert_int_equal(cs_layer_diff_ids_pending(f->db, trees, 2, got, &p, &f->err), 0);
    assert_int_equal(p.n, 2);
    assert_false(has_blob(f, &trees[0])); /* nothing written yet */
    assert_false(has_blob(f, &trees[1]));

    static const char config[] = "{\"rootfs\":{\"type\":\"layers\"}}";
    cs_image img = { .config = (char *) config, .config_len = strlen(config) };
    cs_sha256(config, img.config_len, &img.id);
    img.layers = trees;
    img.nlayers = 2;
    assert_int_equal(cs_image_commit_pending(f->db, &img, NULL, &p, &f->err), 0);
    cs_diff_pending_release(&p);
    assert_true(has_blob(f, &trees[0]));
    assert_true(has_blob(f, &trees[1]));
    assert_true(test_has(f->s, CS_T_IMAGES, img.id.b, 32));

    /* The ids the one-transaction way gives; nothing is pending any more. */
    assert_int_equal(cs_layer_diff_ids(f->db, trees, 2, want, &f->err), 0);
    assert_memory_equal(got, want, sizeof(want));
    assert_false(memcmp(&got[0], &got[1], sizeof(got[0])) == 0);
    assert_int_equal(cs_layer_diff_ids_pending(f->db, trees, 2, got, &p, &f->err), 0);
    assert_int_equal(p.n, 0);
    assert_memory_equal(got, want, sizeof(want));
}

static void
diff_ids_of_a_missing_tree_fail_and_leave_nothing_pending(void **state)
{
    fx *f = *state;
    cs_digest gone = test_sha("no such tree"), out;
    cs_diff_pending p;
    assert_true(cs_layer_diff_ids_pending(f->db, &gone, 1, &out, &p, &f->err) < 0);
    assert_int_equal(p.n, 0);
    assert_null(p.trees);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(new_layers_diff_ids_are_recorded_by_the_image_commit,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(diff_ids_of_a_missing_tree_fail_and_leave_nothing_pending,
                                        test_sandbox_setup, test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
