/* gc.c - `cstore gc`, `du` and `fsck`: the store's upkeep. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "cmd.h"
#include "cstore/gc.h"

const char cmd_gc_usage[] =
    "usage: cstore gc [--dry-run] [--compact] [--keep-storage SIZE] [--keep-duration TIME]\n"
    "\n"
    "Delete the images no tag names, the build cache entries outside the policy, and\n"
    "the trees, contents and chunks nothing kept uses. Waits for other cstore\n"
    "processes on the store to finish.\n"
    "\n"
    "Options:\n"
    "  -n, --dry-run          only say what would be freed\n"
    "  --compact              then rewrite the database file so it shrinks on disk\n"
    "  --keep-storage SIZE    build cache, snapshots and cached layer blobs to keep, most\n"
    "                         recently used first\n"
    "                         (default 10GB; units B, kB, MB, GB, TB)\n"
    "  --keep-duration TIME   drop build cache entries unused for longer (default 168h;\n"
    "                         units s, m, h, d)\n"
    "  -h, --help             show this help\n";

const char cmd_du_usage[] =
    "usage: cstore du [--json]\n"
    "\n"
    "Show what the store holds: images, the bytes their layers add up to (logical),\n"
    "the bytes of unique content, those bytes compressed, the snapshots (trees unpacked\n"
    "for RUN, a cache) and the store's size on disk.\n"
    "\n"
    "Options:\n"
    "  --json       print a JSON object\n"
    "  -h, --help   show this help\n";

const char cmd_fsck_usage[] =
    "usage: cstore fsck\n"
    "\n"
    "Re-hash every chunk and content and check every reference between records.\n"
    "Prints one line per problem; exits 1 if there is any.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n";

/* "1.23MB (1234567 bytes)" */
static const char *
size_both(uint64_t n, char buf[64])
{
    char h[CMD_SIZE_BUF];
    snprintf(buf, 64, "%s (%" PRIu64 " bytes)", cmd_human_size(n, h), n);
    return buf;
}

int
cmd_gc(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    cs_gc_opts go = { false, false, CS_GC_KEEP_STORAGE, CS_GC_KEEP_DURATION };
    const cmd_opt opts[] = {
        CMD_OPT("dry-run", 'n', CMD_FLAG, &go.dry_run),
        CMD_OPT("compact", 0, CMD_FLAG, &go.compact),
        CMD_OPT("keep-storage", 0, CMD_SIZE, &go.keep_storage),
        CMD_OPT("keep-duration", 0, CMD_DURATION, &go.keep_duration),
        CMD_OPT_END,
    };
    cs_gc_stats st = { 0 };
    cs_store *s;
    char b1[64], b2[64];
    int rc;

    cmd_args args = { .min = 0, .max = 0 };
    if ((rc = cmd_parse(c, argc, argv, opts, &args, err)) != 0)
        return rc;
    /* gc runs beside loads and builds (leases keep what they rely on); only
     * --compact, which swaps the LMDB file, needs the store to itself. */
    if ((rc = cmd_open(c, go.compact ? CS_OPEN_EXCLUSIVE : 0, &s, err)) < 0)
        return rc;
    bool dry = go.dry_run;
    if ((rc = cs_gc_ex(s, &go, &st, err)) < 0)
        return rc;

    printf("%s %" PRIu64 " images, %" PRIu64 " trees, %" PRIu64 " contents, %" PRIu64
           " layer blobs, %" PRIu64 " chunks\n",
           dry ? "would free:" : "freed:", st.images, st.trees, st.contents, st.layer_blobs,
           st.chunks);
    printf("%s %" PRIu64 " build cache entries, %" PRIu64 " stat cache entries, %" PRIu64
           " snapshots (%s), %" PRIu64 " remote chunk records\n",
           dry ? "would drop:" : "dropped:", st.cache, st.statcache, st.snapshots,
           size_both(st.snapshot_bytes, b2), st.remote_chunks);
    printf("%s %s of chunks\n", dry ? "would free:" : "freed:", size_both(st.chunk_bytes, b1));
    if (go.compact)
        printf("compacted: %s -> %s\n", size_both(st.file_before, b1),
               size_both(st.file_after, b2));
    return 0;
}

int
cmd_du(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    bool json = false;
    const cmd_opt opts[] = CMD_OPTS_JSON(&json);
    cs_du_stats st = { 0 };
    cs_store *s;
    char b[64];
    int rc;

    cmd_args args = { .min = 0, .max = 0 };
    if ((rc = cmd_start(c, argc, argv, opts, &args, &s, err)) != 0)
        return rc;
    if ((rc = cs_du(s, &st, err)) < 0)
        return rc;
    /* An empty store has no ratio; JSON cannot hold NaN or inf. */
    double ratio = isfinite(st.dedup_ratio) ? st.dedup_ratio : 0.0;

    if (json) {
        json_t *o2 = json_object();
        json_object_set_new(o2, "images", json_integer((json_int_t) st.images));
        json_object_set_new(o2, "tags", json_integer((json_int_t) st.tags));
        json_object_set_new(o2, "trees", json_integer((json_int_t) st.trees));
        json_object_set_new(o2, "contents", json_integer((json_int_t) st.contents));
        json_object_set_new(o2, "chunks", json_integer((json_int_t) st.chunks));
        json_object_set_new(o2, "logical_bytes", json_integer((json_int_t) st.logical_bytes));
        json_object_set_new(o2, "unique_bytes", json_integer((json_int_t) st.unique_bytes));
        json_object_set_new(o2, "stored_bytes", json_integer((json_int_t) st.stored_bytes));
        json_object_set_new(o2, "disk_bytes", json_integer((json_int_t) st.disk_bytes));
        json_object_set_new(o2, "snapshots", json_integer((json_int_t) st.snapshots));
        json_object_set_new(o2, "snapshot_bytes", json_integer((json_int_t) st.snapshot_bytes));
        json_object_set_new(o2, "blobcache_bytes", json_integer((json_int_t) st.blobcache_bytes));
        char r[32];
        snprintf(r, sizeof(r), "%.2f", ratio);
        json_object_set_new(o2, "dedup_ratio", json_real(strtod(r, NULL)));
        return cmd_print_json(o2, err);
    }
    printf("images:          %" PRIu64 " (%" PRIu64 " tags)\n", st.images, st.tags);
    printf("trees:           %" PRIu64 "\n", st.trees);
    printf("contents:        %" PRIu64 "\n", st.contents);
    printf("chunks:          %" PRIu64 "\n", st.chunks);
    printf("logical bytes:   %s\n", size_both(st.logical_bytes, b));
    printf("unique content:  %s\n", size_both(st.unique_bytes, b));
    printf("stored (zstd):   %s\n", size_both(st.stored_bytes, b));
    printf("snapshots:       %" PRIu64 " (%s on disk)\n", st.snapshots,
           size_both(st.snapshot_bytes, b));
    printf("blob cache:      %s on disk (layer blobs of exports)\n",
           size_both(st.blobcache_bytes, b));
    printf("on disk:         %s\n", size_both(st.disk_bytes, b));
    printf("dedup ratio:     %.2f\n", ratio);
    return 0;
}

static void
fsck_report(void *ctx, const char *problem)
{
    (void) ctx;
    printf("%s\n", problem);
    fflush(stdout); /* a long check shows problems as they are found */
}

int
cmd_fsck(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    cs_store *s;
    int rc;

    cmd_args args = { .min = 0, .max = 0 };
    if ((rc = cmd_start(c, argc, argv, cmd_no_opts, &args, &s, err)) != 0)
        return rc;
    if ((rc = cs_fsck(s, fsck_report, NULL, err)) < 0)
        return rc;
    if (rc == 0) {
        printf("fsck: ok\n");
        return 0;
    }
    printf("fsck: %d problem%s\n", rc, rc == 1 ? "" : "s");
    return CMD_EXIT_FAIL;
}
