/* backend_file.c - file:///DIR: plain buffered POSIX files below DIR.
 *
 * This is the reference arm of every A/B comparison, so it does exactly what the kernel
 * would do for the same call on DIR, and nothing clever. Every lookup is confined below
 * DIR with openat2(RESOLVE_BENEATH): a symlink inside DIR cannot lead any call outside
 * it. Calls that act on a name (unlink, mkdir, rename, lstat) resolve the parent that
 * way and then act on the last component relative to it. */
#include "backend_file.h"
#include "../sys.h"
#include "../efd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct fm_file {
    int fd;
};

static const char *rel(const char *key) { return key[0] ? key : "."; }

static int neg_errno(int r) { return r < 0 ? -errno : r; }

/* Flags open(2) acts on; it ignores other bits, openat2 refuses them. */
#define OPEN_FLAGS_KNOWN \
    (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECT | \
     O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_PATH | O_TMPFILE | FASYNC)

int fm_open_beneath(struct file_mount *fm, const char *key, int flags, mode_t mode)
{
    flags &= OPEN_FLAGS_KNOWN;
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = sys.syscall(SYS_openat2, fm->rootfd, rel(key), &how, sizeof how);
    if (fd < 0 && errno == ENOSYS) /* kernels before 5.6 */
        fd = sys.openat(fm->rootfd, rel(key), flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : (int)fd;
}

/* The directory holding key's last component, opened beneath the root, and that
 * component. Returns an O_PATH fd (caller closes) or -errno. */
static int parent_beneath(struct file_mount *fm, const char *key, char *leaf, size_t leaflen)
{
    const char *slash = strrchr(key, '/');
    if (!slash) {
        if (snprintf(leaf, leaflen, "%s", rel(key)) >= (int)leaflen) return -ENAMETOOLONG;
        int fd = sys.fcntl(fm->rootfd, F_DUPFD_CLOEXEC, 0);
        return fd < 0 ? -errno : fd;
    }
    if (snprintf(leaf, leaflen, "%s", slash + 1) >= (int)leaflen) return -ENAMETOOLONG;
    size_t n = (size_t)(slash - key);
    char dir[n + 1];
    memcpy(dir, key, n);
    dir[n] = '\0';
    return fm_open_beneath(fm, dir, O_PATH | O_DIRECTORY, 0);
}

/* "/proc/self/fd/N": lets path-only calls act on an fd resolved beneath the root. */
static void fd_path(int fd, char *buf, size_t len) { snprintf(buf, len, "/proc/self/fd/%d", fd); }

int fm_root_open(struct file_mount *fm, const char *scheme, const char *where, char *err, size_t errlen)
{
    if (where[0] != '/') {
        snprintf(err, errlen, "%s:// needs an absolute directory (%s:///DIR), got '%s'", scheme, scheme, where);
        return -EINVAL;
    }
    int fd = sys.open(where, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open directory '%s': %s", where, strerror(e));
        return -e;
    }
    if (!(fm->root = strdup(where))) {
        sys.close(fd);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    fm->rootfd = efd_park(fd);
    return 0;
}

void fm_root_close(struct file_mount *fm)
{
    efd_close(fm->rootfd);
    free(fm->root);
}

static int fm_mount(const char *where, const struct cfg *cfg, struct stats_set *stats, void **ms, char *err,
                    size_t errlen)
{
    (void)cfg, (void)stats;
    struct file_mount *fm = calloc(1, sizeof *fm);
    if (!fm) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int r = fm_root_open(fm, "file", where, err, errlen);
    if (r < 0) {
        free(fm);
        return r;
    }
    *ms = fm;
    return 0;
}

static void fm_unmount(void *ms)
{
    fm_root_close(ms);
    free(ms);
}

static int fm_open(void *ms, const char *key, int flags, mode_t mode, void **fhp)
{
    int fd = fm_open_beneath(ms, key, flags, mode);
    if (fd < 0) return fd;
    struct stat st;
    if (!(flags & O_DIRECTORY) && sys.fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        sys.close(fd);
        return -EISDIR; /* directories are the caller's business (opendir) */
    }
    struct fm_file *fh = malloc(sizeof *fh);
    if (!fh) {
        sys.close(fd);
        return -ENOMEM;
    }
    fh->fd = efd_park(fd);
    *fhp = fh;
    return 0;
}

#define FD(fh) (((struct fm_file *)(fh))->fd)

static ssize_t fm_pread(void *fh, void *buf, size_t len, off_t off)
{
    ssize_t n = sys.pread(FD(fh), buf, len, off);
    return n < 0 ? -errno : n;
}

static ssize_t fm_pwrite(void *fh, const void *buf, size_t len, off_t off)
{
    ssize_t n = sys.pwrite(FD(fh), buf, len, off);
    return n < 0 ? -errno : n;
}

static int fm_fsync(void *fh, int datasync)
{
    return neg_errno(datasync ? sys.fdatasync(FD(fh)) : sys.fsync(FD(fh)));
}

static int fm_ftruncate(void *fh, off_t len) { return neg_errno(sys.ftruncate(FD(fh), len)); }
static int fm_fstat(void *fh, struct stat *st) { return neg_errno(sys.fstat(FD(fh), st)); }

static int fm_fallocate(void *fh, int mode, off_t off, off_t len)
{
    return neg_errno(sys.fallocate(FD(fh), mode, off, len));
}

static int fm_fadvise(void *fh, off_t off, off_t len, int advice)
{
    return -sys.posix_fadvise(FD(fh), off, len, advice);
}

static int fm_futimens(void *fh, const struct timespec ts[2])
{
    return neg_errno(sys.futimens(FD(fh), ts));
}

static int fm_close(void *fh)
{
    efd_close(FD(fh)); /* close(2) of a regular file reports nothing useful after EINTR */
    free(fh);
    return 0;
}

static int fm_local_fd(void *fh) { return FD(fh); }

static int fm_kernel_io(void *fh, int direct)
{
    (void)direct; /* the file's own descriptor takes both */
    return FD(fh);
}

static int fm_open_fd(void *ms, int fd, int flags, void **fhp)
{
    (void)ms, (void)flags;
    int own = sys.fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return -errno;
    struct fm_file *fh = malloc(sizeof *fh);
    if (!fh) {
        sys.close(own);
        return -ENOMEM;
    }
    fh->fd = efd_park(own);
    *fhp = fh;
    return 0;
}

#define ROOT(ms) (((struct file_mount *)(ms))->rootfd)

/* Run `expr` with P (parent fd) and L (leaf name) for key, then close P. */
#define AT_PARENT(ms, key, expr) \
    ({ \
        char L[256]; \
        int P = parent_beneath(ms, key, L, sizeof L); \
        int r_ = P; \
        if (P >= 0) { \
            r_ = neg_errno(expr); \
            sys.close(P); \
        } \
        r_; \
    })

int fm_stat(void *ms, const char *key, struct stat *st, int nofollow)
{
    if (nofollow && key[0]) return AT_PARENT(ms, key, sys.fstatat(P, L, st, AT_SYMLINK_NOFOLLOW));
    int fd = fm_open_beneath(ms, key, O_PATH, 0);
    if (fd < 0) return fd;
    int r = neg_errno(sys.fstat(fd, st));
    sys.close(fd);
    return r;
}

int fm_access(void *ms, const char *key, int mode, int flags)
{
    int fd = fm_open_beneath(ms, key, O_PATH | ((flags & AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0), 0);
    if (fd < 0) return fd;
    int r = neg_errno(sys.faccessat(fd, "", mode, (flags & AT_EACCESS) | AT_EMPTY_PATH));
    sys.close(fd);
    return r;
}

int fm_unlink(void *ms, const char *key) { return AT_PARENT(ms, key, sys.unlinkat(P, L, 0)); }

int fm_rename(void *ms, const char *from, const char *to, unsigned flags)
{
    char L2[256];
    int P2 = parent_beneath(ms, to, L2, sizeof L2);
    if (P2 < 0) return P2;
    int r = AT_PARENT(ms, from, sys.renameat2(P, L, P2, L2, flags));
    sys.close(P2);
    return r;
}

int fm_mkdir(void *ms, const char *key, mode_t mode)
{
    if (!key[0]) return -EEXIST;
    return AT_PARENT(ms, key, sys.mkdirat(P, L, mode));
}

int fm_rmdir(void *ms, const char *key)
{
    if (!key[0]) return -EBUSY; /* the mount root itself */
    return AT_PARENT(ms, key, sys.unlinkat(P, L, AT_REMOVEDIR));
}

int fm_truncate(void *ms, const char *key, off_t len)
{
    int fd = fm_open_beneath(ms, key, O_WRONLY, 0);
    if (fd < 0) return fd;
    int r = neg_errno(sys.ftruncate(fd, len));
    sys.close(fd);
    return r;
}

int fm_utimens(void *ms, const char *key, const struct timespec ts[2], int nofollow)
{
    if (nofollow && key[0]) return AT_PARENT(ms, key, sys.utimensat(P, L, ts, AT_SYMLINK_NOFOLLOW));
    int fd = fm_open_beneath(ms, key, O_PATH, 0);
    if (fd < 0) return fd;
    char p[64];
    fd_path(fd, p, sizeof p);
    int r = neg_errno(sys.utimensat(AT_FDCWD, p, ts, 0));
    sys.close(fd);
    return r;
}

int fm_statvfs(void *ms, const char *key, struct statvfs *sv)
{
    (void)key;
    return neg_errno(sys.fstatvfs(ROOT(ms), sv));
}

int fm_local_path(void *ms, const char *key, char *buf, size_t len)
{
    struct file_mount *fm = ms;
    int n = key[0] ? snprintf(buf, len, "%s/%s", fm->root, key) : snprintf(buf, len, "%s", fm->root);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : n;
}

int fm_opendir(void *ms, const char *key, void **dhp)
{
    int fd = fm_open_beneath(ms, key, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) return fd;
    DIR *d = sys.fdopendir(fd);
    if (!d) {
        int e = errno;
        sys.close(fd);
        return -e;
    }
    *dhp = d;
    return 0;
}

int fm_readdir(void *dh, struct bk_dirent *ent)
{
    errno = 0;
    struct dirent *d = sys.readdir(dh);
    if (!d) return errno ? -errno : 0;
    ent->ino = d->d_ino;
    ent->type = d->d_type;
    snprintf(ent->name, sizeof ent->name, "%s", d->d_name);
    return 1;
}

void fm_closedir(void *dh) { sys.closedir(dh); }

const struct backend_ops bk_file_ops = {
    .scheme = "file",
    .mount = fm_mount,
    .unmount = fm_unmount,
    .open = fm_open,
    .pread = fm_pread,
    .pwrite = fm_pwrite,
    .fsync = fm_fsync,
    .ftruncate = fm_ftruncate,
    .fstat = fm_fstat,
    .fallocate = fm_fallocate,
    .fadvise = fm_fadvise,
    .futimens = fm_futimens,
    .close = fm_close,
    .local_fd = fm_local_fd,
    .kernel_io = fm_kernel_io,
    .open_fd = fm_open_fd,
    .stat = fm_stat,
    .access = fm_access,
    .unlink = fm_unlink,
    .rename = fm_rename,
    .mkdir = fm_mkdir,
    .rmdir = fm_rmdir,
    .truncate = fm_truncate,
    .utimens = fm_utimens,
    .statvfs = fm_statvfs,
    .local_path = fm_local_path,
    .opendir = fm_opendir,
    .readdir = fm_readdir,
    .closedir = fm_closedir,
};
