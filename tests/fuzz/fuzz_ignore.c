/* fuzz_ignore.c - libFuzzer target: the .dockerignore parser and matcher.
 * The input is the ignore file, then a NUL byte, then paths one a line
 * (without the NUL, the ignore file's own lines are the paths too). Each
 * path (the first 64) is cleaned as the walker would and asked of every
 * query; each ignore line (the first 64) also goes through cs_glob_match
 * against each path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ignore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *) data;
    const char *nul = memchr(text, '\0', size);
    size_t ilen = nul ? (size_t) (nul - text) : size;
    cs_ignore *ig = NULL;
    cs_error *err = NULL;
    if (cs_ignore_parse(text, ilen, &ig, &err) < 0) {
        cs_error_free(err);
        ig = NULL;
    }
    const char *paths = nul ? nul + 1 : text;
    char *copy = strndup(paths, size - (size_t) (paths - text));
    char *lines = strndup(text, ilen);
    char *save = NULL;
    int np = 0;
    for (char *p = strtok_r(copy, "\n", &save); p && np < 64;
         p = strtok_r(NULL, "\n", &save), np++) {
        char *clean = cs_ignore_clean(p);
        const char *rel = clean[0] == '/' ? clean + 1 : clean;
        if (*rel && strcmp(rel, ".") != 0) {
            cs_ignore_match(ig, rel, false);
            cs_ignore_skip_dir(ig, rel);
            cs_ignore_may_match_inside(ig, rel);
        }
        char *save2 = NULL;
        char *pats = strdup(lines);
        int nq = 0;
        for (char *q = strtok_r(pats, "\n", &save2); q && nq < 64;
             q = strtok_r(NULL, "\n", &save2), nq++)
            cs_glob_match(q, p);
        free(pats);
        free(clean);
    }
    cs_ignore_has_exceptions(ig);
    cs_ignore_count(ig);
    free(lines);
    free(copy);
    cs_ignore_free(ig);
    return 0;
}
