/* build_progress.c - the build's progress as events to the caller's
 * callback (cs_build_opts.progress); the library never prints. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "build_int.h"

static void
emit(build *b, cs_build_event_kind kind, unsigned n, const char *text, double secs)
{
    if (!b->o->progress)
        return;
    cs_build_event ev = { kind, n, text, secs };
    b->o->progress(b->o->progress_ctx, &ev);
}

/* Starts step N ("#3 [build 2/4] COPY app.go ." in the plain view). */
unsigned
step_start(build *b, const char *fmt, ...)
{
    unsigned n = ++b->step;
    va_list ap;
    va_start(ap, fmt);
    cs_autofree char *desc = cs_xvasprintf(fmt, ap);
    va_end(ap);
    emit(b, CS_BUILD_STEP_START, n, desc, 0);
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

/* An event about the current step (RUN_OUTPUT, RUN_TAIL). */
void
step_event(build *b, cs_build_event_kind kind, const char *text)
{
    emit(b, kind, b->step, text, 0);
}
