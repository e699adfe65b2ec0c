/* wrap_rw.c - read, write, seek, sync and size on shim descriptors.
 *
 * The description's offset is shared (dup, fork, exec) and its updates are serialised
 * by the description's lock, as the kernel does with f_pos. Positional calls (pread,
 * pwrite) take no lock. */
#define _GNU_SOURCE 1
#include "fdtable.h"
#include "guard.h"
#include "io.h"
#include "pump.h"
#include "real.h"
#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <unistd.h>

static int can_read(struct ofd *o)
{
    if (o->type == OFD_DIR) return -EISDIR;
    if (!o->fh || (ofd_status(o) & O_ACCMODE) == O_WRONLY) return -EBADF;
    return 0;
}

static int can_write(struct ofd *o)
{
    if (o->type == OFD_DIR) return -EISDIR;
    if (!o->fh || (ofd_status(o) & O_ACCMODE) == O_RDONLY) return -EBADF;
    return 0;
}

ssize_t io_pread(struct ofd *o, void *buf, size_t n, off_t off)
{
    int e = can_read(o);
    if (e) return e;
    if (off < 0) return -EINVAL;
    if (n > SSIZE_MAX) n = SSIZE_MAX;
    uint64_t t0 = stats_now_ns();
    ssize_t r = IO_BACKEND(o->m->ops->pread(o->fh, buf, n, off));
    uint64_t t1 = stats_record(&o->m->stats, STK_READ, t0, r > 0 ? (uint64_t)r : 0, r < 0);
    OPLOG(OL_READ, oplog_fd, o->m, ofd_path(o), &o->oplog_path, off, n, r, t0, t1, NULL);
    return r;
}

ssize_t io_read(struct ofd *o, void *buf, size_t n)
{
    int e = can_read(o);
    if (e) return e;
    ofd_lock(o);
    ssize_t r = io_pread(o, buf, n, (off_t)ofd_sh(o)->offset);
    if (r > 0) ofd_sh(o)->offset += r;
    ofd_unlock(o);
    return r;
}

static off_t current_size(struct ofd *o)
{
    struct stat st;
    int r = IO_BACKEND(o->m->ops->fstat(o->fh, &st));
    return r < 0 ? r : st.st_size;
}

/* The backend's write at *off, or with *off < 0 its append (an O_APPEND write whose end
 * the backend finds under its own lock; *off: where it went), with its stats and op log. */
static ssize_t backend_write(struct ofd *o, const void *buf, size_t n, off_t *off)
{
    if (n > SSIZE_MAX) n = SSIZE_MAX;
    uint64_t t0 = stats_now_ns();
    ssize_t r;
    if (*off < 0) {
        *off = 0;
        r = IO_BACKEND(o->m->ops->append(o->fh, buf, n, off));
    } else {
        r = IO_BACKEND(o->m->ops->pwrite(o->fh, buf, n, *off));
    }
    uint64_t t1 = stats_record(&o->m->stats, STK_WRITE, t0, r > 0 ? (uint64_t)r : 0, r < 0);
    OPLOG(OL_WRITE, oplog_fd, o->m, ofd_path(o), &o->oplog_path, *off, n, r, t0, t1, NULL);
    return r;
}

ssize_t io_pwrite(struct ofd *o, const void *buf, size_t n, off_t off)
{
    int e = can_write(o);
    if (e) return e;
    if (off < 0) return -EINVAL;
    return backend_write(o, buf, n, &off);
}

ssize_t io_write(struct ofd *o, const void *buf, size_t n)
{
    int e = can_write(o);
    if (e) return e;
    ofd_lock(o);
    int append = (ofd_status(o) & O_APPEND) && o->m->ops->append; /* (else at the size fstat gives) */
    off_t off = append ? -1 : (ofd_status(o) & O_APPEND) ? current_size(o) : (off_t)ofd_sh(o)->offset;
    ssize_t r = off < 0 && !append ? off : backend_write(o, buf, n, &off);
    if (r >= 0) ofd_sh(o)->offset = off + r;
    ofd_unlock(o);
    return r;
}

/* Vectored I/O as a sequence of plain calls: stops at the first short transfer. */
static ssize_t vec_io(struct ofd *o, const struct iovec *iov, int cnt, off_t off, int wr)
{
    if (cnt < 0 || cnt > IOV_MAX) return -EINVAL;
    int e = wr ? can_write(o) : can_read(o);
    if (e) return e;
    int seq = off < 0;
    /* O_APPEND: one write of the pieces together, as the kernel appends a writev whole (one
     * call per piece let another process's append come between them). */
    if (seq && wr && (ofd_status(o) & O_APPEND)) {
        size_t len = 0;
        for (int i = 0; i < cnt; i++)
            if (__builtin_add_overflow(len, iov[i].iov_len, &len) || len > SSIZE_MAX) return -EINVAL; /* as writev */
        char *buf = malloc(len ? len : 1);
        if (!buf) return -ENOMEM;
        for (size_t i = 0, at = 0; i < (size_t)cnt; at += iov[i].iov_len, i++)
            if (iov[i].iov_len) memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
        ssize_t r = io_write(o, buf, len);
        free(buf);
        return r;
    }
    if (seq) {
        ofd_lock(o);
        off = (off_t)ofd_sh(o)->offset;
        if (wr && (ofd_status(o) & O_APPEND)) off = current_size(o);
    }
    ssize_t total = 0;
    for (int i = 0; i < cnt && off >= 0; i++) {
        if (!iov[i].iov_len) continue;
        ssize_t r = wr ? io_pwrite(o, iov[i].iov_base, iov[i].iov_len, off + total)
                       : io_pread(o, iov[i].iov_base, iov[i].iov_len, off + total);
        if (r < 0) {
            if (!total) total = r;
            break;
        }
        total += r;
        if ((size_t)r < iov[i].iov_len) break;
    }
    if (off < 0 && !total) total = off;
    if (seq) {
        if (total > 0) ofd_sh(o)->offset = off + total;
        ofd_unlock(o);
    }
    return total;
}

ssize_t io_readv(struct ofd *o, const struct iovec *iov, int cnt, off_t off) { return vec_io(o, iov, cnt, off, 0); }
ssize_t io_writev(struct ofd *o, const struct iovec *iov, int cnt, off_t off) { return vec_io(o, iov, cnt, off, 1); }

off_t io_lseek(struct ofd *o, off_t off, int whence)
{
    if (o->type == OFD_DIR) return whence == SEEK_SET && off == 0 ? 0 : -EINVAL;
    ofd_lock(o);
    off_t base = 0, r;
    switch (whence) {
    case SEEK_SET:
        break;
    case SEEK_CUR:
        base = (off_t)ofd_sh(o)->offset;
        break;
    case SEEK_END:
    case SEEK_DATA:
    case SEEK_HOLE:
        base = current_size(o);
        break;
    default:
        base = -EINVAL;
    }
    if (base < 0)
        r = base;
    else if (whence == SEEK_DATA)
        r = off < 0 ? -EINVAL : off >= base ? -ENXIO : off; /* no holes are visible */
    else if (whence == SEEK_HOLE)
        r = off < 0 ? -EINVAL : off >= base ? -ENXIO : base;
    else if (__builtin_add_overflow(base, off, &r) || r < 0)
        r = -EINVAL;
    if (r >= 0) ofd_sh(o)->offset = r;
    ofd_unlock(o);
    return r;
}

int io_fstat(struct ofd *o, struct stat *st)
{
    uint64_t t0 = stats_now_ns();
    int r = o->fh ? IO_BACKEND(o->m->ops->fstat(o->fh, st))
                  : IO_BACKEND(o->m->ops->stat(o->m->ms, ofd_key(o), st, 0));
    uint64_t t1 = stats_record(&o->m->stats, STK_STAT, t0, 0, r < 0);
    OPLOG(OL_FSTAT, oplog_fd, o->m, ofd_path(o), &o->oplog_path, -1, 0, r, t0, t1, NULL);
    return r;
}

/* --- the exported symbols -------------------------------------------------------- */

/* Run `call` on the ofd behind fd with a reference held; the result is -errno-style.
 * On a pumped stdout the pipe is drained first, so the call sees every byte written. */
#define WITH_OFD(fd, call) \
    ({ \
        int pumped_; \
        struct ofd *o = fdt_get_ex(fd, &pumped_); \
        int s_ = o && pumped_ ? pump_sync(o) : 0; \
        __auto_type _res = !o ? -EBADF : s_ < 0 ? s_ : (call); \
        if (o) ofd_put(o); \
        _res < 0 ? (__typeof__(_res))shim_fail((int)_res) : _res; \
    })

/* read and write on a pumped fd: pump.c keeps them in order with its pipe. */
#define PUMPED_TO_PIPE(fd, expr) \
    if (__builtin_expect(fdt_raw_pumped(fdt_peek(fd)), 0)) return expr

#define PASS_IF_FOREIGN(fd, expr) \
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return expr

/* The hot wrappers keep their own body to the pass-through test and a tail call; the
 * shim's work is out of line so that the fast path needs no stack frame. */
#define COLD __attribute__((noinline, cold))

static COLD ssize_t read_ours(int fd, void *buf, size_t n)
{
    PUMPED_TO_PIPE(fd, pump_read(fd, buf, n));
    return WITH_OFD(fd, io_read(o, buf, n));
}

SHIM_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    PASS_IF_FOREIGN(fd, REAL(read)(fd, buf, n));
    return read_ours(fd, buf, n);
}

SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen) __builtin_trap(); /* what glibc's __chk_fail amounts to */
    return read(fd, buf, n);
}

static COLD ssize_t pread_ours(int fd, void *buf, size_t n, off_t off)
{
    return WITH_OFD(fd, io_pread(o, buf, n, off));
}

SHIM_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    PASS_IF_FOREIGN(fd, REAL(pread)(fd, buf, n, off));
    return pread_ours(fd, buf, n, off);
}

SHIM_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off) __attribute__((alias("pread")));

SHIM_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    if (n > buflen) __builtin_trap();
    return pread(fd, buf, n, off);
}

SHIM_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    if (n > buflen) __builtin_trap();
    return pread(fd, buf, n, off);
}

SHIM_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    PASS_IF_FOREIGN(fd, REAL(readv)(fd, iov, cnt));
    PUMPED_TO_PIPE(fd, pump_readv(fd, iov, cnt));
    return WITH_OFD(fd, io_readv(o, iov, cnt, -1));
}

SHIM_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
    PASS_IF_FOREIGN(fd, REAL(preadv)(fd, iov, cnt, off));
    if (off < 0) return shim_fail(-EINVAL);
    return WITH_OFD(fd, io_readv(o, iov, cnt, off));
}

SHIM_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off_t off) __attribute__((alias("preadv")));

SHIM_EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    PASS_IF_FOREIGN(fd, REAL(preadv2)(fd, iov, cnt, off, flags));
    if (off < -1) return shim_fail(-EINVAL);
    return WITH_OFD(fd, io_readv(o, iov, cnt, off));
}

SHIM_EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
    __attribute__((alias("preadv2")));

static COLD ssize_t write_ours(int fd, const void *buf, size_t n)
{
    PUMPED_TO_PIPE(fd, pump_write(fd, buf, n));
    return WITH_OFD(fd, io_write(o, buf, n));
}

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    PASS_IF_FOREIGN(fd, REAL(write)(fd, buf, n));
    return write_ours(fd, buf, n);
}

static COLD ssize_t pwrite_ours(int fd, const void *buf, size_t n, off_t off)
{
    return WITH_OFD(fd, io_pwrite(o, buf, n, off));
}

SHIM_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    PASS_IF_FOREIGN(fd, REAL(pwrite)(fd, buf, n, off));
    return pwrite_ours(fd, buf, n, off);
}

SHIM_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) __attribute__((alias("pwrite")));

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    PASS_IF_FOREIGN(fd, REAL(writev)(fd, iov, cnt));
    PUMPED_TO_PIPE(fd, pump_writev(fd, iov, cnt));
    return WITH_OFD(fd, io_writev(o, iov, cnt, -1));
}

SHIM_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    PASS_IF_FOREIGN(fd, REAL(pwritev)(fd, iov, cnt, off));
    if (off < 0) return shim_fail(-EINVAL);
    return WITH_OFD(fd, io_writev(o, iov, cnt, off));
}

SHIM_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off) __attribute__((alias("pwritev")));

SHIM_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    PASS_IF_FOREIGN(fd, REAL(pwritev2)(fd, iov, cnt, off, flags));
    if (off < -1) return shim_fail(-EINVAL);
    return WITH_OFD(fd, io_writev(o, iov, cnt, off));
}

SHIM_EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
    __attribute__((alias("pwritev2")));

static COLD off_t lseek_ours(int fd, off_t off, int whence)
{
    struct ofd *o = fdt_get(fd);
    if (!o) return shim_fail(-EBADF);
    uint64_t t0 = oplog_on ? stats_now_ns() : 0;
    off_t r = fdt_raw_pumped(fdt_peek(fd)) ? pump_lseek(fd, o, off, whence) : io_lseek(o, off, whence);
    OPLOG(OL_SEEK, fd, o->m, ofd_path(o), &o->oplog_path, off, (uint64_t)(unsigned)whence, r, t0, stats_now_ns(), NULL);
    ofd_put(o);
    return r < 0 ? shim_fail((int)r) : r;
}

SHIM_EXPORT off_t lseek(int fd, off_t off, int whence)
{
    PASS_IF_FOREIGN(fd, REAL(lseek)(fd, off, whence));
    return lseek_ours(fd, off, whence);
}

SHIM_EXPORT off_t lseek64(int fd, off_t off, int whence) __attribute__((alias("lseek")));

static int sync_ours(int fd, int datasync)
{
    int pumped;
    struct ofd *o = fdt_get_ex(fd, &pumped);
    if (!o) return shim_fail(-EBADF);
    int r = pumped ? pump_sync(o) : 0;
    if (r == 0 && o->fh && o->m->ops->fsync) {
        uint64_t t0 = stats_now_ns();
        r = IO_BACKEND(o->m->ops->fsync(o->fh, datasync));
        uint64_t t1 = stats_record(&o->m->stats, STK_SYNC, t0, 0, r < 0);
        OPLOG(OL_SYNC, fd, o->m, ofd_path(o), &o->oplog_path, -1, 0, r, t0, t1, NULL);
    }
    ofd_put(o);
    return r < 0 ? shim_fail(r) : 0;
}

SHIM_EXPORT int fsync(int fd)
{
    PASS_IF_FOREIGN(fd, REAL(fsync)(fd));
    return sync_ours(fd, 0);
}

SHIM_EXPORT int fdatasync(int fd)
{
    PASS_IF_FOREIGN(fd, REAL(fdatasync)(fd));
    return sync_ours(fd, 1);
}

/* glibc's own versions of these make the system call on our placeholder: EBADF. syncfs
 * syncs the store fd is on: every descriptor of this process open for writing on the
 * same mount, fsynced (their commits or uploads), but for other streaming uploads, which
 * a sync would end; other processes' files are theirs. */
SHIM_EXPORT int syncfs(int fd)
{
    PASS_IF_FOREIGN(fd, REAL(syncfs)(fd));
    struct ofd *o = fdt_get(fd);
    if (!o) return shim_fail(-EBADF);
    struct mount *m = o->m;
    ofd_put(o);
    int *fds = NULL, n = 0, cap = 0;
    fdt_lock();
    int lim = fdt_ofd_limit();
    for (int g = 0; g < lim; g++) {
        struct ofd *x = fdt_raw_ofd(fdt_peek(g));
        if (!x || x->m != m || x->type != OFD_FILE || (ofd_status(x) & O_ACCMODE) == O_RDONLY) continue;
        /* A streaming upload's fsync completes it and ends it (S3: writes after it fail):
         * only the one the program named is synced so. */
        if (g != fd && x->fh && x->m->ops->commit && x->m->ops->local_fd && x->m->ops->local_fd(x->fh) < 0) continue;
        int dup = 0; /* one fsync per description */
        for (int i = 0; i < n && !dup; i++) dup = fdt_raw_ofd(fdt_peek(fds[i])) == x;
        if (dup) continue;
        if (n == cap) {
            int *nf = realloc(fds, (size_t)(cap = cap ? cap * 2 : 16) * sizeof *nf);
            if (!nf) break;
            fds = nf;
        }
        fds[n++] = g;
    }
    fdt_unlock();
    int r = 0;
    for (int i = 0; i < n; i++) /* outside the table's lock: commits and uploads take time */
        if (sync_ours(fds[i], 0) < 0 && errno != EBADF && r == 0) r = -errno;
    free(fds);
    return r < 0 ? shim_fail(r) : 0;
}

SHIM_EXPORT int sync_file_range(int fd, off_t off, off_t n, unsigned flags)
{
    PASS_IF_FOREIGN(fd, REAL(sync_file_range)(fd, off, n, flags));
    unsigned all = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
    if (off < 0 || n < 0 || (flags & ~all)) return shim_fail(-EINVAL);
    /* a write-back hint (RocksDB's bytes_per_sync) is no commit; waiting for it is one */
    return flags & SYNC_FILE_RANGE_WAIT_AFTER ? sync_ours(fd, 1) : WITH_OFD(fd, 0);
}

static int ftruncate_ours(struct ofd *o, off_t len)
{
    if (len < 0) return -EINVAL;
    if (o->type == OFD_DIR) return -EISDIR;
    if (!o->fh || (ofd_status(o) & O_ACCMODE) == O_RDONLY) return -EINVAL;
    if (!o->m->ops->ftruncate) return -EOPNOTSUPP;
    uint64_t t0 = stats_now_ns();
    int r = IO_BACKEND(o->m->ops->ftruncate(o->fh, len));
    uint64_t t1 = stats_record(&o->m->stats, STK_META, t0, 0, r < 0);
    OPLOG(OL_TRUNCATE, oplog_fd, o->m, ofd_path(o), &o->oplog_path, len, 0, r, t0, t1, NULL);
    return r;
}

SHIM_EXPORT int ftruncate(int fd, off_t len)
{
    PASS_IF_FOREIGN(fd, REAL(ftruncate)(fd, len));
    return WITH_OFD(fd, ftruncate_ours(o, len));
}

SHIM_EXPORT int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

static int fadvise_ours(struct ofd *o, off_t off, off_t len, int advice)
{
    if (o->type == OFD_DIR) return 0;
    if (advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE) return -EINVAL;
    if (!o->fh || !o->m->ops->fadvise) return 0; /* advice, not a command */
    return IO_BACKEND(o->m->ops->fadvise(o->fh, off, len, advice));
}

/* posix_fadvise and posix_fallocate return an error number instead of setting errno. */
SHIM_EXPORT int posix_fadvise(int fd, off_t off, off_t len, int advice)
{
    PASS_IF_FOREIGN(fd, REAL(posix_fadvise)(fd, off, len, advice));
    struct ofd *o = fdt_get(fd);
    if (!o) return EBADF;
    int r = fadvise_ours(o, off, len, advice);
    ofd_put(o);
    return -r;
}

SHIM_EXPORT int posix_fadvise64(int fd, off_t off, off_t len, int advice) __attribute__((alias("posix_fadvise")));

SHIM_EXPORT ssize_t readahead(int fd, off_t off, size_t count)
{
    PASS_IF_FOREIGN(fd, REAL(readahead)(fd, off, count));
    return WITH_OFD(fd, fadvise_ours(o, off, (off_t)(count > INT64_MAX ? INT64_MAX : count), POSIX_FADV_WILLNEED));
}

static int fallocate_ours(struct ofd *o, int mode, off_t off, off_t len)
{
    if (off < 0 || len <= 0) return -EINVAL;
    if (o->type == OFD_DIR) return -EISDIR;
    if (!o->fh || (ofd_status(o) & O_ACCMODE) == O_RDONLY) return -EBADF;
    if (!o->m->ops->fallocate) return -EOPNOTSUPP;
    return IO_BACKEND(o->m->ops->fallocate(o->fh, mode, off, len));
}

SHIM_EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
    PASS_IF_FOREIGN(fd, REAL(fallocate)(fd, mode, off, len));
    return WITH_OFD(fd, fallocate_ours(o, mode, off, len));
}

SHIM_EXPORT int fallocate64(int fd, int mode, off_t off, off_t len) __attribute__((alias("fallocate")));

SHIM_EXPORT int posix_fallocate(int fd, off_t off, off_t len)
{
    PASS_IF_FOREIGN(fd, REAL(posix_fallocate)(fd, off, len));
    struct ofd *o = fdt_get(fd);
    if (!o) return EBADF;
    int r = fallocate_ours(o, 0, off, len);
    ofd_put(o);
    return -r;
}

SHIM_EXPORT int posix_fallocate64(int fd, off_t off, off_t len) __attribute__((alias("posix_fallocate")));
