/* direct_write.c - writes of a direct:// file: see direct_file.c for the whole picture. */
#include "direct_file.h"
#include "../sys.h"

#include "../log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- writing --------------------------------------------------------------------------- */

/* Collect one background write; its buffer goes back either way. */
static void ws_finish(struct dfile *f, struct wslot *w)
{
    ssize_t r = uring_wait(&w->u);
    if (r < 0) df_note_error(f, (int)r, "write", w->u.off);
    else if ((size_t)r < w->u.len) df_note_error(f, -EIO, "short write", w->u.off + r);
    ubuf_put(&w->b);
    w->busy = 0;
}

int df_ws_drain(struct dfile *f)
{
    for (int i = 0; i < WSLOTS; i++)
        if (f->ws[i].busy) ws_finish(f, &f->ws[i]);
    return f->err;
}

/* Bytes the gather buffer can hold: up to the next chunk boundary of the file. */
static size_t wb_cap(struct dfile *f) { return f->chunk - (size_t)(f->wb_off % (off_t)f->chunk); }

/* The full gather buffer goes to the device in the background; a fresh one takes its place. */
static int wb_send(struct dfile *f)
{
    struct wslot *w = NULL;
    int inflight = 0;
    for (int i = 0; i < WSLOTS; i++) inflight += f->ws[i].busy;
    for (int i = 0; i < WSLOTS && !w; i++)
        if (!f->ws[i].busy) w = &f->ws[i];
    if (!w || inflight >= f->depth) { /* the oldest one first */
        struct wslot *old = NULL;
        for (int i = 0; i < WSLOTS; i++)
            if (f->ws[i].busy && (!old || f->ws[i].u.off < old->u.off)) old = &f->ws[i];
        ws_finish(f, old);
        if (!w) w = old;
    }
    w->b = f->wb;
    df_uio_setup(f, &w->u, UIO_WRITE, &w->b, f->wb_len, f->wb_off);
    struct uio *u = &w->u;
    int e = uring_submit(&u, 1);
    f->wb_off += (off_t)f->wb_len;
    f->wb_len = 0;
    f->wb_dirty = 0;
    memset(&f->wb, 0, sizeof f->wb);
    if (e < 0) {
        ubuf_put(&w->b);
        df_note_error(f, e, "write", u->off);
        return e;
    }
    w->busy = 1;
    while (ubuf_get(&f->wb, f->chunk, 0) < 0) { /* over the memory budget: our own writes free it */
        int any = 0;
        for (int i = 0; i < WSLOTS; i++)
            if (f->ws[i].busy) {
                ws_finish(f, &f->ws[i]);
                any = 1;
                break;
            }
        if (!any) return ubuf_get(&f->wb, f->chunk, 1);
    }
    return 0;
}

/* One aligned block of the device at off into dst (zeros past its end). */
static int read_block(struct dfile *f, off_t off, char *dst)
{
    struct ubuf b;
    int e = ubuf_get(&b, f->al.off, 1);
    if (e < 0) return e;
    ssize_t r = df_io_sync(f, UIO_READ, b.p, f->al.off, off, b.index);
    if (r >= 0) {
        memcpy(dst, b.p, (size_t)r);
        memset(dst + r, 0, f->al.off - (size_t)r);
    }
    ubuf_put(&b);
    return r < 0 ? (int)r : 0;
}

/* Gathered data that is not a whole chunk goes to the device now: the last partial
 * block completed from the device, written whole, the file truncated back. */
int df_wb_flush(struct dfile *f)
{
    if (!f->wb_dirty) return f->err;
    f->wb_dirty = 0;
    int e = df_ws_drain(f);
    if (e) return e;
    size_t span = (size_t)dio_up(f->wb_len, f->al.off), tail = (size_t)dio_down(f->wb_len, f->al.off);
    off_t before = df_disk_size(f), end = f->wb_off + (off_t)f->wb_len;
    if (before < 0) {
        df_note_error(f, (int)before, "fstat", 0);
        return f->err;
    }
    if (span > f->wb_len) {
        off_t tb = f->wb_off + (off_t)tail;
        char keep[f->wb_len - tail];
        memcpy(keep, f->wb.p + tail, sizeof keep);
        if (tb < before) {
            if ((e = read_block(f, tb, f->wb.p + tail)) < 0) {
                df_note_error(f, e, "read-modify-write read", tb);
                return f->err;
            }
        } else {
            memset(f->wb.p + tail, 0, f->al.off);
        }
        memcpy(f->wb.p + tail, keep, sizeof keep);
    }
    ssize_t r = df_io_sync(f, UIO_WRITE, f->wb.p, span, f->wb_off, f->wb.index);
    if (r < 0 || (size_t)r < span) {
        df_note_error(f, r < 0 ? (int)r : -EIO, "write", f->wb_off);
        return f->err;
    }
    if (!f->is_blk && span > f->wb_len && f->wb_off + (off_t)span > before) {
        off_t want = end > before ? end : before;
        if (sys.ftruncate(f->fd, want) < 0) {
            df_note_error(f, -errno, "truncating the padded tail", want);
            return f->err;
        }
    }
    /* keep the partial last block: the next append continues it without reading it back */
    if (tail && tail < f->wb_len) memmove(f->wb.p, f->wb.p + tail, f->wb_len - tail);
    f->wb_off += (off_t)tail;
    f->wb_len -= tail;
    return 0;
}

/* Start gathering at pos: the buffer begins at the aligned offset below it, the bytes
 * before pos in that block read from the device. */
static int wb_start(struct dfile *f, off_t pos)
{
    if (!f->wb.p) {
        int e = ubuf_get(&f->wb, f->chunk, 1);
        if (e < 0) return e;
    }
    f->wb_off = (off_t)dio_down((uint64_t)pos, f->al.off);
    f->wb_len = (size_t)(pos - f->wb_off);
    f->wb_dirty = 0;
    if (f->wb_len) {
        off_t sz = df_disk_size(f);
        if (sz < 0) return (int)sz;
        if (f->wb_off < sz) {
            int e = read_block(f, f->wb_off, f->wb.p);
            if (e < 0) return e;
        } else {
            memset(f->wb.p, 0, f->al.off);
        }
    }
    return 0;
}

static ssize_t write_locked(struct dfile *f, const char *buf, size_t len, off_t off)
{
    if (f->err) return f->err;
    df_rs_drop(f, off, off + (off_t)len);
    if (f->kio) f->wb_len = 0; /* the kept last block may have changed on the device since */
    size_t done = 0;
    int e = 0;
    while (done < len && !e) {
        off_t pos = off + (off_t)done;
        size_t rem = len - done;
        if (f->wb.p && pos == f->wb_off + (off_t)f->wb_len && f->wb_len < wb_cap(f)) {
            size_t n = wb_cap(f) - f->wb_len < rem ? wb_cap(f) - f->wb_len : rem;
            memcpy(f->wb.p + f->wb_len, buf + done, n);
            f->wb_len += n;
            f->wb_dirty = 1;
            done += n;
            if (pos + (off_t)n > f->pend_end) f->pend_end = pos + (off_t)n;
            if (f->wb_len == wb_cap(f)) e = wb_send(f);
            continue;
        }
        /* not the continuation of the gathered run */
        if ((e = df_wb_flush(f)) < 0) break;
        if (f->wb.p && pos == f->wb_off + (off_t)f->wb_len && f->wb_len < wb_cap(f)) continue;
        if ((e = df_ws_drain(f)) < 0) break;
        f->wb_len = 0;
        if (rem >= f->chunk && dio_io_aligned(&f->al, buf + done, f->al.off, pos)) {
            size_t n = (size_t)dio_down(rem, f->al.off);
            ssize_t r = df_io_sync(f, UIO_WRITE, (char *)buf + done, n, pos, -1);
            if (r < 0) e = (int)r;
            else if ((size_t)r < n) e = -EIO;
            else done += n;
            continue;
        }
        e = wb_start(f, pos);
    }
    if (done && (f->sync || !f->m->gather || f->kio)) {
        /* Unless the mount gathers across calls (S3SHIM_DIRECT_GATHER=1), what the call
         * wrote is on the device when it returns, as with write(2): other processes
         * and stat() see it, a process that ends with _exit() loses nothing, and a
         * failure is this call's. */
        int s = df_wb_flush(f);
        if (s == 0) s = df_ws_drain(f);
        if (s < 0) {
            f->err = 0; /* reported here, now */
            return s;
        }
    }
    if (done && off + (off_t)done > f->size_hint) f->size_hint = off + (off_t)done;
    return done ? (ssize_t)done : e;
}

ssize_t df_pwrite(void *fh, const void *buf, size_t len, off_t off)
{
    struct dfile *f = fh;
    if (f->append) { /* O_APPEND: the kernel's end, on a buffered descriptor */
        if (!f->buffered) {
            df_adopt_after_fork(f);
            pthread_mutex_lock(&f->lock);
            int e = df_settle(f); /* (what this file gathered first; no cached chunk of the old end) */
            pthread_mutex_unlock(&f->lock);
            if (e) return e;
        }
        ssize_t n = sys.write(f->afd, buf, len);
        return n < 0 ? -errno : n;
    }
    if (f->buffered) {
        ssize_t n = sys.pwrite(f->fd, buf, len, off);
        return n < 0 ? -errno : n;
    }
    df_adopt_after_fork(f);
    if (!len) return f->err;
    pthread_mutex_lock(&f->lock);
    ssize_t r = write_locked(f, buf, len, off);
    pthread_mutex_unlock(&f->lock);
    return r;
}

/* Everything gathered on the device, no cached chunk: the descriptor's own view is
 * exact. Returns the pending error, if any. */
int df_settle(struct dfile *f)
{
    df_wb_flush(f);
    df_ws_drain(f);
    df_rs_drop(f, 0, -1);
    f->pend_end = 0;
    return f->err;
}

