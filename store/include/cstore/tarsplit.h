/* tarsplit.h - the framing of an original layer tar, to give its bytes back.
 *
 * A tree keeps what a layer holds, not how its tar was written: export
 * regenerates tars, which differ from what docker or BuildKit wrote, so the
 * diff_ids of a loaded image would change. Like containers-storage's
 * tar-split, load keeps each layer's header blocks (extension headers
 * included) in order, with each member's data size and content digest;
 * header bytes + content bytes + zero padding + a zero trailer are then the
 * original tar, byte for byte.
 *
 * tarsplit: original diff_id[32] -> version u8 (1) | tree digest[32] | zstd frame of:
 *   tar_size u64 | trailer u64 | n u32 | n x (header bytes | size u64 |
 *   has_content u8 [| content digest 32])
 * (bytes: u32 length + bytes; integers big-endian). Padding after each
 * member's data and the trailer are zeros. The record refers to its tree and
 * to every content it names: gc keeps it (and them) while the tree lives.
 * Thread rules: functions take the caller's txn; a cs_tarsplit belongs to one
 * thread.
 */
#ifndef CSTORE_TARSPLIT_H
#define CSTORE_TARSPLIT_H

#include <stdbool.h>
#include <stdint.h>
#include "cstore/content.h"
#include "cstore/db.h"
#include "cstore/util.h"

typedef struct cs_tarsplit_member {
    size_t hdr_off;    /* this member's header bytes: hdr.data + hdr_off ... */
    uint32_t hdr_len;  /* ... hdr_len bytes (a multiple of 512) */
    uint64_t size;     /* data bytes after the headers, before the padding */
    bool has_content;  /* size > 0: the data is this content */
    cs_digest content; /* when has_content */
} cs_tarsplit_member;

typedef struct cs_tarsplit {
    cs_digest tree;    /* the tree the layer was ingested as */
    uint64_t tar_size; /* bytes of the whole tar */
    uint64_t trailer;  /* zero bytes after the last member's padding */
    cs_tarsplit_member *m;
    size_t n, cap;
    cs_buf hdr; /* all header bytes, in order */
} cs_tarsplit;

cs_tarsplit *cs_tarsplit_new(void);
void cs_tarsplit_free(cs_tarsplit *ts);
CS_DEFINE_FREEP(cs_tarsplit, cs_tarsplit_free)
/* Appends a member with a copy of its header bytes; returns its index. */
size_t cs_tarsplit_add(cs_tarsplit *ts, const void *hdr, uint32_t hdr_len, uint64_t size);

/* The record value (see above); zstd level 1 (headers shrink ~10x). */
void cs_tarsplit_encode(const cs_tarsplit *ts, cs_buf *out);
/* CS_ECORRUPT on a record that does not decode or does not add up. */
int cs_tarsplit_decode(const void *p, size_t len, cs_tarsplit **out, cs_error **err);

/* Puts the record of diff_id (replacing one there). */
int cs_tarsplit_put(cs_db *db, MDB_txn *txn, const cs_digest *diff_id, const cs_tarsplit *ts,
                    cs_error **err);
/* Gets and decodes. -CS_ENOTFOUND (no error set) when there is none. */
int cs_tarsplit_get(cs_db *db, MDB_txn *txn, const cs_digest *diff_id, cs_tarsplit **out,
                    cs_error **err);
/* The tree of diff_id's record, without decoding the rest: 0, -CS_ENOTFOUND
 * (no error set), or -CS_ECORRUPT. */
int cs_tarsplit_tree(cs_db *db, MDB_txn *txn, const cs_digest *diff_id, cs_digest *tree,
                     cs_error **err);

/* Writes the original tar to sink: headers, contents (read verified), zero
 * padding, zero trailer. CS_ECORRUPT when a content's size is not the
 * member's. The caller checks the sha256 of the output against the diff_id:
 * only that proves the bytes are the original ones. */
int cs_tarsplit_write(cs_db *db, MDB_txn *txn, const cs_tarsplit *ts, cs_sink_fn sink, void *ctx,
                      cs_error **err);

#endif
