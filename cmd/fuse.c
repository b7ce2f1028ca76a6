/* fuse.c - `cstore __fuse-serve ROOT MNT`: the FUSE server process a build
 * or `cstore run` starts (cstore/fuse.h), serving the store's trees at MNT
 * until its control socket (fd 3) closes. Its warnings go to stderr. */
#include <stdio.h>
#include "cmd.h"
#include "cstore/fuse.h"

static void
print_warning(void *ctx, const char *msg)
{
    (void) ctx;
    fprintf(stderr, "cstore: fuse server: warning: %s\n", msg);
}

int
cmd_fuse_serve(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "cstore: %s is started by cstore itself\n", CS_FUSE_VERB);
        return CMD_EXIT_USAGE;
    }
    cs_store *s = NULL;
    cs_error *err = NULL;
    int rc = cs_store_open(argv[1], 0, &s, &err);
    if (rc == 0) {
        cs_store_set_warn(s, print_warning, NULL);
        rc = cs_fuse_serve(s, argv[2], 3, &err);
    }
    cs_store_close(s);
    if (rc < 0)
        fprintf(stderr, "cstore: %s\n", err && err->msg ? err->msg : "fuse server failed");
    cs_error_free(err);
    return rc < 0 ? CMD_EXIT_FAIL : 0;
}
