/* test_image.c - listing, tagging and removing images (image_list.c,
 * image_tag.c) on a small hand-built store. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstore/image.h"
#include "cstore/store.h"
#include "cstore/tree.h"
#include "testutil.h"

#define TAG_A1  "docker.io/library/a:1"
#define TAG_A2  "docker.io/library/a:2"
#define TAG_B   "docker.io/library/b:latest"
#define CREATED "2023-05-01T12:00:00Z"

typedef struct fx {
    test_sandbox sb;
    cs_digest base, top; /* layer trees */
    cs_digest img_a;     /* base + top, tagged a:1 and a:2, dated */
    cs_digest img_b;     /* base, tagged b */
    cs_digest img_c;     /* no layers, untagged, undated */
} fx;

/* The layer tree etc/ + file (size bytes, a content never read back). */
static cs_digest
put_tree(cs_db *db, MDB_txn *txn, const char *file, uint64_t size)
{
    cs_tree *t = cs_tree_new();
    test_tree_add(t, "etc", CS_E_DIR);
    cs_digest c;
    cs_sha256(file, strlen(file), &c);
    test_tree_add_file(t, file, &c, size);
    return test_put_tree(db, txn, t);
}

static void
fill(void *fp, cs_db *db, MDB_txn *txn)
{
    fx *f = fp;
    f->base = put_tree(db, txn, "etc/base", 1000);
    f->top = put_tree(db, txn, "etc/top", 234);
    cs_digest ab[2] = { f->base, f->top };
    f->img_a =
        test_put_image(db, txn, "{\"created\":\"" CREATED "\",\"os\":\"linux\"}", ab, 2, TAG_A1);
    f->img_b = test_put_image(db, txn, "{\"os\":\"linux\",\"b\":1}", ab, 1, TAG_B);
    f->img_c = test_put_image(db, txn, "{\"os\":\"linux\",\"c\":1}", NULL, 0, NULL);
    assert_int_equal(cs_tag_set(db, txn, TAG_A2, &f->img_a, &f->sb.err), 0);
}

static int
setup(void **state)
{
    return test_sandbox_fill(state, sizeof(fx), 0, fill);
}

static const cs_image_info *
find(const cs_image_info *v, size_t n, const cs_digest *id)
{
    for (size_t i = 0; i < n; i++)
        if (cs_digest_eq(&v[i].id, id))
            return &v[i];
    fail_msg("image not listed");
    return NULL;
}

/* True when the store still has image id. */
static bool
has_image(fx *f, const cs_digest *id)
{
    char name[CS_DIGEST_STR];
    cs_image_info in;
    cs_error *err = NULL;
    cs_digest_str(id, name);
    int rc = cs_image_info_get(f->sb.s, name, &in, &err);
    if (rc == -CS_ENOTFOUND) {
        cs_error_free(err);
        return false;
    }
    assert_int_equal(rc, 0);
    cs_image_info_release(&in);
    return true;
}

static void
list_shows_every_image_with_its_tags_created_time_and_size(void **state)
{
    fx *f = *state;
    cs_image_info *v;
    size_t n;
    assert_int_equal(cs_image_list(f->sb.s, &v, &n, &f->sb.err), 0);
    assert_int_equal(n, 3);
    for (size_t i = 1; i < n; i++)
        assert_true(memcmp(v[i - 1].id.b, v[i].id.b, 32) < 0);

    const cs_image_info *a = find(v, n, &f->img_a);
    assert_int_equal(a->tags.n, 2);
    assert_string_equal(a->tags.v[0], TAG_A1);
    assert_string_equal(a->tags.v[1], TAG_A2);
    assert_string_equal(a->created, CREATED);
    assert_int_equal(a->size, 1234);
    assert_int_equal(a->nlayers, 2);
    assert_true(cs_digest_eq(&a->layers[0].tree, &f->base));
    assert_int_equal(a->layers[0].bytes, 1000);
    assert_int_equal(a->layers[0].entries, 2);

    const cs_image_info *b = find(v, n, &f->img_b);
    assert_int_equal(b->tags.n, 1);
    assert_string_equal(b->tags.v[0], TAG_B);
    assert_null(b->created);
    assert_int_equal(b->size, 1000);

    /* an untagged image is listed without tags */
    const cs_image_info *c = find(v, n, &f->img_c);
    assert_int_equal(c->tags.n, 0);
    assert_null(c->tags.v);
    assert_int_equal(c->size, 0);
    assert_int_equal(c->nlayers, 0);
    cs_image_list_free(v, n);
}

static void
info_get_resolves_a_tag_to_its_image_with_every_tag(void **state)
{
    fx *f = *state;
    cs_image_info in;
    assert_int_equal(cs_image_info_get(f->sb.s, "a:2", &in, &f->sb.err), 0);
    assert_true(cs_digest_eq(&in.id, &f->img_a));
    assert_int_equal(in.tags.n, 2);
    assert_string_equal(in.tags.v[0], TAG_A1);
    assert_int_equal(in.size, 1234);
    assert_non_null(strstr(in.config, CREATED));
    cs_image_info_release(&in);
}

static void
tag_gives_an_image_another_name(void **state)
{
    fx *f = *state;
    cs_image_info in;
    assert_int_equal(cs_image_tag(f->sb.s, "b", "docker.io/library/c:9", &f->sb.err), 0);
    assert_int_equal(cs_image_info_get(f->sb.s, "c:9", &in, &f->sb.err), 0);
    assert_true(cs_digest_eq(&in.id, &f->img_b));
    assert_int_equal(in.tags.n, 2);
    cs_image_info_release(&in);
}

static void
remove_by_tag_keeps_an_image_another_tag_names(void **state)
{
    fx *f = *state;
    cs_image_removal r;
    cs_image_info in;
    assert_int_equal(cs_image_remove(f->sb.s, "a:1", &r, &f->sb.err), 0);
    assert_true(cs_digest_eq(&r.id, &f->img_a));
    assert_int_equal(r.untagged.n, 1);
    assert_string_equal(r.untagged.v[0], TAG_A1);
    assert_false(r.deleted);
    cs_image_removal_release(&r);

    assert_int_equal(cs_image_info_get(f->sb.s, "a:2", &in, &f->sb.err), 0);
    assert_int_equal(in.tags.n, 1);
    assert_string_equal(in.tags.v[0], TAG_A2);
    cs_image_info_release(&in);
}

static void
remove_of_the_last_tag_removes_the_image_and_keeps_its_layers(void **state)
{
    fx *f = *state;
    cs_image_removal r;
    assert_int_equal(cs_image_remove(f->sb.s, "b", &r, &f->sb.err), 0);
    assert_int_equal(r.untagged.n, 1);
    assert_string_equal(r.untagged.v[0], TAG_B);
    assert_true(r.deleted);
    assert_true(cs_digest_eq(&r.id, &f->img_b));
    cs_image_removal_release(&r);
    assert_false(has_image(f, &f->img_b));
    assert_true(has_image(f, &f->img_a)); /* shares the base layer */

    /* Trees stay until gc. */
    cs_db *db = cs_store_db(f->sb.s);
    MDB_txn *txn;
    cs_tree *t = NULL;
    assert_int_equal(cs_db_begin(db, MDB_RDONLY, &txn, &f->sb.err), 0);
    assert_int_equal(cs_tree_get(db, txn, &f->base, &t, &f->sb.err), 0);
    mdb_txn_abort(txn);
    cs_tree_free(t);
}

static void
remove_by_id_removes_the_image_and_all_its_tags(void **state)
{
    fx *f = *state;
    cs_image_removal r;
    cs_image_info *v;
    size_t n;
    char hex[CS_DIGEST_HEX], prefix[13];
    cs_digest_hex(&f->img_a, hex);
    snprintf(prefix, sizeof(prefix), "%.12s", hex);
    assert_int_equal(cs_image_remove(f->sb.s, prefix, &r, &f->sb.err), 0);
    assert_true(r.deleted);
    assert_true(cs_digest_eq(&r.id, &f->img_a));
    assert_int_equal(r.untagged.n, 2);
    assert_string_equal(r.untagged.v[0], TAG_A1);
    assert_string_equal(r.untagged.v[1], TAG_A2);
    cs_image_removal_release(&r);

    assert_int_equal(cs_image_list(f->sb.s, &v, &n, &f->sb.err), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < v[i].tags.n; j++)
            assert_null(strstr(v[i].tags.v[j], "/a:"));
    cs_image_list_free(v, n);
}

static void
remove_of_an_untagged_image_by_id_deletes_it(void **state)
{
    fx *f = *state;
    cs_image_removal r;
    char id[CS_DIGEST_STR];
    cs_digest_str(&f->img_c, id);
    assert_int_equal(cs_image_remove(f->sb.s, id, &r, &f->sb.err), 0);
    assert_true(r.deleted);
    assert_int_equal(r.untagged.n, 0);
    cs_image_removal_release(&r);
    assert_false(has_image(f, &f->img_c));
}

static void
remove_of_an_unknown_name_fails_not_found(void **state)
{
    fx *f = *state;
    cs_image_removal r;
    assert_int_equal(cs_image_remove(f->sb.s, "nosuch", &r, &f->sb.err), -CS_ENOTFOUND);
    assert_non_null(f->sb.err);
    assert_int_equal(f->sb.err->code, CS_ENOTFOUND);
    assert_string_equal(f->sb.err->msg, "image 'nosuch' not found");
    assert_int_equal(r.untagged.n, 0);
    assert_false(r.deleted);
}

#define IMAGE_TEST(t) cmocka_unit_test_setup_teardown(t, setup, test_sandbox_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IMAGE_TEST(list_shows_every_image_with_its_tags_created_time_and_size),
        IMAGE_TEST(info_get_resolves_a_tag_to_its_image_with_every_tag),
        IMAGE_TEST(tag_gives_an_image_another_name),
        IMAGE_TEST(remove_by_tag_keeps_an_image_another_tag_names),
        IMAGE_TEST(remove_of_the_last_tag_removes_the_image_and_keeps_its_layers),
        IMAGE_TEST(remove_by_id_removes_the_image_and_all_its_tags),
        IMAGE_TEST(remove_of_an_untagged_image_by_id_deletes_it),
        IMAGE_TEST(remove_of_an_unknown_name_fails_not_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
