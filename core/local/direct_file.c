/* direct_file.c - one open direct:// file: O_DIRECT reads and writes through the io_uring
 * engine (uring.h), for any offset, length and buffer the program uses.
 *
 * Reading. A read whose offset, length and buffer are aligned goes straight into the
 * program's buffer. A sequential reader (readahead.h) is served from chunk-sized aligned
 * reads (1 MiB by default) on a grid of the file, into registered buffers, with up to
 * `depth` chunks in flight ahead of it; chunks it has passed are released at once. Other
 * unaligned reads read the aligned span that covers them into a bounce buffer. Short
 * reads end at end of file exactly (the kernel's O_DIRECT read stops there).
 *
 * Writing. A write is merged into a chunk-sized aligned buffer that starts at the aligned
 * offset below it; each full chunk goes to the device as it fills (several in flight for
 * a large call), a write that is large and aligned goes straight from the program's
 * buffer. By default what a call wrote is on the device when it returns, as with
 * write(2): the last partial block is completed with what the device holds there
 * (read-modify-write; zeros past end of file), written whole, and the file truncated back
 * to its true size on the same descriptor. That block stays in the buffer, so a program
 * that appends a line at a time never reads it back. With S3SHIM_DIRECT_GATHER=1 small
 * writes wait in the buffer across calls until a chunk is full or something needs them
 * (close, fsync, a read, a write elsewhere, fork, exec, mmap): fewer, larger device
 * writes, but other processes see the data later and a process that ends with _exit()
 * loses it. A failed background write is reported by the next write, fsync or close.
 *
 * Appending. A file opened with O_APPEND (`>>`, loggers) writes through a second,
 * buffered descriptor with O_APPEND, where the kernel puts each write at the end at once:
 * the block completed and truncated back above, done by several processes appending to
 * one log, lost their lines and left zeros between them, and a reader saw the zeros for
 * a moment. The kernel writes those pages back before any O_DIRECT read of the range.
 *
 * Fallback. If the filesystem refuses O_DIRECT (EINVAL at open) or ignores it (tmpfs),
 * the file runs buffered with plain pread/pwrite, the mount warns once and its stats say
 * so; with S3SHIM_DIRECT_FALLBACK=error the open fails with EINVAL instead. */
#include "direct_file.h"
#include "../sys.h"

#include "../efd.h"
#include "../log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* --- every open file, for the flush before fork ---------------------------------------- */

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dfile *files;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

void df_flush_all(void)
{
    pthread_mutex_lock(&files_lock);
    for (struct dfile *f = files; f; f = f->next) {
        if (f->buffered || f->gen != uring_generation()) continue;
        pthread_mutex_lock(&f->lock);
        df_wb_flush(f);
        df_ws_drain(f);
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&files_lock);
}

static void atfork_prepare(void) { df_flush_all(); }
static void atfork_child(void)
{
    pthread_mutex_init(&files_lock, NULL);
    df_adopt_atfork_child();
}
static void register_atfork(void) { pthread_atfork(atfork_prepare, NULL, atfork_child); }

static void files_add(struct dfile *f)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&files_lock);
    f->next = files;
    if (files) files->prev = f;
    files = f;
    pthread_mutex_unlock(&files_lock);
}

static void files_del(struct dfile *f)
{
    pthread_mutex_lock(&files_lock);
    if (f->prev) f->prev->next = f->next;
    else if (files == f) files = f->next;
    if (f->next) f->next->prev = f->prev;
    pthread_mutex_unlock(&files_lock);
}

int df_fsync(void *fh, int datasync)
{
    (void)datasync; /* fdatasync either way: the file's data is what O_DIRECT users care for */
    struct dfile *f = fh;
    if (f->buffered) return sys.fdatasync(f->fd) < 0 ? -errno : 0;
    df_adopt_after_fork(f);
    pthread_mutex_lock(&f->lock);
    int e = df_wb_flush(f);
    if (!e) e = df_ws_drain(f);
    if (!e) {
        struct uio u = {.op = UIO_FSYNC, .fd = f->fd, .buf_index = -1, .align = f->al.off, .stats = &f->m->dev};
        e = (int)uring_run(&u);
    }
    pthread_mutex_unlock(&f->lock);
    return e;
}

int df_ftruncate(void *fh, off_t len)
{
    struct dfile *f = fh;
    if (f->buffered) return sys.ftruncate(f->fd, len) < 0 ? -errno : 0;
    df_adopt_after_fork(f);
    pthread_mutex_lock(&f->lock);
    int e = df_settle(f);
    if (!e && sys.ftruncate(f->fd, len) < 0) e = -errno;
    if (!e) {
        f->size_hint = len;
        if (f->wb_off + (off_t)f->wb_len > len) f->wb_len = 0; /* the kept block is gone or changed */
    }
    pthread_mutex_unlock(&f->lock);
    return e;
}

int df_fstat(void *fh, struct stat *st)
{
    struct dfile *f = fh;
    if (sys.fstat(f->fd, st) < 0) return -errno;
    if (f->buffered) return 0;
    df_adopt_after_fork(f);
    pthread_mutex_lock(&f->lock);
    if (f->is_blk) {
        st->st_size = (off_t)f->devsize; /* what a reader of the device will get */
        st->st_blocks = (blkcnt_t)(f->devsize / 512);
    } else if (f->pend_end > st->st_size) {
        st->st_size = f->pend_end; /* gathered, not yet on the device */
        st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
    }
    st->st_blksize = (blksize_t)f->chunk; /* cp and friends then use aligned 1 MiB buffers */
    pthread_mutex_unlock(&f->lock);
    return 0;
}

int df_fallocate(void *fh, int mode, off_t off, off_t len)
{
    struct dfile *f = fh;
    df_adopt_after_fork(f);
    if (!f->buffered) pthread_mutex_lock(&f->lock);
    int e = f->buffered ? 0 : df_settle(f);
    if (!e && sys.fallocate(f->fd, mode, off, len) < 0) e = -errno;
    if (!e && !f->buffered) {
        if (off + len > f->size_hint && !(mode & FALLOC_FL_KEEP_SIZE)) f->size_hint = off + len;
        f->wb_len = 0;
    }
    if (!f->buffered) pthread_mutex_unlock(&f->lock);
    return e;
}

int df_fadvise(void *fh, off_t off, off_t len, int advice)
{
    (void)fh, (void)off, (void)len, (void)advice;
    return 0; /* nothing of the page cache to advise about */
}

int df_futimens(void *fh, const struct timespec ts[2])
{
    struct dfile *f = fh;
    if (!f->buffered) { /* data written later would move the times the program sets */
        df_adopt_after_fork(f);
        pthread_mutex_lock(&f->lock);
        df_settle(f);
        pthread_mutex_unlock(&f->lock);
    }
    return sys.futimens(f->fd, ts) < 0 ? -errno : 0;
}

int df_local_fd(void *fh)
{
    /* The caller is about to use the descriptor itself (mmap, exec, ioctl, fstatat...):
     * it must see every byte written. */
    struct dfile *f = fh;
    if (!f->buffered) {
        if (f->gen != uring_generation()) df_forget_parent(f); /* nothing of ours to write */
        pthread_mutex_lock(&f->lock);
        df_settle(f);
        pthread_mutex_unlock(&f->lock);
    }
    return f->fd;
}

int df_kernel_io(void *fh, int direct)
{
    struct dfile *f = fh;
    if (f->buffered) return f->fd;
    if (f->gen != uring_generation()) df_forget_parent(f);
    pthread_mutex_lock(&f->lock);
    df_settle(f);
    f->kio = 1;
    int fd = f->fd;
    if (!direct) {
        /* The kernel would refuse the program's unaligned requests on the O_DIRECT
         * descriptor: the same file through the page cache, which the kernel keeps
         * coherent with direct I/O. */
        if (f->kfd < 0) {
            int fl = sys.fcntl(f->fd, F_GETFL);
            int b = fl < 0 ? -1 : sys_reopen(f->fd, (fl & O_ACCMODE) | O_CLOEXEC);
            if (b >= 0) f->kfd = efd_park(b);
        }
        if (f->kfd >= 0) fd = f->kfd;
    }
    pthread_mutex_unlock(&f->lock);
    return fd;
}

static void dfile_free(struct dfile *f)
{
    for (int i = 0; i < RSLOTS; i++)
        if (f->rs[i].state != RS_FREE) df_rs_release(&f->rs[i]);
    if (f->wb.p) ubuf_put(&f->wb);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cv);
    free(f);
}

int df_close(void *fh)
{
    struct dfile *f = fh;
    int e = 0;
    if (!f->buffered) {
        files_del(f);
        df_adopt_after_fork(f);
        pthread_mutex_lock(&f->lock);
        e = df_settle(f);
        pthread_mutex_unlock(&f->lock);
        if (e) slog_error("direct: closing %s: %s (an earlier write did not reach the device)", f->m->uri,
                          strerror(-e));
        direct_describe(f->m, NULL, NULL); /* the queue depth seen so far */
    }
    efd_close(f->fd);
    if (f->afd >= 0) efd_close(f->afd);
    if (f->kfd >= 0) efd_close(f->kfd);
    if (f->buffered) {
        free(f);
        return 0;
    }
    dfile_free(f);
    return e;
}

/* --- opening ----------------------------------------------------------------------------- */

/* The buffered O_APPEND descriptor of f (afd), with the program's O_SYNC/O_DSYNC, and
 * appending on. If the file cannot be opened again for writing (a new file created
 * without a write bit, by a user other than root), appends take the block-completing
 * path of other writes instead, as before. */
static void append_fd(struct dfile *f, int flags)
{
    if (f->afd < 0) {
        int a = sys_reopen(f->fd, O_WRONLY | O_APPEND | O_CLOEXEC | (flags & (O_SYNC | O_DSYNC)));
        if (a < 0) {
            slog_debug("direct: %s: no O_APPEND descriptor (%s): appends complete the last block", f->m->uri,
                       strerror(errno));
            return;
        }
        f->afd = efd_park(a);
    }
    f->append = 1;
}

int df_setfl(void *fh, int flags)
{
    struct dfile *f = fh;
    int cur = sys.fcntl(f->fd, F_GETFL);
    struct stat st;
    if (cur < 0 || sys.fstat(f->fd, &st) < 0) return -errno;
    /* O_DIRECT stays as opened, O_APPEND off the O_DIRECT descriptor (appends: afd) */
    if (sys.fcntl(f->fd, F_SETFL, (cur & O_DIRECT) | (flags & (O_ASYNC | O_NOATIME | O_NONBLOCK))) < 0) return -errno;
    pthread_mutex_lock(&f->lock);
    if (!(flags & O_APPEND)) f->append = 0;
    else if ((cur & O_ACCMODE) != O_RDONLY && S_ISREG(st.st_mode)) append_fd(f, cur);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

/* O_DIRECT refused: warn once per mount and run buffered, or refuse the open. */
static int fall_back(struct direct_mount *m, int fd, const char *key, const char *why)
{
    if (m->fallback == DIRECT_FALLBACK_ERROR) {
        slog_error("direct: %s/%s: %s; not opened because S3SHIM_DIRECT_FALLBACK=error", m->fm.root, key, why);
        return -EINVAL;
    }
    int fl = sys.fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_DIRECT)) sys.fcntl(fd, F_SETFL, fl & ~O_DIRECT);
    if (!atomic_exchange(&m->warned, 1))
        slog_warn("direct: %s: %s; files of this mount run BUFFERED (page cache), not O_DIRECT "
                  "(S3SHIM_DIRECT_FALLBACK=error refuses instead)", m->fm.root, why);
    atomic_store(&m->fell_back, 1);
    direct_describe(m, NULL, why);
    return 0;
}

/* Make a file of descriptor fd (ours from now on). */
static int dfile_make(struct direct_mount *m, int fd, int flags, int refused, const char *key, void **fhp)
{
    struct stat st;
    if (sys.fstat(fd, &st) < 0) {
        int e = -errno;
        sys.close(fd);
        return e;
    }
    if (S_ISDIR(st.st_mode) && !(flags & O_DIRECTORY)) {
        sys.close(fd);
        return -EISDIR;
    }
    struct dfile *f = calloc(1, sizeof *f);
    if (!f) {
        sys.close(fd);
        return -ENOMEM;
    }
    f->m = m;
    f->fd = fd;
    f->afd = -1;
    f->kfd = -1;
    if ((flags & O_APPEND) && (flags & O_ACCMODE) != O_RDONLY && S_ISREG(st.st_mode)) append_fd(f, flags);
    char why[200] = "O_DIRECT refused by the filesystem (EINVAL at open)";
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        f->buffered = 1; /* directories, fifos, character devices: nothing to align */
        int fl = sys.fcntl(fd, F_GETFL);
        if (fl >= 0 && (fl & O_DIRECT)) sys.fcntl(fd, F_SETFL, fl & ~O_DIRECT);
    } else if (refused || dio_probe(fd, &st, &f->al, why, sizeof why) != 0) {
        int e = fall_back(m, fd, key, why);
        if (e < 0) {
            sys.close(fd);
            if (f->afd >= 0) efd_close(f->afd);
            free(f);
            return e;
        }
        f->buffered = 1;
    }
    if (f->buffered) {
        f->fd = efd_park(fd);
        *fhp = f;
        return 0;
    }
    /* The engine starts here, with no lock of ours held: starting it makes calls (the fd
     * table's growth) that must not wait behind a caller holding this file's lock. */
    int se = uring_start();
    if (se < 0) {
        sys.close(fd);
        if (f->afd >= 0) efd_close(f->afd);
        free(f);
        return se;
    }
    f->is_blk = S_ISBLK(st.st_mode);
    if (f->is_blk && sys.ioctl(fd, BLKGETSIZE64, &f->devsize) < 0) f->devsize = 0;
    f->sync = (flags & (O_SYNC | O_DSYNC)) != 0;
    f->chunk = (size_t)dio_up(m->chunk, f->al.off);
    f->depth = m->depth;
    f->size_hint = f->is_blk ? (off_t)f->devsize : st.st_size;
    f->gen = uring_generation();
    ra_init(&f->ra, f->chunk, f->chunk * (size_t)f->depth);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cv, NULL);
    for (int i = 0; i < WSLOTS; i++) f->ws[i].b.index = -1;
    char al[96];
    snprintf(al, sizeof al, "alignment memory %u, offset %u (%s)", f->al.mem, f->al.off, dio_source_name(f->al.source));
    direct_describe(m, al, NULL);
    f->fd = efd_park(fd);
    files_add(f);
    *fhp = f;
    return 0;
}

int df_open(void *ms, const char *key, int flags, mode_t mode, void **fhp)
{
    struct direct_mount *m = ms;
    /* O_APPEND is the shim's (it passes the end as the offset): on the kernel's
     * descriptor it would send every aligned write to the end. Write-only files are
     * opened read-write: completing a partial block needs to read it. */
    int fl = (flags & ~O_APPEND) | O_DIRECT;
    if ((flags & O_ACCMODE) == O_WRONLY) fl = (fl & ~O_ACCMODE) | O_RDWR;
    int refused = 0;
    int fd = fm_open_beneath(&m->fm, key, fl, mode);
    if (fd == -EACCES && (flags & O_ACCMODE) == O_WRONLY) /* write permission only */
        fd = fm_open_beneath(&m->fm, key, fl = (fl & ~O_ACCMODE) | O_WRONLY, mode);
    if (fd == -EINVAL) { /* O_DIRECT refused at open */
        fd = fm_open_beneath(&m->fm, key, fl & ~O_DIRECT, mode);
        refused = fd >= 0;
    }
    if (fd < 0) return fd;
    return dfile_make(m, fd, flags, refused, key, fhp);
}

int df_open_fd(void *ms, int fd, int flags, void **fhp)
{
    int own = sys.fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return -errno;
    int fl = sys.fcntl(own, F_GETFL);
    int refused = 0;
    if (fl >= 0 && !(fl & O_DIRECT) && sys.fcntl(own, F_SETFL, fl | O_DIRECT) < 0) refused = 1;
    if (fl >= 0 && (fl & O_APPEND)) sys.fcntl(own, F_SETFL, (fl | O_DIRECT) & ~O_APPEND);
    return dfile_make(ms, own, flags, refused, "(inherited)", fhp);
}

