/* manifest.c - registry manifests parsed, and a platform picked from an
 * index (see cstore/manifest.h). */
#include "cstore/manifest.h"

#include <jansson.h>
#include <string.h>
#include <sys/utsname.h>
#include "cstore/strv.h"

void
cs_platform_release(cs_platform *p)
{
    free(p->os);
    free(p->arch);
    free(p->variant);
    memset(p, 0, sizeof(*p));
}

static void
descriptor_release(cs_descriptor *d)
{
    free(d->media_type);
    cs_platform_release(&d->platform);
}

void
cs_manifest_free(cs_manifest *m)
{
    if (!m)
        return;
    free(m->media_type);
    descriptor_release(&m->config);
    for (size_t i = 0; i < m->n; i++)
        descriptor_release(&m->items[i]);
    free(m->items);
    free(m);
}

/* ---- platforms ---- */

static char *
dup_or_null(const char *s)
{
    return s && *s ? cs_xstrdup(s) : NULL;
}

/* containerd's platforms.Normalize for the names we meet. */
static void
platform_normalize(cs_platform *p)
{
    static const struct {
        const char *from, *arch, *variant;
    } map[] = {
        { "x86_64", "amd64", NULL }, { "x86-64", "amd64", NULL }, { "aarch64", "arm64", NULL },
        { "armhf", "arm", "v7" },    { "armel", "arm", "v6" },    { "i386", "386", NULL },
        { "i686", "386", NULL },
    };
    for (size_t i = 0; p->arch && i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(p->arch, map[i].from)) {
            free(p->arch);
            p->arch = cs_xstrdup(map[i].arch);
            if (map[i].variant && !p->variant)
                p->variant = cs_xstrdup(map[i].variant);
        }
    if (p->arch && p->variant) {
        bool drop = (!strcmp(p->arch, "arm64") && !strcmp(p->variant, "v8"))
                    || (!strcmp(p->arch, "amd64") && !strcmp(p->variant, "v1"));
        if (drop) {
            free(p->variant);
            p->variant = NULL;
        }
    }
    if (p->arch && !strcmp(p->arch, "arm") && !p->variant)
        p->variant = cs_xstrdup("v7");
    if (p->os && !strcmp(p->os, "Linux")) {
        free(p->os);
        p->os = cs_xstrdup("linux");
    }
}

int
cs_platform_parse(const char *s, cs_platform *out, cs_error **err)
{
    memset(out, 0, sizeof(*out));
    cs_strv parts = { 0 };
    const char *p = s;
    for (const char *q; (q = strchr(p, '/')); p = q + 1)
        cs_strv_push(&parts, cs_xstrndup(p, (size_t) (q - p)));
    cs_strv_add(&parts, p);
    bool ok = parts.n >= 2 && parts.n <= 3;
    for (size_t i = 0; ok && i < parts.n; i++)
        ok = *parts.v[i] && !strchr(parts.v[i], ' ');
    if (!ok) {
        cs_strv_release(&parts);
        return cs_err(err, CS_EINVAL, 0, "platform '%s': expected OS/ARCH[/VARIANT]", s);
    }
    out->os = cs_xstrdup(parts.v[0]);
    out->arch = cs_xstrdup(parts.v[1]);
    out->variant = parts.n == 3 ? cs_xstrdup(parts.v[2]) : NULL;
    cs_strv_release(&parts);
    platform_normalize(out);
    return 0;
}

void
cs_platform_host(cs_platform *out)
{
    struct utsname u;
    memset(out, 0, sizeof(*out));
    out->os = cs_xstrdup("linux");
    out->arch = cs_xstrdup(uname(&u) == 0 ? u.machine : "x86_64");
    platform_normalize(out);
}

char *
cs_platform_str(const cs_platform *p)
{
    return cs_xasprintf("%s/%s%s%s", p->os ? p->os : "?", p->arch ? p->arch : "?",
                        p->variant ? "/" : "", p->variant ? p->variant : "");
}

/* ---- parsing ---- */

static bool
is_index_type(const char *mt)
{
    return !strcmp(mt, CS_MT_OCI_INDEX) || !strcmp(mt, CS_MT_DOCKER_LIST);
}

static bool
is_image_type(const char *mt)
{
    return !strcmp(mt, CS_MT_OCI_MANIFEST) || !strcmp(mt, CS_MT_DOCKER_MANIFEST);
}

/* A layer we can ingest: an OCI layer tar (any compression, distributable
 * or not) or a Docker rootfs diff. */
static bool
is_layer_type(const char *mt)
{
    return !strncmp(mt, "application/vnd.oci.image.layer.", 32)
           || !strncmp(mt, "application/vnd.docker.image.rootfs.", 36);
}

static bool
is_config_type(const char *mt)
{
    return !strcmp(mt, "application/vnd.oci.image.config.v1+json")
           || !strcmp(mt, "application/vnd.docker.container.image.v1+json");
}

static int
parse_descriptor(json_t *j, const char *what, cs_descriptor *d, cs_error **err)
{
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    const char *dg = json_string_value(json_object_get(j, "digest"));
    json_t *sz = json_object_get(j, "size");
    if (!json_is_object(j) || !mt)
        return cs_err(err, CS_EPARSE, 0, "manifest: %s has no mediaType", what);
    if (!dg || strncmp(dg, "sha256:", 7) || !cs_digest_parse(dg, &d->digest))
        return cs_err(err, CS_EPARSE, 0, "manifest: %s has an unsupported or malformed digest '%s'",
                      what, dg ? dg : "(none)");
    d->media_type = cs_xstrdup(mt);
    d->size = json_is_integer(sz) ? (int64_t) json_integer_value(sz) : -1;
    if (d->size < -1 || d->size > (int64_t) 1 << 44)
        return cs_err(err, CS_EPARSE, 0, "manifest: %s has an absurd size", what);
    json_t *pl = json_object_get(j, "platform");
    d->platform.os = dup_or_null(json_string_value(json_object_get(pl, "os")));
    d->platform.arch = dup_or_null(json_string_value(json_object_get(pl, "architecture")));
    d->platform.variant = dup_or_null(json_string_value(json_object_get(pl, "variant")));
    platform_normalize(&d->platform);
    return 0;
}

static int
parse_items(json_t *arr, cs_manifest *m, cs_error **err)
{
    const char *what = m->is_index ? "manifests" : "layers";
    if (!json_is_array(arr))
        return cs_err(err, CS_EPARSE, 0, "manifest: no %s list", what);
    m->n = json_array_size(arr);
    m->items = cs_xcalloc(m->n ? m->n : 1, sizeof(cs_descriptor));
    for (size_t i = 0; i < m->n; i++) {
        cs_autofree char *name = cs_xasprintf("%s[%zu]", what, i);
        int r = parse_descriptor(json_array_get(arr, i), name, &m->items[i], err);
        if (r < 0)
            return r;
        const char *mt = m->items[i].media_type;
        if (!m->is_index && !is_layer_type(mt))
            return cs_err(err, CS_EPARSE, 0, "manifest: layer %zu has unknown media type '%s'", i,
                          mt);
    }
    return 0;
}

static int
parse_json(json_t *j, const char *content_type, cs_manifest *m, cs_error **err)
{
    if (!json_is_object(j))
        return cs_err(err, CS_EPARSE, 0, "manifest: not a JSON object");
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    if (!mt && content_type && *content_type)
        mt = content_type;
    if (!mt && json_object_get(j, "manifests"))
        mt = CS_MT_OCI_INDEX; /* OCI allows mediaType to be absent */
    else if (!mt && json_object_get(j, "config"))
        mt = CS_MT_OCI_MANIFEST;
    if (!mt || (!is_index_type(mt) && !is_image_type(mt)))
        return cs_err(err, CS_EPARSE, 0, "manifest: unsupported media type '%s'",
                      mt ? mt : "(none)");
    m->media_type = cs_xstrdup(mt);
    m->is_index = is_index_type(mt);
    if (m->is_index)
        return parse_items(json_object_get(j, "manifests"), m, err);
    int r = parse_descriptor(json_object_get(j, "config"), "config", &m->config, err);
    if (r == 0 && !is_config_type(m->config.media_type))
        r = cs_err(err, CS_EPARSE, 0, "manifest: config has unknown media type '%s'",
                   m->config.media_type);
    if (r == 0)
        r = parse_items(json_object_get(j, "layers"), m, err);
    return r;
}

int
cs_manifest_parse(const void *p, size_t len, const char *content_type, cs_manifest **out,
                  cs_error **err)
{
    json_error_t je;
    json_t *j = json_loadb(p, len, 0, &je);
    if (!j)
        return cs_err(err, CS_EPARSE, 0, "manifest: not JSON (line %d: %s)", je.line, je.text);
    cs_manifest *m = cs_xcalloc(1, sizeof(*m));
    int r = parse_json(j, content_type, m, err);
    json_decref(j);
    if (r < 0) {
        cs_manifest_free(m);
        return r;
    }
    *out = m;
    return 0;
}

/* ---- selection ---- */

static bool
str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* How well entry d fits want: 0 no, higher better (exact variant first,
 * then arm's lower variants, newest first). */
static int
platform_score(const cs_descriptor *d, const cs_platform *want)
{
    const cs_platform *p = &d->platform;
    if (!is_index_type(d->media_type) && !is_image_type(d->media_type))
        return 0;
    if (!p->os || !p->arch || !str_eq(p->os, want->os) || !str_eq(p->arch, want->arch))
        return 0;
    if (str_eq(p->variant, want->variant))
        return 100;
    if (!strcmp(p->arch, "arm") && p->variant && want->variant && p->variant[0] == 'v'
        && want->variant[0] == 'v') {
        int have = atoi(p->variant + 1), w = atoi(want->variant + 1);
        if (have >= 5 && have < w)
            return have;
    }
    return 0;
}

/* "a, b, c": the platforms an index has (attestations left out). */
static char *
platform_list(const cs_manifest *index)
{
    cs_buf b;
    cs_buf_init(&b);
    for (size_t i = 0; i < index->n; i++) {
        const cs_platform *p = &index->items[i].platform;
        if (!p->os || !p->arch || !strcmp(p->os, "unknown"))
            continue;
        cs_autofree char *s = cs_platform_str(p);
        if (b.len)
            cs_buf_append(&b, ", ", 2);
        cs_buf_append(&b, s, strlen(s));
    }
    if (!b.len)
        cs_buf_append(&b, "none", 4);
    cs_buf_append(&b, "", 1);
    return (char *) b.data;
}

int
cs_manifest_select(const cs_manifest *index, const cs_platform *want, size_t *idx, cs_error **err)
{
    int best = 0;
    for (size_t i = 0; i < index->n; i++) {
        int sc = platform_score(&index->items[i], want);
        if (sc > best) {
            best = sc;
            *idx = i;
        }
    }
    if (best)
        return 0;
    cs_autofree char *ws = cs_platform_str(want);
    cs_autofree char *have = platform_list(index);
    return cs_err(err, CS_ENOTFOUND, 0, "no image for platform %s (the index has: %s)", ws, have);
}
