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
    case CS_BUILD_RUN_LINE: /* BuildKit's: step, seconds into it, the line */
        fprintf(p->out, "#%u %.3f %s\n", ev->step, ev->seconds, ev->text);
        break;
    default:
        break;
    }
}

/* The outcome of a step: "CACHED", "ERROR" or "0.3s". */
static const char *
outcome(const cs_build_event *ev, char *buf, size_t n)
{
    if (ev->kind == CS_BUILD_STEP_DONE)
        snprintf(buf, n, "%.1fs", ev->seconds);
    else
        snprintf(buf, n, "%s", ev->kind == CS_BUILD_STEP_CACHED ? "CACHED" : "ERROR");
    return buf;
}

/* A live line "=> DESC" per step, redrawn with its outcome when it ends.
 * Steps of stages built in parallel: a step that starts while another is
 * drawn leaves that line as it is; a step that ends while another is drawn
 * gets a line "=> #N OUTCOME" of its own. */
static void
live(cmd_progress *p, const cs_build_event *ev)
{
    char o[32];
    switch (ev->kind) {
    case CS_BUILD_STEP_START:
        if (p->running)
            fputc('\n', p->out);
        free(p->running);
        p->running = cs_xstrdup(ev->text);
        p->running_step = ev->step;
        fprintf(p->out, "\033[34m => %s\033[0m", ev->text);
        break;
    case CS_BUILD_STEP_CACHED:
    case CS_BUILD_STEP_ERROR:
    case CS_BUILD_STEP_DONE:
        if (!p->running)
            return;
        if (ev->step && ev->step != p->running_step) {
            fprintf(p->out, "\r\033[K => #%u  %s\n\033[34m => %s\033[0m", ev->step,
                    outcome(ev, o, sizeof o), p->running);
            return;
        }
        fprintf(p->out, "\r\033[K => %s  %s\n", p->running, outcome(ev, o, sizeof o));
        free(p->running);
        p->running = NULL;
        break;
    case CS_BUILD_RUN_OUTPUT:
        if (p->running)
            fputc('\n', p->out); /* the command's output goes below its step line */
        break;
    case CS_BUILD_RUN_LINE:
        fprintf(p->out, "#%u %s\n", ev->step, ev->text);
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
