/* wrap_node.c - special files and path limits under a mount: mknod, mkfifo (a plain file
 * is made, FIFOs and devices are refused), pathconf and fpathconf (glibc answers them
 * with statfs of the real path or of our placeholder descriptor). */
#define _GNU_SOURCE 1
#include "fdtable.h"
#include "io.h"
#include "real.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A FIFO or device node under a mount: no store of ours keeps one (EPERM, as vfat says).
 * glibc's mkfifo and mknod make the system call themselves: on the real path, before. */
static int mknod_at(int dirfd, const char *path, mode_t mode, dev_t dev)
{
    struct route r;
    switch (route_at(dirfd, path, &r, 0)) {
    case ROUTE_FOREIGN:
        return REAL(mknodat)(dirfd, r.pass, mode, dev);
    case ROUTE_OURS: {
        struct stat st;
        if (!shim_mount_usable(r.m)) return -1;
        if ((mode & S_IFMT) == 0 || (mode & S_IFMT) == S_IFREG) { /* a plain file (Python's os.mknod) */
            int fd = io_open(&r, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
            if (fd < 0) return -1;
            int c = io_close_fd(fd);
            return c < 0 ? shim_fail(c) : 0;
        }
        int e = io_stat(&r, &st, 1);
        if (e == 0) return shim_fail(-EEXIST);
        if (e != -ENOENT) return shim_fail(e);
        char parent[PATH_MAX]; /* a missing directory says ENOENT, as the kernel does */
        const char *sl = strrchr(r.path, '/');
        if (sl && sl > r.path && (size_t)(sl - r.path) < sizeof parent) {
            memcpy(parent, r.path, (size_t)(sl - r.path));
            parent[sl - r.path] = '\0';
            if (stat(parent, &st) < 0) return -1;
        }
        return shim_fail(-EPERM);
    }
    default:
        return -1;
    }
}

SHIM_EXPORT int mknodat(int d, const char *p, mode_t mode, dev_t dev) { return mknod_at(d, p, mode, dev); }
SHIM_EXPORT int mknod(const char *p, mode_t mode, dev_t dev) { return mknod_at(AT_FDCWD, p, mode, dev); }
SHIM_EXPORT int mkfifoat(int d, const char *p, mode_t mode) { return mknod_at(d, p, (mode & 07777) | S_IFIFO, 0); }
SHIM_EXPORT int mkfifo(const char *p, mode_t mode) { return mknod_at(AT_FDCWD, p, (mode & 07777) | S_IFIFO, 0); }

/* The limits of names in our stores (glibc asks statfs of the real path, or of our
 * placeholder descriptor): names of 255 bytes, paths of PATH_MAX, no hard links. */
static long conf_ours(int name)
{
    switch (name) {
    case _PC_NAME_MAX:
        return 255;
    case _PC_PATH_MAX:
        return PATH_MAX;
    case _PC_LINK_MAX:
        return 1;
    case _PC_FILESIZEBITS:
        return 64;
    case _PC_NO_TRUNC:
    case _PC_CHOWN_RESTRICTED:
        return 1;
    case _PC_PIPE_BUF:
        return PIPE_BUF;
    default:
        return REAL(pathconf)("/", name); /* (the rest does not depend on the file system) */
    }
}

SHIM_EXPORT long pathconf(const char *p, int name)
{
    struct route r;
    switch (route_path(p, &r)) {
    case ROUTE_FOREIGN:
        return REAL(pathconf)(r.pass, name);
    case ROUTE_OURS: {
        struct stat st;
        int e = shim_mount_usable(r.m) ? io_stat(&r, &st, 0) : -ENODEV;
        return e < 0 ? shim_fail(e) : conf_ours(name);
    }
    default:
        return -1;
    }
}

SHIM_EXPORT long fpathconf(int fd, int name)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(fpathconf)(fd, name);
    return conf_ours(name);
}
