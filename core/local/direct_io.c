/* direct_io.c - the bottom of a direct:// file, under its reads (direct_read.c) and writes
 * (direct_write.c): one request on the engine's rings, the cache of read chunks that a
 * write must drop, errors kept for the next call, the state a forked child forgets, and
 * the mount's detail line. It calls nothing above it. */
#include "direct_file.h"
#include "../sys.h"

#include "../log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* --- one request ----------------------------------------------------------------------- */

ssize_t df_io_sync(struct dfile *f, int op, char *buf, size_t len, off_t off, int bidx)
{
    struct uio u = {.op = op, .fd = f->fd, .buf = buf, .len = len, .off = off, .buf_index = bidx,
                    .align = f->al.off, .stats = &f->m->dev, .depth = &f->m->qd};
    return uring_run(&u);
}

void df_uio_setup(struct dfile *f, struct uio *u, int op, struct ubuf *b, size_t len, off_t off)
{
    memset(u, 0, sizeof *u);
    u->op = op;
    u->fd = f->fd;
    u->buf = b->p;
    u->len = len;
    u->off = off;
    u->buf_index = b->index;
    u->align = f->al.off;
    u->stats = &f->m->dev;
    u->depth = &f->m->qd;
}

off_t df_disk_size(struct dfile *f)
{
    if (f->is_blk) return (off_t)f->devsize;
    struct stat st;
    return sys.fstat(f->fd, &st) < 0 ? -errno : st.st_size;
}

void df_note_error(struct dfile *f, int e, const char *what, off_t off)
{
    if (!f->err) {
        f->err = e;
        slog_error("direct: %s at %lld on %s failed: %s (reported to the program by its next write, fsync or close)",
                   what, (long long)off, f->m->uri, strerror(-e));
    }
}

/* In a forked child: the parent's requests will never complete here and its gathered
 * data is the parent's to write (it was flushed before the fork). */
static pthread_mutex_t adopt_lock = PTHREAD_MUTEX_INITIALIZER;

void df_adopt_atfork_child(void) { pthread_mutex_init(&adopt_lock, NULL); }

/* The parent's state of f forgotten (once, whichever thread of the child comes first). */
void df_forget_parent(struct dfile *f)
{
    pthread_mutex_lock(&adopt_lock);
    if (f->gen != uring_generation()) {
        /* Our copies of pool buffers are ours to free; arena slots were all freed for
         * the child already (uring_atfork_child) and may belong to someone else by now. */
        for (int i = 0; i < RSLOTS; i++) {
            if (f->rs[i].b.raw) ubuf_put(&f->rs[i].b);
            memset(&f->rs[i], 0, sizeof f->rs[i]);
        }
        for (int i = 0; i < WSLOTS; i++) {
            if (f->ws[i].b.raw) ubuf_put(&f->ws[i].b);
            memset(&f->ws[i], 0, sizeof f->ws[i]);
        }
        if (f->wb.raw) ubuf_put(&f->wb);
        memset(&f->wb, 0, sizeof f->wb);
        f->wb_len = 0;
        f->wb_dirty = 0;
        f->err = 0;
        f->pend_end = 0;
        pthread_mutex_init(&f->lock, NULL);
        pthread_cond_init(&f->cv, NULL);
        f->gen = uring_generation();
    }
    pthread_mutex_unlock(&adopt_lock);
}

void df_adopt_after_fork(struct dfile *f)
{
    if (f->buffered || f->gen == uring_generation()) return;
    df_forget_parent(f);
    /* The child's own rings, started here and never under f->lock: starting them parks
     * descriptors, which takes the fd table's lock, which exec's preparation holds
     * while it waits for f->lock (df_local_fd). */
    uring_start();
}

/* --- the cache of read chunks ---------------------------------------------------------- */

void df_rs_release(struct rslot *s)
{
    ubuf_put(&s->b);
    s->state = RS_FREE;
}

/* Wait for a pending slot (lock held; released while waiting). */
void df_rs_collect(struct dfile *f, struct rslot *s)
{
    if (s->collecting) {
        while (s->state == RS_PENDING) pthread_cond_wait(&f->cv, &f->lock);
        return;
    }
    s->collecting = 1;
    pthread_mutex_unlock(&f->lock);
    ssize_t r = uring_wait(&s->u);
    pthread_mutex_lock(&f->lock);
    s->got = r > 0 ? (size_t)r : 0;
    s->err = r < 0 ? (int)r : 0;
    s->state = RS_READY;
    s->collecting = 0;
    pthread_cond_broadcast(&f->cv);
}

/* Forget cached chunks overlapping [from, to) (all: to < 0), waiting for pending ones. */
void df_rs_drop(struct dfile *f, off_t from, off_t to)
{
    for (int i = 0; i < RSLOTS; i++) {
        struct rslot *s = &f->rs[i];
        if (s->state == RS_FREE) continue;
        if (to >= 0 && (s->off >= to || s->off + (off_t)f->chunk <= from)) continue;
        while (s->state == RS_PENDING) df_rs_collect(f, s);
        while (s->collecting) pthread_cond_wait(&f->cv, &f->lock);
        if (s->state != RS_FREE) df_rs_release(s);
    }
}

/* --- the mount's detail line ----------------------------------------------------------- */

void direct_describe(struct direct_mount *m, const char *align, const char *fallback_why)
{
    pthread_mutex_lock(&m->detail_lock);
    if (fallback_why) snprintf(m->fallback_why, sizeof m->fallback_why, "%s", fallback_why);
    if (align) snprintf(m->align, sizeof m->align, "%s", align);
    char qd[64];
    uring_depth_format(&m->qd, qd, sizeof qd);
    /* The mount's own set may move (the table is sorted after mounting): only our child
     * set is ours to write. */
    if (m->fallback_why[0])
        snprintf(m->dev.detail, sizeof m->dev.detail, "buffered fallback (not O_DIRECT) for some files: %.100s; "
                 "O_DIRECT: %.40s, queue depth %.30s", m->fallback_why, m->align[0] ? m->align : "none", qd);
    else
        snprintf(m->dev.detail, sizeof m->dev.detail, "O_DIRECT%s, %.96s, queue depth %.30s",
                 uring_running() && strcmp(uring_engine_name(), "threads") == 0 ? " by threads (no io_uring)" : "",
                 m->align[0] ? m->align : "-", qd);
    pthread_mutex_unlock(&m->detail_lock);
}
