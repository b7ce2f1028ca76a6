/* units.c - sizes and durations (see cstore/units.h). */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include "cstore/units.h"

#define NS_MAX 9.2e18 /* below INT64_MAX */

/* The longest unit that prefixes p, its length in *len (0: none). */
static double
duration_unit(const char *p, unsigned flags, size_t *len)
{
    static const struct {
        const char *u;
        double ns;
    } units[] = { { "ns", 1 },          { "us", 1e3 },   { "\xc2\xb5s", 1e3 },
                  { "\xce\xbcs", 1e3 }, { "ms", 1e6 },   { "s", 1e9 },
                  { "m", 60e9 },        { "h", 3600e9 }, { "d", 86400e9 } };
    size_t n = sizeof(units) / sizeof(units[0]) - ((flags & CS_DURATION_DAYS) ? 0 : 1);
    double best = 0;
    *len = 0;
    for (size_t k = 0; k < n; k++) {
        size_t ul = strlen(units[k].u);
        if (strncmp(p, units[k].u, ul) == 0 && ul > *len) {
            best = units[k].ns;
            *len = ul;
        }
    }
    return best;
}

bool
cs_parse_duration(const char *s, unsigned flags, int64_t *ns)
{
    const char *p = s;
    bool neg = false;
    double total = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *ns = 0;
        return true;
    }
    if (!*p)
        return false;
    if (flags & CS_DURATION_BARE_SECONDS) {
        char *end;
        double v = strtod(p, &end);
        if (end != p && !*end && isdigit((unsigned char) *p)) {
            if (v * 1e9 > NS_MAX)
                return false;
            *ns = (int64_t) (neg ? -v * 1e9 : v * 1e9);
            return true;
        }
    }
    while (*p) {
        if (!(isdigit((unsigned char) *p) || *p == '.'))
            return false;
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            return false;
        p = end;
        size_t ul;
        double unit = duration_unit(p, flags, &ul);
        if (!ul)
            return false;
        total += v * unit;
        p += ul;
    }
    if (total > NS_MAX)
        return false;
    *ns = (int64_t) (neg ? -total : total);
    return true;
}

bool
cs_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *u;
        double m;
    } units[] = { { "", 1 },    { "b", 1 },    { "kb", 1e3 }, { "k", 1e3 },   { "mb", 1e6 },
                  { "m", 1e6 }, { "gb", 1e9 }, { "g", 1e9 },  { "tb", 1e12 }, { "t", 1e12 } };
    char *end;
    if (!isdigit((unsigned char) *s) && *s != '.')
        return false;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (!strcasecmp(end, units[i].u)) {
            if (v * units[i].m > 1.8e19)
                return false;
            *out = (uint64_t) (v * units[i].m);
            return true;
        }
    }
    return false;
}
