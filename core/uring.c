/* uring.c - see uring.h */
#include "uring.h"

#include "bufpool.h"
#include "efd.h"
#include "log.h"
#include "stats.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_RINGS 64
#define MAX_TRIES 1000 /* -EAGAIN/-EINTR resubmissions of one request */

enum { ST_BUSY = 0, ST_WAITED = 1, ST_DONE = 2 };

struct ring {
    struct io_uring ring;
    pthread_mutex_t sq_lock; /* submitters (callers, and the thread's own retries) */
    pthread_t thr;
    int up;
    int nthreads;
    _Atomic int running; /* threads in their loop */
    /* without io_uring (E.threaded): the queue the pool's threads serve, under sq_lock */
    pthread_cond_t cv;
    struct uio *qh, *qt;
};

static struct {
    pthread_mutex_t lock; /* start-up and the buffer slots */
    struct uring_settings set;
    int configured;
    _Atomic int running; /* rings and threads exist */
    int start_err;       /* the engine failed to start: every request fails with it */
    int threaded;        /* no io_uring: each ring is a queue served by a pool of threads */
    struct ring rings[MAX_RINGS];
    int nrings;
    _Atomic unsigned rr;
    /* the registered arena */
    void *arena_raw;
    size_t arena_rawlen;
    char *arena;
    int nslots, registered;
    int sparse;               /* the rings hold a sparse table: slots registered at first use */
    signed char *slot_reg;    /* per slot, sparse: 0 not yet, 1 registered on every ring, -1 failed */
    unsigned char *slot_used;
    int slots_free;
    _Atomic unsigned generation;
    int table_ready; /* efd_prepare() done (survives fork) */
} E = {.lock = PTHREAD_MUTEX_INITIALIZER};

static __thread int my_ring = -1;

void uring_configure(const struct uring_settings *s)
{
    pthread_mutex_lock(&E.lock);
    if (!E.configured) {
        E.set = *s;
        if (E.set.threads < 1) E.set.threads = 1;
        if (E.set.threads > MAX_RINGS) E.set.threads = MAX_RINGS;
        if (E.set.entries < 8) E.set.entries = 8;
        E.configured = 1;
    }
    pthread_mutex_unlock(&E.lock);
}

int uring_running(void) { return atomic_load(&E.running); }
const char *uring_engine_name(void) { return E.threaded ? "threads" : "io_uring"; }
unsigned uring_generation(void) { return atomic_load_explicit(&E.generation, memory_order_relaxed); }

static long futex(_Atomic uint32_t *a, int op, uint32_t v)
{
    return sys.syscall(SYS_futex, (uint32_t *)a, op, v, NULL, NULL, 0);
}

/* --- completions ------------------------------------------------------------------- */

static void prep(struct io_uring_sqe *sqe, struct uio *u)
{
    char *b = u->buf + u->done;
    unsigned n = (unsigned)(u->len - u->done);
    off_t o = u->off + (off_t)u->done;
    switch (u->op) {
    case UIO_READ:
        if (u->buf_index >= 0)
            io_uring_prep_read_fixed(sqe, u->fd, b, n, (uint64_t)o, u->buf_index);
        else
            io_uring_prep_read(sqe, u->fd, b, n, (uint64_t)o);
        break;
    case UIO_WRITE:
        if (u->buf_index >= 0)
            io_uring_prep_write_fixed(sqe, u->fd, b, n, (uint64_t)o, u->buf_index);
        else
            io_uring_prep_write(sqe, u->fd, b, n, (uint64_t)o);
        break;
    default:
        io_uring_prep_fsync(sqe, u->fd, IORING_FSYNC_DATASYNC);
        break;
    }
    io_uring_sqe_set_data(sqe, u);
}

/* Put u in r's submission queue (sq_lock held), making room if the queue is full. */
static int push(struct ring *r, struct uio *u)
{
    if (E.threaded) {
        u->next = NULL;
        if (r->qt) r->qt->next = u;
        else r->qh = u;
        r->qt = u;
        atomic_fetch_add_explicit(&u->pub, 1, memory_order_release);
        pthread_cond_signal(&r->cv);
        return 0;
    }
    struct io_uring_sqe *sqe;
    int spins = 0;
    while (!(sqe = io_uring_get_sqe(&r->ring))) {
        int s = io_uring_submit(&r->ring);
        if (s < 0 && s != -EAGAIN && s != -EBUSY && s != -EINTR) return s;
        if (s <= 0 && ++spins > 2) usleep(50); /* the completion queue is full: let it drain */
    }
    prep(sqe, u);
    atomic_fetch_add_explicit(&u->pub, 1, memory_order_release);
    return 0;
}

/* Hand everything queued to the kernel (sq_lock held). */
static int flush(struct ring *r)
{
    if (E.threaded) return 0; /* the pool's threads are already woken */
    int tries = 0;
    while (io_uring_sq_ready(&r->ring) > 0) {
        int s = io_uring_submit(&r->ring);
        if (s >= 0) continue;
        if ((s != -EAGAIN && s != -EBUSY && s != -EINTR) || ++tries > 100000) return s;
        usleep(20);
    }
    return 0;
}

static void complete(struct uio *u, ssize_t res)
{
    u->res = res;
    if (u->stats) {
        enum stats_kind k = u->op == UIO_READ ? STK_READ : u->op == UIO_WRITE ? STK_WRITE : STK_SYNC;
        stats_record(u->stats, k, u->t0, res > 0 ? (uint64_t)res : 0, res < 0);
    }
    if (u->depth) atomic_fetch_sub_explicit(&u->depth->cur, 1, memory_order_relaxed);
    /* After this store the waiter may free u: touch nothing of it but the futex word. */
    if (atomic_exchange_explicit(&u->state, ST_DONE, memory_order_acq_rel) == ST_WAITED)
        futex(&u->state, FUTEX_WAKE_PRIVATE, INT_MAX);
}

static void resubmit(struct ring *r, struct uio *u)
{
    pthread_mutex_lock(&r->sq_lock);
    int e = push(r, u);
    if (e == 0) e = flush(r);
    pthread_mutex_unlock(&r->sq_lock);
    if (e < 0) complete(u, u->done ? (ssize_t)u->done : e);
}

/* One more request in flight in a group: the queue depth it sees (max and mean). */
static void depth_enter(struct uring_depth *d)
{
    if (!d) return;
    int c = atomic_fetch_add_explicit(&d->cur, 1, memory_order_relaxed) + 1;
    int m = atomic_load_explicit(&d->max, memory_order_relaxed);
    while (c > m && !atomic_compare_exchange_weak(&d->max, &m, c)) {
    }
    atomic_fetch_add_explicit(&d->samples, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&d->sum, (uint64_t)c, memory_order_relaxed);
}

/* What a completion with result res means for request u, on either kind of ring:
 * returns 1 if the request must go again (-EAGAIN, -EINTR, or a short transfer whose
 * rest is still to move: a read at EOF then gets 0), else completes it and returns 0. */
static int settle(struct uio *u, int res)
{
    if ((res == -EAGAIN || res == -EINTR) && ++u->tries < MAX_TRIES) {
        if (res == -EAGAIN && u->tries > 8) usleep(100);
        return 1;
    }
    if (u->op == UIO_FSYNC) {
        complete(u, res < 0 ? res : 0);
        return 0;
    }
    if (res < 0) {
        /* a read that got bytes before failing returns them, as read(2) would; a write's
         * caller must see the error, whatever was written before it */
        complete(u, u->op == UIO_READ && u->done ? (ssize_t)u->done : res);
        return 0;
    }
    u->done += (size_t)res;
    if (res > 0 && u->done < u->len && u->done % u->align == 0) return 1;
    complete(u, (ssize_t)u->done);
    return 0;
}

static void on_cqe(struct ring *r, struct uio *u, int res)
{
    /* The kernel orders the submitter's writes before the completion; this makes that
     * visible to the sanitizers too (pairs with the release in push). */
    (void)atomic_load_explicit(&u->pub, memory_order_acquire);
    if (settle(u, res)) resubmit(r, u);
}

static void *ring_main(void *arg)
{
    struct ring *r = arg;
    efd_engine_thread();
    atomic_store(&r->running, 1);
    for (;;) {
        struct io_uring_cqe *cqe;
        int e = io_uring_wait_cqe(&r->ring, &cqe);
        if (e == -EINTR || e == -EAGAIN || e == -ETIME) continue;
        if (e < 0) {
            slog_error("direct: io_uring wait failed: %s", strerror(-e));
            usleep(1000);
            continue;
        }
        unsigned head, n = 0;
        io_uring_for_each_cqe(&r->ring, head, cqe)
        {
            struct uio *u = io_uring_cqe_get_data(cqe);
            int res = cqe->res;
            n++;
            if (u) on_cqe(r, u, res);
        }
        io_uring_cq_advance(&r->ring, n);
    }
    return NULL;
}

/* --- the thread pool, where there is no io_uring ---------------------------------------- */

/* What the kernel would have done for u's next step, done with a plain system call. */
static int pool_do(struct uio *u)
{
    char *b = u->buf + u->done;
    size_t n = u->len - u->done;
    off_t o = u->off + (off_t)u->done;
    ssize_t r = u->op == UIO_READ    ? sys.pread(u->fd, b, n, o)
                : u->op == UIO_WRITE ? sys.pwrite(u->fd, b, n, o)
                                     : (ssize_t)sys.fdatasync(u->fd);
    return r < 0 ? -errno : (int)r;
}

static void *pool_main(void *arg)
{
    struct ring *r = arg;
    efd_engine_thread();
    atomic_fetch_add(&r->running, 1);
    for (;;) {
        pthread_mutex_lock(&r->sq_lock);
        while (!r->qh) pthread_cond_wait(&r->cv, &r->sq_lock);
        struct uio *u = r->qh;
        r->qh = u->next;
        if (!r->qh) r->qt = NULL;
        pthread_mutex_unlock(&r->sq_lock);
        on_cqe(r, u, pool_do(u));
    }
    return NULL;
}

/* --- start-up ------------------------------------------------------------------------ */

static int arena_setup(void)
{
    size_t ss = E.set.slot_size;
    if (E.arena_raw) { /* a forked child keeps its copy of the parent's arena */
        memset(E.slot_used, 0, (size_t)E.nslots);
        E.slots_free = E.nslots;
        return 0;
    }
    E.nslots = E.set.slots;
    if (!ss || E.nslots <= 0) return 0;
    E.arena_rawlen = ss * (size_t)E.nslots + 4096;
    E.arena_raw = bufpool_get(E.arena_rawlen, 0);
    E.slot_used = calloc((size_t)E.nslots, 1);
    E.slot_reg = calloc((size_t)E.nslots, 1);
    if (!E.arena_raw || !E.slot_used || !E.slot_reg) {
        if (E.arena_raw) bufpool_put(E.arena_raw, E.arena_rawlen);
        free(E.slot_used);
        free(E.slot_reg);
        E.arena_raw = NULL;
        E.slot_used = NULL;
        E.slot_reg = NULL;
        E.nslots = 0;
        return 0; /* every buffer comes from the pool, unregistered */
    }
    E.arena = (char *)(((uintptr_t)E.arena_raw + 4095) & ~(uintptr_t)4095);
    E.slots_free = E.nslots;
    return 0;
}

static int ring_setup(struct ring *r)
{
    if (E.threaded) {
        r->ring.ring_fd = r->ring.enter_ring_fd = -1;
        pthread_mutex_init(&r->sq_lock, NULL);
        pthread_cond_init(&r->cv, NULL);
        r->qh = r->qt = NULL;
        return 0;
    }
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    if (E.set.sqpoll) {
        p.flags |= IORING_SETUP_SQPOLL;
        p.sq_thread_idle = 50;
    }
    int e = io_uring_queue_init_params(E.set.entries, &r->ring, &p);
    if (e < 0) return e;
    /* The ring's descriptor belongs to the engine: high in the table, out of the
     * program's reach (closefrom, dup2). */
    int fd = efd_park(r->ring.ring_fd);
    r->ring.ring_fd = r->ring.enter_ring_fd = fd;
    pthread_mutex_init(&r->sq_lock, NULL);
    /* A sparse table costs nothing now; each slot is registered (its pages pinned) when
     * first handed out (ubuf_get). Registering the whole arena here pinned, and so
     * faulted in, every slot: ~11 ms for 32 MiB in every process that opened a file,
     * for slots most never use. Kernels before 5.19 register it whole, as before. */
    if (E.nslots && (E.sparse || r == &E.rings[0])) {
        int re = io_uring_register_buffers_sparse(&r->ring, (unsigned)E.nslots);
        if (re == 0) {
            E.sparse = 1;
            E.registered = 1;
            return 0;
        }
        if (E.sparse) { /* the rings must agree: none of them uses registered buffers */
            slog_info("direct: a sparse buffer table failed on a second ring: %s", strerror(-re));
            E.registered = -1;
            return 0;
        }
    }
    if (E.nslots) {
        struct iovec *iov = calloc((size_t)E.nslots, sizeof *iov);
        if (iov) {
            for (int i = 0; i < E.nslots; i++)
                iov[i] = (struct iovec){E.arena + (size_t)i * E.set.slot_size, E.set.slot_size};
            int re = io_uring_register_buffers(&r->ring, iov, (unsigned)E.nslots);
            free(iov);
            if (re < 0) {
                if (E.registered) { /* the rings must agree on what is registered */
                    slog_info("direct: registering buffers failed on a second ring: %s", strerror(-re));
                    io_uring_unregister_buffers(&E.rings[0].ring);
                }
                E.registered = -1;
                slog_info("direct: io_uring buffers not registered (%s); using plain reads and writes",
                          strerror(-re));
            } else if (E.registered == 0) {
                E.registered = 1;
            }
        }
    }
    return 0;
}

/* Set ring r up and start its thread (io_uring) or its pool's threads: 0 or -errno. */
static int ring_start(struct ring *r)
{
    int e = ring_setup(r);
    if (e < 0) return e;
    int want = E.threaded ? URING_POOL_WORKERS : 1;
    r->nthreads = 0;
    for (int k = 0; k < want; k++) {
        e = -pthread_create(&r->thr, NULL, E.threaded ? pool_main : ring_main, r);
        if (e < 0) break;
        pthread_detach(r->thr);
        r->nthreads++;
    }
    if (!r->nthreads) {
        efd_close(r->ring.ring_fd);
        return e;
    }
    r->up = 1;
    return 0;
}

static int start_locked(void)
{
    if (E.start_err) return E.start_err;
    if (!E.configured) {
        E.set = (struct uring_settings){.threads = 2, .entries = 256, .slot_size = 1 << 20, .slots = 32};
        E.configured = 1;
    }
    /* Grow the fd table once per process lineage: a forked child has its parent's. */
    if (!E.table_ready) efd_prepare();
    E.table_ready = 1;
    arena_setup();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the program's signals are not ours */
    int e = 0;
    E.threaded = E.set.engine == URING_ENGINE_THREADS;
    if (E.set.engine == URING_ENGINE_AUTO && sys_under_valgrind()) {
        /* valgrind cannot see the kernel write into a buffer behind an io_uring request,
         * and 3.19 runs no other thread while one waits in io_uring_enter: it hangs */
        slog_info("direct: running under valgrind: direct:// and block:// use threads with pread/pwrite, not io_uring");
        E.threaded = 1;
    }
    for (int i = 0; i < E.set.threads && !e; i++) {
        struct ring *r = &E.rings[i];
        e = ring_start(r);
        if (e < 0 && i == 0 && !E.threaded && E.set.engine == URING_ENGINE_AUTO) {
            slog_info("direct: io_uring is not available (%s: a seccomp profile such as a container's default, or "
                      "kernel.io_uring_disabled); direct:// and block:// use %d threads with pread/pwrite instead, "
                      "more slowly (S3SHIM_DIRECT_ENGINE)",
                      strerror(-e), E.set.threads * URING_POOL_WORKERS);
            E.threaded = 1;
            E.registered = 0;
            E.sparse = 0;
            e = ring_start(r);
        }
        if (e < 0) break;
        E.nrings++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* Return only once every thread is idle in its loop: a thread still setting itself
     * up (allocating, under sanitizers too) while the program forks would leave the
     * child with a lock nobody will release. */
    for (int i = 0; i < E.nrings; i++)
        for (int spins = 0; atomic_load(&E.rings[i].running) < E.rings[i].nthreads && spins < 100000; spins++)
            usleep(20);
    if (E.registered < 0) {
        for (int i = 0; i < E.nrings && !E.threaded; i++) io_uring_unregister_buffers(&E.rings[i].ring);
        E.registered = 0;
    }
    if (!E.nrings) {
        E.start_err = e ? e : -ENOMEM;
        slog_error("direct: cannot start the I/O engine (%s): %s", E.threaded ? "threads" : "io_uring",
                   strerror(-E.start_err));
        return E.start_err;
    }
    atomic_store(&E.running, 1);
    return 0;
}

int uring_start(void)
{
    if (__builtin_expect(atomic_load_explicit(&E.running, memory_order_acquire), 1)) return 0;
    pthread_mutex_lock(&E.lock);
    int e = atomic_load(&E.running) ? 0 : start_locked();
    pthread_mutex_unlock(&E.lock);
    return e;
}

/* --- requests ---------------------------------------------------------------------- */

int uring_submit(struct uio *const *v, int n)
{
    int e = uring_start();
    if (e < 0) return e;
    if (my_ring < 0 || my_ring >= E.nrings) my_ring = (int)(atomic_fetch_add(&E.rr, 1) % (unsigned)E.nrings);
    struct ring *r = &E.rings[my_ring];
    uint64_t t0 = stats_now_ns();
    for (int i = 0; i < n; i++) {
        struct uio *u = v[i];
        u->done = 0;
        u->tries = 0;
        u->res = 0;
        u->t0 = t0;
        if (!u->align) u->align = 512;
        if (u->buf_index >= 0 && !E.registered) u->buf_index = -1;
        /* release: the ring's thread reads the request after an acquire of this word */
        atomic_store_explicit(&u->state, ST_BUSY, memory_order_release);
        depth_enter(u->depth);
    }
    pthread_mutex_lock(&r->sq_lock);
    for (int i = 0; i < n && !e; i++) {
        e = push(r, v[i]);
        if (e < 0) /* nothing of v[i..] is queued */
            for (int j = i; j < n; j++) complete(v[j], e);
    }
    int f = flush(r);
    pthread_mutex_unlock(&r->sq_lock);
    if (f < 0) slog_error("direct: io_uring submission failed: %s", strerror(-f));
    return 0;
}

int uring_done(struct uio *u) { return atomic_load_explicit(&u->state, memory_order_acquire) == ST_DONE; }

ssize_t uring_wait(struct uio *u)
{
    uint32_t s = atomic_load_explicit(&u->state, memory_order_acquire);
    while (s != ST_DONE) {
        if (s == ST_BUSY && !atomic_compare_exchange_strong(&u->state, &s, ST_WAITED)) continue;
        futex(&u->state, FUTEX_WAIT_PRIVATE, ST_WAITED);
        s = atomic_load_explicit(&u->state, memory_order_acquire);
    }
    return u->res;
}

/* A request its caller waits for at once is made by the caller itself, with a plain
 * system call: handing it to a ring's thread adds two thread switches, and even a ring
 * of the caller's own (submitted and reaped in one io_uring_enter, the way fio's
 * io_uring engine runs at iodepth 1, which this replaced) costs more CPU per request
 * than pread/pwrite on the O_DIRECT descriptor: 4 KiB random reads from 4 threads on a
 * loop device in memory, 8.1-12.6 us per read against 11.4-14.0 (bench/RESULTS.md). */
static ssize_t run_here(struct uio *u)
{
    u->done = 0;
    u->tries = 0;
    u->t0 = stats_now_ns();
    if (!u->align) u->align = 512;
    depth_enter(u->depth);
    atomic_store_explicit(&u->state, ST_BUSY, memory_order_relaxed);
    while (settle(u, pool_do(u))) {
    }
    return u->res;
}

ssize_t uring_run(struct uio *u)
{
    int e = uring_start();
    if (e < 0) return e;
    if (!E.set.sqpoll) return run_here(u); /* (with a polling kernel thread: the ring) */
    e = uring_submit(&u, 1);
    return e < 0 ? e : uring_wait(u);
}

/* --- buffers ------------------------------------------------------------------------- */

/* Slot i into every ring's sparse table, once per process: 1, or -1 (then that slot is
 * used with plain reads and writes). */
static int slot_register(int i, char *p)
{
    pthread_mutex_lock(&E.lock);
    if (!E.slot_reg[i]) {
        struct iovec iov = {p, E.set.slot_size};
        int ok = 1;
        for (int k = 0; k < E.nrings && ok; k++) {
            int re = io_uring_register_buffers_update_tag(&E.rings[k].ring, (unsigned)i, &iov, NULL, 1);
            if (re < 0) {
                slog_info("direct: registering buffer %d failed: %s; it is used unregistered", i, strerror(-re));
                ok = 0;
            }
        }
        E.slot_reg[i] = ok ? 1 : -1;
    }
    int r = E.slot_reg[i];
    pthread_mutex_unlock(&E.lock);
    return r;
}

int ubuf_get(struct ubuf *b, size_t len, int wait)
{
    memset(b, 0, sizeof *b);
    b->index = -1;
    int e = uring_start();
    if (e < 0) return e;
    if (len <= E.set.slot_size && E.nslots) {
        pthread_mutex_lock(&E.lock);
        if (E.slots_free > 0)
            for (int i = 0; i < E.nslots; i++)
                if (!E.slot_used[i]) {
                    E.slot_used[i] = 1;
                    E.slots_free--;
                    b->index = i;
                    break;
                }
        pthread_mutex_unlock(&E.lock);
        if (b->index >= 0) {
            b->p = E.arena + (size_t)b->index * E.set.slot_size;
            b->len = E.set.slot_size;
            if (E.registered <= 0 || (E.sparse && slot_register(b->index, b->p) < 0)) b->index = -2; /* plain I/O */
            return 0;
        }
    }
    size_t rl = len + 4096;
    void *raw = bufpool_get(rl, wait);
    if (!raw) return -ENOMEM;
    b->raw = raw;
    b->rawlen = rl;
    b->p = (char *)(((uintptr_t)raw + 4095) & ~(uintptr_t)4095);
    b->len = len;
    return 0;
}

void ubuf_put(struct ubuf *b)
{
    if (b->raw) {
        bufpool_put(b->raw, b->rawlen);
    } else if (b->p && E.arena && b->p >= E.arena) {
        int i = (int)((size_t)(b->p - E.arena) / E.set.slot_size);
        pthread_mutex_lock(&E.lock);
        if (i < E.nslots && E.slot_used[i]) {
            E.slot_used[i] = 0;
            E.slots_free++;
        }
        pthread_mutex_unlock(&E.lock);
    }
    memset(b, 0, sizeof *b);
    b->index = -1;
}

/* --- fork ---------------------------------------------------------------------------- */

void uring_atfork_child(void)
{
    /* The parent's threads did not follow; its rings' memory is shared with it and must
     * not be touched here: close our copies of the descriptors, leave the mappings. The
     * arena is a private copy: every slot is free again (files forget theirs by the
     * generation), and is registered again with the new rings. */
    pthread_mutex_init(&E.lock, NULL);
    atomic_fetch_add(&E.generation, 1);
    my_ring = -1;
    if (!atomic_load(&E.running)) return;
    for (int i = 0; i < E.nrings; i++) {
        efd_close(E.rings[i].ring.ring_fd);
        memset((void *)&E.rings[i], 0, sizeof E.rings[i]);
    }
    E.nrings = 0;
    E.registered = 0;
    E.sparse = 0;
    if (E.slot_reg) memset(E.slot_reg, 0, (size_t)E.nslots);
    if (E.slot_used) memset(E.slot_used, 0, (size_t)E.nslots);
    E.slots_free = E.nslots;
    atomic_store(&E.running, 0);
}

void uring_depth_format(const struct uring_depth *d, char *buf, size_t len)
{
    uint64_t n = atomic_load(&d->samples), s = atomic_load(&d->sum);
    snprintf(buf, len, "max %d, mean %.1f", atomic_load(&d->max), n ? (double)s / (double)n : 0.0);
}
