/* pump.c - see pump.h */
#define _GNU_SOURCE 1
#include "pump.h"

#include "../core/efd.h"
#include "../core/log.h"
#include "../core/stats.h"
#include "fdtable.h"
#include "guard.h"
#include "io.h"
#include "real.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define PUMP_CHUNK (1u << 20) /* also the pipe's size, so that dd bs=1M moves whole MiBs */
#define MAX_PUMPS 8
/* An IN pump fills the pipe only for readers it cannot see: when bytes it put there went
 * without one of our calls taking them, or when the program's own calls have been quiet
 * this long (a reader that bypasses us may be waiting on the empty pipe). */
#define PUMP_QUIET_NS (10u * 1000000u)

struct pump {
    struct ofd *o; /* a reference of the pump's own */
    int out;       /* program writes (to the description) */
    int ours;      /* our end of the pipe, engine-owned; -1 once an IN pump hit EOF */
    int placeholder; /* shared-form placeholder, restored before exec */
    int wake;        /* eventfd: a waiting pump sees `stop` at once */
    pid_t owner;
    pthread_t thr;
    int running;
    _Atomic int stop;  /* drain what is there, then end */
    _Atomic int busy;  /* OUT: bytes taken from the pipe, not yet stored */
    int err;           /* first failure */
    int given;         /* IN: read-ahead already given back */
    /* IN: the pump thread and the program's direct reads share these under `mu`. The
     * program's position is the description's offset minus `held` minus what is in the
     * pipe: a direct read takes the pipe's bytes first, then `held`, then the file. */
    pthread_mutex_t mu;
    char *buf;         /* IN: read from the description... */
    size_t hoff, held; /* ...buf[hoff, hoff + held) not yet in the pipe */
    size_t level;      /* IN: bytes we put in the pipe that no call of ours took */
    int peek;          /* IN: a non-blocking read end of the pipe of our own */
    int handoff;       /* before exec: the local file for a program without the shim */
    int placed;        /* before exec: fds given the placeholder or the handoff */
    dev_t pipe_dev;    /* the pipe's identity (both ends share it): still_ours() */
    ino_t pipe_ino;
    int streaming;     /* IN: a reader we do not see is reading: keep the pipe full */
    _Atomic uint64_t last_direct; /* IN: time of the program's last direct read */
};

static struct pump *pumps[MAX_PUMPS];
static pthread_mutex_t pump_lock = PTHREAD_MUTEX_INITIALIZER;

/* --- the threads ----------------------------------------------------------------------- */

/* A pipe of PUMP_CHUNK bytes: fewer hand-offs between the program and the pump (where
 * the system does not allow that size, the pipe keeps its own). */
static int pump_pipe(int pp[2])
{
    if (pipe2(pp, O_CLOEXEC) < 0) return -1;
    (void)REAL(fcntl)(pp[0], F_SETPIPE_SZ, (int)PUMP_CHUNK);
    return 0;
}

static void note_pipe(struct pump *p, int end)
{
    struct stat st;
    if (REAL(fstat)(end, &st) == 0) {
        p->pipe_dev = st.st_dev;
        p->pipe_ino = st.st_ino;
    }
}

/* Whether fd is still the program's end of p's pipe. stdio's fclose closes with glibc's
 * internal close, which we never see: the table then still names fd as pumped while the
 * number is free, or already someone else's (an engine descriptor opened but not yet
 * parked, say). Closing fd or dup3'ing over it is right only while it is our pipe. */
static int still_ours(int fd, const struct pump *p)
{
    struct stat st;
    return REAL(fstat)(fd, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_dev == p->pipe_dev && st.st_ino == p->pipe_ino;
}

/* The program closed fd behind our back: its slot goes, the descriptor is not ours. */
static void forget_fd(int fd)
{
    struct ofd *old = fdt_take(fd);
    if (old) ofd_put(old);
}

/* A read end of the pipe (given by its write end) of our own, non-blocking: a direct
 * read takes the bytes the pump put there without ever waiting on an empty pipe, even
 * while a reader we do not see (a child) drains it too. */
static int open_peek(int wr)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", wr);
    return REAL(open)(link, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

/* Read what the pipe holds now, up to len bytes: at least one read's worth (waiting for
 * it), then more only while more is already there, so that a writer's pieces (a pipe
 * hands over at most its size at a time) reach the backend as one large write. Sets
 * *eof when every writer is gone. */
static ssize_t read_available(int fd, char *buf, size_t len, int *eof)
{
    ssize_t n = REAL(read)(fd, buf, len);
    if (n == 0) *eof = 1;
    while (n > 0 && (size_t)n < len) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 0) <= 0 || !(pf.revents & (POLLIN | POLLHUP))) break;
        ssize_t m = REAL(read)(fd, buf + n, len - (size_t)n);
        if (m <= 0) {
            if (m == 0) *eof = 1;
            break;
        }
        n += m;
    }
    return n;
}

static void *pump_out(void *arg)
{
    struct pump *p = arg;
    char *buf = p->buf;
    for (int eof = 0; !eof;) {
        struct pollfd pf[2] = {{p->ours, POLLIN, 0}, {p->wake, POLLIN, 0}};
        int stopping = atomic_load(&p->stop);
        int pr = poll(pf, stopping ? 1 : 2, stopping ? 0 : -1);
        if (pr < 0 && errno != EINTR) break;
        if (pr == 0 && stopping) break; /* drained; other writers are not waited for */
        if (!(pf[0].revents & (POLLIN | POLLHUP))) continue;
        pthread_mutex_lock(&p->mu); /* held while moving bytes: pump_atfork_prepare */
        atomic_store(&p->busy, 1);
        ssize_t n = read_available(p->ours, buf, PUMP_CHUNK, &eof);
        if (n <= 0) {
            atomic_store(&p->busy, 0);
            pthread_mutex_unlock(&p->mu);
            if (n < 0 && errno == EINTR) continue;
            break; /* EOF: every writer is gone */
        }
        for (ssize_t done = 0; done < n && !p->err;) {
            ssize_t w = io_write(p->o, buf + done, (size_t)(n - done));
            if (w <= 0) {
                p->err = w < 0 ? (int)w : -EIO;
                slog_error("writing %s through a redirected stream failed: %s", ofd_path(p->o), strerror(-p->err));
            } else {
                done += w;
            }
        }
        atomic_store(&p->busy, 0);
        pthread_mutex_unlock(&p->mu);
        if (p->err) {
            /* The program's next write gets EPIPE, not silence, and never blocks on a
             * full pipe nobody reads: our read end goes now. */
            int ours = p->ours;
            p->ours = -1;
            efd_close(ours);
            break;
        }
    }
    return NULL;
}

/* Move bytes of the description into the pipe until it is full. Returns 1 when the pipe
 * is full (wait for room), 0 at the end of the file (our end is closed: readers see EOF)
 * or on a failure (p->err). Called with p->mu held. */
static int fill(struct pump *p)
{
    for (;;) {
        if (p->held == 0) {
            ssize_t n = io_read(p->o, p->buf, PUMP_CHUNK);
            if (n == 0) {
                efd_close(p->ours);
                p->ours = -1;
                return 0;
            }
            if (n < 0) {
                p->err = (int)n;
                slog_error("reading %s through a redirected stream failed: %s", ofd_path(p->o), strerror(-p->err));
                return 0;
            }
            p->hoff = 0;
            p->held = (size_t)n;
        }
        ssize_t w = REAL(write)(p->ours, p->buf + p->hoff, p->held);
        if (w < 0) return errno == EAGAIN ? 1 : 0; /* EPIPE: nobody can read it any more */
        p->hoff += (size_t)w;
        p->held -= (size_t)w;
        p->level += (size_t)w;
    }
}

static void *pump_in(void *arg)
{
    struct pump *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->stop)) {
        int inpipe = 0, timeout = -1;
        short ev = 0;
        if (p->ours >= 0 && !p->err && REAL(ioctl)(p->ours, FIONREAD, &inpipe) == 0) {
            if ((size_t)inpipe < p->level) p->streaming = 1; /* someone we do not see took bytes */
            p->level = (size_t)inpipe;
            uint64_t idle = stats_now_ns() - atomic_load(&p->last_direct);
            if (p->streaming || idle >= PUMP_QUIET_NS)
                ev = fill(p) ? POLLOUT : 0;
            else
                timeout = (int)((PUMP_QUIET_NS - idle) / 1000000u) + 1;
        }
        int ours = p->ours;
        pthread_mutex_unlock(&p->mu);
        struct pollfd pf[2] = {{p->wake, POLLIN, 0}, {ev ? ours : -1, ev, 0}};
        int pr = poll(pf, 2, timeout);
        uint64_t kicks;
        if (pr > 0 && (pf[0].revents & POLLIN) && REAL(read)(p->wake, &kicks, sizeof kicks) < 0) { /* raced */
        }
        pthread_mutex_lock(&p->mu);
        if (pr < 0 && errno != EINTR) break;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int start(struct pump *p)
{
    uint64_t drop;
    if (REAL(read)(p->wake, &drop, sizeof drop) < 0) { /* nothing pending: fine */
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the program's signals are not ours */
    atomic_store(&p->stop, 0);
    p->given = 0;
    int r = pthread_create(&p->thr, NULL, p->out ? pump_out : pump_in, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    p->running = r == 0;
    return r == 0 ? 0 : -r;
}

static void stop_and_join(struct pump *p)
{
    if (!p->running) return;
    atomic_store(&p->stop, 1);
    uint64_t one = 1;
    if (REAL(write)(p->wake, &one, sizeof one) < 0) { /* counter full: already woken */
    }
    pthread_join(p->thr, NULL);
    p->running = 0;
}

/* --- bookkeeping ------------------------------------------------------------------------ */

static struct pump *pump_for(const struct ofd *o)
{
    for (int i = 0; i < MAX_PUMPS; i++)
        if (pumps[i] && pumps[i]->o == o && pumps[i]->owner == getpid()) return pumps[i];
    return NULL;
}

/* Call fn on every fd of this process whose slot is o's pumped pipe end. */
static int each_pumped_fd(const struct ofd *o, int except, void (*fn)(int fd, struct pump *p), struct pump *p)
{
    int n = 0, lim = fdt_ofd_limit();
    for (int fd = 0; fd < lim; fd++) {
        struct ofd *raw = fdt_peek(fd);
        if (fd == except || !fdt_raw_pumped(raw) || fdt_raw_ofd(raw) != o) continue;
        n++;
        if (fn) fn(fd, p);
    }
    return n;
}

/* Some fd of this process that is o's pumped pipe end, or -1. */
static int first_pumped_fd(const struct ofd *o)
{
    for (int fd = 0; fd < fdt_ofd_limit(); fd++)
        if (fdt_raw_pumped(fdt_peek(fd)) && fdt_raw_ofd(fdt_peek(fd)) == o) return fd;
    return -1;
}

/* An IN pump has stopped: what it read from the description but the program did not
 * consume (still in the pipe, or still in the pump's hands) goes back to the offset, as
 * if the program had read exactly what it used. `probe` is any end of the pipe. */
static void take_back(struct pump *p, int probe) /* p->mu held */
{
    int inpipe = 0;
    if (p->ours >= 0) probe = p->ours;
    if (p->peek >= 0) probe = p->peek;
    if (probe >= 0 && probe != p->ours && probe != p->peek && !still_ours(probe, p)) probe = -1;
    if (probe < 0 || REAL(ioctl)(probe, FIONREAD, &inpipe) < 0) inpipe = 0;
    ofd_lock(p->o);
    ofd_sh(p->o)->offset -= (int64_t)inpipe + (int64_t)p->held;
    ofd_unlock(p->o);
    /* they will be read again: counted once, when the program gets them */
    stats_unrecord_bytes(&p->o->m->stats, STK_READ, (uint64_t)inpipe + p->held);
    p->held = 0;
    p->level = 0;
}

static void give_back(struct pump *p, int probe)
{
    if (p->out || p->given) return;
    pthread_mutex_lock(&p->mu); /* a direct read under way finishes first */
    take_back(p, probe);
    p->given = 1;
    pthread_mutex_unlock(&p->mu);
}

/* Release everything; caller holds pump_lock and has removed p from pumps[]. */
static int retire(struct pump *p)
{
    if (p->out) {
        if (p->running) pthread_join(p->thr, NULL); /* to EOF: every write end is closed */
        p->running = 0;
    } else {
        stop_and_join(p);
        give_back(p, -1);
    }
    efd_close(p->ours);
    efd_close(p->placeholder);
    efd_close(p->wake);
    efd_close(p->peek);
    int r = p->err;
    int c = ofd_put(p->o);
    pthread_mutex_destroy(&p->mu);
    free(p->buf);
    free(p);
    return r ? r : c;
}

int pump_install(int fd, struct ofd *o)
{
    int acc = ofd_status(o) & O_ACCMODE;
    if (fd < 0 || fd > 2 || o->type != OFD_FILE) return -1;
    pthread_mutex_lock(&pump_lock);
    struct pump *q = pump_for(o);
    if (q) { /* a second std fd on the same description (2>&1): share the pipe */
        int other = first_pumped_fd(o);
        int ok = other >= 0 && still_ours(other, q) && ofd_dup_over(other, fd) >= 0;
        if (ok) {
            struct ofd *old = fdt_set(fd, fdt_tag_pumped(o));
            if (old) ofd_put(old);
        }
        pthread_mutex_unlock(&pump_lock);
        return ok ? 0 : -1;
    }
    int slot = -1;
    for (int i = 0; i < MAX_PUMPS && slot < 0; i++)
        if (!pumps[i]) slot = i;
    struct pump *p = slot >= 0 ? calloc(1, sizeof *p) : NULL;
    int pp[2] = {-1, -1}, ph = -1;
    if (!p) goto fail;
    p->wake = p->peek = p->handoff = -1;
    p->o = o;
    /* A description open for both (`exec 3<>f; echo x >&3`, `cmd <>f`): stdout and stderr
     * carry writes, stdin reads, as programs use them. */
    p->out = acc == O_WRONLY || (acc == O_RDWR && fd != 0);
    p->owner = getpid();
    pthread_mutex_init(&p->mu, NULL);
    atomic_store(&p->last_direct, stats_now_ns()); /* quiet at first: the program may read itself */
    /* Taken here, not by the thread: a thread's first malloc makes it an arena of its own
     * (a 128 MiB reservation, then trimmed), for every redirection of a shell loop. OUT:
     * page-aligned, so that an O_DIRECT backend writes it in place. */
    if (!(p->buf = p->out ? aligned_alloc(4096, PUMP_CHUNK) : malloc(PUMP_CHUNK))) goto fail;
    if ((p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 || pump_pipe(pp) < 0) goto fail;
    note_pipe(p, pp[0]);
    if (!p->out && (p->peek = open_peek(pp[1])) < 0) goto fail;
    /* The placeholder restored before exec must carry the description to the next
     * program: give it its shared form now. */
    ph = ofd_promote(o);
    if (ph == -EEXIST) ph = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 3);
    if (ph < 0) goto fail;
    int prog_end = p->out ? pp[1] : pp[0];
    if (ofd_dup_over(prog_end, fd) < 0) goto fail;
    REAL(close)(prog_end);
    p->ours = efd_park(p->out ? pp[0] : pp[1]);
    if (!p->out) REAL(fcntl)(p->ours, F_SETFL, O_NONBLOCK);
    p->placeholder = efd_park(ph);
    p->wake = efd_park(p->wake);
    if (p->peek >= 0) p->peek = efd_park(p->peek);
    ofd_ref(o);
    struct ofd *old = fdt_set(fd, fdt_tag_pumped(o));
    if (old) ofd_put(old);
    if (start(p) < 0) slog_error("cannot start the stream thread for fd %d: transfers will stall", fd);
    pumps[slot] = p;
    pthread_mutex_unlock(&pump_lock);
    slog_debug("fd %d (%s) served through a pipe", fd, ofd_path(o));
    return 0;
fail:
    if (pp[0] >= 0) REAL(close)(pp[0]);
    if (pp[1] >= 0) REAL(close)(pp[1]);
    if (ph >= 0) REAL(close)(ph);
    if (p && p->wake >= 0) REAL(close)(p->wake);
    if (p && p->peek >= 0) REAL(close)(p->peek);
    if (p) {
        pthread_mutex_destroy(&p->mu);
        free(p->buf);
    }
    free(p);
    pthread_mutex_unlock(&pump_lock);
    return -1;
}

void pump_detach(int fd)
{
    pthread_mutex_lock(&pump_lock);
    struct ofd *o = fdt_raw_ofd(fdt_peek(fd));
    struct pump *p = o ? pump_for(o) : NULL;
    if (p && !p->out && each_pumped_fd(o, fd, NULL, NULL) == 0) {
        stop_and_join(p);
        give_back(p, fd);
    }
    pthread_mutex_unlock(&pump_lock);
}

int pump_release(struct ofd *o)
{
    pthread_mutex_lock(&pump_lock);
    int r = 0;
    struct pump *p = pump_for(o);
    if (p && each_pumped_fd(o, -1, NULL, NULL) == 0) {
        for (int i = 0; i < MAX_PUMPS; i++)
            if (pumps[i] == p) pumps[i] = NULL;
        r = retire(p);
    }
    pthread_mutex_unlock(&pump_lock);
    return r;
}

/* --- calls on a pumped fd ------------------------------------------------------------------ */

/* A read through the pipe: what a process that does not own the pump (a forked child)
 * sees. A read of a file returns short only at its end; a pipe returns what it holds. */
static ssize_t pipe_read(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = REAL(read)(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR && got == 0) return -1;
        if (r < 0 && errno == EINTR) break;
        if (r < 0) return got ? (ssize_t)got : -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* This process's pump of the description behind pumped fd, in direction `out`, with its
 * `mu` held (IN), or NULL: the caller then uses the pipe. */
static struct pump *mine(int fd, int out)
{
    struct ofd *o = fdt_raw_ofd(fdt_peek(fd));
    if (!o) return NULL;
    oplog_fd = fd; /* the op log's fd of the call under way */
    pthread_mutex_lock(&pump_lock);
    struct pump *p = pump_for(o);
    if (p && p->out != out) p = NULL;
    if (p && !out) pthread_mutex_lock(&p->mu); /* before pump_lock goes: retire waits for it */
    pthread_mutex_unlock(&pump_lock);
    return p;
}

/* The program's own read, with p->mu held: the bytes it has not seen yet come first from
 * the pipe, then from the pump's hands, then straight from the file. */
static ssize_t read_direct(struct pump *p, char *buf, size_t n)
{
    size_t got = 0;
    while (p->level > 0 && got < n) { /* (a reader we do not see may have taken some) */
        ssize_t r = REAL(read)(p->peek, buf + got, n - got);
        if (r <= 0) {
            p->level = 0;
            break;
        }
        got += (size_t)r;
        p->level = (size_t)r < p->level ? p->level - (size_t)r : 0;
    }
    if (got < n && p->held) {
        size_t k = n - got < p->held ? n - got : p->held;
        memcpy(buf + got, p->buf + p->hoff, k);
        p->hoff += k;
        p->held -= k;
        got += k;
    }
    if (got < n) {
        ssize_t r = io_read(p->o, buf + got, n - got);
        if (r < 0 && !got) return r;
        if (r > 0) got += (size_t)r;
    }
    p->streaming = 0;
    atomic_store(&p->last_direct, stats_now_ns());
    return (ssize_t)got;
}

ssize_t pump_read(int fd, void *buf, size_t n)
{
    struct pump *p = mine(fd, 0);
    if (!p) return pipe_read(fd, buf, n);
    ssize_t r = read_direct(p, buf, n);
    pthread_mutex_unlock(&p->mu);
    if (r < 0) errno = (int)-r;
    return r < 0 ? -1 : r;
}

ssize_t pump_readv(int fd, const struct iovec *iov, int cnt)
{
    if (cnt < 0 || cnt > IOV_MAX) return errno = EINVAL, -1;
    struct pump *p = mine(fd, 0);
    if (!p) return REAL(readv)(fd, iov, cnt);
    ssize_t total = 0;
    for (int i = 0; i < cnt; i++) {
        if (!iov[i].iov_len) continue;
        ssize_t r = read_direct(p, iov[i].iov_base, iov[i].iov_len);
        if (r < 0) {
            if (!total) total = r;
            break;
        }
        total += r;
        if ((size_t)r < iov[i].iov_len) break;
    }
    pthread_mutex_unlock(&p->mu);
    if (total < 0) errno = (int)-total;
    return total < 0 ? -1 : total;
}

/* The program's own write: once everything written to the pipe before it is stored (in
 * order with printf and with children that write through the pipe), straight to the file. */
static ssize_t write_direct(int fd, const void *buf, size_t n, const struct iovec *iov, int cnt)
{
    int pumped;
    struct ofd *o = fdt_get_ex(fd, &pumped);
    if (!o || !pumped) {
        if (o) ofd_put(o);
        return -EBADF;
    }
    ssize_t r = pump_sync(o);
    if (r == 0) r = iov ? io_writev(o, iov, cnt, -1) : io_write(o, buf, n);
    ofd_put(o);
    return r;
}

ssize_t pump_write(int fd, const void *buf, size_t n)
{
    if (!mine(fd, 1)) return REAL(write)(fd, buf, n);
    ssize_t r = write_direct(fd, buf, n, NULL, 0);
    if (r < 0) errno = (int)-r;
    return r < 0 ? -1 : r;
}

ssize_t pump_writev(int fd, const struct iovec *iov, int cnt)
{
    if (!mine(fd, 1)) return REAL(writev)(fd, iov, cnt);
    ssize_t r = write_direct(fd, NULL, 0, iov, cnt);
    if (r < 0) errno = (int)-r;
    return r < 0 ? -1 : r;
}

int pump_sync(struct ofd *o)
{
    for (int spins = 0;; spins++) {
        pthread_mutex_lock(&pump_lock);
        struct pump *p = pump_for(o);
        int inpipe = 0, done = 1, err = 0;
        if (p && p->out && p->running) {
            if (REAL(ioctl)(p->ours, FIONREAD, &inpipe) < 0) inpipe = 0;
            done = inpipe == 0 && !atomic_load(&p->busy);
        }
        if (p) err = p->err;
        pthread_mutex_unlock(&pump_lock);
        if (err) return err;
        if (done) return 0;
        struct timespec ts = {0, spins < 100 ? 20000 : 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Throw away what is in the pipe (fd is the program's read end). */
static void drain(int fd)
{
    char buf[4096];
    struct pollfd pf = {fd, POLLIN, 0};
    while (poll(&pf, 1, 0) > 0 && (pf.revents & POLLIN) && REAL(read)(fd, buf, sizeof buf) > 0) {
    }
}

off_t pump_lseek(int fd, struct ofd *o, off_t off, int whence)
{
    pthread_mutex_lock(&pump_lock);
    struct pump *p = pump_for(o);
    if (!p) { /* a child's view of its parent's pipe */
        pthread_mutex_unlock(&pump_lock);
        return -ESPIPE;
    }
    if (p->out) {
        pthread_mutex_unlock(&pump_lock);
        int e = pump_sync(o);
        return e < 0 ? e : io_lseek(o, off, whence);
    }
    /* The pump thread keeps running (a shell's `while read` seeks back after every line):
     * with p->mu held it is waiting, not filling. */
    pthread_mutex_lock(&p->mu);
    take_back(p, fd); /* the offset is now where the program is */
    if (p->peek >= 0 || still_ours(fd, p)) drain(p->peek >= 0 ? p->peek : fd);
    off_t r = io_lseek(o, off, whence);
    int kick = 0;
    if (p->ours < 0) { /* the pump had reached the end and closed its end: a new pipe */
        int pp[2];
        if (pump_pipe(pp) == 0) {
            ofd_dup_over(pp[0], fd);
            REAL(close)(pp[0]);
            note_pipe(p, pp[1]);
            REAL(fcntl)(pp[1], F_SETFL, O_NONBLOCK);
            int pk = open_peek(pp[1]);
            p->ours = efd_park(pp[1]);
            if (pk >= 0) {
                efd_close(p->peek);
                p->peek = efd_park(pk);
            }
            kick = 1; /* the thread waits on `wake` only: it must look at the new pipe */
        } else {
            r = -errno;
        }
    }
    atomic_store(&p->last_direct, stats_now_ns()); /* the program reads on itself, as a rule */
    p->streaming = 0;
    pthread_mutex_unlock(&p->mu);
    uint64_t one = 1;
    if (kick && p->running && REAL(write)(p->wake, &one, sizeof one) < 0) { /* counter full: woken anyway */
    }
    if (!p->running && p->ours >= 0 && start(p) < 0) r = -EAGAIN;
    pthread_mutex_unlock(&pump_lock);
    return r;
}

/* --- exec, fork, exit ------------------------------------------------------------------------ */

static void put_placeholder(int fd, struct pump *p)
{
    if (!still_ours(fd, p)) { /* closed by the program: the next program finds it closed too */
        forget_fd(fd);
        return;
    }
    p->placed++;
    ofd_dup_over(p->placeholder, fd);
    struct ofd *old = fdt_set(fd, p->o); /* untagged: a placeholder again */
    if (old) ofd_put(old);
}

/* For a program that will not have the shim: a descriptor of the local file itself
 * (file://, direct://), or -1. Not for an object store: its bytes live in this process
 * until it uploads them. */
static int handoff_open(struct pump *p)
{
    struct ofd *o = p->o;
    if (!o->fh || o->m->ops->commit || !o->m->ops->local_fd) return -1;
    int lfd = o->m->ops->local_fd(o->fh);
    if (lfd < 0) return -1;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", lfd);
    return REAL(open)(link, (ofd_status(o) & (O_ACCMODE | O_APPEND)) | O_CLOEXEC);
}

static void put_handoff(int fd, struct pump *p)
{
    if (!still_ours(fd, p)) {
        forget_fd(fd);
        return;
    }
    p->placed++;
    ofd_dup_over(p->handoff, fd);
    struct ofd *old = fdt_take(fd); /* a plain descriptor now, the kernel's */
    if (old) ofd_put(old);
}

void pump_before_exec(int shim_follows)
{
    pthread_mutex_lock(&pump_lock);
    for (int i = 0; i < MAX_PUMPS; i++) {
        struct pump *p = pumps[i];
        if (!p || p->owner != getpid() || !p->running) continue;
        p->handoff = shim_follows ? -1 : handoff_open(p);
        p->placed = 0;
        void (*put)(int, struct pump *) = p->handoff >= 0 ? put_handoff : put_placeholder;
        if (p->out) {
            /* Our write ends go; the pump stores what is in the pipe and ends. */
            each_pumped_fd(p->o, -1, put, p);
            stop_and_join(p);
            if (p->handoff >= 0 && p->o->m->ops->fsync) /* what the backend gathered, in the file */
                IO_BACKEND(p->o->m->ops->fsync(p->o->fh, 1));
        } else {
            stop_and_join(p);
            give_back(p, first_pumped_fd(p->o));
        }
        if (p->handoff >= 0) { /* the next program goes on from where this one is */
            REAL(lseek)(p->handoff, (off_t)ofd_sh(p->o)->offset, SEEK_SET);
            slog_debug("%s handed to the next program as the file itself (it has no shim)", ofd_path(p->o));
        }
        if (!p->out) each_pumped_fd(p->o, -1, put, p);
        if (p->handoff >= 0) REAL(close)(p->handoff);
        p->handoff = -1;
        if (!p->placed) {
            /* The program closed every fd of it where we could not see (stdio's fclose):
             * nothing goes on to the next program, so it ends here, as that close would
             * have ended it (an object store's upload included). */
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s", ofd_path(p->o));
            pumps[i] = NULL;
            int r = retire(p);
            if (r < 0) slog_error("finishing %s before exec failed: %s", path, strerror(-r));
        }
    }
    pthread_mutex_unlock(&pump_lock);
}

void pump_after_exec_failed(void)
{
    /* The placeholders are back; retire the stopped pumps and serve fds 0-2 anew. */
    pthread_mutex_lock(&pump_lock);
    for (int i = 0; i < MAX_PUMPS; i++) {
        struct pump *p = pumps[i];
        if (!p || p->owner != getpid() || p->running) continue;
        pumps[i] = NULL;
        retire(p);
    }
    pthread_mutex_unlock(&pump_lock);
    for (int fd = 0; fd <= 2; fd++) {
        struct ofd *raw = fdt_peek(fd);
        if (!FDT_IS_MARK(raw) && !fdt_raw_pumped(raw)) pump_install(fd, raw);
    }
}

/* fork: no pump thread of ours is inside the engine (allocating, holding a lock of
 * libcurl's or the allocator's) while the address space is copied; a thread holds its
 * pump's `mu` whenever it moves bytes. ASan's allocator (gcc 12) has no fork handler of
 * its own: a forked child used to hang in malloc, now and then, on a lock the parent's
 * pump held at that instant. */
void pump_atfork_prepare(void)
{
    pthread_mutex_lock(&pump_lock);
    for (int i = 0; i < MAX_PUMPS; i++)
        if (pumps[i] && pumps[i]->owner == getpid()) pthread_mutex_lock(&pumps[i]->mu);
}

void pump_atfork_parent(void)
{
    for (int i = MAX_PUMPS - 1; i >= 0; i--)
        if (pumps[i] && pumps[i]->owner == getpid()) pthread_mutex_unlock(&pumps[i]->mu);
    pthread_mutex_unlock(&pump_lock);
}

void pump_atfork_child(void)
{
    /* The locks were taken by the thread that forked, which is this one; no pump thread
     * lives in the child, so fresh locks are right. */
    for (int i = 0; i < MAX_PUMPS; i++)
        if (pumps[i]) pthread_mutex_init(&pumps[i]->mu, NULL);
    pthread_mutex_init(&pump_lock, NULL);
}

static void close_pumped_fd(int fd, struct pump *p)
{
    if (still_ours(fd, p)) REAL(close)(fd);
    forget_fd(fd);
}

int pump_finish_all(void)
{
    int failed = 0;
    pthread_mutex_lock(&pump_lock);
    for (int i = 0; i < MAX_PUMPS; i++) {
        struct pump *p = pumps[i];
        if (!p || p->owner != getpid()) continue;
        pumps[i] = NULL;
        if (p->out) {
            each_pumped_fd(p->o, -1, close_pumped_fd, p);
            stop_and_join(p); /* store what is in the pipe; writers in children are not awaited */
        } else {
            stop_and_join(p);
            give_back(p, first_pumped_fd(p->o));
            each_pumped_fd(p->o, -1, close_pumped_fd, p);
        }
        int r = retire(p);
        if (r < 0) {
            slog_error("finishing a redirected stream at exit failed: %s", strerror(-r));
            failed++;
        }
    }
    pthread_mutex_unlock(&pump_lock);
    return failed;
}
