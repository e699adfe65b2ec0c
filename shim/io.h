/* io.h - the operations behind the wrappers, shared by the wrapper files.
 *
 * Functions here take an ofd (with a reference held by the caller) and return a result
 * or -errno; they never touch errno themselves. Each records its statistics. */
#ifndef S3SHIM_IO_H
#define S3SHIM_IO_H

#include "../core/oplog.h"
#include "ofd.h"
#include "route.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Open a routed path: returns the new fd, or -1 with errno set. */
int io_open(struct route *r, int flags, mode_t mode);
/* A description was installed at fd from outside open() (inherited across exec). */
void io_adopted(int fd);
/* Close a shim descriptor (the slot, the placeholder, the last reference). 0 or -errno. */
int io_close_fd(int fd);

ssize_t io_read(struct ofd *o, void *buf, size_t n);
ssize_t io_pread(struct ofd *o, void *buf, size_t n, off_t off);
ssize_t io_write(struct ofd *o, const void *buf, size_t n);
ssize_t io_pwrite(struct ofd *o, const void *buf, size_t n, off_t off);
/* off < 0: the shared offset, advanced. */
ssize_t io_readv(struct ofd *o, const struct iovec *iov, int cnt, off_t off);
ssize_t io_writev(struct ofd *o, const struct iovec *iov, int cnt, off_t off);
off_t io_lseek(struct ofd *o, off_t off, int whence);
int io_fstat(struct ofd *o, struct stat *st);
int io_stat(struct route *r, struct stat *st, int nofollow);

/* A path written with a trailing '/', '/.' or '/..' must name a directory: 0 if it does
 * (or does not exist, for the caller to report), -ENOTDIR if it names something else. */
int io_trail_check(struct route *r);

/* Call an errno-returning function with the engine guard held. The program's errno comes
 * back as it was: the engine's own failed probes (a staged name that is not there, a
 * connection's EINPROGRESS) are not the program's business, and a successful call must not
 * change errno (readdir() callers tell the end of a directory from an error by it). */
#define IO_BACKEND(expr) \
    ({ \
        int _saved_errno = errno; \
        guard_enter(); \
        __auto_type _r = (expr); \
        guard_leave(); \
        errno = _saved_errno; \
        _r; \
    })

#endif
