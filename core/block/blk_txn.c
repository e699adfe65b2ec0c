/* blk_txn.c - one commit: the copy-on-write view of the tree and of the free map that a
 * commit builds in memory (the free map's side: blk_fmap.c), and the ordered writes that
 * make it durable.
 *
 * Nothing reachable from the newest durable root is written: a changed node, bitmap block
 * or bitmap directory block goes to a newly allocated block of the metadata zone and its
 * old address goes on this commit's freed list (blocks this same commit allocated are
 * just released). The freed list is written as the new root's pend_cur; the extents of
 * the previous root's pend_prev get their bits cleared at the start (freed by commit N-1,
 * unreachable once N is durable). Write order: every new block, fdatasync, the root into
 * slot commit % 2, fdatasync. See docs/block-format.md, "Commit protocol". */
#include "blk.h"
#include "txn.h"

#include "../log.h"
#include "../stats.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void tx_fail(struct blk_txn *t, int e)
{
    if (!t->err) t->err = e;
}

int tx_error(struct blk_txn *t) { return t->err; }
struct blk_root *tx_root(struct blk_txn *t) { return &t->r; }

uint8_t *tx_scratch(struct blk_txn *t, int level, size_t size)
{
    if (level < 0 || level >= 8) {
        tx_fail(t, -EIO);
        return NULL;
    }
    if (!t->keep.scratch[level] && !(t->keep.scratch[level] = malloc(size))) tx_fail(t, -ENOMEM);
    return t->keep.scratch[level];
}

static void add_ext(struct blk_txn *t, struct blk_fext **v, size_t *n, size_t *cap, uint64_t start, uint64_t len)
{
    if (*n && (*v)[*n - 1].start + (*v)[*n - 1].len == start) {
        (*v)[*n - 1].len += len;
        return;
    }
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct blk_fext *x = realloc(*v, nc * sizeof *x);
        if (!x) {
            tx_fail(t, -ENOMEM);
            return;
        }
        *v = x;
        *cap = nc;
    }
    (*v)[(*n)++] = (struct blk_fext){start, len};
}

/* Freed by this commit: held until a newer root than the newest durable one is durable. */
static void add_freed(struct blk_txn *t, uint64_t start, uint64_t len)
{
    add_ext(t, &t->freed, &t->nfreed, &t->capfreed, start, len);
}

/* A freed metadata block written by commit `commit`: if no durable root can reach it
 * (written after the newest durable one, and after the root a durable step in progress
 * is writing), it is free again from the next commit on. */
void tx_freed_meta(struct blk_txn *t, uint64_t addr, uint64_t commit)
{
    if (commit > t->durable && commit > t->pin) add_ext(t, &t->vfreed, &t->nvfreed, &t->capvfreed, addr, 1);
    else add_freed(t, addr, 1);
}

int tx_free_data(struct blk_txn *t, uint64_t start, uint64_t len)
{
    add_freed(t, start, len);
    return t->err;
}

uint64_t tx_hdr_commit(const uint8_t *buf) { return ((const struct blk_hdr *)buf)->commit; }

/* A block buffer (its bytes undefined: every user fills it whole). */
uint8_t *tx_newbuf(struct blk_txn *t)
{
    if (t->keep.nbufs) return t->keep.bufs[--t->keep.nbufs];
    uint8_t *b = aligned_alloc(64, BLK_BS);
    if (!b) tx_fail(t, -ENOMEM);
    return b;
}

void tx_putbuf(struct blk_txn *t, uint8_t *b)
{
    if (b && t->keep.nbufs < TX_KEEP) t->keep.bufs[t->keep.nbufs++] = b;
    else free(b);
}

/* A zeroed entry with its buffer. */
struct tblk *tx_new_blk(struct blk_txn *t)
{
    struct tblk *b = t->keep.blks;
    if (b) {
        t->keep.blks = b->spare;
        t->keep.nblks--;
        uint8_t *buf = b->buf;
        memset(b, 0, sizeof *b);
        b->buf = buf;
        return b;
    }
    if (!(b = calloc(1, sizeof *b)) || !(b->buf = tx_newbuf(t))) {
        free(b);
        tx_fail(t, -ENOMEM);
        return NULL;
    }
    return b;
}

void tx_put_blk(struct blk_txn *t, struct tblk *b)
{
    if (t->keep.nblks < 2 * TX_KEEP) {
        b->spare = t->keep.blks;
        t->keep.blks = b;
        t->keep.nblks++;
        return;
    }
    tx_putbuf(t, b->buf);
    free(b);
}

/* --- nodes --------------------------------------------------------------------------- */

const uint8_t *tx_node(struct blk_txn *t, uint64_t addr, int kind)
{
    struct tblk *n;
    HASH_FIND(hh, t->nodes, &addr, sizeof addr, n);
    if (n) return n->kind == kind ? n->buf : NULL;
    if (!(n = tx_new_blk(t))) return NULL;
    n->addr = addr;
    n->kind = kind;
    char why[96];
    int e = 0;
    if (!blk_nc_get(t->s, addr, kind, t->base, n->buf)) {
        e = blk_read_block(t->s, addr, n->buf);
        if (!e && blk_verify(n->buf, kind, addr, t->s->sb.h.uuid, t->base, why, sizeof why) < 0) {
            slog_error("block: %s: metadata block %llu: %s (run s3shim blk check)", t->s->path,
                       (unsigned long long)addr, why);
            e = -EIO;
        }
        if (!e) blk_nc_put(t->s, addr, kind, n->buf, t->base);
    }
    if (e) {
        tx_put_blk(t, n);
        tx_fail(t, e);
        return NULL;
    }
    HASH_ADD(hh, t->nodes, addr, sizeof n->addr, n);
    return n->buf;
}

void tx_free_node(struct blk_txn *t, uint64_t addr)
{
    struct tblk *n;
    uint64_t written = 0; /* unknown: held, as if a durable root reached it */
    HASH_FIND(hh, t->nodes, &addr, sizeof addr, n);
    if (n) {
        HASH_DEL(t->nodes, n);
        int fresh = n->fresh;
        written = tx_hdr_commit(n->buf);
        tx_put_blk(t, n);
        if (fresh) {
            tx_bits_set(t, addr, 1, 0);
            return;
        }
    }
    tx_freed_meta(t, addr, written);
}

uint64_t tx_put_node(struct blk_txn *t, uint64_t old, int kind, int level, uint32_t count, const void *body,
                     size_t size)
{
    if (t->err || size > BLK_BODY) {
        tx_fail(t, -EIO);
        return 0;
    }
    struct tblk *n = NULL;
    if (old) HASH_FIND(hh, t->nodes, &old, sizeof old, n);
    if (!n || !n->fresh) {
        uint64_t a = tx_meta_alloc(t);
        if (!a) return 0;
        if (old) tx_free_node(t, old);
        if (!(n = tx_new_blk(t))) return 0;
        n->addr = a;
        n->fresh = 1;
        HASH_ADD(hh, t->nodes, addr, sizeof n->addr, n);
    }
    n->kind = kind;
    memset(n->buf, 0, BLK_BS);
    struct blk_hdr *h = (struct blk_hdr *)n->buf;
    h->level = (uint16_t)level;
    h->count = count;
    memcpy(n->buf + BLK_HDR, body, size);
    return n->addr;
}

/* --- begin, commit ------------------------------------------------------------------------ */

/* The end of a transaction, under the commit lock: its entries and buffers go to what it
 * keeps, and it becomes the store's spare (or is freed, if there is one). */
static void txn_end(struct blk_txn *t)
{
    struct tblk **tables[] = {&t->nodes, &t->bms, &t->dirs}, *b, *tmp;
    for (int i = 0; i < 3; i++)
        HASH_ITER(hh, *tables[i], b, tmp) {
            HASH_DEL(*tables[i], b);
            tx_put_blk(t, b);
        }
    struct blk_store *s = t->s;
    if (!s->tx_spare) {
        s->tx_spare = t;
        return;
    }
    tx_free_spare(t);
}

void tx_free_spare(struct blk_txn *t)
{
    if (!t) return;
    struct tx_keep *k = &t->keep;
    for (struct tblk *b = k->blks, *next; b; b = next) {
        next = b->spare;
        free(b->buf);
        free(b);
    }
    for (int i = 0; i < k->nbufs; i++) free(k->bufs[i]);
    for (int i = 0; i < 8; i++) free(k->scratch[i]);
    free(t->freed);
    free(t->vfreed);
    free(t->disc);
    free(t);
}

/* A transaction for s, under the commit lock: the spare one, emptied, or a new one. */
static struct blk_txn *txn_new(struct blk_store *s)
{
    struct blk_txn *t = s->tx_spare;
    if (!t) return calloc(1, sizeof(struct blk_txn));
    s->tx_spare = NULL;
    memset(t, 0, offsetof(struct blk_txn, freed)); /* (what follows is kept) */
    return t;
}

/* An extent that becomes free: discarded before tx_begin returns (blk_discard.c). */
static void disc_add(struct blk_txn *t, struct blk_fext x)
{
    if (t->ndisc == t->capdisc) {
        size_t cap = t->capdisc ? 2 * t->capdisc : 256;
        struct blk_fext *n = realloc(t->disc, cap * sizeof *n);
        if (!n) return; /* a hint only: the extent is free all the same */
        t->disc = n;
        t->capdisc = cap;
    }
    t->disc[t->ndisc++] = x;
}

/* Clear the bits of every extent of the pending-free list at a; free its blocks. */
static void release(struct blk_txn *t, uint64_t a)
{
    struct blk_store *s = t->s;
    uint8_t *buf = tx_newbuf(t);
    while (buf && a && !t->err) {
        if (!blk_nc_get(s, a, BK_FREE, t->base, buf) && /* kept: the list the commit before wrote */
            (blk_read_block(s, a, buf) < 0 || blk_verify(buf, BK_FREE, a, s->sb.h.uuid, t->base, NULL, 0) < 0)) {
            slog_error("block: %s: pending-free block %llu unreadable (run s3shim blk check)", s->path,
                       (unsigned long long)a);
            tx_fail(t, -EIO);
            break;
        }
        const struct blk_hdr *h = (const void *)buf;
        uint64_t next;
        memcpy(&next, buf + BLK_HDR, 8);
        for (uint32_t i = 0; i < h->count && i < BLK_EXT_PER_FL && !t->err; i++) {
            struct blk_fext x;
            memcpy(&x, buf + BLK_HDR + 8 + i * 16, 16);
            tx_bits_set(t, x.start, x.len, 0);
            if (s->discard) disc_add(t, x);
        }
        tx_freed_meta(t, a, h->commit);
        a = next;
    }
    tx_putbuf(t, buf);
}

int tx_begin(struct blk_store *s, struct blk_txn **tp)
{
    if (!s->rw) return -EROFS;
    uint64_t t0 = stats_now_ns();
    int e = blk_lock(s);
    if (e < 0) return e;
    struct blk_txn *t = txn_new(s);
    if (!t) {
        blk_unlock(s);
        return -ENOMEM;
    }
    t->s = s;
    t->t0 = t0;
    if ((e = blk_roots(s, &t->r, &t->durable, &t->dslot, NULL)) < 0) {
        slog_error("block: %s: no valid root (run s3shim blk check)", s->path);
        txn_end(t);
        blk_unlock(s);
        return e;
    }
    t->base = t->r.h.commit;
    t->pin = blk_vr_pin(s);
    t->mcursor = s->sb.meta_start; /* (moved to a free run at the first allocation) */
    t->mfree_min = UINT64_MAX;
    /* What the base freed that no durable root reaches is free from now on. */
    release(t, t->r.vol);
    t->r.vol = t->r.vol_n = 0;
    if (t->base == t->durable) {
        /* What commit N-1 freed is free from now on (the slots hold N-1 and N at most);
         * its list's own blocks are freed by us. */
        release(t, t->r.pend_prev);
        t->r.pend_prev = t->r.pend_cur;
        t->r.pend_prev_n = t->r.pend_cur_n;
        t->r.pend_cur = 0;
        t->r.pend_cur_n = 0;
    } else {
        /* The base is only visible: the durable roots may still reach everything freed
         * since, which stays held; this commit's list is chained before the base's. */
        t->base_pend = t->r.pend_cur;
        t->base_pend_n = t->r.pend_cur_n;
    }
    if (t->err) {
        e = t->err;
        txn_end(t);
        blk_unlock(s);
        return e;
    }
    /* Reusable from here, and nobody can reserve them before we unlock. */
    blk_discard_list(s, t->disc, t->ndisc);
    t->ndisc = 0;
    *tp = t;
    return 0;
}

void tx_abort(struct blk_txn *t)
{
    struct blk_store *s = t->s;
    txn_end(t);
    blk_unlock(s);
}

int blk_reclaim(struct blk_store *s)
{
    /* The newest root durable: its pend_prev is free for writers (pf_load, blk_alloc.c). */
    int e = blk_make_durable(s);
    if (e < 0) return e;
    /* Everything the commits up to it freed is in its pend_cur: a commit on it (durable,
     * so it rotates) makes that its pend_prev, and once it is durable the slots hold the
     * root and it, which reach none of it. */
    struct blk_txn *t;
    if ((e = tx_begin(s, &t)) < 0) return e;
    if (t->base == t->durable && !t->r.pend_prev_n) { /* (rotated: the base's pend_cur) */
        tx_abort(t);
        return 0;
    }
    e = tx_commit(t, TX_DURABLE, NULL);
    return e < 0 ? e : 1;
}

/* Blocks for a pending-free list of n extents (allocating them may free more). */
static int list_blocks(struct blk_txn *t, uint64_t **fl, size_t *nfl, size_t *cap, size_t n)
{
    while (!t->err && *nfl * BLK_EXT_PER_FL < n) {
        if (*nfl == *cap) {
            *cap = *cap ? *cap * 2 : 8;
            uint64_t *x = realloc(*fl, *cap * sizeof *x);
            if (!x) {
                tx_fail(t, -ENOMEM);
                break;
            }
            *fl = x;
        }
        uint64_t a = tx_meta_alloc(t);
        if (!a) break;
        (*fl)[(*nfl)++] = a;
    }
    return t->err ? -1 : 0;
}

/* Extents v[0..n) into the list blocks fl[0..nfl), the last one chained to tail: made in
 * keep (nfl blocks) and added to the commit's writes wv, or without keep made in buf and
 * written at once. */
static void write_list(struct blk_txn *t, uint8_t *buf, const uint64_t *fl, size_t nfl, const struct blk_fext *v,
                       size_t n, uint64_t tail, uint64_t commit, uint8_t *keep, struct blk_wr *wv, size_t *nw)
{
    for (size_t k = 0; k < nfl && !t->err; k++) {
        if (keep) buf = keep + k * BLK_BS;
        memset(buf, 0, BLK_BS);
        uint64_t next = k + 1 < nfl ? fl[k + 1] : tail;
        memcpy(buf + BLK_HDR, &next, 8);
        size_t from = k * BLK_EXT_PER_FL, c = n - from < BLK_EXT_PER_FL ? n - from : BLK_EXT_PER_FL;
        memcpy(buf + BLK_HDR + 8, v + from, c * 16);
        ((struct blk_hdr *)buf)->count = (uint32_t)c;
        blk_seal(buf, BK_FREE, commit, fl[k], t->s->sb.h.uuid);
        if (keep) { /* (kept once the commit is done) */
            wv[(*nw)++] = (struct blk_wr){fl[k], buf};
            continue;
        }
        int e = blk_write_block(t->s, fl[k], buf);
        if (e) tx_fail(t, e);
    }
}

/* A commit on a base that is only visible holds everything freed since the newest durable
 * root, and each one adds at least a pending-free list block. Writers killed before their
 * durable step again and again (each new one finds the published root young, so nobody
 * runs the step) would fill the metadata zone with them, and then no commit could be made
 * at all. So once a quarter of the metadata zone (a sixteenth of the data zone) is all
 * that is left free, the commit is made durable instead: the next two commits free what
 * was held. */
static int held_too_much(const struct blk_txn *t)
{
    const struct blk_super *sb = &t->s->sb;
    uint64_t mzone = sb->data_start - sb->meta_start, dzone = sb->data_end - sb->data_start;
    uint64_t mused = t->r.meta_used > 4 ? t->r.meta_used - 4 : 0; /* (superblocks, roots) */
    uint64_t dused = t->r.used - t->r.meta_used;
    return t->base > t->durable && (mzone - (mused < mzone ? mused : mzone) < mzone / 4 ||
                                    dzone - (dused < dzone ? dused : dzone) < dzone / 16);
}

/* n blocks for a commit's pending-free lists, kept in the cache after it (NULL: none, or
 * no memory, and then they are not kept) */
static uint8_t *keep_alloc(struct blk_txn *t, size_t n)
{
    if (n == 1 && t->keep.nbufs) return t->keep.bufs[--t->keep.nbufs];
    return n ? aligned_alloc(64, n * BLK_BS) : NULL; /* (one goes back to the kept buffers) */
}

static void keep_free(struct blk_txn *t, uint8_t *p, size_t n)
{
    if (n == 1) tx_putbuf(t, p);
    else free(p);
}

int tx_commit(struct blk_txn *t, int how, int *durable)
{
    struct blk_store *s = t->s;
    uint64_t commit = t->base + 1;
    /* The freed lists: allocating their blocks can free more (copied bitmap blocks). */
    uint64_t *fl = NULL, *vl = NULL;
    size_t nfl = 0, capfl = 0, nvl = 0, capvl = 0;
    while (!t->err && (nfl * BLK_EXT_PER_FL < t->nfreed || nvl * BLK_EXT_PER_FL < t->nvfreed)) {
        list_blocks(t, &fl, &nfl, &capfl, t->nfreed);
        list_blocks(t, &vl, &nvl, &capvl, t->nvfreed);
    }
    uint8_t *buf = tx_newbuf(t), *keepf = NULL, *keepv = NULL;
    uint64_t nheld = 0, nvol = 0;
    for (size_t i = 0; i < t->nfreed; i++) nheld += t->freed[i].len;
    for (size_t i = 0; i < t->nvfreed; i++) nvol += t->vfreed[i].len;
    /* Every new block goes into wv, then to the device in address order (blk_write_blocks). */
    size_t nw = 0;
    struct blk_wr *wv = malloc((nfl + nvl + HASH_COUNT(t->nodes) + HASH_COUNT(t->bms) + HASH_COUNT(t->dirs) + 1) *
                               sizeof *wv);
    if (!wv) tx_fail(t, -ENOMEM);
    if (buf && wv) {
        keepf = keep_alloc(t, nfl); /* (none: not kept, read at the next commit) */
        keepv = keep_alloc(t, nvl);
        write_list(t, buf, fl, nfl, t->freed, t->nfreed, t->base_pend, commit, keepf, wv, &nw);
        write_list(t, buf, vl, nvl, t->vfreed, t->nvfreed, 0, commit, keepv, wv, &nw);
    }
    t->r.pend_cur = nfl ? fl[0] : t->base_pend;
    t->r.pend_cur_n = t->base_pend_n + nheld;
    t->r.vol = nvl ? vl[0] : 0;
    t->r.vol_n = nvol;
    /* Every other new block. */
    struct tblk *n, *ntmp;
    HASH_ITER(hh, t->nodes, n, ntmp) {
        if (!n->fresh || t->err) continue;
        blk_seal(n->buf, n->kind, commit, n->addr, s->sb.h.uuid);
        wv[nw++] = (struct blk_wr){n->addr, n->buf};
    }
    struct tblk *b, *btmp;
    HASH_ITER(hh, t->bms, b, btmp) {
        if (!b->dirty || t->err) continue;
        ((struct blk_hdr *)b->buf)->count = (uint32_t)b->idx;
        blk_seal(b->buf, BK_BITMAP, commit, b->addr, s->sb.h.uuid);
        wv[nw++] = (struct blk_wr){b->addr, b->buf};
    }
    HASH_ITER(hh, t->dirs, b, btmp) {
        if (!b->dirty || t->err) continue;
        ((struct blk_hdr *)b->buf)->count = (uint32_t)b->idx;
        blk_seal(b->buf, BK_DIR, commit, b->addr, s->sb.h.uuid);
        wv[nw++] = (struct blk_wr){b->addr, b->buf};
    }
    if (!t->err) {
        int e = blk_write_blocks(s, wv, nw);
        if (e) tx_fail(t, e);
    }
    free(wv);
    /* Published only (group commit): no flush; the root goes to /dev/shm, and a later
     * blk_make_durable flushes everything and writes it into a device slot. A process that
     * cannot publish there commits durably. */
    int vis = how == TX_VISIBLE && s->vr_rw && !held_too_much(t);
    if (!t->err && !vis) {
        int e = blk_sync(s);
        if (e) tx_fail(t, e);
    }
    if (!t->err && buf) { /* the root: the commit point */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t->r.time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        memset(buf, 0, BLK_BS);
        memcpy(buf, &t->r, sizeof t->r);
        /* a device slot: the one that does not hold the newest durable root (that one
         * stays the fallback if this write is torn) */
        uint64_t slot = vis ? BLK_ROOT_SLOT0 + commit % 2 : BLK_ROOT_SLOT0 + (uint64_t)(1 - t->dslot);
        blk_seal(buf, BK_ROOT, commit, slot, s->sb.h.uuid);
        blk_vr_seq_begin(s); /* the change counter: odd while the root is written */
        int e = vis ? blk_vr_write(s, buf) : blk_write_block(s, slot, buf);
        if (!e && !vis) e = blk_sync(s);
        uint64_t seq = blk_vr_seq_end(s);
        if (e) tx_fail(t, e);
        else blk_roots_wrote(s, buf, vis, (int)(slot - BLK_ROOT_SLOT0), seq);
        if (!e && vis) blk_vr_mark(s, commit);
    }
    if (durable) *durable = !vis;
    tx_putbuf(t, buf);
    if (!t->err) { /* what this commit wrote is the new root's: kept for the walks under it */
        s->mlast = t->nmeta;
        tx_meta_hint(t, commit);
        HASH_ITER(hh, t->nodes, n, ntmp) if (n->fresh) blk_nc_put(s, n->addr, n->kind, n->buf, commit);
        HASH_ITER(hh, t->bms, b, btmp) if (b->dirty) blk_nc_put(s, b->addr, BK_BITMAP, b->buf, commit);
        HASH_ITER(hh, t->dirs, b, btmp) if (b->dirty) blk_nc_put(s, b->addr, BK_DIR, b->buf, commit);
        for (size_t k = 0; keepf && k < nfl; k++) blk_nc_put(s, fl[k], BK_FREE, keepf + k * BLK_BS, commit);
        for (size_t k = 0; keepv && k < nvl; k++) blk_nc_put(s, vl[k], BK_FREE, keepv + k * BLK_BS, commit);
    }
    keep_free(t, keepf, nfl);
    keep_free(t, keepv, nvl);
    free(fl);
    free(vl);
    int e = t->err;
    if (e) slog_error("block: %s: commit %llu failed: %s; the store stays at commit %llu", s->path,
                      (unsigned long long)commit, strerror(-e), (unsigned long long)t->base);
    atomic_fetch_add(&s->commits, 1);
    atomic_fetch_add(&s->commit_ns, stats_now_ns() - t->t0);
    txn_end(t);
    blk_unlock(s);
    return e;
}
