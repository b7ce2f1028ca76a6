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
 * read-only (with extra hosts: a copy of the host's /etc/hosts plus their
 * lines, made in the run dir), Docker's default capability set, no new
 * privileges off, the given env, cwd and uid/gid (+ additional gids), rlimits
 * and /dev/shm size. Extra mounts (RUN --mount
 * cache/bind/tmpfs/ssh) are added as given; secrets as files in the run dir. Nothing is left
 * behind: the overlay and bundle are removed on success, failure and cancel. The runtime runs under
 * a reaper process (run_reaper.c) that kills the container, unmounts the overlay and removes the
 * run dir when cstore dies, even by SIGKILL; what is left of killed processes goes with
 * cs_run_cleanup_stale. A lower dir given twice is mounted once, at its topmost place. Files: run.c
 * (the driver), ocispec.c (config.json), run_mount.c (overlay, stubs, unmounting), run_supervise.c
 * (the runtime's process), run_reaper.c (its parent, which dies with cstore), run_defer.c (the
 * end of a teardown in a thread).
 */
#ifndef CSBUILD_RUN_H
#define CSBUILD_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/store.h"

typedef struct cs_run_mount {
    const char *type;   /* "bind", "tmpfs" or "file" */
    const char *source; /* host path (bind) */
    const char *target; /* path in the container */
    bool readonly;
    /* "file": a read-only file holding data[0..len) (a RUN secret). It is
     * written into the run dir as ROOT/tmp/run-<pid>-<n>/files/<i> with
     * mode, uid and gid (never into the rootfs, so never into the upper
     * dir) and bind-mounted read-only at target; it goes with the run dir,
     * whether the run ends, fails, is cancelled or cstore is killed (the
     * reaper, cs_run_cleanup_stale). */
    const void *data;
    size_t len;
    uint32_t mode, uid, gid;
} cs_run_mount;

/* A process rlimit (OCI process.rlimits). */
typedef struct cs_run_rlimit {
    const char *type; /* "RLIMIT_NOFILE", ...: a static string */
    uint64_t soft, hard;
} cs_run_rlimit;

/* docker's --ulimit NAME=SOFT[:HARD] (hard defaults to soft) with docker's
 * names: as core cpu data fsize locks memlock msgqueue nice nofile nproc rss
 * rtprio rttime sigpending stack. -CS_EINVAL with docker's messages ("invalid
 * ulimit type: x", "ulimit soft limit must be less than or equal to hard
 * limit: 2 > 1", ...); -1 is unlimited (RLIM_INFINITY: soft or hard
 * UINT64_MAX), a soft -1 needs a hard -1, as go-units. Thread-safe. */
int cs_run_rlimit_parse(const char *spec, cs_run_rlimit *out, cs_error **err);

/* docker's --add-host HOST:IP (or HOST=IP; an IPv6 address may be in
 * brackets; IP "host-gateway" is 127.0.0.1: a run shares the host's
 * network, where the host is its own gateway, docker's bridge gateway
 * is not there) as a line of /etc/hosts without its newline: "IP\tHOST" in *line
 * (caller frees; NULL on error). -CS_EINVAL "bad format for add-host: 'x'" or
 * "invalid IP address in add-host: 'x'". Thread-safe. */
int cs_run_host_parse(const char *spec, char **line, cs_error **err);

typedef struct cs_run_opts {
    const char *const *lowers; /* snapshot fs dirs (absolute), bottom first; none:
                                  an empty rootfs (FROM scratch) */
    size_t nlowers;
    char *const *argv;    /* the command (NULL-terminated) */
    char *const *env;     /* "K=V" (NULL-terminated); a default PATH is added if it
                             has none, as Docker does */
    const char *cwd;      /* absolute (NULL: "/"), created by the runtime (root, 0755)
                             if missing */
    uint32_t uid, gid;    /* uid != 0: no effective/permitted capabilities (Docker) */
    const uint32_t *gids; /* additional groups */
    size_t ngids;
    bool network_none;
    const cs_run_mount *mounts;
    size_t nmounts;
    const cs_run_rlimit *rlimits; /* over the default RLIMIT_NOFILE; of two of a type, */
    size_t nrlimits;              /* the last counts */
    char *const *hosts;           /* extra /etc/hosts lines (cs_run_host_parse), NULL-
                                     terminated; NULL or none: the host's file as is */
    uint64_t shm_size;            /* bytes of the /dev/shm tmpfs; 0: 64 MiB (Docker's) */
    const char *runtime;          /* path or name of the OCI runtime; NULL: "runc" */
    bool keep_upper;              /* keep the upper dir for cs_snapshot_diff */
    bool defer_teardown;          /* with keep_upper, after a run that succeeded: the
                                     overlay's unmount and the run dir's removal go on
                                     in a thread after cs_run returns (the upper dir is
                                     out of the run dir by then); cs_run_settle waits
                                     for them, as does the next cs_run */
    bool keep_overlay;            /* with defer_teardown: the detached overlay's last
                                     reference stays open (its kernel teardown off the
                                     caller's path) until cs_run_settle or
                                     cs_run_release_overlays; for a build's last run,
                                     whose upper dir no later run mounts as a lower dir
                                     (the next cs_run drops it first anyway). Ignored
                                     when a lower dir is served by FUSE */
    int out_fd, err_fd;           /* where the command's stdout/stderr go (borrowed; -1:
                                     discarded); stdin is /dev/null */
    /* With keep_upper: called at most once, on the caller's thread, as soon
     * as the container's command has exited (all of its processes), while
     * the runtime is still winding down: the upper dir is final then (its
     * mount stubs removed already), and on_exit may work on it (not move it)
     * at upper, a path valid during the call only. cs_run's result says
     * whether the run succeeded; when it did, out->upper is that dir. Not
     * called when the runtime's layout gives no way to see that moment. */
    void (*on_exit)(void *ctx, const char *upper);
    void *hook_ctx; /* what on_exit and on_start get as ctx */
    /* Called on the caller's thread once the runtime has been let start (the
     * run's reaper forked, its overlay mounted): work to do beside it. */
    void (*on_start)(void *ctx);
    /* The last lines of output are kept for error messages. */
} cs_run_opts;

typedef struct cs_run_result {
    int status;  /* exit status (128+N when killed by signal N); -1 on error */
    char *upper; /* kept upper dir (keep_upper, success only):
                    ROOT/tmp/run-<pid>-<n>-upper, on the store's filesystem;
                    the caller renames it away (cs_snapshot_adopt) or removes
                    it. One left behind by a dead process goes with
                    cs_run_cleanup_stale. */
    char *tail;  /* last ~20 lines of combined output (also on error) */
} cs_run_result;
/* Frees the strings (not the upper dir on disk). */
void cs_run_result_release(cs_run_result *r);

/* Runs o->argv and waits for it. *out is always filled (release it). Returns
 * 0 when the command ran, whatever its exit status; -CS_EINVAL for bad
 * options (no argv, relative cwd or mount target, strings not UTF-8),
 * -CS_EUNSUPPORTED for an unknown mount type, -CS_EIO when the overlay or the
 * runtime failed (the runtime's own message, e.g. "exec: \"x\": executable
 * file not found in $PATH"), -CS_ECANCELED "interrupted by signal N" when the
 * store's cancel flag (cs_store_cancel) is or gets triggered.
 * Cancelling: the library installs no signal handler. While a run is in
 * flight it holds the store's flag (cs_cancel_hold), so the caller's handler
 * knows to trigger it rather than take the default action; the run then
 * kills its container, cleans up and fails. The runtime runs in its own
 * process group, so a terminal's Ctrl-C reaches only cstore. A flag already
 * triggered fails the call at once.
 * Failures of the cleanup after an error (unmount, removal, runtime delete)
 * go to the store's warn hook.
 * Mount points the runtime creates in the rootfs (/proc, /dev, /sys,
 * /etc/resolv.conf, mount targets) are removed again when still empty, so
 * they do not end up in the upper dir (as BuildKit does).
 * Thread rules: runs may go in parallel from several threads. */
int cs_run(cs_store *s, const cs_run_opts *o, cs_run_result *out, cs_error **err);
/* Waits until the teardowns that runs with defer_teardown left to threads
 * are done (their failures went to the store's warn hook) and drops the
 * overlays keep_overlay kept. Call it before closing the store those runs
 * used. Thread-safe. */
void cs_run_settle(void);
/* The same but for the kept overlays, which stay. */
void cs_run_settle_threads(void);
/* For a command about to exit: settles, then hands the kept overlays to a
 * spawned `cat` that drops them as it exits, at the end of its stdin (a pipe
 * this process holds until it exits), so their teardown is not part of the
 * command's time (without `cat`, they are dropped here). Call it last: the
 * process is not to run another cs_run. */
void cs_run_release_overlays(void);
/* Unmounts and removes ROOT/tmp/run-<pid>-* left by dead processes (and
 * deletes their containers with `runc delete --force`). Returns how many it
 * removed. Call at startup, with the store open. The first failure is
 * returned (the others go to the warn hook); it goes on with the rest. */
int cs_run_cleanup_stale(cs_store *s, cs_error **err);

#endif
