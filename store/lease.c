/* lease.c - leases of running processes, for gc to respect (see
 * cstore/lease.h and lease_int.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include "cstore/oneshot.h"
#include "cstore/util.h"
#include "lease_int.h"

struct cs_lease {
    pthread_mutex_t mu;
    int fd;
    char *path;
};

static char *
lease_dir(cs_store *s)
{
    return cs_path_join(cs_store_root(s), "leases");
}

/* Stage threads of one build lease at once: the lease file is made once. */
static pthread_mutex_t lease_make_mu = PTHREAD_MUTEX_INITIALIZER;

static struct cs_lease *
lease_make(cs_store *s, struct cs_lease **slot, cs_error **err)
{
    cs_autofree char *dir = lease_dir(s);
    if (cs_mkdir_p(dir, 0700, err) < 0)
        return NULL;
    struct cs_lease *l = cs_xcalloc(1, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    l->path = cs_xasprintf("%s/%ld-%" PRId64, dir, (long) getpid(), cs_pid_start_time(getpid()));
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (l->fd < 0) {
        cs_err(err, cs_sys_code(errno), errno, "lease '%s'", l->path);
        free(l->path);
        free(l);
        return NULL;
    }
    *slot = l;
    return l;
}

static struct cs_lease *
lease_get(cs_store *s, cs_error **err)
{
    struct cs_lease **slot = cs_store_lease_slot(s);
    pthread_mutex_lock(&lease_make_mu);
    struct cs_lease *l = *slot ? *slot : lease_make(s, slot, err);
    pthread_mutex_unlock(&lease_make_mu);
    return l;
}

static int
lease_add(cs_store *s, char kind, const cs_digest *d, cs_error **err)
{
    struct cs_lease *l = lease_get(s, err);
    if (!l)
        return err && *err ? -(int) (*err)->code : -CS_EIO;
    char line[CS_DIGEST_HEX + 3];
    line[0] = kind;
    line[1] = ' ';
    cs_digest_hex(d, line + 2);
    line[CS_DIGEST_HEX + 1] = '\n';
    /* One write of a whole line with O_APPEND: gc never sees half of one. */
    pthread_mutex_lock(&l->mu);
    int r = cs_write_all(l->fd, line, CS_DIGEST_HEX + 2);
    pthread_mutex_unlock(&l->mu);
    if (r < 0)
        return cs_err(err, cs_sys_code(errno), errno, "lease '%s'", l->path);
    return 0;
}

static int
lock_file(cs_store *s, int op, int *fd, cs_error **err)
{
    cs_autofree char *path = cs_path_join(cs_store_root(s), "lease.lock");
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return cs_err(err, cs_sys_code(errno), errno, "'%s'", path);
    int e = cs_flock(*fd, op);
    if (e) {
        close(*fd);
        *fd = -1;
        return cs_err(err, CS_EIO, e, "lock '%s'", path);
    }
    return 0;
}

int
cs_lease_image(cs_store *s, const char *name, cs_image **out, cs_error **err)
{
    cs_autoclose int fd = -1;
    int r = lock_file(s, LOCK_SH, &fd, err);
    if (r < 0)
        return r;
    r = cs_image_load(cs_store_db(s), name, out, err);
    /* The layers too: `rmi` may take the image record itself meanwhile. */
    if (r == 0)
        r = lease_add(s, 'i', &(*out)->id, err);
    for (uint32_t i = 0; r == 0 && i < (*out)->nlayers; i++)
        r = lease_add(s, 't', &(*out)->layers[i], err);
    if (r < 0 && *out) {
        cs_image_free(*out);
        *out = NULL;
    }
    return r; /* closing fd releases the lock */
}

int
cs_lease_tree(cs_store *s, const cs_digest *tree, cs_error **err)
{
    return lease_add(s, 't', tree, err);
}

typedef struct tree_store {
    cs_store *s;
    const cs_tree *t;
    cs_digest *out;
} tree_store;

static int
tree_store_fn(cs_db *db, MDB_txn *txn, void *ctx, cs_error **err)
{
    tree_store *ts = ctx;
    int r = cs_tree_put(db, txn, ts->t, ts->out, err);
    return r < 0 ? r : cs_lease_tree(ts->s, ts->out, err);
}

int
cs_lease_tree_store(cs_store *s, const cs_tree *t, cs_digest *out, cs_error **err)
{
    tree_store ts = { s, t, out };
    return cs_db_write_add_only(cs_store_db(s), tree_store_fn, &ts, err);
}

void
cs_lease_release(cs_store *s)
{
    struct cs_lease **slot = cs_store_lease_slot(s);
    struct cs_lease *l = *slot;
    if (!l)
        return;
    close(l->fd);
    unlink(l->path); /* a left-over file is removed by the next gc */
    pthread_mutex_destroy(&l->mu);
    free(l->path);
    free(l);
    *slot = NULL;
}

int
cs_lease_gc_lock(cs_store *s, int *fd, cs_error **err)
{
    return lock_file(s, LOCK_EX, fd, err);
}

void
cs_lease_gc_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

bool
cs_pid_name_live(const char *name)
{
    char *end;
    long pid = strtol(name, &end, 10);
    if (end == name || *end != '-' || pid <= 0)
        return false;
    long long start = strtoll(end + 1, &end, 10);
    return !*end && start > 0 && cs_pid_start_time((pid_t) pid) == start;
}

static int
read_lease(int dfd, const char *name, cs_digestset *images, cs_digestset *trees, cs_error **err)
{
    cs_autoclose int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : cs_err(err, CS_EIO, errno, "lease '%s'", name);
    cs_buf b;
    cs_buf_init(&b);
    char chunk[4096];
    ssize_t n;
    while ((n = cs_read_full(fd, chunk, sizeof(chunk))) > 0)
        cs_buf_append(&b, chunk, (size_t) n);
    int r = n < 0 ? cs_err(err, CS_EIO, errno, "lease '%s'", name) : 0;
    const size_t line = CS_DIGEST_HEX + 2; /* "k " + 64 hex + "\n" */
    for (size_t off = 0; r == 0 && off + line <= b.len; off += line) {
        char hex[CS_DIGEST_HEX];
        cs_digest d;
        memcpy(hex, b.data + off + 2, CS_DIGEST_HEX - 1);
        hex[CS_DIGEST_HEX - 1] = '\0';
        if (b.data[off + 1] != ' ' || b.data[off + line - 1] != '\n' || !cs_digest_parse(hex, &d))
            break; /* a torn or foreign line: what follows is not trusted */
        if (b.data[off] == 'i')
            cs_digestset_add(images, d.b);
        else if (b.data[off] == 't')
            cs_digestset_add(trees, d.b);
    }
    cs_buf_release(&b);
    return r;
}

/* The leases of live processes into the sets (when given); those of dead
 * ones are removed. */
static int
lease_scan(cs_store *s, cs_digestset *images, cs_digestset *trees, cs_error **err)
{
    cs_autofree char *dir = lease_dir(s);
    cs_autoclose int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : cs_err(err, CS_EIO, errno, "'%s'", dir);
    char **names;
    size_t n;
    int r = cs_dir_names(dfd, dir, &names, &n, err);
    if (r < 0)
        return r;
    int live = 0;
    for (size_t i = 0; i < n && r >= 0; i++) {
        if (!cs_pid_name_live(names[i])) {
            unlinkat(dfd, names[i], 0); /* best effort: the next gc retries */
            continue;
        }
        if (images)
            r = read_lease(dfd, names[i], images, trees, err);
        live++;
    }
    cs_names_free(names, n);
    return r < 0 ? r : live;
}

int
cs_lease_roots(cs_store *s, cs_digestset *images, cs_digestset *trees, cs_error **err)
{
    return lease_scan(s, images, trees, err);
}

int
cs_lease_clean_stale(cs_store *s, cs_error **err)
{
    int r = lease_scan(s, NULL, NULL, err);
    return r < 0 ? r : 0;
}
