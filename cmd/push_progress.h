/* push_progress.h - how `cstore push` (and `build --push`) shows a push's
 * events: a line per event (plain), per-blob bars with bytes and rate
 * redrawn in place on a terminal (auto), or nothing (quiet). */
#ifndef CSTORE_CMD_PUSH_PROGRESS_H
#define CSTORE_CMD_PUSH_PROGRESS_H

#include <stdio.h>
#include "progress.h"
#include "regpush.h"

typedef struct push_view push_view;

/* A view for mode on out (stderr); pushes' events go to push_view_event
 * (a cs_push_progress_fn, ctx: the view). */
push_view *push_view_new(cs_progress mode, FILE *out);
void push_view_event(void *ctx, const cs_push_event *ev);
/* Finishes a live view (its last frame). NULL is fine. */
void push_view_free(push_view *v);

/* The options of one push: the connection's (reg: NULL for the defaults),
 * --format, --compression, and the view's callback (cmd_push_one sets its
 * view). */
void push_opts_init(cs_reg_push_opts *o, const cs_reg_opts *reg, cs_push_format fmt,
                    cs_compression c);
/* Pushes NAME to DEST (cs_reg_push) and prints the manifest digest on
 * digest_out; progress on stderr as mode says. */
int cmd_push_one(cs_store *s, const char *name, const char *dest, cs_progress mode,
                 cs_reg_push_opts *o, FILE *digest_out, cs_error **err);
/* `build --push`: pushes every -t name (as typed) with push's defaults;
 * the manifest digests go to stderr, stdout keeps the build's image id. */
int cmd_build_push(cs_store *s, char **tags, cs_progress mode, const cs_reg_opts *reg,
                   cs_error **err);

#endif
