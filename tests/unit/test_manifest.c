/* test_manifest.c - registry manifests (manifest.c): the four media types
 * parsed from recorded JSON, bad input refused in one line, and the platform
 * picked from an index as containerd picks it. JSON is written with ' for "
 * (q() turns them back) to stay readable. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"

#include <string.h>

#include "cstore/manifest.h"

/* busybox:latest as skopeo wrote it into an OCI layout (out/bases), verbatim. */
static const char oci_manifest[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":"
    "{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:"
    "4b3585d9f2b00f3f267513522b326f1076e78c172df22a01d7448fe51dd2918a\",\"size\":379},\"layers\":"
    "[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:"
    "978e46a98c25ddc576b6d2bf4214241bf103895088431d5cb73dd8c413c361ad\",\"size\":1035110}]}";

/* A Docker schema 2 manifest as registry 2.8 serves a docker-archive push
 * (no mediaType in the body of old pushes: the Content-Type says it). */
static const char docker_manifest[] =
    "{'schemaVersion': 2, 'config': {'mediaType': "
    "'application/vnd.docker.container.image.v1+json', 'size': 1457, 'digest': "
    "'sha256:a416a98b71e224a31ee99cff8e16063554498227d2b696152a9c3e0aa65e5824'}, 'layers': "
    "[{'mediaType': 'application/vnd.docker.image.rootfs.diff.tar.gzip', 'size': 2152262, "
    "'digest': 'sha256:3dd2ff5a3aeb8b8aa2dfc38a3e6a1d2eed6ab5c2ef04b6fbc1e6beaaea29a1b2'}, "
    "{'mediaType': 'application/vnd.oci.image.layer.v1.tar+zstd', 'size': 100, 'digest': "
    "'sha256:aa2dfc38a3e6a1d2eed6ab5c2ef04b6fbc1e6beaaea29a1b23dd2ff5a3aeb8b8'}]}";

#define ML "application/vnd.docker.distribution.manifest.v2+json"
/* docker.io's busybox manifest list, shortened to these platforms (as
 * Docker Hub lists them: arm64 with variant v8, arm v5/v6/v7). */
static const char docker_list[] =
    "{'manifests':["
    "{'mediaType':'" ML "','digest':'sha256:1111111111111111111111111111111111111111111111111111"
    "111111111111','size':528,'platform':{'architecture':'amd64','os':'linux'}},"
    "{'mediaType':'" ML "','digest':'sha256:2222222222222222222222222222222222222222222222222222"
    "222222222222','size':528,'platform':{'architecture':'arm','os':'linux','variant':'v5'}},"
    "{'mediaType':'" ML "','digest':'sha256:3333333333333333333333333333333333333333333333333333"
    "333333333333','size':528,'platform':{'architecture':'arm','os':'linux','variant':'v6'}},"
    "{'mediaType':'" ML "','digest':'sha256:4444444444444444444444444444444444444444444444444444"
    "444444444444','size':528,'platform':{'architecture':'arm64','os':'linux','variant':'v8'}},"
    "{'mediaType':'" ML "','digest':'sha256:5555555555555555555555555555555555555555555555555555"
    "555555555555','size':528,'platform':{'architecture':'s390x','os':'linux'}}],"
    "'mediaType':'application/vnd.docker.distribution.manifest.list.v2+json','schemaVersion':2}";

#define OM "application/vnd.oci.image.manifest.v1+json"
/* An OCI index as buildx pushes it: arm64 first, attestation manifests
 * (platform unknown/unknown) beside the images. */
static const char oci_index[] =
    "{'schemaVersion':2,'mediaType':'application/vnd.oci.image.index.v1+json','manifests':["
    "{'mediaType':'" OM "','digest':'sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaa','size':1000,'platform':{'architecture':'arm64','os':'linux'}},"
    "{'mediaType':'" OM "','digest':'sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
    "bbbbbbbbbb','size':1000,'platform':{'architecture':'amd64','os':'linux'}},"
    "{'mediaType':'" OM "','digest':'sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccc"
    "cccccccccc','size':800,'annotations':{'vnd.docker.reference.type':'attestation-manifest'},"
    "'platform':{'architecture':'unknown','os':'unknown'}}]}";

/* s with every ' turned into " (static buffer: one at a time). */
static const char *
q(const char *s)
{
    static char buf[8192];
    size_t n = strlen(s);
    assert_true(n < sizeof(buf));
    for (size_t i = 0; i <= n; i++)
        buf[i] = s[i] == '\'' ? '"' : s[i];
    return buf;
}

static cs_manifest *
parse_ok(const char *json, const char *ctype)
{
    cs_manifest *m = NULL;
    cs_error *err = NULL;
    int r = cs_manifest_parse(json, strlen(json), ctype, &m, &err);
    if (r < 0)
        fail_msg("%s", err->msg);
    return m;
}

static void
oci_manifest_gives_config_and_layers(void **state)
{
    (void) state;
    __attribute__((cleanup(cs_manifest_freep))) cs_manifest *m = parse_ok(oci_manifest, NULL);
    assert_false(m->is_index);
    assert_string_equal(m->media_type, CS_MT_OCI_MANIFEST);
    char s[CS_DIGEST_STR];
    cs_digest_str(&m->config.digest, s);
    assert_string_equal(s,
                        "sha256:4b3585d9f2b00f3f267513522b326f1076e78c172df22a01d7448fe51dd2918a");
    assert_int_equal(m->config.size, 379);
    assert_int_equal(m->n, 1);
    assert_int_equal(m->items[0].size, 1035110);
}

static void
docker_manifest_takes_its_type_from_the_content_type(void **state)
{
    (void) state;
    __attribute__((cleanup(cs_manifest_freep))) cs_manifest *m =
        parse_ok(q(docker_manifest), CS_MT_DOCKER_MANIFEST);
    assert_false(m->is_index);
    assert_string_equal(m->media_type, CS_MT_DOCKER_MANIFEST);
    assert_int_equal(m->n, 2);
    assert_string_equal(m->items[1].media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
}

static void
indexes_of_both_kinds_list_their_platforms(void **state)
{
    (void) state;
    __attribute__((cleanup(cs_manifest_freep))) cs_manifest *l = parse_ok(q(docker_list), NULL);
    assert_true(l->is_index);
    assert_int_equal(l->n, 5);
    assert_string_equal(l->items[3].platform.arch, "arm64");
    assert_null(l->items[3].platform.variant); /* v8 normalized away */
    __attribute__((cleanup(cs_manifest_freep))) cs_manifest *o = parse_ok(q(oci_index), NULL);
    assert_true(o->is_index);
    assert_int_equal(o->n, 3);
}

/* Each bad manifest fails with CS_EPARSE and a one-line message. */
static void
bad_manifests_are_refused_in_one_line(void **state)
{
    (void) state;
    static const struct {
        const char *name, *json, *ctype, *msg;
    } rows[] = {
        { "not JSON", "<html>nginx</html>", "text/html", "not JSON" },
        { "schema 1", "{'schemaVersion':1,'fsLayers':[]}",
          "application/vnd.docker.distribution.manifest.v1+prettyjws", "unsupported media type" },
        { "unknown type", "{'mediaType':'application/x-foo','layers':[]}", NULL,
          "unsupported media type 'application/x-foo'" },
        { "no layers",
          "{'mediaType':'" OM "','config':{'mediaType':'application/vnd.oci.image.config.v1+json',"
          "'digest':'sha256:1111111111111111111111111111111111111111111111111111111111111111',"
          "'size':2}}",
          NULL, "no layers list" },
        { "helm chart config",
          "{'mediaType':'" OM "','config':{'mediaType':'application/vnd.cncf.helm.config.v1+json',"
          "'digest':'sha256:1111111111111111111111111111111111111111111111111111111111111111',"
          "'size':2},'layers':[]}",
          NULL, "config has unknown media type" },
        { "bad digest",
          "{'mediaType':'" OM "','config':{'mediaType':'application/vnd.oci.image.config.v1+json',"
          "'digest':'md5:abc','size':2},'layers':[]}",
          NULL, "malformed digest 'md5:abc'" },
        { "not a layer",
          "{'mediaType':'" OM "','config':{'mediaType':'application/vnd.oci.image.config.v1+json',"
          "'digest':'sha256:1111111111111111111111111111111111111111111111111111111111111111',"
          "'size':2},'layers':[{'mediaType':'application/x-wasm','size':1,'digest':"
          "'sha256:1111111111111111111111111111111111111111111111111111111111111111'}]}",
          NULL, "layer 0 has unknown media type 'application/x-wasm'" },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        test_case("%s", rows[i].name);
        cs_manifest *m = NULL;
        cs_error *err = NULL;
        const char *js = q(rows[i].json);
        assert_int_equal(cs_manifest_parse(js, strlen(js), rows[i].ctype, &m, &err), -CS_EPARSE);
        assert_null(m);
        assert_non_null(strstr(err->msg, rows[i].msg));
        assert_null(strchr(err->msg, '\n'));
        cs_error_free(err);
    }
}

static const char *
pick(const cs_manifest *ix, const char *want, cs_error **err)
{
    cs_platform p;
    assert_int_equal(cs_platform_parse(want, &p, err), 0);
    size_t i = 0;
    int r = cs_manifest_select(ix, &p, &i, err);
    cs_platform_release(&p);
    static char s[CS_DIGEST_STR];
    if (r < 0)
        return NULL;
    cs_digest_str(&ix->items[i].digest, s);
    return s;
}

/* containerd's rules: arm64 = arm64/v8, arm = arm/v7 which runs v6 and v5
 * (best first), attestations skipped, exact matches first. */
static void
platforms_are_picked_as_containerd_does(void **state)
{
    (void) state;
    __attribute__((cleanup(cs_manifest_freep))) cs_manifest *l = parse_ok(q(docker_list), NULL);
    __attribute__((cleanup(cs_manifest_freep))) cs_manifest *o = parse_ok(q(oci_index), NULL);
    static const struct {
        const char *want;
        char digit; /* the picked digest's first hex digit; 0: no match */
    } rows[] = {
        { "linux/amd64", '1' },    { "linux/x86_64", '1' },  { "linux/arm64", '4' },
        { "linux/arm64/v8", '4' }, { "linux/aarch64", '4' }, { "linux/arm", '3' },
        { "linux/arm/v7", '3' },   { "linux/arm/v6", '3' },  { "linux/arm/v5", '2' },
        { "linux/s390x", '5' },    { "linux/ppc64le", 0 },   { "windows/amd64", 0 },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        test_case("docker list, %s", rows[i].want);
        cs_error *err = NULL;
        const char *d = pick(l, rows[i].want, &err);
        if (!rows[i].digit) {
            assert_null(d);
            assert_non_null(strstr(err->msg, "no image for platform"));
            assert_non_null(strstr(err->msg, "linux/amd64, linux/arm/v5, linux/arm/v6, "
                                             "linux/arm64, linux/s390x"));
            cs_error_free(err);
            continue;
        }
        assert_non_null(d);
        assert_int_equal(d[7], rows[i].digit);
    }
    cs_error *err = NULL;
    const char *d = pick(o, "linux/amd64", &err);
    assert_non_null(d);
    assert_int_equal(d[7], 'b');
    assert_null(pick(o, "linux/riscv64", &err));
    assert_non_null(strstr(err->msg, "(the index has: linux/arm64, linux/amd64)"));
    cs_error_free(err);
}

static void
platform_strings_are_checked_and_normalized(void **state)
{
    (void) state;
    cs_platform p;
    cs_error *err = NULL;
    assert_int_equal(cs_platform_parse("linux/armhf", &p, &err), 0);
    cs_autofree char *s = cs_platform_str(&p);
    assert_string_equal(s, "linux/arm/v7");
    cs_platform_release(&p);
    const char *bad[] = { "linux", "linux/", "/amd64", "linux/arm/v7/x", "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        test_case("'%s'", bad[i]);
        assert_int_equal(cs_platform_parse(bad[i], &p, &err), -CS_EINVAL);
        assert_non_null(strstr(err->msg, "expected OS/ARCH[/VARIANT]"));
        cs_error_clear(&err);
    }
    cs_platform_host(&p);
    assert_string_equal(p.os, "linux");
    assert_non_null(p.arch);
    cs_platform_release(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(oci_manifest_gives_config_and_layers),
        cmocka_unit_test(docker_manifest_takes_its_type_from_the_content_type),
        cmocka_unit_test(indexes_of_both_kinds_list_their_platforms),
        cmocka_unit_test(bad_manifests_are_refused_in_one_line),
        cmocka_unit_test(platforms_are_picked_as_containerd_does),
        cmocka_unit_test(platform_strings_are_checked_and_normalized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
