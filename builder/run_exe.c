/* run_exe.c - the runtime run from a sealed memfd copy of its binary.
 *
 * runc 1.1 guards against a container that overwrites the runc binary
 * through /proc/<pid>/exe (CVE-2019-5736): `runc init` re-executes itself
 * from a read-only copy of /proc/self/exe (a read-only bind mount made and
 * detached in the state dir, else an 8.7 MB copy into a memfd) unless
 * /proc/self/exe already is a memfd sealed with exactly F_SEAL_SEAL |
 * F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE (is_self_cloned() in
 * libcontainer/nsenter/cloned_binary.c at v1.1.5). So each RUN paid one more
 * exec of runc and two mounts and an unmount. Started from such a memfd,
 * `runc run` execs `runc init` from the same sealed file and runc skips its
 * own copy: one copy per cstore process, made once and shared by all its
 * runs, which no container can write (the seals forbid writes to anyone,
 * for good).
 *
 * The copy (8.7 MB, 4-6 ms of CPU) costs more than one run saves (~2.5 ms
 * of CPU: runc's bind mount dance and exec), so it is made only when asked
 * for (cs_run_preload: a build that has two or more RUNs to run), in a
 * thread, while the steps before them go on; a run with none asked for
 * starts the runtime from its path.
 *
 * Only an ELF binary is copied: a script run from a close-on-exec fd would
 * hand its interpreter a /proc/self/fd path that is gone by then. Where the
 * copy cannot be made (no memfd sealing, the runtime not found, a script)
 * the runtime runs from its path, as before, and protects itself. The copy
 * is of the binary as it is at the first run of the process (a process is
 * one cstore command).
 */
#include "run_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_EXEC
#    define MFD_EXEC 0x0010U
#endif
/* the seals runc's is_self_cloned() wants, no more, no fewer */
#define RUNC_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static pthread_mutex_t exe_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t exe_cv = PTHREAD_COND_INITIALIZER;
static char *exe_name; /* the runtime (as given) of exe_fd; NULL: none tried yet */
static bool exe_busy;  /* being copied by a preload thread */
static int exe_fd = -1;

/* runtime as posix_spawnp finds it: itself when it names a path, else the
 * first executable regular file of that name in PATH. Caller frees. */
static char *
resolve(const char *runtime)
{
    if (strchr(runtime, '/'))
        return cs_xstrdup(runtime);
    const char *path = getenv("PATH");
    cs_autofree char *dirs = cs_xstrdup(path && *path ? path : "/usr/local/bin:/bin:/usr/bin");
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *f = cs_path_join(*d ? d : ".", runtime);
        struct stat st;
        if (stat(f, &st) == 0 && S_ISREG(st.st_mode) && access(f, X_OK) == 0)
            return f;
        free(f);
    }
    return NULL;
}

/* Copies in into a new memfd and seals it as runc wants; -1 on any failure
 * (the caller then runs the runtime from its path). */
static int
copy_sealed(int in, off_t size)
{
    int fd = memfd_create("runc", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) /* kernels before 6.3 know no MFD_EXEC */
        fd = memfd_create("runc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    off_t off = 0;
    while (off < size) {
        ssize_t n = sendfile(fd, in, &off, (size_t) (size - off));
        if (n <= 0 && !(n < 0 && errno == EINTR))
            break;
    }
    /* exactly runc's seals: one more (F_SEAL_EXEC, where vm.memfd_noexec
     * imposes it) and runc copies again; an unexecutable one is no use */
    if (off != size || fcntl(fd, F_ADD_SEALS, RUNC_SEALS) < 0
        || fcntl(fd, F_GET_SEALS) != RUNC_SEALS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The sealed copy of runtime's binary, or -1. */
static int
make_copy(const char *runtime)
{
    cs_autofree char *path = resolve(runtime);
    if (!path)
        return -1;
    cs_autoclose int in = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    unsigned char magic[4];
    if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode)
        || pread(in, magic, sizeof magic, 0) != (ssize_t) sizeof magic
        || memcmp(magic, "\177ELF", 4) != 0)
        return -1;
    return copy_sealed(in, st.st_size);
}

/* Makes the copy for runtime and publishes it (exe_mu not held). */
static void
fill(const char *runtime)
{
    int fd = make_copy(runtime);
    pthread_mutex_lock(&exe_mu);
    exe_fd = fd;
    exe_busy = false;
    pthread_cond_broadcast(&exe_cv);
    pthread_mutex_unlock(&exe_mu);
}

static void *
preload_main(void *arg)
{
    cs_autofree char *runtime = arg;
    fill(runtime);
    return NULL;
}

void
cs_run_preload(const char *runtime)
{
    runtime = runtime ? runtime : "runc";
    pthread_mutex_lock(&exe_mu);
    /* Asked for another runtime, the old copy stays open: a run may be
     * starting from it. */
    bool mine = !exe_busy && !(exe_name && !strcmp(exe_name, runtime));
    if (mine) {
        free(exe_name);
        exe_name = cs_xstrdup(runtime);
        exe_fd = -1;
        exe_busy = true;
    }
    pthread_mutex_unlock(&exe_mu);
    if (!mine)
        return;
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    char *arg = cs_xstrdup(runtime);
    if (pthread_create(&t, &at, preload_main, arg) != 0) {
        free(arg);
        fill(runtime); /* no thread: copy here */
    }
    pthread_attr_destroy(&at);
}

int
run_exe_fd(const char *runtime)
{
    pthread_mutex_lock(&exe_mu);
    while (exe_busy)
        pthread_cond_wait(&exe_cv, &exe_mu);
    int fd = exe_name && !strcmp(exe_name, runtime) ? exe_fd : -1;
    pthread_mutex_unlock(&exe_mu);
    return fd;
}
