/* fdtable.c - see fdtable.h */
#include "fdtable.h"
#include "../core/oplog.h"

#include "ofd.h"

#include <pthread.h>
#include <stdlib.h>

_Atomic(struct ofd *) fdt_chunk0[FDT_CHUNK];
_Atomic(_Atomic(struct ofd *) *) fdt_chunks[FDT_CHUNKS] = {fdt_chunk0};
_Atomic unsigned fdt_used;
_Atomic unsigned fdt_nofd;
_Atomic uint64_t fdt_filter_used;
_Atomic uint64_t fdt_filter_ours;
static _Atomic int fdt_max;
static _Atomic int fdt_omax; /* the same for slots that held a description (not a mark) */
/* The filters' counts of slots per remainder modulo 64, and the spin lock that keeps a
 * count and its bit in step. Slots change under fdt_rw, but engine marks change without
 * it (fdt_mark_engine), so the two kinds of change can meet on one remainder: without the
 * lock, a count going 1 -> 0 and another going 0 -> 1 could leave the bit clear. The lock
 * is innermost (nothing is taken while it is held). */
static unsigned filter_used_n[64], filter_ours_n[64];
static atomic_flag filter_lock = ATOMIC_FLAG_INIT;
static pthread_rwlock_t fdt_rw = PTHREAD_RWLOCK_INITIALIZER;

static _Atomic(struct ofd *) *slot(int fd, int create)
{
    if (fd < 0 || (unsigned)fd >= FDT_CHUNK * FDT_CHUNKS) return NULL;
    unsigned ci = (unsigned)fd >> FDT_CHUNK_BITS;
    _Atomic(struct ofd *) *c = atomic_load_explicit(&fdt_chunks[ci], memory_order_acquire);
    if (!c && create) {
        c = calloc(FDT_CHUNK, sizeof *c);
        if (!c) return NULL;
        atomic_store_explicit(&fdt_chunks[ci], c, memory_order_release);
    }
    return c ? &c[(unsigned)fd & (FDT_CHUNK - 1)] : NULL;
}

static void filter_lock_take(void)
{
    while (atomic_flag_test_and_set_explicit(&filter_lock, memory_order_acquire)) {
    }
}
static void filter_lock_drop(void) { atomic_flag_clear_explicit(&filter_lock, memory_order_release); }

/* One slot of remainder r went from (used, ours) to (used2, ours2); each is 0 or 1. */
static void filter_change(unsigned r, int used, int ours, int used2, int ours2)
{
    if (used == used2 && ours == ours2) return;
    uint64_t bit = (uint64_t)1 << r;
    filter_lock_take();
    filter_used_n[r] += (unsigned)(used2 - used);
    filter_ours_n[r] += (unsigned)(ours2 - ours);
    if (filter_used_n[r])
        atomic_fetch_or_explicit(&fdt_filter_used, bit, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&fdt_filter_used, ~bit, memory_order_relaxed);
    if (filter_ours_n[r])
        atomic_fetch_or_explicit(&fdt_filter_ours, bit, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&fdt_filter_ours, ~bit, memory_order_relaxed);
    filter_lock_drop();
}

struct ofd *fdt_get_ex(int fd, int *pumped)
{
    oplog_fd = fd; /* the op log's fd of the call under way */
    pthread_rwlock_rdlock(&fdt_rw);
    _Atomic(struct ofd *) *s = slot(fd, 0);
    struct ofd *raw = s ? atomic_load_explicit(s, memory_order_acquire) : NULL;
    struct ofd *o = fdt_raw_ofd(raw);
    if (o) ofd_ref(o);
    pthread_rwlock_unlock(&fdt_rw);
    if (pumped) *pumped = fdt_raw_pumped(raw);
    return o;
}

struct ofd *fdt_get(int fd) { return fdt_get_ex(fd, NULL); }

struct ofd *fdt_set_locked(int fd, struct ofd *o)
{
    _Atomic(struct ofd *) *s = slot(fd, 1);
    if (!s) return NULL;
    if (!FDT_IS_MARK(o)) ofd_ref(fdt_raw_ofd(o));
    /* The filters: widened before the slot fills, narrowed after it empties (a reader
     * that finds a bit set looks at the slot itself). */
    struct ofd *cur = atomic_load_explicit(s, memory_order_relaxed);
    unsigned r = (unsigned)fd & 63;
    filter_change(r, cur != NULL, !FDT_IS_MARK(cur), cur || o, !FDT_IS_MARK(cur) || !FDT_IS_MARK(o));
    struct ofd *old = atomic_exchange_explicit(s, o, memory_order_acq_rel);
    filter_change(r, cur || o, !FDT_IS_MARK(cur) || !FDT_IS_MARK(o), o != NULL, !FDT_IS_MARK(o));
    if (old && !o) atomic_fetch_sub_explicit(&fdt_used, 1, memory_order_relaxed);
    if (!old && o) atomic_fetch_add_explicit(&fdt_used, 1, memory_order_relaxed);
    if (!FDT_IS_MARK(old)) atomic_fetch_sub_explicit(&fdt_nofd, 1, memory_order_relaxed);
    if (!FDT_IS_MARK(o)) atomic_fetch_add_explicit(&fdt_nofd, 1, memory_order_relaxed);
    if (fd >= atomic_load_explicit(&fdt_max, memory_order_relaxed))
        atomic_store_explicit(&fdt_max, fd + 1, memory_order_relaxed);
    if (!FDT_IS_MARK(o) && fd >= atomic_load_explicit(&fdt_omax, memory_order_relaxed))
        atomic_store_explicit(&fdt_omax, fd + 1, memory_order_relaxed);
    return fdt_raw_ofd(old);
}

struct ofd *fdt_take_locked(int fd)
{
    _Atomic(struct ofd *) *s = slot(fd, 0);
    if (!s || !atomic_load_explicit(s, memory_order_relaxed)) return NULL;
    return fdt_set_locked(fd, NULL);
}

struct ofd *fdt_set(int fd, struct ofd *o)
{
    pthread_rwlock_wrlock(&fdt_rw);
    struct ofd *old = fdt_set_locked(fd, o);
    pthread_rwlock_unlock(&fdt_rw);
    return old;
}

struct ofd *fdt_take(int fd)
{
    pthread_rwlock_wrlock(&fdt_rw);
    struct ofd *old = fdt_take_locked(fd);
    pthread_rwlock_unlock(&fdt_rw);
    return old;
}

/* An engine descriptor's mark, without the table's lock: the engine parks and closes its
 * descriptors from inside the op log, which holds its own lock then, and the table's
 * lock comes first (fork, promotion): taking it here would close a cycle. Nothing else
 * can hold this number meanwhile (the kernel gave it to the engine, and the mark goes
 * before the close), and a mark carries no reference for a reader to take. */
void fdt_mark_engine(int fd, int on)
{
    if (on)
        fdt_set_locked(fd, FDT_ENGINE);
    else if (fdt_peek(fd) == FDT_ENGINE)
        fdt_take_locked(fd);
}

void fdt_lock(void) { pthread_rwlock_wrlock(&fdt_rw); }
void fdt_unlock(void) { pthread_rwlock_unlock(&fdt_rw); }
int fdt_limit(void) { return atomic_load_explicit(&fdt_max, memory_order_relaxed); }
int fdt_ofd_limit(void) { return atomic_load_explicit(&fdt_omax, memory_order_relaxed); }

void fdt_atfork_prepare(void) { pthread_rwlock_wrlock(&fdt_rw); }
void fdt_atfork_parent(void) { pthread_rwlock_unlock(&fdt_rw); }
/* The child's only thread holds the lock taken in prepare, but glibc recognises a writer
 * by its thread id, which fork changed: start a fresh lock instead of unlocking. */
void fdt_atfork_child(void) { pthread_rwlock_init(&fdt_rw, NULL); }
/* The filters' lock is innermost: taken last, after the op log's (under which the engine
 * marks its descriptors). */
void fdt_atfork_filter_prepare(void) { filter_lock_take(); }
void fdt_atfork_filter_release(void) { filter_lock_drop(); }
