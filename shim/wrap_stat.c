/* wrap_stat.c - stat, statx, access and statfs families, including the pre-2.33 glibc
 * entry points (__xstat and friends) that older binaries still call. */
#define _GNU_SOURCE 1
#include "../core/sys.h"
#include "anc_dir.h"
#include "fdtable.h"
#include "guard.h"
#include "io.h"
#include "pump.h"
#include "real.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statfs.h>
#include <unistd.h>

int io_stat(struct route *r, struct stat *st, int nofollow)
{
    struct mount *m = r->m;
    if (!shim_mount_usable(m)) return -errno;
    uint64_t t0 = stats_now_ns();
    int res = IO_BACKEND(m->ops->stat(m->ms, r->key, st, nofollow && !r->trail));
    uint64_t t1 = stats_record(&m->stats, STK_STAT, t0, 0, res < 0);
    OPLOG(OL_STAT, -1, m, r->path, NULL, -1, 0, res, t0, t1, NULL);
    if (res == 0 && r->trail && !S_ISDIR(st->st_mode)) res = -ENOTDIR;
    return res;
}

int io_trail_check(struct route *r)
{
    if (!r->trail) return 0;
    struct stat st;
    int res = io_stat(r, &st, 0);
    return res == -ENOTDIR ? res : 0;
}

/* A directory above a mount prefix that does not exist on disk (the "/mnt" of /mnt/m)
 * is shown as an empty directory, as a mount point's parent would be. */
static void ancestor_stat(struct stat *st, const char *vpath)
{
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_uid = sys_uid();
    st->st_gid = sys_gid();
    st->st_blksize = 4096;
    st->st_ino = (ino_t)anc_dir_ino(vpath, NULL);
    st->st_dev = makedev(0, 0x5333); /* no real device */
}

/* fstatat semantics for all the path-based variants. */
static __attribute__((noinline)) int stat_routed(int dirfd, const char *path, struct stat *st, int flags)
{
    struct route r;
    switch (route_at(dirfd, path, &r, flags)) {
    case ROUTE_FOREIGN: {
        int res = REAL(fstatat)(dirfd, r.pass, st, flags);
        if (res < 0 && errno == ENOENT && dirfd != AT_FDCWD && route_real_dirfd(dirfd, path, &r) == ROUTE_OURS) {
            res = io_stat(&r, st, flags & AT_SYMLINK_NOFOLLOW);
            return res < 0 ? shim_fail(res) : 0;
        }
        if (res < 0 && errno == ENOENT && r.ancestor) { /* named by path or from a real descriptor */
            ancestor_stat(st, r.path);
            return 0;
        }
        return res;
    }
    case ROUTE_OURS: {
        int res = io_stat(&r, st, flags & AT_SYMLINK_NOFOLLOW);
        return res < 0 ? shim_fail(res) : 0;
    }
    default:
        return -1;
    }
}

static inline __attribute__((always_inline)) int stat_at(int dirfd, const char *path, struct stat *st, int flags)
{
    if (__builtin_expect(route_foreign_fast(dirfd, path), 1)) return REAL(fstatat)(dirfd, path, st, flags);
    return stat_routed(dirfd, path, st, flags);
}

static __attribute__((noinline, cold)) int fstat_ours(int fd, struct stat *st)
{
    int pumped;
    struct ofd *o = fdt_get_ex(fd, &pumped);
    if (!o) return shim_fail(-EBADF);
    int r = pumped ? pump_sync(o) : 0;
    if (r == 0) r = io_fstat(o, st);
    ofd_put(o);
    return r < 0 ? shim_fail(r) : 0;
}

SHIM_EXPORT int stat(const char *p, struct stat *st) { return stat_at(AT_FDCWD, p, st, 0); }
SHIM_EXPORT int stat64(const char *p, struct stat64 *st) { return stat_at(AT_FDCWD, p, (struct stat *)st, 0); }
SHIM_EXPORT int lstat(const char *p, struct stat *st) { return stat_at(AT_FDCWD, p, st, AT_SYMLINK_NOFOLLOW); }
SHIM_EXPORT int lstat64(const char *p, struct stat64 *st)
{
    return stat_at(AT_FDCWD, p, (struct stat *)st, AT_SYMLINK_NOFOLLOW);
}
SHIM_EXPORT int fstatat(int d, const char *p, struct stat *st, int fl) { return stat_at(d, p, st, fl); }
SHIM_EXPORT int fstatat64(int d, const char *p, struct stat64 *st, int fl)
{
    return stat_at(d, p, (struct stat *)st, fl);
}

SHIM_EXPORT int fstat(int fd, struct stat *st)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(fstat)(fd, st);
    return fstat_ours(fd, st);
}
SHIM_EXPORT int fstat64(int fd, struct stat64 *st)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(fstat)(fd, (struct stat *)st);
    return fstat_ours(fd, (struct stat *)st);
}

/* Legacy entry points: `ver` selects the struct layout, which on 64-bit Linux is the
 * kernel's and ours for every version glibc ever passed. */
SHIM_EXPORT int __xstat(int ver, const char *p, struct stat *st)
{
    struct route r;
    if (route_path(p, &r) == ROUTE_FOREIGN && real.__xstat) return real.__xstat(ver, r.pass, st);
    return stat_at(AT_FDCWD, p, st, 0);
}
SHIM_EXPORT int __xstat64(int ver, const char *p, struct stat64 *st) { return __xstat(ver, p, (struct stat *)st); }
SHIM_EXPORT int __lxstat(int ver, const char *p, struct stat *st)
{
    struct route r;
    if (route_path(p, &r) == ROUTE_FOREIGN && real.__lxstat) return real.__lxstat(ver, r.pass, st);
    return stat_at(AT_FDCWD, p, st, AT_SYMLINK_NOFOLLOW);
}
SHIM_EXPORT int __lxstat64(int ver, const char *p, struct stat64 *st)
{
    return __lxstat(ver, p, (struct stat *)st);
}
SHIM_EXPORT int __fxstat(int ver, int fd, struct stat *st)
{
    /* Never through our exported fstat: another interposer's fstat may call __fxstat. */
    if (fdt_is_ours(fd)) return fstat_ours(fd, st);
    return real.__fxstat ? real.__fxstat(ver, fd, st) : REAL(fstat)(fd, st);
}
SHIM_EXPORT int __fxstat64(int ver, int fd, struct stat64 *st) { return __fxstat(ver, fd, (struct stat *)st); }
SHIM_EXPORT int __fxstatat(int ver, int d, const char *p, struct stat *st, int fl)
{
    struct route r;
    if (route_at(d, p, &r, fl) == ROUTE_FOREIGN && real.__fxstatat) return real.__fxstatat(ver, d, r.pass, st, fl);
    return stat_at(d, p, st, fl);
}
SHIM_EXPORT int __fxstatat64(int ver, int d, const char *p, struct stat64 *st, int fl)
{
    return __fxstatat(ver, d, p, (struct stat *)st, fl);
}

static void stat_to_statx(const struct stat *st, unsigned mask, struct statx *sx)
{
    (void)mask;
    memset(sx, 0, sizeof *sx);
    sx->stx_mask = STATX_BASIC_STATS;
    sx->stx_blksize = (uint32_t)st->st_blksize;
    sx->stx_nlink = (uint32_t)st->st_nlink;
    sx->stx_uid = st->st_uid;
    sx->stx_gid = st->st_gid;
    sx->stx_mode = (uint16_t)st->st_mode;
    sx->stx_ino = st->st_ino;
    sx->stx_size = (uint64_t)st->st_size;
    sx->stx_blocks = (uint64_t)st->st_blocks;
    sx->stx_atime = (struct statx_timestamp){st->st_atim.tv_sec, (uint32_t)st->st_atim.tv_nsec, 0};
    sx->stx_mtime = (struct statx_timestamp){st->st_mtim.tv_sec, (uint32_t)st->st_mtim.tv_nsec, 0};
    sx->stx_ctime = (struct statx_timestamp){st->st_ctim.tv_sec, (uint32_t)st->st_ctim.tv_nsec, 0};
    sx->stx_dev_major = major(st->st_dev);
    sx->stx_dev_minor = minor(st->st_dev);
    sx->stx_rdev_major = major(st->st_rdev);
    sx->stx_rdev_minor = minor(st->st_rdev);
}

/* On a local backend the real statx of the real file is the truthful answer (birth
 * time, attributes); elsewhere it is built from stat. */
static int statx_ours(struct mount *m, const char *key, struct ofd *o, int flags, unsigned mask, struct statx *sx,
                      const char *path, int fd)
{
    uint64_t t0 = stats_now_ns();
    int lfd = o && o->fh && m->ops->local_fd ? m->ops->local_fd(o->fh) : -1;
    char lp[PATH_MAX];
    int r;
    if (lfd >= 0) {
        r = REAL(statx)(lfd, "", AT_EMPTY_PATH | (flags & ~AT_SYMLINK_NOFOLLOW), mask, sx) < 0 ? -errno : 0;
    } else if (m->ops->local_path && m->ops->local_path(m->ms, key, lp, sizeof lp) > 0) {
        r = REAL(statx)(AT_FDCWD, lp, flags & ~AT_EMPTY_PATH, mask, sx) < 0 ? -errno : 0;
    } else {
        struct stat st;
        r = IO_BACKEND(m->ops->stat(m->ms, key, &st, flags & AT_SYMLINK_NOFOLLOW));
        if (r == 0) stat_to_statx(&st, mask, sx);
    }
    uint64_t t1 = stats_record(&m->stats, STK_STAT, t0, 0, r < 0);
    OPLOG(o ? OL_FSTAT : OL_STAT, fd, m, path, o ? &o->oplog_path : NULL, -1, 0, r, t0, t1, NULL);
    return r < 0 ? shim_fail(r) : 0;
}

static __attribute__((noinline)) int statx_routed(int dirfd, const char *path, int flags, unsigned mask,
                                                   struct statx *sx)
{
    struct route r;
    if (path && path[0] == 0 && (flags & AT_EMPTY_PATH) && fdt_is_ours(dirfd)) {
        struct ofd *o = fdt_get(dirfd);
        if (!o) return shim_fail(-EBADF);
        int res = shim_mount_usable(o->m) ? statx_ours(o->m, ofd_key(o), o, flags, mask, sx, ofd_path(o), dirfd) : -1;
        ofd_put(o);
        return res;
    }
    switch (route_at(dirfd, path, &r, flags)) {
    case ROUTE_FOREIGN: {
        int res = REAL(statx)(dirfd, r.pass, flags, mask, sx);
        if (res < 0 && errno == ENOENT && dirfd != AT_FDCWD && route_real_dirfd(dirfd, path, &r) == ROUTE_OURS) {
            if (!shim_mount_usable(r.m)) return -1;
            int t = io_trail_check(&r);
            return t < 0 ? shim_fail(t) : statx_ours(r.m, r.key, NULL, flags, mask, sx, r.path, -1);
        }
        if (res < 0 && errno == ENOENT && r.ancestor) {
            struct stat st;
            ancestor_stat(&st, r.path);
            stat_to_statx(&st, mask, sx);
            return 0;
        }
        return res;
    }
    case ROUTE_OURS: {
        if (!shim_mount_usable(r.m)) return -1;
        int t = io_trail_check(&r);
        return t < 0 ? shim_fail(t) : statx_ours(r.m, r.key, NULL, flags, mask, sx, r.path, -1);
    }
    default:
        return -1;
    }
}

SHIM_EXPORT int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *sx)
{
    if (__builtin_expect(route_foreign_fast(dirfd, path), 1)) return REAL(statx)(dirfd, path, flags, mask, sx);
    return statx_routed(dirfd, path, flags, mask, sx);
}

/* --- access ---------------------------------------------------------------------- */

static __attribute__((noinline)) int access_routed(int dirfd, const char *path, int mode, int flags)
{
    struct route r;
    switch (route_at(dirfd, path, &r, flags)) {
    case ROUTE_FOREIGN: {
        int res = REAL(faccessat)(dirfd, r.pass, mode, flags);
        if (res < 0 && errno == ENOENT && r.ancestor) return mode & W_OK ? shim_fail(-EROFS) : 0;
        return res;
    }
    case ROUTE_OURS: {
        if (!shim_mount_usable(r.m)) return -1;
        int res = io_trail_check(&r);
        if (res < 0) {
        } else if (r.m->ops->access) {
            res = IO_BACKEND(r.m->ops->access(r.m->ms, r.key, mode, flags & ~AT_EMPTY_PATH));
        } else {
            struct stat st;
            res = io_stat(&r, &st, flags & AT_SYMLINK_NOFOLLOW);
        }
        return res < 0 ? shim_fail(res) : 0;
    }
    default:
        return -1;
    }
}

static inline __attribute__((always_inline)) int access_at(int dirfd, const char *path, int mode, int flags)
{
    if (__builtin_expect(route_foreign_fast(dirfd, path), 1)) return REAL(faccessat)(dirfd, path, mode, flags);
    return access_routed(dirfd, path, mode, flags);
}

SHIM_EXPORT int access(const char *p, int mode)
{
    if (__builtin_expect(route_foreign_fast(AT_FDCWD, p), 1)) return REAL(access)(p, mode); /* libc's own, cheaper */
    return access_routed(AT_FDCWD, p, mode, 0);
}
SHIM_EXPORT int faccessat(int d, const char *p, int mode, int fl) { return access_at(d, p, mode, fl); }
SHIM_EXPORT int euidaccess(const char *p, int mode) { return access_at(AT_FDCWD, p, mode, AT_EACCESS); }
SHIM_EXPORT int eaccess(const char *p, int mode) { return access_at(AT_FDCWD, p, mode, AT_EACCESS); }

/* --- statfs / statvfs ------------------------------------------------------------ */

#define S3SHIM_FS_MAGIC 0x53334653 /* "S3FS": f_type of a mount with no real filesystem */

static void statvfs_to_statfs(const struct statvfs *sv, struct statfs *sf)
{
    memset(sf, 0, sizeof *sf);
    sf->f_type = S3SHIM_FS_MAGIC;
    sf->f_bsize = (long)sv->f_bsize;
    sf->f_frsize = (long)sv->f_frsize;
    sf->f_blocks = sv->f_blocks;
    sf->f_bfree = sv->f_bfree;
    sf->f_bavail = sv->f_bavail;
    sf->f_files = sv->f_files;
    sf->f_ffree = sv->f_ffree;
    sf->f_namelen = (long)sv->f_namemax;
    sf->f_flags = (long)sv->f_flag;
}

/* Fill either a statfs or a statvfs for a key. */
static int fs_info(struct mount *m, const char *key, struct statfs *sf, struct statvfs *sv)
{
    if (!shim_mount_usable(m)) return -1;
    char lp[PATH_MAX];
    if (m->ops->local_path && m->ops->local_path(m->ms, key, lp, sizeof lp) > 0)
        return sf ? REAL(statfs)(lp, sf) : REAL(statvfs)(lp, sv);
    struct statvfs tmp;
    if (!m->ops->statvfs) return shim_fail(-ENOSYS);
    int r = IO_BACKEND(m->ops->statvfs(m->ms, key, sv ? sv : &tmp));
    if (r < 0) return shim_fail(r);
    if (sf) statvfs_to_statfs(&tmp, sf);
    return 0;
}

SHIM_EXPORT int statfs(const char *p, struct statfs *sf)
{
    struct route r;
    switch (route_path(p, &r)) {
    case ROUTE_FOREIGN:
        return REAL(statfs)(r.pass, sf);
    case ROUTE_OURS:
        return fs_info(r.m, r.key, sf, NULL);
    default:
        return -1;
    }
}
SHIM_EXPORT int statfs64(const char *p, struct statfs64 *sf) { return statfs(p, (struct statfs *)sf); }

SHIM_EXPORT int statvfs(const char *p, struct statvfs *sv)
{
    struct route r;
    switch (route_path(p, &r)) {
    case ROUTE_FOREIGN:
        return REAL(statvfs)(r.pass, sv);
    case ROUTE_OURS:
        return fs_info(r.m, r.key, NULL, sv);
    default:
        return -1;
    }
}
SHIM_EXPORT int statvfs64(const char *p, struct statvfs64 *sv) { return statvfs(p, (struct statvfs *)sv); }

static int fsinfo_fd(int fd, struct statfs *sf, struct statvfs *sv)
{
    struct ofd *o = fdt_get(fd);
    if (!o) return shim_fail(-EBADF);
    int lfd = o->fh && o->m->ops->local_fd ? o->m->ops->local_fd(o->fh) : -1;
    int r = lfd >= 0 ? (sf ? REAL(fstatfs)(lfd, sf) : REAL(fstatvfs)(lfd, sv)) : fs_info(o->m, ofd_key(o), sf, sv);
    ofd_put(o);
    return r;
}

SHIM_EXPORT int fstatfs(int fd, struct statfs *sf)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(fstatfs)(fd, sf);
    return fsinfo_fd(fd, sf, NULL);
}
SHIM_EXPORT int fstatfs64(int fd, struct statfs64 *sf) { return fstatfs(fd, (struct statfs *)sf); }

SHIM_EXPORT int fstatvfs(int fd, struct statvfs *sv)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(fstatvfs)(fd, sv);
    return fsinfo_fd(fd, NULL, sv);
}
SHIM_EXPORT int fstatvfs64(int fd, struct statvfs64 *sv) { return fstatvfs(fd, (struct statvfs *)sv); }
