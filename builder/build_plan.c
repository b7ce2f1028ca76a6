/* build_plan.c - which stages a target needs (the plan) and the cache-key
 * chain: each instruction's key hashes the key before it. */
#include <string.h>
#include "build_int.h"
#include "run_mountflags.h"

long
stage_ref(build *b, const char *name, size_t before)
{
    const cs_df_stage *s = cs_df_stage_find(b->df, name);
    if (!s || named_context(b, name)) /* a named context overrides the stage */
        return -1;
    if (s->index >= before)
        return -2;
    return (long) s->index;
}

/* Stage i needs stage ref done first: planned, and in i's deps. */
static int
plan_dep(build *b, size_t i, size_t ref, cs_error **err)
{
    bstage *st = &b->st[i];
    for (size_t k = 0; k < st->ndeps; k++)
        if (st->deps[k] == ref)
            return 0;
    st->deps = cs_xrealloc(st->deps, (st->ndeps + 1) * sizeof(size_t));
    st->deps[st->ndeps++] = ref;
    return plan(b, ref, err);
}

/* The stage a RUN --mount=...,from=STAGE names (-1: none), planned first. A
 * mount spec that does not parse is reported when the RUN runs. */
static int
plan_mount(build *b, size_t i, const cs_df_instr *in, const char *value, cs_error **err)
{
    cs_error *tmp = NULL;
    cs_autofree char *spec = NULL;
    cs_runmount m;
    if (cs_df_word(b->df, in, value, b->global, &spec, &tmp) < 0
        || cs_runmount_parse(spec, &m, &tmp) < 0) {
        cs_error_clear(&tmp);
        return 0;
    }
    long ref = m.from ? stage_ref(b, m.from, i) : -1;
    bool self = m.from && cs_df_stage_find(b->df, m.from) == b->st[i].st;
    cs_runmount_release(&m);
    if (ref == -2 || self)
        return cs_err(err, CS_EPARSE, 0,
                      "%s:%d: RUN --mount from a later stage or itself (circular or "
                      "forward stage reference)",
                      b->df_path, in->line);
    return ref >= 0 ? plan_dep(b, i, (size_t) ref, err) : 0;
}

/* COPY --from=STAGE (expanded with the global scope, as BuildKit plans). */
static int
plan_copy_from(build *b, size_t i, const cs_df_instr *in, cs_error **err)
{
    cs_autofree char *from = NULL;
    int r = cs_df_flag_expand(b->df, in, "from", b->global, &from, err);
    if (r < 0 || !from)
        return r;
    long ref = stage_ref(b, from, i);
    if (ref == -2 || cs_df_stage_find(b->df, from) == b->st[i].st)
        return cs_err(err, CS_EPARSE, 0,
                      "%s:%d: COPY --from=%s refers to this or a later stage (circular or "
                      "forward stage reference)",
                      b->df_path, in->line, from);
    return ref >= 0 ? plan_dep(b, i, (size_t) ref, err) : 0;
}

static int
plan_instr(build *b, size_t i, const cs_df_instr *in, cs_error **err)
{
    int r = 0;
    if (in->cmd == CS_DF_COPY || in->cmd == CS_DF_ADD)
        return plan_copy_from(b, i, in, err);
    if (in->cmd != CS_DF_RUN)
        return 0;
    for (size_t f = 0; f < in->nflags && r == 0; f++)
        if (!strcmp(in->flags[f].name, "mount") && in->flags[f].value)
            r = plan_mount(b, i, in, in->flags[f].value, err);
    return r;
}

int
plan(build *b, size_t i, cs_error **err)
{
    bstage *st = &b->st[i];
    if (st->state == ST_NEEDED)
        return 0;
    st->state = ST_NEEDED;
    cs_autofree char *base = NULL, *platform = NULL;
    int r = cs_df_stage_from(b->df, st->st, b->global, &base, &platform, err);
    if (r < 0)
        return r;
    long ref = stage_ref(b, base, i);
    if (ref >= 0 && (r = plan_dep(b, i, (size_t) ref, err)) < 0)
        return r;
    for (size_t k = 0; k < st->st->ninstrs && r == 0; k++)
        r = plan_instr(b, i, &st->st->instrs[k], err);
    return r;
}

void
hash_str(cs_sha256_ctx *h, const char *s)
{
    uint8_t len[4];
    size_t n = s ? strlen(s) : 0;
    cs_be32_put(len, (uint32_t) n);
    cs_sha256_update(h, len, 4);
    cs_sha256_update(h, s, n);
}

void
key_metadata(const bstage *st, const cs_df_instr *in, cs_digest *out)
{
    cs_sha256_ctx *kh = cs_sha256_new();
    cs_sha256_update(kh, st->key.b, 32);
    hash_str(kh, cs_df_cmd_name(in->cmd));
    hash_str(kh, in->original);
    size_t nenv = cs_df_env_count(st->env);
    for (size_t i = 0; i < nenv; i++) {
        const char *k, *v;
        cs_df_env_at(st->env, i, &k, &v);
        hash_str(kh, k);
        hash_str(kh, v);
    }
    cs_sha256_final(kh, out);
    cs_sha256_free(kh);
}

/* Stage threads note at once: b->mu guards res. */
void
build_note(build *b, cs_digest **v, size_t *n, const cs_digest *d)
{
    build_lock(b);
    bool seen = false;
    for (size_t i = 0; i < *n && !seen; i++)
        seen = cs_digest_eq(&(*v)[i], d);
    if (!seen && (*n & (*n - 1)) == 0) /* at a power of two: double */
        *v = cs_xrealloc(*v, (*n ? *n * 2 : 1) * sizeof(cs_digest));
    if (!seen)
        (*v)[(*n)++] = *d;
    build_unlock(b);
}

int
cache_lookup(build *b, const cs_digest *key, cs_cache_entry *e, cs_error **err)
{
    build_note(b, &b->res.keys, &b->res.nkeys, key);
    cs_error *tmp = NULL;
    int r = b->o->no_cache ? -CS_ENOTFOUND : cs_cache_get(b->db, NULL, key, e, &tmp);
    if (r == -CS_ENOTFOUND || r == -CS_ECORRUPT) { /* a miss: a layer will be written */
        build_lock(b);
        b->missed = true; /* the diff ids' thread starts with the work (build_int.h) */
        build_unlock(b);
    }
    if (r == -CS_ENOTFOUND) {
        cs_error_clear(&tmp);
        return 0;
    }
    if (r == -CS_ECORRUPT) { /* a miss: the new entry replaces it */
        cs_store_warn_error(b->s, "build cache", &tmp);
        return 0;
    }
    if (r < 0) {
        if (err && !*err)
            *err = cs_steal(&tmp);
        cs_error_clear(&tmp);
        return r;
    }
    build_lock(b);
    if (b->nhits == b->caphits) {
        b->caphits = b->caphits ? b->caphits * 2 : 16;
        b->hits = cs_xrealloc(b->hits, b->caphits * sizeof(cs_digest));
    }
    b->hits[b->nhits++] = *key;
    build_unlock(b);
    return 1;
}
