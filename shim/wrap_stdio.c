/* wrap_stdio.c - fopen and friends on shim paths return genuine glibc streams built with
 * fopencookie(), so every stdio function (getc, getline, fread_unlocked, fseeko, ...)
 * works on them unchanged. fileno() is taught to answer for them. */
#define _GNU_SOURCE 1
#include "../core/log.h"
#include "fdtable.h"
#include "io.h"
#include "pump.h"
#include "real.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IO_IS_FILEBUF 0x2000 /* glibc libio: set on streams backed by a kernel fd */

/* A stream whose descriptor landed on fd 0-2 (fopen after close(1)) shares it with the
 * pump: its transfers go the pumped fd's way, in order with the pipe (pump.h). */
static int ck_pumped(int fd) { return fdt_raw_pumped(fdt_peek(fd)); }

static ssize_t ck_read(void *c, char *buf, size_t n)
{
    int fd = (int)(intptr_t)c;
    if (ck_pumped(fd)) return pump_read(fd, buf, n);
    struct ofd *o = fdt_get(fd);
    ssize_t r = o ? io_read(o, buf, n) : -EBADF;
    if (o) ofd_put(o);
    return r < 0 ? shim_fail((int)r) : r;
}

static ssize_t ck_write(void *c, const char *buf, size_t n)
{
    int fd = (int)(intptr_t)c;
    int pumped;
    struct ofd *o = fdt_get_ex(fd, &pumped);
    size_t done = 0;
    ssize_t r = 0;
    while (o && done < n) { /* stdio treats a short write as an error */
        if (pumped) {
            r = pump_write(fd, buf + done, n - done);
            if (r < 0) r = -errno;
        } else {
            r = io_write(o, buf + done, n - done);
        }
        if (r <= 0) break;
        done += (size_t)r;
    }
    if (o) ofd_put(o);
    if (!o) r = -EBADF;
    if (done) return (ssize_t)done;
    return r < 0 ? shim_fail((int)r) : 0;
}

static int ck_seek(void *c, off64_t *pos, int whence)
{
    int fd = (int)(intptr_t)c;
    struct ofd *o = fdt_get(fd);
    off_t r = !o ? -EBADF : ck_pumped(fd) ? pump_lseek(fd, o, *pos, whence) : io_lseek(o, *pos, whence);
    if (o) ofd_put(o);
    if (r < 0) return shim_fail((int)r);
    *pos = r;
    return 0;
}

static int ck_close(void *c)
{
    int r = io_close_fd((int)(intptr_t)c);
    return r < 0 ? shim_fail(r) : 0;
}

static const cookie_io_functions_t cookie_fns = {ck_read, ck_write, ck_seek, ck_close};

/* fopen mode string to open(2) flags; -1 if invalid. */
static int mode_flags(const char *mode)
{
    int fl;
    switch (mode[0]) {
    case 'r':
        fl = O_RDONLY;
        break;
    case 'w':
        fl = O_WRONLY | O_CREAT | O_TRUNC;
        break;
    case 'a':
        fl = O_WRONLY | O_CREAT | O_APPEND;
        break;
    default:
        return -1;
    }
    for (const char *m = mode + 1; *m && *m != ','; m++) {
        if (*m == '+') fl = (fl & ~O_ACCMODE) | O_RDWR;
        if (*m == 'x') fl |= O_EXCL;
        if (*m == 'e') fl |= O_CLOEXEC;
    }
    return fl;
}

static FILE *stream_for(int fd, const char *mode)
{
    char m[3] = {mode[0], strchr(mode, '+') ? '+' : '\0', '\0'};
    FILE *f = fopencookie((void *)(intptr_t)fd, m, cookie_fns);
    if (f) f->_fileno = fd; /* for fileno(); libio never uses it on cookie streams */
    return f;
}

static __attribute__((noinline)) FILE *fopen_routed(const char *path, const char *mode)
{
    struct route r;
    switch (route_path(path, &r)) {
    case ROUTE_FOREIGN:
        return REAL(fopen)(r.pass, mode);
    case ROUTE_ERROR:
        return NULL;
    default:
        break;
    }
    int fl = mode_flags(mode);
    if (fl < 0) {
        errno = EINVAL;
        return NULL;
    }
    int fd = io_open(&r, fl, 0666);
    if (fd < 0) return NULL;
    FILE *f = stream_for(fd, mode);
    if (!f) {
        int e = errno;
        io_close_fd(fd);
        errno = e;
    }
    return f;
}

static inline __attribute__((always_inline)) FILE *fopen_common(const char *path, const char *mode)
{
    if (__builtin_expect(route_foreign_fast(AT_FDCWD, path), 1)) return REAL(fopen)(path, mode);
    return fopen_routed(path, mode);
}

SHIM_EXPORT FILE *fopen(const char *p, const char *mode) { return fopen_common(p, mode); }
SHIM_EXPORT FILE *fopen64(const char *p, const char *mode) { return fopen_common(p, mode); }

SHIM_EXPORT FILE *fdopen(int fd, const char *mode)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(fdopen)(fd, mode);
    if (mode_flags(mode) < 0) {
        errno = EINVAL;
        return NULL;
    }
    return stream_for(fd, mode);
}

static int is_our_stream(FILE *f)
{
    return f && !(f->_flags & IO_IS_FILEBUF) && f->_fileno >= 0 && fdt_is_ours(f->_fileno);
}

SHIM_EXPORT int fileno(FILE *f)
{
    if (is_our_stream(f)) return f->_fileno;
    return REAL(fileno)(f);
}

SHIM_EXPORT int fileno_unlocked(FILE *f)
{
    if (is_our_stream(f)) return f->_fileno;
    return REAL(fileno_unlocked)(f);
}

/* freopen onto a mount path: glibc's own streams (stdin, stdout) reach the kernel through
 * internal symbols, so they cannot be pointed at a shim descriptor. Refused clearly. */
static FILE *freopen_common(const char *path, const char *mode, FILE *f)
{
    struct route r;
    int k = path ? route_path(path, &r) : ROUTE_FOREIGN;
    if (k == ROUTE_FOREIGN && !is_our_stream(f)) return REAL(freopen)(path ? r.pass : NULL, mode, f);
    if (k == ROUTE_ERROR) return NULL;
    slog_error("freopen(%s) onto an existing stream is not supported on a mount; use fopen", path ? path : "NULL");
    errno = ENOTSUP;
    return NULL;
}

SHIM_EXPORT FILE *freopen(const char *p, const char *mode, FILE *f) { return freopen_common(p, mode, f); }
SHIM_EXPORT FILE *freopen64(const char *p, const char *mode, FILE *f) { return freopen_common(p, mode, f); }
