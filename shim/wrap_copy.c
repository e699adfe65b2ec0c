/* wrap_copy.c - kernel-side copies, ioctl, mmap, msync and isatty on shim descriptors.
 *
 * copy_file_range, sendfile and splice are served here by a bounded read/write loop
 * through the engine, so cp, cat and Python's shutil get every byte whatever they do on
 * failure. Reflink (FICLONE) is refused with EOPNOTSUPP, on which cp falls back. */
#define _GNU_SOURCE 1
#include "fdtable.h"
#include "guard.h"
#include "io.h"
#include "pump.h"
#include "real.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>

#define COPY_CHUNK (1u << 20)

/* One side of a copy: a shim description, or a real descriptor. */
struct end {
    int fd;
    struct ofd *o;
    off_t *off; /* explicit offset, or NULL for the descriptor's own */
    int pumped; /* fd is a pumped pipe end: sequential transfers go through pump.c */
};

static ssize_t end_read(struct end *e, void *buf, size_t n)
{
    if (e->pumped && !e->off) {
        ssize_t r = pump_read(e->fd, buf, n);
        return r < 0 ? -errno : r;
    }
    if (e->o) {
        oplog_fd = e->fd;
        ssize_t r = e->off ? io_pread(e->o, buf, n, *e->off) : io_read(e->o, buf, n);
        if (r > 0 && e->off) *e->off += r;
        return r;
    }
    ssize_t r = e->off ? REAL(pread)(e->fd, buf, n, *e->off) : REAL(read)(e->fd, buf, n);
    if (r < 0) return -errno;
    if (e->off) *e->off += r;
    return r;
}

static ssize_t end_write(struct end *e, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r;
        if (e->pumped && !e->off) {
            r = pump_write(e->fd, (const char *)buf + done, n - done);
            if (r < 0) r = -errno;
        } else if (e->o) {
            oplog_fd = e->fd;
            r = e->off ? io_pwrite(e->o, (const char *)buf + done, n - done, *e->off)
                       : io_write(e->o, (const char *)buf + done, n - done);
        } else {
            r = e->off ? REAL(pwrite)(e->fd, (const char *)buf + done, n - done, *e->off)
                       : REAL(write)(e->fd, (const char *)buf + done, n - done);
            if (r < 0) r = -errno;
        }
        if (r < 0) return done ? (ssize_t)done : r;
        if (r == 0) return done ? (ssize_t)done : -EIO;
        if (e->off) *e->off += r;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

/* Copy up to len bytes; returns bytes copied (short only at end of input) or -errno. */
static ssize_t copy_loop(int in, off_t *in_off, int out, off_t *out_off, size_t len)
{
    struct end src = {in, NULL, in_off, 0}, dst = {out, NULL, out_off, 0};
    src.o = fdt_get_ex(in, &src.pumped);
    dst.o = fdt_get_ex(out, &dst.pumped);
    if (dst.o && dst.pumped && dst.off) pump_sync(dst.o);
    size_t chunk = len < COPY_CHUNK ? len : COPY_CHUNK;
    char *buf = chunk ? malloc(chunk) : NULL;
    ssize_t total = 0, err = 0;
    if (chunk && !buf) err = -ENOMEM;
    while (!err && (size_t)total < len) {
        size_t want = len - (size_t)total < chunk ? len - (size_t)total : chunk;
        ssize_t r = end_read(&src, buf, want);
        if (r <= 0) {
            err = r;
            break;
        }
        ssize_t w = end_write(&dst, buf, (size_t)r);
        if (w < 0) {
            err = w;
            break;
        }
        total += w;
        if (w < r || (size_t)r < want) break;
    }
    free(buf);
    if (src.o) ofd_put(src.o);
    if (dst.o) ofd_put(dst.o);
    return total ? total : err;
}

SHIM_EXPORT ssize_t copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned flags)
{
    if (__builtin_expect(!fdt_is_ours(in) && !fdt_is_ours(out), 1))
        return REAL(copy_file_range)(in, in_off, out, out_off, len, flags);
    if (flags) return shim_fail(-EINVAL);
    if ((in_off && *in_off < 0) || (out_off && *out_off < 0)) return shim_fail(-EINVAL);
    ssize_t r = copy_loop(in, in_off, out, out_off, len);
    return r < 0 ? shim_fail((int)r) : r;
}

SHIM_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
    if (__builtin_expect(!fdt_is_ours(in) && !fdt_is_ours(out), 1)) return REAL(sendfile)(out, in, off, count);
    ssize_t r = copy_loop(in, off, out, NULL, count);
    return r < 0 ? shim_fail((int)r) : r;
}

SHIM_EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t count) __attribute__((alias("sendfile")));

SHIM_EXPORT ssize_t splice(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned flags)
{
    if (__builtin_expect(!fdt_is_ours(in) && !fdt_is_ours(out), 1))
        return REAL(splice)(in, in_off, out, out_off, len, flags);
    ssize_t r = copy_loop(in, in_off, out, out_off, len);
    return r < 0 ? shim_fail((int)r) : r;
}

static int ioctl_ours(int fd, unsigned long req, void *arg)
{
    if (req == FICLONE || req == FICLONERANGE || req == FIDEDUPERANGE) return shim_fail(-EOPNOTSUPP);
    if (req == FIOCLEX || req == FIONCLEX) /* descriptor flags live on the placeholder */
        return REAL(fcntl)(fd, F_SETFD, req == FIOCLEX ? FD_CLOEXEC : 0);
    struct ofd *o = fdt_get(fd);
    if (!o) return shim_fail(-EBADF);
    int lfd = o->fh && o->m->ops->local_fd ? o->m->ops->local_fd(o->fh) : -1;
    int r = lfd >= 0 ? REAL(ioctl)(lfd, req, arg) : shim_fail(-ENOTTY);
    ofd_put(o);
    return r;
}

SHIM_EXPORT int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(ioctl)(fd, req, arg);
    return ioctl_ours(fd, req, arg);
}

/* Descriptions ever mapped shared and writable: while 0, msync is libc's alone. */
static _Atomic unsigned maps_writable;

static void *mmap_ours(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    struct ofd *o = fdt_get(fd);
    if (!o) {
        errno = EBADF;
        return MAP_FAILED;
    }
    int lfd = -ENODEV; /* an object cannot be mapped... */
    if (o->fh && o->m->ops->local_map) /* ...unless its backend makes a local file ready for it */
        lfd = IO_BACKEND(o->m->ops->local_map(o->fh, off, len, prot, flags));
    else if (o->fh && o->m->ops->local_fd)
        lfd = o->m->ops->local_fd(o->fh);
    void *p = MAP_FAILED;
    if (lfd >= 0)
        p = REAL(mmap)(addr, len, prot, flags, lfd, off);
    else
        errno = lfd == -1 ? ENODEV : -lfd;
    if (p != MAP_FAILED && (flags & MAP_SHARED) && (prot & PROT_WRITE) && !atomic_exchange(&o->mapped_writable, 1))
        atomic_fetch_add(&maps_writable, 1);
    ofd_put(o);
    return p;
}

SHIM_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (__builtin_expect(fd < 0 || !fdt_is_ours(fd), 1)) return REAL(mmap)(addr, len, prot, flags, fd, off);
    return mmap_ours(addr, len, prot, flags, fd, off);
}

SHIM_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) __attribute__((alias("mmap")));

/* A shared writable mapping of one of our files is a local copy (block://) or staging
 * file (s3://): the kernel's msync makes it durable locally, not the object. On a disk,
 * msync is where other processes are sure to see the bytes, so here it commits, as fsync
 * does, every description this process has mapped that way (the mapping does not say
 * which description it came from; committing one with nothing new costs nothing). */
static __attribute__((noinline, cold)) int msync_ours(void)
{
    struct ofd *done[32];
    int nd = 0, r = 0, lim = fdt_ofd_limit();
    for (int fd = 0; fd < lim; fd++) {
        if (!fdt_is_ours(fd)) continue;
        struct ofd *o = fdt_get(fd);
        if (!o) continue;
        int seen = !atomic_load(&o->mapped_writable);
        for (int i = 0; i < nd && !seen; i++) seen = done[i] == o;
        if (!seen && nd < (int)(sizeof done / sizeof *done)) done[nd++] = o;
        ofd_put(o);
        if (!seen && fsync(fd) < 0 && r == 0) r = errno;
    }
    if (r) errno = r;
    return r ? -1 : 0;
}

SHIM_EXPORT int msync(void *addr, size_t len, int flags)
{
    int r = REAL(msync)(addr, len, flags);
    if (__builtin_expect(atomic_load_explicit(&maps_writable, memory_order_relaxed) == 0, 1) || r < 0 ||
        (flags & (MS_SYNC | MS_ASYNC)) == 0 || guard_active())
        return r;
    return msync_ours();
}

SHIM_EXPORT int isatty(int fd)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(isatty)(fd);
    errno = ENOTTY;
    return 0;
}
