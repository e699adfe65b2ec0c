/* block_write.c - writes of a block:// object: gathered in a chunk-sized buffer that
 * starts on a block boundary, or straight from the program's buffer.
 *
 * Every write goes to blocks the committed version does not use: blocks this descriptor
 * reserved and has not committed are written in place, any other block (shared with the
 * committed version, or a hole) is replaced by a newly reserved one (copy-on-write; a
 * partial block gets the rest of its old content first). The map changes as the write is
 * sent; the commit (block_commit.c) publishes it.
 *
 * - A chunk or more of whole blocks from a buffer at the device's O_DIRECT alignment
 *   (`dd bs=1M`) goes straight from it, each request waited for: no copy.
 * - Anything else is gathered. A full buffer of a sequential writer goes to the device in
 *   the background (write-behind, as direct://'s writer does: up to S3SHIM_DIRECT_DEPTH
 *   buffers in flight) and the writer fills a fresh one; a partial one goes, waited for,
 *   when a write lands elsewhere or before a read, truncate, fsync or close.
 * - Nothing is in flight when anything else looks at the device through this descriptor:
 *   a read, a truncate and the commit wait for every write first (bf_wb_flush), so the
 *   commit's flush covers all of its data, and two writes to one block are never in flight
 *   at once. Errors of background writes are kept for the next write, fsync or close.
 * - A small object (up to 256 KiB) written at its commit goes through the device's page
 *   cache instead, as metadata does: a program writing many small files does not wait for
 *   the device on each; the commit's flush covers it. */
#include "block.h"
#include "bmount.h"
#include "bfile.h"

#include "../log.h"
#include "../uring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>


/* Up to want free blocks, as one run: from the file's reservation, reserving more. */
int bf_take_blocks(struct bfile *f, uint64_t want, uint64_t *start, uint64_t *got)
{
    /* A small object written at its last commit (written, then closed): from the
     * mount's kept run, with no reservation of its own (block_pool.c). */
    if (!f->rlen && f->at_commit && f->closing && f->size <= BLK_SMALL_OBJECT &&
        f->npool < (int)(sizeof f->pool / sizeof f->pool[0])) {
        int e = bp_take(f->m, want, start, got);
        if (e) return e;
        f->pool[f->npool].start = *start;
        f->pool[f->npool++].len = *got;
        return 0;
    }
    if (!f->rlen) {
        uint64_t ask = want < 256 ? 256 : want; /* at least 1 MiB at a time */
        if (ask < f->size / BLK_BS) ask = f->size / BLK_BS; /* a large object: as much as it has */
        if (ask > 16384) ask = 16384;
        f->fd_locked = 1;
        int e = blk_reserve(&f->m->st, f->fd, ask, &f->rstart, &f->rlen);
        if (e) {
            if (e == -ENOSPC) slog_warn("block: %s: no free space for %s", f->m->uri, f->key);
            return e;
        }
    }
    *start = f->rstart;
    *got = want < f->rlen ? want : f->rlen;
    f->rstart += *got;
    f->rlen -= *got;
    return 0;
}

int bf_take_run(struct bfile *f, uint64_t want, uint64_t *start, uint64_t *got)
{
    uint64_t min = want < 256 ? want : 256;
    if (f->rlen && f->rlen < min) { /* a rest too short to hold it whole: let it go */
        blk_range_lock(f->fd, f->rstart, f->rlen, F_UNLCK);
        f->rlen = 0;
    }
    if (!f->rlen) {
        f->fd_locked = 1;
        int e = blk_reserve_run(&f->m->st, f->fd, want < 256 ? 256 : want > 16384 ? 16384 : want, min, &f->rstart, &f->rlen);
        if (e) return e;
    }
    return bf_take_blocks(f, want, start, got);
}

/* A run of blocks to write: blocks [i, i + n) of the buffer to device block start. */
struct wrun {
    size_t i, n;
    uint64_t start;
};

/* The device runs that logical blocks [lblk, +nblk) are written to, mapped now: in place
 * where the blocks are ours (never committed), else newly reserved ones. At most max runs:
 * their count (they may stop short of nblk), or -errno. */
static int write_runs(struct bfile *f, uint64_t lblk, size_t nblk, struct wrun *r, int max)
{
    int k = 0;
    for (size_t i = 0; i < nblk && k < max;) {
        uint64_t pblk, run, start, got;
        int owned;
        int have = bf_map_find(f, lblk + i, &pblk, &owned, &run);
        size_t n = run < nblk - i ? (size_t)run : nblk - i;
        if (have && owned) {
            start = pblk;
        } else {
            int e = bf_take_blocks(f, n, &start, &got);
            if (e < 0) return e;
            n = (size_t)got;
            if ((e = bf_map_set(f, lblk + i, start, n)) < 0) return e;
        }
        r[k++] = (struct wrun){i, n, start};
        i += n;
    }
    return k;
}

/* Logical blocks [lblk, +nblk) from buf, each request waited for (cached: through the
 * device's page cache). 0 or -errno. */
static int write_sync(struct bfile *f, uint64_t lblk, const char *buf, size_t nblk, int cached)
{
    struct wrun r[8];
    for (size_t i = 0; i < nblk;) {
        int k = write_runs(f, lblk + i, nblk - i, r, 8);
        if (k < 0) return k;
        for (int j = 0; j < k; j++) {
            char *p = (char *)buf + (i + r[j].i) * BLK_BS;
            int e = cached ? blk_write_data(&f->m->st, r[j].start, p, r[j].n)
                           : bf_dev_io(f, UIO_WRITE, r[j].start, p, r[j].n, -1);
            if (e) return e;
        }
        i += r[k - 1].i + r[k - 1].n;
    }
    return 0;
}

/* --- write-behind ----------------------------------------------------------------------- */

static void ws_finish(struct bfile *f, struct bwslot *w)
{
    for (int i = 0; i < w->nu; i++) {
        ssize_t r = uring_wait(&w->u[i]);
        int e = r < 0 ? (int)r : (size_t)r < w->u[i].len ? -EIO : 0;
        if (e && !f->err) {
            f->err = e;
            slog_error("block: %s: write of %zu bytes at byte %lld of the device for %s: %s; the object keeps its "
                       "previous version", f->m->uri, w->u[i].len, (long long)w->u[i].off, f->key, strerror(-e));
        }
    }
    ubuf_put(&w->b);
    memset(w, 0, sizeof *w);
}

int bf_ws_drain(struct bfile *f)
{
    for (int i = 0; f->ws && i < BF_WSLOTS; i++)
        if (f->ws[i].busy) ws_finish(f, &f->ws[i]);
    return f->err;
}

void bf_ws_forget(struct bfile *f)
{
    for (int i = 0; f->ws && i < BF_WSLOTS; i++) {
        if (f->ws[i].b.raw) ubuf_put(&f->ws[i].b); /* budget memory, a private copy: ours */
        memset(&f->ws[i], 0, sizeof f->ws[i]);     /* the parent's requests: never waited for */
    }
}

static struct bwslot *ws_oldest(struct bfile *f)
{
    struct bwslot *o = NULL;
    for (int i = 0; f->ws && i < BF_WSLOTS; i++)
        if (f->ws[i].busy && (!o || f->ws[i].seq < o->seq)) o = &f->ws[i];
    return o;
}

/* Does a run overlap a write in flight? */
static int ws_overlaps(struct bfile *f, const struct wrun *r, int k)
{
    for (int i = 0; f->ws && i < BF_WSLOTS; i++)
        for (int j = 0; f->ws[i].busy && j < f->ws[i].nu; j++) {
            uint64_t a = (uint64_t)f->ws[i].u[j].off / BLK_BS, b = a + f->ws[i].u[j].len / BLK_BS;
            for (int x = 0; x < k; x++)
                if (r[x].start < b && r[x].start + r[x].n > a) return 1;
        }
    return 0;
}

static int wb_write(struct bfile *f);

/* The full write buffer (whole blocks) to the device in the background; a fresh buffer
 * takes its place. */
static int wb_send(struct bfile *f)
{
    bf_ra_drop(f);
    size_t nblk = f->wb_len / BLK_BS;
    struct wrun r[BF_SLOT_IOS];
    int k = write_runs(f, f->wb_lblk, nblk, r, BF_SLOT_IOS);
    if (k < 0) {
        if (!f->err) f->err = k;
        f->wb_len = 0;
        return k;
    }
    if (r[k - 1].i + r[k - 1].n < nblk) return wb_write(f); /* too many pieces: at once */
    if (ws_overlaps(f, r, k)) bf_ws_drain(f); /* a block written again: the first write first */
    if (!f->ws && !(f->ws = calloc(BF_WSLOTS, sizeof *f->ws))) return wb_write(f); /* at once */
    int busy = 0;
    struct bwslot *w = NULL;
    for (int i = 0; i < BF_WSLOTS; i++) {
        busy += f->ws[i].busy;
        if (!f->ws[i].busy && !w) w = &f->ws[i];
    }
    int depth = f->m->depth < 1 ? 1 : f->m->depth > BF_WSLOTS ? BF_WSLOTS : f->m->depth;
    if (!w || busy >= depth) {
        struct bwslot *o = ws_oldest(f);
        ws_finish(f, o);
        if (!w) w = o;
    }
    struct uio *v[BF_SLOT_IOS];
    for (int j = 0; j < k; j++) {
        struct uio *u = &w->u[j];
        memset(u, 0, sizeof *u);
        u->op = UIO_WRITE;
        u->fd = f->fd;
        u->buf = f->wb.p + r[j].i * BLK_BS;
        u->len = r[j].n * BLK_BS;
        u->off = (off_t)(r[j].start * BLK_BS);
        u->buf_index = r[j].i == 0 && f->wb.index >= 0 ? f->wb.index : -1; /* registered: no pinning */
        u->align = BLK_BS;
        u->stats = &f->m->dev_stats;
        v[j] = u;
        if (blk_recorder) blk_recorder(BLK_REC_WRITE, r[j].start * BLK_BS, u->buf, u->len);
    }
    if (uring_submit(v, k) < 0) return wb_write(f); /* the engine did not start: at once */
    w->nu = k;
    w->busy = 1;
    w->seq = ++f->wtick;
    w->b = f->wb;
    f->wb_lblk += nblk;
    f->wb_len = 0;
    memset(&f->wb, 0, sizeof f->wb);
    f->wb.index = -1;
    while (ubuf_get(&f->wb, f->m->chunk, 0) < 0) { /* over the memory budget: our own writes free it */
        struct bwslot *o = ws_oldest(f);
        if (!o) return ubuf_get(&f->wb, f->m->chunk, 1);
        ws_finish(f, o);
    }
    return 0;
}

/* The write buffer to the device now, its last block completed (the rest of what it held,
 * zeros past the size), each request waited for. */
static int wb_write(struct bfile *f)
{
    if (!f->wb_len) return 0;
    bf_ra_drop(f);  /* what was read ahead may be what this replaces */
    bf_ws_drain(f); /* and a write in flight may be to the same blocks */
    size_t nblk = (f->wb_len + BLK_BS - 1) / BLK_BS;
    int e = 0;
    if (f->wb_len % BLK_BS) {
        char *last = f->wb.p + (nblk - 1) * BLK_BS;
        struct ubuf t;
        if (ubuf_get(&t, BLK_BS, 1) < 0) return -ENOMEM;
        e = bf_read_logical(f, f->wb_lblk + nblk - 1, t.p, 1, t.index);
        if (!e) memcpy(last + f->wb_len % BLK_BS, t.p + f->wb_len % BLK_BS, BLK_BS - f->wb_len % BLK_BS);
        ubuf_put(&t);
        uint64_t end = f->size - (f->wb_lblk + nblk - 1) * BLK_BS;
        if (!e && end < BLK_BS) memset(last + end, 0, BLK_BS - end);
    }
    if (!e) e = write_sync(f, f->wb_lblk, f->wb.p, nblk, f->at_commit && f->size <= BLK_SMALL_OBJECT);
    f->wb_len = 0;
    if (e && !f->err) f->err = e;
    return e;
}

int bf_wb_flush(struct bfile *f)
{
    int e = wb_write(f), d = bf_ws_drain(f);
    return e ? e : d;
}

int bf_wb_start(struct bfile *f, uint64_t off)
{
    int e = wb_write(f);
    if (e) return e;
    if (!f->wb.p && ubuf_get(&f->wb, f->m->chunk, 1) < 0) return -ENOMEM;
    f->wb_lblk = off / BLK_BS;
    f->wb_len = off % BLK_BS;
    if (f->wb_len) { /* the bytes before off in its block: what the object holds there */
        if ((e = bf_ws_drain(f)) < 0) return e;
        return bf_read_logical(f, f->wb_lblk, f->wb.p, 1, f->wb.index);
    }
    return 0;
}

/* --- the call ------------------------------------------------------------------------------ */

/* A write at off, or at the end of the newest version when off < 0 (O_APPEND: *at, where
 * it went). */
static ssize_t write_at(struct bfile *f, const void *buf, size_t len, off_t off, off_t *at)
{
    uint64_t t0 = stats_now_ns();
    pthread_mutex_lock(&f->lock);
    int held = 0, e = f->err ? f->err : bf_write_begin(f, &held);
    if (off < 0) *at = off = (off_t)f->size; /* (after bf_write_begin: the newest version's end) */
    size_t done = 0;
    while (!e && done < len) {
        uint64_t pos = (uint64_t)off + done;
        size_t rem = len - done;
        const char *src = (const char *)buf + done;
        if (rem >= f->m->chunk && pos % BLK_BS == 0 && dio_io_aligned(&f->m->al, src, BLK_BS, 0)) {
            /* a chunk or more of whole blocks from an aligned buffer: straight from it */
            size_t n = rem - rem % BLK_BS;
            if ((e = bf_wb_flush(f)) < 0) break;
            bf_ra_drop(f);
            if ((e = write_sync(f, pos / BLK_BS, src, n / BLK_BS, 0)) < 0) break;
            done += n;
            if (pos + n > f->size) f->size = pos + n;
            f->dirty = 1;
            continue;
        }
        uint64_t wb_end = f->wb_lblk * BLK_BS + f->wb_len;
        if (!f->wb.p || !f->wb_len || pos != wb_end || f->wb_len == f->m->chunk) {
            if ((e = bf_wb_start(f, pos)) < 0) break;
        }
        size_t room = f->m->chunk - f->wb_len, n = rem < room ? rem : room;
        memcpy(f->wb.p + f->wb_len, src, n);
        f->wb_len += n;
        done += n;
        if (pos + n > f->size) f->size = pos + n;
        f->dirty = 1;
        if (f->wb_len == f->m->chunk) e = wb_send(f);
    }
    if (done) f->mtime_set = 0; /* a write after futimens: the time is the write's, as on a disk */
    if (done) e = bf_changed(f, e); /* other processes' coherent reads see it from now on */
    if (e && !f->err) f->err = e;
    pthread_mutex_unlock(&f->lock);
    bf_write_end(f, held);
    stats_record(f->m->stats, STK_WRITE, t0, done, e != 0);
    return done ? (ssize_t)done : e;
}

ssize_t bf_pwrite(void *fh, const void *buf, size_t len, off_t off)
{
    struct bfile *f = fh;
    if (!f->writable) return -EBADF;
    if (off < 0) return -EINVAL;
    bf_map_written(fh, buf, len, off);
    return write_at(f, buf, len, off, NULL);
}

ssize_t bf_append(void *fh, const void *buf, size_t len, off_t *at)
{
    struct bfile *f = fh;
    if (!f->writable) return -EBADF;
    ssize_t r = write_at(f, buf, len, -1, at);
    if (r > 0) bf_map_written(fh, buf, (size_t)r, *at); /* (where it went is known now) */
    return r;
}
