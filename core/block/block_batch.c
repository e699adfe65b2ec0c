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
 * A process killed with SIGKILL loses none of them: each file waiting is also a record
 * in the store's batch log in /dev/shm (the holder of BB_PENDING owns it), and the next
 * process that looks finds the pending lock gone with records left, and commits them
 * before anything else (its allocations included: the records' blocks were reserved by
 * the dead process's locks only). What it costs: a close cannot report a commit that
 * fails later (logged with the key, and counted in the exit status when it happens at
 * exit), so the batch is only used while the metadata zone has ample room.
 * S3SHIM_BLOCK_BATCH_MS=0: every close commits at once.
 * docs/block-format.md, "Closes committed together". */
#include "block.h"
#include "bmount.h"
#include "bfile.h"

#include "../efd.h"
#include "../log.h"
#include "../stats.h"
#include "../sys.h"
#include "../uring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define BB_MAX 64
#define BB_PRESENT 0 /* bytes of the batch file */
#define BB_PENDING 1

/* The batch log (the store's "batchlog" file in /dev/shm, mapped at the first need): a
 * record per file waiting, made whole before n counts it. o.ino is the st_ino the
 * process showed for the file (0: none; the commit draws one). */
#define BL_MAGIC 0x53334242617463ull
struct blog {
    uint64_t magic;
    _Atomic uint32_t n;
    uint32_t pad;
    struct blk_obj rec[BB_MAX];
};

/* The log mapped (bt_lock held): NULL if it cannot be. */
static struct blog *blog_of(struct block_mount *m)
{
    if (m->bt_log) return m->bt_log;
    int fd = bc_store_file(m, "batchlog");
    void *p = MAP_FAILED;
    if (fd >= 0) {
        struct stat st;
        if (sys.fstat(fd, &st) == 0 && (st.st_size >= (off_t)sizeof(struct blog) || sys.ftruncate(fd, sizeof(struct blog)) == 0))
            p = sys.mmap(NULL, sizeof(struct blog), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        sys.close(fd);
    }
    if (p == MAP_FAILED) {
        slog_error("block: %s: cannot map the store's batch log in /dev/shm: every close commits at once", m->uri);
        return NULL;
    }
    m->bt_log = p;
    return p;
}

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

/* The records a killed process left in the log, committed (bt_lock held, with the write
 * lock on BB_PENDING: nobody else batches or recovers meanwhile). A record whose key
 * already has its blocks was committed before the kill (between the commit and the
 * log's emptying). */
static int record_ok(const struct block_mount *m, const struct blk_obj *o)
{
    if (o->klen == 0 || o->klen > BLK_MAX_KEY || o->next < 0 || o->next > BLK_MAX_EXT) return 0;
    for (int x = 0; x < o->next; x++)
        if (o->ext[x].len == 0 || o->ext[x].pblk < m->st.sb.data_start || o->ext[x].pblk + o->ext[x].len > m->st.sb.data_end)
            return 0;
    return 1;
}

static void recover(struct block_mount *m, struct blog *lg)
{
    uint32_t n = atomic_load(&lg->n);
    if (lg->magic != BL_MAGIC || n == 0 || n > BB_MAX) {
        lg->magic = BL_MAGIC;
        atomic_store(&lg->n, 0);
        return;
    }
    struct blk_obj *cur = malloc(sizeof *cur), *o = malloc(sizeof *o);
    struct blk_txn *t = NULL;
    int e = cur && o ? tx_begin(&m->st, &t) : -ENOMEM, done = 0;
    for (uint32_t i = 0; i < n && !e; i++) {
        *o = lg->rec[i];
        if (!record_ok(m, o)) { /* (the file is in /dev/shm: anyone of the store's users may write it) */
            slog_error("block: %s: a damaged record in the batch log left by a killed process: skipped", m->uri);
            continue;
        }
        int have = tx_get(t, o->key, o->klen, cur);
        if (have < 0) e = have;
        if (e || (have == 1 && cur->next > 0 && o->next > 0 && cur->ext[0].pblk == o->ext[0].pblk)) continue;
        struct blk_root *r = tx_root(t);
        o->ino = have == 1 ? cur->ino : o->ino ? o->ino : r->next_ino++;
        o->gen = r->h.commit + 1;
        for (int x = 0; x < o->next && !e; x++) e = tx_use_data(t, o->ext[x].pblk, o->ext[x].len);
        for (int x = 0; have == 1 && x < cur->next && !e; x++) e = tx_free_data(t, cur->ext[x].pblk, cur->ext[x].len);
        if (!e) e = bm_file_parents(m, t, o->key, o->klen, have != 1);
        if (!e) e = tx_put(t, o);
        done++;
    }
    if (!e && t && done) {
        int durable = 0;
        e = tx_commit(t, bg_how(m), &durable);
        if (!e) bg_committed(m, durable);
    } else if (t) {
        tx_abort(t);
    }
    if (e) slog_error("block: %s: the %u closed files a killed process left to commit could not be committed: %s",
                      m->uri, n, strerror(-e));
    else if (done) slog_info("block: %s: committed %d files a killed process had closed", m->uri, done);
    atomic_store(&lg->n, 0);
    free(cur);
    free(o);
}

/* Nothing in the log to recover (or no log to recover from). Seen while nobody holds
 * BB_PENDING, it stays so: a batch started from now on sees this process present. */
static int nothing_left(struct block_mount *m)
{
    pthread_mutex_lock(&m->bt_lock);
    struct blog *lg = blog_of(m);
    int r = !lg || atomic_load(&lg->n) == 0; /* (a new log is all zeros: nothing either) */
    pthread_mutex_unlock(&m->bt_lock);
    return r;
}

/* Another process's batch committed before this process looks, by that process or (it
 * was killed) from its log here: 0 or -EIO. */
static int others_first(struct block_mount *m)
{
    uint64_t n = bc_batches(m);
    if (n == __atomic_load_n(&m->bt_seen, __ATOMIC_RELAXED) || m->bt_fd < 0) return 0;
    if (__atomic_load_n(&m->bt_pend, __ATOMIC_RELAXED)) bb_flush(m); /* (our own read lock goes first) */
    int held = blk_byte_held(m->bt_fd, F_OFD_GETLK, BB_PENDING);
    if (!held && nothing_left(m)) { /* (a process's usual first look: no lock to take) */
        __atomic_store_n(&m->bt_seen, n, __ATOMIC_RELAXED);
        return 0;
    }
    if (held) bc_ring_batches(m);
    int e = bc_lock_bounded(m, "closed files", m->bt_fd, BB_PENDING, "new files it closed and has not committed",
                            "this call fails (EIO)");
    if (e) return e;
    pthread_mutex_lock(&m->bt_lock);
    struct blog *lg = blog_of(m);
    if (lg && (lg->magic != BL_MAGIC || atomic_load(&lg->n))) recover(m, lg);
    pthread_mutex_unlock(&m->bt_lock);
    blk_byte_lock(m->bt_fd, F_OFD_SETLK, F_UNLCK, BB_PENDING);
    __atomic_store_n(&m->bt_seen, n, __ATOMIC_RELAXED);
    return 0;
}

/* Is key, or a directory above it, a name in the batch, or is key the directory of one
 * (its mtime moves with the commit)? */
static int holds(struct block_mount *m, const char *key)
{
    size_t kl = strlen(key);
    int r = 0;
    pthread_mutex_lock(&m->bt_lock);
    for (size_t i = 0; i <= kl && !r; i++) {
        if (i < kl && key[i] != '/') continue;
        uint64_t h = bm_key_hash(key, i);
        for (struct bfile *f = m->bt; f && !r; f = f->bt_next)
            r = (i > 0 && f->bt_hash == h && f->klen == i && memcmp(f->key, key, i) == 0) ||
                (i == kl && f->bt_phash == h && f->bt_plen == kl && memcmp(f->key, key, kl) == 0);
    }
    pthread_mutex_unlock(&m->bt_lock);
    return r;
}

/* Room in the metadata zone for a batch's commit, with the margin that commits keep
 * before they turn durable (blk_txn.c): a close that returned 0 must not fail later. */
static int roomy(struct block_mount *m)
{
    struct blk_root r;
    if (blk_roots(&m->st, &r, NULL, NULL, NULL) != 0) return 0;
    uint64_t zone = m->st.sb.data_start - m->st.sb.meta_start, used = r.meta_used;
    return used < zone && zone - used > zone / 4 + 1024; /* (64 files touch a few hundred blocks at most) */
}

int bb_enter(struct block_mount *m, const char *key, int what)
{
    if (!__atomic_load_n(&m->bt_joined, __ATOMIC_ACQUIRE)) join(m);
    int e = others_first(m);
    if (e) return e;
    if (__atomic_load_n(&m->bt_n, __ATOMIC_RELAXED) && (what == BB_ALL || (key && holds(m, key)))) bb_flush(m);
    return 0;
}

/* f's record in the log: the object its commit will make, less what the commit draws. */
static void log_file(struct blk_obj *o, const struct bfile *f)
{
    memset(o, 0, offsetof(struct blk_obj, ext));
    o->klen = (uint16_t)f->klen;
    memcpy(o->key, f->key, f->klen);
    o->mode = S_IFREG | (f->mode & 07777);
    o->ino = f->ino_shown ? f->new_ino : 0;
    o->size = f->size;
    o->mtime_ns = f->mtime;
    for (int i = 0; i < f->n; i++) o->ext[o->next++] = (struct blk_ext){f->map[i].lblk, f->map[i].pblk, f->map[i].len, 0};
}

int bb_defer(struct bfile *f)
{
    struct block_mount *m = f->m;
    if (!__atomic_load_n(&m->bt_joined, __ATOMIC_ACQUIRE)) join(m);
    if (m->bt_fd < 0 || !bc_bell_ok(m)) return 0; /* (without the bell nobody would know) */
    pthread_mutex_lock(&m->bt_lock);
    struct blog *lg = blog_of(m);
    if (!lg || m->bt_n >= BB_MAX) { /* (a thread's flush of a full batch is under way) */
        pthread_mutex_unlock(&m->bt_lock);
        return 0;
    }
    if (!m->bt_pend) { /* pending, counted, then the look for others (see the top) */
        if (!roomy(m) || blk_byte_lock(m->bt_fd, F_OFD_SETLK, F_RDLCK, BB_PENDING) < 0) {
            pthread_mutex_unlock(&m->bt_lock); /* another process waits for batches to go */
            return 0;
        }
        uint64_t was = bc_batch_started(m); /* (our own count is no news to us) */
        if (__atomic_load_n(&m->bt_seen, __ATOMIC_RELAXED) == was) __atomic_store_n(&m->bt_seen, was + 1, __ATOMIC_RELAXED);
        if (blk_byte_held(m->bt_fd, F_OFD_GETLK, BB_PRESENT)) {
            blk_byte_lock(m->bt_fd, F_OFD_SETLK, F_UNLCK, BB_PENDING);
            pthread_mutex_unlock(&m->bt_lock);
            return 0;
        }
        m->bt_pend = 1;
        bc_answering(m);
        lg->magic = BL_MAGIC;
        atomic_store(&lg->n, 0);
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
    const char *slash = memrchr(f->key, '/', f->klen);
    f->bt_plen = slash ? (size_t)(slash - f->key) : 0;
    f->bt_phash = bm_key_hash(f->key, f->bt_plen);
    int n = m->bt_n + 1;
    log_file(&lg->rec[n - 1], f);
    atomic_store_explicit(&lg->n, (uint32_t)n, memory_order_release); /* (the record whole first) */
    f->bt_next = NULL;
    *m->bt_tail = f;
    m->bt_tail = &f->bt_next;
    __atomic_store_n(&m->bt_n, n, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&m->bt_lock);
    if (n == 1) bg_batch_due(m, stats_now_ns() + (uint64_t)m->batch_ms * 1000000ull);
    if (n >= BB_MAX) bb_flush(m);
    return 1;
}

/* Is f still to be committed (nothing has failed or detached it since its close)? */
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
    for (struct bfile *f = list, *prev = NULL; f && !e; f = f->bt_next, i++) {
        if (!live(f)) continue;
        /* (the directory's mtime is the commit's: set once for the files of one directory in a row) */
        int touch = !prev || prev->bt_plen != f->bt_plen || prev->bt_phash != f->bt_phash ||
                    memcmp(prev->key, f->key, f->bt_plen) != 0;
        int have = tx_get(t, f->key, f->klen, cur);
        e = have < 0 ? have : bf_commit_put(t, f, &o[i], cur, have, touch);
        prev = f;
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
    int failed = list ? commit_all(m, list) : 0;
    /* Zero only now: bb_enter reads the count without the lock, and a call that saw 0
     * while the commit was under way would look its name up before the commit. */
    __atomic_store_n(&m->bt_n, 0, __ATOMIC_RELAXED);
    if (list && m->bt_log) atomic_store(&m->bt_log->n, 0); /* (after the commit: see recover) */
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

void bb_last(void *arg)
{
    struct block_mount *m = arg;
    bb_flush(m);
    bb_enter(m, NULL, BB_KEY); /* (a process that never looked: what a killed one left) */
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
    m->bt_seen = UINT64_MAX; /* (the log's mapping is shared: kept, written only by a holder) */
}

void bb_unmount(struct block_mount *m)
{
    bb_last(m); /* (the unmount may remove the files in /dev/shm, the batch log with them) */
    m->st.vr_last = NULL;
    pthread_mutex_lock(&m->bt_lock); /* (the mount's threads stop after this) */
    if (m->bt_fd >= 0) efd_close(m->bt_fd);
    m->bt_fd = -1;
    if (m->bt_log) munmap(m->bt_log, sizeof *m->bt_log);
    m->bt_log = NULL;
    pthread_mutex_unlock(&m->bt_lock);
}
