/* blk.h - the block wing's private declarations: an open store (blk_meta.c), a commit
 * (blk_txn.c), the index (blk_tree.c), reservations (blk_alloc.c). Layers run one way:
 *
 *   backend_block.c + block_file.c + block_commit.c + block_batch.c + block_share.c (the
 *   backend, bmount.h between them),
 *   blk_admin.c, blk_check.c, blk_crash.c (s3shim blk)
 *        -> blk_tree.c -> blk_txn.c + blk_fmap.c -> blk_alloc.c -> blk_meta.c (device, checksums,
 *           roots, the commit lock)
 *
 * docs/block-format.md is the format and protocol these implement. */
#ifndef S3SHIM_BLK_H
#define S3SHIM_BLK_H

#include "blk_format.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stats_set;

/* An open store: one per mount (or per command). */
struct blk_store {
    int fd; /* buffered: metadata I/O, the commit lock (byte 0), lock probes */
    int rw;
    int is_blk;
    char path[PATH_MAX];
    union {
        struct blk_super sb;
        uint8_t sbraw[BLK_BS]; /* read whole */
    };
    pthread_mutex_t lock; /* the in-process half of the commit lock */
    uint64_t cursor;      /* next-fit start of data reservations */
    uint64_t mlast;       /* metadata blocks the process's last commit allocated (under lock) */
    /* No run of mh_want free metadata blocks starts below mh_pos in the free map of commit
     * mh_commit, this process's last (blk_fmap.c: meta_run; 0: unknown; under lock). */
    uint64_t mh_commit, mh_pos, mh_want;
    struct blk_txn *tx_spare; /* the last commit's, kept for the next (blk_txn.c; under lock) */
    /* Verified metadata blocks (blk_cache.c), and the newest root seen. */
    pthread_mutex_t nc_lock;
    uint64_t nc_newest;
    uint32_t nc_newest_crc;
    struct blk_ncslot *nc;
    _Atomic uint64_t meta_reads, commits, commit_ns, flushes;
    int discard;                   /* S3SHIM_BLOCK_DISCARD: freed blocks are discarded (blk_discard.c) */
    _Atomic uint64_t discarded;    /* blocks */
    _Atomic uint64_t nc_hits, nc_drops; /* metadata blocks served from blk_cache.c; its drops */
    /* Visible roots (blk_vroot.c): the two root blocks mapped from /dev/shm. */
    uint64_t dev_id, dev_ino; /* the device's identity: st_rdev, or st_dev and st_ino */
    uint8_t *vr;
    int vr_rw;
    int vr_fd;   /* the file, held with a shared flock: this process uses the store */
    uint64_t vr_retry_ns;
    _Atomic uint64_t vr_check_ns; /* when a lookup or commit next looks whether the file was removed */
    _Atomic int vr_suspect;       /* it was seen removed: the next commit lock moves over */
    /* Called by the last process using the store before its files in /dev/shm go (the
     * mount's: closes a killed process left in the batch log, committed; NULL: none). */
    void (*vr_last)(void *arg);
    void *vr_last_arg;
    /* The newest roots as last read (blk_roots), kept while the shared change counter
     * (blk_vroot.c) holds rc_seq and the device's root slots still start with the headers
     * rc_dh (seen through dm, the device's first blocks mapped; docs/block-format.md,
     * "Shared change counter"). Under nc_lock. */
    const uint8_t *dm;
    int rc_valid, rc_dslot;
    uint64_t rc_seq, rc_durable;
    struct blk_hdr rc_dh[2];
    struct blk_root rc_root;
    _Atomic uint64_t rc_hits; /* lookups served without reading the root slots */
    /* Data extents of a durable newest root's pend_prev (blk_alloc.c), read under the
     * commit lock for root pf_commit (0: none read). */
    uint64_t pf_commit;
    int pf_durable;
    struct blk_fext *pf;
    size_t npf;
};

#define BLK_NC_SLOTS 256 /* 1 MiB of blocks per store, direct-mapped by address */
struct blk_ncslot {
    uint64_t addr;  /* 0: empty (block 0 is the superblock, never a node) */
    uint64_t stamp; /* the newest root a walk reached it from */
    int kind;
    uint8_t buf[BLK_BS] __attribute__((aligned(64)));
};

/* One object entry, decoded. */
struct blk_obj {
    uint16_t klen;
    char key[BLK_MAX_KEY + 1];
    uint32_t mode;
    uint64_t ino, size;
    int64_t mtime_ns;
    uint64_t gen;
    int next;
    struct blk_ext ext[BLK_MAX_EXT];
};

/* --- blk_meta.c ---------------------------------------------------------------------- */
uint32_t blk_crc(const void *p, size_t len);
/* Fill in magic, kind, commit, address, UUID and the checksum (level and count are the
 * caller's). */
void blk_seal(void *blk, int kind, uint64_t commit, uint64_t addr, const uint8_t uuid[16]);
/* 0 if blk is a valid block of that kind at addr written no later than max_commit;
 * else -1 with the reason in why. */
int blk_verify(const void *blk, int kind, uint64_t addr, const uint8_t uuid[16], uint64_t max_commit, char *why,
               size_t whylen);
/* Open PATH (a device or a file) and read its superblock (or the copy). rw: for writing.
 * Returns 0 or -errno with one line in err. */
int blk_open(struct blk_store *s, const char *path, int rw, char *err, size_t errlen);
void blk_close(struct blk_store *s);
int blk_read_block(struct blk_store *s, uint64_t addr, void *buf);
int blk_write_block(struct blk_store *s, uint64_t addr, const void *buf);
/* A commit's new metadata blocks, in any order: sorted by address here and written one
 * pwritev per run of adjacent blocks (a small file's commit: 6 blocks in 1-2 calls
 * instead of 6, ~7 us less on a loop device). */
struct blk_wr {
    uint64_t addr;
    const void *buf;
};
int blk_write_blocks(struct blk_store *s, struct blk_wr *v, size_t n);
/* Object data through the page cache (small objects at their commit; blk_sync covers it). */
int blk_write_data(struct blk_store *s, uint64_t pblk, const void *buf, size_t nblk);
int blk_sync(struct blk_store *s);
/* The newest valid root, visible (in /dev/shm) or durable (a slot on the device); *bad
 * gets a bit per invalid device slot. 0 or -EIO. */
int blk_newest_root(struct blk_store *s, struct blk_root *r, int *bad);
/* The same, and the newest durable root's commit and slot (0 or 1). */
int blk_roots(struct blk_store *s, struct blk_root *r, uint64_t *durable, int *dslot, int *bad);
/* The newest root's tree, height and commit (blk_newest_root without copying the root). */
int blk_newest_tree(struct blk_store *s, uint64_t *tree, uint32_t *height, uint64_t *commit);
/* The newest root's commit if the roots kept by the last blk_roots are still the store's
 * state (nothing read; 0: not known without reading them). */
uint64_t blk_kept_commit(struct blk_store *s);
/* Make the newest visible root durable: flush, root into the slot that does not hold the
 * newest durable one, flush. The flushes run without the commit lock (commits go on; the
 * root's blocks are pinned meanwhile). 0 (also: nothing to do) or -errno. */
int blk_make_durable(struct blk_store *s);
/* A commit of this process wrote root block `root` (into device slot dslot, or only
 * published it when visible), the counter now at seq (0: none): keep it as the newest. */
void blk_roots_wrote(struct blk_store *s, const void *root, int visible, int dslot, uint64_t seq);

/* --- blk_cache.c (verified metadata blocks, kept across commits) ----------------------- */
/* Block addr of that kind as of root `root` into buf, if kept: 1, else 0. */
int blk_nc_get(struct blk_store *s, uint64_t addr, int kind, uint64_t root, void *buf);
/* Keep blk, verified (or written) as block addr of root `root`. */
void blk_nc_put(struct blk_store *s, uint64_t addr, int kind, const void *blk, uint64_t root);
/* The newest root is `newest`, its checksum crc (blk_roots): one older than before, or
 * the same commit with another checksum, drops everything. */
void blk_nc_seen(struct blk_store *s, uint64_t newest, uint32_t crc);
void blk_nc_free(struct blk_store *s); /* at the store's close */

/* --- blk_vroot.c (visible, not yet durable roots, in /dev/shm) -------------------------- */
void blk_vr_name(const struct blk_store *s, char *buf, size_t len); /* its file */
int blk_vr_open(struct blk_store *s);
void blk_vr_close(struct blk_store *s);
void blk_vr_unlink(struct blk_store *s); /* crashtest: the recorded run's file */
/* This process is done with the store (process end, unmount): if no other process holds
 * the file, everything visible is made durable and the file goes, with the lock files.
 * The mapping stays (threads may still read it) until blk_vr_close. */
void blk_vr_release(struct blk_store *s);
/* In a forked child: a hold of its own on the file (flock belongs to the description). */
void blk_vr_atfork_child(struct blk_store *s);
/* The lock file of key (its fcntl and flock locks, taken by the kernel: every process
 * using the store sees them), opened with access mode acc: a descriptor or -errno. */
int blk_lockfile_open(struct blk_store *s, const char *key, size_t klen, int acc);
/* The newest valid visible root with a commit above `above`: 0, or -ENOENT. */
int blk_vr_read(struct blk_store *s, struct blk_root *r, uint64_t above);
int blk_vr_write(struct blk_store *s, const void *root_block); /* sealed; -EROFS */
/* The commit a durable step in progress is making durable (0: none); under the lock. */
uint64_t blk_vr_pin(struct blk_store *s);
/* The shared change counter (a seqlock bumped around every root write of every process
 * that maps the file for writing): 0 and *seq (even: no write in progress) when this
 * process can rely on it, -1 when not (no file, or a write in progress or cut short). */
int blk_vr_seq(struct blk_store *s, uint64_t *seq);
/* Around a root write (under the commit lock): begin makes the counter odd, end even
 * again and returns it (0: no counter). */
void blk_vr_seq_begin(struct blk_store *s);
uint64_t blk_vr_seq_end(struct blk_store *s);
/* The file was removed while this process had it (its link count is 0). */
int blk_vr_orphaned(struct blk_store *s);
/* 1 at most every 20 ms (per process and store): time to look at the link count. */
int blk_vr_due(struct blk_store *s);
/* Move to the file the name holds now (made if missing), carrying over, when this process
 * publishes roots (then under the commit lock), a visible root above `durable` that only
 * the old file has, the pin and the change counter. 0 or -errno. */
int blk_vr_reattach(struct blk_store *s, uint64_t durable);
/* Under the commit lock (write): reattach if removed (looked at when s->vr_suspect is
 * set, every 20 ms, and whenever a root is marked past the newest this process sees);
 * then, while someone published a root past the newest this process sees (in a file it
 * does not see), let the lock go and wait. 0, or -errno with the lock no longer held. */
int blk_vr_settle(struct blk_store *s);
/* The commit of someone's visible root published past `seen` where this process cannot
 * see it (0: none). */
uint64_t blk_vr_marked_past(struct blk_store *s, uint64_t seen);
/* This process published visible root `commit` (an OFD lock the guard above sees). */
void blk_vr_mark(struct blk_store *s, uint64_t commit);
/* Set the pin to commit, if it was if_was (UINT64_MAX: whatever it was). */
void blk_vr_set_pin(struct blk_store *s, uint64_t commit, uint64_t if_was);
/* The commit lock: in-process mutex and an OFD write lock on byte 0 of the device. */
int blk_lock(struct blk_store *s);
int blk_lock_raw(struct blk_store *s); /* the same without blk_vr_settle */
void blk_unlock(struct blk_store *s);
/* The same, shared (check: no commit may run while it reads); blk_unlock releases it. */
int blk_lock_shared(struct blk_store *s);
/* In a forked child: a descriptor of its own (OFD locks belong to the description). */
void blk_atfork_child(struct blk_store *s);
/* OFD lock on blocks [start, start+len) through fd: type F_RDLCK, F_WRLCK or F_UNLCK;
 * 0, or -EAGAIN if someone else holds a conflicting lock. */
int blk_range_lock(int fd, uint64_t start, uint64_t len, int type);
/* One byte, at, of fd (a file in the lock directory, or an offset past any device): lock
 * it with cmd (F_OFD_SETLK, F_OFD_SETLKW or F_SETLK) and type (F_RDLCK, F_WRLCK, F_UNLCK),
 * 0 or -errno; or ask (cmd F_OFD_GETLK: another open file; F_GETLK: another process)
 * whether someone else holds a lock there that a write lock would meet: 1 or 0. */
int blk_byte_lock(int fd, int cmd, short type, off_t at);
int blk_byte_held(int fd, int cmd, off_t at);

/* Crash testing (blk_crash.c): when set, every device write and flush of the wing is
 * reported here first, in order. NULL in normal operation. */
enum { BLK_REC_WRITE = 1, BLK_REC_FLUSH };
extern void (*blk_recorder)(int op, uint64_t off, const void *buf, size_t len);

/* blk_admin.c: format, using at most limit bytes of the device (0: all of it). */
int blk_format_size(const char *path, int force, const char *label, uint64_t limit, char *err, size_t errlen);

/* --- blk_alloc.c (reading the committed bitmap, reservations) --------------------------- */
/* Bitmap block idx of root r into buf. */
int blk_bm_read(struct blk_store *s, const struct blk_root *r, uint64_t idx, uint8_t *buf);
/* Reserve up to want (at least 1) free data blocks, contiguous, for the holder of fd
 * (an OFD write lock on them): *start and *got. 0, -ENOSPC, -errno. */
int blk_reserve(struct blk_store *s, int fd, uint64_t want, uint64_t *start, uint64_t *got);
/* The same, passing over clear runs shorter than min (when the store has none so long, the
 * first one as blk_reserve): a writer merging extents wants them whole. */
int blk_reserve_run(struct blk_store *s, int fd, uint64_t want, uint64_t min, uint64_t *start, uint64_t *got);
/* Walks root r's committed bitmap, one bitmap block cached: zero it up to buf, set s and
 * r; then blk_bm_test(c, b, &set) says whether block b is set. 0 or -errno (-EAGAIN: the
 * tree moved on). */
struct blk_bm_cursor {
    struct blk_store *s;
    const struct blk_root *r;
    uint64_t idx;
    int loaded;
    uint8_t buf[BLK_BS] __attribute__((aligned(64)));
};
int blk_bm_test(struct blk_bm_cursor *c, uint64_t b, int *set);
/* A cursor over s on heap memory (free() it); the caller points c->r at its root. NULL
 * without memory. */
struct blk_bm_cursor *blk_bm_cursor_new(struct blk_store *s);
/* qsort order of struct blk_fext: by start. */
int blk_fext_cmp(const void *a, const void *b);
/* Someone's OFD lock on blocks [a, b) (seen from s->fd)? 1 with *la, *lb: the first
 * locked range, clipped; 0 none; -errno. */
int blk_range_probe(struct blk_store *s, uint64_t a, uint64_t b, uint64_t *la, uint64_t *lb);
/* Free data blocks of the newest root (no reservation counted). */
int blk_free_blocks(struct blk_store *s, uint64_t *free_blocks, struct blk_root *r);

/* --- blk_discard.c (S3SHIM_BLOCK_DISCARD, blk trim) ------------------------------------ */
/* Discard the unlocked parts of blocks [start, start+len) when s->discard; blocks done.
 * Only for blocks no root a crash could bring back reaches, under the commit lock. */
uint64_t blk_discard(struct blk_store *s, uint64_t start, uint64_t len);
/* The same for n extents (sorted and merged here). */
uint64_t blk_discard_list(struct blk_store *s, struct blk_fext *x, size_t n);
/* A reader let go of extents that were freed while it held them: under the commit lock,
 * discard the parts still free in the newest root and not locked by anyone. */
void blk_discard_if_free(struct blk_store *s, const struct blk_fext *x, size_t n);

/* --- blk_txn.c (one commit) ------------------------------------------------------------ */
struct blk_txn;
/* Takes the commit lock, reads the newest root, releases what commit N-1 freed. */
int tx_begin(struct blk_store *s, struct blk_txn **tp);
/* Write everything; TX_DURABLE: sync, write the root into a device slot, sync;
 * TX_VISIBLE: publish the root in /dev/shm only (durable at the next blk_make_durable;
 * falls back to TX_DURABLE when this process cannot publish). Unlocks. 0 or -errno
 * (nothing visible). *durable (if given) says which it was. */
enum { TX_DURABLE = 0, TX_VISIBLE = 1 };
int tx_commit(struct blk_txn *t, int how, int *durable);
void tx_abort(struct blk_txn *t);
/* Space freed since the newest durable root is held until a root after it is durable:
 * make it free for writers now (the newest root durable, then one empty durable commit
 * on it, whose pend_prev it becomes). 1 if space was freed, 0 if nothing was held,
 * -errno. Takes the commit lock itself. */
int blk_reclaim(struct blk_store *s);
void tx_free_spare(struct blk_txn *t); /* (s->tx_spare, at blk_close) */
/* The first run of `want` (1..64) free blocks in a bitmap body (bit k set: block k in
 * use) among bits [from, to), *run (< want) free ones just before `from` counting: 1 and its first
 * bit in *start (before `from` if the run began there); else 0, and *run the free ones
 * just before `to`. */
int blk_bits_run(const uint8_t *bits, uint64_t from, uint64_t to, uint64_t want, uint64_t *run, int64_t *start);
struct blk_root *tx_root(struct blk_txn *t);
/* A node of the txn's view (written this txn or read and verified); NULL + t error. */
const uint8_t *tx_node(struct blk_txn *t, uint64_t addr, int kind);
/* Store body (size bytes of items) as the new version of node old (0: a new node);
 * returns its address or 0 on failure. */
uint64_t tx_put_node(struct blk_txn *t, uint64_t old, int kind, int level, uint32_t count, const void *body,
                     size_t size);
void tx_free_node(struct blk_txn *t, uint64_t addr);
/* Data extents: now used by the new state / no longer used by it. */
int tx_use_data(struct blk_txn *t, uint64_t start, uint64_t len);
int tx_free_data(struct blk_txn *t, uint64_t start, uint64_t len);
int tx_error(struct blk_txn *t);
/* A scratch buffer of size bytes for tree level `level` (kept until the commit ends). */
uint8_t *tx_scratch(struct blk_txn *t, int level, size_t size);

/* --- blk_tree.c ------------------------------------------------------------------------ */
/* Outside a commit: look key up in the newest root (retrying while the tree moves).
 * 1 found, 0 not, -errno. *gen (if given) gets the root's commit. */
int bt_get(struct blk_store *s, const char *key, size_t klen, struct blk_obj *o, uint64_t *gen);
/* bt_get, and when key is not there, whether a directory of that name is, as far as the
 * walk saw (*dir: 1 yes, 0 no, -1 not known: ask bt_next from key + "/"). */
int bt_lookup(struct blk_store *s, const char *key, size_t klen, struct blk_obj *o, uint64_t *gen, int *dir);
/* The first entry with key > after (or >= when incl). 1, 0 at the end, -errno. */
int bt_next(struct blk_store *s, const char *after, size_t alen, int incl, struct blk_obj *o);
/* Inside a commit. */
int tx_get(struct blk_txn *t, const char *key, size_t klen, struct blk_obj *o);
int tx_next(struct blk_txn *t, const char *after, size_t alen, int incl, struct blk_obj *o);
int tx_put(struct blk_txn *t, const struct blk_obj *o); /* insert or replace */
int tx_del(struct blk_txn *t, const char *key, size_t klen);
/* The same, under *r (read on the first call, when r->h.commit is 0), so a scan of many
 * entries reads the roots once; if the tree moved under it, *r becomes the newest root. */
int bt_next_at(struct blk_store *s, struct blk_root *r, const char *after, size_t alen, int incl, struct blk_obj *o);
/* Walk every node and entry of root r (check, ls): node(addr, level, data) then
 * entry(o, data) for each object; a callback returning < 0 stops the walk. */
struct bt_walker {
    int (*node)(void *data, uint64_t addr, int kind, const uint8_t *blk);
    int (*entry)(void *data, const struct blk_obj *o);
    int (*bad)(void *data, uint64_t addr, const char *why); /* an unreadable node */
    void *data;
};
int bt_walk(struct blk_store *s, const struct blk_root *r, const struct bt_walker *w);
/* Decode item p of a leaf. */
void bt_decode(const uint8_t *p, struct blk_obj *o);

#endif
