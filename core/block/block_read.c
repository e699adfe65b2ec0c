/* block_read.c - reads of a block:// object: direct://'s way of reading (core/local/
 * direct_read.c), on the object's block map instead of a file's offsets.
 *
 * - A sequential reader keeps chunks of the object read ahead of it: a window that grows
 *   as direct://'s does (readahead.h: it doubles with each sequential read, up to
 *   S3SHIM_DIRECT_DEPTH chunks), at most that many chunk reads in flight, submitted
 *   together; its bytes are copied out of them. A chunk crossing extents is read by one
 *   request per extent (holes are zeroed, not read).
 * - A read not already read ahead whose buffer, offset and length sit at the device's
 *   O_DIRECT alignment goes straight into the program's buffer, one request per extent it
 *   crosses, all in flight at once: no bounce buffer, no copy (`dd bs=1M`, fio). A
 *   sequential reader asking for less than a chunk is left to the readahead instead (one
 *   device request per chunk rather than per call: `cat`'s 128 KiB reads).
 * - Anything else is read through a bounce buffer covering the blocks it touches.
 *
 * - A small object (up to BLK_SMALL_OBJECT) opened read-only is read through the device's
 *   page cache (the store's buffered descriptor, as its small writers and the metadata
 *   go), straight into the program's buffer, one pread per extent: as a filesystem
 *   serves a small file, with no request handed to the engine's rings and waited for.
 *   Its blocks are pinned and nobody writes them; a direct write of blocks reused later
 *   drops what the page cache held of them (the kernel does that after every O_DIRECT
 *   write), so no stale page is ever read.
 * - A random read on a read-only descriptor (not read ahead, up to a chunk) looks its
 *   extents up under f->lock and reads the device without it: threads sharing the
 *   descriptor read in parallel (read_unlocked).
 *
 * Everything else runs under f->lock, as the rest of the file: another thread's write,
 * truncate or commit never changes the map under a read. A write, truncate or a move to a newer
 * version drops what was read ahead (bf_ra_drop). */
#include "block.h"
#include "bmount.h"
#include "bfile.h"

#include "../log.h"
#include "../sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BF_DIRECT_IOS 8 /* requests of one straight read in flight at once */

static void rs_release(struct bslot *s)
{
    ubuf_put(&s->b);
    memset(&s->b, 0, sizeof s->b);
    s->state = BS_FREE;
}

static struct bslot *rs_find(struct bfile *f, uint64_t coff)
{
    if (!f->rs) return NULL;
    for (int i = 0; i < BF_SLOTS; i++)
        if (f->rs[i].state != BS_FREE && f->rs[i].off == coff) return &f->rs[i];
    return NULL;
}

/* Wait for a slot's requests. */
static void rs_collect(struct bfile *f, struct bslot *s)
{
    int err = 0;
    for (int i = 0; i < s->nu; i++) {
        ssize_t r = uring_wait(&s->u[i]);
        int e = r < 0 ? (int)r : (size_t)r < s->u[i].len ? -EIO : 0;
        if (e && !err) {
            err = e;
            slog_error("block: %s: read of %zu bytes at byte %lld of the device for %s: %s", f->m->uri, s->u[i].len,
                       (long long)s->u[i].off, f->key, strerror(-e));
        }
    }
    s->err = err;
    s->state = BS_READY;
}

static void uio_read(struct bfile *f, struct uio *u, char *buf, size_t len, uint64_t devoff)
{
    memset(u, 0, sizeof *u);
    u->op = UIO_READ;
    u->fd = f->fd;
    u->buf = buf;
    u->len = len;
    u->off = (off_t)devoff;
    u->buf_index = -1;
    u->align = f->m->al.off;
    u->stats = &f->m->dev_stats;
}

/* A slot set up to read the chunk at logical coff (its requests not submitted yet); NULL
 * if no slot or buffer is free, or the chunk crosses more extents than a slot reads. */
static struct bslot *rs_prepare(struct bfile *f, uint64_t coff)
{
    if (coff >= f->size) return NULL;
    if (!f->rs && !(f->rs = calloc(BF_SLOTS, sizeof *f->rs))) return NULL; /* read when asked */
    struct bslot *s = NULL;
    for (int i = 0; i < BF_SLOTS && !s; i++)
        if (f->rs[i].state == BS_FREE) s = &f->rs[i];
    if (!s) { /* the least recently used chunk that is complete */
        for (int i = 0; i < BF_SLOTS; i++)
            if (f->rs[i].state == BS_READY && (!s || f->rs[i].used < s->used)) s = &f->rs[i];
        if (!s) return NULL;
        rs_release(s);
    }
    size_t len = f->size - coff < f->m->chunk ? (size_t)(f->size - coff) : f->m->chunk;
    size_t nblk = (len + BLK_BS - 1) / BLK_BS;
    if (ubuf_get(&s->b, nblk * BLK_BS, 0) < 0) return NULL;
    s->nu = 0;
    for (size_t i = 0; i < nblk;) {
        uint64_t pblk, run;
        int owned;
        int have = bf_map_find(f, coff / BLK_BS + i, &pblk, &owned, &run);
        size_t n = run < nblk - i ? (size_t)run : nblk - i;
        if (!have) {
            memset(s->b.p + i * BLK_BS, 0, n * BLK_BS);
        } else {
            if (s->nu == BF_SLOT_IOS) { /* badly fragmented: read it when asked */
                rs_release(s);
                return NULL;
            }
            uio_read(f, &s->u[s->nu], s->b.p + i * BLK_BS, n * BLK_BS, pblk * BLK_BS);
            if (i == 0 && s->b.index >= 0) s->u[s->nu].buf_index = s->b.index; /* registered: no pinning */
            s->nu++;
        }
        i += n;
    }
    s->off = coff;
    s->len = len;
    s->err = 0;
    s->used = ++f->tick;
    s->state = s->nu ? BS_PENDING : BS_READY;
    return s;
}

/* Keep the chunks of [from, from + window) read ahead, at most depth in flight: one
 * submission for all that are missing. */
static void prefetch(struct bfile *f, uint64_t from)
{
    int depth = f->m->depth < 1 ? 1 : f->m->depth > BF_SLOTS ? BF_SLOTS : f->m->depth, pending = 0;
    for (int i = 0; f->rs && i < BF_SLOTS; i++) pending += f->rs[i].state == BS_PENDING;
    uint64_t ch = f->m->chunk, end = from + f->ra.window;
    struct bslot *sv[BF_SLOTS];
    struct uio *uv[BF_SLOTS * BF_SLOT_IOS];
    int ns = 0, nu = 0;
    for (uint64_t c = from - from % ch; c < end && c < f->size && pending < depth; c += ch) {
        if (rs_find(f, c)) continue;
        struct bslot *s = rs_prepare(f, c);
        if (!s) break;
        sv[ns++] = s;
        for (int i = 0; i < s->nu; i++) uv[nu++] = &s->u[i];
        pending += s->nu > 0;
    }
    if (nu && uring_submit(uv, nu) < 0) /* the engine did not start: read them when asked */
        for (int i = 0; i < ns; i++) rs_release(sv[i]);
}

/* Bytes [pos, pos + len) straight into buf (aligned), one request per extent, holes
 * zeroed. 0 or -errno. */
static int read_direct(struct bfile *f, char *buf, uint64_t pos, size_t len)
{
    struct uio u[BF_DIRECT_IOS];
    struct uio *v[BF_DIRECT_IOS];
    size_t done = 0;
    while (done < len) {
        int nu = 0;
        while (done < len && nu < BF_DIRECT_IOS) {
            uint64_t at = pos + done, pblk, run;
            int owned;
            int have = bf_map_find(f, at / BLK_BS, &pblk, &owned, &run);
            size_t n = len - done;
            if (run < (n + at % BLK_BS + BLK_BS - 1) / BLK_BS) n = (size_t)(run * BLK_BS - at % BLK_BS);
            if (!have) memset(buf + done, 0, n);
            else uio_read(f, &u[nu], buf + done, n, pblk * BLK_BS + at % BLK_BS), v[nu] = &u[nu], nu++;
            done += n;
        }
        int e = 0;
        if (nu == 1) { /* on the calling thread's ring: one system call */
            ssize_t r = uring_run(&u[0]);
            e = r < 0 ? (int)r : (size_t)r < u[0].len ? -EIO : 0;
        } else if (nu > 1) {
            e = uring_submit(v, nu);
            for (int i = 0; i < nu && e >= 0; i++) {
                ssize_t r = uring_wait(&u[i]);
                if (!e) e = r < 0 ? (int)r : (size_t)r < u[i].len ? -EIO : 0;
            }
        }
        if (e) {
            slog_error("block: %s: read of %zu bytes of %s at %llu: %s", f->m->uri, len, f->key,
                       (unsigned long long)pos, strerror(-e));
            return e;
        }
    }
    return 0;
}

/* The blocks covering [pos, pos + len) (at most a chunk of them) read into a bounce
 * buffer, copied out. Bytes copied or -errno. */
static ssize_t read_bounce(struct bfile *f, char *buf, uint64_t pos, size_t len)
{
    uint64_t lblk = pos / BLK_BS;
    size_t skip = (size_t)(pos % BLK_BS);
    if (len > f->m->chunk - skip) len = f->m->chunk - skip;
    size_t nblk = (skip + len + BLK_BS - 1) / BLK_BS;
    struct ubuf b;
    int e = ubuf_get(&b, nblk * BLK_BS, 1);
    if (e < 0) return e;
    e = bf_read_logical(f, lblk, b.p, nblk, b.index);
    if (!e) memcpy(buf, b.p + skip, len);
    ubuf_put(&b);
    return e ? e : (ssize_t)len;
}

static int aligned(struct bfile *f, const void *buf, uint64_t pos, size_t len)
{
    return dio_io_aligned(&f->m->al, buf, len, (off_t)pos);
}

/* Threads sharing a read-only descriptor read at once: the extents a random read needs
 * are copied under f->lock and the device is read without it. The blocks stay valid
 * after the unlock: a read-only descriptor keeps the pins of every version it saw until
 * it closes or follows a newer version with no such read under way (bf_follow), and
 * nothing writes them. Called and returns with f->lock
 * held; -EAGAIN when the read crosses too many extents (the locked path then). */
#define BF_PAR_SEGS 8
static ssize_t read_unlocked(struct bfile *f, char *buf, uint64_t pos, size_t len)
{
    if (pos >= f->size) return 0;
    if (len > f->size - pos) len = (size_t)(f->size - pos);
    uint64_t b0 = pos / BLK_BS, b1 = (pos + len + BLK_BS - 1) / BLK_BS;
    struct seg {
        uint64_t lblk, pblk, n;
        int have;
    } sg[BF_PAR_SEGS];
    int ns = 0;
    for (uint64_t b = b0; b < b1;) {
        if (ns == BF_PAR_SEGS) return -EAGAIN;
        uint64_t pblk = 0, run;
        int owned, have = bf_map_find(f, b, &pblk, &owned, &run);
        uint64_t n = run < b1 - b ? run : b1 - b;
        sg[ns++] = (struct seg){b, pblk, n, have};
        b += n;
    }
    int direct = pos % BLK_BS == 0 && len % BLK_BS == 0 && aligned(f, buf, pos, len);
    f->unlocked_reads++; /* the blocks it reads stay pinned meanwhile (bf_follow) */
    pthread_mutex_unlock(&f->lock);
    struct ubuf t = {0};
    char *dst = buf;
    int e = direct ? 0 : ubuf_get(&t, (size_t)(b1 - b0) * BLK_BS, 1);
    if (!direct) dst = t.p;
    struct uio u[BF_PAR_SEGS], *v[BF_PAR_SEGS];
    int nu = 0;
    for (int i = 0; i < ns && !e; i++) {
        char *p = dst + (sg[i].lblk - b0) * BLK_BS;
        if (!sg[i].have) {
            memset(p, 0, sg[i].n * BLK_BS);
            continue;
        }
        uio_read(f, &u[nu], p, sg[i].n * BLK_BS, sg[i].pblk * BLK_BS);
        if (!direct && i == 0 && t.index >= 0) u[nu].buf_index = t.index; /* registered: no pinning */
        v[nu] = &u[nu];
        nu++;
    }
    if (!e && nu == 1) { /* on the calling thread's ring: one system call */
        ssize_t r = uring_run(&u[0]);
        e = r < 0 ? (int)r : (size_t)r < u[0].len ? -EIO : 0;
    } else if (!e && nu > 1) {
        e = uring_submit(v, nu);
        for (int i = 0; i < nu && e >= 0; i++) {
            ssize_t r = uring_wait(&u[i]);
            if (!e) e = r < 0 ? (int)r : (size_t)r < u[i].len ? -EIO : 0;
        }
    }
    if (e) slog_error("block: %s: read of %zu bytes of %s at %llu: %s", f->m->uri, len, f->key,
                      (unsigned long long)pos, strerror(-e));
    else if (!direct) memcpy(buf, t.p + pos % BLK_BS, len);
    if (t.p) ubuf_put(&t);
    pthread_mutex_lock(&f->lock);
    f->unlocked_reads--;
    return e ? e : (ssize_t)len;
}

/* A read of a small object through the page cache (f->lock held): bytes or -errno. */
static ssize_t read_small(struct bfile *f, char *buf, uint64_t pos, size_t len)
{
    if (pos >= f->size) return 0;
    if (len > f->size - pos) len = (size_t)(f->size - pos);
    size_t done = 0;
    while (done < len) {
        uint64_t p = pos + done, lblk = p / BLK_BS, pblk, run;
        int owned;
        int have = bf_map_find(f, lblk, &pblk, &owned, &run);
        uint64_t span = run == UINT64_MAX ? UINT64_MAX : run * BLK_BS - p % BLK_BS;
        size_t n = span < len - done ? (size_t)span : len - done;
        if (!have) {
            memset(buf + done, 0, n); /* a hole */
        } else {
            ssize_t r = sys.pread(f->m->st.fd, buf + done, n, (off_t)(pblk * BLK_BS + p % BLK_BS));
            if (r <= 0) {
                int e = r < 0 ? -errno : -EIO;
                slog_error("block: %s: read of %s at byte %llu: %s", f->m->uri, f->key, (unsigned long long)p,
                           strerror(-e));
                return done ? (ssize_t)done : e;
            }
            n = (size_t)r;
        }
        done += n;
    }
    return (ssize_t)done;
}

ssize_t bf_pread(void *fh, void *buf, size_t len, off_t off)
{
    struct bfile *f = fh;
    if (off < 0) return -EINVAL;
    uint64_t t0 = stats_now_ns();
    pthread_mutex_lock(&f->lock);
    int e = f->writable ? bf_wb_flush(f) : 0;
    if (!e) e = bf_follow_shared(f);
    /* Read to the end: from then on fstat (tail -f polls it) and every read at the end
     * but the first (the one that ends a plain reader's loop) follow newer versions. */
    if (!e && !f->writable && (uint64_t)off + len >= f->size) {
        f->eof_seen = 1;
        if ((uint64_t)off >= f->size && f->eof_reads++) e = bf_follow_eof(f);
    }
    size_t done = 0;
    if (!e && !f->writable && f->size <= BLK_SMALL_OBJECT) {
        ssize_t r = read_small(f, buf, (uint64_t)off, len);
        pthread_mutex_unlock(&f->lock);
        stats_record(f->m->stats, STK_READ, t0, r > 0 ? (size_t)r : 0, r < 0);
        return r;
    }
    int seq = ra_sequential(&f->ra, off), straight = 0;
    const uint64_t ch = f->m->chunk;
    if (!e && !seq && !f->writable && len + BLK_BS <= ch && !rs_find(f, (uint64_t)off - (uint64_t)off % ch)) {
        ssize_t r = read_unlocked(f, buf, (uint64_t)off, len);
        if (r != -EAGAIN) {
            if (r > 0) ra_advance(&f->ra, off, (size_t)r, 0);
            pthread_mutex_unlock(&f->lock);
            stats_record(f->m->stats, STK_READ, t0, r > 0 ? (size_t)r : 0, r < 0);
            return r;
        }
    }
    while (!e && done < len && (uint64_t)off + done < f->size) {
        uint64_t pos = (uint64_t)off + done, coff = pos - pos % ch;
        size_t want = len - done;
        if (pos + want > f->size) want = (size_t)(f->size - pos);
        char *dst = (char *)buf + done;
        struct bslot *s = rs_find(f, coff);
        if (s) {
            if (s->state == BS_PENDING) rs_collect(f, s);
            if (s->err) {
                e = s->err;
                rs_release(s);
                break;
            }
            size_t n = (size_t)(s->off + s->len - pos);
            if (n > want) n = want;
            memcpy(dst, s->b.p + (pos - s->off), n);
            s->used = ++f->tick;
            done += n;
            /* passed: its memory goes to the next chunk (the one at the end stays) */
            if (pos + n == s->off + s->len && s->len == ch) rs_release(s);
            continue;
        }
        size_t n = (size_t)dio_down(want, f->m->al.off);
        if (n && (!seq || n >= ch) && aligned(f, dst, pos, n)) {
            for (uint64_t c = coff + ch; c < pos + n; c += ch) /* up to what is read ahead */
                if (rs_find(f, c)) {
                    n = (size_t)(c - pos);
                    break;
                }
            if ((e = read_direct(f, dst, pos, n)) == 0) done += n;
            straight = 1;
            continue;
        }
        if (seq) {
            prefetch(f, pos);
            if (rs_find(f, coff)) continue;
        }
        ssize_t r = read_bounce(f, dst, pos, want); /* no slot or memory, or not sequential */
        if (r < 0) e = (int)r;
        else done += (size_t)r;
    }
    if (!e) {
        ra_advance(&f->ra, off, done, seq);
        /* A reader whose reads go straight into its buffer reads ahead of nothing. */
        if (seq && done && !straight) prefetch(f, (uint64_t)off + done);
    }
    pthread_mutex_unlock(&f->lock);
    stats_record(f->m->stats, STK_READ, t0, done, e != 0 && !done);
    return done ? (ssize_t)done : e;
}

void bf_ra_drop(struct bfile *f)
{
    for (int i = 0; f->rs && i < BF_SLOTS; i++) {
        struct bslot *s = &f->rs[i];
        if (s->state == BS_PENDING) rs_collect(f, s);
        if (s->state != BS_FREE) rs_release(s);
    }
}

void bf_ra_forget(struct bfile *f)
{
    for (int i = 0; f->rs && i < BF_SLOTS; i++) {
        struct bslot *s = &f->rs[i];
        if (s->b.raw) ubuf_put(&s->b); /* a private copy of budget memory: ours to free */
        memset(s, 0, sizeof *s);        /* an arena slot: the child's engine freed them all */
    }
}
