/* cmd.h - the cstore command line: shared declarations of cmd/.
 *
 * Every verb is a cmd_fn. It parses its own options (cmd_getopt), opens the
 * store (cmd_open) and prints its output. It returns 0 on success, a
 * positive exit status it has already reported (2: bad usage, 1: e.g. fsck
 * found problems), or a negative cs_code with *err set: main prints
 * "cstore: <err->msg>" and exits 1. Only cmd/ prints or exits.
 */
#ifndef CSTORE_CMD_H
#define CSTORE_CMD_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include "cstore/error.h"
#include "cstore/store.h"
#include "cstore/util.h"

#define CMD_EXIT_FAIL  1
#define CMD_EXIT_USAGE 2
/* cmd_getopt: help was shown or a bad option reported; return c->status. */
#define CMD_OPT_DONE 0x1000

typedef struct cmd_ctx {
    const char *root;  /* --root, or NULL for cs_store_default_root() */
    const char *name;  /* the verb, for messages */
    const char *usage; /* the verb's --help text */
    cs_store *store;   /* opened by cmd_open, closed by main */
    int status;        /* exit status after CMD_OPT_DONE */
} cmd_ctx;

typedef int (*cmd_fn)(cmd_ctx *c, int argc, char **argv, cs_error **err);

/* verbs: argv[0] is the verb's name */
int cmd_build(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_run(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_load(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_import(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_export(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_images(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_inspect(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_tag(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_rmi(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_gc(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_du(cmd_ctx *c, int argc, char **argv, cs_error **err);
int cmd_fsck(cmd_ctx *c, int argc, char **argv, cs_error **err);

extern const char cmd_build_usage[], cmd_run_usage[], cmd_load_usage[], cmd_import_usage[],
    cmd_export_usage[], cmd_images_usage[], cmd_inspect_usage[], cmd_tag_usage[], cmd_rmi_usage[],
    cmd_gc_usage[], cmd_du_usage[], cmd_fsck_usage[];

/* ---- helpers (main.c) ---- */

/* getopt_long over argv with GNU permutation, so options may follow
 * positional arguments; "-h"/"--help" (which every verb's longopts should
 * list as 'h') print c->usage. Returns the option, -1 after the last (then
 * argv[optind..argc) are the operands), or CMD_OPT_DONE with c->status set
 * (0 after help, 2 after reporting a bad option). Call cmd_getopt_reset
 * before the first call. */
void cmd_getopt_reset(void);
int cmd_getopt(cmd_ctx *c, int argc, char **argv, const char *shortopts,
               const struct option *longopts);
/* Prints "cstore: VERB: MSG" on stderr and returns CMD_EXIT_USAGE. */
int cmd_usage_error(cmd_ctx *c, const char *fmt, ...) CS_PRINTF(2, 3);
/* Checks the operand count: min <= n <= max (max < 0: no limit). Returns 0
 * or reports a usage error and returns CMD_EXIT_USAGE. */
int cmd_nargs(cmd_ctx *c, int n, int min, int max);

/* Opens the store at c->root (flags: CS_OPEN_EXCLUSIVE or 0); the store is
 * owned by c and closed by main. */
int cmd_open(cmd_ctx *c, unsigned flags, cs_store **out, cs_error **err);

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

#endif
