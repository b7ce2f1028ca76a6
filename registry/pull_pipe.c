/* pull_pipe.c - the bounded pipe between a blob download and the ingest
 * (see pull_pipe.h). A ring buffer under a mutex: downloads arrive in
 * curl's 16 KiB pieces, the ingest reads up to its block size. */
#include "pull_pipe.h"

#include <errno.h>
#include <string.h>
#include "cstore/util.h"

void
pull_pipe_init(pull_pipe *p, size_t cap)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->rcv, NULL);
    pthread_cond_init(&p->wcv, NULL);
    p->cap = cap;
    p->buf = cs_xmalloc(cap);
}

void
pull_pipe_release(pull_pipe *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->rcv);
    pthread_cond_destroy(&p->wcv);
    free(p->buf);
    cs_error_free(p->err);
    p->buf = NULL;
    p->err = NULL;
}

int
pull_pipe_write(void *ctx, const void *buf, size_t n, cs_error **err)
{
    pull_pipe *p = ctx;
    const uint8_t *src = buf;
    pthread_mutex_lock(&p->mu);
    while (n && !p->aborted) {
        while (p->len == p->cap && !p->aborted) {
            p->wsleep = true;
            pthread_cond_wait(&p->wcv, &p->mu);
        }
        p->wsleep = false;
        if (p->aborted)
            break;
        size_t tail = (p->head + p->len) % p->cap;
        size_t k = p->cap - p->len;
        if (k > p->cap - tail)
            k = p->cap - tail;
        if (k > n)
            k = n;
        memcpy(p->buf + tail, src, k);
        p->len += k;
        src += k;
        n -= k;
        if (p->want && p->len >= p->want)
            pthread_cond_signal(&p->rcv);
    }
    bool aborted = p->aborted;
    pthread_mutex_unlock(&p->mu);
    if (aborted)
        return cs_err(err, CS_ECANCELED, 0, "download abandoned");
    return 0;
}

ssize_t
pull_pipe_read(void *ctx, void *buf, size_t n)
{
    pull_pipe *p = ctx;
    size_t want = n < p->cap / 4 ? n : p->cap / 4;
    pthread_mutex_lock(&p->mu);
    while (p->len < want && !p->eof && !p->aborted) {
        p->want = want;
        pthread_cond_wait(&p->rcv, &p->mu);
    }
    p->want = 0;
    ssize_t got = -1;
    if (p->len) {
        size_t k = p->len < n ? p->len : n;
        if (k > p->cap - p->head)
            k = p->cap - p->head;
        memcpy(buf, p->buf + p->head, k);
        p->head = (p->head + k) % p->cap;
        p->len -= k;
        got = (ssize_t) k;
        if (p->wsleep && p->cap - p->len >= p->cap / 4)
            pthread_cond_signal(&p->wcv);
    } else if (p->eof && !p->code) {
        got = 0;
    }
    pthread_mutex_unlock(&p->mu);
    if (got < 0)
        errno = EIO;
    return got;
}

void
pull_pipe_close(pull_pipe *p, int code, cs_error *err)
{
    pthread_mutex_lock(&p->mu);
    p->eof = true;
    p->code = code;
    p->err = err;
    pthread_cond_signal(&p->rcv);
    pthread_mutex_unlock(&p->mu);
}

void
pull_pipe_abort(pull_pipe *p)
{
    pthread_mutex_lock(&p->mu);
    p->aborted = true;
    pthread_cond_signal(&p->rcv);
    pthread_cond_signal(&p->wcv);
    pthread_mutex_unlock(&p->mu);
}
