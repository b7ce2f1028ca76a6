/* test_plan.c - the builder's stage plan and cache-key chain
 * (builder/build_plan.c), driven through the build internals on a temp
 * store: no RUN, so no root needed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "build_int.h"
#include "cstore/store.h"
#include "testutil.h"

#define MAXKEYS 16

/* The build context is the sandbox's work dir. */
typedef test_sandbox fx;

static void
write_dockerfile(fx *f, const char *text)
{
    cs_autofree char *path = cs_path_join(f->work, "Dockerfile");
    assert_int_equal(cs_write_file_atomic(path, text, strlen(text), &f->err), 0);
}

static void
init(fx *f, build *b, cs_build_opts *o, const char *text, const char *target)
{
    write_dockerfile(f, text);
    memset(o, 0, sizeof(*o));
    o->context = f->work;
    o->target = target;
    o->output_fd = -1;
    assert_int_equal(build_init(b, f->s, o, &f->err), 0);
}

/* The key after FROM and after each instruction of the only stage. */
static size_t
keys_of(fx *f, const char *text, cs_digest keys[MAXKEYS])
{
    build b;
    cs_build_opts o;
    init(f, &b, &o, text, NULL);
    bstage *st = &b.st[0];
    assert_int_equal(do_from(&b, 0, &f->err), 0);
    size_t n = 0;
    keys[n++] = st->key;
    for (size_t k = 0; k < st->st->ninstrs; k++) {
        assert_int_equal(do_instr(&b, st, &st->st->instrs[k], k + 2, st->st->ninstrs + 1, &f->err),
                         0);
        keys[n++] = st->key;
    }
    build_release(&b);
    return n;
}

/* a[i] and b[i] are equal (eq) or differ (!eq) for every i in [from, to). */
static void
expect_keys(const cs_digest *a, const cs_digest *b, size_t from, size_t to, bool eq)
{
    for (size_t i = from; i < to; i++)
        if (cs_digest_eq(&a[i], &b[i]) != eq)
            fail_msg("key %zu: %s", i, eq ? "differs" : "is the same");
}

static const char multi[] = "FROM scratch AS a\n"
                            "ENV A=1\n"
                            "FROM scratch AS b\n"
                            "COPY --from=a / /\n"
                            "FROM scratch AS unused\n"
                            "ENV X=1\n"
                            "FROM b AS final\n"
                            "LABEL x=y\n";

static void
plan_needs_only_the_stages_the_target_uses(void **state)
{
    fx *f = *state;
    build b;
    cs_build_opts o;
    init(f, &b, &o, multi, NULL);
    assert_int_equal(b.target, 3);
    assert_int_equal(b.st[0].state, ST_NEEDED);
    assert_int_equal(b.st[1].state, ST_NEEDED);
    assert_int_equal(b.st[2].state, ST_UNUSED);
    assert_int_equal(b.st[3].state, ST_NEEDED);
    build_release(&b);

    init(f, &b, &o, multi, "a");
    assert_int_equal(b.target, 0);
    assert_int_equal(b.st[0].state, ST_NEEDED);
    for (size_t i = 1; i < b.nst; i++)
        assert_int_equal(b.st[i].state, ST_UNUSED);
    build_release(&b);
}

static void
plan_refuses_a_copy_from_a_later_stage(void **state)
{
    fx *f = *state;
    static const char text[] = "FROM scratch AS a\n"
                               "COPY --from=b / /\n"
                               "FROM scratch AS b\n";
    write_dockerfile(f, text);
    build b;
    cs_build_opts o = { .context = f->work, .target = "a", .output_fd = -1 };
    assert_int_equal(build_init(&b, f->s, &o, &f->err), -CS_EPARSE);
    assert_non_null(strstr(f->err->msg, "forward stage reference"));
    build_release(&b);
}

static const char chain[] = "FROM scratch\n"
                            "ENV A=1\n"
                            "WORKDIR /w\n"
                            "LABEL l=1\n"
                            "WORKDIR /x\n";

/* chain with its first line from replaced by the lines to. */
static char *
edited(const char *from, const char *to)
{
    const char *at = strstr(chain, from);
    assert_non_null(at);
    return cs_xasprintf("%.*s%s%s", (int) (at - chain), chain, to, at + strlen(from));
}

static void
key_chain_is_the_same_for_the_same_dockerfile(void **state)
{
    fx *f = *state;
    cs_digest a[MAXKEYS], b[MAXKEYS];
    size_t n = keys_of(f, chain, a);
    assert_int_equal(keys_of(f, chain, b), n);
    expect_keys(a, b, 0, n, true);
    expect_keys(a, a + 1, 0, n - 1, false); /* every instruction moves the chain */
}

static void
changing_an_instruction_changes_its_key_and_every_later_key_only(void **state)
{
    fx *f = *state;
    cs_autofree char *changed = edited("LABEL l=1\n", "LABEL l=2\n");
    cs_digest a[MAXKEYS], b[MAXKEYS];
    size_t n = keys_of(f, chain, a);
    assert_int_equal(keys_of(f, changed, b), n);
    expect_keys(a, b, 0, 3, true);  /* FROM, ENV, WORKDIR */
    expect_keys(a, b, 3, n, false); /* LABEL and what follows */
}

static void
a_metadata_instruction_changes_the_keys_after_it(void **state)
{
    fx *f = *state;
    /* numeric: the base has no /etc/passwd, and WORKDIR now makes its dirs as that user */
    cs_autofree char *with_user = edited("WORKDIR /w\n", "USER 65534\nWORKDIR /w\n");
    cs_autofree char *other_env = edited("ENV A=1\n", "ENV A=2\n");
    cs_digest a[MAXKEYS], b[MAXKEYS], c[MAXKEYS];
    size_t n = keys_of(f, chain, a);
    assert_int_equal(keys_of(f, with_user, b), n + 1);
    assert_true(cs_digest_eq(&a[1], &b[1]));
    assert_false(cs_digest_eq(&a[2], &b[3])); /* the same WORKDIR after USER */
    assert_false(cs_digest_eq(&a[n - 1], &b[n]));
    assert_int_equal(keys_of(f, other_env, c), n);
    expect_keys(a, c, 0, 1, true);
    expect_keys(a, c, 1, n, false);
}

int
main(void)
{
#define T(n) cmocka_unit_test_setup_teardown(n, test_sandbox_setup, test_sandbox_teardown)
    const struct CMUnitTest tests[] = {
        T(plan_needs_only_the_stages_the_target_uses),
        T(plan_refuses_a_copy_from_a_later_stage),
        T(key_chain_is_the_same_for_the_same_dockerfile),
        T(changing_an_instruction_changes_its_key_and_every_later_key_only),
        T(a_metadata_instruction_changes_the_keys_after_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
