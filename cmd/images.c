/* images.c - `cstore images`, `inspect`, `tag` and `rmi`: printing what
 * cs_image_list / cs_image_info_get read and what cs_image_remove did. */
#include <string.h>
#include <time.h>
#include "cmd.h"
#include "cstore/image.h"

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

/* ---- images ---- */

/* An image with its creation time as a number, for sorting and "ago". */
typedef struct dated {
    const cs_image_info *in;
    int64_t t;
    bool has_t;
} dated;

/* Newest first, as docker lists them; undated last; then by id. */
static int
cmp_created(const void *a, const void *b)
{
    const dated *x = a, *y = b;
    if (x->has_t != y->has_t)
        return x->has_t ? -1 : 1;
    if (x->has_t && x->t != y->t)
        return x->t > y->t ? -1 : 1;
    return memcmp(x->in->id.b, y->in->id.b, 32);
}

/* Sorted for display; caller frees. */
static dated *
date_images(const cs_image_info *v, size_t n)
{
    dated *d = cs_xcalloc(n ? n : 1, sizeof(dated));
    for (size_t i = 0; i < n; i++) {
        d[i].in = &v[i];
        /* Go's zero time (created unset) shows as N/A, as in docker. */
        d[i].has_t = v[i].created && cmd_parse_time(v[i].created, &d[i].t)
                     && strncmp(v[i].created, "0001-", 5) != 0;
    }
    if (n)
        qsort(d, n, sizeof(dated), cmp_created);
    return d;
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

/* The familiar names of tags, as a JSON array. */
static json_t *
tags_json(const cs_strv *tags)
{
    json_t *a = json_array();
    for (size_t j = 0; j < tags->n; j++) {
        cs_autofree char *fam = cs_ref_familiar(tags->v[j]);
        json_array_append_new(a, json_string(fam));
    }
    return a;
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
images_json(const dated *d, size_t n, cs_error **err)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        const cs_image_info *in = d[i].in;
        char id[CS_DIGEST_STR];
        cs_digest_str(&in->id, id);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "tags", tags_json(&in->tags));
        json_object_set_new(o, "created", in->created ? json_string(in->created) : json_null());
        json_object_set_new(o, "size", json_integer((json_int_t) in->size));
        json_array_append_new(a, o);
    }
    return cmd_print_json(a, err);
}

/* Appends the rows of one image (one per tag, or one <none>) at rows[*r];
 * the strings they point to go into keep. */
static void
image_rows(const dated *d, time_t now, row *rows, size_t *r, cs_strv *keep)
{
    const cs_image_info *in = d->in;
    char hex[CS_DIGEST_HEX], size[CMD_SIZE_BUF], dur[CMD_DURATION_BUF];
    cs_digest_hex(&in->id, hex);
    char *id = cs_xstrndup(hex, 12);
    char *created =
        d->has_t ? cs_xasprintf("%s ago", cmd_human_duration(now - d->t, dur)) : cs_xstrdup("N/A");
    char *sz = cs_xstrdup(cmd_human_size(in->size, size));
    cs_strv_push(keep, id);
    cs_strv_push(keep, created);
    cs_strv_push(keep, sz);
    for (size_t j = 0; j < (in->tags.n ? in->tags.n : 1); j++, (*r)++) {
        const char *repo = "<none>", *tag = "<none>";
        if (in->tags.n) {
            char *fam = cs_ref_familiar(in->tags.v[j]);
            cs_strv_push(keep, fam);
            split_ref(fam, &repo, &tag);
        }
        rows[*r] = (row){ { repo, tag, id, created, sz } };
    }
}

static void
images_table(const dated *d, size_t n)
{
    size_t nrows = 1;
    for (size_t i = 0; i < n; i++)
        nrows += d[i].in->tags.n ? d[i].in->tags.n : 1;
    cs_autofree row *rows = cs_xcalloc(nrows, sizeof(row));
    cmd_autostrv cs_strv keep = { 0 }; /* the rows' strings */
    time_t now = time(NULL);

    rows[0] = (row){ { "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE" } };
    size_t r = 1;
    for (size_t i = 0; i < n; i++)
        image_rows(&d[i], now, rows, &r, &keep);
    print_table(rows, nrows);
}

int
cmd_images(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    bool json = false;
    const cmd_opt opts[] = CMD_OPTS_JSON(&json);
    cs_image_info *v = NULL;
    size_t n = 0;
    int rc;
    cs_store *s;

    cmd_args args = { .min = 0, .max = 0 };
    if ((rc = cmd_start(c, argc, argv, opts, &args, &s, err)) != 0)
        return rc;
    if ((rc = cs_image_list(s, &v, &n, err)) < 0)
        return rc;
    cs_autofree dated *d = date_images(v, n);
    if (json)
        rc = images_json(d, n, err);
    else
        images_table(d, n);
    cs_image_list_free(v, n);
    return rc < 0 ? rc : 0;
}

/* ---- inspect ---- */

static json_t *
inspect_json(const cs_image_info *in, json_t *cfg)
{
    char ids[CS_DIGEST_STR];
    cs_digest_str(&in->id, ids);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(ids));
    json_object_set_new(o, "tags", tags_json(&in->tags));
    json_object_set(o, "config", cfg);

    json_t *diff_ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    json_t *layers = json_array();
    json_object_set_new(o, "layers", layers);
    for (uint32_t i = 0; i < in->nlayers; i++) {
        const cs_image_layer *li = &in->layers[i];
        char td[CS_DIGEST_STR];
        cs_digest_str(&li->tree, td);
        json_t *l = json_object();
        json_object_set_new(l, "tree", json_string(td));
        json_t *di = json_array_get(diff_ids, i);
        if (json_is_string(di))
            json_object_set(l, "diff_id", di);
        json_object_set_new(l, "size", json_integer((json_int_t) li->bytes));
        json_object_set_new(l, "entries", json_integer((json_int_t) li->entries));
        json_array_append_new(layers, l);
    }
    return o;
}

int
cmd_inspect(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    cs_image_info in;
    int rc;
    cs_store *s;

    cmd_args args = { .min = 1, .max = 1 };
    if ((rc = cmd_start(c, argc, argv, cmd_no_opts, &args, &s, err)) != 0)
        return rc;
    if ((rc = cs_image_info_get(s, args.v[0], &in, err)) < 0)
        return rc;
    /* cs_image_info_get has parsed it once already. */
    json_t *cfg = json_loadb(in.config, in.config_len, 0, NULL);
    if (!cfg) {
        char id[CS_DIGEST_STR];
        cs_digest_str(&in.id, id);
        rc = cs_err(err, CS_ECORRUPT, 0, "image '%s': config is not JSON", id);
    } else {
        rc = cmd_print_json(inspect_json(&in, cfg), err);
    }
    json_decref(cfg);
    cs_image_info_release(&in);
    return rc;
}

/* ---- tag ---- */

int
cmd_tag(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    cs_autofree char *dst = NULL;
    int rc;
    cs_store *s;

    cmd_args args = { .min = 2, .max = 2 };
    if ((rc = cmd_parse(c, argc, argv, cmd_no_opts, &args, err)) != 0)
        return rc;
    if ((rc = cs_ref_normalize(args.v[1], &dst, err)) < 0)
        return rc;
    if ((rc = cmd_open(c, 0, &s, err)) < 0)
        return rc;
    return cs_image_tag(s, args.v[0], dst, err);
}

/* ---- rmi ---- */

static void
print_removal(const cs_image_removal *r)
{
    for (size_t j = 0; j < r->untagged.n; j++) {
        cs_autofree char *fam = cs_ref_familiar(r->untagged.v[j]);
        printf("Untagged: %s\n", fam);
    }
    if (r->deleted) {
        char id[CS_DIGEST_STR];
        cs_digest_str(&r->id, id);
        printf("Deleted: %s\n", id);
    }
}

int
cmd_rmi(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    int rc;
    cs_store *s;

    cmd_args args = { .min = 1, .max = -1 };
    if ((rc = cmd_start(c, argc, argv, cmd_no_opts, &args, &s, err)) != 0)
        return rc;
    /* One transaction per NAME; stop at the first failure. */
    for (int i = 0; i < args.n; i++) {
        cs_image_removal r;
        if ((rc = cs_image_remove(s, args.v[i], &r, err)) < 0)
            return rc;
        print_removal(&r);
        cs_image_removal_release(&r);
    }
    return 0;
}
