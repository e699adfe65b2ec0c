/* wrap_open.c - open, close and descriptor management (dup, fcntl, close_range). */
#define _GNU_SOURCE 1
#include "../core/log.h"
#include "fdtable.h"
#include "guard.h"
#include "io.h"
#include "kio.h"
#include "pump.h"
#include "real.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static void maybe_pump(int fd);

int io_open(struct route *r, int flags, mode_t mode)
{
    struct mount *m = r->m;
    if (!shim_mount_usable(m)) return -1;
    uint64_t t0 = stats_now_ns();
    int acc = flags & O_ACCMODE;
    int type = OFD_FILE;
    void *fh = NULL;
    int res = 0;
    if (r->trail) { /* "name/": only a directory; creating a file by that name is EISDIR */
        struct stat st;
        res = io_stat(r, &st, 0);
        if (res == -ENOENT && (flags & O_CREAT)) res = -EISDIR;
        if (res == 0) flags |= O_DIRECTORY;
    }
    if (res < 0) {
    } else if (flags & (O_DIRECTORY | O_PATH)) {
        struct stat st;
        res = IO_BACKEND(m->ops->stat(m->ms, r->key, &st, flags & O_NOFOLLOW));
        if (res == 0 && S_ISDIR(st.st_mode))
            type = OFD_DIR;
        else if (res == 0 && (flags & O_DIRECTORY))
            res = -ENOTDIR;
        if (res == 0 && type == OFD_DIR && acc != O_RDONLY) res = -EISDIR;
        if (res == 0 && type == OFD_FILE && !(flags & O_PATH))
            res = IO_BACKEND(m->ops->open(m->ms, r->key, flags, mode, &fh));
    } else {
        res = IO_BACKEND(m->ops->open(m->ms, r->key, flags, mode, &fh));
        if (res == -EISDIR && acc == O_RDONLY && !(flags & O_CREAT)) {
            type = OFD_DIR;
            res = 0;
        }
    }
    struct ofd *o = NULL;
    int fd = res;
    if (res == 0) {
        fd = ofd_create(m, r->path, r->key, type, flags, fh, &o);
        if (fd < 0 && fh) IO_BACKEND(m->ops->close(fh));
    }
    uint64_t t1 = stats_record(&m->stats, STK_OPEN, t0, 0, fd < 0);
    OPLOG(OL_OPEN, fd < 0 ? -1 : fd, m, r->path, o ? &o->oplog_path : NULL, -1, (uint64_t)(unsigned)flags, fd, t0, t1, NULL);
    if (fd < 0) return shim_fail(fd);
    fdt_set(fd, o);
    slog_debug("open %s flags=%#x -> fd %d", r->path, flags, fd);
    maybe_pump(fd);
    if (__builtin_expect(atomic_load_explicit(&kio_on, memory_order_relaxed), 0)) kio_expose_fd(fd);
    return fd;
}

/* A description that lands on fd 0-2 as a placeholder is served through a pipe (see
 * pump.h). Not in a vfork child: it shares our memory and is about to exec. */
static void maybe_pump(int fd)
{
    if (fd < 0 || fd > 2 || shim_foreign_child()) return;
    struct ofd *raw = fdt_peek(fd);
    if (!FDT_IS_MARK(raw) && !fdt_raw_pumped(raw)) pump_install(fd, raw);
}

void io_adopted(int fd) { maybe_pump(fd); }

/* Drop the table's reference of the description fd held, and record the close (the path
 * copied first: the last put frees o). err: a failure met already (its pump's), reported
 * instead of the put's. */
static int put_closed(struct ofd *o, int fd, int err, uint64_t t0)
{
    struct mount *m = o->m;
    uint32_t pathid = __atomic_load_n(&o->oplog_path, __ATOMIC_RELAXED);
    char path[PATH_MAX];
    if (oplog_on && !pathid) snprintf(path, sizeof path, "%s", ofd_path(o));
    int r = ofd_put(o);
    if (err < 0) r = err;
    OPLOG(OL_CLOSE, fd, m, path, &pathid, -1, 0, r, t0, stats_now_ns(), NULL);
    return r;
}

int io_close_fd(int fd)
{
    int pumped = fdt_raw_pumped(fdt_peek(fd));
    if (pumped) pump_detach(fd);
    struct ofd *o = fdt_take(fd);
    if (!o) return -EBADF;
    uint64_t t0 = oplog_on ? stats_now_ns() : 0;
    REAL(close)(fd);
    int p = pumped ? pump_release(o) : 0;
    return put_closed(o, fd, p, t0);
}

static __attribute__((noinline)) int open_routed(int dirfd, const char *path, int flags, mode_t mode)
{
    struct route r;
    switch (route_at(dirfd, path, &r, 0)) {
    case ROUTE_FOREIGN: {
        int fd = REAL(openat)(dirfd, r.pass, flags, mode);
        if (fd >= 0 || errno != ENOENT) return fd;
        if (dirfd != AT_FDCWD && route_real_dirfd(dirfd, path, &r) == ROUTE_OURS)
            return io_open(&r, flags, mode); /* a mount below a real directory descriptor */
        if (r.ancestor && (flags & O_ACCMODE) == O_RDONLY && !(flags & (O_CREAT | O_TRUNC)))
            return route_open_ancestor(r.path, flags); /* a directory above a mount, not on disk */
        errno = ENOENT;
        return -1;
    }
    case ROUTE_OURS:
        return io_open(&r, flags, mode);
    default:
        return -1;
    }
}

static inline __attribute__((always_inline)) int open_common(int dirfd, const char *path, int flags, mode_t mode)
{
    if (__builtin_expect(route_foreign_fast(dirfd, path), 1)) return REAL(openat)(dirfd, path, flags, mode);
    return open_routed(dirfd, path, flags, mode);
}

/* The mode only counts with O_CREAT or O_TMPFILE; otherwise it is whatever was there. */
static inline mode_t open_mode_used(int flags, mode_t mode)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? mode : 0;
}

static __attribute__((noinline)) int open_slow(int dirfd, const char *path, int flags, mode_t mode)
{
    return open_routed(dirfd, path, flags, open_mode_used(flags, mode));
}

#if defined(__x86_64__) || (defined(__aarch64__) && defined(__linux__))
/* open(path, flags, ...) takes its mode as a named third parameter: on these two ABIs
 * (x86-64 System V, AAPCS64 on Linux) a variadic argument travels exactly where the
 * named one would, so this reads what va_arg would read, without the register save
 * area and va_list that va_start sets up on every call, the pass-through ones too.
 * When the caller passed no mode the register holds a leftover that libc ignores, as
 * it ignores the mode without O_CREAT or O_TMPFILE; the routed path clears it.
 * libc's openat is called the same way, through a prototype with a named mode: the
 * variadic call would set %al (how many vector registers carry arguments) to 0, an
 * instruction per call; this way libc sees the %al our caller set, as if it had been
 * called directly (the pass-through test keeps off rax). */
typedef int (*openat_named_fn)(int, const char *, int, mode_t);
#define REAL_OPENAT_NAMED ((openat_named_fn)REAL(openat))
static int open_fixed(const char *path, int flags, mode_t mode)
{
    if (__builtin_expect(route_foreign_fast(AT_FDCWD, path), 1)) return REAL_OPENAT_NAMED(AT_FDCWD, path, flags, mode);
    return open_slow(AT_FDCWD, path, flags, mode);
}
static int openat_fixed(int dirfd, const char *path, int flags, mode_t mode)
{
    if (__builtin_expect(route_foreign_fast(dirfd, path), 1)) return REAL_OPENAT_NAMED(dirfd, path, flags, mode);
    return open_slow(dirfd, path, flags, mode);
}
/* O_LARGEFILE is 0 on both: open64 is open. */
_Static_assert(O_LARGEFILE == 0, "open64 is not open here");
SHIM_EXPORT int open(const char *path, int flags, ...) __attribute__((alias("open_fixed")));
SHIM_EXPORT int open64(const char *path, int flags, ...) __attribute__((alias("open_fixed")));
SHIM_EXPORT int openat(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat_fixed")));
SHIM_EXPORT int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat_fixed")));
#else
static mode_t open_mode(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

SHIM_EXPORT int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return open_common(AT_FDCWD, path, flags, mode);
}

SHIM_EXPORT int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return open_common(AT_FDCWD, path, flags | O_LARGEFILE, mode);
}

SHIM_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return open_common(dirfd, path, flags, mode);
}

SHIM_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return open_common(dirfd, path, flags | O_LARGEFILE, mode);
}
#endif

SHIM_EXPORT int creat(const char *path, mode_t mode)
{
    return open_common(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}
SHIM_EXPORT int creat64(const char *path, mode_t mode)
{
    return open_common(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_LARGEFILE, mode);
}
/* _FORTIFY_SOURCE entry points: open without a mode argument. */
SHIM_EXPORT int __open_2(const char *path, int flags) { return open_common(AT_FDCWD, path, flags, 0); }
SHIM_EXPORT int __open64_2(const char *path, int flags)
{
    return open_common(AT_FDCWD, path, flags | O_LARGEFILE, 0);
}
SHIM_EXPORT int __openat_2(int dirfd, const char *path, int flags) { return open_common(dirfd, path, flags, 0); }
SHIM_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    return open_common(dirfd, path, flags | O_LARGEFILE, 0);
}

/* The filter said fd may have a slot: look at the table. */
static __attribute__((noinline, cold)) int close_maybe(int fd)
{
    struct ofd *o = fdt_peek(fd);
    if (o == NULL || shim_foreign_child()) return REAL(close)(fd);
    if (o == FDT_ENGINE && !guard_active()) return shim_fail(-EBADF); /* not the program's to close */
    if (o == FDT_ENGINE) { /* a library of the engine's closing what efd_parking placed */
        fdt_mark_engine(fd, 0);
        return REAL(close)(fd);
    }
    int r = io_close_fd(fd);
    return r < 0 ? shim_fail(r) : 0;
}

SHIM_EXPORT int close(int fd)
{
    if (__builtin_expect(!fdt_maybe_used(fd), 1)) return REAL(close)(fd);
    return close_maybe(fd);
}

/* Close [lo, hi] in runs, skipping engine descriptors and closing ours properly. */
static int close_range_impl(unsigned lo, unsigned hi, int flags)
{
    if (atomic_load(&fdt_used) == 0 || shim_foreign_child()) return REAL(close_range)(lo, hi, flags);
    unsigned lim = (unsigned)fdt_limit();
    unsigned run = lo;
    for (unsigned fd = lo; fd <= hi && fd < lim; fd++) {
        struct ofd *o = fdt_peek((int)fd);
        if (!o) continue;
        if (run < fd && REAL(close_range)(run, fd - 1, flags) < 0) return -1;
        run = fd + 1;
        if (o == FDT_ENGINE) continue;
        if (flags & CLOSE_RANGE_CLOEXEC)
            REAL(fcntl)((int)fd, F_SETFD, FD_CLOEXEC);
        else
            io_close_fd((int)fd);
    }
    if (run <= hi) return REAL(close_range)(run, hi, flags);
    return 0;
}

SHIM_EXPORT int close_range(unsigned lo, unsigned hi, int flags) { return close_range_impl(lo, hi, flags); }

SHIM_EXPORT void closefrom(int lo)
{
    if (lo < 0) lo = 0;
    close_range_impl((unsigned)lo, ~0u, 0);
}

/* The op log's record of a copy (OL_DUP): o is a reference of the caller's. */
static void log_dup(struct ofd *o, int oldfd, int newfd, uint64_t t0)
{
    OPLOG(OL_DUP, newfd, o->m, ofd_path(o), &o->oplog_path, -1, (uint64_t)(unsigned)oldfd, newfd, t0, stats_now_ns(),
          NULL);
    ofd_put(o);
}

/* Make newfd a copy of oldfd in the kernel and in the table, atomically for other
 * threads. `how` is 0 for dup2, or the dup3 flags. */
static int dup_onto(int oldfd, int newfd, int how, int is_dup3)
{
    int was_pumped = oldfd != newfd && fdt_raw_pumped(fdt_peek(newfd));
    if (was_pumped) pump_detach(newfd);
    uint64_t t0 = oplog_on ? stats_now_ns() : 0;
    fdt_lock();
    int r = is_dup3 ? REAL(dup3)(oldfd, newfd, how) : REAL(dup2)(oldfd, newfd);
    struct ofd *prev = NULL, *src = NULL, *logged = NULL;
    if (r >= 0 && oldfd != newfd) {
        src = fdt_peek(oldfd);
        if (src == FDT_ENGINE) src = NULL;
        prev = src ? fdt_set_locked(newfd, src) : fdt_take_locked(newfd); /* a pumped src stays tagged */
        if (src && oplog_on && (logged = fdt_raw_ofd(src))) ofd_ref(logged);
    }
    fdt_unlock();
    if (prev) {
        if (was_pumped) pump_release(prev);
        put_closed(prev, newfd, 0, t0); /* the description newfd held is closed there: its record first */
    }
    if (logged) log_dup(logged, oldfd, newfd, t0);
    if (src) maybe_pump(newfd);
    return r;
}

SHIM_EXPORT int dup2(int oldfd, int newfd)
{
    if (__builtin_expect(!fdt_peek(oldfd) && !fdt_peek(newfd), 1)) return REAL(dup2)(oldfd, newfd);
    if (shim_foreign_child()) return REAL(dup2)(oldfd, newfd);
    if (fdt_peek(newfd) == FDT_ENGINE) return shim_fail(-EBUSY);
    return dup_onto(oldfd, newfd, 0, 0);
}

SHIM_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    if (__builtin_expect(!fdt_peek(oldfd) && !fdt_peek(newfd), 1)) return REAL(dup3)(oldfd, newfd, flags);
    if (shim_foreign_child()) return REAL(dup3)(oldfd, newfd, flags);
    if (fdt_peek(newfd) == FDT_ENGINE) return shim_fail(-EBUSY);
    return dup_onto(oldfd, newfd, flags, 1);
}

/* New descriptor for the same description (dup, F_DUPFD). */
static int dup_new(int oldfd, int cmd, int minfd)
{
    if (shim_foreign_child()) return cmd < 0 ? REAL(dup)(oldfd) : REAL(fcntl)(oldfd, cmd, minfd);
    uint64_t t0 = oplog_on ? stats_now_ns() : 0;
    fdt_lock();
    int fd = cmd < 0 ? REAL(dup)(oldfd) : REAL(fcntl)(oldfd, cmd, minfd);
    struct ofd *src = fdt_peek(oldfd), *logged = NULL;
    if (fd >= 0 && !FDT_IS_MARK(src)) {
        fdt_set_locked(fd, src); /* a pumped src stays tagged */
        if (oplog_on && (logged = fdt_raw_ofd(src))) ofd_ref(logged);
    }
    fdt_unlock();
    if (logged) log_dup(logged, oldfd, fd, t0);
    maybe_pump(fd);
    return fd;
}

SHIM_EXPORT int dup(int fd)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(dup)(fd);
    return dup_new(fd, -1, 0);
}

/* Status flags a program may change with F_SETFL (as on Linux). */
#define SETFL_MASK (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME | O_NONBLOCK)

static int fcntl_ours(int fd, int cmd, unsigned long arg)
{
    switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        return arg > INT_MAX ? shim_fail(-EINVAL) : dup_new(fd, cmd, (int)arg);
    case F_GETFD:
    case F_SETFD:
        return REAL(fcntl)(fd, cmd, arg); /* descriptor flags live in the kernel */
    default:
        break;
    }
    struct ofd *o = fdt_get(fd);
    if (!o) return shim_fail(-EBADF);
    int r;
    if (cmd == F_GETFL) {
        r = ofd_status(o) | O_LARGEFILE;
        if (o->type == OFD_DIR) r |= O_DIRECTORY;
    } else if (cmd == F_SETFL) {
        ofd_set_status(o, (ofd_status(o) & ~SETFL_MASK) | ((int)arg & SETFL_MASK));
        /* A local file's own descriptor must agree (O_APPEND decides where its writes go). */
        int lfd = o->fh && !o->m->ops->setfl && o->m->ops->local_fd ? o->m->ops->local_fd(o->fh) : -1;
        r = o->fh && o->m->ops->setfl ? IO_BACKEND(o->m->ops->setfl(o->fh, ofd_status(o))) : 0;
        if (r < 0) r = shim_fail(r);
        if (lfd >= 0) {
            int cur = REAL(fcntl)(lfd, F_GETFL);
            if (cur >= 0) r = REAL(fcntl)(lfd, F_SETFL, (cur & ~SETFL_MASK) | ((int)arg & SETFL_MASK));
        }
    } else {
        /* Locks, leases, pipe sizes...: meaningful only on a local file. Object stores
         * lock a file per object instead (lock_fd). */
        int lock = cmd == F_SETLK || cmd == F_SETLKW || cmd == F_GETLK || cmd == F_OFD_SETLK ||
                   cmd == F_OFD_SETLKW || cmd == F_OFD_GETLK;
        int lfd = !o->fh                                ? -1
                  : lock && o->m->ops->lock_fd          ? IO_BACKEND(o->m->ops->lock_fd(o->fh))
                  : o->m->ops->local_fd                 ? o->m->ops->local_fd(o->fh)
                                                        : -1;
        if (lfd >= 0)
            r = REAL(fcntl)(lfd, cmd, arg);
        else if (cmd == F_SETLK || cmd == F_SETLKW || cmd == F_GETLK || cmd == F_OFD_SETLK ||
                 cmd == F_OFD_SETLKW || cmd == F_OFD_GETLK)
            r = shim_fail(-ENOLCK);
        else
            r = shim_fail(-EINVAL);
    }
    ofd_put(o);
    return r;
}

SHIM_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(fcntl)(fd, cmd, arg);
    return fcntl_ours(fd, cmd, arg);
}

SHIM_EXPORT int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

/* glibc's lockf calls its own fcntl, which never reaches us: EBADF on our descriptors.
 * Its range starts at the file offset (SEEK_CUR), ours, not the lock file's. */
SHIM_EXPORT int lockf(int fd, int cmd, off_t len)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(lockf)(fd, cmd, len);
    struct ofd *o = fdt_get(fd);
    if (!o) return shim_fail(-EBADF);
    ofd_lock(o);
    off_t cur = (off_t)ofd_sh(o)->offset;
    ofd_unlock(o);
    ofd_put(o);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = len < 0 ? cur + len : cur,
                       .l_len = len < 0 ? -len : len};
    if (fl.l_start < 0) return shim_fail(-EINVAL);
    switch (cmd) {
    case F_LOCK:
        return fcntl_ours(fd, F_SETLKW, (unsigned long)&fl);
    case F_TLOCK:
        return fcntl_ours(fd, F_SETLK, (unsigned long)&fl);
    case F_ULOCK:
        fl.l_type = F_UNLCK;
        return fcntl_ours(fd, F_SETLK, (unsigned long)&fl);
    case F_TEST: /* (as glibc: would a read lock be refused?) */
        fl.l_type = F_RDLCK;
        if (fcntl_ours(fd, F_GETLK, (unsigned long)&fl) < 0) return -1;
        return fl.l_type == F_UNLCK || fl.l_pid == getpid() ? 0 : shim_fail(-EACCES);
    default:
        return shim_fail(-EINVAL);
    }
}

SHIM_EXPORT int lockf64(int fd, int cmd, off_t len) __attribute__((alias("lockf")));

/* mkstemp family inside a mount: glibc's own versions open through internal symbols we
 * cannot see, so a template under a mount is filled in and created here. */
static int mkstemp_ours(char *tmpl, int suffixlen, int flags)
{
    size_t len = strlen(tmpl);
    if (suffixlen < 0 || len < 6 + (size_t)suffixlen) return shim_fail(-EINVAL);
    char *x = tmpl + len - suffixlen - 6;
    if (memcmp(x, "XXXXXX", 6) != 0) return shim_fail(-EINVAL);
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned char rnd[6];
        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) return -1;
        for (int i = 0; i < 6; i++) x[i] = letters[rnd[i] % 62];
        struct route r;
        int k = route_path(tmpl, &r);
        if (k != ROUTE_OURS) return k == ROUTE_FOREIGN ? shim_fail(-EXDEV) : -1;
        int fd = io_open(&r, (flags & ~O_ACCMODE) | O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return shim_fail(-EEXIST);
}

static int mkstemp_any(char *tmpl, int suffixlen, int flags)
{
    struct route r;
    if (route_path(tmpl, &r) != ROUTE_OURS) return REAL(mkostemps)(tmpl, suffixlen, flags);
    return mkstemp_ours(tmpl, suffixlen, flags);
}

SHIM_EXPORT int mkstemp(char *t) { return mkstemp_any(t, 0, 0); }
SHIM_EXPORT int mkstemp64(char *t) { return mkstemp_any(t, 0, 0); }
SHIM_EXPORT int mkostemp(char *t, int fl) { return mkstemp_any(t, 0, fl); }
SHIM_EXPORT int mkostemp64(char *t, int fl) { return mkstemp_any(t, 0, fl); }
SHIM_EXPORT int mkstemps(char *t, int sl) { return mkstemp_any(t, sl, 0); }
SHIM_EXPORT int mkstemps64(char *t, int sl) { return mkstemp_any(t, sl, 0); }
SHIM_EXPORT int mkostemps(char *t, int sl, int fl) { return mkstemp_any(t, sl, fl); }
SHIM_EXPORT int mkostemps64(char *t, int sl, int fl) { return mkstemp_any(t, sl, fl); }
