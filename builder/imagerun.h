/* imagerun.h - `cstore run` as a library call: an image's config
 * (Entrypoint, Cmd, Env, User, WorkingDir) turned into a run spec and run
 * over its layers' snapshots with cs_run (run.h).
 *
 * The spec follows Docker: argv = Entrypoint + (the given command, else Cmd);
 * env = the image's, plus HOME=/root when it sets no HOME; the user resolved
 * to uid/gid against the image's /etc/passwd and /etc/group; cwd =
 * WorkingDir, else "/". Stale runs of dead processes are cleaned first.
 */
#ifndef CSBUILD_IMAGERUN_H
#define CSBUILD_IMAGERUN_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/store.h"

typedef struct cs_image_run_opts {
    bool network_none;   /* a new network namespace with only lo */
    const char *runtime; /* path or name of the OCI runtime; NULL: "runc" */
    int out_fd, err_fd;  /* the command's stdout/stderr (borrowed; -1: discarded) */
    /* docker run's -e K=V (over the image's K), --add-host HOST:IP
     * (cs_run_host_parse), --ulimit NAME=SOFT[:HARD] (cs_run_rlimit_parse),
     * NULL-terminated, each may be NULL; --shm-size in bytes (0: 64 MiB).
     * A bad --add-host or --ulimit fails the call before anything runs,
     * -CS_EINVAL. */
    char *const *env;
    char *const *add_hosts;
    char *const *ulimits;
    uint64_t shm_size;
} cs_image_run_opts;

/* Runs image name (a reference or digest) with cmd (NULL-terminated; NULL or
 * empty: the image's Cmd) and sets *status to the command's exit status
 * (128+N when killed by signal N). Returns 0 when the command ran, whatever
 * its status; -CS_ENOTFOUND (no such image), -CS_ECORRUPT (config not
 * JSON), -CS_EINVAL (no command at all, an unknown user), or cs_run's codes
 * (-CS_ECANCELED when the store's cancel flag is triggered). Warnings
 * (stale runs that could not be removed, failed cleanup) go to the store's
 * warn hook. Thread rules: as cs_run. */
int cs_image_run(cs_store *s, const char *name, char *const *cmd, const cs_image_run_opts *o,
                 int *status, cs_error **err);

#endif
