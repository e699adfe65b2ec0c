/* blk_alloc.c - free data space as every process sees it: the committed bitmap of the
 * newest root, minus the ranges other writers have reserved.
 *
 * A reservation is an OFD write lock on the blocks' byte range of the device, held on the
 * writer's own descriptor: the kernel drops it when that descriptor closes or the process
 * dies, so a writer killed before its commit leaves nothing behind. Reservations are
 * made under the commit lock, after reading the newest root, and skip every range
 * anyone holds a lock on (a writer's reservation, or a reader's pin on the extents of an
 * object that was unlinked while open). Metadata never comes from here: only the
 * committer allocates it, in the metadata zone (blk_txn.c). */
#include "blk.h"

#include "../sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>

int blk_bm_read(struct blk_store *s, const struct blk_root *r, uint64_t idx, uint8_t *buf)
{
    uint64_t j = idx / BLK_ADDRS_PER_DIR;
    if (j >= r->ndir) return -EIO;
    int e = blk_read_block(s, r->dir[j], buf);
    if (e < 0) return e;
    if (blk_verify(buf, BK_DIR, r->dir[j], s->sb.h.uuid, r->h.commit, NULL, 0) < 0) return -EAGAIN;
    uint64_t addr;
    memcpy(&addr, buf + BLK_HDR + (idx % BLK_ADDRS_PER_DIR) * 8, 8);
    if ((e = blk_read_block(s, addr, buf)) < 0) return e;
    if (blk_verify(buf, BK_BITMAP, addr, s->sb.h.uuid, r->h.commit, NULL, 0) < 0) return -EAGAIN;
    return 0;
}

/* Walks the committed bitmap: is block b set? (one bitmap block cached) */
struct bm_cursor {
    struct blk_store *s;
    const struct blk_root *r;
    uint64_t idx;
    int loaded;
    uint8_t buf[BLK_BS] __attribute__((aligned(64)));
};

static int bm_test(struct bm_cursor *c, uint64_t b, int *set)
{
    uint64_t idx = b / BLK_BITS_PER_BM, bit = b % BLK_BITS_PER_BM;
    if (!c->loaded || c->idx != idx) {
        int e = blk_bm_read(c->s, c->r, idx, c->buf);
        if (e < 0) return e;
        c->idx = idx;
        c->loaded = 1;
    }
    *set = (c->buf[BLK_HDR + bit / 8] >> (bit % 8)) & 1;
    return 0;
}

int blk_range_probe(struct blk_store *s, uint64_t a, uint64_t b, uint64_t *la, uint64_t *lb)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)(a * BLK_BS),
                       .l_len = (off_t)((b - a) * BLK_BS)};
    if (sys.fcntl(s->fd, F_OFD_GETLK, &fl) < 0) return -errno;
    if (fl.l_type == F_UNLCK) return 0;
    *la = (uint64_t)fl.l_start / BLK_BS;
    *lb = fl.l_len == 0 ? b : ((uint64_t)(fl.l_start + fl.l_len) + BLK_BS - 1) / BLK_BS;
    if (*la < a) *la = a;
    if (*lb > b) *lb = b;
    return 1;
}

int blk_reserve(struct blk_store *s, int fd, uint64_t want, uint64_t *start, uint64_t *got)
{
    if (want < 1) want = 1;
    int e = blk_lock(s);
    if (e < 0) return e;
    struct bm_cursor cur_s, *cur = &cur_s;
    struct blk_root r;
    if ((e = blk_newest_root(s, &r, NULL)) < 0) goto out;
    memset(cur, 0, offsetof(struct bm_cursor, buf));
    cur->s = s;
    cur->r = &r;
    uint64_t lo = s->sb.data_start, hi = s->sb.data_end;
    uint64_t b = s->cursor >= lo && s->cursor < hi ? s->cursor : lo;
    uint64_t scanned = 0, total = hi - lo;
    e = -ENOSPC;
    while (scanned < total) {
        if (b >= hi) b = lo; /* wrap once */
        int set;
        int te = bm_test(cur, b, &set);
        if (te < 0) {
            e = te;
            goto out;
        }
        if (set) {
            b++;
            scanned++;
            continue;
        }
        /* a clear run [b, end) */
        uint64_t end = b + 1;
        while (end < hi && end - b < want) {
            if ((te = bm_test(cur, end, &set)) < 0) {
                e = te;
                goto out;
            }
            if (set) break;
            end++;
        }
        uint64_t la = 0, lb = 0;
        int pr = blk_range_probe(s, b, end, &la, &lb);
        if (pr < 0) {
            e = pr;
            goto out;
        }
        if (pr > 0) {
            if (la > b) {
                end = la; /* the part before someone's lock */
            } else {
                scanned += lb - b;
                b = lb;
                continue;
            }
        }
        if ((e = blk_range_lock(fd, b, end - b, F_WRLCK)) == -EAGAIN) {
            /* a reader pinned part of it since the probe (a lock-free lookup that will
             * find its object gone and let go): look further on */
            e = -ENOSPC;
            scanned += 1;
            b += 1;
            continue;
        }
        if (e < 0) goto out;
        *start = b;
        *got = end - b;
        s->cursor = end;
        e = 0;
        goto out;
    }
out:
    blk_unlock(s);
    return e;
}

int blk_free_blocks(struct blk_store *s, uint64_t *free_blocks, struct blk_root *r)
{
    int e = blk_newest_root(s, r, NULL);
    if (e < 0) return e;
    uint64_t data = s->sb.data_end - s->sb.data_start, used = r->used - r->meta_used;
    *free_blocks = used > data ? 0 : data - used;
    return 0;
}
