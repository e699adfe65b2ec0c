/* s3_stage_fetch.c - lazy range fetch of staged S3 objects, and their reads.
 *
 * Why a module of its own: a staged object is brought in only where a program touches it
 * (a read, a partial write, a mapping, the upload of a part that is not copied on the
 * server): the missing 1 MiB blocks of a range are fetched by parallel ranged GETs with
 * If-Match under the shared map's mutex, so each block is fetched once per host. A
 * sequential reader's window ahead is fetched without waiting and without that mutex
 * (struct stg_ahead): the reader goes on with what is there while the rest arrives, and
 * waits only for a block it needs that is still in flight; arrived bytes go into the
 * staging file under the mutex, only where no block is there yet, so a block written,
 * fetched by another process or truncated away meanwhile keeps what it has. The semantics
 * are in s3_stage.c's header. */
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
            s3_op_init(&f->op, "GET", h->src_bucket, h->src_key);
            snprintf(f->range, sizeof f->range, "bytes=%lld-%lld", (long long)f->off,
                     (long long)(f->off + (int64_t)f->len - 1));
            s3_op_header(&f->op, "range", f->range);
            if (h->etag[0]) s3_op_header(&f->op, "if-match", h->etag);
            f->op.dst = f->buf;
            f->op.dst_cap = f->len;
            s3_start(&s->m->client, &f->op);
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

struct stg_ahead {
    pthread_mutex_t mu; /* the threads of this process reading through one open */
    int64_t hi;         /* atomic: where the window started last ends */
    int used[AHEAD_OPS];
    struct fetch f[AHEAD_OPS]; /* in flight: an op is never moved while the engine has it */
};

static int ahead_find(const struct stg_ahead *a, int64_t b)
{
    for (int i = 0; i < AHEAD_OPS; i++)
        if (a->used[i] && b >= a->f[i].off >> BLK_SHIFT && b * BLK < a->f[i].off + (int64_t)a->f[i].len) return i;
    return -1;
}

/* f's bytes into the staging file where no block is there yet (h->lock held). */
static void ahead_apply_locked(struct s3_stage *s, const struct fetch *f)
{
    struct stage_hdr *h = s->h;
    int64_t fend = f->off + (int64_t)f->len, lim = flimit(h);
    if (fend > lim) fend = lim;
    for (int64_t b = f->off >> BLK_SHIFT; b * BLK < fend;) {
        if (present(h, b)) {
            b++;
            continue;
        }
        int64_t rs = b;
        while (b * BLK < fend && !present(h, b)) b++;
        int64_t a = rs * BLK, z = b * BLK < fend ? b * BLK : fend;
        if (stg_write_all(s->dfd, f->buf + (a - f->off), (size_t)(z - a), a) < 0) return; /* fetched again when read */
        for (int64_t k = rs; k < b; k++) set_present(h, k);
    }
}

/* Wait for fetch i, put its bytes in if apply, free its slot (a->mu held). A failed fetch
 * is only dropped: the read that needs the bytes fetches them itself and reports. */
static void ahead_finish(struct s3_stage *s, struct stg_ahead *a, int i, int apply)
{
    struct fetch *f = &a->f[i];
    int e = s3_finish(&s->m->client, &f->op);
    if (apply && e == 0 && f->op.req.got == f->len) {
        hlock(s->h);
        ahead_apply_locked(s, f);
        hunlock(s->h);
    }
    s3_op_cleanup(&f->op);
    bufpool_put(f->buf, f->len);
    f->buf = NULL;
    a->used[i] = 0;
}

/* Start fetches for the blocks of [from, to) neither there nor in flight (a->mu held). */
static void ahead_start(struct s3_stage *s, struct stg_ahead *a, int64_t from, int64_t to)
{
    struct stage_hdr *h = s->h;
    int64_t lim = flimit(h);
    if (to > lim) to = lim;
    int conc = s->m->concurrency < AHEAD_OPS ? s->m->concurrency : AHEAD_OPS, busy = 0;
    for (int i = 0; i < AHEAD_OPS; i++) busy += a->used[i];
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
        s3_op_init(&f->op, "GET", h->src_bucket, h->src_key);
        snprintf(f->range, sizeof f->range, "bytes=%lld-%lld", (long long)f->off, (long long)(f->off + (int64_t)f->len - 1));
        s3_op_header(&f->op, "range", f->range);
        if (h->etag[0]) s3_op_header(&f->op, "if-match", h->etag);
        f->op.dst = f->buf;
        f->op.dst_cap = f->len;
        f->op.prefetch = 1;
        s3_start(&s->m->client, &f->op); /* a failure shows at s3_finish */
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
        if (a->used[i]) ahead_finish(s, a, i, 0); /* closing: let it land, then drop it */
    pthread_mutex_destroy(&a->mu);
    free(a);
    s->ahead = NULL;
}

/* The window of a sequential reader at [off, end), ra bytes: started ahead once less than
 * half of it is there or coming. Whatever [off, end) needs that is in flight is waited for,
 * for any reader (ra 0: one that jumped). 0, or -ENOMEM (then the caller fetches as it did
 * before the window was asynchronous). */
static int ahead_read(struct s3_stage *s, int64_t off, int64_t end, size_t ra)
{
    struct stage_hdr *h = s->h;
    int64_t want = end + (int64_t)ra / 2, lim = flimit(h);
    if (want > lim) want = lim;
    int need = !all_present(h, off, end);
    struct stg_ahead *a = __atomic_load_n(&s->ahead, __ATOMIC_ACQUIRE);
    if (!ra && (!need || !a)) return 0;
    if (!need && ((a && __atomic_load_n(&a->hi, __ATOMIC_RELAXED) >= want) || all_present(h, end, want))) return 0;
    if (!a && !(a = ahead_get(s))) return -ENOMEM;
    pthread_mutex_lock(&a->mu);
    if (ra) ahead_start(s, a, off, end + (int64_t)ra);
    if (need) {
        int64_t e = end < lim ? end : lim;
        for (int64_t b = off >> BLK_SHIFT; b * BLK < e; b++) {
            int i;
            if (!present(h, b) && (i = ahead_find(a, b)) >= 0) ahead_finish(s, a, i, 1);
        }
    }
    pthread_mutex_unlock(&a->mu);
    return 0;
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
    int64_t end = off + (int64_t)len;
    int e = 0;
    if (ahead_read(s, off, end, ra) < 0 && ra) {
        /* No memory for the window's state: it is fetched in batches, waited for, once
         * less than half of it is there (a window that slid one block at a time would
         * fetch one 1 MiB block per MiB read, each a synchronous round trip). */
        if (!all_present(s->h, end, end + (int64_t)ra / 2)) e = stg_ensure(s, off, end + (int64_t)ra);
    }
    if (e == 0) e = stg_ensure(s, off, end); /* what is still missing (a random reader's block) */
    if (e < 0) return e;
    size_t done = 0;
    while (done < len) {
        ssize_t r = sys.pread(s->dfd, (char *)buf + done, len - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return done ? (ssize_t)done : -errno;
        if (r == 0) break;
        done += (size_t)r;
    }
    __atomic_store_n(&s->last_end, off + (off_t)done, __ATOMIC_RELAXED);
    return (ssize_t)done;
}
