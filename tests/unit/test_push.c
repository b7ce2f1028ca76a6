/* test_push.c - an image as a push sends it (store/push.c) and the
 * blob_repos records of where blobs are (store/blobrepo.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cstore/blobrepo.h"
#include "cstore/export.h"
#include "cstore/gc.h"
#include "cstore/image.h"
#include "cstore/push.h"

#define TAG "docker.io/library/pushme:1"

typedef struct fx {
    test_sandbox sb; /* first: see testutil.h */
    cs_digest trees[2], id;
} fx;

static void
fill(void *fp, cs_db *db, MDB_txn *txn)
{
    fx *f = fp;
    cs_digest hello = test_put_content(db, txn, (const uint8_t *) "hello\n", 6, 64 * 1024);
    cs_tree *t = cs_tree_new();
    test_tree_add(t, "etc", CS_E_DIR);
    test_tree_add_file(t, "etc/hello", &hello, 6);
    f->trees[0] = test_put_tree(db, txn, t);
    t = cs_tree_new();
    test_tree_add_file(t, "hello2", &hello, 6);
    f->trees[1] = test_put_tree(db, txn, t);
    f->id = test_put_image(db, txn,
                           "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
                           "\"layers\",\"diff_ids\":[]}}",
                           f->trees, 2, TAG);
}

static int
setup(void **state)
{
    return test_sandbox_fill(state, sizeof(fx), 0, fill);
}

/* cs_push_image_open, then cs_push_image_prepare. */
static cs_push_image *
push_open(fx *f, cs_push_format fmt, cs_compression c)
{
    cs_push_image *p = NULL;
    assert_int_equal(cs_push_image_open(f->sb.s, TAG, fmt, c, &p, &f->sb.err), 0);
    assert_int_equal(cs_push_image_prepare(p, &f->sb.err), 0);
    return p;
}

static json_t *
manifest_json(const cs_push_image *p, cs_push_blob *d)
{
    size_t len;
    const char *m = cs_push_image_manifest(p, &len, d);
    json_t *j = json_loadb(m, len, 0, NULL);
    assert_non_null(j);
    return j;
}

static const char *
jstr(json_t *j, const char *a, const char *b)
{
    json_t *o = json_object_get(j, a);
    return json_string_value(b ? json_object_get(o, b) : o);
}

/* The manifest digest `export --format oci-dir` gives the same image. */
static void
export_manifest_digest(fx *f, cs_compression c, char out[CS_DIGEST_STR])
{
    char dir[200];
    snprintf(dir, sizeof(dir), "%s/layout", f->sb.work);
    assert_int_equal(cs_export(f->sb.s, TAG, dir, CS_FMT_OCI_DIR, c, &f->sb.err), 0);
    char idx[240];
    snprintf(idx, sizeof(idx), "%s/index.json", dir);
    json_t *j = json_load_file(idx, 0, NULL);
    assert_non_null(j);
    const char *d = jstr(json_array_get(json_object_get(j, "manifests"), 0), "digest", NULL);
    assert_non_null(d);
    snprintf(out, CS_DIGEST_STR, "%s", d);
    json_decref(j);
}

static void
push_manifest_is_the_one_export_writes(void **state)
{
    fx *f = *state;
    static const cs_compression comps[] = { CS_COMP_GZIP, CS_COMP_ZSTD, CS_COMP_NONE };
    for (size_t i = 0; i < 3; i++) {
        test_case("compression %d", (int) comps[i]);
        cs_push_image *p = push_open(f, CS_PUSH_OCI, comps[i]);
        cs_push_blob d;
        json_decref(manifest_json(p, &d));
        char mine[CS_DIGEST_STR], theirs[CS_DIGEST_STR];
        cs_digest_str(&d.digest, mine);
        assert_string_equal(d.media_type, "application/vnd.oci.image.manifest.v1+json");
        export_manifest_digest(f, comps[i], theirs);
        assert_string_equal(mine, theirs);
        assert_true(cs_digest_eq(cs_push_image_id(p), &f->id));
        cs_push_image_free(p);
        char rm[220];
        snprintf(rm, sizeof(rm), "%s/layout", f->sb.work);
        test_rmrf(rm);
    }
}

/* Streams every layer of p, checking each against its descriptor. */
static void
check_layers(fx *f, cs_push_image *p)
{
    assert_int_equal(cs_push_image_nlayers(p), 2);
    for (uint32_t i = 0; i < 2; i++) {
        const cs_push_blob *b = cs_push_image_layer(p, i);
        assert_true(cs_digest_eq(&b->tree, &f->trees[i]));
        assert_false(b->dup);
        cs_buf out;
        cs_buf_init(&out);
        assert_int_equal(cs_push_layer_write(p, i, test_sink_buf, &out, &f->sb.err), 0);
        cs_digest got;
        cs_sha256(out.data, out.len, &got);
        assert_true(cs_digest_eq(&got, &b->digest));
        assert_int_equal(out.len, b->size);
        cs_buf_release(&out);
    }
}

static void
push_layer_write_streams_the_blob_its_digest_names(void **state)
{
    fx *f = *state;
    /* The first prepare generates both layers once to learn their digests
     * (and keeps the bytes for the upload); the second finds them cached
     * and generates the layers again as they are written. */
    for (int pass = 0; pass < 2; pass++) {
        test_case(pass ? "digests cached" : "digests learned");
        cs_push_image *p = push_open(f, CS_PUSH_OCI, CS_COMP_GZIP);
        assert_int_equal(test_count(f->sb.s, CS_T_LAYER_BLOBS), 4); /* gzip and plain tar each */
        check_layers(f, p);
        const char *cfg;
        size_t len;
        const cs_push_blob *c = cs_push_image_config(p, &cfg, &len);
        cs_digest cd;
        cs_sha256(cfg, len, &cd);
        assert_true(cs_digest_eq(&cd, &c->digest));
        assert_int_equal(c->size, len);
        cs_push_image_free(p);
    }
}

static void
push_docker_format_has_schema2_media_types(void **state)
{
    fx *f = *state;
    static const struct {
        cs_compression c;
        const char *layer;
    } rows[] = {
        { CS_COMP_GZIP, "application/vnd.docker.image.rootfs.diff.tar.gzip" },
        { CS_COMP_NONE, "application/vnd.docker.image.rootfs.diff.tar" },
    };
    for (size_t i = 0; i < 2; i++) {
        test_case("%s", rows[i].layer);
        cs_push_image *p = push_open(f, CS_PUSH_DOCKER, rows[i].c);
        cs_push_blob d;
        json_t *m = manifest_json(p, &d);
        assert_string_equal(d.media_type, "application/vnd.docker.distribution.manifest.v2+json");
        assert_string_equal(jstr(m, "mediaType", NULL), d.media_type);
        assert_string_equal(jstr(m, "config", "mediaType"),
                            "application/vnd.docker.container.image.v1+json");
        json_t *l0 = json_array_get(json_object_get(m, "layers"), 0);
        assert_string_equal(json_string_value(json_object_get(l0, "mediaType")), rows[i].layer);
        assert_string_equal(cs_push_image_layer(p, 0)->media_type, rows[i].layer);
        json_decref(m);
        cs_push_image_free(p);
    }
}

static void
push_image_open_refuses_zstd_docker_and_unknown_images(void **state)
{
    fx *f = *state;
    cs_push_image *p = NULL;
    assert_int_equal(cs_push_image_open(f->sb.s, TAG, CS_PUSH_DOCKER, CS_COMP_ZSTD, &p, &f->sb.err),
                     -CS_EINVAL);
    test_assert_msg(f->sb.err, "zstd");
    cs_error_clear(&f->sb.err);
    assert_int_equal(
        cs_push_image_open(f->sb.s, "nosuch:1", CS_PUSH_OCI, CS_COMP_GZIP, &p, &f->sb.err),
        -CS_ENOTFOUND);
    test_assert_msg(f->sb.err, "not found");
    assert_null(p);
    assert_int_equal(test_count(f->sb.s, CS_T_LAYER_BLOBS), 0);
}

static void
blob_repo_find_gives_the_latest_other_repository_of_the_registry(void **state)
{
    fx *f = *state;
    cs_digest blob = test_sha("blob"), other = test_sha("other");
    cs_blob_repo v[] = {
        { blob, f->trees[0], "127.0.0.1:5000", "a/one" },
        { blob, f->trees[0], "127.0.0.1:5001", "b/elsewhere" },
        { other, f->trees[0], "127.0.0.1:5000", "c/other-blob" },
    };
    assert_int_equal(cs_blob_repos_put(f->sb.s, v, 3, &f->sb.err), 0);
    char *repo = NULL;
    assert_int_equal(cs_blob_repo_find(f->sb.s, &blob, "127.0.0.1:5000", "x/y", &repo, &f->sb.err),
                     0);
    assert_string_equal(repo, "a/one");
    free(repo);
    /* Only the repository pushed to knows it: nothing to mount from. */
    assert_int_equal(
        cs_blob_repo_find(f->sb.s, &blob, "127.0.0.1:5000", "a/one", &repo, &f->sb.err),
        -CS_ENOTFOUND);
    assert_null(f->sb.err);
    assert_int_equal(cs_blob_repo_find(f->sb.s, &blob, "127.0.0.1", NULL, &repo, &f->sb.err),
                     -CS_ENOTFOUND);
    cs_blob_repo bad = { blob, f->trees[0], "host/x", "r" };
    assert_int_equal(cs_blob_repos_put(f->sb.s, &bad, 1, &f->sb.err), -CS_EINVAL);
    assert_int_equal(test_count(f->sb.s, CS_T_BLOB_REPOS), 3);
}

static size_t
last_txn(fx *f)
{
    MDB_envinfo info;
    assert_int_equal(mdb_env_info(cs_db_env(f->sb.db), &info), 0);
    return info.me_last_txnid;
}

static void
blob_repos_put_of_recorded_entries_writes_nothing(void **state)
{
    fx *f = *state;
    cs_blob_repo v[] = {
        { test_sha("a"), f->trees[0], "127.0.0.1:5000", "a/one" },
        { test_sha("b"), f->trees[1], "127.0.0.1:5000", "a/one" },
    };
    assert_int_equal(cs_blob_repos_put(f->sb.s, v, 2, &f->sb.err), 0);
    size_t t0 = last_txn(f);
    assert_int_equal(cs_blob_repos_put(f->sb.s, v, 2, &f->sb.err), 0);
    assert_int_equal(last_txn(f), t0);
    /* Another tree for the same blob is written. */
    v[1].tree = f->trees[0];
    assert_int_equal(cs_blob_repos_put(f->sb.s, v, 2, &f->sb.err), 0);
    assert_int_equal(last_txn(f), t0 + 1);
    assert_int_equal(test_count(f->sb.s, CS_T_BLOB_REPOS), 2);
}

static void
gc_drops_blob_repos_of_freed_trees(void **state)
{
    fx *f = *state;
    cs_digest blob = test_sha("blob");
    cs_blob_repo v[] = {
        { blob, f->trees[1], "127.0.0.1:5000", "kept/tree" },
        { blob, test_sha("no such tree"), "127.0.0.1:5000", "freed/tree" },
    };
    assert_int_equal(cs_blob_repos_put(f->sb.s, v, 2, &f->sb.err), 0);
    cs_gc_stats st;
    assert_int_equal(cs_gc(f->sb.s, false, false, &st, &f->sb.err), 0);
    assert_int_equal(st.blob_repos, 1);
    char *repo = NULL;
    assert_int_equal(cs_blob_repo_find(f->sb.s, &blob, "127.0.0.1:5000", NULL, &repo, &f->sb.err),
                     0);
    assert_string_equal(repo, "kept/tree");
    free(repo);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(push_manifest_is_the_one_export_writes, setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(push_layer_write_streams_the_blob_its_digest_names, setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(push_docker_format_has_schema2_media_types, setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(push_image_open_refuses_zstd_docker_and_unknown_images,
                                        setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(
            blob_repo_find_gives_the_latest_other_repository_of_the_registry, setup,
            test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(blob_repos_put_of_recorded_entries_writes_nothing, setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(gc_drops_blob_repos_of_freed_trees, setup,
                                        test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
