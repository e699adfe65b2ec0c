/* wrap_aio.c - POSIX AIO (aio_read, aio_write, aio_fsync, lio_listio, aio_cancel) on
 * shim descriptors.
 *
 * glibc runs these requests on threads of its own that call its internal pread, which
 * no interposer sees: on a shim descriptor (an O_PATH placeholder) every one failed with
 * EBADF. Here a request on a shim path is served by the engine on the calling thread, and
 * is complete when the call returns, which POSIX allows. glibc's aio_error, aio_return
 * and aio_suspend read the request's own status fields, which are filled in here before
 * its notification (signal or thread) is delivered, so they need no wrapper. Requests on
 * other descriptors go to glibc unchanged. */
#define _GNU_SOURCE 1
#include "fdtable.h"
#include "real.h"
#include "shim.h"

#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct notify_call {
    void (*fn)(union sigval);
    union sigval v;
};

static void *notify_thread(void *arg)
{
    struct notify_call c = *(struct notify_call *)arg;
    free(arg);
    c.fn(c.v);
    return NULL;
}

/* Deliver a completion's notification as glibc would: a queued signal with si_code
 * SI_ASYNCIO (to the process, or to one thread), or a new detached thread. */
static void notify(const struct sigevent *se)
{
    if (!se || se->sigev_notify == SIGEV_NONE) return;
    int saved = errno;
    if (se->sigev_notify == SIGEV_SIGNAL || se->sigev_notify == SIGEV_THREAD_ID) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        si.si_signo = se->sigev_signo;
        si.si_code = SI_ASYNCIO;
        si.si_pid = getpid();
        si.si_uid = getuid();
        si.si_value = se->sigev_value;
        if (se->sigev_notify == SIGEV_SIGNAL)
            syscall(SYS_rt_sigqueueinfo, si.si_pid, se->sigev_signo, &si);
        else
            syscall(SYS_rt_tgsigqueueinfo, si.si_pid, se->_sigev_un._tid, se->sigev_signo, &si);
    } else if (se->sigev_notify == SIGEV_THREAD && se->sigev_notify_function) {
        /* the program's attributes as they are (as glibc does), else detached */
        struct notify_call *c = malloc(sizeof *c);
        pthread_attr_t own, *at = se->sigev_notify_attributes;
        if (!at && pthread_attr_init(&own) == 0 && pthread_attr_setdetachstate(&own, PTHREAD_CREATE_DETACHED) == 0)
            at = &own;
        pthread_t t;
        if (c) {
            c->fn = se->sigev_notify_function;
            c->v = se->sigev_value;
            if (pthread_create(&t, at, notify_thread, c) != 0) free(c);
        }
        if (at == &own) pthread_attr_destroy(&own);
    }
    errno = saved;
}

/* Serve one request on a shim descriptor through the interposed calls; its status goes
 * into the aiocb as glibc keeps it. */
static void serve(struct aiocb *cb, int op)
{
    int saved = errno;
    ssize_t r;
    void *buf = (void *)cb->aio_buf;
    int fl;
    switch (op) {
    case LIO_READ:
        r = pread(cb->aio_fildes, buf, cb->aio_nbytes, cb->aio_offset);
        break;
    case LIO_WRITE: /* O_APPEND: at the end, as glibc does it */
        fl = fcntl(cb->aio_fildes, F_GETFL);
        r = fl >= 0 && (fl & O_APPEND) ? write(cb->aio_fildes, buf, cb->aio_nbytes)
                                       : pwrite(cb->aio_fildes, buf, cb->aio_nbytes, cb->aio_offset);
        break;
    case O_DSYNC:
        r = fdatasync(cb->aio_fildes);
        break;
    default:
        r = fsync(cb->aio_fildes);
        break;
    }
    cb->__return_value = r;
    cb->__error_code = r < 0 ? errno : 0;
    errno = saved;
}

static int submit(struct aiocb *cb, int op)
{
    if (cb->aio_reqprio < 0) return shim_fail(-EINVAL);
    serve(cb, op); /* (a bad offset fails there, through aio_error, as with glibc) */
    notify(&cb->aio_sigevent);
    return 0;
}

SHIM_EXPORT int aio_read(struct aiocb *cb)
{
    if (__builtin_expect(!fdt_is_ours(cb->aio_fildes), 1)) return REAL(aio_read)(cb);
    return submit(cb, LIO_READ);
}

SHIM_EXPORT int aio_write(struct aiocb *cb)
{
    if (__builtin_expect(!fdt_is_ours(cb->aio_fildes), 1)) return REAL(aio_write)(cb);
    return submit(cb, LIO_WRITE);
}

SHIM_EXPORT int aio_fsync(int op, struct aiocb *cb)
{
    if (__builtin_expect(!fdt_is_ours(cb->aio_fildes), 1)) return REAL(aio_fsync)(op, cb);
    if (op != O_SYNC && op != O_DSYNC) return shim_fail(-EINVAL);
    return submit(cb, op);
}

/* Every request on a shim descriptor is complete by the time its submission returned. */
SHIM_EXPORT int aio_cancel(int fd, struct aiocb *cb)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(aio_cancel)(fd, cb);
    if (cb && cb->aio_fildes != fd) return shim_fail(-EINVAL);
    return AIO_ALLDONE;
}

SHIM_EXPORT int lio_listio(int mode, struct aiocb *const list[], int nent, struct sigevent *sig)
{
    int ours = 0;
    for (int i = 0; i < nent; i++) ours += list[i] && list[i]->aio_lio_opcode != LIO_NOP && fdt_is_ours(list[i]->aio_fildes);
    if (__builtin_expect(!ours, 1)) return REAL(lio_listio)(mode, list, nent, sig);
    if ((mode != LIO_WAIT && mode != LIO_NOWAIT) || nent < 0) return shim_fail(-EINVAL);
    /* ours first, complete; the rest to glibc, which signals the list when they are done */
    struct aiocb **rest = nent - ours ? malloc((size_t)(nent - ours) * sizeof *rest) : NULL;
    if (nent - ours && !rest) return shim_fail(-EAGAIN);
    int nrest = 0, failed = 0;
    for (int i = 0; i < nent; i++) {
        struct aiocb *cb = list[i];
        if (!cb || cb->aio_lio_opcode == LIO_NOP) continue;
        if (!fdt_is_ours(cb->aio_fildes)) {
            rest[nrest++] = cb;
            continue;
        }
        if (cb->aio_lio_opcode != LIO_READ && cb->aio_lio_opcode != LIO_WRITE) {
            cb->__error_code = EINVAL;
            cb->__return_value = -1;
            failed = 1;
            continue;
        }
        serve(cb, cb->aio_lio_opcode);
        failed |= cb->__error_code != 0;
        notify(&cb->aio_sigevent);
    }
    int r = 0;
    if (nrest)
        r = REAL(lio_listio)(mode, rest, nrest, sig);
    else if (mode == LIO_NOWAIT)
        notify(sig);
    free(rest);
    if (r == 0 && failed && mode == LIO_WAIT) return shim_fail(-EIO);
    return r;
}

/* The 64-bit names are the same calls on 64-bit systems (struct aiocb64 is struct aiocb). */
SHIM_EXPORT int aio_read64(struct aiocb64 *cb) { return aio_read((struct aiocb *)cb); }
SHIM_EXPORT int aio_write64(struct aiocb64 *cb) { return aio_write((struct aiocb *)cb); }
SHIM_EXPORT int aio_fsync64(int op, struct aiocb64 *cb) { return aio_fsync(op, (struct aiocb *)cb); }
SHIM_EXPORT int aio_cancel64(int fd, struct aiocb64 *cb) { return aio_cancel(fd, (struct aiocb *)cb); }
SHIM_EXPORT int lio_listio64(int mode, struct aiocb64 *const list[restrict], int nent, struct sigevent *restrict sig)
{
    return lio_listio(mode, (struct aiocb *const *)list, nent, sig);
}
