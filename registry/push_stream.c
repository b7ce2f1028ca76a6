/* push_stream.c - a layer blob generated in its own thread, read by the
 * upload (see push_stream.h). */
#include <pthread.h>
#include <string.h>
#include "push_stream.h"

struct push_stream {
    cs_push_image *img;
    uint32_t layer;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* data or room or the end: one condition for both sides */
    uint8_t *buf;      /* ring of PUSH_STREAM_BUF bytes */
    size_t head, len;
    bool eof;    /* the generator returned: rc, err */
    bool closed; /* the reader is gone: the generator's sink fails */
    int rc;
    cs_error *err;
};

static int
stream_sink(void *ctx, const void *p, size_t n, cs_error **err)
{
    push_stream *st = ctx;
    const uint8_t *src = p;
    pthread_mutex_lock(&st->mu);
    while (n > 0) {
        while (st->len == PUSH_STREAM_BUF && !st->closed)
            pthread_cond_wait(&st->cv, &st->mu);
        if (st->closed) {
            pthread_mutex_unlock(&st->mu);
            return cs_err(err, CS_ECANCELED, 0, "upload stopped");
        }
        size_t tail = (st->head + st->len) % PUSH_STREAM_BUF;
        size_t room = PUSH_STREAM_BUF - st->len;
        size_t k = n < room ? n : room;
        if (k > PUSH_STREAM_BUF - tail)
            k = PUSH_STREAM_BUF - tail;
        memcpy(st->buf + tail, src, k);
        st->len += k;
        src += k;
        n -= k;
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return 0;
}

static void *
stream_main(void *arg)
{
    push_stream *st = arg;
    cs_error *e = NULL;
    int rc = cs_push_layer_write(st->img, st->layer, stream_sink, st, &e);
    pthread_mutex_lock(&st->mu);
    st->eof = true;
    st->rc = rc;
    st->err = e;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

int
push_stream_start(cs_push_image *img, uint32_t i, push_stream **out, cs_error **err)
{
    push_stream *st = cs_xcalloc(1, sizeof(*st));
    st->img = img;
    st->layer = i;
    st->buf = cs_xmalloc(PUSH_STREAM_BUF);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    int rc = pthread_create(&st->th, NULL, stream_main, st);
    if (rc != 0) {
        pthread_cond_destroy(&st->cv);
        pthread_mutex_destroy(&st->mu);
        free(st->buf);
        free(st);
        return cs_err(err, CS_EIO, rc, "start a layer generator thread");
    }
    *out = st;
    return 0;
}

ssize_t
push_stream_read(void *ctx, void *buf, size_t n, cs_error **err)
{
    push_stream *st = ctx;
    pthread_mutex_lock(&st->mu);
    while (st->len == 0 && !st->eof)
        pthread_cond_wait(&st->cv, &st->mu);
    if (st->len == 0) {
        /* The end: the generator's verdict (a digest mismatch comes after
         * the last byte: the upload must not be completed then). */
        int rc = st->rc;
        if (rc < 0) {
            *err = st->err;
            st->err = NULL;
            if (!*err)
                rc = cs_err(err, CS_EIO, 0, "layer generator failed");
        }
        pthread_mutex_unlock(&st->mu);
        return rc < 0 ? rc : 0;
    }
    size_t k = n < st->len ? n : st->len;
    if (k > PUSH_STREAM_BUF - st->head)
        k = PUSH_STREAM_BUF - st->head;
    memcpy(buf, st->buf + st->head, k);
    st->head = (st->head + k) % PUSH_STREAM_BUF;
    st->len -= k;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return (ssize_t) k;
}

void
push_stream_close(push_stream *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->mu);
    st->closed = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->th, NULL);
    cs_error_free(st->err); /* the reader's failure came first: this one followed from it */
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st->buf);
    free(st);
}
