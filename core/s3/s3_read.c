/* s3_read.c - reading an S3 object (s3_file.c's header says how: the first window at
 * open, If-Match on every later GET, a prefetch window for sequential readers fetched as
 * parallel part-sized chunks, large reads straight into the caller's buffer, a waiting
 * reader's buffer handed to the chunk it waits for, 64 KiB minimum for random reads). */
#include "s3_file_int.h"
#include "balance.h"

#include "../config.h"
#include "../log.h"
#include "../sys.h"
#include "s3_xml.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- reading --------------------------------------------------------------------------- */

/* Start fetching [off, off+len) into a free chunk; NULL when no slot or memory is free.
 * hold_ns: its body may wait that long in the socket for the reader's buffer. */
static struct chunk *chunk_start(struct s3_file *f, off_t off, size_t len, int ahead, uint64_t hold_ns)
{
    struct chunk *c = NULL;
    for (int i = 0; i < CHUNK_SLOTS && !c; i++)
        if (f->ch[i].state == CH_FREE) c = &f->ch[i];
    if (!c) { /* evict the least recently used chunk that is complete */
        for (int i = 0; i < CHUNK_SLOTS; i++) {
            struct chunk *k = &f->ch[i];
            if ((k->state == CH_READY || k->state == CH_FAILED) && !k->collecting && (!c || k->used_at < c->used_at))
                c = k;
        }
        if (!c) return NULL;
        s3_op_cleanup(&c->op);
        chunk_release(c);
    }
    c->buf = bufpool_get(len, 0);
    if (!c->buf) return NULL;
    c->off = off;
    c->len = len;
    c->got = 0;
    c->err = 0;
    c->used_at = ++f->tick;
    s3_op_init(&c->op, "GET", f->path.bucket, f->path.key);
    snprintf(c->range, sizeof c->range, "bytes=%lld-%lld", (long long)off, (long long)(off + (off_t)len - 1));
    s3_op_header(&c->op, "range", c->range);
    if (f->etag[0]) s3_op_header(&c->op, "if-match", f->etag);
    c->op.dst = c->buf;
    c->op.dst_cap = len;
    c->op.rx_tally = &f->rx;
    c->op.prefetch = ahead;
    c->op.hold_ns = hold_ns;
    c->state = CH_PENDING;
    s3_start(&f->m->client, &c->op);
    return c;
}

/* How fast the bodies of this file's GETs come: an average over the last few of a MiB or
 * more (the balancer's estimate of the endpoint moves over seconds, and one slow body
 * would turn holding off for that long). A held body says nothing: what it took after
 * its reader came was mostly a copy out of the socket. */
static void note_body(struct s3_file *f, const struct http_req *r, size_t got)
{
    if (got < RA_SPLIT_MIN || r->held_ns || !r->t_first_byte || r->t_done <= r->t_first_byte) return;
    uint64_t ps = (r->t_done - r->t_first_byte) * 1000 / got;
    f->body_ps = f->body_ps ? (3 * f->body_ps + ps) / 4 : ps;
}

static int read_error(struct s3_file *f, int e)
{
    if (e == -ESTALE) {
        slog_error("s3: %s/%s changed while it was being read (ETag %s no longer matches): EIO", f->path.bucket,
                   f->path.key, f->etag);
        return -EIO;
    }
    return e;
}

/* Wait for a pending chunk (f->lock held; released while waiting). */
static void chunk_collect(struct s3_file *f, struct chunk *c)
{
    if (c->collecting) {
        while (c->state == CH_PENDING) pthread_cond_wait(&f->cv, &f->lock);
        return;
    }
    c->collecting = 1;
    pthread_mutex_unlock(&f->lock);
    s3_release_hold(&c->op); /* a held body: nobody's buffer takes it whole */
    int e = s3_finish(&f->m->client, &c->op);
    pthread_mutex_lock(&f->lock);
    c->got = c->op.req.got;
    if (!e) note_body(f, &c->op.req, c->got);
    if (e == -ERANGE) { /* past the end */
        c->got = 0;
        e = 0;
    }
    c->err = read_error(f, e);
    c->state = e ? CH_FAILED : CH_READY;
    c->collecting = 0;
    pthread_cond_broadcast(&f->cv);
}

/* Wait for pending chunks that lie end to end from dst's start and whose whole ranges the
 * waiting reader's buffer covers (cs[0..n), marked collecting by the caller), the rest of
 * their bodies received straight into that buffer instead of chunk memory and a copy (a
 * held body starts only now: all of them at once, so they arrive in parallel); the chunks
 * are then released. The buffer is the reader's only while it waits, and it waits here
 * until s3_finish() returns, retries and backups included. f->lock held, released while
 * waiting. Returns the bytes in dst from its start (short at the object's end or at a
 * failure, then *err set). */
static size_t chunks_collect_into(struct s3_file *f, struct chunk **cs, int n, char *dst, int *err)
{
    pthread_mutex_unlock(&f->lock);
    for (int i = 0; i < n; i++) {
        struct chunk *c = cs[i];
        char *to = dst + (c->off - cs[0]->off);
        int held = c->op.hold_ns && atomic_load(&c->op.req.hold_until);
        size_t have = s3_redirect(&c->op, to);
        memcpy(to, c->buf, have); /* what had landed before */
        slog_debug("s3: %s/%s bytes %lld-%lld go straight into the reader's buffer (%zu were in chunk memory%s)",
                   f->path.bucket, f->path.key, (long long)c->off, (long long)(c->off + (off_t)c->len - 1), have,
                   held ? "; its body was held for it" : "");
    }
    size_t total = 0;
    int whole = 1; /* every chunk before this one came whole */
    for (int i = 0; i < n; i++) {
        struct chunk *c = cs[i];
        int e = s3_finish(&f->m->client, &c->op);
        size_t got = c->op.req.got;
        if (e == -ERANGE) { /* past the end */
            got = 0;
            e = 0;
        }
        if (e && !*err) *err = read_error(f, e);
        if (whole && !e) total += got;
        whole = whole && !e && got == c->len;
    }
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < n; i++) {
        if (!cs[i]->op.err) note_body(f, &cs[i]->op.req, cs[i]->op.req.got);
        s3_op_cleanup(&cs[i]->op);
        cs[i]->collecting = 0;
        cs[i]->state = CH_READY;
        chunk_release(cs[i]); /* its bytes are in dst only */
    }
    pthread_cond_broadcast(&f->cv);
    return total;
}

static struct chunk *chunk_find(struct s3_file *f, off_t pos)
{
    for (int i = 0; i < CHUNK_SLOTS; i++) {
        struct chunk *c = &f->ch[i];
        if (c->state != CH_FREE && pos >= c->off && pos < c->off + (off_t)c->len) return c;
    }
    return NULL;
}

/* The start of the first chunk beginning after pos (or limit). */
static off_t next_cached(struct s3_file *f, off_t pos, off_t limit)
{
    for (int i = 0; i < CHUNK_SLOTS; i++) {
        struct chunk *c = &f->ch[i];
        if (c->state != CH_FREE && c->off > pos && c->off < limit) limit = c->off;
    }
    return limit;
}

/* Parallel ranged GETs straight into buf: [off, off+len), len > 0. Returns bytes or -errno. */
static ssize_t direct_read(struct s3_file *f, char *buf, off_t off, size_t len)
{
    struct s3_mount *m = f->m;
    size_t psz = m->part_size;
    int n = (int)((len + psz - 1) / psz), conc = m->concurrency;
    struct s3_op *ops = calloc((size_t)(n < conc ? n : conc), sizeof *ops);
    char(*ranges)[64] = calloc((size_t)(n < conc ? n : conc), 64);
    if (!ops || !ranges) {
        free(ops);
        free(ranges);
        return -ENOMEM;
    }
    int err = 0;
    size_t total = 0;
    for (int base = 0; base < n && !err; base += conc) {
        int k = n - base < conc ? n - base : conc;
        for (int i = 0; i < k; i++) {
            off_t o = off + (off_t)((size_t)(base + i) * psz);
            size_t l = len - (size_t)(o - off) < psz ? len - (size_t)(o - off) : psz;
            s3_op_init(&ops[i], "GET", f->path.bucket, f->path.key);
            snprintf(ranges[i], 64, "bytes=%lld-%lld", (long long)o, (long long)(o + (off_t)l - 1));
            s3_op_header(&ops[i], "range", ranges[i]);
            if (f->etag[0]) s3_op_header(&ops[i], "if-match", f->etag);
            ops[i].dst = buf + (o - off);
            ops[i].dst_cap = l;
            ops[i].rx_tally = &f->rx;
            s3_start(&m->client, &ops[i]);
        }
        for (int i = 0; i < k; i++) {
            int e = s3_finish(&m->client, &ops[i]);
            if (e == -ERANGE) e = 0;
            if (e && !err) err = read_error(f, e);
            size_t want = ops[i].dst_cap;
            if (!e && ops[i].req.got != want && !err) {
                /* A short answer inside the known size: the object is not what it was. */
                if ((int64_t)(off + (off_t)((size_t)(base + i) * psz) + (off_t)ops[i].req.got) < f->size) err = -EIO;
            }
            if (!err) total += ops[i].req.got;
            s3_op_cleanup(&ops[i]);
        }
    }
    free(ops);
    free(ranges);
    return err ? err : (ssize_t)total;
}

/* A reader that reads 1 MiB or more at a time (cat and cp read st_blksize, the part
 * size; dd bs=1M) and comes back for more at about the pace of the network got most of
 * its read-ahead copied out of chunk memory: its parts arrived a little before it asked.
 * When the store sends such a piece within a few milliseconds (the same machine, the
 * same rack), the read-ahead GETs are sent as before but their bodies wait in the socket
 * (http_req's hold_until) until the reader comes and hands over its buffer, where they
 * then land with no copy of ours, what arrived meanwhile at memory speed; in pieces of
 * half a read, so that two connections fill each read (a whole read under 2 MiB, from a
 * store that answers within 2 ms: dd bs=1M went 1.8x faster so). A body waits at most
 * about twice the time the reader should take to reach it (100 ms at most), then goes
 * into chunk memory as before. A reader much slower than the store (its reads come more
 * than eight piece transfer times apart), or a store further away, keeps the
 * read-ahead's purpose: data in memory before it is asked for, at the cost of a copy
 * that is small beside the reader's own time. Sets *len, the chunks' length; returns how long after its request
 * each may wait (0 = not held). S3SHIM_READ_HOLD=on holds for 1 s whatever the speeds
 * (tests), off never. */
#define HOLD_BODY_MAX_NS 8000000ull /* the slowest body (a piece) worth holding */
#define HOLD_MAX_NS 100000000ull
/* A GET per read of 1 MiB pays only where a request costs next to nothing: on the rig's
 * Swift (15-20 ms to the first byte, one Python worker) dd bs=1M ran at 0.58x the speed
 * of 8 MiB GETs copied out of chunk memory; on loopback nginx (0.1 ms) at 1.8x. The
 * quickest recent first byte is the measure: the average counts the queueing of the
 * GETs in flight ahead (nginx's: 1-6 ms). */
#define HOLD_EACH_TTFB_NS 2000000ull
#define HOLD_ON_NS 1000000000ull    /* S3SHIM_READ_HOLD=on */
static uint64_t hold_for(struct s3_file *f, size_t *len)
{
    size_t want = f->last_len / 2;
    int each = want < RA_SPLIT_MIN; /* a reader of 1 to 2 MiB: a GET per read */
    if (each) want = f->last_len;
    if (f->m->read_hold == CFG_HOLD_OFF || want < RA_SPLIT_MIN || want > *len || http_flights_scarce()) return 0;
    uint64_t hold = HOLD_ON_NS;
    if (f->m->read_hold == CFG_HOLD_AUTO) {
        uint64_t body = f->body_ps ? want * f->body_ps / 1000 : bal_fastest_body_ns(&f->m->client.bal, want);
        if (!body || body > HOLD_BODY_MAX_NS || !f->gap_ns || f->gap_ns > 8 * body) return 0;
        uint64_t ttfb = each ? bal_quickest_ttfb_ns(&f->m->client.bal) : 0;
        if (each && (!ttfb || ttfb > HOLD_EACH_TTFB_NS)) return 0;
        uint64_t reads = (f->ra.window + f->last_len - 1) / f->last_len; /* read-ahead in reads */
        hold = 2 * (reads + 1) * f->gap_ns + 2000000;
        if (hold > HOLD_MAX_NS) hold = HOLD_MAX_NS;
    }
    *len = want;
    return hold;
}

/* Keep the window fetched ahead of from, in part-sized chunks, or in smaller ones once
 * the window holds more than S3SHIM_READAHEAD_MEMORY (ra_split). A chunk at the
 * window's leading edge waits until a whole one fits: a reader of 128 KiB or 1 MiB
 * moves the edge by that much per read, and starting what fits each time made every GET
 * that small (a thousand GETs per GiB, each copied out of chunk memory). */
static void prefetch(struct s3_file *f, off_t from)
{
    size_t ahead, len = ra_split(f->ra.window, f->m->part_size, f->m->ra_memory, &ahead);
    uint64_t hold = hold_for(f, &len);
    off_t end = from + (off_t)ahead;
    if (end > f->size) end = f->size;
    int pending = 0;
    for (int i = 0; i < CHUNK_SLOTS; i++) pending += f->ch[i].state == CH_PENDING;
    off_t pos = from;
    while (pos < end && pending < f->m->concurrency) {
        struct chunk *c = chunk_find(f, pos);
        if (c) {
            pos = c->off + (off_t)c->len;
            continue;
        }
        off_t stop = next_cached(f, pos, pos + (off_t)len);
        if (stop > end) {
            if (end < f->size) break; /* not a whole chunk's room yet */
            stop = end;
        }
        if (!chunk_start(f, pos, (size_t)(stop - pos), 1, hold)) break;
        pending++;
        pos = stop;
    }
}

/* direct_read() with the file unlocked, added to *done (buf is the read's start);
 * returns 0 at the end of the object, 1 to go on (with *err set on failure). */
static int direct_step(struct s3_file *f, char *buf, off_t pos, size_t len, size_t *done, int *err)
{
    pthread_mutex_unlock(&f->lock);
    ssize_t n = direct_read(f, buf + *done, pos, len);
    pthread_mutex_lock(&f->lock);
    if (n < 0) *err = (int)n;
    if (n == 0) return 0;
    if (n > 0) *done += (size_t)n;
    return 1;
}

/* Drop every chunk, waiting for those in flight (f->lock held; released while waiting). */
void s3f_chunks_drop(struct s3_file *f)
{
    for (int i = 0; i < CHUNK_SLOTS; i++) {
        struct chunk *c = &f->ch[i];
        if (c->state == CH_PENDING) chunk_collect(f, c);
        if (c->state != CH_FREE) s3_op_cleanup(&c->op);
        chunk_release(c);
    }
}

/* A reader that read to the end of its version follows a newer one, as a reader of a
 * local file sees what is appended (tail -f on a log others append to with >>): when the
 * stat cache (coherent within the run; a HEAD once its answer is S3SHIM_STAT_TTL old)
 * shows it larger, a HEAD gives the new ETag, reads go on with If-Match on it, and what
 * was fetched of the old version is dropped. (S3 cannot tell an append from a
 * replacement; one that is not larger is not taken.) f->lock held. */
static void follow(struct s3_file *f)
{
    struct stat st;
    if (s3_stat_path(f->m, &f->path, &st) < 0 || !S_ISREG(st.st_mode)) return;
    if (st.st_size <= f->size) return; /* grown only: a replaced object is no continuation */
    struct s3_op op;
    s3_op_init(&op, "HEAD", f->path.bucket, f->path.key);
    op.quiet_404 = 1;
    if (s3_run(&f->m->client, &op) == 0 && op.req.etag[0] && strcmp(op.req.etag, f->etag) != 0 &&
        op.req.content_length > f->size) {
        s3f_chunks_drop(f);
        slog_debug("s3: %s/%s: a reader at the end follows the new version (%lld bytes, was %lld)", f->path.bucket,
                   f->path.key, (long long)op.req.content_length, (long long)f->size);
        f->size = op.req.content_length;
        snprintf(f->etag, sizeof f->etag, "%s", op.req.etag);
        f->mtime = op.req.last_modified[0] ? s3_parse_http_date(op.req.last_modified) : 0;
        if (f->mtime < 0) f->mtime = 0;
    }
    s3_op_cleanup(&op);
}

void s3f_follow(struct s3_file *f)
{
    if (f->eof_seen && !f->writing && !stg_of(f) && f->owner == getpid()) follow(f);
}

ssize_t s3f_pread(void *fh, void *buf, size_t len, off_t off)
{
    struct s3_file *f = fh;
    struct s3_stage *stg = stg_of(f);
    if (stg) return s3_stage_pread(stg, buf, len, off);
    if (f->writing) return -EBADF;
    s3f_adopt_after_fork(f);
    if (len == 0) return 0;
    if (off + (off_t)len >= f->size) { /* to the end: from there it follows (tail -f) */
        pthread_mutex_lock(&f->lock);
        f->eof_seen = 1;
        if (off >= f->size && f->eof_reads++) follow(f); /* not at the read that ends a loop */
        pthread_mutex_unlock(&f->lock);
    }
    if (off >= f->size) return 0;
    if ((int64_t)len > f->size - off) len = (size_t)(f->size - off);
    pthread_mutex_lock(&f->lock);
    if (len >= RA_SPLIT_MIN) { /* the pace of a reader that hold_for() may hold bodies for */
        uint64_t now = stats_now_ns();
        if (off == f->ra.next && f->t_read)
            f->gap_ns = f->gap_ns ? (3 * f->gap_ns + (now - f->t_read)) / 4 : now - f->t_read;
        f->t_read = now;
    }
    f->last_len = len;
    int seq = ra_sequential(&f->ra, off);
    size_t done = 0;
    int err = 0, waited = 0; /* waited: for data still on its way */
    while (done < len && !err) {
        off_t pos = off + (off_t)done;
        size_t rem = len - done;
        struct chunk *c = chunk_find(f, pos);
        if (c && c->state == CH_PENDING && !c->collecting && pos == c->off && c->len <= rem) {
            struct chunk *cs[CHUNK_SLOTS]; /* it and the pending chunks after it that the buffer covers */
            int k = 0;
            size_t span = 0;
            for (struct chunk *d = c; d && d->state == CH_PENDING && !d->collecting && d->off == pos + (off_t)span &&
                                      span + d->len <= rem;
                 d = chunk_find(f, pos + (off_t)span)) {
                d->collecting = 1;
                cs[k++] = d;
                span += d->len;
            }
            size_t n = chunks_collect_into(f, cs, k, (char *)buf + done, &err);
            waited = 1;
            done += n;
            if (n < span) break; /* failed, or the object ended early */
            continue;
        }
        if (c && c->state == CH_PENDING) {
            chunk_collect(f, c);
            waited = 1;
            continue;
        }
        if (c && c->state == CH_FAILED) {
            err = c->err;
            s3_op_cleanup(&c->op);
            chunk_release(c);
            break;
        }
        if (c) {
            off_t have = c->off + (off_t)c->got - pos;
            if (have <= 0) break; /* the object ended early */
            size_t n = (size_t)have < rem ? (size_t)have : rem;
            memcpy((char *)buf + done, c->buf + (pos - c->off), n);
            c->used_at = ++f->tick;
            done += n;
            if (seq && pos + (off_t)n == c->off + (off_t)c->got && !c->collecting) {
                /* a sequential reader has passed it: its memory goes to the next prefetch */
                s3_op_cleanup(&c->op);
                chunk_release(c);
            }
            continue;
        }
        if (rem >= f->m->part_size) { /* big enough to be its own parallel GETs */
            off_t stop = next_cached(f, pos, pos + (off_t)rem);
            if (seq) prefetch(f, stop); /* keep the pipeline full behind this read */
            waited = 1;
            if (direct_step(f, (char *)buf, pos, (size_t)(stop - pos), &done, &err) == 0) break;
            continue;
        }
        size_t ahead, want = seq ? ra_split(f->ra.window, f->m->part_size, f->m->ra_memory, &ahead) : RANDOM_MIN;
        if (want < rem) want = rem;
        off_t stop = next_cached(f, pos, pos + (off_t)want);
        if (stop > f->size) stop = f->size;
        if (!chunk_start(f, pos, (size_t)(stop - pos), 0, 0)) { /* no memory or slot: exactly what is asked */
            waited = 1;
            if (direct_step(f, (char *)buf, pos, rem, &done, &err) == 0) break;
        }
    }
    ra_advance(&f->ra, off, done, seq);
    if (seq && done) {
        if (!f->far_seen && ra_probe_warming(&f->ra)) { /* once the first GETs have answered */
            uint64_t ttfb = bal_nearest_ns(&f->m->client.bal);
            size_t want = ttfb ? ra_far_ceiling(ttfb, f->m->part_size) : 0;
            if (ttfb) f->far_seen = 1;
            if (want > f->ra.cap) {
                ra_probe_raise(&f->ra, want);
                slog_debug("s3: %s/%s: the store answers in %.1f ms: read-ahead probed from %zu MiB", f->path.bucket,
                           f->path.key, (double)ttfb / 1e6, f->ra.cap >> 20);
            }
        }
        size_t cap = f->ra.cap;
        int probing = f->ra.probing;
        ra_probe_note(&f->ra, off + (off_t)done, stats_now_ns(), waited, atomic_load_explicit(&f->rx, memory_order_relaxed));
        if (f->ra.cap != cap || f->ra.probing != probing)
            slog_debug("s3: %s/%s: read-ahead ceiling %zu MiB%s (best %.0f MB/s received at %zu MiB)", f->path.bucket,
                       f->path.key, f->ra.cap >> 20, f->ra.probing ? ", probing" : ", settled", f->ra.best_rate * 1e3,
                       f->ra.best_cap >> 20);
        prefetch(f, off + (off_t)done);
    }
    pthread_mutex_unlock(&f->lock);
    return done ? (ssize_t)done : err;
}

