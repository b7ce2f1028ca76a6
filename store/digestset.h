/* digestset.h - an open-addressing hash set of SHA-256 digests, optionally
 * carrying one uint64_t per digest (gc's marked sets, du's per-tree sums).
 *
 * Digests are uniformly random already, so the first 8 bytes are the hash.
 * Thread rules: none; callers serialize access.
 */
#ifndef CSTORE_DIGESTSET_H
#define CSTORE_DIGESTSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cstore/util.h"

typedef struct cs_digestset cs_digestset;

/* with_values: keep a uint64_t next to each digest (cs_digestset_value). */
cs_digestset *cs_digestset_new(bool with_values);
void cs_digestset_free(cs_digestset *s);
CS_DEFINE_FREEP(cs_digestset, cs_digestset_free)

/* d points at 32 bytes (need not be aligned). Returns true when d was added,
 * false when it was already present. */
bool cs_digestset_add(cs_digestset *s, const void *d);
bool cs_digestset_has(const cs_digestset *s, const void *d);
size_t cs_digestset_count(const cs_digestset *s);

/* The value slot of d (present), or NULL when d is absent or the set has no
 * values. Valid until the next add. */
uint64_t *cs_digestset_value(cs_digestset *s, const void *d);

/* Iteration: start with *it = 0; returns the next digest or NULL at the end.
 * The set must not change during the iteration. */
const cs_digest *cs_digestset_next(const cs_digestset *s, size_t *it);

#endif
