/* bmount.h - a block:// mount (backend_block.c) and its open files (block_file.c,
 * block_share.c), as those files share them. Private to core/block/. */
#ifndef S3SHIM_BMOUNT_H
#define S3SHIM_BMOUNT_H

#include "blk.h"

#include "../local/dio_align.h"
#include "../stats.h"

#include <sys/stat.h>
#include <time.h>

struct block_mount {
    struct blk_store st;
    char *uri;
    size_t chunk;           /* readahead unit, write buffer size */
    int depth;              /* chunks in flight for a sequential reader (S3SHIM_DIRECT_DEPTH) */
    struct dio_align al;    /* O_DIRECT alignment of the device: a program's buffer at it
                             * is read or written straight, without a copy */
    dev_t dev;              /* st_dev: from the store's UUID */
    struct stats_set *stats;
    struct stats_set dev_stats; /* child: device requests, commits */
    pthread_mutex_t detail_lock; /* dev_stats.detail is rewritten by closes on any thread */
    /* group commit (block_group.c) */
    int commit_ms;               /* S3SHIM_BLOCK_COMMIT_MS */
    pthread_mutex_t g_lock;
    pthread_cond_t g_cond;
    uint64_t g_since;            /* monotonic ns of the first commit left undurable, 0: none */
    pthread_t g_thread;
    int g_thread_on, g_stop;
    int g_running; /* the flusher has started (start_thread waits for it) */
    int g_busy;    /* the flusher is in a durable step (the end of the process waits for it) */
    pid_t g_pid;                 /* the process the thread runs in */
    struct block_mount *g_next;  /* this process's mounts */
    /* This process's open files (block_share.c): its own stat sees those it created and
     * has not committed yet, as a filesystem shows a file from its open(O_CREAT); a
     * forked child drops their reservations and the parent's registered buffers. */
    pthread_mutex_t nw_lock;
    struct bfile *nw;
    /* Small objects' kept reservation (block_pool.c): [pool_start, +pool_len) is OFD
     * write-locked on pool_fd (-1 until first used) and not handed out yet. */
    pthread_mutex_t pool_lock;
    int pool_fd;
    uint64_t pool_start, pool_len;
    /* Device descriptors (O_DIRECT; [0] read-only, [1] read-write) of closed files, holding
     * no lock, for the next files to open (block_pool.c); pool_lock. */
    int idle_fd[2][4];
    int nidle[2];
    /* Other processes' reads of this process's uncommitted writes (block_coherent.c): the
     * store's bell, mapped from /dev/shm, and the thread answering it. */
    int share_wait_ms; /* S3SHIM_BLOCK_SHARE_WAIT_MS */
    pthread_mutex_t r_lock;
    struct bell *bell;
    pthread_t r_thread;
    pid_t r_pid; /* the process the thread runs in */
    int r_stop;
    pthread_mutex_t mk_lock; /* after a file's lock, never before (the thread tries) */
    struct bfile *mk;        /* this process's marked files */
    uint64_t mk_pass;        /* answering passes (the thread's own) */
    /* Closes of new files committed together while this process is the store's only user
     * (block_batch.c). bt_lock before nw_lock; bt_due under g_lock. */
    int batch_ms;              /* S3SHIM_BLOCK_BATCH_MS (0: every close commits) */
    pthread_mutex_t bt_lock;
    struct bfile *bt, **bt_tail; /* the closed files waiting, in the order of their closes */
    int bt_n;                  /* (read without the lock as a hint) */
    int bt_pend;               /* this process holds the pending byte */
    int bt_fd;                 /* the store's batch file: presence and pending locks (-1: none) */
    int bt_joined;             /* this process took its presence (a forked child: not yet) */
    uint64_t bt_seen;          /* the bell's batch count when nobody else had one */
    uint64_t bt_due;           /* monotonic ns when the flusher commits the batch (0: none) */
    struct blog *bt_log;       /* the store's batch log, mapped (block_batch.c) */
};

/* block_group.c: group commit. */
void bg_start(struct block_mount *m);   /* at mount */
void bg_stop(struct block_mount *m);    /* at unmount: what is pending, durable */
void bg_atfork_prepare(struct block_mount *m); /* then bg_atfork_parent or bg_atfork_child */
void bg_atfork_parent(struct block_mount *m);
void bg_atfork_child(struct block_mount *m);
int bg_how(struct block_mount *m);      /* TX_VISIBLE or TX_DURABLE for a close or a change */
void bg_committed(struct block_mount *m, int durable);
int bg_sync(struct block_mount *m);     /* fsync: everything published, durable */

/* block_group.c: the batch's commit is due at `due` (monotonic ns): the thread wakes then. */
void bg_batch_due(struct block_mount *m, uint64_t due);

/* block_coherent.c */
void bc_stop(struct block_mount *m); /* at unmount */
void bc_atfork_child(struct block_mount *m);
/* The store's bell for batches (block_batch.c): its count of batches started (0 without
 * a bell), one more, and a ring that asks every process holding one to commit it. */
int bc_bell_ok(struct block_mount *m); /* is the bell there (mapped at the first ask)? */
uint64_t bc_batches(struct block_mount *m);
uint64_t bc_batch_started(struct block_mount *m); /* (the count before) */
void bc_ring_batches(struct block_mount *m);
void bc_answering(struct block_mount *m); /* this process's thread answering the bell, started */
/* A descriptor of the store's file `what` in the lock directory (O_RDWR), or -errno. */
int bc_store_file(struct block_mount *m, const char *what);
/* A write lock on byte `at` of fd, waited for at most S3SHIM_BLOCK_SHARE_WAIT_MS: 0, or
 * -EIO with a log line naming `name`, what is held and `then` (what follows). */
int bc_lock_bounded(struct block_mount *m, const char *name, int fd, off_t at, const char *what, const char *then);

/* block_batch.c: closes of new files committed together (see there). */
enum { BB_KEY, BB_ALL };
/* Before a call on the store: another process's batch committed first (it may hold
 * closed files the call must see); then this process's own, for BB_ALL (a change to the
 * namespace, a listing, fsync) or for BB_KEY if it holds key or a parent of key. 0 or
 * -EIO (the other process did not commit in S3SHIM_BLOCK_SHARE_WAIT_MS). */
int bb_enter(struct block_mount *m, const char *key, int what);
int bb_flush(struct block_mount *m); /* the batch committed now: how many files failed */
void bb_atfork_child(struct block_mount *m);
/* The store's last user is ending (blk_vr_release): nothing left in the batch log. */
void bb_last(void *arg);
void bb_unmount(struct block_mount *m); /* the batch committed, the presence let go */

/* Commit one change to the namespace under the commit lock (backend_block.c). */

/* Inside a commit: every directory above key gets an entry if it has none (-ENOTDIR where
 * an object is); with touch, the parent's mtime is set now too (bm_touch_parent), from
 * the same lookup of its entry. */
int bm_ensure_parents(struct blk_txn *t, const char *key, size_t klen, mode_t mode, int touch);
int64_t bm_now_ns(void);
/* Inside a commit: the parent directory of key gets an entry (if it had none) and mtime now. */
int bm_touch_parent(struct blk_txn *t, const char *key, size_t klen, mode_t mode);
/* A name component over 255 bytes or a key over the limit: -ENAMETOOLONG. */
int bm_key_check(const char *key);
/* -ENOTDIR if an ancestor of key is an object, else -ENOENT. */
int bm_missing(struct block_mount *m, const char *key);
/* 0 if the parent of key is a directory, else -ENOENT or -ENOTDIR. */
int bm_parent_ok(struct block_mount *m, const char *key);
/* bm_ensure_parents for a file's commit (touch: set its parent's mtime), with what this
 * thread last found about that parent (bm_parent_ok too) kept across its commits. */
int bm_file_parents(struct block_mount *m, struct blk_txn *t, const char *key, size_t klen, int touch);
/* This thread committed a file on commit `base`: what it keeps about a parent holds on. */
void bm_parent_seen(struct block_mount *m, uint64_t base);
/* Is key[0..kl) a directory in the newest root (its "key/" marker, or keys below it)? 1,
 * 0, -errno. One walk of the index. */
int bm_is_dir(struct block_mount *m, const char *key, size_t kl);
/* stat without a directory's link count (1 for directories): for the wing's own checks. */
int bm_stat_quick(struct block_mount *m, const char *key, struct stat *st);
void bm_fill_stat(struct block_mount *m, const struct blk_obj *o, int is_dir, struct stat *st);

/* st_ino of a directory that has no entry (a hash of "key/"). */
uint64_t bm_key_hash(const char *k, size_t n);

/* block_pool.c: blocks for the small objects written at their final commit (a close),
 * carved from a run this process keeps reserved, so that most of them need no
 * reservation of their own (commit lock, probe, lock, unlock). */
void bp_init(struct block_mount *m);
void bp_close(struct block_mount *m);        /* at unmount */
void bp_atfork_child(struct block_mount *m); /* the parent's run stays the parent's */
/* Up to want blocks as one run: 0 (*start, *got >= 1), or -errno. */
int bp_take(struct block_mount *m, uint64_t want, uint64_t *start, uint64_t *got);
/* Blocks of a run taken and committed (or never used): no longer reserved. */
void bp_release(struct block_mount *m, uint64_t start, uint64_t len);
/* A descriptor of the device for an open file (O_DIRECT, read-write if wr, close-on-exec,
 * parked), holding no lock: a closed file's, or a new one. fd or -errno; *forks is the
 * process's count of forks so far, for bp_fd_put. */
int bp_fd_get(struct block_mount *m, int wr, unsigned *forks);
/* A closed file's descriptor: its locks dropped (if it took any) and kept for the next
 * open, unless the process forked since it was opened (a child may still use the
 * description: closed). */
void bp_fd_put(struct block_mount *m, int fd, int wr, unsigned forks, int locked);
/* The process's forks so far (parent and child count each): a descriptor taken before
 * the last may be shared with another process, its OFD locks with it. */
unsigned bp_forks(void);

/* block_dir.c */
nlink_t bm_dir_links(struct block_mount *m, const char *prefix, size_t pl);
int bd_opendir(void *ms, const char *key, void **dh);
int bd_readdir(void *dh, struct bk_dirent *ent);
void bd_closedir(void *dh);

/* block_file.c */
int bf_open(void *ms, const char *key, int flags, mode_t mode, void **fh);
ssize_t bf_pread(void *fh, void *buf, size_t len, off_t off);
ssize_t bf_pwrite(void *fh, const void *buf, size_t len, off_t off);
ssize_t bf_append(void *fh, const void *buf, size_t len, off_t *at);
int bf_fsync(void *fh, int datasync);
int bf_ftruncate(void *fh, off_t len);
int bf_fallocate(void *fh, int mode, off_t off, off_t len);
int bf_fstat(void *fh, struct stat *st);
int bf_futimens(void *fh, const struct timespec ts[2]);
int bf_close(void *fh);
int bf_fchmod(void *fh, mode_t mode);

/* block_map.c: mmap of an object, from a copy in memory of the ranges mapped. */
int bf_local_map(void *fh, off_t off, size_t len, int prot, int flags);
/* The file was written (buf NULL: truncated): a shared writable mapping shows it, later
 * read-only mappings copy afresh. */
void bf_map_written(void *fh, const void *buf, size_t len, off_t off);
int bf_map_flush(void *fh);   /* fsync, close: what a shared writable mapping changed, written */
void bf_map_forget(void *fh); /* at close */
int bf_map_any(void *fh);     /* has it been mapped (a mapping may outlive its close)? */
/* The key's file in /dev/shm that shared writable mappings of it map, in every process
 * (block_map.c): a descriptor (O_RDWR) or -errno. */
int bf_copy_file(void *fh);
/* A write lock on byte `at` of fd (the copy's fill lock), waited for at most
 * S3SHIM_BLOCK_SHARE_WAIT_MS: a process stopped (SIGSTOP, a debugger) while it fills or
 * empties the copy must not hang every other process that maps the key. 0, or -EIO with
 * a log line naming the key and `then` (what follows). */
int bf_copy_lock(void *fh, int fd, off_t at, const char *then);
int bf_writable(void *fh);
void bf_map_atfork_child(void);
int bm_chmod(void *ms, const char *key, mode_t mode);

/* block_share.c */
int bf_share(void *fh);   /* another process gets the description: what was written, committed */
int bf_lock_fd(void *fh); /* the key's lock file in /dev/shm (blk_vroot.c) */
/* stat of key as a file this process writes has it now, with what it has not committed
 * yet (as a disk shows a file while it is written): ino 0, a file it is creating (none
 * committed); else a writer of the committed object ino. 0, or -ENOENT if none. */
int bf_stat_writing(struct block_mount *m, const char *key, uint64_t ino, struct stat *st);
/* chmod of a file this process is creating (by its creator): the mode its commit gives. 0 or -ENOENT. */
int bf_chmod_new(struct block_mount *m, const char *key, mode_t mode);
/* truncate(key) / utimens(key) while this process has key open for writing: done to
 * those files, as a disk's truncate changes the file its descriptors write (a truncate
 * is committed at once; a time is what their commits give). 0, -ENOENT if none, -errno. */
int bf_truncate_writers(struct block_mount *m, const char *key, off_t len);
int bf_utimens_writers(struct block_mount *m, const char *key, const struct timespec ts[2]);
/* Commit (visible) a new file this process is still writing under key, so that an open
 * of that name finds it as on a disk (git's index-pack reads its tmp_pack back by name
 * while writing it). 1 if one was committed. */
int bf_publish_new(struct block_mount *m, const char *key);
/* unlink(key) reached this process's open files of key: none of them commits again (a
 * disk's unlinked-but-open file). Returns how many were new, never-committed files. */
int bf_detach(struct block_mount *m, const char *key);
/* rename(from, to) of a file this process created and has not committed: commit it now,
 * so that the rename moves it like any other. 1 if there was one, 0 if not, -errno. */
int bf_commit_new(struct block_mount *m, const char *key);
/* After rename(from, to): this process's open files of from (or below it, from being a
 * directory) follow the name, so their next commit goes to where the file now is. */
void bf_renamed(struct block_mount *m, const char *from, const char *to);
/* The names directly under prefix of new files this process has open and not committed
 * (a disk lists a file from its creation): a malloc'd array of malloc'd names, or NULL. */
char **bf_new_names(struct block_mount *m, const char *prefix, size_t pl, int *n);
void bf_atfork_child(struct block_mount *m);

#endif
