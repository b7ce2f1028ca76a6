/* build_secret.h - the values behind RUN --mount=type=secret and type=ssh:
 * looked up by id in cs_build_opts' --secret and --ssh lists. Internal to
 * the builder (build_run.c). Thread rules: none. */
#ifndef CSBUILD_BUILD_SECRET_H
#define CSBUILD_BUILD_SECRET_H

#include "build.h"

/* BuildKit's limit on one secret's size. */
#define CS_BUILD_SECRET_MAX (500 * 1024)

/* The value of secret id into *out (caller wipes it with
 * build_secret_wipe): 1 when found, 0 when no --secret has that id (or its
 * variable is unset); -CS_EIO, -CS_ENOTFOUND or -CS_EINVAL (too large) when
 * its file cannot be read. */
int build_secret_value(const cs_build_opts *o, const char *id, cs_buf *out, cs_error **err);
/* Zeroes and releases a value. */
void build_secret_wipe(cs_buf *b);
/* The agent socket of --ssh id, NULL when none (borrowed from o). */
const char *build_ssh_socket(const cs_build_opts *o, const char *id);

#endif
