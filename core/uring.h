/* uring.h - the local I/O engine: io_uring rings served by engine threads, and the
 * aligned buffers registered with them.
 *
 * Nothing starts until the first request: a process that never touches a direct://
 * file has no thread, no ring and no buffer. Then S3SHIM_DIRECT_THREADS threads each own
 * one ring. Callers prepare their requests (struct uio) and submit them in batches onto
 * "their" ring themselves (one io_uring_enter for a batch); the ring's thread reaps the
 * completions, finishes short transfers, retries -EAGAIN/-EINTR, records the device
 * stats and wakes whoever waits (a futex on the request). A request its caller waits
 * for at once (uring_run) is made by the calling thread with a plain pread/pwrite: for
 * one request that is cheaper than any ring. No busy polling unless
 * S3SHIM_DIRECT_SQPOLL asks for a kernel submission thread. Every ring registers the
 * same arena of aligned buffers (taken from the process budget, bufpool.h), so I/O into
 * them skips the page pinning of each request; other aligned buffers work unregistered.
 * Ring descriptors are engine-owned (efd_park); the threads run with the shim's guard
 * (efd_engine_thread). After fork the child starts afresh (uring_atfork_child).
 *
 * Where io_uring cannot be used (a container whose seccomp profile refuses it, as
 * Docker's default does; sysctl kernel.io_uring_disabled; valgrind, which cannot follow
 * the kernel's asynchronous writes into our buffers and hangs in io_uring_enter) the
 * same requests go to a pool of threads instead: each ring becomes a queue served by
 * URING_POOL_WORKERS threads doing pread/pwrite/fdatasync, so direct:// and block:// keep
 * working, with the same semantics, at a lower speed (S3SHIM_DIRECT_ENGINE). */
#ifndef S3SHIM_URING_H
#define S3SHIM_URING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stats_set;

struct uring_settings {
    int threads;      /* engine threads, one ring each */
    unsigned entries; /* ring size */
    size_t slot_size; /* registered buffer size */
    int slots;        /* registered buffers */
    int sqpoll;       /* kernel submission polling thread */
    int engine;       /* URING_ENGINE_* */
};

enum { URING_ENGINE_AUTO = 0, URING_ENGINE_IO_URING, URING_ENGINE_THREADS };
#define URING_POOL_WORKERS 4 /* threads per ring when there is no io_uring */

/* Queue depth seen by a group of requests (one mount). */
struct uring_depth {
    _Atomic int cur, max;
    _Atomic uint64_t samples, sum;
};

enum { UIO_READ = 1, UIO_WRITE, UIO_FSYNC };

struct uio {
    int op, fd;
    char *buf;
    size_t len;
    off_t off;
    int buf_index;            /* registered buffer, or -1 */
    unsigned align;           /* offset alignment: a short transfer goes on only from one */
    struct stats_set *stats;  /* device stats (NULL: none) */
    struct uring_depth *depth; /* NULL: none */
    /* the engine's */
    size_t done;
    int tries;
    uint64_t t0;
    ssize_t res; /* bytes moved or -errno, once complete */
    _Atomic uint32_t state;
    _Atomic uint32_t pub; /* bumped (release) once the request is in a ring */
    struct uio *next;     /* the thread pool's queue */
};

/* Record the settings (first caller wins); starts nothing. */
void uring_configure(const struct uring_settings *s);

/* Start the rings and threads if they are not running (the first direct:// open does,
 * before it holds any lock of its own). 0 or -errno. */
int uring_start(void);

/* Submit n prepared requests as one batch. Returns 0, or -errno with none submitted
 * (the engine could not start). */
int uring_submit(struct uio *const *v, int n);
/* Wait for a submitted request; returns its result. */
ssize_t uring_wait(struct uio *u);
/* Has it completed? */
int uring_done(struct uio *u);
/* Submit one request and wait for it. */
ssize_t uring_run(struct uio *u);

/* An aligned buffer of at least len bytes: a registered one when one is free and big
 * enough, else one from the process budget (wait = 0: NULL if over budget). */
struct ubuf {
    char *p;
    size_t len;
    int index; /* registered index or -1 */
    void *raw;
    size_t rawlen;
};
int ubuf_get(struct ubuf *b, size_t len, int wait);
void ubuf_put(struct ubuf *b);

/* Rings and threads running in this process (0 before the first request). */
int uring_running(void);
/* The engine serving requests once running: "io_uring" or "threads". */
const char *uring_engine_name(void);
/* Changes in every forked child: requests and buffers of another generation are the
 * parent's and must be forgotten, never waited for. */
unsigned uring_generation(void);
void uring_atfork_child(void);

/* "max 12, mean 3.4" */
void uring_depth_format(const struct uring_depth *d, char *buf, size_t len);

#endif
