/* push_progress.c - a push's progress on stderr (see push_progress.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"
#include "push_progress.h"

#define VIEW_MAX    64 /* blobs drawn live; more are only counted */
#define REDRAW_SECS 0.1

typedef struct view_blob {
    char digest[20]; /* "sha256:" + 12 hex */
    char what[10];
    uint64_t size, done;
    double start;
    const char *state; /* "exists", "mounted from", "pushing", "pushed" */
    char from[80];     /* mounted from this repository */
} view_blob;

struct push_view {
    FILE *out; /* NULL: quiet */
    bool tty;
    view_blob blobs[VIEW_MAX];
    int n;
    int drawn; /* lines of the last frame */
    double last;
};

push_view *
push_view_new(cs_progress mode, FILE *out)
{
    push_view *v = cs_xcalloc(1, sizeof(*v));
    v->out = mode == CS_PROGRESS_QUIET ? NULL : out;
    v->tty = mode == CS_PROGRESS_AUTO && out && isatty(fileno(out));
    return v;
}

static view_blob *
view_find(push_view *v, const cs_push_event *ev)
{
    for (int i = 0; i < v->n; i++)
        if (strncmp(v->blobs[i].digest, ev->digest, sizeof(v->blobs[i].digest) - 1) == 0)
            return &v->blobs[i];
    if (v->n == VIEW_MAX)
        return NULL;
    view_blob *b = &v->blobs[v->n++];
    snprintf(b->digest, sizeof(b->digest), "%s", ev->digest);
    snprintf(b->what, sizeof(b->what), "%s", ev->what);
    b->size = ev->size;
    b->start = cs_now();
    return b;
}

static void
draw_bar(FILE *out, const view_blob *b)
{
    char done[CMD_SIZE_BUF], size[CMD_SIZE_BUF], rate[CMD_SIZE_BUF];
    double secs = cs_now() - b->start;
    int fill = b->size ? (int) (20 * b->done / b->size) : 20;
    fprintf(out, "\033[K%-8s %s [%.*s%*s] %s/%s %s/s\n", b->what, b->digest, fill,
            "====================", 20 - fill, "", cmd_human_size(b->done, done),
            cmd_human_size(b->size, size),
            cmd_human_size(secs > 0 ? (uint64_t) ((double) b->done / secs) : 0, rate));
}

static void
view_draw(push_view *v)
{
    if (v->drawn)
        fprintf(v->out, "\033[%dA", v->drawn);
    for (int i = 0; i < v->n; i++) {
        const view_blob *b = &v->blobs[i];
        if (strcmp(b->state, "pushing") == 0)
            draw_bar(v->out, b);
        else
            fprintf(v->out, "\033[K%-8s %s %s%s%s\n", b->what, b->digest, b->state,
                    b->from[0] ? " " : "", b->from);
    }
    v->drawn = v->n;
    fflush(v->out);
    v->last = cs_now();
}

static void
plain_line(push_view *v, const cs_push_event *ev)
{
    char size[CMD_SIZE_BUF], rate[CMD_SIZE_BUF];
    switch (ev->kind) {
    case CS_PUSH_EV_EXISTS:
        fprintf(v->out, "%s %s: exists\n", ev->what, ev->digest);
        break;
    case CS_PUSH_EV_MOUNTED:
        fprintf(v->out, "%s %s: mounted from %s\n", ev->what, ev->digest, ev->from);
        break;
    case CS_PUSH_EV_START:
        fprintf(v->out, "%s %s: pushing %s\n", ev->what, ev->digest,
                cmd_human_size(ev->size, size));
        break;
    case CS_PUSH_EV_DONE: {
        view_blob *b = view_find(v, ev);
        double secs = b ? cs_now() - b->start : 0;
        fprintf(v->out, "%s %s: pushed %s in %.2fs (%s/s)\n", ev->what, ev->digest,
                cmd_human_size(ev->done, size), secs,
                cmd_human_size(secs > 0 ? (uint64_t) ((double) ev->done / secs) : 0, rate));
        break;
    }
    case CS_PUSH_EV_MANIFEST:
        fprintf(v->out, "manifest %s: pushed\n", ev->digest);
        break;
    case CS_PUSH_EV_BYTES:
        break;
    }
}

void
push_view_event(void *ctx, const cs_push_event *ev)
{
    push_view *v = ctx;
    if (!v->out)
        return;
    if (!v->tty) {
        if (ev->kind == CS_PUSH_EV_START)
            view_find(v, ev); /* its start time, for the rate */
        plain_line(v, ev);
        return;
    }
    view_blob *b = view_find(v, ev);
    if (!b)
        return;
    static const char *const states[] = { "exists",  "mounted from", "pushing",
                                          "pushing", "pushed",       "pushed" };
    b->state = states[ev->kind];
    if (ev->kind == CS_PUSH_EV_MOUNTED)
        snprintf(b->from, sizeof(b->from), "%s", ev->from);
    if (ev->kind == CS_PUSH_EV_START)
        b->start = cs_now();
    if (ev->kind == CS_PUSH_EV_BYTES || ev->kind == CS_PUSH_EV_DONE)
        b->done = ev->done;
    if (ev->kind != CS_PUSH_EV_BYTES || cs_now() - v->last >= REDRAW_SECS)
        view_draw(v);
}

void
push_view_free(push_view *v)
{
    if (v && v->tty && v->n)
        view_draw(v);
    free(v);
}
