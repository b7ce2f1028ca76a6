/* error.c - the error chain (see cstore/error.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cstore/error.h"
#include "cstore/util.h"

int
cs_err(cs_error **err, cs_code c, int sys_errno, const char *fmt, ...)
{
    if (!err || *err)
        return -(int) c;
    cs_error *e = cs_xcalloc(1, sizeof(*e));
    e->code = c;
    e->sys_errno = sys_errno;
    va_list ap;
    va_start(ap, fmt);
    char *m = cs_xvasprintf(fmt, ap);
    va_end(ap);
    if (sys_errno) {
        e->msg = cs_xasprintf("%s: %s", m, strerror(sys_errno));
        free(m);
    } else {
        e->msg = m;
    }
    *err = e;
    return -(int) c;
}

int
cs_err_wrap(cs_error **err, const char *fmt, ...)
{
    if (!err || !*err)
        return -CS_EIO;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = cs_xvasprintf(fmt, ap);
    va_end(ap);
    char *m = cs_xasprintf("%s: %s", ctx, (*err)->msg);
    free(ctx);
    free((*err)->msg);
    (*err)->msg = m;
    return -(int) (*err)->code;
}

void
cs_error_free(cs_error *e)
{
    if (e)
        cs_free_all(e->msg, e);
}

void
cs_error_clear(cs_error **err)
{
    if (err) {
        cs_error_free(*err);
        *err = NULL;
    }
}

cs_code
cs_sys_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? CS_EFULL : CS_EIO;
}
