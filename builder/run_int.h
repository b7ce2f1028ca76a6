/* run_int.h - internals the RUN executor's files share: one run's state and
 * the steps that mount (run_mount.c) and supervise (run_supervise.c) it.
 * run.c drives them. Not for use outside run*.c.
 *
 * One run owns ROOT/tmp/run-<pid>-<n>/:
 *   l/0, l/1, ...   short symlinks to the lower dirs, top layer first
 *   empty/          the single lower dir of a FROM scratch run
 *   upper/ work/    the overlay's upper and work dirs
 *   bundle/         config.json and rootfs/ (the overlay mount point)
 *   runc.log        the runtime's JSON log (its own errors)
 *   files/<i>       the content of "file" mount i (a secret), bind-mounted
 * The container is "cstore-<pid>-<n>" in the runtime state dir ROOT/tmp/runc,
 * so a stale run dir names its container and its owner process.
 */
#ifndef CSBUILD_RUN_INT_H
#define CSBUILD_RUN_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>
#include "cstore/cancel.h"
#include "cstore/util.h"
#include "run.h"

/* A mount destination that did not exist in the rootfs: the runtime creates
 * it (and its missing parents). After the run, what is still empty of it is
 * removed again and the mtime of the directory that held it restored. */
typedef struct run_stub {
    char *target;          /* clean, relative to the rootfs: "etc/resolv.conf" */
    size_t root_len;       /* target[0..root_len) = the first missing component */
    struct timespec tm[2]; /* atime, mtime of its parent */
} run_stub;

/* The container's init exit, watched through its pidfd (run_exitwatch.c). */
typedef struct run_exitwatch {
    int ino;          /* inotify fd until the pidfd is known, else -1 */
    int pidfd;        /* the container's init, once known, else -1 */
    bool watching;    /* the container's state dir is watched */
    bool fired;       /* its exit was seen */
    char *dir, *json; /* ROOT/tmp/runc/<id>, its state.json */
    char *id;
} run_exitwatch;

typedef struct run {
    cs_store *s;
    const cs_run_opts *o;
    cs_cancel *cancel; /* the store's (NULL: never cancelled) */
    const char *runtime;
    const char **lowers; /* o->lowers, each dir once (its topmost copy), bottom first */
    size_t nlowers;
    char *tmp;    /* ROOT/tmp */
    char *state;  /* ROOT/tmp/runc */
    char *dir;    /* ROOT/tmp/run-<pid>-<n> */
    char *rootfs; /* dir/bundle/rootfs */
    char *id;     /* cstore-<pid>-<n> */
    unsigned n;
    pid_t reaper;  /* run_reaper_spawn's, until released (0: none) */
    int rt_fds[2]; /* read ends of the runtime's stdout, stderr (-1: none) */
    int ctl;       /* cstore's end of the reaper's control socket (-1: none) */
    bool mounted, started;
    cs_run_opts eff;      /* o with "file" mounts as binds of files/<i> */
    cs_run_mount *mounts; /* eff.mounts */
    char **files;         /* their host paths (NULL for other mounts) */
    json_t *spec;         /* config.json */
    run_stub *stubs;
    size_t nstubs;
    bool stubs_cleaned;
    run_exitwatch xw; /* with o->on_exit */
    cs_buf tail;
} run;

/* ---- run_mount.c ---- */

/* Sets r->lowers from r->o->lowers with each dir kept once, at its topmost
 * place: overlayfs refuses a lower dir given twice (ELOOP), and the upper
 * copy already holds every file and whiteout of a lower one, so dropping the
 * lower copies changes nothing that is seen. */
void run_unique_lowers(run *r);

/* The run dir's subdirs and lower symlinks; the upper dir takes the top
 * layer's root owner and mode. -CS_EIO. */
int run_make_dirs(run *r, cs_error **err);
/* Mounts the overlay on r->rootfs and sets r->mounted. -CS_EINVAL when the
 * layers do not fit in one mount's options, -CS_EIO. */
int run_mount_overlay(run *r, cs_error **err);
/* Records the mount destinations of r->spec missing from the rootfs. */
int run_stubs_record(run *r, cs_error **err);
/* Removes what is left empty of them (before the unmount). */
void run_stubs_clean(run *r);
/* Unmounts path (retries while busy, then lazily). -CS_EIO. */
int run_umount(const char *path, cs_error **err);
/* Unmounts (lazily) every mount at or under dir, innermost first. -CS_EIO
 * (the first failure; it goes on with the others). */
int run_umount_under(const char *dir, cs_error **err);

/* ---- run_reaper.c ---- */

/* Forks the run's reaper, before anything of the run is mounted: it arms its
 * parent-death signal, checks its parent, locks r->dir and waits for
 * run_reaper_go. From then on until run_reaper_release cstore may die at any
 * point: the reaper kills the container (once there is one), unmounts
 * r->rootfs (when mounted), deletes the container (when there is one) and
 * removes r->dir. r->reaper = its pid, in its own process group; r->rt_fds =
 * the read ends of the pipes that are the runtime's stdout and stderr; r->ctl
 * = cstore's end of the control socket: the commands below go to the reaper
 * as bytes on it (no signal: cstore may have been started with some
 * ignored), its status comes back on it, and its end tells the reaper that
 * cstore has died. -CS_EIO when it could not be forked.
 * Test only: $CSTORE_TEST_KILL_AFTER_MOUNT set makes run.c SIGKILL cstore
 * right after the overlay is mounted, before the bundle is written; set to
 * "TERM", it raises SIGTERM there instead (a cancel before the go: the reaper
 * is released unused); $CSTORE_TEST_KILL_AFTER_RUN set, SIGKILL once the
 * runtime has exited, before the teardown (tests/integration/
 * t_run_killwindow.sh). */
int run_reaper_spawn(run *r, cs_error **err);
/* Lets the reaper start the runtime (`runtime run` on r->dir/bundle, searched
 * in PATH, stdin /dev/null). When the runtime has exited (and whatever it
 * left is killed), the reaper closes the output pipes and sends its status
 * as one byte on r->ctl (128+N when killed by signal N; 1 with a line in
 * r->dir/runc.log when it could not be started), then waits for its release.
 * Sets r->started. */
void run_reaper_go(run *r);
/* Tells the reaper to kill the runtime and the container (the end of a
 * cancel's escalation): its status is then 128+9. A SIGTERM to the reaper
 * does the same. */
void run_reaper_kill(run *r);
/* Ends the reaper once the run is torn down (or never started: a failed setup,
 * a cancel before the go) and reaps it; nothing when there is none. */
void run_reaper_release(run *r);

/* ---- run_exitwatch.c ---- */

/* Starts watching for the container's init (before the runtime starts).
 * Never fails: without a watch, run_exitwatch_fd is -1.
 * Test only: $CSTORE_TEST_NO_EXITWATCH set, nothing is watched. */
void run_exitwatch_start(run_exitwatch *w, const char *state_root, const char *id);
/* The fd to poll for POLLIN; -1 when there is none (any more). */
int run_exitwatch_fd(const run_exitwatch *w);
/* Call when that fd is readable: true once, when the init has exited. */
bool run_exitwatch_ready(run_exitwatch *w);
void run_exitwatch_release(run_exitwatch *w);

/* ---- run.c ---- */

/* The command's init has exited and the runtime has not: its mount stubs
 * go now (not again in the teardown), then o->on_exit sees the upper dir. */
void run_command_exited(run *r);

/* ---- run_defer.c ---- */

/* Takes the overlay on r->rootfs out of the mount table (lazily, kept alive
 * by an fd) and leaves the rest to a thread: dropping the overlay, then
 * removing r->dir (whatever is mounted under it first). Failures go to the
 * store's warn hook. cs_run_settle waits for it. */
void run_defer_teardown(run *r);

/* ---- run_supervise.c ---- */

/* Exit status of pid (128+N when killed by signal N); -1 on error. */
int run_wait_status(pid_t pid);
/* `runtime --root state_root delete --force id` when the container's state is
 * still there (runc run deletes its own container when it exits). -CS_EIO
 * when the runtime could not be started or failed. */
int run_runtime_delete(const char *runtime, const char *state_root, const char *id, cs_error **err);
/* Runs the runtime on the bundle and tees its output (into r->tail too)
 * until it exits, watching r->cancel: *status = its exit status, *sig = the
 * signal that cancelled it (0 if none; then the container was killed). A
 * cancel before the container exists is sent again as soon as the runtime
 * has recorded it (looked for every 50 ms), so the command does not run on
 * for the second it used to.
 * Test only: $CSTORE_TEST_CANCEL_AT_SPAWN set triggers r->cancel (SIGTERM)
 * the moment the runtime is spawned, before its container exists
 * (tests/integration/t_run_cancel.sh).
 * The runtime is the reaper's (run_reaper_spawn); run_supervise lets it go
 * and takes r->rt_fds; the status is the reaper's byte on r->ctl (its exit
 * status if it died without one); the teardown releases it. */
int run_supervise(run *r, int *status, int *sig, cs_error **err);
/* The last lines of output, for error messages. Caller frees. */
char *run_tail_lines(run *r);
/* The runtime's own failure (not the command's) from its JSON log, NULL if
 * none. Caller frees. */
char *run_runtime_error(run *r);

#endif
