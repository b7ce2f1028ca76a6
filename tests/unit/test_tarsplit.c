/* test_tarsplit.c - original tar framing kept at ingest and replayed at
 * export (tarsplit.c, ingest.c, export.c, gc.c, fsck.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cstore/content.h"
#include "cstore/export.h"
#include "cstore/gc.h"
#include "cstore/image.h"
#include "cstore/ingest.h"
#include "cstore/store.h"
#include "cstore/tarsplit.h"
#include "cstore/tree.h"

typedef test_sandbox fx;

/* ---- tars ---- */

static void
add_member(struct archive *a, const char *path, mode_t type, const void *data, size_t n,
           const char *link, bool xattr)
{
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, path);
    archive_entry_set_filetype(ae, type);
    archive_entry_set_perm(ae, type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_mtime(ae, 1700000000, 123456789);
    archive_entry_set_uid(ae, 1000);
    archive_entry_set_uname(ae, "someone");
    if (type == AE_IFLNK)
        archive_entry_set_symlink(ae, link);
    if (link && type == AE_IFREG) {
        archive_entry_set_hardlink(ae, link);
        n = 0;
    }
    if (xattr)
        archive_entry_xattr_add_entry(ae, "user.note", "hello", 5);
    archive_entry_set_size(ae, (la_int64_t) n);
    assert_true(archive_write_header(a, ae) >= ARCHIVE_WARN);
    if (n)
        assert_int_equal(archive_write_data(a, data, n), (la_ssize_t) n);
    archive_entry_free(ae);
}

/* A pax tar (libarchive's full pax writer) with xattrs, long and non-ASCII
 * names, links, a multi-chunk file and, with dup, two members of one path. */
static void
make_pax_tar(cs_buf *out, bool dup)
{
    test_tar t;
    test_tar_begin(&t);
    struct archive *a = t.a;
    size_t big = 3u << 20;
    uint8_t *data = malloc(big);
    test_fill_random(data, big, 42);
    char longname[300];
    memset(longname, 'n', sizeof(longname));
    memcpy(longname, "dir/", 4);
    longname[250] = 0;
    add_member(a, "dir/", AE_IFDIR, NULL, 0, NULL, false);
    add_member(a, "dir/big", AE_IFREG, data, big, NULL, true);
    add_member(a, "dir/x512", AE_IFREG, data + 7, 512, NULL, false);
    add_member(a, "dir/empty", AE_IFREG, NULL, 0, NULL, false);
    add_member(a, longname, AE_IFREG, data + 99, 1234, NULL, true);
    add_member(a, "dir/caf\xc3\xa9", AE_IFREG, data + 5, 77, NULL, false);
    add_member(a, "dir/sym", AE_IFLNK, NULL, 0, longname, false);
    add_member(a, "dir/hard", AE_IFREG, NULL, 0, "dir/x512", false);
    if (dup) {
        add_member(a, "dir/x512", AE_IFREG, data + 1000, 600, NULL, false);
        add_member(a, "dir/caf\xc3\xa9", AE_IFREG, data + 2000, 10, NULL, false);
    }
    test_tar_end(&t);
    *out = t.out;
    free(data);
}

/* Replays the record of diff_id: 0 or the (negative) code. */
static int
replay(fx *f, const cs_digest *diff_id, cs_buf *out, cs_digest *tree)
{
    cs_error *err = NULL;
    cs_buf_init(out);
    cs_tarsplit *ts = NULL;
    MDB_txn *txn = test_begin(f->s, false);
    int rc = cs_tarsplit_get(cs_store_db(f->s), txn, diff_id, &ts, &err);
    if (rc == 0) {
        if (tree)
            *tree = ts->tree;
        rc = cs_tarsplit_write(cs_store_db(f->s), txn, ts, test_sink_buf, out, &err);
        cs_tarsplit_free(ts);
    }
    mdb_txn_abort(txn);
    cs_error_free(err);
    return rc;
}

/* Ingests tar and checks the replay gives it back, byte for byte. */
static void
assert_round_trip(fx *f, const cs_buf *tar)
{
    cs_layer_info info;
    test_ingest_tar(f->s, tar->data, tar->len, 0, &info, NULL);
    cs_digest want;
    cs_sha256(tar->data, tar->len, &want);
    assert_true(cs_digest_eq(&want, &info.diff_id));
    cs_buf out;
    cs_digest tree;
    assert_int_equal(replay(f, &info.diff_id, &out, &tree), 0);
    assert_true(cs_digest_eq(&tree, &info.tree));
    assert_int_equal(out.len, tar->len);
    assert_memory_equal(out.data, tar->data, tar->len);
    cs_digest got;
    cs_sha256(out.data, out.len, &got);
    assert_true(cs_digest_eq(&got, &info.diff_id));
    cs_buf_release(&out);
}

/* A directory GNU tar can pack: long names and link targets, a hardlink,
 * a file of several chunks. */
static void
make_tree_dir(fx *f)
{
    char l[200];
    memset(l, 'L', sizeof(l));
    l[sizeof(l) - 1] = 0;
    assert_int_equal(test_sh("cd '%s' && mkdir -p src/sub && head -c 2500000 /dev/urandom > src/big"
                             " && printf hi > src/sub/'%s' && ln src/big src/big.hard"
                             " && ln -s 'sub/%s' src/sym && printf 1234 > src/x && mkdir src/empty",
                             f->work, l, l),
                     0);
}

/* ---- tests ---- */

static void
libarchive_pax_tars_with_and_without_duplicates_are_replayed_byte_for_byte(void **state)
{
    /* without, then with duplicate paths and hardlinks */
    for (int dups = 0; dups < 2; dups++) {
        test_case("%s duplicates", dups ? "with" : "without");
        cs_buf tar;
        make_pax_tar(&tar, dups);
        assert_round_trip(*state, &tar);
        cs_buf_release(&tar);
    }
}

static void
gnu_tar_formats_are_replayed_byte_for_byte(void **state)
{
    fx *f = *state;
    test_need(test_sh("tar --version >/dev/null 2>&1") == 0, "GNU tar");
    make_tree_dir(f);
    const char *formats[] = { "gnu", "posix", "ustar" };
    for (size_t i = 0; i < 3; i++) {
        cs_autofree char *p = cs_xasprintf("%s/%s.tar", f->work, formats[i]);
        /* ustar cannot hold the long names: only the short part. */
        assert_int_equal(test_sh("cd '%s/src' && tar --format=%s -cf '%s' %s", f->work, formats[i],
                                 p, i == 2 ? "big big.hard x empty" : "."),
                         0);
        cs_buf tar;
        test_read_file(p, &tar);
        assert_round_trip(f, &tar);
        cs_buf_release(&tar);
    }
}

static void
sparse_file_layer_loads_without_a_record(void **state)
{
    fx *f = *state;
    test_need(test_sh("tar --version >/dev/null 2>&1") == 0, "GNU tar");
    assert_int_equal(test_sh("cd '%s' && mkdir sp && truncate -s 4M sp/holes && printf data | dd "
                             "of=sp/holes bs=1 seek=1048576 conv=notrunc 2>/dev/null && printf x > "
                             "sp/plain && tar -C sp --sparse --format=posix -cf sp.tar holes plain",
                             f->work),
                     0);
    cs_autofree char *p = cs_path_join(f->work, "sp.tar");
    cs_buf tar;
    test_read_file(p, &tar);
    cs_layer_info info;
    test_ingest_tar(f->s, tar.data, tar.len, 0, &info, NULL);
    cs_buf out;
    assert_int_equal(replay(f, &info.diff_id, &out, NULL), -CS_ENOTFOUND);
    cs_buf_release(&out);
    cs_buf_release(&tar);
}

static void
record_encoding_round_trips_and_rejects_garbage(void **state)
{
    (void) state;
    cs_tarsplit *ts = cs_tarsplit_new();
    uint8_t h[1024] = { 1, 2, 3 };
    test_fill_random(ts->tree.b, 32, 3);
    size_t a = cs_tarsplit_add(ts, h, 1024, 700);
    ts->m[a].has_content = true;
    test_fill_random(ts->m[a].content.b, 32, 4);
    cs_tarsplit_add(ts, h, 512, 0);
    ts->trailer = 1024;
    ts->tar_size = 1024 + 1024 + 512 + 1024;
    cs_buf v;
    cs_buf_init(&v);
    cs_tarsplit_encode(ts, &v);
    cs_tarsplit *back = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_tarsplit_decode(v.data, v.len, &back, &err), 0);
    assert_int_equal(back->n, 2);
    assert_true(cs_digest_eq(&back->tree, &ts->tree));
    assert_true(back->m[0].has_content && !back->m[1].has_content);
    assert_true(cs_digest_eq(&back->m[0].content, &ts->m[0].content));
    assert_int_equal(back->m[0].size, 700);
    assert_memory_equal(back->hdr.data, ts->hdr.data, 1536);
    cs_tarsplit_free(back);
    back = NULL;
    v.data[v.len / 2] ^= 0xff;
    assert_int_equal(cs_tarsplit_decode(v.data, v.len, &back, &err), -CS_ECORRUPT);
    cs_error_clear(&err);
    assert_int_equal(cs_tarsplit_decode(v.data, 20, &back, &err), -CS_ECORRUPT);
    cs_error_clear(&err);
    cs_buf_release(&v);
    cs_tarsplit_free(ts);
}

/* ---- export, gc, fsck ---- */

/* An image of one layer (info) tagged t:latest; its config lists diff_id. */
static void
put_image(fx *f, const cs_layer_info *info, cs_digest *id)
{
    char ds[CS_DIGEST_STR];
    cs_digest_str(&info->diff_id, ds);
    cs_autofree char *cfg = cs_xasprintf("{\"architecture\":\"amd64\",\"os\":\"linux\","
                                         "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                                         ds);
    MDB_txn *txn = test_begin(f->s, true);
    *id = test_put_image(cs_store_db(f->s), txn, cfg, &info->tree, 1, "docker.io/library/t:latest");
    test_commit(txn);
}

/* The layer tar and the config name of a docker-archive. */
static void
read_docker_archive(const char *path, cs_buf *layer, char **config)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, path, 65536), ARCHIVE_OK);
    struct archive_entry *ae;
    cs_buf_init(layer);
    *config = NULL;
    while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
        const char *n = archive_entry_pathname(ae);
        size_t nl = strlen(n);
        bool is_layer = nl > 10 && !strcmp(n + nl - 10, "/layer.tar");
        if (nl == 69 && !strcmp(n + 64, ".json"))
            *config = cs_xstrdup(n);
        if (!is_layer)
            continue;
        uint8_t buf[65536];
        la_ssize_t k;
        while ((k = archive_read_data(a, buf, sizeof(buf))) > 0)
            cs_buf_append(layer, buf, (size_t) k);
    }
    archive_read_free(a);
    assert_non_null(*config);
}

/* *tar = make_pax_tar's tar (with its payload), ingested (*info) and made
 * the image *id. */
typedef struct pax_image {
    cs_buf tar;
    cs_layer_info info;
    cs_digest id;
} pax_image;

static pax_image
image_of_pax_tar(fx *f)
{
    pax_image im;
    make_pax_tar(&im.tar, true);
    test_ingest_tar(f->s, im.tar.data, im.tar.len, 0, &im.info, NULL);
    put_image(f, &im.info, &im.id);
    return im;
}

static void
export_gives_the_original_layer_and_config_back(void **state)
{
    fx *f = *state;
    pax_image im = image_of_pax_tar(f);
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(&im.id, hex);
    cs_autofree char *want_cfg = cs_xasprintf("%s.json", hex);
    cs_autofree char *p = cs_path_join(f->work, "out.tar");
    cs_error *err = NULL;
    for (int round = 0; round < 2; round++) { /* the second one from layer_blobs */
        assert_int_equal(cs_export(f->s, "t", p, CS_FMT_DOCKER_ARCHIVE, CS_COMP_NONE, &err), 0);
        cs_buf layer;
        char *cfg;
        read_docker_archive(p, &layer, &cfg);
        assert_string_equal(cfg, want_cfg);
        assert_int_equal(layer.len, im.tar.len);
        assert_memory_equal(layer.data, im.tar.data, im.tar.len);
        free(cfg);
        cs_buf_release(&layer);
    }
    /* gzip OCI export: also from the replay (the config is unchanged). */
    cs_autofree char *d = cs_path_join(f->work, "oci");
    assert_int_equal(cs_export(f->s, "t", d, CS_FMT_OCI_DIR, CS_COMP_GZIP, &err), 0);
    cs_autofree char *cp = cs_xasprintf("%s/blobs/sha256/%s", d, hex);
    struct stat st;
    assert_int_equal(stat(cp, &st), 0);

    /* A corrupt record: the export falls back to a generated tar and a
     * rewritten config, consistent with each other. */
    cs_tarsplit *ts = NULL;
    MDB_txn *txn = test_begin(f->s, true);
    assert_int_equal(cs_tarsplit_get(cs_store_db(f->s), txn, &im.info.diff_id, &ts, &err), 0);
    ts->hdr.data[0] ^= 0x01; /* a checksum byte of the first header */
    assert_int_equal(cs_tarsplit_put(cs_store_db(f->s), txn, &im.info.diff_id, ts, &err), 0);
    cs_tarsplit_free(ts);
    test_commit(txn);
    /* The blob cache still holds the replayed blob (sha256-checked): it is
     * used, the record is not read. */
    cs_autofree char *p1 = cs_path_join(f->work, "out1.tar");
    assert_int_equal(cs_export(f->s, "t", p1, CS_FMT_DOCKER_ARCHIVE, CS_COMP_NONE, &err), 0);
    cs_buf cached;
    char *ccfg;
    read_docker_archive(p1, &cached, &ccfg);
    assert_string_equal(ccfg, want_cfg);
    assert_int_equal(cached.len, im.tar.len);
    assert_memory_equal(cached.data, im.tar.data, im.tar.len);
    free(ccfg);
    cs_buf_release(&cached);
    /* Emptied, the export works from the record. */
    cs_autofree char *bc = cs_path_join(f->root, "blobcache");
    assert_int_equal(cs_rm_tree(bc, NULL, &err), 0);
    cs_autofree char *p2 = cs_path_join(f->work, "out2.tar");
    assert_int_equal(cs_export(f->s, "t", p2, CS_FMT_DOCKER_ARCHIVE, CS_COMP_NONE, &err), 0);
    cs_buf layer;
    char *cfg;
    read_docker_archive(p2, &layer, &cfg);
    assert_string_not_equal(cfg, want_cfg);
    assert_false(layer.len == im.tar.len && !memcmp(layer.data, im.tar.data, im.tar.len));
    free(cfg);
    cs_buf_release(&layer);
    cs_buf_release(&im.tar);
}

static void
problem(void *ctx, const char *msg)
{
    (void) ctx;
    fprintf(stderr, "fsck: %s\n", msg);
}

static void
gc_keeps_the_record_and_replaced_contents_while_the_tree_lives(void **state)
{
    fx *f = *state;
    pax_image im = image_of_pax_tar(f);
    /* A second layer, never part of an image: gc drops its record. */
    cs_buf other;
    make_pax_tar(&other, false);
    cs_layer_info oinfo;
    test_ingest_tar(f->s, other.data, other.len, 0, &oinfo, NULL);

    cs_error *err = NULL;
    cs_store_close(f->s);
    assert_int_equal(cs_store_open(f->root, CS_OPEN_EXCLUSIVE, &f->s, &err), 0);
    cs_gc_stats st;
    assert_int_equal(cs_gc(f->s, false, false, &st, &err), 0);
    assert_int_equal(st.tarsplits, 1);
    assert_int_equal(cs_fsck(f->s, problem, NULL, &err), 0);
    cs_buf out;
    assert_int_equal(replay(f, &im.info.diff_id, &out, NULL), 0);
    assert_int_equal(out.len, im.tar.len);
    assert_memory_equal(out.data, im.tar.data, im.tar.len);
    cs_buf_release(&out);
    assert_int_equal(replay(f, &oinfo.diff_id, &out, NULL), -CS_ENOTFOUND);
    cs_buf_release(&out);

    /* The first "dir/x512" is in no tree: the record alone keeps its content. */
    uint8_t data[4096];
    test_fill_random(data, sizeof(data), 42);
    cs_digest replaced;
    cs_sha256(data + 7, 512, &replaced);
    assert_true(test_has(f->s, CS_T_CONTENTS, replaced.b, 32));

    /* Untagged: the record and the contents it named go. */
    MDB_txn *txn = test_begin(f->s, true);
    assert_int_equal(cs_tag_delete(cs_store_db(f->s), txn, "docker.io/library/t:latest", &err), 0);
    test_commit(txn);
    assert_int_equal(cs_gc(f->s, false, false, &st, &err), 0);
    assert_int_equal(st.tarsplits, 1);
    assert_int_equal(replay(f, &im.info.diff_id, &out, NULL), -CS_ENOTFOUND);
    cs_buf_release(&out);
    assert_false(test_has(f->s, CS_T_CONTENTS, replaced.b, 32));
    cs_buf_release(&other);
    cs_buf_release(&im.tar);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_encoding_round_trips_and_rejects_garbage),
        cmocka_unit_test_setup_teardown(
            libarchive_pax_tars_with_and_without_duplicates_are_replayed_byte_for_byte,
            test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(gnu_tar_formats_are_replayed_byte_for_byte,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(sparse_file_layer_loads_without_a_record,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(export_gives_the_original_layer_and_config_back,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(
            gc_keeps_the_record_and_replaced_contents_while_the_tree_lives, test_sandbox_setup,
            test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
