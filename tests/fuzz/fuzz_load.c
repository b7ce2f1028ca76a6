/* fuzz_load.c - libFuzzer target: the archive loader's JSON (index.json,
 * manifest.json, manifests, configs) through cs_load on a layout built from
 * the input in a temp dir.
 *
 * Input: a kind byte, then files separated by NUL bytes.
 *  - kind 'o' (or anything but 'd'): an OCI layout dir: the first file is
 *    index.json, each other is a blob, stored as blobs/sha256/<its sha256>
 *    (so a reference written with the right digest finds it);
 *  - kind 'd': a docker-archive tar: the first file is
 *    manifest.json, the others are stored both as "<sha256 hex>.json" and
 *    "<sha256 hex>/layer.tar" (so Config and Layers both resolve), packed
 *    into a tar with libarchive.
 * A blob is mutated apart from the digest that names it, so most inputs
 * stop at a digest check; the ones that load store an image in the shared
 * store (the same seed image, deduplicated, in practice). */
#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "cstore/load.h"
#include "fuzz_common.h"

static int
put_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static void
tar_add(struct archive *a, const char *name, const void *p, size_t n)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t) n);
    archive_write_header(a, e);
    archive_write_data(a, p, n);
    archive_entry_free(e);
}

/* Splits data at NUL bytes: returns the count (at most max). */
static size_t
split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, size_t max)
{
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= size && k < max; i++) {
        if (i == size || data[i] == '\0') {
            part[k] = data + start;
            len[k++] = i - start;
            start = i + 1;
        }
    }
    return k;
}

static void
build_oci(const char *dir, const uint8_t **part, const size_t *len, size_t n)
{
    char path[256], hex[CS_DIGEST_HEX];
    snprintf(path, sizeof(path), "%s/blobs/sha256", dir);
    cs_error *err = NULL;
    if (cs_mkdir_p(path, 0755, &err) < 0)
        cs_error_free(err);
    snprintf(path, sizeof(path), "%s/oci-layout", dir);
    put_file(path, "{\"imageLayoutVersion\":\"1.0.0\"}", 30);
    snprintf(path, sizeof(path), "%s/index.json", dir);
    put_file(path, part[0], len[0]);
    for (size_t i = 1; i < n; i++) {
        cs_digest d;
        cs_sha256(part[i], len[i], &d);
        cs_digest_hex(&d, hex);
        snprintf(path, sizeof(path), "%s/blobs/sha256/%s", dir, hex);
        put_file(path, part[i], len[i]);
    }
}

static void
build_docker(const char *tar, const uint8_t **part, const size_t *len, size_t n)
{
    char name[128], hex[CS_DIGEST_HEX];
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_open_filename(a, tar);
    tar_add(a, "manifest.json", part[0], len[0]);
    for (size_t i = 1; i < n; i++) {
        cs_digest d;
        cs_sha256(part[i], len[i], &d);
        cs_digest_hex(&d, hex);
        snprintf(name, sizeof(name), "%s.json", hex);
        tar_add(a, name, part[i], len[i]);
        snprintf(name, sizeof(name), "%s/layer.tar", hex);
        tar_add(a, name, part[i], len[i]);
    }
    archive_write_close(a);
    archive_write_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    cs_store *s = fuzz_store_get();
    const uint8_t *part[16];
    size_t len[16];
    size_t n = split(data + 1, size - 1, part, len, 16);
    char path[128];
    cs_error *err = NULL;
    bool docker = data[0] == 'd';
    snprintf(path, sizeof(path), "%s/in%s", fuzz_dir, docker ? ".tar" : "");
    if (docker)
        build_docker(path, part, len, n);
    else
        build_oci(path, part, len, n);
    cs_load_result r = { 0 };
    if (cs_load(s, path, NULL, &r, &err) >= 0)
        cs_load_result_release(&r);
    cs_error_free(err);
    err = NULL;
    if (cs_rm_tree(path, NULL, &err) < 0)
        cs_error_free(err);
    return 0;
}
