/* test_ocispec.c - the config.json a run's bundle gets (builder/ocispec.c).
 * Pure JSON: needs no root, runtime or overlayfs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cstore/util.h"
#include "ocispec.h"

static char *argv_sh[] = { "sh", "-c", "true", NULL };

static cs_run_opts
opts(void)
{
    static const char *const lowers[] = { "/snap/a", "/snap/b" };
    static char *const env[] = { "HOME=/root", NULL };
    return (cs_run_opts){ .lowers = lowers,
                          .nlowers = 2,
                          .argv = argv_sh,
                          .env = env,
                          .cwd = "/",
                          .out_fd = -1,
                          .err_fd = -1 };
}

static json_t *
spec_ok(const cs_run_opts *o)
{
    json_t *cfg = NULL;
    cs_error *err = NULL;
    int rc = cs_ocispec_new(o, NULL, &cfg, &err);
    if (rc < 0)
        fail_msg("cs_ocispec_new: %s", err->msg);
    assert_non_null(cfg);
    return cfg;
}

static int
spec_fails(const cs_run_opts *o, const char *msg_part)
{
    json_t *cfg = NULL;
    cs_error *err = NULL;
    int rc = cs_ocispec_new(o, NULL, &cfg, &err);
    assert_true(rc < 0);
    assert_null(cfg);
    assert_non_null(err);
    assert_int_equal(rc, -(int) err->code);
    if (!strstr(err->msg, msg_part))
        fail_msg("message '%s' lacks '%s'", err->msg, msg_part);
    cs_error_free(err);
    return rc;
}

static json_t *
process_get(json_t *cfg, const char *key)
{
    return json_object_get(json_object_get(cfg, "process"), key);
}

/* arr holds the string s, as an element or (with key) as an element's key. */
static bool
has_string_at(json_t *arr, const char *key, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *x = json_string_value(key ? json_object_get(v, key) : v);
        if (x && !strcmp(x, s))
            return true;
    }
    return false;
}

static bool
has_string(json_t *arr, const char *s)
{
    return has_string_at(arr, NULL, s);
}

/* The spec of opts() unchanged. */
static json_t *
default_spec(void)
{
    cs_run_opts o = opts();
    return spec_ok(&o);
}

static void
root_gets_the_default_capabilities(void **state)
{
    (void) state;
    json_t *cfg = default_spec();
    json_t *caps = process_get(cfg, "capabilities");
    size_t n = json_array_size(json_object_get(caps, "bounding"));
    assert_int_equal(n, 14);
    assert_int_equal(json_array_size(json_object_get(caps, "effective")), n);
    assert_int_equal(json_array_size(json_object_get(caps, "permitted")), n);
    assert_true(has_string(json_object_get(caps, "effective"), "CAP_CHOWN"));
    assert_int_equal(json_array_size(json_object_get(caps, "inheritable")), 0);
    assert_int_equal(json_array_size(json_object_get(caps, "ambient")), 0);
    json_decref(cfg);
}

static void
non_root_gets_no_effective_or_permitted_capabilities(void **state)
{
    (void) state;
    cs_run_opts o = opts();
    static const uint32_t gids[] = { 5, 20 };
    o.uid = 1000;
    o.gid = 1001;
    o.gids = gids;
    o.ngids = 2;
    json_t *cfg = spec_ok(&o);
    json_t *caps = process_get(cfg, "capabilities");
    assert_int_equal(json_array_size(json_object_get(caps, "bounding")), 14);
    assert_int_equal(json_array_size(json_object_get(caps, "effective")), 0);
    assert_int_equal(json_array_size(json_object_get(caps, "permitted")), 0);
    json_t *user = process_get(cfg, "user");
    assert_int_equal(json_integer_value(json_object_get(user, "uid")), 1000);
    assert_int_equal(json_integer_value(json_object_get(user, "gid")), 1001);
    json_t *ag = json_object_get(user, "additionalGids");
    assert_int_equal(json_array_size(ag), 2);
    assert_int_equal(json_integer_value(json_array_get(ag, 1)), 20);
    json_decref(cfg);
}

static bool
has_namespace(json_t *cfg, const char *type)
{
    return has_string_at(json_object_get(json_object_get(cfg, "linux"), "namespaces"), "type",
                         type);
}

static void
network_none_adds_a_network_namespace(void **state)
{
    (void) state;
    cs_run_opts o = opts();
    json_t *cfg = spec_ok(&o);
    assert_true(has_namespace(cfg, "pid"));
    assert_true(has_namespace(cfg, "mount"));
    assert_false(has_namespace(cfg, "network")); /* the host's */
    json_decref(cfg);
    o.network_none = true;
    cfg = spec_ok(&o);
    assert_true(has_namespace(cfg, "network"));
    json_decref(cfg);
}

static size_t
depth(const char *p)
{
    size_t d = 0;
    for (; *p; p++)
        d += *p == '/' && p[1];
    return d;
}

static void
mounts_are_sorted_parents_first_and_replace_defaults(void **state)
{
    (void) state;
    cs_run_opts o = opts();
    cs_run_mount m[] = {
        { .type = "tmpfs", .target = "/a/b/c" },
        { .type = "bind", .source = "/host/share", .target = "/a", .readonly = true },
        { .type = "tmpfs", .target = "/dev/shm/" }, /* replaces the default /dev/shm */
        { .type = "tmpfs", .target = "/a/b", .readonly = true },
    };
    o.mounts = m;
    o.nmounts = 4;
    json_t *cfg = spec_ok(&o);
    json_t *mounts = json_object_get(cfg, "mounts");
    size_t i, last = 0, shm = 0;
    json_t *v;
    int pos_a = -1, pos_ab = -1, pos_abc = -1;
    json_array_foreach(mounts, i, v)
    {
        const char *d = json_string_value(json_object_get(v, "destination"));
        assert_true(depth(d) >= last);
        last = depth(d);
        shm += !strncmp(d, "/dev/shm", 8);
        if (!strcmp(d, "/a"))
            pos_a = (int) i;
        if (!strcmp(d, "/a/b"))
            pos_ab = (int) i;
        if (!strcmp(d, "/a/b/c"))
            pos_abc = (int) i;
    }
    assert_int_equal(shm, 1);
    assert_true(pos_a >= 0 && pos_a < pos_ab && pos_ab < pos_abc);
    json_t *a = json_array_get(mounts, (size_t) pos_a);
    assert_string_equal(json_string_value(json_object_get(a, "source")), "/host/share");
    assert_true(has_string(json_object_get(a, "options"), "ro"));
    /* /proc (depth 1) comes before /dev/pts (depth 2), as given */
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(mounts, 0), "destination")), "/proc");
    json_decref(cfg);
}

static void
a_default_path_is_added_only_when_env_has_none(void **state)
{
    (void) state;
    cs_run_opts o = opts();
    json_t *cfg = spec_ok(&o);
    json_t *env = process_get(cfg, "env");
    assert_true(has_string(env, "HOME=/root"));
    assert_true(has_string(env, CS_OCISPEC_DEFAULT_PATH));
    json_decref(cfg);
    static char *const env2[] = { "PATH=/bin", NULL };
    o.env = env2;
    cfg = spec_ok(&o);
    env = process_get(cfg, "env");
    assert_int_equal(json_array_size(env), 1);
    assert_true(has_string(env, "PATH=/bin"));
    assert_string_equal(json_string_value(process_get(cfg, "cwd")), "/");
    json_decref(cfg);
}

static void
bad_options_are_refused(void **state)
{
    (void) state;
    cs_run_opts o = opts();
    o.cwd = "work";
    assert_int_equal(spec_fails(&o, "working dir 'work' is not absolute"), -CS_EINVAL);
    o = opts();
    char *none[] = { NULL };
    o.argv = none;
    assert_int_equal(spec_fails(&o, "no command"), -CS_EINVAL);
    o = opts();
    cs_run_mount rel = { .type = "tmpfs", .target = "rel" };
    o.mounts = &rel;
    o.nmounts = 1;
    assert_int_equal(spec_fails(&o, "is not absolute"), -CS_EINVAL);
    cs_run_mount nosrc = { .type = "bind", .target = "/x" };
    o.mounts = &nosrc;
    assert_int_equal(spec_fails(&o, "has no source"), -CS_EINVAL);
    cs_run_mount odd = { .type = "cache", .target = "/x" };
    o.mounts = &odd;
    assert_int_equal(spec_fails(&o, "mount type 'cache'"), -CS_EUNSUPPORTED);
    o = opts();
    char *bad_utf8[] = { "echo", "\xff\xfe", NULL };
    o.argv = bad_utf8;
    assert_int_equal(spec_fails(&o, "not valid utf-8"), -CS_EINVAL);
}

static void
clean_rel_normalizes_destinations(void **state)
{
    (void) state;
    cs_autofree char *a = cs_ocispec_clean_rel("/a//./b/");
    assert_string_equal(a, "a/b");
    assert_null(cs_ocispec_clean_rel("/"));
    assert_null(cs_ocispec_clean_rel("/a/../b"));
}

static void
the_spec_is_written_as_json(void **state)
{
    const char *dir = ((test_sandbox *) *state)->work;
    json_t *cfg = default_spec();
    cs_autofree char *path = cs_path_join(dir, "config.json");
    cs_error *err = NULL;
    assert_int_equal(cs_ocispec_write(cfg, path, &err), 0);
    json_t *back = json_load_file(path, 0, NULL);
    assert_non_null(back);
    assert_true(json_equal(cfg, back));
    assert_string_equal(json_string_value(json_object_get(back, "ociVersion")), "1.0.2");
    json_decref(back);
    json_decref(cfg);
    /* an unlimited rlimit: -1 in the object, 2^64-1 in the file */
    cs_run_opts o = opts();
    cs_run_rlimit rl = { "RLIMIT_CORE", UINT64_MAX, UINT64_MAX };
    o.rlimits = &rl;
    o.nrlimits = 1;
    cfg = spec_ok(&o);
    assert_int_equal(cs_ocispec_write(cfg, path, &err), 0);
    json_decref(cfg);
    cs_buf text;
    cs_buf_init(&text);
    assert_int_equal(cs_read_file(path, 1 << 20, &text, &err), 0);
    cs_buf_u8(&text, 0);
    assert_non_null(strstr((const char *) text.data, "\"type\":\"RLIMIT_CORE\""));
    assert_non_null(strstr((const char *) text.data, "\"hard\":18446744073709551615"));
    assert_non_null(strstr((const char *) text.data, "\"soft\":18446744073709551615"));
    cs_buf_release(&text);
    cs_autofree char *nowhere = cs_path_join(dir, "no/such/dir/config.json");
    cfg = default_spec();
    assert_int_equal(cs_ocispec_write(cfg, nowhere, &err), -CS_EIO);
    cs_error_free(err);
    json_decref(cfg);
}

/* The element of arr whose key is s. */
static json_t *
find_at(json_t *arr, const char *key, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *x = json_string_value(json_object_get(v, key));
        if (x && !strcmp(x, s))
            return v;
    }
    return NULL;
}

static json_t *
rlimit_of(json_t *cfg, const char *type)
{
    return find_at(process_get(cfg, "rlimits"), "type", type);
}

static json_t *
mount_at(json_t *cfg, const char *dst)
{
    return find_at(json_object_get(cfg, "mounts"), "destination", dst);
}

static void
rlimits_replace_the_default_of_their_type_and_add_the_others(void **state)
{
    (void) state;
    json_t *cfg = default_spec();
    assert_int_equal(json_array_size(process_get(cfg, "rlimits")), 1);
    assert_non_null(rlimit_of(cfg, "RLIMIT_NOFILE"));
    json_decref(cfg);
    cs_run_opts o = opts();
    const cs_run_rlimit rl[] = {
        { .type = "RLIMIT_NOFILE", .soft = 1024, .hard = 2048 },
        { .type = "RLIMIT_CORE", .soft = 0, .hard = 0 },
        { .type = "RLIMIT_NOFILE", .soft = 512, .hard = 4096 }, /* the last one wins */
    };
    o.rlimits = rl;
    o.nrlimits = 3;
    cfg = spec_ok(&o);
    assert_int_equal(json_array_size(process_get(cfg, "rlimits")), 2);
    json_t *nofile = rlimit_of(cfg, "RLIMIT_NOFILE");
    assert_int_equal(json_integer_value(json_object_get(nofile, "soft")), 512);
    assert_int_equal(json_integer_value(json_object_get(nofile, "hard")), 4096);
    json_t *core = rlimit_of(cfg, "RLIMIT_CORE");
    assert_non_null(core);
    assert_int_equal(json_integer_value(json_object_get(core, "hard")), 0);
    json_decref(cfg);
}

static void
ulimits_are_parsed_as_docker_does(void **state)
{
    (void) state;
    cs_run_rlimit rl;
    cs_error *err = NULL;
    assert_int_equal(cs_run_rlimit_parse("nofile=1024:2048", &rl, &err), 0);
    assert_string_equal(rl.type, "RLIMIT_NOFILE");
    assert_int_equal(rl.soft, 1024);
    assert_int_equal(rl.hard, 2048);
    assert_int_equal(cs_run_rlimit_parse("memlock=65536", &rl, &err), 0);
    assert_string_equal(rl.type, "RLIMIT_MEMLOCK");
    assert_int_equal(rl.hard, 65536); /* hard defaults to soft */
    assert_int_equal(cs_run_rlimit_parse("stack=8192:8192", &rl, &err), 0);
    assert_string_equal(rl.type, "RLIMIT_STACK");
    /* -1 is unlimited (go-units): RLIM_INFINITY, soft and hard */
    assert_int_equal(cs_run_rlimit_parse("nofile=-1", &rl, &err), 0);
    assert_true(rl.soft == UINT64_MAX && rl.hard == UINT64_MAX);
    assert_int_equal(cs_run_rlimit_parse("core=5:-1", &rl, &err), 0);
    assert_true(rl.soft == 5 && rl.hard == UINT64_MAX);
    static const struct {
        const char *spec, *msg;
    } bad[] = {
        { "nofile", "invalid ulimit argument: nofile" },
        { "files=10", "invalid ulimit type: files" },
        { "nofile=2048:1024", "soft limit must be less than or equal to hard limit: 2048 > 1024" },
        { "nofile=1:2:3", "can only have up to two" },
        { "nofile=x", "invalid ulimit value" },
        { "nofile=", "invalid ulimit value" },
        { "core=-1:5", "soft: -1 (unlimited), hard: 5" },
        { "core=-2", "invalid ulimit value" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cs_run_rlimit_parse(bad[i].spec, &rl, &err), -CS_EINVAL);
        if (!strstr(err->msg, bad[i].msg))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].spec, err->msg, bad[i].msg);
        cs_error_clear(&err);
    }
}

static const char *
shm_size_option(json_t *cfg)
{
    size_t i;
    json_t *opt;
    json_array_foreach(json_object_get(mount_at(cfg, "/dev/shm"), "options"), i, opt)
    {
        if (!strncmp(json_string_value(opt), "size=", 5))
            return json_string_value(opt);
    }
    return NULL;
}

static void
shm_size_sets_the_size_of_the_dev_shm_tmpfs(void **state)
{
    (void) state;
    json_t *cfg = default_spec();
    assert_string_equal(shm_size_option(cfg), "size=65536k"); /* Docker's 64m */
    json_decref(cfg);
    cs_run_opts o = opts();
    o.shm_size = 128ull << 20;
    cfg = spec_ok(&o);
    assert_string_equal(shm_size_option(cfg), "size=131072k");
    json_decref(cfg);
    o.shm_size = 1000;
    cfg = spec_ok(&o);
    assert_string_equal(shm_size_option(cfg), "size=1000");
    json_decref(cfg);
}

static void
add_host_specs_become_hosts_lines(void **state)
{
    (void) state;
    static const struct {
        const char *spec, *line;
    } good[] = {
        { "db:10.0.0.2", "10.0.0.2\tdb" },
        { "db=10.0.0.2", "10.0.0.2\tdb" },
        { "v6:::1", "::1\tv6" },
        { "v6=[fe80::1]", "fe80::1\tv6" },
    };
    cs_error *err = NULL;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cs_autofree char *line = NULL;
        assert_int_equal(cs_run_host_parse(good[i].spec, &line, &err), 0);
        assert_string_equal(line, good[i].line);
    }
    static const char *const bad[] = { "nohost", ":10.0.0.2", "db:notanip", "db:" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *line = NULL;
        assert_int_equal(cs_run_host_parse(bad[i], &line, &err), -CS_EINVAL);
        assert_null(line);
        assert_non_null(strstr(err->msg, "add-host"));
        cs_error_clear(&err);
    }
}

static void
extra_hosts_go_into_a_generated_hosts_file_bound_read_only(void **state)
{
    const char *dir = ((test_sandbox *) *state)->work;
    cs_run_opts o = opts();
    char *const hosts[] = { "10.0.0.2\tdb", "::1\tv6", NULL };
    o.hosts = hosts;
    cs_autofree char *path = cs_path_join(dir, "hosts");
    cs_error *err = NULL;
    assert_int_equal(cs_ocispec_write_hosts(&o, path, &err), 0);
    cs_buf host, got;
    cs_buf_init(&host);
    cs_buf_init(&got);
    if (cs_read_file("/etc/hosts", 1 << 20, &host, NULL) < 0)
        host.len = 0;
    cs_buf_append(&host, "", 1);
    const char *h = (const char *) host.data;
    cs_autofree char *want =
        cs_xasprintf("%s%s10.0.0.2\tdb\n::1\tv6\n", h, *h && h[strlen(h) - 1] != '\n' ? "\n" : "");
    assert_int_equal(cs_read_file(path, 1 << 20, &got, &err), 0);
    cs_buf_append(&got, "", 1);
    assert_string_equal((const char *) got.data, want);
    cs_buf_release(&host);
    cs_buf_release(&got);
    json_t *cfg = NULL;
    assert_int_equal(cs_ocispec_new(&o, path, &cfg, &err), 0);
    json_t *m = mount_at(cfg, "/etc/hosts");
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "source")), path);
    assert_true(has_string(json_object_get(m, "options"), "ro"));
    json_decref(cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(root_gets_the_default_capabilities),
        cmocka_unit_test(non_root_gets_no_effective_or_permitted_capabilities),
        cmocka_unit_test(network_none_adds_a_network_namespace),
        cmocka_unit_test(mounts_are_sorted_parents_first_and_replace_defaults),
        cmocka_unit_test(a_default_path_is_added_only_when_env_has_none),
        cmocka_unit_test(bad_options_are_refused),
        cmocka_unit_test(clean_rel_normalizes_destinations),
        cmocka_unit_test_setup_teardown(the_spec_is_written_as_json, test_sandbox_setup,
                                        test_sandbox_teardown),
        cmocka_unit_test(rlimits_replace_the_default_of_their_type_and_add_the_others),
        cmocka_unit_test(ulimits_are_parsed_as_docker_does),
        cmocka_unit_test(shm_size_sets_the_size_of_the_dev_shm_tmpfs),
        cmocka_unit_test(add_host_specs_become_hosts_lines),
        cmocka_unit_test_setup_teardown(extra_hosts_go_into_a_generated_hosts_file_bound_read_only,
                                        test_sandbox_setup, test_sandbox_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
