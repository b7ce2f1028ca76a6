/* test_copy_stat.c - the context walk's listings (builder/copy_stat.c): the
 * getdents64 listing against cs_dir_names, and the helper's listings of
 * offered subdirectories against the walk's own; the nodes a summary walk
 * makes only on a miss (copy_defer.c) against those the walk makes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "copy_int.h"
#include "ignore.h"
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

/* ---- the summary walk's nodes, made on a miss ---- */

/* A context of every kind of entry: nested directories, hardlinks (inside
 * a directory item and as a file item of their own), symlinks, a fifo, a
 * socket (no node), an empty directory, an ignored directory with an
 * exception inside (and directories in it with nothing kept) and one
 * without; all old enough to be trusted. */
static void
make_context(const char *ctx)
{
    cs_autofree char *cmd = cs_xasprintf(
        "set -e; cd '%s'; mkdir -p a/b/c e ign/keep skip/x big; "
        "for i in 1 2 3 4 5 6 7 8 9; do echo f$i >a/f$i; echo c$i >a/b/c/g$i; done; "
        "for i in $(seq 1 40); do mkdir big/d$i; echo $i >big/d$i/x; done; "
        "ln a/f1 a/hard; ln a/f2 top-hard; ln -s f1 a/link; ln -s ../../nowhere a/b/dangling; "
        "mkfifo a/fifo; echo k >ign/keep/k.txt; echo i >ign/i.txt; echo s >skip/x/s; "
        "mkdir -p ign/none/deeper ign/some; echo n >ign/none/deeper/n; echo k >ign/some/s.keep; "
        "echo top >top.txt",
        ctx);
    assert_int_equal(system(cmd), 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/a/sock", ctx);
    int sk = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(sk >= 0);
    assert_int_equal(bind(sk, (struct sockaddr *) &sa, sizeof(sa)), 0);
    close(sk);
    cs_autofree char *old = cs_xasprintf("find '%s' -exec touch -h -d @1600000000 {} +", ctx);
    assert_int_equal(system(old), 0);
    usleep(150 * 1000); /* out of the "too recent" window */
}

static bool
same_str(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

/* a and b hold the same items, nodes and link keys. */
static void
assert_same_copy(const cs_copy *a, const cs_copy *b)
{
    assert_int_equal(a->nitems, b->nitems);
    for (size_t i = 0; i < a->nitems; i++) {
        assert_int_equal(a->items[i].kind, b->items[i].kind);
        assert_true(same_str(a->items[i].name, b->items[i].name));
        assert_true(same_str(a->items[i].abs, b->items[i].abs));
        assert_int_equal(a->items[i].first, b->items[i].first);
        assert_int_equal(a->items[i].n, b->items[i].n);
    }
    assert_int_equal(a->nnodes, b->nnodes);
    for (size_t i = 0; i < a->nnodes; i++) {
        const cs_entry *x = &a->nodes[i], *y = &b->nodes[i];
        assert_string_equal(x->path, y->path);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->mode, y->mode);
        assert_int_equal(x->mtime_sec, y->mtime_sec);
        assert_int_equal(x->mtime_nsec, y->mtime_nsec);
        assert_int_equal(x->size, y->size);
        assert_int_equal(x->has_content, y->has_content);
        assert_memory_equal(x->content.b, y->content.b, 32);
        assert_true(same_str(x->link, y->link));
    }
    assert_int_equal(a->nlinks, b->nlinks);
    for (size_t i = 0; i < a->nlinks; i++) {
        assert_int_equal(a->links[i].node, b->links[i].node);
        assert_string_equal(a->links[i].key, b->links[i].key);
    }
}

/* Each source set prepared with the summary (a miss: the walk's entries
 * recorded, made into nodes after) has the items, nodes and key of the
 * walk without it (nodes made as it goes), on both walks. */
static void
summary_miss_makes_the_nodes_the_walk_without_it_makes(void **state)
{
    fx *f = *state;
    cs_autofree char *ctx = cs_xasprintf("%s/ctx", f->work);
    mkdir_at(ctx);
    make_context(ctx);
    /* ign/none is walked (an exception may match inside) and dropped empty */
    char *pats[] = { "ign", "!ign/keep/k.txt", "!ign/**/*.keep", "skip" };
    cs_ignore *ig = NULL;
    assert_int_equal(cs_ignore_new(pats, 4, &ig, &f->err), 0);
    char *s_all[] = { "." }, *s_items[] = { "a", "top-hard", "e", "top.txt", "big" };
    char *s_wild[] = { "a/*", "*.txt" }, *s_par[] = { "a/./b" }, *excl[] = { "**/c" };
    struct {
        char **srcs;
        size_t n;
        bool parents, exclude;
    } sets[] = { { s_all, 1, false, false },
                 { s_items, 5, false, false },
                 { s_wild, 2, false, false },
                 { s_all, 1, false, true },
                 { s_par, 1, true, false } };
    for (int serial = 0; serial < 2; serial++) {
        if (serial)
            setenv("CSTORE_TEST_WALK_SERIAL", "1", 1);
        for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
            test_case("source set %zu%s", k, serial ? ", one thread" : "");
            cs_copy_opts o = { .srcs = sets[k].srcs,
                               .nsrcs = sets[k].n,
                               .dest = "/app/",
                               .workdir = "/",
                               .clamp_mtime = -1,
                               .parents = sets[k].parents };
            if (sets[k].exclude)
                o.excludes = excl, o.nexcludes = 1;
            cs_digest id = { { (uint8_t) (k + 1), (uint8_t) serial } }; /* a new selection */
            cs_copy_from from = { .context_dir = ctx, .ignore = ig, .ignore_id = &id };
            cs_copy *eager = NULL, *late = NULL;
            cs_digest k1, k2;
            assert_int_equal(cs_copy_prepare(f->s, NULL, &from, &o, NULL, &eager, &k1, &f->err), 0);
            from.summary = true;
            assert_int_equal(cs_copy_prepare(f->s, NULL, &from, &o, NULL, &late, &k2, &f->err), 0);
            assert_non_null(late); /* walked: no summary answered */
            assert_same_copy(late, eager);
            assert_memory_equal(k1.b, k2.b, 32);
            cs_copy_free(eager);
            cs_copy_free(late);
            late = NULL;
            assert_int_equal(cs_copy_prepare(f->s, NULL, &from, &o, NULL, &late, &k2, &f->err), 0);
            assert_null(late); /* the summary written by the miss answers */
            assert_memory_equal(k1.b, k2.b, 32);
        }
    }
    unsetenv("CSTORE_TEST_WALK_SERIAL");
    cs_ignore_free(ig);
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
        cmocka_unit_test_setup_teardown(summary_miss_makes_the_nodes_the_walk_without_it_makes,
                                        test_sandbox_setup, test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
