/* test_snapshot.c - unpacking trees into snapshots, overlay upper dirs back
 * into layers, adopting and pruning. Needs root (mknod, chown, trusted
 * xattrs) and overlayfs; exits 77 without them, fails under CSTORE_CI=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>

#include "cstore/content.h"
#include "cstore/ingest.h"
#include "cstore/snapshot.h"
#include "cstore/store.h"
#include "cstore/tree.h"

typedef struct fx {
    test_sandbox sb; /* first: see testutil.h */
    char merged[96]; /* overlay mount point, unmounted by teardown */
} fx;

static int
setup(void **state)
{
    if (test_sandbox_new(state, sizeof(fx), 0) < 0)
        return -1;
    fx *f = *state;
    snprintf(f->merged, sizeof(f->merged), "%s/merged", f->sb.dir);
    return 0;
}

static int
teardown(void **state)
{
    fx *f = *state;
    umount2(f->merged, MNT_DETACH);
    return test_sandbox_teardown(state);
}

/* ---- building trees ---- */

static cs_digest
ingest_bytes(cs_ingest *ing, const void *p, size_t n)
{
    int fd = memfd_create("content", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t) n);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    cs_error *err = NULL;
    cs_digest d;
    uint64_t size;
    assert_int_equal(cs_ingest_fd(ing, fd, &d, &size, &err), 0);
    assert_int_equal(size, n);
    close(fd);
    return d;
}

static cs_entry *
add(cs_tree *t, const char *path, cs_etype type, uint32_t mode)
{
    cs_entry *e = cs_tree_add(t);
    e->path = strdup(path);
    e->type = type;
    e->mode = mode;
    e->mtime_sec = 1600000000;
    return e;
}

static cs_entry *
add_file(cs_tree *t, cs_ingest *ing, const char *path, uint32_t mode, const void *p, size_t n)
{
    cs_digest d = n ? ingest_bytes(ing, p, n) : (cs_digest){ { 0 } };
    cs_entry *e = add(t, path, CS_E_FILE, mode);
    e->size = n;
    e->has_content = n > 0;
    e->content = d;
    return e;
}

static cs_entry *
add_link(cs_tree *t, const char *path, cs_etype type, const char *target)
{
    cs_entry *e = add(t, path, type, type == CS_E_SYMLINK ? 0777 : 0644);
    e->link = strdup(target);
    return e;
}

/* Sorts t, puts it in ing's txn, commits ing; frees both. */
static cs_digest
commit_tree(fx *f, cs_ingest *ing, cs_tree *t)
{
    cs_error *err = NULL;
    cs_digest d;
    cs_tree_sort(t);
    assert_int_equal(cs_tree_put(cs_store_db(f->sb.s), cs_ingest_txn(ing), t, &d, &err), 0);
    assert_int_equal(cs_ingest_commit(ing, &err), 0);
    cs_ingest_free(ing);
    cs_tree_free(t);
    return d;
}

static cs_ingest *
begin(fx *f)
{
    cs_ingest *ing;
    cs_error *err = NULL;
    assert_int_equal(cs_ingest_begin(f->sb.s, &ing, &err), 0);
    return ing;
}

static uint8_t big[300 * 1024];

#define SH "#!/bin/sh\necho hi\n"

/* One entry of every kind. */
static cs_digest
full_tree(fx *f)
{
    cs_ingest *ing = begin(f);
    cs_tree *t = cs_tree_new();
    cs_entry *e;
    add(t, ".wh.gone", CS_E_FILE, 0);
    add(t, ".wh.olddir", CS_E_DIR, 0755);             /* tar writers differ in a whiteout's type */
    add_link(t, "a-hard", CS_E_HARDLINK, "data/big"); /* target sorts after the link */
    e = add(t, "bin", CS_E_DIR, 0755);
    e->mtime_nsec = 500000000;
    e = add_file(t, ing, "bin/sh", 0755, SH, strlen(SH));
    e->mtime_sec = 1600000001;
    e->mtime_nsec = 123456789;
    add_link(t, "bin/sh-link", CS_E_HARDLINK, "bin/sh");
    e = add_file(t, ing, "bin/su", 04755, "su", 2);
    e->uid = 1000;
    e->gid = 1001;
    e = add(t, "data", CS_E_DIR, 0750);
    e->uid = e->gid = 1000;
    e->mtime_sec = 1600000002;
    e->mtime_nsec = 250000000;
    cs_entry_add_xattr(e, "user.x", "hello", 5);
    cs_entry_add_xattr(e, "trusted.overlay.redirect", "/evil", 5); /* never taken */
    add_file(t, ing, "data/big", 0644, big, sizeof(big));
    add_file(t, ing, "data/empty", 0600, NULL, 0);
    add(t, "dev", CS_E_DIR, 0755);
    add(t, "dev/fifo", CS_E_FIFO, 0600);
    e = add(t, "dev/loop0", CS_E_BLOCK, 0660);
    e->devmajor = 7;
    e->gid = 6;
    e = add(t, "dev/null", CS_E_CHAR, 0666);
    e->devmajor = 1;
    e->devminor = 3;
    e = add_link(t, "hl-out", CS_E_HARDLINK, "lower/file"); /* target in a layer below */
    e->content = ingest_bytes(ing, "outside", 7);
    e->size = 7;
    e->has_content = true;
    add_file(t, ing, "implicit/child", 0644, "c", 1); /* no entry for its parent */
    e = add_link(t, "lnk", CS_E_SYMLINK, "/etc/passwd");
    e->uid = e->gid = 1000;
    e->mtime_sec = 1600000003;
    add(t, "opq", CS_E_DIR, 0755);
    add(t, "opq/.wh..wh..opq", CS_E_FILE, 0);
    add_file(t, ing, "opq/kept", 0644, "kept", 4);
    return commit_tree(f, ing, t);
}

static void
check_content(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW);
    assert_true(fd >= 0);
    uint8_t *buf = malloc(n + 1);
    assert_int_equal(read(fd, buf, n + 1), (ssize_t) n);
    assert_memory_equal(buf, p, n);
    free(buf);
    close(fd);
}

static struct stat
lst(const char *fs, const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", fs, rel);
    struct stat st;
    if (lstat(p, &st) < 0)
        fail_msg("lstat %s: %s", p, strerror(errno));
    return st;
}

static bool
exists(const char *fs, const char *rel)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", fs, rel);
    return lstat(p, &st) == 0;
}

static char *
get(fx *f, const cs_digest *d)
{
    cs_error *err = NULL;
    char *dir = NULL;
    int r = cs_snapshot_get(f->sb.s, d, &dir, &err);
    if (r < 0)
        fail_msg("get: %s", err->msg);
    return dir;
}

static void
check_full(const char *fs)
{
    char p[512];
    struct stat st;

    st = lst(fs, "gone");
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(0, 0));
    assert_false(exists(fs, ".wh.gone"));
    st = lst(fs, "olddir");
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));

    st = lst(fs, "bin/sh");
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(st.st_mtim.tv_sec, 1600000001);
    assert_int_equal(st.st_mtim.tv_nsec, 123456789);
    assert_int_equal(st.st_nlink, 2);
    assert_int_equal(lst(fs, "bin/sh-link").st_ino, st.st_ino);
    snprintf(p, sizeof(p), "%s/bin/sh", fs);
    check_content(p, SH, strlen(SH));

    st = lst(fs, "bin/su");
    assert_int_equal(st.st_mode & 07777, 04755); /* chmod after chown kept setuid */
    assert_int_equal(st.st_uid, 1000);
    assert_int_equal(st.st_gid, 1001);

    st = lst(fs, "bin"); /* times set after its children were made */
    assert_int_equal(st.st_mtim.tv_sec, 1600000000);
    assert_int_equal(st.st_mtim.tv_nsec, 500000000);

    st = lst(fs, "data");
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(st.st_uid, 1000);
    assert_int_equal(st.st_mtim.tv_sec, 1600000002);
    assert_int_equal(st.st_mtim.tv_nsec, 250000000);
    snprintf(p, sizeof(p), "%s/data", fs);
    char v[16];
    assert_int_equal(lgetxattr(p, "user.x", v, sizeof(v)), 5);
    assert_memory_equal(v, "hello", 5);
    assert_int_equal(lgetxattr(p, "trusted.overlay.redirect", v, sizeof(v)), -1);

    snprintf(p, sizeof(p), "%s/data/big", fs);
    check_content(p, big, sizeof(big));
    assert_int_equal(lst(fs, "a-hard").st_ino, lst(fs, "data/big").st_ino);
    st = lst(fs, "data/empty");
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    assert_true(S_ISFIFO(lst(fs, "dev/fifo").st_mode));
    st = lst(fs, "dev/loop0");
    assert_true(S_ISBLK(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(7, 0));
    assert_int_equal(st.st_mode & 07777, 0660);
    assert_int_equal(st.st_gid, 6);
    st = lst(fs, "dev/null");
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(1, 3));
    assert_int_equal(st.st_mode & 07777, 0666);

    st = lst(fs, "hl-out"); /* a copy: its target is not in this layer */
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_nlink, 1);
    snprintf(p, sizeof(p), "%s/hl-out", fs);
    check_content(p, "outside", 7);

    st = lst(fs, "implicit");
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0755);
    snprintf(p, sizeof(p), "%s/implicit/child", fs);
    check_content(p, "c", 1);

    st = lst(fs, "lnk");
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(st.st_uid, 1000);
    assert_int_equal(st.st_mtim.tv_sec, 1600000003);
    snprintf(p, sizeof(p), "%s/lnk", fs);
    char target[64];
    ssize_t n = readlink(p, target, sizeof(target));
    assert_int_equal(n, strlen("/etc/passwd"));
    assert_memory_equal(target, "/etc/passwd", (size_t) n);

    snprintf(p, sizeof(p), "%s/opq", fs);
    assert_int_equal(lgetxattr(p, "trusted.overlay.opaque", v, sizeof(v)), 1);
    assert_int_equal(v[0], 'y');
    assert_false(exists(fs, "opq/.wh..wh..opq"));
    assert_true(exists(fs, "opq/kept"));

    assert_int_equal(lst(fs, "").st_mode & 07777, 0755);
}

/* Names in ROOT/snapshots other than finished <hex> dirs. */
static int
count_temp_dirs(fx *f)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/snapshots", f->sb.root);
    DIR *d = opendir(p);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && strlen(de->d_name) != 64)
            n++;
    closedir(d);
    return n;
}

/* ---- tests ---- */

static void
get_unpacks_every_entry_type(void **state)
{
    fx *f = *state;
    cs_digest d = full_tree(f);
    char *fs = get(f, &d);
    char hex[CS_DIGEST_HEX], want[256];
    cs_digest_hex(&d, hex);
    snprintf(want, sizeof(want), "%s/snapshots/%s/fs", f->sb.root, hex);
    assert_string_equal(fs, want);
    check_full(fs);
    assert_int_equal(count_temp_dirs(f), 0);
    free(fs);
}

static void
get_reuses_and_rebuilds_missing_snapshots(void **state)
{
    fx *f = *state;
    cs_digest d = full_tree(f);
    char *fs = get(f, &d);
    ino_t ino = lst(fs, "bin/sh").st_ino;
    char *again = get(f, &d);
    assert_string_equal(again, fs);
    assert_int_equal(lst(fs, "bin/sh").st_ino, ino); /* not unpacked again */
    free(again);

    /* The whole snapshot dir gone: rebuilt. */
    char snap[256];
    snprintf(snap, sizeof(snap), "%.*s", (int) (strlen(fs) - 3), fs);
    test_rmrf(snap);
    assert_false(exists(fs, ""));
    again = get(f, &d);
    check_full(again);
    free(again);

    /* Damaged: <hex> without fs. */
    test_rmrf(fs);
    again = get(f, &d);
    check_full(again);
    assert_int_equal(count_temp_dirs(f), 0);
    free(again);
    free(fs);
}

/* Plays a reboot: the boot id the store reads (test-only override). */
static void
set_boot(fx *f, const char *id)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/boot_id", f->sb.dir);
    test_write_file(path, id, strlen(id), 0644);
    setenv("CSTORE_TEST_BOOT_ID_FILE", path, 1);
}

static void
snapshot_from_another_boot_is_checked_and_rebuilt_when_damaged(void **state)
{
    fx *f = *state;
    set_boot(f, "0b1c8a34-0000-4000-8000-00000000000a\n");
    cs_digest d = full_tree(f);
    char *fs = get(f, &d);
    ino_t ino = lst(fs, "bin/sh").st_ino;

    /* Rebooted, nothing lost: checked and kept. */
    set_boot(f, "0b1c8a34-0000-4000-8000-00000000000b\n");
    char *again = get(f, &d);
    assert_int_equal(lst(again, "bin/sh").st_ino, ino);
    check_full(again);
    free(again);

    /* A crash lost a file's data (its size is 0 on disk), then a reboot:
     * the check finds it and the snapshot is unpacked again. */
    char path[512];
    snprintf(path, sizeof(path), "%s/data/big", fs);
    assert_int_equal(truncate(path, 0), 0);
    set_boot(f, "0b1c8a34-0000-4000-8000-00000000000c\n");
    again = get(f, &d);
    check_full(again);
    assert_int_equal(count_temp_dirs(f), 0);
    free(again);

    /* A missing entry after a reboot: rebuilt too. */
    snprintf(path, sizeof(path), "%s/bin/su", fs);
    assert_int_equal(unlink(path), 0);
    set_boot(f, "0b1c8a34-0000-4000-8000-00000000000d\n");
    again = get(f, &d);
    check_full(again);
    free(again);
    free(fs);
    unsetenv("CSTORE_TEST_BOOT_ID_FILE");
}

static void
get_unrecorded_snapshot_is_checked_before_use(void **state)
{
    fx *f = *state;
    set_boot(f, "0b1c8a34-0000-4000-8000-00000000001a\n");
    cs_digest d = full_tree(f);
    char *fs = get(f, &d);
    /* Prune drops the record (the tree is kept); put the dir back as a
     * crash between rename and record would leave it, damaged. */
    char snap[256], keep[300], path[512];
    snprintf(snap, sizeof(snap), "%.*s", (int) (strlen(fs) - 3), fs);
    snprintf(keep, sizeof(keep), "%s.keep", f->sb.dir);
    assert_int_equal(rename(snap, keep), 0);
    uint64_t removed = 0;
    cs_error *err = NULL;
    assert_int_equal(cs_snapshot_prune(f->sb.s, UINT64_MAX, &removed, NULL, &err), 0);
    assert_int_equal(rename(keep, snap), 0);
    snprintf(path, sizeof(path), "%s/data/big", fs);
    assert_int_equal(truncate(path, 1), 0);
    char *again = get(f, &d);
    check_full(again);
    free(again);
    free(fs);
    unsetenv("CSTORE_TEST_BOOT_ID_FILE");
}

static void
get_unpacks_a_large_tree_on_several_threads_intact(void **state)
{
    fx *f = *state;
    /* 48 files of 384 KiB (18 MiB: above the one-thread limit) in 6 dirs,
     * seeded random so no two chunks dedupe. */
    enum { NFILES = 48, FSIZE = 384 << 10 };
    uint8_t *data = malloc((size_t) NFILES * FSIZE);
    assert_non_null(data);
    test_fill_random(data, (size_t) NFILES * FSIZE, 1111);
    cs_ingest *ing = begin(f);
    cs_tree *t = cs_tree_new();
    char path[64];
    for (int i = 0; i < NFILES; i++) {
        snprintf(path, sizeof(path), "d%d/f%02d", i % 6, i);
        add_file(t, ing, path, 0644, data + (size_t) i * FSIZE, FSIZE);
    }
    cs_digest d = commit_tree(f, ing, t);
    char *fs = get(f, &d);
    for (int i = 0; i < NFILES; i++) {
        char p[512];
        snprintf(p, sizeof(p), "%s/d%d/f%02d", fs, i % 6, i);
        check_content(p, data + (size_t) i * FSIZE, FSIZE);
    }
    free(fs);
    free(data);
}

static void
get_never_writes_through_symlinks(void **state)
{
    fx *f = *state;
    char outside[128];
    snprintf(outside, sizeof(outside), "%s/outside", f->sb.dir);
    assert_int_equal(mkdir(outside, 0755), 0);

    cs_ingest *ing = begin(f);
    cs_tree *t = cs_tree_new();
    add_link(t, "a", CS_E_SYMLINK, outside);
    add_file(t, ing, "a/x", 0644, "pwned", 5);
    cs_digest d = commit_tree(f, ing, t);
    cs_error *err = NULL;
    char *dir = NULL;
    assert_int_equal(cs_snapshot_get(f->sb.s, &d, &dir, &err), -CS_EINVAL);
    assert_null(dir);
    cs_error_clear(&err);
    assert_false(exists(outside, "x"));

    ing = begin(f);
    t = cs_tree_new();
    add_file(t, ing, "b", 0644, "file", 4);
    add_file(t, ing, "b/y", 0644, "below", 5);
    d = commit_tree(f, ing, t);
    assert_int_equal(cs_snapshot_get(f->sb.s, &d, &dir, &err), -CS_EINVAL);
    cs_error_clear(&err);
    assert_int_equal(count_temp_dirs(f), 0);
}

static void
write_str(const char *dir, const char *rel, const char *s, int flags)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    int fd = open(p, O_WRONLY | O_CREAT | flags, 0644);
    if (fd < 0)
        fail_msg("open %s: %s", p, strerror(errno));
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t) strlen(s));
    close(fd);
}

static void
run_in(const char *dir, const char *fmt, const char *a, const char *b)
{
    char p1[512], p2[512];
    snprintf(p1, sizeof(p1), "%s/%s", dir, a);
    if (b)
        snprintf(p2, sizeof(p2), "%s/%s", dir, b);
    int r;
    if (!strcmp(fmt, "unlink"))
        r = unlink(p1);
    else if (!strcmp(fmt, "rmdir"))
        r = rmdir(p1);
    else if (!strcmp(fmt, "mkdir"))
        r = mkdir(p1, 0755);
    else if (!strcmp(fmt, "link"))
        r = link(p1, p2);
    else if (!strcmp(fmt, "symlink"))
        r = symlink(a, p2);
    else if (!strcmp(fmt, "chmod"))
        r = chmod(p1, 0640);
    else
        r = -1;
    if (r < 0)
        fail_msg("%s %s: %s", fmt, p1, strerror(errno));
}

static void
expect(const cs_tree *t, size_t *i, const char *path, cs_etype type, const char *content)
{
    assert_true(*i < t->n);
    const cs_entry *e = &t->e[(*i)++];
    assert_string_equal(e->path, path);
    assert_int_equal(e->type, type);
    if (content) {
        cs_digest d = test_sha(content);
        assert_true(e->has_content);
        assert_int_equal(e->size, strlen(content));
        assert_true(cs_digest_eq(&e->content, &d));
    }
}

static void
diff_adopt_and_reuse_an_overlay_upper(void **state)
{
    fx *f = *state;
    cs_ingest *ing = begin(f);
    cs_tree *t = cs_tree_new();
    add(t, "ddir", CS_E_DIR, 0755);
    add_file(t, ing, "ddir/f", 0644, "f", 1);
    add_file(t, ing, "del", 0644, "del", 3);
    add_file(t, ing, "keep", 0644, "keep", 4);
    add_file(t, ing, "mod", 0644, "old", 3);
    add(t, "odir", CS_E_DIR, 0755);
    add_file(t, ing, "odir/old1", 0644, "1", 1);
    add_file(t, ing, "odir/old2", 0644, "2", 1);
    add(t, "sub", CS_E_DIR, 0755);
    add(t, "sub/deep", CS_E_DIR, 0755);
    add_file(t, ing, "sub/deep/f", 0644, "deep", 4);
    add_file(t, ing, "sub/other", 0644, "other", 5);
    cs_digest base = commit_tree(f, ing, t);
    char *lower = get(f, &base);

    char tmp[128], upper[160], work[160], opts[1024];
    snprintf(tmp, sizeof(tmp), "%s/tmp", f->sb.root);
    snprintf(upper, sizeof(upper), "%s/upper", tmp);
    snprintf(work, sizeof(work), "%s/work", tmp);
    assert_int_equal(mkdir(tmp, 0700), 0);
    assert_int_equal(mkdir(upper, 0755), 0);
    assert_int_equal(mkdir(work, 0700), 0);
    assert_int_equal(mkdir(f->merged, 0755), 0);
    snprintf(opts, sizeof(opts),
             "lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,metacopy=off,index=off", lower,
             upper, work);
    if (mount("overlay", f->merged, "overlay", 0, opts) < 0)
        fail_msg("mount overlay: %s", strerror(errno));

    const char *m = f->merged;
    write_str(m, "new", "fresh", O_EXCL);
    run_in(m, "chmod", "new", NULL);
    run_in(m, "link", "new", "new-link");
    write_str(m, "mod", "new content", O_TRUNC);
    run_in(m, "unlink", "del", NULL);
    run_in(m, "unlink", "ddir/f", NULL);
    run_in(m, "rmdir", "ddir", NULL);
    run_in(m, "unlink", "odir/old1", NULL);
    run_in(m, "unlink", "odir/old2", NULL);
    run_in(m, "rmdir", "odir", NULL);
    run_in(m, "mkdir", "odir", NULL);
    write_str(m, "odir/n", "n", O_EXCL);
    write_str(m, "sub/deep/f", "deeper", O_TRUNC);
    run_in(m, "symlink", "keep", "sl");
    /* Walked first as "hl/x", but "hl-b" sorts first: it is the file. */
    run_in(m, "mkdir", "hl", NULL);
    write_str(m, "hl/x", "linked", O_EXCL);
    run_in(m, "link", "hl/x", "hl-b");
    assert_int_equal(umount2(m, 0), 0);
    test_rmrf(work);

    cs_error *err = NULL;
    ing = begin(f);
    cs_tree *layer = NULL;
    if (cs_snapshot_diff(f->sb.s, ing, upper, NULL, &layer, &err) < 0)
        fail_msg("diff: %s", err->msg);
    size_t i = 0;
    expect(layer, &i, ".wh.ddir", CS_E_FILE, NULL);
    assert_int_equal(layer->e[i - 1].mode, 0);
    assert_int_equal(layer->e[i - 1].size, 0);
    expect(layer, &i, ".wh.del", CS_E_FILE, NULL);
    expect(layer, &i, "hl", CS_E_DIR, NULL);
    expect(layer, &i, "hl-b", CS_E_FILE, "linked");
    expect(layer, &i, "hl/x", CS_E_HARDLINK, "linked");
    assert_string_equal(layer->e[i - 1].link, "hl-b");
    expect(layer, &i, "mod", CS_E_FILE, "new content");
    expect(layer, &i, "new", CS_E_FILE, "fresh");
    assert_int_equal(layer->e[i - 1].mode, 0640);
    expect(layer, &i, "new-link", CS_E_HARDLINK, "fresh");
    assert_string_equal(layer->e[i - 1].link, "new");
    expect(layer, &i, "odir", CS_E_DIR, NULL);
    expect(layer, &i, "odir/.wh..wh..opq", CS_E_FILE, NULL);
    expect(layer, &i, "odir/n", CS_E_FILE, "n");
    expect(layer, &i, "sl", CS_E_SYMLINK, NULL);
    assert_string_equal(layer->e[i - 1].link, "keep");
    expect(layer, &i, "sub", CS_E_DIR, NULL); /* copied up as a parent: kept */
    expect(layer, &i, "sub/deep", CS_E_DIR, NULL);
    expect(layer, &i, "sub/deep/f", CS_E_FILE, "deeper");
    assert_int_equal(layer->n, i);
    for (size_t j = 0; j < layer->n; j++)
        for (uint32_t k = 0; k < layer->e[j].nxattrs; k++)
            assert_true(strncmp(layer->e[j].xattrs[k].name, "trusted.overlay.", 16));

    cs_digest ld;
    assert_int_equal(cs_tree_put(cs_store_db(f->sb.s), cs_ingest_txn(ing), layer, &ld, &err), 0);
    assert_int_equal(cs_ingest_commit(ing, &err), 0);
    cs_ingest_free(ing);
    cs_tree_free(layer);

    ino_t ino = lst(upper, "new").st_ino;
    if (cs_snapshot_adopt(f->sb.s, &ld, upper, &err) < 0)
        fail_msg("adopt: %s", err->msg);
    assert_false(exists(upper, ""));
    char *fs = get(f, &ld);
    assert_int_equal(lst(fs, "new").st_ino, ino); /* moved, not unpacked */
    struct stat st = lst(fs, "ddir");
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));

    /* After a reboot the adopted upper dir (real times, overlay whiteouts
     * and opaque xattrs) passes the check against its layer: kept. */
    set_boot(f, "0b1c8a34-0000-4000-8000-00000000002a\n");
    char *again = get(f, &ld);
    assert_int_equal(lst(again, "new").st_ino, ino);
    free(again);

    /* The same layer again: the existing snapshot stays, the new upper goes. */
    assert_int_equal(mkdir(upper, 0755), 0);
    write_str(upper, "other", "x", O_EXCL);
    assert_int_equal(cs_snapshot_adopt(f->sb.s, &ld, upper, &err), 0);
    assert_false(exists(upper, ""));
    assert_int_equal(lst(fs, "new").st_ino, ino);
    assert_false(exists(fs, "other"));
    assert_int_equal(count_temp_dirs(f), 0);

    /* And the adopted snapshot stacks: lower + it, as the next RUN sees it. */
    assert_int_equal(mkdir(upper, 0755), 0);
    assert_int_equal(mkdir(work, 0700), 0);
    snprintf(opts, sizeof(opts), "lowerdir=%s:%s,upperdir=%s,workdir=%s", fs, lower, upper, work);
    if (mount("overlay", f->merged, "overlay", 0, opts) < 0)
        fail_msg("mount overlay: %s", strerror(errno));
    assert_false(exists(m, "del"));
    assert_false(exists(m, "ddir"));
    assert_false(exists(m, "odir/old1"));
    assert_true(exists(m, "odir/n"));
    assert_true(exists(m, "keep"));
    assert_true(exists(m, "sub/other"));
    char p[256];
    snprintf(p, sizeof(p), "%s/mod", m);
    check_content(p, "new content", 11);
    assert_int_equal(umount2(m, 0), 0);
    free(fs);
    free(lower);
    unsetenv("CSTORE_TEST_BOOT_ID_FILE");
}

static cs_digest
small_tree(fx *f, const char *name, int nfiles)
{
    cs_ingest *ing = begin(f);
    cs_tree *t = cs_tree_new();
    add(t, name, CS_E_DIR, 0755);
    for (int i = 0; i < nfiles; i++) {
        char path[64], body[64];
        snprintf(path, sizeof(path), "%s/f%04d", name, i);
        snprintf(body, sizeof(body), "%s %d", name, i);
        add_file(t, ing, path, 0644, body, strlen(body));
    }
    return commit_tree(f, ing, t);
}

static bool
recorded(fx *f, const cs_digest *d)
{
    return test_has(f->sb.s, CS_T_SNAPSHOTS, d->b, 32);
}

static void
prune_removes_old_orphaned_and_treeless_snapshots(void **state)
{
    fx *f = *state;
    cs_error *err = NULL;
    cs_digest a = small_tree(f, "a", 3), b = small_tree(f, "b", 3);
    char *fa = get(f, &a), *fb = get(f, &b);
    uint8_t rec[9]; /* last used (u64 BE), then 1 */
    cs_be64_put(rec, 1000);
    rec[8] = 1;
    test_put_raw(f->sb.s, CS_T_SNAPSHOTS, a.b, 32, rec, sizeof(rec));

    /* A snapshot whose tree is gone (adopted for a digest never stored). */
    cs_digest gone;
    memset(gone.b, 0xab, 32);
    char upper[160], p[256];
    snprintf(upper, sizeof(upper), "%s/up", f->sb.root);
    assert_int_equal(mkdir(upper, 0755), 0);
    write_str(upper, "x", "x", O_EXCL);
    assert_int_equal(cs_snapshot_adopt(f->sb.s, &gone, upper, &err), 0);
    assert_true(recorded(f, &gone));

    /* An unrecorded one, and a temp dir of a dead process. */
    char orphan[200];
    snprintf(orphan, sizeof(orphan), "%s/snapshots/%064d", f->sb.root, 7);
    assert_int_equal(mkdir(orphan, 0700), 0);
    snprintf(p, sizeof(p), "%s/fs", orphan);
    assert_int_equal(mkdir(p, 0755), 0);
    /* Made an hour ago: a fresh one may be another process's, about to be
     * recorded, and is left alone (checked below). */
    struct timespec old_times[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
    assert_int_equal(utimensat(AT_FDCWD, orphan, old_times, 0), 0);
    char fresh[200];
    snprintf(fresh, sizeof(fresh), "%s/snapshots/%064d", f->sb.root, 9);
    assert_int_equal(mkdir(fresh, 0700), 0);
    bool dead = kill(999999, 0) < 0 && errno == ESRCH;
    char stale[256];
    snprintf(stale, sizeof(stale), "%s/snapshots/%064d.tmp-999999", f->sb.root, 8);
    if (dead) {
        assert_int_equal(mkdir(stale, 0700), 0);
        write_str(stale, "junk", "junk", O_EXCL);
    }

    uint64_t removed = 0, bytes = 0;
    if (cs_snapshot_prune(f->sb.s, (uint64_t) time(NULL) - 3600, &removed, &bytes, &err) < 0)
        fail_msg("prune: %s", err->msg);
    assert_int_equal(removed, 3); /* a (old), gone (no tree), the orphan */
    assert_true(bytes > 0);
    assert_false(exists(fa, ""));
    assert_false(recorded(f, &a));
    assert_false(recorded(f, &gone));
    assert_false(exists(orphan, ""));
    assert_true(exists(fresh, ""));
    assert_false(exists(stale, ""));
    assert_true(exists(fb, "b/f0001"));
    assert_true(recorded(f, &b));
    assert_int_equal(count_temp_dirs(f), 0);

    /* Nothing more to do; then everything. */
    assert_int_equal(cs_snapshot_prune(f->sb.s, 0, &removed, &bytes, &err), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(cs_snapshot_prune(f->sb.s, UINT64_MAX, &removed, &bytes, &err), 0);
    assert_int_equal(removed, 1);
    assert_false(exists(fb, ""));

    /* And a pruned snapshot comes back on demand. */
    char *again = get(f, &a);
    assert_true(exists(again, "a/f0002"));
    free(again);
    free(fa);
    free(fb);
}

static void
racing_processes_share_one_snapshot(void **state)
{
    fx *f = *state;
    cs_digest d = small_tree(f, "race", 400);
    cs_error *err = NULL;
    for (int round = 0; round < 3; round++) {
        /* One LMDB env per process: the children open their own. */
        cs_store_close(f->sb.s);
        f->sb.s = NULL;
        pid_t kids[2];
        for (int k = 0; k < 2; k++) {
            kids[k] = fork();
            assert_true(kids[k] >= 0);
            if (kids[k] == 0) {
                cs_store *s;
                char *dir = NULL;
                if (cs_store_open(f->sb.root, 0, &s, &err) < 0
                    || cs_snapshot_get(s, &d, &dir, &err) < 0)
                    _exit(1);
                struct stat st;
                char p[256];
                snprintf(p, sizeof(p), "%s/race/f0399", dir);
                _exit(stat(p, &st) == 0 ? 0 : 2);
            }
        }
        for (int k = 0; k < 2; k++) {
            int status;
            assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
        }
        assert_int_equal(cs_store_open(f->sb.root, 0, &f->sb.s, &err), 0);
        assert_true(recorded(f, &d));
        assert_int_equal(count_temp_dirs(f), 0);
        uint64_t removed;
        assert_int_equal(cs_snapshot_prune(f->sb.s, UINT64_MAX, &removed, NULL, &err), 0);
        assert_int_equal(removed, 1);
    }
}

/* Root, mknod, trusted xattrs and an overlay mount, or exit 77 (1 under CI). */
static bool
host_can(void)
{
    if (geteuid() != 0)
        return false;
    char dir[] = "/tmp/cs-snap-probe-XXXXXX";
    if (!mkdtemp(dir))
        return false;
    char p[256], l[128], u[128], w[128], m[128], opts[600];
    bool ok = true;
    snprintf(p, sizeof(p), "%s/wh", dir);
    snprintf(l, sizeof(l), "%s/l", dir);
    snprintf(u, sizeof(u), "%s/u", dir);
    snprintf(w, sizeof(w), "%s/w", dir);
    snprintf(m, sizeof(m), "%s/m", dir);
    ok = mknod(p, S_IFCHR | 0600, makedev(0, 0)) == 0;
    ok = ok && mkdir(l, 0755) == 0 && mkdir(u, 0755) == 0 && mkdir(w, 0755) == 0
         && mkdir(m, 0755) == 0;
    ok = ok && setxattr(l, "trusted.overlay.opaque", "y", 1, 0) == 0;
    snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s", l, u, w);
    ok = ok && mount("overlay", m, "overlay", 0, opts) == 0;
    if (ok)
        umount2(m, 0);
    test_rmrf(dir);
    return ok;
}

/* A layer's tree and its upper dir as ingest puts them; upper made here. */
static cs_ingest *
adopt_in_ingest(fx *f, const char *upper, const char *text, cs_digest *d)
{
    assert_int_equal(mkdir(upper, 0755), 0);
    write_str(upper, "f", text, O_EXCL);
    cs_ingest *ing = begin(f);
    cs_tree *t = cs_tree_new();
    add_file(t, ing, "f", 0644, text, strlen(text));
    cs_error *err = NULL;
    assert_int_equal(cs_tree_put(cs_store_db(f->sb.s), cs_ingest_txn(ing), t, d, &err), 0);
    cs_tree_free(t);
    if (cs_snapshot_adopt_ingest(ing, d, upper, &err) < 0)
        fail_msg("adopt in the ingest: %s", err->msg);
    return ing;
}

static void
adopt_in_an_ingest_is_recorded_by_its_commit_and_unrecorded_without(void **state)
{
    fx *f = *state;
    char upper[160];
    snprintf(upper, sizeof(upper), "%s/upper-ing", f->sb.dir);
    cs_error *err = NULL;
    cs_digest d;
    cs_ingest *ing = adopt_in_ingest(f, upper, "committed", &d);
    assert_false(exists(upper, "")); /* the files first */
    assert_false(recorded(f, &d));   /* the record with the commit */
    assert_int_equal(cs_ingest_commit(ing, &err), 0);
    cs_ingest_free(ing);
    assert_true(recorded(f, &d));
    char want[256], hex[CS_DIGEST_HEX];
    cs_digest_hex(&d, hex);
    snprintf(want, sizeof(want), "%s/snapshots/%s/fs", f->sb.root, hex);
    ino_t ino = lst(want, "f").st_ino;
    char *fs = get(f, &d);
    assert_string_equal(fs, want);
    assert_int_equal(lst(fs, "f").st_ino, ino); /* moved, not unpacked */
    free(fs);

    /* A commit that never comes (the transaction aborted): the snapshot
     * stays unrecorded, so it is checked against its tree before use. */
    cs_digest d2;
    ing = adopt_in_ingest(f, upper, "aborted", &d2);
    cs_ingest_free(ing);
    assert_false(recorded(f, &d2));
    cs_digest_hex(&d2, hex);
    snprintf(want, sizeof(want), "%s/snapshots/%s/fs", f->sb.root, hex);
    assert_true(exists(want, "f"));
    assert_int_equal(count_temp_dirs(f), 0);
}

int
main(void)
{
    if (!host_can())
        return test_skip_all("root, mknod, trusted xattrs and overlayfs");
    test_fill_random(big, sizeof(big), 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(get_unpacks_every_entry_type, setup, teardown),
        cmocka_unit_test_setup_teardown(get_reuses_and_rebuilds_missing_snapshots, setup, teardown),
        cmocka_unit_test_setup_teardown(get_never_writes_through_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(get_unpacks_a_large_tree_on_several_threads_intact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            snapshot_from_another_boot_is_checked_and_rebuilt_when_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(get_unrecorded_snapshot_is_checked_before_use, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(diff_adopt_and_reuse_an_overlay_upper, setup, teardown),
        cmocka_unit_test_setup_teardown(prune_removes_old_orphaned_and_treeless_snapshots, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(racing_processes_share_one_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(
            adopt_in_an_ingest_is_recorded_by_its_commit_and_unrecorded_without, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
