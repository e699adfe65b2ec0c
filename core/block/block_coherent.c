/* block_coherent.c - what one process writes to an object, another process reads at
 * once, as on a disk, for descriptors that share a file that way.
 *
 * A writer keeps its writes in blocks of its own until its commit (close, fsync). That is
 * right for a file written and then closed, and wrong for programs that share one file
 * between processes without an fsync in between: sqlite in WAL mode appends frames to
 * the -wal, publishes them in the -shm mapping, and a reader in another process reads
 * them at once; with synchronous=NORMAL nobody ever fsyncs them before that. And jobs
 * in parallel append to one log (`>>`). So, for coherent descriptors (opened O_RDWR, as
 * sqlite opens every file, O_WRONLY without O_TRUNC or O_EXCL, or locked):
 *  - one with something uncommitted holds the key's dirty mark: an OFD read lock on a
 *    file of the key's own in the store's lock directory in /dev/shm;
 *  - one with nothing uncommitted, before each read, write, truncate and fstat, asks the
 *    kernel whether another open file holds the mark (one F_OFD_GETLK). If one does, it
 *    rings the store's bell (a futex word in /dev/shm, the key's hash in a slot beside
 *    it) and waits until the mark is gone or the key has a newer version; then it goes
 *    on from the newest version (block_share.c), so it reads what the other wrote;
 *  - every process holding a mark runs a thread asleep on the bell, which commits its
 *    marked files whose key was rung (visible, as a close commits);
 *  - every process with the key open coherently holds a presence lock (POSIX: the
 *    process's), and its open rings as a read does; a coherent descriptor never locked
 *    commits each write while another process is present, so that a writer killed the
 *    next moment has lost nothing others were told about (write_through), and does it
 *    under the key's write lock, from the newest version, so that writers in several
 *    processes at once all land (bf_write_begin; O_APPEND finds the end under it);
 *  - a forked child opens mark files of its own (bc_atfork_child).
 * A new file opened O_RDWR claims its name until its first commit (block_file.c). A
 * process that is stopped (SIGSTOP, a debugger) while it holds a mark makes readers
 * wait S3SHIM_BLOCK_SHARE_WAIT_MS, then fail with EIO and a log line naming the key; a
 * process that dies lets its marks go with its descriptors. docs/block-format.md,
 * "Writes seen before their commit". */
#include "block.h"
#include "bmount.h"
#include "bfile.h"

#include "../efd.h"
#include "../log.h"
#include "../stats.h"
#include "../sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BELL_SLOTS 32

struct bell {
    _Atomic uint32_t gen; /* the futex word: one more at each ring */
    uint32_t pad;
    _Atomic uint64_t next;              /* the slot the next ring writes */
    _Atomic uint64_t slot[BELL_SLOTS];  /* hashes of the keys rung last */
    /* One more after every dirty mark taken, and after every presence taken, in any
     * process: a file that found nobody else's at value v asks the kernel again only
     * once it moved (a system call saved per read and per write of a lone process). */
    _Atomic uint64_t marks, opens;
    _Atomic uint64_t batches; /* one more at every batch started (block_batch.c) */
};

/* The key's file in the lock directory, named as a key that no object can have (a NUL
 * inside) so that it is never a lock file of a key. */
static int key_file(struct block_mount *m, const char *key, size_t klen, const char *what, int acc)
{
    size_t wl = strlen(what);
    char *k = malloc(klen + wl + 1);
    if (!k) return -ENOMEM;
    memcpy(k, key, klen);
    k[klen] = '\0';
    memcpy(k + klen + 1, what, wl);
    int fd = blk_lockfile_open(&m->st, k, klen + 1 + wl, acc);
    free(k);
    return fd;
}

int bc_store_file(struct block_mount *m, const char *what) { return key_file(m, "", 0, what, O_RDWR); }

/* The mark file's descriptor of f, opened at first need (f->lock held); -1 if it cannot be. */
static int mark_fd(struct bfile *f)
{
    if (f->markfd >= 0 || f->markfd == -2) return f->markfd >= 0 ? f->markfd : -1;
    /* (read-write for the key's write lock; a file another user made may be read-only to us) */
    int fd = key_file(f->m, f->key, f->klen, "dirty", O_RDWR);
    if (fd == -EACCES) fd = key_file(f->m, f->key, f->klen, "dirty", O_RDONLY);
    if (fd < 0) {
        slog_error("block: %s: %s: cannot open its mark file in /dev/shm (%s): other processes do not see "
                   "this file's writes before its commit",
                   f->m->uri, f->key, strerror(-fd));
        f->markfd = -2;
        return -1;
    }
    f->markfd = efd_park(fd);
    return f->markfd;
}

/* Bytes of the mark file: the dirty mark (OFD locks: each open file's own), and the
 * presence of the processes that have the key open coherently (a classic POSIX lock: the
 * process's, so that a process's own other descriptors do not count, and dropped by the
 * kernel at any close of the file in the process: taken again, see bf_present_gone). */
#define MARK_DIRTY 0
#define MARK_OPEN 1
#define MARK_WRITE 2 /* the key's write lock (OFD): bf_write_begin */

static struct bell *bell_of(struct block_mount *m);

/* This process's presence on a key (then the count moves: after, never before). */
static void present(struct block_mount *m, int fd)
{
    blk_byte_lock(fd, F_SETLK, F_RDLCK, MARK_OPEN);
    struct bell *b = bell_of(m);
    if (b) atomic_fetch_add(&b->opens, 1);
}

/* Does another open file (in any process) hold the dirty mark? */
static int others_marked(int fd) { return blk_byte_held(fd, F_OFD_GETLK, MARK_DIRTY); }

int bf_copy_file(void *fh)
{
    struct bfile *f = fh;
    return key_file(f->m, f->key, f->klen, "copy", O_RDWR);
}

int bc_lock_bounded(struct block_mount *m, const char *name, int fd, off_t at, const char *what, const char *then)
{
    uint64_t start = stats_now_ns(), limit = (uint64_t)m->share_wait_ms * 1000000ull;
    for (unsigned pause = 50;; pause = pause < 5000 ? pause * 2 : 5000) {
        int e = blk_byte_lock(fd, F_OFD_SETLK, F_WRLCK, at);
        if (e != -EAGAIN && e != -EACCES) return e;
        if (stats_now_ns() - start >= limit) {
            slog_error("block: %s: %s: another process has held %s for %d ms (stopped?); %s", m->uri, name, what,
                       m->share_wait_ms, then);
            return -EIO;
        }
        usleep(pause);
    }
}

static int lock_bounded(struct bfile *f, int fd, off_t at, const char *what, const char *then)
{
    return bc_lock_bounded(f->m, f->key, fd, at, what, then);
}

int bf_copy_lock(void *fh, int fd, off_t at, const char *then)
{
    return lock_bounded(fh, fd, at, "its shared mapping's copy", then);
}

static void unmark_locked(struct bfile *f);

/* --- the bell ---------------------------------------------------------------------------- */

static struct bell *bell_of(struct block_mount *m)
{
    struct bell *b = __atomic_load_n(&m->bell, __ATOMIC_ACQUIRE);
    if (b) return b;
    pthread_mutex_lock(&m->r_lock);
    if (!m->bell) {
        int fd = key_file(m, "", 0, "bell", O_RDWR);
        void *p = MAP_FAILED;
        if (fd >= 0) {
            struct stat st;
            if (sys.fstat(fd, &st) == 0 && (st.st_size >= 4096 || sys.ftruncate(fd, 4096) == 0))
                p = sys.mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            sys.close(fd);
        }
        if (p == MAP_FAILED) slog_error("block: %s: cannot map the bell file in /dev/shm", m->uri);
        else __atomic_store_n(&m->bell, (struct bell *)p, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&m->r_lock);
    return m->bell;
}

static void ring(struct bell *b, uint64_t h)
{
    uint64_t i = atomic_fetch_add(&b->next, 1);
    atomic_store(&b->slot[i % BELL_SLOTS], h);
    atomic_fetch_add(&b->gen, 1);
    sys.syscall(SYS_futex, &b->gen, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int rung(struct bell *b, uint64_t h)
{
    for (int i = 0; i < BELL_SLOTS; i++)
        if (atomic_load(&b->slot[i]) == h) return 1;
    return 0;
}

/* Commit this process's marked files whose keys were rung (one that failed or was
 * unlinked only lets its mark go: its writes are never seen). The marked files are a
 * list of their own (m->mk), not the open files' list under nw_lock, which a thread may
 * hold while it waits for another process (truncate by name); a file whose lock is held
 * (by a thread writing through it) is come back to. */
static uint64_t batch_ring(void) { return bm_key_hash("\0batch", 6); } /* (no key holds a NUL) */

static void answer(struct block_mount *m, struct bell *b)
{
    if (__atomic_load_n(&m->bt_n, __ATOMIC_RELAXED) && rung(b, batch_ring())) bb_flush(m);
    uint64_t pass = ++m->mk_pass; /* each file once: it may be marked again at once */
    for (int busy = 1; busy && !__atomic_load_n(&m->r_stop, __ATOMIC_ACQUIRE);) {
        busy = 0;
        pthread_mutex_lock(&m->mk_lock);
        for (struct bfile *f = m->mk, *next; f; f = next) {
            next = f->mk_next; /* (a commit unmarks f: out of the list) */
            if (f->mk_pass == pass) continue;
            if (pthread_mutex_trylock(&f->lock) != 0) {
                busy = 1;
                continue;
            }
            f->mk_pass = pass;
            if (!rung(b, bm_key_hash(f->key, f->klen))) { /* (f->key: under f->lock) */
                pthread_mutex_unlock(&f->lock);
                continue;
            }
            if (f->dirty && !f->err && !f->detached && !f->closing) {
                pthread_mutex_unlock(&m->mk_lock); /* (bf_commit unmarks: it takes mk_lock) */
                int e = bf_commit(f, bg_how(m));
                if (e) slog_error("block: %s: committing %s for another process's read: %s", m->uri, f->key, strerror(-e));
                pthread_mutex_lock(&m->mk_lock);
                next = m->mk; /* the list may have changed meanwhile: from the start */
            }
            if (f->marked && (!f->dirty || f->err || f->detached)) unmark_locked(f);
            pthread_mutex_unlock(&f->lock);
        }
        pthread_mutex_unlock(&m->mk_lock);
        if (busy) usleep(200);
    }
}

static void *answerer(void *arg)
{
    struct block_mount *m = arg;
    struct bell *b = m->bell;
    while (!__atomic_load_n(&m->r_stop, __ATOMIC_ACQUIRE)) {
        uint32_t g = atomic_load(&b->gen);
        answer(m, b);
        if (atomic_load(&b->gen) == g) sys.syscall(SYS_futex, &b->gen, FUTEX_WAIT, g, NULL, NULL, 0);
    }
    return NULL;
}

/* This process's thread answering the bell, started with its first mark. */
static void start_answerer(struct block_mount *m)
{
    if (__atomic_load_n(&m->r_pid, __ATOMIC_ACQUIRE) == getpid() || !bell_of(m)) return;
    pthread_mutex_lock(&m->r_lock);
    if (m->r_pid != getpid()) {
        m->r_stop = 0;
        if (pthread_create(&m->r_thread, NULL, answerer, m) == 0) __atomic_store_n(&m->r_pid, getpid(), __ATOMIC_RELEASE);
        else slog_error("block: %s: no thread to answer other processes' reads; they wait for this process's commits", m->uri);
    }
    pthread_mutex_unlock(&m->r_lock);
}

void bc_answering(struct block_mount *m) { start_answerer(m); }

int bc_bell_ok(struct block_mount *m) { return bell_of(m) != NULL; }

uint64_t bc_batches(struct block_mount *m)
{
    struct bell *b = bell_of(m);
    return b ? atomic_load(&b->batches) : 0;
}

uint64_t bc_batch_started(struct block_mount *m)
{
    struct bell *b = bell_of(m);
    return b ? atomic_fetch_add(&b->batches, 1) : 0;
}

void bc_ring_batches(struct block_mount *m)
{
    struct bell *b = bell_of(m);
    if (b) ring(b, batch_ring());
}

void bc_stop(struct block_mount *m)
{
    pthread_mutex_lock(&m->r_lock);
    int on = m->r_pid == getpid();
    __atomic_store_n(&m->r_stop, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&m->r_lock);
    if (on) {
        /* The word moves first: a thread between its look at r_stop and its wait would
         * sleep through a wake alone (a crashtest hung at unmount so, once appenders
         * started the thread). Other processes' threads take one pass for nothing. */
        atomic_fetch_add(&m->bell->gen, 1);
        sys.syscall(SYS_futex, &m->bell->gen, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
        pthread_join(m->r_thread, NULL);
    }
    m->r_pid = 0;
    if (m->bell) munmap(m->bell, 4096);
    m->bell = NULL;
    pthread_mutex_destroy(&m->r_lock);
    pthread_mutex_destroy(&m->mk_lock);
}

void bc_atfork_child(struct block_mount *m)
{
    pthread_mutex_init(&m->r_lock, NULL); /* the thread is the parent's: r_pid tells */
    pthread_mutex_init(&m->mk_lock, NULL);
    /* The mark files' descriptions are the parent's: a dirty mark (an OFD lock) taken
     * through one would be one with the parent's, so neither would see the other's, and
     * the presence (a POSIX lock) is not inherited at all. A file that both go on writing
     * after a fork (a child writing through a descriptor it inherited, the parent reading)
     * lost the parent's writes. The child opens mark files of its own and takes its
     * presence: from now on the two are two processes with the key open, as in the
     * kernel. All are closed first: a close drops the process's POSIX locks on the file. */
    m->mk = NULL;
    for (struct bfile *f = m->nw; f; f = f->nw_next) {
        f->marked = 0; /* (the parent's mark) */
        f->mk_next = NULL;
        f->mk_pprev = NULL;
        f->marks_seen = f->opens_seen = UINT64_MAX;
        if (f->markfd >= 0) {
            efd_close(f->markfd);
            f->markfd = -3;
        }
    }
    for (struct bfile *f = m->nw; f; f = f->nw_next) {
        if (f->markfd != -3) continue;
        f->markfd = -1;
        int fd = mark_fd(f);
        if (fd >= 0) present(m, fd);
    }
}

/* --- the files ---------------------------------------------------------------------------- */

/* Take f's mark (whether or not f has anything uncommitted yet). */
static void mark(struct bfile *f)
{
    int fd = mark_fd(f);
    if (fd < 0) return;
    start_answerer(f->m);
    if (blk_byte_lock(fd, F_OFD_SETLK, F_RDLCK, MARK_DIRTY) < 0) return;
    struct block_mount *m = f->m;
    struct bell *b = bell_of(m);
    if (b) atomic_fetch_add(&b->marks, 1); /* (after the mark) */
    pthread_mutex_lock(&m->mk_lock);
    f->marked = 1;
    f->mk_next = m->mk;
    if (m->mk) m->mk->mk_pprev = &f->mk_next;
    f->mk_pprev = &m->mk;
    m->mk = f;
    pthread_mutex_unlock(&m->mk_lock);
}

void bf_mark(struct bfile *f)
{
    if (!f->marked && bf_coherent(f) && f->dirty) mark(f);
}

/* mk_lock held */
static void unmark_locked(struct bfile *f)
{
    blk_byte_lock(f->markfd, F_OFD_SETLK, F_UNLCK, MARK_DIRTY);
    *f->mk_pprev = f->mk_next;
    if (f->mk_next) f->mk_next->mk_pprev = f->mk_pprev;
    f->mk_pprev = NULL;
    f->marked = 0;
}

/* (f->marked changes under mk_lock only: so at a close, once this returns, the thread
 * answering the bell holds neither f nor its lock, and cannot find it again) */
void bf_unmark(struct bfile *f)
{
    pthread_mutex_lock(&f->m->mk_lock);
    if (f->marked) unmark_locked(f);
    pthread_mutex_unlock(&f->m->mk_lock);
}

void bf_mark_moved(struct bfile *f)
{
    if (f->markfd < 0) return;
    bf_unmark(f);
    efd_close(f->markfd); /* (and its presence) */
    f->markfd = -1;
    int fd = mark_fd(f);
    if (fd >= 0) present(f->m, fd);
    bf_mark(f); /* (if it has something uncommitted) */
}

int bf_present(struct bfile *f)
{
    int fd = mark_fd(f);
    if (fd < 0) return 0;
    present(f->m, fd);
    return bf_see_others(f);
}

void bf_present_gone(struct block_mount *m, const char *key)
{
    pthread_mutex_lock(&m->nw_lock);
    for (struct bfile *f = m->nw; f; f = f->nw_next)
        if (f->markfd >= 0 && strcmp(f->key, key) == 0) {
            present(m, f->markfd);
            break;
        }
    pthread_mutex_unlock(&m->nw_lock);
}

/* Has another process f's key open (coherently)? */
static int others_present(struct bfile *f)
{
    struct bell *b = bell_of(f->m);
    uint64_t v = b ? atomic_load(&b->opens) : 0;
    if (b && v == f->opens_seen) return 0; /* alone then, and nobody came since */
    if (!blk_byte_held(f->markfd, F_GETLK, MARK_OPEN)) {
        if (b) f->opens_seen = v;
        return 0;
    }
    return 1;
}

/* Why through, not at the commit only: a program sharing a file without locks publishes
 * what it wrote through memory (sqlite's -shm) and may be killed the next moment; a
 * write not committed then is lost while the others read on as if it were there
 * (sqlite in WAL mode with synchronous=NORMAL: its wal-index pointing at frames the -wal
 * never got, which a checkpoint copies into the database). A program that locks says
 * when others may look, and commits (fsyncs) before it lets them. */
static int write_through(struct bfile *f)
{
    if (!bf_writes_through(f) || !f->dirty || f->markfd < 0) return 0;
    return others_present(f) ? bf_commit(f, bg_how(f->m)) : 0;
}

/* Why a lock: two processes writing one object through O_RDWR descriptors at once (a
 * parent and its forked workers each writing their own part of one output file) each
 * committed its write onto the version it had followed before writing, and the later
 * commit dropped what the other had committed meanwhile: most of the parts were lost.
 * Under the key's write lock a writer follows the newest version, writes and commits
 * (write_through) before the next one starts, as writes to one file in the kernel are.
 * A writer that finds itself alone takes its mark and looks again, so that a process
 * opening the key just then either sees the mark (and waits for this write's commit) or
 * is seen present (an opener counts itself present before it looks for marks). A writer
 * among others takes no mark before its write: readers would wait for it. */
int bf_write_begin(struct bfile *f, int *held)
{
    *held = 0;
    if (!bf_writes_through(f) || f->markfd < 0 || f->err) return bf_follow_shared(f);
    if (!others_present(f)) {
        if (!f->marked) mark(f);
        if (!others_present(f)) return bf_follow_shared(f); /* (alone: the count has not moved since the mark) */
    }
    pthread_mutex_unlock(&f->lock); /* (this process's answering thread may need it meanwhile) */
    pthread_mutex_lock(&f->wlock);  /* one thread of the process at a time: the lock is the description's */
    int e = lock_bounded(f, f->markfd, MARK_WRITE, "its write lock", "this write fails (EIO)");
    if (e) pthread_mutex_unlock(&f->wlock);
    pthread_mutex_lock(&f->lock);
    if (e == -EBADF) return bf_follow_shared(f); /* a mark file we may only read: as before the lock */
    if (e) return e;
    *held = 1;
    return bf_follow_shared(f);
}

void bf_write_end(struct bfile *f, int held)
{
    if (!held) return;
    blk_byte_lock(f->markfd, F_OFD_SETLK, F_UNLCK, MARK_WRITE);
    pthread_mutex_unlock(&f->wlock);
}

int bf_changed(struct bfile *f, int e)
{
    bf_mark(f);
    return e ? e : write_through(f);
}

/* The committed version's generation of f's key (0: none), or -errno. */
static int64_t key_gen(struct bfile *f, struct blk_obj *o)
{
    int r = bt_get(&f->m->st, f->key, f->klen, o, NULL);
    return r < 0 ? r : r == 1 ? (int64_t)o->gen : 0;
}

int bf_see_others(struct bfile *f)
{
    if (!bf_coherent(f) || f->dirty || f->err) return 0;
    int fd = mark_fd(f);
    if (fd < 0) return 0;
    struct bell *b = bell_of(f->m);
    uint64_t v = b ? atomic_load(&b->marks) : 0;
    if (b && v == f->marks_seen) return 0; /* nobody's mark then, and none taken since */
    if (!others_marked(fd)) {
        if (b) f->marks_seen = v;
        return 0;
    }
    if (!b) return 0;
    struct blk_obj *o = malloc(sizeof *o);
    if (!o) return -ENOMEM;
    int64_t g0 = key_gen(f, o);
    uint64_t h = bm_key_hash(f->key, f->klen), start = stats_now_ns(), rang = start;
    uint64_t limit = (uint64_t)f->m->share_wait_ms * 1000000ull;
    ring(b, h);
    int e = 0;
    for (unsigned pause = 20; g0 >= 0; pause = pause < 2000 ? pause * 2 : 2000) {
        usleep(pause);
        if (!others_marked(fd)) break;
        int64_t g = key_gen(f, o);
        if (g < 0 || g != g0) break; /* newer: what was written before the ring is in it */
        uint64_t now = stats_now_ns();
        if (now - start >= limit) {
            slog_error("block: %s: %s: another process has written it and did not commit in %d ms (stopped?); "
                       "this open file cannot see those writes (EIO)",
                       f->m->uri, f->key, f->m->share_wait_ms);
            e = -EIO;
            break;
        }
        if (now - rang >= 20000000ull) { /* (its thread was committing, or it wrote again) */
            ring(b, h);
            rang = now;
        }
    }
    free(o);
    return e;
}
