/* ocispec.c - the config.json of a run's bundle (see ocispec.h): Docker's
 * defaults for mounts, capabilities, namespaces and masked paths, plus what
 * the caller asked for. */
#include "ocispec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "cstore/util.h"

char *
cs_ocispec_clean_rel(const char *p)
{
    char *out = cs_xmalloc(strlen(p) + 1);
    size_t o = 0;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = strchrnul(p, '/');
        size_t n = (size_t) (e - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            free(out);
            return NULL;
        }
        if (n && !(n == 1 && p[0] == '.')) {
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p = e;
    }
    out[o] = 0;
    if (!o) {
        free(out);
        return NULL;
    }
    return out;
}

int
cs_ocispec_check(const cs_run_opts *o, cs_error **err)
{
    if (!o->argv || !o->argv[0])
        return cs_err(err, CS_EINVAL, 0, "run: no command");
    if (o->cwd && o->cwd[0] != '/')
        return cs_err(err, CS_EINVAL, 0, "run: working dir '%s' is not absolute", o->cwd);
    for (size_t i = 0; i < o->nlowers; i++) {
        if (!o->lowers[i] || o->lowers[i][0] != '/')
            return cs_err(err, CS_EINVAL, 0, "run: lower dir '%s' is not absolute",
                          o->lowers[i] ? o->lowers[i] : "");
    }
    return 0;
}

/* ---- small JSON builders ---- */

static json_t *
str_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

#define STRS(...)                                                                                  \
    str_array((const char *const[]){ __VA_ARGS__ },                                                \
              sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *))

/* json_string() refuses what is not UTF-8; such a string is an error, not a
 * silently dropped argument. */
static void
append_str(json_t *a, const char *s, const char **bad)
{
    json_t *v = json_string(s);
    if (!v) {
        if (!*bad)
            *bad = s;
        return;
    }
    json_array_append_new(a, v);
}

/* ---- mounts ---- */

static json_t *
mount_obj(const char *dst, const char *type, const char *src, json_t *opts)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type", type, "source", src,
                     "options", opts);
}

static const char *
mount_dest(json_t *list, size_t i)
{
    return json_string_value(json_object_get(json_array_get(list, i), "destination"));
}

/* The size= option of /dev/shm: KiB as Docker writes it, else bytes. */
static char *
shm_size_opt(uint64_t size)
{
    if (!size)
        size = 64ull << 20;
    return size % 1024 ? cs_xasprintf("size=%" PRIu64, size)
                       : cs_xasprintf("size=%" PRIu64 "k", size / 1024);
}

/* What runc and Docker give every container; hosts (NULL: the host's) is
 * bound on /etc/hosts. */
static json_t *
default_mounts(const cs_run_opts *o, const char *hosts)
{
    cs_autofree char *shm = shm_size_opt(o->shm_size);
    json_t *l = json_array();
    json_array_append_new(l, mount_obj("/proc", "proc", "proc", STRS("nosuid", "noexec", "nodev")));
    json_array_append_new(l, mount_obj("/dev", "tmpfs", "tmpfs",
                                       STRS("nosuid", "strictatime", "mode=755", "size=65536k")));
    json_array_append_new(l, mount_obj("/dev/pts", "devpts", "devpts",
                                       STRS("nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                            "mode=0620", "gid=5")));
    json_array_append_new(l, mount_obj("/dev/shm", "tmpfs", "shm",
                                       STRS("nosuid", "noexec", "nodev", "mode=1777", shm)));
    json_array_append_new(
        l, mount_obj("/dev/mqueue", "mqueue", "mqueue", STRS("nosuid", "noexec", "nodev")));
    json_array_append_new(
        l, mount_obj("/sys", "sysfs", "sysfs", STRS("nosuid", "noexec", "nodev", "ro")));
    static const char *const host_files[] = { "/etc/resolv.conf", "/etc/hosts" };
    for (size_t i = 0; i < 2; i++) {
        struct stat st;
        const char *src = i == 1 && hosts ? hosts : host_files[i];
        if (src == hosts || (stat(src, &st) == 0 && S_ISREG(st.st_mode)))
            json_array_append_new(l, mount_obj(host_files[i], "bind", src, STRS("rbind", "ro")));
    }
    return l;
}

static bool
dest_eq(const char *a, const char *b)
{
    cs_autofree char *ca = cs_ocispec_clean_rel(a);
    cs_autofree char *cb = cs_ocispec_clean_rel(b);
    return ca && cb && !strcmp(ca, cb);
}

/* The caller's mounts replace defaults on the same destination. */
static void
drop_replaced(json_t *list, const cs_run_opts *o)
{
    for (size_t i = 0; i < o->nmounts; i++) {
        size_t j = 0;
        while (j < json_array_size(list)) {
            if (o->mounts[i].target && dest_eq(mount_dest(list, j), o->mounts[i].target))
                json_array_remove(list, j);
            else
                j++;
        }
    }
}

static int
caller_mount(const cs_run_mount *m, json_t **out, cs_error **err)
{
    if (!m->target || m->target[0] != '/' || !m->type)
        return cs_err(err, CS_EINVAL, 0, "mount target '%s' is not absolute",
                      m->target ? m->target : "");
    json_t *mo = NULL;
    if (!strcmp(m->type, "bind")) {
        if (!m->source)
            return cs_err(err, CS_EINVAL, 0, "bind mount on '%s' has no source", m->target);
        mo = mount_obj(m->target, "bind", m->source, STRS("rbind", m->readonly ? "ro" : "rw"));
    } else if (!strcmp(m->type, "tmpfs")) {
        mo = m->readonly ? mount_obj(m->target, "tmpfs", "tmpfs", STRS("nosuid", "nodev", "ro"))
                         : mount_obj(m->target, "tmpfs", "tmpfs", STRS("nosuid", "nodev"));
    } else {
        return cs_err(err, CS_EUNSUPPORTED, 0, "mount type '%s'", m->type);
    }
    if (!mo)
        return cs_err(err, CS_EINVAL, 0, "mount on '%s' is not valid utf-8", m->target);
    *out = mo;
    return 0;
}

static size_t
path_depth(const char *p)
{
    size_t d = 0;
    for (; *p; p++)
        if (*p == '/' && p[1] && p[1] != '/')
            d++;
    return d;
}

static int
cmp_depth(const void *a, const void *b)
{
    json_t *const *x = a, *const *y = b;
    size_t dx = path_depth(json_string_value(json_object_get(*x, "destination")));
    size_t dy = path_depth(json_string_value(json_object_get(*y, "destination")));
    if (dx != dy)
        return dx < dy ? -1 : 1;
    /* stable: the array index kept in "_i" */
    json_int_t ix = json_integer_value(json_object_get(*x, "_i"));
    json_int_t iy = json_integer_value(json_object_get(*y, "_i"));
    return ix < iy ? -1 : ix > iy;
}

/* Parents before children (the runtime mounts in order), otherwise as
 * given. Takes the reference to list. */
static json_t *
sort_by_depth(json_t *list)
{
    size_t n = json_array_size(list);
    json_t **arr = cs_xcalloc(n ? n : 1, sizeof *arr);
    for (size_t i = 0; i < n; i++) {
        arr[i] = json_incref(json_array_get(list, i));
        json_object_set_new(arr[i], "_i", json_integer((json_int_t) i));
    }
    qsort(arr, n, sizeof *arr, cmp_depth);
    json_t *sorted = json_array();
    for (size_t i = 0; i < n; i++) {
        json_object_del(arr[i], "_i");
        json_array_append_new(sorted, arr[i]);
    }
    free(arr);
    json_decref(list);
    return sorted;
}

static int
make_mounts(const cs_run_opts *o, const char *hosts, json_t **out, cs_error **err)
{
    json_t *list = default_mounts(o, hosts);
    drop_replaced(list, o);
    for (size_t i = 0; i < o->nmounts; i++) {
        json_t *mo = NULL;
        int rc = caller_mount(&o->mounts[i], &mo, err);
        if (rc < 0) {
            json_decref(list);
            return rc;
        }
        json_array_append_new(list, mo);
    }
    *out = sort_by_depth(list);
    return 0;
}

/* ---- process ---- */

/* Docker's (and BuildKit's) RLIMIT_NOFILE is 1048576, but raising a hard
 * limit takes CAP_SYS_RESOURCE, which a sandboxed root may lack (the runtime
 * then fails with EPERM): without it, stay at our own hard limit. */
static json_int_t
nofile_limit(void)
{
    const json_int_t want = 1048576;
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capget, &h, d) == 0 && (d[0].effective & (1u << CAP_SYS_RESOURCE)))
        return want;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY
        && (json_int_t) rl.rlim_max < want)
        return (json_int_t) rl.rlim_max;
    return want;
}

static json_t *
rlimit_obj(const char *type, json_int_t soft, json_int_t hard)
{
    return json_pack("{s:s, s:I, s:I}", "type", type, "hard", hard, "soft", soft);
}

/* Docker's RLIMIT_NOFILE, then the caller's: one of a type replaces the
 * earlier one (docker keeps the last --ulimit of a name). */
static json_t *
rlimits(const cs_run_opts *o)
{
    json_int_t nofile = nofile_limit();
    json_t *l = json_array();
    json_array_append_new(l, rlimit_obj("RLIMIT_NOFILE", nofile, nofile));
    for (size_t i = 0; i < o->nrlimits; i++) {
        const cs_run_rlimit *r = &o->rlimits[i];
        for (size_t j = 0; j < json_array_size(l); j++)
            if (!strcmp(json_string_value(json_object_get(json_array_get(l, j), "type")), r->type))
                json_array_remove(l, j--);
        json_array_append_new(l, rlimit_obj(r->type, (json_int_t) r->soft, (json_int_t) r->hard));
    }
    return l;
}

static const char *const default_caps[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};
#define NCAPS (sizeof default_caps / sizeof default_caps[0])

/* Like Docker: a non-root user gets no effective or permitted capabilities,
 * and nothing is inheritable (CVE-2022-24769). */
static json_t *
capabilities(uint32_t uid)
{
    size_t n = uid == 0 ? NCAPS : 0;
    return json_pack("{s:o, s:o, s:o, s:[], s:[]}", "bounding", str_array(default_caps, NCAPS),
                     "effective", str_array(default_caps, n), "permitted",
                     str_array(default_caps, n), "inheritable", "ambient");
}

static json_t *
env_array(const cs_run_opts *o, const char **bad)
{
    json_t *env = json_array();
    bool has_path = false;
    for (char *const *e = o->env; e && *e; e++) {
        has_path |= !strncmp(*e, "PATH=", 5);
        append_str(env, *e, bad);
    }
    if (!has_path)
        json_array_append_new(env, json_string(CS_OCISPEC_DEFAULT_PATH));
    return env;
}

static json_t *
process(const cs_run_opts *o, const char **bad)
{
    json_t *args = json_array();
    for (char *const *a = o->argv; *a; a++)
        append_str(args, *a, bad);
    json_t *env = env_array(o, bad);
    if (o->cwd) {
        json_t *c = json_string(o->cwd);
        if (!c && !*bad)
            *bad = o->cwd;
        json_decref(c);
    }
    json_t *gids = json_array();
    for (size_t i = 0; i < o->ngids; i++)
        json_array_append_new(gids, json_integer(o->gids[i]));
    return json_pack("{s:b, s:{s:I, s:I, s:o}, s:o, s:o, s:s, s:o, s:o, s:b}", "terminal", 0,
                     "user", "uid", (json_int_t) o->uid, "gid", (json_int_t) o->gid,
                     "additionalGids", gids, "args", args, "env", env, "cwd", o->cwd ? o->cwd : "/",
                     "capabilities", capabilities(o->uid), "rlimits", rlimits(o), "noNewPrivileges",
                     0);
}

/* ---- linux ---- */

static json_t *
linux_section(const cs_run_opts *o)
{
    json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}]", "type", "pid", "type", "mount", "type",
                           "ipc", "type", "uts");
    if (o->network_none) /* a new one holds only lo; else the host's */
        json_array_append_new(ns, json_pack("{s:s}", "type", "network"));
    return json_pack(
        "{s:o, s:{s:[{s:b, s:s}]}, s:o, s:o}", "namespaces", ns, "resources", "devices", "allow", 0,
        "access", "rwm", "maskedPaths",
        STRS("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
             "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
             "/sys/firmware", "/sys/devices/virtual/powercap"),
        "readonlyPaths",
        STRS("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"));
}

int
cs_ocispec_new(const cs_run_opts *o, const char *hosts, json_t **out, cs_error **err)
{
    int rc;
    json_t *mounts;
    if ((rc = cs_ocispec_check(o, err)) < 0 || (rc = make_mounts(o, hosts, &mounts, err)) < 0)
        return rc;
    const char *bad = NULL;
    json_t *cfg = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", "1.0.2",
                            "process", process(o, &bad), "root", "path", "rootfs", "readonly", 0,
                            "hostname", "cstore", "mounts", mounts, "linux", linux_section(o));
    if (!cfg || bad) {
        json_decref(cfg);
        return cs_err(err, CS_EINVAL, 0, "run: '%s' is not valid utf-8", bad ? bad : "?");
    }
    *out = cfg;
    return 0;
}

/* An unlimited rlimit (RLIM_INFINITY, 2^64-1) is -1 in the object, since a
 * JSON integer of jansson is signed; the runtime reads a uint64, so it is
 * written out as 18446744073709551615 (docker passes uint64(-1) the same). */
int
cs_ocispec_write(const json_t *cfg, const char *path, cs_error **err)
{
    cs_autofree char *js = json_dumps(cfg, JSON_COMPACT);
    if (!js)
        return cs_err(err, CS_EIO, 0, "write '%s': cannot encode the runtime config", path);
    static const char *const keys[] = { "\"hard\":-1", "\"soft\":-1" };
    cs_buf out;
    cs_buf_init(&out);
    for (const char *p = js; *p;) {
        size_t k = 0;
        while (k < 2 && strncmp(p, keys[k], strlen(keys[k])))
            k++;
        if (k < 2) {
            cs_buf_append(&out, keys[k], 7);
            cs_buf_append(&out, "18446744073709551615", 20);
            p += strlen(keys[k]);
        } else {
            cs_buf_u8(&out, (uint8_t) *p++);
        }
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), w = fd < 0 ? -1 : 0;
    int e = errno;
    if (fd >= 0 && (w = cs_write_all(fd, out.data, out.len)) < 0)
        e = errno;
    if (fd >= 0 && close(fd) < 0 && w == 0) {
        w = -1;
        e = errno;
    }
    cs_buf_release(&out);
    return w < 0 ? cs_err(err, CS_EIO, e, "write '%s'", path) : 0;
}

int
cs_ocispec_write_hosts(const cs_run_opts *o, const char *path, cs_error **err)
{
    cs_buf b;
    cs_buf_init(&b);
    cs_error *tmp = NULL; /* no host file: only the extra lines */
    if (cs_read_file("/etc/hosts", 1 << 20, &b, &tmp) < 0)
        b.len = 0;
    cs_error_clear(&tmp);
    if (b.len && b.data[b.len - 1] != '\n')
        cs_buf_u8(&b, '\n');
    for (char *const *h = o->hosts; h && *h; h++) {
        cs_buf_append(&b, *h, strlen(*h));
        cs_buf_u8(&b, '\n');
    }
    int rc = 0;
    cs_autoclose int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || cs_write_all(fd, b.data, b.len) < 0)
        rc = cs_err(err, CS_EIO, errno, "write '%s'", path);
    cs_buf_release(&b);
    return rc;
}

/* ---- docker's --ulimit and --add-host ---- */

/* docker's ulimit names (go-units) and their rlimits. */
static const char *const ulimit_names[][2] = {
    { "as", "RLIMIT_AS" },
    { "core", "RLIMIT_CORE" },
    { "cpu", "RLIMIT_CPU" },
    { "data", "RLIMIT_DATA" },
    { "fsize", "RLIMIT_FSIZE" },
    { "locks", "RLIMIT_LOCKS" },
    { "memlock", "RLIMIT_MEMLOCK" },
    { "msgqueue", "RLIMIT_MSGQUEUE" },
    { "nice", "RLIMIT_NICE" },
    { "nofile", "RLIMIT_NOFILE" },
    { "nproc", "RLIMIT_NPROC" },
    { "rss", "RLIMIT_RSS" },
    { "rtprio", "RLIMIT_RTPRIO" },
    { "rttime", "RLIMIT_RTTIME" },
    { "sigpending", "RLIMIT_SIGPENDING" },
    { "stack", "RLIMIT_STACK" },
};

/* One limit: a decimal int64 as Go's strconv.ParseInt takes it. */
static int
ulimit_value(const char *spec, const char *s, size_t n, int64_t *v, cs_error **err)
{
    cs_autofree char *t = cs_xstrndup(s, n);
    char *end;
    errno = 0;
    long long x = strtoll(t, &end, 10);
    if (!*t || *end || errno || !(isdigit((unsigned char) *t) || *t == '-' || *t == '+'))
        return cs_err(err, CS_EINVAL, 0, "invalid ulimit value '%s' in '%s'", t, spec);
    if (x < -1)
        return cs_err(err, CS_EINVAL, 0, "invalid ulimit value '%s' in '%s'", t, spec);
    *v = x; /* -1: unlimited */
    return 0;
}

int
cs_run_rlimit_parse(const char *spec, cs_run_rlimit *out, cs_error **err)
{
    const char *eq = strchr(spec, '=');
    if (!eq)
        return cs_err(err, CS_EINVAL, 0, "invalid ulimit argument: %s", spec);
    size_t nl = (size_t) (eq - spec), i = 0, n = sizeof ulimit_names / sizeof ulimit_names[0];
    while (i < n && !(strlen(ulimit_names[i][0]) == nl && !strncmp(spec, ulimit_names[i][0], nl)))
        i++;
    if (i == n)
        return cs_err(err, CS_EINVAL, 0, "invalid ulimit type: %.*s", (int) nl, spec);
    const char *v = eq + 1, *colon = strchr(v, ':');
    if (colon && strchr(colon + 1, ':'))
        return cs_err(err, CS_EINVAL, 0,
                      "too many limit value arguments - %s, can only have up to two, "
                      "`soft[:hard]`",
                      v);
    int64_t soft, hard;
    int rc = ulimit_value(spec, v, colon ? (size_t) (colon - v) : strlen(v), &soft, err);
    if (rc < 0)
        return rc;
    hard = soft;
    if (colon && (rc = ulimit_value(spec, colon + 1, strlen(colon + 1), &hard, err)) < 0)
        return rc;
    /* go-units: an unlimited hard limit takes any soft one, an unlimited
     * soft one needs an unlimited hard one. */
    if (hard != -1 && soft == -1)
        return cs_err(err, CS_EINVAL, 0,
                      "ulimit soft limit must be less than or equal to hard limit: soft: -1 "
                      "(unlimited), hard: %" PRId64,
                      hard);
    if (hard != -1 && soft > hard)
        return cs_err(err, CS_EINVAL, 0,
                      "ulimit soft limit must be less than or equal to hard limit: %" PRId64
                      " > %" PRId64,
                      soft, hard);
    *out = (cs_run_rlimit){ .type = ulimit_names[i][1],
                            .soft = (uint64_t) soft,
                            .hard = (uint64_t) hard };
    return 0;
}

int
cs_run_host_parse(const char *spec, char **line, cs_error **err)
{
    *line = NULL;
    /* HOST=IP, else HOST:IP split at the first colon (an IPv6 address keeps
     * its own), as docker's ValidateExtraHost */
    const char *sep = strchr(spec, '=');
    if (!sep)
        sep = strchr(spec, ':');
    if (!sep || sep == spec || memchr(spec, ':', (size_t) (sep - spec)))
        return cs_err(err, CS_EINVAL, 0, "bad format for add-host: '%s'", spec);
    /* host-gateway: docker maps it to its bridge's gateway, buildx to the
     * docker driver's moby.host-gateway-ip. A RUN here shares the host's
     * network namespace (or has none), so the host is its own loopback. */
    cs_autofree char *ip = cs_xstrdup(strcmp(sep + 1, "host-gateway") ? sep + 1 : "127.0.0.1");
    size_t n = strlen(ip);
    if (n > 2 && ip[0] == '[' && ip[n - 1] == ']') {
        memmove(ip, ip + 1, n - 2);
        ip[n - 2] = 0;
    }
    unsigned char addr[16];
    char canon[INET6_ADDRSTRLEN];
    int af = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(af, ip, addr) != 1 || !inet_ntop(af, addr, canon, sizeof canon))
        return cs_err(err, CS_EINVAL, 0, "invalid IP address in add-host: '%s'", ip);
    *line = cs_xasprintf("%s\t%.*s", canon, (int) (sep - spec), spec);
    return 0;
}
