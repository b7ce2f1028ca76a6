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

/* A number and a unit of the table (matched whole, any case). */
static bool
parse_units(const char *s, const char *const *units, const double *mult, size_t n, bool space,
            uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char) *s) && *s != '.')
        return false;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return false;
    if (space && *end == ' ')
        end++;
    for (size_t i = 0; i < n; i++) {
        if (!strcasecmp(end, units[i])) {
            if (v * mult[i] > 1.8e19)
                return false;
            *out = (uint64_t) (v * mult[i]);
            return true;
        }
    }
    return false;
}

bool
cs_parse_size(const char *s, uint64_t *out)
{
    static const char *const u[] = { "", "b", "kb", "k", "mb", "m", "gb", "g", "tb", "t" };
    static const double m[] = { 1, 1, 1e3, 1e3, 1e6, 1e6, 1e9, 1e9, 1e12, 1e12 };
    return parse_units(s, u, m, sizeof(u) / sizeof(u[0]), false, out);
}

bool
cs_parse_ram_size(const char *s, uint64_t *out)
{
#define K(x) x, x "b", x "i", x "ib"
    static const char *const u[] = { "", "b", "i", "ib", K("k"), K("m"), K("g"), K("t"), K("p") };
#undef K
    static const double m[] = { 1,      1,      1,      1,      0x1p10, 0x1p10, 0x1p10, 0x1p10,
                                0x1p20, 0x1p20, 0x1p20, 0x1p20, 0x1p30, 0x1p30, 0x1p30, 0x1p30,
                                0x1p40, 0x1p40, 0x1p40, 0x1p40, 0x1p50, 0x1p50, 0x1p50, 0x1p50 };
    _Static_assert(sizeof(u) / sizeof(u[0]) == sizeof(m) / sizeof(m[0]), "units");
    return parse_units(s, u, m, sizeof(u) / sizeof(u[0]), true, out);
}
