/* image.c - image records, tags and Docker-style references (see cstore/image.h). */
#include <ctype.h>
#include <string.h>
#include "cstore/image.h"

static const char MAGIC[8] = "CSIMG1\0";

void
cs_image_free(cs_image *img)
{
    if (img)
        cs_free_all(img->config, img->layers, img);
}

int
cs_image_put(cs_db *db, MDB_txn *txn, const cs_image *img, cs_error **err)
{
    cs_buf b;
    cs_buf_init(&b);
    cs_buf_append(&b, MAGIC, 8);
    cs_buf_bytes(&b, img->config, (uint32_t) img->config_len);
    cs_buf_u32(&b, img->nlayers);
    for (uint32_t i = 0; i < img->nlayers; i++)
        cs_buf_append(&b, img->layers[i].b, 32);
    int r = cs_db_put(db, txn, CS_T_IMAGES, img->id.b, 32, b.data, b.len, 0, err);
    cs_buf_release(&b);
    return r < 0 ? r : 0;
}

int
cs_image_decode(const void *p, size_t len, cs_image **out, cs_error **err)
{
    cs_rd r;
    int rc = cs_rd_begin(&r, p, len, MAGIC, "image", err);
    if (rc < 0)
        return rc;
    uint32_t clen;
    const void *cfg = cs_rd_bytes(&r, &clen);
    uint32_t n = cs_rd_u32(&r);
    if (r.bad || (size_t) (r.end - r.p) != (size_t) n * 32)
        return cs_err(err, CS_ECORRUPT, 0, "image record: malformed");
    cs_image *img = cs_xcalloc(1, sizeof(*img));
    img->config = cs_xmalloc(clen + 1);
    memcpy(img->config, cfg, clen);
    img->config[clen] = 0;
    img->config_len = clen;
    cs_sha256(img->config, clen, &img->id);
    img->nlayers = n;
    img->layers = cs_xmalloc(sizeof(cs_digest) * (n ? n : 1));
    memcpy(img->layers, r.p, (size_t) n * 32);
    *out = img;
    return 0;
}

int
cs_image_get(cs_db *db, MDB_txn *txn, const cs_digest *id, cs_image **out, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_IMAGES, id->b, 32, &v, err);
    if (r == -CS_ENOTFOUND) {
        char s[CS_DIGEST_STR];
        cs_digest_str(id, s);
        return cs_err(err, CS_ENOTFOUND, 0, "image '%s' not found", s);
    }
    if (r < 0)
        return r;
    return cs_image_decode(v.mv_data, v.mv_size, out, err);
}

int
cs_image_delete(cs_db *db, MDB_txn *txn, const cs_digest *id, cs_error **err)
{
    MDB_val k = { 32, (void *) id->b };
    int rc = mdb_del(txn, cs_db_dbi(db, CS_T_IMAGES), &k, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return cs_db_err(err, rc, "delete image");
    return 0;
}

/* ---- references ---- */

/* A path component: [a-z0-9]+ joined by single separators: '.', '_',
 * '__' or a run of '-' (Docker's reference grammar). */
static bool
valid_path_component(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < n && (islower((unsigned char) s[i]) || isdigit((unsigned char) s[i])))
            i++;
        if (i == start)
            return false; /* empty, or starts/ends with a separator */
        if (i == n)
            return true;
        if (s[i] == '.')
            i++;
        else if (s[i] == '_')
            i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
        else if (s[i] == '-')
            while (i < n && s[i] == '-')
                i++;
        else
            return false;
    }
}

/* A registry: host labels [a-zA-Z0-9] with inner '-', joined by '.', and an
 * optional numeric port. */
static bool
valid_domain(const char *d)
{
    const char *colon = strchr(d, ':');
    size_t hl = colon ? (size_t) (colon - d) : strlen(d);
    if (!hl)
        return false;
    for (size_t i = 0; i < hl; i++) {
        char c = d[i];
        if (c == '.' && (i == 0 || i + 1 == hl || d[i - 1] == '.'))
            return false;
        if (c == '-' && (i == 0 || i + 1 == hl || d[i - 1] == '.' || d[i + 1] == '.'))
            return false;
        if (!isalnum((unsigned char) c) && c != '.' && c != '-')
            return false;
    }
    if (colon) {
        if (!colon[1])
            return false;
        for (const char *p = colon + 1; *p; p++)
            if (!isdigit((unsigned char) *p))
                return false;
    }
    return true;
}

static bool
valid_tag(const char *t)
{
    size_t n = strlen(t);
    if (!n || n > 128)
        return false;
    if (!isalnum((unsigned char) t[0]) && t[0] != '_')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char) t[i]) && t[i] != '_' && t[i] != '.' && t[i] != '-')
            return false;
    return true;
}

int
cs_ref_normalize(const char *ref, char **out, cs_error **err)
{
    if (!*ref)
        return cs_err(err, CS_EINVAL, 0, "invalid reference format: empty name");
    if (strchr(ref, '@'))
        return cs_err(err, CS_EINVAL, 0, "reference '%s': digest references are not supported",
                      ref);
    cs_autofree char *name = cs_xstrdup(ref);
    const char *tag = "latest";
    char *slash = strrchr(name, '/');
    char *colon = strrchr(name, ':');
    if (colon && (!slash || colon > slash)) {
        *colon = 0;
        tag = colon + 1;
    }
    if (!valid_tag(tag))
        return cs_err(err, CS_EINVAL, 0, "reference '%s': invalid tag '%s'", ref, tag);
    const char *domain = "docker.io";
    const char *path = name;
    char *first = strchr(name, '/');
    if (first) {
        size_t dl = (size_t) (first - name);
        if (memchr(name, '.', dl) || memchr(name, ':', dl)
            || (dl == 9 && !strncmp(name, "localhost", 9))) {
            *first = 0;
            domain = name;
            path = first + 1;
        }
    }
    if (!strcmp(domain, "index.docker.io"))
        domain = "docker.io";
    if (!valid_domain(domain))
        return cs_err(err, CS_EINVAL, 0, "reference '%s': invalid registry '%s'", ref, domain);
    if (strlen(domain) + 1 + strlen(path) > 255)
        return cs_err(err, CS_EINVAL, 0, "reference '%s': repository name longer than 255", ref);
    /* Validate each path component. */
    const char *s = path;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t) (e - s) : strlen(s);
        if (!valid_path_component(s, n))
            return cs_err(err, CS_EINVAL, 0,
                          "invalid reference format: '%s' (repository names must be lowercase)",
                          ref);
        if (!e)
            break;
        s = e + 1;
    }
    bool library = !strcmp(domain, "docker.io") && !strchr(path, '/');
    *out = cs_xasprintf("%s/%s%s:%s", domain, library ? "library/" : "", path, tag);
    return 0;
}

char *
cs_ref_familiar(const char *n)
{
    /* "library/" goes only where nothing nested follows: "library/a/b" must stay. */
    if (!strncmp(n, "docker.io/library/", 18) && !strchr(n + 18, '/'))
        return cs_xstrdup(n + 18);
    if (!strncmp(n, "docker.io/", 10))
        return cs_xstrdup(n + 10);
    return cs_xstrdup(n);
}

int
cs_tag_set(cs_db *db, MDB_txn *txn, const char *normalized, const cs_digest *id, cs_error **err)
{
    int r = cs_db_put(db, txn, CS_T_TAGS, normalized, strlen(normalized), id->b, 32, 0, err);
    return r < 0 ? r : 0;
}

int
cs_tag_get(cs_db *db, MDB_txn *txn, const char *normalized, cs_digest *id, cs_error **err)
{
    MDB_val v;
    int r = cs_db_get(db, txn, CS_T_TAGS, normalized, strlen(normalized), &v, err);
    if (r < 0)
        return r;
    if (v.mv_size != 32)
        return cs_err(err, CS_ECORRUPT, 0, "tag '%s': bad record", normalized);
    memcpy(id->b, v.mv_data, 32);
    return 0;
}

int
cs_tag_delete(cs_db *db, MDB_txn *txn, const char *normalized, cs_error **err)
{
    MDB_val k = { strlen(normalized), (void *) normalized };
    int rc = mdb_del(txn, cs_db_dbi(db, CS_T_TAGS), &k, NULL);
    if (rc == MDB_NOTFOUND)
        return cs_err(err, CS_ENOTFOUND, 0, "image '%s' not found", normalized);
    if (rc)
        return cs_db_err(err, rc, "delete tag");
    return 0;
}

typedef struct tags_of {
    const cs_digest *id;
    cs_strv *out;
} tags_of;

static int
tag_of(void *ctx, const MDB_val *k, const MDB_val *v, cs_error **err)
{
    tags_of *x = ctx;
    (void) err;
    if (v->mv_size == 32 && memcmp(v->mv_data, x->id->b, 32) == 0)
        cs_strv_push(x->out, cs_xstrndup(k->mv_data, k->mv_size));
    return 0;
}

int
cs_image_tags(cs_db *db, MDB_txn *txn, const cs_digest *id, cs_strv *out, cs_error **err)
{
    /* The tags table is keyed by name: finding an image's names is a scan,
     * fine for the few hundred tags a store holds. */
    tags_of x = { id, out };
    return cs_db_each(db, txn, CS_T_TAGS, "tags", tag_of, &x, err);
}

static bool
is_hex(const char *s)
{
    for (; *s; s++)
        if (!isxdigit((unsigned char) *s) || isupper((unsigned char) *s))
            return false;
    return true;
}

int
cs_image_resolve(cs_db *db, MDB_txn *txn, const char *name, cs_digest *out, cs_error **err)
{
    MDB_val v;
    if (!strncmp(name, "sha256:", 7) || (strlen(name) == 64 && is_hex(name))) {
        if (cs_digest_parse(name, out)
            && cs_db_get(db, txn, CS_T_IMAGES, out->b, 32, &v, NULL) == 0)
            return 0;
        return cs_err(err, CS_ENOTFOUND, 0, "image '%s' not found", name);
    }
    cs_autofree char *norm = NULL;
    cs_error *nerr = NULL;
    if (cs_ref_normalize(name, &norm, &nerr) == 0) {
        int r = cs_tag_get(db, txn, norm, out, err);
        if (r != -CS_ENOTFOUND)
            return r;
    }
    size_t n = strlen(name);
    if (n >= 4 && n < 64 && is_hex(name)) {
        /* A unique prefix of an image id. */
        MDB_cursor *c;
        if (mdb_cursor_open(txn, cs_db_dbi(db, CS_T_IMAGES), &c) == 0) {
            int found = 0;
            MDB_val k;
            for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
                 rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
                char hex[CS_DIGEST_HEX];
                cs_digest_hex((const cs_digest *) k.mv_data, hex);
                if (!strncmp(hex, name, n)) {
                    memcpy(out->b, k.mv_data, 32);
                    found++;
                }
            }
            mdb_cursor_close(c);
            if (found == 1) {
                cs_error_free(nerr);
                return 0;
            }
            if (found > 1) {
                cs_error_free(nerr);
                return cs_err(err, CS_EINVAL, 0, "image id prefix '%s' is ambiguous", name);
            }
        }
    }
    if (nerr) {
        /* Not a valid reference and not an id: say why. */
        if (err && !*err)
            *err = nerr;
        else
            cs_error_free(nerr);
        return -CS_EINVAL;
    }
    return cs_err(err, CS_ENOTFOUND, 0, "image '%s' not found", name);
}
