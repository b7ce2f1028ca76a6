/* bench_stats.h - what every bench program needs to report a median: a
 * clock in milliseconds and the median of a sample (sorted in place). */
#ifndef CSTORE_BENCH_STATS_H
#define CSTORE_BENCH_STATS_H

#include <stdlib.h>
#include <time.h>

static inline double
bench_ms(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static inline int
bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static inline double
bench_median(double *v, int n)
{
    qsort(v, (size_t) n, sizeof(*v), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
