/* opt.c - every verb's option parsing: a cmd_opt table run through
 * getopt_long, with cstore's one-line messages (see cmd.h). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cmd.h"
#include "cstore/units.h"
#include "registry.h"

const cmd_opt cmd_no_opts[] = { CMD_OPT_END };

/* getopt_long's value for table entry i: its short letter, or a number no
 * letter has. */
static int
opt_val(const cmd_opt *o, size_t i)
{
    return o->short_name ? o->short_name : 0x100 + (int) i;
}

static const cmd_opt *
opt_find(const cmd_opt *opts, int val)
{
    for (size_t i = 0; opts[i].name; i++)
        if (opt_val(&opts[i], i) == val)
            return &opts[i];
    return NULL;
}

/* The getopt_long tables for opts, "-h"/"--help" added. Returns the long
 * options (caller frees); shortopts gets the short ones. */
static struct option *
opt_tables(const cmd_opt *opts, bool stop_at_operand, char *shortopts, size_t cap)
{
    size_t n = 0, k = 0;
    while (opts[n].name)
        n++;
    struct option *lo = cs_xcalloc(n + 2, sizeof(struct option));
    /* '+': stop at the first operand; ':': a missing argument returns ':'. */
    if (stop_at_operand)
        shortopts[k++] = '+';
    shortopts[k++] = ':';
    shortopts[k++] = 'h';
    for (size_t i = 0; i < n; i++) {
        int arg = opts[i].kind == CMD_FLAG ? no_argument : required_argument;
        lo[i] = (struct option){ opts[i].name, arg, NULL, opt_val(&opts[i], i) };
        if (opts[i].short_name && k + 3 < cap) {
            shortopts[k++] = opts[i].short_name;
            if (arg == required_argument)
                shortopts[k++] = ':';
        }
    }
    shortopts[k] = 0;
    lo[n] = (struct option){ "help", no_argument, NULL, 'h' };
    return lo;
}

/* "--network must be host or none" */
static int
bad_choice(cmd_ctx *c, const cmd_opt *o, const char *arg)
{
    if (o->what)
        return cmd_usage_error(c, "unknown %s '%s'", o->what, arg);
    char list[256] = "";
    const char *p = o->choices;
    while (*p) {
        size_t len = strcspn(p, "|");
        const char *sep = !p[len] ? "" : strchr(p + len + 1, '|') ? ", " : " or ";
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%.*s%s", (int) len, p, sep);
        p += len + (p[len] ? 1 : 0);
    }
    return cmd_usage_error(c, "--%s must be %s", o->name, list);
}

static int
opt_choice(cmd_ctx *c, const cmd_opt *o, const char *arg)
{
    const char *p = o->choices;
    size_t alen = strlen(arg);
    for (int i = 0; *p; i++) {
        size_t len = strcspn(p, "|");
        if (len == alen && strncmp(p, arg, len) == 0) {
            *(int *) o->dst = i;
            return 0;
        }
        p += len + (p[len] ? 1 : 0);
    }
    return bad_choice(c, o, arg);
}

static int
opt_duration(cmd_ctx *c, const cmd_opt *o, const char *arg)
{
    int64_t ns;
    if (!cs_parse_duration(arg, CS_DURATION_DAYS | CS_DURATION_BARE_SECONDS, &ns) || ns < 0)
        return cmd_usage_error(c, "--%s: bad duration '%s'", o->name, arg);
    *(uint64_t *) o->dst = (uint64_t) ns / 1000000000u;
    return 0;
}

static int
opt_take(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    int rc;
    if (o->fn && (rc = o->fn(c, o, arg, err)) != 0)
        return rc;
    switch (o->kind) {
    case CMD_FLAG:
        *(bool *) o->dst = true;
        return 0;
    case CMD_STRING:
        *(const char **) o->dst = arg;
        return 0;
    case CMD_STRV:
        cs_strv_add(o->dst, arg);
        return 0;
    case CMD_SIZE:
        if (!cs_parse_size(arg, o->dst))
            return cmd_usage_error(c, "--%s: bad size '%s'", o->name, arg);
        return 0;
    case CMD_DURATION:
        return opt_duration(c, o, arg);
    case CMD_CHOICE:
        return opt_choice(c, o, arg);
    case CMD_CALL:
        return 0;
    }
    return 0;
}

/* getopt_long's ':' and '?': one line naming the option as typed. */
static int
opt_error(cmd_ctx *c, int o, char **argv)
{
    /* A long option leaves its own value in optopt, a letter or not: name
     * it by what was typed. */
    const char *typed = argv[optind - 1];
    bool is_long = !strncmp(typed, "--", 2) || !optopt;
    if (o == ':')
        return is_long ? cmd_usage_error(c, "option '%s' needs an argument", typed)
                       : cmd_usage_error(c, "option '-%c' needs an argument", optopt);
    return is_long ? cmd_usage_error(c, "unknown option '%s'", typed)
                   : cmd_usage_error(c, "unknown option '-%c'", optopt);
}

static int
check_nargs(cmd_ctx *c, const cmd_args *a)
{
    if (a->n < a->min)
        return cmd_usage_error(c, a->n == 0 ? "missing argument" : "missing arguments");
    if (a->max >= 0 && a->n > a->max)
        return cmd_usage_error(c, "too many arguments");
    return 0;
}

int
cmd_parse(cmd_ctx *c, int argc, char **argv, const cmd_opt *opts, cmd_args *args, cs_error **err)
{
    char shortopts[64];
    cs_autofree struct option *lo =
        opt_tables(opts, args->stop_at_operand, shortopts, sizeof(shortopts));
    int o, rc;

    optind = 0; /* glibc: full reinitialization */
    opterr = 0; /* our own one-line messages */
    while ((o = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
        if (o == 'h') {
            fputs(c->usage, stdout);
            return CMD_EXIT_HELP;
        }
        if (o == ':' || o == '?')
            return opt_error(c, o, argv);
        if ((rc = opt_take(c, opt_find(opts, o), optarg, err)) != 0)
            return rc;
    }
    args->v = argv + optind;
    args->n = argc - optind;
    return check_nargs(c, args);
}

int
cmd_check_bool(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    (void) err;
    if (strcmp(arg, "true") != 0 && strcmp(arg, "false") != 0)
        return cmd_usage_error(c, "--%s must be true or false", o->name);
    return 0;
}

void
cmd_reg_opts_get(const cmd_reg_opts *ro, cs_reg_opts *out)
{
    memset(out, 0, sizeof(*out));
    out->insecure = ro->tls_verify && !strcmp(ro->tls_verify, "false");
    out->cert_dir = ro->cert_dir;
}
