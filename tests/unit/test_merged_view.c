/* test_merged_view.c - the view of a layer stack (cs_merged_view_*) answers
 * every lookup and resolution exactly as the merged tree cs_merged_build
 * makes: random stacks with whiteouts, opaque dirs, replacements, orphans,
 * symlinks and hardlinks, checked path by path against the tree. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstore/merged.h"
#include "cstore/oneshot.h"
#include "cstore/store.h"
#include "cstore/strv.h"
#include "cstore/tree.h"

typedef test_sandbox fx;

static uint64_t rng;

static unsigned
rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned) (rng % n);
}

static const char *const names[] = { "a", "b", "c", "a.x", "a-y", "d" };
#define NNAMES (sizeof(names) / sizeof(names[0]))

/* A random clean path of 1 to 3 components. */
static char *
rnd_path(void)
{
    int depth = 1 + (int) rnd(3);
    char *p = cs_xstrdup(names[rnd(NNAMES)]);
    for (int i = 1; i < depth; i++) {
        char *q = cs_xasprintf("%s/%s", p, names[rnd(NNAMES)]);
        free(p);
        p = q;
    }
    return p;
}

/* One random layer; every path it names goes to *seen. Hardlinks point at
 * a file of this layer or at any path of the layers below (never at a
 * hardlink of the same layer: the merged tree's fix order within a layer
 * decides such chains). */
static cs_tree *
rnd_layer(cs_strv *seen, size_t nbelow)
{
    cs_tree *t = cs_tree_new();
    int n = 1 + (int) rnd(12);
    for (int i = 0; i < n; i++) {
        cs_autofree char *p = rnd_path();
        unsigned kind = rnd(10);
        cs_entry *e;
        if (kind <= 2) {
            e = test_tree_add(t, p, CS_E_DIR);
            e->mode = 0700 + rnd(2) * 055;
        } else if (kind <= 4) {
            e = test_tree_add(t, p, CS_E_FILE);
            e->size = 1 + rnd(100);
            e->has_content = true;
            test_fill_random(e->content.b, 32, rng);
        } else if (kind == 5) {
            e = test_tree_add(t, p, CS_E_SYMLINK);
            cs_autofree char *tg = rnd_path();
            e->link = rnd(3) ? cs_xasprintf("%s%s", rnd(2) ? "/" : "../", tg) : cs_xstrdup(tg);
        } else if (kind == 6 && (nbelow || t->n)) {
            size_t k = rnd((unsigned) (nbelow + t->n));
            const char *tg = k < nbelow ? seen->v[k] : t->e[k - nbelow].path;
            if (k >= nbelow && t->e[k - nbelow].type != CS_E_FILE)
                continue;
            e = test_tree_add(t, p, CS_E_HARDLINK);
            e->link = cs_xstrdup(tg);
        } else if (kind == 7) {
            char *sl = strrchr(p, '/');
            cs_autofree char *wh = sl ? cs_xasprintf("%.*s/.wh.%s", (int) (sl - p), p, sl + 1)
                                      : cs_xasprintf(".wh.%s", p);
            test_tree_add(t, wh, CS_E_FILE);
        } else if (kind == 8) {
            char *sl = strrchr(p, '/');
            cs_autofree char *op = sl ? cs_xasprintf("%.*s/.wh..wh..opq", (int) (sl - p), p)
                                      : cs_xstrdup(rnd(4) ? "a/.wh..wh..opq" : ".wh..wh..opq");
            test_tree_add(t, op, CS_E_FILE);
        } else {
            cs_autofree char *pl = cs_xasprintf("%s/.wh..wh.plnk", p);
            test_tree_add(t, pl, CS_E_FILE);
        }
    }
    cs_tree_sort(t);
    for (size_t i = 0; i < t->n; i++)
        cs_strv_add(seen, t->e[i].path);
    return t;
}

static void
assert_same_entry(const char *what, const char *path, const cs_entry *m, const cs_entry *v)
{
    if (!m != !v)
        fail_msg("%s '%s': merged tree %s, view %s", what, path, m ? "has it" : "has none",
                 v ? "has it" : "has none");
    if (!m)
        return;
    if (strcmp(m->path, v->path) || m->type != v->type || m->mode != v->mode || m->size != v->size
        || m->has_content != v->has_content
        || (m->has_content && !cs_digest_eq(&m->content, &v->content))
        || strcmp(m->link ? m->link : "", v->link ? v->link : ""))
        fail_msg("%s '%s': the view's entry differs from the merged tree's", what, path);
}

static void
compare_path(cs_tree *m, cs_merged_view *v, const char *path)
{
    cs_error *err = NULL;
    const cs_entry *ve = NULL;
    assert_int_equal(cs_merged_view_find(v, path, &ve, &err), 0);
    assert_same_entry("find", path, cs_tree_find(m, path), ve);
    for (int follow = 0; follow < 2; follow++) {
        char *mr = NULL, *vr = NULL;
        const cs_entry *me = NULL;
        cs_error *merr = NULL, *verr = NULL;
        int a = cs_tree_resolve(m, path, follow, &mr, &me, &merr);
        int b = cs_merged_view_resolve(v, path, follow, &vr, &ve, &verr);
        if (a != b)
            fail_msg("resolve '%s' (follow %d): merged tree %d, view %d", path, follow, a, b);
        assert_string_equal(mr ? mr : "-", vr ? vr : "-");
        assert_same_entry("resolve", path, me, ve);
        assert_string_equal(merr ? merr->msg : "", verr ? verr->msg : "");
        cs_error_free(merr);
        cs_error_free(verr);
        cs_free_all(mr, vr);
    }
}

/* The paths seen, their parents, and the names a whiteout would hide. */
static void
compare_all(cs_tree *m, cs_merged_view *v, cs_strv *seen)
{
    for (size_t i = 0; i < seen->n; i++) {
        cs_autofree char *p = cs_xstrdup(seen->v[i]);
        for (char *sl; p;) {
            compare_path(m, v, p);
            char *wh = strstr(p, ".wh.");
            if (wh && strcmp(wh, ".wh..wh..opq")) {
                cs_autofree char *hid = cs_xasprintf("%.*s%s", (int) (wh - p), p, wh + 4);
                compare_path(m, v, hid);
            }
            if (!(sl = strrchr(p, '/')))
                break;
            *sl = 0;
        }
    }
    for (int i = 0; i < 40; i++) {
        cs_autofree char *p = rnd_path();
        compare_path(m, v, p);
    }
}

static void
a_view_answers_as_the_merged_tree_for_random_stacks(void **state)
{
    fx *f = *state;
    cs_db *db = cs_store_db(f->s);
    for (uint64_t seed = 1; seed <= 300; seed++) {
        rng = seed * 0x9E3779B97F4A7C15ull;
        size_t n = rnd(5); /* 0 to 4 layers */
        cs_strv seen = { 0 };
        cs_digest d[4];
        MDB_txn *txn;
        assert_int_equal(cs_db_begin(db, 0, &txn, &f->err), 0);
        for (size_t k = 0; k < n; k++) {
            cs_tree *t = rnd_layer(&seen, seen.n);
            assert_int_equal(cs_tree_put(db, txn, t, &d[k], &f->err), 0);
            cs_tree_free(t);
        }
        assert_int_equal(cs_db_commit(txn, &f->err), 0);
        cs_tree *m = NULL;
        assert_int_equal(cs_merged_load(db, d, n, &m, &f->err), 0);
        cs_merged_view *v = NULL;
        assert_int_equal(cs_merged_view_open(db, d, n, &v, &f->err), 0);
        compare_all(m, v, &seen);
        for (size_t i = 0; i < m->n; i++) /* and every entry is found */
            compare_path(m, v, m->e[i].path);
        cs_merged_view_free(v);
        cs_tree_free(m);
        cs_strv_release(&seen);
    }
}

static void
a_view_of_a_missing_layer_fails_not_found(void **state)
{
    fx *f = *state;
    cs_digest d;
    memset(&d, 0xab, sizeof(d));
    cs_merged_view *v = (cs_merged_view *) 1;
    assert_int_equal(cs_merged_view_open(cs_store_db(f->s), &d, 1, &v, &f->err), -CS_ENOTFOUND);
    assert_non_null(strstr(f->err->msg, "layer 1 of 1"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_view_answers_as_the_merged_tree_for_random_stacks,
                                        test_sandbox_setup, test_sandbox_teardown),
        cmocka_unit_test_setup_teardown(a_view_of_a_missing_layer_fails_not_found,
                                        test_sandbox_setup, test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
