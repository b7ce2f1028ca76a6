/* build_output.c - `cstore build -o/--output` and `--metadata-file`, as
 * buildx writes them: an OCI archive or docker-archive (cs_export), the
 * image's merged root filesystem as a tar or a directory (cstore/rootfs.h),
 * and the metadata JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "build_output.h"
#include "cstore/export.h"
#include "cstore/image.h"
#include "cstore/rcache.h"
#include "cstore/rootfs.h"

/* In the order of build_out_type, from BUILD_OUT_OCI. */
static const char *const out_types[] = { "oci", "docker", "tar", "local" };

/* One "key=value" of a type=... spec into out. */
static int
take_attr(cmd_ctx *c, build_out *out, const char *arg, char *kv)
{
    char *eq = strchr(kv, '=');
    if (!eq)
        return cmd_usage_error(c, "-o '%s': '%s' is not KEY=VALUE", arg, kv);
    *eq = '\0';
    const char *v = eq + 1;
    if (!strcmp(kv, "type")) {
        for (size_t i = 0; i < sizeof(out_types) / sizeof(out_types[0]); i++)
            if (!strcmp(v, out_types[i]))
                out->type = (build_out_type) (BUILD_OUT_OCI + i);
        if (out->type == BUILD_OUT_NONE)
            return cmd_usage_error(c, "-o: unknown output type '%s' (oci, docker, tar or local)",
                                   v);
        return 0;
    }
    if (!strcmp(kv, "dest")) {
        free(out->dest);
        out->dest = cs_xstrdup(v);
        return 0;
    }
    return cmd_usage_error(c, "-o '%s': unsupported attribute '%s' (type and dest are)", arg, kv);
}

/* What buildx refuses once the spec is read: no type, no dest where one is
 * needed, an archive on a terminal. */
static int
check_out(cmd_ctx *c, build_out *out, const char *arg)
{
    if (out->type == BUILD_OUT_NONE)
        return cmd_usage_error(c, "-o '%s': type= is required (oci, docker, tar or local)", arg);
    const char *tn = out_types[out->type - BUILD_OUT_OCI];
    if (out->type == BUILD_OUT_LOCAL && (!out->dest || !*out->dest))
        return cmd_usage_error(c, "-o type=local needs dest=DIR");
    if (out->type == BUILD_OUT_LOCAL && !strcmp(out->dest, "-"))
        return cmd_usage_error(c, "-o type=local writes a directory: dest=- (stdout) is for "
                                  "type=tar, oci or docker");
    /* type=docker without dest is buildx's load: the image is in the store already. */
    if (out->type == BUILD_OUT_DOCKER && !out->dest)
        return 0;
    if (!out->dest || !*out->dest) {
        free(out->dest);
        out->dest = cs_xstrdup("-"); /* buildx: an archive without dest goes to stdout */
    }
    if (!strcmp(out->dest, "-") && isatty(STDOUT_FILENO))
        return cmd_usage_error(c,
                               "-o type=%s: dest file is required, refusing to write to the "
                               "terminal",
                               tn);
    return 0;
}

int
build_out_take(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    build_out *out = o->dst;
    (void) err;
    if (out->type != BUILD_OUT_NONE)
        return cmd_usage_error(c, "-o: only one output is supported");
    if (!*arg)
        return cmd_usage_error(c, "-o: an output is needed (type=T,dest=PATH, DIR or -)");
    if (!strcmp(arg, "-")) { /* buildx: "-o -" is a tar on stdout */
        out->type = BUILD_OUT_TAR;
        out->dest = cs_xstrdup("-");
        return check_out(c, out, arg);
    }
    if (!strchr(arg, '=')) { /* buildx: a bare path is a local dir */
        out->type = BUILD_OUT_LOCAL;
        out->dest = cs_xstrdup(arg);
        return 0;
    }
    cs_autofree char *spec = cs_xstrdup(arg);
    char *p = spec, *kv;
    while ((kv = strsep(&p, ",")) != NULL) {
        int rc = take_attr(c, out, arg, kv);
        if (rc != 0)
            return rc;
    }
    return check_out(c, out, arg);
}

void
build_out_release(build_out *out)
{
    free(out->dest);
    out->dest = NULL;
}

bool
build_out_stdout(const build_out *out)
{
    return out->type != BUILD_OUT_NONE && out->dest && !strcmp(out->dest, "-");
}

static int
copy_to_stdout(const char *path, cs_error **err)
{
    cs_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "open '%s'", path);
    char buf[65536];
    ssize_t n;
    fflush(stdout);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cs_err(err, CS_EIO, errno, "read '%s'", path);
        if (cs_write_all(STDOUT_FILENO, buf, (size_t) n) < 0)
            return cs_err(err, cs_sys_code(errno), errno, "write to stdout");
    }
    return 0;
}

/* cs_export writes a file (beside its destination, renamed into place): an
 * archive for stdout is made in a temp dir first. */
static int
export_stdout(cs_store *s, const char *name, char *const *more, cs_format fmt, cs_error **err)
{
    const char *tmpd = getenv("TMPDIR");
    cs_autofree char *dir = cs_xasprintf("%s/cstore-out-XXXXXX", tmpd && *tmpd ? tmpd : "/tmp");
    if (!mkdtemp(dir))
        return cs_err(err, cs_sys_code(errno), errno, "mkdtemp '%s'", dir);
    cs_autofree char *path = cs_path_join(dir, "out.tar");
    int rc = cs_export_names(s, name, more, path, fmt, CS_COMP_GZIP, err);
    if (rc == 0)
        rc = copy_to_stdout(path, err);
    cs_error *tmp = NULL;
    if (cs_rm_tree(dir, NULL, &tmp) < 0)
        cs_store_warn_error(s, "removing the temp dir", &tmp);
    return rc;
}

/* The rootfs tar into a temp file beside dest, renamed into place. */
static int
tar_to_file(cs_store *s, const char *name, const char *dest, cs_error **err)
{
    cs_autofree char *tmp = cs_xasprintf("%s.tmp-XXXXXX", dest);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "create '%s'", tmp);
    int rc = cs_image_write_rootfs_tar(s, name, fd, err);
    if (rc == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0))
        rc = cs_err(err, cs_sys_code(errno), errno, "'%s'", tmp);
    if (close(fd) < 0 && rc == 0)
        rc = cs_err(err, CS_EIO, errno, "close '%s'", tmp);
    if (rc == 0 && rename(tmp, dest) < 0)
        rc = cs_err(err, cs_sys_code(errno), errno, "rename to '%s'", dest);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int
build_out_write(cs_store *s, const build_out *out, const cs_digest *id, char **tags, cs_error **err)
{
    char ids[CS_DIGEST_STR];
    cs_digest_str(id, ids);
    /* The first tag names the image in the archive (an OCI ref.name); a
     * docker-archive's RepoTags list every -t name, as BuildKit's docker
     * exporter writes them. A name is recorded only while its tag still names
     * this image, so a tag moved meanwhile gives no name. */
    const char *name = tags && tags[0] ? tags[0] : ids;
    char *const *more = tags && tags[0] ? tags + 1 : NULL;
    bool to_stdout = build_out_stdout(out);
    int rc = 0;
    /* An image from an imported build cache: its bytes first. */
    if (out->type != BUILD_OUT_NONE && (rc = cs_rcache_fetch_image(s, ids, NULL, err)) < 0)
        return rc;
    switch (out->type) {
    case BUILD_OUT_NONE:
        return 0;
    case BUILD_OUT_OCI:
    case BUILD_OUT_DOCKER: {
        cs_format fmt = out->type == BUILD_OUT_OCI ? CS_FMT_OCI_ARCHIVE : CS_FMT_DOCKER_ARCHIVE;
        if (!out->dest)
            return 0; /* type=docker alone: buildx's load; the image is stored */
        rc = to_stdout ? export_stdout(s, name, more, fmt, err)
                       : cs_export_names(s, name, more, out->dest, fmt, CS_COMP_GZIP, err);
        break;
    }
    case BUILD_OUT_TAR:
        rc = to_stdout ? cs_image_write_rootfs_tar(s, ids, STDOUT_FILENO, err)
                       : tar_to_file(s, ids, out->dest, err);
        break;
    case BUILD_OUT_LOCAL:
        rc = cs_image_unpack(s, ids, out->dest, err);
        break;
    }
    return rc < 0 ? cs_err_wrap(err, "--output") : 0;
}

int
build_metadata_write(cs_store *s, const char *path, const cs_digest *id, char **tags,
                     cs_error **err)
{
    char ids[CS_DIGEST_STR], mds[CS_DIGEST_STR];
    cs_digest_str(id, ids);
    /* buildx: containerimage.digest is the image's manifest digest, that of
     * the OCI manifest with gzip layers (what -o type=oci writes and a push
     * would send); the layers' blobs are generated once for it, then their
     * digests are cached. */
    cs_digest md;
    int rc = cs_image_manifest_digest(s, ids, CS_COMP_GZIP, &md, err);
    if (rc < 0)
        return cs_err_wrap(err, "--metadata-file");
    cs_digest_str(&md, mds);
    json_t *o = json_object();
    json_object_set_new(o, "containerimage.config.digest", json_string(ids));
    json_object_set_new(o, "containerimage.digest", json_string(mds));
    char *joined = NULL; /* buildx: the normalized names, comma-separated */
    for (size_t i = 0; tags && tags[i]; i++) {
        cs_autofree char *norm = NULL;
        if (cs_ref_normalize(tags[i], &norm, err) < 0) {
            free(joined);
            json_decref(o);
            return cs_err_wrap(err, "--metadata-file");
        }
        char *next = joined ? cs_xasprintf("%s,%s", joined, norm) : cs_steal(&norm);
        free(joined);
        joined = next;
    }
    if (joined)
        json_object_set_new(o, "image.name", json_string(joined));
    free(joined);
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        abort(); /* jansson fails only when out of memory */
    cs_autofree char *line = cs_xasprintf("%s\n", text);
    free(text);
    rc = cs_write_file_atomic(path, line, strlen(line), err);
    return rc < 0 ? cs_err_wrap(err, "--metadata-file") : 0;
}
