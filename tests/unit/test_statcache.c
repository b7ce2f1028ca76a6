/* test_statcache.c - the stat cache records (store/statcache.c): round
 * trips, misses on any stat change, garbled records; gc and fsck keep a
 * record's content stored; summary records. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cstore/db.h"
#include "cstore/gc.h"
#include "cstore/ingest.h"
#include "cstore/statcache.h"
#include "cstore/store.h"

typedef struct fx {
    test_sandbox sb;
    char file[128]; /* <work>/file.txt */
    struct stat st; /* of file */
    cs_digest content;
} fx;

static void
write_file(fx *f, const char *data)
{
    test_write_file(f->file, data, strlen(data), 0644);
    assert_int_equal(lstat(f->file, &f->st), 0);
}

/* work/file.txt, written. */
static void
init(void *fp)
{
    fx *f = fp;
    snprintf(f->file, sizeof(f->file), "%s/file.txt", f->sb.work);
    write_file(f, "hello, stat cache\n");
}

static int
setup(void **state)
{
    return test_sandbox_init(state, sizeof(fx), 0, init);
}

/* Ingests the file in ing: f->content is its digest. */
static void
ingest_file(fx *f, cs_ingest *ing)
{
    int fd = open(f->file, O_RDONLY);
    assert_true(fd >= 0);
    uint64_t size = 0;
    assert_int_equal(cs_ingest_fd(ing, fd, &f->content, &size, &f->sb.err), 0);
    close(fd);
    assert_int_equal(size, f->st.st_size);
}

/* Records path with f->st and content, in one committed ingest; with
 * ingest, ingests the file first (so content is stored) and records its
 * digest. */
static void
record(fx *f, const char *path, const cs_digest *content, bool ingest)
{
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(f->sb.s, &ing, &f->sb.err), 0);
    if (ingest) {
        ingest_file(f, ing);
        content = &f->content;
    }
    assert_int_equal(cs_statcache_put(f->sb.s, ing, path, &f->st, content, &f->sb.err), 0);
    assert_int_equal(cs_ingest_commit(ing, &f->sb.err), 0);
    cs_ingest_free(ing);
}

/* Ingests the file (so its content is stored) and records it for path. */
static void
remember(fx *f, const char *path)
{
    record(f, path, NULL, true);
}

static MDB_txn *
begin(fx *f, unsigned flags)
{
    MDB_txn *txn;
    assert_int_equal(cs_db_begin(cs_store_db(f->sb.s), flags, &txn, &f->sb.err), 0);
    return txn;
}

/* cs_statcache_get through a read view. */
static int
lookup(fx *f, const char *path, const struct stat *st, cs_digest *d)
{
    cs_statcache *sc = NULL;
    assert_int_equal(cs_statcache_open(f->sb.s, NULL, &sc, &f->sb.err), 0);
    int r = cs_statcache_get(sc, path, st, d, &f->sb.err);
    cs_statcache_close(sc);
    return r;
}

static void
a_recorded_file_is_found_with_its_content(void **state)
{
    fx *f = *state;
    remember(f, f->file);
    cs_digest d;
    assert_int_equal(lookup(f, f->file, &f->st, &d), 1);
    assert_true(cs_digest_eq(&d, &f->content));
}

static void
a_path_too_long_for_a_key_round_trips_through_its_hash(void **state)
{
    fx *f = *state;
    char path[CS_STATCACHE_MAXPATH + 64];
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    remember(f, path);
    cs_digest d;
    assert_int_equal(lookup(f, path, &f->st, &d), 1);
    assert_true(cs_digest_eq(&d, &f->content));
    path[10] = 'b'; /* another long path: another key */
    assert_int_equal(lookup(f, path, &f->st, &d), 0);
}

static void
a_changed_mtime_size_or_inode_misses(void **state)
{
    fx *f = *state;
    remember(f, f->file);
    cs_digest d;
    struct stat st = f->st;
    st.st_mtim.tv_nsec ^= 1;
    assert_int_equal(lookup(f, f->file, &st, &d), 0);
    st = f->st;
    st.st_size++;
    assert_int_equal(lookup(f, f->file, &st, &d), 0);
    st = f->st;
    st.st_ino++;
    assert_int_equal(lookup(f, f->file, &st, &d), 0);
    st = f->st;
    st.st_ctim.tv_sec++;
    assert_int_equal(lookup(f, f->file, &st, &d), 0);
    assert_int_equal(lookup(f, f->file, &f->st, &d), 1);
}

static void
an_unknown_path_misses(void **state)
{
    fx *f = *state;
    remember(f, f->file);
    cs_digest d;
    assert_int_equal(lookup(f, "/no/such/file", &f->st, &d), 0);
}

/* A gc with the default policy, the store reopened for it. */
static void
run_gc(fx *f, cs_gc_stats *st)
{
    cs_store_close(f->sb.s);
    assert_int_equal(cs_store_open(f->sb.root, CS_OPEN_EXCLUSIVE, &f->sb.s, &f->sb.err), 0);
    f->sb.db = cs_store_db(f->sb.s);
    cs_gc_opts go = { .keep_storage = CS_GC_KEEP_STORAGE, .keep_duration = CS_GC_KEEP_DURATION };
    assert_int_equal(cs_gc_ex(f->sb.s, &go, st, &f->sb.err), 0);
}

static void
gc_drops_a_record_with_the_content_it_frees(void **state)
{
    fx *f = *state;
    remember(f, f->file); /* the content is no tree's: gc frees it */
    cs_gc_stats st;
    run_gc(f, &st);
    assert_int_equal(st.contents, 1);
    assert_int_equal(st.statcache, 1);
    cs_digest d;
    assert_int_equal(lookup(f, f->file, &f->st, &d), 0);
}

static void
count_problem(void *ctx, const char *msg)
{
    int *n = ctx;
    *n += strstr(msg, "stat cache record") != NULL;
}

/* A hit does not look the content up (gc keeps the two in step): a record
 * naming a content that is not stored is a damaged store, fsck says so. */
static void
fsck_reports_a_record_whose_content_is_missing(void **state)
{
    fx *f = *state;
    cs_digest never;
    cs_sha256("never stored", 12, &never);
    record(f, f->file, &never, false);
    int n = 0;
    assert_true(cs_fsck(f->sb.s, count_problem, &n, &f->sb.err) >= 1);
    assert_int_equal(n, 1);
}

static void
an_empty_file_hits_without_content(void **state)
{
    fx *f = *state;
    write_file(f, "");
    cs_digest zero = { 0 };
    record(f, f->file, &zero, false);
    cs_digest d;
    memset(&d, 0xff, sizeof(d));
    assert_int_equal(lookup(f, f->file, &f->st, &d), 1);
    assert_true(cs_digest_is_zero(&d));
}

static void
a_view_in_an_ingest_sees_what_it_put(void **state)
{
    fx *f = *state;
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(f->sb.s, &ing, &f->sb.err), 0);
    ingest_file(f, ing);
    assert_int_equal(cs_statcache_put(f->sb.s, ing, f->file, &f->st, &f->content, &f->sb.err), 0);
    cs_statcache *sc = NULL;
    assert_int_equal(cs_statcache_open(f->sb.s, ing, &sc, &f->sb.err), 0);
    cs_digest d;
    assert_int_equal(cs_statcache_get(sc, f->file, &f->st, &d, &f->sb.err), 1);
    assert_true(cs_digest_eq(&d, &f->content));
    assert_int_equal(cs_statcache_has_content(sc, &f->content, &f->sb.err), 1);
    cs_statcache_close(sc);
    cs_ingest_free(ing); /* uncommitted: nothing stays */
    assert_int_equal(lookup(f, f->file, &f->st, &d), 0);
}

static void
a_garbled_record_is_refused(void **state)
{
    fx *f = *state;
    remember(f, f->file);
    /* The same key with a value one byte short. */
    cs_db *db = cs_store_db(f->sb.s);
    MDB_txn *txn = begin(f, 0);
    uint8_t junk[CS_STATCACHE_VLEN - 1];
    memset(junk, 0x5a, sizeof(junk));
    assert_true(cs_db_put(db, txn, CS_T_STATCACHE, f->file, strlen(f->file), junk, sizeof(junk), 0,
                          &f->sb.err)
                >= 0);
    assert_int_equal(cs_db_commit(txn, &f->sb.err), 0);
    cs_digest d;
    assert_int_equal(lookup(f, f->file, &f->st, &d), 0);
    assert_false(cs_statcache_record_content(junk, sizeof(junk), &d));
}

static void
gc_reads_the_content_a_record_names(void **state)
{
    fx *f = *state;
    remember(f, f->file);
    cs_db *db = cs_store_db(f->sb.s);
    MDB_txn *txn = begin(f, MDB_RDONLY);
    MDB_val v;
    assert_int_equal(cs_db_get(db, txn, CS_T_STATCACHE, f->file, strlen(f->file), &v, &f->sb.err),
                     0);
    assert_int_equal(v.mv_size, CS_STATCACHE_VLEN);
    cs_digest d;
    assert_true(cs_statcache_record_content(v.mv_data, v.mv_size, &d));
    assert_true(cs_digest_eq(&d, &f->content));
    mdb_txn_abort(txn);
}

/* ---- summary records ---- */

static void
put_summary(fx *f, const cs_digest *sel, const cs_digest *state, const cs_digest *result)
{
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(f->sb.s, &ing, &f->sb.err), 0);
    assert_int_equal(cs_statcache_summary_put(f->sb.s, ing, sel, state, result, &f->sb.err), 0);
    assert_int_equal(cs_ingest_commit(ing, &f->sb.err), 0);
    cs_ingest_free(ing);
}

static int
get_summary(fx *f, const cs_digest *sel, const cs_digest *state, cs_digest *result)
{
    cs_statcache *sc = NULL;
    assert_int_equal(cs_statcache_open(f->sb.s, NULL, &sc, &f->sb.err), 0);
    int r = cs_statcache_summary_get(sc, sel, state, result, &f->sb.err);
    cs_statcache_close(sc);
    return r;
}

static void
a_summary_answers_only_its_own_state(void **state)
{
    fx *f = *state;
    cs_digest sel, st1, st2, res, got;
    cs_sha256("selection", 9, &sel);
    cs_sha256("state one", 9, &st1);
    cs_sha256("state two", 9, &st2);
    cs_sha256("result", 6, &res);
    assert_int_equal(get_summary(f, &sel, &st1, &got), 0);
    put_summary(f, &sel, &st1, &res);
    assert_int_equal(get_summary(f, &sel, &st1, &got), 1);
    assert_true(cs_digest_eq(&got, &res));
    assert_int_equal(get_summary(f, &sel, &st2, &got), 0);
    assert_int_equal(get_summary(f, &st1, &st1, &got), 0); /* another selection */
    /* A new state overwrites: the old one answers no more. */
    put_summary(f, &sel, &st2, &st1);
    assert_int_equal(get_summary(f, &sel, &st1, &got), 0);
    assert_int_equal(get_summary(f, &sel, &st2, &got), 1);
    assert_true(cs_digest_eq(&got, &st1));
}

static void
a_summary_is_no_stat_cache_record_and_gc_drops_it(void **state)
{
    fx *f = *state;
    cs_digest sel, st1, res, got;
    cs_sha256("selection", 9, &sel);
    cs_sha256("state", 5, &st1);
    cs_sha256("result", 6, &res);
    put_summary(f, &sel, &st1, &res);
    uint8_t key[33] = { 1 };
    memcpy(key + 1, sel.b, 32);
    MDB_txn *txn = begin(f, MDB_RDONLY);
    MDB_val v;
    assert_int_equal(
        cs_db_get(cs_store_db(f->sb.s), txn, CS_T_STATCACHE, key, sizeof(key), &v, &f->sb.err), 0);
    assert_false(cs_statcache_record_content(v.mv_data, v.mv_size, &got));
    mdb_txn_abort(txn);
    int n = 0;
    assert_int_equal(cs_fsck(f->sb.s, count_problem, &n, &f->sb.err), 0);
    cs_gc_stats gs;
    run_gc(f, &gs);
    assert_int_equal(gs.statcache, 1);
    assert_int_equal(get_summary(f, &sel, &st1, &got), 0);
}

/* ---- listing records ---- */

static void
put_listing(fx *f, const char *path, const struct stat *st, const char *names, size_t len, size_t n)
{
    cs_ingest *ing = NULL;
    assert_int_equal(cs_ingest_begin(f->sb.s, &ing, &f->sb.err), 0);
    assert_int_equal(cs_statcache_dir_put(f->sb.s, ing, path, st, names, len, n, &f->sb.err), 0);
    assert_int_equal(cs_ingest_commit(ing, &f->sb.err), 0);
    cs_ingest_free(ing);
}

/* cs_statcache_dir_get through a read view; on a hit, the names are
 * compared with want (wlen bytes, wn names). */
static int
get_listing(fx *f, const char *path, const struct stat *st, const char *want, size_t wlen,
            size_t wn)
{
    cs_statcache *sc = NULL;
    assert_int_equal(cs_statcache_open(f->sb.s, NULL, &sc, &f->sb.err), 0);
    const char *names = NULL;
    size_t len = 0, n = 0;
    int r = cs_statcache_dir_get(sc, path, st, &names, &len, &n, &f->sb.err);
    if (r == 1) {
        assert_int_equal(len, wlen);
        assert_int_equal(n, wn);
        assert_memory_equal(names, want, wlen);
    }
    cs_statcache_close(sc);
    return r;
}

static void
a_listing_record_answers_only_its_directorys_stat(void **state)
{
    fx *f = *state;
    struct stat st;
    assert_int_equal(lstat(f->sb.work, &st), 0);
    static const char names[] = "a\0bb\0c.txt";
    assert_int_equal(get_listing(f, f->sb.work, &st, names, sizeof(names), 3), 0);
    put_listing(f, f->sb.work, &st, names, sizeof(names), 3);
    assert_int_equal(get_listing(f, f->sb.work, &st, names, sizeof(names), 3), 1);
    struct stat ch = st; /* a ctime alone (no touch puts it back) */
    ch.st_ctim.tv_nsec ^= 1;
    assert_int_equal(get_listing(f, f->sb.work, &ch, names, sizeof(names), 3), 0);
    ch = st;
    ch.st_mtim.tv_sec++;
    assert_int_equal(get_listing(f, f->sb.work, &ch, names, sizeof(names), 3), 0);
    ch = st;
    ch.st_ino++;
    assert_int_equal(get_listing(f, f->sb.work, &ch, names, sizeof(names), 3), 0);
    assert_int_equal(get_listing(f, f->file, &st, names, sizeof(names), 3), 0); /* another path */
    cs_digest d; /* no file record of the same path */
    assert_int_equal(lookup(f, f->sb.work, &st, &d), 0);
    /* An empty directory, and a path too long for a key (hashed). */
    char path[CS_STATCACHE_MAXPATH + 64];
    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    put_listing(f, path, &st, "", 0, 0);
    assert_int_equal(get_listing(f, path, &st, "", 0, 0), 1);
}

/* The listing record key of path into key (256 bytes); its length. */
static size_t
listing_key(const char *path, uint8_t *key)
{
    size_t n = strlen(path);
    assert_true(n + 1 <= 256);
    key[0] = 2;
    memcpy(key + 1, path, n);
    return n + 1;
}

/* The raw value of path's listing record, as txn sees it. */
static MDB_val
get_raw_listing(fx *f, MDB_txn *txn, const char *path)
{
    uint8_t key[256];
    MDB_val v;
    assert_int_equal(cs_db_get(cs_store_db(f->sb.s), txn, CS_T_STATCACHE, key,
                               listing_key(path, key), &v, &f->sb.err),
                     0);
    return v;
}

static void
a_listing_record_is_no_file_record_or_summary_and_gc_drops_it(void **state)
{
    fx *f = *state;
    struct stat st;
    assert_int_equal(lstat(f->sb.work, &st), 0);
    /* names of 28 and 16 bytes: values the length of a file record and a summary, but padded */
    static const char n76[] = "abcdefghijklm\0nopqrstuvwxyz";
    static const char n64[] = "abcdefg\0hijklmn";
    char p76[256], p64[256];
    snprintf(p76, sizeof(p76), "%s/d76", f->sb.work);
    snprintf(p64, sizeof(p64), "%s/d64", f->sb.work);
    put_listing(f, p76, &st, n76, sizeof(n76), 2);
    put_listing(f, p64, &st, n64, sizeof(n64), 2);
    assert_int_equal(get_listing(f, p76, &st, n76, sizeof(n76), 2), 1);
    assert_int_equal(get_listing(f, p64, &st, n64, sizeof(n64), 2), 1);
    MDB_txn *txn = begin(f, MDB_RDONLY);
    MDB_val v = get_raw_listing(f, txn, p76);
    assert_int_equal(v.mv_size, CS_STATCACHE_VLEN + 1);
    cs_digest d;
    assert_false(cs_statcache_record_content(v.mv_data, v.mv_size, &d));
    v = get_raw_listing(f, txn, p64);
    assert_int_equal(v.mv_size, CS_STATCACHE_SUMLEN + 1);
    mdb_txn_abort(txn);
    int n = 0;
    assert_int_equal(cs_fsck(f->sb.s, count_problem, &n, &f->sb.err), 0);
    assert_int_equal(n, 0);
    cs_gc_stats gs;
    run_gc(f, &gs);
    assert_int_equal(gs.statcache, 2);
    assert_int_equal(get_listing(f, p76, &st, n76, sizeof(n76), 2), 0);
}

/* Writes value v (len bytes) as the listing record of path. */
static void
put_raw_listing(fx *f, const char *path, const void *v, size_t len)
{
    uint8_t key[256];
    size_t klen = listing_key(path, key);
    MDB_txn *txn = begin(f, 0);
    assert_true(
        cs_db_put(cs_store_db(f->sb.s), txn, CS_T_STATCACHE, key, klen, v, len, 0, &f->sb.err)
        >= 0);
    assert_int_equal(cs_db_commit(txn, &f->sb.err), 0);
}

static void
a_garbled_listing_record_is_refused(void **state)
{
    fx *f = *state;
    struct stat st;
    assert_int_equal(lstat(f->sb.work, &st), 0);
    static const char names[] = "a\0b";
    put_listing(f, f->sb.work, &st, names, sizeof(names), 2);
    MDB_txn *txn = begin(f, MDB_RDONLY);
    uint8_t good[128];
    MDB_val v = get_raw_listing(f, txn, f->sb.work);
    size_t len = v.mv_size;
    assert_true(len <= sizeof(good));
    memcpy(good, v.mv_data, len);
    mdb_txn_abort(txn);
    uint8_t bad[128];
    memcpy(bad, good, len);
    bad[len - 1] = 'x'; /* the last name unterminated */
    put_raw_listing(f, f->sb.work, bad, len);
    assert_int_equal(get_listing(f, f->sb.work, &st, names, sizeof(names), 2), 0);
    memcpy(bad, good, len);
    bad[len - 5] = 3; /* more names than there are */
    put_raw_listing(f, f->sb.work, bad, len);
    assert_int_equal(get_listing(f, f->sb.work, &st, names, sizeof(names), 2), 0);
    memcpy(bad, good, len);
    bad[len] = 'z', bad[len + 1] = '\0'; /* bytes after the names */
    put_raw_listing(f, f->sb.work, bad, len + 2);
    assert_int_equal(get_listing(f, f->sb.work, &st, names, sizeof(names), 2), 0);
    put_raw_listing(f, f->sb.work, good, 40); /* cut inside the stat */
    assert_int_equal(get_listing(f, f->sb.work, &st, names, sizeof(names), 2), 0);
    put_raw_listing(f, f->sb.work, good, len); /* and the good one answers again */
    assert_int_equal(get_listing(f, f->sb.work, &st, names, sizeof(names), 2), 1);
}

int
main(void)
{
#define T(n) cmocka_unit_test_setup_teardown(n, setup, test_sandbox_teardown)
    const struct CMUnitTest tests[] = {
        T(a_recorded_file_is_found_with_its_content),
        T(a_path_too_long_for_a_key_round_trips_through_its_hash),
        T(a_changed_mtime_size_or_inode_misses),
        T(an_unknown_path_misses),
        T(gc_drops_a_record_with_the_content_it_frees),
        T(fsck_reports_a_record_whose_content_is_missing),
        T(an_empty_file_hits_without_content),
        T(a_view_in_an_ingest_sees_what_it_put),
        T(a_garbled_record_is_refused),
        T(gc_reads_the_content_a_record_names),
        T(a_summary_answers_only_its_own_state),
        T(a_summary_is_no_stat_cache_record_and_gc_drops_it),
        T(a_listing_record_answers_only_its_directorys_stat),
        T(a_listing_record_is_no_file_record_or_summary_and_gc_drops_it),
        T(a_garbled_listing_record_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
