/* run.h - running a command in a container made from a stack of snapshots:
 * the executor behind RUN and `cstore run`.
 *
 * The rootfs is an overlayfs mount: lowerdirs = the snapshot dirs (top
 * first, through short symlinks so 100+ layers fit in a page), a fresh upper
 * and work dir under ROOT/tmp/. The command runs through an OCI runtime
 * (runc from Debian by default) on a bundle generated here: new mount, pid,
 * uts and ipc namespaces (network: the host's, or a new empty one for
 * "none"), /proc, /dev (tmpfs with the usual devices), /dev/pts, /dev/shm,
 * read-only /sys, the host's /etc/resolv.conf and /etc/hosts bind-mounted
 * read-only, Docker's default capability set, no new privileges off, the
 * given env, cwd and uid/gid (+ additional gids). Extra mounts (RUN --mount
 * cache/bind/tmpfs) are added as given. Nothing is left behind: the overlay
 * and bundle are removed on success, failure and SIGINT/SIGTERM; stale ones
 * of killed processes are cleaned by cs_run_cleanup_stale.
 */
#ifndef CSBUILD_RUN_H
#define CSBUILD_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/store.h"

typedef struct cs_run_mount {
    const char *type;   /* "bind" or "tmpfs" */
    const char *source; /* host path (bind) */
    const char *target; /* path in the container */
    bool readonly;
} cs_run_mount;

typedef struct cs_run_opts {
    const char *const *lowers; /* snapshot fs dirs, bottom first */
    size_t nlowers;
    char *const *argv;         /* the command (NULL-terminated) */
    char *const *env;          /* "K=V" (NULL-terminated) */
    const char *cwd;           /* absolute, created if missing */
    uint32_t uid, gid;
    const uint32_t *gids;      /* additional groups */
    size_t ngids;
    bool network_none;
    const cs_run_mount *mounts;
    size_t nmounts;
    const char *runtime;       /* path or name of the OCI runtime; NULL: "runc" */
    bool keep_upper;           /* keep the upper dir for cs_snapshot_diff */
    int out_fd, err_fd;        /* where the command's stdout/stderr go */
    /* The last lines of output are kept for error messages. */
} cs_run_opts;

typedef struct cs_run_result {
    int status;        /* exit status (128+N when killed by signal N) */
    char *upper;       /* kept upper dir (keep_upper), caller removes or adopts */
    char *tail;        /* last ~20 lines of combined output */
} cs_run_result;
void cs_run_result_release(cs_run_result *r);

int cs_run(cs_store *s, const cs_run_opts *o, cs_run_result *out, cs_error **err);
/* Unmounts and removes ROOT/tmp/run-* left by killed processes. */
int cs_run_cleanup_stale(cs_store *s, cs_error **err);

#endif
