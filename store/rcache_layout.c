/* rcache_layout.c - the cache as an OCI layout directory: blobs, the cache
 * manifest, index.json (see cstore/rcache.h). */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>
#include "rcache_int.h"

#define MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"
#define REF_ANNOT     "org.opencontainers.image.ref.name"
#define JSON_MAX      ((size_t) 64 << 20)

char *
rc_blob_path(const char *dir, const cs_digest *d)
{
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(d, hex);
    return cs_xasprintf("%s/blobs/sha256/%s", dir, hex);
}

int
rc_blob_write(const char *dir, const void *p, size_t n, cs_digest *out, cs_error **err)
{
    cs_sha256(p, n, out);
    cs_autofree char *path = rc_blob_path(dir, out);
    if (access(path, F_OK) == 0)
        return 0; /* named by its digest: the same bytes */
    cs_autofree char *sub = cs_xasprintf("%s/blobs/sha256/", dir);
    int r = cs_mkdir_p(sub, 0755, err);
    if (r < 0 || (r = cs_write_file_atomic(path, p, n, err)) < 0)
        return r;
    return 1;
}

int
rc_blob_read(const char *dir, const cs_digest *d, int64_t size, cs_buf *out, cs_error **err)
{
    cs_digest got;
    cs_autofree char *path = rc_blob_path(dir, d);
    if (access(path, F_OK) < 0 && errno == ENOENT && size >= 0)
        return rc_lazy_pull(dir, d, size, out, err); /* a mirror's part: fetched now */
    int r = cs_read_file(path, (size_t) 1 << 31, out, err);
    if (r < 0)
        return r;
    cs_sha256(out->data, out->len, &got);
    if (!cs_digest_eq(d, &got) || (size >= 0 && (uint64_t) size != out->len))
        return cs_err(err, CS_ECORRUPT, 0, "cache blob '%s': digest mismatch", path);
    return 0;
}

/* A blob named by a descriptor's digest string. */
static int
blob_read(const char *dir, const char *dstr, int64_t size, cs_buf *out, cs_error **err)
{
    cs_digest d;
    if (!dstr || !cs_digest_parse(dstr, &d))
        return cs_err(err, CS_ECORRUPT, 0, "cache '%s': bad digest in manifest", dir);
    return rc_blob_read(dir, &d, size, out, err);
}

/* index.json's manifest named RC_REF_NAME. */
static int
find_manifest(const char *dir, json_t *index, cs_buf *out, cs_error **err)
{
    json_t *m;
    size_t i;
    json_array_foreach(json_object_get(index, "manifests"), i, m)
    {
        const char *ref =
            json_string_value(json_object_get(json_object_get(m, "annotations"), REF_ANNOT));
        if (ref && !strcmp(ref, RC_REF_NAME))
            return blob_read(dir, json_string_value(json_object_get(m, "digest")),
                             json_integer_value(json_object_get(m, "size")), out, err);
    }
    return cs_err(err, CS_ENOTFOUND, 0, "'%s' holds no cstore cache", dir);
}

int
rc_layout_read(const char *dir, cs_buf *index, cs_error **err)
{
    cs_autofree char *ipath = cs_xasprintf("%s/index.json", dir);
    cs_buf b, mb;
    cs_buf_init(&b);
    cs_buf_init(&mb);
    json_t *ij = NULL, *mj = NULL;
    if (access(ipath, F_OK) < 0)
        return cs_err(err, CS_ENOTFOUND, errno, "'%s' holds no cstore cache", dir);
    int r = cs_read_file(ipath, JSON_MAX, &b, err);
    if (r >= 0 && !(ij = json_loadb((const char *) b.data, b.len, 0, NULL)))
        r = cs_err(err, CS_ECORRUPT, 0, "%s: not JSON", ipath);
    if (r >= 0)
        r = find_manifest(dir, ij, &mb, err);
    if (r >= 0 && !(mj = json_loadb((const char *) mb.data, mb.len, 0, NULL)))
        r = cs_err(err, CS_ECORRUPT, 0, "cache manifest: not JSON");
    json_t *cfg = mj ? json_object_get(mj, "config") : NULL;
    json_t *l0 = mj ? json_array_get(json_object_get(mj, "layers"), 0) : NULL;
    const char *ct = json_string_value(json_object_get(cfg, "mediaType"));
    const char *lt = json_string_value(json_object_get(l0, "mediaType"));
    if (r >= 0
        && (!ct || strcmp(ct, CS_RCACHE_CONFIG_TYPE) || !lt || strcmp(lt, CS_RCACHE_INDEX_TYPE)))
        r = cs_err(err, CS_ECORRUPT, 0, "cache manifest: not a cstore cache (media types)");
    if (r >= 0)
        r = blob_read(dir, json_string_value(json_object_get(l0, "digest")),
                      json_integer_value(json_object_get(l0, "size")), index, err);
    json_decref(ij);
    json_decref(mj);
    cs_buf_release(&b);
    cs_buf_release(&mb);
    return r < 0 ? r : 0;
}

static json_t *
descriptor(const char *type, const cs_digest *d, uint64_t size)
{
    char s[CS_DIGEST_STR];
    cs_digest_str(d, s);
    return json_pack("{s:s, s:s, s:I}", "mediaType", type, "digest", s, "size", (json_int_t) size);
}

/* JSON into a blob (compact, sorted keys: the same input, the same digest). */
static int
json_blob(const char *dir, json_t *j, cs_digest *d, uint64_t *size, cs_error **err)
{
    cs_autofree char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    *size = strlen(s);
    int r = rc_blob_write(dir, s, *size, d, err);
    return r < 0 ? r : 0;
}

int
rc_layout_write(const char *dir, const cs_digest *index, uint64_t index_size, const rc_index *x,
                cs_error **err)
{
    cs_digest cd, md;
    uint64_t csize, msize;
    int r = json_blob(dir, json_pack("{s:s, s:i}", "cstore", "build-cache", "version", 1), &cd,
                      &csize, err);
    if (r < 0)
        return r;
    json_t *layers = json_array();
    json_array_append_new(layers, descriptor(CS_RCACHE_INDEX_TYPE, index, index_size));
    for (uint32_t i = 0; i < x->nparts; i++)
        json_array_append_new(layers,
                              descriptor(CS_RCACHE_PART_TYPE, &x->parts[i], x->part_sizes[i]));
    for (uint32_t i = 0; i < x->npacks; i++)
        json_array_append_new(layers,
                              descriptor(CS_RCACHE_PACK_TYPE, &x->packs[i], x->pack_sizes[i]));
    json_t *m = json_pack("{s:i, s:s, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType",
                          MANIFEST_TYPE, "artifactType", CS_RCACHE_CONFIG_TYPE, "config",
                          descriptor(CS_RCACHE_CONFIG_TYPE, &cd, csize), "layers", layers);
    if ((r = json_blob(dir, m, &md, &msize, err)) < 0)
        return r;
    json_t *desc = descriptor(MANIFEST_TYPE, &md, msize);
    json_object_set_new(desc, "annotations", json_pack("{s:s}", REF_ANNOT, RC_REF_NAME));
    json_t *ij = json_pack("{s:i, s:[o]}", "schemaVersion", 2, "manifests", desc);
    cs_autofree char *is = json_dumps(ij, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(ij);
    cs_autofree char *ipath = cs_xasprintf("%s/index.json", dir);
    cs_autofree char *lpath = cs_xasprintf("%s/oci-layout", dir);
    static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    if ((r = cs_write_file_atomic(lpath, layout, strlen(layout), err)) < 0)
        return r;
    return cs_write_file_atomic(ipath, is, strlen(is), err);
}
