/* archive_dl.h - libarchive loaded with dlopen on first use.
 *
 * Linked, libarchive pulls libxml2, ICU (31 MB of libicudata), libstdc++,
 * nettle, acl and four compressors into every cstore start: a quarter of a
 * no-op rebuild's time (issue 11). Nothing in cstore links it any more (the
 * pattern of registry/curl_dl.h): libarchive's headers give the types and
 * constants, and this header turns each archive_* function the code uses
 * into a call through one table, so call sites still read as libarchive
 * calls. A file that uses libarchive includes this header instead of
 * <archive.h>/<archive_entry.h>, and calls cs_archive_load() before the
 * first archive_read_new/archive_write_new/archive_entry_new of a job (every
 * other function takes an object those made). A function missing from the
 * table fails to link, not at run time: add it to CS_ARCHIVE_FUNCS and to
 * the #define list below.
 * Thread rules: cs_archive_load() may be called from any thread; the dlopen
 * runs once (pthread_once) and the table is immutable after.
 */
#ifndef CSTORE_ARCHIVE_DL_H
#define CSTORE_ARCHIVE_DL_H

#include <archive.h>
#include <archive_entry.h>
#include "cstore/error.h"

/* Every libarchive function cstore calls. */
#define CS_ARCHIVE_FUNCS(X)                                                                        \
    X(archive_entry_clear)                                                                         \
    X(archive_entry_copy_gname)                                                                    \
    X(archive_entry_copy_hardlink)                                                                 \
    X(archive_entry_copy_pathname)                                                                 \
    X(archive_entry_copy_symlink)                                                                  \
    X(archive_entry_copy_uname)                                                                    \
    X(archive_entry_filetype)                                                                      \
    X(archive_entry_free)                                                                          \
    X(archive_entry_gid)                                                                           \
    X(archive_entry_gname)                                                                         \
    X(archive_entry_hardlink)                                                                      \
    X(archive_entry_mtime)                                                                         \
    X(archive_entry_mtime_nsec)                                                                    \
    X(archive_entry_new)                                                                           \
    X(archive_entry_pathname)                                                                      \
    X(archive_entry_perm)                                                                          \
    X(archive_entry_rdevmajor)                                                                     \
    X(archive_entry_rdevminor)                                                                     \
    X(archive_entry_set_filetype)                                                                  \
    X(archive_entry_set_gid)                                                                       \
    X(archive_entry_set_mtime)                                                                     \
    X(archive_entry_set_perm)                                                                      \
    X(archive_entry_set_rdevmajor)                                                                 \
    X(archive_entry_set_rdevminor)                                                                 \
    X(archive_entry_set_size)                                                                      \
    X(archive_entry_set_uid)                                                                       \
    X(archive_entry_size)                                                                          \
    X(archive_entry_sparse_count)                                                                  \
    X(archive_entry_symlink)                                                                       \
    X(archive_entry_uid)                                                                           \
    X(archive_entry_uname)                                                                         \
    X(archive_entry_xattr_add_entry)                                                               \
    X(archive_entry_xattr_next)                                                                    \
    X(archive_entry_xattr_reset)                                                                   \
    X(archive_error_string)                                                                        \
    X(archive_filter_bytes)                                                                        \
    X(archive_read_data)                                                                           \
    X(archive_read_data_block)                                                                     \
    X(archive_read_free)                                                                           \
    X(archive_read_header_position)                                                                \
    X(archive_read_new)                                                                            \
    X(archive_read_next_header)                                                                    \
    X(archive_read_open)                                                                           \
    X(archive_read_open_filename)                                                                  \
    X(archive_read_support_filter_all)                                                             \
    X(archive_read_support_filter_bzip2)                                                           \
    X(archive_read_support_filter_gzip)                                                            \
    X(archive_read_support_filter_xz)                                                              \
    X(archive_read_support_filter_zstd)                                                            \
    X(archive_read_support_format_gnutar)                                                          \
    X(archive_read_support_format_raw)                                                             \
    X(archive_read_support_format_tar)                                                             \
    X(archive_write_close)                                                                         \
    X(archive_write_data)                                                                          \
    X(archive_write_free)                                                                          \
    X(archive_write_header)                                                                        \
    X(archive_write_new)                                                                           \
    X(archive_write_open)                                                                          \
    X(archive_write_set_bytes_in_last_block)                                                       \
    X(archive_write_set_bytes_per_block)                                                           \
    X(archive_write_set_format_pax_restricted)

typedef struct cs_archive_api {
#define CS_ARCHIVE_FIELD(f) typeof(f) *f;
    CS_ARCHIVE_FUNCS(CS_ARCHIVE_FIELD)
#undef CS_ARCHIVE_FIELD
} cs_archive_api;

/* Filled by the first successful cs_archive_load(); read only after one. */
extern cs_archive_api cs_archive_fns;

/* Loads libarchive.so.13 once. 0, or CS_EUNSUPPORTED ("WHAT: libarchive
 * (libarchive.so.13) cannot be loaded: install libarchive13") when the
 * library or one of its functions is missing. */
int cs_archive_load(const char *what, cs_error **err);

#ifndef CS_ARCHIVE_DL_TABLE /* archive_dl.c names the real functions */
#    define archive_entry_clear                (cs_archive_fns.archive_entry_clear)
#    define archive_entry_copy_gname           (cs_archive_fns.archive_entry_copy_gname)
#    define archive_entry_copy_hardlink        (cs_archive_fns.archive_entry_copy_hardlink)
#    define archive_entry_copy_pathname        (cs_archive_fns.archive_entry_copy_pathname)
#    define archive_entry_copy_symlink         (cs_archive_fns.archive_entry_copy_symlink)
#    define archive_entry_copy_uname           (cs_archive_fns.archive_entry_copy_uname)
#    define archive_entry_filetype             (cs_archive_fns.archive_entry_filetype)
#    define archive_entry_free                 (cs_archive_fns.archive_entry_free)
#    define archive_entry_gid                  (cs_archive_fns.archive_entry_gid)
#    define archive_entry_gname                (cs_archive_fns.archive_entry_gname)
#    define archive_entry_hardlink             (cs_archive_fns.archive_entry_hardlink)
#    define archive_entry_mtime                (cs_archive_fns.archive_entry_mtime)
#    define archive_entry_mtime_nsec           (cs_archive_fns.archive_entry_mtime_nsec)
#    define archive_entry_new                  (cs_archive_fns.archive_entry_new)
#    define archive_entry_pathname             (cs_archive_fns.archive_entry_pathname)
#    define archive_entry_perm                 (cs_archive_fns.archive_entry_perm)
#    define archive_entry_rdevmajor            (cs_archive_fns.archive_entry_rdevmajor)
#    define archive_entry_rdevminor            (cs_archive_fns.archive_entry_rdevminor)
#    define archive_entry_set_filetype         (cs_archive_fns.archive_entry_set_filetype)
#    define archive_entry_set_gid              (cs_archive_fns.archive_entry_set_gid)
#    define archive_entry_set_mtime            (cs_archive_fns.archive_entry_set_mtime)
#    define archive_entry_set_perm             (cs_archive_fns.archive_entry_set_perm)
#    define archive_entry_set_rdevmajor        (cs_archive_fns.archive_entry_set_rdevmajor)
#    define archive_entry_set_rdevminor        (cs_archive_fns.archive_entry_set_rdevminor)
#    define archive_entry_set_size             (cs_archive_fns.archive_entry_set_size)
#    define archive_entry_set_uid              (cs_archive_fns.archive_entry_set_uid)
#    define archive_entry_size                 (cs_archive_fns.archive_entry_size)
#    define archive_entry_sparse_count         (cs_archive_fns.archive_entry_sparse_count)
#    define archive_entry_symlink              (cs_archive_fns.archive_entry_symlink)
#    define archive_entry_uid                  (cs_archive_fns.archive_entry_uid)
#    define archive_entry_uname                (cs_archive_fns.archive_entry_uname)
#    define archive_entry_xattr_add_entry      (cs_archive_fns.archive_entry_xattr_add_entry)
#    define archive_entry_xattr_next           (cs_archive_fns.archive_entry_xattr_next)
#    define archive_entry_xattr_reset          (cs_archive_fns.archive_entry_xattr_reset)
#    define archive_error_string               (cs_archive_fns.archive_error_string)
#    define archive_filter_bytes               (cs_archive_fns.archive_filter_bytes)
#    define archive_read_data                  (cs_archive_fns.archive_read_data)
#    define archive_read_data_block            (cs_archive_fns.archive_read_data_block)
#    define archive_read_free                  (cs_archive_fns.archive_read_free)
#    define archive_read_header_position       (cs_archive_fns.archive_read_header_position)
#    define archive_read_new                   (cs_archive_fns.archive_read_new)
#    define archive_read_next_header           (cs_archive_fns.archive_read_next_header)
#    define archive_read_open                  (cs_archive_fns.archive_read_open)
#    define archive_read_open_filename         (cs_archive_fns.archive_read_open_filename)
#    define archive_read_support_filter_all    (cs_archive_fns.archive_read_support_filter_all)
#    define archive_read_support_filter_bzip2  (cs_archive_fns.archive_read_support_filter_bzip2)
#    define archive_read_support_filter_gzip   (cs_archive_fns.archive_read_support_filter_gzip)
#    define archive_read_support_filter_xz     (cs_archive_fns.archive_read_support_filter_xz)
#    define archive_read_support_filter_zstd   (cs_archive_fns.archive_read_support_filter_zstd)
#    define archive_read_support_format_gnutar (cs_archive_fns.archive_read_support_format_gnutar)
#    define archive_read_support_format_raw    (cs_archive_fns.archive_read_support_format_raw)
#    define archive_read_support_format_tar    (cs_archive_fns.archive_read_support_format_tar)
#    define archive_write_close                (cs_archive_fns.archive_write_close)
#    define archive_write_data                 (cs_archive_fns.archive_write_data)
#    define archive_write_free                 (cs_archive_fns.archive_write_free)
#    define archive_write_header               (cs_archive_fns.archive_write_header)
#    define archive_write_new                  (cs_archive_fns.archive_write_new)
#    define archive_write_open                 (cs_archive_fns.archive_write_open)
#    define archive_write_set_bytes_in_last_block                                                  \
        (cs_archive_fns.archive_write_set_bytes_in_last_block)
#    define archive_write_set_bytes_per_block (cs_archive_fns.archive_write_set_bytes_per_block)
#    define archive_write_set_format_pax_restricted                                                \
        (cs_archive_fns.archive_write_set_format_pax_restricted)
#endif

#endif
