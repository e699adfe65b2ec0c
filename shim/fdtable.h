/* fdtable.h - which kernel descriptors are ours.
 *
 * A shim descriptor is a real kernel fd (an O_PATH placeholder) whose slot here points to
 * an open file description (struct ofd). Descriptors the engine keeps for itself are
 * marked too, so that the program's closefrom() does not take them away.
 *
 * The table is a two-level array of atomic pointers. The question "is fd ours?" is a
 * relaxed load or two and takes no lock: that is the pass-through fast path. Getting a
 * reference to an ofd, and every change, happen under a read/write lock.
 *
 * In front of it, two 64-bit filters answer for most descriptors with one load and one
 * bit test: bit fd % 64 is set while some descriptor with that remainder has a slot
 * (fdt_filter_used) or holds a description (fdt_filter_ours). A clear bit means "not
 * ours" for any fd (negative ones too: only the low 6 bits are looked at); a set bit sends
 * the caller to the table itself. So close() of a foreign descriptor costs the same with
 * a mount (whose root directory is an engine descriptor) as without, and read() the same
 * with a shim descriptor open as without, unless the two numbers share a remainder. */
#ifndef S3SHIM_FDTABLE_H
#define S3SHIM_FDTABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct ofd;

#define FDT_CHUNK_BITS 10
#define FDT_CHUNK (1u << FDT_CHUNK_BITS)
#define FDT_CHUNKS 4096 /* 4 M descriptors */
/* A slot holds NULL (not ours), FDT_ENGINE (a descriptor the engine owns), or an ofd.
 * The low bit of an ofd pointer tags a descriptor that is the program's end of a pipe
 * served by a pump (pump.h): it still names its description for every call but read
 * and write. */
#define FDT_ENGINE ((struct ofd *)1)
#define FDT_PUMP_TAG ((uintptr_t)1)
#define FDT_IS_MARK(o) ((uintptr_t)(o) <= 1)

static inline int fdt_raw_pumped(const struct ofd *raw)
{
    return ((uintptr_t)raw & FDT_PUMP_TAG) && (uintptr_t)raw > 1;
}
static inline struct ofd *fdt_raw_ofd(struct ofd *raw)
{
    return FDT_IS_MARK(raw) ? NULL : (struct ofd *)((uintptr_t)raw & ~FDT_PUMP_TAG);
}
static inline struct ofd *fdt_tag_pumped(struct ofd *o) { return (struct ofd *)((uintptr_t)o | FDT_PUMP_TAG); }

/* Hidden: addressed relative to the instruction pointer, with no GOT load. */
#define FDT_HIDDEN __attribute__((visibility("hidden")))
extern _Atomic(_Atomic(struct ofd *) *) fdt_chunks[FDT_CHUNKS] FDT_HIDDEN;
/* The first chunk (descriptors 0 to FDT_CHUNK - 1, nearly all of them) is static, so
 * that looking one of those up needs no chunk pointer. */
extern _Atomic(struct ofd *) fdt_chunk0[FDT_CHUNK] FDT_HIDDEN;
extern _Atomic unsigned fdt_used FDT_HIDDEN; /* slots in use (any kind); 0 = nothing to look up */
extern _Atomic unsigned fdt_nofd FDT_HIDDEN; /* slots holding a description; 0 = no shim fd open */
extern _Atomic uint64_t fdt_filter_used FDT_HIDDEN; /* see above */
extern _Atomic uint64_t fdt_filter_ours FDT_HIDDEN;

/* May fd have a slot / hold a description? 0: certainly not. One load and a bit test. */
static inline int fdt_maybe_used(int fd)
{
    return (atomic_load_explicit(&fdt_filter_used, memory_order_relaxed) >> ((unsigned)fd & 63)) & 1;
}
static inline int fdt_maybe_ours(int fd)
{
    return (atomic_load_explicit(&fdt_filter_ours, memory_order_relaxed) >> ((unsigned)fd & 63)) & 1;
}

/* Raw slot (no reference): NULL, FDT_ENGINE or a (maybe tagged) ofd. Lock-free. */
static inline struct ofd *fdt_peek(int fd)
{
    if (__builtin_expect(atomic_load_explicit(&fdt_used, memory_order_relaxed) == 0, 1)) return NULL;
    if (__builtin_expect((unsigned)fd < FDT_CHUNK, 1)) return atomic_load_explicit(&fdt_chunk0[fd], memory_order_acquire);
    if ((unsigned)fd >= FDT_CHUNK * FDT_CHUNKS) return NULL;
    _Atomic(struct ofd *) *c = atomic_load_explicit(&fdt_chunks[(unsigned)fd >> FDT_CHUNK_BITS], memory_order_acquire);
    if (!c) return NULL;
    return atomic_load_explicit(&c[(unsigned)fd & (FDT_CHUNK - 1)], memory_order_acquire);
}

/* Is fd a program-visible shim descriptor? The pass-through test of read, write,
 * fstat...: unless a shim descriptor's number shares fd's remainder modulo 64, it is one
 * load, a bit test and a branch. */
static inline int fdt_is_ours(int fd)
{
    if (__builtin_expect(!fdt_maybe_ours(fd), 1)) return 0;
    return !FDT_IS_MARK(fdt_peek(fd));
}

/* The ofd behind fd with a reference taken, or NULL; *pumped (if given) tells whether
 * fd is a pumped pipe end. Release with ofd_put(). */
struct ofd *fdt_get(int fd);
struct ofd *fdt_get_ex(int fd, int *pumped);
/* Install o (maybe tagged) at fd, taking a new reference, and return whatever ofd was
 * there before with its reference transferred to the caller (NULL if nothing). */
struct ofd *fdt_set(int fd, struct ofd *o);
/* Remove fd's slot and return its ofd (reference transferred), or NULL. */
struct ofd *fdt_take(int fd);

/* The whole table, exclusively: for dup2()/close_range(), whose kernel call and table
 * update must appear atomic to other threads. */
void fdt_mark_engine(int fd, int on); /* engine descriptors: lock-free (fdtable.c) */
void fdt_lock(void);
void fdt_unlock(void);
/* Variants of set/take for use while holding fdt_lock(). */
struct ofd *fdt_set_locked(int fd, struct ofd *o);
struct ofd *fdt_take_locked(int fd);
/* Highest fd that has ever had a slot, +1 (bounds walks that look for engine marks). */
int fdt_limit(void);
/* Highest fd that has ever held a description, +1: bounds the walks that look for
 * descriptions (promotions at every fork and exec, pumps), which would otherwise cover
 * the engine's descriptors parked from 10000 up. */
int fdt_ofd_limit(void);

/* fork(): keep the lock consistent across the fork. */
void fdt_atfork_prepare(void);
void fdt_atfork_parent(void);
void fdt_atfork_child(void);
/* The filters' own lock, taken after every other lock at fork and released in both. */
void fdt_atfork_filter_prepare(void);
void fdt_atfork_filter_release(void);

#endif
