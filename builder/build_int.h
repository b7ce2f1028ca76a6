/* build_int.h - internals shared by the build engine's files (build*.c);
 * not a public header (unit tests include it).
 *
 *   build.c          cs_build: read the Dockerfile, plan, build, commit
 *   build_plan.c     the stage plan and the cache-key chain
 *   build_stage.c    a stage's layers and merged tree, FROM, --from sources
 *   build_instr.c    one instruction: step, key, cache, history
 *   build_config.c   the image config and the metadata instructions
 *   build_copy.c     COPY / ADD and WORKDIR
 *   build_run.c      RUN
 *   build_progress.c progress events to the caller's callback, RUN output lines
 *   build_sched.c    the stages in parallel: a scheduler over the stage graph
 *
 * Threads (build_sched.c): each running stage has a thread of its own. What
 * a stage's thread touches: its bstage; other stages only once they are
 * ST_DONE (read-only but for the lazily built merged tree, made under
 * merged_mu); the build's counters, hits and progress under mu; snapshots
 * (get: per process, snapshot.h) under snap_mu; a RUN's adopt is in its
 * layer's write transaction, never under snap_mu. The store's cancel
 * flag is the build's own (cancel) while the stages run, so that a failing
 * stage stops the others; the caller's flag is mirrored into it.
 */
#ifndef CSBUILD_BUILD_INT_H
#define CSBUILD_BUILD_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include "build.h"
#include "cstore/buildcache.h"
#include "dockerfile.h"
#include "ignore.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum { ST_UNUSED, ST_NEEDED, ST_BUILDING, ST_DONE, ST_FAILED };

typedef struct bstage {
    const cs_df_stage *st;
    int state;
    char *label;         /* "build", "stage-1" */
    json_t *cfg;         /* image config being built */
    cs_digest *layers;   /* tree digests, bottom first */
    cs_digest *diff_ids; /* diff_ids of the inherited layers */
    size_t nlayers, ninherited, cap;
    cs_digest key;   /* cache chain */
    cs_tree *merged; /* lazily built merged tree of layers[0..nmerged) */
    size_t nmerged;
    struct merged_bg *bg; /* the merged tree being built in a thread, or NULL */
    cs_df_env *env;       /* expansion scope: ENV and ARG values */
    bool cmd_set;         /* CMD given in this stage (ENTRYPOINT keeps it) */
    cs_df *df;            /* the Dockerfile of the instruction running (an ONBUILD
                             trigger's own while it runs), borrowed */
    unsigned step;        /* the progress step running */
    size_t *deps;         /* stages this one needs done first (FROM, --from) */
    size_t ndeps;
    pthread_t thread;
    bool threaded; /* thread is to be joined */
} bstage;

typedef struct build {
    cs_store *s;
    cs_db *db;
    const cs_build_opts *o;
    cs_df *df;
    char *df_path;
    cs_df_env *global;
    cs_ignore *ignore;
    cs_digest ignore_id; /* sha256 of the ignore file's text (copy.h's summary) */
    bstage *st;
    size_t nst;
    size_t target; /* index of the stage to commit */
    char *created; /* timestamp for config and history */
    int64_t epoch; /* SOURCE_DATE_EPOCH or -1 */
    unsigned step;
    cs_build_result res;
    /* cache keys that hit, to refresh their last-used time at the end */
    cs_digest *hits;
    size_t nhits, caphits;
    /* Threads (build_sched.c): mu guards step, res, hits, the stages' state
     * and the progress callback; cv signals a stage's end. */
    pthread_mutex_t mu, snap_mu, merged_mu;
    pthread_cond_t cv;
    bool locks;        /* the mutexes are initialized */
    cs_cancel *cancel; /* the build's own flag while stages run */
    /* The target's new layers' diff ids, worked out in the background once
     * there is work and time for it: when a RUN's container starts (cstore
     * only waits on the runtime then) or the target gets a new layer after a
     * cache miss (NULL before; set under mu). Not at the miss itself: the
     * thread's first act, loading libarchive, maps and relocates, and beside
     * a COPY building its stage's merged tree (page faults) it slowed that by
     * a few ms (mmap_lock, TLB shootdowns). */
    struct cs_diffid_bg *diffs;
    bool missed; /* a cache lookup missed (under mu) */
    /* RUN instructions of the needed stages not yet reached (ONBUILD
     * triggers' may take it below 0): the last one keeps its overlay. */
    _Atomic long runs_left;
} build;

/* ---- build.c ---- */
/* Reads the Dockerfile and .dockerignore, plans the target's stages. On
 * failure b still needs build_release. */
int build_init(build *b, cs_store *s, const cs_build_opts *o, cs_error **err);
void build_release(build *b);
int build_stage(build *b, size_t idx, cs_error **err);
int line_err(build *b, const cs_df_instr *in, cs_error **err);
/* Starts b->diffs (libarchive loads there) unless started. */
void build_diffs_start(build *b);
/* layers[0..n) of stage idx: queued for their diff ids when idx is the
 * target and b->diffs runs. */
void build_diffs_add(build *b, size_t idx, const cs_digest *layers, size_t n);

/* ---- build_plan.c ---- */
/* Index of the stage a --from / FROM name refers to among stages before
 * `before`, -1 when it names none; -2 when it names a later stage. */
long stage_ref(build *b, const char *name, size_t before);
/* Marks stage i and every stage it needs ST_NEEDED, recording what it
 * needs in its deps. */
int plan(build *b, size_t i, cs_error **err);
/* The key chain: a length-prefixed string into the hash. */
void hash_str(cs_sha256_ctx *h, const char *s);
/* The key of a metadata instruction: the previous key, the instruction and
 * the scope it leaves (an ARG's value or an ENV's expansion changes what
 * follows). */
void key_metadata(const bstage *st, const cs_df_instr *in, cs_digest *out);
/* Adds d to the array (*v, *n) unless there (for cs_build_result). */
void build_note(build *b, cs_digest **v, size_t *n, const cs_digest *d);
/* Looks key up: 1 hit (*e filled, key remembered for the touch), 0 miss. */
int cache_lookup(build *b, const cs_digest *key, cs_cache_entry *e, cs_error **err);

/* ---- build_stage.c ---- */
void stage_release(bstage *st);
/* The stage's merged tree of all its layers: made now, or joined from the
 * thread stage_merged_start started (then brought up to the layers pushed
 * since). Borrowed until the stage is released. */
int stage_merged(build *b, bstage *st, const cs_tree **out, cs_error **err);
/* Starts making the stage's merged tree in a thread (its layers as they
 * are now), for a step that needs it later: a RUN after its command. Only
 * after a cache miss (a no-op rebuild builds no tree), on the stage's own
 * thread; nothing when the tree is made or being made. stage_merged joins
 * it; stage_release joins (and frees) one nobody asked for. */
void stage_merged_start(build *b, bstage *st);
/* Whether stage_merged would not wait for that thread (of the stage's own
 * thread, for a stage being built). */
bool stage_merged_ready(const bstage *st);
/* A stage's file system for a few lookups (a COPY's or WORKDIR's
 * destination): its merged tree when it is made and current, else a view of
 * its layers (cstore/merged.h) that neither builds nor waits for one. */
typedef struct stage_fs {
    const cs_tree *tree;
    struct cs_merged_view *view;
} stage_fs;
int stage_fs_open(build *b, bstage *st, stage_fs *fs, cs_error **err);
void stage_fs_close(stage_fs *fs);
/* cs_tree_resolve in the stage's file system. */
int stage_fs_resolve(stage_fs *fs, const char *path, bool follow_last, char **real,
                     const cs_entry **e, cs_error **err);
int stage_push_layer(build *b, bstage *st, const cs_digest *tree, cs_error **err);
/* The --build-context named `name` (the last given), or NULL. */
const cs_build_context *named_context(build *b, const char *name);
/* cs_lease_image after the --pull policy (build_pull.c). */
struct cs_image;
int build_lease_image(build *b, const char *name, struct cs_image **out, cs_error **err);
/* What a key needs of a named context: its image's id, or the digest of
 * every file of its directory (their contents are ingested). */
int named_context_key(build *b, const cs_build_context *nc, cs_digest *key, cs_error **err);
/* A --from's stage or image, resolved without loading its tree. */
typedef struct from_source {
    long stage;              /* its index, or -1 for an image */
    struct cs_image *img;    /* the image (leased), or NULL */
    const cs_digest *layers; /* borrowed from the stage or img */
    size_t nlayers;
    cs_digest key; /* what the cache key needs: the stage's key or the image id */
} from_source;
int source_resolve(build *b, bstage *st, const cs_df_instr *in, const char *what, const char *from,
                   from_source *out, cs_error **err);
void from_source_release(from_source *fs);
int source_load(build *b, const cs_df_instr *in, const from_source *fs, const cs_tree **t,
                cs_tree **own, cs_error **err);
/* source_resolve, then source_load. */
int source_tree(build *b, bstage *st, const cs_df_instr *in, const char *what, const char *from,
                const cs_tree **t, cs_tree **own, cs_digest *key, cs_error **err);
int lookup_user(build *b, const cs_tree *tree, const char *spec, uint32_t *uid, uint32_t *gid,
                cs_error **err);
int do_from(build *b, size_t idx, cs_error **err);

/* ---- build_instr.c ---- */
/* num/total: the step's place in its stage; total 0 for an ONBUILD trigger. */
int do_instr(build *b, bstage *st, const cs_df_instr *in, size_t num, size_t total, cs_error **err);

/* ---- build_config.c ---- */
json_t *obj(json_t *parent, const char *key);
json_t *strv_json(char *const *v, size_t n);
json_t *scratch_config(void);
void config_default_path(json_t *cfg);
void env_from_config(cs_df_env *env, json_t *cfg);
void add_history(build *b, bstage *st, const char *created_by, bool empty);
char *history_text(const cs_df_instr *in);
int do_metadata(build *b, bstage *st, const cs_df_instr *in, cs_error **err);

/* ---- build_copy.c ---- */
int do_copy(build *b, bstage *st, const cs_df_instr *in, cs_sha256_ctx *kh, cs_digest *key,
            bool *cached, cs_error **err);
int do_workdir(build *b, bstage *st, const cs_df_instr *in, cs_sha256_ctx *kh, cs_digest *key,
               bool *has_layer, bool *cached, cs_error **err);

/* ---- build_run.c ---- */
int run_argv(build *b, bstage *st, const cs_df_instr *in, char ***argv, cs_error **err);
int do_run(build *b, bstage *st, const cs_df_instr *in, cs_sha256_ctx *kh, cs_digest *key,
           bool *cached, cs_error **err);

/* ---- build_progress.c ---- */
/* Thread-safe (under b->mu): */
unsigned step_start(build *b, const char *fmt, ...) CS_PRINTF(2, 3);
void step_end(build *b, unsigned n, cs_build_event_kind kind, double secs);
void step_log(build *b, unsigned n, const char *fmt, ...) CS_PRINTF(3, 4);
void step_event(build *b, unsigned n, cs_build_event_kind kind, const char *text);
/* A RUN's output, when it is shown: the fd it writes to (*fd, -1 when not
 * shown). With a progress callback it is a pipe whose lines a thread turns
 * into RUN_LINE events of step n (BuildKit's "#N 0.123 line", so that
 * concurrent steps interleave readably); without one, output_fd itself.
 * step_output_end closes the pipe's write end fd and waits for the last
 * line (o NULL: nothing to do). */
typedef struct step_output step_output;
int step_output_begin(build *b, unsigned n, step_output **out, int *fd, cs_error **err);
void step_output_end(step_output *o, int fd);

/* ---- build_sched.c ---- */
/* Builds every ST_NEEDED stage up to the target, up to o->jobs at a time,
 * each in a thread once the stages it needs are done. The first failure is
 * returned; it cancels the stages still running (their RUNs are killed and
 * cleaned up) and starts no more. */
int sched_run(build *b, cs_error **err);
/* Makes sure stage idx is built before the caller uses it: waits for the
 * thread building it, or builds it in the calling thread when nothing
 * has started it (a stage only an ONBUILD trigger names). -CS_EINVAL when it
 * failed. */
int stage_await(build *b, size_t idx, cs_error **err);
void build_lock(build *b);
void build_unlock(build *b);

#endif
