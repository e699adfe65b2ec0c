/* bfile.h - an open block:// object, shared by block_file.c (data, open, close),
 * block_commit.c (its commit), block_batch.c (closes committed together) and
 * block_share.c (locks, sharing with other processes, fork). Private to core/block/. */
#ifndef S3SHIM_BFILE_H
#define S3SHIM_BFILE_H

#include "bmount.h"

#include "../readahead.h"
#include "../uring.h"

#include <fcntl.h>

/* Objects up to this size: their data is written at the commit, and read, through the
 * device's page cache (block_write.c, block_read.c), as metadata is. */
#define BLK_SMALL_OBJECT (256u << 10)

struct bext {
    uint64_t lblk, pblk;
    uint32_t len;
    int owned;
};

/* A chunk of the object read ahead (block_read.c): logical [off, off + len), read by up
 * to BF_SLOT_IOS device requests (one per extent it crosses; holes are zeroed). */
#define BF_SLOTS 16
#define BF_SLOT_IOS 4
enum { BS_FREE = 0, BS_PENDING, BS_READY };
struct bslot {
    int state, nu, err;
    uint64_t off, used;
    size_t len;
    struct ubuf b;
    struct uio u[BF_SLOT_IOS];
};

/* A full write buffer in flight (block_write.c: write-behind). */
#define BF_WSLOTS 16
struct bwslot {
    int busy, nu;
    uint64_t seq;
    struct ubuf b;
    struct uio u[BF_SLOT_IOS];
};

struct bfile {
    struct block_mount *m;
    char key[BLK_MAX_KEY + 1];
    size_t klen;
    int fd, writable, dirty, err;
    int acc;       /* O_RDONLY, O_WRONLY, O_RDWR */
    int wshare;    /* O_WRONLY without O_TRUNC or O_EXCL (`>>`, dd conv=notrunc): writes into a
                    * file others may write too, coherent as O_RDWR is (bf_coherent) */
    int lockfd;    /* the key's lock file (fcntl and flock locks), opened at the first lock */
    int shared;    /* shared with another process (bf_share), or locked (bf_lock_fd): other
                    * processes commit versions it must follow (follow_shared) */
    int marked;    /* holds the key's dirty mark (block_coherent.c) */
    int locked;    /* the program took a lock through it (bf_lock_fd): coherent (bf_coherent) */
    int markfd;    /* the key's mark file: -1 not opened yet, -2 cannot be */
    uint64_t marks_seen, opens_seen; /* the bell's counts when others had none (block_coherent.c) */
    int claimed;   /* holds the claim of a new name shared with other processes (bf_open) */
    uint64_t seen_commit; /* the newest root's commit when follow last looked the key up */
    uint64_t new_ino; /* a new object's st_ino before its first commit, and after it if shown */
    int ino_shown;
    int at_commit; /* wb_flush from the commit */
    int detached;  /* unlinked while open (bf_detach): never committed again */
    int eof_seen;  /* a reader got to the end: it follows newer versions (bf_follow_eof) */
    unsigned eof_reads; /* reads at the end so far */
    int unlocked_reads; /* read_unlocked() calls reading the map's blocks without f->lock */
    mode_t mode;
    pthread_mutex_t lock;
    pthread_mutex_t wlock; /* held with the key's write lock (bf_write_begin), before f->lock */
    struct blk_obj base; /* the committed version this file builds on (base.gen 0: none) */
    uint64_t size;
    int64_t mtime;
    int mtime_set;
    int mode_set; /* fchmod of a writer: the mode its commit gives */
    struct bext *map;
    int n, cap;
    uint64_t rstart, rlen; /* the reserved run not yet used */
    int closing;           /* in bf_close: its commit is the last */
    unsigned forks;        /* the process's forks when fd was taken (bp_fd_get) */
    int fd_locked;         /* fd took a lock (a pin, a reservation, a claimed name) */
    /* Runs carved from the mount's kept reservation (block_pool.c) by the final commit's
     * write of a small object: released from it once committed, or at the file's end. */
    struct { uint64_t start, len; } pool[4];
    int npool;
    /* write buffer: valid bytes [wb_lblk * BS, + wb_len) */
    struct ubuf wb;
    uint64_t wb_lblk;
    size_t wb_len;
    struct bwslot *ws; /* full buffers in flight: BF_WSLOTS, taken at the first (NULL: none yet) */
    uint64_t wtick;
    /* readahead (block_read.c): chunks of the object read ahead of a sequential reader.
     * (The slots of both kinds are 15 KiB, which a small file never uses: zeroed at every
     * open they were a tenth of the instructions of a program creating small files.) */
    struct bslot *rs; /* BF_SLOTS, taken at the first read ahead (NULL: none yet) */
    uint64_t tick;
    struct readahead ra;
    struct bfile *nw_next, **nw_pprev; /* in m->nw: this process's open files */
    struct bfile *mk_next, **mk_pprev; /* in m->mk while marked (block_coherent.c) */
    uint64_t mk_pass; /* the answering pass that last looked at it (mk_lock) */
    struct bfile *bt_next; /* in m->bt: closed, waiting for the batch's commit (block_batch.c) */
    uint64_t bt_hash;      /* bm_key_hash of its key */
    uint64_t bt_phash;     /* and of its parent directory's (bt_plen bytes of it) */
    size_t bt_plen;
};

/* block_commit.c */
int bf_commit(struct bfile *f, int how);     /* f->lock held */
/* The parts of a commit that several files' commits share (block_batch.c): f's version
 * put in t (cur: the key's entry in t, have: tx_get's answer; o: filled; touch: a new
 * object sets its directory's mtime, which a batch does once per directory), and after
 * t's commit, f made that version. f->lock held. */
int bf_commit_put(struct blk_txn *t, struct bfile *f, struct blk_obj *o, const struct blk_obj *cur, int have, int touch);
void bf_committed(struct bfile *f, const struct blk_obj *o);
/* Can f's commit wait for a batch (block_batch.c)? Its data is written first. f->lock held. */
int bf_batchable(struct bfile *f);
void bf_pool_release(struct bfile *f); /* the runs it carved from the mount's kept one, released */

/* block_file.c */
void bf_free(struct bfile *f); /* a closed file's memory and descriptors */
/* An OFD lock of type on device blocks [pblk, +len) through f->fd: 0 or -errno. */
int bf_fd_lock(struct bfile *f, uint64_t pblk, uint64_t len, int type);

/* block_batch.c: the closed file f (its data written, f->lock not held) waits for the
 * batch's commit: 1; 0 if it must be committed now (another process uses the store). */
int bb_defer(struct bfile *f);
void bf_ino_forked(void);                    /* in a forked child */
/* The device block of logical block lblk: 1 mapped (*pblk, *owned, *run blocks from it in
 * that extent), 0 a hole (*run blocks up to the next extent, UINT64_MAX: none). */
int bf_map_find(struct bfile *f, uint64_t lblk, uint64_t *pblk, int *owned, uint64_t *run);
/* One device request, waited for (writes reported to blk_recorder). 0 or -errno. */
int bf_dev_io(struct bfile *f, int op, uint64_t pblk, char *buf, size_t nblk, int bidx);
/* Logical blocks [lblk, +nblk) into buf (holes are zeros). */
int bf_read_logical(struct bfile *f, uint64_t lblk, char *buf, size_t nblk, int bidx);
int bf_map_set(struct bfile *f, uint64_t lblk, uint64_t pblk, uint64_t len); /* owned blocks */
int bf_map_from_base(struct bfile *f); /* the map: f->base's extents, none owned; 0 or -ENOMEM */
/* Up to want free blocks, as one run, from the file's reservation (reserving more). */
int bf_take_blocks(struct bfile *f, uint64_t want, uint64_t *start, uint64_t *got);
/* The same for a copy that merges extents: the run whole when the store has one so long
 * (up to 1 MiB), not the first free blocks. */
int bf_take_run(struct bfile *f, uint64_t want, uint64_t *start, uint64_t *got);

/* block_write.c (f->lock held) */
/* Everything written so far on the device (gathered bytes sent, every write in flight
 * waited for): 0 or the first error. */
int bf_wb_flush(struct bfile *f);
/* Start gathering at byte off (what was gathered before goes to the device first). */
int bf_wb_start(struct bfile *f, uint64_t off);
int bf_ws_drain(struct bfile *f); /* every write in flight waited for; f->err */
void bf_ws_forget(struct bfile *f); /* in a forked child: the parent's writes in flight */

/* block_read.c (f->lock held) */
/* Forget every chunk read ahead (waiting for those in flight): the map or the data changed. */
void bf_ra_drop(struct bfile *f);
/* In a forked child: the parent's requests are never waited for, its arena buffers
 * never freed here. */
void bf_ra_forget(struct bfile *f);
int bf_lookup_pinned(struct bfile *f);       /* f->base from the newest root, pinned: 1, 0, -errno */
/* The same; 0: *dir as bt_lookup's (dir may be NULL). The blocks of held[0..nheld),
 * pinned already through f->fd, are left as they are, whatever the result: following a
 * new version of an object that shares most of its blocks with the old one (a WAL
 * written through, one block at a time) asked the kernel for every extent again, and
 * each ask walks the device's whole lock list. */
int bf_lookup_pinned_from(struct bfile *f, int *dir, const struct blk_ext *held, int nheld);

/* block_share.c */
/* Apply type (F_RDLCK: pin, F_UNLCK: unpin) through f->fd to the blocks of a[0..na)
 * that none of b[0..nb) covers. Overlapping OFD read locks of one description are one
 * lock, hence the difference. 0 or the first error (a pin stops at it). */
int bf_pin_diff(struct bfile *f, const struct blk_ext *a, int na, const struct blk_ext *b, int nb, int type);
int bf_follow_shared(struct bfile *f);       /* f->lock held */
/* A read-only descriptor that read to the end goes on from a newer version of its object
 * (tail -f), at a read at the end and at fstat. f->lock held. */
int bf_follow_eof(struct bfile *f);
/* O_CREAT|O_EXCL: f's new name claimed for it (until its close), or -EEXIST. */
int bf_claim_name(struct bfile *f);
void bf_claim_drop(struct bfile *f); /* let go of it */
/* A new file opened O_RDWR (not O_EXCL): its name claimed until its first commit (1), or
 * what another process claimed committed and there (0: look it up again); -errno. */
int bf_claim_shared(struct bfile *f);
void bf_list_add(struct bfile *f);
void bf_list_remove(struct bfile *f);

/* block_coherent.c (f->lock held, but for bf_present_gone) */
/* Opened O_RDWR, O_WRONLY without O_TRUNC or O_EXCL, or locked: sees other processes'
 * writes before their commits, and shows its own (block_coherent.c). */
static inline int bf_coherent(const struct bfile *f) { return f->acc == O_RDWR || f->wshare || f->locked; }
/* Coherent and never locked: its writes are committed as they are made while another
 * process has the key open (block_coherent.c, write_through), under the key's write lock. */
static inline int bf_writes_through(const struct bfile *f) { return bf_coherent(f) && !f->locked; }
void bf_mark(struct bfile *f);   /* f has something uncommitted: show it (coherent files) */
void bf_unmark(struct bfile *f); /* committed, or never will be */
void bf_mark_moved(struct bfile *f); /* f->key changed (a rename in this process) */
/* Before a write, truncate or fallocate (f->lock held, dropped and taken again while it
 * waits): bf_follow_shared, and for a file that writes through (bf_writes_through) whose
 * key another process has open, the key's write lock first (*held 1: bf_write_end after f->lock is let go,
 * the write committed). 0 or -errno (-EIO: the lock was held past the share wait). */
int bf_write_begin(struct bfile *f, int *held);
void bf_write_end(struct bfile *f, int held);
/* A coherent file opened: shown present to other openers of its key, and what other
 * processes wrote to it and did not commit, committed (asked for). 0 or -EIO. */
int bf_present(struct bfile *f);
/* A mark file descriptor of key was closed in this process (which drops the process's
 * presence): taken again if another open file of key is left. Takes nw_lock. */
void bf_present_gone(struct block_mount *m, const char *key);
/* f's data changed (a write, truncate, fallocate) and the change's error is e: marked,
 * and, if e is 0, committed at once if f was never locked and another process has its
 * key open. Returns e, or the commit's error. */
int bf_changed(struct bfile *f, int e);
/* A coherent file with nothing uncommitted, before it reads or writes: other processes'
 * uncommitted writes to its key committed (asked for, waited for). 0 or -EIO. */
int bf_see_others(struct bfile *f);

#endif
