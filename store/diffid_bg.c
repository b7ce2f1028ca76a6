/* diffid_bg.c - new layers' diff ids in a background thread (see
 * cstore/diffid_bg.h). */
#include "cstore/diffid_bg.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "commit_int.h"
#include "cstore/archive_dl.h"
#include "cstore/rcache.h"

enum { J_QUEUED, J_RUNNING, J_DONE, J_SKIPPED };

typedef struct job {
    cs_digest tree;
    int state;
    int r; /* J_DONE: 0 or the error's code (err holds its chain) */
    cs_layer_blob lb;
    bool fresh;
    cs_error *err;
} job;

struct cs_diffid_bg {
    cs_store *s;
    cs_db *db;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a job queued, a job done, stop */
    job *jobs;         /* queued in order; next: the first not looked at */
    size_t n, cap, next;
    bool stop;
    atomic_bool abort; /* the running tar write fails at its next block */
};

typedef struct bg_run {
    cs_diffid_bg *bg;
    cs_digest tree;
    cs_layer_blob lb;
    bool fresh, skipped;
} bg_run;

static int
run_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    bg_run *c = ctx;
    int r = cs_rcache_tree_have(db, txn, &c->tree, err);
    if (r < 0)
        return r;
    if (r != 1) { /* remote (or gone): the commit fetches and reports it */
        c->skipped = true;
        return 0;
    }
    return commit_diff_id_of(db, txn, &c->tree, &c->lb, &c->fresh, &c->bg->abort, err);
}

/* The next queued job, marked running; NULL once stopped. Under mu. */
static job *
next_job(cs_diffid_bg *bg, size_t *idx)
{
    for (;;) {
        while (!bg->stop && bg->next == bg->n)
            pthread_cond_wait(&bg->cv, &bg->mu);
        if (bg->stop)
            return NULL;
        job *j = &bg->jobs[bg->next++];
        if (j->state != J_QUEUED)
            continue; /* the commit took it first */
        j->state = J_RUNNING;
        *idx = (size_t) (j - bg->jobs);
        return j;
    }
}

static void *
bg_main(void *arg)
{
    cs_diffid_bg *bg = arg;
    cs_error *tmp = NULL;
    /* The dlopen, early: a job that needs libarchive reports a failure. */
    if (cs_archive_load("diff id", &tmp) < 0)
        cs_error_clear(&tmp);
    pthread_mutex_lock(&bg->mu);
    size_t idx;
    for (job *j; (j = next_job(bg, &idx));) {
        bg_run c = { .bg = bg, .tree = j->tree };
        pthread_mutex_unlock(&bg->mu);
        cs_error *err = NULL;
        int r = cs_db_read(bg->db, run_fn, &c, &err);
        pthread_mutex_lock(&bg->mu);
        j = &bg->jobs[idx]; /* the array may have moved */
        j->state = r == 0 && c.skipped ? J_SKIPPED : J_DONE;
        j->r = r < 0 ? r : 0;
        j->err = err;
        j->lb = c.lb;
        j->fresh = c.fresh;
        pthread_cond_broadcast(&bg->cv);
    }
    pthread_mutex_unlock(&bg->mu);
    return NULL;
}

int
cs_diffid_bg_start(cs_store *s, cs_diffid_bg **out, cs_error **err)
{
    cs_diffid_bg *bg = cs_xcalloc(1, sizeof(*bg));
    bg->s = s;
    bg->db = cs_store_db(s);
    pthread_mutex_init(&bg->mu, NULL);
    pthread_cond_init(&bg->cv, NULL);
    atomic_init(&bg->abort, false);
    int rc = pthread_create(&bg->thread, NULL, bg_main, bg);
    if (rc) {
        pthread_mutex_destroy(&bg->mu);
        pthread_cond_destroy(&bg->cv);
        free(bg);
        return cs_err(err, CS_EIO, rc, "start the diff id thread");
    }
    *out = bg;
    return 0;
}

/* The last job for tree, or NULL. Under mu. */
static job *
find_job(cs_diffid_bg *bg, const cs_digest *tree)
{
    for (size_t i = bg->n; i-- > 0;)
        if (cs_digest_eq(&bg->jobs[i].tree, tree))
            return &bg->jobs[i];
    return NULL;
}

void
cs_diffid_bg_add(cs_diffid_bg *bg, const cs_digest *tree)
{
    pthread_mutex_lock(&bg->mu);
    if (!find_job(bg, tree)) {
        if (bg->n == bg->cap) {
            bg->cap = bg->cap ? bg->cap * 2 : 8;
            bg->jobs = cs_xrealloc(bg->jobs, bg->cap * sizeof(job));
        }
        bg->jobs[bg->n++] = (job){ .tree = *tree, .state = J_QUEUED };
        pthread_cond_broadcast(&bg->cv);
    }
    pthread_mutex_unlock(&bg->mu);
}

int
diffid_bg_take(cs_diffid_bg *bg, const cs_digest *tree, cs_layer_blob *lb, bool *fresh,
               cs_error **err)
{
    pthread_mutex_lock(&bg->mu);
    job *j;
    while ((j = find_job(bg, tree)) && j->state == J_RUNNING)
        pthread_cond_wait(&bg->cv, &bg->mu);
    int r = 0;
    if (j && j->state == J_QUEUED) {
        j->state = J_SKIPPED; /* ours now: the thread passes it by */
    } else if (j && j->state == J_DONE && j->r < 0) {
        r = j->r;
        if (err && !*err)
            *err = cs_steal(&j->err);
        cs_error_clear(&j->err);
        j->state = J_SKIPPED; /* the chain is handed over once */
    } else if (j && j->state == J_DONE) {
        *lb = j->lb;
        *fresh = j->fresh;
        r = 1;
    }
    pthread_mutex_unlock(&bg->mu);
    return r;
}

void
cs_diffid_bg_settle(cs_diffid_bg *bg)
{
    pthread_mutex_lock(&bg->mu);
    while (bg->next < bg->n || (bg->n && bg->jobs[bg->next - 1].state == J_RUNNING))
        pthread_cond_wait(&bg->cv, &bg->mu);
    pthread_mutex_unlock(&bg->mu);
}

void
cs_diffid_bg_free(cs_diffid_bg *bg)
{
    if (!bg)
        return;
    pthread_mutex_lock(&bg->mu);
    bg->stop = true;
    atomic_store(&bg->abort, true);
    pthread_cond_broadcast(&bg->cv);
    pthread_mutex_unlock(&bg->mu);
    pthread_join(bg->thread, NULL);
    for (size_t i = 0; i < bg->n; i++)
        cs_error_free(bg->jobs[i].err);
    free(bg->jobs);
    pthread_mutex_destroy(&bg->mu);
    pthread_cond_destroy(&bg->cv);
    free(bg);
}
