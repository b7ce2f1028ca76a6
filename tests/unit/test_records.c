/* test_records.c - tree codec, path cleaning, chunk/content/image records. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "cstore/content.h"
#include "cstore/image.h"
#include "cstore/store.h"
#include "cstore/tree.h"

typedef test_sandbox fx;

static cs_tree *
sample_tree(void)
{
    cs_tree *t = cs_tree_new();
    cs_entry *e = cs_tree_add(t);
    e->path = cs_xstrdup("usr/bin/app");
    e->type = CS_E_FILE;
    e->mode = 04755;
    e->uid = 1000;
    e->gid = 1001;
    e->uname = cs_xstrdup("app");
    e->mtime_sec = 1700000000;
    e->mtime_nsec = 123456789;
    e->size = 5;
    e->has_content = true;
    cs_sha256("hello", 5, &e->content);
    cs_entry_add_xattr(e, "user.b", "2", 1);
    cs_entry_add_xattr(e, "security.capability", "\x01\x00", 2);
    e = cs_tree_add(t);
    e->path = cs_xstrdup("usr");
    e->type = CS_E_DIR;
    e->mode = 0755;
    e = cs_tree_add(t);
    e->path = cs_xstrdup("bin/sh");
    e->type = CS_E_SYMLINK;
    e->mode = 0777;
    e->link = cs_xstrdup("/bin/busybox");
    e = cs_tree_add(t);
    e->path = cs_xstrdup("dev/null");
    e->type = CS_E_CHAR;
    e->devmajor = 1;
    e->devminor = 3;
    cs_tree_sort(t);
    return t;
}

/* The sample tree, and its encoding in b (initialized here). */
static cs_tree *
encoded_sample(cs_buf *b)
{
    cs_tree *t = sample_tree();
    cs_buf_init(b);
    cs_tree_encode(t, b);
    return t;
}

static void
tree_encoding_round_trips_every_attribute(void **state)
{
    (void) state;
    cs_buf b;
    cs_tree *t = encoded_sample(&b);
    cs_tree *u = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_tree_decode(b.data, b.len, &u, &err), 0);
    assert_int_equal(u->n, 4);
    const cs_entry *e = cs_tree_find(u, "usr/bin/app");
    assert_non_null(e);
    assert_int_equal(e->mode, 04755);
    assert_int_equal(e->uid, 1000);
    assert_int_equal(e->gid, 1001);
    assert_string_equal(e->uname, "app");
    assert_null(e->gname);
    assert_int_equal(e->mtime_nsec, 123456789);
    assert_int_equal(e->nxattrs, 2);
    assert_string_equal(e->xattrs[0].name, "security.capability"); /* sorted */
    assert_true(cs_digest_eq(&e->content, &t->e[3].content));
    e = cs_tree_find(u, "dev/null");
    assert_int_equal(e->devmajor, 1);
    assert_int_equal(e->devminor, 3);
    assert_string_equal(cs_tree_find(u, "bin/sh")->link, "/bin/busybox");
    cs_buf c;
    cs_buf_init(&c);
    cs_tree_encode(u, &c);
    assert_int_equal(b.len, c.len);
    assert_memory_equal(b.data, c.data, b.len);
    cs_buf_release(&b);
    cs_buf_release(&c);
    cs_tree_free(t);
    cs_tree_free(u);
}

static void
tree_decode_refuses_truncated_and_garbage_records(void **state)
{
    (void) state;
    cs_buf b;
    cs_tree *t = encoded_sample(&b);
    for (size_t cut = 0; cut < b.len; cut += 7) {
        cs_tree *u = NULL;
        cs_error *err = NULL;
        assert_true(cs_tree_decode(b.data, cut, &u, &err) < 0);
        assert_non_null(err);
        cs_error_free(err);
    }
    b.data[8] = 0xff; /* absurd count */
    cs_tree *u = NULL;
    cs_error *err = NULL;
    assert_true(cs_tree_decode(b.data, b.len, &u, &err) < 0);
    cs_error_free(err);
    cs_buf_release(&b);
    cs_tree_free(t);
}

static void
tree_sort_keeps_the_last_of_equal_paths(void **state)
{
    (void) state;
    cs_tree *t = cs_tree_new();
    const char *paths[] = { "b", "a", "b", "a/x" };
    for (int i = 0; i < 4; i++) {
        cs_entry *e = cs_tree_add(t);
        e->path = cs_xstrdup(paths[i]);
        e->mode = (uint32_t) i;
    }
    cs_tree_sort(t);
    assert_int_equal(t->n, 3);
    assert_string_equal(t->e[0].path, "a");
    assert_string_equal(t->e[1].path, "a/x");
    assert_string_equal(t->e[2].path, "b");
    assert_int_equal(t->e[2].mode, 2);
    cs_tree_free(t);
}

static void
path_clean_normalizes_and_refuses_dotdot(void **state)
{
    (void) state;
    const char *ok[][2] = { { "./a/b/", "a/b" },
                            { "/a//b/./c", "a/b/c" },
                            { ".", "" },
                            { "a/.b", "a/.b" },
                            { "..a/b", "..a/b" } };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *out = NULL;
        assert_int_equal(cs_path_clean(ok[i][0], &out, NULL), 0);
        assert_string_equal(out, ok[i][1]);
        free(out);
    }
    const char *bad[] = { "../x", "a/../../x", "a/..", ".." };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *out = NULL;
        cs_error *err = NULL;
        assert_int_equal(cs_path_clean(bad[i], &out, &err), -CS_EINVAL);
        assert_non_null(strstr(err->msg, ".."));
        cs_error_free(err);
    }
}

static void
chunks_and_contents_round_trip_and_detect_corruption(void **state)
{
    fx *f = *state;
    cs_db *db = cs_store_db(f->s);
    uint8_t data[100000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t) (i * 7 / 13);
    cs_digest d1, d2, whole;
    cs_sha256(data, 60000, &d1);
    cs_sha256(data + 60000, 40000, &d2);
    cs_sha256(data, sizeof(data), &whole);
    uint8_t z[ZSTD_COMPRESSBOUND(60000)];
    size_t zn = ZSTD_compress(z, sizeof(z), data, 60000, 1);
    MDB_txn *txn;
    cs_error *err = NULL;
    assert_int_equal(cs_db_begin(db, 0, &txn, &err), 0);
    assert_int_equal(cs_chunk_put(db, txn, &d1, CS_CODEC_ZSTD, 60000, z, zn, &err), 1);
    assert_int_equal(cs_chunk_put(db, txn, &d1, CS_CODEC_ZSTD, 60000, z, zn, &err), 0);
    assert_int_equal(cs_chunk_put(db, txn, &d2, CS_CODEC_RAW, 40000, data + 60000, 40000, &err), 1);
    cs_chunk_ref refs[2] = { { d1, 60000 }, { d2, 40000 } };
    assert_int_equal(cs_content_put(db, txn, &whole, sizeof(data), refs, 2, &err), 1);
    assert_int_equal(cs_db_commit(txn, &err), 0);

    assert_int_equal(cs_db_begin(db, MDB_RDONLY, &txn, &err), 0);
    cs_buf b;
    cs_buf_init(&b);
    assert_int_equal(cs_chunk_read(db, txn, &d1, true, &b, &err), 0);
    assert_int_equal(cs_chunk_read(db, txn, &d2, true, &b, &err), 0);
    assert_int_equal(b.len, sizeof(data));
    assert_memory_equal(b.data, data, sizeof(data));
    uint64_t size;
    cs_chunk_ref *got;
    uint32_t n;
    assert_int_equal(cs_content_get(db, txn, &whole, &size, &got, &n, &err), 0);
    assert_int_equal(size, sizeof(data));
    assert_int_equal(n, 2);
    free(got);
    mdb_txn_abort(txn);

    /* A chunk whose stored bytes changed is caught on a verified read. */
    assert_int_equal(cs_db_begin(db, 0, &txn, &err), 0);
    MDB_val k = { 32, d2.b }, v = { 5 + 40000, NULL };
    assert_int_equal(mdb_put(txn, cs_db_dbi(db, CS_T_CHUNKS), &k, &v, MDB_RESERVE), 0);
    uint8_t *p = v.mv_data;
    p[0] = CS_CODEC_RAW;
    p[1] = 0, p[2] = 0, p[3] = 0x9c, p[4] = 0x40; /* 40000 */
    memcpy(p + 5, data, 40000);                   /* wrong bytes */
    b.len = 0;
    assert_int_equal(cs_chunk_read(db, txn, &d2, false, &b, &err), 0);
    assert_int_equal(cs_chunk_read(db, txn, &d2, true, &b, &err), -CS_ECORRUPT);
    assert_non_null(strstr(err->msg, "do not match"));
    cs_error_free(err);
    mdb_txn_abort(txn);
    cs_buf_release(&b);
}

static void
image_records_and_tags_resolve_by_name_id_and_prefix(void **state)
{
    fx *f = *state;
    cs_db *db = cs_store_db(f->s);
    const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\"}";
    cs_image img = { 0 };
    img.config = (char *) cfg;
    img.config_len = strlen(cfg);
    cs_sha256(cfg, img.config_len, &img.id);
    cs_digest layers[2];
    memset(layers, 0xab, sizeof(layers));
    img.layers = layers;
    img.nlayers = 2;
    MDB_txn *txn;
    cs_error *err = NULL;
    assert_int_equal(cs_db_begin(db, 0, &txn, &err), 0);
    assert_int_equal(cs_image_put(db, txn, &img, &err), 0);
    assert_int_equal(cs_tag_set(db, txn, "docker.io/library/golang:1.19", &img.id, &err), 0);
    cs_digest id;
    const char *names[] = { "golang:1.19", "library/golang:1.19", "docker.io/library/golang:1.19" };
    for (int i = 0; i < 3; i++) {
        memset(&id, 0, sizeof(id));
        assert_int_equal(cs_image_resolve(db, txn, names[i], &id, &err), 0);
        assert_true(cs_digest_eq(&id, &img.id));
    }
    char hex[CS_DIGEST_HEX], str[CS_DIGEST_STR];
    cs_digest_hex(&img.id, hex);
    cs_digest_str(&img.id, str);
    assert_int_equal(cs_image_resolve(db, txn, str, &id, &err), 0);
    hex[12] = 0;
    assert_int_equal(cs_image_resolve(db, txn, hex, &id, &err), 0);
    assert_true(cs_digest_eq(&id, &img.id));
    assert_int_equal(cs_image_resolve(db, txn, "golang", &id, &err), -CS_ENOTFOUND);
    assert_non_null(strstr(err->msg, "'golang'"));
    cs_error_clear(&err);
    cs_image *back = NULL;
    assert_int_equal(cs_image_get(db, txn, &img.id, &back, &err), 0);
    assert_string_equal(back->config, cfg);
    assert_int_equal(back->nlayers, 2);
    assert_memory_equal(back->layers, layers, sizeof(layers));
    cs_image_free(back);
    mdb_txn_abort(txn);
}

static void
a_store_of_a_newer_schema_is_refused(void **state)
{
    fx *f = *state;
    cs_db *db = cs_store_db(f->s);
    MDB_txn *txn;
    cs_error *err = NULL;
    assert_int_equal(cs_db_begin(db, 0, &txn, &err), 0);
    assert_int_equal(cs_db_put(db, txn, CS_T_META, "schema", 6, "99", 2, 0, &err), 1);
    assert_int_equal(cs_db_commit(txn, &err), 0);
    cs_store *s2 = NULL;
    assert_int_equal(cs_store_open(f->root, 0, &s2, &err), -CS_EVERSION);
    assert_non_null(strstr(err->msg, "schema version 99"));
    cs_error_free(err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tree_encoding_round_trips_every_attribute),
        cmocka_unit_test(tree_decode_refuses_truncated_and_garbage_records),
        cmocka_unit_test(tree_sort_keeps_the_last_of_equal_paths),
        cmocka_unit_test(path_clean_normalizes_and_refuses_dotdot),
        cmocka_unit_test_setup_teardown(chunks_and_contents_round_trip_and_detect_corruption,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(image_records_and_tags_resolve_by_name_id_and_prefix,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(a_store_of_a_newer_schema_is_refused, test_sandbox_setup,
                                        test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
