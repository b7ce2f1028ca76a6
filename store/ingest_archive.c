/* ingest_archive.c - a libarchive member as a byte source for cs_ingest_tar
 * (see cstore/ingest.h), shared by load and the builder's ADD. */
#include "cstore/archive_dl.h"
#include <errno.h>
#include "cstore/ingest.h"

ssize_t
cs_archive_read(void *ctx, void *buf, size_t len)
{
    la_ssize_t n = archive_read_data(ctx, buf, len);
    if (n < 0) {
        errno = EIO;
        return -1;
    }
    return n;
}
