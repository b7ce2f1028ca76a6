/* test_load.c - loading whole images (load.c): docker-archive, OCI archive
 * and OCI layout dir, each made here in memory; every blob is checked
 * against its digest and a refused image stores nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <string.h>

#include "cstore/content.h"
#include "cstore/image.h"
#include "cstore/load.h"
#include "cstore/store.h"
#include "cstore/tree.h"

#define KiB 1024u

typedef test_sandbox fx;

/* ---- writing an image: into a directory or into a tar ---- */

typedef struct image_out {
    const char *dir; /* an OCI layout dir; NULL: members of tar */
    test_tar tar;
} image_out;

static void
out_put(image_out *o, const char *name, const void *p, size_t n)
{
    if (!o->dir) {
        test_tar_file(&o->tar, name, p, n);
        return;
    }
    cs_error *err = NULL;
    cs_autofree char *path = cs_path_join(o->dir, name);
    cs_autofree char *parent = cs_xstrndup(path, (size_t) (strrchr(path, '/') - path));
    assert_int_equal(cs_mkdir_p(parent, 0755, &err), 0);
    test_write_file(path, p, n, 0644);
}

static void
out_put_str(image_out *o, const char *name, const char *s)
{
    out_put(o, name, s, strlen(s));
}

/* Puts p[0..n) as blobs/sha256/<hex>; fills d and hex. */
static void
put_blob(image_out *o, const void *p, size_t n, cs_digest *d, char hex[CS_DIGEST_HEX])
{
    cs_sha256(p, n, d);
    cs_digest_hex(d, hex);
    cs_autofree char *name = cs_xasprintf("blobs/sha256/%s", hex);
    out_put(o, name, p, n);
}

/* The one layer of every image here: a dir, a file of several chunks and a
 * small text file (app/hello.txt, the tree's third entry). */
static void
make_layer(cs_buf *tar)
{
    test_tar t;
    test_tar_begin(&t);
    test_tar_add(&t, test_tar_entry("app", AE_IFDIR, 0755), NULL, 0);
    static uint8_t bin[150 * KiB];
    test_fill_random(bin, sizeof(bin), 77);
    test_tar_file(&t, "app/bin", bin, sizeof(bin));
    test_tar_file(&t, "app/hello.txt", "hello, world\n", 13);
    test_tar_end(&t);
    *tar = t.out;
}

static char *
config_json(const char *diff_hex)
{
    return cs_xasprintf("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":"
                        "[\"PATH=/usr/bin\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":"
                        "[\"sha256:%s\"]}}",
                        diff_hex);
}

/* ---- OCI layouts and archives ---- */

enum {
    OCI_OK,
    OCI_FLIP_LAYER_BYTE,
    OCI_MISSING_LAYER,
    OCI_CONFIG_NOT_JSON,
    OCI_LAYER_SIZE_WRONG,
    OCI_CONFIG_SIZE_WRONG,
    OCI_DIFF_ID_WRONG,
};

/* An image made for a test: what cs_load is given and what it must find. */
typedef struct image {
    char *path; /* the layout dir or the archive file */
    cs_buf tar; /* the layer, uncompressed */
    cs_digest config;
    char layer_hex[CS_DIGEST_HEX]; /* the layer blob as the manifest names it */
} image;

static void
image_release(image *l)
{
    free(l->path);
    cs_buf_release(&l->tar);
}

/* Ends o into l->path when it is a tar. */
static void
out_finish(image_out *o, image *l)
{
    if (o->dir)
        return;
    test_tar_end(&o->tar);
    test_write_file(l->path, o->tar.out.data, o->tar.out.len, 0644);
    cs_buf_release(&o->tar.out);
}

/* An OCI image tagged docker.io/library/t:1 with one gzip layer, spoiled as
 * how says; a layout dir, or an OCI archive when archive. */
static void
make_oci(fx *f, int how, bool archive, image *l)
{
    l->path = cs_path_join(f->work, archive ? "oci.tar" : "oci");
    image_out o = { .dir = archive ? NULL : l->path };
    if (archive)
        test_tar_begin(&o.tar);
    out_put_str(&o, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");

    make_layer(&l->tar);
    cs_digest diff;
    cs_sha256(l->tar.data, l->tar.len, &diff);
    char diff_hex[CS_DIGEST_HEX], hex[CS_DIGEST_HEX];
    cs_digest_hex(&diff, diff_hex);
    if (how == OCI_DIFF_ID_WRONG)
        diff_hex[0] = diff_hex[0] == '0' ? '1' : '0';

    cs_buf z;
    cs_buf_init(&z);
    test_gzip_append(&z, l->tar.data, l->tar.len);
    size_t layer_size = z.len;
    cs_digest layer;
    cs_sha256(z.data, z.len, &layer);
    cs_digest_hex(&layer, l->layer_hex);
    if (how == OCI_FLIP_LAYER_BYTE) /* same size, same name, one byte off, in the deflate data */
        z.data[z.len - 100] ^= 0x01;
    if (how != OCI_MISSING_LAYER) {
        cs_autofree char *name = cs_xasprintf("blobs/sha256/%s", l->layer_hex);
        out_put(&o, name, z.data, z.len);
    }
    cs_buf_release(&z);

    cs_autofree char *cfg =
        how == OCI_CONFIG_NOT_JSON ? cs_xstrdup("architecture=amd64\n") : config_json(diff_hex);
    char cfg_hex[CS_DIGEST_HEX];
    put_blob(&o, cfg, strlen(cfg), &l->config, cfg_hex);

    cs_autofree char *man = cs_xasprintf(
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
        "\"digest\":\"sha256:%s\",\"size\":%zu},"
        "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
        "\"digest\":\"sha256:%s\",\"size\":%zu}]}",
        cfg_hex, strlen(cfg) + (how == OCI_CONFIG_SIZE_WRONG), l->layer_hex,
        layer_size + (how == OCI_LAYER_SIZE_WRONG));
    cs_digest md;
    put_blob(&o, man, strlen(man), &md, hex);

    cs_autofree char *idx = cs_xasprintf(
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
        "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"digest\":\"sha256:%s\",\"size\":%zu,\"annotations\":{\"io.containerd.image.name\":"
        "\"docker.io/library/t:1\",\"org.opencontainers.image.ref.name\":\"1\"}}]}",
        hex, strlen(man));
    out_put_str(&o, "index.json", idx);
    out_finish(&o, l);
}

/* ---- docker archives ---- */

enum {
    DOCKER_OK,
    DOCKER_LAYER_DIGEST_WRONG,  /* a layer named blobs/sha256/<hex> of other bytes */
    DOCKER_CONFIG_DIGEST_WRONG, /* the config named <hex>.json of other bytes */
    DOCKER_MISSING_LAYER,
    DOCKER_LAYER_OUTSIDE,  /* the manifest names a layer "../<hex>/layer.tar" */
    DOCKER_DIFF_IDS_SHORT, /* the config lists no diff_ids for the manifest's layer */
};

/* A docker-archive (docker save) tagged t:1 with one plain tar layer,
 * spoiled as how says. */
static void
make_docker(fx *f, int how, image *l)
{
    l->path = cs_path_join(f->work, "docker.tar");
    image_out o = { 0 };
    test_tar_begin(&o.tar);

    make_layer(&l->tar);
    cs_digest diff;
    cs_sha256(l->tar.data, l->tar.len, &diff);
    char diff_hex[CS_DIGEST_HEX], wrong_hex[CS_DIGEST_HEX];
    cs_digest_hex(&diff, diff_hex);
    snprintf(wrong_hex, sizeof(wrong_hex), "%c%s", diff_hex[0] == '0' ? '1' : '0', diff_hex + 1);
    memcpy(l->layer_hex, how == DOCKER_LAYER_DIGEST_WRONG ? wrong_hex : diff_hex, CS_DIGEST_HEX);
    cs_autofree char *layer = how == DOCKER_LAYER_DIGEST_WRONG
                                  ? cs_xasprintf("blobs/sha256/%s", wrong_hex)
                                  : cs_xasprintf("%s/layer.tar", diff_hex);
    if (how != DOCKER_MISSING_LAYER)
        out_put(&o, layer, l->tar.data, l->tar.len);

    cs_autofree char *cfg =
        how == DOCKER_DIFF_IDS_SHORT
            ? cs_xstrdup("{\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}")
            : config_json(diff_hex);
    cs_sha256(cfg, strlen(cfg), &l->config);
    char cfg_hex[CS_DIGEST_HEX];
    cs_digest_hex(&l->config, cfg_hex);
    if (how == DOCKER_CONFIG_DIGEST_WRONG)
        cfg_hex[0] = cfg_hex[0] == '0' ? '1' : '0';
    cs_autofree char *cfg_name = cs_xasprintf("%s.json", cfg_hex);
    out_put_str(&o, cfg_name, cfg);

    cs_autofree char *man =
        cs_xasprintf("[{\"Config\":\"%s\",\"RepoTags\":[\"t:1\"],\"Layers\":[\"%s%s\"]}]", cfg_name,
                     how == DOCKER_LAYER_OUTSIDE ? "../" : "", layer);
    out_put_str(&o, "manifest.json", man);
    out_finish(&o, l);
}

/* ---- checks ---- */

/* Loads l: its id is the config digest, its tag is kept and points at an
 * image of the one layer; loading again with another tag adds only the tag. */
static void
assert_loads_and_tags(fx *f, const image *l)
{
    cs_load_result res;
    cs_error *err = NULL;
    int r = cs_load(f->s, l->path, NULL, &res, &err);
    if (r < 0)
        fail_msg("load: %s", err->msg);
    assert_true(cs_digest_eq(&res.id, &l->config));
    assert_non_null(res.tags);
    assert_string_equal(res.tags[0], "docker.io/library/t:1");
    assert_null(res.tags[1]);
    assert_int_equal(res.bytes, l->tar.len);

    cs_digest tag_id;
    cs_image *img = NULL;
    MDB_txn *txn = test_begin(f->s, false);
    assert_int_equal(cs_tag_get(cs_store_db(f->s), txn, "docker.io/library/t:1", &tag_id, &err), 0);
    assert_int_equal(cs_image_get(cs_store_db(f->s), txn, &tag_id, &img, &err), 0);
    mdb_txn_abort(txn);
    assert_true(cs_digest_eq(&tag_id, &l->config));
    assert_int_equal(img->nlayers, 1);
    cs_tree *t = test_get_tree(f->s, &img->layers[0]);
    assert_int_equal(t->n, 3);
    assert_string_equal(t->e[2].path, "app/hello.txt");
    test_assert_content(f->s, &t->e[2].content, "hello, world\n", 13);
    cs_tree_free(t);
    cs_image_free(img);
    cs_load_result_release(&res);

    /* Loading again with an extra tag adds the tag and no chunks. */
    size_t chunks = test_count(f->s, CS_T_CHUNKS);
    assert_int_equal(cs_load(f->s, l->path, "other:2", &res, &err), 0);
    assert_int_equal(test_count(f->s, CS_T_CHUNKS), chunks);
    assert_int_equal(test_count(f->s, CS_T_TAGS), 2);
    assert_int_equal(test_count(f->s, CS_T_IMAGES), 1);
    cs_load_result_release(&res);
}

/* Loads a spoiled image: fails naming its path, want1 (and want2, and the
 * layer digest when name_layer) and stores nothing. Returns the code. */
static int
load_fails(fx *f, const image *l, const char *want1, const char *want2, bool name_layer)
{
    cs_load_result res;
    cs_error *err = NULL;
    int r = cs_load(f->s, l->path, "extra:tag", &res, &err);
    if (r >= 0)
        fail_msg("a bad image loaded (wanted '%s')", want1);
    test_assert_msg(err, l->path);
    test_assert_msg(err, want1);
    if (want2)
        test_assert_msg(err, want2);
    if (name_layer)
        test_assert_msg(err, l->layer_hex);
    assert_int_equal(r, -(int) err->code);
    cs_error_free(err);
    test_assert_store_empty(f->s);
    return r;
}

/* ---- tests ---- */

/* Each case in a fresh sandbox (the first in the one cmocka made). */
static void
fresh_sandbox(void **state, size_t i)
{
    if (i == 0)
        return;
    assert_int_equal(test_sandbox_teardown(state), 0);
    assert_int_equal(test_sandbox_setup(state), 0);
}

/* make_docker, or make_oci. */
static image
make_image(void **state, bool docker, int how, bool archive)
{
    image l = { 0 };
    if (docker)
        make_docker(*state, how, &l);
    else
        make_oci(*state, how, archive, &l);
    return l;
}

static const struct {
    const char *name;
    bool docker;
    int how; /* make_oci's or make_docker's */
    bool archive;
} good_cases[] = {
    { "OCI layout", false, OCI_OK, false },
    { "OCI archive", false, OCI_OK, true },
    { "docker archive", true, DOCKER_OK, false },
};

static void
oci_layouts_and_archives_and_docker_archives_load_and_tag(void **state)
{
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
        test_case("%s", good_cases[i].name);
        fresh_sandbox(state, i);
        image l = make_image(state, good_cases[i].docker, good_cases[i].how, good_cases[i].archive);
        assert_loads_and_tags(*state, &l);
        image_release(&l);
    }
}

/* A bad image: the load fails with code (0: any) and its message names the
 * image, want1, want2 (when set) and (with name_layer) the layer. */
static const struct {
    const char *name;
    bool docker;
    int how;
    const char *want1, *want2;
    bool name_layer;
    cs_code code;
} bad_cases[] = {
    /* A flip inside the deflate data may trip gzip before the digest check;
     * either way the error names the layer blob. */
    { "OCI layer with a flipped byte", false, OCI_FLIP_LAYER_BYTE, "blobs/sha256/", NULL, true, 0 },
    { "OCI manifest naming a missing blob", false, OCI_MISSING_LAYER, "is missing", "blobs/sha256/",
      true, 0 },
    { "OCI config that is not JSON", false, OCI_CONFIG_NOT_JSON, "config", "not a JSON object",
      false, 0 },
    { "OCI layer size disagreeing with its descriptor", false, OCI_LAYER_SIZE_WRONG,
      "does not match manifest", "size", true, 0 },
    { "OCI config size disagreeing with its descriptor", false, OCI_CONFIG_SIZE_WRONG,
      "does not match descriptor", "size", false, 0 },
    { "OCI diff_id disagreeing with the layer", false, OCI_DIFF_ID_WRONG,
      "does not match config diff_id", NULL, false, 0 },
    { "docker layer whose digest does not match its name", true, DOCKER_LAYER_DIGEST_WRONG,
      "does not match manifest", "digest", true, CS_ECORRUPT },
    { "docker config whose digest does not match its name", true, DOCKER_CONFIG_DIGEST_WRONG,
      "config", "digest does not match its name", false, CS_ECORRUPT },
    { "docker manifest naming a missing layer", true, DOCKER_MISSING_LAYER, "is missing",
      "layer.tar", true, CS_ENOTFOUND },
    { "docker manifest naming a layer outside the archive", true, DOCKER_LAYER_OUTSIDE,
      "manifest.json", "bad layer name", false, CS_EPARSE },
    /* Found by fuzz_load: the message named the config through a string of
     * the manifest's JSON, already freed. */
    { "docker config listing fewer diff_ids than layers", true, DOCKER_DIFF_IDS_SHORT, ".json",
      "rootfs.diff_ids does not list the 1 layers", false, CS_EPARSE },
};

static void
bad_images_fail_to_load_and_store_nothing(void **state)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        test_case("%s", bad_cases[i].name);
        fresh_sandbox(state, i);
        image l = make_image(state, bad_cases[i].docker, bad_cases[i].how, false);
        int r =
            load_fails(*state, &l, bad_cases[i].want1, bad_cases[i].want2, bad_cases[i].name_layer);
        if (bad_cases[i].code)
            assert_int_equal(r, -(int) bad_cases[i].code);
        image_release(&l);
    }
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, test_sandbox_setup, test_sandbox_teardown)
    const struct CMUnitTest tests[] = {
        T(oci_layouts_and_archives_and_docker_archives_load_and_tag),
        T(bad_images_fail_to_load_and_store_nothing),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
