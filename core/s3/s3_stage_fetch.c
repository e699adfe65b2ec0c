/* s3_stage_fetch.c - lazy range fetch of staged S3 objects, and their reads.
 *
 * Why a module of its own: a staged object is brought in only where a program touches it
 * (a read, a partial write, a mapping, the upload of a part that is not copied on the
 * server): the missing 1 MiB blocks of a range are fetched by parallel ranged GETs with
 * If-Match under the shared map's mutex, so each block is fetched once per host, and a
 * sequential reader fetches ahead in batches. The semantics are in s3_stage.c's header. */
#include "../bufpool.h"
#include "../efd.h"
#include "../log.h"
#include "../sys.h"
#include "s3.h"
#include "s3_stage.h"
#include "s3_stage_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RA_MIN ((size_t)4 << 20)
#define RA_MAX ((size_t)64 << 20)

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

ssize_t s3_stage_pread(struct s3_stage *s, void *buf, size_t len, off_t off)
{
    if (len == 0) return 0;
    /* a sequential reader fetches ahead, doubling up to 64 MiB */
    size_t ra = __atomic_load_n(&s->ra, __ATOMIC_RELAXED);
    if (off == __atomic_load_n(&s->last_end, __ATOMIC_RELAXED) && off > 0)
        ra = ra < RA_MIN ? RA_MIN : ra * 2 > RA_MAX ? RA_MAX : ra * 2;
    else
        ra = 0;
    __atomic_store_n(&s->ra, ra, __ATOMIC_RELAXED);
    /* The window is fetched in batches: once less than half of it is there, all of it. A
     * window that slid one block at a time would fetch one 1 MiB block per MiB read, each
     * a synchronous round trip (a full-table scan in sqlite3 ran at 15 MB/s so). */
    int64_t end = off + (int64_t)len;
    int e = 0;
    if (!all_present(s->h, off, end) || (ra && !all_present(s->h, end, end + (int64_t)ra / 2)))
        e = stg_ensure(s, off, end + (int64_t)ra);
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
