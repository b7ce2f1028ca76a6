/* cmd.h - the cstore command line: shared declarations of cmd/.
 *
 * Every verb is a cmd_fn. It parses its options (cmd_parse with a table),
 * opens the store (cmd_open), calls the library and prints its output. It
 * returns 0 on success, a positive exit status it has already reported (2:
 * bad usage, 1: e.g. fsck found problems, CMD_EXIT_HELP: help shown), or a
 * negative cs_code with *err set: main prints "cstore: <err->msg>" and exits
 * 1. Only cmd/ prints or exits; it never opens a table itself.
 */
#ifndef CSTORE_CMD_H
#define CSTORE_CMD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include "cstore/error.h"
#include "cstore/store.h"
#include "cstore/strv.h"
#include "cstore/util.h"

#define CMD_EXIT_FAIL  1
#define CMD_EXIT_USAGE 2
/* A verb's result meaning "help was shown": main exits 0. Above any
 * command's exit status (run passes one through). */
#define CMD_EXIT_HELP 0x100

typedef struct cmd_ctx {
    const char *root;  /* --root, or NULL for cs_store_default_root() */
    const char *name;  /* the verb, for messages */
    const char *usage; /* the verb's --help text */
    cs_store *store;   /* opened by cmd_open, closed by main */
    int snapshotter;   /* --snapshotter of build and run (cs_snapshotter; 0: auto) */
} cmd_ctx;

/* A verb: argv[0] is the verb's name. */
typedef int cmd_verb(cmd_ctx *c, int argc, char **argv, cs_error **err);
typedef cmd_verb *cmd_fn;

cmd_verb cmd_build, cmd_run, cmd_load, cmd_import, cmd_export, cmd_images, cmd_inspect, cmd_tag,
    cmd_rmi, cmd_gc, cmd_du, cmd_fsck;
cmd_verb cmd_pull;
extern const char cmd_pull_usage[];
cmd_verb cmd_push;
extern const char cmd_push_usage[];
/* The FUSE server process (fuse.c): `cstore __fuse-serve ROOT MNT`, not a
 * verb users type; started by the library (cstore/fuse.h). */
int cmd_fuse_serve(int argc, char **argv);
extern const char cmd_build_usage[], cmd_run_usage[], cmd_load_usage[], cmd_import_usage[],
    cmd_export_usage[], cmd_images_usage[], cmd_inspect_usage[], cmd_tag_usage[], cmd_rmi_usage[],
    cmd_gc_usage[], cmd_du_usage[], cmd_fsck_usage[];
cmd_verb cmd_cache;
extern const char cmd_cache_usage[];
cmd_verb cmd_login, cmd_logout;
extern const char cmd_login_usage[], cmd_logout_usage[];

/* ---- options (opt.c) ---- */

/* A verb's options as a table: cmd_parse does the getopt_long loop, --help,
 * and the one-line messages for unknown options, missing arguments and bad
 * values. */
typedef enum cmd_opt_kind {
    CMD_FLAG,     /* bool *: set true */
    CMD_STRING,   /* const char **: the argument (borrowed from argv; last wins) */
    CMD_STRV,     /* cs_strv *: a copy of each argument appended */
    CMD_SIZE,     /* uint64_t *: bytes, cs_parse_size ("10GB") */
    CMD_DURATION, /* uint64_t *: seconds, cs_parse_duration ("168h", "7d", "3600") */
    CMD_CHOICE,   /* int *: the index of the argument in choices "a|b|c" */
    CMD_CALL,     /* fn alone handles the argument */
    CMD_OPTARG,   /* const char **: --NAME=ARG's ARG, "" for --NAME alone (long option only) */
} cmd_opt_kind;

typedef struct cmd_opt cmd_opt;
/* Checks (or, for CMD_CALL, takes) arg; o->dst is the table's pointer.
 * Returns 0, a usage exit status already reported (cmd_usage_error), or a
 * negative code with *err set. */
typedef int (*cmd_opt_fn)(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);

struct cmd_opt {
    const char *name; /* the long name, without "--"; NULL ends the table */
    char short_name;  /* or 0 */
    cmd_opt_kind kind;
    void *dst;
    /* CMD_CHOICE: "a|b|c". A bad value is "unknown WHAT 'x'" when what is
     * set, else "--NAME must be a, b or c". */
    const char *choices;
    const char *what;
    cmd_opt_fn fn; /* CMD_CALL: the handler; other kinds: a check run first */
};
/* Table rows: CMD_OPT("dry-run", 'n', CMD_FLAG, &dry),
 * CMD_OPT_CHOICE("network", &net, "host|none", NULL),
 * CMD_OPT_FN("tag", 't', CMD_STRV, &tags, check_ref), and CMD_OPT_END. */
#define CMD_OPT(name, short_name, kind, dst)                                                       \
    {                                                                                              \
        name, short_name, kind, dst, NULL, NULL, NULL                                              \
    }
#define CMD_OPT_CHOICE(name, dst, choices, what)                                                   \
    {                                                                                              \
        name, 0, CMD_CHOICE, dst, choices, what, NULL                                              \
    }
#define CMD_OPT_FN(name, short_name, kind, dst, fn)                                                \
    {                                                                                              \
        name, short_name, kind, dst, NULL, NULL, fn                                                \
    }
#define CMD_OPT_END CMD_OPT(NULL, 0, CMD_FLAG, NULL)
/* The table of a verb with no options but --help. */
extern const cmd_opt cmd_no_opts[];
/* The table of a verb whose one option is --json (a bool *). */
#define CMD_OPTS_JSON(dst)                                                                         \
    {                                                                                              \
        CMD_OPT("json", 0, CMD_FLAG, dst), CMD_OPT_END                                             \
    }

/* The registry connection options every registry verb takes (opt.c):
 * --tls-verify=BOOL and --cert-dir DIR. Rows for a table:
 * CMD_OPTS_REGISTRY(&ro); cmd_reg_opts_get turns them into the client's. */
typedef struct cmd_reg_opts {
    const char *tls_verify; /* "true" or "false" (checked), or NULL */
    const char *cert_dir;
} cmd_reg_opts;
int cmd_check_bool(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);
#define CMD_OPTS_REGISTRY(ro)                                                                      \
    CMD_OPT_FN("tls-verify", 0, CMD_STRING, &(ro)->tls_verify, cmd_check_bool),                    \
        CMD_OPT("cert-dir", 0, CMD_STRING, &(ro)->cert_dir)
struct cs_reg_opts;
/* Fills out (zeroed first) from ro; borrowed strings live as long as argv. */
void cmd_reg_opts_get(const cmd_reg_opts *ro, struct cs_reg_opts *out);

/* A verb's operands: how many it takes, and, after cmd_parse, which. */
typedef struct cmd_args {
    int min, max;         /* operands wanted (max < 0: any number) */
    bool stop_at_operand; /* options end at the first operand (run's command) */
    char **v;             /* out: the operands, borrowed from argv */
    int n;
} cmd_args;

/* Parses argv[1..argc) (argv[0] is the verb) by the table, with GNU
 * permutation so options may follow operands unless args->stop_at_operand;
 * "-h"/"--help" are implied. Checks the operand count ("missing argument",
 * "too many arguments") and leaves the operands in args->v. Returns 0 to go
 * on, CMD_EXIT_HELP after printing the usage, CMD_EXIT_USAGE after
 * reporting a usage error, or a negative code from an option's fn with
 * *err set: the verb returns any non-zero result as is. */
int cmd_parse(cmd_ctx *c, int argc, char **argv, const cmd_opt *opts, cmd_args *args,
              cs_error **err);

/* ---- helpers (main.c) ---- */

/* Prints "cstore: VERB: MSG" on stderr and returns CMD_EXIT_USAGE. */
int cmd_usage_error(cmd_ctx *c, const char *fmt, ...) CS_PRINTF(2, 3);
/* Opens the store at c->root (flags: CS_OPEN_EXCLUSIVE or 0); the store is
 * owned by c and closed by main. */
int cmd_open(cmd_ctx *c, unsigned flags, cs_store **out, cs_error **err);
/* cmd_parse, then cmd_open(c, 0, ...): the prelude of a verb that checks
 * nothing between the two. Returns cmd_parse's non-zero result or
 * cmd_open's code, as the verb returns them. */
int cmd_start(cmd_ctx *c, int argc, char **argv, const cmd_opt *opts, cmd_args *args,
              cs_store **out, cs_error **err);

/* Docker's sizes: base 1000, 3 significant digits: "0B", "4.87MB", "123kB".
 * Returns buf. */
#define CMD_SIZE_BUF 32
char *cmd_human_size(uint64_t bytes, char buf[CMD_SIZE_BUF]);
/* Docker's durations: "Less than a second", "3 days", "About an hour". */
#define CMD_DURATION_BUF 48
char *cmd_human_duration(int64_t seconds, char buf[CMD_DURATION_BUF]);
/* Parses an RFC 3339 time ("2023-05-01T12:00:00.123456789Z", "+02:00"
 * offsets) into seconds since the epoch; false when malformed. */
bool cmd_parse_time(const char *s, int64_t *out);

/* Prints a jansson value to stdout, indented 2, with a newline, and
 * releases it. */
int cmd_print_json(json_t *v, cs_error **err);

/* Cleanup attribute for a cs_strv local: released at scope exit. */
#define cmd_autostrv __attribute__((cleanup(cs_strv_release)))

/* build --pull[=missing|always|never] (pull.c): the option's check, and the
 * resolver that pulls a missing (or, always, every) base image into s. */
int cmd_check_pull(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err);
struct cs_build_opts;
/* reg (may be NULL; copied): build's --tls-verify / --cert-dir. */
void cmd_pull_policy(struct cs_build_opts *o, const char *pull, cs_store *s, bool quiet,
                     const struct cs_reg_opts *reg);

#endif
