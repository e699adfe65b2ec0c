/* pump.c - see pump.h */
#define _GNU_SOURCE 1
#include "pump.h"

#include "../core/efd.h"
#include "../core/log.h"
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
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define PUMP_CHUNK (256u << 10)

struct pump {
    int fd;          /* 0, 1 or 2 */
    int out;         /* program writes (to the description) */
    int ours;        /* our end of the pipe, engine-owned */
    int placeholder; /* a parked copy of the placeholder, to restore before exec */
    ino_t pipe_ino;
    struct ofd *o;
    pid_t owner;
    pthread_t thr;
    int running;
    _Atomic int stop; /* drain what is there, then stop (exec) */
    int err;          /* first failure, reported by pump_finish */
    size_t held;      /* IN: bytes read from the description not yet in the pipe */
};

#define MAX_PUMPS 8
static struct pump *pumps[MAX_PUMPS];
static pthread_mutex_t pump_lock = PTHREAD_MUTEX_INITIALIZER;

static void *pump_out(void *arg)
{
    struct pump *p = arg;
    char *buf = malloc(PUMP_CHUNK);
    if (!buf) {
        p->err = -ENOMEM;
        return NULL;
    }
    for (;;) {
        if (atomic_load(&p->stop)) {
            struct pollfd pf = {p->ours, POLLIN, 0};
            if (poll(&pf, 1, 0) <= 0) break; /* nothing left to drain */
        }
        ssize_t n = REAL(read)(p->ours, buf, PUMP_CHUNK);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            p->err = -errno;
            break;
        }
        for (ssize_t done = 0; done < n && !p->err;) {
            ssize_t w = io_write(p->o, buf + done, (size_t)(n - done));
            if (w <= 0) {
                p->err = w < 0 ? (int)w : -EIO;
                slog_error("writing %s through fd %d failed: %s", ofd_path(p->o), p->fd, strerror(-p->err));
            } else {
                done += w;
            }
        }
        if (p->err) break; /* the program's next write gets EPIPE, not silence */
    }
    free(buf);
    return NULL;
}

static void *pump_in(void *arg)
{
    struct pump *p = arg;
    char *buf = malloc(PUMP_CHUNK);
    if (!buf) {
        p->err = -ENOMEM;
        return NULL;
    }
    size_t off = 0;
    p->held = 0;
    while (!atomic_load(&p->stop)) {
        if (p->held == 0) {
            ssize_t n = io_read(p->o, buf, PUMP_CHUNK);
            if (n == 0) { /* end of file: the reader sees EOF once our end is closed */
                efd_close(p->ours);
                p->ours = -1;
                break;
            }
            if (n < 0) {
                p->err = (int)n;
                slog_error("reading %s through fd %d failed: %s", ofd_path(p->o), p->fd, strerror(-p->err));
                break;
            }
            p->held = (size_t)n;
            off = 0;
        }
        struct pollfd pf = {p->ours, POLLOUT, 0};
        int pr = poll(&pf, 1, 50); /* wake up now and then to see `stop` */
        if (pr < 0 && errno != EINTR) break;
        if (pr <= 0) continue;
        if (pf.revents & (POLLERR | POLLHUP)) break; /* the reader went away */
        ssize_t w = REAL(write)(p->ours, buf + off, p->held);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            break;
        }
        off += (size_t)w;
        p->held -= (size_t)w;
    }
    free(buf);
    return NULL;
}

static int start(struct pump *p)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the program's signals are not ours */
    atomic_store(&p->stop, 0);
    int r = pthread_create(&p->thr, NULL, p->out ? pump_out : pump_in, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    p->running = r == 0;
    return r == 0 ? 0 : -r;
}

/* Another pumped fd on the same description: share its pipe instead of a second pump. */
static int share_existing(int fd, struct ofd *o)
{
    for (int i = 0; i < MAX_PUMPS; i++) {
        struct pump *q = pumps[i];
        if (!q || q->o != o || q->owner != getpid()) continue;
        int cl = REAL(fcntl)(fd, F_GETFD);
        if (REAL(dup3)(q->fd, fd, cl > 0 && (cl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) return -1;
        return 0;
    }
    return -1;
}

int pump_install(int fd, struct ofd *o)
{
    int acc = o->sh->status & O_ACCMODE;
    if (fd < 0 || fd > 2 || o->type != OFD_FILE || acc == O_RDWR) return -1;
    pthread_mutex_lock(&pump_lock);
    int slot = -1;
    for (int i = 0; i < MAX_PUMPS && slot < 0; i++)
        if (!pumps[i]) slot = i;
    if (share_existing(fd, o) == 0) {
        fdt_set(fd, FDT_PUMPED);
        pthread_mutex_unlock(&pump_lock);
        ofd_put(o);
        return 0;
    }
    struct pump *p = slot >= 0 ? calloc(1, sizeof *p) : NULL;
    int pp[2] = {-1, -1};
    if (!p || pipe2(pp, O_CLOEXEC) < 0) goto fail;
    p->fd = fd;
    p->out = acc == O_WRONLY;
    p->o = o;
    p->owner = getpid();
    int cl = REAL(fcntl)(fd, F_GETFD);
    int ph = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 3);
    if (ph < 0) goto fail;
    int prog_end = p->out ? pp[1] : pp[0];
    p->ours = p->out ? pp[0] : pp[1];
    if (!p->out) REAL(fcntl)(p->ours, F_SETFL, O_NONBLOCK);
    if (REAL(dup3)(prog_end, fd, cl > 0 && (cl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
        REAL(close)(ph);
        goto fail;
    }
    REAL(close)(prog_end);
    struct stat st;
    p->pipe_ino = REAL(fstat)(fd, &st) == 0 ? st.st_ino : 0;
    p->placeholder = efd_park(ph);
    p->ours = efd_park(p->ours);
    fdt_set(fd, FDT_PUMPED);
    if (start(p) < 0) slog_error("cannot start the stream thread for fd %d: transfers will stall", fd);
    pumps[slot] = p;
    pthread_mutex_unlock(&pump_lock);
    slog_debug("fd %d (%s) served through a pipe", fd, ofd_path(o));
    return 0;
fail:
    if (pp[0] >= 0) REAL(close)(pp[0]);
    if (pp[1] >= 0) REAL(close)(pp[1]);
    free(p);
    pthread_mutex_unlock(&pump_lock);
    return -1;
}

/* Wait for the pump to end, then release everything. Caller holds pump_lock. */
static int retire(struct pump *p)
{
    if (p->running) pthread_join(p->thr, NULL);
    p->running = 0;
    efd_close(p->ours);
    efd_close(p->placeholder);
    int r = ofd_put(p->o);
    if (!r) r = p->err;
    free(p);
    return r;
}

/* Every descriptor of this process that is the program's end of p's pipe. */
static void for_each_pipe_fd(struct pump *p, void (*fn)(int fd, struct pump *p, void *ctx), void *ctx)
{
    int lim = fdt_limit() > 64 ? fdt_limit() : 64;
    for (int fd = 0; fd < lim; fd++) {
        struct ofd *s = fdt_peek(fd);
        if (s == FDT_ENGINE) continue;
        struct stat st;
        if (REAL(fstat)(fd, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_ino == p->pipe_ino && fd != p->ours) fn(fd, p, ctx);
    }
}

static void close_pipe_fd(int fd, struct pump *p, void *ctx)
{
    (void)p, (void)ctx;
    REAL(close)(fd);
    if (fdt_peek(fd) == FDT_PUMPED) fdt_take(fd);
}

static void find_pipe_fd(int fd, struct pump *p, void *ctx)
{
    (void)p;
    int *found = ctx;
    if (*found < 0) *found = fd;
}

int pump_finish(int fd)
{
    pthread_mutex_lock(&pump_lock);
    if (fdt_peek(fd) == FDT_PUMPED) fdt_take(fd);
    int r = 0, i;
    for (i = 0; i < MAX_PUMPS; i++)
        if (pumps[i] && pumps[i]->fd == fd && pumps[i]->owner == getpid()) break;
    if (i < MAX_PUMPS) {
        struct pump *p = pumps[i];
        /* Another descriptor of ours still holds the pipe (2>&1, a saved copy): the
         * stream goes on, now known by that descriptor. */
        int other = -1;
        for_each_pipe_fd(p, find_pipe_fd, &other);
        if (other >= 0) {
            p->fd = other;
        } else {
            pumps[i] = NULL;
            if (!p->out) atomic_store(&p->stop, 1);
            r = retire(p);
        }
    }
    pthread_mutex_unlock(&pump_lock);
    return r;
}

static void restore_placeholder(int fd, struct pump *p, void *ctx)
{
    (void)ctx;
    int cl = REAL(fcntl)(fd, F_GETFD);
    REAL(dup3)(p->placeholder, fd, cl > 0 && (cl & FD_CLOEXEC) ? O_CLOEXEC : 0);
}

void pump_before_exec(void)
{
    pthread_mutex_lock(&pump_lock);
    for (int i = 0; i < MAX_PUMPS; i++) {
        struct pump *p = pumps[i];
        if (!p || p->owner != getpid() || !p->running) continue;
        atomic_store(&p->stop, 1);
        if (p->out) {
            /* Our copies of the write end go: the pump drains what is there and ends. */
            for_each_pipe_fd(p, restore_placeholder, NULL);
            pthread_join(p->thr, NULL);
        } else {
            pthread_join(p->thr, NULL);
            /* Give back what was read ahead: still in the pipe, or still in our hands. */
            int inpipe = 0;
            if (REAL(ioctl)(p->fd, FIONREAD, &inpipe) < 0) inpipe = 0;
            ofd_lock(p->o);
            p->o->sh->offset -= (int64_t)inpipe + (int64_t)p->held;
            ofd_unlock(p->o);
            p->held = 0;
            for_each_pipe_fd(p, restore_placeholder, NULL);
        }
        p->running = 0;
    }
    pthread_mutex_unlock(&pump_lock);
}

void pump_after_exec_failed(void)
{
    /* The placeholders are back; serve them again with fresh pipes. */
    for (int i = 0; i < MAX_PUMPS; i++) {
        pthread_mutex_lock(&pump_lock);
        struct pump *p = pumps[i];
        if (!p || p->owner != getpid() || p->running) {
            pthread_mutex_unlock(&pump_lock);
            continue;
        }
        pumps[i] = NULL;
        struct ofd *o = p->o;
        int fd = p->fd;
        ofd_ref(o);
        retire(p);
        pthread_mutex_unlock(&pump_lock);
        if (pump_install(fd, o) < 0) ofd_put(o);
    }
}

void pump_finish_all(void)
{
    for (int i = 0; i < MAX_PUMPS; i++) {
        pthread_mutex_lock(&pump_lock);
        struct pump *p = pumps[i];
        if (!p || p->owner != getpid()) {
            pthread_mutex_unlock(&pump_lock);
            continue;
        }
        pumps[i] = NULL;
        if (p->out) for_each_pipe_fd(p, close_pipe_fd, NULL);
        atomic_store(&p->stop, 1);
        int r = retire(p);
        pthread_mutex_unlock(&pump_lock);
        if (r < 0) slog_error("finishing %s at exit failed: %s", "a redirected stream", strerror(-r));
    }
}
