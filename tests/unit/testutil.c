/* testutil.c - the shared unit-test fixture declared (and documented) in
 * testutil.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include "cstore/image.h"
#include "cstore/oneshot.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- sandbox ---- */

int
test_sandbox_new(void **state, size_t size, unsigned open_flags)
{
    test_sandbox *sb = calloc(1, size);
    *state = sb;
    snprintf(sb->dir, sizeof(sb->dir), "/tmp/cs-%s.XXXXXX", program_invocation_short_name);
    if (!mkdtemp(sb->dir))
        return -1;
    sb->root = cs_path_join(sb->dir, "store");
    sb->work = cs_path_join(sb->dir, "work");
    if (mkdir(sb->work, 0755) < 0)
        return -1;
    cs_error *err = NULL;
    if (cs_store_open(sb->root, open_flags, &sb->s, &err) < 0) {
        print_error("store open: %s\n", err->msg);
        cs_error_free(err);
        return -1;
    }
    sb->db = cs_store_db(sb->s);
    return 0;
}

int
test_sandbox_init(void **state, size_t size, unsigned open_flags, void (*init)(void *f))
{
    if (test_sandbox_new(state, size, open_flags) < 0)
        return -1;
    init(*state);
    return 0;
}

int
test_sandbox_fill(void **state, size_t size, unsigned open_flags, test_fill_fn fill)
{
    if (test_sandbox_new(state, size, open_flags) < 0)
        return -1;
    test_sandbox *sb = *state;
    MDB_txn *txn = test_begin(sb->s, true);
    fill(sb, sb->db, txn);
    test_commit(txn);
    return 0;
}

int
test_sandbox_setup(void **state)
{
    return test_sandbox_new(state, sizeof(test_sandbox), 0);
}

int
test_sandbox_teardown(void **state)
{
    test_sandbox *sb = *state;
    if (!sb)
        return 0;
    cs_store_close(sb->s);
    cs_error_free(sb->err);
    if (sb->dir[0])
        test_rmrf(sb->dir);
    free(sb->root);
    free(sb->work);
    free(sb);
    *state = NULL;
    return 0;
}

void
test_case(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cs_autofree char *name = cs_xvasprintf(fmt, ap);
    va_end(ap);
    print_message("[ CASE     ] %s\n", name);
}

void
test_rmrf(const char *dir)
{
    cs_error *err = NULL;
    if (cs_rm_tree(dir, NULL, &err) < 0) {
        /* Left behind in /tmp: worth a line, not a failed test. */
        print_message("could not remove '%s': %s\n", dir, err->msg);
        cs_error_free(err);
    }
}

/* ---- host requirements ---- */

bool
test_ci(void)
{
    const char *ci = getenv("CSTORE_CI");
    return ci && !strcmp(ci, "1");
}

void
test_need(bool have, const char *what)
{
    if (have)
        return;
    if (test_ci())
        fail_msg("needs %s, which CI must have (CSTORE_CI=1)", what);
    print_message("skipped: needs %s\n", what);
    skip();
}

bool
test_want(bool have, const char *what)
{
    if (have)
        return true;
    if (test_ci())
        fail_msg("%s not found, which CI must have (CSTORE_CI=1)", what);
    print_message("%s not found: external checks skipped\n", what);
    return false;
}

int
test_skip_all(const char *what)
{
    if (test_ci()) {
        fprintf(stderr, "FAIL: needs %s, which CI must have (CSTORE_CI=1)\n", what);
        return 1;
    }
    fprintf(stderr, "skipped: needs %s\n", what);
    return 77;
}

bool
test_have_tool(const char *tool)
{
    return test_sh("command -v %s >/dev/null 2>&1", tool) == 0;
}

/* ---- data ---- */

void
test_fill_random(void *p, size_t n, uint64_t seed)
{
    uint8_t *b = p;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        b[i] = (uint8_t) s;
    }
}

cs_digest
test_sha(const char *s)
{
    cs_digest d;
    cs_sha256(s, strlen(s), &d);
    return d;
}

/* ---- tars ---- */

static la_ssize_t
tar_write_cb(struct archive *a, void *ctx, const void *p, size_t n)
{
    (void) a;
    cs_buf_append(ctx, p, n);
    return (la_ssize_t) n;
}

void
test_tar_begin(test_tar *t)
{
    cs_buf_init(&t->out);
    t->a = archive_write_new();
    assert_int_equal(archive_write_set_format_pax(t->a), ARCHIVE_OK);
    assert_int_equal(archive_write_open(t->a, &t->out, NULL, tar_write_cb, NULL), ARCHIVE_OK);
}

struct archive_entry *
test_tar_entry(const char *path, mode_t type, mode_t perm)
{
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, path);
    archive_entry_set_filetype(ae, type);
    archive_entry_set_perm(ae, perm);
    archive_entry_set_mtime(ae, 1700000000, 0);
    return ae;
}

void
test_tar_add(test_tar *t, struct archive_entry *ae, const void *data, size_t n)
{
    if (archive_entry_filetype(ae) == AE_IFREG && !archive_entry_hardlink(ae))
        archive_entry_set_size(ae, (la_int64_t) n);
    assert_int_equal(archive_write_header(t->a, ae), ARCHIVE_OK);
    if (n)
        assert_int_equal(archive_write_data(t->a, data, n), (la_ssize_t) n);
    archive_entry_free(ae);
}

void
test_tar_file(test_tar *t, const char *path, const void *data, size_t n)
{
    test_tar_add(t, test_tar_entry(path, AE_IFREG, 0644), data, n);
}

void
test_tar_end(test_tar *t)
{
    assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
    archive_write_free(t->a);
    t->a = NULL;
}

void
test_gzip_append(cs_buf *out, const void *p, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t bound = deflateBound(&z, (uLong) n) + 64;
    cs_buf_reserve(out, bound);
    z.next_in = (Bytef *) p;
    z.avail_in = (uInt) n;
    z.next_out = out->data + out->len;
    z.avail_out = (uInt) bound;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    out->len += bound - z.avail_out;
    deflateEnd(&z);
}

/* ---- streams ---- */

ssize_t
test_mem_read(void *ctx, void *buf, size_t len)
{
    test_memrd *m = ctx;
    size_t k = len < m->left ? len : m->left;
    if (m->max && k > m->max)
        k = m->max;
    memcpy(buf, m->p, k);
    m->p += k;
    m->left -= k;
    return (ssize_t) k;
}

int
test_sink_buf(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) err;
    cs_buf_append(ctx, p, n);
    return 0;
}

void
test_ingest_tar(cs_store *s, const void *p, size_t n, size_t maxread, cs_layer_info *info,
                cs_ingest_stats *stats)
{
    cs_ingest *ing = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_ingest_begin(s, &ing, &err), 0);
    test_memrd m = { p, n, maxread };
    int r = cs_ingest_tar(ing, "layer", test_mem_read, &m, info, &err);
    if (r < 0)
        fail_msg("ingest: %s", err->msg);
    if (stats)
        *stats = *cs_ingest_stats_get(ing);
    assert_int_equal(cs_ingest_commit(ing, &err), 0);
    cs_ingest_free(ing);
}

/* ---- store records ---- */

MDB_txn *
test_begin(cs_store *s, bool write)
{
    MDB_txn *txn = NULL;
    cs_error *err = NULL;
    if (cs_db_begin(cs_store_db(s), write ? 0 : MDB_RDONLY, &txn, &err) < 0)
        fail_msg("txn begin: %s", err->msg);
    return txn;
}

void
test_commit(MDB_txn *txn)
{
    cs_error *err = NULL;
    if (cs_db_commit(txn, &err) < 0)
        fail_msg("txn commit: %s", err->msg);
}

void
test_put_raw(cs_store *s, cs_table t, const void *key, size_t klen, const void *v, size_t n)
{
    cs_error *err = NULL;
    MDB_txn *txn = test_begin(s, true);
    if (cs_db_put(cs_store_db(s), txn, t, key, klen, v, n, 0, &err) < 0)
        fail_msg("put: %s", err->msg);
    test_commit(txn);
}

bool
test_has(cs_store *s, cs_table t, const void *key, size_t klen)
{
    cs_error *err = NULL;
    MDB_val v;
    MDB_txn *txn = test_begin(s, false);
    int rc = cs_db_get(cs_store_db(s), txn, t, key, klen, &v, &err);
    mdb_txn_abort(txn);
    if (rc < 0 && rc != -CS_ENOTFOUND)
        fail_msg("get: %s", err->msg);
    cs_error_free(err);
    return rc == 0;
}

size_t
test_count(cs_store *s, cs_table t)
{
    MDB_txn *txn = test_begin(s, false);
    MDB_stat st;
    assert_int_equal(mdb_stat(txn, cs_db_dbi(cs_store_db(s), t), &st), 0);
    mdb_txn_abort(txn);
    return st.ms_entries;
}

void
test_assert_store_empty(cs_store *s)
{
    assert_int_equal(test_count(s, CS_T_CHUNKS), 0);
    assert_int_equal(test_count(s, CS_T_CONTENTS), 0);
    assert_int_equal(test_count(s, CS_T_TREES), 0);
    assert_int_equal(test_count(s, CS_T_IMAGES), 0);
    assert_int_equal(test_count(s, CS_T_TAGS), 0);
}

cs_tree *
test_get_tree(cs_store *s, const cs_digest *d)
{
    cs_tree *t = NULL;
    cs_error *err = NULL;
    MDB_txn *txn = test_begin(s, false);
    int r = cs_tree_get(cs_store_db(s), txn, d, &t, &err);
    mdb_txn_abort(txn);
    if (r < 0)
        fail_msg("tree get: %s", err->msg);
    return t;
}

void
test_assert_content(cs_store *s, const cs_digest *d, const void *p, size_t n)
{
    cs_buf b;
    cs_buf_init(&b);
    cs_error *err = NULL;
    MDB_txn *txn = test_begin(s, false);
    int r = cs_content_read(cs_store_db(s), txn, d, true, test_sink_buf, &b, &err);
    mdb_txn_abort(txn);
    if (r < 0)
        fail_msg("content read: %s", err ? err->msg : "?");
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, p, n);
    cs_buf_release(&b);
}

cs_digest
test_put_content(cs_db *db, MDB_txn *txn, const uint8_t *p, size_t n, size_t chunk)
{
    cs_error *err = NULL;
    cs_chunk_ref refs[64];
    uint32_t nrefs = 0;
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        assert_true(nrefs < 64);
        cs_sha256(p + off, len, &refs[nrefs].d);
        refs[nrefs].len = (uint32_t) len;
        assert_true(
            cs_chunk_put(db, txn, &refs[nrefs].d, CS_CODEC_RAW, (uint32_t) len, p + off, len, &err)
            >= 0);
        nrefs++;
    }
    cs_digest d;
    cs_sha256(p, n, &d);
    assert_true(cs_content_put(db, txn, &d, n, refs, nrefs, &err) >= 0);
    return d;
}

/* ---- trees ---- */

cs_entry *
test_tree_add(cs_tree *t, const char *path, cs_etype type)
{
    cs_entry *e = cs_tree_add(t);
    e->path = strdup(path);
    e->type = type;
    e->mode = type == CS_E_DIR ? 0755 : 0644;
    e->mtime_sec = 1700000000;
    return e;
}

cs_entry *
test_tree_add_file(cs_tree *t, const char *path, const cs_digest *c, uint64_t size)
{
    cs_entry *e = test_tree_add(t, path, CS_E_FILE);
    e->size = size;
    e->has_content = size > 0;
    if (c)
        e->content = *c;
    return e;
}

cs_digest
test_store_dir_tree(cs_db *db, const char *path)
{
    cs_tree *t = cs_tree_new();
    test_tree_add(t, path, CS_E_DIR);
    cs_tree_sort(t);
    cs_digest d;
    cs_error *err = NULL;
    assert_int_equal(cs_tree_store(db, t, &d, &err), 0);
    cs_tree_free(t);
    return d;
}

cs_digest
test_store_file_tree(cs_store *s, const char *path, const uint8_t *p, size_t n, size_t chunk)
{
    MDB_txn *txn = test_begin(s, true);
    cs_db *db = cs_store_db(s);
    cs_digest c = test_put_content(db, txn, p, n, chunk);
    cs_tree *t = cs_tree_new();
    test_tree_add_file(t, path, &c, n);
    cs_digest d = test_put_tree(db, txn, t);
    test_commit(txn);
    return d;
}

cs_digest
test_put_tree(cs_db *db, MDB_txn *txn, cs_tree *t)
{
    cs_error *err = NULL;
    cs_digest d;
    cs_tree_sort(t);
    if (cs_tree_put(db, txn, t, &d, &err) < 0)
        fail_msg("tree put: %s", err->msg);
    cs_tree_free(t);
    return d;
}

cs_digest
test_put_image(cs_db *db, MDB_txn *txn, const char *config, const cs_digest *layers, uint32_t n,
               const char *tag)
{
    cs_error *err = NULL;
    cs_image img = { .config = (char *) config, .config_len = strlen(config), .nlayers = n };
    img.layers = (cs_digest *) layers;
    cs_sha256(config, img.config_len, &img.id);
    assert_int_equal(cs_image_put(db, txn, &img, &err), 0);
    if (tag)
        assert_int_equal(cs_tag_set(db, txn, tag, &img.id, &err), 0);
    return img.id;
}

/* ---- files, errors, commands ---- */

void
test_write_file(const char *path, const void *p, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(cs_write_all(fd, p, n), 0);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

void
test_read_file(const char *path, cs_buf *out)
{
    cs_error *err = NULL;
    cs_buf_init(out);
    assert_int_equal(cs_read_file(path, 1u << 30, out, &err), 0);
}

void
test_assert_msg(const cs_error *err, const char *want)
{
    assert_non_null(err);
    if (!strstr(err->msg, want))
        fail_msg("error '%s' does not mention '%s'", err->msg, want);
}

int
test_sh(const char *fmt, ...)
{
    va_list ap;
    char *cmd;
    va_start(ap, fmt);
    if (vasprintf(&cmd, fmt, ap) < 0)
        abort();
    va_end(ap);
    int rc = system(cmd);
    free(cmd);
    return rc;
}

int
test_peer_open(test_sandbox *sb, cs_store **b, char **cache)
{
    if (cache)
        *cache = cs_path_join(sb->work, "cache");
    cs_autofree char *root = cs_path_join(sb->work, "b");
    return cs_store_open(root, 0, b, &sb->err) < 0 ? -1 : 0;
}
