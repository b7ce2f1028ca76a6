/* progress.c - rendering build progress events (see progress.h). */
#include <stdlib.h>
#include <unistd.h>
#include "cstore/util.h"
#include "progress.h"

static void
plain(cmd_progress *p, const cs_build_event *ev)
{
    switch (ev->kind) {
    case CS_BUILD_STEP_START:
    case CS_BUILD_STEP_LOG:
        fprintf(p->out, "#%u %s\n", ev->step, ev->text);
        break;
    case CS_BUILD_STEP_CACHED:
        fprintf(p->out, "#%u CACHED\n\n", ev->step);
        break;
    case CS_BUILD_STEP_ERROR:
        fprintf(p->out, "#%u ERROR\n\n", ev->step);
        break;
    case CS_BUILD_STEP_DONE:
        fprintf(p->out, "#%u DONE %.1fs\n\n", ev->step, ev->seconds);
        break;
    default:
        break;
    }
}

/* A live line "=> DESC" per step, redrawn with its outcome when it ends. */
static void
live(cmd_progress *p, const cs_build_event *ev)
{
    switch (ev->kind) {
    case CS_BUILD_STEP_START:
        free(p->running);
        p->running = cs_xstrdup(ev->text);
        fprintf(p->out, "\033[34m => %s\033[0m", ev->text);
        break;
    case CS_BUILD_STEP_CACHED:
    case CS_BUILD_STEP_ERROR:
    case CS_BUILD_STEP_DONE:
        if (!p->running)
            return;
        if (ev->kind == CS_BUILD_STEP_DONE)
            fprintf(p->out, "\r\033[K => %s  %.1fs\n", p->running, ev->seconds);
        else
            fprintf(p->out, "\r\033[K => %s  %s\n", p->running,
                    ev->kind == CS_BUILD_STEP_CACHED ? "CACHED" : "ERROR");
        free(p->running);
        p->running = NULL;
        break;
    case CS_BUILD_RUN_OUTPUT:
        if (p->running)
            fputc('\n', p->out); /* the command's output goes below its step line */
        break;
    default:
        break;
    }
}

static void
on_event(void *ctx, const cs_build_event *ev)
{
    cmd_progress *p = ctx;
    if (ev->kind == CS_BUILD_RUN_TAIL) { /* not shown as it ran: now */
        fprintf(stderr, "%s", ev->text);
        return;
    }
    if (p->quiet || !p->out)
        return;
    if (p->tty)
        live(p, ev);
    else
        plain(p, ev);
    fflush(p->out); /* each step shows as it happens */
}

void
cmd_progress_init(cmd_progress *p, cs_progress mode, FILE *out, cs_build_opts *o)
{
    p->out = out;
    p->quiet = mode == CS_PROGRESS_QUIET;
    p->tty = mode == CS_PROGRESS_AUTO && out && isatty(fileno(out));
    p->running = NULL;
    o->progress = on_event;
    o->progress_ctx = p;
    o->output_fd = p->quiet || !out ? -1 : fileno(out);
}

void
cmd_progress_finish(cmd_progress *p)
{
    if (p->tty && p->running) { /* a step that failed: end its live line */
        cs_build_event ev = { CS_BUILD_STEP_ERROR, 0, NULL, 0 };
        live(p, &ev);
    }
    free(p->running);
    p->running = NULL;
}
