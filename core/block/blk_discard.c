/* blk_discard.c - telling the device which blocks the store no longer uses (opt-in).
 *
 * Why: an SSD or a thin volume keeps every block it was once written until told it is
 * unused, and an image file keeps its disk space. A freed extent may be discarded only
 * once no root that a crash could bring back reaches it: that is the moment blk_txn.c
 * makes it reusable (the commit after the one that freed it is durable), and the commit
 * lock is held from there until a writer can reserve it, so nobody's new data can be
 * discarded. Ranges someone holds a lock on are skipped: a writer's reservation (its data
 * is on the way) or a reader's pin on an object unlinked while open (still read).
 *
 * Two ways in: S3SHIM_BLOCK_DISCARD=1 discards as commits free space (each commit that
 * releases space waits for the device), and `s3shim blk trim` discards every free range
 * at once, like fstrim. Block devices get BLKDISCARD; regular files a punched hole (the
 * size stays). A device that cannot discard is said so once, then left alone. */
#include "blk.h"
#include "block.h"

#include "../log.h"
#include "../sys.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>

/* Discard blocks [a, b) on the device: 0 or -errno. */
static int discard_now(struct blk_store *s, uint64_t a, uint64_t b)
{
    uint64_t off = a * BLK_BS, len = (b - a) * BLK_BS;
    int r;
    if (s->is_blk) {
        uint64_t range[2] = {off, len};
        r = sys.ioctl(s->fd, BLKDISCARD, range);
    } else {
        r = sys.fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
    }
    return r < 0 ? -errno : 0;
}

uint64_t blk_discard(struct blk_store *s, uint64_t start, uint64_t len)
{
    uint64_t done = 0, b = start, end = start + len;
    while (s->discard && b < end) {
        uint64_t la = 0, lb = 0, stop = end;
        int pr = blk_range_probe(s, b, end, &la, &lb);
        if (pr < 0) break;
        if (pr > 0) stop = la; /* up to someone's lock, then past it */
        if (stop > b) {
            int e = discard_now(s, b, stop);
            if (e == -EOPNOTSUPP || e == -ENOTTY) {
                slog_warn("block: %s cannot discard (%s): S3SHIM_BLOCK_DISCARD ignored for it", s->path, strerror(-e));
                s->discard = 0;
                break;
            }
            if (e < 0) {
                slog_warn("block: %s: discard of blocks %llu-%llu failed: %s", s->path, (unsigned long long)b,
                          (unsigned long long)stop - 1, strerror(-e));
                break; /* a hint only: the blocks stay free either way */
            }
            done += stop - b;
        }
        b = pr > 0 ? lb : stop;
    }
    s->discarded += done;
    return done;
}

uint64_t blk_discard_list(struct blk_store *s, struct blk_fext *x, size_t n)
{
    if (!s->discard || n == 0) return 0;
    qsort(x, n, sizeof *x, blk_fext_cmp);
    uint64_t done = 0;
    for (size_t i = 0; i < n;) {
        uint64_t a = x[i].start, b = a + x[i].len;
        for (i++; i < n && x[i].start <= b; i++) /* adjacent or overlapping: one request */
            if (x[i].start + x[i].len > b) b = x[i].start + x[i].len;
        done += blk_discard(s, a, b - a);
    }
    return done;
}

/* Discard the runs of blocks in [a, b) whose bits are clear in c's root. Blocks
 * discarded via *done, runs via *runs. */
static int discard_clear(struct blk_bm_cursor *c, uint64_t a, uint64_t b, uint64_t *done, uint64_t *runs)
{
    uint64_t run = 0;
    for (uint64_t k = a; k <= b && c->s->discard; k++) {
        int set = 1;
        if (k < b) {
            int e = blk_bm_test(c, k, &set);
            if (e < 0) return e;
        }
        if (!set) {
            run++;
        } else if (run) {
            *done += blk_discard(c->s, k - run, run);
            ++*runs;
            run = 0;
        }
    }
    return 0;
}

void blk_discard_if_free(struct blk_store *s, const struct blk_fext *x, size_t n)
{
    if (!s->discard || n == 0) return;
    struct blk_root r;
    struct blk_bm_cursor *c = blk_bm_cursor_new(s);
    if (!c || blk_lock(s) < 0) {
        free(c);
        return;
    }
    uint64_t done = 0, runs = 0;
    c->r = &r;
    if (blk_newest_root(s, &r, NULL) == 0)
        for (size_t i = 0; i < n; i++)
            if (discard_clear(c, x[i].start, x[i].start + x[i].len, &done, &runs) < 0) break;
    blk_unlock(s);
    free(c);
}

int blk_trim(const char *path, FILE *out, char *err, size_t errlen)
{
    struct blk_store s;
    int r = blk_open(&s, path, 1, err, errlen);
    if (r < 0) return r;
    s.discard = 1;
    struct blk_root rt;
    struct blk_bm_cursor *c = blk_bm_cursor_new(&s);
    if (!c || (r = blk_lock(&s)) < 0) {
        snprintf(err, errlen, "%s: %s", path, c ? strerror(-r) : "out of memory");
        free(c);
        blk_close(&s);
        return c ? r : -ENOMEM;
    }
    /* Under the commit lock: the newest root's clear bits are free in every root a crash
     * could bring back (what later commits freed keeps its bits until it is reusable). */
    uint64_t runs = 0, blocks = 0;
    c->r = &rt;
    if ((r = blk_newest_root(&s, &rt, NULL)) < 0)
        snprintf(err, errlen, "%s: no valid root (run s3shim blk check)", path);
    else if ((r = discard_clear(c, s.sb.data_start, s.sb.data_end, &blocks, &runs)) < 0)
        snprintf(err, errlen, "%s: a bitmap block is unreadable (run s3shim blk check)", path);
    int supported = s.discard;
    blk_unlock(&s);
    free(c);
    blk_close(&s);
    if (r < 0) return r;
    if (!supported) {
        snprintf(err, errlen, "%s: the device does not support discard", path);
        return -EOPNOTSUPP;
    }
    fprintf(out, "%s: %llu bytes discarded in %llu free runs\n", path, (unsigned long long)(blocks * BLK_BS),
            (unsigned long long)runs);
    return 0;
}
