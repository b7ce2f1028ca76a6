/* testutil.h - the one fixture every unit test shares (tests/unit/testutil.c,
 * linked into every test_*.c by tests/CMakeLists.txt).
 *
 * A test that needs a store uses the sandbox, as cmocka setup/teardown:
 *
 *     typedef test_sandbox fx;      // f->dir, f->root, f->work, f->s, f->db, f->err
 *     ...
 *     cmocka_unit_test_setup_teardown(a_test, test_sandbox_setup, test_sandbox_teardown)
 *
 * A test with more state embeds the sandbox FIRST and calls the sandbox's
 * setup/teardown from its own:
 *
 *     typedef struct fx { test_sandbox sb; cs_digest big; } fx;   // f->sb.s ...
 *     static int setup(void **state)
 *     {
 *         if (test_sandbox_new(state, sizeof(fx), 0) < 0) return -1;
 *         fx *f = *state; ...
 *     }
 *     static int teardown(void **state) { ...; return test_sandbox_teardown(state); }
 *
 * A store that starts with records put by hand: test_sandbox_fill(state,
 * sizeof(fx), flags, fill), fill(f, db, txn) putting them in one write txn;
 * test_sandbox_init for other preparation. Elsewhere test_begin/test_commit
 * give a txn, test_put_raw/test_has a record as its owner would not.
 *
 * Many like cases make one table test: an array of rows run in a loop, each
 * row announced by test_case("name") so that a failure reads under its name.
 *
 * The rest: seeded random bytes, pax tars built in memory, a reader over
 * memory and a sink into a cs_buf, tree entries, contents put by hand,
 * reading back trees, contents and table sizes, files, shell commands, and
 * `test_need`: a host without root/runc/overlayfs/a tool skips the test,
 * but under CI (CSTORE_CI=1) a skip is a failure.
 *
 * Every helper asserts (cmocka) instead of returning an error, except where
 * it says it returns a code. Single-threaded, like the tests. */
#ifndef CSTORE_TESTUTIL_H
#define CSTORE_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cstore/content.h"
#include "cstore/ingest.h"
#include "cstore/store.h"
#include "cstore/tree.h"

struct archive;
struct archive_entry;

/* ---- the sandbox: a fresh temp dir holding an open store ---- */

typedef struct test_sandbox {
    char dir[80];  /* /tmp/cs-<program>.XXXXXX, removed by teardown */
    char *root;    /* <dir>/store: the store's directory */
    char *work;    /* <dir>/work: an empty scratch dir for the test's files */
    cs_store *s;   /* the store, open on root */
    cs_db *db;     /* cs_store_db(s); a test that reopens s sets it again */
    cs_error *err; /* for the test's own calls; teardown frees it */
} test_sandbox;

/* *state = calloc(size) (size >= sizeof(test_sandbox); the sandbox is its
 * first member), its temp dir made and its store opened with open_flags
 * (CS_OPEN_*). Returns 0, or -1 (cmocka's setup failure). */
int test_sandbox_new(void **state, size_t size, unsigned open_flags);
/* test_sandbox_new, then init(the fixture). */
int test_sandbox_init(void **state, size_t size, unsigned open_flags, void (*init)(void *f));
/* test_sandbox_new, then fill(the fixture, its db, a write txn), then the
 * commit: for a fixture whose store starts with records put by hand. */
typedef void (*test_fill_fn)(void *f, cs_db *db, MDB_txn *txn);
int test_sandbox_fill(void **state, size_t size, unsigned open_flags, test_fill_fn fill);
/* cmocka setup: test_sandbox_new(state, sizeof(test_sandbox), 0). */
int test_sandbox_setup(void **state);
/* cmocka teardown: closes the store, removes the temp dir, frees *state.
 * A test that mounted something below dir unmounts it first. */
int test_sandbox_teardown(void **state);

/* rm -rf dir (never follows symlinks, never crosses a mount point). */
void test_rmrf(const char *dir);

/* ---- table-driven tests ---- */

/* Names the case a table test runs next ("[ CASE ] name" on stdout), so that
 * a failure reads under the name of its case. */
void test_case(const char *fmt, ...) CS_PRINTF(1, 2);

/* ---- host requirements: skip, or fail under CI ---- */

/* True when CSTORE_CI=1: the machine is supposed to have everything. */
bool test_ci(void);
/* In a test: when !have, skips it (cmocka skip), or fails it under CI,
 * saying "needs WHAT". */
void test_need(bool have, const char *what);
/* For optional checks inside a test: returns have; when !have prints
 * "WHAT not found: external checks skipped", or fails the test under CI. */
bool test_want(bool have, const char *what);
/* In main, when the host lacks what the whole program needs: prints why and
 * returns the exit code, 77 (skip), or 1 under CI. */
int test_skip_all(const char *what);
/* True when tool is an executable on PATH. */
bool test_have_tool(const char *tool);

/* ---- data ---- */

/* n bytes of xorshift64 noise from seed: the same bytes on every run. */
void test_fill_random(void *p, size_t n, uint64_t seed);
/* The sha256 of the string s. */
cs_digest test_sha(const char *s);

/* ---- pax tars in memory ---- */

typedef struct test_tar {
    struct archive *a;
    cs_buf out; /* the tar, complete after test_tar_end; the caller releases it */
} test_tar;

void test_tar_begin(test_tar *t);
/* A new entry: path, type (AE_IFREG...), perm, mtime 1700000000. */
struct archive_entry *test_tar_entry(const char *path, mode_t type, mode_t perm);
/* Writes ae (freed here) and its n bytes of data (size set for files). */
void test_tar_add(test_tar *t, struct archive_entry *ae, const void *data, size_t n);
/* A 0644 regular file. */
void test_tar_file(test_tar *t, const char *path, const void *data, size_t n);
void test_tar_end(test_tar *t);
/* Appends the gzip of p[0..n) to out. */
void test_gzip_append(cs_buf *out, const void *p, size_t n);

/* ---- streams ---- */

/* A cs_read_fn over memory; max > 0 caps each read (to test short reads). */
typedef struct test_memrd {
    const uint8_t *p;
    size_t left;
    size_t max;
} test_memrd;
ssize_t test_mem_read(void *ctx, void *buf, size_t len);
/* A sink appending to the cs_buf ctx. */
int test_sink_buf(void *ctx, const void *p, size_t n, cs_error **err);

/* Ingests the tar p[0..n) (reads of at most maxread, 0: any) into s and
 * commits; fills *info and, when not NULL, *stats. */
void test_ingest_tar(cs_store *s, const void *p, size_t n, size_t maxread, cs_layer_info *info,
                     cs_ingest_stats *stats);

/* ---- store records ---- */

/* A txn on s: a write txn (write) or a read-only one. A read-only txn ends
 * with mdb_txn_abort. */
MDB_txn *test_begin(cs_store *s, bool write);
/* Commits the write txn. */
void test_commit(MDB_txn *txn);

/* Puts the record key -> v[0..n) into table t, as its owner would not. */
void test_put_raw(cs_store *s, cs_table t, const void *key, size_t klen, const void *v, size_t n);
/* True when table t has a record under key. */
bool test_has(cs_store *s, cs_table t, const void *key, size_t klen);
/* Entries in table t (CS_T_*). */
size_t test_count(cs_store *s, cs_table t);
/* No chunk, content, tree, image or tag is stored. */
void test_assert_store_empty(cs_store *s);
/* The stored tree d; the caller frees it. */
cs_tree *test_get_tree(cs_store *s, const cs_digest *d);
/* Reads content d back, verifying every chunk, and compares it with p[0..n). */
void test_assert_content(cs_store *s, const cs_digest *d, const void *p, size_t n);
/* Stores p[0..n) as one content cut every chunk bytes (raw chunks, at most
 * 64) in txn; returns its digest. */
cs_digest test_put_content(cs_db *db, MDB_txn *txn, const uint8_t *p, size_t n, size_t chunk);

/* ---- trees and images ---- */

/* Appends an entry: mode 0755 for dirs, 0644 else, mtime 1700000000. */
cs_entry *test_tree_add(cs_tree *t, const char *path, cs_etype type);
/* Appends a file of size bytes with content c (NULL: none). */
cs_entry *test_tree_add_file(cs_tree *t, const char *path, const cs_digest *c, uint64_t size);
/* Sorts t, stores it in txn and frees it; returns its digest. */
cs_digest test_put_tree(cs_db *db, MDB_txn *txn, cs_tree *t);
/* A tree of one directory at path, stored in a transaction of its own;
 * returns its digest. */
cs_digest test_store_dir_tree(cs_db *db, const char *path);
/* A layer tree of one file at path with content p[0..n) (cut every chunk
 * bytes), stored in a transaction of its own; returns its digest. */
cs_digest test_store_file_tree(cs_store *s, const char *path, const uint8_t *p, size_t n,
                               size_t chunk);
/* The other end of an export/import: a second store opened at <work>/b into
 * *b and, when cache is not NULL, the path <work>/cache (not made) into
 * *cache. 0, or -1 with sb->err set (cmocka's setup failure). */
int test_peer_open(test_sandbox *sb, cs_store **b, char **cache);
/* Stores the image with this config (its id: the config's sha256) over the
 * n layer trees in txn and, when tag is not NULL, tags it; returns its id. */
cs_digest test_put_image(cs_db *db, MDB_txn *txn, const char *config, const cs_digest *layers,
                         uint32_t n, const char *tag);

/* ---- files, errors, commands ---- */

void test_write_file(const char *path, const void *p, size_t n, mode_t mode);
/* *out (initialized here) = the file's bytes. */
void test_read_file(const char *path, cs_buf *out);
/* Asserts err is set and its message contains want. */
void test_assert_msg(const cs_error *err, const char *want);
/* system() of the formatted command; returns its status. */
int test_sh(const char *fmt, ...) CS_PRINTF(1, 2);

#endif
