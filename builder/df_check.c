/* df_check.c - BuildKit's checks of a parsed instruction (its instructions
 * package): which flags each instruction takes, how many arguments, and the
 * few rules of their own (stage names, heredoc destinations, SHELL's JSON).
 *
 * One row per instruction lists its checks in the order BuildKit runs them:
 * when an instruction breaks two rules, the same message comes first. */
#include <string.h>
#include <strings.h>

#include "df_int.h"

typedef struct flagspec {
    const char *name;
    char type; /* 'b' bool, 's' string, 'S' repeatable string */
} flagspec;

static const flagspec no_flags[] = { { NULL, 0 } };
static const flagspec add_flags[] = { { "chown", 's' },    { "chmod", 's' },
                                      { "link", 'b' },     { "keep-git-dir", 'b' },
                                      { "checksum", 's' }, { "unpack", 'b' },
                                      { "exclude", 'S' },  { NULL, 0 } };
static const flagspec copy_flags[] = { { "chown", 's' }, { "from", 's' },    { "chmod", 's' },
                                       { "link", 'b' },  { "exclude", 'S' }, { "parents", 'b' },
                                       { NULL, 0 } };
static const flagspec from_flags[] = { { "platform", 's' }, { NULL, 0 } };
static const flagspec run_flags[] = {
    { "mount", 'S' }, { "network", 's' }, { "security", 's' }, { "device", 'S' }, { NULL, 0 }
};
static const flagspec hc_flags[] = { { "interval", 's' },     { "timeout", 's' },
                                     { "start-period", 's' }, { "start-interval", 's' },
                                     { "retries", 's' },      { NULL, 0 } };

typedef int (*check_fn)(df_parser *p, const cs_df_instr *in);

static int need_args(df_parser *p, const cs_df_instr *in);
static int need_kvs(df_parser *p, const cs_df_instr *in);
static int one_arg(df_parser *p, const cs_df_instr *in);
static int src_and_dest(df_parser *p, const cs_df_instr *in);
static int from_args(df_parser *p, const cs_df_instr *in);
static int no_blank_names(df_parser *p, const cs_df_instr *in);
static int no_heredoc_dest(df_parser *p, const cs_df_instr *in);
static int no_empty_volume(df_parser *p, const cs_df_instr *in);
static int json_only(df_parser *p, const cs_df_instr *in);
static int trigger(df_parser *p, const cs_df_instr *in);
static int healthcheck(df_parser *p, const cs_df_instr *in);

#define FLAGS df_check_flags

static const struct check_row {
    const flagspec *flags; /* NULL: not checked (BuildKit does not either) */
    check_fn steps[3];     /* in order, up to the first NULL */
} checks[] = {
    [CS_DF_ADD] = { add_flags, { src_and_dest, FLAGS, no_heredoc_dest } },
    [CS_DF_ARG] = { NULL, { need_kvs, no_blank_names } },
    [CS_DF_CMD] = { no_flags, { FLAGS } },
    [CS_DF_COPY] = { copy_flags, { src_and_dest, FLAGS, no_heredoc_dest } },
    [CS_DF_ENTRYPOINT] = { no_flags, { FLAGS } },
    [CS_DF_ENV] = { no_flags, { FLAGS, need_kvs, no_blank_names } },
    [CS_DF_EXPOSE] = { no_flags, { need_args, FLAGS } },
    [CS_DF_FROM] = { from_flags, { from_args, FLAGS } },
    [CS_DF_HEALTHCHECK] = { hc_flags, { need_args, healthcheck } }, /* flags: unless NONE */
    [CS_DF_LABEL] = { no_flags, { FLAGS, need_kvs, no_blank_names } },
    [CS_DF_MAINTAINER] = { no_flags, { one_arg, FLAGS } },
    [CS_DF_ONBUILD] = { no_flags, { need_args, FLAGS, trigger } },
    [CS_DF_RUN] = { run_flags, { FLAGS } },
    [CS_DF_SHELL] = { no_flags, { FLAGS, need_args, json_only } },
    [CS_DF_STOPSIGNAL] = { NULL, { one_arg } },
    [CS_DF_USER] = { no_flags, { one_arg, FLAGS } },
    [CS_DF_VOLUME] = { no_flags, { need_args, FLAGS, no_empty_volume } },
    [CS_DF_WORKDIR] = { no_flags, { one_arg, FLAGS } },
};
#define NCHECKS (sizeof(checks) / sizeof(checks[0]))

int
df_validate(df_parser *p, const cs_df_instr *in)
{
    if ((size_t) in->cmd >= NCHECKS)
        return 0;
    const struct check_row *row = &checks[in->cmd];
    for (size_t i = 0; i < sizeof(row->steps) / sizeof(row->steps[0]) && row->steps[i]; i++) {
        int rc = row->steps[i](p, in);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- flags ---- */

static int
check_flag(df_parser *p, const cs_df_instr *in, size_t i, const flagspec *spec)
{
    const cs_df_flag *f = &in->flags[i];
    const flagspec *s = spec;
    while (s->name && strcmp(s->name, f->name) != 0)
        s++;
    if (!s->name)
        return DF_ERR(p, in->line, "unknown flag: --%s", f->name);
    if (s->type != 'S')
        for (size_t j = 0; j < i; j++)
            if (strcmp(in->flags[j].name, f->name) == 0)
                return DF_ERR(p, in->line, "duplicate flag specified: --%s", f->name);
    if (s->type != 'b')
        return f->value ? 0 : DF_ERR(p, in->line, "missing a value on flag: --%s", f->name);
    if (f->value && !*f->value)
        return DF_ERR(p, in->line, "missing a value on flag: --%s", f->name);
    if (f->value && strcasecmp(f->value, "true") != 0 && strcasecmp(f->value, "false") != 0)
        return DF_ERR(p, in->line, "expecting boolean value for flag --%s, not: %s", f->name,
                      f->value);
    return 0;
}

int
df_check_flags(df_parser *p, const cs_df_instr *in)
{
    const flagspec *spec = (size_t) in->cmd < NCHECKS ? checks[in->cmd].flags : NULL;
    for (size_t i = 0; spec && i < in->nflags; i++) {
        int rc = check_flag(p, in, i, spec);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- argument counts ---- */

static int
need_args(df_parser *p, const cs_df_instr *in)
{
    if (in->nargs == 0)
        return DF_ERR(p, in->line, "%s requires at least one argument", cs_df_cmd_name(in->cmd));
    return 0;
}

static int
need_kvs(df_parser *p, const cs_df_instr *in)
{
    if (in->nkvs == 0)
        return DF_ERR(p, in->line, "%s requires at least one argument", cs_df_cmd_name(in->cmd));
    return 0;
}

static int
one_arg(df_parser *p, const cs_df_instr *in)
{
    if (in->nargs != 1)
        return DF_ERR(p, in->line, "%s requires exactly one argument", cs_df_cmd_name(in->cmd));
    return 0;
}

static int
src_and_dest(df_parser *p, const cs_df_instr *in)
{
    if (in->nargs < 2)
        return DF_ERR(p, in->line,
                      "%s requires at least two arguments, but only one was provided. "
                      "Destination could not be determined",
                      cs_df_cmd_name(in->cmd));
    return 0;
}

static bool
valid_stage_name(const char *s) /* ^[a-z][a-z0-9-_.]*$ */
{
    if (!(*s >= 'a' && *s <= 'z'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'
              || *s == '.'))
            return false;
    return true;
}

/* FROM image [AS name] */
static int
from_args(df_parser *p, const cs_df_instr *in)
{
    if (in->nargs == 3 && strcasecmp(in->args[1], "as") == 0) {
        cs_autofree char *lower = df_lower(cs_xstrdup(in->args[2]));
        if (!valid_stage_name(lower))
            return DF_ERR(p, in->line,
                          "invalid name for build stage: \"%s\", name can't start with a number "
                          "or contain symbols",
                          in->args[2]);
        return 0;
    }
    if (in->nargs != 1)
        return DF_ERR(p, in->line, "FROM requires either one or three arguments");
    return 0;
}

/* ---- rules of their own ---- */

static int
no_blank_names(df_parser *p, const cs_df_instr *in)
{
    for (size_t i = 0; i < in->nkvs; i++)
        if (!*in->kvs[i].key)
            return DF_ERR(p, in->line, "%s names can not be blank", cs_df_cmd_name(in->cmd));
    return 0;
}

static int
no_heredoc_dest(df_parser *p, const cs_df_instr *in)
{
    if (df_is_heredoc_word(in->args[in->nargs - 1]))
        return DF_ERR(p, in->line, "%s cannot accept a heredoc as a destination",
                      cs_df_cmd_name(in->cmd));
    return 0;
}

static int
no_empty_volume(df_parser *p, const cs_df_instr *in)
{
    for (size_t i = 0; i < in->nargs; i++) {
        cs_autofree char *v = cs_strtrim_dup(in->args[i], strlen(in->args[i]));
        if (!*v)
            return DF_ERR(p, in->line, "VOLUME specified can not be an empty string");
    }
    return 0;
}

static int
json_only(df_parser *p, const cs_df_instr *in)
{
    if (!in->json)
        return DF_ERR(p, in->line, "SHELL requires the arguments to be in JSON form");
    return 0;
}

/* ONBUILD: the trigger is checked as an instruction of its own. */
static int
trigger(df_parser *p, const cs_df_instr *in)
{
    const cs_df_instr *t = in->trigger;
    if (t->cmd == CS_DF_ONBUILD)
        return DF_ERR(p, in->line, "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    if (t->cmd == CS_DF_MAINTAINER || t->cmd == CS_DF_FROM)
        return DF_ERR(p, in->line, "%s isn't allowed as an ONBUILD trigger",
                      cs_df_cmd_name(t->cmd));
    return df_validate(p, t);
}

static int
healthcheck(df_parser *p, const cs_df_instr *in)
{
    cs_df_health h = { 0 };
    int rc = cs_df_healthcheck(p->df, in, &h, p->err);
    cs_df_health_release(&h);
    return rc;
}
