/* sys.h - how the engine reaches the kernel.
 *
 * In libs3shim.so the shim exports open, pread, fstat and the rest of the file API, so a
 * plain call to open() from the engine would bind to the shim's own wrapper and come
 * back out through the re-entrancy guard: engine -> shim -> libc on every engine system
 * call. Instead the engine calls the functions the shim interposes through `sys`, a
 * table of the real entry points: the shim fills it with what it resolved for itself
 * (shim/real.c) before any engine code runs; a program that links the engine without the
 * shim (the s3shim command, the unit tests) keeps libc's own functions, the table's
 * initial values. Calls the shim does not interpose (sockets, mmap of our own buffers,
 * threads, eventfd) are made directly, and so are those of libcurl, OpenSSL, liburing
 * and expat, which the guard (shim/guard.h) sends to libc.
 *
 * Name a function here before the engine uses one that the shim interposes; a test
 * (tests/check-sys.sh, in make test) fails if an engine object calls such a symbol
 * directly. */
#ifndef S3SHIM_SYS_H
#define S3SHIM_SYS_H

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/types.h>

struct statx;
struct iovec;

/* Is the process running under valgrind (which cannot follow io_uring, and reports the
 * pass-through test's reads past a path's end)? Cached after the first call. */
int sys_under_valgrind(void);

#define SYS_CALLS(X) \
    X(int, open, (const char *, int, ...)) \
    X(int, openat, (int, const char *, int, ...)) \
    X(ssize_t, read, (int, void *, size_t)) \
    X(ssize_t, write, (int, const void *, size_t)) \
    X(ssize_t, pread, (int, void *, size_t, off_t)) \
    X(ssize_t, pwrite, (int, const void *, size_t, off_t)) \
    X(ssize_t, pwritev, (int, const struct iovec *, int, off_t)) \
    X(int, close, (int)) \
    X(int, fcntl, (int, int, ...)) \
    X(int, ioctl, (int, unsigned long, ...)) \
    X(int, fsync, (int)) \
    X(int, fdatasync, (int)) \
    X(int, ftruncate, (int, off_t)) \
    X(int, fallocate, (int, int, off_t, off_t)) \
    X(int, posix_fadvise, (int, off_t, off_t, int)) \
    X(int, fstat, (int, struct stat *)) \
    X(int, fstatat, (int, const char *, struct stat *, int)) \
    X(int, statx, (int, const char *, int, unsigned, struct statx *)) \
    X(int, fstatfs, (int, struct statfs *)) \
    X(int, fstatvfs, (int, struct statvfs *)) \
    X(int, faccessat, (int, const char *, int, int)) \
    X(int, futimens, (int, const struct timespec *)) \
    X(int, utimensat, (int, const char *, const struct timespec *, int)) \
    X(int, mkdirat, (int, const char *, mode_t)) \
    X(int, unlinkat, (int, const char *, int)) \
    X(int, renameat2, (int, const char *, int, const char *, unsigned)) \
    X(int, unlink, (const char *)) \
    X(void *, mmap, (void *, size_t, int, int, int, off_t)) \
    X(DIR *, opendir, (const char *)) \
    X(DIR *, fdopendir, (int)) \
    X(int, dirfd, (DIR *)) \
    X(struct dirent *, readdir, (DIR *)) \
    X(int, closedir, (DIR *)) \
    X(int, stat, (const char *, struct stat *)) \
    X(int, mkdir, (const char *, mode_t)) \
    X(int, dup, (int)) \
    X(int, dup3, (int, int, int)) \
    X(int, flock, (int, int)) \
    X(ssize_t, readlink, (const char *, char *, size_t)) \
    X(ssize_t, readlinkat, (int, const char *, char *, size_t)) \
    X(long, syscall, (long, ...))

#define SYS_FIELD(ret, name, args) ret(*name) args;
struct sys_calls {
    SYS_CALLS(SYS_FIELD)
};
#undef SYS_FIELD

extern struct sys_calls sys;

/* A small file (a /proc entry) read whole through the table: at most cap - 1 bytes into
 * buf, NUL-terminated. Returns the length, or -1 when it cannot be opened or read. */
ssize_t sys_read_small(const char *path, char *buf, size_t cap);
/* A new open file description of what fd is open on (/proc/self/fd/N, with flags): a
 * descriptor of its own access mode, locks or offset. -1 and errno if it cannot be. */
int sys_reopen(int fd, int flags);

/* The process's umask, for stores that give modes themselves (block://): read from
 * /proc/self/status once, then kept current by the shim's umask() (sys_umask_set), since
 * reading it back through umask(2) would change it under the program's other threads. */
mode_t sys_umask(void);
void sys_umask_set(mode_t mask);
/* The process's real uid and gid, shown as every object's owner: asked of the kernel
 * once, again after the shim's set*id wrappers call sys_ids_changed (two system calls
 * of the seventeen a small file's create cost under the shim, in a VM where each is a
 * microsecond). A change made by a raw syscall(SYS_setuid) is not seen. */
uid_t sys_uid(void);
gid_t sys_gid(void);
void sys_ids_changed(void);

#endif
