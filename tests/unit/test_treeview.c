/* test_treeview.c - stacks of layers served as file systems straight from
 * the store: the tree view itself (lookup, readdir, read, xattrs over a
 * merged set of layers with whiteouts, opaque dirs, hardlinks, symlinks and
 * a big chunked file), then the same through a real FUSE mount started the
 * way a build starts it (this program re-executed as the server). The mount
 * needs root and /dev/fuse: skipped without them, a failure under
 * CSTORE_CI=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cstore/fuse.h"
#include "cstore/strv.h"
#include "cstore/treeview.h"

#define BIG_SIZE (3u << 20)

static uint8_t big[BIG_SIZE]; /* compressible: random bytes with zero runs */

typedef struct fx {
    test_sandbox sb; /* first: see testutil.h */
    cs_digest layers[2];
} fx;

static void
tar_link(test_tar *t, const char *path, mode_t type, const char *target)
{
    struct archive_entry *ae = test_tar_entry(path, type, 0777);
    if (type == AE_IFLNK)
        archive_entry_set_symlink(ae, target);
    else
        archive_entry_set_hardlink(ae, target);
    test_tar_add(t, ae, NULL, 0);
}

static cs_digest
ingest_layer(cs_store *s, test_tar *t)
{
    cs_layer_info info;
    test_tar_end(t);
    test_ingest_tar(s, t->out.data, t->out.len, 0, &info, NULL);
    cs_buf_release(&t->out);
    return info.tree;
}

/* Bottom: etc/passwd, gone/a, opq/old, big and a hardlink to it, data.
 * Top: a whiteout of gone, opq made opaque with opq/new, a symlink, a file
 * with xattrs, and deep/er/file without its parent dirs. */
static void
make_layers(void *p)
{
    fx *f = p;
    test_tar t;
    test_tar_begin(&t);
    test_tar_add(&t, test_tar_entry("etc", AE_IFDIR, 0755), NULL, 0);
    test_tar_file(&t, "etc/passwd", "root:x:0:0\n", 11);
    test_tar_add(&t, test_tar_entry("gone", AE_IFDIR, 0755), NULL, 0);
    test_tar_file(&t, "gone/a", "a", 1);
    test_tar_add(&t, test_tar_entry("opq", AE_IFDIR, 0755), NULL, 0);
    test_tar_file(&t, "opq/old", "old", 3);
    test_tar_file(&t, "big", big, sizeof(big));
    tar_link(&t, "big2", AE_IFREG, "big");
    test_tar_file(&t, "data", "kept", 4);
    f->layers[0] = ingest_layer(f->sb.s, &t);

    test_tar_begin(&t);
    test_tar_file(&t, ".wh.gone", "", 0);
    test_tar_add(&t, test_tar_entry("opq", AE_IFDIR, 0750), NULL, 0);
    test_tar_file(&t, "opq/.wh..wh..opq", "", 0);
    test_tar_file(&t, "opq/new", "new", 3);
    tar_link(&t, "etc/link", AE_IFLNK, "../data");
    struct archive_entry *ae = test_tar_entry("x", AE_IFREG, 0600);
    archive_entry_xattr_add_entry(ae, "user.note", "hello", 5);
    archive_entry_xattr_add_entry(ae, "trusted.overlay.opaque", "y", 1);
    test_tar_add(&t, ae, "xx", 2);
    test_tar_file(&t, "deep/er/file", "deep", 4);
    f->layers[1] = ingest_layer(f->sb.s, &t);
}

static int
setup(void **state)
{
    return test_sandbox_init(state, sizeof(fx), 0, make_layers);
}

/* The inode of path in the view: one lookup per component. */
static int
walk(cs_treeview *tv, uint64_t root, const char *path, struct stat *st)
{
    cs_autofree char *p = cs_xstrdup(path);
    uint64_t ino = root;
    int rc = 0;
    char *save = NULL;
    for (char *c = strtok_r(p, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if ((rc = cs_treeview_lookup(tv, ino, c, st)) < 0)
            return rc;
        ino = st->st_ino;
    }
    return rc;
}

static void
assert_read(cs_treeview *tv, uint64_t ino, uint64_t off, size_t n, const void *want, size_t wantn)
{
    cs_autofree char *buf = cs_xmalloc(n + 1);
    assert_int_equal(cs_treeview_read(tv, ino, off, n, buf), (ssize_t) wantn);
    assert_memory_equal(buf, want, wantn);
}

/* Reads of every size and offset class: inside a chunk, across chunks, at
 * and past the end. */
static void
assert_big_reads(cs_treeview *tv, uint64_t ino)
{
    static const uint64_t offs[] = { 0, 1, 65535, 200000, BIG_SIZE - 10, BIG_SIZE };
    static const size_t sizes[] = { 1, 4096, 131072, 1 << 20 };
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
        for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
            size_t want = offs[i] + sizes[j] > BIG_SIZE ? BIG_SIZE - offs[i] : sizes[j];
            assert_read(tv, ino, offs[i], sizes[j], big + offs[i], want);
        }
}

static void
view_merges_layers_with_whiteouts_opaque_dirs_and_links(void **state)
{
    fx *f = *state;
    cs_treeview *tv = cs_treeview_new(f->sb.s, 4);
    char name[CS_DIGEST_HEX], name2[CS_DIGEST_HEX];
    assert_int_equal(cs_treeview_add(tv, f->layers, 2, name, &f->sb.err), 0);
    assert_int_equal(cs_treeview_add(tv, f->layers, 2, name2, &f->sb.err), 0);
    assert_string_equal(name, name2); /* once */
    struct stat root, st, st2;
    assert_int_equal(cs_treeview_lookup(tv, CS_TV_ROOT, name, &root), 0);
    assert_true(S_ISDIR(root.st_mode));
    assert_int_equal(walk(tv, root.st_ino, "gone", &st), -ENOENT);
    assert_int_equal(walk(tv, root.st_ino, "opq/old", &st), -ENOENT);
    assert_int_equal(walk(tv, root.st_ino, "opq/new", &st), 0);
    assert_int_equal(walk(tv, root.st_ino, "opq", &st), 0);
    assert_int_equal(st.st_mode, S_IFDIR | 0750);
    assert_int_equal(walk(tv, root.st_ino, "etc/passwd/x", &st), -ENOTDIR);
    assert_int_equal(walk(tv, root.st_ino, "deep/er", &st), 0); /* made up */
    assert_int_equal(st.st_mode, S_IFDIR | 0755);
    assert_int_equal(walk(tv, root.st_ino, "deep/er/file", &st), 0);
    assert_read(tv, st.st_ino, 0, 100, "deep", 4);

    const char *target;
    assert_int_equal(walk(tv, root.st_ino, "etc/link", &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(st.st_size, 7);
    assert_int_equal(cs_treeview_readlink(tv, st.st_ino, &target), 0);
    assert_string_equal(target, "../data");

    assert_int_equal(walk(tv, root.st_ino, "big", &st), 0);
    assert_int_equal(walk(tv, root.st_ino, "big2", &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    assert_int_equal(st.st_nlink, 2);
    assert_int_equal(st.st_size, BIG_SIZE);
    assert_big_reads(tv, st2.st_ino);
    cs_treeview_stats stats;
    cs_treeview_get_stats(tv, &stats);
    assert_true(stats.chunk_misses > 4 && stats.chunk_hits > 0);

    const void *v;
    size_t len;
    char names[64];
    assert_int_equal(walk(tv, root.st_ino, "x", &st), 0);
    assert_int_equal(cs_treeview_getxattr(tv, st.st_ino, "user.note", &v, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(v, "hello", 5);
    assert_int_equal(cs_treeview_getxattr(tv, st.st_ino, "trusted.overlay.opaque", &v, &len),
                     -ENODATA);
    assert_int_equal(cs_treeview_listxattr(tv, st.st_ino, NULL, 0), 10);
    assert_int_equal(cs_treeview_listxattr(tv, st.st_ino, names, 4), -ERANGE);
    assert_int_equal(cs_treeview_listxattr(tv, st.st_ino, names, sizeof(names)), 10);
    assert_string_equal(names, "user.note");
    cs_treeview_free(tv);
}

static void
view_lists_directories_in_byte_order(void **state)
{
    fx *f = *state;
    cs_treeview *tv = cs_treeview_new(f->sb.s, 0);
    char name[CS_DIGEST_HEX];
    assert_int_equal(cs_treeview_add(tv, f->layers, 2, name, &f->sb.err), 0);
    struct stat root, st;
    assert_int_equal(cs_treeview_lookup(tv, CS_TV_ROOT, name, &root), 0);
    cs_strv got = { 0 };
    const char *n;
    for (uint64_t i = 0; cs_treeview_dirent(tv, root.st_ino, i, &n, &st) == 1; i++)
        cs_strv_add(&got, n);
    const char *want[] = { ".", "..", "big", "big2", "data", "deep", "etc", "opq", "x" };
    assert_int_equal(got.n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < got.n; i++)
        assert_string_equal(got.v[i], want[i]);
    cs_strv_release(&got);
    assert_int_equal(cs_treeview_dirent(tv, root.st_ino, 1, &n, &st), 1);
    assert_int_equal(st.st_ino, CS_TV_ROOT); /* ".." of a view is the mount's root */
    assert_int_equal(cs_treeview_dirent(tv, CS_TV_ROOT, 2, &n, &st), 1);
    assert_string_equal(n, name);
    cs_treeview_free(tv);
}

static void
view_of_a_missing_layer_fails(void **state)
{
    fx *f = *state;
    cs_treeview *tv = cs_treeview_new(f->sb.s, 0);
    cs_digest bad[2] = { f->layers[0], test_sha("no such tree") };
    char name[CS_DIGEST_HEX];
    assert_true(cs_treeview_add(tv, bad, 2, name, &f->sb.err) < 0);
    test_assert_msg(f->sb.err, "missing");
    struct stat st;
    assert_int_equal(cs_treeview_lookup(tv, CS_TV_ROOT, name, &st), -ENOENT);
    cs_treeview_free(tv);
}

/* ---- through the kernel ---- */

static bool
mounted(const char *path)
{
    cs_buf b;
    test_read_file("/proc/self/mountinfo", &b);
    cs_buf_u8(&b, 0);
    cs_autofree char *pat = cs_xasprintf(" %s ", path);
    bool yes = strstr((char *) b.data, pat) != NULL;
    cs_buf_release(&b);
    return yes;
}

static void
assert_file(const char *path, const void *want, size_t n)
{
    cs_buf b;
    test_read_file(path, &b);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, want, n);
    cs_buf_release(&b);
}

static void
assert_mount_contents(const char *v)
{
    char p[512], link[64];
    struct stat st, st2;
    snprintf(p, sizeof(p), "%s/big", v);
    assert_file(p, big, sizeof(big));
    snprintf(p, sizeof(p), "%s/etc/passwd", v);
    assert_file(p, "root:x:0:0\n", 11);
    snprintf(p, sizeof(p), "%s/gone", v);
    assert_int_equal(lstat(p, &st), -1);
    assert_int_equal(errno, ENOENT);
    snprintf(p, sizeof(p), "%s/opq/old", v);
    assert_int_equal(lstat(p, &st), -1);
    snprintf(p, sizeof(p), "%s/etc/link", v);
    assert_int_equal(readlink(p, link, sizeof(link)), 7);
    assert_memory_equal(link, "../data", 7);
    assert_file(p, "kept", 4); /* followed */
    snprintf(p, sizeof(p), "%s/big", v);
    assert_int_equal(lstat(p, &st), 0);
    snprintf(p, sizeof(p), "%s/big2", v);
    assert_int_equal(lstat(p, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    assert_int_equal(st2.st_nlink, 2);
    char val[16];
    snprintf(p, sizeof(p), "%s/x", v);
    assert_int_equal(lgetxattr(p, "user.note", val, sizeof(val)), 5);
    assert_memory_equal(val, "hello", 5);
    assert_int_equal(open(p, O_WRONLY), -1);
    assert_true(errno == EROFS || errno == EACCES);
    DIR *d = opendir(v);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n++;
    closedir(d);
    assert_int_equal(n, 9);
}

static void
served_view_reads_like_the_tree_and_goes_with_the_store(void **state)
{
    fx *f = *state;
    test_need(access("/dev/fuse", R_OK | W_OK) == 0 && geteuid() == 0, "root and /dev/fuse");
    cs_store_set_snapshotter(f->sb.s, CS_SNAP_FUSE, "/proc/self/exe");
    assert_int_equal(cs_store_snapshotter(f->sb.s), CS_SNAP_FUSE);
    cs_strv lowers = { 0 };
    assert_int_equal(cs_lowers_get(f->sb.s, f->layers, 2, &lowers, &f->sb.err), 0);
    assert_int_equal(lowers.n, 1);
    assert_mount_contents(lowers.v[0]);
    assert_mount_contents(lowers.v[0]); /* warm: from the kernel's caches */
    /* A second stack: the same server, another dir. */
    assert_int_equal(cs_lowers_get(f->sb.s, f->layers, 1, &lowers, &f->sb.err), 0);
    assert_int_equal(lowers.n, 2);
    char p[512];
    snprintf(p, sizeof(p), "%s/gone/a", lowers.v[1]);
    assert_file(p, "a", 1);
    cs_autofree char *mnt = cs_xstrndup(lowers.v[0], strrchr(lowers.v[0], '/') - lowers.v[0]);
    assert_true(mounted(mnt));
    cs_fuse_stop(f->sb.s);
    assert_false(mounted(mnt));
    assert_int_equal(access(mnt, F_OK), -1);
    cs_strv_release(&lowers);
}

static void
clean_stale_removes_mount_dirs_of_dead_clients_only(void **state)
{
    fx *f = *state;
    cs_autofree char *dead = cs_xasprintf("%s/mnt/999999999-12/0", f->sb.root);
    cs_autofree char *live = cs_xasprintf("%s/mnt/%ld-%lld/7", f->sb.root, (long) getpid(),
                                          (long long) cs_pid_start_time(getpid()));
    assert_int_equal(cs_mkdir_p(dead, 0700, &f->sb.err), 0);
    assert_int_equal(cs_mkdir_p(live, 0700, &f->sb.err), 0);
    assert_int_equal(cs_fuse_clean_stale(f->sb.s, &f->sb.err), 0);
    assert_int_equal(access(dead, F_OK), -1);
    cs_autofree char *deaddir = cs_xstrndup(dead, strlen(dead) - 2);
    assert_int_equal(access(deaddir, F_OK), -1);
    assert_int_equal(access(live, F_OK), 0);
}

static void
snapshotter_names_parse_and_bad_ones_fail(void **state)
{
    fx *f = *state;
    cs_snapshotter m;
    assert_int_equal(cs_snapshotter_parse("unpack", &m, &f->sb.err), 0);
    assert_int_equal(m, CS_SNAP_UNPACK);
    assert_int_equal(cs_snapshotter_parse("fuse", &m, &f->sb.err), 0);
    assert_int_equal(m, CS_SNAP_FUSE);
    assert_int_equal(cs_snapshotter_parse("overlay", &m, &f->sb.err), -CS_EINVAL);
    test_assert_msg(f->sb.err, "snapshotter 'overlay': use fuse, unpack or auto");
    /* Without a server program auto is unpack. */
    cs_store_set_snapshotter(f->sb.s, CS_SNAP_AUTO, NULL);
    assert_int_equal(cs_store_snapshotter(f->sb.s), CS_SNAP_UNPACK);
}

/* This program is also the FUSE server the client above starts. */
static int
serve(int argc, char **argv)
{
    cs_store *s = NULL;
    cs_error *err = NULL;
    int rc = argc == 4 ? cs_store_open(argv[2], 0, &s, &err) : -1;
    if (rc == 0)
        rc = cs_fuse_serve(s, argv[3], 3, &err);
    if (rc < 0)
        fprintf(stderr, "test server: %s\n", err ? err->msg : "usage");
    cs_store_close(s);
    cs_error_free(err);
    return rc < 0;
}

int
main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], CS_FUSE_VERB))
        return serve(argc, argv);
    for (size_t i = 0; i < sizeof(big); i += 4096) {
        test_fill_random(big + i, 1024, i + 1);
        memset(big + i + 1024, (int) (i >> 12), 3072);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(view_merges_layers_with_whiteouts_opaque_dirs_and_links,
                                        setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(view_lists_directories_in_byte_order, setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(view_of_a_missing_layer_fails, setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(served_view_reads_like_the_tree_and_goes_with_the_store,
                                        setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(clean_stale_removes_mount_dirs_of_dead_clients_only, setup,
                                        test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(snapshotter_names_parse_and_bad_ones_fail, setup,
                                        test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
