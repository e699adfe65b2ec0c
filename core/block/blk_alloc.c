/* blk_alloc.c - free data space as every process sees it: the committed bitmap of the
 * newest root, minus the ranges other writers have reserved.
 *
 * A reservation is an OFD write lock on the blocks' byte range of the device, held on the
 * writer's own descriptor: the kernel drops it when that descriptor closes or the process
 * dies, so a writer killed before its commit leaves nothing behind. Reservations are
 * made under the commit lock, after reading the newest root, and skip every range
 * anyone holds a lock on (a writer's reservation, or a reader's pin on the extents of an
 * object that was unlinked while open). Metadata never comes from here: only the
 * committer allocates it, in the metadata zone (blk_txn.c).
 *
 * Space freed by commit N is free for writers as soon as commit N+1 is durable: the
 * slots then hold N and N+1, which reach none of it. Its bits are cleared only by the
 * commit after N+1 (blk_txn.c, tx_begin), so while the newest root is durable its
 * pend_prev list (what N freed) counts as free here, and the writer's own commit, which
 * comes after that clearing, sets the bits again. A root that is only visible does not
 * count: the durable slots may still reach what its pend_prev names. */
#include "blk.h"

#include "../sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Block addr of that kind reached from root r: kept (blk_cache.c), or read, verified and
 * kept. 0, -errno, or -EAGAIN (not valid under r: the tree moved). */
static int kept_or_read(struct blk_store *s, const struct blk_root *r, uint64_t addr, int kind, uint8_t *buf)
{
    if (blk_nc_get(s, addr, kind, r->h.commit, buf)) return 0;
    int e = blk_read_block(s, addr, buf);
    if (e < 0) return e;
    if (blk_verify(buf, kind, addr, s->sb.h.uuid, r->h.commit, NULL, 0) < 0) return -EAGAIN;
    blk_nc_put(s, addr, kind, buf, r->h.commit);
    return 0;
}

int blk_bm_read(struct blk_store *s, const struct blk_root *r, uint64_t idx, uint8_t *buf)
{
    uint64_t j = idx / BLK_ADDRS_PER_DIR;
    if (j >= r->ndir) return -EIO;
    int e = kept_or_read(s, r, r->dir[j], BK_DIR, buf);
    if (e < 0) return e;
    uint64_t addr;
    memcpy(&addr, buf + BLK_HDR + (idx % BLK_ADDRS_PER_DIR) * 8, 8);
    return kept_or_read(s, r, addr, BK_BITMAP, buf);
}

int blk_bm_test(struct blk_bm_cursor *c, uint64_t b, int *set)
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

struct blk_bm_cursor *blk_bm_cursor_new(struct blk_store *s)
{
    struct blk_bm_cursor *c = aligned_alloc(64, sizeof *c);
    if (!c) return NULL;
    memset(c, 0, offsetof(struct blk_bm_cursor, buf));
    c->s = s;
    return c;
}

int blk_fext_cmp(const void *a, const void *b)
{
    const struct blk_fext *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* s->pf: the data extents of r's pend_prev if r is the newest durable root, else none.
 * Read once per root; s->lock held. */
static int pf_load(struct blk_store *s, const struct blk_root *r, uint64_t durable)
{
    int dur = r->h.commit == durable;
    if (s->pf_commit == r->h.commit && s->pf_durable == dur) return 0;
    s->npf = 0;
    s->pf_commit = 0;
    if (!dur || !r->pend_prev_n) {
        s->pf_commit = r->h.commit;
        s->pf_durable = dur;
        return 0;
    }
    uint8_t *buf = aligned_alloc(64, BLK_BS);
    if (!buf) return -ENOMEM;
    size_t cap = 0, n = 0;
    struct blk_fext *v = NULL;
    int e = 0;
    for (uint64_t a = r->pend_prev, hops = 0; a && !e; hops++) {
        if (hops > s->sb.data_start || (e = blk_read_block(s, a, buf)) < 0) break;
        if (blk_verify(buf, BK_FREE, a, s->sb.h.uuid, r->h.commit, NULL, 0) < 0) {
            e = -EAGAIN; /* the tree moved on: the caller's root is no longer the newest */
            break;
        }
        const struct blk_hdr *h = (const void *)buf;
        for (uint32_t i = 0; i < h->count && i < BLK_EXT_PER_FL; i++) {
            struct blk_fext x;
            memcpy(&x, buf + BLK_HDR + 8 + i * 16, 16);
            uint64_t lo = x.start, hi = x.start + x.len;
            if (lo < s->sb.data_start) lo = s->sb.data_start;
            if (hi > s->sb.data_end) hi = s->sb.data_end;
            if (lo >= hi) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                struct blk_fext *nv = realloc(v, cap * sizeof *v);
                if (!nv) {
                    e = -ENOMEM;
                    break;
                }
                v = nv;
            }
            v[n++] = (struct blk_fext){lo, hi - lo};
        }
        memcpy(&a, buf + BLK_HDR, 8);
    }
    free(buf);
    if (e < 0) {
        free(v);
        return e;
    }
    if (n) qsort(v, n, sizeof *v, blk_fext_cmp);
    free(s->pf);
    s->pf = v;
    s->npf = n;
    s->pf_commit = r->h.commit;
    s->pf_durable = dur;
    return 0;
}

/* Is block b in s->pf (free for writers though its bit is still set)? */
static int pf_has(const struct blk_store *s, uint64_t b)
{
    size_t lo = 0, hi = s->npf;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->pf[mid].start + s->pf[mid].len <= b) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->npf && s->pf[lo].start <= b;
}

int blk_range_probe(struct blk_store *s, uint64_t a, uint64_t b, uint64_t *la, uint64_t *lb)
{
    /* F_OFD_GETLK names one conflicting lock, not the lowest: look again before it until
     * none is. (A lock further on taken for the first would let the caller lock the range
     * before it, and a lock its own descriptor holds there, a reservation or a pin, is
     * no conflict to F_OFD_SETLK: the same blocks handed out twice.) */
    int found = 0;
    while (a < b) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)(a * BLK_BS),
                           .l_len = (off_t)((b - a) * BLK_BS)};
        if (sys.fcntl(s->fd, F_OFD_GETLK, &fl) < 0) return -errno;
        if (fl.l_type == F_UNLCK) break;
        uint64_t x = (uint64_t)fl.l_start / BLK_BS;
        uint64_t y = fl.l_len == 0 ? b : ((uint64_t)(fl.l_start + fl.l_len) + BLK_BS - 1) / BLK_BS;
        *la = x < a ? a : x;
        *lb = y > b ? b : y;
        found = 1;
        b = *la; /* (ends the loop if it starts at a) */
    }
    return found;
}

static int reserve_once(struct blk_store *s, int fd, uint64_t want, uint64_t min, uint64_t *start, uint64_t *got)
{
    int e = blk_lock(s);
    if (e < 0) return e;
    struct blk_bm_cursor cur_s, *cur = &cur_s;
    struct blk_root r;
    uint64_t durable;
    if ((e = blk_roots(s, &r, &durable, NULL, NULL)) < 0 || (e = pf_load(s, &r, durable)) < 0) goto out;
    memset(cur, 0, offsetof(struct blk_bm_cursor, buf));
    cur->s = s;
    cur->r = &r;
    uint64_t lo = s->sb.data_start, hi = s->sb.data_end;
    uint64_t b = s->cursor >= lo && s->cursor < hi ? s->cursor : lo;
    uint64_t scanned = 0, total = hi - lo;
    e = -ENOSPC;
    while (scanned < total) {
        if (b >= hi) b = lo; /* wrap once */
        int set;
        int te = blk_bm_test(cur, b, &set);
        if (te < 0) {
            e = te;
            goto out;
        }
        if (set && !pf_has(s, b)) {
            b++;
            scanned++;
            continue;
        }
        /* a clear run [b, end) */
        uint64_t end = b + 1;
        while (end < hi && end - b < want) {
            if ((te = blk_bm_test(cur, end, &set)) < 0) {
                e = te;
                goto out;
            }
            if (set && !pf_has(s, end)) break;
            end++;
        }
        if (end - b < min) { /* too short for this caller: look further on */
            scanned += end - b;
            b = end;
            continue;
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

int blk_reserve(struct blk_store *s, int fd, uint64_t want, uint64_t *start, uint64_t *got)
{
    return blk_reserve_run(s, fd, want, 1, start, got);
}

int blk_reserve_run(struct blk_store *s, int fd, uint64_t want, uint64_t min, uint64_t *start, uint64_t *got)
{
    if (want < 1) want = 1;
    if (min < 1) min = 1;
    if (min > want) min = want;
    int e = reserve_once(s, fd, want, min, start, got);
    if (e == -ENOSPC && min > 1) e = reserve_once(s, fd, want, 1, start, got); /* none so long */
    /* No free block, but maybe space held for a durable root that is yet to come (group
     * commit: a process committing faster than S3SHIM_BLOCK_COMMIT_MS holds every version
     * it replaced): make it free now (blk_reclaim, blk_txn.c), then look again (also when
     * it found nothing held: another writer's reclaim may have freed it meanwhile). A
     * second round if a commit of someone else came between its steps. */
    for (int round = 0; e == -ENOSPC && s->rw && round < 2; round++) {
        int r = blk_reclaim(s);
        if (r < 0) break; /* (ENOSPC stands) */
        e = reserve_once(s, fd, want, 1, start, got);
        if (r == 0) break; /* nothing was held: what is free is all there is */
    }
    return e;
}

int blk_free_blocks(struct blk_store *s, uint64_t *free_blocks, struct blk_root *r)
{
    uint64_t durable, pending = 0;
    pthread_mutex_lock(&s->lock);
    int e = blk_roots(s, r, &durable, NULL, NULL);
    /* (a list that moved under us, no commit lock here: counted as used this time) */
    if (!e && pf_load(s, r, durable) == 0 && s->pf_commit == r->h.commit)
        for (size_t i = 0; i < s->npf; i++) pending += s->pf[i].len; /* free for writers already */
    pthread_mutex_unlock(&s->lock);
    if (e < 0) return e;
    uint64_t data = s->sb.data_end - s->sb.data_start, used = r->used - r->meta_used;
    used = used > pending ? used - pending : 0;
    *free_blocks = used > data ? 0 : data - used;
    return 0;
}
