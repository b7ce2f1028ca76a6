/* test_pull.c - the store side of a pull (load_pull.c, layerindex.c): an
 * image made here (gzip layers, a config, its manifest) stored from
 * in-memory blob streams like the registry's, layers the store has never
 * read again, a blob that does not match its digest storing nothing, and gc
 * dropping the layer index with its trees. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "cstore/gc.h"
#include "cstore/image.h"
#include "cstore/layerindex.h"
#include "cstore/pull.h"

typedef test_sandbox fx;

#define NL 3

/* An image of NL gzip layers; layer 2 repeats layer 0's blob. */
typedef struct img {
    cs_buf blob[NL];
    cs_digest diff_id[NL];
    cs_buf config;
    cs_manifest *m;
    int opened[NL]; /* source opens per layer */
    int corrupt;    /* layer whose bytes get a flipped byte, -1 none */
} img;

static void
make_image(img *im, uint64_t seed)
{
    char cfg[4096], layers[1024] = "", ids[1024] = "";
    memset(im, 0, sizeof(*im));
    im->corrupt = -1;
    for (int i = 0; i < NL; i++) {
        int src = i == 2 ? 0 : i;
        test_tar t;
        uint8_t data[70000];
        test_fill_random(data, sizeof(data), seed + (uint64_t) src);
        test_tar_begin(&t);
        char name[32];
        snprintf(name, sizeof(name), "f%d", src);
        test_tar_file(&t, name, data, sizeof(data));
        test_tar_end(&t);
        cs_sha256(t.out.data, t.out.len, &im->diff_id[i]);
        cs_buf_init(&im->blob[i]);
        test_gzip_append(&im->blob[i], t.out.data, t.out.len);
        cs_buf_release(&t.out);
        char bd[CS_DIGEST_STR], dd[CS_DIGEST_STR];
        cs_digest b;
        cs_sha256(im->blob[i].data, im->blob[i].len, &b);
        cs_digest_str(&b, bd);
        cs_digest_str(&im->diff_id[i], dd);
        snprintf(layers + strlen(layers), sizeof(layers) - strlen(layers),
                 "%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
                 "\"digest\":\"%s\",\"size\":%zu}",
                 i ? "," : "", bd, im->blob[i].len);
        snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "%s\"%s\"", i ? "," : "", dd);
    }
    snprintf(cfg, sizeof(cfg),
             "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},"
             "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[%s]}}",
             ids);
    cs_buf_init(&im->config);
    cs_buf_append(&im->config, cfg, strlen(cfg));
    cs_digest cd;
    char cds[CS_DIGEST_STR], man[4096];
    cs_sha256(cfg, strlen(cfg), &cd);
    cs_digest_str(&cd, cds);
    snprintf(man, sizeof(man),
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
             "\"digest\":\"%s\",\"size\":%zu},\"layers\":[%s]}",
             cds, strlen(cfg), layers);
    cs_error *err = NULL;
    assert_int_equal(cs_manifest_parse(man, strlen(man), NULL, &im->m, &err), 0);
}

static void
free_image(img *im)
{
    for (int i = 0; i < NL; i++)
        cs_buf_release(&im->blob[i]);
    cs_buf_release(&im->config);
    cs_manifest_free(im->m);
}

static int
src_open(void *ctx, size_t i, cs_read_fn *rd, void **rctx, cs_error **err)
{
    (void) err;
    img *im = ctx;
    im->opened[i]++;
    test_memrd *m = cs_xcalloc(1, sizeof(*m));
    m->p = im->blob[i].data;
    m->left = im->blob[i].len;
    m->max = 4000;                /* short reads, as from a socket */
    if ((int) i == im->corrupt) { /* another layer's bytes: valid gzip, wrong digest */
        m->p = im->blob[0].data;
        m->left = im->blob[0].len;
    }
    *rd = test_mem_read;
    *rctx = m;
    return 0;
}

static void
src_close(void *ctx, size_t i, void *rctx, bool ok)
{
    (void) ctx, (void) i, (void) ok;
    free(rctx);
}

static int
pull(fx *f, img *im, const char *tag, cs_load_result *res)
{
    cs_pull_source src = { src_open, src_close, NULL, im };
    return cs_pull_store(f->s, im->m, im->config.data, im->config.len, tag, &src, res, &f->err);
}

static void
pull_stores_the_image_and_a_second_pull_reads_no_blob(void **state)
{
    fx *f = *state;
    img im;
    make_image(&im, 7);
    cs_load_result res;
    assert_int_equal(pull(f, &im, "127.0.0.1:5000/x/y:1", &res), 0);
    cs_digest want;
    cs_sha256(im.config.data, im.config.len, &want);
    assert_true(cs_digest_eq(&res.id, &want));
    assert_string_equal(res.tags[0], "127.0.0.1:5000/x/y:1");
    cs_load_result_release(&res);
    /* the repeated blob is read once */
    assert_int_equal(im.opened[0], 1);
    assert_int_equal(im.opened[1], 1);
    assert_int_equal(im.opened[2], 0);
    bool known[NL];
    assert_int_equal(cs_pull_known(f->s, im.m, im.config.data, im.config.len, known, &f->err), 0);
    for (int i = 0; i < NL; i++)
        assert_true(known[i]);
    assert_int_equal(pull(f, &im, "127.0.0.1:5000/x/y:2", &res), 0);
    assert_true(cs_digest_eq(&res.id, &want));
    cs_load_result_release(&res);
    assert_int_equal(im.opened[0] + im.opened[1] + im.opened[2], 2);
    free_image(&im);
}

static void
a_blob_that_does_not_match_its_digest_stores_nothing(void **state)
{
    fx *f = *state;
    img im;
    make_image(&im, 11);
    im.corrupt = 1;
    cs_load_result res;
    assert_int_equal(pull(f, &im, "x:1", &res), -CS_ECORRUPT);
    test_assert_msg(f->err, "does not match manifest");
    test_assert_store_empty(f->s);
    assert_int_equal(test_count(f->s, CS_T_LAYER_INDEX), 0);
    free_image(&im);
}

static void
a_config_that_does_not_match_the_manifest_is_refused(void **state)
{
    fx *f = *state;
    img im;
    make_image(&im, 13);
    im.config.data[im.config.len - 1] = ' ';
    cs_load_result res;
    assert_int_equal(pull(f, &im, "x:1", &res), -CS_ECORRUPT);
    test_assert_msg(f->err, "digest does not match its content");
    assert_int_equal(im.opened[0], 0);
    test_assert_store_empty(f->s);
    free_image(&im);
}

static void
gc_drops_the_layer_index_with_its_trees(void **state)
{
    fx *f = *state;
    img im;
    make_image(&im, 17);
    cs_load_result res;
    assert_int_equal(pull(f, &im, NULL, &res), 0); /* untagged: all garbage */
    cs_load_result_release(&res);
    assert_int_equal(test_count(f->s, CS_T_LAYER_INDEX), 4); /* 2 blobs x (b, d) */
    cs_gc_stats st;
    assert_int_equal(cs_gc(f->s, false, false, &st, &f->err), 0);
    assert_int_equal(test_count(f->s, CS_T_LAYER_INDEX), 0);
    /* and the next pull reads the blobs again */
    memset(im.opened, 0, sizeof(im.opened));
    assert_int_equal(pull(f, &im, "x:1", &res), 0);
    cs_load_result_release(&res);
    assert_int_equal(im.opened[0] + im.opened[1], 2);
    free_image(&im);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, test_sandbox_setup, test_sandbox_teardown)
    const struct CMUnitTest tests[] = {
        T(pull_stores_the_image_and_a_second_pull_reads_no_blob),
        T(a_blob_that_does_not_match_its_digest_stores_nothing),
        T(a_config_that_does_not_match_the_manifest_is_refused),
        T(gc_drops_the_layer_index_with_its_trees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
