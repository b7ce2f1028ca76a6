/* test_chunker.c - FastCDC chunker: determinism, size bounds, eof rules,
 * boundary stability after an insertion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chunker.h"

#define MIB (1024u * 1024)

static void
fill_random(uint8_t *p, size_t len, uint64_t seed)
{
    /* splitmix64: seeded, so every run sees the same bytes */
    for (size_t i = 0; i < len; i += 8) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(p + i, &z, n);
    }
}

static uint8_t *
random_buf(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    fill_random(p, len, seed);
    return p;
}

/* Chunks all of p with eof set; returns the number of chunks, lengths in out. */
static size_t
chunk_all(const uint8_t *p, size_t len, size_t *out, size_t cap)
{
    size_t off = 0, n = 0;

    while (off < len) {
        size_t c = cs_chunker_next(p + off, len - off, true);
        assert_true(c > 0);
        assert_true(c <= len - off);
        assert_true(n < cap);
        out[n++] = c;
        off += c;
    }
    return n;
}

/* Chunks p the way a streaming reader does: at most win bytes visible at a
 * time, eof only once the last byte is visible. */
static size_t
chunk_streaming(const uint8_t *p, size_t len, size_t win, size_t *out, size_t cap)
{
    size_t off = 0, avail = 0, n = 0;

    while (off < len) {
        if (avail < win && off + avail < len) {
            size_t more = win - avail;
            if (more > len - off - avail)
                more = len - off - avail;
            avail += more;
        }
        bool eof = off + avail == len;
        size_t c = cs_chunker_next(p + off, avail, eof);
        if (c == 0) {
            /* needs more data: must not happen when it cannot get any */
            assert_false(eof);
            assert_true(avail < CS_CHUNK_MAX);
            if (avail == win)
                win *= 2; /* like a reader growing its buffer to max */
            continue;
        }
        assert_true(n < cap);
        out[n++] = c;
        off += c;
        avail -= c;
    }
    return n;
}

/* len bytes of random data from seed, and its n cuts by chunk_all. */
typedef struct cut_data {
    uint8_t *p;
    size_t len, cap; /* cap: room for the most cuts len can give */
    size_t *cuts, n;
} cut_data;

static cut_data
cut_random(size_t len, uint64_t seed)
{
    cut_data c = { .p = random_buf(len, seed), .len = len, .cap = len / CS_CHUNK_MIN + 1 };
    c.cuts = calloc(c.cap, sizeof(*c.cuts));
    c.n = chunk_all(c.p, len, c.cuts, c.cap);
    return c;
}

static void
cut_data_free(cut_data *c)
{
    free(c->p);
    free(c->cuts);
}

static void
same_seeded_data_gives_the_same_cuts(void **state)
{
    (void) state;
    cut_data a = cut_random(8 * MIB, 42), b = cut_random(8 * MIB, 42);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.cuts, b.cuts, a.n * sizeof(*a.cuts));
    assert_true(a.n > 1);
    cut_data_free(&a);
    cut_data_free(&b);
}

static void
cuts_do_not_depend_on_how_the_data_is_fed(void **state)
{
    (void) state;
    cut_data w = cut_random(8 * MIB + 12345, 7);
    size_t *piece = calloc(w.cap, sizeof(*piece));
    size_t wins[] = { CS_CHUNK_MIN + 1, 100000, CS_CHUNK_MAX, CS_CHUNK_MAX + 77, 1 * MIB };
    for (size_t i = 0; i < sizeof(wins) / sizeof(wins[0]); i++) {
        size_t np = chunk_streaming(w.p, w.len, wins[i], piece, w.cap);
        assert_int_equal(w.n, np);
        assert_memory_equal(w.cuts, piece, w.n * sizeof(*piece));
    }
    free(piece);
    cut_data_free(&w);
}

static void
every_chunk_is_within_min_and_max_except_the_last(void **state)
{
    (void) state;
    cut_data c = cut_random(16 * MIB + 999, 1234);
    assert_true(c.n > 2);
    for (size_t i = 0; i + 1 < c.n; i++) {
        assert_in_range(c.cuts[i], CS_CHUNK_MIN + 1, CS_CHUNK_MAX);
    }
    assert_in_range(c.cuts[c.n - 1], 1, CS_CHUNK_MAX);
    cut_data_free(&c);
}

static void
uniform_data_is_cut_at_the_maximum_size(void **state)
{
    (void) state;
    size_t len = 3 * CS_CHUNK_MAX + 100;
    uint8_t *p = calloc(len, 1);
    size_t c[8];

    /* zeros never match: the hash settles on -gear[0], whose top bits are set */
    size_t n = chunk_all(p, len, c, 8);
    assert_int_equal(n, 4);
    assert_int_equal(c[0], CS_CHUNK_MAX);
    assert_int_equal(c[1], CS_CHUNK_MAX);
    assert_int_equal(c[2], CS_CHUNK_MAX);
    assert_int_equal(c[3], 100);
    free(p);
}

static void
without_eof_and_no_cut_it_asks_for_more_data(void **state)
{
    (void) state;
    size_t len = CS_CHUNK_MAX + 1;
    uint8_t *p = calloc(len, 1);

    /* no cut in zeros: below max it cannot decide without eof */
    assert_int_equal(cs_chunker_next(p, CS_CHUNK_MAX - 1, false), 0);
    assert_int_equal(cs_chunker_next(p, CS_CHUNK_MIN + 10, false), 0);
    assert_int_equal(cs_chunker_next(p, 10, false), 0);
    assert_int_equal(cs_chunker_next(p, 0, false), 0);
    /* at max it cuts, eof or not */
    assert_int_equal(cs_chunker_next(p, CS_CHUNK_MAX, false), CS_CHUNK_MAX);
    assert_int_equal(cs_chunker_next(p, CS_CHUNK_MAX + 1, false), CS_CHUNK_MAX);
    free(p);

    /* random data: one byte short of the first cut still asks for more */
    uint8_t *r = random_buf(4 * MIB, 99);
    size_t cut = cs_chunker_next(r, 4 * MIB, false);
    assert_in_range(cut, CS_CHUNK_MIN + 1, CS_CHUNK_MAX - 1);
    assert_int_equal(cs_chunker_next(r, cut - 1, false), 0);
    assert_int_equal(cs_chunker_next(r, cut, false), cut);
    assert_int_equal(cs_chunker_next(r, cut + 1, false), cut);
    free(r);
}

static void
at_eof_without_a_cut_it_returns_the_whole_length(void **state)
{
    (void) state;
    uint8_t *p = calloc(CS_CHUNK_MAX, 1);

    assert_int_equal(cs_chunker_next(p, CS_CHUNK_MAX - 1, true), CS_CHUNK_MAX - 1);
    assert_int_equal(cs_chunker_next(p, CS_CHUNK_AVG + 3, true), CS_CHUNK_AVG + 3);
    free(p);

    uint8_t *r = random_buf(4 * MIB, 99);
    size_t cut = cs_chunker_next(r, 4 * MIB, true);
    assert_int_equal(cs_chunker_next(r, cut - 1, true), cut - 1);
    free(r);
}

static void
inputs_smaller_than_the_minimum_are_one_chunk_at_eof(void **state)
{
    (void) state;
    uint8_t *p = random_buf(CS_CHUNK_MIN, 5);

    assert_int_equal(cs_chunker_next(p, 0, true), 0);
    assert_int_equal(cs_chunker_next(p, 1, true), 1);
    assert_int_equal(cs_chunker_next(p, 4096, true), 4096);
    assert_int_equal(cs_chunker_next(p, CS_CHUNK_MIN - 1, true), CS_CHUNK_MIN - 1);
    assert_int_equal(cs_chunker_next(p, CS_CHUNK_MIN, true), CS_CHUNK_MIN);
    assert_int_equal(cs_chunker_next(p, CS_CHUNK_MIN - 1, false), 0);
    free(p);
}

static void
an_insertion_near_the_start_changes_only_the_first_chunks(void **state)
{
    (void) state;
    size_t len = 4 * MIB, ins = 7, at = 1000;
    uint8_t *a = random_buf(len, 2024);
    uint8_t *b = malloc(len + ins);
    assert_non_null(b);
    memcpy(b, a, at);
    memcpy(b + at, "INSERT!", ins);
    memcpy(b + at + ins, a + at, len - at);

    size_t cap = (len + ins) / CS_CHUNK_MIN + 1;
    size_t *ca = calloc(cap, sizeof(*ca)), *cb = calloc(cap, sizeof(*cb));
    size_t na = chunk_all(a, len, ca, cap);
    size_t nb = chunk_all(b, len + ins, cb, cap);
    assert_true(na > 10);

    /* Compare chunks as (distance of their end from the end of the data,
     * length): the same bytes after the insertion give the same pairs. */
    size_t same = 0;
    for (size_t j = 0, endb = 0; j < nb; j++) {
        endb += cb[j];
        size_t fromend_b = len + ins - endb;
        size_t enda = 0;
        for (size_t i = 0; i < na; i++) {
            enda += ca[i];
            if (len - enda == fromend_b && ca[i] == cb[j]) {
                same++;
                break;
            }
        }
    }
    assert_true(same + 2 >= nb);
    /* and the tails are literally the same list */
    assert_memory_equal(ca + na - (nb - 2), cb + 2, (nb - 2) * sizeof(*ca));

    free(a);
    free(b);
    free(ca);
    free(cb);
}

static void
average_chunk_size_on_random_data_is_near_64_kib(void **state)
{
    (void) state;
    size_t len = 64 * MIB;
    uint8_t *p = random_buf(len, 31337);
    size_t cap = len / CS_CHUNK_MIN + 1;
    size_t *c = calloc(cap, sizeof(*c));

    size_t n = chunk_all(p, len, c, cap);
    size_t avg = len / n;
    assert_in_range(avg, 48 * 1024, 96 * 1024);

    free(p);
    free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seeded_data_gives_the_same_cuts),
        cmocka_unit_test(cuts_do_not_depend_on_how_the_data_is_fed),
        cmocka_unit_test(every_chunk_is_within_min_and_max_except_the_last),
        cmocka_unit_test(uniform_data_is_cut_at_the_maximum_size),
        cmocka_unit_test(without_eof_and_no_cut_it_asks_for_more_data),
        cmocka_unit_test(at_eof_without_a_cut_it_returns_the_whole_length),
        cmocka_unit_test(inputs_smaller_than_the_minimum_are_one_chunk_at_eof),
        cmocka_unit_test(an_insertion_near_the_start_changes_only_the_first_chunks),
        cmocka_unit_test(average_chunk_size_on_random_data_is_near_64_kib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
