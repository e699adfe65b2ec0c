/* s3_stage_fetch.c - lazy range fetch of staged S3 objects, and their reads.
 *
 * Why a module of its own: a staged object is brought in only where a program touches it
 * (a read, a partial write, a mapping, the upload of a part that is not copied on the
 * server): the missing 1 MiB blocks of a range are fetched by parallel ranged GETs with
 * If-Match under the shared map's mutex, so each block is fetched once per host. A
 * sequential reader's window ahead is fetched without waiting and without that mutex
 * (struct stg_ahead): the reader goes on with what is there while the rest arrives, and
 * waits only for a block it needs that is still in flight; arrived bytes stay in memory
 * and are copied to the reader, never written to the staging file, and a block that is in
 * the file (written, or fetched by a random read, here or in another process) is read
 * from there instead. The semantics are in s3_stage.c's header. */
#include "../bufpool.h"
#include "../efd.h"
#include "../log.h"
#include "../sys.h"
#include "s3.h"
#include "s3_stage.h"
#include "s3_stage_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RA_MIN ((size_t)4 << 20)
#define RA_MAX ((size_t)64 << 20)
#define AHEAD_OPS 16               /* fetches of one reader's window in flight at most */
#define AHEAD_RUN ((int64_t)4 << 20) /* bytes per fetch of the window: smooth arrival in order */

int stg_write_all(int fd, const char *buf, size_t len, off_t off)
{
    while (len) {
        ssize_t r = sys.pwrite(fd, buf, len, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? -errno : -EIO;
        buf += r;
        len -= (size_t)r;
        off += r;
    }
    return 0;
}

struct fetch {
    struct s3_op op;
    char range[64];
    char *buf;
    int64_t off;
    size_t len;
};

/* Send f's ranged GET of the source into f->buf (f->off, f->len, f->buf set). */
static void fetch_start(struct s3_stage *s, struct fetch *f, int prefetch)
{
    struct stage_hdr *h = s->h;
    s3_op_init(&f->op, "GET", h->src_bucket, h->src_key);
    snprintf(f->range, sizeof f->range, "bytes=%lld-%lld", (long long)f->off, (long long)(f->off + (int64_t)f->len - 1));
    s3_op_header(&f->op, "range", f->range);
    if (h->etag[0]) s3_op_header(&f->op, "if-match", h->etag);
    f->op.dst = f->buf;
    f->op.dst_cap = f->len;
    f->op.prefetch = prefetch;
    s3_start(&s->m->client, &f->op); /* a failure shows at s3_finish */
}

/* Fetch the missing blocks of [off, end) from the source (h->lock held). */
int stg_fetch_locked(struct s3_stage *s, int64_t off, int64_t end)
{
    struct stage_hdr *h = s->h;
    int64_t lim = flimit(h);
    if (end > lim) end = lim;
    if (off >= end) return 0;
    int conc = s->m->concurrency < 64 ? s->m->concurrency : 64;
    int64_t maxrun = (int64_t)s->m->part_size;
    struct fetch *fv = calloc((size_t)conc, sizeof *fv);
    if (!fv) return -ENOMEM;
    int err = 0;
    int64_t b = off >> BLK_SHIFT, last = (end - 1) >> BLK_SHIFT;
    while (b <= last && !err) {
        int n = 0;
        while (b <= last && n < conc) { /* up to conc runs of missing blocks, each at most a part */
            if (present(h, b)) {
                b++;
                continue;
            }
            int64_t rs = b;
            while (b <= last && !present(h, b) && (b + 1 - rs) * BLK <= maxrun) b++;
            struct fetch *f = &fv[n];
            f->off = rs * BLK;
            int64_t fe = b * BLK < lim ? b * BLK : lim;
            f->len = (size_t)(fe - f->off);
            f->buf = bufpool_get(f->len, 1);
            if (!f->buf) {
                err = -ENOMEM;
                break;
            }
            fetch_start(s, f, 0);
            n++;
        }
        for (int i = 0; i < n; i++) {
            struct fetch *f = &fv[i];
            int e = s3_finish(&s->m->client, &f->op);
            if (e == 0 && f->op.req.got != f->len) e = -EIO;
            if (e == 0) e = stg_write_all(s->dfd, f->buf, f->len, f->off);
            if (e == 0)
                for (int64_t k = f->off >> BLK_SHIFT; k < (f->off + (int64_t)f->len + BLK - 1) >> BLK_SHIFT; k++)
                    set_present(h, k);
            else if (!err) {
                err = e == -ESTALE || e == -ERANGE ? -EIO : e;
                if (e == -ESTALE || e == -ERANGE || e == -ENOENT)
                    slog_error("s3: %s/%s changed on the server while it was staged (ETag %s no longer matches); "
                               "the bytes at %s that were not fetched yet cannot be read: EIO",
                               h->bucket, h->key, h->etag, f->range);
                else
                    slog_error("s3: %s/%s: fetching %s into the staging file failed: %s", h->bucket, h->key,
                               f->range, strerror(-e));
                if (err == -ENOENT) err = -EIO;
            }
            s3_op_cleanup(&f->op);
            bufpool_put(f->buf, f->len);
            f->buf = NULL;
        }
    }
    free(fv);
    return err;
}

int stg_ensure(struct s3_stage *s, int64_t off, int64_t end)
{
    if (all_present(s->h, off, end)) return 0;
    hlock(s->h);
    int e = stg_fetch_locked(s, off, end);
    hunlock(s->h);
    return e;
}

/* --- the window ahead of a sequential reader ---------------------------------------------- */

/* The window's fetches land in memory, not in the staging file: the reader takes its bytes
 * from there, so a table scan of a staged database neither writes the object to the local
 * disk and reads it back (a third of the CPU of a staged sqlite3 scan went into that copy)
 * nor counts against S3SHIM_STAGING_LIMIT. A block in the file always wins (something
 * wrote it, or a random read fetched it), also over a fetch that completed before it was
 * written. */
struct stg_ahead {
    pthread_mutex_t mu; /* the threads of this process reading through one open */
    int64_t hi;         /* atomic: where the window started last ends */
    int used[AHEAD_OPS]; /* 1: in flight, 2: arrived (buf holds len bytes of the source) */
    struct fetch f[AHEAD_OPS]; /* in flight: an op is never moved while the engine has it */
};

static int ahead_find(const struct stg_ahead *a, int64_t b)
{
    for (int i = 0; i < AHEAD_OPS; i++)
        if (a->used[i] && b >= a->f[i].off >> BLK_SHIFT && b * BLK < a->f[i].off + (int64_t)a->f[i].len) return i;
    return -1;
}

static void ahead_drop(struct stg_ahead *a, int i)
{
    struct fetch *f = &a->f[i];
    s3_op_cleanup(&f->op);
    bufpool_put(f->buf, f->len);
    f->buf = NULL;
    a->used[i] = 0;
}

/* Wait for fetch i (a->mu held): 1 when its bytes are there; a failed one is dropped (the
 * read that needs the bytes fetches them itself, and reports). */
static int ahead_wait(struct s3_stage *s, struct stg_ahead *a, int i)
{
    if (a->used[i] == 2) return 1;
    struct fetch *f = &a->f[i];
    int e = s3_finish(&s->m->client, &f->op);
    if (e == 0 && f->op.req.got == f->len) {
        a->used[i] = 2;
        return 1;
    }
    ahead_drop(a, i);
    return 0;
}

/* Start fetches for the blocks of [from, to) neither there nor in flight (a->mu held).
 * Arrived fetches that end at or before `from` (a sequential reader has passed them)
 * make room first. */
static void ahead_start(struct s3_stage *s, struct stg_ahead *a, int64_t from, int64_t to)
{
    struct stage_hdr *h = s->h;
    int64_t lim = flimit(h);
    if (to > lim) to = lim;
    int conc = s->m->concurrency < AHEAD_OPS ? s->m->concurrency : AHEAD_OPS, busy = 0;
    for (int i = 0; i < AHEAD_OPS; i++) {
        if (a->used[i] == 2 && a->f[i].off + (int64_t)a->f[i].len <= from) ahead_drop(a, i);
        busy += a->used[i] != 0;
    }
    int64_t b = from >> BLK_SHIFT;
    while (b * BLK < to && busy < conc) {
        if (present(h, b) || ahead_find(a, b) >= 0) {
            b++;
            continue;
        }
        int i = 0;
        while (a->used[i]) i++; /* busy < conc <= AHEAD_OPS: a slot is free */
        int64_t rs = b;
        while (b * BLK < to && !present(h, b) && ahead_find(a, b) < 0 && (b + 1 - rs) * BLK <= AHEAD_RUN) b++;
        struct fetch *f = &a->f[i];
        f->off = rs * BLK;
        f->len = (size_t)((b * BLK < lim ? b * BLK : lim) - f->off);
        if (!(f->buf = bufpool_get(f->len, 1))) break;
        fetch_start(s, f, 1);
        a->used[i] = 1;
        busy++;
        __atomic_store_n(&a->hi, f->off + (int64_t)f->len, __ATOMIC_RELAXED);
    }
}

static struct stg_ahead *ahead_get(struct s3_stage *s)
{
    struct stg_ahead *a = __atomic_load_n(&s->ahead, __ATOMIC_ACQUIRE);
    if (a) return a;
    if (!(a = calloc(1, sizeof *a))) return NULL;
    pthread_mutex_init(&a->mu, NULL);
    struct stg_ahead *none = NULL;
    if (!__atomic_compare_exchange_n(&s->ahead, &none, a, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        pthread_mutex_destroy(&a->mu);
        free(a);
        return none;
    }
    return a;
}

void stg_ahead_end(struct s3_stage *s)
{
    struct stg_ahead *a = s->ahead;
    if (!a) return;
    for (int i = 0; i < AHEAD_OPS; i++)
        if (a->used[i]) {
            if (a->used[i] == 1) s3_finish(&s->m->client, &a->f[i].op); /* closing: let it land, then drop it */
            ahead_drop(a, i);
        }
    pthread_mutex_destroy(&a->mu);
    free(a);
    s->ahead = NULL;
}

/* Bytes of [off, end) from the window's arrived fetches into buf (buf is off), stopping at
 * the first byte that is not one of them: a block in the file, one no fetch has, or the
 * fetch limit. Waits for a fetch in flight that has the next bytes. a->mu held. */
static size_t ahead_copy(struct s3_stage *s, struct stg_ahead *a, char *buf, int64_t off, int64_t end)
{
    struct stage_hdr *h = s->h;
    int64_t pos = off, lim = flimit(h);
    if (end > lim) end = lim;
    while (pos < end && !present(h, pos >> BLK_SHIFT)) {
        int i = ahead_find(a, pos >> BLK_SHIFT);
        if (i < 0 || !ahead_wait(s, a, i)) break;
        struct fetch *f = &a->f[i];
        int64_t stop = f->off + (int64_t)f->len, bend = ((pos >> BLK_SHIFT) + 1) * BLK;
        if (stop > end) stop = end;
        if (stop > bend) stop = bend; /* block by block: the next one may be in the file now */
        memcpy(buf + (pos - off), f->buf + (pos - f->off), (size_t)(stop - pos));
        pos = stop;
    }
    return (size_t)(pos - off);
}

/* The bytes of [off, off + len) that are in the file (read as they are there) or nowhere
 * yet (fetched into the file first): up to the first byte that the window has in memory. */
static ssize_t file_read(struct s3_stage *s, struct stg_ahead *a, char *buf, size_t len, off_t off)
{
    int64_t end = off + (int64_t)len;
    if (a) { /* stop where an arrived or coming fetch has the bytes */
        for (int64_t b = off >> BLK_SHIFT; b * BLK < end; b++)
            if (!present(s->h, b) && b * BLK < flimit(s->h) && ahead_find(a, b) >= 0) {
                end = b * BLK > off ? b * BLK : off;
                break;
            }
        if (end == off) return 0;
    }
    int e = stg_ensure(s, off, end); /* a block missing everywhere (a random reader's) */
    if (e < 0) return e;
    size_t done = 0, want = (size_t)(end - off);
    while (done < want) {
        ssize_t r = sys.pread(s->dfd, buf + done, want - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return done ? (ssize_t)done : -errno;
        if (r == 0) break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

ssize_t s3_stage_pread(struct s3_stage *s, void *buf, size_t len, off_t off)
{
    if (len == 0) return 0;
    /* A sequential reader fetches ahead, doubling up to 64 MiB; a step forward within the
     * window (sqlite3 scanning a table skips pages it has or does not need) keeps it. */
    size_t ra = __atomic_load_n(&s->ra, __ATOMIC_RELAXED);
    off_t last = __atomic_load_n(&s->last_end, __ATOMIC_RELAXED);
    if (off == last && off > 0)
        ra = ra < RA_MIN ? RA_MIN : ra * 2 > RA_MAX ? RA_MAX : ra * 2;
    else if (!(ra && off > last && off - last <= (off_t)ra))
        ra = 0;
    __atomic_store_n(&s->ra, ra, __ATOMIC_RELAXED);
    struct stage_hdr *h = s->h;
    int64_t end = off + (int64_t)len, want = end + (int64_t)ra / 2;
    if (want > flimit(h)) want = flimit(h);
    struct stg_ahead *a = __atomic_load_n(&s->ahead, __ATOMIC_ACQUIRE);
    /* the window goes on once less than half of it is there or coming */
    if (ra && !all_present(h, end, want) && !(a && __atomic_load_n(&a->hi, __ATOMIC_RELAXED) >= want)) {
        if (!a) a = ahead_get(s);
        if (a) {
            pthread_mutex_lock(&a->mu);
            ahead_start(s, a, off, end + (int64_t)ra);
            pthread_mutex_unlock(&a->mu);
        } else if (stg_ensure(s, off, end + (int64_t)ra) < 0) { /* no memory for it: into the file, waited for */
            ra = 0;
        }
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n;
        if (a) {
            pthread_mutex_lock(&a->mu);
            n = (ssize_t)ahead_copy(s, a, (char *)buf + done, off + (int64_t)done, end);
            if (n == 0) n = file_read(s, a, (char *)buf + done, len - done, off + (off_t)done);
            pthread_mutex_unlock(&a->mu);
        } else {
            n = file_read(s, NULL, (char *)buf + done, len - done, off + (off_t)done);
        }
        if (n < 0) {
            if (done) break;
            return n;
        }
        if (n == 0) break; /* the end of the file */
        done += (size_t)n;
    }
    __atomic_store_n(&s->last_end, off + (off_t)done, __ATOMIC_RELAXED);
    return (ssize_t)done;
}
