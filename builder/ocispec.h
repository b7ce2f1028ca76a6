/* ocispec.h - the OCI runtime spec (a bundle's config.json) of one run, made
 * from cs_run_opts.
 *
 * Pure apart from three reads of the host: our own capabilities and
 * RLIMIT_NOFILE (the rlimit the container may get) and whether
 * /etc/resolv.conf and /etc/hosts exist (they are bind-mounted), and
 * cs_ocispec_write_hosts. No mounts,
 * no processes: unit-testable without root. Internal to the RUN executor
 * (run.c) and its tests. Thread rules: none; every call stands alone.
 */
#ifndef CSBUILD_OCISPEC_H
#define CSBUILD_OCISPEC_H

#include <jansson.h>
#include "run.h"

/* The PATH a run gets when its env has none, as Docker does. */
#define CS_OCISPEC_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Checks what needs no filesystem: a command is given, cwd and the lower dirs
 * are absolute. 0 or -CS_EINVAL. */
int cs_ocispec_check(const cs_run_opts *o, cs_error **err);

/* The whole config (a new reference in *out): process (args, env with a
 * default PATH, cwd, uid/gid and groups, Docker's default capabilities, none
 * effective for uid != 0, RLIMIT_NOFILE and o->rlimits), root "rootfs",
 * hostname, mounts (the defaults /proc, /dev, /dev/pts, /dev/shm of
 * o->shm_size, /dev/mqueue, /sys, the host's resolv.conf, and on /etc/hosts
 * the file `hosts` (NULL: the host's /etc/hosts), then o->mounts, which replace a default on
 * the same destination; parents before children, otherwise in order),
 * namespaces (pid, mount, ipc, uts, and network for network_none), masked and
 * read-only paths. Returns -CS_EINVAL (see cs_ocispec_check, a mount target
 * not absolute, a bind without source, a string not UTF-8) or
 * -CS_EUNSUPPORTED (a mount type other than bind or tmpfs). */
int cs_ocispec_new(const cs_run_opts *o, const char *hosts, json_t **out, cs_error **err);

/* Writes the /etc/hosts of a run with extra hosts to path (mode 0644): the
 * host's /etc/hosts (none: nothing), then o->hosts, a line each, as
 * BuildKit adds --add-host entries. 0 or -CS_EIO. */
int cs_ocispec_write_hosts(const cs_run_opts *o, const char *path, cs_error **err);

/* Writes cfg to path as compact JSON; an rlimit of -1 ("hard" or "soft")
 * is written as RLIM_INFINITY, 18446744073709551615 (the runtime reads a
 * uint64; a jansson integer is signed). 0 or -CS_EIO. */
int cs_ocispec_write(const json_t *cfg, const char *path, cs_error **err);

/* A mount destination as a clean relative path: "/a//./b/" -> "a/b"; NULL
 * for one with ".." or for the root itself. Caller frees. The stub cleaner
 * (run_mount.c) compares destinations the same way. */
char *cs_ocispec_clean_rel(const char *p);

#endif
