/* cancel.h - stopping long work from outside: a flag plus a wake-up fd.
 *
 * The library never installs signal handlers. cmd/ makes one cs_cancel,
 * attaches it to the store (cs_store_set_cancel) and triggers it from its own
 * SIGINT/SIGTERM handler; library code checks it between steps
 * (cs_cancel_check) and polls its fd where it waits (a running container).
 * Once triggered it stays triggered.
 * Thread rules: cs_cancel_trigger is async-signal-safe and may race with
 * every other function; new/free belong to the owner.
 */
#ifndef CSTORE_CANCEL_H
#define CSTORE_CANCEL_H

#include <stdbool.h>
#include "cstore/error.h"

typedef struct cs_cancel cs_cancel;

/* A new, untriggered flag (a pipe inside). */
int cs_cancel_new(cs_cancel **out, cs_error **err);
void cs_cancel_free(cs_cancel *c);
/* Triggers c; reason (a signal number, > 0) is kept from the first call. */
void cs_cancel_trigger(cs_cancel *c, int reason);
/* The reason c was triggered with, 0 when not triggered (or c is NULL). */
int cs_cancel_reason(const cs_cancel *c);
/* An fd that polls readable once c is triggered; -1 for NULL. Borrowed. */
int cs_cancel_fd(const cs_cancel *c);
/* Holding: while at least one hold is taken, work that watches c is in
 * flight, so a signal handler should trigger c and let that work stop
 * cleanly; with no hold it may as well take the signal's default action (an
 * LMDB transaction killed halfway leaves the store as it was). Holds nest and
 * may be taken from several threads. */
void cs_cancel_hold(cs_cancel *c);
void cs_cancel_unhold(cs_cancel *c);
/* Async-signal-safe: is any hold taken? (false for NULL) */
bool cs_cancel_held(const cs_cancel *c);
/* 0, or -CS_ECANCELED with "interrupted by signal N" when triggered. */
int cs_cancel_check(const cs_cancel *c, cs_error **err);

#endif
