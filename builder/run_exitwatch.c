/* run_exitwatch.c - the moment a run's command has exited, before its runtime
 * has: runc exits some 2-4 ms after the container's init (its cleanup, then
 * the exit of a Go process's threads, then the reaper's wakeup), and the
 * upper dir is final from the init's exit on, since the container has its
 * own pid namespace: the kernel kills and reaps every other process of it
 * before the init's exit completes.
 *
 * The init's pid is runc's: its state.json (ROOT/tmp/runc/<id>/state.json,
 * written by rename before the command is let run) names it and its start
 * time. An inotify watch on the state root sees the container's dir made, a
 * second one on that dir sees state.json renamed into place; a pidfd then
 * becomes readable when the init exits. The pid is trusted only when the
 * process holding it after the pidfd was opened has the start time runc
 * recorded (as runc itself checks its init), so a pid reused since cannot be
 * taken for the init. Any failure (another runtime's layout, a parse error,
 * an init already reaped) only means the watch never fires: the caller then
 * learns of the end from the runtime's exit, as before. */
#include "run_int.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

void
run_exitwatch_start(run_exitwatch *w, const char *state_root, const char *id)
{
    *w = (run_exitwatch){ .ino = -1, .pidfd = -1 };
    if (getenv("CSTORE_TEST_NO_EXITWATCH")) /* test only: run_int.h */
        return;
    (void) mkdir(state_root, 0700); /* runc makes it too; the watch needs it first */
    w->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ino < 0)
        return;
    w->dir = cs_path_join(state_root, id);
    w->json = cs_path_join(w->dir, "state.json");
    w->id = cs_xstrdup(id);
    if (inotify_add_watch(w->ino, state_root, IN_CREATE | IN_ONLYDIR) < 0)
        run_exitwatch_release(w);
}

/* A small file as a NUL-terminated string in b; false when unreadable. */
static bool
read_small(const char *path, cs_buf *b)
{
    cs_error *tmp = NULL; /* unreadable: the watch just never fires */
    if (cs_read_file(path, 1 << 20, b, &tmp) < 0) {
        cs_error_clear(&tmp);
        return false;
    }
    cs_buf_u8(b, 0);
    return true;
}

/* Field 22 of /proc/pid/stat (the start time in clock ticks). */
static bool
proc_start_time(long pid, unsigned long long *out)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    cs_buf b;
    cs_buf_init(&b);
    bool ok = read_small(path, &b);
    char *p = ok ? strrchr((char *) b.data, ')') : NULL; /* the name may hold anything */
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    ok = p && sscanf(p + 1, "%llu", out) == 1;
    cs_buf_release(&b);
    return ok;
}

/* The init's pid and start time from runc's state.json. */
static bool
state_init(const char *json, pid_t *pid, unsigned long long *start)
{
    json_t *st = json_load_file(json, 0, NULL);
    json_t *p = json_object_get(st, "init_process_pid");
    json_t *t = json_object_get(st, "init_process_start");
    bool ok = json_is_integer(p) && json_integer_value(p) > 0 && json_integer_value(p) <= INT_MAX
              && json_is_integer(t) && json_integer_value(t) >= 0;
    if (ok) {
        *pid = (pid_t) json_integer_value(p);
        *start = (unsigned long long) json_integer_value(t);
    }
    json_decref(st);
    return ok;
}

/* state.json is there: the init's pidfd, checked against its start time. */
static void
open_init(run_exitwatch *w)
{
    pid_t pid;
    unsigned long long start, now;
    if (!state_init(w->json, &pid, &start))
        return;
    int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return;
    if (!proc_start_time((long) pid, &now) || now != start) {
        close(pidfd);
        return;
    }
    w->pidfd = pidfd;
    close(w->ino); /* the pidfd is all that is watched from here on */
    w->ino = -1;
}

/* Drains the inotify events: the container's dir made (watch it, and look
 * for state.json at once, in case it came first), state.json renamed in. */
static void
take_events(run_exitwatch *w)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    bool look = false;
    while (w->ino >= 0 && (n = read(w->ino, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *) p;
            if (ev->len && !w->watching && (ev->mask & IN_CREATE) && !strcmp(ev->name, w->id)) {
                w->watching = inotify_add_watch(w->ino, w->dir, IN_MOVED_TO | IN_CLOSE_WRITE) >= 0;
                look = w->watching;
            } else if (ev->len && w->watching && !strcmp(ev->name, "state.json")) {
                look = true;
            }
            p += sizeof *ev + ev->len;
        }
    }
    if (look)
        open_init(w);
}

int
run_exitwatch_fd(const run_exitwatch *w)
{
    if (w->fired)
        return -1;
    return w->pidfd >= 0 ? w->pidfd : w->ino;
}

bool
run_exitwatch_ready(run_exitwatch *w)
{
    if (w->fired)
        return false;
    if (w->pidfd < 0) {
        take_events(w);
        return false;
    }
    w->fired = true; /* the pidfd is readable: the init has exited */
    return true;
}

void
run_exitwatch_release(run_exitwatch *w)
{
    if (w->ino >= 0)
        close(w->ino);
    if (w->pidfd >= 0)
        close(w->pidfd);
    free(w->dir);
    free(w->json);
    free(w->id);
    *w = (run_exitwatch){ .ino = -1, .pidfd = -1, .fired = w->fired };
}
