/* test_ingest.c - tar, directory and fd ingest (ingest.c, feeder.c) and
 * image references (image.c); loading whole images is test_load.c. */
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
#include <zlib.h>
#include <zstd.h>

#include "cstore/content.h"
#include "cstore/gc.h"
#include "cstore/image.h"
#include "cstore/ingest.h"
#include "cstore/store.h"
#include "cstore/tree.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

typedef test_sandbox fx;

/* ---- data ---- */

/* Lines of words picked by a seeded generator: compresses like source code. */
static void
fill_text(uint8_t *p, size_t n, uint64_t seed)
{
    static const char *words[] = { "the ",  "quick ", "brown ", "fox ",    "jumps ", "over ",
                                   "lazy ", "dog ",   "int ",   "return ", "if (",   ") {\n",
                                   "}\n",   "for ",   "while ", "static ", "void ",  "char *" };
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
    size_t o = 0;
    while (o < n) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        const char *w = words[s % (sizeof(words) / sizeof(words[0]))];
        for (; *w && o < n; w++)
            p[o++] = (uint8_t) *w;
    }
}

/* ---- tar streams in memory ---- */

/* A ustar file member written by hand, for what libarchive refuses to write:
 * appends its header (size as given) and blocks copies of the block d. */
static void
raw_member(cs_buf *b, const char *name, const char *size_octal, const uint8_t d[512], int blocks)
{
    uint8_t h[512];
    memset(h, 0, 512);
    snprintf((char *) h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    snprintf((char *) h + 124, 12, "%s", size_octal);
    memcpy(h + 136, "14524120000", 12);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *) h + 148, 8, "%06o", sum);
    cs_buf_append(b, h, 512);
    for (int i = 0; i < blocks; i++)
        cs_buf_append(b, d, 512);
}

/* ---- compression ---- */

static void
zstd_append(cs_buf *out, const void *p, size_t n)
{
    size_t bound = ZSTD_compressBound(n);
    cs_buf_reserve(out, bound);
    size_t k = ZSTD_compress(out->data + out->len, bound, p, n, 3);
    assert_false(ZSTD_isError(k));
    out->len += k;
}

/* ---- helpers ---- */

static void
set_mtime(const char *path, time_t sec, long nsec)
{
    struct timespec ts[2] = { { sec, nsec }, { sec, nsec } };
    assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Ingests one stream that must fail with code and a message naming want;
 * frees uncommitted and checks that nothing was stored. */
static void
ingest_fails(cs_store *s, const void *p, size_t n, cs_code code, const char *want)
{
    cs_ingest *ing = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_ingest_begin(s, &ing, &err), 0);
    test_memrd m = { p, n, 0 };
    cs_layer_info info;
    int r = cs_ingest_tar(ing, "evil.tar", test_mem_read, &m, &info, &err);
    cs_ingest_free(ing);
    if (r >= 0)
        fail_msg("hostile input was accepted (wanted '%s')", want);
    test_assert_msg(err, "evil.tar: ");
    test_assert_msg(err, want);
    assert_int_equal(r, -(int) code);
    cs_error_free(err);
    test_assert_store_empty(s);
}

/* ---- the sample layer ---- */

typedef struct spec {
    const char *path;
    cs_etype type;
    uint32_t mode;
    uint32_t uid, gid;
    const char *uname, *gname;
    int64_t sec;
    uint32_t nsec;
    const char *link; /* symlink or hardlink target */
    uint32_t maj, min;
    size_t size;
    int fill; /* 0: zeros, 1: random, 2: text */
    const char *xname;
    const char *xval;
    size_t xlen;
} spec;

static const spec layer_spec[] = {
    { "bin", CS_E_SYMLINK, 0777, 0, 0, NULL, NULL, 1700000000, 0, "usr/bin", 0, 0, 0, 0, NULL, NULL,
      0 },
    { "dev", CS_E_DIR, 0755, 0, 0, "root", "root", 1700000001, 5, NULL, 0, 0, 0, 0, NULL, NULL, 0 },
    { "dev/fifo", CS_E_FIFO, 0600, 0, 0, NULL, NULL, 1700000002, 0, NULL, 0, 0, 0, 0, NULL, NULL,
      0 },
    { "dev/null", CS_E_CHAR, 0666, 0, 0, NULL, NULL, 1700000003, 0, NULL, 1, 3, 0, 0, NULL, NULL,
      0 },
    { "dev/sda", CS_E_BLOCK, 0660, 0, 6, NULL, "disk", 1700000004, 0, NULL, 8, 0, 0, 0, NULL, NULL,
      0 },
    { "empty", CS_E_FILE, 0644, 0, 0, NULL, NULL, 1700000005, 0, NULL, 0, 0, 0, 0, NULL, NULL, 0 },
    { "etc", CS_E_DIR, 0755, 0, 0, NULL, NULL, 1700000006, 0, NULL, 0, 0, 0, 0, NULL, NULL, 0 },
    { "etc/big.bin", CS_E_FILE, 0640, 1000, 1001, "alice", "staff", 1700000007, 123456789, NULL, 0,
      0, 1 * MiB, 1, "user.comment", "hello", 5 },
    { "etc/text.txt", CS_E_FILE, 0600, 0, 0, NULL, NULL, 1700000008, 999999999, NULL, 0, 0, 5 * MiB,
      2, NULL, NULL, 0 },
    { "etc/to-tool", CS_E_SYMLINK, 0777, 0, 0, NULL, NULL, 1700000009, 0, "../usr/bin/tool", 0, 0,
      0, 0, NULL, NULL, 0 },
    { "one", CS_E_FILE, 0444, 65534, 65534, "nobody", "nogroup", 1700000010, 1, NULL, 0, 0, 1, 1,
      NULL, NULL, 0 },
    { "srv", CS_E_DIR, 02775, 0, 50, NULL, NULL, 1700000011, 0, NULL, 0, 0, 0, 0, NULL, NULL, 0 },
    { "tmp", CS_E_DIR, 01777, 0, 0, NULL, NULL, 1700000012, 0, NULL, 0, 0, 0, 0, NULL, NULL, 0 },
    { "usr", CS_E_DIR, 0755, 0, 0, NULL, NULL, 1700000013, 0, NULL, 0, 0, 0, 0, NULL, NULL, 0 },
    { "usr/bin", CS_E_DIR, 0755, 0, 0, NULL, NULL, 1700000014, 0, NULL, 0, 0, 0, 0, NULL, NULL, 0 },
    { "usr/bin/ping", CS_E_FILE, 04755, 0, 0, NULL, NULL, 1700000015, 0, NULL, 0, 0, 3 * KiB, 1,
      "security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00", 8 },
    { "usr/bin/tool", CS_E_FILE, 06755, 0, 0, NULL, NULL, 1700000016, 500, NULL, 0, 0, 16 * KiB, 1,
      NULL, NULL, 0 },
    { "usr/bin/tool2", CS_E_HARDLINK, 06755, 0, 0, NULL, NULL, 1700000016, 500, "usr/bin/tool", 0,
      0, 0, 0, NULL, NULL, 0 },
};
#define NSPEC (sizeof(layer_spec) / sizeof(layer_spec[0]))

typedef struct sample {
    test_tar tar;
    uint8_t *data[NSPEC];
} sample;

static void
sample_build(sample *smp)
{
    test_tar_begin(&smp->tar);
    /* The root directory itself is not an entry of the tree. */
    test_tar_add(&smp->tar, test_tar_entry("./", AE_IFDIR, 0755), NULL, 0);
    /* Write in an order unlike the sorted one. */
    for (size_t k = NSPEC; k-- > 0;) {
        size_t i = (k * 7) % NSPEC;
        const spec *sp = &layer_spec[i];
        static const mode_t ft[] = {
            [CS_E_FILE] = AE_IFREG,     [CS_E_DIR] = AE_IFDIR,  [CS_E_SYMLINK] = AE_IFLNK,
            [CS_E_HARDLINK] = AE_IFREG, [CS_E_CHAR] = AE_IFCHR, [CS_E_BLOCK] = AE_IFBLK,
            [CS_E_FIFO] = AE_IFIFO
        };
        struct archive_entry *ae = test_tar_entry(sp->path, ft[sp->type], sp->mode);
        archive_entry_set_uid(ae, sp->uid);
        archive_entry_set_gid(ae, sp->gid);
        if (sp->uname)
            archive_entry_set_uname(ae, sp->uname);
        if (sp->gname)
            archive_entry_set_gname(ae, sp->gname);
        archive_entry_set_mtime(ae, sp->sec, sp->nsec);
        if (sp->type == CS_E_SYMLINK)
            archive_entry_set_symlink(ae, sp->link);
        if (sp->type == CS_E_HARDLINK)
            archive_entry_set_hardlink(ae, sp->link);
        if (sp->type == CS_E_CHAR || sp->type == CS_E_BLOCK) {
            archive_entry_set_rdevmajor(ae, sp->maj);
            archive_entry_set_rdevminor(ae, sp->min);
        }
        if (sp->xname)
            archive_entry_xattr_add_entry(ae, sp->xname, sp->xval, sp->xlen);
        smp->data[i] = calloc(1, sp->size + 1);
        if (sp->fill == 1)
            test_fill_random(smp->data[i], sp->size, i + 1);
        else if (sp->fill == 2)
            fill_text(smp->data[i], sp->size, i + 1);
        test_tar_add(&smp->tar, ae, smp->data[i], sp->type == CS_E_FILE ? sp->size : 0);
    }
    test_tar_end(&smp->tar);
}

/* Ingests the sample's tar into s (reads of at most maxread, 0: any). */
static cs_layer_info
ingest_sample(cs_store *s, const sample *smp, size_t maxread, cs_ingest_stats *st)
{
    cs_layer_info info;
    test_ingest_tar(s, smp->tar.out.data, smp->tar.out.len, maxread, &info, st);
    return info;
}

/* The sample, built once for the whole program (read-only in the tests). */
static sample the_sample;

static int
sample_setup(void **state)
{
    (void) state;
    sample_build(&the_sample);
    return 0;
}

static int
sample_teardown(void **state)
{
    (void) state;
    for (size_t i = 0; i < NSPEC; i++)
        free(the_sample.data[i]);
    cs_buf_release(&the_sample.tar.out);
    return 0;
}

static const spec *
spec_find(const char *path)
{
    for (size_t i = 0; i < NSPEC; i++)
        if (!strcmp(layer_spec[i].path, path))
            return &layer_spec[i];
    return NULL;
}

static void
assert_str_or_null(const char *got, const char *want)
{
    if (!want)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

/* The tree has exactly the entries of layer_spec, with their attributes and
 * contents. */
static void
assert_sample_tree(cs_store *s, const cs_digest *td, const sample *smp)
{
    cs_tree *t = test_get_tree(s, td);
    assert_int_equal(t->n, NSPEC);
    for (size_t i = 0; i < NSPEC; i++) {
        const spec *sp = &layer_spec[i];
        const cs_entry *e = &t->e[i];
        assert_string_equal(e->path, sp->path); /* layer_spec is sorted */
        assert_int_equal(e->type, sp->type);
        assert_int_equal(e->mode, sp->mode);
        assert_int_equal(e->uid, sp->uid);
        assert_int_equal(e->gid, sp->gid);
        assert_str_or_null(e->uname, sp->uname);
        assert_str_or_null(e->gname, sp->gname);
        assert_int_equal(e->mtime_sec, sp->sec);
        assert_int_equal(e->mtime_nsec, sp->nsec);
        assert_str_or_null(e->link, sp->link);
        assert_int_equal(e->devmajor, sp->maj);
        assert_int_equal(e->devminor, sp->min);
        if (sp->xname) {
            assert_int_equal(e->nxattrs, 1);
            assert_string_equal(e->xattrs[0].name, sp->xname);
            assert_int_equal(e->xattrs[0].len, sp->xlen);
            assert_memory_equal(e->xattrs[0].value, sp->xval, sp->xlen);
        } else {
            assert_int_equal(e->nxattrs, 0);
        }
        const spec *data_sp = sp;
        size_t di = i;
        if (sp->type == CS_E_HARDLINK) {
            data_sp = spec_find(sp->link);
            di = (size_t) (data_sp - layer_spec);
        }
        if (data_sp->type != CS_E_FILE) {
            assert_int_equal(e->size, 0);
            assert_false(e->has_content);
            continue;
        }
        assert_int_equal(e->size, data_sp->size);
        assert_int_equal(e->has_content, data_sp->size > 0);
        if (e->has_content) {
            cs_digest want;
            cs_sha256(smp->data[di], data_sp->size, &want);
            assert_true(cs_digest_eq(&e->content, &want));
            test_assert_content(s, &e->content, smp->data[di], data_sp->size);
        }
    }
    cs_tree_free(t);
}

/* ---- tar round trips ---- */

static void
plain_tar_round_trips_every_entry_type_and_attribute(void **state)
{
    fx *f = *state;
    cs_ingest_stats st;
    cs_layer_info info = ingest_sample(f->s, &the_sample, 0, &st);
    assert_sample_tree(f->s, &info.tree, &the_sample);

    cs_digest want;
    cs_sha256(the_sample.tar.out.data, the_sample.tar.out.len, &want);
    assert_true(cs_digest_eq(&info.blob, &want));
    assert_true(cs_digest_eq(&info.diff_id, &want));
    assert_int_equal(info.blob_size, the_sample.tar.out.len);
    assert_int_equal(info.tar_size, the_sample.tar.out.len);
    assert_int_equal(info.comp, CS_COMP_NONE);
    /* files: empty, big.bin, text.txt, one, ping, tool (not the hardlink) */
    assert_int_equal(st.files, 6);
    assert_int_equal(st.bytes, 1 * MiB + 5 * MiB + 1 + 3 * KiB + 16 * KiB);
    assert_true(st.new_chunks > 0);
    assert_int_equal(test_count(f->s, CS_T_TREES), 1);
    assert_int_equal(test_count(f->s, CS_T_CONTENTS), 5);
}

static void
odd_sized_reads_give_the_same_layer(void **state)
{
    fx *f = *state;
    cs_layer_info a = ingest_sample(f->s, &the_sample, 0, NULL),
                  b = ingest_sample(f->s, &the_sample, 4093, NULL);
    assert_true(cs_digest_eq(&a.tree, &b.tree));
    assert_true(cs_digest_eq(&a.blob, &b.blob));
    assert_int_equal(a.tar_size, b.tar_size);
}

/* The sample tar compressed (in members gzip members, cut at odd places,
 * one inside a file's data) and ingested with reads of at most maxread. */
static const struct {
    const char *name;
    cs_compression comp;
    size_t maxread;
    int members;
} compressed_cases[] = {
    { "gzip", CS_COMP_GZIP, 0, 1 },
    { "zstd", CS_COMP_ZSTD, 0, 1 },
    { "gzip detected when the first read is short", CS_COMP_GZIP, 1, 1 },
    { "multi-member gzip is one stream", CS_COMP_GZIP, 0, 3 },
};

static void
compressed_tars_round_trip_with_digests_of_both_streams(void **state)
{
    fx *f = *state;
    size_t len = the_sample.tar.out.len;
    for (size_t i = 0; i < sizeof(compressed_cases) / sizeof(compressed_cases[0]); i++) {
        test_case("%s", compressed_cases[i].name);
        cs_compression comp = compressed_cases[i].comp;
        cs_buf z;
        cs_buf_init(&z);
        if (comp == CS_COMP_ZSTD) {
            zstd_append(&z, the_sample.tar.out.data, len);
        } else if (compressed_cases[i].members == 1) {
            test_gzip_append(&z, the_sample.tar.out.data, len);
        } else {
            size_t cuts[] = { 0, 1000, len / 2 + 17, len };
            for (int m = 0; m < 3; m++)
                test_gzip_append(&z, the_sample.tar.out.data + cuts[m], cuts[m + 1] - cuts[m]);
        }
        cs_layer_info info;
        test_ingest_tar(f->s, z.data, z.len, compressed_cases[i].maxread, &info, NULL);
        assert_sample_tree(f->s, &info.tree, &the_sample);
        cs_digest blob, diff;
        cs_sha256(z.data, z.len, &blob);
        cs_sha256(the_sample.tar.out.data, len, &diff);
        assert_true(cs_digest_eq(&info.blob, &blob));
        assert_true(cs_digest_eq(&info.diff_id, &diff));
        assert_int_equal(info.blob_size, z.len);
        assert_int_equal(info.tar_size, len);
        assert_int_equal(info.comp, comp);
        cs_buf_release(&z);
    }
}

static void
later_member_of_the_same_path_wins(void **state)
{
    fx *f = *state;
    test_tar t;
    test_tar_begin(&t);
    test_tar_file(&t, "a", "old", 3);
    test_tar_file(&t, "./a", "new!", 4);
    test_tar_end(&t);
    cs_layer_info info;
    test_ingest_tar(f->s, t.out.data, t.out.len, 0, &info, NULL);
    cs_tree *tree = test_get_tree(f->s, &info.tree);
    assert_int_equal(tree->n, 1);
    assert_int_equal(tree->e[0].size, 4);
    test_assert_content(f->s, &tree->e[0].content, "new!", 4);
    cs_tree_free(tree);
    cs_buf_release(&t.out);
}

/* ---- determinism and dedup ---- */

static void
same_tar_in_two_fresh_stores_gives_the_same_tree(void **state)
{
    fx *f = *state;
    cs_layer_info a = ingest_sample(f->s, &the_sample, 0, NULL);

    cs_autofree char *root2 = cs_path_join(f->dir, "store2");
    cs_store *s2 = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_store_open(root2, 0, &s2, &err), 0);
    cs_layer_info b = ingest_sample(s2, &the_sample, 7777, NULL);
    assert_true(cs_digest_eq(&a.tree, &b.tree));
    assert_int_equal(test_count(f->s, CS_T_CHUNKS), test_count(s2, CS_T_CHUNKS));
    cs_store_close(s2);
}

static void
ingesting_a_tar_again_writes_no_new_chunks(void **state)
{
    fx *f = *state;
    cs_ingest_stats s1, s2;
    cs_layer_info a = ingest_sample(f->s, &the_sample, 0, &s1), b;
    size_t chunks = test_count(f->s, CS_T_CHUNKS);
    assert_int_equal(s1.new_chunks, chunks);

    /* Again, in a new ingest (the chunks are committed) ... */
    b = ingest_sample(f->s, &the_sample, 0, &s2);
    assert_true(cs_digest_eq(&a.tree, &b.tree));
    assert_int_equal(s2.new_chunks, 0);
    assert_int_equal(s2.new_bytes, 0);
    assert_int_equal(s2.files, s1.files);

    /* ... and twice within one ingest (the chunks are only in its txn). */
    cs_autofree char *root2 = cs_path_join(f->dir, "store2");
    cs_store *st2 = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_store_open(root2, 0, &st2, &err), 0);
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(st2, &ing, &err), 0);
    test_memrd m1 = { the_sample.tar.out.data, the_sample.tar.out.len, 0 };
    assert_int_equal(cs_ingest_tar(ing, "one", test_mem_read, &m1, &a, &err), 0);
    uint64_t first = cs_ingest_stats_get(ing)->new_chunks;
    test_memrd m2 = { the_sample.tar.out.data, the_sample.tar.out.len, 0 };
    assert_int_equal(cs_ingest_tar(ing, "two", test_mem_read, &m2, &b, &err), 0);
    assert_int_equal(cs_ingest_stats_get(ing)->new_chunks, first);
    assert_true(cs_digest_eq(&a.tree, &b.tree));
    assert_int_equal(cs_ingest_commit(ing, &err), 0);
    cs_ingest_free(ing);
    assert_int_equal(test_count(st2, CS_T_CHUNKS), chunks);
    cs_store_close(st2);
}

/* ---- hostile input ---- */

/* A tar with a good file first (so chunks would be stored), then bad. */
static void
tar_with_payload(test_tar *t)
{
    static uint8_t payload[64 * KiB];
    test_fill_random(payload, sizeof(payload), 99);
    test_tar_begin(t);
    test_tar_file(t, "ok.bin", payload, sizeof(payload));
}

/* Ends t (the payload, then hostile members) and checks the ingest refuses
 * it naming want and stores nothing. */
static void
tar_is_refused(fx *f, test_tar *t, const char *want)
{
    test_tar_end(t);
    ingest_fails(f->s, t->out.data, t->out.len, CS_EINVAL, want);
    cs_buf_release(&t->out);
}

static void
add_hardlink(test_tar *t, const char *path, const char *target)
{
    struct archive_entry *ae = test_tar_entry(path, AE_IFREG, 0644);
    archive_entry_set_hardlink(ae, target);
    test_tar_add(t, ae, NULL, 0);
}

/* A hostile member: a small file ('f'), a hardlink ('h') or a symlink ('s')
 * at path, the link to target. */
typedef struct member {
    char kind;
    const char *path, *target;
} member;

static const struct {
    const char *name;
    member m[2]; /* after the payload; kind 0 ends */
    const char *want;
} hostile_cases[] = {
    { "member with dotdot", { { 'f', "../evil", NULL } }, "'../evil'" },
    { "member with dotdot inside", { { 'f', "usr/../../evil", NULL } }, "'usr/../../evil'" },
    { "member below a symlink of the layer",
      { { 's', "link", "/" }, { 'f', "link/etc/x", NULL } },
      "through symlink 'link'" },
    { "member below a file", { { 'f', "ok.bin/x", NULL } }, "below non-directory 'ok.bin'" },
    { "hardlink leaving the layer", { { 'h', "h", "../../outside" } }, "'../../outside'" },
    { "hardlink to an absolute path", { { 'h', "h", "/etc/shadow" } }, "'/etc/shadow'" },
    { "hardlink to a path not in the layer",
      { { 'h', "h", "etc/passwd" } },
      "'etc/passwd', which is not a file" },
    { "hardlink cycle", { { 'h', "a", "b" }, { 'h', "b", "a" } }, "not a file of the layer" },
};

static void
hostile_members_are_refused(void **state)
{
    for (size_t i = 0; i < sizeof(hostile_cases) / sizeof(hostile_cases[0]); i++) {
        test_case("%s", hostile_cases[i].name);
        test_tar t;
        tar_with_payload(&t);
        for (const member *m = hostile_cases[i].m; m < hostile_cases[i].m + 2 && m->kind; m++) {
            if (m->kind == 'f') {
                test_tar_file(&t, m->path, "pwned", 5);
            } else if (m->kind == 'h') {
                add_hardlink(&t, m->path, m->target);
            } else {
                struct archive_entry *ae = test_tar_entry(m->path, AE_IFLNK, 0777);
                archive_entry_set_symlink(ae, m->target);
                test_tar_add(&t, ae, NULL, 0);
            }
        }
        tar_is_refused(*state, &t, hostile_cases[i].want);
    }
}

/* Tars written by hand (libarchive's writer would not): a file "ok", then
 * name with this size field and blocks of data (the bytes "x", or random from
 * seed), then (with end) the two zero blocks that end a tar. */
static const struct {
    const char *name, *member, *size;
    int blocks;
    uint64_t seed;
    bool end;
    cs_code code;
    const char *want;
} hand_made_cases[] = {
    /* libarchive's writer keeps the leading '/'; make sure by hand. */
    { "member with an absolute path", "/abs", "00000000001", 1, 0, true, CS_EINVAL,
      "'/abs' has an absolute path" },
    { "absurd size field with little data", "huge", "77777777777", 8, 3, false, CS_EPARSE,
      "'huge'" },
};

static void
hand_made_tars_with_an_absolute_path_or_an_absurd_size_fail(void **state)
{
    fx *f = *state;
    for (size_t i = 0; i < sizeof(hand_made_cases) / sizeof(hand_made_cases[0]); i++) {
        test_case("%s", hand_made_cases[i].name);
        cs_buf b;
        cs_buf_init(&b);
        uint8_t d[512] = "x";
        static const uint8_t end[1024];
        if (hand_made_cases[i].seed)
            test_fill_random(d, sizeof(d), hand_made_cases[i].seed);
        raw_member(&b, "ok", "00000000001", d, 1);
        raw_member(&b, hand_made_cases[i].member, hand_made_cases[i].size, d,
                   hand_made_cases[i].blocks);
        if (hand_made_cases[i].end)
            cs_buf_append(&b, end, sizeof(end));
        ingest_fails(f->s, b.data, b.len, hand_made_cases[i].code, hand_made_cases[i].want);
        cs_buf_release(&b);
    }
}

static void
tar_cut_inside_a_file_fails(void **state)
{
    fx *f = *state;
    test_tar t;
    tar_with_payload(&t);
    static uint8_t big[200 * KiB];
    test_fill_random(big, sizeof(big), 5);
    test_tar_file(&t, "big", big, sizeof(big));
    test_tar_end(&t);
    /* ok.bin: 1024 (pax) + 512 + 64 KiB; big starts after; cut 100 KiB in. */
    size_t cut = t.out.len - 2 * 10240 - 100 * KiB;
    ingest_fails(f->s, t.out.data, cut, CS_EPARSE, "'big': Truncated tar archive");
    cs_buf_release(&t.out);
}

/* *z (initialized here) = tar_with_payload's tar, gzip or zstd. */
static void
compressed_payload(cs_buf *z, bool zstd)
{
    test_tar t;
    tar_with_payload(&t);
    test_tar_end(&t);
    cs_buf_init(z);
    if (zstd)
        zstd_append(z, t.out.data, t.out.len);
    else
        test_gzip_append(z, t.out.data, t.out.len);
    cs_buf_release(&t.out);
}

/* A compressed layer cut short or damaged: 'e' drops the last n bytes, 'h'
 * keeps the first half, 'x' flips a byte in the middle. */
static const struct {
    const char *name;
    bool zstd;
    char damage;
    size_t n;
    const char *want;
} damaged_cases[] = {
    /* Only the trailer missing: the tar itself parses, the gzip is short. */
    { "gzip without its trailer", false, 'e', 4, "truncated" },
    { "gzip cut in half", false, 'h', 0, "truncated" },
    { "zstd without its last bytes", true, 'e', 3, "truncated" },
    { "gzip with a flipped byte", false, 'x', 0, "gzip data is corrupt" },
};

static void
truncated_or_corrupt_compressed_layers_fail(void **state)
{
    fx *f = *state;
    for (size_t i = 0; i < sizeof(damaged_cases) / sizeof(damaged_cases[0]); i++) {
        test_case("%s", damaged_cases[i].name);
        cs_buf z;
        compressed_payload(&z, damaged_cases[i].zstd);
        size_t len = z.len;
        if (damaged_cases[i].damage == 'e')
            len -= damaged_cases[i].n;
        else if (damaged_cases[i].damage == 'h')
            len /= 2;
        else
            z.data[z.len / 2] ^= 0x55;
        ingest_fails(f->s, z.data, len, CS_ECORRUPT, damaged_cases[i].want);
        cs_buf_release(&z);
    }
}

static void
bad_header_checksum_fails(void **state)
{
    fx *f = *state;
    test_tar t;
    tar_with_payload(&t);
    test_tar_file(&t, "second", "abc", 3);
    test_tar_end(&t);
    /* Flip a byte of the name in the header of "second": its checksum fails. */
    uint8_t *h = memmem(t.out.data, t.out.len, "second", 6);
    assert_non_null(h);
    assert_int_equal((h - t.out.data) % 512, 0);
    h[1] ^= 0x20;
    ingest_fails(f->s, t.out.data, t.out.len, CS_EPARSE, "evil.tar: ");
    cs_buf_release(&t.out);
}

static void
garbage_is_not_a_tar(void **state)
{
    fx *f = *state;
    uint8_t junk[8192];
    test_fill_random(junk, sizeof(junk), 42);
    ingest_fails(f->s, junk, sizeof(junk), CS_EPARSE, "evil.tar: ");
    static const char text[] = "this is not a tar archive, just some text\n";
    ingest_fails(f->s, text, sizeof(text) - 1, CS_EPARSE, "evil.tar: ");
}

static void
an_ingest_that_failed_mid_file_refuses_more_work(void **state)
{

    fx *f = *state;
    test_tar t;
    tar_with_payload(&t);
    test_tar_end(&t);
    cs_ingest *ing = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &err), 0);
    test_memrd m = { t.out.data, 512 + 32 * KiB, 0 }; /* cut inside ok.bin */
    cs_layer_info info;
    assert_true(cs_ingest_tar(ing, "cut", test_mem_read, &m, &info, &err) < 0);
    cs_error_clear(&err);
    /* Either refused, or a correct digest: never success with no digest. */
    cs_autofree char *path = cs_path_join(f->work, "x");
    test_write_file(path, "abc", 3, 0644);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cs_digest d, want;
    memset(&d, 0xee, sizeof(d));
    uint64_t size;
    int r = cs_ingest_fd(ing, fd, &d, &size, &err);
    close(fd);
    cs_ingest_free(ing);
    cs_error_free(err);
    cs_buf_release(&t.out);
    cs_sha256("abc", 3, &want);
    if (r == 0)
        assert_true(cs_digest_eq(&d, &want));
}

/* ---- directories ---- */

static void
ingest_dir_keeps_entries_links_and_contents(void **state)
{
    fx *f = *state;
    cs_autofree char *d = cs_path_join(f->work, "rootfs");
    cs_autofree char *a = cs_path_join(d, "a");
    cs_autofree char *ab = cs_path_join(d, "a/b");
    cs_autofree char *deep = cs_path_join(d, "a/b/deep.txt");
    cs_autofree char *atxt = cs_path_join(d, "a.txt");
    cs_autofree char *empty = cs_path_join(d, "empty");
    cs_autofree char *h1 = cs_path_join(d, "h1");
    cs_autofree char *h2 = cs_path_join(d, "h2");
    cs_autofree char *sym = cs_path_join(d, "sym");
    assert_int_equal(mkdir(d, 0755), 0);
    assert_int_equal(mkdir(a, 0750), 0);
    assert_int_equal(mkdir(ab, 0700), 0);
    static uint8_t text[100 * KiB], rnd[300 * KiB];
    fill_text(text, sizeof(text), 1);
    test_fill_random(rnd, sizeof(rnd), 2);
    test_write_file(deep, text, sizeof(text), 0644);
    test_write_file(atxt, "hello\n", 6, 0600);
    test_write_file(empty, "", 0, 0644);
    test_write_file(h1, rnd, sizeof(rnd), 0755);
    assert_int_equal(link(h1, h2), 0);
    assert_int_equal(symlink("a/b/deep.txt", sym), 0);
    set_mtime(deep, 1600000000, 123456789);
    set_mtime(sym, 1600000001, 5);
    set_mtime(ab, 1600000002, 0);

    cs_ingest *ing = NULL;
    cs_error *err = NULL;
    cs_digest td;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &err), 0);
    int r = cs_ingest_dir(ing, d, &td, &err);
    if (r < 0)
        fail_msg("ingest dir: %s", err->msg);
    assert_int_equal(cs_ingest_stats_get(ing)->files, 4); /* h2 is a link */
    assert_int_equal(cs_ingest_commit(ing, &err), 0);
    cs_ingest_free(ing);

    cs_tree *t = test_get_tree(f->s, &td);
    static const struct {
        const char *path;
        cs_etype type;
        uint32_t mode;
    } want[] = {
        { "a", CS_E_DIR, 0750 },       { "a.txt", CS_E_FILE, 0600 },
        { "a/b", CS_E_DIR, 0700 },     { "a/b/deep.txt", CS_E_FILE, 0644 },
        { "empty", CS_E_FILE, 0644 },  { "h1", CS_E_FILE, 0755 },
        { "h2", CS_E_HARDLINK, 0755 }, { "sym", CS_E_SYMLINK, 0777 },
    };
    assert_int_equal(t->n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < t->n; i++) {
        assert_string_equal(t->e[i].path, want[i].path);
        assert_int_equal(t->e[i].type, want[i].type);
        assert_int_equal(t->e[i].mode, want[i].mode);
        assert_int_equal(t->e[i].uid, getuid());
        assert_int_equal(t->e[i].gid, getgid());
    }
    const cs_entry *e = cs_tree_find(t, "a/b/deep.txt");
    assert_int_equal(e->size, sizeof(text));
    assert_int_equal(e->mtime_sec, 1600000000);
    assert_int_equal(e->mtime_nsec, 123456789);
    test_assert_content(f->s, &e->content, text, sizeof(text));
    e = cs_tree_find(t, "a.txt");
    test_assert_content(f->s, &e->content, "hello\n", 6);
    e = cs_tree_find(t, "a/b");
    assert_int_equal(e->mtime_sec, 1600000002);
    e = cs_tree_find(t, "empty");
    assert_int_equal(e->size, 0);
    assert_false(e->has_content);
    e = cs_tree_find(t, "h1");
    test_assert_content(f->s, &e->content, rnd, sizeof(rnd));
    const cs_entry *l = cs_tree_find(t, "h2");
    assert_string_equal(l->link, "h1");
    assert_int_equal(l->size, sizeof(rnd));
    assert_true(l->has_content);
    assert_true(cs_digest_eq(&l->content, &e->content));
    e = cs_tree_find(t, "sym");
    assert_string_equal(e->link, "a/b/deep.txt");
    assert_int_equal(e->mtime_sec, 1600000001);
    assert_int_equal(e->mtime_nsec, 5);
    assert_int_equal(test_count(f->s, CS_T_CONTENTS), 3);
    cs_tree_free(t);
}

/* ---- single files ---- */

static void
ingest_fd_gives_the_sha256_of_the_file(void **state)
{
    fx *f = *state;
    static const size_t sizes[] = { 1, 10 * KiB, 700 * KiB };
    static uint8_t data[700 * KiB];
    test_fill_random(data, sizeof(data), 11);
    cs_autofree char *path = cs_path_join(f->work, "blob");
    cs_ingest *ing = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &err), 0);
    cs_digest got[3];
    for (int i = 0; i < 3; i++) {
        test_write_file(path, data, sizes[i], 0644);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint64_t size = 0;
        assert_int_equal(cs_ingest_fd(ing, fd, &got[i], &size, &err), 0);
        close(fd);
        assert_int_equal(size, sizes[i]);
        cs_digest want;
        cs_sha256(data, sizes[i], &want);
        assert_true(cs_digest_eq(&got[i], &want));
    }
    assert_int_equal(cs_ingest_commit(ing, &err), 0);
    cs_ingest_free(ing);
    for (int i = 0; i < 3; i++)
        test_assert_content(f->s, &got[i], data, sizes[i]);
    assert_int_equal(test_count(f->s, CS_T_CONTENTS), 3);
}

static void
ingest_fd_of_an_empty_file_gives_a_zero_digest_and_no_record(void **state)
{
    fx *f = *state;
    cs_autofree char *path = cs_path_join(f->work, "empty");
    test_write_file(path, "", 0, 0644);
    cs_ingest *ing = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &err), 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cs_digest d;
    memset(&d, 0xab, sizeof(d));
    uint64_t size = 99;
    assert_int_equal(cs_ingest_fd(ing, fd, &d, &size, &err), 0);
    close(fd);
    assert_int_equal(size, 0);
    assert_true(cs_digest_is_zero(&d));
    assert_int_equal(cs_ingest_commit(ing, &err), 0);
    cs_ingest_free(ing);
    assert_int_equal(test_count(f->s, CS_T_CONTENTS), 0);
    assert_int_equal(test_count(f->s, CS_T_CHUNKS), 0);
}

/* ---- references ---- */

static void
references_normalize_like_docker(void **state)
{
    (void) state;
    static const char *table[][2] = {
        { "golang", "docker.io/library/golang:latest" },
        { "golang:1.19", "docker.io/library/golang:1.19" },
        { "library/golang:1.19", "docker.io/library/golang:1.19" },
        { "docker.io/library/golang:1.19", "docker.io/library/golang:1.19" },
        { "index.docker.io/library/golang:1.19", "docker.io/library/golang:1.19" },
        { "docker.io/golang:1.19", "docker.io/library/golang:1.19" },
        { "index.docker.io/golang", "docker.io/library/golang:latest" },
        { "quay.io/a/b:c", "quay.io/a/b:c" },
        { "localhost:5000/x", "localhost:5000/x:latest" },
        { "localhost/x:y", "localhost/x:y" },
        { "user/repo", "docker.io/user/repo:latest" },
        { "a/b/c/d:E_1.x-y", "docker.io/a/b/c/d:E_1.x-y" },
        { "my-reg.example.com:443/team/app:v2", "my-reg.example.com:443/team/app:v2" },
        { "host:5000", "docker.io/library/host:5000" }, /* a tag, as in docker */
        { "a__b-c.d", "docker.io/library/a__b-c.d:latest" },
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        char *out = NULL;
        cs_error *err = NULL;
        int r = cs_ref_normalize(table[i][0], &out, &err);
        if (r < 0)
            fail_msg("'%s': %s", table[i][0], err->msg);
        assert_string_equal(out, table[i][1]);
        free(out);
    }
}

static void
malformed_references_are_refused(void **state)
{
    (void) state;
    static const char *bad[] = {
        "UPPER", "a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "",      "a:b:c", /* docker: invalid reference format */
        "a:",    ":tag",
        "a/",    "/a",
        "a//b",  "-a",
        "a-",    "a:-tag",
        "a: b",  "repo/UPPER:tag",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *out = NULL;
        cs_error *err = NULL;
        int r = cs_ref_normalize(bad[i], &out, &err);
        if (r >= 0)
            fail_msg("'%s' was accepted as '%s'", bad[i], out);
        assert_int_equal(r, -CS_EINVAL);
        assert_non_null(err);
        cs_error_free(err);
    }
    /* A tag of 128 characters is fine, 129 is not. */
    char ref[200] = "a:";
    memset(ref + 2, 't', 128);
    char *out = NULL;
    assert_int_equal(cs_ref_normalize(ref, &out, NULL), 0);
    free(out);
    ref[2 + 128] = 't';
    assert_int_equal(cs_ref_normalize(ref, &out, NULL), -CS_EINVAL);
}

static void
references_docker_refuses_are_refused(void **state)
{
    (void) state;

    static const char *bad[] = {
        "a..b",                        /* separators: one of '.', '_', '__' or a run of '-' */
        "a._b",      "a___b", "a:b/c", /* a port is digits */
        "-reg.io/x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *out = NULL;
        if (cs_ref_normalize(bad[i], &out, NULL) >= 0)
            fail_msg("'%s' was accepted as '%s'", bad[i], out);
    }
}

static void
familiar_form_is_the_inverse_of_normalize(void **state)
{
    (void) state;
    static const char *table[][2] = {
        { "docker.io/library/golang:latest", "golang:latest" },
        { "docker.io/library/golang:1.19", "golang:1.19" },
        { "docker.io/user/repo:latest", "user/repo:latest" },
        { "quay.io/a/b:c", "quay.io/a/b:c" },
        { "localhost:5000/x:latest", "localhost:5000/x:latest" },
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        char *fam = cs_ref_familiar(table[i][0]);
        assert_string_equal(fam, table[i][1]);
        char *back = NULL;
        assert_int_equal(cs_ref_normalize(fam, &back, NULL), 0);
        assert_string_equal(back, table[i][0]);
        free(fam);
        free(back);
    }
}

static void
familiar_form_of_a_nested_library_path_round_trips(void **state)
{
    (void) state;

    char *fam = cs_ref_familiar("docker.io/library/a/b:c");
    char *back = NULL;
    assert_int_equal(cs_ref_normalize(fam, &back, NULL), 0);
    assert_string_equal(back, "docker.io/library/a/b:c");
    free(fam);
    free(back);
}

/* The content a tree entry reads as: hardlink chains followed. */
static const cs_entry *
resolve_link(const cs_tree *t, const char *path)
{
    const cs_entry *e = cs_tree_find(t, path);
    for (int hops = 0; e && e->type == CS_E_HARDLINK && hops < 8; hops++)
        e = cs_tree_find(t, e->link);
    assert_non_null(e);
    assert_int_equal(e->type, CS_E_FILE);
    return e;
}

static void
hardlink_gets_its_target_as_of_that_point_of_the_tar(void **state)
{
    fx *f = *state;
    test_tar t;
    test_tar_begin(&t);
    test_tar_file(&t, "t", "one", 3);
    add_hardlink(&t, "h", "t");
    add_hardlink(&t, "h2", "t");
    test_tar_file(&t, "t", "two", 3);
    add_hardlink(&t, "h3", "t");
    test_tar_end(&t);
    cs_layer_info info;
    test_ingest_tar(f->s, t.out.data, t.out.len, 0, &info, NULL);
    cs_buf_release(&t.out);
    cs_tree *tr = test_get_tree(f->s, &info.tree);
    /* What tar extraction gives: h and h2 are the first "t", one inode. */
    cs_digest one = test_sha("one"), two = test_sha("two");
    assert_memory_equal(&resolve_link(tr, "h")->content, &one, sizeof(one));
    assert_memory_equal(&resolve_link(tr, "h2")->content, &one, sizeof(one));
    assert_memory_equal(&resolve_link(tr, "t")->content, &two, sizeof(two));
    assert_memory_equal(&resolve_link(tr, "h3")->content, &two, sizeof(two));
    const cs_entry *h = cs_tree_find(tr, "h"), *h2 = cs_tree_find(tr, "h2");
    assert_true(h->type == CS_E_HARDLINK || h2->type == CS_E_HARDLINK);
    cs_tree_free(tr);
}

/* ---- reset ---- */

static void
fsck_problem(void *ctx, const char *msg)
{
    (void) ctx;
    fail_msg("fsck: %s", msg);
}

static void
a_reset_ingest_drops_the_failed_layer_and_commits_the_next(void **state)
{
    fx *f = *state;
    /* The failed tar: a whole file (its chunks put), then one cut inside its
     * data with chunks still in flight. */
    static uint8_t bad[256 * KiB], cut[1 * MiB], good[300 * KiB];
    test_fill_random(bad, sizeof(bad), 1201);
    test_fill_random(cut, sizeof(cut), 1202);
    test_fill_random(good, sizeof(good), 1203);
    test_tar t, g;
    test_tar_begin(&t);
    test_tar_file(&t, "bad.bin", bad, sizeof(bad));
    test_tar_file(&t, "cut.bin", cut, sizeof(cut));
    test_tar_end(&t);
    test_tar_begin(&g);
    test_tar_file(&g, "good.bin", good, sizeof(good));
    test_tar_end(&g);

    cs_ingest *ing = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_ingest_begin(f->s, &ing, &err), 0);
    test_memrd m = { t.out.data, t.out.len - 300 * KiB, 0 }; /* inside cut.bin */
    cs_layer_info info;
    assert_true(cs_ingest_tar(ing, "cut", test_mem_read, &m, &info, &err) < 0);
    cs_error_clear(&err);
    assert_int_equal(cs_ingest_reset(ing, &err), 0);
    assert_int_equal(cs_ingest_stats_get(ing)->files, 0);
    test_memrd mg = { g.out.data, g.out.len, 0 };
    assert_int_equal(cs_ingest_tar(ing, "good", test_mem_read, &mg, &info, &err), 0);
    cs_ingest_stats st = *cs_ingest_stats_get(ing);
    assert_int_equal(cs_ingest_commit(ing, &err), 0);
    assert_int_equal(cs_ingest_reset(ing, &err), -CS_EINVAL); /* committed: only freed */
    cs_error_clear(&err);
    cs_ingest_free(ing);

    /* Only the good layer: its tree, its one content, its chunks. */
    assert_int_equal(st.files, 1);
    assert_int_equal(test_count(f->s, CS_T_TREES), 1);
    assert_int_equal(test_count(f->s, CS_T_CONTENTS), 1);
    assert_int_equal(test_count(f->s, CS_T_CHUNKS), st.new_chunks);
    cs_digest bd, cd, gd;
    cs_sha256(bad, sizeof(bad), &bd);
    cs_sha256(cut, sizeof(cut), &cd);
    cs_sha256(good, sizeof(good), &gd);
    assert_false(test_has(f->s, CS_T_CONTENTS, bd.b, 32));
    assert_false(test_has(f->s, CS_T_CONTENTS, cd.b, 32));
    cs_tree *tr = test_get_tree(f->s, &info.tree);
    const cs_entry *e = cs_tree_find(tr, "good.bin");
    assert_non_null(e);
    assert_memory_equal(&e->content, &gd, sizeof(gd));
    cs_tree_free(tr);
    test_assert_content(f->s, &gd, good, sizeof(good));
    assert_int_equal(cs_fsck(f->s, fsck_problem, NULL, &err), 0);
    cs_buf_release(&t.out);
    cs_buf_release(&g.out);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, test_sandbox_setup, test_sandbox_teardown)
    const struct CMUnitTest tests[] = {
        T(plain_tar_round_trips_every_entry_type_and_attribute),
        T(odd_sized_reads_give_the_same_layer),
        T(compressed_tars_round_trip_with_digests_of_both_streams),
        T(later_member_of_the_same_path_wins),
        T(same_tar_in_two_fresh_stores_gives_the_same_tree),
        T(ingesting_a_tar_again_writes_no_new_chunks),
        T(hostile_members_are_refused),
        T(hand_made_tars_with_an_absolute_path_or_an_absurd_size_fail),
        T(hardlink_gets_its_target_as_of_that_point_of_the_tar),
        T(tar_cut_inside_a_file_fails),
        T(truncated_or_corrupt_compressed_layers_fail),
        T(bad_header_checksum_fails),
        T(garbage_is_not_a_tar),
        T(an_ingest_that_failed_mid_file_refuses_more_work),
        T(ingest_dir_keeps_entries_links_and_contents),
        T(ingest_fd_gives_the_sha256_of_the_file),
        T(ingest_fd_of_an_empty_file_gives_a_zero_digest_and_no_record),
        T(a_reset_ingest_drops_the_failed_layer_and_commits_the_next),
        cmocka_unit_test(references_normalize_like_docker),
        cmocka_unit_test(malformed_references_are_refused),
        cmocka_unit_test(references_docker_refuses_are_refused),
        cmocka_unit_test(familiar_form_is_the_inverse_of_normalize),
        cmocka_unit_test(familiar_form_of_a_nested_library_path_round_trips),
    };
#undef T
    return cmocka_run_group_tests(tests, sample_setup, sample_teardown);
}
