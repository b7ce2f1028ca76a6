/* testutil.h - what every unit test's fixture needs: a fresh temp dir and
 * its removal (never following symlinks out of it). */
#ifndef CSTORE_TESTUTIL_H
#define CSTORE_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>

static int
test_rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st, (void) flag, (void) ftw;
    return remove(p);
}

/* rm -rf dir */
static inline void
test_rmrf(const char *dir)
{
    nftw(dir, test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
