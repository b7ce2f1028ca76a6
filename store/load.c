/* load.c - images in: the layers of a load plan ingested and checked, the
 * image and its tags stored; cs_import's one-layer images (see cstore/load.h
 * and load_int.h). Everything of one load is stored in one transaction: a
 * failure at any point stores nothing. */
#include "cstore/archive_dl.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include "cstore/export.h"
#include "cstore/image.h"
#include "cstore/ingest.h"
#include "cstore/layerindex.h"
#include "cstore/load.h"
#include "cstore/tarsplit.h"
#include "cstore/tree.h"
#include "load_int.h"

void
cs_load_result_release(cs_load_result *r)
{
    cs_strv_free(r->tags);
    r->tags = NULL;
}

/* ---- layers ---- */

typedef struct fd_reader {
    int fd;
} fd_reader;

static ssize_t
read_fd(void *ctx, void *buf, size_t len)
{
    fd_reader *fr = ctx;
    for (;;) {
        ssize_t n = read(fr->fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        return n;
    }
}

static int
verify_layer(layer_plan *l, cs_error **err)
{
    char want[CS_DIGEST_STR], got[CS_DIGEST_STR];
    if (l->check_blob && !cs_digest_eq(&l->blob, &l->info.blob)) {
        cs_digest_str(&l->blob, want);
        cs_digest_str(&l->info.blob, got);
        return cs_err(err, CS_ECORRUPT, 0, "layer '%s': digest %s does not match manifest (%s)",
                      l->name, got, want);
    }
    if (l->size >= 0 && (uint64_t) l->size != l->info.blob_size)
        return cs_err(err, CS_ECORRUPT, 0, "layer '%s': size %llu does not match manifest (%lld)",
                      l->name, (unsigned long long) l->info.blob_size, (long long) l->size);
    if (!cs_digest_eq(&l->diff_id, &l->info.diff_id)) {
        cs_digest_str(&l->diff_id, want);
        cs_digest_str(&l->info.diff_id, got);
        return cs_err(err, CS_ECORRUPT, 0,
                      "layer '%s': uncompressed digest %s does not match config diff_id %s",
                      l->name, got, want);
    }
    return 0;
}

/* Marks every plan entry with the same blob name as done with the same result. */
static void
share_result(plan *p, size_t i)
{
    for (size_t j = 0; j < p->n; j++)
        if (j != i && !p->layers[j].done && !strcmp(p->layers[j].name, p->layers[i].name)) {
            p->layers[j].info = p->layers[i].info;
            p->layers[j].done = true;
        }
}

/* Verifies a layer just ingested and gives its result to every plan entry
 * of the same blob. */
int
load_layer_done(plan *p, size_t i, int r, cs_error **err)
{
    layer_plan *l = &p->layers[i];
    if (r == 0)
        r = verify_layer(l, err);
    l->done = r == 0;
    if (r == 0)
        share_result(p, i);
    return r;
}

/* Only a regular file of the announced size: never a device or FIFO that
 * could be read forever. */
static int
ingest_dir_layer(cs_ingest *ing, source *src, layer_plan *l, cs_error **err)
{
    cs_autofree char *path = cs_path_join(src->path, l->name);
    cs_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return cs_err(err, errno == ENOENT ? CS_ENOTFOUND : cs_sys_code(errno), errno,
                      "layer '%s' is missing", l->name);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return cs_err(err, CS_EINVAL, 0, "layer '%s' is not a regular file", l->name);
    if (l->size >= 0 && (uint64_t) st.st_size != (uint64_t) l->size)
        return cs_err(err, CS_ECORRUPT, 0, "layer '%s': size %lld does not match manifest (%lld)",
                      l->name, (long long) st.st_size, (long long) l->size);
    /* Mapped: the layer is hashed and chunked in place (cs_ingest_tar_mem). */
    size_t n = (size_t) st.st_size;
    void *p = n ? mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (p == MAP_FAILED) {
        fd_reader fr = { fd };
        return cs_ingest_tar(ing, l->name, read_fd, &fr, &l->info, err);
    }
    madvise(p, n, MADV_SEQUENTIAL);
    int r = cs_ingest_tar_mem(ing, l->name, p, n, &l->info, err);
    munmap(p, n);
    return r;
}

/* An archive member in place in the mapped archive, or kept in memory;
 * *skip when neither (read on the second pass). */
static int
ingest_small_layer(cs_ingest *ing, source *src, layer_plan *l, bool *skip, cs_error **err)
{
    member *m = load_source_find(src, l->name);
    if (!m)
        return cs_err(err, CS_ENOTFOUND, 0, "layer '%s' is missing", l->name);
    if (strcmp(m->name, l->name)) { /* reached through a symlink */
        free(l->name);
        l->name = cs_xstrdup(m->name);
    }
    if (m->mapped)
        return cs_ingest_tar_mem(ing, l->name, src->map + m->data_off, m->size, &l->info, err);
    *skip = !m->have;
    if (!m->have)
        return 0;
    return cs_ingest_tar_mem(ing, l->name, m->data.data, m->data.len, &l->info, err);
}

/* First pass: directories, and archive members already in memory. */
static int
ingest_first_pass(cs_ingest *ing, source *src, plan *p, cs_error **err)
{
    for (size_t i = 0; i < p->n; i++) {
        layer_plan *l = &p->layers[i];
        if (l->done)
            continue;
        bool skip = false;
        int r = src->is_dir ? ingest_dir_layer(ing, src, l, err)
                            : ingest_small_layer(ing, src, l, &skip, err);
        if (!skip && (r = load_layer_done(p, i, r, err)) < 0)
            return r;
    }
    return 0;
}

/* The first layer not done yet whose blob is member ae, if any. */
static int
ingest_member(cs_ingest *ing, struct archive *a, struct archive_entry *ae, plan *p, cs_error **err)
{
    cs_autofree char *name = load_member_name(archive_entry_pathname(ae));
    for (size_t i = 0; i < p->n; i++) {
        layer_plan *l = &p->layers[i];
        if (l->done || strcmp(l->name, name))
            continue;
        int r = cs_ingest_tar(ing, l->name, cs_archive_read, a, &l->info, err);
        return load_layer_done(p, i, r, err);
    }
    return 0;
}

/* Second pass over the archive, for the large layers. */
static int
ingest_second_pass(cs_ingest *ing, source *src, plan *p, cs_error **err)
{
    struct archive *a = NULL;
    int r = load_open_outer(src->path, &a, err);
    if (r < 0)
        return r;
    struct archive_entry *ae;
    while ((r = load_next_member(a, &ae, err)) > 0)
        if ((r = ingest_member(ing, a, ae, p, err)) < 0)
            break;
    archive_read_free(a);
    return r;
}

static int
ingest_layers(cs_ingest *ing, source *src, plan *p, cs_error **err)
{
    int r = ingest_first_pass(ing, src, p, err);
    if (r < 0 || src->is_dir)
        return r;
    bool need = false;
    for (size_t i = 0; i < p->n; i++)
        need |= !p->layers[i].done;
    if (need)
        r = ingest_second_pass(ing, src, p, err);
    for (size_t i = 0; i < p->n && r == 0; i++)
        if (!p->layers[i].done)
            r = cs_err(err, CS_ENOTFOUND, 0, "layer '%s' is missing", p->layers[i].name);
    return r;
}

/* ---- commit ---- */

/* Empties *out and stats the input path. */
static int
stat_input(const char *path, struct stat *st, cs_load_result *out, cs_error **err)
{
    memset(out, 0, sizeof(*out));
    if (stat(path, st) < 0)
        return cs_err(err, errno == ENOENT ? CS_ENOTFOUND : CS_EIO, errno, "%s", path);
    return 0;
}

/* Layer index records of the layers ingested (not of those found there). */
static int
record_layers(cs_db *db, MDB_txn *txn, const plan *p, cs_error **err)
{
    for (size_t i = 0; i < p->n; i++) {
        const cs_layer_info *in = &p->layers[i].info;
        if (p->layers[i].known || !in->blob_size)
            continue;
        int r = cs_layerindex_put(db, txn, &in->blob, &in->diff_id, &in->tree, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
load_store_image(cs_ingest *ing, cs_store *s, plan *p, const char *extra_tag, cs_load_result *out,
                 cs_error **err)
{
    if (extra_tag) {
        cs_autofree char *norm = NULL;
        int r = cs_ref_normalize(extra_tag, &norm, err);
        if (r < 0)
            return r;
        load_plan_add_tag(p, norm);
    }
    cs_image img = { 0 };
    img.id = p->config_digest;
    img.config = (char *) p->config.data;
    img.config_len = p->config.len;
    img.nlayers = (uint32_t) p->n;
    img.layers = cs_xcalloc(p->n ? p->n : 1, sizeof(cs_digest));
    for (size_t i = 0; i < p->n; i++)
        img.layers[i] = p->layers[i].info.tree;
    cs_db *db = cs_store_db(s);
    MDB_txn *txn = cs_ingest_txn(ing);
    int r = record_layers(db, txn, p, err);
    if (r == 0)
        r = cs_image_put(db, txn, &img, err);
    free(img.layers);
    for (size_t i = 0; i < p->tags.n && r == 0; i++)
        r = cs_tag_set(db, txn, p->tags.v[i], &img.id, err);
    if (r < 0)
        return r;
    r = cs_ingest_commit(ing, err);
    if (r < 0)
        return r;
    out->id = img.id;
    out->tags = cs_strv_take(&p->tags);
    out->bytes = 0;
    for (size_t i = 0; i < p->n; i++)
        out->bytes += p->layers[i].info.tar_size;
    return 0;
}

int
cs_load(cs_store *s, const char *path, const char *extra_tag, cs_load_result *out, cs_error **err)
{
    struct stat st;
    int r = stat_input(path, &st, out, err);
    if (r < 0)
        return r;
    source src = { .path = path, .is_dir = S_ISDIR(st.st_mode) };
    plan p = { 0 };
    cs_buf_init(&p.config);
    cs_ingest *ing = NULL;
    if (!src.is_dir)
        r = load_source_scan_tar(&src, err);
    if (r == 0 && !src.is_dir)
        load_source_map(&src);
    if (r == 0) {
        bool docker = !src.is_dir && load_source_find(&src, "manifest.json");
        if (!src.is_dir && !docker && !load_source_find(&src, "index.json"))
            r = cs_err(err, CS_EPARSE, 0,
                       "not a docker-archive or OCI archive (no manifest.json or index.json)");
        else if (docker)
            r = load_plan_docker(&src, &p, err);
        else
            r = load_plan_oci(&src, &p, err);
    }
    if (r == 0)
        r = cs_ingest_begin(s, &ing, err);
    if (r == 0)
        r = ingest_layers(ing, &src, &p, err);
    if (r == 0)
        r = load_store_image(ing, s, &p, extra_tag, out, err);
    cs_ingest_free(ing);
    load_plan_release(&p);
    load_source_release(&src);
    if (r < 0)
        return cs_err_wrap(err, "%s", path);
    return 0;
}

/* ---- import ---- */

typedef struct hash_sink {
    cs_sha256_ctx *sha;
} hash_sink;

static int
hash_write(void *ctx, const void *p, size_t n, cs_error **err)
{
    (void) err;
    cs_sha256_update(((hash_sink *) ctx)->sha, p, n);
    return 0;
}

/* The diff_id of the tar cstore generates for the tree, so that the config
 * matches what export writes. */
static int
tree_diff_id(cs_store *s, MDB_txn *txn, const cs_digest *tree, cs_digest *out, cs_error **err)
{
    cs_tree *t = NULL;
    int r = cs_tree_get(cs_store_db(s), txn, tree, &t, err);
    if (r < 0)
        return r;
    hash_sink hs = { cs_sha256_new() };
    r = cs_tree_write_tar(cs_store_db(s), txn, t, hash_write, &hs, err);
    if (r == 0)
        cs_sha256_final(hs.sha, out);
    cs_sha256_free(hs.sha);
    cs_tree_free(t);
    return r;
}

static char *
created_now(void)
{
    time_t now = time(NULL);
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde)
        now = (time_t) strtoll(sde, NULL, 10);
    struct tm tm;
    gmtime_r(&now, &tm);
    char buf[64];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return cs_xstrdup(buf);
}

/* The rootfs as one layer: a directory walked, or a tar of any compression. */
static int
import_layer(cs_ingest *ing, const char *path, bool dir, cs_layer_info *info, cs_error **err)
{
    if (dir)
        return cs_ingest_dir(ing, path, &info->tree, err);
    cs_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "open");
    fd_reader fr = { fd };
    return cs_ingest_tar(ing, path, read_fd, &fr, info, err);
}

/* A tar whose framing was kept exports as itself: its own diff_id, as
 * docker import gives. Otherwise (a directory), the generated tar's. */
static int
import_diff_id(cs_store *s, cs_ingest *ing, bool dir, const cs_layer_info *info, cs_digest *out,
               cs_error **err)
{
    cs_digest ts_tree;
    cs_error *tmp = NULL;
    if (!dir
        && cs_tarsplit_tree(cs_store_db(s), cs_ingest_txn(ing), &info->diff_id, &ts_tree, &tmp) == 0
        && cs_digest_eq(&ts_tree, &info->tree)) {
        *out = info->diff_id;
        return 0;
    }
    /* No usable tarsplit record: the generated tar is what export writes. */
    cs_error_clear(&tmp);
    return tree_diff_id(s, cs_ingest_txn(ing), &info->tree, out, err);
}

/* The plan of the one-layer image: a minimal linux/amd64 config. */
static void
import_plan(plan *p, const cs_digest *diff_id, const cs_layer_info *info, const char *norm)
{
    char did[CS_DIGEST_STR];
    cs_digest_str(diff_id, did);
    cs_autofree char *created = created_now();
    json_t *cfg =
        json_pack("{s:s, s:s, s:s, s:{}, s:{s:s, s:[s]}, s:[{s:s, s:s}]}", "created", created,
                  "architecture", "amd64", "os", "linux", "config", "rootfs", "type", "layers",
                  "diff_ids", did, "history", "created", created, "created_by", "cstore import");
    char *js = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    cs_buf_append(&p->config, js, strlen(js));
    free(js);
    cs_sha256(p->config.data, p->config.len, &p->config_digest);
    p->n = 1;
    p->layers = cs_xcalloc(1, sizeof(layer_plan));
    p->layers[0].info = *info;
    load_plan_add_tag(p, norm);
}

int
cs_import(cs_store *s, const char *path, const char *tag, cs_load_result *out, cs_error **err)
{
    struct stat st;
    int r = stat_input(path, &st, out, err);
    if (r < 0)
        return r;
    cs_autofree char *norm = NULL;
    r = cs_ref_normalize(tag, &norm, err);
    if (r < 0)
        return r;
    cs_ingest *ing = NULL;
    r = cs_ingest_begin(s, &ing, err);
    if (r < 0)
        return r;
    bool dir = S_ISDIR(st.st_mode);
    cs_layer_info info = { 0 };
    cs_digest diff_id;
    plan p = { 0 };
    cs_buf_init(&p.config);
    r = import_layer(ing, path, dir, &info, err);
    if (r == 0)
        r = import_diff_id(s, ing, dir, &info, &diff_id, err);
    if (r == 0) {
        import_plan(&p, &diff_id, &info, norm);
        r = load_store_image(ing, s, &p, NULL, out, err);
    }
    load_plan_release(&p);
    cs_ingest_free(ing);
    if (r < 0)
        return cs_err_wrap(err, "%s", path);
    return 0;
}
