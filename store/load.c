/* load.c - images in: docker-archive, OCI archive and OCI layout directories
 * (see cstore/load.h). Everything of one load is stored in one transaction:
 * a failure at any point stores nothing. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "cstore/export.h"
#include "cstore/image.h"
#include "cstore/ingest.h"
#include "cstore/load.h"
#include "cstore/tarsplit.h"
#include "cstore/tree.h"

/* Metadata (index, manifests, configs) is small; blobs up to this size are
 * kept in memory on the first pass over an archive. */
#define SMALL_MAX (4u << 20)

void
cs_load_result_release(cs_load_result *r)
{
    if (r->tags)
        for (char **t = r->tags; *t; t++)
            free(*t);
    free(r->tags);
    r->tags = NULL;
}

/* ---- sources: a directory or a tar archive ---- */

typedef struct member {
    char *name;
    char *link; /* a symlink member's target (clean path in the archive) */
    uint64_t size;
    cs_buf data; /* filled when size <= SMALL_MAX */
    bool have;
} member;

typedef struct source {
    const char *path;
    bool is_dir;
    member *m;
    size_t n;
} source;

static void
source_release(source *src)
{
    for (size_t i = 0; i < src->n; i++) {
        free(src->m[i].name);
        free(src->m[i].link);
        cs_buf_release(&src->m[i].data);
    }
    free(src->m);
}

static member *
find_exact(source *src, const char *name)
{
    for (size_t i = src->n; i-- > 0;) /* the last of equal names wins, as in tar */
        if (!strcmp(src->m[i].name, name))
            return &src->m[i];
    return NULL;
}

/* Finds a member by name, following symlink members (skopeo's docker-archive
 * has "<id>/layer.tar -> ../<digest>.tar"). */
static member *
source_find(source *src, const char *name)
{
    member *m = find_exact(src, name);
    for (int hops = 0; m && m->link && hops < 8; hops++)
        m = find_exact(src, m->link);
    return m && !m->link ? m : NULL;
}

/* "dir/link" -> "../x" gives "x"; NULL when it leaves the archive. */
static char *
resolve_link(const char *name, const char *target)
{
    if (target[0] == '/')
        return NULL;
    const char *slash = strrchr(name, '/');
    cs_autofree char *joined =
        slash ? cs_xasprintf("%.*s/%s", (int) (slash - name), name, target) : cs_xstrdup(target);
    /* Fold "x/.." pairs; a ".." that climbs above the top is refused. */
    char **parts = cs_xcalloc(strlen(joined) + 1, sizeof(char *));
    size_t n = 0;
    bool bad = false;
    for (char *save = NULL, *p = strtok_r(joined, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (!strcmp(p, "."))
            continue;
        if (!strcmp(p, "..")) {
            if (!n) {
                bad = true;
                break;
            }
            n--;
            continue;
        }
        parts[n++] = p;
    }
    cs_buf b;
    cs_buf_init(&b);
    for (size_t i = 0; i < n && !bad; i++) {
        if (i)
            cs_buf_u8(&b, '/');
        cs_buf_append(&b, parts[i], strlen(parts[i]));
    }
    cs_buf_u8(&b, 0);
    free(parts);
    if (bad) {
        cs_buf_release(&b);
        return NULL;
    }
    return (char *) b.data;
}

static struct archive *
open_outer(const char *path, cs_error **err)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open_filename(a, path, 1 << 20) != ARCHIVE_OK) {
        cs_err(err, CS_EPARSE, 0, "%s",
               archive_error_string(a) ? archive_error_string(a) : "not a tar archive");
        archive_read_free(a);
        return NULL;
    }
    return a;
}

static char *
clean_member_name(const char *n)
{
    while (n[0] == '.' && n[1] == '/')
        n += 2;
    while (*n == '/')
        n++;
    return cs_xstrdup(n);
}

/* First pass: list members, keep the small ones in memory. */
static int
source_scan_tar(source *src, cs_error **err)
{
    struct archive *a = open_outer(src->path, err);
    if (!a)
        return -CS_EPARSE;
    struct archive_entry *ae;
    int r = 0;
    size_t cap = 0;
    for (;;) {
        int rc = archive_read_next_header(a, &ae);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc < ARCHIVE_WARN) {
            r = cs_err(err, CS_EPARSE, 0, "%s", archive_error_string(a));
            break;
        }
        bool is_link = archive_entry_filetype(ae) == AE_IFLNK && archive_entry_symlink(ae);
        if (archive_entry_filetype(ae) != AE_IFREG && !is_link)
            continue;
        if (src->n == cap) {
            cap = cap ? cap * 2 : 32;
            src->m = cs_xrealloc(src->m, cap * sizeof(member));
        }
        member *m = &src->m[src->n++];
        memset(m, 0, sizeof(*m));
        m->name = clean_member_name(archive_entry_pathname(ae));
        if (is_link) {
            m->link = resolve_link(m->name, archive_entry_symlink(ae));
            if (!m->link)
                src->n--, free(m->name); /* leads out of the archive: ignore it */
            continue;
        }
        m->size = (uint64_t) archive_entry_size(ae);
        if (m->size <= SMALL_MAX) {
            cs_buf_reserve(&m->data, m->size + 1);
            la_ssize_t got = archive_read_data(a, m->data.data, m->size);
            if (got < 0 || (uint64_t) got != m->size) {
                r = cs_err(err, CS_EPARSE, 0, "'%s': %s", m->name,
                           got < 0 ? archive_error_string(a) : "truncated archive");
                break;
            }
            m->data.len = m->size;
            m->data.data[m->size] = 0;
            m->have = true;
        }
    }
    archive_read_free(a);
    return r;
}

/* Reads a small member or file fully (metadata). */
static int
source_get(source *src, const char *name, cs_buf *out, cs_error **err)
{
    if (src->is_dir) {
        cs_autofree char *p = cs_path_join(src->path, name);
        struct stat st;
        if (stat(p, &st) < 0 && errno == ENOENT)
            return cs_err(err, CS_ENOTFOUND, 0, "'%s' is missing", name);
        if (stat(p, &st) == 0 && !S_ISREG(st.st_mode))
            return cs_err(err, CS_EINVAL, 0, "'%s' is not a regular file", name);
        int r = cs_read_file(p, SMALL_MAX, out, err);
        return r < 0 ? cs_err_wrap(err, "'%s'", name) : 0;
    }
    member *m = source_find(src, name);
    if (!m)
        return cs_err(err, CS_ENOTFOUND, 0, "'%s' is missing", name);
    if (!m->have)
        return cs_err(err, CS_EINVAL, 0, "'%s' is too large for metadata", name);
    out->len = 0;
    cs_buf_append(out, m->data.data, m->data.len);
    cs_buf_reserve(out, 1);
    out->data[out->len] = 0;
    return 0;
}

/* ---- the plan of one image, format-independent ---- */

typedef struct layer_plan {
    char *name;      /* member or file name of the blob */
    bool check_blob; /* blob digest/size known (OCI descriptor) */
    cs_digest blob;
    int64_t size;      /* -1 when unknown */
    cs_digest diff_id; /* from the config */
    bool done;
    cs_layer_info info;
} layer_plan;

typedef struct plan {
    cs_buf config;
    cs_digest config_digest;
    layer_plan *layers;
    size_t n;
    char **tags;
    size_t ntags;
} plan;

static void
plan_release(plan *p)
{
    cs_buf_release(&p->config);
    for (size_t i = 0; i < p->n; i++)
        free(p->layers[i].name);
    free(p->layers);
    for (size_t i = 0; i < p->ntags; i++)
        free(p->tags[i]);
    free(p->tags);
}

static void
plan_add_tag(plan *p, const char *norm)
{
    for (size_t i = 0; i < p->ntags; i++)
        if (!strcmp(p->tags[i], norm))
            return;
    p->tags = cs_xrealloc(p->tags, (p->ntags + 1) * sizeof(char *));
    p->tags[p->ntags++] = cs_xstrdup(norm);
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
static int
plan_config(plan *p, const char *what, cs_error **err)
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
    int r = source_get(src, name, &b, err);
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
    r = source_get(src, name, out, err);
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
    cs_autofree char *norm = NULL;
    if (cs_ref_normalize(ref, &norm, NULL) == 0)
        plan_add_tag(p, norm);
}

static int
plan_oci(source *src, plan *p, cs_error **err)
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
        r = plan_config(p, "of manifest", err);
    if (r == 0)
        add_ref_tag(p, ref);
    return r;
}

static int
plan_docker(source *src, plan *p, cs_error **err)
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
    r = source_get(src, cfg, &p->config, err);
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
                p->layers[i].name = clean_member_name(ln);
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
        json_array_foreach(tags, i, t)
        {
            cs_autofree char *norm = NULL;
            const char *s = json_string_value(t);
            if (s && cs_ref_normalize(s, &norm, NULL) == 0)
                plan_add_tag(p, norm);
        }
    json_decref(man);
    if (r == 0)
        r = plan_config(p, cfg, err);
    return r;
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

typedef struct mem_reader {
    const uint8_t *p;
    size_t left;
} mem_reader;

static ssize_t
read_mem(void *ctx, void *buf, size_t len)
{
    mem_reader *m = ctx;
    size_t k = len < m->left ? len : m->left;
    memcpy(buf, m->p, k);
    m->p += k;
    m->left -= k;
    return (ssize_t) k;
}

static ssize_t
read_archive(void *ctx, void *buf, size_t len)
{
    la_ssize_t n = archive_read_data(ctx, buf, len);
    if (n < 0) {
        errno = EIO;
        return -1;
    }
    return n;
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

static int
ingest_layers(cs_ingest *ing, source *src, plan *p, cs_error **err)
{
    int r = 0;
    /* Directories, and archive members already in memory. */
    for (size_t i = 0; i < p->n && r == 0; i++) {
        layer_plan *l = &p->layers[i];
        if (l->done)
            continue;
        if (src->is_dir) {
            cs_autofree char *path = cs_path_join(src->path, l->name);
            fd_reader fr = { open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) };
            if (fr.fd < 0)
                return cs_err(err, errno == ENOENT ? CS_ENOTFOUND : CS_EIO, errno,
                              "layer '%s' is missing", l->name);
            /* Only a regular file of the announced size: never a device or
             * FIFO that could be read forever. */
            struct stat st;
            if (fstat(fr.fd, &st) < 0 || !S_ISREG(st.st_mode))
                r = cs_err(err, CS_EINVAL, 0, "layer '%s' is not a regular file", l->name);
            else if (l->size >= 0 && (uint64_t) st.st_size != (uint64_t) l->size)
                r = cs_err(err, CS_ECORRUPT, 0,
                           "layer '%s': size %lld does not match manifest (%lld)", l->name,
                           (long long) st.st_size, (long long) l->size);
            else
                r = cs_ingest_tar(ing, l->name, read_fd, &fr, &l->info, err);
            close(fr.fd);
        } else {
            member *m = source_find(src, l->name);
            if (!m)
                return cs_err(err, CS_ENOTFOUND, 0, "layer '%s' is missing", l->name);
            if (strcmp(m->name, l->name)) { /* reached through a symlink */
                free(l->name);
                l->name = cs_xstrdup(m->name);
            }
            if (!m->have)
                continue;
            mem_reader mr = { m->data.data, m->data.len };
            r = cs_ingest_tar(ing, l->name, read_mem, &mr, &l->info, err);
        }
        if (r == 0)
            r = verify_layer(l, err);
        l->done = r == 0;
        if (r == 0)
            share_result(p, i);
    }
    if (r < 0 || src->is_dir)
        return r;
    /* Second pass over the archive for the large layers. */
    bool need = false;
    for (size_t i = 0; i < p->n; i++)
        need |= !p->layers[i].done;
    if (!need)
        return 0;
    struct archive *a = open_outer(src->path, err);
    if (!a)
        return -CS_EPARSE;
    struct archive_entry *ae;
    while (r == 0) {
        int rc = archive_read_next_header(a, &ae);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc < ARCHIVE_WARN) {
            r = cs_err(err, CS_EPARSE, 0, "%s", archive_error_string(a));
            break;
        }
        cs_autofree char *name = clean_member_name(archive_entry_pathname(ae));
        for (size_t i = 0; i < p->n && r == 0; i++) {
            layer_plan *l = &p->layers[i];
            if (l->done || strcmp(l->name, name))
                continue;
            r = cs_ingest_tar(ing, l->name, read_archive, a, &l->info, err);
            if (r == 0)
                r = verify_layer(l, err);
            l->done = r == 0;
            if (r == 0)
                share_result(p, i);
            break;
        }
    }
    archive_read_free(a);
    for (size_t i = 0; i < p->n && r == 0; i++)
        if (!p->layers[i].done)
            r = cs_err(err, CS_ENOTFOUND, 0, "layer '%s' is missing", p->layers[i].name);
    return r;
}

/* ---- commit ---- */

static int
store_image(cs_ingest *ing, cs_store *s, plan *p, const char *extra_tag, cs_load_result *out,
            cs_error **err)
{
    if (extra_tag) {
        cs_autofree char *norm = NULL;
        int r = cs_ref_normalize(extra_tag, &norm, err);
        if (r < 0)
            return r;
        plan_add_tag(p, norm);
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
    int r = cs_image_put(db, txn, &img, err);
    free(img.layers);
    for (size_t i = 0; i < p->ntags && r == 0; i++)
        r = cs_tag_set(db, txn, p->tags[i], &img.id, err);
    if (r < 0)
        return r;
    r = cs_ingest_commit(ing, err);
    if (r < 0)
        return r;
    out->id = img.id;
    out->tags = cs_xcalloc(p->ntags + 1, sizeof(char *));
    for (size_t i = 0; i < p->ntags; i++)
        out->tags[i] = cs_xstrdup(p->tags[i]);
    out->bytes = 0;
    for (size_t i = 0; i < p->n; i++)
        out->bytes += p->layers[i].info.tar_size;
    return 0;
}

int
cs_load(cs_store *s, const char *path, const char *extra_tag, cs_load_result *out, cs_error **err)
{
    memset(out, 0, sizeof(*out));
    struct stat st;
    if (stat(path, &st) < 0)
        return cs_err(err, errno == ENOENT ? CS_ENOTFOUND : CS_EIO, errno, "%s", path);
    source src = { .path = path, .is_dir = S_ISDIR(st.st_mode) };
    plan p = { 0 };
    cs_buf_init(&p.config);
    cs_ingest *ing = NULL;
    int r = 0;
    if (!src.is_dir)
        r = source_scan_tar(&src, err);
    if (r == 0) {
        bool docker = !src.is_dir && source_find(&src, "manifest.json");
        if (!src.is_dir && !docker && !source_find(&src, "index.json"))
            r = cs_err(err, CS_EPARSE, 0,
                       "not a docker-archive or OCI archive (no manifest.json or index.json)");
        else if (docker)
            r = plan_docker(&src, &p, err);
        else
            r = plan_oci(&src, &p, err);
    }
    if (r == 0)
        r = cs_ingest_begin(s, &ing, err);
    if (r == 0)
        r = ingest_layers(ing, &src, &p, err);
    if (r == 0)
        r = store_image(ing, s, &p, extra_tag, out, err);
    cs_ingest_free(ing);
    plan_release(&p);
    source_release(&src);
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

int
cs_import(cs_store *s, const char *path, const char *tag, cs_load_result *out, cs_error **err)
{
    memset(out, 0, sizeof(*out));
    struct stat st;
    if (stat(path, &st) < 0)
        return cs_err(err, errno == ENOENT ? CS_ENOTFOUND : CS_EIO, errno, "%s", path);
    cs_autofree char *norm = NULL;
    int r = cs_ref_normalize(tag, &norm, err);
    if (r < 0)
        return r;
    cs_ingest *ing = NULL;
    r = cs_ingest_begin(s, &ing, err);
    if (r < 0)
        return r;
    cs_layer_info info = { 0 };
    if (S_ISDIR(st.st_mode)) {
        r = cs_ingest_dir(ing, path, &info.tree, err);
    } else {
        fd_reader fr = { open(path, O_RDONLY | O_CLOEXEC) };
        if (fr.fd < 0)
            r = cs_err(err, CS_EIO, errno, "open");
        else
            r = cs_ingest_tar(ing, path, read_fd, &fr, &info, err);
        if (fr.fd >= 0)
            close(fr.fd);
    }
    /* A tar whose framing was kept exports as itself: its own diff_id, as
     * docker import gives. Otherwise (a directory), the generated tar's. */
    cs_digest diff_id, ts_tree;
    if (r == 0 && !S_ISDIR(st.st_mode)
        && cs_tarsplit_tree(cs_store_db(s), cs_ingest_txn(ing), &info.diff_id, &ts_tree, NULL) == 0
        && cs_digest_eq(&ts_tree, &info.tree))
        diff_id = info.diff_id;
    else if (r == 0)
        r = tree_diff_id(s, cs_ingest_txn(ing), &info.tree, &diff_id, err);
    plan p = { 0 };
    cs_buf_init(&p.config);
    if (r == 0) {
        char did[CS_DIGEST_STR];
        cs_digest_str(&diff_id, did);
        cs_autofree char *created = created_now();
        json_t *cfg = json_pack("{s:s, s:s, s:s, s:{}, s:{s:s, s:[s]}, s:[{s:s, s:s}]}", "created",
                                created, "architecture", "amd64", "os", "linux", "config", "rootfs",
                                "type", "layers", "diff_ids", did, "history", "created", created,
                                "created_by", "cstore import");
        char *js = json_dumps(cfg, JSON_COMPACT);
        json_decref(cfg);
        cs_buf_append(&p.config, js, strlen(js));
        free(js);
        cs_sha256(p.config.data, p.config.len, &p.config_digest);
        p.n = 1;
        p.layers = cs_xcalloc(1, sizeof(layer_plan));
        p.layers[0].info = info;
        plan_add_tag(&p, norm);
        r = store_image(ing, s, &p, NULL, out, err);
    }
    plan_release(&p);
    cs_ingest_free(ing);
    if (r < 0)
        return cs_err_wrap(err, "%s", path);
    return 0;
}
