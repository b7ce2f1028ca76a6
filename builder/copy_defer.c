/* copy_defer.c - the summary walk's entries, made into nodes only when the
 * summary record does not answer.
 *
 * On a no-op rebuild the summary answers and the prepared sources are
 * dropped unused: making a node per entry (an allocation for its path, a
 * growing array of 10,000 entries, all freed again) was a sixth of the
 * 10,000-file no-op, on the walk's thread. The walk of a directory item
 * (w->deferring) digests each entry as it did and keeps what a node needs
 * in one compact array and one block of text; copy_defer_nodes makes the
 * nodes, in the walk's order and in the place of their item, when they are
 * needed after all. --parents reads the nodes while sources are added: it
 * never defers.
 */
#include "copy_int.h"

#include <stdlib.h>
#include <string.h>
#include "cstore/fsentry.h"

#define NO_LINK UINT32_MAX

static uint32_t
text_add(ctxwalk *w, const char *s, size_t n)
{
    if (w->ntext + n + 1 > w->captext) {
        w->captext = (w->ntext + n + 1) * 2 > 65536 ? (w->ntext + n + 1) * 2 : 65536;
        w->text = cs_xrealloc(w->text, w->captext);
    }
    uint32_t at = (uint32_t) w->ntext;
    memcpy(w->text + at, s, n);
    w->text[at + n] = '\0';
    w->ntext += n + 1;
    return at;
}

int
copy_defer_add(ctxwalk *w, int dirfd, const char *name, const struct stat *st, const char *irel,
               cs_error **err)
{
    cs_entry kind = { 0 };
    if (cs_fsentry_kind(&kind, st) != 0)
        return 0; /* what a layer cannot hold (sockets) */
    uint32_t link = NO_LINK;
    if (S_ISLNK(st->st_mode)) {
        cs_autofree char *t = NULL;
        int r = copy_read_link(w, dirfd, name, st, &t, err);
        if (r < 0)
            return r;
        link = text_add(w, t, strlen(t));
    }
    if (w->nrecs == w->caprecs) {
        w->caprecs = w->caprecs ? w->caprecs * 2 : 1024;
        w->recs = cs_xrealloc(w->recs, w->caprecs * sizeof(*w->recs));
    }
    w->recs[w->nrecs++] = (struct rec){ (uint32_t) (w->c->nitems - 1),
                                        (uint32_t) (w->roots.n - 1),
                                        text_add(w, irel, strlen(irel)),
                                        link,
                                        (uint32_t) st->st_mode,
                                        (uint32_t) st->st_nlink,
                                        (uint64_t) st->st_dev,
                                        (uint64_t) st->st_ino,
                                        (uint64_t) st->st_size,
                                        (uint64_t) st->st_rdev,
                                        st->st_mtim,
                                        st->st_ctim };
    return 0;
}

/* The node of r, added to c (its content pending, as the walk leaves it). */
static void
rec_node(ctxwalk *w, const struct rec *r)
{
    cs_copy *c = w->c;
    size_t node = c->nnodes;
    cs_entry *e = copy_add_node(c);
    struct stat st = { .st_mode = r->mode, .st_rdev = (dev_t) r->rdev };
    e->path = cs_xstrdup(w->text + r->path);
    e->mode = r->mode & 07777;
    e->mtime_sec = r->mtim.tv_sec;
    e->mtime_nsec = (uint32_t) r->mtim.tv_nsec;
    cs_fsentry_kind(e, &st);
    if (r->link != NO_LINK)
        e->link = cs_xstrdup(w->text + r->link);
    if (e->type != CS_E_FILE)
        return;
    if (r->nlink > 1)
        copy_link_node(c, node, cs_xasprintf("%ju:%ju", (uintmax_t) r->dev, (uintmax_t) r->ino));
    if (w->npend == w->cappend) {
        w->cappend = w->cappend ? w->cappend * 2 : 256;
        w->pend = cs_xrealloc(w->pend, w->cappend * sizeof(*w->pend));
    }
    w->pend[w->npend++] =
        (struct pending){ node, r->root, r->mode, r->dev, r->ino, r->size, r->mtim, r->ctim };
}

void
copy_defer_nodes(ctxwalk *w)
{
    if (!w->nrecs)
        return;
    cs_copy *c = w->c;
    cs_entry *old = c->nodes;
    struct nodelink *links = c->links;
    size_t nold = c->nnodes, oldcap = c->capnodes, nlinks = c->nlinks, npend = w->npend;
    size_t *remap = cs_xmalloc((nold ? nold : 1) * sizeof(size_t));
    c->capnodes = nold + w->nrecs;
    c->nodes = cs_entries_resize(NULL, 0, c->capnodes); /* entry arrays: tree.h */
    c->nnodes = 0;
    c->links = NULL;
    c->nlinks = c->caplinks = 0;
    /* Each item's nodes (made before) then its recorded entries; the link
     * keys stay in node order. */
    for (size_t i = 0, r = 0, l = 0; i < c->nitems; i++) {
        item *it = &c->items[i];
        size_t first = c->nnodes;
        for (size_t j = it->first; j < it->first + it->n; j++) {
            remap[j] = c->nnodes;
            c->nodes[c->nnodes++] = old[j];
            for (; l < nlinks && links[l].node == j; l++)
                copy_link_node(c, remap[j], links[l].key);
        }
        for (; r < w->nrecs && w->recs[r].item == i; r++)
            rec_node(w, &w->recs[r]);
        it->first = first;
        it->n = c->nnodes - first;
    }
    for (size_t k = 0; k < npend; k++)
        w->pend[k].node = remap[w->pend[k].node];
    w->nrecs = 0;
    free(remap);
    cs_entries_resize(old, oldcap, 0);
    free(links);
}

void
copy_defer_release(ctxwalk *w)
{
    free(w->recs);
    free(w->text);
}
