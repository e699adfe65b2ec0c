/* wrap_kio.c - the program's own asynchronous I/O in the kernel (io_uring, Linux AIO) on
 * shim descriptors.
 *
 * A shim descriptor is an O_PATH placeholder, so a request the program hands the kernel
 * itself (fio's io_uring and libaio engines, databases, storage tools) failed on it with
 * EBADF. Such requests cannot all be seen: fio and liburing submit to a ring with system
 * calls of their own. What can be seen is that the process uses them: an io_uring set up
 * through libc's syscall(), a Linux AIO submission (libaio's io_submit) naming a shim
 * descriptor, or S3SHIM_KERNEL_FILES=1. From then on every shim descriptor of a file with
 * a kernel file behind it (file://, direct://) is exposed: its number is made to name that
 * file (dup3 over the placeholder), the backend having written out what it held back and
 * stopped caching (kernel_io in backend.h). The shim's own calls go on through the engine
 * by number as before; the kernel's requests reach the file directly, at the kernel's
 * cost. direct:// exposes its O_DIRECT descriptor to a program that opened with O_DIRECT,
 * a buffered one of the same file otherwise (the kernel cannot align for it).
 *
 * Placeholders matter again when the program forks or execs: a promotion (ofd.h) points
 * them at the description's shared memfd, and a new program finds its inherited
 * descriptors by that. So exposure is redone after a fork in both processes and after a
 * spawn or a failed exec, and undone just before an exec or a spawn.
 *
 * Object stores (s3://, block://) have no kernel file: such requests fail with EBADF, and
 * one log line says why. POSIX AIO works everywhere (wrap_aio.c). */
#define _GNU_SOURCE 1
#include "kio.h"

#include "fdtable.h"
#include "guard.h"
#include "io.h"
#include "real.h"
#include "shim.h"

#include "../core/efd.h"
#include "../core/log.h"
#include "../core/mount.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

_Atomic int kio_on;

static int same_file(int a, int b)
{
    struct stat sa, sb;
    return REAL(fstat)(a, &sa) == 0 && REAL(fstat)(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Make fd (a descriptor of o) name o's kernel file (fd table locked). */
static void expose_locked(int fd, struct ofd *o)
{
    static atomic_int warned;
    if (o->type != OFD_FILE || !o->fh) return;
    if (!o->m->ops->kernel_io) {
        if (!atomic_exchange(&warned, 1))
            slog_warn("%s: io_uring and Linux AIO requests the program makes on it fail with EBADF: %s:// keeps "
                      "no kernel file (read/pread and POSIX AIO work)",
                      ofd_path(o), o->m->ops->scheme);
        return;
    }
    int k = IO_BACKEND(o->m->ops->kernel_io(o->fh, (ofd_sh(o)->oflags & O_DIRECT) != 0));
    if (k < 0 || same_file(fd, k)) return;
    if (o->mapped && o->kph < 0) { /* fd names the shared memfd: kept for an exec */
        int c = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
        if (c >= 0) o->kph = efd_park(c);
    }
    ofd_dup_over(k, fd);
    o->kexp = 1;
}

void kio_expose_fd(int fd)
{
    fdt_lock();
    struct ofd *raw = fdt_peek(fd);
    struct ofd *o = fdt_raw_ofd(raw);
    if (o && !fdt_raw_pumped(raw)) expose_locked(fd, o); /* (a pumped stream's number is its pipe) */
    fdt_unlock();
}

/* every: all shim descriptors (kio just turned on); else those exposed before. */
static void expose_all(int every)
{
    fdt_lock();
    int lim = fdt_ofd_limit();
    for (int fd = 0; fd < lim; fd++) {
        struct ofd *raw = fdt_peek(fd);
        struct ofd *o = fdt_raw_ofd(raw);
        if (o && !fdt_raw_pumped(raw) && (every || o->kexp)) expose_locked(fd, o);
    }
    fdt_unlock();
}

void kio_enable(void)
{
    if (atomic_exchange(&kio_on, 1)) return;
    slog_debug("the program makes its own kernel I/O requests: shim descriptors of local files are exposed");
    expose_all(1);
}

void kio_reexpose(void)
{
    if (atomic_load_explicit(&kio_on, memory_order_relaxed)) expose_all(0);
}

void kio_hide(void)
{
    if (!atomic_load_explicit(&kio_on, memory_order_relaxed)) return;
    fdt_lock();
    int lim = fdt_ofd_limit();
    for (int fd = 0; fd < lim; fd++) {
        struct ofd *raw = fdt_peek(fd);
        struct ofd *o = fdt_raw_ofd(raw);
        if (o && !fdt_raw_pumped(raw) && o->kexp && o->kph >= 0 && !same_file(fd, o->kph)) ofd_dup_over(o->kph, fd);
    }
    fdt_unlock();
}

/* --- what shows that the program does it ------------------------------------------------ */

typedef long (*io_submit_fn)(aio_context_t, long, struct iocb **);

/* libaio's io_submit (its return is the count or -errno). */
SHIM_EXPORT long io_submit(aio_context_t ctx, long nr, struct iocb **ios)
{
    static io_submit_fn next;
    if (!next) next = (io_submit_fn)dlsym(RTLD_NEXT, "io_submit");
    if (!next) return -ENOSYS;
    if (!atomic_load_explicit(&kio_on, memory_order_relaxed))
        for (long i = 0; ios && i < nr; i++)
            if (ios[i] && fdt_is_ours((int)ios[i]->aio_fildes)) {
                int saved = errno;
                kio_enable();
                errno = saved;
                break;
            }
    return next(ctx, nr, ios);
}

/* Every system call goes straight on (reading six arguments is what libc's own syscall()
 * does: the unused ones are whatever the registers hold); a new io_uring turns exposure
 * on. */
SHIM_EXPORT long syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
    long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
    va_end(ap);
    long r = REAL(syscall)(nr, a, b, c, d, e, f);
    if (__builtin_expect(nr == __NR_io_uring_setup, 0) && r >= 0) {
        int saved = errno;
        kio_enable();
        errno = saved;
    }
    return r;
}
