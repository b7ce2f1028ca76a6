/* progress.h - how `cstore build` shows a build's progress events: BuildKit's
 * plain lines, a live line per step on a terminal, or nothing. */
#ifndef CSTORE_CMD_PROGRESS_H
#define CSTORE_CMD_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>
#include "build.h"

typedef enum cs_progress {
    CS_PROGRESS_AUTO,  /* plain lines (a live view on a terminal) */
    CS_PROGRESS_PLAIN, /* BuildKit-style "#3 [build 2/4] COPY . ." lines */
    CS_PROGRESS_QUIET, /* nothing but the digest */
} cs_progress;

typedef struct cmd_progress {
    FILE *out; /* NULL: nothing shown */
    bool quiet;
    bool tty;      /* live view: one line per step, redrawn when it ends */
    char *running; /* the step being drawn (tty) */
    unsigned running_step;
} cmd_progress;

/* Sets up p for mode on out and points o's progress callback and RUN
 * output at it. */
void cmd_progress_init(cmd_progress *p, cs_progress mode, FILE *out, cs_build_opts *o);
/* Ends a live line left open by a failed step; frees p's strings. */
void cmd_progress_finish(cmd_progress *p);

#endif
