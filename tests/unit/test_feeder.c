/* test_feeder.c - layers read in place from memory (feeder.c's
 * cs_feeder_start_mem, cs_ingest_tar_mem, ingest.c's stable chunks): the same
 * digests, tree and contents as the reader path, plain and gzip, and a failure
 * that leaves nothing stored and nothing pointing into the caller's bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "cstore/ingest.h"
#include "cstore/tree.h"
#include "feeder.h"

#define KiB 1024u

typedef test_sandbox fx;

/* The sample layer: an empty file, one under the minimum chunk, one of a
 * few chunks, one of many (random: zstd keeps them raw), and a compressible
 * one of several chunks. */
typedef struct sample {
    const char *path;
    size_t size;
    uint64_t seed; /* 0: text that compresses */
} sample;

static const sample samples[] = {
    { "empty", 0, 1 },
    { "small", 1000, 2 },
    { "few.bin", 300 * KiB, 3 },
    { "many.bin", 1900 * KiB, 4 },
    { "text.txt", 700 * KiB, 0 },
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static uint8_t *
sample_bytes(const sample *s)
{
    uint8_t *p = malloc(s->size ? s->size : 1);
    if (s->seed) {
        test_fill_random(p, s->size, s->seed);
    } else {
        for (size_t i = 0; i < s->size; i++) /* lines of a few words */
            p[i] = (uint8_t) "int x = 0;\nreturn x;\n"[(i * 7 + i / 333) % 21];
    }
    return p;
}

static void
sample_tar(test_tar *t)
{
    test_tar_begin(t);
    for (size_t i = 0; i < NSAMPLES; i++) {
        uint8_t *p = sample_bytes(&samples[i]);
        test_tar_file(t, samples[i].path, p, samples[i].size);
        free(p);
    }
    test_tar_end(t);
}

/* Ingests p[0..n) in place and commits. */
static int
ingest_mem(cs_store *s, const void *p, size_t n, cs_layer_info *info, cs_error **err)
{
    cs_ingest *ing = NULL;
    int r = cs_ingest_begin(s, &ing, err);
    if (r == 0)
        r = cs_ingest_tar_mem(ing, "layer", p, n, info, err);
    if (r == 0)
        r = cs_ingest_commit(ing, err);
    cs_ingest_free(ing);
    return r;
}

static void
assert_same_layer(const cs_layer_info *a, const cs_layer_info *b)
{
    assert_memory_equal(a->tree.b, b->tree.b, 32);
    assert_memory_equal(a->diff_id.b, b->diff_id.b, 32);
    assert_memory_equal(a->blob.b, b->blob.b, 32);
    assert_int_equal(a->tar_size, b->tar_size);
    assert_int_equal(a->blob_size, b->blob_size);
    assert_int_equal(a->comp, b->comp);
}

/* Every sample file's content reads back as its bytes. */
static void
assert_sample_contents(cs_store *s, const cs_digest *tree)
{
    cs_tree *t = test_get_tree(s, tree);
    for (size_t i = 0; i < NSAMPLES; i++) {
        const cs_entry *e = cs_tree_find(t, samples[i].path);
        assert_non_null(e);
        assert_int_equal(e->size, samples[i].size);
        if (!samples[i].size)
            continue;
        uint8_t *p = sample_bytes(&samples[i]);
        cs_digest want;
        cs_sha256(p, samples[i].size, &want);
        assert_memory_equal(e->content.b, want.b, 32); /* the file's sha256 */
        test_assert_content(s, &e->content, p, samples[i].size);
        free(p);
    }
    cs_tree_free(t);
}

static void
a_plain_layer_in_memory_gives_what_the_reader_gives(void **state)
{
    fx *f = *state;
    test_tar t;
    sample_tar(&t);
    cs_layer_info mem, rd;
    assert_int_equal(ingest_mem(f->s, t.out.data, t.out.len, &mem, &f->err), 0);
    assert_sample_contents(f->s, &mem.tree);
    cs_digest whole;
    cs_sha256(t.out.data, t.out.len, &whole);
    assert_memory_equal(mem.diff_id.b, whole.b, 32);
    assert_memory_equal(mem.blob.b, whole.b, 32); /* plain: the blob is the tar */
    assert_int_equal(mem.tar_size, t.out.len);
    assert_int_equal(mem.comp, CS_COMP_NONE);
    /* Reads of 7000 bytes: every file goes through the copying path. */
    test_ingest_tar(f->s, t.out.data, t.out.len, 7000, &rd, NULL);
    assert_same_layer(&mem, &rd);
    cs_buf_release(&t.out);
}

static void
a_gzip_layer_in_memory_gives_what_the_reader_gives(void **state)
{
    fx *f = *state;
    test_tar t;
    sample_tar(&t);
    cs_buf gz;
    cs_buf_init(&gz);
    test_gzip_append(&gz, t.out.data, t.out.len);
    cs_layer_info mem, rd;
    assert_int_equal(ingest_mem(f->s, gz.data, gz.len, &mem, &f->err), 0);
    assert_sample_contents(f->s, &mem.tree);
    cs_digest d;
    cs_sha256(t.out.data, t.out.len, &d);
    assert_memory_equal(mem.diff_id.b, d.b, 32);
    cs_sha256(gz.data, gz.len, &d);
    assert_memory_equal(mem.blob.b, d.b, 32);
    assert_int_equal(mem.comp, CS_COMP_GZIP);
    test_ingest_tar(f->s, gz.data, gz.len, 0, &rd, NULL);
    assert_same_layer(&mem, &rd);
    cs_buf_release(&gz);
    cs_buf_release(&t.out);
}

/* The caller's bytes are freed right after the failed call: a chunk still
 * in flight would read freed memory (ASan's build reports it). The cut is
 * near the end of many.bin, whose bytes before it go out as one burst of
 * chunks just before the failure. */
static void
a_truncated_layer_in_memory_fails_and_stores_nothing(void **state)
{
    fx *f = *state;
    test_tar t;
    sample_tar(&t);
    uint8_t *many = sample_bytes(&samples[3]);
    const uint8_t *at = memmem(t.out.data, t.out.len, many, 4096);
    assert_non_null(at);
    free(many);
    size_t cut = (size_t) (at - t.out.data) + samples[3].size - 50 * KiB;
    for (int i = 0; i < 8; i++) { /* the workers' timing varies: several tries */
        uint8_t *p = malloc(cut);
        memcpy(p, t.out.data, cut);
        cs_ingest *ing = NULL;
        assert_int_equal(cs_ingest_begin(f->s, &ing, &f->err), 0);
        cs_layer_info info;
        int r = cs_ingest_tar_mem(ing, "cut", p, cut, &info, &f->err);
        memset(p, 0xa5, cut);
        free(p);
        assert_int_equal(r, -CS_EPARSE);
        test_assert_msg(f->err, "cut: ");
        assert_null(strchr(f->err->msg, '\n'));
        cs_error_clear(&f->err);
        assert_true(cs_ingest_commit(ing, &f->err) < 0); /* a failed ingest commits nothing */
        cs_error_clear(&f->err);
        cs_ingest_free(ing);
        test_assert_store_empty(f->s);
    }
    cs_buf_release(&t.out);
}

static void
a_feeder_over_plain_memory_hands_it_out_in_place(void **state)
{
    (void) state;
    size_t n = 3 * 1024 * KiB + 17;
    uint8_t *p = malloc(n);
    test_fill_random(p, n, 7);
    cs_feeder *f = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_feeder_start_mem(p, n, &f, &err), 0);
    assert_true(cs_feeder_in_place(f));
    const void *got;
    assert_int_equal(cs_feeder_next(f, &got), (ssize_t) n);
    assert_ptr_equal(got, p);
    assert_int_equal(cs_feeder_next(f, &got), 0);
    cs_layer_info info;
    assert_int_equal(cs_feeder_finish(f, &info, &err), 0);
    cs_feeder_free(f);
    cs_digest d;
    cs_sha256(p, n, &d);
    assert_memory_equal(info.blob.b, d.b, 32);
    assert_memory_equal(info.diff_id.b, d.b, 32);
    assert_int_equal(info.blob_size, n);
    assert_int_equal(info.tar_size, n);
    free(p);
}

static void
a_feeder_over_gzip_in_memory_decompresses_into_its_blocks(void **state)
{
    (void) state;
    size_t n = 2 * 1024 * KiB + 5;
    uint8_t *p = malloc(n);
    test_fill_random(p, n, 8);
    cs_buf gz, out;
    cs_buf_init(&gz);
    cs_buf_init(&out);
    test_gzip_append(&gz, p, n);
    cs_feeder *f = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_feeder_start_mem(gz.data, gz.len, &f, &err), 0);
    assert_false(cs_feeder_in_place(f));
    const void *b;
    ssize_t k;
    while ((k = cs_feeder_next(f, &b)) > 0)
        cs_buf_append(&out, b, (size_t) k);
    assert_int_equal(k, 0);
    cs_layer_info info;
    assert_int_equal(cs_feeder_finish(f, &info, &err), 0);
    cs_feeder_free(f);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, p, n);
    cs_digest d;
    cs_sha256(p, n, &d);
    assert_memory_equal(info.diff_id.b, d.b, 32);
    cs_sha256(gz.data, gz.len, &d);
    assert_memory_equal(info.blob.b, d.b, 32);
    assert_int_equal(info.comp, CS_COMP_GZIP);
    cs_buf_release(&gz);
    cs_buf_release(&out);
    free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_plain_layer_in_memory_gives_what_the_reader_gives,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(a_gzip_layer_in_memory_gives_what_the_reader_gives,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(a_truncated_layer_in_memory_fails_and_stores_nothing,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test(a_feeder_over_plain_memory_hands_it_out_in_place),
        cmocka_unit_test(a_feeder_over_gzip_in_memory_decompresses_into_its_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
