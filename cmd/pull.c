/* pull.c - `cstore pull`: an image from a registry, with progress (plain
 * lines, a live view on a terminal, or nothing) on stderr and the image id
 * last on stdout. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cmd.h"
#include "cstore/image.h"
#include "build.h"
#include "pull.h"

const char cmd_pull_usage[] =
    "usage: cstore pull [OPTIONS] REF\n"
    "\n"
    "Pull an image from a registry: REF as docker writes it (golang, golang:1.22,\n"
    "ghcr.io/o/r:t, name@sha256:..., 127.0.0.1:5000/x/y:z). The image is tagged REF\n"
    "(not for a digest reference); its id is printed last.\n"
    "\n"
    "Options:\n"
    "  --platform OS/ARCH[/VARIANT]  the image of this platform from a multi-platform\n"
    "                                index (default: the host's)\n"
    "  --tls-verify=false            allow plain http and skip certificate checks\n"
    "  --cert-dir DIR                CA (ca.crt) and client certificate (client.cert,\n"
    "                                client.key) for the registry\n"
    "  --progress auto|plain|quiet   progress on stderr: a live view on a terminal,\n"
    "                                one line per event, or nothing (default: auto)\n"
    "  -h, --help                    show this help\n";

typedef struct pull_view {
    FILE *out; /* NULL: quiet */
    bool tty;  /* live view */
    double t0, drawn_at;
    int lines; /* lines of the live view on screen */
    size_t n;  /* layers */
    struct lv {
        char state[12];
        uint64_t bytes;
        int64_t total;
        char digest[20];
    } * l;
} pull_view;

/* "sha256:" + 12 hex digits, as docker shows layers. */
static void
short_digest(const char *d, char out[20])
{
    snprintf(out, 20, "%.19s", d ? d : "");
}

static void
plain_line(pull_view *v, const cs_pull_event *ev)
{
    char d[20], a[CMD_SIZE_BUF], b[CMD_SIZE_BUF];
    short_digest(ev->digest, d);
    switch (ev->kind) {
    case CS_PULL_EV_RESOLVED:
        fprintf(v->out, "resolved %s (%zu layers)\n", ev->digest, ev->nlayers);
        break;
    case CS_PULL_EV_KNOWN:
        fprintf(v->out, "%s: already in the store\n", d);
        break;
    case CS_PULL_EV_START:
        fprintf(v->out, "%s: downloading %s\n", d,
                ev->total >= 0 ? cmd_human_size((uint64_t) ev->total, a) : "?");
        break;
    case CS_PULL_EV_BYTES:
        break;
    case CS_PULL_EV_DONE:
        fprintf(
            v->out, "%s: done %s in %.2fs (%s/s)\n", d, cmd_human_size(ev->bytes, a), ev->seconds,
            cmd_human_size(ev->seconds > 0 ? (uint64_t) (ev->bytes / ev->seconds) : ev->bytes, b));
        break;
    }
}

static void
draw(pull_view *v)
{
    if (v->lines)
        fprintf(v->out, "\033[%dA", v->lines);
    double el = cs_now() - v->t0;
    for (size_t i = 0; i < v->n; i++) {
        struct lv *l = &v->l[i];
        char a[CMD_SIZE_BUF], b[CMD_SIZE_BUF], r[CMD_SIZE_BUF];
        char bar[21] = "";
        if (l->total > 0 && strcmp(l->state, "known")) {
            int fill = (int) (20 * (double) l->bytes / (double) l->total);
            for (int k = 0; k < 20; k++)
                bar[k] = k < fill ? '=' : (k == fill ? '>' : ' ');
            bar[20] = 0;
        }
        fprintf(v->out, "\033[K%-19s %-11s [%s] %s/%s %s/s\n", l->digest, l->state, bar,
                cmd_human_size(l->bytes, a), cmd_human_size(l->total > 0 ? l->total : 0, b),
                cmd_human_size(el > 0 ? (uint64_t) (l->bytes / el) : 0, r));
    }
    v->lines = (int) v->n;
    v->drawn_at = cs_now();
    fflush(v->out);
}

static void
on_event(void *ctx, const cs_pull_event *ev)
{
    pull_view *v = ctx;
    if (!v->out)
        return;
    if (!v->tty) {
        plain_line(v, ev);
        return;
    }
    if (ev->kind == CS_PULL_EV_RESOLVED) {
        v->n = ev->nlayers;
        v->l = cs_xcalloc(v->n ? v->n : 1, sizeof(*v->l));
        for (size_t i = 0; i < v->n; i++)
            strcpy(v->l[i].state, "waiting");
        return;
    }
    if (ev->layer >= v->n)
        return;
    struct lv *l = &v->l[ev->layer];
    static const char *const names[] = { "", "known", "downloading", "downloading", "done" };
    snprintf(l->state, sizeof(l->state), "%s", names[ev->kind]);
    short_digest(ev->digest, l->digest);
    l->bytes = ev->bytes;
    l->total = ev->total;
    if (ev->kind != CS_PULL_EV_BYTES || cs_now() - v->drawn_at > 0.1)
        draw(v);
}

int
cmd_pull(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    const char *platform = NULL;
    cmd_reg_opts ro = { 0 };
    int progress = 0;
    const cmd_opt opts[] = {
        CMD_OPT("platform", 0, CMD_STRING, &platform),
        CMD_OPTS_REGISTRY(&ro),
        CMD_OPT_CHOICE("progress", &progress, "auto|plain|quiet", NULL),
        CMD_OPT_END,
    };
    cmd_args args = { .min = 1, .max = 1 };
    cs_pull_opts o = { 0 };
    int rc = cmd_parse(c, argc, argv, opts, &args, err);
    cs_store *s = NULL;
    if (rc == 0)
        rc = cmd_open(c, 0, &s, err);
    if (rc != 0)
        return rc;
    pull_view v = { .out = progress == 2 ? NULL : stderr, .t0 = cs_now() };
    v.tty = progress == 0 && isatty(STDERR_FILENO);
    cmd_reg_opts_get(&ro, &o.reg);
    o.platform = platform;
    /* For bench/bench_pull.sh (parallel downloads vs one): not an option. */
    const char *jobs = getenv("CSTORE_PULL_JOBS");
    o.jobs = jobs ? (unsigned) atoi(jobs) : 0;
    o.progress = on_event;
    o.progress_ctx = &v;
    cs_pull_result res;
    rc = cs_pull(s, args.v[0], &o, &res, err);
    free(v.l);
    if (rc < 0)
        return rc;
    if (v.out) {
        char a[CMD_SIZE_BUF];
        cs_autofree char *fam = res.tag ? cs_ref_familiar(res.tag) : NULL;
        fprintf(v.out, "pulled %s: %zu layers (%zu already in the store), %s downloaded in %.1fs\n",
                fam ? fam : args.v[0], res.layers, res.known, cmd_human_size(res.downloaded, a),
                cs_now() - v.t0);
    }
    char id[CS_DIGEST_STR];
    cs_digest_str(&res.id, id);
    printf("%s\n", id);
    cs_pull_result_release(&res);
    return 0;
}

/* ---- build --pull ---- */

/* Names pulled by this process: `--pull=always` resolves each once per
 * build. Pulls are serialized (the store has one writer anyway). */
static pthread_mutex_t resolve_mu = PTHREAD_MUTEX_INITIALIZER;
static cs_strv resolved;
static struct {
    cs_store *s;
    bool quiet;
    cs_reg_opts reg;
} resolver;

static int
resolve(void *ctx, const char *name, cs_error **err)
{
    (void) ctx;
    if (!strncmp(name, "sha256:", 7)) /* an image id: nothing to ask a registry */
        return cs_err(err, CS_ENOTFOUND, 0, "image '%s' not found", name);
    pthread_mutex_lock(&resolve_mu);
    int rc = 0;
    if (!cs_strv_contains(resolved.v, name)) {
        pull_view v = { .out = resolver.quiet ? NULL : stderr, .t0 = cs_now() };
        cs_pull_opts o = { .progress = on_event, .progress_ctx = &v, .reg = resolver.reg };
        cs_pull_result res;
        rc = cs_pull(resolver.s, name, &o, &res, err);
        if (rc == 0) {
            cs_strv_add(&resolved, name);
            cs_pull_result_release(&res);
        }
        free(v.l);
    }
    pthread_mutex_unlock(&resolve_mu);
    return rc;
}

/* missing (also when absent), always (also --pull alone, "true"), never ("false"). */
static int
pull_mode(const char *pull)
{
    if (!pull || !strcmp(pull, "missing"))
        return 0;
    if (!*pull || !strcmp(pull, "always") || !strcmp(pull, "true"))
        return 1;
    if (!strcmp(pull, "never") || !strcmp(pull, "false"))
        return 2;
    return -1;
}

int
cmd_check_pull(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    (void) o, (void) err;
    if (pull_mode(arg) < 0)
        return cmd_usage_error(c, "--pull must be missing, always or never");
    return 0;
}

void
cmd_pull_policy(cs_build_opts *o, const char *pull, cs_store *s, bool quiet, const cs_reg_opts *reg)
{
    resolver.s = s;
    if (reg)
        resolver.reg = *reg;
    resolver.quiet = quiet;
    o->resolve = pull_mode(pull) == 2 ? NULL : resolve;
    o->pull_always = pull_mode(pull) == 1;
}
