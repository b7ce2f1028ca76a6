/* df_health.c - HEALTHCHECK: its type, command and duration flags into a
 * cs_df_health, as BuildKit's parseHealthcheck reads them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cstore/units.h"
#include "df_int.h"

void
cs_df_health_release(cs_df_health *h)
{
    cs_strv_free(h->test);
    h->test = NULL;
}

/* {"NONE"}, or {"CMD", argv...} / {"CMD-SHELL", cmd} after the flags are
 * checked (NONE takes no flags check, as in BuildKit). */
static int
health_test(df_parser *p, const cs_df_instr *in, cs_df_health *out)
{
    cs_strv t = { 0 };
    if (strcasecmp(in->args[0], "NONE") == 0) {
        if (in->nargs > 1)
            return DF_ERR(p, in->line, "HEALTHCHECK NONE takes no arguments");
        cs_strv_add(&t, "NONE");
        out->test = cs_strv_take(&t);
        return 0;
    }
    int rc = df_check_flags(p, in);
    if (rc < 0)
        return rc;
    if (strcasecmp(in->args[0], "CMD") != 0)
        return DF_ERR(p, in->line, "unknown type \"%s\" in HEALTHCHECK (try CMD)", in->args[0]);
    if (in->nargs < 2)
        return DF_ERR(p, in->line, "missing command after HEALTHCHECK CMD");
    cs_strv_add(&t, in->json ? "CMD" : "CMD-SHELL");
    for (size_t i = 1; i < in->nargs; i++)
        cs_strv_add(&t, in->args[i]);
    out->test = cs_strv_take(&t);
    return 0;
}

/* --interval --timeout --start-period --start-interval: Go durations, 0 or
 * at least 1ms. */
static int
health_durations(df_parser *p, const cs_df_instr *in, cs_df_health *out)
{
    static const char *const names[] = { "interval", "timeout", "start-period", "start-interval" };
    int64_t *vals[] = { &out->interval_ns, &out->timeout_ns, &out->start_period_ns,
                        &out->start_interval_ns };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const cs_df_flag *f = cs_df_flag_find(in, names[i]);
        if (!f || !*f->value)
            continue;
        if (!cs_parse_duration(f->value, 0, vals[i]))
            return DF_ERR(p, in->line, "time: invalid duration \"%s\"", f->value);
        if (*vals[i] != 0 && *vals[i] < 1000000)
            return DF_ERR(p, in->line, "interval \"%s\" cannot be less than 1ms", names[i]);
    }
    return 0;
}

static int
health_retries(df_parser *p, const cs_df_instr *in, cs_df_health *out)
{
    const cs_df_flag *r = cs_df_flag_find(in, "retries");
    if (!r || !*r->value)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(r->value, &end, 10);
    if (*end || errno || v > INT32_MAX || v < INT32_MIN)
        return DF_ERR(p, in->line, "invalid --retries value \"%s\"", r->value);
    if (v < 0)
        return DF_ERR(p, in->line, "--retries cannot be negative (%ld)", v);
    out->retries = (int) v;
    return 0;
}

int
cs_df_healthcheck(const cs_df *df, const cs_df_instr *in, cs_df_health *out, cs_error **err)
{
    df_parser p = { .path = df->path, .esc = df->escape, .df = (cs_df *) df, .err = err };
    int rc;
    memset(out, 0, sizeof(*out));
    if (in->nargs == 0)
        return DF_ERR(&p, in->line, "HEALTHCHECK requires at least one argument");
    if ((rc = health_test(&p, in, out)) < 0)
        return rc;
    if (!strcmp(out->test[0], "NONE"))
        return 0;
    if ((rc = health_durations(&p, in, out)) < 0 || (rc = health_retries(&p, in, out)) < 0)
        cs_df_health_release(out);
    return rc;
}
