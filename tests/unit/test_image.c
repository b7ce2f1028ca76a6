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
    char dir[64];
    cs_store *s;
    cs_digest base, top; /* layer trees */
    cs_digest img_a;     /* base + top, tagged a:1 and a:2, dated */
    cs_digest img_b;     /* base, tagged b */
    cs_digest img_c;     /* no layers, untagged, undated */
} fx;

static cs_digest
put_tree(cs_db *db, MDB_txn *txn, const char *file, uint64_t size)
{
    cs_error *err = NULL;
    cs_digest d;
    cs_tree *t = cs_tree_new();
    cs_entry *e = cs_tree_add(t);
    e->path = strdup("etc");
    e->type = CS_E_DIR;
    e->mode = 0755;
    e = cs_tree_add(t);
    e->path = strdup(file);
    e->type = CS_E_FILE;
    e->mode = 0644;
    e->size = size;
    e->has_content = true;
    cs_sha256(file, strlen(file), &e->content); /* never read back */
    cs_tree_sort(t);
    assert_int_equal(cs_tree_put(db, txn, t, &d, &err), 0);
    cs_tree_free(t);
    return d;
}

static cs_digest
put_image(cs_db *db, MDB_txn *txn, const char *config, const cs_digest *layers, uint32_t n)
{
    cs_error *err = NULL;
    cs_image img = { .config = (char *) config, .config_len = strlen(config), .nlayers = n };
    img.layers = (cs_digest *) layers;
    cs_sha256(config, img.config_len, &img.id);
    assert_int_equal(cs_image_put(db, txn, &img, &err), 0);
    return img.id;
}

static void
tag(cs_db *db, MDB_txn *txn, const char *name, const cs_digest *id)
{
    cs_error *err = NULL;
    assert_int_equal(cs_tag_set(db, txn, name, id, &err), 0);
}

static int
setup(void **state)
{
    fx *f = calloc(1, sizeof(fx));
    cs_error *err = NULL;
    MDB_txn *txn;
    strcpy(f->dir, "/tmp/cstore-test-image-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(cs_store_open(f->dir, 0, &f->s, &err), 0);
    cs_db *db = cs_store_db(f->s);
    assert_int_equal(cs_db_begin(db, 0, &txn, &err), 0);
    f->base = put_tree(db, txn, "etc/base", 1000);
    f->top = put_tree(db, txn, "etc/top", 234);
    cs_digest ab[2] = { f->base, f->top };
    f->img_a = put_image(db, txn, "{\"created\":\"" CREATED "\",\"os\":\"linux\"}", ab, 2);
    f->img_b = put_image(db, txn, "{\"os\":\"linux\",\"b\":1}", ab, 1);
    f->img_c = put_image(db, txn, "{\"os\":\"linux\",\"c\":1}", NULL, 0);
    tag(db, txn, TAG_A1, &f->img_a);
    tag(db, txn, TAG_A2, &f->img_a);
    tag(db, txn, TAG_B, &f->img_b);
    assert_int_equal(cs_db_commit(txn, &err), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx *f = *state;
    cs_store_close(f->s);
    test_rmrf(f->dir);
    free(f);
    return 0;
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
    int rc = cs_image_info_get(f->s, name, &in, &err);
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
    cs_error *err = NULL;
    assert_int_equal(cs_image_list(f->s, &v, &n, &err), 0);
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
    cs_image_list_free(v, n);
}

static void
list_shows_an_untagged_image_without_tags(void **state)
{
    fx *f = *state;
    cs_image_info *v;
    size_t n;
    cs_error *err = NULL;
    assert_int_equal(cs_image_list(f->s, &v, &n, &err), 0);
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
    cs_error *err = NULL;
    assert_int_equal(cs_image_info_get(f->s, "a:2", &in, &err), 0);
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
    cs_error *err = NULL;
    assert_int_equal(cs_image_tag(f->s, "b", "docker.io/library/c:9", &err), 0);
    assert_int_equal(cs_image_info_get(f->s, "c:9", &in, &err), 0);
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
    cs_error *err = NULL;
    assert_int_equal(cs_image_remove(f->s, "a:1", &r, &err), 0);
    assert_true(cs_digest_eq(&r.id, &f->img_a));
    assert_int_equal(r.untagged.n, 1);
    assert_string_equal(r.untagged.v[0], TAG_A1);
    assert_false(r.deleted);
    cs_image_removal_release(&r);

    assert_int_equal(cs_image_info_get(f->s, "a:2", &in, &err), 0);
    assert_int_equal(in.tags.n, 1);
    assert_string_equal(in.tags.v[0], TAG_A2);
    cs_image_info_release(&in);
}

static void
remove_of_the_last_tag_removes_the_image_and_keeps_its_layers(void **state)
{
    fx *f = *state;
    cs_image_removal r;
    cs_error *err = NULL;
    assert_int_equal(cs_image_remove(f->s, "b", &r, &err), 0);
    assert_int_equal(r.untagged.n, 1);
    assert_string_equal(r.untagged.v[0], TAG_B);
    assert_true(r.deleted);
    assert_true(cs_digest_eq(&r.id, &f->img_b));
    cs_image_removal_release(&r);
    assert_false(has_image(f, &f->img_b));
    assert_true(has_image(f, &f->img_a)); /* shares the base layer */

    /* Trees stay until gc. */
    cs_db *db = cs_store_db(f->s);
    MDB_txn *txn;
    cs_tree *t = NULL;
    assert_int_equal(cs_db_begin(db, MDB_RDONLY, &txn, &err), 0);
    assert_int_equal(cs_tree_get(db, txn, &f->base, &t, &err), 0);
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
    cs_error *err = NULL;
    cs_digest_hex(&f->img_a, hex);
    snprintf(prefix, sizeof(prefix), "%.12s", hex);
    assert_int_equal(cs_image_remove(f->s, prefix, &r, &err), 0);
    assert_true(r.deleted);
    assert_true(cs_digest_eq(&r.id, &f->img_a));
    assert_int_equal(r.untagged.n, 2);
    assert_string_equal(r.untagged.v[0], TAG_A1);
    assert_string_equal(r.untagged.v[1], TAG_A2);
    cs_image_removal_release(&r);

    assert_int_equal(cs_image_list(f->s, &v, &n, &err), 0);
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
    cs_error *err = NULL;
    cs_digest_str(&f->img_c, id);
    assert_int_equal(cs_image_remove(f->s, id, &r, &err), 0);
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
    cs_error *err = NULL;
    assert_int_equal(cs_image_remove(f->s, "nosuch", &r, &err), -CS_ENOTFOUND);
    assert_non_null(err);
    assert_int_equal(err->code, CS_ENOTFOUND);
    assert_string_equal(err->msg, "image 'nosuch' not found");
    assert_int_equal(r.untagged.n, 0);
    assert_false(r.deleted);
    cs_error_free(err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(list_shows_every_image_with_its_tags_created_time_and_size,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(list_shows_an_untagged_image_without_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(info_get_resolves_a_tag_to_its_image_with_every_tag, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tag_gives_an_image_another_name, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_by_tag_keeps_an_image_another_tag_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            remove_of_the_last_tag_removes_the_image_and_keeps_its_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_by_id_removes_the_image_and_all_its_tags, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(remove_of_an_untagged_image_by_id_deletes_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(remove_of_an_unknown_name_fails_not_found, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
