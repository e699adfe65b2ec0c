/* direct_read.c - reads of a direct:// file: see direct_file.c for the whole picture. */
#include "direct_file.h"
#include "../sys.h"

#include "../log.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- read slots (their cache is in direct_io.c) ------------------------------------------------------------------------ */

static struct rslot *rs_find(struct dfile *f, off_t coff)
{
    for (int i = 0; i < RSLOTS; i++)
        if (f->rs[i].state != RS_FREE && f->rs[i].off == coff) return &f->rs[i];
    return NULL;
}

/* Prepare reading the chunk at coff into a slot (submitted by the caller, with *u);
 * NULL if no slot or buffer is free. */
static struct rslot *rs_prepare(struct dfile *f, off_t coff)
{
    struct rslot *s = NULL;
    for (int i = 0; i < RSLOTS && !s; i++)
        if (f->rs[i].state == RS_FREE) s = &f->rs[i];
    if (!s) { /* the least recently used complete chunk */
        for (int i = 0; i < RSLOTS; i++) {
            struct rslot *k = &f->rs[i];
            if (k->state == RS_READY && !k->collecting && (!s || k->used < s->used)) s = k;
        }
        if (!s) return NULL;
        df_rs_release(s);
    }
    size_t len = f->chunk;
    if (f->is_blk && (uint64_t)coff + len > f->devsize) {
        if ((uint64_t)coff >= f->devsize) return NULL;
        len = (size_t)dio_up(f->devsize - (uint64_t)coff, f->al.off);
    }
    if (ubuf_get(&s->b, len, 0) < 0) return NULL;
    df_uio_setup(f, &s->u, UIO_READ, &s->b, len, coff);
    s->off = coff;
    s->got = 0;
    s->err = 0;
    s->used = ++f->tick;
    s->state = RS_PENDING;
    return s;
}

/* Submit prepared slots as one batch; on failure they are forgotten. */
static int rs_submit(struct rslot **v, int n)
{
    struct uio *u[RSLOTS];
    for (int i = 0; i < n; i++) u[i] = &v[i]->u;
    int e = n ? uring_submit(u, n) : 0;
    if (e < 0)
        for (int i = 0; i < n; i++) df_rs_release(v[i]);
    return e;
}

static struct rslot *rs_start(struct dfile *f, off_t coff)
{
    struct rslot *s = rs_prepare(f, coff);
    return s && rs_submit(&s, 1) == 0 ? s : NULL;
}

/* Keep the chunks of [from, from + window) in flight, at most depth at a time: one
 * submission for all that are missing. */
static void prefetch(struct dfile *f, off_t from)
{
    int pending = 0;
    for (int i = 0; i < RSLOTS; i++) pending += f->rs[i].state == RS_PENDING;
    off_t end = from + (off_t)f->ra.window, limit = f->is_blk ? (off_t)f->devsize : f->size_hint;
    struct rslot *batch[RSLOTS];
    int nb = 0;
    for (off_t c = from - from % (off_t)f->chunk; c < end && c < limit && pending < f->depth; c += (off_t)f->chunk) {
        if (rs_find(f, c)) continue;
        struct rslot *s = rs_prepare(f, c);
        if (!s) break;
        batch[nb++] = s;
        pending++;
    }
    rs_submit(batch, nb);
}

/* The aligned span covering [off, off + len) read into a bounce buffer, copied out. */
static ssize_t bounce_read(struct dfile *f, char *buf, size_t len, off_t off)
{
    off_t start;
    size_t span;
    dio_cover(&f->al, off, len, &start, &span);
    struct ubuf b;
    int e = ubuf_get(&b, span, 1);
    if (e < 0) return e;
    ssize_t r = df_io_sync(f, UIO_READ, b.p, span, start, b.index);
    if (r > 0) {
        size_t skip = (size_t)(off - start);
        r = (size_t)r > skip ? (ssize_t)((size_t)r - skip < len ? (size_t)r - skip : len) : 0;
        if (r) memcpy(buf, b.p + skip, (size_t)r);
    }
    ubuf_put(&b);
    return r;
}

/* --- reading --------------------------------------------------------------------------- */

static ssize_t read_seq(struct dfile *f, char *buf, size_t len, off_t off)
{
    size_t done = 0;
    int err = 0, again = 0;
    const off_t ch = (off_t)f->chunk;
    while (done < len && !err) {
        off_t pos = off + (off_t)done, coff = pos - pos % ch;
        size_t rem = len - done;
        struct rslot *s = rs_find(f, coff);
        if (s && s->state == RS_PENDING) {
            df_rs_collect(f, s);
            continue;
        }
        if (s) {
            if (s->err) {
                err = s->err;
                if (!s->collecting) df_rs_release(s);
                break;
            }
            off_t have = coff + (off_t)s->got - pos;
            struct stat st;
            if (have <= 0 && s->got < s->u.len && !s->collecting && !again && sys.fstat(f->fd, &st) == 0 &&
                st.st_size > coff + (off_t)s->got) {
                /* the end of file when it was read, and the file has grown since (another
                 * process appending, a reader following it): read it again */
                df_rs_release(s);
                again = 1;
                continue;
            }
            if (have <= 0) break; /* end of file */
            size_t n = (size_t)have < rem ? (size_t)have : rem;
            memcpy(buf + done, s->b.p + (pos - coff), n);
            s->used = ++f->tick;
            done += n;
            /* passed: its memory goes to the next prefetch (the chunk at end of file stays) */
            if (pos + (off_t)n == coff + (off_t)s->got && s->got == s->u.len && !s->collecting) df_rs_release(s);
            continue;
        }
        if (rem >= f->chunk && dio_io_aligned(&f->al, buf + done, f->al.off, pos)) {
            /* big and aligned: straight into the program's buffer, chunks behind it in flight */
            size_t n = (size_t)dio_down(rem, f->al.off);
            for (off_t c = coff + ch; c < pos + (off_t)n; c += ch)
                if (rs_find(f, c)) {
                    n = (size_t)(c - pos);
                    break;
                }
            prefetch(f, pos + (off_t)n);
            pthread_mutex_unlock(&f->lock);
            ssize_t r = df_io_sync(f, UIO_READ, buf + done, n, pos, -1);
            pthread_mutex_lock(&f->lock);
            if (r < 0) err = (int)r;
            else done += (size_t)r;
            if (r < (ssize_t)n) break;
            continue;
        }
        if (!rs_start(f, coff)) { /* no slot or memory: exactly what is asked */
            pthread_mutex_unlock(&f->lock);
            ssize_t r = bounce_read(f, buf + done, rem, pos);
            pthread_mutex_lock(&f->lock);
            if (r < 0) err = (int)r;
            else done += (size_t)r;
            break;
        }
    }
    return done ? (ssize_t)done : err;
}

ssize_t df_pread(void *fh, void *buf, size_t len, off_t off)
{
    struct dfile *f = fh;
    if (f->buffered) {
        ssize_t n = sys.pread(f->fd, buf, len, off);
        return n < 0 ? -errno : n;
    }
    df_adopt_after_fork(f);
    if (!len) return 0;
    pthread_mutex_lock(&f->lock);
    if (f->wb_dirty || f->pend_end) { /* reads see what was written */
        df_wb_flush(f);
        df_ws_drain(f);
        f->pend_end = 0;
    }
    int seq = !f->kio && ra_sequential(&f->ra, off); /* (kio: the kernel may change what a chunk held) */
    ssize_t r;
    if (seq) {
        r = read_seq(f, buf, len, off);
    } else {
        pthread_mutex_unlock(&f->lock);
        if (dio_io_aligned(&f->al, buf, len, off))
            r = df_io_sync(f, UIO_READ, buf, len, off, -1);
        else
            r = bounce_read(f, buf, len, off);
        pthread_mutex_lock(&f->lock);
    }
    ra_advance(&f->ra, off, r > 0 ? (size_t)r : 0, seq);
    if (seq && r > 0) prefetch(f, off + r);
    pthread_mutex_unlock(&f->lock);
    return r;
}

