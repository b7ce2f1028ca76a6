/* test_export.c - tar generation, layer_blobs and image export. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "compress.h"
#include "cstore/content.h"
#include "cstore/export.h"
#include "cstore/image.h"
#include "cstore/snapshot.h"
#include "cstore/store.h"
#include "cstore/tree.h"

#define KiB                    1024u
#define MT_LAYER_GZIP_FOR_TEST "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_LAYER_ZSTD_FOR_TEST "application/vnd.oci.image.layer.v1.tar+zstd"

typedef struct fx {
    test_sandbox sb;      /* first: see testutil.h */
    cs_digest big, small; /* contents */
    uint8_t *big_bytes;
    size_t big_len;
    char *paths[16]; /* fpath's */
    size_t npaths;
    cs_digest trees[3], id; /* fill_with_image's (image_setup) */
} fx;

/* <sandbox dir>/name, alive until the teardown. */
static const char *
fpath(fx *f, const char *name)
{
    assert_true(f->npaths < sizeof(f->paths) / sizeof(f->paths[0]));
    assert_true(asprintf(&f->paths[f->npaths], "%s/%s", f->sb.dir, name) > 0);
    return f->paths[f->npaths++];
}

/* The store holds two contents: big (several chunks) and small ("hello\n"). */
static void
fill(void *fp, cs_db *db, MDB_txn *txn)
{
    fx *f = fp;
    f->big_len = 200 * KiB + 17;
    f->big_bytes = malloc(f->big_len);
    test_fill_random(f->big_bytes, f->big_len, 7);
    f->big = test_put_content(db, txn, f->big_bytes, f->big_len, 64 * KiB);
    f->small = test_put_content(db, txn, (const uint8_t *) "hello\n", 6, 64 * KiB);
}

static int
setup(void **state)
{
    return test_sandbox_fill(state, sizeof(fx), 0, fill);
}

static int
teardown(void **state)
{
    fx *f = *state;
    free(f->big_bytes);
    for (size_t i = 0; i < f->npaths; i++)
        free(f->paths[i]);
    return test_sandbox_teardown(state);
}

static cs_entry *
add_link(cs_tree *t, const char *path, const char *target, const cs_digest *c, uint64_t size)
{
    cs_entry *e = test_tree_add(t, path, CS_E_HARDLINK);
    e->link = strdup(target);
    e->size = size;
    e->has_content = size > 0;
    if (c)
        e->content = *c;
    return e;
}

/* Every kind of entry: dirs, files (multi-chunk), symlink, devices, fifo,
 * xattrs, owners, long names, sub-second times, whiteouts. */
static cs_tree *
rich_tree(fx *f, bool for_image)
{
    cs_tree *t = cs_tree_new();
    test_tree_add(t, "etc", CS_E_DIR);
    cs_entry *e = test_tree_add_file(t, "etc/hello", &f->small, 6);
    e->uid = 1000;
    e->gid = 1001;
    e->uname = strdup("user");
    e->gname = strdup("group");
    e->mtime_nsec = 123456789;
    test_tree_add(t, "usr", CS_E_DIR)->mode = 01777;
    e = test_tree_add_file(t, "usr/big.bin", &f->big, f->big_len);
    e->mode = 04755;
    if (!for_image) /* not a valid capability set: umoci could not apply it */
        cs_entry_add_xattr(e, "security.capability", "\x01\x00\x00\x02", 4);
    cs_entry_add_xattr(e, "user.note", "v", 1);
    e = test_tree_add(t, "usr/sh", CS_E_SYMLINK);
    e->link = strdup("../bin/busybox");
    e = test_tree_add(t, "dev", CS_E_DIR);
    if (!for_image) { /* umoci may not mknod */
        e = test_tree_add(t, "dev/null", CS_E_CHAR);
        e->devmajor = 1;
        e->devminor = 3;
        e = test_tree_add(t, "dev/sda", CS_E_BLOCK);
        e->devmajor = 8;
    }
    test_tree_add(t, "dev/pipe", CS_E_FIFO);
    test_tree_add_file(t, "etc/.wh.removed", NULL, 0);
    test_tree_add_file(t, "var/.wh..wh..opq", NULL, 0);
    test_tree_add(t, "var", CS_E_DIR);
    char longp[300];
    memset(longp, 'x', sizeof(longp) - 1);
    longp[0] = 'l';
    longp[1] = '/';
    longp[150] = '/';
    longp[sizeof(longp) - 1] = '\0';
    test_tree_add(t, "l", CS_E_DIR);
    test_tree_add_file(t, longp, &f->small, 6);
    cs_tree_sort(t);
    return t;
}

typedef struct membuf {
    cs_buf b;
} membuf;

static int
mem_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) err;
    cs_buf_append(&((membuf *) ctx)->b, p, n);
    return 0;
}

static void
write_tar(fx *f, const cs_tree *t, membuf *out)
{
    cs_error *err = NULL;
    cs_buf_init(&out->b);
    MDB_txn *txn = test_begin(f->sb.s, false);
    int rc = cs_tree_write_tar(cs_store_db(f->sb.s), txn, t, mem_sink, out, &err);
    mdb_txn_abort(txn);
    if (rc < 0)
        fail_msg("%s", err->msg);
}

static struct archive *
open_tar_mem(const void *p, size_t n)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);
    assert_int_equal(archive_read_open_memory(a, p, n), ARCHIVE_OK);
    return a;
}

static void
read_all_data(struct archive *a, cs_buf *out)
{
    cs_buf_init(out);
    char buf[8192];
    la_ssize_t r;
    while ((r = archive_read_data(a, buf, sizeof(buf))) > 0)
        cs_buf_append(out, buf, (size_t) r);
    assert_true(r == 0);
}

static void
tar_is_deterministic_and_complete(void **state)
{
    fx *f = *state;
    cs_tree *t = rich_tree(f, false);
    membuf a, b;
    write_tar(f, t, &a);
    write_tar(f, t, &b);
    assert_int_equal(a.b.len, b.b.len);
    assert_memory_equal(a.b.data, b.b.data, a.b.len);
    assert_int_equal(a.b.len % 512, 0);

    /* Read it back: the same entries, in tree order. */
    struct archive *ar = open_tar_mem(a.b.data, a.b.len);
    struct archive_entry *ae;
    size_t i = 0;
    while (archive_read_next_header(ar, &ae) == ARCHIVE_OK) {
        assert_true(i < t->n);
        const cs_entry *e = &t->e[i++];
        const char *name = archive_entry_pathname(ae);
        if (e->type == CS_E_DIR) {
            assert_int_equal(strlen(name), strlen(e->path) + 1);
            assert_memory_equal(name, e->path, strlen(e->path));
            assert_int_equal(name[strlen(e->path)], '/');
            assert_int_equal(archive_entry_filetype(ae), AE_IFDIR);
        } else {
            assert_string_equal(name, e->path);
        }
        assert_int_equal(archive_entry_perm(ae), e->mode);
        assert_int_equal(archive_entry_uid(ae), e->uid);
        assert_int_equal(archive_entry_gid(ae), e->gid);
        assert_int_equal(archive_entry_mtime(ae), e->mtime_sec);
        if (e->uname)
            assert_string_equal(archive_entry_uname(ae), e->uname);
        assert_false(archive_entry_atime_is_set(ae));
        assert_false(archive_entry_ctime_is_set(ae));
        switch (e->type) {
        case CS_E_FILE: {
            assert_int_equal(archive_entry_filetype(ae), AE_IFREG);
            assert_int_equal(archive_entry_size(ae), e->size);
            cs_buf data;
            read_all_data(ar, &data);
            assert_int_equal(data.len, e->size);
            if (!strcmp(e->path, "usr/big.bin"))
                assert_memory_equal(data.data, f->big_bytes, f->big_len);
            cs_buf_release(&data);
            break;
        }
        case CS_E_SYMLINK:
            assert_int_equal(archive_entry_filetype(ae), AE_IFLNK);
            assert_string_equal(archive_entry_symlink(ae), e->link);
            break;
        case CS_E_CHAR:
        case CS_E_BLOCK:
            assert_int_equal(archive_entry_filetype(ae),
                             e->type == CS_E_CHAR ? AE_IFCHR : AE_IFBLK);
            assert_int_equal(archive_entry_rdevmajor(ae), e->devmajor);
            assert_int_equal(archive_entry_rdevminor(ae), e->devminor);
            break;
        case CS_E_FIFO:
            assert_int_equal(archive_entry_filetype(ae), AE_IFIFO);
            break;
        default:
            break;
        }
        assert_int_equal((uint32_t) archive_entry_xattr_count(ae), 2 * e->nxattrs);
        if (e->nxattrs) {
            /* pax records carry the xattrs (with sub-second mtime). */
            assert_int_equal(archive_entry_mtime_nsec(ae), e->mtime_nsec);
            const char *xn;
            const void *xv;
            size_t xl;
            archive_entry_xattr_reset(ae);
            uint32_t seen = 0;
            while (archive_entry_xattr_next(ae, &xn, &xv, &xl) == ARCHIVE_OK) {
                for (uint32_t x = 0; x < e->nxattrs; x++)
                    if (!strcmp(xn, e->xattrs[x].name)) {
                        assert_int_equal(xl, e->xattrs[x].len);
                        assert_memory_equal(xv, e->xattrs[x].value, xl);
                        seen++;
                    }
            }
            /* libarchive reads both the LIBARCHIVE. and SCHILY. records
             * (Go's tar reads the SCHILY. ones): each name twice. */
            assert_int_equal(seen, 2 * e->nxattrs);
        }
    }
    assert_int_equal(i, t->n);
    archive_read_free(ar);

    /* A change of metadata changes the bytes. */
    t->e[0].mtime_sec++;
    membuf c;
    write_tar(f, t, &c);
    assert_true(c.b.len != a.b.len || memcmp(c.b.data, a.b.data, a.b.len) != 0);
    cs_buf_release(&a.b);
    cs_buf_release(&b.b);
    cs_buf_release(&c.b);
    cs_tree_free(t);
}

static void
empty_tree_is_an_empty_tar(void **state)
{
    fx *f = *state;
    cs_tree *t = cs_tree_new();
    membuf m;
    write_tar(f, t, &m);
    assert_int_equal(m.b.len, 1024);
    for (size_t i = 0; i < m.b.len; i++)
        assert_int_equal(m.b.data[i], 0);
    cs_buf_release(&m.b);
    cs_tree_free(t);
}

typedef struct seen {
    char name[64];
    unsigned type;
    char hardlink[64];
    size_t size;
} seen;

static size_t
list_tar(const cs_buf *b, seen *out, size_t max, const fx *f, const uint8_t *want, size_t wlen)
{
    (void) f;
    struct archive *a = open_tar_mem(b->data, b->len);
    struct archive_entry *ae;
    size_t n = 0;
    while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
        assert_true(n < max);
        snprintf(out[n].name, sizeof(out[n].name), "%s", archive_entry_pathname(ae));
        out[n].type = archive_entry_filetype(ae);
        const char *h = archive_entry_hardlink(ae);
        snprintf(out[n].hardlink, sizeof(out[n].hardlink), "%s", h ? h : "");
        cs_buf data;
        read_all_data(a, &data);
        out[n].size = data.len;
        if (!h && out[n].type == AE_IFREG && data.len == wlen)
            assert_memory_equal(data.data, want, wlen);
        cs_buf_release(&data);
        n++;
    }
    archive_read_free(a);
    return n;
}

static void
hardlink_before_target_becomes_the_file(void **state)
{
    fx *f = *state;
    cs_tree *t = cs_tree_new();
    /* "a/link" sorts before its target "b/file"; "c/link2" after it. */
    test_tree_add(t, "a", CS_E_DIR);
    add_link(t, "a/link", "b/file", &f->big, f->big_len);
    test_tree_add(t, "b", CS_E_DIR);
    cs_entry *tgt = test_tree_add_file(t, "b/file", &f->big, f->big_len);
    tgt->mode = 0700;
    test_tree_add(t, "c", CS_E_DIR);
    add_link(t, "c/link2", "b/file", &f->big, f->big_len);
    /* A chain: d/link3 -> c/link2 -> b/file. */
    add_link(t, "d-link3", "c/link2", &f->big, f->big_len);
    /* Target absent from the tree: the link becomes a file. */
    add_link(t, "e-orphan", "zz/gone", &f->small, 6);
    /* Ordinary case: target first. */
    test_tree_add_file(t, "f-file", &f->small, 6);
    add_link(t, "g-link", "f-file", &f->small, 6);
    cs_tree_sort(t);

    membuf m;
    write_tar(f, t, &m);
    seen s[16];
    size_t n = list_tar(&m.b, s, 16, f, f->big_bytes, f->big_len);
    assert_int_equal(n, 10);
    /* a/ a/link b/ b/file c/ c/link2 d-link3 e-orphan f-file g-link */
    assert_string_equal(s[1].name, "a/link");
    assert_int_equal(s[1].type, AE_IFREG);
    assert_string_equal(s[1].hardlink, "");
    assert_int_equal(s[1].size, f->big_len);
    assert_string_equal(s[3].name, "b/file");
    assert_string_equal(s[3].hardlink, "a/link");
    assert_int_equal(s[3].size, 0);
    assert_string_equal(s[5].name, "c/link2");
    assert_string_equal(s[5].hardlink, "a/link");
    assert_string_equal(s[6].name, "d-link3");
    assert_string_equal(s[6].hardlink, "a/link");
    assert_string_equal(s[7].name, "e-orphan");
    assert_int_equal(s[7].type, AE_IFREG);
    assert_string_equal(s[7].hardlink, "");
    assert_int_equal(s[7].size, 6);
    assert_string_equal(s[9].name, "g-link");
    assert_string_equal(s[9].hardlink, "f-file");

    /* The file takes the target's metadata (the inode's). */
    struct archive *a = open_tar_mem(m.b.data, m.b.len);
    struct archive_entry *ae;
    assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
    assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
    assert_int_equal(archive_entry_perm(ae), 0700);
    archive_read_free(a);
    cs_buf_release(&m.b);
    cs_tree_free(t);
}

static void
compress_sink_is_deterministic_and_hashes_both_streams(void **state)
{
    fx *f = *state;
    cs_compression comps[] = { CS_COMP_NONE, CS_COMP_GZIP, CS_COMP_ZSTD };
    for (size_t i = 0; i < 3; i++) {
        cs_csink_result r[2];
        membuf m[2];
        for (int k = 0; k < 2; k++) {
            cs_error *err = NULL;
            cs_csink *s;
            cs_buf_init(&m[k].b);
            assert_int_equal(cs_csink_new(comps[i], 0, mem_sink, &m[k], &s, &err), 0);
            /* Odd write sizes. */
            for (size_t off = 0; off < f->big_len; off += 1000 + off % 7)
                assert_int_equal(cs_csink_write(s, f->big_bytes + off,
                                                off + 1000 + off % 7 > f->big_len ? f->big_len - off
                                                                                  : 1000 + off % 7,
                                                &err),
                                 0);
            assert_int_equal(cs_csink_finish(s, &r[k], &err), 0);
            cs_csink_free(s);
        }
        cs_digest d;
        cs_sha256(f->big_bytes, f->big_len, &d);
        assert_true(cs_digest_eq(&r[0].diff_id, &d));
        assert_int_equal(r[0].tar_size, f->big_len);
        cs_sha256(m[0].b.data, m[0].b.len, &d);
        assert_true(cs_digest_eq(&r[0].blob, &d));
        assert_int_equal(r[0].blob_size, m[0].b.len);
        assert_int_equal(m[0].b.len, m[1].b.len);
        assert_memory_equal(m[0].b.data, m[1].b.data, m[0].b.len);
        if (comps[i] == CS_COMP_GZIP) {
            /* gzip header: mtime 0, OS 255. */
            assert_int_equal(m[0].b.data[0], 0x1f);
            assert_int_equal(m[0].b.data[4] | m[0].b.data[5] | m[0].b.data[6] | m[0].b.data[7], 0);
            assert_int_equal(m[0].b.data[9], 255);
        }
        if (comps[i] != CS_COMP_NONE) {
            /* It decompresses back to the input. */
            struct archive *a = archive_read_new();
            archive_read_support_filter_all(a);
            archive_read_support_format_raw(a);
            assert_int_equal(archive_read_open_memory(a, m[0].b.data, m[0].b.len), ARCHIVE_OK);
            struct archive_entry *ae;
            assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
            cs_buf data;
            read_all_data(a, &data);
            assert_int_equal(data.len, f->big_len);
            assert_memory_equal(data.data, f->big_bytes, f->big_len);
            cs_buf_release(&data);
            archive_read_free(a);
        }
        cs_buf_release(&m[0].b);
        cs_buf_release(&m[1].b);
    }
}

/* One compression of in (n bytes) on `threads` threads, written in pieces
 * of `step` bytes (0: all at once); the compressed bytes into out. */
static void
compress_with(cs_compression c, unsigned threads, const uint8_t *in, size_t n, size_t step,
              cs_buf *out)
{
    cs_error *err = NULL;
    cs_csink *s;
    membuf m;
    cs_buf_init(&m.b);
    assert_int_equal(cs_csink_new_mt(c, 0, threads, mem_sink, &m, &s, &err), 0);
    for (size_t off = 0; off < n;) {
        size_t k = step && n - off > step ? step : n - off;
        assert_int_equal(cs_csink_write(s, in + off, k, &err), 0);
        off += k;
    }
    cs_csink_result r;
    assert_int_equal(cs_csink_finish(s, &r, &err), 0);
    assert_int_equal(r.blob_size, m.b.len);
    cs_csink_free(s);
    *out = m.b;
}

/* in must be exactly one gzip member (or zstd frame) of the n bytes want. */
static void
check_decompresses(cs_compression c, const cs_buf *z, const uint8_t *want, size_t n)
{
    uint8_t *got = malloc(n + 1);
    assert_non_null(got);
    if (c == CS_COMP_GZIP) {
        z_stream s = { 0 };
        assert_int_equal(inflateInit2(&s, 15 + 16), Z_OK);
        s.next_in = z->data;
        s.avail_in = (uInt) z->len;
        s.next_out = got;
        s.avail_out = (uInt) n + 1;
        assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
        assert_int_equal(s.avail_in, 0); /* one member, nothing after it */
        assert_int_equal(s.total_out, n);
        inflateEnd(&s);
    } else {
        size_t r = ZSTD_decompress(got, n + 1, z->data, z->len);
        assert_false(ZSTD_isError(r));
        assert_int_equal(r, n);
    }
    assert_memory_equal(got, want, n);
    free(got);
}

static void
compressed_bytes_do_not_depend_on_threads_or_write_sizes(void **state)
{
    (void) state;
    /* 3.3 MiB: text-like and random runs, more than a zstd job (1 MiB)
     * and several gzip blocks (512 KiB). */
    size_t big = (3u << 20) + (300u << 10) + 17;
    uint8_t *in = malloc(big);
    assert_non_null(in);
    test_fill_random(in, big, 77);
    for (size_t i = 0; i < big; i++)
        if ((i / 50000) % 2)
            in[i] = (uint8_t) ('a' + in[i] % 4);
    const size_t sizes[] = { 0, 1, 512u << 10, (512u << 10) + 1, (544u << 10), big };
    cs_compression comps[] = { CS_COMP_GZIP, CS_COMP_ZSTD };
    for (size_t c = 0; c < 2; c++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            cs_buf ref;
            compress_with(comps[c], 1, in, sizes[i], 0, &ref);
            check_decompresses(comps[c], &ref, in, sizes[i]);
            const unsigned threads[] = { 2, 4, 3 };
            const size_t steps[] = { 4096, 1000, 65537 };
            for (size_t t = 0; t < 3; t++) {
                cs_buf got;
                compress_with(comps[c], threads[t], in, sizes[i], steps[t], &got);
                assert_int_equal(got.len, ref.len);
                assert_memory_equal(got.data, ref.data, ref.len);
                cs_buf_release(&got);
            }
            cs_buf_release(&ref);
        }
    }
    free(in);
}

typedef struct lb_job {
    cs_digest tree;
    cs_compression c;
    cs_layer_blob lb;
    int rc;
} lb_job;

static void
lb_put(fx *f, const lb_job *j)
{
    cs_error *err = NULL;
    MDB_txn *txn = test_begin(f->sb.s, true);
    assert_int_equal(cs_layer_blob_put(cs_store_db(f->sb.s), txn, &j->tree, j->c, &j->lb, &err), 0);
    test_commit(txn);
}

static lb_job
lb_get(fx *f, const cs_digest *tree, cs_compression c)
{
    cs_error *err = NULL;
    lb_job j = { .tree = *tree, .c = c };
    MDB_txn *txn = test_begin(f->sb.s, false);
    j.rc = cs_layer_blob_get(cs_store_db(f->sb.s), txn, &j.tree, j.c, &j.lb, &err);
    mdb_txn_abort(txn);
    if (j.rc < 0 && j.rc != -CS_ENOTFOUND)
        fail_msg("%s", err->msg);
    cs_error_free(err);
    return j;
}

static void
layer_blob_records_round_trip(void **state)
{
    fx *f = *state;
    cs_error *err = NULL;
    lb_job j = { .c = CS_COMP_ZSTD };
    test_fill_random(j.tree.b, 32, 1);
    test_fill_random(j.lb.diff_id.b, 32, 2);
    test_fill_random(j.lb.blob.b, 32, 3);
    j.lb.size = 0x0102030405060708ull;
    lb_put(f, &j);

    lb_job g = lb_get(f, &j.tree, CS_COMP_ZSTD);
    assert_int_equal(g.rc, 0);
    assert_true(cs_digest_eq(&g.lb.diff_id, &j.lb.diff_id));
    assert_true(cs_digest_eq(&g.lb.blob, &j.lb.blob));
    assert_int_equal(g.lb.size, j.lb.size);
    /* Keyed by compression too. */
    assert_int_equal(lb_get(f, &j.tree, CS_COMP_GZIP).rc, -CS_ENOTFOUND);

    /* The value layout of export.h: diff_id | blob | size u64 BE. */
    MDB_txn *txn;
    assert_int_equal(cs_db_begin(cs_store_db(f->sb.s), MDB_RDONLY, &txn, &err), 0);
    uint8_t key[33];
    memcpy(key, j.tree.b, 32);
    key[32] = CS_COMP_ZSTD | 0x80; /* format 2: zstd on workers */
    MDB_val v;
    assert_int_equal(cs_db_get(cs_store_db(f->sb.s), txn, CS_T_LAYER_BLOBS, key, 33, &v, &err), 0);
    assert_int_equal(v.mv_size, 72);
    assert_memory_equal(v.mv_data, j.lb.diff_id.b, 32);
    assert_memory_equal((uint8_t *) v.mv_data + 64, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    mdb_txn_abort(txn);
}

/* ---- export ---- */

/* fill, and demo:1.0 of the three layers f->trees (the first one twice), id f->id. */
static void
fill_with_image(void *fp, cs_db *db, MDB_txn *txn)
{
    fx *f = fp;
    fill(f, db, txn);
    f->trees[0] = test_put_tree(db, txn, rich_tree(f, true));
    cs_tree *t = cs_tree_new();
    test_tree_add(t, "a", CS_E_DIR);
    add_link(t, "a/link", "b/file", &f->big, f->big_len);
    test_tree_add(t, "b", CS_E_DIR);
    test_tree_add_file(t, "b/file", &f->big, f->big_len);
    test_tree_add_file(t, "etc/.wh.hello", NULL, 0);
    test_tree_add(t, "etc", CS_E_DIR);
    f->trees[1] = test_put_tree(db, txn, t);
    f->trees[2] = f->trees[0]; /* the same layer twice */
    /* diff_ids as another tar writer made them: export rewrites them. */
    const char *config =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\"],"
        "\"Cmd\":[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":["
        "\"sha256:0000000000000000000000000000000000000000000000000000000000000001\","
        "\"sha256:0000000000000000000000000000000000000000000000000000000000000002\","
        "\"sha256:0000000000000000000000000000000000000000000000000000000000000003\"]},"
        "\"history\":[{\"created_by\":\"hand\"}],\"zlast\":true}";
    f->id = test_put_image(db, txn, config, f->trees, 3, "docker.io/library/demo:1.0");
}

/* The fixture with fill_with_image's image in its store. */
static int
image_setup(void **state)
{
    return test_sandbox_fill(state, sizeof(fx), 0, fill_with_image);
}

static void
export_ok(fx *f, const char *name, const char *path, cs_format fmt, cs_compression c)
{
    cs_error *err = NULL;
    int rc = cs_export(f->sb.s, name, path, fmt, c, &err);
    if (rc < 0)
        fail_msg("export: %s", err->msg);
}

static bool
files_equal(const char *a, const char *b)
{
    cs_buf x, y;
    test_read_file(a, &x);
    test_read_file(b, &y);
    bool eq = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
    cs_buf_release(&x);
    cs_buf_release(&y);
    return eq;
}

/* Extracts a tar file (plain members only) into dir. */
static void
extract(const char *tarpath, const char *dir)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, tarpath, 65536), ARCHIVE_OK);
    struct archive_entry *ae;
    cs_error *err = NULL;
    assert_int_equal(cs_mkdir_p(dir, 0755, &err), 0);
    while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
        char *p = cs_path_join(dir, archive_entry_pathname(ae));
        if (archive_entry_filetype(ae) == AE_IFDIR) {
            assert_int_equal(cs_mkdir_p(p, 0755, &err), 0);
        } else {
            cs_buf data;
            read_all_data(a, &data);
            char *slash = strrchr(p, '/');
            *slash = '\0';
            assert_int_equal(cs_mkdir_p(p, 0755, &err), 0);
            *slash = '/';
            assert_int_equal(cs_write_file_atomic(p, data.data, data.len, &err), 0);
            cs_buf_release(&data);
        }
        free(p);
    }
    archive_read_free(a);
}

/* sha256 of a blob after decompression (any filter). */
static cs_digest
uncompressed_digest(const char *path)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_raw(a);
    assert_int_equal(archive_read_open_filename(a, path, 65536), ARCHIVE_OK);
    struct archive_entry *ae;
    cs_digest d;
    if (archive_read_next_header(a, &ae) != ARCHIVE_OK) {
        cs_sha256("", 0, &d); /* raw format refuses an empty input */
    } else {
        cs_buf data;
        read_all_data(a, &data);
        cs_sha256(data.data, data.len, &d);
        cs_buf_release(&data);
    }
    archive_read_free(a);
    return d;
}

static json_t *
load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        fail_msg("%s: %s", path, je.text);
    return j;
}

static char *
blob_path(const char *dir, const char *digest)
{
    char *p;
    assert_true(strncmp(digest, "sha256:", 7) == 0);
    assert_true(asprintf(&p, "%s/blobs/sha256/%s", dir, digest + 7) > 0);
    return p;
}

static void
check_blob(const char *dir, json_t *desc)
{
    const char *dg = json_string_value(json_object_get(desc, "digest"));
    char *p = blob_path(dir, dg);
    cs_buf b;
    test_read_file(p, &b);
    assert_int_equal(b.len, json_integer_value(json_object_get(desc, "size")));
    cs_digest d;
    char ds[CS_DIGEST_STR];
    cs_sha256(b.data, b.len, &d);
    cs_digest_str(&d, ds);
    assert_string_equal(ds, dg);
    cs_buf_release(&b);
    free(p);
}

/* Checks an OCI layout: blobs match their digests, the config's diff_ids
 * are the layers' uncompressed digests. Returns the number of manifests. */
static size_t
check_layout(const char *dir, const char *ref, const char *layer_mt)
{
    char *p = cs_path_join(dir, "oci-layout");
    json_t *lay = load_json(p);
    assert_string_equal(json_string_value(json_object_get(lay, "imageLayoutVersion")), "1.0.0");
    json_decref(lay);
    free(p);
    p = cs_path_join(dir, "index.json");
    json_t *idx = load_json(p);
    free(p);
    json_t *ms = json_object_get(idx, "manifests");
    size_t nman = json_array_size(ms);
    json_t *md = NULL;
    for (size_t i = 0; i < nman; i++) {
        json_t *ann = json_object_get(json_array_get(ms, i), "annotations");
        const char *r =
            json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));
        if (r && !strcmp(r, ref))
            md = json_array_get(ms, i);
    }
    assert_non_null(md);
    check_blob(dir, md);
    p = blob_path(dir, json_string_value(json_object_get(md, "digest")));
    json_t *man = load_json(p);
    free(p);
    assert_int_equal(json_integer_value(json_object_get(man, "schemaVersion")), 2);
    json_t *cd = json_object_get(man, "config");
    check_blob(dir, cd);
    p = blob_path(dir, json_string_value(json_object_get(cd, "digest")));
    json_t *cfg = load_json(p);
    free(p);
    json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    json_t *ls = json_object_get(man, "layers");
    assert_int_equal(json_array_size(ls), 3);
    assert_int_equal(json_array_size(ids), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *l = json_array_get(ls, i);
        assert_string_equal(json_string_value(json_object_get(l, "mediaType")), layer_mt);
        check_blob(dir, l);
        p = blob_path(dir, json_string_value(json_object_get(l, "digest")));
        cs_digest d = uncompressed_digest(p);
        free(p);
        char ds[CS_DIGEST_STR];
        cs_digest_str(&d, ds);
        assert_string_equal(json_string_value(json_array_get(ids, i)), ds);
    }
    /* Layers 0 and 2 are the same tree. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(ls, 0), "digest")),
                        json_string_value(json_object_get(json_array_get(ls, 2), "digest")));
    /* Other config fields are kept, in order. */
    assert_true(json_is_true(json_object_get(cfg, "zlast")));
    const char *last = NULL;
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v) last = k;
    assert_string_equal(last, "zlast");
    json_decref(cfg);
    json_decref(man);
    json_decref(idx);
    return nman;
}

static void run_ok(const char *fmt, ...) CS_PRINTF(1, 2);
static void
run_ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd;
    assert_true(vasprintf(&cmd, fmt, ap) > 0);
    va_end(ap);
    int r = system(cmd);
    if (r != 0)
        fail_msg("command failed (%d): %s", r, cmd);
    free(cmd);
}

/* Exports demo:1.0 (by its full name, then its short one) to p1 with c1 and
 * to p2 with c2. */
static void
export_both(fx *f, const char *p1, const char *p2, cs_format fmt, cs_compression c1,
            cs_compression c2)
{
    export_ok(f, "docker.io/library/demo:1.0", p1, fmt, c1);
    export_ok(f, "demo:1.0", p2, fmt, c2);
}

static void
export_oci_dir_is_valid_deterministic_and_merges(void **state)
{
    fx *f = *state;
    const char *d1 = fpath(f, "oci1"), *d2 = fpath(f, "oci2");
    export_both(f, d1, d2, CS_FMT_OCI_DIR, CS_COMP_GZIP, CS_COMP_GZIP);
    assert_int_equal(check_layout(d1, "1.0", MT_LAYER_GZIP_FOR_TEST), 1);

    /* layer_blobs now knows the trees, for gzip and for plain tar. */
    lb_job g = lb_get(f, &f->trees[1], CS_COMP_GZIP);
    assert_int_equal(g.rc, 0);
    lb_job n = lb_get(f, &f->trees[1], CS_COMP_NONE);
    assert_int_equal(n.rc, 0);
    assert_true(cs_digest_eq(&g.lb.diff_id, &n.lb.diff_id));
    assert_true(cs_digest_eq(&n.lb.diff_id, &n.lb.blob));
    char hex[CS_DIGEST_HEX], *p;
    cs_digest_hex(&g.lb.blob, hex);
    assert_true(asprintf(&p, "%s/blobs/sha256/%s", d1, hex) > 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, g.lb.size);
    free(p);

    /* Byte-identical files. */
    const char *names[] = { "index.json", "oci-layout" };
    for (size_t i = 0; i < 2; i++) {
        char *a = cs_path_join(d1, names[i]), *b = cs_path_join(d2, names[i]);
        assert_true(files_equal(a, b));
        free(a);
        free(b);
    }

    /* A second image name (by id: no ref) and zstd join the same layout. */
    char idhex[CS_DIGEST_HEX];
    cs_digest_hex(&f->id, idhex);
    export_ok(f, idhex, d1, CS_FMT_OCI_DIR, CS_COMP_ZSTD);
    char *ip = cs_path_join(d1, "index.json");
    json_t *idx = load_json(ip);
    assert_int_equal(json_array_size(json_object_get(idx, "manifests")), 2);
    json_decref(idx);
    /* Re-exporting the tag replaces its entry. */
    export_ok(f, "demo:1.0", d1, CS_FMT_OCI_DIR, CS_COMP_ZSTD);
    assert_int_equal(check_layout(d1, "1.0", MT_LAYER_ZSTD_FOR_TEST), 2);
    free(ip);

    if (test_want(test_have_tool("skopeo") && test_have_tool("umoci"), "skopeo/umoci")) {
        run_ok("skopeo inspect oci:%s:1.0 >/dev/null", d2);
        run_ok("cd %s && umoci unpack %s --image oci2:1.0 bundle >/dev/null", f->sb.dir,
               geteuid() == 0 ? "" : "--rootless");
        const char *bp = fpath(f, "bundle/rootfs/usr/big.bin");
        cs_buf b;
        test_read_file(bp, &b);
        assert_int_equal(b.len, f->big_len);
        assert_memory_equal(b.data, f->big_bytes, f->big_len);
        cs_buf_release(&b);
        bp = fpath(f, "bundle/rootfs/b/file");
        assert_int_equal(stat(bp, &st), 0);
        assert_int_equal(st.st_nlink, 2);
    }
}

static void
export_archives_are_valid_and_deterministic(void **state)
{
    fx *f = *state;
    const char *a1 = fpath(f, "img.oci.tar"), *a2 = fpath(f, "img2.oci.tar");
    /* First export: digests unknown (temp files); second: streamed. */
    export_both(f, a1, a2, CS_FMT_OCI_ARCHIVE, CS_COMP_GZIP, CS_COMP_GZIP);
    assert_true(files_equal(a1, a2));
    const char *x = fpath(f, "x-oci");
    extract(a1, x);
    assert_int_equal(check_layout(x, "1.0", MT_LAYER_GZIP_FOR_TEST), 1);

    const char *d1 = fpath(f, "img.docker.tar"), *d2 = fpath(f, "img2.docker.tar");
    export_both(f, d1, d2, CS_FMT_DOCKER_ARCHIVE, CS_COMP_ZSTD, CS_COMP_NONE);
    assert_true(files_equal(d1, d2));
    const char *y = fpath(f, "x-docker");
    extract(d1, y);
    char *mp = cs_path_join(y, "manifest.json");
    json_t *m = load_json(mp);
    free(mp);
    json_t *m0 = json_array_get(m, 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(m0, "RepoTags"), 0)),
                        "demo:1.0");
    const char *cfgname = json_string_value(json_object_get(m0, "Config"));
    char *cp = cs_path_join(y, cfgname);
    cs_buf cb;
    test_read_file(cp, &cb);
    cs_digest cd;
    char hex[CS_DIGEST_HEX];
    cs_sha256(cb.data, cb.len, &cd);
    cs_digest_hex(&cd, hex);
    assert_memory_equal(cfgname, hex, 64);
    cs_buf_release(&cb);
    json_t *cfg = load_json(cp);
    free(cp);
    json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    json_t *ls = json_object_get(m0, "Layers");
    assert_int_equal(json_array_size(ls), 3);
    for (size_t i = 0; i < 3; i++) {
        char *lp = cs_path_join(y, json_string_value(json_array_get(ls, i)));
        cs_digest d = uncompressed_digest(lp);
        char ds[CS_DIGEST_STR];
        cs_digest_str(&d, ds);
        assert_string_equal(json_string_value(json_array_get(ids, i)), ds);
        free(lp);
    }
    json_decref(cfg);
    json_decref(m);
    char *rp = cs_path_join(y, "repositories");
    json_t *r = load_json(rp);
    assert_non_null(json_object_get(json_object_get(r, "demo"), "1.0"));
    json_decref(r);
    free(rp);

    if (test_want(test_have_tool("skopeo"), "skopeo")) {
        run_ok("skopeo inspect oci-archive:%s >/dev/null", a1);
        run_ok("skopeo inspect docker-archive:%s >/dev/null", d1);
        run_ok("skopeo copy -q docker-archive:%s oci:%s/copied:x >/dev/null", d1, f->sb.dir);
        run_ok("skopeo copy -q oci-archive:%s oci:%s/copied2:y >/dev/null", a1, f->sb.dir);
    }
}

static void
export_recovers_from_a_wrong_layer_blobs_record(void **state)
{
    fx *f = *state;
    const char *good = fpath(f, "good.tar"), *p = fpath(f, "again.tar");
    export_ok(f, "demo:1.0", good, CS_FMT_OCI_ARCHIVE, CS_COMP_ZSTD);
    lb_job right = lb_get(f, &f->trees[1], CS_COMP_ZSTD);
    assert_int_equal(right.rc, 0);

    /* As if the compressor's output had changed since it was recorded. */
    lb_job j = { .tree = f->trees[1], .c = CS_COMP_ZSTD };
    test_fill_random(j.lb.diff_id.b, 32, 11);
    test_fill_random(j.lb.blob.b, 32, 12);
    j.lb.size = right.lb.size + 100;
    lb_put(f, &j);
    export_ok(f, "demo:1.0", p, CS_FMT_OCI_ARCHIVE, CS_COMP_ZSTD);
    assert_true(files_equal(good, p));
    lb_job now = lb_get(f, &f->trees[1], CS_COMP_ZSTD);
    assert_true(cs_digest_eq(&now.lb.blob, &right.lb.blob));
    assert_int_equal(now.lb.size, right.lb.size);

    /* Shorter than recorded, then into a layout directory. */
    j.lb.size = right.lb.size - 100;
    lb_put(f, &j);
    export_ok(f, "demo:1.0", p, CS_FMT_OCI_ARCHIVE, CS_COMP_ZSTD);
    assert_true(files_equal(good, p));
    lb_put(f, &j);
    const char *d = fpath(f, "dir");
    export_ok(f, "demo:1.0", d, CS_FMT_OCI_DIR, CS_COMP_ZSTD);
    check_layout(d, "1.0", MT_LAYER_ZSTD_FOR_TEST);
}

static void
export_of_an_unknown_image_fails_and_leaves_no_file(void **state)
{
    fx *f = *state;
    cs_error *err = NULL;
    const char *p = fpath(f, "none.tar");
    assert_int_equal(cs_export(f->sb.s, "nosuch:1", p, CS_FMT_OCI_ARCHIVE, CS_COMP_GZIP, &err),
                     -CS_ENOTFOUND);
    assert_non_null(err);
    cs_error_clear(&err);
    struct stat st;
    assert_int_equal(stat(p, &st), -1);

    /* A failure while writing (the directory is gone) leaves nothing. */
    p = fpath(f, "missing-dir/out.tar");
    assert_true(cs_export(f->sb.s, "demo:1.0", p, CS_FMT_DOCKER_ARCHIVE, CS_COMP_NONE, &err) < 0);
    cs_error_clear(&err);

    /* A layer whose content is missing fails midway: no output, no temp. */
    {
        MDB_txn *txn;
        cs_db *db = cs_store_db(f->sb.s);
        assert_int_equal(cs_db_begin(db, 0, &txn, &err), 0);
        cs_tree *t = cs_tree_new();
        cs_digest missing;
        test_fill_random(missing.b, 32, 99);
        test_tree_add_file(t, "a", &f->big, f->big_len);
        test_tree_add_file(t, "b", &missing, 1000);
        cs_digest td;
        assert_int_equal(cs_tree_put(db, txn, t, &td, &err) < 0, 0);
        cs_tree_free(t);
        const char *config = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
        cs_image img = { .config = (char *) config, .config_len = strlen(config), .nlayers = 1 };
        img.layers = &td;
        cs_sha256(config, img.config_len, &img.id);
        assert_int_equal(cs_image_put(db, txn, &img, &err), 0);
        assert_int_equal(cs_tag_set(db, txn, "docker.io/library/broken:latest", &img.id, &err), 0);
        assert_int_equal(cs_db_commit(txn, &err), 0);
        const char *out = fpath(f, "sub");
        assert_int_equal(mkdir(out, 0755), 0);
        char *a = cs_path_join(out, "broken.tar");
        assert_true(cs_export(f->sb.s, "broken", a, CS_FMT_OCI_ARCHIVE, CS_COMP_GZIP, &err) < 0);
        assert_non_null(strstr(err->msg, "broken.tar"));
        cs_error_clear(&err);
        char *d = cs_path_join(out, "layout");
        assert_true(cs_export(f->sb.s, "broken", d, CS_FMT_OCI_DIR, CS_COMP_GZIP, &err) < 0);
        cs_error_clear(&err);
        char *idx = cs_path_join(d, "index.json");
        assert_int_equal(stat(idx, &st), -1);
        char *cmd;
        assert_true(asprintf(&cmd, "test -z \"$(find %s -type f)\"", out) > 0);
        assert_int_equal(system(cmd), 0);
        free(cmd);
        free(idx);
        free(d);
        free(a);
    }

    /* An existing non-layout directory is refused. */
    p = fpath(f, "notlayout");
    assert_int_equal(mkdir(p, 0755), 0);
    char *q = cs_path_join(p, "file");
    assert_int_equal(cs_write_file_atomic(q, "x", 1, &err), 0);
    assert_int_equal(cs_export(f->sb.s, "demo:1.0", p, CS_FMT_OCI_DIR, CS_COMP_GZIP, &err),
                     -CS_EEXIST);
    cs_error_clear(&err);
    free(q);
}

/* The pid of a process that has exited (and been reaped). */
static pid_t
dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    return pid;
}

static bool
exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void
export_removes_temp_files_of_dead_exports_beside_its_output(void **state)
{
    fx *f = *state;
    const char *out = fpath(f, "out");
    assert_int_equal(mkdir(out, 0755), 0);
    pid_t dead = dead_pid();
    char *stale = cs_xasprintf("%s/.x.tar.cstore-tmp-%ld-abcdef", out, (long) dead);
    char *live = cs_xasprintf("%s/.x.tar.cstore-tmp-%ld-abcdef", out, (long) getppid());
    char *other = cs_xasprintf("%s/.x.tar.tmp-abcdef", out);
    test_write_file(stale, "x", 1, 0600);
    test_write_file(live, "x", 1, 0600);
    test_write_file(other, "x", 1, 0600);
    char *p = cs_path_join(out, "demo.tar");
    export_ok(f, "demo:1.0", p, CS_FMT_OCI_ARCHIVE, CS_COMP_GZIP);
    assert_false(exists(stale));
    assert_true(exists(live));  /* a running process's */
    assert_true(exists(other)); /* not ours to judge */

    /* A layout dir: its blobs dir too. */
    char *d = cs_path_join(out, "layout");
    char *blobs = cs_path_join(d, "blobs/sha256");
    export_ok(f, "demo:1.0", d, CS_FMT_OCI_DIR, CS_COMP_GZIP); /* an existing layout */
    char *stale2 = cs_xasprintf("%s/.layer.cstore-tmp-%ld-abcdef", blobs, (long) dead);
    test_write_file(stale2, "x", 1, 0600);
    export_ok(f, "demo:1.0", d, CS_FMT_OCI_DIR, CS_COMP_GZIP);
    assert_false(exists(stale2));

    /* A failed export leaves no temp file of its own. */
    cs_error *err = NULL;
    char *bad = cs_path_join(out, "bad.tar");
    assert_true(cs_export(f->sb.s, "nosuch:1", bad, CS_FMT_OCI_ARCHIVE, CS_COMP_GZIP, &err) < 0);
    cs_error_clear(&err);
    assert_int_equal(
        test_sh("test -z \"$(find %s -name '*cstore-tmp-%ld-*')\"", out, (long) getpid()), 0);
    free(bad);
    free(stale2);
    free(blobs);
    free(d);
    free(p);
    free(other);
    free(live);
    free(stale);
}

static void
store_open_removes_half_made_snapshots_of_dead_processes(void **state)
{
    fx *f = *state;
    const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    pid_t dead = dead_pid();
    char *snaps = cs_path_join(f->sb.root, "snapshots");
    char *tmp = cs_xasprintf("%s/%s.tmp-%ld", snaps, hex, (long) dead);
    char *del = cs_xasprintf("%s/%s.del-%ld-3", snaps, hex, (long) dead);
    char *live = cs_xasprintf("%s/%s.tmp-%ld", snaps, hex, (long) getppid());
    char *fin = cs_xasprintf("%s/%s", snaps, hex);
    assert_int_equal(test_sh("mkdir -p %s/fs/a %s/x %s/fs %s/fs", tmp, del, live, fin), 0);
    cs_store_close(f->sb.s);
    f->sb.s = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_store_open(f->sb.root, 0, &f->sb.s, &err), 0);
    f->sb.db = cs_store_db(f->sb.s);
    assert_false(exists(tmp));
    assert_false(exists(del));
    assert_true(exists(live)); /* a running process's: not half-made yet */
    assert_true(exists(fin));

    /* gc runs beside builds: a live process's temp dir stays. */
    uint64_t removed = 0;
    assert_int_equal(cs_snapshot_prune(f->sb.s, 0, &removed, NULL, &err), 0);
    assert_true(exists(live));
    free(fin);
    free(live);
    free(del);
    free(tmp);
    free(snaps);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(tar_is_deterministic_and_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_tree_is_an_empty_tar, setup, teardown),
        cmocka_unit_test_setup_teardown(hardlink_before_target_becomes_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(compress_sink_is_deterministic_and_hashes_both_streams,
                                        setup, teardown),
        cmocka_unit_test(compressed_bytes_do_not_depend_on_threads_or_write_sizes),
        cmocka_unit_test_setup_teardown(layer_blob_records_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(export_oci_dir_is_valid_deterministic_and_merges,
                                        image_setup, teardown),
        cmocka_unit_test_setup_teardown(export_archives_are_valid_and_deterministic, image_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(export_recovers_from_a_wrong_layer_blobs_record,
                                        image_setup, teardown),
        cmocka_unit_test_setup_teardown(export_of_an_unknown_image_fails_and_leaves_no_file,
                                        image_setup, teardown),
        cmocka_unit_test_setup_teardown(export_removes_temp_files_of_dead_exports_beside_its_output,
                                        image_setup, teardown),
        cmocka_unit_test_setup_teardown(store_open_removes_half_made_snapshots_of_dead_processes,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
