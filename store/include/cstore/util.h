/* util.h - allocation that aborts on OOM, cleanup attributes, growable byte
 * buffers, SHA-256 digests (OpenSSL EVP, which uses the CPU's SHA extensions),
 * and small file helpers. */
#ifndef CSTORE_UTIL_H
#define CSTORE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include "cstore/error.h"

/* ---- allocation: out of memory aborts ---- */
void *cs_xmalloc(size_t n);
void *cs_xcalloc(size_t n, size_t size);
void *cs_xrealloc(void *p, size_t n);
char *cs_xstrdup(const char *s);
char *cs_xstrndup(const char *s, size_t n);
char *cs_xasprintf(const char *fmt, ...) CS_PRINTF(1, 2);
char *cs_xvasprintf(const char *fmt, va_list ap) CS_PRINTF(1, 0);
/* s[0..n) without leading and trailing ASCII white space (" \t\n\v\f\r",
 * isspace in the C locale), malloc'd. */
char *cs_strtrim_dup(const char *s, size_t n);

static inline void
cs_freep(void *p)
{
    free(*(void **) p);
}
static inline void
cs_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
/* free() on each argument (NULL is fine), all read before the first is freed:
 * cs_free_all(x->a, x->b, x) releases x's strings and then x. */
#define cs_free_all(...)                                                                           \
    cs_free_n((void *[]){ __VA_ARGS__ }, sizeof((void *[]){ __VA_ARGS__ }) / sizeof(void *))
static inline void
cs_free_n(void *const *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i]);
}
#define cs_autofree  __attribute__((cleanup(cs_freep)))
#define cs_autoclose __attribute__((cleanup(cs_closep)))
#define CS_DEFINE_FREEP(type, fn)                                                                  \
    static inline void fn##p(type **p)                                                             \
    {                                                                                              \
        fn(*p);                                                                                    \
    }
/* Returns *pp and leaves NULL behind: ownership leaves, the cleanup sees NULL. */
#define cs_steal(pp)                                                                               \
    ({                                                                                             \
        __typeof__(*(pp)) _v = *(pp);                                                              \
        *(pp) = NULL;                                                                              \
        _v;                                                                                        \
    })

/* -1, 0 or 1 as a is below, equal to or above b: a comparator's tie-break. */
static inline int
cs_cmp_size(size_t a, size_t b)
{
    return (a > b) - (a < b);
}

/* A path (borrowed) with its index: qsort with cs_path_idx_cmp orders by
 * path, then index, which keeps equal paths in their first order. */
typedef struct cs_path_idx {
    const char *path;
    size_t idx;
} cs_path_idx;
int cs_path_idx_cmp(const void *a, const void *b);

/* ---- growable byte buffer (caller-owned struct) ---- */
typedef struct cs_buf {
    uint8_t *data;
    size_t len, cap;
} cs_buf;
void cs_buf_init(cs_buf *b);
void cs_buf_release(cs_buf *b);
void cs_buf_reserve(cs_buf *b, size_t extra);
/* n rounded up to a whole number of pages. */
size_t cs_page_round(size_t n);
void cs_buf_append(cs_buf *b, const void *p, size_t n);
void cs_buf_u8(cs_buf *b, uint8_t v);
void cs_buf_u32(cs_buf *b, uint32_t v);                  /* big-endian */
void cs_buf_u64(cs_buf *b, uint64_t v);                  /* big-endian */
void cs_buf_str(cs_buf *b, const char *s);               /* u32 length + bytes; NULL is length 0 */
void cs_buf_bytes(cs_buf *b, const void *p, uint32_t n); /* u32 length + bytes */

/* Reader over an encoded buffer; every getter returns false when the input is
 * short (the reader then stays failed). */
typedef struct cs_rd {
    const uint8_t *p, *end;
    bool bad;
} cs_rd;
void cs_rd_init(cs_rd *r, const void *p, size_t len);
/* cs_rd_init, then the record's 8-byte magic: 0, or CS_ECORRUPT
 * "WHAT record: bad magic". */
int cs_rd_begin(cs_rd *r, const void *p, size_t len, const char magic[8], const char *what,
                cs_error **err);
uint8_t cs_rd_u8(cs_rd *r);
uint32_t cs_rd_u32(cs_rd *r);
uint64_t cs_rd_u64(cs_rd *r);
const void *cs_rd_raw(cs_rd *r, size_t n);
/* Returns a malloc'd NUL-terminated copy (NULL for length 0). */
char *cs_rd_str(cs_rd *r);
/* Returns a pointer into the buffer and its length. */
const void *cs_rd_bytes(cs_rd *r, uint32_t *n);

/* ---- big-endian fields of records and keys ---- */
static inline uint32_t
cs_be32_get(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}
static inline void
cs_be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24), p[1] = (uint8_t) (v >> 16), p[2] = (uint8_t) (v >> 8),
    p[3] = (uint8_t) v;
}
static inline uint64_t
cs_be64_get(const uint8_t *p)
{
    return (uint64_t) cs_be32_get(p) << 32 | cs_be32_get(p + 4);
}
static inline void
cs_be64_put(uint8_t *p, uint64_t v)
{
    cs_be32_put(p, (uint32_t) (v >> 32));
    cs_be32_put(p + 4, (uint32_t) v);
}

/* ---- digests ---- */
typedef struct cs_digest {
    uint8_t b[32];
} cs_digest;
#define CS_DIGEST_HEX 65 /* 64 hex chars + NUL */
#define CS_DIGEST_STR 72 /* "sha256:" + 64 + NUL */
void cs_sha256(const void *p, size_t n, cs_digest *out);
void cs_digest_hex(const cs_digest *d, char out[CS_DIGEST_HEX]);
/* "sha256:<hex>" */
void cs_digest_str(const cs_digest *d, char out[CS_DIGEST_STR]);
/* Accepts "sha256:<64 hex>" or a bare 64-hex string; false otherwise. */
bool cs_digest_parse(const char *s, cs_digest *out);
bool cs_digest_eq(const cs_digest *a, const cs_digest *b);
bool cs_digest_is_zero(const cs_digest *d);

/* Streaming SHA-256; one context per thread. */
typedef struct cs_sha256_ctx cs_sha256_ctx;
cs_sha256_ctx *cs_sha256_new(void);
void cs_sha256_update(cs_sha256_ctx *c, const void *p, size_t n);
/* Writes the digest and resets the context for reuse. */
void cs_sha256_final(cs_sha256_ctx *c, cs_digest *out);
void cs_sha256_free(cs_sha256_ctx *c);
CS_DEFINE_FREEP(cs_sha256_ctx, cs_sha256_free)

/* ---- files ---- */
/* Reads a whole file (at most max bytes, else CS_EINVAL "too large"). */
int cs_read_file(const char *path, size_t max, cs_buf *out, cs_error **err);
/* Writes via a temp file in the same directory, fsync, rename. */
int cs_write_file_atomic(const char *path, const void *p, size_t n, cs_error **err);
int cs_write_all(int fd, const void *p, size_t n); /* 0 or -1 with errno */
ssize_t cs_read_full(int fd, void *p, size_t n);   /* bytes read (< n at EOF) or -1 */
int cs_mkdir_p(const char *path, int mode, cs_error **err);
char *cs_path_join(const char *a, const char *b);
/* The names in directory fd, sorted bytewise, without "." and ".." (fd is
 * not consumed; the listing is complete before the caller changes the
 * directory). *names is malloc'd: free with cs_names_free. what names the
 * directory in errors. */
int cs_dir_names(int fd, const char *what, char ***names, size_t *n, cs_error **err);
void cs_names_free(char **names, size_t n);
/* Removes path: a tree, a file, or nothing at all (0). Never follows a
 * symlink and never crosses a mount point: a directory on another file
 * system stops it with CS_EBUSY. Bytes freed (blocks of each inode whose last
 * link goes) are added to *bytes when bytes is not NULL. Stops at the first
 * failure; a full disk is CS_EFULL, other system errors CS_EIO. */
int cs_rm_tree(const char *path, uint64_t *bytes, cs_error **err);
/* The start time of process pid in unix seconds (from /proc: its start in
 * clock ticks since boot, plus the boot time), or -1 when it is gone. With
 * the pid it names one process: pids are reused, start times are not. */
int64_t cs_pid_start_time(pid_t pid);
/* flock(fd, op), retried on EINTR (blocking locks wait through signals).
 * Returns 0 or the errno. */
int cs_flock(int fd, int op);
/* Monotonic time in seconds. */
double cs_now(void);

#endif
