/* test_gc.c - gc, du and fsck on small hand-built stores. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "cstore/content.h"
#include "cstore/gc.h"
#include "cstore/image.h"
#include "cstore/lease.h"
#include "cstore/snapshot.h"
#include "cstore/store.h"
#include "cstore/tree.h"
#include "digestset.h"
#include "snapshot_int.h"
#include "testutil.h"

#define KiB 1024u

typedef struct fx {
    test_sandbox sb; /* the store opened CS_OPEN_EXCLUSIVE */
    /* the populated store */
    cs_digest base_tree, a_tree, b_tree;
    cs_digest shared, ua, ub; /* contents */
    cs_digest img_a, img_b;
} fx;

static void
fill_text(uint8_t *p, size_t n)
{
    static const char line[] = "the quick brown fox jumps over the lazy dog\n";
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t) line[i % (sizeof(line) - 1)];
}

/* Stores p[0..n) as one content cut every chunk bytes, each chunk zstd when
 * that shrinks it, raw otherwise. */
static cs_digest
put_content(cs_db *db, MDB_txn *txn, const uint8_t *p, size_t n, size_t chunk)
{
    cs_error *err = NULL;
    cs_digest d;
    cs_chunk_ref refs[512];
    uint32_t nrefs = 0;

    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        size_t cap = ZSTD_compressBound(len);
        uint8_t *z = malloc(cap);
        size_t zn = ZSTD_compress(z, cap, p + off, len, 1);
        assert_false(ZSTD_isError(zn));
        cs_sha256(p + off, len, &refs[nrefs].d);
        refs[nrefs].len = (uint32_t) len;
        if (zn < len)
            assert_true(
                cs_chunk_put(db, txn, &refs[nrefs].d, CS_CODEC_ZSTD, (uint32_t) len, z, zn, &err)
                >= 0);
        else
            assert_true(cs_chunk_put(db, txn, &refs[nrefs].d, CS_CODEC_RAW, (uint32_t) len, p + off,
                                     len, &err)
                        >= 0);
        free(z);
        nrefs++;
        assert_true(nrefs < 512);
    }
    cs_sha256(p, n, &d);
    assert_true(cs_content_put(db, txn, &d, n, refs, nrefs, &err) >= 0);
    return d;
}

static cs_digest
put_image(cs_db *db, MDB_txn *txn, const char *tag, const char *env, const cs_digest *layers,
          uint32_t n)
{
    char *config;
    assert_true(
        asprintf(&config,
                 "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"%s\"]},"
                 "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                 env)
        > 0);
    cs_digest id = test_put_image(db, txn, config, layers, n, tag);
    free(config);
    return id;
}

#define TAG_A "docker.io/library/a:latest"
#define TAG_B "docker.io/library/b:latest"

/* Two images on a shared base layer: a = base + a.bin, b = base + b.bin (and a
 * hardlink to it); b has an exported layer blob. 7 chunks, 3 contents. */
static void
populate(void *fp, cs_db *db, MDB_txn *txn)
{
    fx *f = fp;
    uint8_t *buf = malloc(150 * KiB);

    fill_text(buf, 100 * KiB);
    f->shared = put_content(db, txn, buf, 100 * KiB, 64 * KiB);
    test_fill_random(buf, 150 * KiB, 1);
    f->ua = put_content(db, txn, buf, 150 * KiB, 64 * KiB);
    test_fill_random(buf, 90 * KiB, 2);
    f->ub = put_content(db, txn, buf, 90 * KiB, 64 * KiB);
    free(buf);

    cs_tree *t = cs_tree_new();
    test_tree_add(t, "etc", CS_E_DIR);
    test_tree_add_file(t, "etc/shared", &f->shared, 100 * KiB);
    test_tree_add_file(t, "etc/empty", NULL, 0);
    cs_entry *l = test_tree_add(t, "etc/link", CS_E_SYMLINK);
    l->link = strdup("shared");
    f->base_tree = test_put_tree(db, txn, t);

    t = cs_tree_new();
    test_tree_add_file(t, "a.bin", &f->ua, 150 * KiB);
    f->a_tree = test_put_tree(db, txn, t);

    t = cs_tree_new();
    test_tree_add_file(t, "b.bin", &f->ub, 90 * KiB);
    cs_entry *h = test_tree_add(t, "b2.bin", CS_E_HARDLINK);
    h->link = strdup("b.bin");
    h->size = 90 * KiB;
    h->has_content = true;
    h->content = f->ub;
    f->b_tree = test_put_tree(db, txn, t);

    cs_digest la[2] = { f->base_tree, f->a_tree }, lb[2] = { f->base_tree, f->b_tree };
    f->img_a = put_image(db, txn, TAG_A, "A=1", la, 2);
    f->img_b = put_image(db, txn, TAG_B, "B=1", lb, 2);

    uint8_t key[33], val[72];
    memcpy(key, f->b_tree.b, 32);
    key[32] = 1;
    memset(val, 7, sizeof(val));
    cs_error *err = NULL;
    assert_true(cs_db_put(db, txn, CS_T_LAYER_BLOBS, key, 33, val, 72, 0, &err) >= 0);
}

static void
del_tag(fx *f, const char *tag)
{
    cs_error *err = NULL;
    MDB_txn *txn = test_begin(f->sb.s, true);
    assert_int_equal(cs_tag_delete(cs_store_db(f->sb.s), txn, tag, &err), 0);
    test_commit(txn);
}

typedef struct reports {
    char *v[64];
    int n;
} reports;

static void
collect(void *ctx, const char *problem)
{
    reports *r = ctx;
    if (r->n < 64)
        r->v[r->n++] = strdup(problem);
}

static bool
has_report(const reports *r, const char *s)
{
    for (int i = 0; i < r->n; i++) {
        if (strstr(r->v[i], s))
            return true;
    }
    return false;
}

static void
reports_free(reports *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->v[i]);
    r->n = 0;
}

/* A digest as text, alive until the end of the full expression using it. */
typedef struct dstr {
    char s[CS_DIGEST_STR];
} dstr;

static dstr
ds(const cs_digest *d)
{
    dstr r;
    cs_digest_str(d, r.s);
    return r;
}

static int
fsck_count(fx *f, reports *r)
{
    cs_error *err = NULL;
    int n = cs_fsck(f->sb.s, collect, r, &err);
    if (n < 0)
        fail_msg("fsck: %s", err->msg);
    return n;
}

static void
assert_fsck_clean(fx *f)
{
    reports r = { .n = 0 };
    int n = fsck_count(f, &r);
    for (int i = 0; i < r.n; i++)
        print_message("fsck: %s\n", r.v[i]);
    reports_free(&r);
    assert_int_equal(n, 0);
}

static cs_du_stats
du(fx *f)
{
    cs_du_stats st;
    cs_error *err = NULL;
    if (cs_du(f->sb.s, &st, &err) < 0)
        fail_msg("du: %s", err->msg);
    return st;
}

static cs_gc_stats
gc(fx *f, bool dry_run, bool compact)
{
    cs_gc_stats st;
    cs_error *err = NULL;
    if (cs_gc(f->sb.s, dry_run, compact, &st, &err) < 0)
        fail_msg("gc: %s", err->msg);
    return st;
}

/* The content is there and its bytes hash to its digest. */
static void
assert_content_intact(fx *f, const cs_digest *d)
{
    cs_buf b;
    cs_buf_init(&b);
    MDB_txn *txn = test_begin(f->sb.s, false);
    assert_int_equal(
        cs_content_read(cs_store_db(f->sb.s), txn, d, true, test_sink_buf, &b, &f->sb.err), 0);
    mdb_txn_abort(txn);
    cs_digest got;
    cs_sha256(b.data, b.len, &got);
    cs_buf_release(&b);
    assert_memory_equal(got.b, d->b, 32);
}

static bool
content_exists(fx *f, const cs_digest *d)
{
    return test_has(f->sb.s, CS_T_CONTENTS, d->b, 32);
}

/* The sandbox with populate's images in it. */
static int
populated_setup(void **state)
{
    return test_sandbox_fill(state, sizeof(fx), CS_OPEN_EXCLUSIVE, populate);
}

/* du or gc stats st count these images, trees, contents and chunks. */
#define assert_records(st, images_, trees_, contents_, chunks_)                                    \
    do {                                                                                           \
        assert_int_equal((st).images, images_);                                                    \
        assert_int_equal((st).trees, trees_);                                                      \
        assert_int_equal((st).contents, contents_);                                                \
        assert_int_equal((st).chunks, chunks_);                                                    \
    } while (0)

/* ---- tests ---- */

static void
digestset_adds_finds_and_iterates(void **state)
{
    (void) state;
    cs_digestset *s = cs_digestset_new(true);
    uint8_t d[32];
    for (int i = 0; i < 10000; i++) {
        test_fill_random(d, 32, (uint64_t) i + 100);
        assert_true(cs_digestset_add(s, d));
        *cs_digestset_value(s, d) = (uint64_t) i;
    }
    for (int i = 0; i < 10000; i++) {
        test_fill_random(d, 32, (uint64_t) i + 100);
        assert_false(cs_digestset_add(s, d));
        assert_true(cs_digestset_has(s, d));
        assert_int_equal(*cs_digestset_value(s, d), i);
    }
    test_fill_random(d, 32, 99);
    assert_false(cs_digestset_has(s, d));
    assert_null(cs_digestset_value(s, d));
    size_t it = 0, n = 0;
    while (cs_digestset_next(s, &it))
        n++;
    assert_int_equal(n, 10000);
    assert_int_equal(cs_digestset_count(s), 10000);
    cs_digestset_free(s);
}

static void
du_counts_logical_and_unique_bytes(void **state)
{
    fx *f = *state;
    cs_du_stats st = du(f);
    assert_records(st, 2, 3, 3, 7);
    assert_int_equal(st.tags, 2);
    /* a: 100 + 150 KiB, b: 100 + 90 KiB (the hardlink is not counted again) */
    assert_int_equal(st.logical_bytes, 440 * KiB);
    assert_int_equal(st.unique_bytes, 340 * KiB);
    assert_true(st.stored_bytes < st.unique_bytes); /* the text compresses */
    assert_true(st.disk_bytes > 0);
    assert_true(st.dedup_ratio > 1.29 && st.dedup_ratio < 1.3);
    assert_fsck_clean(f);
}

static void
gc_after_rmi_keeps_shared_content_and_frees_unique(void **state)
{
    fx *f = *state;
    cs_gc_stats st = gc(f, false, false);
    assert_int_equal(st.images + st.trees + st.contents + st.chunks + st.layer_blobs, 0);

    del_tag(f, TAG_B);
    st = gc(f, false, false);
    assert_int_equal(st.images, 1);
    assert_int_equal(st.trees, 1);
    assert_int_equal(st.layer_blobs, 1);
    assert_int_equal(st.contents, 1);
    assert_int_equal(st.chunks, 2);
    assert_int_equal(st.chunk_bytes, 90 * KiB + 2 * 5); /* random data is stored raw */
    assert_true(st.file_before > 0 && st.file_after > 0);

    assert_content_intact(f, &f->shared);
    assert_content_intact(f, &f->ua);
    assert_false(content_exists(f, &f->ub));
    cs_du_stats du_st = du(f);
    assert_records(du_st, 1, 2, 2, 5);
    assert_int_equal(du_st.logical_bytes, 250 * KiB);
    assert_fsck_clean(f);

    st = gc(f, false, false); /* nothing left to free */
    assert_int_equal(st.images + st.trees + st.contents + st.chunks + st.layer_blobs, 0);
}

static void
gc_dry_run_counts_but_changes_nothing(void **state)
{
    fx *f = *state;
    del_tag(f, TAG_B);
    cs_du_stats before = du(f);
    cs_gc_stats st = gc(f, true, true);
    assert_int_equal(st.images, 1);
    assert_int_equal(st.trees, 1);
    assert_int_equal(st.layer_blobs, 1);
    assert_int_equal(st.contents, 1);
    assert_int_equal(st.chunks, 2);
    assert_int_equal(st.chunk_bytes, 90 * KiB + 2 * 5);
    cs_du_stats after = du(f);
    assert_records(after, before.images, before.trees, before.contents, before.chunks);
    assert_int_equal(after.stored_bytes, before.stored_bytes);
    assert_true(content_exists(f, &f->ub));
}

static void
gc_with_no_tags_frees_everything(void **state)
{
    fx *f = *state;
    del_tag(f, TAG_A);
    del_tag(f, TAG_B);
    cs_gc_stats st = gc(f, false, false);
    assert_records(st, 2, 3, 3, 7);
    cs_du_stats d = du(f);
    assert_records(d, 0, 0, 0, 0);
    assert_int_equal(d.logical_bytes, 0);
    assert_int_equal(d.unique_bytes, 0);
    assert_true(d.dedup_ratio == 0);
    assert_fsck_clean(f);
}

static void
gc_sweeps_in_batches_and_keeps_marked_records_between_them(void **state)
{
    fx *f = *state;
    cs_db *db = cs_store_db(f->sb.s);
    MDB_txn *txn = test_begin(f->sb.s, true);
    uint8_t raw[100];
    for (int i = 0; i < 5000; i++) {
        cs_digest d;
        test_fill_random(raw, sizeof(raw), (uint64_t) i + 1000);
        cs_sha256(raw, sizeof(raw), &d);
        assert_int_equal(
            cs_chunk_put(db, txn, &d, CS_CODEC_RAW, sizeof(raw), raw, sizeof(raw), &f->sb.err), 1);
    }
    test_commit(txn);
    cs_gc_stats st = gc(f, false, false);
    assert_int_equal(st.chunks, 5000);
    assert_int_equal(st.chunk_bytes, 5000 * (sizeof(raw) + 5));
    assert_int_equal(du(f).chunks, 7);
    assert_fsck_clean(f);
}

/* ---- fsck over a damaged store: each case damages the populated store in
 * the write txn and adds what fsck must report ---- */

typedef struct wants {
    char v[8][256];
    int n;
} wants;

static void CS_PRINTF(2, 3) want(wants *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->v[w->n++], sizeof(w->v[0]), fmt, ap);
    va_end(ap);
}

static void
corrupt_a_chunk(fx *f, MDB_txn *txn, wants *w)
{
    /* a.bin's first chunk: same length, different bytes */
    uint8_t buf[64 * KiB];
    test_fill_random(buf, sizeof(buf), 1);
    cs_digest c;
    cs_sha256(buf, sizeof(buf), &c);
    buf[100] ^= 0xff;
    uint8_t *val = malloc(sizeof(buf) + 5);
    val[0] = CS_CODEC_RAW;
    val[1] = 0;
    val[2] = 1;
    val[3] = 0;
    val[4] = 0;
    memcpy(val + 5, buf, sizeof(buf));
    MDB_val k = { 32, c.b }, v = { sizeof(buf) + 5, val };
    assert_int_equal(mdb_put(txn, cs_db_dbi(f->sb.db, CS_T_CHUNKS), &k, &v, 0), 0);
    free(val);
    want(w, "chunk %s: digest mismatch", ds(&c).s);
    want(w, "content %s: digest mismatch", ds(&f->ua).s);
}

static void
garble_a_chunk_and_records(fx *f, MDB_txn *txn, wants *w)
{
    cs_db *db = f->sb.db;
    /* the shared text's first chunk is zstd: garble its frame */
    uint8_t text[64 * KiB];
    fill_text(text, sizeof(text));
    cs_digest c;
    cs_sha256(text, sizeof(text), &c);
    MDB_val k = { 32, c.b }, v;
    assert_int_equal(mdb_get(txn, cs_db_dbi(db, CS_T_CHUNKS), &k, &v), 0);
    assert_int_equal(((uint8_t *) v.mv_data)[0], CS_CODEC_ZSTD);
    uint8_t *val = malloc(v.mv_size);
    memcpy(val, v.mv_data, v.mv_size);
    memset(val + 5, 0xab, 16);
    v.mv_data = val;
    assert_int_equal(mdb_put(txn, cs_db_dbi(db, CS_T_CHUNKS), &k, &v, 0), 0);
    free(val);
    want(w, "chunk %s: cannot decode", ds(&c).s);
    want(w, "content %s: chunk %s unreadable", ds(&f->shared).s, ds(&c).s);

    /* an image whose config is not JSON */
    cs_digest bad = test_put_image(db, txn, "{not json", &f->a_tree, 1, NULL);
    want(w, "image %s: config is not JSON", ds(&bad).s);

    /* a layer blob of a tree that does not exist */
    uint8_t key[33] = { 0 }, blob[72] = { 0 };
    key[0] = 0x42;
    assert_true(cs_db_put(db, txn, CS_T_LAYER_BLOBS, key, 33, blob, 72, 0, &f->sb.err) >= 0);
    want(w, "layer blob of tree sha256:4200");
}

static void
leave_references_dangling(fx *f, MDB_txn *txn, wants *w)
{
    cs_db *db = f->sb.db;
    MDB_val k = { 32, f->shared.b };
    assert_int_equal(mdb_del(txn, cs_db_dbi(db, CS_T_CONTENTS), &k, NULL), 0);
    cs_digest ghost;
    cs_sha256("ghost", 5, &ghost);
    assert_int_equal(cs_tag_set(db, txn, "docker.io/library/ghost:latest", &ghost, &f->sb.err), 0);
    k.mv_data = f->a_tree.b;
    assert_int_equal(mdb_del(txn, cs_db_dbi(db, CS_T_TREES), &k, NULL), 0);
    want(w, "tree %s: 'etc/shared': content %s missing", ds(&f->base_tree).s, ds(&f->shared).s);
    want(w, "tag 'docker.io/library/ghost:latest': image %s missing", ds(&ghost).s);
    want(w, "%s", ds(&f->a_tree).s);
    /* the shared text's 2 chunks are orphans now but intact: not problems */
}

static const struct {
    const char *name;
    void (*damage)(fx *f, MDB_txn *txn, wants *w);
    /* then, when gc_chunks > 0: gc runs and frees this many */
    uint64_t gc_chunks, gc_contents;
} fsck_cases[] = {
    { "a corrupted chunk", corrupt_a_chunk, 0, 0 },
    { "undecodable chunks and bad records", garble_a_chunk_and_records, 0, 0 },
    /* gc still runs over dangling references and frees the orphans */
    { "dangling references", leave_references_dangling, 2 + 3, 1 },
};

static void
fsck_reports_each_kind_of_damage(void **state)
{
    for (size_t i = 0; i < sizeof(fsck_cases) / sizeof(fsck_cases[0]); i++) {
        test_case("%s", fsck_cases[i].name);
        if (i > 0) { /* a fresh populated store */
            assert_int_equal(test_sandbox_teardown(state), 0);
            assert_int_equal(populated_setup(state), 0);
        }
        fx *f = *state;
        wants w = { .n = 0 };
        MDB_txn *txn = test_begin(f->sb.s, true);
        fsck_cases[i].damage(f, txn, &w);
        test_commit(txn);

        reports r = { .n = 0 };
        int n = fsck_count(f, &r);
        for (int j = 0; j < w.n; j++) {
            if (!has_report(&r, w.v[j]))
                fail_msg("%s: fsck did not report '%s'", fsck_cases[i].name, w.v[j]);
        }
        assert_int_equal(n, w.n);
        reports_free(&r);
        if (fsck_cases[i].gc_chunks > 0) {
            cs_gc_stats st = gc(f, false, false);
            assert_int_equal(st.chunks, fsck_cases[i].gc_chunks);
            assert_int_equal(st.contents, fsck_cases[i].gc_contents);
        }
    }
}

static void
gc_compact_shrinks_the_file_after_deleting_a_large_image(void **state)
{
    fx *f = *state;
    cs_db *db = cs_store_db(f->sb.s);

    size_t big = 24u << 20;
    uint8_t *buf = malloc(big);
    test_fill_random(buf, big, 42);
    MDB_txn *txn = test_begin(f->sb.s, true);
    cs_digest c = put_content(db, txn, buf, big, 256 * KiB);
    free(buf);
    cs_tree *t = cs_tree_new();
    test_tree_add_file(t, "big.bin", &c, big);
    cs_digest tree = test_put_tree(db, txn, t);
    put_image(db, txn, "docker.io/library/big:latest", "BIG=1", &tree, 1);
    test_commit(txn);
    assert_fsck_clean(f);

    del_tag(f, "docker.io/library/big:latest");
    cs_gc_stats st = gc(f, false, true);
    assert_int_equal(st.chunks, 96);
    assert_int_equal(st.contents, 1);
    print_message("data.mdb: %llu -> %llu bytes\n", (unsigned long long) st.file_before,
                  (unsigned long long) st.file_after);
    assert_true(st.file_before > big);
    assert_true(st.file_after < st.file_before - (16u << 20));

    char path[128];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/data.mdb", f->sb.root);
    assert_int_equal(stat(path, &sb), 0);
    assert_true((uint64_t) sb.st_blocks * 512 == st.file_after);
    snprintf(path, sizeof(path), "%s/compact.tmp", f->sb.root);
    assert_int_not_equal(stat(path, &sb), 0);

    /* the swapped-in env works, and so does a fresh open */
    assert_fsck_clean(f);
    assert_content_intact(f, &f->ua);
    cs_store_close(f->sb.s);
    f->sb.s = NULL;
    assert_int_equal(cs_store_open(f->sb.root, 0, &f->sb.s, &f->sb.err), 0);
    assert_fsck_clean(f);
    cs_du_stats d = du(f);
    assert_int_equal(d.images, 2);
    assert_int_equal(d.chunks, 7);
    assert_content_intact(f, &f->shared);
    txn = test_begin(f->sb.s, true); /* and it takes writes */
    fill_text((uint8_t *) path, 100);
    put_content(cs_store_db(f->sb.s), txn, (uint8_t *) path, 100, 64 * KiB);
    test_commit(txn);
}

/* ---- snapshots in the --keep-storage budget ---- */

/* The snapshot of tree, made, then its record's last-used time set to
 * `ago` seconds before now (as gc reads it: u64 BE | state | boot id). */
static char *
snapshot_used(fx *f, const cs_digest *tree, uint64_t ago)
{
    cs_error *err = NULL;
    char *dir = NULL;
    if (cs_snapshot_get(f->sb.s, tree, &dir, &err) < 0)
        fail_msg("snapshot: %s", err->msg);
    uint8_t v[9 + CS_BOOT_ID_LEN];
    cs_be64_put(v, (uint64_t) time(NULL) - ago);
    v[8] = 1;
    cs_snapshot_boot_id(v + 9);
    MDB_txn *txn = test_begin(f->sb.s, true);
    assert_true(
        cs_db_put(cs_store_db(f->sb.s), txn, CS_T_SNAPSHOTS, tree->b, 32, v, sizeof(v), 0, &err)
        >= 0);
    test_commit(txn);
    return dir;
}

static bool
dir_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static cs_gc_stats
gc_keep(fx *f, uint64_t keep_storage)
{
    cs_gc_opts o = { .keep_storage = keep_storage, .keep_duration = CS_GC_KEEP_DURATION };
    cs_gc_stats st;
    cs_error *err = NULL;
    if (cs_gc_ex(f->sb.s, &o, &st, &err) < 0)
        fail_msg("gc: %s", err->msg);
    return st;
}

static void
keep_storage_counts_snapshots_and_drops_the_least_recently_used(void **state)
{
    fx *f = *state;
    test_need(geteuid() == 0, "root (snapshots chown their files)");
    /* In 4 KiB blocks: base 100 KiB, b 92 KiB (the hardlink is one file), a 152 KiB. */
    char *base = snapshot_used(f, &f->base_tree, 100);
    char *a = snapshot_used(f, &f->a_tree, 300);
    char *b = snapshot_used(f, &f->b_tree, 200);
    cs_du_stats du0 = du(f);
    assert_int_equal(du0.snapshots, 3);
    assert_true(du0.snapshot_bytes >= 344 * KiB && du0.snapshot_bytes < du0.disk_bytes);

    /* 200 KiB: base and b (most recent first) fit, a does not. */
    cs_gc_stats st = gc_keep(f, 200 * KiB);
    assert_int_equal(st.snapshots, 1);
    assert_int_equal(st.trees, 0); /* the trees stay: only their unpacked copies go */
    assert_true(dir_exists(base) && dir_exists(b));
    assert_false(dir_exists(a));
    assert_int_equal(du(f).snapshots, 2);

    /* A snapshot whose tree a live process leased is kept over the budget. */
    cs_error *err = NULL;
    assert_int_equal(cs_lease_tree(f->sb.s, &f->a_tree, &err), 0);
    free(snapshot_used(f, &f->a_tree, 300));
    st = gc_keep(f, 0);
    assert_int_equal(st.snapshots, 2);
    assert_true(dir_exists(a));
    assert_false(dir_exists(base) || dir_exists(b));
    assert_int_equal(du(f).snapshots, 1);
    assert_fsck_clean(f);
    free(base);
    free(a);
    free(b);
}

#define GC_TEST(t) cmocka_unit_test_setup_teardown(t, populated_setup, test_sandbox_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(digestset_adds_finds_and_iterates),
        GC_TEST(du_counts_logical_and_unique_bytes),
        GC_TEST(gc_after_rmi_keeps_shared_content_and_frees_unique),
        GC_TEST(gc_dry_run_counts_but_changes_nothing),
        GC_TEST(gc_with_no_tags_frees_everything),
        GC_TEST(gc_sweeps_in_batches_and_keeps_marked_records_between_them),
        GC_TEST(fsck_reports_each_kind_of_damage),
        GC_TEST(gc_compact_shrinks_the_file_after_deleting_a_large_image),
        GC_TEST(keep_storage_counts_snapshots_and_drops_the_least_recently_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
