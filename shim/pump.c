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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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
    int wake;         /* eventfd: makes a waiting IN pump see `stop` at once */
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
        struct pollfd pf[2] = {{p->ours, POLLOUT, 0}, {p->wake, POLLIN, 0}};
        int pr = poll(pf, 2, -1);
        if (pr < 0 && errno != EINTR) break;
        if (pr <= 0 || (pf[1].revents & POLLIN)) continue; /* loop test sees `stop` */
        if (pf[0].revents & (POLLERR | POLLHUP)) break;     /* the reader went away */
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

static void request_stop(struct pump *p)
{
    atomic_store(&p->stop, 1);
    uint64_t one = 1;
    if (p->wake >= 0 && REAL(write)(p->wake, &one, sizeof one) < 0) { /* counter full: already woken */
    }
}

static int start(struct pump *p)
{
    uint64_t drop;
    if (p->wake >= 0 && REAL(read)(p->wake, &drop, sizeof drop) < 0) { /* nothing pending */
    }
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
    if (p) p->wake = -1;
    if (!p || pipe2(pp, O_CLOEXEC) < 0) goto fail;
    p->fd = fd;
    p->out = acc == O_WRONLY;
    p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->wake < 0) goto fail;
    p->wake = efd_park(p->wake);
    p->o = o;
    p->owner = getpid();
    int cl = REAL(fcntl)(fd, F_GETFD);
    /* The placeholder restored before exec must carry the description to the next
     * program: give it its shared form now. */
    int ph = ofd_promote(o);
    if (ph == -EEXIST) ph = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 3);
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
    if (p && p->wake >= 0) efd_close(p->wake);
    if (pp[0] >= 0) REAL(close)(pp[0]);
    if (pp[1] >= 0) REAL(close)(pp[1]);
    free(p);
    pthread_mutex_unlock(&pump_lock);
    return -1;
}

/* An IN pump has stopped: what it read from the description but the program did not
 * consume (still in the pipe, or still in the pump's hands) goes back to the offset, as
 * if the program had read exactly what it used. */
static void give_back(struct pump *p)
{
    if (p->out) return;
    int inpipe = 0;
    int probe = p->ours >= 0 ? p->ours : p->fd;
    if (REAL(ioctl)(probe, FIONREAD, &inpipe) < 0) inpipe = 0;
    ofd_lock(p->o);
    p->o->sh->offset -= (int64_t)inpipe + (int64_t)p->held;
    ofd_unlock(p->o);
    p->held = 0;
}

/* Wait for the pump to end, then release everything. Caller holds pump_lock. */
static int retire(struct pump *p)
{
    if (p->running) pthread_join(p->thr, NULL);
    if (p->running) give_back(p);
    p->running = 0;
    efd_close(p->ours);
    efd_close(p->placeholder);
    efd_close(p->wake);
    int r = ofd_put(p->o);
    if (!r) r = p->err;
    free(p);
    return r;
}

/* Every descriptor of this process that is the program's end of p's pipe. The open
 * descriptors are listed from /proc (the table may reach far: engine fds sit high). */
static void for_each_pipe_fd(struct pump *p, void (*fn)(int fd, struct pump *p, void *ctx), void *ctx)
{
    int fds[256], n = 0;
    DIR *d = REAL(opendir)("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = REAL(readdir)(d)) && n < (int)(sizeof fds / sizeof *fds))
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9') fds[n++] = atoi(e->d_name);
        REAL(closedir)(d);
    } else {
        for (int fd = 0; fd < 64; fd++) fds[n++] = fd;
    }
    for (int i = 0; i < n; i++) {
        int fd = fds[i];
        struct stat st;
        if (fd == p->ours || fdt_peek(fd) == FDT_ENGINE) continue;
        if (REAL(fstat)(fd, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_ino == p->pipe_ino) fn(fd, p, ctx);
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
            if (!p->out) request_stop(p);
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
        request_stop(p);
        if (p->out) {
            /* Our copies of the write end go: the pump drains what is there and ends. */
            for_each_pipe_fd(p, restore_placeholder, NULL);
            pthread_join(p->thr, NULL);
        } else {
            pthread_join(p->thr, NULL);
            give_back(p);
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
        request_stop(p);
        int r = retire(p);
        pthread_mutex_unlock(&pump_lock);
        if (r < 0) slog_error("finishing %s at exit failed: %s", "a redirected stream", strerror(-r));
    }
}

void pump_atfork_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pump_lock = fresh;
}

/* --- stdin as a file: lseek, pread and fstat on a pumped IN fd ----------------------- */

static struct pump *pump_of(int fd)
{
    for (int i = 0; i < MAX_PUMPS; i++)
        if (pumps[i] && pumps[i]->fd == fd && pumps[i]->owner == getpid()) return pumps[i];
    return NULL;
}

/* Throw away what is in the pipe (the program's read end is fd). */
static void drain(int fd)
{
    char buf[4096];
    struct pollfd pf = {fd, POLLIN, 0};
    while (poll(&pf, 1, 0) > 0 && (pf.revents & POLLIN) && REAL(read)(fd, buf, sizeof buf) > 0) {
    }
}

off_t pump_lseek(int fd, off_t off, int whence)
{
    pthread_mutex_lock(&pump_lock);
    struct pump *p = pump_of(fd);
    off_t r;
    if (!p || p->out) {
        r = -ESPIPE;
    } else {
        request_stop(p);
        if (p->running) pthread_join(p->thr, NULL);
        p->running = 0;
        give_back(p); /* the offset is now where the program is */
        drain(fd);
        r = io_lseek(p->o, off, whence);
        if (p->ours < 0) { /* the pump had reached the end and closed its end: reopen */
            int pp[2];
            if (pipe2(pp, O_CLOEXEC) == 0) {
                int cl = REAL(fcntl)(fd, F_GETFD);
                REAL(dup3)(pp[0], fd, cl > 0 && (cl & FD_CLOEXEC) ? O_CLOEXEC : 0);
                REAL(close)(pp[0]);
                REAL(fcntl)(pp[1], F_SETFL, O_NONBLOCK);
                struct stat st;
                p->pipe_ino = REAL(fstat)(fd, &st) == 0 ? st.st_ino : 0;
                p->ours = efd_park(pp[1]);
            } else {
                r = -errno;
            }
        }
        if (p->ours >= 0 && start(p) < 0) r = -EAGAIN;
    }
    pthread_mutex_unlock(&pump_lock);
    return r;
}

ssize_t pump_pread(int fd, void *buf, size_t n, off_t off)
{
    pthread_mutex_lock(&pump_lock);
    struct pump *p = pump_of(fd);
    struct ofd *o = p && !p->out ? p->o : NULL;
    if (o) ofd_ref(o);
    pthread_mutex_unlock(&pump_lock);
    if (!o) return -ESPIPE;
    ssize_t r = io_pread(o, buf, n, off);
    ofd_put(o);
    return r;
}

int pump_fstat(int fd, struct stat *st)
{
    pthread_mutex_lock(&pump_lock);
    struct pump *p = pump_of(fd);
    struct ofd *o = p && !p->out ? p->o : NULL;
    if (o) ofd_ref(o);
    pthread_mutex_unlock(&pump_lock);
    if (!o) return REAL(fstat)(fd, st) < 0 ? -errno : 0;
    int r = io_fstat(o, st);
    ofd_put(o);
    return r;
}
