/* real.h - the libc functions behind every interposed symbol, resolved once.
 *
 * All of them are looked up together, eagerly, by the constructor (real_resolve()).
 * Until then each slot holds a bootstrap stub of its own (real.c) that resolves them all
 * and forwards the call with its arguments untouched, so a call that arrives before the
 * constructor (another library's constructor doing I/O) still reaches libc. REAL(fn) is
 * therefore a plain indirect call with nothing to test: a pass-through wrapper is a load
 * and a jump. A function this libc lacks is NULL once resolved (the wrappers test those
 * few); called through its stub before that, it fails with ENOSYS. */
#ifndef S3SHIM_REAL_H
#define S3SHIM_REAL_H

#define _GNU_SOURCE 1
#include <dirent.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <utime.h>

struct timeval;
struct aiocb;
struct sigevent;

#define SHIM_REAL_FUNCS(X) \
    X(int, open, (const char *, int, ...)) \
    X(int, openat, (int, const char *, int, ...)) \
    X(ssize_t, read, (int, void *, size_t)) \
    X(ssize_t, pread, (int, void *, size_t, off_t)) \
    X(ssize_t, readv, (int, const struct iovec *, int)) \
    X(ssize_t, preadv, (int, const struct iovec *, int, off_t)) \
    X(ssize_t, preadv2, (int, const struct iovec *, int, off_t, int)) \
    X(ssize_t, write, (int, const void *, size_t)) \
    X(ssize_t, pwrite, (int, const void *, size_t, off_t)) \
    X(ssize_t, writev, (int, const struct iovec *, int)) \
    X(ssize_t, pwritev, (int, const struct iovec *, int, off_t)) \
    X(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int)) \
    X(int, close, (int)) \
    X(int, close_range, (unsigned, unsigned, int)) \
    X(void, closefrom, (int)) \
    X(off_t, lseek, (int, off_t, int)) \
    X(int, dup, (int)) \
    X(int, dup2, (int, int)) \
    X(int, dup3, (int, int, int)) \
    X(int, fcntl, (int, int, ...)) \
    X(int, fsync, (int)) \
    X(int, fdatasync, (int)) \
    X(int, ftruncate, (int, off_t)) \
    X(int, truncate, (const char *, off_t)) \
    X(int, posix_fadvise, (int, off_t, off_t, int)) \
    X(int, fallocate, (int, int, off_t, off_t)) \
    X(int, posix_fallocate, (int, off_t, off_t)) \
    X(int, stat, (const char *, struct stat *)) \
    X(int, lstat, (const char *, struct stat *)) \
    X(int, fstat, (int, struct stat *)) \
    X(int, fstatat, (int, const char *, struct stat *, int)) \
    X(int, statx, (int, const char *, int, unsigned, struct statx *)) \
    X(int, access, (const char *, int)) \
    X(int, faccessat, (int, const char *, int, int)) \
    X(int, euidaccess, (const char *, int)) \
    X(int, statfs, (const char *, struct statfs *)) \
    X(int, fstatfs, (int, struct statfs *)) \
    X(int, statvfs, (const char *, struct statvfs *)) \
    X(int, fstatvfs, (int, struct statvfs *)) \
    X(int, unlink, (const char *)) \
    X(int, unlinkat, (int, const char *, int)) \
    X(int, rename, (const char *, const char *)) \
    X(int, renameat, (int, const char *, int, const char *)) \
    X(int, renameat2, (int, const char *, int, const char *, unsigned)) \
    X(int, mkdir, (const char *, mode_t)) \
    X(int, mkdirat, (int, const char *, mode_t)) \
    X(int, rmdir, (const char *)) \
    X(int, chdir, (const char *)) \
    X(int, fchdir, (int)) \
    X(char *, getcwd, (char *, size_t)) \
    X(char *, realpath, (const char *, char *)) \
    X(char *, canonicalize_file_name, (const char *)) \
    X(ssize_t, readlink, (const char *, char *, size_t)) \
    X(ssize_t, readlinkat, (int, const char *, char *, size_t)) \
    X(int, utimensat, (int, const char *, const struct timespec *, int)) \
    X(int, futimens, (int, const struct timespec *)) \
    X(int, utime, (const char *, const struct utimbuf *)) \
    X(int, utimes, (const char *, const struct timeval *)) \
    X(int, lutimes, (const char *, const struct timeval *)) \
    X(int, fchmod, (int, mode_t)) \
    X(int, chmod, (const char *, mode_t)) \
    X(mode_t, umask, (mode_t)) \
    X(int, setuid, (uid_t)) \
    X(int, setgid, (gid_t)) \
    X(int, seteuid, (uid_t)) \
    X(int, setegid, (gid_t)) \
    X(int, setreuid, (uid_t, uid_t)) \
    X(int, setregid, (gid_t, gid_t)) \
    X(int, setresuid, (uid_t, uid_t, uid_t)) \
    X(int, setresgid, (gid_t, gid_t, gid_t)) \
    X(int, fchmodat, (int, const char *, mode_t, int)) \
    X(int, fchown, (int, uid_t, gid_t)) \
    X(int, chown, (const char *, uid_t, gid_t)) \
    X(int, lchown, (const char *, uid_t, gid_t)) \
    X(int, fchownat, (int, const char *, uid_t, gid_t, int)) \
    X(ssize_t, getxattr, (const char *, const char *, void *, size_t)) \
    X(ssize_t, lgetxattr, (const char *, const char *, void *, size_t)) \
    X(ssize_t, fgetxattr, (int, const char *, void *, size_t)) \
    X(int, setxattr, (const char *, const char *, const void *, size_t, int)) \
    X(int, lsetxattr, (const char *, const char *, const void *, size_t, int)) \
    X(int, fsetxattr, (int, const char *, const void *, size_t, int)) \
    X(int, removexattr, (const char *, const char *)) \
    X(int, lremovexattr, (const char *, const char *)) \
    X(int, fremovexattr, (int, const char *)) \
    X(ssize_t, listxattr, (const char *, char *, size_t)) \
    X(ssize_t, llistxattr, (const char *, char *, size_t)) \
    X(ssize_t, flistxattr, (int, char *, size_t)) \
    X(int, symlink, (const char *, const char *)) \
    X(int, symlinkat, (const char *, int, const char *)) \
    X(int, link, (const char *, const char *)) \
    X(int, linkat, (int, const char *, int, const char *, int)) \
    X(int, flock, (int, int)) \
    X(int, isatty, (int)) \
    X(int, socketpair, (int, int, int, int[2])) \
    X(FILE *, fopen, (const char *, const char *)) \
    X(FILE *, freopen, (const char *, const char *, FILE *)) \
    X(FILE *, fdopen, (int, const char *)) \
    X(int, fileno, (FILE *)) \
    X(int, fileno_unlocked, (FILE *)) \
    X(DIR *, opendir, (const char *)) \
    X(DIR *, fdopendir, (int)) \
    X(struct dirent *, readdir, (DIR *)) \
    X(int, readdir_r, (DIR *, struct dirent *, struct dirent **)) \
    X(int, closedir, (DIR *)) \
    X(int, dirfd, (DIR *)) \
    X(void, rewinddir, (DIR *)) \
    X(void, seekdir, (DIR *, long)) \
    X(long, telldir, (DIR *)) \
    X(int, scandir, (const char *, struct dirent ***, int (*)(const struct dirent *), \
                     int (*)(const struct dirent **, const struct dirent **))) \
    X(ssize_t, copy_file_range, (int, off_t *, int, off_t *, size_t, unsigned)) \
    X(ssize_t, sendfile, (int, int, off_t *, size_t)) \
    X(ssize_t, splice, (int, off_t *, int, off_t *, size_t, unsigned)) \
    X(int, ioctl, (int, unsigned long, ...)) \
    X(long, syscall, (long, ...)) \
    X(int, aio_read, (struct aiocb *)) \
    X(int, aio_write, (struct aiocb *)) \
    X(int, aio_fsync, (int, struct aiocb *)) \
    X(int, aio_cancel, (int, struct aiocb *)) \
    X(int, lio_listio, (int, struct aiocb *const[], int, struct sigevent *)) \
    X(void *, mmap, (void *, size_t, int, int, int, off_t)) \
    X(int, msync, (void *, size_t, int)) \
    X(int, mkostemps, (char *, int, int)) \
    X(char *, mkdtemp, (char *)) \
    X(int, execve, (const char *, char *const *, char *const *)) \
    X(int, execvpe, (const char *, char *const *, char *const *)) \
    X(int, fexecve, (int, char *const *, char *const *)) \
    X(int, execveat, (int, const char *, char *const *, char *const *, int)) \
    X(pid_t, fork, (void)) \
    X(int, clone, (int (*)(void *), void *, int, void *, ...)) \
    X(int, posix_spawn, (pid_t *, const char *, const posix_spawn_file_actions_t *, \
                         const posix_spawnattr_t *, char *const *, char *const *)) \
    X(int, posix_spawnp, (pid_t *, const char *, const posix_spawn_file_actions_t *, \
                          const posix_spawnattr_t *, char *const *, char *const *)) \
    X(int, system, (const char *)) \
    X(FILE *, popen, (const char *, const char *)) \
    X(int, lockf, (int, int, off_t)) \
    X(int, syncfs, (int)) \
    X(int, sync_file_range, (int, off_t, off_t, unsigned)) \
    X(ssize_t, readahead, (int, off_t, size_t)) \
    X(long, pathconf, (const char *, int)) \
    X(long, fpathconf, (int, int)) \
    X(int, mknodat, (int, const char *, mode_t, dev_t)) \
    X(int, scandirat, (int, const char *, struct dirent ***, int (*)(const struct dirent *), \
                       int (*)(const struct dirent **, const struct dirent **))) \
    X(int, __xstat, (int, const char *, struct stat *)) \
    X(int, __lxstat, (int, const char *, struct stat *)) \
    X(int, __fxstat, (int, int, struct stat *)) \
    X(int, __fxstatat, (int, int, const char *, struct stat *, int))

#define SHIM_REAL_DECL(ret, name, args) ret(*name) args;
struct shim_real {
    SHIM_REAL_FUNCS(SHIM_REAL_DECL)
};
#undef SHIM_REAL_DECL

extern struct shim_real real __attribute__((visibility("hidden"))); /* rip-relative, no GOT load */
void real_resolve(void);

#define REAL(fn) (*real.fn)

/* Exported wrapper. The library is built with hidden visibility; only these leave it. */
#define SHIM_EXPORT __attribute__((visibility("default")))

#endif
