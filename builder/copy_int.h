/* copy_int.h - what the files of COPY/ADD share (private to builder/copy*.c).
 *
 *   copy.c        cs_copy_prepare/cs_copy_free: options, the prepared sources
 *                 (items and their nodes), path helpers
 *   copy_ctx.c    sources in the build context: resolution with the context
 *                 as root, globbing, .dockerignore, the walk and the stat cache
 *   copy_stat.c   listings and lstat of the walk on two threads
 *   copy_list.c   the stat cache's listing records of the walk's directories
 *   copy_defer.c  the summary walk's entries, nodes only when it misses
 *   copy_src.c    source arguments (--parents), sources in a tree (--from),
 *                 URLs, heredocs, and the cache key
 *   copy_layer.c  cs_copy_layer: the destination layer, ADD's archives
 *   copy_user.c   --chown: users and groups in /etc/passwd and /etc/group
 *
 * Prepare turns every source argument into "items": a directory whose
 * contents are copied, or one non-directory (file, link, URL download,
 * heredoc). Their entries ("nodes") carry paths relative to the item and all
 * the metadata the layer needs, so the key can be computed and the layer made
 * without reading a byte of a context file again.
 */
#ifndef CSBUILD_COPY_INT_H
#define CSBUILD_COPY_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include "copy.h"
#include "cstore/statcache.h"
#include "cstore/strv.h"

typedef enum {
    I_DIR,    /* a directory: nodes are its entries, node 0 ("") itself */
    I_FILE,   /* one non-directory: node 0 */
    I_URL,    /* ADD <url>: node 0 */
    I_INLINE, /* heredoc: node 0 */
} ikind;

typedef struct item {
    ikind kind;
    char *name;      /* base name when copied into a directory */
    char *abs;       /* context file (ADD may extract it), else NULL */
    size_t first, n; /* its nodes */
} item;

struct cs_copy {
    bool is_add;
    char *dest;    /* clean, relative to the root ("" = root) */
    bool dest_dir; /* dest ends in "/" (or "/.", or is ".") */
    bool chown, chmod;
    uint32_t uid, gid, mode;
    int64_t clamp;
    item *items;
    size_t nitems, capitems;
    cs_entry *nodes; /* path = relative to the item */
    size_t nnodes, capnodes;
    /* Files that may share an inode, in node order: nodes with the same
     * key become one file and its hardlinks in the layer (BuildKit keeps
     * hardlinks within a COPY). Context: "dev:ino"; tree: the path of the
     * file a hardlink ends at. */
    struct nodelink {
        size_t node;
        char *key;
    } * links;
    size_t nlinks, caplinks;
};

/* copy.c: the prepared sources. */
cs_entry *copy_add_node(cs_copy *c);
void copy_pop_node(cs_copy *c);
item *copy_add_item(cs_copy *c, ikind kind, const char *name);
/* Drops the last item, which has no nodes left. */
void copy_pop_item(cs_copy *c);
/* Closes the last item: its nodes are those added since copy_add_item. */
void copy_end_item(cs_copy *c);
/* Gives node (the last added) the link key (taken). */
void copy_link_node(cs_copy *c, size_t node, char *key);
/* The link key of node, or NULL. */
const char *copy_node_link(const cs_copy *c, size_t node);
/* The link groups of two or more nodes: *out[i] (nlinks of them) is the
 * first node of link i's group, SIZE_MAX when alone. Caller frees. */
size_t *copy_link_groups(const cs_copy *c);

/* copy.c: paths. Clean relative form of p under the root: "/a/../b/" -> "b",
 * "/" -> ""; ".." cannot climb above the root (BuildKit drops it). */
char *copy_rel_clean(const char *p);
char *copy_join(const char *a, const char *b); /* "" joins as nothing */
const char *copy_base_name(const char *p);

/* copy_stat.c: a second thread for lstat (NULL when none could start:
 * everything is then stat'ed inline). */
typedef struct statpool statpool;
statpool *copy_statpool_new(void);
void copy_statpool_free(statpool *p);
/* lstat of every name in dirfd: sts[i], or errs[i] = errno. */
void copy_stat_batch(statpool *p, int dirfd, char **names, size_t n, struct stat *sts, int *errs);
/* $CSTORE_TEST_WALK_SERIAL set (not "0"): copy_statpool_new gives NULL, the
 * walk runs on the calling thread alone (tests compare the two). */

/* A directory's listing: its names sorted (as cs_dir_names), in arena, and
 * their lstat. */
typedef struct dirlist {
    char **names;
    char *arena;
    size_t n;
    struct stat *sts;
    int *errs;
    bool listed; /* names read from the directory (not the stat cache's) */
} dirlist;
void copy_dirlist_free(dirlist *dl);
/* dl's names (no lstat yet): a copy of n names, NUL-terminated one after
 * the other in names[0..len) (a stat cache listing record's). */
void copy_dirlist_set(dirlist *dl, const char *names, size_t len, size_t n);
/* The names of the directory open as fd into dl->names/arena/n (read from
 * its start with getdents64, no allocation per name); what names it in
 * the error, as cs_dir_names does. */
int copy_list_names(int fd, const char *what, dirlist *dl, cs_error **err);
/* The subdirectories names[0..n) of dirfd, which the walk enters in this
 * order, offered to p's helper to list ahead (from the last one down);
 * dirfd and names stay valid until copy_prefetch_end. known (NULL, or n of
 * them: taken) has the names of those the stat cache knows, which the
 * helper then only lstats. NULL (nothing offered) without p or with fewer
 * than 2. */
typedef struct prefetch prefetch;
prefetch *copy_prefetch_begin(statpool *p, int dirfd, char **names, dirlist *known, size_t n);
/* Subdirectory k's listing (taken in increasing k): true with *dl filled
 * (the caller's to free), false when the caller lists it itself (*dl then
 * has its known names, if any, without lstat: the caller's to free). */
bool copy_prefetch_take(prefetch *f, size_t k, dirlist *dl);
/* Waits for the helper's listings in f and frees what was not taken. */
void copy_prefetch_end(prefetch *f);

/* A source argument, split for matching. */
typedef struct srcarg {
    const char *src; /* as spelled (with --parents: base) */
    char *clean;     /* copy_rel_clean(src) */
    char *d1;        /* the components before the first wildcard */
    cs_strv comps;   /* that component and the rest (empty: a literal) */
    char *base;      /* --parents: "base/./pattern" (base "/" without "/./") */
    char *pattern;   /* --parents: the path whose parents are kept */
    cs_ignore *incl; /* --parents: pattern as an include filter */
} srcarg;

/* Prepare's state: the build context side (also the ingest and stat cache
 * view every kind of source shares). */
typedef struct ctxwalk {
    statpool *sp; /* made on the first large directory */
    bool sp_tried;
    cs_store *s;
    cs_copy *c;
    cs_statcache *sc; /* lookups: through the caller's ingest, or a read view */
    cs_ingest *ing;   /* the caller's, or ours (made on the first miss) */
    cs_ingest *own_ing;
    const cs_ignore *ig;   /* .dockerignore: context-relative paths */
    const cs_ignore *excl; /* --exclude: item-relative paths */
    const cs_ignore *incl; /* --parents: item-relative paths */
    char *root;            /* realpath of the context ("" for "/") */
    size_t rootlen;
    char *buf; /* root + "/" + context-relative path */
    size_t cap;
    int64_t now;
    /* The selection's summary (cs_copy_from.summary): the walk digests every
     * path and lstat it meets into sum and leaves files' contents pending;
     * they are looked up only when the summary record does not answer. */
    cs_sha256_ctx *sum;
    bool untrusted; /* a file the stat cache does not remember: no summary */
    struct pending {
        size_t node;
        uint32_t root; /* its item's absolute path: roots.v[root] (+ "/" + node path) */
        uint32_t mode;
        uint64_t dev, ino, size;
        struct timespec mtim, ctim;
    } * pend;
    size_t npend, cappend;
    cs_strv roots;
    /* Listings made by the walk for the stat cache's listing records,
     * written with the summary (copy_ctx_resolve). */
    struct dirput {
        char *path;
        struct stat st;
        char *names; /* n names, each NUL-terminated, len bytes */
        size_t len, n;
    } * dirs;
    size_t ndirs, capdirs;
    /* The entries of a directory item's walk with a summary (copy_defer.c):
     * made into nodes only when the summary does not answer. */
    bool deferring;
    struct rec {
        uint32_t item, root; /* c->items index, w->roots index */
        uint32_t path, link; /* offsets in text: item-relative path, symlink target */
        uint32_t mode, nlink;
        uint64_t dev, ino, size, rdev;
        struct timespec mtim, ctim;
    } * recs;
    size_t nrecs, caprecs;
    char *text;
    size_t ntext, captext;
} ctxwalk;

/* Sources in a tree (COPY --from). */
typedef struct treesrc {
    cs_copy *c;
    const cs_tree *t;
    const cs_ignore *excl, *incl;
    char **targets; /* sorted paths hardlinks of t end at (made on first need) */
    size_t ntargets;
    bool scanned;
} treesrc;

/* copy_ctx.c */
int copy_ctx_open(ctxwalk *w, const char *context_dir, cs_error **err);
/* The summary's state digest so far (w->sum). */
void copy_ctx_state(ctxwalk *w, cs_digest *state);
/* Looks the pending files' contents up (the stat cache, else read and
 * ingested), as the walk does without a summary. */
int copy_ctx_resolve(ctxwalk *w, cs_error **err);
void copy_ctx_release(ctxwalk *w);
/* Makes w->ing usable: the caller's ingest, or one begun on first need. */
int copy_need_ingest(ctxwalk *w, cs_error **err);
/* The context paths a source argument names: itself, or what its
 * wildcards match (w->root set). */
int copy_ctx_matches(ctxwalk *w, const srcarg *a, cs_strv *m, cs_error **err);
/* The item for one of them: 1 added, 0 none (ignored, or a wildcard's match
 * that vanished); a literal source that is missing is CS_ENOTFOUND. */
int copy_ctx_match_item(ctxwalk *w, const srcarg *a, const char *path, cs_error **err);

/* The target of the symlink name in dirfd (w->buf, lstat st) into *out
 * (malloc'd); the error names its context path. */
int copy_read_link(ctxwalk *w, int dirfd, const char *name, const struct stat *st, char **out,
                   cs_error **err);

/* copy_list.c: listing records. The names of the directory w->buf (lstat
 * st) from its record into dl (no lstat yet): 1, 0 when none matches, <0. */
int copy_listing_known(ctxwalk *w, const struct stat *st, dirlist *dl, cs_error **err);
/* Those of the subdirectories of w->buf (up to len) listed in dl with a
 * nonzero act[i] (nsub of them, in order): known[k] has subdirectory k's
 * names when its record matches. Caller frees the array. */
dirlist *copy_listings_known(ctxwalk *w, const dirlist *dl, size_t len, const uint8_t *act,
                             size_t nsub);
/* The walk listed the directory w->buf (lstat st, not changed too
 * recently) as dl: its record is written with the summary. */
void copy_listing_note(ctxwalk *w, const struct stat *st, const dirlist *dl);
/* Writes the noted records in the ingest the walk has (or begins, when the
 * summary is written too); none when there is neither. */
int copy_listings_put(ctxwalk *w, cs_error **err);
void copy_listings_release(ctxwalk *w);

/* copy_defer.c: records the entry w->buf (name in dirfd, lstat st,
 * item-relative path irel) of the walk of the last item (w->deferring); a
 * socket is left out as a node would be. */
int copy_defer_add(ctxwalk *w, int dirfd, const char *name, const struct stat *st, const char *irel,
                   cs_error **err);
/* Makes the recorded entries nodes of their items (and their pending
 * contents and link keys), in the walk's order. */
void copy_defer_nodes(ctxwalk *w);
void copy_defer_release(ctxwalk *w);

/* copy_src.c */
void copy_treesrc_release(treesrc *ts);
/* Resolves one source argument (context when w->root, else ts) into items.
 * Returns the number of items added (0 for a wildcard matching nothing). */
int copy_add_source(ctxwalk *w, treesrc *ts, const char *src, const cs_copy_opts *o,
                    cs_error **err);
bool copy_is_url(const char *s);
int copy_add_url(ctxwalk *w, const char *url, const cs_copy_opts *o, cs_error **err);
int copy_add_inline(ctxwalk *w, const cs_copy_inline *in, cs_error **err);
void copy_compute_key(const cs_copy *c, const cs_copy_opts *o, cs_digest *key);

#endif
