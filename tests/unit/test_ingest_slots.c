/* test_ingest_slots.c - the ingest's buffers and worker pool (ingest.c): the
 * slots carved from one mapping and touched on use, workers started on
 * demand; contents and chunk digests must not change with either. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "chunker.h"
#include "cstore/content.h"
#include "cstore/ingest.h"
#include "cstore/oneshot.h"
#include "ingest_int.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

typedef test_sandbox fx;

/* Ingests n bytes of p as a file through an fd; checks the digest. */
static cs_digest
ingest_bytes(fx *f, cs_ingest *ing, const uint8_t *p, size_t n, const char *name)
{
    cs_autofree char *path = cs_path_join(f->work, name);
    test_write_file(path, p, n, 0644);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    cs_digest got, want;
    uint64_t size = 0;
    assert_int_equal(cs_ingest_fd(ing, fd, &got, &size, &f->err), 0);
    close(fd);
    assert_int_equal(size, n);
    cs_sha256(p, n, &want);
    assert_true(cs_digest_eq(&got, &want));
    return got;
}

/* The content's chunks are the chunker's cuts of p, each with its sha256. */
static void
assert_chunks_are_the_chunkers(fx *f, const cs_digest *d, const uint8_t *p, size_t n)
{
    MDB_txn *txn = NULL;
    assert_int_equal(cs_db_begin(f->db, MDB_RDONLY, &txn, &f->err), 0);
    uint64_t size = 0;
    cs_chunk_ref *refs = NULL;
    uint32_t nrefs = 0;
    assert_int_equal(cs_content_get(f->db, txn, d, &size, &refs, &nrefs, &f->err), 0);
    cs_db_abort(txn);
    assert_int_equal(size, n);
    size_t off = 0;
    for (uint32_t i = 0; i < nrefs; i++) {
        size_t cut = cs_chunker_next(p + off, n - off, true);
        assert_int_equal(refs[i].len, cut);
        cs_digest want;
        cs_sha256(p + off, cut, &want);
        assert_true(cs_digest_eq(&refs[i].d, &want));
        off += cut;
    }
    assert_int_equal(off, n);
    free(refs);
}

static void
a_small_ingest_starts_one_worker_and_keeps_its_digests(void **state)
{
    fx *f = *state;
    uint8_t a[3000], b[20 * KiB];
    test_fill_random(a, sizeof a, 1);
    test_fill_random(b, sizeof b, 2);
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &f->err), 0);
    assert_int_equal(ing->nthreads, 0); /* nothing submitted: no thread */
    cs_digest da = ingest_bytes(f, ing, a, sizeof a, "a");
    cs_digest db = ingest_bytes(f, ing, b, sizeof b, "b");
    assert_int_equal(ing->nthreads, 1);
    assert_int_equal(cs_ingest_commit(ing, &f->err), 0);
    cs_ingest_free(ing);
    test_assert_content(f->s, &da, a, sizeof a);
    test_assert_content(f->s, &db, b, sizeof b);
}

static void
an_ingest_that_writes_nothing_starts_no_worker(void **state)
{
    fx *f = *state;
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &f->err), 0);
    assert_int_equal(cs_ingest_commit(ing, &f->err), 0);
    assert_int_equal(ing->nthreads, 0);
    cs_ingest_free(ing);
    assert_int_equal(test_count(f->s, CS_T_CONTENTS), 0);
}

static void
a_large_ingest_wraps_the_ring_and_keeps_its_digests_and_chunks(void **state)
{
    fx *f = *state;
    size_t n = 24 * MiB; /* ~380 chunks: the 64 slots are reused ~6 times */
    cs_autofree uint8_t *p = cs_xmalloc(n);
    test_fill_random(p, n / 2, 3);
    for (size_t i = n / 2; i < n; i++) /* compressible: the zstd path too */
        p[i] = (uint8_t) ("int main(void) { return 0; }\n"[i % 29]);
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &f->err), 0);
    cs_digest d = ingest_bytes(f, ing, p, n, "big");
    assert_true(ing->nthreads >= 1 && ing->nthreads <= ing->maxthreads);
    assert_int_equal(cs_ingest_commit(ing, &f->err), 0);
    cs_ingest_free(ing);
    test_assert_content(f->s, &d, p, n);
    assert_chunks_are_the_chunkers(f, &d, p, n);
}

static void
stable_bytes_chunk_as_copied_bytes_do(void **state)
{
    fx *f = *state;
    size_t n = 5 * MiB + 12345;
    cs_autofree uint8_t *p = cs_xmalloc(n);
    test_fill_random(p, n, 4);
    cs_ingest *ing = NULL;
    cs_digest d;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &f->err), 0);
    assert_int_equal(ingest_file_begin(ing, NULL, 0, &d, &f->err), 0);
    assert_int_equal(ingest_file_data_stable(ing, p, n, true, &f->err), 0);
    assert_int_equal(ingest_file_end(ing, &f->err), 0);
    assert_int_equal(ingest_drain_all(ing, &f->err), 0);
    cs_digest want;
    cs_sha256(p, n, &want);
    assert_true(cs_digest_eq(&d, &want));
    assert_int_equal(cs_ingest_commit(ing, &f->err), 0);
    cs_ingest_free(ing);
    assert_chunks_are_the_chunkers(f, &d, p, n);
}

static void
ingests_after_a_reset_and_one_after_another_store_the_same(void **state)
{
    fx *f = *state;
    size_t n = 3 * MiB;
    cs_autofree uint8_t *p = cs_xmalloc(n);
    test_fill_random(p, n, 5);
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &f->err), 0);
    ingest_bytes(f, ing, p, n, "x");
    assert_int_equal(cs_ingest_reset(ing, &f->err), 0); /* drops it */
    cs_digest d1 = ingest_bytes(f, ing, p, n, "x");
    assert_int_equal(cs_ingest_commit(ing, &f->err), 0);
    cs_ingest_free(ing);
    size_t chunks = test_count(f->s, CS_T_CHUNKS);
    for (int i = 0; i < 3; i++) { /* new mappings, new workers: the same records */
        assert_int_equal(cs_ingest_begin(f->s, &ing, &f->err), 0);
        cs_digest d2 = ingest_bytes(f, ing, p, n, "x");
        assert_true(cs_digest_eq(&d1, &d2));
        assert_int_equal(cs_ingest_commit(ing, &f->err), 0);
        assert_int_equal(cs_ingest_stats_get(ing)->new_chunks, 0);
        cs_ingest_free(ing);
    }
    assert_int_equal(test_count(f->s, CS_T_CHUNKS), chunks);
    test_assert_content(f->s, &d1, p, n);
}

/* The process's address space now (VmSize), in bytes. */
static uint64_t
vm_size(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    assert_non_null(fp);
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
            break;
    fclose(fp);
    assert_true(kb > 0);
    return (uint64_t) kb * 1024;
}

static void
an_ingest_whose_buffers_cannot_be_mapped_fails_with_one_line(void **state)
{
    fx *f = *state;
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
    cs_ingest_drop_spare(); /* the earlier tests' ingests left their buffers */
    /* Room for the small allocations, not for the slots' mapping (tens of MiB). */
    struct rlimit lim = { vm_size() + 4 * MiB, old.rlim_max };
    assert_int_equal(setrlimit(RLIMIT_AS, &lim), 0);
    cs_ingest *ing = NULL;
    int r = cs_ingest_begin(f->s, &ing, &f->err);
    assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
    assert_true(r < 0);
    assert_null(ing);
    assert_non_null(f->err);
    assert_non_null(strstr(f->err->msg, "map the ingest's buffers"));
    assert_null(strchr(f->err->msg, '\n'));
    cs_error_clear(&f->err);
    /* and the store is usable after */
    assert_int_equal(cs_ingest_begin(f->s, &ing, &f->err), 0);
    cs_ingest_free(ing);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_sandbox_setup, test_sandbox_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(a_small_ingest_starts_one_worker_and_keeps_its_digests),
        T(an_ingest_that_writes_nothing_starts_no_worker),
        T(a_large_ingest_wraps_the_ring_and_keeps_its_digests_and_chunks),
        T(stable_bytes_chunk_as_copied_bytes_do),
        T(ingests_after_a_reset_and_one_after_another_store_the_same),
        T(an_ingest_whose_buffers_cannot_be_mapped_fails_with_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
