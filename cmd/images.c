/* images.c - `cstore images`, `inspect`, `tag` and `rmi`: reading and naming
 * image records. */
#include <string.h>
#include <time.h>
#include "cmd.h"
#include "cstore/image.h"
#include "cstore/tree.h"

const char cmd_images_usage[] =
    "usage: cstore images [--json]\n"
    "\n"
    "List images: one line per tag, untagged images as <none>. SIZE is the bytes of\n"
    "the files in the image's layers (before deduplication and compression).\n"
    "\n"
    "Options:\n"
    "  --json       print a JSON array of {\"id\", \"tags\", \"created\", \"size\"}\n"
    "  -h, --help   show this help\n";

const char cmd_inspect_usage[] =
    "usage: cstore inspect NAME\n"
    "\n"
    "Print image NAME (a reference, sha256:ID or a unique ID prefix) as JSON: its id,\n"
    "tags, config and layers (tree digest, diff_id, file bytes, entry count).\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n";

const char cmd_tag_usage[] =
    "usage: cstore tag SRC DST\n"
    "\n"
    "Give image SRC (a reference or an image id) the name DST (NAME[:TAG]).\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n";

const char cmd_rmi_usage[] =
    "usage: cstore rmi NAME...\n"
    "\n"
    "Remove tags. NAME[:TAG] removes that tag, and the image when no tag is left;\n"
    "an image id removes the image and all its tags. The content stays until `cstore gc`.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n";

static const struct option help_opts[] = {
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* ---- string lists ---- */

typedef struct strv {
    char **v;
    size_t n, cap;
} strv;

static void
strv_push(strv *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = cs_xrealloc(l->v, l->cap * sizeof(char *));
    }
    l->v[l->n++] = s;
}

static void
strv_clear(strv *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Appends the normalized tags naming image id (in key order). */
static int
tags_of(cs_db *db, MDB_txn *txn, const cs_digest *id, strv *out, cs_error **err)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, cs_db_dbi(db, CS_T_TAGS), &cur);
    if (rc)
        return cs_db_err(err, rc, "tags");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (v.mv_size == 32 && memcmp(v.mv_data, id->b, 32) == 0)
            strv_push(out, cs_xstrndup(k.mv_data, k.mv_size));
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return cs_db_err(err, rc, "tags");
    return 0;
}

/* ---- layer sums ---- */

typedef struct tree_sum {
    cs_digest d;
    uint64_t bytes;   /* sum of regular file sizes */
    uint64_t entries; /* all entries, whiteouts included */
} tree_sum;

/* Trees already decoded in this txn: images share base layers. */
typedef struct sum_cache {
    tree_sum *v;
    size_t n, cap;
} sum_cache;

static int
tree_sum_get(cs_db *db, MDB_txn *txn, sum_cache *c, const cs_digest *d, tree_sum *out,
             cs_error **err)
{
    for (size_t i = 0; i < c->n; i++) {
        if (cs_digest_eq(&c->v[i].d, d)) {
            *out = c->v[i];
            return 0;
        }
    }
    cs_tree *t = NULL;
    int rc = cs_tree_get(db, txn, d, &t, err);
    if (rc < 0)
        return rc;
    tree_sum s = { .d = *d, .entries = t->n };
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].type == CS_E_FILE)
            s.bytes += t->e[i].size;
    cs_tree_free(t);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = cs_xrealloc(c->v, c->cap * sizeof(tree_sum));
    }
    c->v[c->n++] = s;
    *out = s;
    return 0;
}

/* The config's "created" string, or NULL. */
static const char *
config_created(json_t *cfg)
{
    json_t *c = json_object_get(cfg, "created");
    return json_is_string(c) ? json_string_value(c) : NULL;
}

static int
parse_config(const cs_image *img, json_t **out, cs_error **err)
{
    json_error_t jerr;
    json_t *cfg = json_loadb(img->config, img->config_len, 0, &jerr);
    if (!cfg) {
        char id[CS_DIGEST_STR];
        cs_digest_str(&img->id, id);
        return cs_err(err, CS_ECORRUPT, 0, "image '%s': config: %s", id, jerr.text);
    }
    *out = cfg;
    return 0;
}

/* ---- images ---- */

typedef struct img_info {
    cs_digest id;
    strv tags;     /* normalized */
    char *created; /* config "created", or NULL */
    int64_t t;     /* created, when has_t */
    bool has_t;
    uint64_t size;
} img_info;

typedef struct images_ctx {
    img_info *v;
    size_t n, cap;
} images_ctx;

static void
images_clear(images_ctx *x)
{
    for (size_t i = 0; i < x->n; i++) {
        strv_clear(&x->v[i].tags);
        free(x->v[i].created);
    }
    free(x->v);
    memset(x, 0, sizeof(*x));
}

static int
add_image(cs_db *db, MDB_txn *txn, images_ctx *x, sum_cache *sc, const MDB_val *k, const MDB_val *v,
          cs_error **err)
{
    cs_image *img = NULL;
    json_t *cfg = NULL;
    int rc;
    if (k->mv_size != 32)
        return cs_err(err, CS_ECORRUPT, 0, "images: bad key");
    if ((rc = cs_image_decode(v->mv_data, v->mv_size, &img, err)) < 0)
        return rc;
    if ((rc = parse_config(img, &cfg, err)) < 0)
        goto out;
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 16;
        x->v = cs_xrealloc(x->v, x->cap * sizeof(img_info));
    }
    img_info *in = &x->v[x->n++];
    memset(in, 0, sizeof(*in));
    memcpy(in->id.b, k->mv_data, 32);
    const char *created = config_created(cfg);
    if (created) {
        in->created = cs_xstrdup(created);
        /* Go's zero time (created unset) shows as N/A, as in docker. */
        in->has_t = cmd_parse_time(created, &in->t) && strncmp(created, "0001-", 5) != 0;
    }
    for (uint32_t i = 0; i < img->nlayers; i++) {
        tree_sum s;
        if ((rc = tree_sum_get(db, txn, sc, &img->layers[i], &s, err)) < 0) {
            char id[CS_DIGEST_STR];
            cs_digest_str(&in->id, id);
            cs_err_wrap(err, "image '%s'", id);
            goto out;
        }
        in->size += s.bytes;
    }
    rc = 0;
out:
    json_decref(cfg);
    cs_image_free(img);
    return rc;
}

static int
images_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    images_ctx *x = ctx;
    sum_cache sc = { 0 };
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc;

    images_clear(x); /* idempotent if run again */
    if ((rc = mdb_cursor_open(txn, cs_db_dbi(db, CS_T_IMAGES), &cur))) {
        rc = cs_db_err(err, rc, "images");
        goto out;
    }
    /* Keys are digests: the list comes out sorted by id, for bsearch below. */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((rc = add_image(db, txn, x, &sc, &k, &v, err)) < 0)
            goto out;
    }
    if (rc != MDB_NOTFOUND) {
        rc = cs_db_err(err, rc, "images");
        goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;

    if ((rc = mdb_cursor_open(txn, cs_db_dbi(db, CS_T_TAGS), &cur))) {
        rc = cs_db_err(err, rc, "tags");
        goto out;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size != 32)
            continue;
        size_t lo = 0, hi = x->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = memcmp(x->v[mid].id.b, v.mv_data, 32);
            if (c == 0) {
                strv_push(&x->v[mid].tags, cs_xstrndup(k.mv_data, k.mv_size));
                break;
            }
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        /* A tag naming no image record is fsck's to report. */
    }
    if (rc != MDB_NOTFOUND) {
        rc = cs_db_err(err, rc, "tags");
        goto out;
    }
    rc = 0;
out:
    if (cur)
        mdb_cursor_close(cur);
    free(sc.v);
    return rc;
}

/* Newest first, as docker lists them; undated last; then by id. */
static int
cmp_created(const void *a, const void *b)
{
    const img_info *x = a, *y = b;
    if (x->has_t != y->has_t)
        return x->has_t ? -1 : 1;
    if (x->has_t && x->t != y->t)
        return x->t > y->t ? -1 : 1;
    return memcmp(x->id.b, y->id.b, 32);
}

/* Splits a familiar reference "repo:tag" at the tag's colon. */
static void
split_ref(char *fam, const char **repo, const char **tag)
{
    char *slash = strrchr(fam, '/');
    char *colon = strrchr(fam, ':');
    *repo = fam;
    *tag = "<none>";
    if (colon && (!slash || colon > slash)) {
        *colon = 0;
        *tag = colon + 1;
    }
}

typedef struct row {
    const char *col[5];
} row;

static void
print_table(row *rows, size_t n)
{
    /* docker's tabwriter: minwidth 10, padding 3; the last column unpadded */
    size_t w[5];
    for (int j = 0; j < 5; j++) {
        w[j] = 0;
        for (size_t i = 0; i < n; i++)
            if (strlen(rows[i].col[j]) > w[j])
                w[j] = strlen(rows[i].col[j]);
        w[j] = w[j] + 3 < 10 ? 10 : w[j] + 3;
    }
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < 4; j++)
            printf("%-*s", (int) w[j], rows[i].col[j]);
        printf("%s\n", rows[i].col[4]);
    }
}

static int
images_json(images_ctx *x, cs_error **err)
{
    json_t *a = json_array();
    for (size_t i = 0; i < x->n; i++) {
        img_info *in = &x->v[i];
        char id[CS_DIGEST_STR];
        cs_digest_str(&in->id, id);
        json_t *tags = json_array();
        for (size_t j = 0; j < in->tags.n; j++) {
            char *fam = cs_ref_familiar(in->tags.v[j]);
            json_array_append_new(tags, json_string(fam));
            free(fam);
        }
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "tags", tags);
        json_object_set_new(o, "created", in->created ? json_string(in->created) : json_null());
        json_object_set_new(o, "size", json_integer((json_int_t) in->size));
        json_array_append_new(a, o);
    }
    return cmd_print_json(a, err);
}

static void
images_table(images_ctx *x)
{
    size_t nrows = 1;
    for (size_t i = 0; i < x->n; i++)
        nrows += x->v[i].tags.n ? x->v[i].tags.n : 1;
    row *rows = cs_xcalloc(nrows, sizeof(row));
    /* Column strings of each row, freed together. */
    strv keep = { 0 };
    time_t now = time(NULL);

    rows[0] = (row){ { "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE" } };
    size_t r = 1;
    for (size_t i = 0; i < x->n; i++) {
        img_info *in = &x->v[i];
        char hex[CS_DIGEST_HEX], size[CMD_SIZE_BUF], dur[CMD_DURATION_BUF];
        cs_digest_hex(&in->id, hex);
        char *id = cs_xstrndup(hex, 12);
        char *created = in->has_t ? cs_xasprintf("%s ago", cmd_human_duration(now - in->t, dur))
                                  : cs_xstrdup("N/A");
        char *sz = cs_xstrdup(cmd_human_size(in->size, size));
        strv_push(&keep, id);
        strv_push(&keep, created);
        strv_push(&keep, sz);
        for (size_t j = 0; j < (in->tags.n ? in->tags.n : 1); j++, r++) {
            const char *repo = "<none>", *tag = "<none>";
            if (in->tags.n) {
                char *fam = cs_ref_familiar(in->tags.v[j]);
                strv_push(&keep, fam);
                split_ref(fam, &repo, &tag);
            }
            rows[r] = (row){ { repo, tag, id, created, sz } };
        }
    }
    print_table(rows, nrows);
    strv_clear(&keep);
    free(rows);
}

int
cmd_images(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool json = false;
    images_ctx x = { 0 };
    cs_store *s;
    int o, rc;

    while ((o = cmd_getopt(c, argc, argv, "h", opts)) != -1) {
        switch (o) {
        case 'j':
            json = true;
            break;
        default:
            return c->status;
        }
    }
    if ((rc = cmd_nargs(c, argc - optind, 0, 0)) != 0)
        return rc;
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    if ((rc = cs_db_read(cs_store_db(s), images_fn, &x, err)) < 0)
        goto out;
    if (x.n)
        qsort(x.v, x.n, sizeof(img_info), cmp_created);
    if (json)
        rc = images_json(&x, err);
    else
        images_table(&x);
out:
    images_clear(&x);
    return rc < 0 ? rc : 0;
}

/* ---- inspect ---- */

typedef struct inspect_ctx {
    const char *name;
    json_t *out;
} inspect_ctx;

static int
inspect_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    inspect_ctx *x = ctx;
    cs_digest id;
    cs_image *img = NULL;
    strv tags = { 0 };
    sum_cache sc = { 0 };
    json_t *cfg = NULL, *o = NULL;
    char ids[CS_DIGEST_STR];
    int rc;

    json_decref(x->out); /* idempotent if run again */
    x->out = NULL;
    if ((rc = cs_image_resolve(db, txn, x->name, &id, err)) < 0)
        return rc;
    if ((rc = cs_image_get(db, txn, &id, &img, err)) < 0)
        return rc;
    if ((rc = parse_config(img, &cfg, err)) < 0)
        goto out;
    if ((rc = tags_of(db, txn, &id, &tags, err)) < 0)
        goto out;

    cs_digest_str(&id, ids);
    o = json_object();
    json_object_set_new(o, "id", json_string(ids));
    json_t *ta = json_array();
    for (size_t i = 0; i < tags.n; i++) {
        char *fam = cs_ref_familiar(tags.v[i]);
        json_array_append_new(ta, json_string(fam));
        free(fam);
    }
    json_object_set_new(o, "tags", ta);
    json_object_set(o, "config", cfg);

    json_t *diff_ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    json_t *layers = json_array();
    json_object_set_new(o, "layers", layers);
    for (uint32_t i = 0; i < img->nlayers; i++) {
        tree_sum s;
        if ((rc = tree_sum_get(db, txn, &sc, &img->layers[i], &s, err)) < 0)
            goto out;
        char td[CS_DIGEST_STR];
        cs_digest_str(&img->layers[i], td);
        json_t *l = json_object();
        json_object_set_new(l, "tree", json_string(td));
        json_t *di = json_array_get(diff_ids, i);
        if (json_is_string(di))
            json_object_set(l, "diff_id", di);
        json_object_set_new(l, "size", json_integer((json_int_t) s.bytes));
        json_object_set_new(l, "entries", json_integer((json_int_t) s.entries));
        json_array_append_new(layers, l);
    }
    x->out = o;
    o = NULL;
    rc = 0;
out:
    json_decref(o);
    json_decref(cfg);
    cs_image_free(img);
    strv_clear(&tags);
    free(sc.v);
    return rc;
}

int
cmd_inspect(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    inspect_ctx x = { 0 };
    cs_store *s;
    int o, rc;

    if ((o = cmd_getopt(c, argc, argv, "h", help_opts)) != -1)
        return c->status; /* help shown or bad option reported */
    if ((rc = cmd_nargs(c, argc - optind, 1, 1)) != 0)
        return rc;
    x.name = argv[optind];
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    if ((rc = cs_db_read(cs_store_db(s), inspect_fn, &x, err)) < 0) {
        json_decref(x.out);
        return rc;
    }
    return cmd_print_json(x.out, err);
}

/* ---- tag ---- */

typedef struct tag_ctx {
    const char *src;
    const char *dst; /* normalized */
} tag_ctx;

static int
tag_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    tag_ctx *x = ctx;
    cs_digest id;
    int rc = cs_image_resolve(db, txn, x->src, &id, err);
    if (rc < 0)
        return rc;
    return cs_tag_set(db, txn, x->dst, &id, err);
}

int
cmd_tag(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    cs_autofree char *dst = NULL;
    cs_store *s;
    int o, rc;

    if ((o = cmd_getopt(c, argc, argv, "h", help_opts)) != -1)
        return c->status; /* help shown or bad option reported */
    if ((rc = cmd_nargs(c, argc - optind, 2, 2)) != 0)
        return rc;
    if ((rc = cs_ref_normalize(argv[optind + 1], &dst, err)) < 0)
        return rc;
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    tag_ctx x = { argv[optind], dst };
    return cs_db_write(cs_store_db(s), tag_fn, &x, err);
}

/* ---- rmi ---- */

typedef struct rmi_ctx {
    const char *name;
    const char *norm; /* name normalized, or NULL when it is no reference */
    strv untagged;    /* normalized */
    bool deleted;
    cs_digest id;
} rmi_ctx;

static int
rmi_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    rmi_ctx *x = ctx;
    int rc;

    strv_clear(&x->untagged); /* idempotent if run again */
    x->deleted = false;

    /* A reference first (as docker does): "abcd" may name a tag or an id. */
    if (x->norm && cs_tag_get(db, txn, x->norm, &x->id, NULL) == 0) {
        strv others = { 0 };
        if ((rc = cs_tag_delete(db, txn, x->norm, err)) < 0)
            return rc;
        strv_push(&x->untagged, cs_xstrdup(x->norm));
        rc = tags_of(db, txn, &x->id, &others, err);
        size_t left = others.n;
        strv_clear(&others);
        if (rc < 0)
            return rc;
        if (left)
            return 0;
    } else {
        if ((rc = cs_image_resolve(db, txn, x->name, &x->id, err)) < 0)
            return rc;
        if ((rc = tags_of(db, txn, &x->id, &x->untagged, err)) < 0)
            return rc;
        for (size_t i = 0; i < x->untagged.n; i++)
            if ((rc = cs_tag_delete(db, txn, x->untagged.v[i], err)) < 0)
                return rc;
    }
    if ((rc = cs_image_delete(db, txn, &x->id, err)) < 0)
        return rc;
    x->deleted = true;
    return 0;
}

int
cmd_rmi(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    cs_store *s;
    int o, rc;

    if ((o = cmd_getopt(c, argc, argv, "h", help_opts)) != -1)
        return c->status; /* help shown or bad option reported */
    if ((rc = cmd_nargs(c, argc - optind, 1, -1)) != 0)
        return rc;
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    /* One transaction per NAME; stop at the first failure. */
    for (int i = optind; i < argc; i++) {
        cs_autofree char *norm = NULL;
        if (cs_ref_normalize(argv[i], &norm, NULL) < 0)
            norm = NULL;
        rmi_ctx x = { .name = argv[i], .norm = norm };
        rc = cs_db_write(cs_store_db(s), rmi_fn, &x, err);
        if (rc >= 0) {
            for (size_t j = 0; j < x.untagged.n; j++) {
                cs_autofree char *fam = cs_ref_familiar(x.untagged.v[j]);
                printf("Untagged: %s\n", fam);
            }
            if (x.deleted) {
                char id[CS_DIGEST_STR];
                cs_digest_str(&x.id, id);
                printf("Deleted: %s\n", id);
            }
        }
        strv_clear(&x.untagged);
        if (rc < 0)
            return rc;
    }
    return 0;
}
