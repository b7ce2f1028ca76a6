/* test_run.c - the RUN executor: runc on an overlay of busybox lower dirs.
 * Needs root, runc on PATH and overlayfs; exits 77 otherwise (fails under
 * CSTORE_CI=1, where the host has them). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cstore/store.h"
#include "cstore/util.h"
#include "run.h"

typedef struct fix {
    test_sandbox sb;
    char *lower;       /* <work>/lower: busybox + a few files */
    char *tmp;         /* the store's tmp dir, where runs live */
    cs_cancel *cancel; /* the store's, as cmd/ attaches one */
    int out, err;      /* memfds */
} fix;

static void
write_text(const char *path, const char *text)
{
    test_write_file(path, text, strlen(text), 0644);
}

static void
make_busybox_lower(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/bin", dir);
    assert_int_equal(cs_mkdir_p(p, 0755, NULL), 0);
    snprintf(p, sizeof p, "%s/etc", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/etc/gone", dir);
    write_text(p, "delete me\n");
    assert_int_equal(test_sh("cp /bin/busybox '%s/bin/busybox'", dir), 0);
    static const char *const links[] = { "sh", "echo", "cat", "ls", "id", "touch", "rm", "sleep" };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(p, sizeof p, "%s/bin/%s", dir, links[i]);
        assert_int_equal(symlink("busybox", p), 0);
    }
}

static int
setup(void **state)
{
    if (test_sandbox_new(state, sizeof(fix), 0) < 0)
        return -1;
    fix *f = *state;
    f->lower = cs_path_join(f->sb.work, "lower");
    f->tmp = cs_path_join(f->sb.root, "tmp");
    make_busybox_lower(f->lower);
    cs_error *err = NULL;
    if (cs_cancel_new(&f->cancel, &err) < 0)
        return -1;
    cs_store_set_cancel(f->sb.s, f->cancel);
    f->out = memfd_create("out", MFD_CLOEXEC);
    f->err = memfd_create("err", MFD_CLOEXEC);
    return 0;
}

static int
teardown(void **state)
{
    fix *f = *state;
    cs_cancel *cancel = f->cancel; /* outlives the store */
    close(f->out);
    close(f->err);
    free(f->lower);
    free(f->tmp);
    int r = test_sandbox_teardown(state);
    cs_cancel_free(cancel);
    return r;
}

/* What was written to a memfd; resets it. Caller frees. */
static char *
drain(int fd)
{
    off_t n = lseek(fd, 0, SEEK_END);
    char *s = calloc(1, (size_t) n + 1);
    assert_int_equal(pread(fd, s, (size_t) n, 0), n);
    assert_int_equal(ftruncate(fd, 0), 0);
    lseek(fd, 0, SEEK_SET);
    return s;
}

/* What was written to fd must be want; resets it. */
static void
expect_out(int fd, const char *want)
{
    cs_autofree char *s = drain(fd);
    assert_string_equal(s, want);
}

/* No mount under the store root, no run dir in ROOT/tmp but kept uppers. */
static bool
has_run_dir(fix *f)
{
    DIR *d = opendir(f->tmp);
    bool found = false;
    struct dirent *de;
    while (d && !found && (de = readdir(d)))
        found = !strncmp(de->d_name, "run-", 4);
    if (d)
        closedir(d);
    return found;
}

static void
assert_no_mount(fix *f)
{
    FILE *m = fopen("/proc/self/mountinfo", "r");
    assert_non_null(m);
    char line[4096];
    while (fgets(line, sizeof line, m)) {
        char mp[4096];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && strstr(mp, f->sb.dir) == mp)
            fail_msg("mount left behind: %s", mp);
    }
    fclose(m);
}

static void
assert_clean(fix *f)
{
    assert_no_mount(f);
    DIR *d = opendir(f->tmp);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (!strncmp(de->d_name, "run-", 4) && (n < 6 || strcmp(de->d_name + n - 6, "-upper")))
            fail_msg("run dir left behind: %s", de->d_name);
    }
    closedir(d);
    /* no container state either */
    char runc[512];
    snprintf(runc, sizeof runc, "%s/runc", f->tmp);
    d = opendir(runc);
    if (!d)
        return;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            fail_msg("container left behind: %s", de->d_name);
    closedir(d);
}

static cs_run_opts
opts(fix *f, char *const *argv)
{
    static const char *lowers[1];
    lowers[0] = f->lower;
    static char *const env[] = { "PATH=/bin", "HOME=/root", NULL };
    return (cs_run_opts){ .lowers = lowers,
                          .nlowers = 1,
                          .argv = argv,
                          .env = env,
                          .cwd = "/",
                          .out_fd = f->out,
                          .err_fd = f->err };
}

static int
run_ok(fix *f, const cs_run_opts *o, cs_run_result *r)
{
    cs_error *err = NULL;
    int rc = cs_run(f->sb.s, o, r, &err);
    if (rc < 0)
        fail_msg("cs_run: %s (tail: %s)", err->msg, r->tail);
    assert_clean(f);
    return r->status;
}

static void
run_prints_output_as_root_in_a_created_cwd(void **state)
{
    fix *f = *state;
    char *argv[] = { "sh", "-c", "echo hi; id -u; pwd", NULL };
    cs_run_opts o = opts(f, argv);
    o.cwd = "/work";
    cs_run_result r;
    assert_int_equal(run_ok(f, &o, &r), 0);
    expect_out(f->out, "hi\n0\n/work\n");
    assert_string_equal(r.tail, "hi\n0\n/work\n");
    assert_null(r.upper);
    cs_run_result_release(&r);
}

static void
run_as_user_1000_with_groups(void **state)
{
    fix *f = *state;
    char *argv[] = { "sh", "-c", "id -u; id -G; grep CapEff /proc/self/status", NULL };
    cs_run_opts o = opts(f, argv);
    static const uint32_t gids[] = { 5, 20 };
    o.uid = 1000;
    o.gid = 1000;
    o.gids = gids;
    o.ngids = 2;
    cs_run_result r;
    assert_int_equal(run_ok(f, &o, &r), 0);
    expect_out(f->out, "1000\n1000 5 20\nCapEff:\t0000000000000000\n");
    cs_run_result_release(&r);
}

static void
run_propagates_exit_status_and_keeps_the_tail(void **state)
{
    fix *f = *state;
    char *argv[] = { "sh", "-c",
                     "i=0; while [ $i -lt 30 ]; do echo line$i; i=$((i+1)); done; "
                     "sleep 0.2; echo oops >&2; exit 3",
                     NULL };
    cs_run_opts o = opts(f, argv);
    cs_run_result r;
    assert_int_equal(run_ok(f, &o, &r), 3);
    cs_autofree char *out = drain(f->out);
    expect_out(f->err, "oops\n");
    assert_non_null(strstr(out, "line0\nline1\n"));
    assert_non_null(strstr(r.tail, "line29\n"));
    assert_non_null(strstr(r.tail, "oops\n"));
    assert_null(strstr(r.tail, "line5\n"));
    cs_run_result_release(&r);
}

static void
run_keeps_upper_with_new_files_and_whiteouts_but_no_mount_stubs(void **state)
{
    fix *f = *state;
    char *argv[] = { "sh", "-c", "touch /new && rm /etc/gone && cat /etc/resolv.conf >/dev/null",
                     NULL };
    cs_run_opts o = opts(f, argv);
    o.keep_upper = true;
    cs_run_result r;
    assert_int_equal(run_ok(f, &o, &r), 0);
    assert_non_null(r.upper);
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/new", r.upper);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    snprintf(p, sizeof p, "%s/etc/gone", r.upper);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(0, 0));
    /* the runtime's mount points are not part of the layer */
    static const char *const stubs[] = { "proc", "dev", "sys", "etc/resolv.conf", "etc/hosts" };
    for (size_t i = 0; i < sizeof stubs / sizeof stubs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", r.upper, stubs[i]);
        if (lstat(p, &st) == 0)
            fail_msg("mount stub '%s' left in the upper dir", stubs[i]);
    }
    /* the kept upper is outside the (removed) run dir */
    char rundir[512];
    snprintf(rundir, sizeof rundir, "%.*s", (int) (strlen(r.upper) - 6), r.upper);
    assert_int_equal(lstat(rundir, &st), -1);
    test_rmrf(r.upper);
    cs_run_result_release(&r);
    assert_clean(f);
}

static void
run_with_network_none_sees_only_lo(void **state)
{
    fix *f = *state;
    char *argv[] = { "cat", "/proc/net/dev", NULL };
    cs_run_opts o = opts(f, argv);
    o.network_none = true;
    cs_run_result r;
    assert_int_equal(run_ok(f, &o, &r), 0);
    cs_autofree char *out = drain(f->out);
    int ifaces = 0;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
        if (strchr(l, ':')) {
            ifaces++;
            assert_non_null(strstr(l, "lo:"));
        }
    }
    assert_int_equal(ifaces, 1);
    cs_run_result_release(&r);
}

static void
run_with_bind_and_tmpfs_mounts(void **state)
{
    fix *f = *state;
    char share[256], p[512];
    snprintf(share, sizeof share, "%s/share", f->sb.work);
    assert_int_equal(mkdir(share, 0755), 0);
    snprintf(p, sizeof p, "%s/msg", share);
    write_text(p, "hello\n");
    char *argv[] = { "sh", "-c",
                     "cat /mnt/share/msg; (touch /mnt/share/x 2>/dev/null && echo writable) || "
                     "echo readonly; touch /scratch/y && echo tmpfs-ok",
                     NULL };
    cs_run_opts o = opts(f, argv);
    cs_run_mount m[] = {
        { .type = "bind", .source = share, .target = "/mnt/share", .readonly = true },
        { .type = "tmpfs", .target = "/scratch" },
    };
    o.mounts = m;
    o.nmounts = 2;
    o.keep_upper = true;
    cs_run_result r;
    assert_int_equal(run_ok(f, &o, &r), 0);
    expect_out(f->out, "hello\nreadonly\ntmpfs-ok\n");
    struct stat st;
    snprintf(p, sizeof p, "%s/x", share);
    assert_int_equal(lstat(p, &st), -1);
    snprintf(p, sizeof p, "%s/mnt", r.upper);
    assert_int_equal(lstat(p, &st), -1);
    snprintf(p, sizeof p, "%s/scratch", r.upper);
    assert_int_equal(lstat(p, &st), -1);
    test_rmrf(r.upper);
    cs_run_result_release(&r);
}

static void
run_reports_a_missing_command_as_a_runtime_error(void **state)
{
    fix *f = *state;
    char *argv[] = { "/no/such/cmd", NULL };
    cs_run_opts o = opts(f, argv);
    o.nlowers = 0; /* FROM scratch */
    cs_run_result r;
    cs_error *err = NULL;
    assert_true(cs_run(f->sb.s, &o, &r, &err) < 0);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "no such file"));
    assert_int_equal(r.status, -1);
    assert_null(r.upper);
    assert_non_null(r.tail);
    cs_error_free(err);
    cs_run_result_release(&r);
    cs_autofree char *errs = drain(f->err);
    assert_clean(f);
}

/* 200 layers: the lowerdir option only fits in a page as relative paths. */
static void
run_stacks_two_hundred_layers(void **state)
{
    fix *f = *state;
    enum { N = 200 };
    char *dirs[N + 1];
    dirs[0] = f->lower;
    for (int i = 1; i <= N; i++) {
        dirs[i] = cs_xasprintf("%s/layer-with-a-rather-long-name-%03d", f->sb.work, i);
        assert_int_equal(mkdir(dirs[i], 0755), 0);
        char p[512], v[16];
        snprintf(p, sizeof p, "%s/f", dirs[i]);
        snprintf(v, sizeof v, "%d\n", i);
        write_text(p, v); /* the top one wins */
        snprintf(p, sizeof p, "%s/f%d", dirs[i], i);
        write_text(p, v);
    }
    char *argv[] = { "cat", "/f", "/f1", "/f200", NULL };
    cs_run_opts o = opts(f, argv);
    o.lowers = (const char *const *) dirs;
    o.nlowers = N + 1;
    cs_run_result r;
    assert_int_equal(run_ok(f, &o, &r), 0);
    expect_out(f->out, "200\n1\n200\n");
    cs_run_result_release(&r);
    for (int i = 1; i <= N; i++)
        free(dirs[i]);
}

typedef struct par {
    fix *f;
    int out;
    int rc, status;
    char *text;
} par;

static void *
run_thread(void *arg)
{
    par *p = arg;
    char *argv[] = { "sh", "-c", "echo $0", p->out == p->f->out ? "one" : "two", NULL };
    cs_run_opts o = opts(p->f, argv);
    o.out_fd = p->out;
    o.err_fd = -1;
    cs_run_result r;
    p->rc = cs_run(p->f->sb.s, &o, &r, NULL);
    p->status = r.status;
    cs_run_result_release(&r);
    p->text = drain(p->out);
    return NULL;
}

static void
runs_in_parallel_threads_do_not_mix(void **state)
{
    fix *f = *state;
    par p[2] = { { .f = f, .out = f->out }, { .f = f, .out = f->err } };
    for (int round = 0; round < 3; round++) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, run_thread, &p[i]);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(p[i].rc, 0);
            assert_int_equal(p[i].status, 0);
            assert_string_equal(p[i].text, i ? "two\n" : "one\n");
            free(p[i].text);
        }
        assert_clean(f);
    }
}

static pid_t
dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

static void
cleanup_stale_removes_runs_of_dead_processes(void **state)
{
    fix *f = *state;
    pid_t dead = dead_pid();
    char run[256], rootfs[512], upper[256], live[256], p[600];
    snprintf(run, sizeof run, "%s/run-%d-0", f->tmp, (int) dead);
    snprintf(rootfs, sizeof rootfs, "%s/bundle/rootfs", run);
    snprintf(upper, sizeof upper, "%s/run-%d-1-upper", f->tmp, (int) dead);
    snprintf(live, sizeof live, "%s/run-%d-5-upper", f->tmp, (int) getppid());
    assert_int_equal(cs_mkdir_p(rootfs, 0755, NULL), 0);
    assert_int_equal(cs_mkdir_p(upper, 0755, NULL), 0);
    assert_int_equal(cs_mkdir_p(live, 0755, NULL), 0);
    assert_int_equal(mount("tmpfs", rootfs, "tmpfs", 0, "size=1m"), 0);
    snprintf(p, sizeof p, "%s/file", rootfs);
    write_text(p, "x");
    /* a symlink out of the run dir is removed, not followed */
    snprintf(p, sizeof p, "%s/escape", run);
    assert_int_equal(symlink(f->lower, p), 0);
    cs_error *err = NULL;
    assert_int_equal(cs_run_cleanup_stale(f->sb.s, &err), 2);
    struct stat st;
    assert_int_equal(lstat(run, &st), -1);
    assert_int_equal(lstat(upper, &st), -1);
    assert_int_equal(lstat(live, &st), 0);
    snprintf(p, sizeof p, "%s/bin/busybox", f->lower);
    assert_int_equal(lstat(p, &st), 0);
    rmdir(live);
    assert_clean(f);
}

/* A cstore killed in the middle of a run leaves a container, an overlay and
 * a run dir; the next start removes them all. */
static void
cleanup_stale_after_a_killed_run(void **state)
{
    fix *f = *state;
    pid_t child = fork();
    if (child == 0) {
        char *argv[] = { "sh", "-c", "echo started; exec sleep 60", NULL };
        cs_run_opts o = opts(f, argv);
        cs_run_result r;
        cs_run(f->sb.s, &o, &r, NULL);
        _exit(0);
    }
    double t0 = cs_now();
    for (;;) {
        off_t n = lseek(f->out, 0, SEEK_END);
        if (n > 0)
            break;
        assert_true(cs_now() - t0 < 10);
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    expect_out(f->out, "started\n");
    /* The run's reaper cleans up (holding the run dir locked, so the stale
     * cleanup skips it meanwhile); whichever finishes, nothing is left. */
    cs_error *err = NULL;
    int removed = 0;
    for (t0 = cs_now(); cs_now() - t0 < 10;) {
        int r = cs_run_cleanup_stale(f->sb.s, &err);
        if (r < 0)
            fail_msg("cleanup: %s", err->msg);
        removed += r;
        if (!has_run_dir(f))
            break;
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    assert_true(removed <= 1);
    assert_clean(f);
}

static cs_cancel *sig_cancel;

/* What cmd/main.c does: trigger the flag while a run holds it. */
static void
on_sigterm(int sig)
{
    if (cs_cancel_held(sig_cancel))
        cs_cancel_trigger(sig_cancel, sig);
}

static void *
send_sigterm(void *arg)
{
    (void) arg;
    struct timespec ts = { 1, 0 };
    nanosleep(&ts, NULL);
    kill(getpid(), SIGTERM);
    return NULL;
}

/* The library installs no handler: the test's own triggers the store's
 * cancel flag, and the run kills its container and cleans up. */
static void
run_interrupted_by_sigterm_kills_the_container_and_cleans_up(void **state)
{
    fix *f = *state;
    char *argv[] = { "sh", "-c", "echo started; sleep 60", NULL };
    cs_run_opts o = opts(f, argv);
    o.keep_upper = true;
    sig_cancel = f->cancel;
    struct sigaction sa = { .sa_handler = on_sigterm }, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGTERM, &sa, &old), 0);
    pthread_t t;
    pthread_create(&t, NULL, send_sigterm, NULL);
    double t0 = cs_now();
    cs_run_result r;
    cs_error *err = NULL;
    assert_true(cs_run(f->sb.s, &o, &r, &err) < 0);
    pthread_join(t, NULL);
    assert_true(cs_now() - t0 < 15);
    assert_non_null(strstr(err->msg, "interrupted"));
    assert_int_equal(err->code, CS_ECANCELED);
    assert_int_equal(cs_cancel_reason(f->cancel), SIGTERM);
    assert_false(cs_cancel_held(f->cancel));
    assert_null(r.upper);
    expect_out(f->out, "started\n");
    cs_error_free(err);
    cs_run_result_release(&r);
    assert_clean(f);
    DIR *d = opendir(f->tmp);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)))
        assert_true(strncmp(de->d_name, "run-", 4) != 0);
    closedir(d);
    /* the library left the handler alone */
    struct sigaction now;
    sigaction(SIGTERM, &old, &now);
    assert_true(now.sa_handler == on_sigterm);
    /* the interruption is sticky: a later run fails at once */
    err = NULL;
    assert_int_equal(cs_run(f->sb.s, &o, &r, &err), -CS_ECANCELED);
    assert_non_null(strstr(err->msg, "interrupted by signal 15"));
    cs_error_free(err);
    cs_run_result_release(&r);
    assert_clean(f);
}

/* The same snapshot twice in the stack (two identical layers): overlayfs
 * refuses a repeated lower dir, so only the topmost copy is kept, which
 * already holds every file and whiteout of the lower copy. */
static void
run_with_a_lower_dir_repeated_keeps_its_topmost_copy(void **state)
{
    fix *f = *state;
    char *mid = cs_path_join(f->sb.work, "mid");
    assert_int_equal(mkdir(mid, 0755), 0);
    char p[512];
    snprintf(p, sizeof p, "%s/f", f->lower);
    write_text(p, "lower\n");
    snprintf(p, sizeof p, "%s/f", mid);
    write_text(p, "mid\n");
    char *argv[] = { "cat", "/f", NULL };
    cs_run_opts o = opts(f, argv);
    const char *twice[] = { f->lower, f->lower };
    o.lowers = twice;
    o.nlowers = 2;
    cs_run_result r;
    assert_int_equal(run_ok(f, &o, &r), 0);
    expect_out(f->out, "lower\n");
    cs_run_result_release(&r);
    /* bottom first: lower, mid, lower: the top one is lower */
    const char *sandwich[] = { f->lower, mid, f->lower };
    o.lowers = sandwich;
    o.nlowers = 3;
    assert_int_equal(run_ok(f, &o, &r), 0);
    expect_out(f->out, "lower\n");
    cs_run_result_release(&r);
    assert_clean(f);
    free(mid);
}

/* A working overlay mount (run as root). */
static bool
host_has_overlayfs(void)
{
    char d[] = "/tmp/cstore-ovl-XXXXXX";
    if (!mkdtemp(d))
        return false;
    char opt[512], mnt[64];
    static const char *const sub[] = { "l", "u", "w", "m" };
    for (int i = 0; i < 4; i++) {
        snprintf(mnt, sizeof mnt, "%s/%s", d, sub[i]);
        mkdir(mnt, 0755);
    }
    snprintf(opt, sizeof opt, "lowerdir=%s/l,upperdir=%s/u,workdir=%s/w", d, d, d);
    snprintf(mnt, sizeof mnt, "%s/m", d);
    bool ok = mount("overlay", mnt, "overlay", 0, opt) == 0;
    if (ok)
        umount(mnt);
    test_rmrf(d);
    return ok;
}

/* The build's way: the teardown left to a thread, the kept upper dir out
 * of the run dir at once, nothing left once settled, and the next run (on
 * that upper dir as a lower dir) waits for it and sees the file. */
static void
run_with_deferred_teardown_keeps_the_upper_and_leaves_nothing_once_settled(void **state)
{
    fix *f = *state;
    char *argv[] = { "sh", "-c", "echo made > /made", NULL };
    cs_run_opts o = opts(f, argv);
    o.keep_upper = true;
    o.defer_teardown = true;
    cs_run_result r;
    cs_error *err = NULL;
    if (cs_run(f->sb.s, &o, &r, &err) < 0)
        fail_msg("cs_run: %s", err->msg);
    assert_int_equal(r.status, 0);
    /* out of the mount table before cs_run returns: a SIGKILL now leaves
     * no mount (the reaper is gone) */
    assert_no_mount(f);
    char p[512];
    snprintf(p, sizeof p, "%s/made", r.upper);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    /* a second run on it: it settles the first's teardown before mounting */
    const char *lowers[] = { f->lower, r.upper };
    char *argv2[] = { "cat", "/made", NULL };
    cs_run_opts o2 = opts(f, argv2);
    o2.lowers = lowers;
    o2.nlowers = 2;
    cs_run_result r2;
    assert_int_equal(run_ok(f, &o2, &r2), 0);
    expect_out(f->out, "made\n");
    cs_run_settle();
    assert_clean(f);
    test_rmrf(r.upper);
    cs_run_result_release(&r);
    cs_run_result_release(&r2);
}

int
main(void)
{
    if (geteuid() != 0)
        return test_skip_all("root");
    if (!test_have_tool("runc"))
        return test_skip_all("runc on PATH");
    if (!host_has_overlayfs())
        return test_skip_all("overlayfs");
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(run_prints_output_as_root_in_a_created_cwd),
        T(run_as_user_1000_with_groups),
        T(run_propagates_exit_status_and_keeps_the_tail),
        T(run_keeps_upper_with_new_files_and_whiteouts_but_no_mount_stubs),
        T(run_with_network_none_sees_only_lo),
        T(run_with_bind_and_tmpfs_mounts),
        T(run_reports_a_missing_command_as_a_runtime_error),
        T(run_stacks_two_hundred_layers),
        T(runs_in_parallel_threads_do_not_mix),
        T(cleanup_stale_removes_runs_of_dead_processes),
        T(cleanup_stale_after_a_killed_run),
        T(run_interrupted_by_sigterm_kills_the_container_and_cleans_up),
        T(run_with_a_lower_dir_repeated_keeps_its_topmost_copy),
        T(run_with_deferred_teardown_keeps_the_upper_and_leaves_nothing_once_settled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
