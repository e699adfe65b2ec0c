/* block_batch.c - closes of new files committed together, while one process is the
 * store's only user.
 *
 * A commit per close was most of what a program creating many small files paid (cp -r,
 * tar x, unzip, a python loop): eight metadata blocks written and five lock calls for
 * one 4 KiB file. So the close of a new file whose blocks all come from the mount's kept
 * run (block_pool.c) may wait: the file goes into this process's batch, and one
 * transaction commits the batch at the first of: its BB_MAXth file,
 * S3SHIM_BLOCK_BATCH_MS after its first (the group commit's thread, block_group.c), this
 * process's next change to the namespace, listing, fsync, exec or exit, a stat or open of
 * a name in the batch or below one, and another process's first look at the store.
 *
 * Nobody sees a name differently because of it. Every process that has used the store
 * holds an OFD read lock on byte BB_PRESENT of the store's batch file in /dev/shm. A
 * process starting a batch takes one on byte BB_PENDING, counts the batch in the bell
 * (block_coherent.c), and only then asks the kernel whether another process is present:
 * if one is, it commits at once, as without batches. Before each call on the store, a
 * process compares the bell's count with what it saw last; when it moved, it asks
 * whether another process holds BB_PENDING and, if one does, rings the bell (the
 * holder's answering thread commits its batch) and waits for the lock to go. Either the
 * starter sees the newcomer's presence, or the newcomer sees the starter's pending lock.
 *
 * What it costs: a process killed with SIGKILL loses the files it closed in its last
 * S3SHIM_BLOCK_BATCH_MS (BB_MAX files at most) while it was alone on the store, as a
 * power cut loses what the last S3SHIM_BLOCK_COMMIT_MS made visible; and a close cannot
 * report a commit that fails later (logged with the key, and counted in the exit status
 * when it happens at exit). S3SHIM_BLOCK_BATCH_MS=0: every close commits at once.
 * docs/block-format.md, "Closes committed together". */
#include "block.h"
#include "bmount.h"
#include "bfile.h"

#include "../efd.h"
#include "../log.h"
#include "../stats.h"
#include "../uring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define BB_MAX 64
#define BB_PRESENT 0 /* bytes of the batch file */
#define BB_PENDING 1

/* This process's presence, taken at its first call on the store (not at mount: a shell
 * that only has the mount in its settings must not keep its children from batching). */
static void join(struct block_mount *m)
{
    pthread_mutex_lock(&m->bt_lock);
    if (!m->bt_joined) {
        int fd = bc_store_file(m, "batch");
        if (fd < 0) {
            slog_error("block: %s: cannot open the store's batch file in /dev/shm (%s): this process commits "
                       "every close at once, and may not see at once what another process closed",
                       m->uri, strerror(-fd));
        } else {
            fd = efd_park(fd);
            if (blk_byte_lock(fd, F_OFD_SETLK, F_RDLCK, BB_PRESENT) < 0) {
                efd_close(fd);
                fd = -1;
            }
        }
        m->bt_fd = fd;
        m->bt_seen = UINT64_MAX;
        __atomic_store_n(&m->bt_joined, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&m->bt_lock);
}

/* Another process's batch, committed before this process looks: 0 or -EIO. */
static int others_first(struct block_mount *m)
{
    uint64_t n = bc_batches(m);
    if (n == __atomic_load_n(&m->bt_seen, __ATOMIC_RELAXED) || m->bt_fd < 0) return 0;
    if (blk_byte_held(m->bt_fd, F_OFD_GETLK, BB_PENDING)) {
        if (__atomic_load_n(&m->bt_n, __ATOMIC_RELAXED)) bb_flush(m); /* (our own read lock goes first) */
        bc_ring_batches(m);
        int e = bc_lock_bounded(m, "closed files", m->bt_fd, BB_PENDING, "new files it closed and has not committed",
                                "this call fails (EIO)");
        if (e) return e;
        blk_byte_lock(m->bt_fd, F_OFD_SETLK, F_UNLCK, BB_PENDING);
    }
    __atomic_store_n(&m->bt_seen, n, __ATOMIC_RELAXED);
    return 0;
}

/* Is key, or a directory above it, a name in the batch? */
static int holds(struct block_mount *m, const char *key)
{
    size_t kl = strlen(key);
    int r = 0;
    pthread_mutex_lock(&m->bt_lock);
    for (size_t i = 1; i <= kl && !r; i++) {
        if (i < kl && key[i] != '/') continue;
        uint64_t h = bm_key_hash(key, i);
        for (struct bfile *f = m->bt; f && !r; f = f->bt_next)
            r = f->bt_hash == h && f->klen == i && memcmp(f->key, key, i) == 0;
    }
    pthread_mutex_unlock(&m->bt_lock);
    return r;
}

int bb_enter(struct block_mount *m, const char *key, int what)
{
    if (!__atomic_load_n(&m->bt_joined, __ATOMIC_ACQUIRE)) join(m);
    int e = others_first(m);
    if (e) return e;
    if (__atomic_load_n(&m->bt_n, __ATOMIC_RELAXED) && (what == BB_ALL || (key && holds(m, key)))) bb_flush(m);
    return 0;
}

int bb_defer(struct bfile *f)
{
    struct block_mount *m = f->m;
    if (!__atomic_load_n(&m->bt_joined, __ATOMIC_ACQUIRE)) join(m);
    if (m->bt_fd < 0 || !bc_bell_ok(m)) return 0; /* (without the bell nobody would know) */
    pthread_mutex_lock(&m->bt_lock);
    if (!m->bt_pend) { /* pending, counted, then the look for others (see the top) */
        if (blk_byte_lock(m->bt_fd, F_OFD_SETLK, F_RDLCK, BB_PENDING) < 0) {
            pthread_mutex_unlock(&m->bt_lock); /* another process waits for batches to go */
            return 0;
        }
        bc_batch_started(m);
        if (blk_byte_held(m->bt_fd, F_OFD_GETLK, BB_PRESENT)) {
            blk_byte_lock(m->bt_fd, F_OFD_SETLK, F_UNLCK, BB_PENDING);
            pthread_mutex_unlock(&m->bt_lock);
            return 0;
        }
        m->bt_pend = 1;
        bc_answering(m);
    }
    /* What only an open file needs goes now: its descriptor, with the claim on its name
     * (nobody else looks before the batch is committed), and its write buffer. */
    bf_list_remove(f);
    f->claimed = 0;
    if (f->fd >= 0) bp_fd_put(m, f->fd, f->writable, f->forks, f->fd_locked);
    f->fd = -1;
    if (f->wb.p) ubuf_put(&f->wb);
    memset(&f->wb, 0, sizeof f->wb);
    f->wb.index = -1;
    f->bt_hash = bm_key_hash(f->key, f->klen);
    f->bt_next = NULL;
    *m->bt_tail = f;
    m->bt_tail = &f->bt_next;
    int n = m->bt_n + 1;
    __atomic_store_n(&m->bt_n, n, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&m->bt_lock);
    if (n == 1) bg_batch_due(m, stats_now_ns() + (uint64_t)m->batch_ms * 1000000ull);
    if (n >= BB_MAX) bb_flush(m);
    return 1;
}

/* Is f still to be committed (not committed by a stat of its name meanwhile, nor failed)? */
static int live(const struct bfile *f) { return f->dirty && !f->err && !f->detached && !f->base.gen; }

/* One transaction for the files of list; if it fails, each file's own commit (each its own
 * error). bt_lock held: the files are closed and on no other list, so their own locks are
 * not taken (the commit lock is taken after a file's lock everywhere else). How many
 * files could not be committed. */
static int commit_all(struct block_mount *m, struct bfile *list)
{
    int n = 0;
    for (struct bfile *f = list; f; f = f->bt_next) n++;
    struct blk_obj *o = malloc((size_t)(n + 1) * sizeof *o), *cur = o + n;
    struct blk_txn *t = NULL;
    int e = o ? tx_begin(&m->st, &t) : -ENOMEM;
    uint64_t base = e ? 0 : tx_root(t)->h.commit;
    int i = 0;
    for (struct bfile *f = list; f && !e; f = f->bt_next, i++) {
        if (live(f)) {
            int have = tx_get(t, f->key, f->klen, cur);
            e = have < 0 ? have : bf_commit_put(t, f, &o[i], cur, have);
        }
    }
    if (!e) {
        uint64_t c0 = stats_now_ns();
        int durable = 0;
        e = tx_commit(t, bg_how(m), &durable);
        stats_record(&m->dev_stats, STK_SYNC, c0, 0, e != 0); /* the block child's "sync": commits */
        if (!e) {
            bm_parent_seen(m, base);
            bg_committed(m, durable);
        }
    } else if (t) {
        tx_abort(t);
    }
    int failed = 0;
    i = 0;
    for (struct bfile *f = list; f; f = f->bt_next, i++) {
        int fe = 0;
        if (live(f)) {
            if (!e) bf_committed(f, &o[i]);
            else fe = bf_commit(f, bg_how(m));
        }
        if (fe) {
            slog_error("block: %s: committing %s after its close: %s; the object keeps its previous version", m->uri,
                       f->key, strerror(-fe));
            failed++;
        }
    }
    free(o);
    return failed;
}

int bb_flush(struct block_mount *m)
{
    pthread_mutex_lock(&m->bt_lock);
    struct bfile *list = m->bt;
    m->bt = NULL;
    m->bt_tail = &m->bt;
    __atomic_store_n(&m->bt_n, 0, __ATOMIC_RELAXED);
    int failed = list ? commit_all(m, list) : 0;
    if (m->bt_pend) { /* (after the commit: a process waiting for this lock sees it) */
        blk_byte_lock(m->bt_fd, F_OFD_SETLK, F_UNLCK, BB_PENDING);
        m->bt_pend = 0;
    }
    pthread_mutex_unlock(&m->bt_lock);
    for (struct bfile *f = list, *next; f; f = next) {
        next = f->bt_next;
        bf_free(f);
    }
    return failed;
}

void bb_atfork_child(struct block_mount *m)
{
    pthread_mutex_init(&m->bt_lock, NULL);
    /* The batch is the parent's to commit, its blocks the parent's: forgotten here. */
    for (struct bfile *f = m->bt, *next; f; f = next) {
        next = f->bt_next;
        free(f->map);
        free(f->rs);
        free(f->ws);
        free(f);
    }
    m->bt = NULL;
    m->bt_tail = &m->bt;
    m->bt_n = 0;
    m->bt_pend = 0;
    m->bt_due = 0;
    /* The description is the parent's: its locks are the parent's presence and batch.
     * The child is present once it uses the store. */
    if (m->bt_fd >= 0) efd_close(m->bt_fd);
    m->bt_fd = -1;
    m->bt_joined = 0;
    m->bt_seen = UINT64_MAX;
}

void bb_unmount(struct block_mount *m)
{
    bb_flush(m);
    pthread_mutex_lock(&m->bt_lock); /* (the mount's threads stop after this) */
    if (m->bt_fd >= 0) efd_close(m->bt_fd);
    m->bt_fd = -1;
    pthread_mutex_unlock(&m->bt_lock);
}
