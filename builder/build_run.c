/* build_run.c - the RUN step: its command, environment and mounts into the
 * cache key; on a miss the command runs on the stage's layers (run.c) and
 * what it changed becomes a layer (snapshot.c). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include "build_int.h"
#include "build_secret.h"
#include "cstore/fuse.h"
#include "cstore/lease.h"
#include "cstore/oneshot.h"
#include "cstore/snapshot.h"
#include "cstore/strv.h"
#include "run.h"
#include "run_mountflags.h"

/* Everything a RUN step holds until it ends. */
typedef struct run_step {
    char **argv, **env;
    const char *user, *wd; /* borrowed from the config */
    bool net_none;
    cs_runmount *mounts;
    size_t nm;
    cs_run_mount *rm; /* mounts as the runtime takes them (nrm: without the
                         secrets and sockets not given) */
    size_t nrm;
    char **mdirs;           /* their host dirs */
    cs_buf *secrets;        /* the values of secret mounts (wiped at the end) */
    cs_strv lowers;         /* snapshot dirs of the layers, bottom first */
    cs_strv hosts;          /* --add-host as /etc/hosts lines */
    cs_run_rlimit *rlimits; /* --ulimit */
    size_t nrlimits;
    const cs_tree *merged;
    uint32_t uid, gid;
    char *script;        /* a shebang heredoc's body (run_shebang) */
    char *script_target; /* where it is mounted: /dev/pipes/NAME */
    cs_run_result res;
    step_output *out; /* the output's pump, ended after the layer (run_exec) */
    int out_fd;
    bool last; /* no RUN of the build comes after this one */
    /* The layer's ingest, begun as the command exited while the runtime was
     * still winding down (cs_run_opts.on_exit: run_layer_begin), committed by
     * run_layer when the run succeeded, else dropped (run_step_release). */
    build *b;
    bstage *st;
    const cs_digest *key;
    cs_ingest *ing;
    cs_digest tree;
    bool begun; /* run_layer_begin ran: ing and tree, or err */
    int begin_rc;
    cs_error *begin_err;
} run_step;

/* The RUN's output lines all emitted (before its step ends or fails). */
static void
run_output_end(run_step *r)
{
    step_output_end(r->out, r->out_fd);
    r->out = NULL;
}

static void
run_step_release(build *b, run_step *r)
{
    if (r->res.upper) { /* not adopted: it holds nothing the store needs */
        cs_error *tmp = NULL;
        if (cs_rm_tree(r->res.upper, NULL, &tmp) < 0)
            cs_store_warn_error(b->s, "remove the RUN's upper dir", &tmp);
    }
    cs_ingest_free(r->ing); /* one not committed is aborted */
    cs_error_free(r->begin_err);
    cs_run_result_release(&r->res);
    cs_strv_release(&r->lowers);
    cs_strv_release(&r->hosts);
    free(r->rlimits);
    for (size_t i = 0; i < r->nm; i++) {
        cs_runmount_release(&r->mounts[i]);
        free(r->mdirs ? r->mdirs[i] : NULL);
        if (r->secrets)
            build_secret_wipe(&r->secrets[i]);
    }
    free(r->secrets);
    free(r->mounts);
    free(r->mdirs);
    free(r->rm);
    cs_strv_free(r->argv);
    cs_strv_free(r->env);
    cs_free_all(r->script, r->script_target);
}

/* "RUN <<EOF" whose one heredoc is the whole command and starts with "#!":
 * BuildKit writes the body (tabs stripped for <<-, nothing expanded) to a
 * file NAME, 0755, mounted read-only in /dev/pipes/, and runs that file
 * instead of a shell (dockerfile2llb's dispatchRun). *body is NULL for any
 * other RUN; else it and *target are malloc'd. */
static int
run_shebang(build *b, bstage *st, const cs_df_instr *in, char **body, char **target, cs_error **err)
{
    *body = *target = NULL;
    const cs_df_heredoc *h = !in->json && in->nargs == 1 && in->nheredocs == 1
                                 ? cs_df_heredoc_for_arg(in, in->args[0])
                                 : NULL;
    char *s = NULL;
    if (h && cs_df_heredoc_body(st->df, in, h, NULL, &s, err) < 0)
        return line_err(b, in, err);
    if (!s || strncmp(s, "#!", 2)) {
        free(s);
        return 0;
    }
    *body = s;
    *target = cs_xasprintf("/dev/pipes/%s", h->name);
    return 0;
}

/* The command RUN executes: exec form as is; shell form through the stage's
 * SHELL, heredocs made into one script as BuildKit does. */
int
run_argv(build *b, bstage *st, const cs_df_instr *in, char ***argv, cs_error **err)
{
    cs_strv v = { 0 };
    if (in->json) {
        for (size_t i = 0; i < in->nargs; i++)
            cs_strv_add(&v, in->args[i]);
        *argv = cs_strv_take(&v);
        return 0;
    }
    cs_autofree char *body = NULL;
    char *target = NULL;
    int rc = run_shebang(b, st, in, &body, &target, err);
    if (rc < 0)
        return rc;
    if (target) { /* the file runs itself: no shell */
        cs_strv_push(&v, target);
        *argv = cs_strv_take(&v);
        return 0;
    }
    char *script = NULL;
    if (cs_df_run_script(st->df, in, &script, err) < 0)
        return line_err(b, in, err);
    json_t *shell = json_object_get(json_object_get(st->cfg, "config"), "Shell");
    size_t ns = json_array_size(shell);
    for (size_t i = 0; i < ns; i++)
        cs_strv_add(&v, json_string_value(json_array_get(shell, i)) ?: "");
    if (!ns) {
        cs_strv_add(&v, "/bin/sh");
        cs_strv_add(&v, "-c");
    }
    cs_strv_push(&v, script);
    *argv = cs_strv_take(&v);
    return 0;
}

/* KEY=VALUE for every ENV and ARG in scope, HOME added as Docker does. */
static char **
run_env(bstage *st)
{
    cs_strv v = { 0 };
    bool home = false;
    size_t n = cs_df_env_count(st->env);
    for (size_t i = 0; i < n; i++) {
        const char *key, *val;
        cs_df_env_at(st->env, i, &key, &val);
        if (!val)
            continue;
        home |= !strcmp(key, "HOME");
        cs_strv_push(&v, cs_xasprintf("%s=%s", key, val));
    }
    if (!home)
        cs_strv_add(&v, "HOME=/root");
    return cs_strv_take(&v);
}

static int
run_network(build *b, bstage *st, const cs_df_instr *in, run_step *r, cs_error **err)
{
    cs_autofree char *net = NULL;
    if (cs_df_flag_expand(st->df, in, "network", st->env, &net, err) < 0)
        return line_err(b, in, err);
    if (net && strcmp(net, "none") && strcmp(net, "host") && strcmp(net, "default"))
        return cs_err(err, CS_EPARSE, 0, "%s:%d: RUN --network=%s: use default, none or host",
                      b->df_path, in->line, net);
    r->net_none = net ? !strcmp(net, "none") : b->o->network_none;
    return 0;
}

/* --mount flags parsed; the key gets each spec (and a from stage's key):
 * never a secret's value or a socket's path, so changing them does not
 * invalidate the cache (as BuildKit). */
static int
run_mounts(build *b, bstage *st, const cs_df_instr *in, run_step *r, cs_sha256_ctx *kh,
           cs_error **err)
{
    unsigned nssh = 0;
    for (size_t i = 0; i < in->nflags; i++) {
        if (strcmp(in->flags[i].name, "mount"))
            continue;
        cs_autofree char *spec = NULL;
        if (cs_df_word(st->df, in, in->flags[i].value ?: "", st->env, &spec, err) < 0)
            return line_err(b, in, err);
        r->mounts = cs_xrealloc(r->mounts, (r->nm + 1) * sizeof(*r->mounts));
        if (cs_runmount_parse(spec, &r->mounts[r->nm], err) < 0)
            return line_err(b, in, err);
        cs_runmount *m = &r->mounts[r->nm++];
        if (!strcmp(m->type, "ssh") && !m->target) /* BuildKit's numbering */
            m->target = cs_xasprintf("/run/buildkit/ssh_agent.%u", nssh);
        nssh += !strcmp(m->type, "ssh");
        const char *from = m->from;
        long ref = from ? stage_ref(b, from, (size_t) (st - b->st)) : -1;
        if (ref >= 0 && stage_await(b, (size_t) ref, err) < 0)
            return line_err(b, in, err);
        if (ref >= 0) /* a stage's content is in its key */
            cs_sha256_update(kh, b->st[ref].key.b, 32);
        const cs_build_context *nc = from ? named_context(b, from) : NULL;
        cs_digest nk;
        if (nc && named_context_key(b, nc, &nk, err) < 0)
            return line_err(b, in, err);
        if (nc) /* so is a named context's image or files */
            cs_sha256_update(kh, nk.b, 32);
        hash_str(kh, spec);
    }
    return 0;
}

/* The build's --add-host, --ulimit and --shm-size, for the runtime and, when
 * given, in the key (BuildKit's exec op holds them), so that builds without
 * them keep their keys. */
static int
run_build_flags(build *b, run_step *r, cs_sha256_ctx *kh, cs_error **err)
{
    int rc;
    for (char **h = b->o->add_hosts; h && *h; h++) {
        char *line = NULL;
        if ((rc = cs_run_host_parse(*h, &line, err)) < 0)
            return rc;
        cs_autofree char *k = cs_xasprintf("host:%s", line);
        hash_str(kh, k);
        cs_strv_push(&r->hosts, line);
    }
    for (char **u = b->o->ulimits; u && *u; u++) {
        r->rlimits = cs_xrealloc(r->rlimits, (r->nrlimits + 1) * sizeof(*r->rlimits));
        if ((rc = cs_run_rlimit_parse(*u, &r->rlimits[r->nrlimits], err)) < 0)
            return rc;
        const cs_run_rlimit *rl = &r->rlimits[r->nrlimits++];
        cs_autofree char *k =
            cs_xasprintf("ulimit:%s=%llu:%llu", rl->type, (unsigned long long) rl->soft,
                         (unsigned long long) rl->hard);
        hash_str(kh, k);
    }
    if (b->o->shm_size) {
        cs_autofree char *k = cs_xasprintf("shm:%llu", (unsigned long long) b->o->shm_size);
        hash_str(kh, k);
    }
    return 0;
}

/* The mtime RUN-written files are clamped to: SOURCE_DATE_EPOCH, else 0. */
static int64_t
run_epoch(const build *b)
{
    return b->epoch >= 0 ? b->epoch : 0;
}

/* The key: command, environment, user, workdir, network, mounts, the epoch
 * the layer's mtimes are clamped to, and the build's RUN flags. */
static int
run_key(build *b, bstage *st, const cs_df_instr *in, run_step *r, cs_sha256_ctx *kh, cs_digest *key,
        cs_error **err)
{
    int rc = run_argv(b, st, in, &r->argv, err);
    if (rc == 0)
        rc = run_shebang(b, st, in, &r->script, &r->script_target, err);
    if (rc < 0)
        return rc;
    r->env = run_env(st);
    for (char **p = r->argv; *p; p++)
        hash_str(kh, *p);
    if (r->script) /* the file's content, which argv only names */
        hash_str(kh, r->script);
    for (char **p = r->env; *p; p++)
        hash_str(kh, *p);
    json_t *c = json_object_get(st->cfg, "config");
    r->user = json_string_value(json_object_get(c, "User"));
    r->wd = json_string_value(json_object_get(c, "WorkingDir"));
    hash_str(kh, r->user ? r->user : "");
    hash_str(kh, r->wd ? r->wd : "/");
    if ((rc = run_network(b, st, in, r, err)) < 0)
        return rc;
    hash_str(kh, r->net_none ? "net:none" : "net:host");
    cs_autofree char *epoch = cs_xasprintf("epoch:%lld", (long long) run_epoch(b));
    hash_str(kh, epoch);
    if ((rc = run_mounts(b, st, in, r, kh, err)) < 0)
        return rc;
    if ((rc = run_build_flags(b, r, kh, err)) < 0)
        return line_err(b, in, err);
    cs_sha256_final(kh, key);
    return 0;
}

/* Snapshots are made one at a time per process (snapshot.h): two stages'
 * threads may want the same one. */
static int
snapshot_get(build *b, const cs_digest *tree, char **dir, cs_error **err)
{
    pthread_mutex_lock(&b->snap_mu);
    int rc = cs_snapshot_get(b->s, tree, dir, err);
    pthread_mutex_unlock(&b->snap_mu);
    return rc;
}

/* The root filesystem: the layers served by FUSE, or one snapshot per layer
 * (unpacked once, then shared); the merged tree and the user's ids in it.
 * Snapshots are made, and the FUSE client is driven, one at a time per
 * process (snapshot.h): two stages' threads may want the same layers. */
static int
run_rootfs(build *b, bstage *st, run_step *r, cs_error **err)
{
    pthread_mutex_lock(&b->snap_mu);
    int rc = cs_lowers_get(b->s, st->layers, st->nlayers, &r->lowers, err);
    pthread_mutex_unlock(&b->snap_mu);
    if (rc == 0 && r->user && *r->user && (rc = stage_merged(b, st, &r->merged, err)) == 0)
        rc = lookup_user(b, r->merged, r->user, &r->uid, &r->gid, err);
    return rc;
}

/* A directory holding the filesystem of stage or image `from`: its merged
 * tree is put as one tree and unpacked as a snapshot (gc drops both later). */
static int
from_dir(build *b, bstage *st, const cs_df_instr *in, const char *from, char **dir, cs_error **err)
{
    const cs_tree *t = NULL;
    cs_tree *own = NULL;
    cs_digest key, d;
    int r = source_tree(b, st, in, "RUN --mount from", from, &t, &own, &key, err);
    if (r < 0)
        return r;
    r = cs_lease_tree_store(b->s, t, &d, err);
    cs_tree_free(own);
    if (r == 0)
        r = snapshot_get(b, &d, dir, err);
    return r < 0 ? line_err(b, in, err) : 0;
}

/* A cache mount's directory: persistent across builds and projects, by id. */
static int
cache_mount_dir(build *b, const cs_runmount *m, char **dir, cs_error **err)
{
    cs_digest d;
    cs_sha256(m->id, strlen(m->id), &d);
    char hex[CS_DIGEST_HEX];
    cs_digest_hex(&d, hex);
    *dir = cs_xasprintf("%s/cache-mounts/%s", cs_store_root(b->s), hex);
    return cs_mkdir_p(*dir, 0755, err);
}

/* A bind's host dir: source inside the context, or inside a stage's (or
 * image's) filesystem. */
static int
bind_mount_dir(build *b, bstage *st, const cs_df_instr *in, const cs_runmount *m, char **dir,
               cs_error **err)
{
    cs_autofree char *rel = NULL;
    const cs_build_context *nc = m->from ? named_context(b, m->from) : NULL;
    const char *from = nc && nc->dir ? NULL : m->from; /* a named DIR is bound in place */
    int r;
    if (from && (r = from_dir(b, st, in, from, dir, err)) < 0)
        return r;
    if ((r = cs_path_clean(m->source ? m->source : ".", &rel, err)) < 0)
        return line_err(b, in, err);
    const char *root = from ? *dir : nc ? nc->dir : b->o->context;
    if (from && !*rel)
        return 0;
    char *full = cs_path_join(root, *rel ? rel : ".");
    free(*dir);
    *dir = full;
    return 0;
}

/* SSH_AUTH_SOCK for the RUN: the first forwarded socket, unless the
 * environment has one (BuildKit). */
static void
set_ssh_env(run_step *r, const char *target)
{
    cs_strv v = { 0 };
    for (char **p = r->env; *p; p++) {
        if (!strncmp(*p, "SSH_AUTH_SOCK=", 14))
            return cs_strv_release(&v);
        cs_strv_add(&v, *p);
    }
    cs_strv_push(&v, cs_xasprintf("SSH_AUTH_SOCK=%s", target));
    cs_strv_free(r->env);
    r->env = cs_strv_take(&v);
}

/* A secret's value as a file, or the agent socket, for mount i; *present is
 * false when it was not given (left out unless required). */
static int
agent_mount(build *b, const cs_df_instr *in, run_step *r, size_t i, bool *present, cs_error **err)
{
    const cs_runmount *m = &r->mounts[i];
    cs_run_mount *rm = &r->rm[r->nrm];
    bool secret = !strcmp(m->type, "secret");
    if (secret) {
        int rc = build_secret_value(b->o, m->id, &r->secrets[i], err);
        if (rc < 0)
            return line_err(b, in, err);
        *present = rc > 0;
        rm->type = "file";
        rm->data = r->secrets[i].data ? (const void *) r->secrets[i].data : "";
        rm->len = r->secrets[i].len;
        rm->mode = m->mode;
        rm->uid = m->uid;
        rm->gid = m->gid;
    } else {
        rm->type = "bind";
        rm->source = build_ssh_socket(b->o, m->id);
        *present = rm->source != NULL;
    }
    if (!*present && m->required)
        return cs_err(err, CS_ENOTFOUND, 0, "%s:%d: %s '%s' not found", b->df_path, in->line,
                      secret ? "secret" : "ssh agent", m->id);
    return 0;
}

static int
run_mount_dirs(build *b, bstage *st, const cs_df_instr *in, run_step *r, cs_error **err)
{
    r->rm = cs_xcalloc(r->nm + 1, sizeof(*r->rm));
    r->mdirs = cs_xcalloc(r->nm + 1, sizeof(char *));
    r->secrets = cs_xcalloc(r->nm + 1, sizeof(*r->secrets));
    bool ssh_env = false;
    for (size_t i = 0; i < r->nm; i++) {
        cs_runmount *m = &r->mounts[i];
        cs_run_mount *rm = &r->rm[r->nrm];
        rm->target = m->target;
        rm->readonly = !m->rw;
        rm->type = "bind";
        int rc = 0;
        bool present = true;
        if (!strcmp(m->type, "secret") || !strcmp(m->type, "ssh"))
            rc = agent_mount(b, in, r, i, &present, err);
        else if (!strcmp(m->type, "tmpfs"))
            rm->type = "tmpfs";
        else if (!strcmp(m->type, "cache") && (rc = cache_mount_dir(b, m, &r->mdirs[i], err)) < 0)
            rc = line_err(b, in, err);
        else if (strcmp(m->type, "cache"))
            rc = bind_mount_dir(b, st, in, m, &r->mdirs[i], err);
        if (rc < 0)
            return rc;
        if (!present)
            continue;
        if (r->mdirs[i])
            rm->source = r->mdirs[i];
        if (!strcmp(m->type, "ssh") && !ssh_env) {
            set_ssh_env(r, m->target);
            ssh_env = true;
        }
        r->nrm++;
    }
    if (r->script) /* r->rm has room for one more */
        r->rm[r->nrm++] = (cs_run_mount){ .type = "file",
                                          .target = r->script_target,
                                          .readonly = true,
                                          .data = r->script,
                                          .len = strlen(r->script),
                                          .mode = 0755 };
    return 0;
}

/* A command that failed: its last line in the one-line error, all of its
 * last lines as an event when they were not shown as it ran. */
static int
run_failed(build *b, bstage *st, const cs_df_instr *in, const run_step *r, cs_error **err)
{
    const char *tail = r->res.tail ? r->res.tail : "";
    size_t tl = strlen(tail);
    while (tl && tail[tl - 1] == '\n')
        tl--;
    const char *last = tail + tl;
    while (last > tail && last[-1] != '\n')
        last--;
    if (b->o->output_fd < 0 && *tail)
        step_event(b, st->step, CS_BUILD_RUN_TAIL, tail);
    cs_autofree char *text = history_text(in);
    return cs_err(err, CS_EINVAL, 0, "%s:%d: %s: exit status %d%s%.*s%s", b->df_path, in->line,
                  text, r->res.status, tl ? " (last output: '" : "", (int) (tail + tl - last), last,
                  tl ? "')" : "");
}

static void run_layer_begin(void *ctx, const char *upper);

/* cs_run_opts.on_start: the stage's merged tree, wanted after the command,
 * made in a thread while the runtime starts (run_layer_ingest joins it);
 * started only now, so that it does not slow the reaper's fork and the
 * mount (both wait for the page faults it takes). */
static void
run_started(void *ctx)
{
    run_step *r = ctx;
    stage_merged_start(r->b, r->st); /* nothing when made already (USER) */
}

static int
run_exec(build *b, bstage *st, const cs_df_instr *in, run_step *r, cs_error **err)
{
    cs_run_opts ro = { 0 };
    ro.lowers = (const char *const *) r->lowers.v;
    ro.nlowers = r->lowers.n;
    ro.argv = r->argv;
    ro.env = r->env;
    ro.cwd = r->wd && *r->wd ? r->wd : "/";
    ro.uid = r->uid;
    ro.gid = r->gid;
    ro.network_none = r->net_none;
    ro.mounts = r->rm;
    ro.nmounts = r->nrm;
    ro.hosts = r->hosts.v;
    ro.rlimits = r->rlimits;
    ro.nrlimits = r->nrlimits;
    ro.shm_size = b->o->shm_size;
    ro.runtime = b->o->runtime;
    ro.keep_upper = true;
    ro.defer_teardown = true; /* sched_run settles them at its end */
    ro.keep_overlay = r->last;
    ro.on_exit = run_layer_begin;
    ro.on_start = run_started;
    ro.hook_ctx = r;
    if (step_output_begin(b, st->step, &r->out, &ro.out_fd, err) < 0)
        return line_err(b, in, err);
    r->out_fd = ro.err_fd = ro.out_fd;
    step_event(b, st->step, CS_BUILD_RUN_OUTPUT, NULL);
    build_diffs_start(b); /* its start-up beside the runtime's */
    int rc = cs_run(b->s, &ro, &r->res, err);
    /* On success the pump is joined after the layer's ingest (do_run): the
     * overlay's teardown thread (run_defer.c) may hold a core in the kernel
     * for ~5 ms, and the pump's wakeup must not delay the ingest. */
    if (rc < 0 || r->res.status)
        run_output_end(r);
    if (rc < 0 || cs_cancel_check(cs_store_cancel(b->s), err) < 0)
        return line_err(b, in, err);
    return r->res.status ? run_failed(b, st, in, r, err) : 0;
}

/* rel (a directory of the lower layers) when overlay copied it up only to
 * hold a mount point the runtime made and took away again: empty in the
 * upper dir, not opaque, with the lower's mode and owner. */
static void
prune_copied_up(run_step *r, const char *upper, const char *rel)
{
    const cs_entry *low = cs_tree_find(r->merged, rel);
    cs_autofree char *full = cs_path_join(upper, rel);
    struct stat sb;
    char v;
    if (!low || low->type != CS_E_DIR || lstat(full, &sb) < 0 || !S_ISDIR(sb.st_mode)
        || (sb.st_mode & 07777) != low->mode || sb.st_uid != low->uid || sb.st_gid != low->gid
        || lgetxattr(full, "trusted.overlay.opaque", &v, 1) >= 0)
        return;
    if (rmdir(full) < 0) /* ENOTEMPTY: the command wrote below it, it stays */
        return;
}

static int
by_depth_desc(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *) a), lb = strlen(*(char *const *) b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

/* The runtime mounts /etc/hosts, /etc/resolv.conf and the RUN's --mount
 * targets; their mount points go when empty (run.h), but the directories
 * above them stay copied up, so a RUN that never touched /etc made a layer
 * holding etc/. BuildKit's stub cleaner restores such a directory's mtime
 * and its overlay differ then drops it as unchanged: a `RUN touch /x` layer
 * is x alone. Here the copies are removed from the upper dir, deepest
 * first, when empty and the same as below (a directory the command changed
 * keeps something inside, or its own mode or owner). */
static void
prune_mount_parents(run_step *r, const char *upper)
{
    cs_strv dirs = { 0 };
    cs_strv_add(&dirs, "etc");
    for (size_t i = 0; i < r->nrm; i++) {
        cs_autofree char *rel = NULL;
        cs_error *tmp = NULL;
        if (cs_path_clean(r->rm[i].target, &rel, &tmp) < 0) {
            cs_error_clear(&tmp);
            continue;
        }
        for (char *sl = strrchr(rel, '/'); sl; sl = strrchr(rel, '/')) {
            *sl = 0;
            cs_strv_add(&dirs, rel);
        }
    }
    qsort(dirs.v, dirs.n, sizeof(char *), by_depth_desc); /* a child before its parent */
    for (size_t i = 0; i < dirs.n; i++)
        prune_copied_up(r, upper, dirs.v[i]);
    cs_strv_release(&dirs);
}

/* The upper dir kept as the snapshot of the layer's tree, recorded by the
 * layer's own commit (one fdatasync less per RUN); a failure only costs the
 * snapshot. With FUSE chosen, trees are served and need no snapshot: the
 * upper dir goes (run_step_release). Not under snap_mu: ing holds the write
 * transaction, which a thread under snap_mu may be waiting for. */
static void
run_adopt(build *b, cs_ingest *ing, run_step *r, const cs_digest *tree)
{
    if (!cs_store_snapshotter_adopts(b->s))
        return;
    cs_error *tmp = NULL;
    if (cs_snapshot_adopt_ingest(ing, tree, r->res.upper, &tmp) == 0)
        free(cs_steal(&r->res.upper));
    else
        cs_store_warn_error(b->s, "keep the RUN's snapshot", &tmp);
}

/* The upper dir is the layer: what changed ingested into r->ing (not
 * committed), its tree put in the cache under r->key. */
static int
run_layer_ingest(run_step *r, const char *upper, cs_error **err)
{
    build *b = r->b;
    /* the lower layers' tree, made while the runtime started (run_rootfs) */
    int rc = stage_merged(b, r->st, &r->merged, err);
    if (rc < 0)
        return rc;
    prune_mount_parents(r, upper);
    cs_tree *layer = NULL;
    if ((rc = cs_ingest_begin(b->s, &r->ing, err)) == 0
        && (rc = cs_snapshot_diff(b->s, r->ing, upper, r->merged, &layer, err)) == 0) {
        /* What the command wrote gets mtimes no later than the build's epoch
         * (SOURCE_DATE_EPOCH, else 0 as for the config's timestamps), as
         * BuildKit's rewrite-timestamp does: the same inputs give the same
         * layer, however long after one another they run. */
        int64_t epoch = run_epoch(b);
        for (size_t i = 0; i < layer->n; i++)
            if (layer->e[i].mtime_sec > epoch
                || (layer->e[i].mtime_sec == epoch && layer->e[i].mtime_nsec)) {
                layer->e[i].mtime_sec = epoch;
                layer->e[i].mtime_nsec = 0;
            }
        rc = cs_cache_put_layer(b->db, r->ing, r->key, layer, &r->tree, err);
    }
    cs_tree_free(layer);
    return rc;
}

/* cs_run_opts.on_exit: the layer's ingest as soon as the command is done,
 * beside the runtime's own exit on the other core. */
static void
run_layer_begin(void *ctx, const char *upper)
{
    run_step *r = ctx;
    /* A tree still being made is waited for by run_layer, once the run is
     * known to have succeeded: a failing command must not wait for it. */
    if (!stage_merged_ready(r->st))
        return;
    r->begun = true;
    r->begin_rc = run_layer_ingest(r, upper, &r->begin_err);
}

/* The layer of a run that succeeded, committed with its snapshot: begun
 * already (run_layer_begin), or now. */
static int
run_layer(build *b, run_step *r, cs_digest *tree, cs_error **err)
{
    int rc = r->begun ? r->begin_rc : run_layer_ingest(r, r->res.upper, err);
    if (r->begun && rc < 0 && err && !*err)
        *err = cs_steal(&r->begin_err);
    if (rc == 0) {
        run_adopt(b, r->ing, r, &r->tree);
        rc = cs_ingest_commit(r->ing, err);
        *tree = r->tree;
    }
    return rc;
}

int
do_run(build *b, bstage *st, const cs_df_instr *in, cs_sha256_ctx *kh, cs_digest *key, bool *cached,
       cs_error **err)
{
    run_step r = { 0 };
    cs_cache_entry e = { 0 };
    r.last = atomic_fetch_sub(&b->runs_left, 1) <= 1;
    r.b = b;
    r.st = st;
    r.key = key;
    int rc = run_key(b, st, in, &r, kh, key, err);
    if (rc == 0 && (rc = cache_lookup(b, key, &e, err)) < 0)
        line_err(b, in, err);
    *cached = rc > 0;
    if (rc == 0) {
        if ((rc = run_rootfs(b, st, &r, err)) < 0)
            line_err(b, in, err);
        else if ((rc = run_mount_dirs(b, st, in, &r, err)) == 0
                 && (rc = run_exec(b, st, in, &r, err)) == 0
                 && (rc = run_layer(b, &r, &e.tree, err)) < 0)
            line_err(b, in, err);
        run_output_end(&r);
        e.has_layer = rc == 0;
    }
    if (rc >= 0 && e.has_layer && (rc = stage_push_layer(b, st, &e.tree, err)) < 0)
        line_err(b, in, err);
    run_step_release(b, &r);
    return rc < 0 ? rc : 0;
}
