/* load_manifest.c - the plan of one image from its JSON: an OCI index (the
 * linux/amd64 manifest, one level of nesting deep) or docker-archive's
 * manifest.json, the config and its diff_ids, the tags to set.
 */
#include <jansson.h>
#include <string.h>
#include "cstore/image.h"
#include "load_int.h"

void
load_plan_release(plan *p)
{
    cs_buf_release(&p->config);
    for (size_t i = 0; i < p->n; i++)
        free(p->layers[i].name);
    free(p->layers);
    cs_strv_release(&p->tags);
}

void
load_plan_add_tag(plan *p, const char *norm)
{
    if (!cs_strv_contains(p->tags.v, norm))
        cs_strv_add(&p->tags, norm);
}

/* Adds the tag s names; a name that does not parse is no tag (the image
 * loads without it), so its error is dropped. */
static void
add_tag(plan *p, const char *s)
{
    cs_autofree char *norm = NULL;
    cs_error *tmp = NULL;
    if (s && cs_ref_normalize(s, &norm, &tmp) == 0)
        load_plan_add_tag(p, norm);
    cs_error_clear(&tmp);
}

static int
blob_name(const char *digest, char **out, cs_error **err)
{
    cs_digest d;
    if (!digest || strncmp(digest, "sha256:", 7) || !cs_digest_parse(digest, &d))
        return cs_err(err, CS_EINVAL, 0, "unsupported or malformed digest '%s'",
                      digest ? digest : "(none)");
    *out = cs_xasprintf("blobs/sha256/%s", digest + 7);
    return 0;
}

/* Parses the config and checks it against the layers. */
int
load_plan_config(plan *p, const char *what, cs_error **err)
{
    json_error_t je;
    json_t *cfg = json_loadb((const char *) p->config.data, p->config.len, 0, &je);
    if (!cfg || !json_is_object(cfg)) {
        json_decref(cfg);
        return cs_err(err, CS_EPARSE, 0, "config %s: not a JSON object (%s)", what, je.text);
    }
    json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    int r = 0;
    if (!json_is_array(ids) || json_array_size(ids) != p->n) {
        r = cs_err(err, CS_EPARSE, 0, "config %s: rootfs.diff_ids does not list the %zu layers",
                   what, p->n);
    } else {
        for (size_t i = 0; i < p->n && r == 0; i++) {
            const char *s = json_string_value(json_array_get(ids, i));
            if (!s || !cs_digest_parse(s, &p->layers[i].diff_id) || strncmp(s, "sha256:", 7))
                r = cs_err(err, CS_EPARSE, 0, "config %s: bad diff_id %zu", what, i);
        }
    }
    json_decref(cfg);
    return r;
}

static int
get_json(source *src, const char *name, json_t **out, cs_error **err)
{
    cs_buf b;
    cs_buf_init(&b);
    int r = load_source_get(src, name, &b, err);
    if (r == 0) {
        json_error_t je;
        *out = json_loadb((const char *) b.data, b.len, 0, &je);
        if (!*out)
            r = cs_err(err, CS_EPARSE, 0, "'%s': not JSON (line %d: %s)", name, je.line, je.text);
    }
    cs_buf_release(&b);
    return r;
}

/* Reads a blob by descriptor and checks its digest and size. */
static int
get_blob(source *src, json_t *desc, cs_buf *out, cs_error **err)
{
    const char *digest = json_string_value(json_object_get(desc, "digest"));
    cs_autofree char *name = NULL;
    int r = blob_name(digest, &name, err);
    if (r < 0)
        return r;
    r = load_source_get(src, name, out, err);
    if (r < 0)
        return r;
    json_t *sz = json_object_get(desc, "size");
    if (json_is_integer(sz) && (uint64_t) json_integer_value(sz) != out->len)
        return cs_err(err, CS_ECORRUPT, 0, "blob %s: size %lld does not match descriptor (%lld)",
                      digest, (long long) out->len, (long long) json_integer_value(sz));
    cs_digest want, got;
    cs_digest_parse(digest, &want);
    cs_sha256(out->data, out->len, &got);
    if (!cs_digest_eq(&want, &got))
        return cs_err(err, CS_ECORRUPT, 0, "blob %s: digest does not match its content", digest);
    return 0;
}

static bool
is_manifest_type(const char *mt)
{
    return !mt || !strcmp(mt, "application/vnd.oci.image.manifest.v1+json")
           || !strcmp(mt, "application/vnd.docker.distribution.manifest.v2+json");
}

static bool
is_index_type(const char *mt)
{
    return mt
           && (!strcmp(mt, "application/vnd.oci.image.index.v1+json")
               || !strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json"));
}

/* Picks the linux/amd64 (or only) image manifest of an index, one level of
 * nesting deep. *ref gets the index annotation naming the image, if any. */
static int
pick_manifest(source *src, json_t *index, int depth, json_t **manifest, char **ref, cs_error **err)
{
    json_t *ms = json_object_get(index, "manifests");
    if (!json_is_array(ms) || !json_array_size(ms))
        return cs_err(err, CS_EPARSE, 0, "index lists no manifests");
    size_t i;
    json_t *d, *best = NULL;
    json_array_foreach(ms, i, d)
    {
        const char *mt = json_string_value(json_object_get(d, "mediaType"));
        json_t *plat = json_object_get(d, "platform");
        const char *arch = json_string_value(json_object_get(plat, "architecture"));
        const char *os = json_string_value(json_object_get(plat, "os"));
        if (plat && ((arch && strcmp(arch, "amd64")) || (os && strcmp(os, "linux"))))
            continue;
        if (!is_manifest_type(mt) && !is_index_type(mt))
            continue;
        best = d;
        break;
    }
    if (!best)
        return cs_err(err, CS_ENOTFOUND, 0, "index has no linux/amd64 image manifest");
    json_t *ann = json_object_get(best, "annotations");
    const char *name = json_string_value(json_object_get(ann, "io.containerd.image.name"));
    if (!name)
        name = json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));
    if (name && !*ref)
        *ref = cs_xstrdup(name);
    cs_buf b;
    cs_buf_init(&b);
    int r = get_blob(src, best, &b, err);
    json_t *j = NULL;
    if (r == 0) {
        json_error_t je;
        j = json_loadb((const char *) b.data, b.len, 0, &je);
        if (!j)
            r = cs_err(err, CS_EPARSE, 0, "manifest: not JSON (%s)", je.text);
    }
    cs_buf_release(&b);
    if (r < 0)
        return r;
    const char *mt = json_string_value(json_object_get(best, "mediaType"));
    if (is_index_type(mt)) {
        if (depth > 0) {
            json_decref(j);
            return cs_err(err, CS_EPARSE, 0, "indexes nested too deep");
        }
        r = pick_manifest(src, j, depth + 1, manifest, ref, err);
        json_decref(j);
        return r;
    }
    *manifest = j;
    return 0;
}

static void
add_ref_tag(plan *p, const char *ref)
{
    /* A bare word is a tag without a repository (skopeo's oci:DIR:TAG): no name. */
    if (!ref || (!strchr(ref, ':') && !strchr(ref, '/')))
        return;
    add_tag(p, ref);
}

int
load_plan_oci(source *src, plan *p, cs_error **err)
{
    json_t *index = NULL, *manifest = NULL;
    cs_autofree char *ref = NULL;
    int r = get_json(src, "index.json", &index, err);
    if (r == 0)
        r = pick_manifest(src, index, 0, &manifest, &ref, err);
    json_decref(index);
    if (r < 0)
        return r;
    json_t *cfgd = json_object_get(manifest, "config");
    json_t *layers = json_object_get(manifest, "layers");
    if (!json_is_object(cfgd) || !json_is_array(layers)) {
        json_decref(manifest);
        return cs_err(err, CS_EPARSE, 0, "manifest: no config or layers");
    }
    r = get_blob(src, cfgd, &p->config, err);
    if (r == 0) {
        cs_sha256(p->config.data, p->config.len, &p->config_digest);
        p->n = json_array_size(layers);
        p->layers = cs_xcalloc(p->n ? p->n : 1, sizeof(layer_plan));
        size_t i;
        json_t *d;
        json_array_foreach(layers, i, d)
        {
            layer_plan *l = &p->layers[i];
            const char *dg = json_string_value(json_object_get(d, "digest"));
            r = blob_name(dg, &l->name, err);
            if (r < 0)
                break;
            cs_digest_parse(dg, &l->blob);
            l->check_blob = true;
            json_t *sz = json_object_get(d, "size");
            l->size = json_is_integer(sz) ? (int64_t) json_integer_value(sz) : -1;
            if (l->size < -1 || (l->size >= 0 && (uint64_t) l->size > (1ull << 44)))
                r = cs_err(err, CS_EPARSE, 0, "layer %s: absurd size %lld", dg,
                           (long long) l->size);
            if (r < 0)
                break;
        }
    }
    json_decref(manifest);
    if (r == 0)
        r = load_plan_config(p, "of manifest", err);
    if (r == 0)
        add_ref_tag(p, ref);
    return r;
}

int
load_plan_docker(source *src, plan *p, cs_error **err)
{
    json_t *man = NULL;
    int r = get_json(src, "manifest.json", &man, err);
    if (r < 0)
        return r;
    json_t *m0 = json_array_get(man, 0);
    const char *cfg = json_string_value(json_object_get(m0, "Config"));
    json_t *layers = json_object_get(m0, "Layers");
    if (!cfg || !json_is_array(layers)) {
        json_decref(man);
        return cs_err(err, CS_EPARSE, 0, "manifest.json: no Config or Layers");
    }
    r = load_source_get(src, cfg, &p->config, err);
    if (r == 0) {
        cs_sha256(p->config.data, p->config.len, &p->config_digest);
        /* "<hex>.json" or "blobs/sha256/<hex>" name the config by digest. */
        const char *base = strrchr(cfg, '/') ? strrchr(cfg, '/') + 1 : cfg;
        cs_autofree char *hex = cs_xstrndup(base, 64);
        cs_digest named;
        if (cs_digest_parse(hex, &named) && !cs_digest_eq(&named, &p->config_digest))
            r = cs_err(err, CS_ECORRUPT, 0, "config '%s': digest does not match its name", cfg);
    }
    if (r == 0) {
        p->n = json_array_size(layers);
        p->layers = cs_xcalloc(p->n ? p->n : 1, sizeof(layer_plan));
        for (size_t i = 0; i < p->n && r == 0; i++) {
            const char *ln = json_string_value(json_array_get(layers, i));
            if (!ln || strstr(ln, ".."))
                r = cs_err(err, CS_EPARSE, 0, "manifest.json: bad layer name");
            else
                p->layers[i].name = load_member_name(ln);
            p->layers[i].size = -1;
            /* New docker saves name layers "blobs/sha256/<hex>": check that too. */
            if (r == 0 && !strncmp(p->layers[i].name, "blobs/sha256/", 13)
                && cs_digest_parse(p->layers[i].name + 13, &p->layers[i].blob))
                p->layers[i].check_blob = true;
        }
    }
    json_t *tags = json_object_get(m0, "RepoTags");
    size_t i;
    json_t *t;
    if (r == 0)
        json_array_foreach(tags, i, t) add_tag(p, json_string_value(t));
    if (r == 0) /* before the decref: cfg points into man */
        r = load_plan_config(p, cfg, err);
    json_decref(man);
    return r;
}
