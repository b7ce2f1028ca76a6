/* cancel.c - a cancel flag with a self-pipe (see cstore/cancel.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "cstore/cancel.h"
#include "cstore/util.h"

struct cs_cancel {
    volatile sig_atomic_t reason;
    int holds;   /* atomic: __atomic builtins */
    int pipe[2]; /* [0] polls readable once triggered */
};

int
cs_cancel_new(cs_cancel **out, cs_error **err)
{
    cs_cancel *c = cs_xcalloc(1, sizeof(*c));
    if (pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        int e = errno;
        free(c);
        return cs_err(err, CS_EIO, e, "cancel pipe");
    }
    *out = c;
    return 0;
}

void
cs_cancel_free(cs_cancel *c)
{
    if (!c)
        return;
    close(c->pipe[0]);
    close(c->pipe[1]);
    free(c);
}

void
cs_cancel_trigger(cs_cancel *c, int reason)
{
    int e = errno; /* called from signal handlers */
    if (!c->reason)
        c->reason = reason > 0 ? reason : SIGTERM;
    ssize_t r = write(c->pipe[1], "x", 1); /* a full pipe is already readable */
    (void) r;
    errno = e;
}

int
cs_cancel_reason(const cs_cancel *c)
{
    return c ? c->reason : 0;
}

int
cs_cancel_fd(const cs_cancel *c)
{
    return c ? c->pipe[0] : -1;
}

int
cs_cancel_check(const cs_cancel *c, cs_error **err)
{
    int sig = cs_cancel_reason(c);
    if (!sig)
        return 0;
    const char *name = sigabbrev_np(sig);
    return cs_err(err, CS_ECANCELED, 0, "interrupted by signal %d (%s)", sig, name ? name : "?");
}

void
cs_cancel_hold(cs_cancel *c)
{
    if (c)
        __atomic_add_fetch(&c->holds, 1, __ATOMIC_SEQ_CST);
}

void
cs_cancel_unhold(cs_cancel *c)
{
    if (c)
        __atomic_sub_fetch(&c->holds, 1, __ATOMIC_SEQ_CST);
}

bool
cs_cancel_held(const cs_cancel *c)
{
    return c && __atomic_load_n(&c->holds, __ATOMIC_SEQ_CST) > 0;
}
