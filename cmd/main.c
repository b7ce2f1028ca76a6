/* main.c - cstore's global options, verb dispatch and error printing, and the
 * helpers every verb shares (usage errors, sizes, times, JSON output). */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "build_cache.h"
#include "cmd.h"
#include "run.h"
#include "cstore/fuse.h"

static const char main_usage[] =
    "usage: cstore [--root DIR] COMMAND [ARG...]\n"
    "\n"
    "A content-addressed store for OCI container images.\n"
    "\n"
    "Commands:\n"
    "  build [OPTIONS] CONTEXT              build an image from a Dockerfile\n"
    "  run [OPTIONS] NAME [CMD [ARG...]]    run an image's command\n"
    "  load FILE|DIR [-t NAME[:TAG]]        load an OCI archive, OCI layout dir or docker-archive\n"
    "  import ROOTFS.tar|DIR -t NAME[:TAG]  make a one-layer image from a root filesystem\n"
    "  pull [OPTIONS] REF                   pull an image from a registry\n"
    "  export NAME -o PATH [--format FMT] [--compression C]\n"
    "                                       write an image as oci-archive, oci-dir or\n"
    "                                       docker-archive\n"
    "  push [OPTIONS] NAME [DEST]           push an image to a registry\n"
    "  images [--json]                      list images\n"
    "  inspect NAME                         show an image's config and layers as JSON\n"
    "  tag SRC DST                          give image SRC the name DST\n"
    "  rmi NAME...                          remove tags, and images left without one\n"
    "  du [--json]                          show the store's disk usage and deduplication\n"
    "  gc [OPTIONS]                         free content no tagged image uses\n"
    "  fsck                                 verify every chunk, content and reference\n"
    "  cache prune --ref REF [OPTIONS]      remove old entries and packs from a shared\n"
    "                                       build cache\n"
    "  login [-u USER] REGISTRY             check and keep credentials for a registry\n"
    "  logout REGISTRY                      remove the credentials kept for a registry\n"
    "\n"
    "Options:\n"
    "  --root DIR    the store (default: $CSTORE_ROOT, else ${XDG_CACHE_HOME:-~/.cache}/cstore)\n"
    "  -h, --help    show this help\n"
    "\n"
    "Run 'cstore COMMAND --help' or 'cstore help COMMAND' for a command's options,\n"
    "'man cstore-COMMAND' for its manual page.\n";

static const struct verb {
    const char *name;
    cmd_fn fn;
    const char *usage;
} verbs[] = {
    { "build", cmd_build, cmd_build_usage },
    { "run", cmd_run, cmd_run_usage },
    { "load", cmd_load, cmd_load_usage },
    { "import", cmd_import, cmd_import_usage },
    { "pull", cmd_pull, cmd_pull_usage },
    { "export", cmd_export, cmd_export_usage },
    { "push", cmd_push, cmd_push_usage },
    { "images", cmd_images, cmd_images_usage },
    { "inspect", cmd_inspect, cmd_inspect_usage },
    { "tag", cmd_tag, cmd_tag_usage },
    { "rmi", cmd_rmi, cmd_rmi_usage },
    { "gc", cmd_gc, cmd_gc_usage },
    { "du", cmd_du, cmd_du_usage },
    { "fsck", cmd_fsck, cmd_fsck_usage },
    { "cache", cmd_cache, cmd_cache_usage },
    { "login", cmd_login, cmd_login_usage },
    { "logout", cmd_logout, cmd_logout_usage },
};

static const struct verb *
find_verb(const char *name)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].name, name) == 0)
            return &verbs[i];
    return NULL;
}

/* ---- signals ---- */

/* SIGINT/SIGTERM: while a run holds the store's cancel flag (a container is
 * up), the flag is triggered and the run kills its container, cleans up and
 * fails "interrupted by signal N"; otherwise the signal takes its default
 * action, as if no handler were installed. */
static cs_cancel *main_cancel;

static void
on_signal(int sig)
{
    if (cs_cancel_held(main_cancel)) {
        cs_cancel_trigger(main_cancel, sig);
        return;
    }
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns */
}

/* SIGBUS: a file the store maps (a load reads a plain archive's layers in
 * place) was truncated under us. One line and exit: the open write
 * transaction dies with the process, so the store stays as it was. */
static void
on_bus(int sig)
{
    static const char msg[] = "cstore: a file being read was truncated under cstore (SIGBUS): "
                              "nothing of this command's open transaction is kept\n";
    (void) sig;
    ssize_t r = write(2, msg, sizeof(msg) - 1);
    (void) r;
    _exit(CMD_EXIT_FAIL);
}

static int
catch_signals(cs_error **err)
{
    int rc = cs_cancel_new(&main_cancel, err);
    if (rc < 0)
        return rc;
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART }, old;
    sigemptyset(&sa.sa_mask);
    static const int sigs[] = { SIGINT, SIGTERM };
    for (size_t i = 0; i < 2; i++) /* ignored signals stay ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
    sa.sa_handler = on_bus;
    sigaction(SIGBUS, &sa, NULL);
    return 0;
}

/* ---- usage ---- */

int
cmd_usage_error(cmd_ctx *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cstore: %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'cstore %s --help')\n", c->name);
    return CMD_EXIT_USAGE;
}

/* The library's warnings (secondary failures, cleanups that did not finish):
 * one line each on stderr, after the progress lines they interrupt. */
static void
print_warning(void *ctx, const char *msg)
{
    (void) ctx;
    fflush(stdout);
    fprintf(stderr, "cstore: warning: %s\n", msg);
}

int
cmd_open(cmd_ctx *c, unsigned flags, cs_store **out, cs_error **err)
{
    cs_autofree char *def = NULL;
    const char *root = c->root;
    if (!root)
        root = def = cs_store_default_root();
    if (!root || !*root)
        return cs_err(err, CS_EINVAL, 0, "no store root: set --root, $CSTORE_ROOT or $HOME");
    int rc = cs_store_open(root, flags, &c->store, err);
    if (rc < 0)
        return rc;
    cs_store_set_cancel(c->store, main_cancel);
    cs_store_set_warn(c->store, print_warning, NULL);
    /* RUN's lower dirs: the FUSE server is this program, re-executed. */
    cs_store_set_snapshotter(c->store, (cs_snapshotter) c->snapshotter, "/proc/self/exe");
    cache_registry_install(); /* chunks of a registry build cache, when needed */
    /* What killed runs left (a mount, a container, a run dir): cleaned by
     * every command, once; a readdir of ROOT/tmp when there is nothing. */
    static bool cleaned;
    cs_error *tmp = NULL;
    if (!cleaned && cs_run_cleanup_stale(c->store, &tmp) < 0)
        cs_store_warn_error(c->store, "clean up after killed runs", &tmp);
    cleaned = true;
    *out = c->store;
    return 0;
}

int
cmd_start(cmd_ctx *c, int argc, char **argv, const cmd_opt *opts, cmd_args *args, cs_store **out,
          cs_error **err)
{
    int rc = cmd_parse(c, argc, argv, opts, args, err);
    return rc != 0 ? rc : cmd_open(c, 0, out, err);
}

/* ---- formatting ---- */

char *
cmd_human_size(uint64_t bytes, char buf[CMD_SIZE_BUF])
{
    static const char *const units[] = { "B", "kB", "MB", "GB", "TB", "PB", "EB" };
    double v = (double) bytes;
    size_t u = 0;
    while (v >= 1000.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000.0;
        u++;
    }
    /* Unlike docker's "1e+03kB", 999.9 kB that rounds up moves to the next unit. */
    if (v >= 999.5 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000.0;
        u++;
    }
    snprintf(buf, CMD_SIZE_BUF, "%.3g%s", v, units[u]);
    return buf;
}

char *
cmd_human_duration(int64_t s, char buf[CMD_DURATION_BUF])
{
    /* go-units HumanDuration, which `docker images` shows */
    int64_t minutes = s / 60, hours = (s + 1800) / 3600;
    if (s < 1)
        snprintf(buf, CMD_DURATION_BUF, "Less than a second");
    else if (s == 1)
        snprintf(buf, CMD_DURATION_BUF, "1 second");
    else if (s < 60)
        snprintf(buf, CMD_DURATION_BUF, "%lld seconds", (long long) s);
    else if (minutes == 1)
        snprintf(buf, CMD_DURATION_BUF, "About a minute");
    else if (minutes < 60)
        snprintf(buf, CMD_DURATION_BUF, "%lld minutes", (long long) minutes);
    else if (hours == 1)
        snprintf(buf, CMD_DURATION_BUF, "About an hour");
    else if (hours < 48)
        snprintf(buf, CMD_DURATION_BUF, "%lld hours", (long long) hours);
    else if (hours < 24 * 7 * 2)
        snprintf(buf, CMD_DURATION_BUF, "%lld days", (long long) (hours / 24));
    else if (hours < 24 * 30 * 2)
        snprintf(buf, CMD_DURATION_BUF, "%lld weeks", (long long) (hours / 24 / 7));
    else if (hours < 24 * 365 * 2)
        snprintf(buf, CMD_DURATION_BUF, "%lld months", (long long) (hours / 24 / 30));
    else
        snprintf(buf, CMD_DURATION_BUF, "%lld years", (long long) (s / 3600 / 24 / 365));
    return buf;
}

static bool
digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

bool
cmd_parse_time(const char *s, int64_t *out)
{
    struct tm tm = { 0 };
    int y, mo, d, h, mi, sec;
    const char *p = s;
    if (!s || !digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-'
        || !digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return false;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':'
        || !digits(&p, 2, &sec))
        return false;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om))
            return false;
        off = sign * (oh * 3600 + om * 60);
    } else {
        return false;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = (int64_t) timegm(&tm) - off;
    return true;
}

int
cmd_print_json(json_t *v, cs_error **err)
{
    int rc = json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(v);
    if (rc < 0 || putchar('\n') == EOF)
        return cs_err(err, CS_EIO, errno, "writing output");
    return 0;
}

/* ---- main ---- */

static int usage_error(const char *fmt, ...) CS_PRINTF(1, 2);

static int
usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cstore: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'cstore --help')\n");
    return CMD_EXIT_USAGE;
}

int
main(int argc, char **argv)
{
    cmd_ctx c = { 0 };
    int i = 1;

    /* A reader that went away (cstore images | head) is a write error, not a
     * signal that kills us in the middle of a transaction or a RUN. */
    signal(SIGPIPE, SIG_IGN);
    /* Children's exit statuses are wanted (RUN's runtime reaper waits for
     * them): an inherited "ignore" would have the kernel reap them away. */
    signal(SIGCHLD, SIG_DFL);

    /* Global options end at the verb; the verb parses the rest. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(main_usage, stdout);
            return 0;
        } else if (strcmp(a, "--root") == 0) {
            if (i + 1 >= argc)
                return usage_error("option '%s' needs an argument", a);
            c.root = argv[++i];
        } else if (strncmp(a, "--root=", 7) == 0) {
            c.root = a + 7;
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (c.root && !*c.root)
        return usage_error("empty --root");
    if (i >= argc) {
        fputs(main_usage, stderr);
        return CMD_EXIT_USAGE;
    }

    const char *name = argv[i];
    if (strcmp(name, CS_FUSE_VERB) == 0)
        return cmd_fuse_serve(argc - i, argv + i);
    if (strcmp(name, "help") == 0) {
        /* "cstore help [COMMAND]" */
        const struct verb *v = i + 1 < argc ? find_verb(argv[i + 1]) : NULL;
        if (i + 1 < argc && !v)
            return usage_error("unknown command '%s'", argv[i + 1]);
        fputs(v ? v->usage : main_usage, stdout);
        return 0;
    }
    const struct verb *v = find_verb(name);
    if (!v)
        return usage_error("unknown command '%s'", name);

    c.name = v->name;
    c.usage = v->usage;
    cs_error *err = NULL;
    int rc = catch_signals(&err);
    if (rc == 0)
        rc = v->fn(&c, argc - i, argv + i, &err);
    cs_store_close(c.store);
    cs_run_release_overlays(); /* their teardown after we are gone */
    cs_cancel *cancel = main_cancel;
    main_cancel = NULL;
    cs_cancel_free(cancel);
    if (rc == CMD_EXIT_HELP)
        rc = 0;

    if (rc >= 0 && (fflush(stdout) != 0 || ferror(stdout)))
        rc = cs_err(&err, CS_EIO, errno, "writing output");
    if (rc < 0) {
        fprintf(stderr, "cstore: %s\n", err && err->msg ? err->msg : "unknown error");
        cs_error_free(err);
        return CMD_EXIT_FAIL;
    }
    cs_error_free(err);
    return rc;
}
