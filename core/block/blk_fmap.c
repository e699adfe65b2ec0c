/* blk_fmap.c - the free map inside a commit: bitmap blocks and the directory blocks that
 * locate them, read from the base root and copied on their first change (blk_txn.c
 * writes the copies), and the metadata zone's allocator. */
#include "blk.h"
#include "txn.h"

#include "../log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Block addr of the base root into buf: kept from an earlier walk (blk_cache.c), or read
 * and verified. 0 or -errno. */
static int cached_read(struct blk_txn *t, uint64_t addr, int kind, uint8_t *buf)
{
    if (blk_nc_get(t->s, addr, kind, t->base, buf)) return 0;
    int e = blk_read_block(t->s, addr, buf);
    if (!e && blk_verify(buf, kind, addr, t->s->sb.h.uuid, t->base, NULL, 0) < 0) e = -EIO;
    if (!e) blk_nc_put(t->s, addr, kind, buf, t->base);
    return e;
}

uint64_t tx_meta_alloc(struct blk_txn *t);

/* Bitmap (kind BK_BITMAP) or directory block idx, at addr in the base root, into the
 * commit's view (table: t->bms or t->dirs). */
static struct tblk *load(struct blk_txn *t, struct tblk **table, uint64_t idx, uint64_t addr, int kind)
{
    struct tblk *b = tx_new_blk(t);
    if (!b) return NULL;
    b->idx = idx;
    b->addr = addr;
    int e = cached_read(t, addr, kind, b->buf);
    if (e) {
        slog_error("block: %s: %s block %llu unreadable", t->s->path, kind == BK_DIR ? "bitmap directory" : "bitmap",
                   (unsigned long long)addr);
        tx_put_blk(t, b);
        tx_fail(t, e);
        return NULL;
    }
    HASH_ADD(hh, *table, idx, sizeof b->idx, b);
    return b;
}

static struct tblk *dir_get(struct blk_txn *t, uint64_t j, int wr)
{
    struct tblk *d;
    HASH_FIND(hh, t->dirs, &j, sizeof j, d);
    if (!d) {
        if (j >= t->r.ndir) {
            tx_fail(t, -EIO);
            return NULL;
        }
        if (!(d = load(t, &t->dirs, j, t->r.dir[j], BK_DIR))) return NULL;
    }
    if (wr && !d->dirty) {
        d->dirty = 1; /* first: the allocation below may come back here */
        uint64_t old = d->addr, n = tx_meta_alloc(t);
        if (!n) return NULL;
        tx_freed_meta(t, old, tx_hdr_commit(d->buf));
        d->addr = t->r.dir[j] = n;
    }
    return d;
}

static struct tblk *bm_get(struct blk_txn *t, uint64_t idx, int wr)
{
    struct tblk *b;
    HASH_FIND(hh, t->bms, &idx, sizeof idx, b);
    if (!b) {
        struct tblk *d = dir_get(t, idx / BLK_ADDRS_PER_DIR, 0);
        if (!d) return NULL;
        uint64_t addr;
        memcpy(&addr, d->buf + BLK_HDR + (idx % BLK_ADDRS_PER_DIR) * 8, 8);
        if (!(b = load(t, &t->bms, idx, addr, BK_BITMAP))) return NULL;
    }
    if (wr && !b->dirty) {
        b->dirty = 1;
        uint64_t old = b->addr, n = tx_meta_alloc(t);
        if (!n) return NULL;
        tx_freed_meta(t, old, tx_hdr_commit(b->buf));
        b->addr = n;
        struct tblk *d = dir_get(t, idx / BLK_ADDRS_PER_DIR, 1);
        if (!d) return NULL;
        memcpy(d->buf + BLK_HDR + (idx % BLK_ADDRS_PER_DIR) * 8, &n, 8);
    }
    return b;
}

/* Set (val 1) or clear a run of bits; each must change. */
int tx_bits_set(struct blk_txn *t, uint64_t start, uint64_t len, int val)
{
    if (start + len > t->s->sb.dev_blocks || start + len < start) {
        tx_fail(t, -EIO);
        return -1;
    }
    for (uint64_t k = start; k < start + len; k++) {
        struct tblk *b = bm_get(t, k / BLK_BITS_PER_BM, 1);
        if (!b) return -1;
        uint64_t bit = k % BLK_BITS_PER_BM;
        uint8_t *byte = &b->buf[BLK_HDR + bit / 8], m = (uint8_t)(1u << (bit % 8));
        if (!!(*byte & m) == val) {
            slog_error("block: %s: block %llu is already %s in the free map (damaged store: run s3shim blk check)",
                       t->s->path, (unsigned long long)k, val ? "in use" : "free");
            tx_fail(t, -EIO);
            return -1;
        }
        *byte ^= m;
        int meta = k < t->s->sb.data_start || k >= t->s->sb.data_end;
        if (val) {
            t->r.used++;
            if (meta) t->r.meta_used++;
        } else {
            t->r.used--;
            if (meta) t->r.meta_used--;
            if (k >= t->s->sb.meta_start && k < t->s->sb.data_start && k < t->mfree_min) t->mfree_min = k;
        }
    }
    return 0;
}

/* The lowest run of `want` free blocks in the metadata zone (0: none). A commit's new
 * blocks go there side by side, one write for all of them, and in steady work (a small
 * file per commit) the run is the hole the commit two back left, of the same size: the
 * same pages of the device are written again. (Plain first-fit refilled those holes
 * block by block, as scattered as the first commits had made them: four writes a
 * commit. Next-fit from the last commit's end wrote each commit to new pages: 20 KiB
 * more page cache to write back per small file, and slower.) */
int blk_bits_run(const uint8_t *bits, uint64_t from, uint64_t to, uint64_t want, uint64_t *run, int64_t *start)
{
    /* A word at a time: the metadata zone is a patchwork of holes a few blocks long, and
     * a loop over each bit was a twentieth of the time of a program writing small files. */
    for (uint64_t b = from; b < to;) {
        uint64_t n = 64 - b % 64, w;
        memcpy(&w, bits + (b / 64) * 8, 8);
        w >>= b % 64; /* bit k: b + k */
        if (n > to - b) n = to - b;
        uint64_t valid = n == 64 ? ~0ull : (1ull << n) - 1, used = w & valid;
        if (!used) { /* all free */
            if (*run + n >= want) {
                *start = (int64_t)b - (int64_t)*run;
                return 1;
            }
            *run += n;
        } else {
            if (*run + (uint64_t)__builtin_ctzll(used) >= want) {
                *start = (int64_t)b - (int64_t)*run;
                return 1;
            }
            uint64_t x = ~w & valid, r = x; /* r's bit k: k .. k + want - 1 all free */
            for (uint64_t k = 1; k < want && r; k++) r &= x >> k;
            if (r) {
                *start = (int64_t)(b + (uint64_t)__builtin_ctzll(r));
                return 1;
            }
            *run = n - 1 - (63 - (uint64_t)__builtin_clzll(used)); /* free above the highest used */
        }
        b += n;
    }
    return 0;
}

/* Where the search for a run of `want` free blocks may start: the zone's start, or past
 * the blocks the process's last commit found in use, when this commit builds on that one
 * (no other commit came between) and wants as many blocks or more. Blocks freed since
 * (by either commit) may open a run that begins up to want - 1 blocks before them. From
 * the zone's start every time, the search went over the whole used part of the zone
 * each commit: a tenth of the instructions of a program creating small files in a store
 * of 100,000. Only a hint: a run found later than the lowest is still a free run. */
/* Where a run may start that this commit's frees opened: up to 64 blocks (the longest run
 * asked for) before the lowest block it freed; UINT64_MAX: it freed none. */
static uint64_t freed_floor(const struct blk_txn *t)
{
    uint64_t lo = t->s->sb.meta_start, f = t->mfree_min;
    return f == UINT64_MAX ? f : f > lo + 64 ? f - 64 : lo;
}

static uint64_t meta_hint(const struct blk_txn *t, uint64_t want)
{
    const struct blk_store *s = t->s;
    uint64_t lo = s->sb.meta_start, at = lo, f = freed_floor(t);
    if (s->mh_commit && s->mh_commit == t->base && want >= s->mh_want) at = s->mh_pos;
    if (f < at) at = f;
    return at < lo ? lo : at;
}

static uint64_t meta_run(struct blk_txn *t, uint64_t want)
{
    uint64_t hi = t->s->sb.data_start, run = 0;
    if (want < 1 || want > 64) return 0;
    for (uint64_t b = meta_hint(t, want); b < hi;) {
        uint64_t idx = b / BLK_BITS_PER_BM, base = idx * BLK_BITS_PER_BM, end = base + BLK_BITS_PER_BM;
        struct tblk *m = bm_get(t, idx, 0);
        if (!m) return 0;
        if (end > hi) end = hi;
        int64_t at;
        if (blk_bits_run(m->buf + BLK_HDR, b - base, end - base, want, &run, &at)) {
            t->mrun_at = (uint64_t)((int64_t)base + at);
            t->mrun_want = want;
            return t->mrun_at;
        }
        b = end;
    }
    return 0;
}

void tx_meta_hint(struct blk_txn *t, uint64_t commit)
{
    struct blk_store *s = t->s;
    uint64_t at, want;
    if (t->mrun_at) {
        at = t->mrun_at;
        want = t->mrun_want;
    } else if (s->mh_commit && s->mh_commit == t->base) { /* no search this time: the last one's holds */
        at = s->mh_pos;
        want = s->mh_want;
    } else {
        s->mh_commit = 0;
        return;
    }
    uint64_t f = freed_floor(t);
    if (f < at) at = f;
    s->mh_commit = commit;
    s->mh_pos = at;
    s->mh_want = want;
}

/* The first free block of the metadata zone in [from, to), a word of the bitmap at a time
 * (0: none, or an unreadable bitmap block, t->err set). A bit at a time, past the blocks
 * the commits before had used, this was a quarter of the time of a program creating
 * small files once the store held some 40,000 of them. */
static uint64_t meta_free(struct blk_txn *t, uint64_t from, uint64_t to)
{
    for (uint64_t b = from; b < to;) {
        uint64_t idx = b / BLK_BITS_PER_BM, base = idx * BLK_BITS_PER_BM, end = base + BLK_BITS_PER_BM, run = 0;
        struct tblk *m = bm_get(t, idx, 0);
        if (!m) return 0;
        if (end > to) end = to;
        int64_t at;
        if (blk_bits_run(m->buf + BLK_HDR, b - base, end - base, 1, &run, &at)) return base + (uint64_t)at;
        b = end;
    }
    return 0;
}

/* A free block of the metadata zone, marked used: the first at or after the cursor,
 * wrapping round once. 0 on failure. */
uint64_t tx_meta_alloc(struct blk_txn *t)
{
    uint64_t lo = t->s->sb.meta_start, hi = t->s->sb.data_start;
    if (!t->mrun) {
        t->mrun = 1;
        uint64_t want = t->s->mlast ? t->s->mlast : 4, at = meta_run(t, want > 16 ? 16 : want);
        if (at) t->mcursor = at;
    }
    if (t->mcursor < lo || t->mcursor >= hi) t->mcursor = lo;
    uint64_t b = meta_free(t, t->mcursor, hi);
    if (!b && !t->err && t->mcursor > lo) b = meta_free(t, lo, t->mcursor);
    if (!b) {
        if (!t->err) {
            slog_error("block: %s: the metadata zone is full", t->s->path);
            tx_fail(t, -ENOSPC);
        }
        return 0;
    }
    t->mcursor = b + 1;
    if (tx_bits_set(t, b, 1, 1) < 0) return 0;
    t->nmeta++;
    return b;
}

int tx_use_data(struct blk_txn *t, uint64_t start, uint64_t len)
{
    if (start < t->s->sb.data_start || start + len > t->s->sb.data_end) {
        tx_fail(t, -EIO);
        return -EIO;
    }
    return tx_bits_set(t, start, len, 1) < 0 ? t->err : 0;
}
