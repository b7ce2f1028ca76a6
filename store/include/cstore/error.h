/* error.h - error chain: int return codes plus a message built outward.
 *
 * Functions return 0 (or a count) on success and -code on failure, filling
 * *err when err is not NULL. Each layer adds context once with cs_err_wrap;
 * only cmd/ prints err->msg. Thread rules: an error belongs to one thread.
 */
#ifndef CSTORE_ERROR_H
#define CSTORE_ERROR_H

#define CS_PRINTF(f, a) __attribute__((format(printf, f, a)))

typedef enum cs_code {
    CS_OK = 0,
    CS_EIO = 1,   /* a system call failed */
    CS_ENOTFOUND, /* no such image, tag, blob, file */
    CS_ECORRUPT,  /* stored data or input does not match its digest */
    CS_EFULL,     /* disk or map full */
    CS_EPARSE,    /* malformed input: JSON, tar, Dockerfile */
    CS_EINVAL,    /* bad argument or hostile input (path traversal...) */
    CS_EEXIST,    /* already exists */
    CS_EVERSION,  /* store made by an incompatible version */
    CS_EBUSY,     /* locked by another process */
    CS_EUNSUPPORTED,
    CS_ECANCELED, /* stopped by a cs_cancel (a signal) */
} cs_code;

typedef struct cs_error {
    cs_code code;
    int sys_errno; /* 0 unless a system call failed */
    char *msg;     /* "outer: inner: strerror" */
} cs_error;

/* Sets *err (if err and no error is set yet) and returns -c. When sys_errno is
 * non-zero, ": strerror(sys_errno)" is appended. */
int cs_err(cs_error **err, cs_code c, int sys_errno, const char *fmt, ...) CS_PRINTF(4, 5);
/* Prefixes "context: " to the message of *err and returns -(*err)->code
 * (-CS_EIO when *err is unset). */
int cs_err_wrap(cs_error **err, const char *fmt, ...) CS_PRINTF(2, 3);
void cs_error_free(cs_error *e);
/* The code for a failed system call's errno: ENOSPC and EDQUOT (a full disk)
 * are CS_EFULL, everything else CS_EIO. */
cs_code cs_sys_code(int e);
/* Frees *err and sets it to NULL. */
void cs_error_clear(cs_error **err);

#endif
