/* build_progress.c - the build's progress as events to the caller's
 * callback (cs_build_opts.progress); the library never prints. Events come
 * from every stage's thread: one at a time, under b->mu. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "build_int.h"

static void
emit(build *b, cs_build_event_kind kind, unsigned n, const char *text, double secs)
{
    if (!b->o->progress)
        return;
    cs_build_event ev = { kind, n, text, secs };
    build_lock(b);
    b->o->progress(b->o->progress_ctx, &ev);
    build_unlock(b);
}

/* Starts step N ("#3 [build 2/4] COPY app.go ." in the plain view). */
unsigned
step_start(build *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cs_autofree char *desc = cs_xvasprintf(fmt, ap);
    va_end(ap);
    /* Numbered and shown under one lock: step numbers appear in order. */
    build_lock(b);
    unsigned n = ++b->step;
    cs_build_event ev = { CS_BUILD_STEP_START, n, desc, 0 };
    if (b->o->progress)
        b->o->progress(b->o->progress_ctx, &ev);
    build_unlock(b);
    return n;
}

/* kind: STEP_CACHED, STEP_ERROR, or STEP_DONE in secs. */
void
step_end(build *b, unsigned n, cs_build_event_kind kind, double secs)
{
    emit(b, kind, n, NULL, secs);
}

void
step_log(build *b, unsigned n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cs_autofree char *line = cs_xvasprintf(fmt, ap);
    va_end(ap);
    emit(b, CS_BUILD_STEP_LOG, n, line, 0);
}

/* An event about step n (RUN_OUTPUT, RUN_TAIL). */
void
step_event(build *b, unsigned n, cs_build_event_kind kind, const char *text)
{
    emit(b, kind, n, text, 0);
}

/* ---- a RUN's output as lines ---- */

struct step_output {
    build *b;
    unsigned step;
    double t0;
    int rfd;
    pthread_t thread;
    cs_buf line;
};

static void
output_line(step_output *o)
{
    cs_buf_u8(&o->line, 0);
    emit(o->b, CS_BUILD_RUN_LINE, o->step, (const char *) o->line.data, cs_now() - o->t0);
    o->line.len = 0;
}

/* Reads the pipe to its end (every writer closed it): a line per event, a
 * last line without its newline too. */
static void *
output_pump(void *arg)
{
    step_output *o = arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(o->rfd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n')
                output_line(o);
            else
                cs_buf_u8(&o->line, (uint8_t) buf[i]);
        }
    }
    if (o->line.len)
        output_line(o);
    return NULL;
}

int
step_output_begin(build *b, unsigned n, step_output **out, int *fd, cs_error **err)
{
    *out = NULL;
    *fd = b->o->output_fd;
    if (b->o->output_fd < 0 || !b->o->progress)
        return 0;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return cs_err(err, cs_sys_code(errno), errno, "RUN output pipe");
    step_output *o = cs_xcalloc(1, sizeof *o);
    o->b = b;
    o->step = n;
    o->t0 = cs_now();
    o->rfd = p[0];
    cs_buf_init(&o->line);
    int e = pthread_create(&o->thread, NULL, output_pump, o);
    if (e) {
        close(p[0]);
        close(p[1]);
        free(o);
        return cs_err(err, CS_EIO, e, "RUN output thread");
    }
    *out = o;
    *fd = p[1];
    return 0;
}

/* fd is the write end step_output_begin gave: closed here. */
void
step_output_end(step_output *o, int fd)
{
    if (!o)
        return;
    close(fd);
    pthread_join(o->thread, NULL);
    close(o->rfd);
    cs_buf_release(&o->line);
    free(o);
}
