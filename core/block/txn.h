/* txn.h - a commit's state in memory, shared by blk_txn.c (begin, nodes, commit) and
 * blk_fmap.c (the free map as the commit changes it). Nothing outside these two includes
 * it: the rest of the store sees a struct blk_txn through blk.h only. */
#ifndef S3SHIM_BLOCK_TXN_H
#define S3SHIM_BLOCK_TXN_H

#include "blk.h"

#include <uthash.h>

/* A block in the commit's view: a tree node or a pending-free block (table `nodes`, by
 * address), or a bitmap or bitmap directory block (tables `bms` and `dirs`, by index). */
struct tblk {
    uint64_t idx, addr;
    int kind, fresh; /* fresh: a node allocated by this commit, written at its end */
    int dirty;       /* a bitmap or directory block copied by this commit, written at its end */
    uint8_t *buf;
    UT_hash_handle hh;
    struct tblk *spare; /* in the kept ones (struct tx_keep) */
};

/* What a finished commit leaves for the next one of the process (the store keeps one
 * spare transaction): a program writing one small file after another commits once per
 * file, and each commit used to take a dozen 4 KiB buffers from malloc and give them
 * back (a tenth of its CPU time in malloc, most of it consolidating the small chunks
 * freed before each 4 KiB request). At most TX_KEEP loose buffers are kept, and twice as
 * many entries with theirs (the tree nodes and the free map's blocks of a commit). */
#define TX_KEEP 32
struct tx_keep {
    uint8_t *bufs[TX_KEEP];
    int nbufs, nblks;
    struct tblk *blks; /* each with its buffer */
    uint8_t *scratch[8];
};

struct blk_txn {
    struct blk_store *s;
    struct blk_root r;
    uint64_t base;    /* the commit this one builds on */
    uint64_t durable; /* the newest durable root's commit (base, unless base is only visible) */
    uint64_t pin;     /* a durable step in progress makes this commit durable (0: none) */
    int dslot;        /* its device slot */
    uint64_t base_pend, base_pend_n; /* a visible base's pend_cur: this commit's list goes before it */
    struct tblk *nodes;
    struct tblk *bms, *dirs;
    size_t nfreed, nvfreed, ndisc; /* (the three lists below) */
    uint64_t mcursor, nmeta; /* meta_alloc's next candidate; blocks it gave */
    int mrun;                /* the cursor was put on a free run */
    uint64_t mrun_at, mrun_want; /* where meta_run found it, for how many blocks (0: none) */
    uint64_t mfree_min;          /* the lowest metadata block this commit freed (UINT64_MAX: none) */
    uint64_t t0;
    int err;
    /* From here on kept by the next transaction of the store (emptied, not freed). */
    struct blk_fext *freed; /* pend_cur: reachable from a durable root, held until the next one */
    size_t capfreed;
    struct blk_fext *vfreed; /* vol: reachable from no durable root */
    size_t capvfreed;
    struct blk_fext *disc; /* released extents to discard (S3SHIM_BLOCK_DISCARD) */
    size_t capdisc;
    struct tx_keep keep;
};

void tx_fail(struct blk_txn *t, int e); /* the commit's first error is its result */
uint8_t *tx_newbuf(struct blk_txn *t);  /* a block buffer (bytes undefined) */
void tx_putbuf(struct blk_txn *t, uint8_t *b);
struct tblk *tx_new_blk(struct blk_txn *t); /* zeroed, with its buffer */
void tx_put_blk(struct blk_txn *t, struct tblk *b);
/* A metadata block written by commit `commit` is freed by this one (see blk_txn.c). */
void tx_freed_meta(struct blk_txn *t, uint64_t addr, uint64_t commit);
uint64_t tx_hdr_commit(const uint8_t *buf);

/* blk_fmap.c */
int tx_bits_set(struct blk_txn *t, uint64_t start, uint64_t len, int val); /* each bit must change */
uint64_t tx_meta_alloc(struct blk_txn *t);                               /* 0: failed */
void tx_meta_hint(struct blk_txn *t, uint64_t commit); /* the commit is done: where the next may look */

#endif
