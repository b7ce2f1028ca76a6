/* test_merged.c - layer merging (whiteouts, opaque dirs, replacement) and
 * chroot-like path resolution in a merged tree. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cstore/merged.h"
#include "cstore/store.h"
#include "cstore/tree.h"

/* ---- tree helpers ---- */

static cs_entry *
add_dir(cs_tree *t, const char *path)
{
    return test_tree_add(t, path, CS_E_DIR);
}

/* A file whose content digest is sha256(tag), size strlen(tag). */
static cs_entry *
add_file(cs_tree *t, const char *path, const char *tag)
{
    cs_entry *e = test_tree_add(t, path, CS_E_FILE);
    e->size = strlen(tag);
    e->has_content = e->size > 0;
    cs_sha256(tag, strlen(tag), &e->content);
    return e;
}

static cs_entry *
add_symlink(cs_tree *t, const char *path, const char *target)
{
    cs_entry *e = test_tree_add(t, path, CS_E_SYMLINK);
    e->link = strdup(target);
    return e;
}

static cs_entry *
add_hardlink(cs_tree *t, const char *path, const char *target)
{
    cs_entry *e = test_tree_add(t, path, CS_E_HARDLINK);
    e->link = strdup(target);
    return e;
}

/* The tree's paths, in order, are exactly the NULL-terminated list. */
static void
assert_paths(const cs_tree *t, ...)
{
    va_list ap;
    va_start(ap, t);
    size_t i = 0;
    const char *p;
    while ((p = va_arg(ap, const char *))) {
        if (i >= t->n)
            fail_msg("tree ends before '%s' (%zu entries)", p, t->n);
        assert_string_equal(t->e[i].path, p);
        i++;
    }
    va_end(ap);
    if (i != t->n)
        fail_msg("unexpected entry '%s' at %zu", t->e[i].path, i);
}

static bool
has_tag(const cs_entry *e, const char *tag)
{
    cs_digest d;
    cs_sha256(tag, strlen(tag), &d);
    return e->type == CS_E_FILE && e->size == strlen(tag) && cs_digest_eq(&e->content, &d);
}

/* Applies the layers (bottom first) to an empty tree. */
static cs_tree *
merge(cs_tree **layers, size_t n)
{
    cs_tree *m = cs_tree_new();
    cs_error *err = NULL;
    for (size_t i = 0; i < n; i++) {
        cs_tree_sort(layers[i]);
        assert_int_equal(cs_merged_apply(m, layers[i], &err), 0);
    }
    return m;
}

static cs_tree *
merge2(cs_tree *lower, cs_tree *upper)
{
    cs_tree *l[] = { lower, upper };
    cs_tree *m = merge(l, 2);
    cs_tree_free(lower);
    cs_tree_free(upper);
    return m;
}

/* ---- store fixture (for cs_merged_build) ---- */

typedef test_sandbox fx;

/* Sorts and stores each tree (freeing it) in one write txn. */
static void
put_trees(fx *f, cs_tree **trees, size_t n, cs_digest *out)
{
    cs_db *db = cs_store_db(f->s);
    cs_error *err = NULL;
    MDB_txn *txn;
    assert_int_equal(cs_db_begin(db, 0, &txn, &err), 0);
    for (size_t i = 0; i < n; i++) {
        cs_tree_sort(trees[i]);
        assert_int_equal(cs_tree_put(db, txn, trees[i], &out[i], &err), 0);
        cs_tree_free(trees[i]);
    }
    assert_int_equal(cs_db_commit(txn, &err), 0);
}

static int
build(fx *f, const cs_digest *layers, size_t n, cs_tree **out, cs_error **err)
{
    cs_db *db = cs_store_db(f->s);
    MDB_txn *txn;
    assert_int_equal(cs_db_begin(db, MDB_RDONLY, &txn, err), 0);
    int r = cs_merged_build(db, txn, layers, n, out, err);
    mdb_txn_abort(txn);
    return r;
}

/* ---- merging ---- */

/* An entry of a layer, or of the merged tree wanted, as text: "dir/", "/"
 * (the root), "file=tag" (tag may be empty: a whiteout), "link->target", a
 * bare path (wanted only: any type), each optionally followed by " 0mode". */
typedef struct spec {
    char path[160], arg[160];
    int type; /* cs_etype, or -1: any */
    unsigned mode;
} spec;

static spec
parse_spec(const char *text)
{
    spec p = { .type = -1 };
    char buf[160], *x;
    snprintf(buf, sizeof(buf), "%s", text);
    if ((x = strrchr(buf, ' ')) && x[1] == '0') {
        p.mode = (unsigned) strtoul(x + 1, NULL, 8);
        *x = '\0';
    }
    size_t n = strlen(buf);
    if ((x = strstr(buf, "->"))) {
        p.type = CS_E_SYMLINK;
        snprintf(p.arg, sizeof(p.arg), "%s", x + 2);
        *x = '\0';
    } else if ((x = strchr(buf, '='))) {
        p.type = CS_E_FILE;
        snprintf(p.arg, sizeof(p.arg), "%s", x + 1);
        *x = '\0';
    } else if (n > 0 && buf[n - 1] == '/') {
        p.type = CS_E_DIR;
        buf[n - 1] = '\0';
    }
    snprintf(p.path, sizeof(p.path), "%s", buf);
    return p;
}

static cs_tree *
layer_of(const char *const *specs)
{
    cs_tree *t = cs_tree_new();
    for (; *specs; specs++) {
        spec p = parse_spec(*specs);
        assert_int_not_equal(p.type, -1);
        cs_entry *e = p.type == CS_E_DIR    ? add_dir(t, p.path)
                      : p.type == CS_E_FILE ? add_file(t, p.path, p.arg)
                                            : add_symlink(t, p.path, p.arg);
        if (p.mode)
            e->mode = p.mode;
    }
    return t;
}

/* The merged tree is exactly the wanted entries, in order. */
static void
assert_entries(const char *name, const cs_tree *m, const char *const *want)
{
    size_t i = 0;
    for (; want[i]; i++) {
        spec p = parse_spec(want[i]);
        if (i >= m->n)
            fail_msg("%s: tree ends before '%s' (%zu entries)", name, p.path, m->n);
        const cs_entry *e = &m->e[i];
        if (strcmp(e->path, p.path) != 0)
            fail_msg("%s: entry %zu is '%s', not '%s'", name, i, e->path, p.path);
        if ((p.type >= 0 && (int) e->type != p.type) || (p.mode && e->mode != p.mode)
            || (p.type == CS_E_FILE && !has_tag(e, p.arg))
            || (p.type == CS_E_SYMLINK && strcmp(e->link, p.arg) != 0))
            fail_msg("%s: '%s' is not as wanted: '%s'", name, e->path, want[i]);
    }
    if (i != m->n)
        fail_msg("%s: unexpected entry '%s' at %zu", name, m->e[i].path, i);
}

static const struct {
    const char *name;
    const char *layers[3][9]; /* bottom first */
    const char *want[8];
} merge_cases[] = {
    { "a file replaces the same file below",
      { { "etc/", "etc/hosts=old", "etc/passwd=root" }, { "etc/", "etc/hosts=new 0600" } },
      { "etc", "etc/hosts=new 0600", "etc/passwd=root" } },
    { "a file replacing a directory removes its children",
      { { "opt/", "opt/sub/", "opt/sub/x=x", "opt/y=y", "optz=z" }, { "opt=now a file" } },
      { "opt=now a file", "optz" } },
    { "a symlink replacing a directory removes its children",
      { { "lib/", "lib/libc.so=c", "usr/" }, { "lib->usr/lib" } },
      { "lib->usr/lib", "usr" } },
    /* A file with children cannot come from one tar, but parents are not
     * invented, so a later layer can put "f/x" under a file. */
    { "a directory replacing a file removes what was under the file",
      { { "f=file" }, { "f/x=orphan" }, { "f/" } },
      { "f/" } },
    { "a whiteout removes a file",
      { { "etc/", "etc/motd=hi", "etc/motd.d=keep" }, { "etc/.wh.motd=" } },
      { "etc", "etc/motd.d" } },
    { "a whiteout removes a directory and everything under it",
      { { "usr/", "usr/share/", "usr/share/doc/", "usr/share/doc/README=r", "usr/share/man=m",
          "usr/share2=s" },
        { "usr/.wh.share=" } },
      { "usr", "usr/share2" } },
    /* ".a" and "-x" sort before ".wh..wh..opq": they must survive it. */
    { "an opaque directory hides lower children but keeps its own",
      { { "app/", "app/.a=lower dot", "app/old=old", "app/sub/", "app/sub/deep=deep",
          "app.txt=sibling" },
        { "app/ 0700", "app/.a=upper dot", "app/-x=dash", "app/.wh..wh..opq=", "app/z=z" } },
      { "app/ 0700", "app.txt", "app/-x", "app/.a=upper dot", "app/z" } },
    { "an opaque marker at the root hides every lower entry",
      { { "/", "bin/", "bin/sh=sh" }, { ".wh..wh..opq=", "hello=hi" } },
      { "", "hello" } },
    { "a whiteout of something absent changes nothing",
      { { "a/", "a/b=b" },
        { "a/.wh.nothing=", ".wh.nowhere=", "missing/.wh.x=", "missing/.wh..wh..opq=" } },
      { "a", "a/b=b" } },
    /* The aufs hardlink dir's children are not whiteouts: only names with
     * ".wh." are. */
    { "whiteouts and aufs metadata never appear in the result",
      { { ".wh.x=", ".wh..wh.plnk/", ".wh..wh.plnk/123.4=", "d/",
          "d/.wh..wh..opq=", "d/.wh.=", "d/f=f" } },
      { ".wh..wh.plnk/123.4", "d", "d/f" } },
    /* Bytewise order puts "a-b" and "a.txt" between "a" and "a/b". */
    { "a whiteout of a directory keeps the siblings sorting between it and its children",
      { { "a/", "a-b=dash", "a.txt=dot", "a/b=child", "a/c/", "a/c/d=grandchild", "a0=zero",
          "ab=ab" },
        { ".wh.a=" } },
      { "a-b", "a.txt", "a0", "ab" } },
    { "a file replacing a directory keeps the siblings sorting between it and its children",
      { { "a/", "a-b=dash", "a.txt=dot", "a/b=child" }, { "a=file now" } },
      { "a", "a-b", "a.txt" } },
};

static void
layers_merge_with_replacements_whiteouts_and_opaque_directories(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(merge_cases) / sizeof(merge_cases[0]); i++) {
        test_case("%s", merge_cases[i].name);
        cs_tree *l[3];
        size_t n = 0;
        while (n < 3 && merge_cases[i].layers[n][0])
            n++;
        for (size_t k = 0; k < n; k++)
            l[k] = layer_of(merge_cases[i].layers[k]);
        cs_tree *m = merge(l, n);
        assert_entries(merge_cases[i].name, m, merge_cases[i].want);
        for (size_t k = 0; k < n; k++)
            cs_tree_free(l[k]);
        cs_tree_free(m);
    }
}

static void
a_directory_over_a_directory_keeps_the_children_and_takes_the_new_metadata(void **state)
{
    (void) state;
    static const char *const lower[] = { "var/", "var/log=log", NULL };
    cs_tree *lo = layer_of(lower), *up = cs_tree_new();
    cs_entry *e = add_dir(up, "var");
    e->mode = 01777;
    e->uid = 42;
    cs_entry_add_xattr(e, "user.x", "1", 1);
    add_file(up, "var/new", "new");
    cs_tree *m = merge2(lo, up);
    assert_paths(m, "var", "var/log", "var/new", NULL);
    const cs_entry *v = cs_tree_find(m, "var");
    assert_int_equal(v->mode, 01777);
    assert_int_equal(v->uid, 42);
    assert_int_equal(v->nxattrs, 1);
    cs_tree_free(m);
}

static void
sibling_names_that_sort_between_a_dir_and_its_children_survive(void **state)
{
    (void) state;
    cs_tree *lo = cs_tree_new();
    add_dir(lo, "a");
    add_file(lo, "a-b", "dash");
    add_file(lo, "a.txt", "dot");
    add_file(lo, "a/b", "child");
    add_dir(lo, "a/c");
    add_file(lo, "a/c/d", "grandchild");
    add_file(lo, "a0", "zero");
    add_file(lo, "ab", "ab");
    cs_tree_sort(lo);
    /* Bytewise order puts "a-b" and "a.txt" between "a" and "a/b". */
    assert_paths(lo, "a", "a-b", "a.txt", "a/b", "a/c", "a/c/d", "a0", "ab", NULL);
    size_t l, h;
    cs_tree_under(lo, "a", &l, &h);
    assert_int_equal(l, 3);
    assert_int_equal(h, 6);
    cs_tree_under(lo, "a/c", &l, &h);
    assert_int_equal(l, 5);
    assert_int_equal(h, 6);
    cs_tree_under(lo, "a-b", &l, &h);
    assert_int_equal(l, h);
    cs_tree_under(lo, "", &l, &h);
    assert_int_equal(l, 0);
    assert_int_equal(h, lo->n);
    cs_tree_under(lo, "zzz", &l, &h);
    assert_int_equal(l, h);
    cs_tree_free(lo);
}

static void
hardlinks_carry_their_targets_content(void **state)
{
    (void) state;
    static const char *const lower[] = { "bin/", "bin/busybox=busybox", NULL };
    cs_tree *lo = layer_of(lower), *up = cs_tree_new();
    add_hardlink(up, "bin/ls", "bin/busybox");
    add_file(up, "bin/new", "new");
    add_hardlink(up, "bin/a", "bin/new"); /* sorts before its target */
    add_hardlink(up, "bin/b", "bin/a");   /* a link to a link */
    add_hardlink(up, "bin/gone", "bin/nothing");
    cs_tree *m = merge2(lo, up);
    const cs_entry *e = cs_tree_find(m, "bin/ls");
    assert_int_equal(e->type, CS_E_HARDLINK);
    assert_string_equal(e->link, "bin/busybox");
    assert_true(e->has_content);
    assert_int_equal(e->size, 7);
    assert_true(cs_digest_eq(&e->content, &cs_tree_find(m, "bin/busybox")->content));
    e = cs_tree_find(m, "bin/a");
    assert_true(cs_digest_eq(&e->content, &cs_tree_find(m, "bin/new")->content));
    e = cs_tree_find(m, "bin/b");
    assert_int_equal(e->size, 3);
    assert_true(cs_digest_eq(&e->content, &cs_tree_find(m, "bin/new")->content));
    e = cs_tree_find(m, "bin/gone");
    assert_false(e->has_content);
    assert_int_equal(e->size, 0);
    cs_tree_free(m);
}

static void
an_unsorted_layer_applies_in_path_order_and_the_last_duplicate_wins(void **state)
{
    (void) state;
    cs_tree *m = cs_tree_new(), *l = cs_tree_new();
    cs_error *err = NULL;
    add_file(l, "b", "first");
    add_dir(l, "a");
    add_file(l, "b", "second");
    assert_int_equal(cs_merged_apply(m, l, &err), 0);
    assert_paths(m, "a", "b", NULL);
    assert_true(has_tag(cs_tree_find(m, "b"), "second"));
    /* The layer is untouched. */
    assert_int_equal(l->n, 3);
    assert_string_equal(l->e[0].path, "b");
    cs_tree_free(l);
    cs_tree_free(m);
}

static void
three_layers_stack_bottom_first(void **state)
{
    fx *f = *state;
    static const char *const layers[3][8] = {
        { "bin/", "bin/sh=sh1", "etc/", "etc/a=a1", "etc/b=b1", "tmp/", "tmp/junk=j" },
        { "bin/sh=sh2", "etc/.wh.a=", "etc/c=c2", ".wh.tmp=", "srv/", "srv/x=x2" },
        { "etc/a=a3", "srv/", "srv/.wh..wh..opq=", "srv/y=y3", "tmp=tmp is a file" },
    };
    cs_tree *t[3] = { layer_of(layers[0]), layer_of(layers[1]), layer_of(layers[2]) };
    cs_digest d[3];
    put_trees(f, t, 3, d);

    cs_tree *m = NULL;
    cs_error *err = NULL;
    assert_int_equal(build(f, d, 3, &m, &err), 0);
    static const char *const all[] = { "bin",      "bin/sh=sh2", "etc",
                                       "etc/a=a3", "etc/b=b1",   "etc/c",
                                       "srv",      "srv/y",      "tmp=tmp is a file",
                                       NULL };
    assert_entries("three layers", m, all);
    cs_tree_free(m);

    /* The first two only. */
    assert_int_equal(build(f, d, 2, &m, &err), 0);
    static const char *const two[] = { "bin",   "bin/sh", "etc",   "etc/b",
                                       "etc/c", "srv",    "srv/x", NULL };
    assert_entries("the first two layers", m, two);
    cs_tree_free(m);
}

static void
building_no_layers_gives_an_empty_tree(void **state)
{
    fx *f = *state;
    cs_tree *m = NULL;
    cs_error *err = NULL;
    assert_int_equal(build(f, NULL, 0, &m, &err), 0);
    assert_non_null(m);
    assert_int_equal(m->n, 0);
    cs_tree_free(m);
}

static void
building_with_a_missing_layer_fails_not_found(void **state)
{
    fx *f = *state;
    cs_tree *t[1] = { cs_tree_new() };
    add_file(t[0], "x", "x");
    cs_digest d[2];
    put_trees(f, t, 1, d);
    memset(&d[1], 0xab, sizeof(d[1]));
    cs_tree *m = NULL;
    cs_error *err = NULL;
    assert_int_equal(build(f, d, 2, &m, &err), -CS_ENOTFOUND);
    assert_null(m);
    assert_non_null(strstr(err->msg, "layer 2 of 2"));
    cs_error_free(err);
}

/* ---- resolution ---- */

/* /bin -> usr/bin, /usr/bin/sh, /usr/lib64 -> /lib, /lib/ld.so,
 * /etc/alt -> ../usr/bin/sh (two hops to a file), /up -> ../../../usr,
 * /loop1 <-> /loop2, /self -> self, /etc/passwd a file, /dangling -> /nope/x,
 * /abs -> /etc/alt, /dirslash -> usr/ */
static cs_tree *
resolve_tree(void)
{
    cs_tree *t = cs_tree_new();
    add_symlink(t, "bin", "usr/bin");
    add_dir(t, "usr");
    add_dir(t, "usr/bin");
    add_file(t, "usr/bin/sh", "sh");
    add_symlink(t, "usr/lib64", "/lib");
    add_dir(t, "lib");
    add_file(t, "lib/ld.so", "ld");
    add_dir(t, "etc");
    add_symlink(t, "etc/alt", "../bin/sh");
    add_file(t, "etc/passwd", "root");
    add_symlink(t, "up", "../../../usr");
    add_symlink(t, "loop1", "loop2");
    add_symlink(t, "loop2", "/loop1");
    add_symlink(t, "self", "./self");
    add_symlink(t, "dangling", "/nope/x");
    add_symlink(t, "abs", "/etc/alt");
    add_symlink(t, "dirslash", "usr/");
    add_symlink(t, "nodir", "etc");
    add_symlink(t, "dangling2", "/etc/newfile");
    cs_tree_sort(t);
    return t;
}

/* Resolves and checks the return value, *real and (when want_msg) the
 * error's message; returns *entry. */
static const cs_entry *
check_resolve(const cs_tree *t, const char *path, bool follow, int want, const char *want_real,
              const char *want_msg)
{
    char *real = NULL;
    const cs_entry *e = (const cs_entry *) 1;
    cs_error *err = NULL;
    int r = cs_tree_resolve(t, path, follow, &real, &e, &err);
    if (r != want)
        fail_msg("resolve '%s': got %d, want %d (%s)", path, r, want, err ? err->msg : "");
    if (want_real)
        assert_string_equal(real, want_real);
    if (r < 0) {
        assert_null(real);
        assert_non_null(err);
        if (want_msg && !strstr(err->msg, want_msg))
            fail_msg("resolve '%s': '%s' does not say '%s'", path, err->msg, want_msg);
        cs_error_free(err);
    } else {
        assert_null(err);
    }
    if (r != 1)
        assert_null(e);
    free(real);
    return e;
}

/* Resolving path in resolve_tree (following the last symlink when follow)
 * gives rc and real; the entry is as is says (parse_spec without a path:
 * "/" a dir, "=tag" a file, "->target" a symlink), the error says msg. */
static const struct {
    const char *path;
    bool follow;
    int rc;
    const char *real, *is, *msg;
} resolve_cases[] = {
    /* relative and absolute symlink chains */
    { "/bin/sh", false, 1, "usr/bin/sh", "=sh", NULL },
    { "etc/alt", true, 1, "usr/bin/sh", "=sh", NULL },
    { "/abs", true, 1, "usr/bin/sh", "=sh", NULL },
    { "usr/lib64/ld.so", false, 1, "lib/ld.so", "=ld", NULL },
    { "/bin/../lib64/./ld.so", false, 1, "lib/ld.so", NULL, NULL },
    { "//usr///bin/", false, 1, "usr/bin", "/", NULL },
    { "bin/new", false, 0, "usr/bin/new", NULL, NULL },
    { "/dangling", true, -CS_ENOTFOUND, NULL, NULL, NULL },
    /* ".." clamps at the root */
    { "../../../etc/passwd", false, 1, "etc/passwd", NULL, NULL },
    { "/usr/../../../../lib/ld.so", false, 1, "lib/ld.so", NULL, NULL },
    { "up/bin/sh", false, 1, "usr/bin/sh", "=sh", NULL },
    { "up", true, 1, "usr", "/", NULL },
    { "usr/bin/..", false, 1, "usr", NULL, NULL },
    { "..", false, 1, "", NULL, NULL },
    /* symlink loops fail; not following the last component does not loop */
    { "loop1", true, -CS_EINVAL, NULL, NULL, "too many levels of symbolic links" },
    { "loop1/x", false, -CS_EINVAL, NULL, NULL, NULL },
    { "self/x", false, -CS_EINVAL, NULL, NULL, NULL },
    { "loop1", false, 1, "loop1", "->loop2", NULL },
    /* a parent missing or a file fails; a missing last component is fine */
    { "nope/x", false, -CS_ENOTFOUND, NULL, NULL, NULL },
    { "usr/nope/x", true, -CS_ENOTFOUND, NULL, NULL, NULL },
    { "etc/passwd/x", false, -CS_ENOTFOUND, NULL, NULL, "not a directory" },
    { "etc/passwd/..", false, -CS_ENOTFOUND, NULL, NULL, NULL },
    { "etc/alt/x", false, -CS_ENOTFOUND, NULL, NULL, NULL },
    { "etc/new", false, 0, "etc/new", NULL, NULL },
    { "nodir/new", false, 0, "etc/new", NULL, NULL },
    /* the last symlink is followed only when asked */
    { "/bin", false, 1, "bin", "->usr/bin", NULL },
    { "/bin", true, 1, "usr/bin", "/", NULL },
    { "etc/alt", false, 1, "etc/alt", "->../bin/sh", NULL },
    /* a trailing slash follows the link like the kernel does */
    { "/bin/", false, 1, "usr/bin", "/", NULL },
    { "dirslash", true, 1, "usr", "/", NULL },
    /* a dangling link resolves to where its target would be created */
    { "dangling2", true, 0, "etc/newfile", NULL, NULL },
    { "dangling2", false, 1, "dangling2", NULL, NULL },
    { "/nodir", true, 1, "etc", NULL, NULL },
};

static void
resolve_follows_symlinks_like_the_kernel_inside_the_tree(void **state)
{
    (void) state;
    cs_tree *t = resolve_tree();
    for (size_t i = 0; i < sizeof(resolve_cases) / sizeof(resolve_cases[0]); i++) {
        test_case("resolve '%s'%s", resolve_cases[i].path,
                  resolve_cases[i].follow ? " following" : "");
        const cs_entry *e =
            check_resolve(t, resolve_cases[i].path, resolve_cases[i].follow, resolve_cases[i].rc,
                          resolve_cases[i].real, resolve_cases[i].msg);
        if (!resolve_cases[i].is)
            continue;
        spec p = parse_spec(resolve_cases[i].is);
        if ((int) e->type != p.type || (p.type == CS_E_FILE && !has_tag(e, p.arg))
            || (p.type == CS_E_SYMLINK && strcmp(e->link, p.arg) != 0))
            fail_msg("resolve '%s': the entry is not '%s'", resolve_cases[i].path,
                     resolve_cases[i].is);
    }
    cs_tree_free(t);
}

static void
resolve_allows_forty_symlinks_and_no_more(void **state)
{
    (void) state;
    cs_tree *t = cs_tree_new();
    char name[32], target[32];
    for (int i = 0; i < 41; i++) {
        snprintf(name, sizeof(name), "l%02d", i);
        snprintf(target, sizeof(target), "l%02d", i + 1);
        add_symlink(t, name, target);
    }
    add_file(t, "l41", "end");
    cs_tree_sort(t);
    check_resolve(t, "l01", true, 1, "l41", NULL); /* 40 links */
    check_resolve(t, "l00", true, -CS_EINVAL, NULL, NULL);
    cs_tree_free(t);
}

static void
resolve_gives_the_root_for_slash_empty_and_dot(void **state)
{
    (void) state;
    cs_tree *t = resolve_tree();
    const char *roots[] = { "/", "", ".", "./", "/./.", "usr/..", "/..", "bin/../.." };
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        const cs_entry *e = check_resolve(t, roots[i], true, 1, "", NULL);
        assert_null(e);
    }
    /* Also with a root entry in the tree: *entry stays NULL for the root. */
    add_dir(t, "");
    cs_tree_sort(t);
    assert_null(check_resolve(t, "/", false, 1, "", NULL));
    cs_tree *empty = cs_tree_new();
    assert_null(check_resolve(empty, "/", false, 1, "", NULL));
    check_resolve(empty, "x", false, 0, "x", NULL);
    check_resolve(empty, "x/y", false, -CS_ENOTFOUND, NULL, NULL);
    cs_tree_free(empty);
    cs_tree_free(t);
}

/* ---- timing ---- */

/* Two layers of 12k entries each (a golang-like image): the second
 * replaces half the first's files, adds new ones, and whites out a few dirs. */
static void
merging_two_layers_of_12k_entries_is_fast(void **state)
{
    fx *f = *state;
    cs_tree *t[2] = { cs_tree_new(), cs_tree_new() };
    char p[128];
    for (int l = 0; l < 2; l++) {
        for (int d = 0; d < 400; d++) {
            snprintf(p, sizeof(p), "usr/%s/pkg%03d", l ? "local/go" : "lib", d);
            if (d == 0) {
                add_dir(t[l], "usr");
                snprintf(p, sizeof(p), "usr/%s", l ? "local" : "lib");
                add_dir(t[l], p);
                if (l) {
                    add_dir(t[l], "usr/local/go");
                    add_dir(t[l], "usr/lib");
                }
                snprintf(p, sizeof(p), "usr/%s/pkg%03d", l ? "local/go" : "lib", d);
            }
            add_dir(t[l], p);
            for (int i = 0; i < 29; i++) {
                char fp[160];
                snprintf(fp, sizeof(fp), "%s/file%02d.%s", p, i, i % 3 ? "go" : "txt");
                add_file(t[l], fp, fp);
            }
            if (l && d % 50 == 0) {
                char wh[160];
                snprintf(wh, sizeof(wh), "usr/lib/.wh.pkg%03d", d);
                add_file(t[l], wh, "");
                snprintf(wh, sizeof(wh), "usr/lib/pkg%03d/file%02d.go", d + 1, 1);
                add_file(t[l], wh, "replaced");
            }
        }
    }
    cs_digest d[2];
    size_t n0 = t[0]->n, n1 = t[1]->n;
    put_trees(f, t, 2, d);

    cs_tree *m = NULL;
    cs_error *err = NULL;
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = cs_now();
        assert_int_equal(build(f, d, 2, &m, &err), 0);
        double dt = cs_now() - t0;
        best = dt < best ? dt : best;
        if (rep < 4)
            cs_tree_free(m);
    }
    assert_null(cs_tree_find(m, "usr/lib/pkg000/file00.txt"));
    assert_true(has_tag(cs_tree_find(m, "usr/lib/pkg001/file01.go"), "replaced"));
    printf("merge  %zu + %zu entries -> %zu  %.2f ms (best of 5, build incl. decode)\n", n0, n1,
           m->n, best * 1e3);

    /* In memory only: apply the same layers again to an empty tree. */
    cs_db *db = cs_store_db(f->s);
    MDB_txn *txn;
    assert_int_equal(cs_db_begin(db, MDB_RDONLY, &txn, &err), 0);
    cs_tree *l0, *l1;
    assert_int_equal(cs_tree_get(db, txn, &d[0], &l0, &err), 0);
    assert_int_equal(cs_tree_get(db, txn, &d[1], &l1, &err), 0);
    mdb_txn_abort(txn);
    cs_tree *m2 = cs_tree_new();
    double t0 = cs_now();
    assert_int_equal(cs_merged_apply(m2, l0, &err), 0);
    assert_int_equal(cs_merged_apply(m2, l1, &err), 0);
    printf("apply  %zu + %zu entries -> %zu  %.2f ms (copying)\n", n0, n1, m2->n,
           (cs_now() - t0) * 1e3);
    assert_int_equal(m2->n, m->n);
    for (size_t i = 0; i < m->n; i++)
        assert_string_equal(m->e[i].path, m2->e[i].path);
    cs_tree_free(l0);
    cs_tree_free(l1);
    cs_tree_free(m2);
    cs_tree_free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layers_merge_with_replacements_whiteouts_and_opaque_directories),
        cmocka_unit_test(
            a_directory_over_a_directory_keeps_the_children_and_takes_the_new_metadata),
        cmocka_unit_test(sibling_names_that_sort_between_a_dir_and_its_children_survive),
        cmocka_unit_test(hardlinks_carry_their_targets_content),
        cmocka_unit_test(an_unsorted_layer_applies_in_path_order_and_the_last_duplicate_wins),
        cmocka_unit_test_setup_teardown(three_layers_stack_bottom_first, test_sandbox_setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(building_no_layers_gives_an_empty_tree, test_sandbox_setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(building_with_a_missing_layer_fails_not_found,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test(resolve_follows_symlinks_like_the_kernel_inside_the_tree),
        cmocka_unit_test(resolve_allows_forty_symlinks_and_no_more),
        cmocka_unit_test(resolve_gives_the_root_for_slash_empty_and_dot),
        cmocka_unit_test_setup_teardown(merging_two_layers_of_12k_entries_is_fast,
                                        test_sandbox_setup, test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
