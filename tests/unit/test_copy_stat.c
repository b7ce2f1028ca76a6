/* test_copy_stat.c - the context walk's listings (builder/copy_stat.c): the
 * getdents64 listing against cs_dir_names, and the helper's listings of
 * offered subdirectories against the walk's own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy_int.h"
#include "cstore/util.h"

typedef test_sandbox fx;

static void
mkdir_at(const char *path)
{
    assert_int_equal(mkdir(path, 0755), 0);
}

/* A directory of n files named with a 40-character tail, in random order
 * of creation (the listing's order is the hash's, not the names'). */
static void
make_dir(const char *dir, size_t n, uint64_t seed)
{
    mkdir_at(dir);
    for (size_t i = 0; i < n; i++) {
        uint32_t r;
        test_fill_random(&r, sizeof(r), seed + i);
        char p[512];
        snprintf(p, sizeof(p), "%s/%08x-%zu-name-long-enough-for-many-getdents-calls", dir, r, i);
        test_write_file(p, "x", 1, 0644);
    }
}

/* The getdents64 listing has cs_dir_names's names in its order. */
static void
getdents_listing_has_the_names_of_cs_dir_names_in_their_order(void **state)
{
    fx *f = *state;
    const size_t sizes[] = { 0, 1, 31, 3000 }; /* 3000: 290 KiB of entries, many reads */
    for (size_t c = 0; c < sizeof(sizes) / sizeof(sizes[0]); c++) {
        test_case("%zu names", sizes[c]);
        cs_autofree char *dir = cs_xasprintf("%s/d%zu", f->work, c);
        make_dir(dir, sizes[c], 7 * c);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);
        char **want = NULL;
        size_t nwant = 0;
        assert_int_equal(cs_dir_names(fd, dir, &want, &nwant, &f->err), 0);
        dirlist dl = { 0 };
        assert_int_equal(copy_list_names(fd, dir, &dl, &f->err), 0);
        assert_int_equal(dl.n, sizes[c]);
        assert_int_equal(nwant, sizes[c]);
        for (size_t i = 0; i < dl.n; i++)
            assert_string_equal(dl.names[i], want[i]);
        copy_dirlist_free(&dl);
        cs_names_free(want, nwant);
        close(fd);
    }
}

/* The lstat of each name of dl, as the walk takes it itself. */
static void
assert_listing_is(int dirfd, const char *name, const dirlist *dl)
{
    cs_error *err = NULL;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    dirlist own = { 0 };
    assert_int_equal(copy_list_names(fd, name, &own, &err), 0);
    assert_int_equal(dl->n, own.n);
    for (size_t i = 0; i < own.n; i++) {
        struct stat st;
        assert_int_equal(fstatat(fd, own.names[i], &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_string_equal(dl->names[i], own.names[i]);
        assert_int_equal(dl->errs[i], 0);
        assert_int_equal(dl->sts[i].st_ino, st.st_ino);
        assert_int_equal(dl->sts[i].st_mode, st.st_mode);
        assert_int_equal(dl->sts[i].st_size, st.st_size);
    }
    copy_dirlist_free(&own);
    close(fd);
}

/* Offered subdirectories, one missing: after a wait the helper has listed
 * them all from the last one down (the missing one left to the walk), and
 * each listing is the walk's own. */
static void
helper_lists_offered_subdirectories_as_the_walk_would(void **state)
{
    fx *f = *state;
    char *names[12];
    for (size_t i = 0; i < 12; i++) {
        names[i] = cs_xasprintf("s%02zu", i);
        if (i != 5) {
            cs_autofree char *d = cs_xasprintf("%s/%s", f->work, names[i]);
            make_dir(d, 40 + i, 100 * i);
        }
    }
    int dirfd = open(f->work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dirfd >= 0);
    statpool *p = copy_statpool_new();
    assert_non_null(p);
    prefetch *pf = copy_prefetch_begin(p, dirfd, names, NULL, 12);
    assert_non_null(pf);
    usleep(500 * 1000); /* the helper lists 11 directories of ~50 names meanwhile */
    for (size_t k = 0; k < 12; k++) {
        test_case("subdirectory %zu", k);
        dirlist dl = { 0 };
        bool got = copy_prefetch_take(pf, k, &dl);
        assert_int_equal(got, k != 5);
        if (got)
            assert_listing_is(dirfd, names[k], &dl);
        copy_dirlist_free(&dl);
    }
    copy_prefetch_end(pf);

    /* Ended with listings not taken: they are freed (ASan's leak check). */
    pf = copy_prefetch_begin(p, dirfd, names, NULL, 12);
    dirlist dl = { 0 };
    if (copy_prefetch_take(pf, 0, &dl))
        copy_dirlist_free(&dl);
    copy_prefetch_end(pf);
    copy_statpool_free(p);
    close(dirfd);
    for (size_t i = 0; i < 12; i++)
        free(names[i]);
}

/* $CSTORE_TEST_WALK_SERIAL=1: no helper, nothing offered. */
static void
serial_walk_has_no_helper(void **state)
{
    (void) state;
    setenv("CSTORE_TEST_WALK_SERIAL", "1", 1);
    statpool *p = copy_statpool_new();
    unsetenv("CSTORE_TEST_WALK_SERIAL");
    assert_null(p);
    char *names[] = { "a", "b" };
    assert_null(copy_prefetch_begin(p, AT_FDCWD, names, NULL, 2));
    dirlist dl = { 0 };
    assert_false(copy_prefetch_take(NULL, 0, &dl));
    copy_prefetch_end(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            getdents_listing_has_the_names_of_cs_dir_names_in_their_order, test_sandbox_setup,
            test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(helper_lists_offered_subdirectories_as_the_walk_would,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test(serial_walk_has_no_helper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
