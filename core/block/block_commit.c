/* block_commit.c - a block:// file's commit: its new version put in a transaction (its
 * own, or a batch's: block_batch.c), after every write of it completed (bf_wb_flush).
 * If another process committed a new version meanwhile, the blocks still shared with
 * the old one are copied first (materialize), so the commit never references blocks
 * someone else freed; a file with more extents than an entry holds has neighbours merged
 * first (compact); a writer whose object was renamed by another process follows it by
 * its inode (follow_ino). The commit's flush before its root write makes the data
 * durable too (one flush less per commit; `s3shim blk crashtest` proves the order). */
#include "block.h"
#include "bmount.h"
#include "bfile.h"

#include "../log.h"
#include "../stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Copy every shared block into owned ones (the version we built on is gone). */
static int materialize(struct bfile *f)
{
    struct ubuf t;
    if (ubuf_get(&t, f->m->chunk, 1) < 0) return -ENOMEM;
    int e = 0;
    for (int i = 0; i < f->n && !e; i++) {
        if (f->map[i].owned) continue;
        uint64_t lblk = f->map[i].lblk, left = f->map[i].len, src = f->map[i].pblk;
        while (left && !e) {
            uint64_t n = left < f->m->chunk / BLK_BS ? left : f->m->chunk / BLK_BS, start, got;
            if ((e = bf_take_run(f, n, &start, &got)) < 0) break;
            if (!(e = bf_dev_io(f, UIO_READ, src, t.p, got, t.index))) e = bf_dev_io(f, UIO_WRITE, start, t.p, got, t.index);
            if (!e) e = bf_map_set(f, lblk, start, got); /* moves i's entry: restart the scan */
            lblk += got, src += got, left -= got;
        }
        i = -1;
    }
    ubuf_put(&t);
    return e;
}

/* More extents than a leaf item holds (random overwrites: each one splits an extent):
 * merge neighbouring extents into new runs, copying them (holes between them become
 * zeros), down to 3/4 of the limit so that the copying is paid once every few dozen
 * commits, not at each. Greedy: the adjacent pair of groups with the smallest span merges
 * first, so a database rewritten at random pages copies a block or two beside each
 * rewritten one, and a sparse object fills its smallest holes first. 0, or -errno. */
/* One past the last logical block of group x (groups start at first[0..g-1]). */
static uint64_t group_end(const struct bfile *f, const int *first, int g, int x)
{
    const struct bext *l = &f->map[x + 1 < g ? first[x + 1] - 1 : f->n - 1];
    return l->lblk + l->len;
}

static int compact(struct bfile *f, int limit)
{
    int n = f->n, target = limit * 3 / 4;
    int *first = malloc((size_t)n * sizeof *first); /* groups: first entry of each */
    if (!first) return -ENOMEM;
    for (int i = 0; i < n; i++) first[i] = i;
    int g = n;
    while (g > target) {
        int best = 0;
        uint64_t span = UINT64_MAX;
        for (int x = 0; x + 1 < g; x++) { /* groups x and x + 1 merged */
            uint64_t s0 = f->map[first[x]].lblk, e1 = group_end(f, first, g, x + 1);
            if (e1 - s0 < span) span = e1 - s0, best = x;
        }
        memmove(&first[best + 1], &first[best + 2], (size_t)(g - best - 2) * sizeof *first);
        g--;
    }
    /* The spans to copy, taken before the map changes under us. */
    struct { uint64_t lblk, len; } *cp = malloc((size_t)g * sizeof *cp);
    int ncp = 0;
    for (int x = 0; cp && x < g; x++) {
        int last = x + 1 < g ? first[x + 1] - 1 : n - 1;
        if (last == first[x]) continue; /* alone: stays as it is */
        cp[ncp].lblk = f->map[first[x]].lblk;
        cp[ncp++].len = group_end(f, first, g, x) - f->map[first[x]].lblk;
    }
    free(first);
    if (!cp) return -ENOMEM;
    struct ubuf t = {0};
    int e = ubuf_get(&t, f->m->chunk, 1) < 0 ? -ENOMEM : 0;
    uint64_t copied = 0;
    struct bext *mine = malloc((size_t)n * sizeof *mine); /* owned blocks the copy replaces */
    if (!mine) e = -ENOMEM;
    for (int c = 0; c < ncp && !e; c++) {
        uint64_t lblk = cp[c].lblk, left = cp[c].len, start = 0, got = 0, used = 0;
        int nmine = 0;
        for (int i = 0; i < f->n; i++)
            if (f->map[i].owned && f->map[i].lblk >= lblk && f->map[i].lblk + f->map[i].len <= lblk + left)
                mine[nmine++] = f->map[i];
        while (left && !e) {
            if (used == got) { /* the next run: as long as the space allows */
                if ((e = bf_take_run(f, left, &start, &got)) < 0) break;
                used = 0;
            }
            uint64_t k = got - used, cap = f->m->chunk / BLK_BS;
            if (k > cap) k = cap;
            if (!(e = bf_read_logical(f, lblk, t.p, k, t.index)) &&
                !(e = bf_dev_io(f, UIO_WRITE, start + used, t.p, k, t.index)))
                e = bf_map_set(f, lblk, start + used, k); /* joins the piece before it in the run */
            lblk += k, used += k, left -= k, copied += k;
        }
        /* Written since the last commit and in no root: free again for everyone. */
        for (int i = 0; i < nmine && !e; i++) blk_range_lock(f->fd, mine[i].pblk, mine[i].len, F_UNLCK);
    }
    free(mine);
    if (t.p) ubuf_put(&t);
    free(cp);
    bf_ra_drop(f); /* same bytes, other blocks: let go of what was read ahead */
    if (e == -ENOSPC)
        slog_error("block: %s: %s has %d extents (at most %d in this format version) and no room to merge "
                   "them into fewer; not committed", f->m->uri, f->key, n, limit);
    else if (!e)
        slog_debug("block: %s: %s: %d extents merged into %d (%llu blocks copied)", f->m->uri, f->key, n, f->n,
                   (unsigned long long)copied);
    return e;
}

/* Extents of cur not still shared by f: the commit frees them. */
static int free_replaced(struct blk_txn *t, struct bfile *f, const struct blk_obj *cur)
{
    for (int i = 0; i < cur->next; i++) {
        uint64_t a = cur->ext[i].pblk, b = a + cur->ext[i].len;
        while (a < b) { /* free up to the next piece f still shares, then skip it */
            uint64_t ns = b, ne = b;
            for (int j = 0; j < f->n; j++) {
                if (f->map[j].owned) continue;
                uint64_t sa = f->map[j].pblk, sb = sa + f->map[j].len;
                if (sb <= a || sa >= b) continue;
                if (sa <= a) {
                    ns = a;
                    ne = sb < b ? sb : b;
                    break;
                }
                if (sa < ns) ns = sa, ne = sb < b ? sb : b;
            }
            if (ns > a) {
                int e = tx_free_data(t, a, ns - a);
                if (e) return e;
            }
            a = ne;
        }
    }
    return 0;
}

/* The object this file builds on is no longer at f->key: another process renamed it (or
 * removed it, or put another object there). Find it by its inode number, as a file's
 * writes follow its inode on a disk: 1 with f->key retargeted, 0 gone (removed: the
 * writes go nowhere, as an unlinked file's), -errno. A scan of the whole store, outside
 * the commit lock; rare. (In this process bf_renamed and bf_detach keep f->key right.) */
static int follow_ino(struct bfile *f)
{
    struct blk_obj *o = malloc(sizeof *o);
    if (!o) return -ENOMEM;
    struct blk_root r = {0};
    char after[BLK_MAX_KEY + 1] = "";
    size_t al = 0;
    int found = 0, e;
    while ((e = bt_next_at(&f->m->st, &r, after, al, 0, o)) == 1) {
        if (o->ino == f->base.ino && S_ISREG(o->mode)) {
            found = 1;
            break;
        }
        memcpy(after, o->key, o->klen);
        al = o->klen;
    }
    if (found) {
        /* f->key is read under nw_lock by this process's namespace calls; nw_lock comes
         * before f->lock, which is held here: try, never wait. */
        int n = 0;
        while (pthread_mutex_trylock(&f->m->nw_lock) != 0 && ++n < 1000) usleep(100);
        if (n < 1000) {
            slog_info("block: %s: %s was renamed to %.*s by another process: this file's writes follow it",
                      f->m->uri, f->key, (int)o->klen, o->key);
            memcpy(f->key, o->key, o->klen);
            f->key[o->klen] = '\0';
            f->klen = o->klen;
            pthread_mutex_unlock(&f->m->nw_lock);
        } else {
            e = -EAGAIN;
        }
    }
    free(o);
    return e < 0 ? e : found;
}

/* Is device block b in a run f carved from the mount's kept reservation? */
static int in_pool(const struct bfile *f, uint64_t b)
{
    for (int i = 0; i < f->npool; i++)
        if (b >= f->pool[i].start && b < f->pool[i].start + f->pool[i].len) return 1;
    return 0;
}

void bf_pool_release(struct bfile *f)
{
    for (int i = 0; i < f->npool; i++) bp_release(f->m, f->pool[i].start, f->pool[i].len);
    f->npool = 0;
}

int bf_commit_put(struct blk_txn *t, struct bfile *f, struct blk_obj *o, const struct blk_obj *cur, int have, int touch)
{
    struct blk_root *r = tx_root(t);
    memset(o, 0, sizeof *o);
    o->klen = (uint16_t)f->klen;
    memcpy(o->key, f->key, f->klen);
    o->mode = f->mode_set || have != 1 ? S_IFREG | (f->mode & 07777) : cur->mode;
    o->ino = have == 1 ? cur->ino : f->ino_shown ? f->new_ino : r->next_ino++;
    o->size = f->size;
    o->mtime_ns = f->mtime_set ? f->mtime : bm_now_ns();
    o->gen = r->h.commit + 1;
    int e = 0;
    for (int i = 0; i < f->n && !e; i++) {
        o->ext[o->next++] = (struct blk_ext){f->map[i].lblk, f->map[i].pblk, f->map[i].len, 0};
        if (f->map[i].owned) e = tx_use_data(t, f->map[i].pblk, f->map[i].len);
    }
    if (!e && have == 1) e = free_replaced(t, f, cur);
    if (!e) e = bm_file_parents(f->m, t, f->key, f->klen, touch && have != 1);
    if (!e) e = tx_put(t, o);
    return e;
}

void bf_committed(struct bfile *f, const struct blk_obj *o)
{
    f->base = *o;
    /* Committed: shared from now on, and its reservation becomes a pin (a read lock,
     * as every reader of the object takes: other processes may open it now). */
    for (int i = 0; i < f->n; i++) {
        if (f->map[i].owned && !in_pool(f, f->map[i].pblk)) bf_fd_lock(f, f->map[i].pblk, f->map[i].len, F_RDLCK);
        f->map[i].owned = 0;
    }
    /* Blocks carved from the mount's kept run (a closing file: no pin needed) are
     * the bitmap's now: no longer reserved. */
    bf_pool_release(f);
    f->dirty = 0;
    bf_unmark(f);
    if (f->claimed) { /* the name is an object now: the claim has done its work */
        bf_claim_drop(f);
        f->claimed = 0;
    }
    f->mtime_set = 0;
    f->mode_set = 0;
}

int bf_commit(struct bfile *f, int how)
{
    f->at_commit = 1;
    int e = bf_wb_flush(f); /* nothing of it left in flight, whatever follows */
    f->at_commit = 0;
    if (f->detached) { /* unlinked while open: what it writes is never seen */
        f->dirty = 0;
        bf_unmark(f);
        return e ? e : f->err;
    }
    if (!e) e = f->err;
    /* No flush of the data here: the commit's flush before the root write covers every
     * write to the device (data included), so data is durable before it is referenced. */
    struct blk_obj *o = e ? NULL : malloc(2 * sizeof *o);
    if (!e && !o) e = -ENOMEM;
    for (int tries = 0; !e; tries++) {
        struct blk_obj *cur = o + 1;
        struct blk_txn *t;
        if ((e = tx_begin(&f->m->st, &t)) < 0) break;
        int have = tx_get(t, f->key, f->klen, cur);
        if (have < 0) {
            e = have;
            tx_abort(t);
            break;
        }
        if (f->base.gen && (have != 1 || cur->ino != f->base.ino)) { /* moved or removed by another process */
            tx_abort(t);
            int r = tries > 3 ? -EAGAIN : follow_ino(f);
            if (r < 0) {
                e = r;
                break;
            }
            if (r == 1) continue;
            slog_info("block: %s: %s was removed or replaced by another process while open here: this file's "
                      "writes are dropped, as an unlinked file's", f->m->uri, f->key);
            f->detached = 1;
            f->dirty = 0;
            bf_unmark(f);
            break;
        }
        int shares = 0;
        for (int i = 0; i < f->n; i++) shares |= !f->map[i].owned;
        if (shares && (have != 1 || cur->gen != f->base.gen || cur->ino != f->base.ino)) {
            tx_abort(t); /* changed under us: stop sharing its blocks */
            if (tries > 3 || (e = materialize(f)) < 0) break;
            continue;
        }
        if (f->n > BLK_MAX_EXT) { /* merge neighbours first, without the commit lock */
            tx_abort(t);
            if (tries > 3) {
                slog_error("block: %s: %s still has %d extents after merging (at most %d in this format "
                           "version); not committed", f->m->uri, f->key, f->n, BLK_MAX_EXT);
                e = -ENOSPC;
                break;
            }
            if ((e = compact(f, BLK_MAX_EXT)) < 0) break;
            continue;
        }
        uint64_t base = tx_root(t)->h.commit;
        if ((e = bf_commit_put(t, f, o, cur, have, 1)) != 0) {
            tx_abort(t);
            break;
        }
        uint64_t c0 = stats_now_ns();
        int durable = 0;
        e = tx_commit(t, how, &durable);
        stats_record(&f->m->dev_stats, STK_SYNC, c0, 0, e != 0); /* the block child's "sync": commits */
        if (e < 0) break;
        bm_parent_seen(f->m, base);
        bg_committed(f->m, durable);
        bf_committed(f, o);
        break;
    }
    free(o);
    if (e && !f->err) f->err = e;
    return e;
}

/* Can f's commit wait for the batch (block_batch.c)? A new object, not shared, not
 * mapped, every block of it carved from the mount's kept run. Its data is written now,
 * as its commit would. f->lock held. */
int bf_batchable(struct bfile *f)
{
    if (!f->m->batch_ms || !f->dirty || f->err || f->detached || f->base.gen || f->shared || f->locked ||
        f->marked || bf_coherent(f) || f->n > BLK_MAX_EXT || bf_map_any(f))
        return 0;
    f->at_commit = 1;
    int e = bf_wb_flush(f);
    f->at_commit = 0;
    if (e || f->err) return 0;
    for (int i = 0; i < f->n; i++)
        if (!f->map[i].owned || !in_pool(f, f->map[i].pblk)) return 0;
    return 1;
}
