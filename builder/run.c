/* run.c - the RUN executor's driver: a run as a row of steps (check, run
 * dir, spec, overlay, stubs, bundle, supervise) and a teardown that undoes
 * them; the spec is ocispec.c's, the mounts run_mount.c's, the runtime's
 * process run_supervise.c's. The run dir's layout is in run_int.h.
 *
 * Nothing of a run survives it: the runtime's container is deleted, the
 * mount points the runtime had to create in the rootfs (/proc, /dev,
 * /etc/resolv.conf, ... of images that lack them) are removed again, as
 * BuildKit's mount stub cleaner does, so they do not leak into the layer; the
 * overlay is unmounted and the run dir removed. A kept upper dir is renamed to
 * ROOT/tmp/run-<pid>-<n>-upper first, so the caller adopts it with one
 * rename.
 */
#include "run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ocispec.h"
#include "run_int.h"

static atomic_uint run_seq;

/* A cleanup step's failure: the run's error when nothing failed before it,
 * else (the real error is already set) a warning. */
static int
keep_first(run *r, int rc, int step, const char *what, cs_error **tmp, cs_error **err)
{
    if (step >= 0)
        return rc;
    if (rc < 0) {
        cs_store_warn_error(r->s, what, tmp);
        return rc;
    }
    if (err && !*err)
        *err = cs_steal(tmp);
    cs_error_clear(tmp);
    return step;
}

/* ROOT/tmp/run-<pid>-<n>, the first n free. */
static int
make_run_dir(run *r, cs_error **err)
{
    r->tmp = cs_path_join(cs_store_root(r->s), "tmp");
    r->state = cs_path_join(r->tmp, "runc");
    if (mkdir(r->tmp, 0700) < 0 && errno != EEXIST)
        return cs_err(err, CS_EIO, errno, "mkdir '%s'", r->tmp);
    for (;;) {
        r->n = atomic_fetch_add(&run_seq, 1);
        r->dir = cs_xasprintf("%s/run-%ld-%u", r->tmp, (long) getpid(), r->n);
        if (mkdir(r->dir, 0700) == 0)
            break;
        int e = errno;
        free(r->dir);
        r->dir = NULL;
        if (e != EEXIST)
            return cs_err(err, CS_EIO, e, "mkdir run dir in '%s'", r->tmp);
    }
    r->rootfs = cs_path_join(r->dir, "bundle/rootfs");
    r->id = cs_xasprintf("cstore-%ld-%u", (long) getpid(), r->n);
    return 0;
}

/* One "file" mount's content into path, with its mode and owner. */
static int
write_file_mount(const cs_run_mount *m, const char *path, cs_error **err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (fd < 0)
        return cs_err(err, CS_EIO, errno, "create '%s'", path);
    int rc = 0;
    if (cs_write_all(fd, m->data, m->len) < 0 || fchown(fd, m->uid, m->gid) < 0
        || fchmod(fd, m->mode & 07777) < 0)
        rc = cs_err(err, cs_sys_code(errno), errno, "write '%s'", path);
    if (close(fd) < 0 && rc == 0)
        rc = cs_err(err, CS_EIO, errno, "close '%s'", path);
    return rc;
}

/* r->eff: the caller's options with each "file" mount written under the run
 * dir and given to the runtime as a read-only bind of that file. */
static int
write_files(run *r, cs_error **err)
{
    r->eff = *r->o;
    size_t n = r->o->nmounts;
    r->mounts = cs_xcalloc(n + 1, sizeof *r->mounts);
    r->files = cs_xcalloc(n + 1, sizeof *r->files);
    r->eff.mounts = r->mounts;
    cs_autofree char *dir = cs_path_join(r->dir, "files");
    for (size_t i = 0; i < n; i++) {
        r->mounts[i] = r->o->mounts[i];
        if (!r->mounts[i].type || strcmp(r->mounts[i].type, "file"))
            continue;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return cs_err(err, CS_EIO, errno, "mkdir '%s'", dir);
        r->files[i] = cs_xasprintf("%s/%zu", dir, i);
        int rc = write_file_mount(&r->mounts[i], r->files[i], err);
        if (rc < 0)
            return rc;
        r->mounts[i].type = "bind";
        r->mounts[i].source = r->files[i];
        r->mounts[i].readonly = true;
    }
    return 0;
}

static int
write_bundle(run *r, cs_error **err)
{
    cs_autofree char *cfg = cs_path_join(r->dir, "bundle/config.json");
    return cs_ocispec_write(r->spec, cfg, err);
}

/* What the runtime's exit means: cancelled, the runtime's own failure (it
 * exits 1 and logs why), or the command's status. */
static int
judge(run *r, int status, int sig, cs_error **err)
{
    if (sig) {
        int rc = cs_cancel_check(r->cancel, err);
        return rc ? rc : cs_err(err, CS_ECANCELED, 0, "interrupted by signal %d", sig);
    }
    if (status == 1) {
        cs_autofree char *msg = run_runtime_error(r);
        if (msg)
            return cs_err(err, CS_EIO, 0, "runtime '%s': %s", r->runtime, msg);
    }
    if (status < 0)
        return cs_err(err, CS_EIO, 0, "runtime '%s' did not exit normally", r->runtime);
    return 0;
}

/* The spec; with extra hosts, on /etc/hosts a file made in the run dir (it
 * goes with the run dir, never into the upper dir). */
static int
make_spec(run *r, cs_error **err)
{
    cs_autofree char *hosts = NULL;
    if (r->o->hosts && *r->o->hosts) {
        hosts = cs_path_join(r->dir, "hosts");
        int rc = cs_ocispec_write_hosts(&r->eff, hosts, err);
        if (rc < 0)
            return rc;
    }
    return cs_ocispec_new(&r->eff, hosts, &r->spec, err);
}

/* Mounts, writes the bundle and runs; teardown() undoes it all. The reaper
 * is forked first (it waits for run_supervise's go) and released last, so
 * that a cstore killed at any point in between leaves nothing mounted. */
static int
run_in(run *r, int *status, cs_error **err)
{
    int rc, sig = 0;
    run_unique_lowers(r);
    cs_run_settle(); /* no lower dir is still a deferred teardown's upper dir */
    if ((rc = make_run_dir(r, err)) < 0 || (rc = run_reaper_spawn(r, err)) < 0
        || (rc = write_files(r, err)) < 0 || (rc = make_spec(r, err)) < 0
        || (rc = run_make_dirs(r, err)) < 0 || (rc = run_mount_overlay(r, err)) < 0)
        return rc;
    const char *kill_at = getenv("CSTORE_TEST_KILL_AFTER_MOUNT"); /* test only: run_int.h */
    if (kill_at)
        raise(strcmp(kill_at, "TERM") ? SIGKILL : SIGTERM);
    if ((rc = run_stubs_record(r, err)) < 0 || (rc = write_bundle(r, err)) < 0
        || (rc = run_supervise(r, status, &sig, err)) < 0)
        return rc;
    if (getenv("CSTORE_TEST_KILL_AFTER_RUN")) /* test only: see run_int.h */
        raise(SIGKILL);
    return judge(r, *status, sig, err);
}

void
run_command_exited(run *r)
{
    if (r->mounted && !r->stubs_cleaned) {
        run_stubs_clean(r);
        r->stubs_cleaned = true;
    }
    cs_autofree char *upper = cs_path_join(r->dir, "upper");
    r->o->on_exit(r->o->hook_ctx, upper);
}

/* Moves the upper dir out of the run dir before that is removed. */
static int
keep_upper(run *r, char **upper, cs_error **err)
{
    cs_autofree char *from = cs_path_join(r->dir, "upper");
    char *to = cs_xasprintf("%s-upper", r->dir);
    if (rename(from, to) < 0) {
        free(to);
        return cs_err(err, CS_EIO, errno, "rename '%s'", from);
    }
    *upper = to;
    return 0;
}

/* Undoes what was set up; rc is the run's result so far (the first error
 * stays the error, later ones are warnings). */
static int
teardown_steps(run *r, int rc, char **upper, cs_error **err)
{
    cs_error *tmp = NULL;
    /* a leftover container does not change what the command did */
    if (r->started && run_runtime_delete(r->runtime, r->state, r->id, &tmp) < 0)
        cs_store_warn_error(r->s, "delete container", &tmp);
    if (r->mounted) {
        if (!r->stubs_cleaned)
            run_stubs_clean(r);
        /* the upper dir out first, the rest in a thread (run_defer.c) */
        if (rc == 0 && r->o->keep_upper && r->o->defer_teardown
            && (rc = keep_upper(r, upper, err)) == 0) {
            run_defer_teardown(r);
            return 0;
        }
        rc = keep_first(r, rc, run_umount(r->rootfs, &tmp), "run cleanup", &tmp, err);
    }
    if (!r->dir)
        return rc;
    /* anything the runtime may have left mounted under the run dir */
    rc = keep_first(r, rc, run_umount_under(r->dir, &tmp), "run cleanup", &tmp, err);
    if (r->o->keep_upper && rc == 0)
        rc = keep_upper(r, upper, err);
    rc = keep_first(r, rc, cs_rm_tree(r->dir, NULL, &tmp), "run cleanup", &tmp, err);
    if (rc < 0 && *upper) {
        if (cs_rm_tree(*upper, NULL, &tmp) < 0)
            cs_store_warn_error(r->s, "run cleanup", &tmp);
        free(cs_steal(upper));
    }
    return rc;
}

/* The reaper covers the run until it is undone: a cstore killed during the
 * teardown leaves nothing either. */
static int
teardown(run *r, int rc, char **upper, cs_error **err)
{
    rc = teardown_steps(r, rc, upper, err);
    run_reaper_release(r);
    return rc;
}

static void
run_release(run *r)
{
    for (size_t i = 0; i < r->nstubs; i++)
        free(r->stubs[i].target);
    free(r->stubs);
    for (size_t i = 0; r->files && i < r->o->nmounts; i++)
        free(r->files[i]);
    free(r->files);
    free(r->mounts);
    free(r->lowers);
    json_decref(r->spec);
    run_exitwatch_release(&r->xw);
    cs_buf_release(&r->tail);
    for (int i = 0; i < 2; i++)
        if (r->rt_fds[i] >= 0)
            close(r->rt_fds[i]);
    if (r->ctl >= 0)
        close(r->ctl);
    free(r->tmp);
    free(r->state);
    free(r->dir);
    free(r->rootfs);
    free(r->id);
}

int
cs_run(cs_store *s, const cs_run_opts *o, cs_run_result *out, cs_error **err)
{
    memset(out, 0, sizeof *out);
    out->status = -1;
    run r = { .s = s,
              .o = o,
              .cancel = cs_store_cancel(s),
              .runtime = o->runtime ?: "runc",
              .rt_fds = { -1, -1 },
              .ctl = -1,
              .xw = { .ino = -1, .pidfd = -1 } };
    cs_buf_init(&r.tail);
    /* While held, a signal triggers the flag instead of killing cstore: the
     * container is stopped and everything undone below. */
    cs_cancel_hold(r.cancel);
    int rc, status = -1;
    char *upper = NULL;
    if ((rc = cs_ocispec_check(o, err)) == 0 && (rc = cs_cancel_check(r.cancel, err)) == 0) {
        rc = run_in(&r, &status, err);
        rc = teardown(&r, rc, &upper, err);
    }
    cs_cancel_unhold(r.cancel);
    if (rc == 0) {
        out->upper = upper;
        out->status = status;
    }
    out->tail = run_tail_lines(&r);
    run_release(&r);
    return rc;
}

void
cs_run_result_release(cs_run_result *r)
{
    if (!r)
        return;
    free(r->upper);
    free(r->tail);
    r->upper = r->tail = NULL;
}

/* One stale entry of ROOT/tmp: a run dir (its container, its mounts, then
 * its files) or a kept upper dir. */
static int
remove_stale(cs_store *s, const char *tmp, const char *name, long pid, const char *rest,
             cs_error **err)
{
    cs_autofree char *path = cs_path_join(tmp, name);
    char *end;
    unsigned long n = strtoul(rest, &end, 10);
    if (*end == 0) {
        cs_autofree char *state = cs_path_join(tmp, "runc");
        cs_autofree char *id = cs_xasprintf("cstore-%ld-%lu", pid, n);
        cs_error *e = NULL;
        if (run_runtime_delete("runc", state, id, &e) < 0)
            cs_store_warn_error(s, "stale run", &e);
        int rc = run_umount_under(path, err);
        if (rc < 0)
            return rc;
    }
    return cs_rm_tree(path, NULL, err);
}

int
cs_run_cleanup_stale(cs_store *s, cs_error **err)
{
    cs_autofree char *tmp = cs_path_join(cs_store_root(s), "tmp");
    DIR *d = opendir(tmp);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return cs_err(err, CS_EIO, errno, "open '%s'", tmp);
    }
    int count = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "run-", 4) != 0)
            continue;
        char *end;
        long pid = strtol(de->d_name + 4, &end, 10);
        if (pid <= 0 || *end != '-')
            continue;
        /* Gone, or its pid reused by a process started after the dir was
         * made (a live pid alone would keep a dead run's dir forever). */
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0
            || !cs_store_pid_gone((pid_t) pid, st.st_mtime))
            continue;
        /* Its reaper may still be cleaning up (it holds the dir locked). */
        cs_autoclose int lock = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if ((lock < 0 && errno == ENOENT) || (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) < 0))
            continue;
        cs_error *e = NULL;
        int r = remove_stale(s, tmp, de->d_name, pid, end + 1, &e);
        if (r < 0) {
            cs_err_wrap(&e, "stale run '%s'", de->d_name);
            if (rc == 0 && err && !*err)
                *err = cs_steal(&e);
            rc = rc ? rc : r;
            cs_store_warn_error(s, NULL, &e);
            continue;
        }
        count++;
    }
    closedir(d);
    return rc < 0 ? rc : count;
}
