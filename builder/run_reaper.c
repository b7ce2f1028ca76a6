/* run_reaper.c - the runtime's parent: a small child of cstore that ties the
 * container's life to cstore's.
 *
 * `runc run` puts the container's init in a new pid namespace as its own
 * child; were runc cstore's child, a SIGKILL of cstore would leave runc and
 * the container running to completion, with the overlay mounted. So cstore
 * forks a reaper, before it mounts the overlay, that
 *   - gets SIGUSR2 when cstore dies (PR_SET_PDEATHSIG; it also checks its
 *     parent each second, in case the signal came before it was set up).
 *     The signal comes when the thread that forked it exits, which, as that
 *     thread waits for the run, happens only when cstore is dying: with
 *     other threads (parallel stages) still exiting, the reaper's parent is
 *     then still cstore's pid, so the signal itself says so, not getppid(),
 *   - is a child subreaper (PR_SET_CHILD_SUBREAPER), so what runc leaves
 *     orphaned (the container's init) becomes its child, not init's,
 *   - takes its orders from cstore as bytes on a control socket (never
 *     signals: cstore may have been started with some of them ignored, and
 *     the reaper inherits that): waits for the go ('g', once the bundle is
 *     written), then starts the runtime; when it has exited (and whatever it
 *     left is killed), closes the output pipes, sends the runtime's status
 *     as one byte back on the socket and waits until cstore releases it
 *     ('r'), last in cstore's teardown, after the unmount. A setup that
 *     fails, or a cancel before the go, releases it unused; 'k' (the end of
 *     a cancel's escalation) kills the runtime and the container,
 *   - takes the end of the socket (cstore's end closes only when cstore
 *     exits) as cstore's death too.
 * On cstore's death, at any point before the release, it SIGKILLs its
 * children until none is left (killing the container's init kills its whole
 * pid namespace), unmounts the overlay (nothing when it is not mounted, or no
 * longer), deletes the container's state (when there is one) and removes the
 * run dir: a SIGKILL anywhere between the mount and the teardown's end leaves
 * no mount behind. A SIGTERM (or SIGINT, SIGHUP) while the runtime runs
 * kills, as 'k' does.
 *
 * The reaper is forked from a threaded process: it does little beyond
 * system calls (glibc keeps malloc usable after fork; no other lock is
 * taken) and reports nothing: the next command's cs_run_cleanup_stale finishes
 * what it could not do.
 */
#include "run_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* What the reaper needs, all made before the fork. */
typedef struct reaper {
    char *const *argv; /* the runtime's command */
    char *delete_argv[7];
    const char *rootfs, *dir, *log;
    const char *cstate;      /* the container's state dir: delete_argv only when it is there */
    char *log_line;          /* the JSON log line when the runtime cannot be started */
    int in, out, errfd, ctl; /* ctl: the reaper's end of the control socket */
    pid_t parent;
    sigset_t sigs; /* read from a signalfd: TERM, INT, HUP, CHLD, USR2 (cstore died) */
} reaper;

/* The reaper's fds beside stdio. */
enum { CTL_FD = 3, LOCK_FD = 4, SIG_FD = 5 };

/* SIGKILLs each child listed in /proc/self/task/<pid>/children. */
static void
kill_children(void)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/self/task/%ld/children", (long) getpid());
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    for (char *p = buf, *end; *p; p = end) {
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid > 0)
            kill((pid_t) pid, SIGKILL);
    }
}

/* Kills every descendant that is or becomes a child (orphans reparent here)
 * and reaps them all. */
static void
kill_all(void)
{
    for (;;) {
        kill_children();
        int st;
        if (waitpid(-1, &st, 0) < 0 && errno == ECHILD)
            return;
    }
}

static int
decode_status(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

extern char **environ;

/* Starts argv[0] (searched in PATH) with no signal blocked and SIGPIPE,
 * SIGINT, SIGTERM, SIGHUP at their default action (an ignored one would be
 * inherited by the container). Returns its pid, or -1 with errno. */
static pid_t
spawn_child(char *const argv[])
{
    posix_spawnattr_t at;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    static const int sigs[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&dfl, sigs[i]);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], NULL, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    if (e) {
        errno = e;
        return -1;
    }
    return pid;
}

/* Until cstore's end of the control socket is closed (at most 5 s): then
 * cstore is gone with all its threads, and so is anything it forked that held
 * the end (a helper that mounts the overlay from the run dir, run_mount.c):
 * nothing mounts after our unmount. */
static void
wait_ctl_end(void)
{
    double end = cs_now() + 5;
    for (double left; (left = end - cs_now()) > 0;) {
        struct pollfd p = { .fd = CTL_FD, .events = POLLIN };
        char c;
        if (poll(&p, 1, (int) (left * 1000) + 1) > 0 && read(CTL_FD, &c, 1) <= 0)
            return;
    }
}

/* cstore is gone: nothing of the run may outlive it. */
static void __attribute__((noreturn)) orphaned(const reaper *a)
{
    wait_ctl_end();
    kill_all();
    umount2(a->rootfs, MNT_DETACH | UMOUNT_NOFOLLOW); /* EINVAL: not (or no longer) mounted */
    pid_t pid = access(a->cstate, F_OK) == 0 ? spawn_child(a->delete_argv) : -1;
    int st;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    cs_error *tmp = NULL; /* nowhere to report: the next command retries */
    if (cs_rm_tree(a->dir, NULL, &tmp) < 0)
        cs_error_free(tmp);
    _exit(128 + SIGKILL);
}

/* What woke the reaper: a signal (its number), a byte from cstore on the
 * control socket (-1, the byte in *cmd), or nothing for a second (0). Never
 * returns once cstore has died: its parent-death signal, another parent, or
 * the end of the control socket (cstore's end closes only when it exits; a
 * release comes as a byte first). */
static int
next_event(const reaper *a, char *cmd)
{
    struct pollfd p[2] = { { .fd = SIG_FD, .events = POLLIN }, { .fd = CTL_FD, .events = POLLIN } };
    int n = poll(p, 2, 1000);
    if (getppid() != a->parent)
        orphaned(a);
    if (n <= 0)
        return 0;
    struct signalfd_siginfo si;
    if ((p[0].revents & POLLIN) && read(SIG_FD, &si, sizeof si) == (ssize_t) sizeof si) {
        if (si.ssi_signo == SIGUSR2)
            orphaned(a);
        return (int) si.ssi_signo;
    }
    if (!p[1].revents)
        return 0;
    ssize_t r = read(CTL_FD, cmd, 1);
    if (r == 1)
        return -1;
    if (r == 0 || (errno != EINTR && errno != EAGAIN))
        orphaned(a);
    return 0;
}

static bool
is_stop(int sig)
{
    return sig == SIGTERM || sig == SIGINT || sig == SIGHUP;
}

/* Until cstore's go ('g'): the overlay is being mounted and the bundle
 * written. A release ('r') or a stop signal instead: cstore tears down. */
static void
wait_go(const reaper *a)
{
    for (;;) {
        char cmd = 0;
        int ev = next_event(a, &cmd);
        if (ev < 0 && cmd == 'g')
            return;
        if ((ev < 0 && cmd == 'r') || is_stop(ev))
            _exit(128 + SIGKILL);
    }
}

/* The runtime and all it left are gone: its status to cstore (one byte on
 * the control socket, the output pipes closed first), then the run stays
 * covered until cstore has unmounted and removed it and releases us ('r'),
 * or dies first: then orphaned() does it. */
static void __attribute__((noreturn)) finish(const reaper *a, int status)
{
    unsigned char b = (unsigned char) status;
    if (dup2(0, 1) < 0 || dup2(0, 2) < 0 || send(CTL_FD, &b, 1, MSG_NOSIGNAL) != 1)
        _exit(status); /* cstore sees the end of the socket and waits for us */
    for (;;) {
        char cmd = 0;
        if (next_event(a, &cmd) < 0 && cmd == 'r')
            _exit(status);
    }
}

/* The runtime could not be started: say so where run_runtime_error reads. */
static void __attribute__((noreturn)) report_no_runtime(const reaper *a)
{
    int fd = open(a->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && write(fd, a->log_line, strlen(a->log_line)) < 0)
        _exit(1);
    if (fd >= 0)
        close(fd);
    finish(a, 1);
}

/* Stdio, the control socket (CTL_FD), the run dir's lock (LOCK_FD), the
 * signalfd (SIG_FD), nothing else. */
static void
setup_fds(const reaper *a)
{
    /* above whatever dup2 below may replace */
    int ctl = fcntl(a->ctl, F_DUPFD_CLOEXEC, 10);
    if (ctl < 0 || dup2(a->in, 0) < 0 || dup2(a->out, 1) < 0 || dup2(a->errfd, 2) < 0
        || dup3(ctl, CTL_FD, O_CLOEXEC) < 0)
        _exit(1);
    /* The run dir stays locked while this reaper lives: a concurrent
     * cs_run_cleanup_stale leaves it to us instead of racing our removal. */
    int lock = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock >= 0 && (flock(lock, LOCK_EX) < 0 || dup3(lock, LOCK_FD, O_CLOEXEC) < 0))
        _exit(1);
    close_range(lock >= 0 ? LOCK_FD + 1 : LOCK_FD, ~0U, 0);
    int sfd = signalfd(-1, &a->sigs, SFD_CLOEXEC);
    if (sfd < 0 || (sfd != SIG_FD && (dup3(sfd, SIG_FD, O_CLOEXEC) < 0 || close(sfd) < 0)))
        _exit(1);
}

/* The runtime runs until it exits ('k' from cstore's cancel, or a stop
 * signal, kills it first; a release 'r' here means cstore gave up on it). */
static void __attribute__((noreturn)) supervise_runtime(const reaper *a, pid_t rt)
{
    for (;;) {
        char cmd = 0;
        int ev = next_event(a, &cmd);
        if (ev < 0 && cmd == 'r') {
            kill_all();
            _exit(128 + SIGKILL);
        }
        if ((ev < 0 && cmd == 'k') || is_stop(ev)) {
            kill_all(); /* cstore's cancel gave up on the runtime */
            finish(a, 128 + SIGKILL);
        }
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
            if (p == rt) { /* anything the runtime left goes with it */
                kill_all();
                finish(a, decode_status(st));
            }
        }
    }
}

static void __attribute__((noreturn)) reaper_main(const reaper *a)
{
    sigprocmask(SIG_BLOCK, &a->sigs, NULL);
    /* SIGCHLD is at its default action (cmd/main.c sees to it): the
     * runtime's status is wanted, not auto-reaped away. */
    prctl(PR_SET_PDEATHSIG, SIGUSR2);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    setpgid(0, 0); /* a terminal's Ctrl-C reaches cstore only */
    setup_fds(a);  /* (our copy of cstore's end of the socket closed) */
    if (getppid() != a->parent)
        orphaned(a);
    wait_go(a);
    pid_t rt = spawn_child(a->argv);
    if (rt < 0)
        report_no_runtime(a);
    supervise_runtime(a, rt);
}

/* Closes end e of the first n channels of p. */
static void
close_pipe_ends(int p[3][2], int n, int e)
{
    for (int i = 0; i < n; i++)
        close(p[i][e]);
}

/* The runtime's stdout and stderr pipes, p[0] and p[1], and the control
 * socket, p[2] (cstore's end first): commands to the reaper, its status
 * back, and the end of either side's life. */
static int
make_pipes(int p[3][2], cs_error **err)
{
    for (int i = 0; i < 3; i++) {
        if ((i < 2 ? pipe2(p[i], O_CLOEXEC)
                   : socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p[i]))
            < 0) {
            int e = errno;
            close_pipe_ends(p, i, 0);
            close_pipe_ends(p, i, 1);
            return cs_err(err, CS_EIO, e, "pipe");
        }
    }
    return 0;
}

int
run_reaper_spawn(run *r, cs_error **err)
{
    cs_autoclose int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return cs_err(err, CS_EIO, errno, "open '/dev/null'");
    int p[3][2], rc = make_pipes(p, err);
    if (rc < 0)
        return rc;
    cs_autofree char *bundle = cs_path_join(r->dir, "bundle");
    cs_autofree char *log = cs_path_join(r->dir, "runc.log");
    cs_autofree char *cstate = cs_path_join(r->state, r->id);
    char *argv[] = {
        (char *) r->runtime, "--root", r->state, "--log", log, "--log-format", "json", "run",
        "--bundle",          bundle,   r->id,    NULL
    };
    cs_autofree char *msg =
        cs_xasprintf("cannot start '%s': not found or not executable", r->runtime);
    json_t *line = json_pack("{s:s, s:s}", "level", "error", "msg", msg);
    reaper a = { .argv = argv,
                 .delete_argv = { (char *) r->runtime, "--root", r->state, "delete", "--force",
                                  r->id, NULL },
                 .rootfs = r->rootfs,
                 .dir = r->dir,
                 .log = log,
                 .cstate = cstate,
                 .log_line = json_dumps(line, JSON_COMPACT),
                 .in = null,
                 .out = p[0][1],
                 .errfd = p[1][1],
                 .ctl = p[2][1],
                 .parent = getpid() };
    json_decref(line);
    cs_autofree char *log_line = cs_xasprintf("%s\n", a.log_line ? a.log_line : "{}");
    free(a.log_line);
    a.log_line = log_line;
    sigemptyset(&a.sigs);
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR2 };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&a.sigs, sigs[i]);
    /* Blocked across the fork: the reaper starts with them blocked, for its
     * signalfd. */
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &a.sigs, &old);
    pid_t pid = fork();
    int e = errno;
    if (pid == 0)
        reaper_main(&a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close_pipe_ends(p, 3, 1);
    if (pid < 0) {
        close_pipe_ends(p, 3, 0);
        return cs_err(err, CS_EIO, e, "fork the runtime's reaper");
    }
    setpgid(pid, pid); /* also here, so it holds before fork returns in both */
    r->reaper = pid;
    r->rt_fds[0] = p[0][0];
    r->rt_fds[1] = p[1][0];
    r->ctl = p[2][0];
    return 0;
}

/* One command byte to the reaper (nothing when it is gone). */
static void
ctl_send(run *r, char c)
{
    if (r->ctl >= 0)
        (void) send(r->ctl, &c, 1, MSG_NOSIGNAL); /* a dead reaper: its status says so */
}

void
run_reaper_go(run *r)
{
    ctl_send(r, 'g');
    r->started = true;
}

void
run_reaper_kill(run *r)
{
    ctl_send(r, 'k');
}

void
run_reaper_release(run *r)
{
    if (r->reaper > 0) {
        ctl_send(r, 'r');
        run_wait_status(r->reaper);
        r->reaper = 0;
    }
    if (r->ctl >= 0)
        close(r->ctl);
    r->ctl = -1;
}
