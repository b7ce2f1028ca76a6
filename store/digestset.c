/* digestset.c - open addressing with linear probing, kept at most half full. */
#include <string.h>

#include "digestset.h"

struct cs_digestset {
    cs_digest *slots;
    uint64_t *values; /* NULL unless with_values */
    uint8_t *used;
    size_t cap; /* power of two */
    size_t n;
};

static size_t
ds_hash(const void *d)
{
    uint64_t h;

    memcpy(&h, d, sizeof(h));
    return (size_t) h;
}

static void
ds_alloc(cs_digestset *s, size_t cap, bool with_values)
{
    s->cap = cap;
    s->slots = cs_xmalloc(cap * sizeof(*s->slots));
    s->used = cs_xcalloc(cap, 1);
    s->values = with_values ? cs_xcalloc(cap, sizeof(*s->values)) : NULL;
}

cs_digestset *
cs_digestset_new(bool with_values)
{
    cs_digestset *s = cs_xcalloc(1, sizeof(*s));

    ds_alloc(s, 64, with_values);
    return s;
}

void
cs_digestset_free(cs_digestset *s)
{
    if (s)
        cs_free_all(s->slots, s->values, s->used, s);
}

/* Index of d's slot, or of the empty slot where it would go. */
static size_t
ds_find(const cs_digestset *s, const void *d)
{
    size_t mask = s->cap - 1;
    size_t i = ds_hash(d) & mask;

    while (s->used[i] && memcmp(s->slots[i].b, d, 32) != 0)
        i = (i + 1) & mask;
    return i;
}

static void
ds_grow(cs_digestset *s)
{
    cs_digestset old = *s;

    ds_alloc(s, old.cap * 2, old.values != NULL);
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.used[i])
            continue;
        size_t j = ds_find(s, old.slots[i].b);
        s->used[j] = 1;
        s->slots[j] = old.slots[i];
        if (s->values)
            s->values[j] = old.values[i];
    }
    free(old.slots);
    free(old.values);
    free(old.used);
}

bool
cs_digestset_add(cs_digestset *s, const void *d)
{
    if ((s->n + 1) * 2 > s->cap)
        ds_grow(s);
    size_t i = ds_find(s, d);
    if (s->used[i])
        return false;
    s->used[i] = 1;
    memcpy(s->slots[i].b, d, 32);
    if (s->values)
        s->values[i] = 0;
    s->n++;
    return true;
}

bool
cs_digestset_has(const cs_digestset *s, const void *d)
{
    return s->used[ds_find(s, d)] != 0;
}

size_t
cs_digestset_count(const cs_digestset *s)
{
    return s->n;
}

uint64_t *
cs_digestset_value(cs_digestset *s, const void *d)
{
    if (!s->values)
        return NULL;
    size_t i = ds_find(s, d);
    return s->used[i] ? &s->values[i] : NULL;
}

const cs_digest *
cs_digestset_next(const cs_digestset *s, size_t *it)
{
    while (*it < s->cap) {
        size_t i = (*it)++;
        if (s->used[i])
            return &s->slots[i];
    }
    return NULL;
}
