/* regpush.c - an image of the store into a registry (see regpush.h). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "cstore/blobrepo.h"
#include "push_stream.h"
#include "regpush.h"

#define PUSH_JOBS_DEFAULT 4
#define PUSH_JOBS_MAX     16
#define PROGRESS_STEP     (256u << 10)

/* One blob to push. */
typedef struct job {
    const cs_push_blob *b;
    uint32_t layer; /* CONFIG for the config */
    char digest[CS_DIGEST_STR];
    bool in_repo; /* the repository has it now (for blob_repos) */
} job;
#define CONFIG UINT32_MAX

typedef struct push_run {
    cs_store *s;
    cs_push_image *img;
    cs_registry *r;
    cs_reg_ref ref;
    const cs_reg_push_opts *o;
    job *jobs;
    size_t njobs;
    pthread_mutex_t mu; /* next, rc, err, the result's counters, progress calls */
    size_t next;
    int rc;
    cs_error *err; /* the first failure */
    cs_reg_push_result *res;
} push_run;

static void
emit(push_run *run, const cs_push_event *ev)
{
    if (!run->o->progress)
        return;
    pthread_mutex_lock(&run->mu);
    run->o->progress(run->o->progress_ctx, ev);
    pthread_mutex_unlock(&run->mu);
}

static const char *
job_what(const job *j)
{
    return j->layer == CONFIG ? "config" : "layer";
}

static void
emit_job(push_run *run, const job *j, cs_push_ev_kind kind, uint64_t done, const char *from)
{
    cs_push_event ev = { kind, j->digest, job_what(j), j->b->size, done, from };
    emit(run, &ev);
}

/* ---- the upload body: the config from memory, a layer from its generator ---- */

typedef struct source {
    push_run *run;
    const job *j;
    push_stream *st; /* a layer */
    const char *mem; /* the config */
    size_t pos;
    uint64_t sent, shown;
} source;

static ssize_t
source_read(void *ctx, void *buf, size_t n, cs_error **err)
{
    source *src = ctx;
    ssize_t k;
    if (src->st) {
        k = push_stream_read(src->st, buf, n, err);
    } else {
        size_t left = src->j->b->size - src->pos;
        k = (ssize_t) (n < left ? n : left);
        memcpy(buf, src->mem + src->pos, (size_t) k);
        src->pos += (size_t) k;
    }
    if (k > 0) {
        src->sent += (uint64_t) k;
        if (src->sent - src->shown >= PROGRESS_STEP) {
            src->shown = src->sent;
            emit_job(src->run, src->j, CS_PUSH_EV_BYTES, src->sent, NULL);
        }
    }
    return k;
}

static int
upload(push_run *run, job *j, cs_error **err)
{
    source src = { .run = run, .j = j };
    int rc = 0;
    if (j->layer == CONFIG) {
        size_t len;
        cs_push_image_config(run->img, &src.mem, &len);
    } else {
        rc = push_stream_start(run->img, j->layer, &src.st, err);
    }
    if (rc < 0)
        return rc;
    emit_job(run, j, CS_PUSH_EV_START, 0, NULL);
    rc = cs_registry_put_blob(run->r, j->digest, (int64_t) j->b->size, source_read, &src, err);
    push_stream_close(src.st);
    if (rc < 0)
        return rc;
    emit_job(run, j, CS_PUSH_EV_DONE, src.sent, NULL);
    pthread_mutex_lock(&run->mu);
    run->res->uploaded++;
    run->res->bytes_sent += src.sent;
    pthread_mutex_unlock(&run->mu);
    return 0;
}

/* A mount from another repository of this registry where the store knows
 * the blob. *done false: no such repository, or the registry declined. */
static int
try_mount(push_run *run, job *j, bool *done, cs_error **err)
{
    *done = false;
    cs_autofree char *from = NULL;
    int rc = cs_blob_repo_find(run->s, &j->b->digest, run->ref.domain, run->ref.repo, &from, err);
    if (rc == -CS_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    rc = cs_registry_mount_blob(run->r, j->digest, from, done, err);
    if (rc == 0 && *done) {
        emit_job(run, j, CS_PUSH_EV_MOUNTED, 0, from);
        pthread_mutex_lock(&run->mu);
        run->res->mounted++;
        pthread_mutex_unlock(&run->mu);
    }
    return rc;
}

/* HEAD, else mount, else upload. */
static int
push_blob(push_run *run, job *j, cs_error **err)
{
    bool exists = false;
    int64_t size = -1;
    int rc = cs_registry_head_blob(run->r, j->digest, &exists, &size, err);
    if (rc < 0)
        return rc;
    if (exists && (size < 0 || (uint64_t) size == j->b->size)) {
        emit_job(run, j, CS_PUSH_EV_EXISTS, 0, NULL);
        pthread_mutex_lock(&run->mu);
        run->res->existed++;
        pthread_mutex_unlock(&run->mu);
        j->in_repo = true;
        return 0;
    }
    bool mounted;
    rc = try_mount(run, j, &mounted, err);
    if (rc == 0 && !mounted)
        rc = upload(run, j, err);
    if (rc == 0)
        j->in_repo = true;
    return rc;
}

/* ---- the workers ---- */

/* The first failure is the push's; one that came at the same time is most
 * often the same failure seen by another blob (the registry went away, the
 * credentials are refused for every blob): one of the same code is dropped,
 * another is a warning. */
static void
fail(push_run *run, const job *j, int rc, cs_error **e)
{
    pthread_mutex_lock(&run->mu);
    bool first = run->rc == 0;
    bool same = !first && run->rc == rc;
    char what[40];
    snprintf(what, sizeof(what), "%s %.19s", job_what(j), j->digest);
    cs_err_wrap(e, "%s", what);
    if (first) {
        run->rc = rc;
        run->err = *e;
        *e = NULL;
    } else if (same) {
        cs_error_clear(e);
    }
    pthread_mutex_unlock(&run->mu);
    if (*e)
        cs_store_warn_error(run->s, "also", e);
}

static void *
worker(void *arg)
{
    push_run *run = arg;
    for (;;) {
        pthread_mutex_lock(&run->mu);
        job *j = run->rc == 0 && run->next < run->njobs ? &run->jobs[run->next++] : NULL;
        pthread_mutex_unlock(&run->mu);
        if (!j)
            return NULL;
        cs_error *e = NULL;
        int rc = push_blob(run, j, &e);
        if (rc < 0)
            fail(run, j, rc, &e);
    }
}

static int
run_workers(push_run *run, cs_error **err)
{
    int n = run->o->jobs > 0 ? run->o->jobs : PUSH_JOBS_DEFAULT;
    if (n > PUSH_JOBS_MAX)
        n = PUSH_JOBS_MAX;
    if ((size_t) n > run->njobs)
        n = (int) run->njobs;
    pthread_t th[PUSH_JOBS_MAX];
    int started = 0;
    for (; started < n - 1; started++) {
        int rc = pthread_create(&th[started], NULL, worker, run);
        if (rc != 0) {
            cs_error *tmp = NULL;
            cs_err(&tmp, CS_EIO, rc, "start a push thread");
            cs_store_warn_error(run->s, "fewer blobs at once", &tmp);
            break;
        }
    }
    worker(run); /* this thread is one of them */
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (run->rc < 0) {
        *err = run->err;
        run->err = NULL;
        return run->rc;
    }
    return 0;
}

/* ---- the push ---- */

/* Every distinct layer blob, then the config. */
static void
plan_jobs(push_run *run)
{
    uint32_t n = cs_push_image_nlayers(run->img);
    run->jobs = cs_xcalloc(n + 1, sizeof(*run->jobs));
    for (uint32_t i = 0; i < n; i++) {
        const cs_push_blob *b = cs_push_image_layer(run->img, i);
        if (b->dup)
            continue;
        job *j = &run->jobs[run->njobs++];
        j->b = b;
        j->layer = i;
        cs_digest_str(&b->digest, j->digest);
    }
    const char *data;
    size_t len;
    job *j = &run->jobs[run->njobs++];
    j->b = cs_push_image_config(run->img, &data, &len);
    j->layer = CONFIG;
    cs_digest_str(&j->b->digest, j->digest);
}

/* The blobs now in the repository, for later mounts: one transaction; a
 * failure only costs a later push its mount, so it is a warning. */
static void
record_blobs(push_run *run)
{
    cs_blob_repo *v = cs_xcalloc(run->njobs ? run->njobs : 1, sizeof(*v));
    size_t n = 0;
    uint32_t nl = cs_push_image_nlayers(run->img);
    for (size_t i = 0; i < run->njobs; i++) {
        const job *j = &run->jobs[i];
        if (!j->in_repo || (j->layer == CONFIG && nl == 0))
            continue;
        /* The config goes with the image's top layer: gc drops it with that tree. */
        const cs_push_blob *b = j->layer == CONFIG ? cs_push_image_layer(run->img, nl - 1) : j->b;
        v[n++] = (cs_blob_repo){ j->b->digest, b->tree, run->ref.domain, run->ref.repo };
    }
    cs_error *tmp = NULL;
    if (cs_blob_repos_put(run->s, v, n, &tmp) < 0)
        cs_store_warn_error(run->s, "recording where the layers were pushed", &tmp);
    free(v);
}

static int
put_manifest(push_run *run, const char *tag, cs_error **err)
{
    size_t len;
    cs_push_blob d;
    const char *body = cs_push_image_manifest(run->img, &len, &d);
    char want[CS_DIGEST_STR], got[72] = "";
    cs_digest_str(&d.digest, want);
    int rc = cs_registry_put_manifest(run->r, tag, d.media_type, body, len, got, err);
    if (rc < 0)
        return cs_err_wrap(err, "manifest");
    if (got[0] && strcmp(got, want) != 0)
        return cs_err(err, CS_ECORRUPT, 0, "manifest: the registry has %s, not %s", got, want);
    snprintf(run->res->digest, sizeof(run->res->digest), "%s", want);
    cs_push_event ev = { CS_PUSH_EV_MANIFEST, want, "manifest", len, len, NULL };
    emit(run, &ev);
    return 0;
}

static int
parse_dest(const char *dest, cs_reg_ref *ref, cs_error **err)
{
    int rc = cs_reg_ref_parse(dest, ref, err);
    if (rc < 0)
        return rc;
    if (!ref->tag)
        return cs_err(err, CS_EINVAL, 0, "'%s': push needs a tag, not a digest", dest);
    return 0;
}

int
cs_reg_push(cs_store *s, const char *name, const char *dest, const cs_reg_push_opts *opts,
            cs_reg_push_result *out, cs_error **err)
{
    push_run run = { .s = s, .o = opts, .res = out };
    memset(out, 0, sizeof(*out));
    pthread_mutex_init(&run.mu, NULL);
    int rc = parse_dest(dest, &run.ref, err);
    if (rc == 0)
        rc = cs_push_image_open(s, name, opts->format, opts->compression, &run.img, err);
    if (rc == 0)
        rc = cs_registry_open(run.ref.domain, run.ref.repo, CS_REG_PULL | CS_REG_PUSH, &opts->reg,
                              &run.r, err);
    /* One ping first: an unreachable registry or a refused login is one
     * error, not one per blob in flight, and comes before the layers are
     * generated. */
    if (rc == 0)
        rc = cs_registry_ping(run.r, err);
    if (rc == 0)
        rc = cs_push_image_prepare(run.img, err);
    if (rc == 0) {
        plan_jobs(&run);
        rc = run_workers(&run, err);
        record_blobs(&run);
    }
    if (rc == 0)
        rc = put_manifest(&run, run.ref.tag, err);
    if (rc < 0)
        cs_err_wrap(err, "push '%s' to '%s'", name, dest);
    cs_registry_free(run.r);
    cs_push_image_free(run.img);
    cs_reg_ref_release(&run.ref);
    free(run.jobs);
    pthread_mutex_destroy(&run.mu);
    return rc;
}
