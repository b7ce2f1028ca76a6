/* export_oci.c - the JSON of an export: the config with its diff_ids, the
 * OCI manifest and index, docker-archive's manifest.json and repositories.
 */
#include <string.h>
#include "export_int.h"

const char *
export_layer_media_type(const exp *x)
{
    switch (x->comp) {
    case CS_COMP_GZIP:
        return x->docker ? MT_DOCKER_LAYER ".gzip" : MT_LAYER "+gzip";
    case CS_COMP_ZSTD:
        return MT_LAYER "+zstd";
    default:
        return x->docker ? MT_DOCKER_LAYER : MT_LAYER;
    }
}

const char *
export_config_media_type(const exp *x)
{
    return x->docker ? MT_DOCKER_CONFIG : MT_CONFIG;
}

const char *
export_manifest_media_type(const exp *x)
{
    return x->docker ? MT_DOCKER_MANIFEST : MT_MANIFEST;
}

static json_t *
descriptor(const char *media_type, const cs_digest *d, uint64_t size)
{
    char ds[CS_DIGEST_STR];
    cs_digest_str(d, ds);
    json_t *o = json_object();
    json_object_set_new(o, "mediaType", json_string(media_type));
    json_object_set_new(o, "digest", json_string(ds));
    json_object_set_new(o, "size", json_integer((json_int_t) size));
    return o;
}

static char *
dump_json(json_t *j, size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (!s)
        abort();
    *len = strlen(s);
    return s;
}

/* The config's rootfs.diff_ids: the tarsplit records to look for. A config
 * without them (or with another count) has none. */
void
export_config_diff_ids(exp *x)
{
    json_t *root = json_loadb(x->img->config, x->img->config_len, 0, NULL);
    json_t *ids = json_object_get(json_object_get(root, "rootfs"), "diff_ids");
    if (json_is_array(ids) && json_array_size(ids) == x->img->nlayers)
        for (uint32_t i = 0; i < x->img->nlayers; i++) {
            const char *s = json_string_value(json_array_get(ids, i));
            x->layers[i].has_orig = s && cs_digest_parse(s, &x->layers[i].orig);
        }
    json_decref(root);
}

/* The config to export: the stored one when its rootfs.diff_ids are the
 * diff_ids of our tars, else a copy with them replaced (images loaded from
 * elsewhere were made by other tar writers). Other fields keep their order. */
int
export_build_config(exp *x, cs_error **err)
{
    const cs_image *img = x->img;
    json_error_t je;
    json_t *root = json_loadb(img->config, img->config_len, 0, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return cs_err(err, CS_EPARSE, 0, "image config: %s", root ? "not an object" : je.text);
    }
    json_t *rootfs = json_object_get(root, "rootfs");
    json_t *ids = json_is_object(rootfs) ? json_object_get(rootfs, "diff_ids") : NULL;
    bool same = json_is_array(ids) && json_array_size(ids) == img->nlayers;
    json_t *want = json_array();
    for (uint32_t i = 0; i < img->nlayers; i++) {
        char ds[CS_DIGEST_STR];
        cs_digest_str(&x->layers[i].lb.diff_id, ds);
        json_array_append_new(want, json_string(ds));
        if (same) {
            const char *have = json_string_value(json_array_get(ids, i));
            same = have && strcmp(have, ds) == 0;
        }
    }
    free(x->config);
    if (same) {
        json_decref(want);
        x->config = cs_xstrndup(img->config, img->config_len);
        x->config_len = img->config_len;
    } else {
        if (!json_is_object(rootfs)) {
            rootfs = json_object();
            json_object_set_new(rootfs, "type", json_string("layers"));
            json_object_set_new(root, "rootfs", rootfs);
        }
        json_object_set_new(rootfs, "diff_ids", want);
        x->config = dump_json(root, &x->config_len);
    }
    json_decref(root);
    cs_sha256(x->config, x->config_len, &x->config_d);
    return 0;
}

void
export_build_manifest(exp *x)
{
    json_t *m = json_object();
    json_object_set_new(m, "schemaVersion", json_integer(2));
    json_object_set_new(m, "mediaType", json_string(export_manifest_media_type(x)));
    json_object_set_new(m, "config",
                        descriptor(export_config_media_type(x), &x->config_d, x->config_len));
    json_t *ls = json_array();
    for (uint32_t i = 0; i < x->img->nlayers; i++)
        json_array_append_new(ls, descriptor(export_layer_media_type(x), &x->layers[i].lb.blob,
                                             x->layers[i].lb.size));
    json_object_set_new(m, "layers", ls);
    free(x->manifest);
    x->manifest = dump_json(m, &x->manifest_len);
    json_decref(m);
    cs_sha256(x->manifest, x->manifest_len, &x->manifest_d);
}

static json_t *
manifest_descriptor(exp *x)
{
    json_t *d = descriptor(MT_MANIFEST, &x->manifest_d, x->manifest_len);
    if (x->normalized) {
        json_t *ann = json_object();
        json_object_set_new(ann, ANN_NAME, json_string(x->normalized));
        json_object_set_new(ann, ANN_REF, json_string(x->tag));
        json_object_set_new(d, "annotations", ann);
    }
    return d;
}

char *
export_index_json(exp *x, json_t *old, size_t *len)
{
    json_t *idx = old;
    if (idx) {
        json_incref(idx);
    } else {
        idx = json_object();
        json_object_set_new(idx, "schemaVersion", json_integer(2));
        json_object_set_new(idx, "mediaType", json_string(MT_INDEX));
    }
    json_t *ms = json_object_get(idx, "manifests");
    if (!json_is_array(ms)) {
        ms = json_array();
        json_object_set_new(idx, "manifests", ms);
    }
    /* Our entry replaces the one of the same name (or, untagged, the same
     * untagged manifest). */
    char ds[CS_DIGEST_STR];
    cs_digest_str(&x->manifest_d, ds);
    for (size_t i = json_array_size(ms); i-- > 0;) {
        json_t *m = json_array_get(ms, i);
        const char *ref =
            json_string_value(json_object_get(json_object_get(m, "annotations"), ANN_REF));
        const char *dg = json_string_value(json_object_get(m, "digest"));
        bool drop = x->tag ? ref && strcmp(ref, x->tag) == 0 : !ref && dg && !strcmp(dg, ds);
        if (drop)
            json_array_remove(ms, i);
    }
    json_array_append_new(ms, manifest_descriptor(x));
    char *s = dump_json(idx, len);
    json_decref(idx);
    return s;
}

/* docker-archive manifest.json */
char *
export_docker_manifest_json(exp *x, char *const *familiar, size_t n, size_t *len)
{
    char hex[CS_DIGEST_HEX];
    json_t *m = json_object();
    cs_digest_hex(&x->config_d, hex);
    char *cfg = cs_xasprintf("%s.json", hex);
    json_object_set_new(m, "Config", json_string(cfg));
    free(cfg);
    if (n) { /* docker save of several tags of one image: all in RepoTags */
        json_t *tags = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(tags, json_string(familiar[i]));
        json_object_set_new(m, "RepoTags", tags);
    } else {
        json_object_set_new(m, "RepoTags", json_null());
    }
    json_t *ls = json_array();
    for (uint32_t i = 0; i < x->img->nlayers; i++) {
        cs_digest_hex(&x->layers[i].lb.diff_id, hex);
        char *p = cs_xasprintf("%s/layer.tar", hex);
        json_array_append_new(ls, json_string(p));
        free(p);
    }
    json_object_set_new(m, "Layers", ls);
    json_t *arr = json_array();
    json_array_append_new(arr, m);
    char *s = dump_json(arr, len);
    json_decref(arr);
    return s;
}

/* docker-archive "repositories": {"golang":{"1.19":"<top layer id>"}}, a
 * repository and tag for each name. */
char *
export_docker_repositories_json(exp *x, char *const *familiar, size_t n, size_t *len)
{
    char hex[CS_DIGEST_HEX] = "";
    if (x->img->nlayers > 0)
        cs_digest_hex(&x->layers[x->img->nlayers - 1].lb.diff_id, hex);
    json_t *r = json_object();
    for (size_t i = 0; i < n; i++) {
        cs_autofree char *repo = cs_xstrdup(familiar[i]);
        char *slash = strrchr(repo, '/');
        char *colon = strrchr(slash ? slash : repo, ':');
        const char *tag = "latest";
        if (colon) {
            *colon = '\0';
            tag = colon + 1;
        }
        json_t *tags = json_object_get(r, repo);
        if (!tags)
            json_object_set_new(r, repo, tags = json_object());
        json_object_set_new(tags, tag, json_string(hex));
    }
    char *s = dump_json(r, len);
    json_decref(r);
    return s;
}
