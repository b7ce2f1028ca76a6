/* strv.h - growable vectors of strings, kept NULL-terminated.
 *
 * A cs_strv owns its strings and its array: v[n] is always NULL (once
 * anything was pushed), so v can be passed wherever a char ** argv or env
 * is wanted. Out of memory aborts. Thread rules: none; one owner.
 */
#ifndef CSTORE_STRV_H
#define CSTORE_STRV_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cs_strv {
    char **v; /* NULL-terminated (NULL while empty) */
    size_t n, cap;
} cs_strv;

/* Appends s, taking ownership of it. */
void cs_strv_push(cs_strv *a, char *s);
/* Appends a copy of s. */
void cs_strv_add(cs_strv *a, const char *s);
/* Returns the array (NULL-terminated, never NULL: an empty vector gives a
 * one-slot array) and empties a; free it with cs_strv_free. */
char **cs_strv_take(cs_strv *a);
/* Frees the strings and the array and empties a. */
void cs_strv_release(cs_strv *a);
/* Frees a NULL-terminated array of malloc'd strings (NULL is fine). */
void cs_strv_free(char **v);
/* Number of entries of a NULL-terminated array (0 for NULL). */
size_t cs_strv_len(char *const *v);
/* True when the NULL-terminated array v holds s. */
bool cs_strv_contains(char *const *v, const char *s);

#endif
