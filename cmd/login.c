/* login.c - `cstore login` and `cstore logout`: credentials for a registry,
 * verified against it, kept where docker keeps them (registry/regauth.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include "cmd.h"
#include "regauth.h"
#include "registry.h"

const char cmd_login_usage[] =
    "usage: cstore login [-u USER] [-p PASS | --password-stdin] [--tls-verify=false]\n"
    "                    [--cert-dir DIR] REGISTRY\n"
    "\n"
    "Check a user name and password against REGISTRY (\"docker.io\", \"ghcr.io\",\n"
    "\"localhost:5000\") and keep them where docker does: the credential helper that\n"
    "$DOCKER_CONFIG/config.json names (credHelpers, credsStore), else its \"auths\"\n"
    "(the file written with mode 0600). Asks on the terminal for what is not given.\n"
    "\n"
    "Options:\n"
    "  -u, --username USER   the user name\n"
    "  -p, --password PASS   the password (visible to other users: prefer\n"
    "                        --password-stdin)\n"
    "  --password-stdin      read the password from standard input\n"
    "  --tls-verify=false    allow plain http and unverified https for this registry\n"
    "  --cert-dir DIR        CA (*.crt) and client certificate (client.cert, client.key)\n"
    "                        for the registry, instead of /etc/docker/certs.d/REGISTRY\n"
    "  -h, --help            show this help\n";

const char cmd_logout_usage[] =
    "usage: cstore logout REGISTRY\n"
    "\n"
    "Remove the credentials `cstore login` (or docker, or podman) kept for REGISTRY.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n";

/* One line from fd 0 without its newline; echo off on a terminal. */
static char *
read_line(const char *prompt, bool secret)
{
    struct termios old, quiet;
    bool tty = isatty(0);
    if (tty && prompt)
        fprintf(stderr, "%s", prompt);
    if (tty && secret && tcgetattr(0, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t) ECHO;
        tcsetattr(0, TCSAFLUSH, &quiet);
    } else {
        secret = false;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (secret) {
        tcsetattr(0, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    return line;
}

static int
get_credentials(cmd_ctx *c, const char **user, const char *pass, bool pass_stdin, char **u_out,
                char **p_out)
{
    if (pass && pass_stdin)
        return cmd_usage_error(c, "--password and --password-stdin exclude each other");
    if (pass_stdin && !*user)
        return cmd_usage_error(c, "--password-stdin needs --username");
    if (!*user) {
        if (!isatty(0))
            return cmd_usage_error(c, "no --username (and no terminal to ask on)");
        *u_out = read_line("Username: ", false);
        if (!*u_out || !**u_out)
            return cmd_usage_error(c, "empty user name");
        *user = *u_out;
    }
    if (pass) {
        fprintf(stderr, "cstore: warning: --password is visible to other users: use "
                        "--password-stdin\n");
        *p_out = cs_xstrdup(pass);
    } else {
        if (!pass_stdin && !isatty(0))
            return cmd_usage_error(c, "no --password (and no terminal to ask on)");
        *p_out = read_line(pass_stdin ? NULL : "Password: ", !pass_stdin);
    }
    if (!*p_out || !**p_out)
        return cmd_usage_error(c, "empty password");
    return 0;
}

int
cmd_login(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    const char *user = NULL, *pass = NULL;
    bool pass_stdin = false;
    cmd_reg_opts ro = { 0 };
    const cmd_opt opts[] = {
        CMD_OPT("username", 'u', CMD_STRING, &user),
        CMD_OPT("password", 'p', CMD_STRING, &pass),
        CMD_OPT("password-stdin", 0, CMD_FLAG, &pass_stdin),
        CMD_OPTS_REGISTRY(&ro),
        CMD_OPT_END,
    };
    cmd_args args = { .min = 1, .max = 1 };
    int rc = cmd_parse(c, argc, argv, opts, &args, err);
    if (rc != 0)
        return rc;
    cs_autofree char *domain = NULL, *u = NULL, *p = NULL, *where = NULL;
    if ((rc = cs_reg_domain_normalize(args.v[0], &domain, err)) < 0)
        return rc;
    if ((rc = get_credentials(c, &user, pass, pass_stdin, &u, &p)) != 0)
        return rc;
    cs_reg_opts o;
    cmd_reg_opts_get(&ro, &o);
    __attribute__((cleanup(cs_registry_freep))) cs_registry *r = NULL;
    rc = cs_registry_open(domain, "", CS_REG_PULL, &o, &r, err);
    if (rc == 0) {
        cs_registry_set_credentials(r, user, p);
        rc = cs_registry_ping(r, err);
    }
    if (rc == 0)
        rc = cs_reg_cred_store(domain, user, p, &where, err);
    explicit_bzero(p, strlen(p));
    if (rc < 0)
        return rc;
    printf("Login Succeeded\n");
    return 0;
}

int
cmd_logout(cmd_ctx *c, int argc, char **argv, cs_error **err)
{
    cmd_args args = { .min = 1, .max = 1 };
    int rc = cmd_parse(c, argc, argv, cmd_no_opts, &args, err);
    if (rc != 0)
        return rc;
    cs_autofree char *domain = NULL;
    if ((rc = cs_reg_domain_normalize(args.v[0], &domain, err)) < 0)
        return rc;
    cs_error *e = NULL;
    rc = cs_reg_cred_erase(domain, &e);
    if (rc == -CS_ENOTFOUND) {
        /* As docker: nothing to remove is no failure. */
        cs_error_free(e);
        printf("Not logged in to %s\n", domain);
        return 0;
    }
    if (rc < 0) {
        *err = e;
        return rc;
    }
    printf("Removing login credentials for %s\n", domain);
    return 0;
}
