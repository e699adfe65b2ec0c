/* blk_format.h - the block:// on-disk format, version 1, in C (docs/block-format.md says
 * why it is shaped so; this header wins on byte-level detail). Little-endian, x86-64
 * and other little-endian hosts only (checked at build time). Private to core/block/. */
#ifndef S3SHIM_BLK_FORMAT_H
#define S3SHIM_BLK_FORMAT_H

#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the block:// format is little-endian; this host is not"
#endif

#define BLK_VERSION 1
#define BLK_BS 4096u /* block size */
#define BLK_HDR 64u
#define BLK_BODY (BLK_BS - BLK_HDR)
#define BLK_MAX_KEY 1024
#define BLK_MAX_EXT 32 /* extents per object: a leaf item stays under half a node */
#define BLK_BITS_PER_BM (BLK_BODY * 8u) /* 32256 blocks per bitmap block */
#define BLK_ADDRS_PER_DIR (BLK_BODY / 8u) /* 504 bitmap addresses per directory block */
#define BLK_ROOT_DIRS 480 /* directory blocks named by a root */
#define BLK_EXT_PER_FL ((BLK_BODY - 8u) / 16u) /* 251 extents per pending-free block */

enum blk_kind { BK_SUPER = 1, BK_ROOT, BK_BRANCH, BK_LEAF, BK_BITMAP, BK_DIR, BK_FREE };

#define BLK_MAGIC(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
static inline uint32_t blk_magic_of(int kind)
{
    static const char m[] = "?SRBLMDF";
    return kind >= 1 && kind <= 7 ? BLK_MAGIC('S', '3', 'B', m[kind]) : 0;
}

/* The first 64 bytes of every metadata block. */
struct blk_hdr {
    uint32_t magic;
    uint32_t crc;    /* CRC32C of the block with this field zero */
    uint64_t commit; /* commit that wrote it */
    uint64_t addr;   /* its own block address */
    uint8_t uuid[16];
    uint16_t kind, level;
    uint32_t count;
    uint8_t reserved[16];
};
_Static_assert(sizeof(struct blk_hdr) == BLK_HDR, "header is 64 bytes");

struct blk_super {
    struct blk_hdr h;
    uint32_t version, block_size, sector_size, flags;
    uint64_t dev_blocks, meta_start, data_start, data_end; /* data_end = the copy's block */
    uint64_t created_ns;
    char label[32];
};

enum { BLK_ROOT_SLOT0 = 1 }; /* commit N lives in block 1 + N % 2 */

struct blk_root {
    struct blk_hdr h; /* h.commit = the commit number */
    uint64_t tree;
    uint32_t height, ndir;
    uint64_t objects, dirs, used, meta_used, next_ino, time_ns; /* used: bits set; meta_used: of them outside the data zone */
    uint64_t pend_prev, pend_prev_n; /* extents freed by commit N-1 */
    uint64_t pend_cur, pend_cur_n;   /* extents freed by commit N */
    int64_t top_mtime_ns;            /* the mount's root directory: it has no entry */
    uint32_t top_mode, reserved0;
    uint64_t dir[BLK_ROOT_DIRS];
    /* Metadata blocks freed by commit N that no durable root reaches (written since the
     * newest durable root, group commit): free again from commit N+1 on. Zero in roots
     * written before this field existed. */
    uint64_t vol, vol_n;
};
_Static_assert(sizeof(struct blk_root) <= BLK_BS, "root fits a block");

/* Leaf item: this header, the key, then next extents. */
struct blk_item {
    uint16_t klen, next;
    uint32_t mode;
    uint64_t ino, size;
    int64_t mtime_ns;
    uint64_t gen;
} __attribute__((packed));
_Static_assert(sizeof(struct blk_item) == 40, "leaf item header is 40 bytes");

struct blk_ext {
    uint64_t lblk, pblk;
    uint32_t len, flags;
};
_Static_assert(sizeof(struct blk_ext) == 24, "extent is 24 bytes");
_Static_assert(40 + BLK_MAX_KEY + BLK_MAX_EXT * 24 <= BLK_BODY / 2, "a leaf item fits half a node");

/* Branch item: u16 klen, key, u64 child (item 0's key is ignored: it stands for -inf). */

struct blk_fext {
    uint64_t start, len;
};

/* Inode numbers from 2^62 up (below 2^63, directories without an entry) are chosen at
 * random by the process that created the object, when it showed one to the program before
 * its first commit (fstat of a new file); the others come from the root's next_ino. */
#define BLK_INO_CHOSEN (1ull << 62)

#endif
