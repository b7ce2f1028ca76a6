/* test_copy.c - COPY/ADD from a context dir, from a tree, ADD of archives
 * and URLs, the stat cache and its summary records, --chown lookups
 * (builder/copy*.c, fetch.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "copy.h"
#include "cstore/content.h"
#include "cstore/ingest.h"
#include "cstore/store.h"
#include "cstore/tree.h"
#include "ignore.h"

#define OLD 1600000000 /* mtimes set in the past: the stat cache trusts them */

/* The context is the sandbox's work dir. */
typedef struct fx {
    test_sandbox sb;
    uint64_t files; /* files ingested by the last run() */
    cs_error *err;
} fx;

static int
setup(void **state)
{
    return test_sandbox_new(state, sizeof(fx), 0);
}

static int
teardown(void **state)
{
    fx *f = *state;
    if (f)
        cs_error_free(f->err);
    return test_sandbox_teardown(state);
}

static void
set_old(const char *path, time_t t)
{
    struct timespec ts[2] = { { t, 0 }, { t, 0 } };
    assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void
mkparents(const char *full)
{
    char *p = strdup(full);
    for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(p, 0755);
        *s = '/';
    }
    free(p);
}

static void
put_file(fx *f, const char *rel, const char *data, mode_t mode)
{
    char *full = cs_path_join(f->sb.work, rel);
    mkparents(full);
    test_write_file(full, data, strlen(data), mode);
    set_old(full, OLD);
    free(full);
}

/* put_file of each { path, data } pair, mode 0644, up to a NULL path. */
static void
put_files(fx *f, const char *const *pairs)
{
    for (; pairs[0]; pairs += 2)
        put_file(f, pairs[0], pairs[1], 0644);
}

static void
put_link(fx *f, const char *rel, const char *target)
{
    char *full = cs_path_join(f->sb.work, rel);
    mkparents(full);
    assert_int_equal(symlink(target, full), 0);
    free(full);
}

/* Sets every directory of the context to OLD and waits out the stat
 * cache's "too recent" window. */
static int
old_dirs(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) ftw;
    if (flag == FTW_D || flag == FTW_DP)
        set_old(p, OLD);
    (void) st;
    return 0;
}

static void
settle(fx *f)
{
    nftw(f->sb.work, old_dirs, 16, FTW_PHYS);
    usleep(150 * 1000);
}

static cs_copy_opts
opts(const char *dest, ...)
{
    static char *srcs[16];
    cs_copy_opts o = { 0 };
    va_list ap;
    va_start(ap, dest);
    size_t n = 0;
    for (char *s; (s = va_arg(ap, char *));)
        srcs[n++] = s;
    va_end(ap);
    o.srcs = srcs;
    o.nsrcs = n;
    o.dest = dest;
    o.workdir = "/";
    o.clamp_mtime = -1;
    return o;
}

/* put_file of rel, and the options to copy it to dest. */
static cs_copy_opts
copy_of(fx *f, const char *rel, const char *data, mode_t mode, const char *dest)
{
    put_file(f, rel, data, mode);
    return opts(dest, rel, NULL);
}

/* prepare + layer in one ingest; returns prepare's or layer's code. */
static int
run_from(fx *f, const cs_copy_from *from, const cs_copy_opts *o, const cs_tree *dest_tree,
         cs_tree **layer, cs_digest *key)
{
    cs_error_clear(&f->err);
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(f->sb.s, &ing, &f->err), 0);
    cs_copy *c = NULL;
    cs_digest k;
    int r = cs_copy_prepare(f->sb.s, ing, from, o, dest_tree, &c, &k, &f->err);
    f->files = cs_ingest_stats_get(ing)->files;
    if (r == 0 && layer)
        r = cs_copy_layer(f->sb.s, ing, c, dest_tree, layer, &f->err);
    if (r == 0)
        r = cs_ingest_commit(ing, &f->err);
    cs_copy_free(c);
    cs_ingest_free(ing);
    if (key)
        *key = k;
    if (r < 0 && getenv("CS_TEST_VERBOSE"))
        print_message("error: %s\n", f->err ? f->err->msg : "?");
    return r;
}

static int
run(fx *f, const cs_ignore *ig, const cs_copy_opts *o, const cs_tree *dest_tree, cs_tree **layer,
    cs_digest *key)
{
    cs_copy_from from = { .context_dir = f->sb.work, .ignore = ig };
    return run_from(f, &from, o, dest_tree, layer, key);
}

static const cs_entry *
get(const cs_tree *t, const char *path)
{
    const cs_entry *e = cs_tree_find(t, path);
    if (!e)
        fail_msg("no entry '%s' in the layer", path);
    return e;
}

static void
expect_paths(const cs_tree *t, const char *const *paths)
{
    size_t n = 0;
    for (; paths[n]; n++)
        if (!cs_tree_find(t, paths[n]))
            fail_msg("missing '%s'", paths[n]);
    if (t->n != n) {
        for (size_t i = 0; i < t->n; i++)
            print_message("  have %s\n", t->e[i].path);
        fail_msg("%zu entries, want %zu", t->n, n);
    }
}

static void
expect_content(const cs_entry *e, const char *data)
{
    cs_digest d;
    cs_sha256(data, strlen(data), &d);
    assert_true(e->has_content);
    assert_true(cs_digest_eq(&e->content, &d));
    assert_int_equal(e->size, strlen(data));
}

/* run() must succeed with a layer holding exactly paths; returns the layer
 * (the caller frees it). */
static cs_tree *
layer_ok(fx *f, const cs_ignore *ig, const cs_copy_opts *o, const cs_tree *dest_tree,
         const char *const *paths)
{
    cs_tree *l = NULL;
    assert_int_equal(run(f, ig, o, dest_tree, &l, NULL), 0);
    expect_paths(l, paths);
    return l;
}

/* run() must fail with code (a -CS_E*) and, unless NULL, a message holding msg. */
static void
run_fails(fx *f, const cs_ignore *ig, const cs_copy_opts *o, int code, const char *msg)
{
    cs_tree *l = NULL;
    assert_int_equal(run(f, ig, o, NULL, &l, NULL), code);
    if (msg)
        test_assert_msg(f->err, msg);
}

#define PATHS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* ---- context ---- */

static void
copy_single_file_to_a_file(void **state)
{
    fx *f = *state;
    cs_copy_opts o = copy_of(f, "a.txt", "hello", 0640, "/b.txt");
    cs_tree *l = layer_ok(f, NULL, &o, NULL, PATHS("b.txt"));
    const cs_entry *e = get(l, "b.txt");
    assert_int_equal(e->type, CS_E_FILE);
    assert_int_equal(e->mode, 0640);
    assert_int_equal(e->uid, 0);
    assert_int_equal(e->mtime_sec, OLD);
    expect_content(e, "hello");
    cs_tree_free(l);
}

static void
copy_file_into_directory_creates_missing_parents(void **state)
{
    fx *f = *state;
    cs_copy_opts o = copy_of(f, "a.txt", "hello", 0644, "app/");
    o.workdir = "/srv";
    cs_tree *l = layer_ok(f, NULL, &o, NULL, PATHS("srv", "srv/app", "srv/app/a.txt"));
    assert_int_equal(get(l, "srv/app")->mode, 0755);
    assert_int_equal(get(l, "srv/app")->type, CS_E_DIR);
    cs_tree_free(l);
}

static void
copy_directory_copies_its_contents_and_keeps_symlinks(void **state)
{
    fx *f = *state;
    put_file(f, "dir/x", "x", 0644);
    put_file(f, "dir/sub/y", "y", 0755);
    put_link(f, "dir/link", "../outside");
    settle(f);
    cs_copy_opts o = opts("/out", "dir", NULL);
    cs_tree *l =
        layer_ok(f, NULL, &o, NULL, PATHS("out", "out/x", "out/sub", "out/sub/y", "out/link"));
    assert_int_equal(get(l, "out")->mtime_sec, OLD); /* the source dir's time */
    assert_int_equal(get(l, "out/link")->type, CS_E_SYMLINK);
    assert_string_equal(get(l, "out/link")->link, "../outside");
    assert_int_equal(get(l, "out/sub/y")->mode, 0755);
    cs_tree_free(l);
}

static void
copy_glob_and_several_sources_into_a_directory(void **state)
{
    fx *f = *state;
    put_files(f, PATHS("a.txt", "a", "b.txt", "b", "c.md", "c", "d/e.txt", "e"));
    cs_copy_opts o = opts("/d/", "*.txt", "c.md", NULL);
    cs_tree_free(layer_ok(f, NULL, &o, NULL, PATHS("d", "d/a.txt", "d/b.txt", "d/c.md")));
    /* Several files into a path that is no directory. */
    o = opts("/one", "*.txt", NULL);
    run_fails(f, NULL, &o, -CS_EINVAL, "must be a directory");
    /* One match: the file becomes dest. */
    o = opts("/one", "c.*", NULL);
    cs_tree_free(layer_ok(f, NULL, &o, NULL, PATHS("one")));
}

static cs_entry *
tree_link(cs_tree *t, const char *path, const char *target)
{
    cs_entry *e = test_tree_add(t, path, CS_E_SYMLINK);
    e->mode = 0777;
    e->link = strdup(target);
    return e;
}

static cs_tree *
stage_tree(void)
{
    cs_tree *t = cs_tree_new();
    cs_entry *e = test_tree_add(t, "srv", CS_E_DIR);
    e->mode = 0700;
    e->uid = 5;
    tree_link(t, "lnk", "/srv");
    cs_tree_sort(t);
    return t;
}

static void
copy_into_existing_directory_of_the_stage(void **state)
{
    fx *f = *state;
    put_file(f, "a.txt", "a", 0644);
    cs_tree *dt = stage_tree();
    cs_copy_opts o = opts("/srv", "a.txt", NULL);
    cs_tree_free(layer_ok(f, NULL, &o, dt, PATHS("srv/a.txt")));
    /* Through the stage's symlink. */
    o = opts("/lnk/", "a.txt", NULL);
    cs_tree_free(layer_ok(f, NULL, &o, dt, PATHS("srv/a.txt")));
    cs_tree_free(dt);
}

static void
copy_chown_applies_to_created_parents_and_chmod_only_to_what_is_copied(void **state)
{
    fx *f = *state;
    put_file(f, "dir/a", "a", 0644);
    put_link(f, "dir/l", "a");
    cs_copy_opts o = opts("/x/y/", "dir", NULL);
    o.chown = true;
    o.uid = 1000;
    o.gid = 1001;
    o.chmod = true;
    o.mode = 0700;
    cs_tree *l = layer_ok(f, NULL, &o, NULL, PATHS("x", "x/y", "x/y/a", "x/y/l"));
    for (size_t i = 0; i < l->n; i++) {
        assert_int_equal(l->e[i].uid, 1000);
        assert_int_equal(l->e[i].gid, 1001);
    }
    /* fsutil's MkdirAll(dest, 0755, chown): a parent is 0755, --chmod is
     * for the directory the source becomes and its contents. */
    assert_int_equal(get(l, "x")->mode, 0755);
    assert_int_equal(get(l, "x/y")->mode, 0700);
    assert_int_equal(get(l, "x/y/a")->mode, 0700);
    assert_int_equal(get(l, "x/y/l")->mode, 0777); /* links keep theirs */
    cs_tree_free(l);
}

static void
copy_chmod_of_a_file_leaves_created_parents_0755(void **state)
{
    fx *f = *state;
    put_file(f, "a.txt", "a", 0644);
    cs_copy_opts o = opts("/newdir/f", "a.txt", NULL);
    o.chmod = true;
    o.mode = 0600;
    cs_tree *l = layer_ok(f, NULL, &o, NULL, PATHS("newdir", "newdir/f"));
    assert_int_equal(get(l, "newdir")->mode, 0755);
    assert_int_equal(get(l, "newdir")->uid, 0);
    assert_int_equal(get(l, "newdir/f")->mode, 0600);
    cs_tree_free(l);
    o = opts("/p/q/", "a.txt", NULL);
    o.chmod = true;
    o.mode = 0640;
    o.chown = true;
    o.uid = o.gid = 7;
    l = layer_ok(f, NULL, &o, NULL, PATHS("p", "p/q", "p/q/a.txt"));
    assert_int_equal(get(l, "p")->mode, 0755);
    assert_int_equal(get(l, "p/q")->mode, 0755);
    assert_int_equal(get(l, "p/q")->uid, 7);
    assert_int_equal(get(l, "p/q/a.txt")->mode, 0640);
    cs_tree_free(l);
}

static void
copy_exclude_and_dockerignore_hide_files(void **state)
{
    fx *f = *state;
    put_files(f, PATHS("src/a.c", "a", "src/a.log", "l", "src/deep/b.log", "l", "build/out", "o",
                       "build/keep", "k", "Dockerfile", "FROM scratch"));
    cs_ignore *ig = NULL;
    const char *text = "build\n!build/keep\nDockerfile\n";
    assert_int_equal(cs_ignore_parse(text, strlen(text), &ig, &f->err), 0);
    /* Patterns are relative to the copied directory; '*' stays in one
     * component: a single star would miss src/deep/b.log. */
    char *ex[] = { "**/*.log" };
    cs_copy_opts o = opts("/o/", ".", NULL);
    o.excludes = ex;
    o.nexcludes = 1;
    cs_tree_free(
        layer_ok(f, ig, &o, NULL,
                 PATHS("o", "o/src", "o/src/a.c", "o/src/deep", "o/build", "o/build/keep")));
    /* An ignored source is missing. */
    o = opts("/o", "Dockerfile", NULL);
    run_fails(f, ig, &o, -CS_ENOTFOUND, "Dockerfile");
    cs_ignore_free(ig);
}

static void
copy_parents_keeps_source_directories(void **state)
{
    fx *f = *state;
    put_files(f, PATHS("x/a.txt", "1", "y/a.txt", "2", "y/b.txt", "3", "s/t/u/c.txt", "4"));
    cs_copy_opts o = opts("/p/", "./x/a.txt", "y/a.txt", "s/./t/**/*.txt", NULL);
    o.parents = true;
    cs_tree_free(layer_ok(
        f, NULL, &o, NULL,
        PATHS("p", "p/x", "p/x/a.txt", "p/y", "p/y/a.txt", "p/t", "p/t/u", "p/t/u/c.txt")));
}

static void
copy_sources_cannot_leave_the_context(void **state)
{
    fx *f = *state;
    put_file(f, "a.txt", "a", 0644);
    put_link(f, "etc-link", "/etc");
    put_link(f, "up", "../../../../../../etc");
    /* "../" is dropped (BuildKit): the path is looked up in the context. */
    cs_copy_opts o = opts("/x", "../../etc/passwd", NULL);
    run_fails(f, NULL, &o, -CS_ENOTFOUND, NULL);
    o = opts("/x", "../a.txt", NULL);
    cs_tree_free(layer_ok(f, NULL, &o, NULL, PATHS("x")));
    /* Symlinks resolve with the context as their root. */
    o = opts("/x", "etc-link/passwd", NULL);
    run_fails(f, NULL, &o, -CS_ENOTFOUND, NULL);
    o = opts("/x", "up/passwd", NULL);
    run_fails(f, NULL, &o, -CS_ENOTFOUND, NULL);
    put_file(f, "etc/passwd", "ctx", 0644);
    o = opts("/x", "up/passwd", NULL);
    cs_tree *l = layer_ok(f, NULL, &o, NULL, PATHS("x"));
    expect_content(get(l, "x"), "ctx");
    cs_tree_free(l);
}

static void
copy_reports_empty_globs_and_missing_sources(void **state)
{
    fx *f = *state;
    put_file(f, "a.txt", "a", 0644);
    cs_copy_opts o = opts("/x/", "*.nope", NULL);
    assert_int_equal(run(f, NULL, &o, NULL, NULL, NULL), -CS_ENOTFOUND);
    test_assert_msg(f->err, "no source files were specified");
    /* An empty glob next to a match is fine. */
    o = opts("/x/", "*.nope", "a.txt", NULL);
    assert_int_equal(run(f, NULL, &o, NULL, NULL, NULL), 0);
    o = opts("/x/", "missing.txt", NULL);
    assert_int_equal(run(f, NULL, &o, NULL, NULL, NULL), -CS_ENOTFOUND);
    test_assert_msg(f->err, "lstat missing.txt: no such file or directory");
}

static void
statcache_skips_unchanged_files_and_reads_touched_ones_again(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 50; i++) {
        char name[32], data[64];
        snprintf(name, sizeof(name), "d%d/f%d", i % 5, i);
        snprintf(data, sizeof(data), "file %d %u", i, (unsigned) rand());
        put_file(f, name, data, 0644);
    }
    settle(f);
    cs_copy_opts o = opts("/app/", ".", NULL);
    cs_digest k1, k2, k3;
    assert_int_equal(run(f, NULL, &o, NULL, NULL, &k1), 0);
    assert_int_equal(f->files, 50);
    assert_int_equal(run(f, NULL, &o, NULL, NULL, &k2), 0);
    assert_int_equal(f->files, 0);
    assert_true(cs_digest_eq(&k1, &k2));
    char *p = cs_path_join(f->sb.work, "d3/f13");
    set_old(p, OLD + 10);
    assert_int_equal(run(f, NULL, &o, NULL, NULL, &k3), 0);
    assert_int_equal(f->files, 1);       /* read again */
    assert_true(cs_digest_eq(&k1, &k3)); /* a touch is not a change (BuildKit) */
    put_file(f, "d3/f13", "other bytes", 0644);
    set_old(p, OLD + 20);
    free(p);
    assert_int_equal(run(f, NULL, &o, NULL, NULL, &k3), 0);
    assert_int_equal(f->files, 1);
    assert_false(cs_digest_eq(&k1, &k3));
}

/* ---- the summary record ---- */

/* Prepares o from the context with the summary (no ingest given: prepare
 * commits its own, as a build does). Returns 1 when the summary answered,
 * 0 when the sources were walked; either way *key must be what a prepare
 * without the summary computes. */
static int
prepare_summary(fx *f, const cs_ignore *ig, const cs_digest *ig_id, const cs_copy_opts *o,
                cs_digest *key)
{
    cs_copy_from from = { .context_dir = f->sb.work, .ignore = ig, .summary = true };
    from.ignore_id = ig_id;
    cs_copy *c = NULL;
    cs_error_clear(&f->err);
    assert_int_equal(cs_copy_prepare(f->sb.s, NULL, &from, o, NULL, &c, key, &f->err), 0);
    int hit = c == NULL;
    cs_copy_free(c);
    c = NULL;
    cs_digest truth;
    from.summary = false;
    assert_int_equal(cs_copy_prepare(f->sb.s, NULL, &from, o, NULL, &c, &truth, &f->err), 0);
    assert_non_null(c);
    cs_copy_free(c);
    assert_true(cs_digest_eq(key, &truth));
    return hit;
}

/* After a change: the next prepare walks and sees it (a new key), the one
 * after is answered by the summary with that key. */
static void
expect_seen(fx *f, const cs_ignore *ig, const cs_digest *ig_id, const cs_copy_opts *o,
            cs_digest *key, const char *what)
{
    cs_digest k1, k2;
    usleep(150 * 1000); /* out of the stat cache's "too recent" window */
    if (prepare_summary(f, ig, ig_id, o, &k1) != 0)
        fail_msg("%s: answered by the summary", what);
    if (cs_digest_eq(&k1, key))
        fail_msg("%s: the same key", what);
    if (prepare_summary(f, ig, ig_id, o, &k2) != 1)
        fail_msg("%s: the summary did not answer the next prepare", what);
    assert_true(cs_digest_eq(&k1, &k2));
    *key = k1;
}

static char *
ctx_path(fx *f, const char *rel)
{
    return cs_path_join(f->sb.work, rel);
}

static void
summary_answers_an_unchanged_context_and_never_a_changed_one(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 40; i++) {
        char name[32], data[64];
        snprintf(name, sizeof(name), "d%d/f%02d", i % 4, i);
        snprintf(data, sizeof(data), "file %02d %08x", i, (unsigned) rand());
        put_file(f, name, data, 0644);
    }
    put_link(f, "d0/link", "f00");
    settle(f);
    cs_copy_opts o = opts("/app/", ".", NULL);
    cs_digest key, k;
    assert_int_equal(prepare_summary(f, NULL, NULL, &o, &key), 0);
    assert_int_equal(prepare_summary(f, NULL, NULL, &o, &k), 1);
    assert_true(cs_digest_eq(&key, &k));

    cs_autofree char *p = ctx_path(f, "d1/f05");
    set_old(p, OLD + 10); /* touch: walked again, the same key (no mtime in it) */
    cs_digest k1;
    usleep(150 * 1000);
    assert_int_equal(prepare_summary(f, NULL, NULL, &o, &k1), 0);
    assert_true(cs_digest_eq(&k1, &key));
    assert_int_equal(prepare_summary(f, NULL, NULL, &o, &k1), 1);
    test_write_file(p, "FILE 05 XXXXXXXX", 16, 0644); /* same size, mtime put back */
    set_old(p, OLD + 10);
    expect_seen(f, NULL, NULL, &o, &key, "same-size rewrite with the mtime reset");
    assert_int_equal(chmod(p, 0600), 0);
    expect_seen(f, NULL, NULL, &o, &key, "chmod");
    cs_autofree char *q = ctx_path(f, "d1/renamed");
    assert_int_equal(rename(p, q), 0);
    expect_seen(f, NULL, NULL, &o, &key, "rename");
    put_file(f, "d2/new", "a new file", 0644);
    expect_seen(f, NULL, NULL, &o, &key, "a file added");
    cs_autofree char *r = ctx_path(f, "d3/f03");
    assert_int_equal(unlink(r), 0);
    expect_seen(f, NULL, NULL, &o, &key, "a file removed");
    cs_autofree char *l = ctx_path(f, "d0/link");
    assert_int_equal(unlink(l), 0);
    put_link(f, "d0/link", "f04");
    expect_seen(f, NULL, NULL, &o, &key, "a symlink retargeted");

    char *pat[] = { "d2" };
    cs_ignore *ig = NULL;
    assert_int_equal(cs_ignore_new(pat, 1, &ig, &f->err), 0);
    cs_digest ig_id;
    cs_sha256("d2", 2, &ig_id);
    expect_seen(f, ig, &ig_id, &o, &key, ".dockerignore changed");
    cs_ignore_free(ig);
}

static void
summary_is_not_written_while_an_entry_is_too_recent(void **state)
{
    fx *f = *state;
    put_file(f, "a", "aaa", 0644);
    put_file(f, "b", "bbb", 0644);
    settle(f);
    cs_copy_opts o = opts("/app/", ".", NULL);
    cs_digest key, k;
    assert_int_equal(prepare_summary(f, NULL, NULL, &o, &key), 0);
    assert_int_equal(prepare_summary(f, NULL, NULL, &o, &k), 1);
    cs_autofree char *p = ctx_path(f, "b");
    test_write_file(p, "BBB", 3, 0644); /* now: the stat cache does not trust it */
    assert_int_equal(prepare_summary(f, NULL, NULL, &o, &k), 0);
    assert_false(cs_digest_eq(&key, &k));
    assert_int_equal(prepare_summary(f, NULL, NULL, &o, &k), 0);
    expect_seen(f, NULL, NULL, &o, &key, "rewritten");
    /* A symlink has no stat cache record: its own times decide. */
    put_link(f, "l", "a");
    assert_int_equal(prepare_summary(f, NULL, NULL, &o, &k), 0);
    assert_int_equal(prepare_summary(f, NULL, NULL, &o, &k), 0);
    expect_seen(f, NULL, NULL, &o, &key, "a symlink added");
}

/* ---- ADD ---- */

/* A tar entry with mtime 1234. */
static void
tar_add_1234(test_tar *t, const char *path, mode_t type, mode_t perm, const char *data)
{
    struct archive_entry *ae = test_tar_entry(path, type, perm);
    archive_entry_set_mtime(ae, 1234, 0);
    test_tar_add(t, ae, data, data ? strlen(data) : 0);
}

static void
add_local_tar_gz_is_extracted(void **state)
{
    fx *f = *state;
    test_tar t;
    test_tar_begin(&t);
    tar_add_1234(&t, "top/", AE_IFDIR, 0755, NULL);
    tar_add_1234(&t, "top/f.txt", AE_IFREG, 0600, "data");
    test_tar_end(&t);
    cs_buf gz;
    cs_buf_init(&gz);
    test_gzip_append(&gz, t.out.data, t.out.len);
    char *path = cs_path_join(f->sb.work, "a.tar.gz");
    test_write_file(path, gz.data, gz.len, 0644);
    set_old(path, OLD);
    free(path);
    cs_buf_release(&gz);
    cs_buf_release(&t.out);
    cs_copy_opts o = opts("/x", "a.tar.gz", NULL);
    o.is_add = true;
    cs_tree *l = layer_ok(f, NULL, &o, NULL, PATHS("x", "x/top", "x/top/f.txt"));
    expect_content(get(l, "x/top/f.txt"), "data");
    assert_int_equal(get(l, "x/top/f.txt")->mtime_sec, 1234);
    cs_tree_free(l);
    /* COPY does not extract. */
    o.is_add = false;
    cs_tree_free(layer_ok(f, NULL, &o, NULL, PATHS("x")));
}

typedef struct server {
    int fd;
    int port;
    const char *body;
    int requests;
} server;

static void *
serve(void *arg)
{
    server *sv = arg;
    for (int i = 0; i < sv->requests; i++) {
        int c = accept(sv->fd, NULL, NULL);
        if (c < 0)
            break;
        char req[4096];
        ssize_t n = read(c, req, sizeof(req));
        (void) n;
        char hdr[256];
        int hl = snprintf(hdr, sizeof(hdr),
                          "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
                          "Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
                          "Connection: close\r\n\r\n",
                          strlen(sv->body));
        cs_write_all(c, hdr, (size_t) hl);
        cs_write_all(c, sv->body, strlen(sv->body));
        close(c);
    }
    return NULL;
}

static void
add_url_is_fetched_and_its_checksum_verified(void **state)
{
    fx *f = *state;
    server sv = { .body = "downloaded bytes\n", .requests = 2 };
    sv.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(sv.fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(sv.fd, (struct sockaddr *) &sa, &sl);
    listen(sv.fd, 4);
    pthread_t th;
    pthread_create(&th, NULL, serve, &sv);
    char url[128], sum[CS_DIGEST_STR];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/files/tool.bin?x=1", ntohs(sa.sin_port));
    cs_digest d;
    cs_sha256(sv.body, strlen(sv.body), &d);
    cs_digest_str(&d, sum);
    cs_copy_opts o = opts("/opt/", url, NULL);
    o.is_add = true;
    o.checksum = sum;
    cs_tree *l = layer_ok(f, NULL, &o, NULL, PATHS("opt", "opt/tool.bin"));
    const cs_entry *e = get(l, "opt/tool.bin");
    expect_content(e, sv.body);
    assert_int_equal(e->mode, 0600);
    assert_int_equal(e->mtime_sec, 1445412480);
    cs_tree_free(l);
    o.checksum = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    run_fails(f, NULL, &o, -CS_ECORRUPT, "digest mismatch");
    pthread_join(th, NULL);
    close(sv.fd);
    /* COPY refuses URLs. */
    o.is_add = false;
    o.checksum = NULL;
    run_fails(f, NULL, &o, -CS_EINVAL, NULL);
}

static void
add_heredoc_makes_a_file(void **state)
{
    fx *f = *state;
    cs_copy_inline in = { "run.sh", "echo hi\n", 8 };
    cs_copy_opts o = opts("/bin/", NULL);
    o.inl = &in;
    o.ninl = 1;
    cs_tree *l = layer_ok(f, NULL, &o, NULL, PATHS("bin", "bin/run.sh"));
    assert_int_equal(get(l, "bin/run.sh")->mode, 0644);
    expect_content(get(l, "bin/run.sh"), "echo hi\n");
    cs_tree_free(l);
}

/* ---- --from and --chown ---- */

static cs_entry *
tree_file(fx *f, cs_ingest *ing, cs_tree *t, const char *path, const char *data)
{
    int fd = memfd_create("t", 0);
    cs_write_all(fd, data, strlen(data));
    lseek(fd, 0, SEEK_SET);
    cs_digest d;
    uint64_t size;
    assert_int_equal(cs_ingest_fd(ing, fd, &d, &size, &f->err), 0);
    close(fd);
    cs_entry *e = test_tree_add_file(t, path, &d, size);
    e->uid = 7;
    e->mtime_sec = 99;
    return e;
}

static cs_tree *
source_tree(fx *f)
{
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(f->sb.s, &ing, &f->err), 0);
    cs_tree *t = cs_tree_new();
    test_tree_add(t, "etc", CS_E_DIR);
    tree_file(f, ing, t, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1500::/:\n");
    tree_file(f, ing, t, "etc/group", "root:x:0:\nstaff:x:50:app\n");
    test_tree_add(t, "usr", CS_E_DIR);
    test_tree_add(t, "usr/bin", CS_E_DIR);
    tree_file(f, ing, t, "usr/bin/tool", "binary");
    tree_file(f, ing, t, "usr/bin/tool.conf", "conf");
    tree_link(t, "bin", "usr/bin");
    cs_tree_sort(t);
    assert_int_equal(cs_ingest_commit(ing, &f->err), 0);
    cs_ingest_free(ing);
    return t;
}

static void
copy_from_tree_reuses_content_digests(void **state)
{
    fx *f = *state;
    cs_tree *src = source_tree(f);
    cs_copy_from from = { .tree = src };
    cs_copy_opts o = opts("/app/", "/bin/tool", NULL);
    cs_tree *l = NULL;
    cs_digest k1, k2;
    assert_int_equal(run_from(f, &from, &o, NULL, &l, &k1), 0);
    assert_int_equal(f->files, 0);
    expect_paths(l, PATHS("app", "app/tool"));
    const cs_entry *e = get(l, "app/tool");
    assert_true(cs_digest_eq(&e->content, &cs_tree_find(src, "usr/bin/tool")->content));
    assert_int_equal(e->uid, 7); /* --from keeps owners */
    assert_int_equal(e->mtime_sec, 99);
    cs_tree_free(l);
    /* A directory through the symlink, with a glob and --exclude. */
    char *ex[] = { "*.conf" };
    o = opts("/o", "/bi*", NULL);
    o.excludes = ex;
    o.nexcludes = 1;
    assert_int_equal(run_from(f, &from, &o, NULL, &l, &k2), 0);
    expect_paths(l, PATHS("o", "o/tool"));
    assert_false(cs_digest_eq(&k1, &k2));
    cs_tree_free(l);
    o = opts("/o", "/nothere", NULL);
    assert_int_equal(run_from(f, &from, &o, NULL, &l, NULL), -CS_ENOTFOUND);
    cs_tree_free(src);
}

static void
copy_keeps_hardlinks_of_the_context_within_one_copy(void **state)
{
    fx *f = *state;
    put_file(f, "d/a", "same", 0644);
    char *a = cs_path_join(f->sb.work, "d/a"), *b = cs_path_join(f->sb.work, "d/b");
    assert_int_equal(link(a, b), 0);
    settle(f);
    cs_copy_opts o = opts("/dst/", "d", NULL);
    cs_digest k1, k2;
    cs_tree *l = NULL;
    assert_int_equal(run(f, NULL, &o, NULL, &l, &k1), 0);
    expect_paths(l, PATHS("dst", "dst/a", "dst/b"));
    assert_int_equal(get(l, "dst/a")->type, CS_E_FILE);
    assert_int_equal(get(l, "dst/b")->type, CS_E_HARDLINK);
    assert_string_equal(get(l, "dst/b")->link, "dst/a");
    assert_true(cs_digest_eq(&get(l, "dst/b")->content, &get(l, "dst/a")->content));
    cs_tree_free(l);
    /* The same files, no longer one inode: another key, two files. */
    assert_int_equal(unlink(b), 0);
    put_file(f, "d/b", "same", 0644);
    settle(f);
    assert_int_equal(run(f, NULL, &o, NULL, &l, &k2), 0);
    assert_int_equal(get(l, "dst/b")->type, CS_E_FILE);
    assert_false(cs_digest_eq(&k1, &k2));
    cs_tree_free(l);
    cs_free_all(a, b);
}

static void
copy_from_tree_keeps_hardlinks_whose_file_is_copied(void **state)
{
    fx *f = *state;
    cs_tree *src = cs_tree_new();
    test_tree_add(src, "dir", CS_E_DIR);
    cs_entry *e = test_tree_add(src, "dir/a", CS_E_FILE);
    e->size = 4;
    e->has_content = true;
    cs_sha256("same", 4, &e->content);
    e = test_tree_add(src, "dir/sub", CS_E_DIR);
    e = test_tree_add(src, "dir/sub/b", CS_E_HARDLINK);
    e->link = cs_xstrdup("dir/a");
    e->size = 4;
    e->has_content = true;
    cs_sha256("same", 4, &e->content);
    cs_tree_sort(src);
    cs_copy_from from = { .tree = src };
    cs_copy_opts o = opts("/x", "/dir", NULL);
    cs_tree *l = NULL;
    assert_int_equal(run_from(f, &from, &o, NULL, &l, NULL), 0);
    assert_int_equal(get(l, "x/a")->type, CS_E_FILE);
    assert_int_equal(get(l, "x/sub/b")->type, CS_E_HARDLINK);
    assert_string_equal(get(l, "x/sub/b")->link, "x/a");
    cs_tree_free(l);
    /* Only the link is copied: it becomes a file. */
    o = opts("/y", "/dir/sub", NULL);
    assert_int_equal(run_from(f, &from, &o, NULL, &l, NULL), 0);
    assert_int_equal(get(l, "y/b")->type, CS_E_FILE);
    assert_null(get(l, "y/b")->link);
    cs_tree_free(l);
    cs_tree_free(src);
}

static void
lookup_user_by_name_and_number(void **state)
{
    fx *f = *state;
    cs_tree *t = source_tree(f);
    uint32_t u, g;
    assert_int_equal(cs_copy_lookup_owner(f->sb.s, t, "app", &u, &g, &f->err), 0);
    assert_int_equal(u, 1000);
    assert_int_equal(g, 1500);
    assert_int_equal(cs_copy_lookup_owner(f->sb.s, t, "app:staff", &u, &g, &f->err), 0);
    assert_int_equal(g, 50);
    assert_int_equal(cs_copy_lookup_owner(f->sb.s, t, "42", &u, &g, &f->err), 0);
    assert_int_equal(u, 42);
    assert_int_equal(g, 42);
    assert_int_equal(cs_copy_lookup_owner(f->sb.s, t, "42:7", &u, &g, &f->err), 0);
    assert_int_equal(g, 7);
    assert_int_equal(cs_copy_lookup_owner(f->sb.s, t, "nobody", &u, &g, &f->err), -CS_ENOTFOUND);
    test_assert_msg(f->err, "unable to find user nobody");
    cs_error_clear(&f->err);
    assert_int_equal(cs_copy_lookup_owner(f->sb.s, t, "0:wheel", &u, &g, &f->err), -CS_ENOTFOUND);
    test_assert_msg(f->err, "unable to find group wheel");
    cs_error_clear(&f->err);
    cs_tree_free(t);
}

int
main(void)
{
    srand(42);
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(copy_single_file_to_a_file),
        T(copy_file_into_directory_creates_missing_parents),
        T(copy_directory_copies_its_contents_and_keeps_symlinks),
        T(copy_glob_and_several_sources_into_a_directory),
        T(copy_into_existing_directory_of_the_stage),
        T(copy_chown_applies_to_created_parents_and_chmod_only_to_what_is_copied),
        T(copy_chmod_of_a_file_leaves_created_parents_0755),
        T(copy_exclude_and_dockerignore_hide_files),
        T(copy_parents_keeps_source_directories),
        T(copy_sources_cannot_leave_the_context),
        T(copy_reports_empty_globs_and_missing_sources),
        T(statcache_skips_unchanged_files_and_reads_touched_ones_again),
        T(summary_answers_an_unchanged_context_and_never_a_changed_one),
        T(summary_is_not_written_while_an_entry_is_too_recent),
        T(add_local_tar_gz_is_extracted),
        T(add_url_is_fetched_and_its_checksum_verified),
        T(add_heredoc_makes_a_file),
        T(copy_from_tree_reuses_content_digests),
        T(copy_keeps_hardlinks_of_the_context_within_one_copy),
        T(copy_from_tree_keeps_hardlinks_whose_file_is_copied),
        T(lookup_user_by_name_and_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
