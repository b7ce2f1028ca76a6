/* test_content_read.c - reading a content back (content.c): the bytes in
 * order, chunk by chunk, and every failure (a corrupt chunk, a failing sink)
 * stops the read at once with the failure's own one-line error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <string.h>

#include "cstore/content.h"

typedef test_sandbox fx;

enum { CHUNK = 4096, NCHUNKS = 40 };

/* A sink that keeps what it gets and fails on call fail_at (0: never). */
typedef struct {
    cs_buf got;
    int calls, fail_at;
} sink_ctx;

static int
keep(void *ctx, const void *p, size_t n, cs_error **err)
{
    sink_ctx *c = ctx;
    if (++c->calls == c->fail_at)
        return cs_err(err, CS_EIO, 0, "the sink fails on call %d", c->calls);
    cs_buf_append(&c->got, p, n);
    return 0;
}

/* Stores NCHUNKS chunks of seeded bytes in p as one content. */
static cs_digest
put_content(fx *f, uint8_t *p, size_t n)
{
    test_fill_random(p, n, 7);
    MDB_txn *txn = test_begin(f->s, true);
    cs_digest d = test_put_content(f->db, txn, p, n, CHUNK);
    test_commit(txn);
    return d;
}

static int
read_all(fx *f, const cs_digest *d, bool verify, sink_ctx *c)
{
    MDB_txn *txn = test_begin(f->s, false);
    int r = cs_content_read(f->db, txn, d, verify, keep, c, &f->err);
    mdb_txn_abort(txn);
    return r;
}

static void
a_content_of_many_chunks_reads_back_whole_and_in_order(void **state)
{
    fx *f = *state;
    static uint8_t p[CHUNK * NCHUNKS];
    cs_digest d = put_content(f, p, sizeof p);
    for (int verify = 0; verify < 2; verify++) {
        sink_ctx c = { .fail_at = 0 };
        cs_buf_init(&c.got);
        assert_int_equal(read_all(f, &d, verify, &c), 0);
        assert_int_equal(c.calls, NCHUNKS);
        assert_int_equal(c.got.len, sizeof p);
        assert_memory_equal(c.got.data, p, sizeof p);
        cs_buf_release(&c.got);
    }
}

static void
a_corrupt_chunk_fails_the_verified_read_with_one_line(void **state)
{
    fx *f = *state;
    static uint8_t p[CHUNK * NCHUNKS];
    cs_digest d = put_content(f, p, sizeof p);
    /* chunk 13 (raw) gets other bytes of its length */
    uint8_t rec[5 + CHUNK];
    rec[0] = CS_CODEC_RAW;
    cs_be32_put(rec + 1, CHUNK);
    memcpy(rec + 5, p + 13 * CHUNK, CHUNK);
    rec[5 + 100] ^= 0x5a;
    cs_digest c13;
    cs_sha256(p + 13 * CHUNK, CHUNK, &c13);
    test_put_raw(f->s, CS_T_CHUNKS, c13.b, 32, rec, sizeof rec);

    sink_ctx c = { .fail_at = 0 };
    cs_buf_init(&c.got);
    assert_true(read_all(f, &d, true, &c) < 0);
    assert_non_null(f->err);
    assert_non_null(strstr(f->err->msg, "chunk"));
    assert_null(strchr(f->err->msg, '\n'));
    assert_int_equal(c.calls, 13); /* the chunks before it, not one after */
    assert_memory_equal(c.got.data, p, 13 * CHUNK);
    cs_error_clear(&f->err);
    cs_buf_release(&c.got);
}

static void
a_failing_sink_stops_the_read_and_its_error_is_the_one_returned(void **state)
{
    fx *f = *state;
    static uint8_t p[CHUNK * NCHUNKS];
    cs_digest d = put_content(f, p, sizeof p);
    for (int at = 1; at <= NCHUNKS; at += 13) {
        sink_ctx c = { .fail_at = at };
        cs_buf_init(&c.got);
        assert_true(read_all(f, &d, true, &c) < 0);
        assert_int_equal(c.calls, at);
        assert_non_null(f->err);
        assert_non_null(strstr(f->err->msg, "the sink fails"));
        cs_error_clear(&f->err);
        cs_buf_release(&c.got);
    }
}

static void
a_content_of_few_chunks_reads_back_too(void **state)
{
    fx *f = *state;
    static uint8_t p[CHUNK * 3];
    test_fill_random(p, sizeof p, 11);
    MDB_txn *txn = test_begin(f->s, true);
    cs_digest d = test_put_content(f->db, txn, p, sizeof p, CHUNK);
    test_commit(txn);
    sink_ctx c = { .fail_at = 0 };
    cs_buf_init(&c.got);
    assert_int_equal(read_all(f, &d, true, &c), 0);
    assert_int_equal(c.calls, 3);
    assert_memory_equal(c.got.data, p, sizeof p);
    cs_buf_release(&c.got);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_content_of_many_chunks_reads_back_whole_and_in_order,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(a_corrupt_chunk_fails_the_verified_read_with_one_line,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(
            a_failing_sink_stops_the_read_and_its_error_is_the_one_returned, test_sandbox_setup,
            test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(a_content_of_few_chunks_reads_back_too, test_sandbox_setup,
                                        test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
