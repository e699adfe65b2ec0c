/* oplog_ring.c - the op log's next segment faulted in by the kernel, not by the caller.
 *
 * Faulting in 4 MiB of a MAP_SHARED log (page cache pages allocated and zeroed, the
 * filesystem's page_mkwrite for each) costs a writer about 25 ns per record when its own
 * thread does it. A helper thread of ours (oplog.c) takes that off the writers, but in a
 * single-threaded program it would make glibc take its multi-threaded paths on every
 * system call, which costs more than it saves. An io_uring MADVISE request does the same
 * work in the kernel's io-wq worker: a kernel thread of the process that glibc never sees
 * (it stays single-threaded), that takes no signals and does not survive fork or exec.
 * Completions carry nothing we need; they are dropped at the next submission. */
#define _GNU_SOURCE 1
#include "oplog_ring.h"

#include "efd.h"

#include <errno.h>
#include <liburing.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static struct {
    struct io_uring r;
    int state; /* 0: none yet, 1: up, -1: the kernel refused (not tried again) */
} R;

static int ring_up(void)
{
    if (R.state) return R.state;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* completions need not interrupt the program: they are read when it next submits */
    p.flags = IORING_SETUP_COOP_TASKRUN;
    int e = io_uring_queue_init_params(4, &R.r, &p);
    if (e == -EINVAL) e = io_uring_queue_init(4, &R.r, 0);
    if (e < 0) return R.state = -1;
    int fd = efd_park(R.r.ring_fd); /* out of the program's way, close-on-exec */
    R.r.ring_fd = R.r.enter_ring_fd = fd;
    return R.state = 1;
}

int oplog_ring_populate(void *p, size_t len)
{
    if (ring_up() < 0) return -1;
    unsigned done = io_uring_cq_ready(&R.r);
    if (done) io_uring_cq_advance(&R.r, done);
    struct io_uring_sqe *q = io_uring_get_sqe(&R.r);
    if (!q) return -1;
    io_uring_prep_madvise(q, p, (off_t)len, MADV_POPULATE_WRITE);
    q->flags |= IOSQE_ASYNC; /* straight to the worker, never on this thread */
    if (io_uring_submit(&R.r) == 1) return 0;
    return -1;
}

void oplog_ring_atfork_child(void)
{
    if (R.state != 1) return;
    int fd = R.r.ring_fd;
    R.r.ring_fd = R.r.enter_ring_fd = -1;
    io_uring_queue_exit(&R.r); /* this process's copies of the rings; its close of -1 does nothing */
    efd_close(fd);
    memset(&R, 0, sizeof R);
}
