/* copy_list.c - the walk's directory listings and the stat cache's listing
 * records (cstore/statcache.h): a directory whose lstat matches its record
 * has the names it had, so a rebuild reads them from the record instead of
 * listing the directory (on ext4 each listing builds and frees a hash tree
 * in the kernel: a fifth of a 10,000-file no-op). The listings the walk had
 * to make are written with the summary, never in a transaction of their own
 * (a no-op rebuild writes nothing).
 */
#include "copy_int.h"

#include <stdlib.h>
#include <string.h>

/* copy_listing_known for the directory path. */
static int
known_at(ctxwalk *w, const char *path, const struct stat *st, dirlist *dl, cs_error **err)
{
    const char *names;
    size_t len, n;
    int r = cs_statcache_dir_get(w->sc, path, st, &names, &len, &n, err);
    if (r > 0)
        copy_dirlist_set(dl, names, len, n);
    return r;
}

int
copy_listing_known(ctxwalk *w, const struct stat *st, dirlist *dl, cs_error **err)
{
    return known_at(w, w->buf, st, dl, err);
}

dirlist *
copy_listings_known(ctxwalk *w, const dirlist *dl, size_t len, const uint8_t *act, size_t nsub)
{
    dirlist *known = cs_xcalloc(nsub ? nsub : 1, sizeof(*known));
    const char *sep = len && w->buf[len - 1] == '/' ? "" : "/";
    for (size_t i = 0, k = 0; i < dl->n && k < nsub; i++) {
        if (!act[i])
            continue;
        cs_autofree char *path = cs_xasprintf("%.*s%s%s", (int) len, w->buf, sep, dl->names[i]);
        cs_error *tmp = NULL; /* the walk looks it up again, and fails */
        if (known_at(w, path, &dl->sts[i], &known[k++], &tmp) < 0)
            cs_store_warn_error(w->s, "listing record", &tmp);
    }
    return known;
}

void
copy_listing_note(ctxwalk *w, const struct stat *st, const dirlist *dl)
{
    if (w->ndirs == w->capdirs) {
        w->capdirs = w->capdirs ? w->capdirs * 2 : 16;
        w->dirs = cs_xrealloc(w->dirs, w->capdirs * sizeof(*w->dirs));
    }
    size_t len = 0;
    for (size_t i = 0; i < dl->n; i++)
        len += strlen(dl->names[i]) + 1;
    char *names = cs_xmalloc(len ? len : 1);
    for (size_t i = 0, at = 0; i < dl->n; i++) { /* in the walk's order */
        size_t l = strlen(dl->names[i]) + 1;
        memcpy(names + at, dl->names[i], l);
        at += l;
    }
    w->dirs[w->ndirs++] = (struct dirput){ cs_xstrdup(w->buf), *st, names, len, dl->n };
}

int
copy_listings_put(ctxwalk *w, cs_error **err)
{
    if (!w->ndirs || (!w->ing && w->untrusted))
        return 0;
    int r = copy_need_ingest(w, err);
    for (size_t i = 0; i < w->ndirs && r >= 0; i++) {
        const struct dirput *d = &w->dirs[i];
        r = cs_statcache_dir_put(w->s, w->ing, d->path, &d->st, d->names, d->len, d->n, err);
    }
    return r;
}

void
copy_listings_release(ctxwalk *w)
{
    for (size_t i = 0; i < w->ndirs; i++) {
        free(w->dirs[i].path);
        free(w->dirs[i].names);
    }
    free(w->dirs);
}
