/* pull.c - `cstore pull`: the manifest resolved, the config fetched, the
 * layers the store lacks downloaded in parallel into bounded pipes and
 * ingested in order by the calling thread (see pull.h). */
#include "pull.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include "cstore/image.h"
#include "cstore/manifest.h"
#include "cstore/pull.h"
#include "pull_pipe.h"
#include "regref.h"

#define CONFIG_MAX  (8u << 20)
#define BYTES_EVERY (1u << 20) /* a BYTES event per MiB downloaded */

typedef struct dl_job {
    struct puller *p;
    size_t layer;
    char digest[CS_DIGEST_STR];
    int64_t size;
    pull_pipe pipe;
    bool own_thread; /* started on demand, outside the workers */
    pthread_t thread;
    uint64_t got, reported;
    cs_sha256_ctx *sha; /* of the bytes as downloaded */
} dl_job;

typedef struct puller {
    cs_registry *reg;
    const cs_pull_opts *o;
    cs_manifest *m;
    dl_job **job;   /* by layer; NULL: not scheduled */
    dl_job **queue; /* in layer order, for the workers */
    size_t nqueue, next;
    pthread_mutex_t mu;    /* queue */
    pthread_mutex_t ev_mu; /* progress events, one at a time */
    pthread_t *workers;
    size_t nworkers;
    dl_job *failed; /* the layer the ingest gave up on */
    atomic_uint_fast64_t downloaded;
    size_t known;
} puller;

void
cs_pull_result_release(cs_pull_result *r)
{
    free(r->tag);
    r->tag = NULL;
}

static void
emit(puller *p, cs_pull_ev_kind kind, size_t layer, const char *digest, uint64_t bytes,
     int64_t total, double seconds)
{
    if (!p->o->progress)
        return;
    cs_pull_event ev = { kind, layer, p->m ? p->m->n : 0, digest, bytes, total, seconds };
    pthread_mutex_lock(&p->ev_mu);
    p->o->progress(p->o->progress_ctx, &ev);
    pthread_mutex_unlock(&p->ev_mu);
}

/* ---- downloads ---- */

static int
job_sink(void *ctx, const void *buf, size_t n, cs_error **err)
{
    dl_job *j = ctx;
    int r = pull_pipe_write(&j->pipe, buf, n, err);
    if (r < 0)
        return r;
    cs_sha256_update(j->sha, buf, n);
    j->got += n;
    atomic_fetch_add(&j->p->downloaded, n);
    if (j->got - j->reported >= BYTES_EVERY) {
        j->reported = j->got;
        emit(j->p, CS_PULL_EV_BYTES, j->layer, j->digest, j->got, j->size, 0);
    }
    return 0;
}

/* The download's own digest check: the ingest checks it too, but a stream
 * that breaks its compression fails there first with a vaguer message. */
static int
job_verify(dl_job *j, cs_error **err)
{
    cs_digest got, want;
    cs_sha256_final(j->sha, &got);
    cs_digest_parse(j->digest, &want);
    if (cs_digest_eq(&got, &want))
        return 0;
    char gs[CS_DIGEST_STR];
    cs_digest_str(&got, gs);
    return cs_err(err, CS_ECORRUPT, 0, "blob %s: the registry sent bytes that do not match it (%s)",
                  j->digest, gs);
}

static void
job_run(dl_job *j)
{
    cs_error *e = NULL;
    double t0 = cs_now();
    emit(j->p, CS_PULL_EV_START, j->layer, j->digest, 0, j->size, 0);
    int r = cs_registry_get_blob(j->p->reg, j->digest, 0, job_sink, j, NULL, &e);
    if (r == 0)
        r = job_verify(j, &e);
    if (r == 0)
        emit(j->p, CS_PULL_EV_DONE, j->layer, j->digest, j->got, j->size, cs_now() - t0);
    pull_pipe_close(&j->pipe, r, e);
}

static void *
worker_main(void *arg)
{
    puller *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        dl_job *j = p->next < p->nqueue ? p->queue[p->next++] : NULL;
        pthread_mutex_unlock(&p->mu);
        if (!j)
            return NULL;
        job_run(j);
    }
}

static void *
own_main(void *arg)
{
    job_run(arg);
    return NULL;
}

static dl_job *
job_new(puller *p, size_t i)
{
    dl_job *j = cs_xcalloc(1, sizeof(*j));
    j->p = p;
    j->layer = i;
    cs_digest_str(&p->m->items[i].digest, j->digest);
    j->size = p->m->items[i].size;
    pull_pipe_init(&j->pipe, CS_PULL_PIPE);
    j->sha = cs_sha256_new();
    p->job[i] = j;
    return j;
}

/* Schedules every layer the store lacks (each blob once) and starts the
 * workers. Workers take layers in order, so the layer the ingest waits for
 * is always downloading: no deadlock on full pipes. */
static int
start_downloads(puller *p, const bool *known, cs_error **err)
{
    p->queue = cs_xcalloc(p->m->n ? p->m->n : 1, sizeof(dl_job *));
    for (size_t i = 0; i < p->m->n; i++) {
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = cs_digest_eq(&p->m->items[k].digest, &p->m->items[i].digest);
        if (!known[i] && !dup)
            p->queue[p->nqueue++] = job_new(p, i);
    }
    unsigned jobs = p->o->jobs ? p->o->jobs : 4;
    p->workers = cs_xcalloc(jobs, sizeof(pthread_t));
    for (size_t i = 0; i < jobs && i < p->nqueue; i++) {
        int rc = pthread_create(&p->workers[i], NULL, worker_main, p);
        if (rc)
            return cs_err(err, CS_EIO, rc, "pull: cannot start a download thread");
        p->nworkers++;
    }
    return 0;
}

/* Stops what still runs (abort: the ingest failed) and joins every thread. */
static void
stop_downloads(puller *p, bool abort)
{
    for (size_t i = 0; p->job && i < p->m->n; i++)
        if (p->job[i] && abort)
            pull_pipe_abort(&p->job[i]->pipe);
    if (abort) { /* workers not started on a job yet: none left to take */
        pthread_mutex_lock(&p->mu);
        p->next = p->nqueue;
        pthread_mutex_unlock(&p->mu);
    }
    for (size_t i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i], NULL);
    for (size_t i = 0; p->job && i < p->m->n; i++) {
        dl_job *j = p->job[i];
        if (j && j->own_thread)
            pthread_join(j->thread, NULL);
    }
}

/* ---- the ingest's source (cstore/pull.h) ---- */

static int
src_open(void *ctx, size_t i, cs_read_fn *rd, void **rctx, cs_error **err)
{
    puller *p = ctx;
    dl_job *j = p->job[i];
    if (!j) { /* the store had it when we looked, not any more: fetch it now */
        j = job_new(p, i);
        int rc = pthread_create(&j->thread, NULL, own_main, j);
        if (rc)
            return cs_err(err, CS_EIO, rc, "pull: cannot start a download thread");
        j->own_thread = true;
    }
    *rd = pull_pipe_read;
    *rctx = &j->pipe;
    return 0;
}

static void
src_close(void *ctx, size_t i, void *rctx, bool ok)
{
    puller *p = ctx;
    (void) rctx;
    if (!ok) {
        p->failed = p->job[i];
        pull_pipe_abort(&p->job[i]->pipe);
    }
}

static void
src_known(void *ctx, size_t i)
{
    puller *p = ctx;
    char d[CS_DIGEST_STR];
    cs_digest_str(&p->m->items[i].digest, d);
    p->known++;
    emit(p, CS_PULL_EV_KNOWN, i, d, 0, p->m->items[i].size, 0);
}

/* ---- manifest and config ---- */

/* The image manifest of ref: an index or list resolved to the platform. */
static int
resolve(puller *p, const char *object, cs_reg_manifest *raw, cs_error **err)
{
    int r = cs_registry_get_manifest(p->reg, object, raw, err);
    if (r == 0)
        r = cs_manifest_parse(raw->body, raw->len, raw->media_type, &p->m, err);
    if (r < 0 || !p->m->is_index)
        return r;
    cs_platform want;
    if (p->o->platform)
        r = cs_platform_parse(p->o->platform, &want, err);
    else
        cs_platform_host(&want);
    size_t i = 0;
    if (r == 0)
        r = cs_manifest_select(p->m, &want, &i, err);
    cs_platform_release(&want);
    if (r < 0)
        return r;
    char d[CS_DIGEST_STR];
    cs_digest_str(&p->m->items[i].digest, d);
    cs_manifest_free(p->m);
    p->m = NULL;
    cs_reg_manifest_release(raw);
    r = cs_registry_get_manifest(p->reg, d, raw, err);
    if (r == 0)
        r = cs_manifest_parse(raw->body, raw->len, raw->media_type, &p->m, err);
    if (r == 0 && p->m->is_index)
        r = cs_err(err, CS_EPARSE, 0, "manifest %s: an index inside an index", d);
    return r;
}

static int
config_sink(void *ctx, const void *buf, size_t n, cs_error **err)
{
    cs_buf *b = ctx;
    if (b->len + n > CONFIG_MAX)
        return cs_err(err, CS_EINVAL, 0, "config larger than %u bytes", CONFIG_MAX);
    cs_buf_append(b, buf, n);
    return 0;
}

/* ---- the pull ---- */

/* The registry's error, when the ingest failed reading a download (its own
 * message would only say "read error"). */
static int
download_error(puller *p, int r, cs_error **err)
{
    dl_job *j = p->failed;
    if (r >= 0 || !j || j->pipe.code >= 0 || j->pipe.code == -CS_ECANCELED || !j->pipe.err)
        return r;
    cs_error_clear(err);
    if (err) {
        *err = j->pipe.err;
        j->pipe.err = NULL;
    }
    return cs_err_wrap(err, "layer %s", j->digest);
}

static int
pull_layers(cs_store *s, puller *p, const cs_buf *config, const char *tag, cs_load_result *res,
            cs_error **err)
{
    p->job = cs_xcalloc(p->m->n ? p->m->n : 1, sizeof(dl_job *));
    bool *known = cs_xcalloc(p->m->n ? p->m->n : 1, sizeof(bool));
    int r = cs_pull_known(s, p->m, config->data, config->len, known, err);
    if (r == 0)
        r = start_downloads(p, known, err);
    free(known);
    cs_pull_source src = { src_open, src_close, src_known, p };
    if (r == 0)
        r = cs_pull_store(s, p->m, config->data, config->len, tag, &src, res, err);
    stop_downloads(p, r < 0);
    return download_error(p, r, err);
}

static void
puller_release(puller *p)
{
    for (size_t i = 0; p->job && i < p->m->n; i++)
        if (p->job[i]) {
            pull_pipe_release(&p->job[i]->pipe);
            cs_sha256_free(p->job[i]->sha);
            free(p->job[i]);
        }
    free(p->job);
    free(p->queue);
    free(p->workers);
    cs_manifest_free(p->m);
    cs_registry_free(p->reg);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->ev_mu);
}

static int
pull_ref(cs_store *s, const cs_reg_ref *ref, puller *p, cs_pull_result *out, cs_error **err)
{
    cs_reg_manifest raw = { 0 };
    int r = resolve(p, cs_reg_ref_object(ref), &raw, err);
    if (r == 0) {
        memcpy(out->manifest_digest, raw.digest, sizeof(out->manifest_digest));
        emit(p, CS_PULL_EV_RESOLVED, 0, raw.digest, 0, 0, 0);
    }
    cs_reg_manifest_release(&raw);
    cs_buf config;
    cs_buf_init(&config);
    char cd[CS_DIGEST_STR];
    if (r == 0) {
        cs_digest_str(&p->m->config.digest, cd);
        r = cs_registry_get_blob(p->reg, cd, 0, config_sink, &config, NULL, err);
    }
    cs_load_result res = { 0 };
    const char *tag = ref->digest ? NULL : ref->name;
    if (r == 0)
        r = pull_layers(s, p, &config, tag, &res, err);
    cs_buf_release(&config);
    if (r < 0)
        return r;
    out->id = res.id;
    out->tag = tag ? cs_xstrdup(tag) : NULL;
    out->layers = p->m->n;
    out->known = p->known;
    out->downloaded = atomic_load(&p->downloaded);
    cs_load_result_release(&res);
    return 0;
}

int
cs_pull(cs_store *s, const char *refstr, const cs_pull_opts *opts, cs_pull_result *out,
        cs_error **err)
{
    memset(out, 0, sizeof(*out));
    cs_reg_ref ref = { 0 };
    int r = cs_reg_ref_parse(refstr, &ref, err);
    if (r < 0)
        return r;
    puller p = { .o = opts };
    pthread_mutex_init(&p.mu, NULL);
    pthread_mutex_init(&p.ev_mu, NULL);
    r = cs_registry_open(ref.domain, ref.repo, CS_REG_PULL, &opts->reg, &p.reg, err);
    if (r == 0)
        r = pull_ref(s, &ref, &p, out, err);
    puller_release(&p);
    cs_reg_ref_release(&ref);
    if (r < 0)
        return cs_err_wrap(err, "pull %s", refstr);
    return 0;
}
