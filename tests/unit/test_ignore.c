/* test_ignore.c - .dockerignore / --exclude patterns (ignore.c) against
 * moby/patternmatcher's behaviour. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ignore.h"

static cs_ignore *
parse(const char *text)
{
    cs_ignore *ig = NULL;
    cs_error *err = NULL;
    int r = cs_ignore_parse(text, strlen(text), &ig, &err);
    if (r < 0)
        fail_msg("parse: %s", err->msg);
    return ig;
}

typedef struct row {
    const char *patterns;
    const char *path;
    bool match;
} row;

static void
ignore_patterns_match_like_patternmatcher(void **state)
{
    (void) state;
    static const row rows[] = {
        { "*.go", "main.go", true },
        { "*.go", "cmd/main.go", false },
        { "*/*.go", "cmd/main.go", true },
        { "**/*.go", "main.go", true },
        { "**/*.go", "a/b/c/main.go", true },
        { "**/*.go", "a/b/c/main.gox", false },
        { "a/**/b", "a/b", true },
        { "a/**/b", "a/x/y/b", true },
        { "a/**/b", "a/x/y/bc", false },
        { "a/**", "a/x/y", true },
        { "**", "anything/at/all", true },
        { "**/node_modules", "node_modules", true },
        { "**/node_modules", "x/node_modules/pkg/index.js", true },
        { "docs", "docs/a/b.md", true }, /* a matched dir takes its contents */
        { "/docs/", "docs/a.md", true }, /* leading '/' and trailing '/' cleaned */
        { "./docs//x/../", "docs/a.md", true },
        { "file?.txt", "file1.txt", true },
        { "file?.txt", "file10.txt", false },
        { "file[0-9].txt", "file7.txt", true },
        { "file[^0-9].txt", "file7.txt", false },
        { "file[^0-9].txt", "filex.txt", true },
        { "\\*.txt", "*.txt", true },
        { "\\*.txt", "a.txt", false },
        { "# comment\n*.md", "README.md", true },
        { "   *.md   ", "README.md", true },
        { "*\n!keep.txt", "keep.txt", false },
        { "*\n!keep.txt", "other.txt", true },
        { "*.txt\n!important.txt\nimportant.txt", "important.txt", true },
        { "build\n!build/keep", "build/keep", false },
        { "build\n!build/keep", "build/keep/deep", false },
        { "build\n!build/keep", "build/other", true },
        { "Dockerfile\n.dockerignore", "Dockerfile", true },
        { "Dockerfile\n.dockerignore", ".dockerignore", true },
        { "Dockerfile*", "Dockerfile.dev", true },
        { "**/*.log\n!**/keep.log", "a/b/keep.log", false },
        { "**/*.log\n!**/keep.log", "a/b/drop.log", true },
        { "a.b", "axb", false },
        { "a+(b)", "a+(b)", true },
        { "", "x", false },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        cs_ignore *ig = parse(rows[i].patterns);
        bool m = cs_ignore_match(ig, rows[i].path, false);
        if (m != rows[i].match)
            fail_msg("patterns '%s' path '%s': got %d want %d", rows[i].patterns, rows[i].path, m,
                     rows[i].match);
        cs_ignore_free(ig);
    }
}

static void
ignore_skip_dir_only_without_exceptions_inside(void **state)
{
    (void) state;
    cs_ignore *ig = parse("build\nvendor\n!vendor/keep\n");
    assert_true(cs_ignore_skip_dir(ig, "build"));
    assert_false(cs_ignore_skip_dir(ig, "vendor")); /* an exception lies inside */
    assert_false(cs_ignore_skip_dir(ig, "src"));    /* not matched at all */
    assert_true(cs_ignore_has_exceptions(ig));
    cs_ignore_free(ig);
    ig = parse("build\n!**/keep\n");
    assert_false(cs_ignore_skip_dir(ig, "build")); /* a wildcard exception may match anywhere */
    cs_ignore_free(ig);
}

static void
ignore_rejects_bad_patterns(void **state)
{
    (void) state;
    cs_ignore *ig = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_ignore_parse("[a", 2, &ig, &err), -CS_EPARSE);
    test_assert_msg(err, "bad pattern");
    cs_error_clear(&err);
    assert_int_equal(cs_ignore_parse("!\n", 2, &ig, &err), -CS_EPARSE);
    cs_error_clear(&err);
}

static void
glob_match_follows_filepath_match(void **state)
{
    (void) state;
    assert_int_equal(cs_glob_match("*.c", "a.c"), 1);
    assert_int_equal(cs_glob_match("*.c", ".c"), 1);
    assert_int_equal(cs_glob_match("a*b*c", "axxbyyc"), 1);
    assert_int_equal(cs_glob_match("a?c", "a/c"), 0);
    assert_int_equal(cs_glob_match("arr[[]0].txt", "arr[0].txt"), 1);
    assert_int_equal(cs_glob_match("[]a]", "a"), -1);
    assert_int_equal(cs_glob_match("x\\", "x"), -1);
    assert_true(cs_glob_has_wildcards("a/*.c"));
    assert_false(cs_glob_has_wildcards("a\\*.c"));
    char *c = cs_ignore_clean("/a/../../b/./c//");
    assert_string_equal(c, "/b/c");
    free(c);
    c = cs_ignore_clean("../a/..");
    assert_string_equal(c, "..");
    free(c);
}

/* Found by tests/fuzz/fuzz_ignore: many stars backtracked exponentially. */
static void
ignore_patterns_with_many_stars_match_quickly(void **state)
{
    (void) state;
    char pat[256] = "", path[256] = "";
    for (int i = 0; i < 40; i++)
        strcat(pat, i % 2 ? "**/" : "*a");
    strcat(pat, "b");
    for (int i = 0; i < 60; i++)
        strcat(path, i % 3 == 2 ? "/" : "a");
    char *pats[] = { pat };
    cs_ignore *ig = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_ignore_new(pats, 1, &ig, &err), 0);
    double t0 = cs_now();
    assert_false(cs_ignore_match(ig, path, false));
    strcat(path, "b");
    assert_true(cs_ignore_match(ig, path, false));
    double dt = cs_now() - t0;
    printf("40 stars against %zu bytes in %.2f ms\n", strlen(path), dt * 1e3);
    assert_true(dt < 1.0);
    cs_ignore_free(ig);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ignore_patterns_match_like_patternmatcher),
        cmocka_unit_test(ignore_skip_dir_only_without_exceptions_inside),
        cmocka_unit_test(ignore_rejects_bad_patterns),
        cmocka_unit_test(glob_match_follows_filepath_match),
        cmocka_unit_test(ignore_patterns_with_many_stars_match_quickly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
