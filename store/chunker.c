/* chunker.c - FastCDC content-defined chunking (gear hash, normalized level 2).
 *
 * The gear hash h = (h << 1) + gear[byte] forgets a byte after 64 steps, so it
 * rolls over a 64-byte window with no subtraction. A cut is where the top bits
 * of h are all zero: the top bits depend on the whole window (bit k sees the
 * last k + 1 bytes), the low bits only on the last few bytes.
 *
 * Normalized chunking (FastCDC, level 2): before the average size a mask with
 * 2 more bits than log2(avg) makes cuts rarer, after it a mask with 2 fewer
 * bits makes them likelier, which narrows the size distribution around the
 * average. The first CS_CHUNK_MIN bytes are not hashed at all: no cut can be
 * there, and the 64-byte window has filled long before any test matters.
 *
 * The masks depend only on the offset from the chunk start, never on len or
 * eof, so a cut found in a short buffer is the cut a longer one would give:
 * callers can feed data in pieces of any size.
 */
#include "chunker.h"

#define CS_CHUNK_BITS 16 /* log2(CS_CHUNK_AVG) */
#define CS_CHUNK_NORM 2  /* normalization level */

/* Top bits of the hash; 18 bits before the average, 14 after. */
#define CS_MASK_S (~0ull << (64 - (CS_CHUNK_BITS + CS_CHUNK_NORM)))
#define CS_MASK_L (~0ull << (64 - (CS_CHUNK_BITS - CS_CHUNK_NORM)))

_Static_assert(CS_CHUNK_AVG == 1u << CS_CHUNK_BITS, "CS_CHUNK_BITS must match CS_CHUNK_AVG");
_Static_assert(CS_CHUNK_MIN < CS_CHUNK_AVG && CS_CHUNK_AVG < CS_CHUNK_MAX, "chunk sizes");

/* splitmix64 from seed 0x6373746f72650001 ("cstore\0\1"), 256 outputs. A
 * literal table needs no init and is safe from any thread. Changing it changes
 * every cut, hence every chunk digest in existing stores: never edit it. */
static const uint64_t gear[256] = {
    0x9e1635a51d2ada2full, 0x4daf0bb7a78320b9ull, 0x928ca275b9612fcdull, 0xf742d74e8353a873ull,
    0x987747e530428de5ull, 0xca8170fdfdc90101ull, 0x8229c341d25efa5full, 0x43fdff06a6cd4b2eull,
    0x127226736b853c48ull, 0x1b1e1c4d04230c23ull, 0xb48f65077dc76106ull, 0xda3b50c7e315227aull,
    0xf01ab1642d417bb2ull, 0x7f78c6a1b77c60a4ull, 0xa9e7ef9b94e7b2afull, 0x78e3dc6ba9a58c13ull,
    0x811048f2d85d9b15ull, 0xba57a3e8028c5da6ull, 0xf40d096454e1b8beull, 0xc9ef655cf4c14a50ull,
    0x0f964f02ed6a4495ull, 0x9556300a736c1604ull, 0x787118e5437b2142ull, 0x3a91debef57d9d1full,
    0xa2f1c8c13da7f201ull, 0x83f646bc9126bdfdull, 0xe25cf9f2a847a9b3ull, 0xa8466e457774927bull,
    0x49bdbe19bfac73beull, 0x6d0e511712866475ull, 0x608e2e54bdbfe47bull, 0x7cdb4068d752a37eull,
    0xf4d65a9aca07acc2ull, 0xeb2f259e8268e0f1ull, 0x59687c0fa65823fdull, 0x25375572731178f6ull,
    0xa99d9deafd079cecull, 0xb6b0cf606c51d40cull, 0x3b1b3a7bd243d653ull, 0x25f0825c603e629bull,
    0xc390bdc396eae77aull, 0x2ca8d7124e5b073full, 0x00630a63977f3babull, 0x5d8183d9581550c7ull,
    0x78ca0229f5e7459dull, 0xa1b082ca89778df2ull, 0xf342d6fb4178beb8ull, 0x90b8b172345bcfb6ull,
    0xf928ea5a6ebc8db0ull, 0x91eafc43ba0aa6d3ull, 0x34f58dbb7d1365e7ull, 0x219779c57f7a966full,
    0x08524e3f9a35a70dull, 0x59c3a1e5769900cfull, 0x9c77e565762ac75cull, 0xe36c88bae173a46bull,
    0xe7b7bfeebe31e572ull, 0xc99b0c6f6c51a786ull, 0x7c6e98071de9df21ull, 0x72b5fbfea8996eddull,
    0x4855ad4a411e33acull, 0x5148ad5e1c31f31bull, 0xb9c384a8c1e4d19aull, 0x30aa55eb3cf7336cull,
    0xb78e258962709cc8ull, 0x1ea1c6eb4f4e996dull, 0x24bae6c5227a49ecull, 0xb027655d88eaffb9ull,
    0x0b497190dad8ecc5ull, 0x25f2ab3976b23004ull, 0xac421f2c0454092bull, 0xf61fb9d0b13b3fbeull,
    0xe0c125fe61f8e401ull, 0x56c842bf61715466ull, 0x17e59c0577ea619eull, 0x0a91fcc3400dfe3bull,
    0x2e0e8f9a9cb446b4ull, 0x7ed48e12e7dadc9cull, 0x261a2b99a5977a89ull, 0x03884b540bffa83dull,
    0x9ca98536839429fdull, 0xf81d4c9f1ac839ceull, 0x3fc29742a210c7c0ull, 0xa955bf793b789ef2ull,
    0xb86a038ff7c4b9b5ull, 0xae9abb2fae09f3f2ull, 0x001af84742b745fdull, 0x4980061f57d1af28ull,
    0x0d98f84509c070ddull, 0xf0c3d9c17df78c18ull, 0xd6d300d1e5e6e373ull, 0x258476856ab313ddull,
    0xc8593fa5ff8832e8ull, 0x6d92f04b7fb09842ull, 0x11e509bdea5de19cull, 0x7b3fe44048b72b10ull,
    0xa0e91b8d0536b4ceull, 0x9118466199a8b657ull, 0xe8ff26870ff4f5a9ull, 0x01f886945f64a3c3ull,
    0x670de01a2c604ca9ull, 0xd8a5caaf1246e110ull, 0xdce24f03bbda1664ull, 0xa9963d06e816b586ull,
    0x8987275f9bacbf63ull, 0x89b8f8a4ec77a961ull, 0x2044e4b3debf23e2ull, 0x55c8c05276d77b03ull,
    0x4eb4e41a73ec2ba2ull, 0xe5498334f9eb2577ull, 0x522f7ff268989a15ull, 0x0c0905a58168c45eull,
    0x455cb6126eecfebbull, 0xe9631eebed5fda65ull, 0x995ae6968d12973eull, 0x9ba6b50b97d3c617ull,
    0x4783f99b66000f63ull, 0xfcadd6fd621eba07ull, 0x2101b740302577feull, 0x1c28efab4e63e463ull,
    0x7d2cfc2e8e35f979ull, 0xcac90306278a828bull, 0xe0e76e718cd94cc7ull, 0x79afdcf31718a49full,
    0x1707dfc4e05b462aull, 0x66493e7deb73b863ull, 0x74e337aea22ff91bull, 0x233d206835c8e3a3ull,
    0x4e1160b897f59c48ull, 0x19c957b362d3cf8bull, 0xbcb01e8f8cfc8fa8ull, 0x76a280aea1010675ull,
    0xfd9fd7936bf6dc1dull, 0x78a01071bc801e6dull, 0xeddd504ce0dd249dull, 0x4e4e8084657b040dull,
    0x2ec65652714213d4ull, 0xa53c1dd8e615f595ull, 0xab92ea582785fc1dull, 0x2902fa5799b103feull,
    0xa165454aa93ed154ull, 0x680376f2c62da851ull, 0xfdbc36b6bf6da794ull, 0x25be536c0edc83dbull,
    0x63071a695c68dbecull, 0x3c57c11aadb13754ull, 0x0ff5d3355cc412b8ull, 0xfaf3bb59617695f2ull,
    0xbd5d05ddc3ffa9dfull, 0x1e10967313f132e1ull, 0x7b1cb77df88e7395ull, 0xcea11a7bc622c7c8ull,
    0x2d2665c69b23664aull, 0x97e96131b923532full, 0x48fa9afdd37de633ull, 0x82ac21853fc34916ull,
    0xe87160507371a61aull, 0x8a1bff2fa48d8934ull, 0xd66579f6231c3a7bull, 0x3d3dc5e7aa1f7a70ull,
    0x83a8d1ce7d95b6c8ull, 0x2014b542f3bfc7b6ull, 0xb3f6b5611ec4db9cull, 0xe3cc365128116e2full,
    0xcf26d81354089bd8ull, 0xbc0386885497ace2ull, 0x5a9a70ccfa344873ull, 0x3adfe80d942b994aull,
    0x98f93fc0a0e27f17ull, 0x4af08e1d38cf592eull, 0x73f4da2596676802ull, 0x27c9d056c4a8ca81ull,
    0x38d70e9ce802863full, 0x255ea268fd1c0983ull, 0xab7fc63f8f851e02ull, 0xa5f0a2dd76efcde5ull,
    0xe604c8fc1a099f12ull, 0x78eec335fc0dccd8ull, 0x2ab2fc4689f398c0ull, 0x350d39ac96b5cbe5ull,
    0xea460fa3de678091ull, 0x92fbc3ab0b89160aull, 0xdc156e58b823d026ull, 0x02cd9ce8abac6a1eull,
    0xf631ceae4d43abf5ull, 0xd02c927bacc77749ull, 0xa6f90bf67a5bd412ull, 0x6e0545916c7d269cull,
    0x0552e2582881d62cull, 0x62f1d69b4b94bdd0ull, 0x876ecb6c197737b7ull, 0x568a61346d957759ull,
    0x003ec20eac6e76f3ull, 0x34422edef064bbcdull, 0x088d8079e58d16e3ull, 0x122e96e66040dc29ull,
    0x93ea9d46831fb4b9ull, 0x6e757ebb71377f8bull, 0x19f440ba592ed140ull, 0xcec5f23f909a0841ull,
    0xc1edb4d7b08f6979ull, 0x56ab64df241bf8a3ull, 0x217321a4c3d4376eull, 0x40db8aecf8589330ull,
    0xeb98246da4c2ac46ull, 0x580384bdd7b3d72bull, 0xa8c59a887c62fa5eull, 0x04bd75ef10eb256bull,
    0x32fb52d4020a8faeull, 0x70aa067274a85ea0ull, 0xa7f7d5c0aab431d1ull, 0xafd87a9080a9c691ull,
    0xf1af132534bc22b4ull, 0x37d0a01f8019e7b5ull, 0x2d992db3bdcdf457ull, 0x5bd3ec5e7a7bb725ull,
    0x22e67391047abce4ull, 0xf4baf63e738d3126ull, 0x2ce69d5ffb8d1d66ull, 0xd517a34b4c5f078eull,
    0x303d3e7c09084528ull, 0x77d5ded2101da720ull, 0x2de319c1b0462284ull, 0x01758d6ccc717997ull,
    0x8e5da5a9dd2a9e01ull, 0x63a0f1db6fb2a24cull, 0x1c7f68dbb419e203ull, 0x6bb048e794028c85ull,
    0x57f661be9d60d4e6ull, 0x1aff098a66ff5d8dull, 0xa50fff6549c87f38ull, 0xfebf85222b70022cull,
    0xba59d98d30472d46ull, 0xf09585233eaea3c2ull, 0x496176f0eb23610dull, 0x878c366f226c2bb3ull,
    0xfcfd6fb8e5708582ull, 0xe74fd71d99b058e8ull, 0xd57c1f41304dda9dull, 0x8222fb078f7e813cull,
    0xa5fb585b166365e5ull, 0xc699b635d7ccad04ull, 0xa449f0b838d11bbaull, 0xa0155028424ffae1ull,
    0xe5f17ec323bb5780ull, 0xc29c6dd7557b33f2ull, 0x4033fd27b4bb3090ull, 0x4daeafe1b57aeaf6ull,
    0x13a4596350e69709ull, 0x633a3d9a66ad97e3ull, 0xc23bc5cb031a52b7ull, 0x60909601f9c46538ull,
    0x72554444e459cc8dull, 0x91851e34279e9313ull, 0xd045d8d4503c9b11ull, 0xaed13fd863e7d742ull,
};

/* Scans p[i..end) for a cut with mask; returns the chunk length or 0. */
static inline size_t
scan(const uint8_t *p, size_t i, size_t end, uint64_t *hp, uint64_t mask)
{
    uint64_t h = *hp;

    for (; i < end; i++) {
        h = (h << 1) + gear[p[i]];
        if (!(h & mask))
            return i + 1;
    }
    *hp = h;
    return 0;
}

size_t
cs_chunker_next(const uint8_t *p, size_t len, bool eof)
{
    size_t end = len < CS_CHUNK_MAX ? len : CS_CHUNK_MAX;
    size_t mid = end < CS_CHUNK_AVG ? end : CS_CHUNK_AVG;
    uint64_t h = 0;
    size_t cut;

    if (end > CS_CHUNK_MIN) {
        cut = scan(p, CS_CHUNK_MIN, mid, &h, CS_MASK_S);
        if (cut)
            return cut;
        cut = scan(p, mid, end, &h, CS_MASK_L);
        if (cut)
            return cut;
    }
    if (len >= CS_CHUNK_MAX)
        return CS_CHUNK_MAX;
    return eof ? len : 0;
}
