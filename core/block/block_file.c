/* block_file.c - one open block:// object: its block map, device requests, fstat and
 * friends, open and close. Reads are block_read.c's, writes block_write.c's (both under
 * f->lock, on the map kept here), the commit that publishes it block_commit.c's.
 *
 * Every open file has a descriptor of the device of its own (O_DIRECT), for two reasons:
 * its data moves through the engine's io_uring rings (uring.h) with aligned buffers, and
 * its OFD locks are its own: read locks pin the blocks of the version it started from
 * (an unlink or a replacement elsewhere cannot let them be reused while it is open),
 * write locks reserve the free blocks it writes into (blk_alloc.c). Closing the
 * descriptor, or the process dying, drops them all.
 *
 * The object is a map of logical blocks to device blocks. Blocks of the committed version
 * are shared: a write never touches them, it goes to a reserved block (copy-on-write).
 * Reserved blocks are owned and are written in place until the commit. The commit
 * (fsync, close) first has every write of the file complete (bf_wb_flush), then replaces
 * the object's entry in one metadata commit; if another process committed a new version
 * meanwhile, the blocks still shared with the old one are copied first, so the commit
 * never references blocks someone else freed. The commit's flush before its root write
 * makes the data durable too (one flush less per commit; `s3shim blk crashtest` proves
 * the order). */
#include "block.h"
#include "bmount.h"
#include "bfile.h"

#include "../efd.h"
#include "../log.h"
#include "../readahead.h"
#include "../sys.h"
#include "../uring.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- the block map ---------------------------------------------------------------------- */

int bf_map_find(struct bfile *f, uint64_t lblk, uint64_t *pblk, int *owned, uint64_t *run)
{
    for (int i = 0; i < f->n; i++) {
        struct bext *x = &f->map[i];
        if (lblk >= x->lblk && lblk < x->lblk + x->len) {
            *pblk = x->pblk + (lblk - x->lblk);
            *owned = x->owned;
            *run = x->len - (lblk - x->lblk);
            return 1;
        }
        if (x->lblk > lblk) {
            *run = x->lblk - lblk; /* the hole up to the next extent */
            return 0;
        }
    }
    *run = UINT64_MAX;
    return 0;
}

/* Remove logical blocks [a, b) from the map. */
static int map_cut(struct bfile *f, uint64_t a, uint64_t b)
{
    for (int i = 0; i < f->n; i++) {
        struct bext *x = &f->map[i];
        uint64_t xa = x->lblk, xb = x->lblk + x->len;
        if (xb <= a || xa >= b) continue;
        if (xa < a && xb > b) { /* split in two */
            if (f->n == f->cap) return -ENOMEM;
            memmove(&f->map[i + 1], &f->map[i], (size_t)(f->n - i) * sizeof *x);
            f->n++;
            f->map[i].len = (uint32_t)(a - xa);
            f->map[i + 1].lblk = b;
            f->map[i + 1].pblk += b - xa;
            f->map[i + 1].len = (uint32_t)(xb - b);
            return 0;
        }
        if (xa < a) {
            x->len = (uint32_t)(a - xa);
        } else if (xb > b) {
            x->pblk += b - xa;
            x->lblk = b;
            x->len = (uint32_t)(xb - b);
        } else {
            memmove(&f->map[i], &f->map[i + 1], (size_t)(f->n - i - 1) * sizeof *x);
            f->n--;
            i--;
        }
    }
    return 0;
}

static int map_grow(struct bfile *f)
{
    if (f->n + 2 <= f->cap) return 0;
    int nc = f->cap ? f->cap * 2 : 16;
    struct bext *v = realloc(f->map, (size_t)nc * sizeof *v);
    if (!v) return -ENOMEM;
    f->map = v;
    f->cap = nc;
    return 0;
}

int bf_map_from_base(struct bfile *f)
{
    struct bext *map = f->base.next ? malloc(sizeof *map * (size_t)(f->base.next + 2)) : NULL;
    if (f->base.next && !map) return -ENOMEM;
    free(f->map);
    f->map = map;
    f->cap = map ? f->base.next + 2 : 0;
    f->n = 0;
    for (int i = 0; i < f->base.next; i++)
        f->map[f->n++] = (struct bext){f->base.ext[i].lblk, f->base.ext[i].pblk, f->base.ext[i].len, 0};
    return 0;
}

/* Map [lblk, +len) to owned device blocks at pblk. */
int bf_map_set(struct bfile *f, uint64_t lblk, uint64_t pblk, uint64_t len)
{
    if (map_grow(f) < 0 || map_cut(f, lblk, lblk + len) < 0 || map_grow(f) < 0) return -ENOMEM;
    int i = 0;
    while (i < f->n && f->map[i].lblk < lblk) i++;
    if (i > 0) { /* merge with the one before */
        struct bext *p = &f->map[i - 1];
        if (p->owned && p->lblk + p->len == lblk && p->pblk + p->len == pblk && p->len + len < UINT32_MAX) {
            p->len += (uint32_t)len;
            return 0;
        }
    }
    memmove(&f->map[i + 1], &f->map[i], (size_t)(f->n - i) * sizeof *f->map);
    f->map[i] = (struct bext){lblk, pblk, (uint32_t)len, 1};
    f->n++;
    return 0;
}

/* --- device I/O ------------------------------------------------------------------------ */

/* A lock (pin or reservation) on f's descriptor: noted, so that its close drops them. */
int bf_fd_lock(struct bfile *f, uint64_t pblk, uint64_t len, int type)
{
    f->fd_locked = 1;
    return blk_range_lock(f->fd, pblk, len, type);
}

int bf_dev_io(struct bfile *f, int op, uint64_t pblk, char *buf, size_t nblk, int bidx)
{
    if (blk_recorder && op == UIO_WRITE) blk_recorder(BLK_REC_WRITE, pblk * BLK_BS, buf, nblk * BLK_BS);
    struct uio u = {.op = op, .fd = f->fd, .buf = buf, .len = nblk * BLK_BS, .off = (off_t)(pblk * BLK_BS),
                    .buf_index = bidx, .align = BLK_BS, .stats = &f->m->dev_stats};
    ssize_t r = uring_run(&u);
    if (r < 0) {
        slog_error("block: %s: %s of %zu bytes at block %llu of %s: %s", f->m->uri, op == UIO_READ ? "read" : "write",
                   nblk * BLK_BS, (unsigned long long)pblk, f->key, strerror((int)-r));
        return (int)r;
    }
    return r == (ssize_t)(nblk * BLK_BS) ? 0 : -EIO;
}

/* Read logical blocks [lblk, +nblk) into buf (holes are zeros). */
int bf_read_logical(struct bfile *f, uint64_t lblk, char *buf, size_t nblk, int bidx)
{
    while (nblk) {
        uint64_t pblk, run;
        int owned;
        int have = bf_map_find(f, lblk, &pblk, &owned, &run);
        size_t n = run < nblk ? (size_t)run : nblk;
        if (!have) {
            memset(buf, 0, n * BLK_BS);
        } else if (!owned && f->base.size <= BLK_SMALL_OBJECT) {
            /* A small object's committed blocks went through the page cache at its commit
             * (block_write.c): read them there. O_DIRECT made the kernel write the dirty
             * page back and read it from the device again: two device requests waited for
             * at every append to a small file (about 250 us of a 300 us `open(p, "a")`,
             * write, close). */
            ssize_t r = sys.pread(f->m->st.fd, buf, n * BLK_BS, (off_t)(pblk * BLK_BS));
            if (r != (ssize_t)(n * BLK_BS)) {
                int e = r < 0 ? -errno : -EIO;
                slog_error("block: %s: read of %zu bytes at block %llu of %s: %s", f->m->uri, n * BLK_BS,
                           (unsigned long long)pblk, f->key, strerror(-e));
                return e;
            }
        } else {
            int e = bf_dev_io(f, UIO_READ, pblk, buf, n, bidx);
            if (e) return e;
        }
        lblk += n;
        buf += n * BLK_BS;
        nblk -= n;
        bidx = -1; /* an offset into a registered buffer: use it unregistered */
    }
    return 0;
}

int bf_fsync(void *fh, int datasync)
{
    (void)datasync;
    struct bfile *f = fh;
    uint64_t t0 = stats_now_ns();
    int me = f->writable ? bf_map_flush(fh) : 0; /* a shared mapping's changes first */
    bb_flush(f->m); /* and the closes waiting in a batch: durable with the rest */
    pthread_mutex_lock(&f->lock);
    if (me < 0 && !f->err) f->err = me;
    /* A durable commit of this file, or (nothing to commit) of everything published:
     * fsync on any descriptor of the mount leaves nothing only visible behind it. */
    int mine = f->writable && f->dirty;
    int e = mine ? bf_commit(f, TX_DURABLE) : f->writable ? f->err : 0;
    if (!e && !mine) e = bg_sync(f->m);
    pthread_mutex_unlock(&f->lock);
    stats_record(f->m->stats, STK_SYNC, t0, 0, e != 0);
    return e;
}

int bf_ftruncate(void *fh, off_t len)
{
    struct bfile *f = fh;
    if (!f->writable) return -EBADF;
    if (len < 0) return -EINVAL;
    bf_map_written(fh, NULL, 0, len);
    pthread_mutex_lock(&f->lock);
    int held, e = bf_write_begin(f, &held);
    if (!e) e = bf_wb_flush(f);
    uint64_t nl = (uint64_t)len;
    if (!e && nl < f->size) {
        uint64_t keep = (nl + BLK_BS - 1) / BLK_BS;
        e = map_cut(f, keep, UINT64_MAX / 2);
        f->size = nl;
        if (!e && nl % BLK_BS) { /* the kept block's tail must read as zeros if it grows back */
            e = bf_wb_start(f, nl);
            if (!e) f->wb_len = nl % BLK_BS; /* wb_flush zeros past the size */
        }
    } else if (!e) {
        f->size = nl;
    }
    bf_ra_drop(f);
    f->dirty = 1;
    e = bf_changed(f, e);
    f->mtime_set = 0; /* a truncate sets the time, as on a disk */
    if (e && !f->err) f->err = e;
    pthread_mutex_unlock(&f->lock);
    bf_write_end(f, held);
    return e;
}

/* fallocate: the size grows to off + len (the new range reads as zeros) if the store has
 * the free blocks for it now; they are not set aside (no extent is written before the
 * data), so a later write can still meet ENOSPC. FALLOC_FL_KEEP_SIZE alone asks for
 * nothing visible: done. Punching, zeroing and collapsing ranges: EOPNOTSUPP. glibc's
 * posix_fallocate cannot fall back to writing zeros on our descriptors, so mode 0 must
 * work here (it failed, and `fallocate -l` with it). */
int bf_fallocate(void *fh, int mode, off_t off, off_t len)
{
    struct bfile *f = fh;
    if (mode & ~FALLOC_FL_KEEP_SIZE) return -EOPNOTSUPP;
    if (!f->writable) return -EBADF;
    if (off > INT64_MAX - len) return -EFBIG;
    uint64_t end = (uint64_t)off + (uint64_t)len;
    if (mode & FALLOC_FL_KEEP_SIZE) return 0;
    /* One look at the size under the lock: a write past end meanwhile is never cut back. */
    pthread_mutex_lock(&f->lock);
    int held, e = bf_write_begin(f, &held), grown = 0;
    if (!e && end > f->size) {
        struct blk_root r;
        uint64_t fr;
        uint64_t need = (end - f->size + BLK_BS - 1) / BLK_BS;
        e = blk_free_blocks(&f->m->st, &fr, &r);
        /* Space held for a durable root to come is a writer's for the asking (blk_reserve
         * reclaims it so): ask for it before saying ENOSPC. */
        if (!e && need > fr && blk_reclaim(&f->m->st) > 0) e = blk_free_blocks(&f->m->st, &fr, &r);
        if (!e && need > fr) e = -ENOSPC;
        if (!e) e = bf_wb_flush(f);
        if (!e) {
            f->size = end;
            bf_ra_drop(f);
            f->dirty = grown = 1;
            e = bf_changed(f, 0);
        }
    }
    pthread_mutex_unlock(&f->lock);
    bf_write_end(f, held);
    if (grown) bf_map_written(fh, NULL, 0, (off_t)end); /* a shared mapping's copy grows too */
    return e;
}

int bf_fstat(void *fh, struct stat *st)
{
    struct bfile *f = fh;
    pthread_mutex_lock(&f->lock);
    struct blk_obj *o = malloc(sizeof *o);
    int e = o ? bf_follow_shared(f) : -ENOMEM;
    if (!e) e = bf_follow_eof(f); /* tail -f polls the size */
    if (e) {
        free(o);
        pthread_mutex_unlock(&f->lock);
        return e;
    }
    *o = f->base;
    if (!o->gen) { /* not committed yet: the number its commit keeps (sqlite compares them) */
        o->ino = f->new_ino;
        f->ino_shown = 1;
    }
    if (f->mode_set || !o->gen) o->mode = S_IFREG | (f->mode & 07777);
    o->size = f->size;
    o->next = 0;
    uint64_t blocks = 0;
    for (int i = 0; i < f->n; i++) blocks += f->map[i].len;
    if (f->mtime_set) o->mtime_ns = f->mtime;
    else if (f->dirty || !o->gen) o->mtime_ns = bm_now_ns();
    int detached = f->detached;
    pthread_mutex_unlock(&f->lock);
    bm_fill_stat(f->m, o, 0, st);
    if (detached) st->st_nlink = 0; /* unlinked, still open */
    st->st_blocks = (blkcnt_t)(blocks * (BLK_BS / 512));
    free(o);
    return 0;
}

int bf_futimens(void *fh, const struct timespec ts[2])
{
    struct bfile *f = fh;
    if (!f->writable) return bk_block_ops.utimens(f->m, f->key, ts, 0); /* a reader: the committed object */
    pthread_mutex_lock(&f->lock);
    const struct timespec *m = ts ? &ts[1] : NULL;
    if (!m || m->tv_nsec == UTIME_NOW) f->mtime = bm_now_ns(), f->mtime_set = 1;
    else if (m->tv_nsec != UTIME_OMIT) f->mtime = (int64_t)m->tv_sec * 1000000000 + m->tv_nsec, f->mtime_set = 1;
    f->dirty = 1;
    bf_mark(f);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

int bf_writable(void *fh) { return ((struct bfile *)fh)->writable; }

int bf_fchmod(void *fh, mode_t mode)
{
    struct bfile *f = fh;
    if (!f->writable) return bm_chmod(f->m, f->key, mode); /* a reader: the committed object */
    pthread_mutex_lock(&f->lock);
    f->mode = mode & 07777;
    f->mode_set = 1;
    f->dirty = 1;
    bf_mark(f);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

void bf_free(struct bfile *f)
{
    bf_list_remove(f);
    if (f->wb.p) ubuf_put(&f->wb);
    bf_ra_drop(f); /* nothing in flight from or into its buffers once the descriptor goes */
    bf_ws_drain(f);
    bf_pool_release(f); /* carved, never committed (a commit that failed): free again */
    if (f->fd >= 0) bp_fd_put(f->m, f->fd, f->writable, f->forks, f->fd_locked); /* drops every reservation and pin */
    if (f->lockfd >= 0) efd_close(f->lockfd); /* and this process's locks, as a close does */
    bf_unmark(f); /* (a commit that failed at close) */
    if (f->markfd >= 0) {
        efd_close(f->markfd);
        bf_present_gone(f->m, f->key); /* (f is off the list already) */
    }
    pthread_mutex_destroy(&f->lock);
    pthread_mutex_destroy(&f->wlock);
    free(f->map);
    free(f->rs);
    free(f->ws);
    free(f);
}

static int still_there(struct bfile *f);

int bf_close(void *fh)
{
    struct bfile *f = fh;
    uint64_t t0 = stats_now_ns();
    int e = 0;
    if (f->writable) {
        int me = bf_map_flush(fh); /* a shared mapping's changes are part of this version */
        pthread_mutex_lock(&f->lock);
        if (me < 0 && !f->err) f->err = me;
        f->closing = 1;
        int later = f->dirty && bf_batchable(f);
        if (later && !f->mtime_set) { /* its time is the close's, not the batch's commit's */
            f->mtime = bm_now_ns();
            f->mtime_set = 1;
        }
        e = later ? 0 : f->dirty ? bf_commit(f, bg_how(f->m)) : f->err;
        pthread_mutex_unlock(&f->lock);
        if (later) {
            struct block_mount *m = f->m;
            bf_map_forget(f);
            if (bb_defer(f)) { /* (f is the batch's now: it may be gone already) */
                stats_record(m->stats, STK_CLOSE, t0, 0, 0);
                return 0;
            }
            pthread_mutex_lock(&f->lock); /* another process is there: committed now */
            e = bf_commit(f, bg_how(f->m));
            pthread_mutex_unlock(&f->lock);
        }
        if (e) slog_error("block: %s: closing %s: %s; the object keeps its previous version", f->m->uri, f->key,
                          strerror(-e));
    }
    struct block_mount *m = f->m;
    /* Its pins held blocks that were freed meanwhile (unlinked or replaced while open):
     * with S3SHIM_BLOCK_DISCARD they are discarded once the pins are gone. */
    struct blk_fext gone[BLK_MAX_EXT];
    size_t ngone = 0;
    if (m->st.discard && f->base.next > 0 && !still_there(f))
        for (int i = 0; i < f->base.next; i++) gone[ngone++] = (struct blk_fext){f->base.ext[i].pblk, f->base.ext[i].len};
    bf_map_forget(f);
    bf_free(f);
    blk_discard_if_free(&m->st, gone, ngone);
    stats_record(m->stats, STK_CLOSE, t0, 0, e != 0);
    return e;
}

/* --- opening ----------------------------------------------------------------------------- */

/* After its blocks were pinned: is the version f->base still the key's newest? Then
 * nothing freed them, and the pins hold whatever others committed meanwhile (a busy
 * writer of the key, sqlite's, commits faster than a slow reader looks up). */
static int still_there(struct bfile *f)
{
    struct blk_obj *o = malloc(sizeof *o);
    int r = o ? bt_get(&f->m->st, f->key, f->klen, o, NULL) : -ENOMEM;
    int same = r == 1 && o->gen == f->base.gen && o->ino == f->base.ino;
    free(o);
    return same;
}

/* Look key up and pin its blocks with read locks on fd; 1 found, 0 not, -errno. */
int bf_lookup_pinned(struct bfile *f) { return bf_lookup_pinned_from(f, NULL, NULL, 0); }

int bf_lookup_pinned_from(struct bfile *f, int *dir, const struct blk_ext *held, int nheld)
{
    for (int tries = 0; tries < 100; tries++) {
        uint64_t gen, tree, now;
        uint32_t height;
        int r = bt_lookup(&f->m->st, f->key, f->klen, &f->base, &gen, dir);
        if (r <= 0) return r;
        int e = bf_pin_diff(f, f->base.ext, f->base.next, held, nheld, F_RDLCK);
        if (!e && blk_newest_tree(&f->m->st, &tree, &height, &now) == 0 && now <= gen + 2) return 1;
        if (!e && still_there(f)) return 1; /* however many commits went by: its blocks were never freed */
        bf_pin_diff(f, f->base.ext, f->base.next, held, nheld, F_UNLCK);
        if (e && e != -EAGAIN) return e;
        if (tries >= 10) { /* a writer committing the key faster than we look it up: let it */
            struct timespec ts = {0, (tries - 9) * 100000L > 2000000L ? 2000000L : (tries - 9) * 100000L};
            nanosleep(&ts, NULL);
        }
    }
    return -EAGAIN;
}

/* What a new object's st_ino before its commit is drawn from: the time, the pid (taken
 * once per process; bf_ino_forked clears it in a forked child) and a counter, so that two
 * new objects of any processes never start from the same input. */
static _Atomic uint64_t ino_pid_seen, ino_seq;

static uint64_t ino_pid(void)
{
    uint64_t p = atomic_load_explicit(&ino_pid_seen, memory_order_relaxed);
    if (!p) atomic_store_explicit(&ino_pid_seen, p = (uint64_t)getpid(), memory_order_relaxed);
    return p;
}

void bf_ino_forked(void) { atomic_store(&ino_pid_seen, 0); }

int bf_open(void *ms, const char *key, int flags, mode_t mode, void **fhp)
{
    struct block_mount *m = ms;
    size_t kl = strlen(key);
    int be = bb_enter(m, key, BB_KEY); /* (another process's closed files first) */
    if (be) return be;
    if (kl == 0) return -EISDIR;
    if (flags & O_DIRECTORY) return -ENOTDIR;
    int ke = bm_key_check(key);
    if (ke) return ke;
    int acc = flags & O_ACCMODE, wr = acc != O_RDONLY;
    if (wr && !m->st.rw) return -EROFS;
    uint64_t t0 = stats_now_ns();
    struct bfile *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    f->m = m;
    memcpy(f->key, key, kl + 1);
    f->klen = kl;
    f->writable = wr;
    f->acc = acc;
    f->wshare = acc == O_WRONLY && !(flags & (O_TRUNC | O_EXCL));
    f->lockfd = -1;
    f->markfd = -1;
    f->marks_seen = f->opens_seen = UINT64_MAX; /* (asked at the first look) */
    uint64_t x = (uint64_t)bm_now_ns() ^ ino_pid() << 40 ^ atomic_fetch_add(&ino_seq, 1) << 20 ^ (uint64_t)(uintptr_t)f;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull; /* splitmix64's finalizer */
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    f->new_ino = BLK_INO_CHOSEN | ((x ^ (x >> 31)) & (BLK_INO_CHOSEN - 1));
    /* Mode 0 comes from the shim re-opening a writer inherited across exec (it does not
     * know the creator's mode): the usual 0666 then, less the umask, as the shell gives.
     * The umask is the one of the open, as the kernel applies it. */
    f->mode = (mode ? mode : 0666) & ~sys_umask();
    f->wb.index = -1;
    pthread_mutex_init(&f->lock, NULL);
    pthread_mutex_init(&f->wlock, NULL);
    int e = uring_start();
    f->fd = -1;
    if (!e) {
        f->fd = bp_fd_get(m, wr, &f->forks);
        if (f->fd < 0) {
            e = f->fd;
            f->fd = -1;
        }
    }
    int dir = -1; /* a directory of that name: what the lookup saw */
    int have = e ? e : bf_lookup_pinned_from(f, &dir, NULL, 0);
    if (have == 0 && bf_publish_new(m, key)) have = bf_lookup_pinned_from(f, &dir, NULL, 0);
    if (have < 0) e = have;
    if (!e && have == 0) { /* a directory of that name? */
        int d = dir >= 0 ? dir : bm_is_dir(m, key, kl);
        if (d < 0)
            e = d;
        else if (d)
            e = (flags & O_CREAT) && (flags & O_EXCL) ? -EEXIST : -EISDIR;
        else if (!(flags & O_CREAT)) e = bm_missing(m, key);
        else e = bm_parent_ok(m, key);
    }
    if (!e && have == 1 && (flags & O_CREAT) && (flags & O_EXCL)) e = -EEXIST;
    if (!e && have == 0 && wr && (flags & O_CREAT) && (flags & O_EXCL)) e = bf_claim_name(f);
    if (!e && have == 0 && bf_coherent(f) && (flags & O_CREAT) && !(flags & O_EXCL)) {
        int c = bf_claim_shared(f);
        if (c == 0) have = bf_lookup_pinned_from(f, &dir, NULL, 0);
        if (c < 0) e = c;
        else if (have < 0) e = have;
    }
    if (!e) {
        if (have == 1 && !(wr && (flags & O_TRUNC))) {
            f->size = f->base.size;
            e = bf_map_from_base(f);
        }
        if (have == 0) f->base.gen = 0;
        f->dirty = wr && (have == 0 || (flags & O_TRUNC));
        if (f->dirty) bf_mark(f);
        if (bf_coherent(f)) e = bf_present(f);
    }
    ra_init(&f->ra, m->chunk, m->chunk * (size_t)(m->depth < 1 ? 1 : m->depth > BF_SLOTS ? BF_SLOTS : m->depth));
    stats_record(m->stats, STK_OPEN, t0, 0, e != 0);
    if (e) {
        bf_free(f);
        return e;
    }
    bf_list_add(f);
    *fhp = f;
    return 0;
}
