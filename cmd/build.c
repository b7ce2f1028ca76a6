/* build.c - `cstore build`: a Dockerfile into a stored, tagged image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "build.h"
#include "build_cache.h"
#include "build_output.h"
#include "cmd.h"
#include "progress.h"
#include "push_progress.h"
#include "runflags.h"
#include "run.h"
#include "cstore/units.h"
#include "cstore/image.h"
#include "registry.h"

const char cmd_build_usage[] =
    "usage: cstore build [OPTIONS] CONTEXT\n"
    "\n"
    "Build an image from a Dockerfile, reading the context directory in place.\n"
    "The image digest is the last line of stdout.\n"
    "\n"
    "Options:\n"
    "  -f, --file PATH          the Dockerfile (default CONTEXT/Dockerfile; - for stdin)\n"
    "  -t, --tag NAME[:TAG]     tag the image (repeatable)\n"
    "      --label K=V          set a label in the image config (repeatable; over LABEL)\n"
    "      --target STAGE       build this stage (default: the last)\n"
    "      --build-arg K[=V]    set a build argument (K alone: from the environment)\n"
    "      --build-context NAME=DIR|NAME=docker-image://REF\n"
    "                           a named context for FROM, COPY --from and RUN --mount\n"
    "                           from= (repeatable; over a stage or image of that name)\n"
    "      --no-cache           do not use the build cache\n"
    "      --cache-to type=local,dest=DIR|type=registry,ref=REF[,mode=min|max]\n"
    "                           export the build cache (an OCI artifact of chunk packs)\n"
    "      --cache-from type=local,src=DIR|type=registry,ref=REF\n"
    "                           import a build cache (lazily: bytes when needed; repeatable)\n"
    "  -j, --jobs N             build at most N stages at once (default: the number of\n"
    "                           online cores; 1: one after the other)\n"
    "      --progress MODE      auto, plain or quiet (default auto)\n"
    "  -q, --quiet              no progress; print only the image digest\n"
    "      --iidfile PATH       write the image digest to PATH\n"
    "  -o, --output OUT         also write the image: type=oci|docker|tar|local,dest=PATH;\n"
    "                           DIR for type=local,dest=DIR; - for a rootfs tar on stdout\n"
    "      --metadata-file PATH write buildx's build result metadata (JSON) to PATH\n"
    "      --push               push every -t name to its registry after the build\n"
    "      --network MODE       host (default) or none, for RUN\n"
    "      --runtime PATH       OCI runtime for RUN (default runc)\n"
    "      --snapshotter S      RUN's lower dirs: fuse (served from the store), unpack\n"
    "                           (snapshots on disk) or auto (default: fuse when /dev/fuse\n"
    "                           works)\n"
    "      --platform P         the target platform: linux/amd64 (the host's) or local\n"
    "      --pull=POLICY        base images from their registry: missing (default: those\n"
    "                           not in the store), always (also --pull alone) or never\n"
    "      --tls-verify=BOOL    false: plain http and unverified https for the registries\n"
    "                           of --pull, --push and type=registry caches\n"
    "      --cert-dir DIR       CA certificates (*.crt) and client.cert/client.key for them\n"
    "      --add-host HOST:IP   add a line to /etc/hosts of RUN (repeatable)\n"
    "      --shm-size SIZE      size of /dev/shm for RUN (default 64m; binary units)\n"
    "      --ulimit N=S[:H]     a ulimit of RUN, e.g. nofile=1024:2048 (repeatable)\n"
    "      --secret SPEC        a secret for RUN --mount=type=secret (repeatable):\n"
    "                           id=ID,src=FILE, id=ID,env=VAR, or id=ID (variable ID, else\n"
    "                           file ID); never stored in the image or the cache\n"
    "      --ssh SPEC           an ssh agent socket for RUN --mount=type=ssh (repeatable):\n"
    "                           default ($SSH_AUTH_SOCK), ID, or ID=SOCKET\n"
    "  -h, --help               show this help\n";

/* -t: refused at once when it is no valid reference, kept as typed. */
static int
check_tag(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    cs_autofree char *norm = NULL;
    (void) c, (void) o;
    return cs_ref_normalize(arg, &norm, err);
}

/* --jobs N: a positive number. */
static int
take_jobs(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    char *end;
    (void) err;
    unsigned long v = strtoul(arg, &end, 10);
    if (!*arg || *end || arg[0] == '-' || v == 0 || v > 1024)
        return cmd_usage_error(c, "--jobs must be a number from 1 to 1024, not '%s'", arg);
    *(unsigned *) o->dst = (unsigned) v;
    return 0;
}

/* --label K=V, or K alone for an empty value (as docker); a key is needed. */
static int
check_label(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    (void) o, (void) err;
    if (!*arg || *arg == '=')
        return cmd_usage_error(c, "--label '%s': a label needs a key (K=V)", arg);
    return 0;
}

/* --build-arg K=V, or K alone for K's value in our environment. */
static int
take_build_arg(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    const char *eq = strchr(arg, '=');
    (void) c, (void) err;
    if (eq) {
        cs_autofree char *k = cs_xstrndup(arg, (size_t) (eq - arg));
        cs_df_env_set(o->dst, k, eq + 1);
    } else if (getenv(arg)) {
        cs_df_env_set(o->dst, arg, getenv(arg));
    }
    return 0;
}

/* --secret, --ssh and --build-context, parsed as they come. */
typedef struct agents {
    cs_build_secret *secrets;
    size_t nsecrets;
    cs_build_ssh *ssh;
    size_t nssh;
    cs_build_context *contexts;
    size_t ncontexts;
} agents;

static void
agents_release(agents *a)
{
    for (size_t i = 0; i < a->nsecrets; i++)
        cs_build_secret_release(&a->secrets[i]);
    for (size_t i = 0; i < a->nssh; i++)
        cs_build_ssh_release(&a->ssh[i]);
    for (size_t i = 0; i < a->ncontexts; i++)
        cs_build_context_release(&a->contexts[i]);
    free(a->secrets);
    free(a->ssh);
    free(a->contexts);
}

static int
take_context(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    agents *a = o->dst;
    cs_build_context bc;
    (void) c;
    int rc = cs_build_context_parse(arg, &bc, err);
    if (rc < 0)
        return rc;
    a->contexts = cs_xrealloc(a->contexts, (a->ncontexts + 1) * sizeof *a->contexts);
    a->contexts[a->ncontexts++] = bc;
    return 0;
}

static int
take_secret(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    agents *a = o->dst;
    cs_build_secret s;
    (void) c;
    int rc = cs_build_secret_parse(arg, &s, err);
    if (rc < 0)
        return rc;
    a->secrets = cs_xrealloc(a->secrets, (a->nsecrets + 1) * sizeof *a->secrets);
    a->secrets[a->nsecrets++] = s;
    return 0;
}

static int
take_ssh(cmd_ctx *c, const cmd_opt *o, const char *arg, cs_error **err)
{
    agents *a = o->dst;
    cs_build_ssh s;
    (void) c;
    int rc = cs_build_ssh_parse(arg, &s, err);
    if (rc < 0)
        return rc;
    a->ssh = cs_xrealloc(a->ssh, (a->nssh + 1) * sizeof *a->ssh);
    a->ssh[a->nssh++] = s;
    return 0;
}

/* --quiet against --progress, --push against -t; --quiet is --progress quiet. */
static int
check_flags(cmd_ctx *c, bool quiet, int *progress, bool push, size_t ntags)
{
    if (quiet && *progress == 1) /* buildx refuses it too */
        return cmd_usage_error(c, "--quiet and --progress plain cannot be used together");
    if (push && ntags == 0)
        return cmd_usage_error(c, "--push needs a -t name to push to");
    if (quiet)
        *progress = 2;
    return 0;
}

/* After the build: -o, --metadata-file, --iidfile (in buildx's order), then
 * the image id on stdout unless an output took stdout (on stderr then). */
static int
build_finish(cs_store *s, const cs_build_result *res, const build_out *out, const char *metadata,
             const char *iidfile, char **tags, cs_error **err)
{
    char id[CS_DIGEST_STR];
    cs_digest_str(&res->id, id);
    int rc = build_out_write(s, out, &res->id, tags, err);
    if (rc < 0)
        return rc;
    if (metadata && (rc = build_metadata_write(s, metadata, &res->id, tags, err)) < 0)
        return rc;
    if (iidfile && cs_write_file_atomic(iidfile, id, strlen(id), err) < 0)
        return cs_err_wrap(err, "--iidfile");
    fprintf(build_out_stdout(out) ? stderr : stdout, "%s\n", id);
    return 0;
}

/* The secrets, ssh agents and named contexts the options gathered. */
static void
agents_set(cs_build_opts *o, const agents *ag)
{
    o->secrets = ag->secrets;
    o->nsecrets = ag->nsecrets;
    o->ssh = ag->ssh;
    o->nssh = ag->nssh;
    o->contexts = ag->contexts;
    o->ncontexts = ag->ncontexts;
}

/* --tls-verify / --cert-dir for every registry the build talks to. */
static void
reg_opts_set(const cmd_reg_opts *ro, cs_reg_opts *reg)
{
    cmd_reg_opts_get(ro, reg);
    cache_registry_set_opts(reg);
}

int
cmd_build(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    /* In the order of the --progress choices. */
    static const cs_progress modes[] = { CS_PROGRESS_AUTO, CS_PROGRESS_PLAIN, CS_PROGRESS_QUIET };
    cs_build_opts o = { 0 };
    cmd_autostrv cs_strv tags = { 0 };
    cmd_autostrv cs_strv labels = { 0 };
    cmd_autostrv cs_strv hosts = { 0 };
    cmd_autostrv cs_strv ulimits = { 0 };
    cs_df_env *args = cs_df_env_new();
    __attribute__((cleanup(agents_release))) agents ag = { 0 };
    const char *iidfile = NULL, *metadata = NULL, *pull = NULL;
    build_out_auto build_out out = { 0 };
    __attribute__((cleanup(build_cache_release))) build_cache bc = { 0 };
    cmd_reg_opts ro = { 0 };
    cs_reg_opts reg;
    int progress = 0, network = 0; /* auto, host */
    bool quiet = false, push = false;
    const cmd_opt opts[] = {
        CMD_OPT("file", 'f', CMD_STRING, &o.dockerfile),
        CMD_OPT_FN("tag", 't', CMD_STRV, &tags, check_tag),
        CMD_OPT_FN("label", 0, CMD_STRV, &labels, check_label),
        CMD_OPT("target", 0, CMD_STRING, &o.target),
        CMD_OPT_FN("build-arg", 0, CMD_CALL, args, take_build_arg),
        CMD_OPT_FN("build-context", 0, CMD_CALL, &ag, take_context),
        CMD_OPT("no-cache", 0, CMD_FLAG, &o.no_cache),
        CMD_OPT_FN("cache-to", 0, CMD_CALL, &bc, build_cache_take_to),
        CMD_OPT_FN("cache-from", 0, CMD_CALL, &bc, build_cache_take_from),
        CMD_OPT_FN("jobs", 'j', CMD_CALL, &o.jobs, take_jobs),
        CMD_OPT_CHOICE("progress", &progress, "auto|plain|quiet", NULL),
        CMD_OPT("quiet", 'q', CMD_FLAG, &quiet),
        CMD_OPT("iidfile", 0, CMD_STRING, &iidfile),
        CMD_OPT_FN("output", 'o', CMD_CALL, &out, build_out_take),
        CMD_OPT("metadata-file", 0, CMD_STRING, &metadata),
        CMD_OPT_CHOICE("network", &network, "host|none", NULL),
        CMD_OPT("runtime", 0, CMD_STRING, &o.runtime),
        CMD_OPT_CHOICE("snapshotter", &c->snapshotter, "auto|fuse|unpack", NULL),
        CMD_OPT("platform", 0, CMD_STRING, &o.platform),
        CMD_OPT_FN("add-host", 0, CMD_STRV, &hosts, cmd_check_add_host),
        CMD_OPT_FN("shm-size", 0, CMD_CALL, &o.shm_size, cmd_take_shm_size),
        CMD_OPT_FN("ulimit", 0, CMD_STRV, &ulimits, cmd_check_ulimit),
        CMD_OPT_FN("secret", 0, CMD_CALL, &ag, take_secret),
        CMD_OPT_FN("ssh", 0, CMD_CALL, &ag, take_ssh),
        CMD_OPT_FN("pull", 0, CMD_OPTARG, &pull, cmd_check_pull),
        CMD_OPT("push", 0, CMD_FLAG, &push),
        CMD_OPTS_REGISTRY(&ro),
        CMD_OPT_END,
    };
    cmd_args operands = { .min = 1, .max = 1 };
    int rc;
    if ((rc = cmd_parse(c, argc, argv, opts, &operands, err)) != 0
        || (rc = check_flags(c, quiet, &progress, push, tags.n)) != 0) {
        cs_df_env_free(args);
        return rc;
    }
    o.context = operands.v[0];
    o.tags = tags.v;
    o.labels = labels.v;
    o.add_hosts = hosts.v;
    o.ulimits = ulimits.v;
    o.build_args = args;
    o.network_none = network == 1;
    agents_set(&o, &ag);
    reg_opts_set(&ro, &reg);
    cs_store *s;
    if ((rc = cmd_open(c, 0, &s, err)) < 0 || (rc = build_cache_import(s, &bc, err)) < 0) {
        cs_df_env_free(args);
        return rc;
    }
    __attribute__((cleanup(cs_build_result_release))) cs_build_result res = { 0 };
    cmd_progress prog;
    cmd_pull_policy(&o, pull, s, progress == 2, &reg);
    cmd_progress_init(&prog, modes[progress], stderr, &o);
    rc = cs_build(s, &o, &res, err);
    cmd_progress_finish(&prog);
    cs_df_env_free(args);
    if (rc < 0 || (rc = build_cache_export(s, &bc, &res, err)) < 0)
        return rc;
    if (push && (rc = cmd_build_push(s, tags.v, modes[progress], &reg, err)) < 0)
        return rc;
    return build_finish(s, &res, &out, metadata, iidfile, tags.v, err);
}
