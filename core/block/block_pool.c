/* block_pool.c - this process's kept reservation for small objects.
 *
 * A small object (`cp -r`, `tar x`, a Python loop writing files) is written at its close,
 * through the page cache, and committed at once. Reserving its blocks the usual way
 * (blk_alloc.c: the commit lock taken, the newest root read, a lock probe, an OFD write
 * lock, the commit lock dropped) cost four fcntl per file, on top of the commit's own
 * two. So a mount keeps one reserved run on a descriptor of its own (an OFD write lock,
 * like any writer's reservation) and carves the blocks of such objects from it; only
 * when it runs out is a new run reserved. The same guarantees hold as for a file's own
 * reservation: nothing on disk records it, other writers skip it (their probe sees the
 * lock), and the kernel drops it when the process dies, SIGKILL included, so an unused
 * remainder frees itself. Once an object carved from it is committed its blocks are
 * released from the lock (the bitmap holds them from then on; readers may pin them).
 *
 * The same goes for the descriptor of the device every open file has (block_file.c: its
 * own OFD locks, its io_uring requests): opening a block device and closing it again per
 * small file cost three system calls and the device's open path. A closed file's
 * descriptor drops its locks with one F_UNLCK over the whole device and is kept for the
 * next open (a few per access mode), unless the process forked while it was open: the
 * child shares the description and its locks, so that one is closed as before. */
#include "block.h"
#include "bmount.h"

#include "../efd.h"
#include "../log.h"
#include "../sys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>

#define BP_RUN 256 /* blocks reserved at a time: 1 MiB, what a file reserves at least */

/* Forks so far, counted in the parent and in the child alike: a file open across a fork
 * shares its descriptor's description (and locks) with the other process, on both sides. */
static unsigned forks;
static pthread_once_t forks_once = PTHREAD_ONCE_INIT;
static void forked(void) { __atomic_add_fetch(&forks, 1, __ATOMIC_RELAXED); }
static void forks_register(void) { pthread_atfork(NULL, forked, forked); }

unsigned bp_forks(void) { return __atomic_load_n(&forks, __ATOMIC_RELAXED); }

static void idle_close_all(struct block_mount *m)
{
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < m->nidle[w]; i++) efd_close(m->idle_fd[w][i]);
        m->nidle[w] = 0;
    }
}

void bp_init(struct block_mount *m)
{
    pthread_once(&forks_once, forks_register);
    m->nidle[0] = m->nidle[1] = 0;
    pthread_mutex_init(&m->pool_lock, NULL);
    m->pool_fd = -1;
    m->pool_start = m->pool_len = 0;
}

void bp_close(struct block_mount *m)
{
    if (m->pool_fd >= 0) efd_close(m->pool_fd); /* drops the run left */
    m->pool_fd = -1;
    m->pool_len = 0;
    idle_close_all(m);
    pthread_mutex_destroy(&m->pool_lock);
}

void bp_atfork_child(struct block_mount *m)
{
    /* The description (and its lock) is shared with the parent, which carves from it:
     * the child lets go of its copy of the descriptor and reserves a run of its own. */
    pthread_mutex_init(&m->pool_lock, NULL);
    if (m->pool_fd >= 0) efd_close(m->pool_fd);
    m->pool_fd = -1;
    m->pool_len = 0;
    idle_close_all(m); /* the parent's to reuse: the child opens its own */
}

int bp_take(struct block_mount *m, uint64_t want, uint64_t *start, uint64_t *got)
{
    if (want < 1) want = 1;
    int e = 0;
    pthread_mutex_lock(&m->pool_lock);
    if (m->pool_fd < 0) {
        int fd = sys.open(m->st.path, O_RDWR | O_CLOEXEC);
        if (fd < 0) e = -errno;
        else m->pool_fd = efd_park(fd);
    }
    if (!e && m->pool_len < want) {
        /* Too little left for this object: let the rest go and reserve a new run. */
        if (m->pool_len) blk_range_lock(m->pool_fd, m->pool_start, m->pool_len, F_UNLCK);
        m->pool_len = 0;
        e = blk_reserve(&m->st, m->pool_fd, want > BP_RUN ? want : BP_RUN, &m->pool_start, &m->pool_len);
        if (e == -ENOSPC) slog_warn("block: %s: no free space for small objects", m->uri);
    }
    if (!e) {
        *start = m->pool_start;
        *got = want < m->pool_len ? want : m->pool_len;
        m->pool_start += *got;
        m->pool_len -= *got;
    }
    pthread_mutex_unlock(&m->pool_lock);
    return e;
}

void bp_release(struct block_mount *m, uint64_t start, uint64_t len)
{
    pthread_mutex_lock(&m->pool_lock);
    if (m->pool_fd >= 0 && len) blk_range_lock(m->pool_fd, start, len, F_UNLCK);
    pthread_mutex_unlock(&m->pool_lock);
}

int bp_fd_get(struct block_mount *m, int wr, unsigned *nf)
{
    *nf = __atomic_load_n(&forks, __ATOMIC_RELAXED);
    wr = !!wr;
    pthread_mutex_lock(&m->pool_lock);
    int fd = m->nidle[wr] ? m->idle_fd[wr][--m->nidle[wr]] : -1;
    pthread_mutex_unlock(&m->pool_lock);
    if (fd >= 0) return fd;
    fd = sys.open(m->st.path, (wr ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC);
    return fd < 0 ? -errno : efd_park(fd);
}

void bp_fd_put(struct block_mount *m, int fd, int wr, unsigned nf, int locked)
{
    wr = !!wr;
    if (nf == __atomic_load_n(&forks, __ATOMIC_RELAXED)) {
        /* every lock of the description: reservations, pins, a claimed name (2^62 + h);
         * a new small object's took none (its blocks come from the mount's run) */
        struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        if (!locked || sys.fcntl(fd, F_OFD_SETLK, &fl) == 0) {
            pthread_mutex_lock(&m->pool_lock);
            int kept = m->nidle[wr] < (int)(sizeof m->idle_fd[0] / sizeof m->idle_fd[0][0]);
            if (kept) m->idle_fd[wr][m->nidle[wr]++] = fd;
            pthread_mutex_unlock(&m->pool_lock);
            if (kept) return;
        }
    }
    efd_close(fd); /* drops every lock */
}
