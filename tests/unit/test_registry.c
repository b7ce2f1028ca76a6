/* test_registry.c - the registry client's pure parts: references as docker
 * parses them, WWW-Authenticate challenges, the plain-http rule, and the
 * credentials docker and podman configs hold. The client against a real
 * registry: tests/integration/t_registry_*.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cstore/strv.h"
#include "regauth.h"
#include "registry.h"
#include "regref.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct ref_row {
    const char *in;
    const char *domain, *host, *repo, *tag, *digest, *name;
} ref_row;

static void
references_parse_as_docker_does(void **state)
{
    (void) state;
    static const ref_row rows[] = {
        { "golang", "docker.io", "registry-1.docker.io", "library/golang", "latest", NULL,
          "docker.io/library/golang:latest" },
        { "golang:1.22", "docker.io", "registry-1.docker.io", "library/golang", "1.22", NULL,
          "docker.io/library/golang:1.22" },
        { "ghcr.io/o/r:t", "ghcr.io", "ghcr.io", "o/r", "t", NULL, "ghcr.io/o/r:t" },
        { "name@sha256:" D64, "docker.io", "registry-1.docker.io", "library/name", NULL,
          "sha256:" D64, "docker.io/library/name:latest" },
        { "127.0.0.1:5000/x/y:z", "127.0.0.1:5000", "127.0.0.1:5000", "x/y", "z", NULL,
          "127.0.0.1:5000/x/y:z" },
        { "localhost:5000/x", "localhost:5000", "localhost:5000", "x", "latest", NULL,
          "localhost:5000/x:latest" },
        { "localhost/x:1", "localhost", "localhost", "x", "1", NULL, "localhost/x:1" },
        { "docker.io/library/busybox", "docker.io", "registry-1.docker.io", "library/busybox",
          "latest", NULL, "docker.io/library/busybox:latest" },
        { "index.docker.io/me/app:v1", "docker.io", "registry-1.docker.io", "me/app", "v1", NULL,
          "docker.io/me/app:v1" },
        { "me/app:v1@sha256:" D64, "docker.io", "registry-1.docker.io", "me/app", "v1",
          "sha256:" D64, "docker.io/me/app:v1" },
        { "127.0.0.1:5000/x@sha256:" D64, "127.0.0.1:5000", "127.0.0.1:5000", "x", NULL,
          "sha256:" D64, "127.0.0.1:5000/x:latest" },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const ref_row *w = &rows[i];
        test_case("%s", w->in);
        cs_reg_ref r;
        cs_error *err = NULL;
        int rc = cs_reg_ref_parse(w->in, &r, &err);
        if (rc < 0)
            fail_msg("%s: %s", w->in, err->msg);
        assert_string_equal(r.domain, w->domain);
        assert_string_equal(r.host, w->host);
        assert_string_equal(r.repo, w->repo);
        if (w->tag)
            assert_string_equal(r.tag, w->tag);
        else
            assert_null(r.tag);
        if (w->digest)
            assert_string_equal(r.digest, w->digest);
        else
            assert_null(r.digest);
        assert_string_equal(r.name, w->name);
        assert_string_equal(cs_reg_ref_object(&r), w->digest ? w->digest : w->tag);
        cs_reg_ref_release(&r);
    }
}

static void
bad_references_fail_with_one_line(void **state)
{
    (void) state;
    static const char *const bad[] = {
        "",
        "UPPER/case",
        "x@sha256:abc",
        "x@md5:" D64,
        "x@sha256:" D64 "00",
        "x@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "x:bad tag",
        "x::y",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        test_case("'%s'", bad[i]);
        cs_reg_ref r;
        cs_error *err = NULL;
        assert_int_equal(cs_reg_ref_parse(bad[i], &r, &err), -CS_EINVAL);
        assert_non_null(err);
        assert_null(strchr(err->msg, '\n'));
        cs_error_free(err);
    }
}

static void
registry_names_normalize_like_docker_login(void **state)
{
    (void) state;
    static const char *const rows[][2] = {
        { "docker.io", "docker.io" },
        { "https://index.docker.io/v1/", "docker.io" },
        { "index.docker.io", "docker.io" },
        { "registry-1.docker.io", "docker.io" },
        { "ghcr.io/", "ghcr.io" },
        { "http://LocalHost:5000", "localhost:5000" },
        { "127.0.0.1:5000", "127.0.0.1:5000" },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        test_case("%s", rows[i][0]);
        char *d = NULL;
        cs_error *err = NULL;
        assert_int_equal(cs_reg_domain_normalize(rows[i][0], &d, &err), 0);
        assert_string_equal(d, rows[i][1]);
        free(d);
    }
    char *d = NULL;
    cs_error *err = NULL;
    assert_int_equal(cs_reg_domain_normalize("https://", &d, &err), -CS_EINVAL);
    cs_error_free(err);
}

static void
challenges_parse_scheme_and_quoted_parameters(void **state)
{
    (void) state;
    cs_reg_challenge c;
    cs_error *err = NULL;
    assert_int_equal(
        cs_reg_challenge_parse("Bearer realm=\"https://auth.docker.io/token\",service=\"registry."
                               "docker.io\",scope=\"repository:library/golang:pull\"",
                               &c, &err),
        0);
    assert_string_equal(c.scheme, "Bearer");
    assert_string_equal(c.realm, "https://auth.docker.io/token");
    assert_string_equal(c.service, "registry.docker.io");
    assert_string_equal(c.scope, "repository:library/golang:pull");
    assert_null(c.error);
    cs_reg_challenge_release(&c);

    /* Unquoted values, spaces, escapes, an error and unknown keys. */
    assert_int_equal(cs_reg_challenge_parse("  bearer realm=http://127.0.0.1:1/t , "
                                            "error=\"insufficient_scope\", x=\"a\\\"b\","
                                            "service=\"s \\\"q\\\"\"",
                                            &c, &err),
                     0);
    assert_string_equal(c.scheme, "bearer");
    assert_string_equal(c.realm, "http://127.0.0.1:1/t");
    assert_string_equal(c.error, "insufficient_scope");
    assert_string_equal(c.service, "s \"q\"");
    assert_null(c.scope);
    cs_reg_challenge_release(&c);

    assert_int_equal(cs_reg_challenge_parse("Basic realm=\"Registry Realm\"", &c, &err), 0);
    assert_string_equal(c.scheme, "Basic");
    assert_string_equal(c.realm, "Registry Realm");
    cs_reg_challenge_release(&c);

    /* Two challenges: the first one counts. */
    assert_int_equal(cs_reg_challenge_parse("Basic realm=\"a\", Bearer realm=\"b\"", &c, &err), 0);
    assert_string_equal(c.scheme, "Basic");
    assert_string_equal(c.realm, "a");
    cs_reg_challenge_release(&c);

    /* Unterminated quote: the value runs to the end, no overread. */
    assert_int_equal(cs_reg_challenge_parse("Bearer realm=\"abc", &c, &err), 0);
    assert_string_equal(c.realm, "abc");
    cs_reg_challenge_release(&c);

    assert_int_equal(cs_reg_challenge_parse("", &c, &err), -CS_EPARSE);
    cs_error_clear(&err);
    assert_int_equal(cs_reg_challenge_parse("realm=\"x\"", &c, &err), -CS_EPARSE);
    cs_error_clear(&err);
}

static void
plain_http_is_allowed_only_for_loopback_or_when_insecure(void **state)
{
    (void) state;
    static const struct {
        const char *host;
        bool allowed;
    } rows[] = {
        { "localhost", true },
        { "localhost:5000", true },
        { "LOCALHOST:5000", true },
        { "127.0.0.1", true },
        { "127.0.0.1:5000", true },
        { "127.255.3.4:80", true },
        { "[::1]:5000", true },
        { "::1", true },
        { "[::ffff:127.0.0.1]:1", true },
        { "128.0.0.1:5000", false },
        { "10.0.0.1:5000", false },
        { "example.com", false },
        { "localhost.example.com", false },
        { "127.0.0.1.nip.io:5000", false },
        { "docker.io", false },
        { "[::2]:5000", false },
        { "[::1]x", false },
        { "myregistry:5000", false },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        test_case("%s", rows[i].host);
        assert_int_equal(cs_reg_http_allowed(rows[i].host, false), rows[i].allowed);
        assert_true(cs_reg_http_allowed(rows[i].host, true));
    }
}

static void
certs_d_roots_default_to_docker_and_containers(void **state)
{
    (void) state;
    unsetenv("CSTORE_CERTS_D");
    char **v = cs_reg_certs_d_roots();
    assert_int_equal(cs_strv_len(v), 2);
    assert_string_equal(v[0], "/etc/docker/certs.d");
    assert_string_equal(v[1], "/etc/containers/certs.d");
    cs_strv_free(v);
    setenv("CSTORE_CERTS_D", "/a::/b", 1);
    v = cs_reg_certs_d_roots();
    assert_int_equal(cs_strv_len(v), 2);
    assert_string_equal(v[0], "/a");
    assert_string_equal(v[1], "/b");
    cs_strv_free(v);
    unsetenv("CSTORE_CERTS_D");
}

/* ---- credentials ---- */

typedef struct cfx {
    char dir[64];
    char *docker, *xdg;
} cfx;

static int
cred_setup(void **state)
{
    cfx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/cs-test-registry.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->docker = cs_xasprintf("%s/docker", f->dir);
    f->xdg = cs_xasprintf("%s/xdg", f->dir);
    mkdir(f->docker, 0700);
    setenv("DOCKER_CONFIG", f->docker, 1);
    setenv("XDG_RUNTIME_DIR", f->xdg, 1);
    unsetenv("REGISTRY_AUTH_FILE");
    *state = f;
    return 0;
}

static int
cred_teardown(void **state)
{
    cfx *f = *state;
    test_rmrf(f->dir);
    free(f->docker);
    free(f->xdg);
    free(f);
    return 0;
}

static void
write_config(cfx *f, const char *json)
{
    cs_autofree char *p = cs_xasprintf("%s/config.json", f->docker);
    test_write_file(p, json, strlen(json), 0600);
}

static void
lookup(const char *domain, cs_reg_cred *c)
{
    cs_error *err = NULL;
    if (cs_reg_cred_lookup(domain, c, &err) < 0)
        fail_msg("lookup %s: %s", domain, err->msg);
}

static void
config_json_auths_give_user_password_and_identity_tokens(void **state)
{
    cfx *f = *state;
    /* "dXNlcjpwYTpzcw==" is "user:pa:ss": the password may hold ':'. */
    write_config(f, "{\"auths\": {"
                    "\"https://index.docker.io/v1/\": {\"auth\": \"aHViOmh1YnB3\"},"
                    "\"localhost:5000\": {\"auth\": \"dXNlcjpwYTpzcw==\"},"
                    "\"https://ghcr.io\": {\"auth\": \"\", \"identitytoken\": \"rt-1\"},"
                    "\"quay.io\": {}}}");
    cs_reg_cred c;
    lookup("docker.io", &c);
    assert_string_equal(c.user, "hub");
    assert_string_equal(c.secret, "hubpw");
    assert_false(c.identity_token);
    cs_reg_cred_release(&c);
    lookup("localhost:5000", &c);
    assert_string_equal(c.user, "user");
    assert_string_equal(c.secret, "pa:ss");
    cs_reg_cred_release(&c);
    lookup("ghcr.io", &c);
    assert_true(c.identity_token);
    assert_string_equal(c.secret, "rt-1");
    cs_reg_cred_release(&c);
    lookup("quay.io", &c);
    assert_null(c.user);
    lookup("other.example:5000", &c);
    assert_null(c.user);
}

static void
podman_auth_file_comes_before_docker_config(void **state)
{
    cfx *f = *state;
    write_config(f, "{\"auths\": {\"r.example\": {\"auth\": \"ZDpkcHc=\"}}}");
    cs_autofree char *dir = cs_xasprintf("%s/containers", f->xdg);
    mkdir(f->xdg, 0700);
    mkdir(dir, 0700);
    cs_autofree char *p = cs_xasprintf("%s/auth.json", dir);
    const char *j = "{\"auths\": {\"r.example\": {\"auth\": \"cDpwcHc=\"}}}";
    test_write_file(p, j, strlen(j), 0600);
    cs_reg_cred c;
    lookup("r.example", &c);
    assert_string_equal(c.user, "p");
    assert_string_equal(c.secret, "ppw");
    cs_reg_cred_release(&c);
    /* $REGISTRY_AUTH_FILE replaces the XDG one. */
    cs_autofree char *alt = cs_xasprintf("%s/alt.json", f->dir);
    const char *a = "{\"auths\": {\"other.example\": {\"auth\": \"YTphcHc=\"}}}";
    test_write_file(alt, a, strlen(a), 0600);
    setenv("REGISTRY_AUTH_FILE", alt, 1);
    lookup("r.example", &c);
    assert_string_equal(c.user, "d"); /* from config.json now */
    cs_reg_cred_release(&c);
    lookup("other.example", &c);
    assert_string_equal(c.user, "a");
    cs_reg_cred_release(&c);
    unsetenv("REGISTRY_AUTH_FILE");
}

static void
malformed_configs_fail_without_quoting_them(void **state)
{
    cfx *f = *state;
    write_config(f, "{\"auths\": {\"x.example\": {\"auth\": \"c2VjcmV0LXB3\"}}");
    cs_reg_cred c;
    cs_error *err = NULL;
    assert_int_equal(cs_reg_cred_lookup("x.example", &c, &err), -CS_EPARSE);
    assert_null(strstr(err->msg, "c2VjcmV0"));
    cs_error_clear(&err);
    /* base64 without a ':' inside ("secret-pw") */
    write_config(f, "{\"auths\": {\"x.example\": {\"auth\": \"c2VjcmV0LXB3\"}}}");
    assert_int_equal(cs_reg_cred_lookup("x.example", &c, &err), -CS_EPARSE);
    assert_null(strstr(err->msg, "secret-pw"));
    assert_null(strstr(err->msg, "c2VjcmV0"));
    cs_error_clear(&err);
}

static void
stored_credentials_are_found_again_and_erased(void **state)
{
    cfx *f = *state;
    write_config(f, "{\"auths\": {\"keep.example\": {\"auth\": \"azprcHc=\"}}, \"x\": 1}");
    cs_error *err = NULL;
    char *where = NULL;
    assert_int_equal(cs_reg_cred_store("docker.io", "me", "s3cret", &where, &err), 0);
    free(where);
    cs_autofree char *p = cs_xasprintf("%s/config.json", f->docker);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    cs_reg_cred c;
    lookup("docker.io", &c);
    assert_string_equal(c.user, "me");
    assert_string_equal(c.secret, "s3cret");
    cs_reg_cred_release(&c);
    lookup("keep.example", &c);
    assert_string_equal(c.user, "k");
    cs_reg_cred_release(&c);
    cs_buf b;
    test_read_file(p, &b);
    assert_non_null(memmem(b.data, b.len, "https://index.docker.io/v1/", 27));
    assert_non_null(memmem(b.data, b.len, "\"x\": 1", 6));
    cs_buf_release(&b);
    assert_int_equal(cs_reg_cred_erase("docker.io", &err), 0);
    lookup("docker.io", &c);
    assert_null(c.user);
    assert_int_equal(cs_reg_cred_erase("docker.io", &err), -CS_ENOTFOUND);
    cs_error_clear(&err);
    lookup("keep.example", &c);
    assert_string_equal(c.user, "k");
    cs_reg_cred_release(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(references_parse_as_docker_does),
        cmocka_unit_test(bad_references_fail_with_one_line),
        cmocka_unit_test(registry_names_normalize_like_docker_login),
        cmocka_unit_test(challenges_parse_scheme_and_quoted_parameters),
        cmocka_unit_test(plain_http_is_allowed_only_for_loopback_or_when_insecure),
        cmocka_unit_test(certs_d_roots_default_to_docker_and_containers),
        cmocka_unit_test_setup_teardown(config_json_auths_give_user_password_and_identity_tokens,
                                        cred_setup, cred_teardown),
        cmocka_unit_test_setup_teardown(podman_auth_file_comes_before_docker_config, cred_setup,
                                        cred_teardown),
        cmocka_unit_test_setup_teardown(malformed_configs_fail_without_quoting_them, cred_setup,
                                        cred_teardown),
        cmocka_unit_test_setup_teardown(stored_credentials_are_found_again_and_erased, cred_setup,
                                        cred_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
