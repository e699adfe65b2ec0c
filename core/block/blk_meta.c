/* blk_meta.c - the bottom of the block wing: the device, metadata blocks and their
 * checksums, the superblock, the two roots and the commit lock.
 *
 * Metadata goes through a buffered descriptor, so every process reading the store shares
 * one copy of it in the page cache (nothing of the index is copied into a process but
 * the blocks a lookup passes). Every block read is verified: CRC32C (ISA-L's
 * crc32_iscsi, which uses the CPU's crc32 instruction), kind, own address, store UUID and
 * commit number; see docs/block-format.md. */
#include "blk.h"

#include "../log.h"
#include "../sys.h"

#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

uint32_t blk_crc(const void *p, size_t len)
{
    return ~crc32_iscsi((unsigned char *)(uintptr_t)p, (int)len, 0xffffffffu);
}

/* The block's CRC as if its crc field were zero (chained over the three pieces). */
static uint32_t block_crc(const void *blk)
{
    static const unsigned char zero[4];
    unsigned char *p = (unsigned char *)(uintptr_t)blk;
    uint32_t c = crc32_iscsi(p, 4, 0xffffffffu);
    c = crc32_iscsi((unsigned char *)(uintptr_t)zero, 4, c);
    return ~crc32_iscsi(p + 8, BLK_BS - 8, c);
}

void blk_seal(void *blk, int kind, uint64_t commit, uint64_t addr, const uint8_t uuid[16])
{
    struct blk_hdr *h = blk;
    h->magic = blk_magic_of(kind);
    h->kind = (uint16_t)kind;
    h->commit = commit;
    h->addr = addr;
    memcpy(h->uuid, uuid, 16);
    memset(h->reserved, 0, sizeof h->reserved);
    h->crc = 0;
    h->crc = blk_crc(blk, BLK_BS);
}

int blk_verify(const void *blk, int kind, uint64_t addr, const uint8_t uuid[16], uint64_t max_commit, char *why,
               size_t whylen)
{
    const struct blk_hdr *h = blk;
    const char *w = NULL;
    if (h->magic != blk_magic_of(kind) || h->kind != kind) w = "wrong magic (not this kind of block)";
    else if (h->crc != block_crc(blk)) w = "checksum mismatch (torn or damaged)";
    else if (h->addr != addr) w = "written for another address (misdirected write)";
    else if (uuid && memcmp(h->uuid, uuid, 16) != 0) w = "belongs to another store (stale block)";
    else if (h->commit > max_commit) w = "written by a later commit than its root";
    if (!w) return 0;
    if (why) snprintf(why, whylen, "%s", w);
    return -1;
}

int blk_read_block(struct blk_store *s, uint64_t addr, void *buf)
{
    atomic_fetch_add_explicit(&s->meta_reads, 1, memory_order_relaxed);
    ssize_t n = sys.pread(s->fd, buf, BLK_BS, (off_t)(addr * BLK_BS));
    if (n == BLK_BS) return 0;
    return n < 0 ? -errno : -EIO;
}

void (*blk_recorder)(int op, uint64_t off, const void *buf, size_t len);

int blk_write_block(struct blk_store *s, uint64_t addr, const void *buf)
{
    if (blk_recorder) blk_recorder(BLK_REC_WRITE, addr * BLK_BS, buf, BLK_BS);
    ssize_t n = sys.pwrite(s->fd, buf, BLK_BS, (off_t)(addr * BLK_BS));
    if (n == BLK_BS) return 0;
    return n < 0 ? -errno : -EIO;
}

static int wr_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct blk_wr *)a)->addr, y = ((const struct blk_wr *)b)->addr;
    return x < y ? -1 : x > y;
}

int blk_write_blocks(struct blk_store *s, struct blk_wr *v, size_t n)
{
    struct iovec io[64];
    qsort(v, n, sizeof *v, wr_cmp);
    for (size_t i = 0, k; i < n; i = k) {
        for (k = i; k < n && k - i < 64 && v[k].addr == v[i].addr + (k - i); k++) {
            io[k - i].iov_base = (void *)v[k].buf;
            io[k - i].iov_len = BLK_BS;
            if (blk_recorder) blk_recorder(BLK_REC_WRITE, v[k].addr * BLK_BS, v[k].buf, BLK_BS);
        }
        ssize_t want = (ssize_t)((k - i) * BLK_BS), got = sys.pwritev(s->fd, io, (int)(k - i), (off_t)(v[i].addr * BLK_BS));
        if (got == want) continue;
        if (got < 0) return -errno;
        for (size_t j = i + (size_t)got / BLK_BS; j < k; j++) { /* a short write: the rest one by one */
            ssize_t w = sys.pwrite(s->fd, v[j].buf, BLK_BS, (off_t)(v[j].addr * BLK_BS));
            if (w != BLK_BS) return w < 0 ? -errno : -EIO;
        }
    }
    return 0;
}

int blk_write_data(struct blk_store *s, uint64_t pblk, const void *buf, size_t nblk)
{
    if (blk_recorder) blk_recorder(BLK_REC_WRITE, pblk * BLK_BS, buf, nblk * BLK_BS);
    ssize_t n = sys.pwrite(s->fd, buf, nblk * BLK_BS, (off_t)(pblk * BLK_BS));
    if (n == (ssize_t)(nblk * BLK_BS)) return 0;
    return n < 0 ? -errno : -EIO;
}

int blk_sync(struct blk_store *s)
{
    atomic_fetch_add_explicit(&s->flushes, 1, memory_order_relaxed);
    if (blk_recorder) blk_recorder(BLK_REC_FLUSH, 0, NULL, 0);
    return sys.fdatasync(s->fd) < 0 ? -errno : 0;
}

static int check_super(const struct blk_super *sb, uint64_t addr, uint64_t size, char *why, size_t len)
{
    if (blk_verify(sb, BK_SUPER, addr, sb->h.uuid, 0, why, len) < 0) return -1;
    if (sb->version > BLK_VERSION) {
        snprintf(why, len, "format version %u is newer than this s3shim's (%u)", sb->version, BLK_VERSION);
        return -2;
    }
    if (sb->block_size != BLK_BS || sb->dev_blocks * BLK_BS > size || sb->data_end != sb->dev_blocks - 1 ||
        sb->meta_start != 3 || sb->data_start <= sb->meta_start || sb->data_start >= sb->data_end) {
        snprintf(why, len, "superblock geometry does not fit the device");
        return -1;
    }
    return 0;
}

int blk_open(struct blk_store *s, const char *path, int rw, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->vr_fd = -1;
    snprintf(s->path, sizeof s->path, "%s", path);
    int fd = sys.open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    uint64_t size = 0;
    if (sys.fstat(fd, &st) < 0) goto bad_errno;
    s->is_blk = S_ISBLK(st.st_mode);
    s->dev_id = s->is_blk ? (uint64_t)st.st_rdev : (uint64_t)st.st_dev;
    s->dev_ino = s->is_blk ? 0 : (uint64_t)st.st_ino;
    if (s->is_blk) {
        if (sys.ioctl(fd, BLKGETSIZE64, &size) < 0) goto bad_errno;
    } else if (S_ISREG(st.st_mode)) {
        size = (uint64_t)st.st_size;
    } else {
        snprintf(err, errlen, "%s: not a block device or a regular file", path);
        sys.close(fd);
        return -EINVAL;
    }
    s->fd = fd;
    s->rw = rw;
    char why[160] = "", why2[160] = "";
    int r = blk_read_block(s, 0, &s->sb);
    int c = r < 0 ? -1 : check_super(&s->sb, 0, size, why, sizeof why);
    if (c == -2) {
        snprintf(err, errlen, "%s: %s", path, why);
        goto bad;
    }
    if (c < 0 && size >= 2 * BLK_BS) { /* the copy, in the last block */
        uint64_t last = size / BLK_BS - 1;
        r = blk_read_block(s, last, &s->sb);
        c = r < 0 ? -1 : check_super(&s->sb, last, size, why2, sizeof why2);
        if (c == -2) {
            snprintf(err, errlen, "%s: %s", path, why2);
            goto bad;
        }
    }
    if (c < 0) {
        const struct blk_hdr *h = &s->sb.h;
        if (h->magic != blk_magic_of(BK_SUPER))
            snprintf(err, errlen, "%s: not a block:// store (no superblock; make one with: s3shim blk format %s)",
                     path, path);
        else
            snprintf(err, errlen, "%s: damaged block:// store: superblock %s, and its copy", path, why);
        r = -EINVAL;
        goto bad;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->nc_lock, NULL);
    blk_vr_open(s); /* held while the store is open here (blk_vroot.c) */
    if (s->is_blk) { /* the root slots' headers, read in place (blk_roots); a file could shrink under a mapping */
        void *p = sys.mmap(NULL, 3 * BLK_BS, PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) s->dm = p;
    }
    return 0;
bad_errno:
    r = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
bad:
    sys.close(fd);
    s->fd = -1;
    return r < 0 ? r : -EINVAL;
}

void blk_close(struct blk_store *s)
{
    if (s->fd >= 0) {
        blk_vr_release(s); /* the last process using the store: its file in /dev/shm goes */
        if (s->dm) munmap((void *)(uintptr_t)s->dm, 3 * BLK_BS);
        s->dm = NULL;
        sys.close(s->fd);
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->nc_lock);
        blk_nc_free(s);
        free(s->pf);
        s->pf = NULL;
        s->npf = 0;
        tx_free_spare(s->tx_spare);
        s->tx_spare = NULL;
        s->pf_commit = 0;
    }
    blk_vr_close(s);
    s->fd = -1;
}

/* The headers of the two root slots as the device holds them now: through the mapping of
 * its first blocks (a block device), else one pread. */
static int peek_slots(struct blk_store *s, struct blk_hdr now[2])
{
    if (s->dm) {
        memcpy(&now[0], s->dm + BLK_ROOT_SLOT0 * BLK_BS, sizeof now[0]);
        memcpy(&now[1], s->dm + (BLK_ROOT_SLOT0 + 1) * BLK_BS, sizeof now[1]);
        return 0;
    }
    uint8_t b[BLK_BS + sizeof now[1]] __attribute__((aligned(64)));
    if (sys.pread(s->fd, b, sizeof b, BLK_ROOT_SLOT0 * BLK_BS) != (ssize_t)sizeof b) return -1;
    memcpy(&now[0], b, sizeof now[0]);
    memcpy(&now[1], b + BLK_BS, sizeof now[1]);
    return 0;
}

/* The roots kept from the last read, if nothing can have changed since: the change
 * counter still at that read's value, and both slots still starting with the headers
 * read then (a root written by a process that does not bump the counter, or by a tool
 * outside the shim, changes its slot's header first). 1: they are, and nc_lock is held. */
static int kept_lock(struct blk_store *s)
{
    uint64_t seq;
    struct blk_hdr now[2];
    if (blk_vr_seq(s, &seq) < 0 || peek_slots(s, now) < 0) return 0;
    pthread_mutex_lock(&s->nc_lock);
    if (s->rc_valid && s->rc_seq == seq && memcmp(now, s->rc_dh, sizeof now) == 0) return 1;
    pthread_mutex_unlock(&s->nc_lock);
    return 0;
}

uint64_t blk_kept_commit(struct blk_store *s)
{
    if (!kept_lock(s)) return 0;
    uint64_t c = s->rc_root.h.commit;
    pthread_mutex_unlock(&s->nc_lock);
    return c;
}

static int kept_roots(struct blk_store *s, struct blk_root *r, uint64_t *durable, int *dslot)
{
    if (!kept_lock(s)) return 0;
    *r = s->rc_root;
    if (durable) *durable = s->rc_durable;
    if (dslot) *dslot = s->rc_dslot;
    pthread_mutex_unlock(&s->nc_lock);
    atomic_fetch_add_explicit(&s->rc_hits, 1, memory_order_relaxed);
    return 1;
}

void blk_roots_wrote(struct blk_store *s, const void *root, int visible, int dslot, uint64_t seq)
{
    const struct blk_hdr *h = root;
    struct blk_hdr now[2];
    pthread_mutex_lock(&s->nc_lock);
    /* Kept only if what was kept was the state this commit started from (the counter
     * moved by this write alone) and the slots hold what that state and this write say. */
    int keep = seq && s->rc_valid && s->rc_seq + 2 == seq && peek_slots(s, now) == 0;
    if (keep && !visible) keep = memcmp(&now[dslot], h, sizeof *h) == 0 && memcmp(&now[!dslot], &s->rc_dh[!dslot], sizeof *h) == 0;
    else if (keep) keep = memcmp(now, s->rc_dh, sizeof now) == 0;
    if (keep) {
        memcpy(&s->rc_root, root, sizeof s->rc_root);
        if (!visible) {
            s->rc_durable = h->commit;
            s->rc_dslot = dslot;
            s->rc_dh[dslot] = *h;
        }
        s->rc_seq = seq;
    } else {
        s->rc_valid = 0;
    }
    pthread_mutex_unlock(&s->nc_lock);
    blk_nc_seen(s, h->commit, h->crc);
}

static __thread int blk_held; /* commit locks this thread holds (any store) */

/* Now and then (every 20 ms at most) a lookup outside the commit lock looks whether the
 * /dev/shm file was removed, and if so moves to the new one (blk_vroot.c). */
static void lookup_settle(struct blk_store *s)
{
    if (!blk_vr_due(s) || !blk_vr_orphaned(s)) return;
    if (s->rw) {
        atomic_store(&s->vr_suspect, 1); /* blk_lock moves over */
        if (blk_lock(s) == 0) blk_unlock(s);
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (blk_vr_orphaned(s)) blk_vr_reattach(s, 0); /* (a reader carries nothing over) */
    pthread_mutex_unlock(&s->lock);
}

static int roots_read(struct blk_store *s, struct blk_root *r, uint64_t *durable, int *dslot, int *bad);

int blk_roots(struct blk_store *s, struct blk_root *r, uint64_t *durable, int *dslot, int *bad)
{
    if (!blk_held && s->vr) lookup_settle(s);
    if (!bad && kept_roots(s, r, durable, dslot)) return 0;
    int e = roots_read(s, r, durable, dslot, bad);
    /* Someone published a newer root in a /dev/shm file this process does not see (it was
     * removed and this process made or took the new one): wait until its publisher moves
     * it over or makes it durable (blk_vroot.c). Under the commit lock blk_vr_settle does. */
    for (int waited = 0; !e && !blk_held && s->vr && blk_vr_marked_past(s, r->h.commit) && waited < 60000; waited++) {
        if (waited == 2000)
            slog_warn("block: %s: waiting for commits published in a /dev/shm file this process does not see", s->path);
        usleep(1000);
        e = roots_read(s, r, durable, dslot, bad);
    }
    return e;
}

static int roots_read(struct blk_store *s, struct blk_root *r, uint64_t *durable, int *dslot, int *bad)
{
    uint8_t b[2][BLK_BS] __attribute__((aligned(64)));
    int ok[2], e = 0;
    if (bad) *bad = 0;
    uint64_t seq = 0;
    int keep = !bad && blk_vr_seq(s, &seq) == 0; /* before the read: what it is kept under */
    /* both slots in one read (blocks 1 and 2 are adjacent) */
    atomic_fetch_add_explicit(&s->meta_reads, 2, memory_order_relaxed);
    ssize_t got = sys.pread(s->fd, b, 2 * BLK_BS, BLK_ROOT_SLOT0 * BLK_BS);
    int rr = got == 2 * BLK_BS ? 0 : got < 0 ? -errno : -EIO;
    if (rr < 0) e = rr;
    uint64_t c[2] = {((const struct blk_hdr *)b[0])->commit, ((const struct blk_hdr *)b[1])->commit};
    int newer = c[1] > c[0];
    for (int k = 0; k < 2; k++) {
        int i = k ? !newer : newer;
        const struct blk_root *x = (const void *)b[i];
        ok[i] = rr == 0 && blk_verify(b[i], BK_ROOT, BLK_ROOT_SLOT0 + (uint64_t)i, s->sb.h.uuid, UINT64_MAX, NULL, 0) == 0 &&
                x->ndir <= BLK_ROOT_DIRS;
        if (!ok[i] && bad) *bad |= 1 << i;
        if (!ok[i]) keep = 0; /* a slot being written (its header may already be the new one): not kept */
        if (ok[i] && !bad) { /* the newer slot is valid: the older one does not matter */
            ok[!i] = 0;
            break;
        }
    }
    int pick = -1;
    if (ok[0] && ok[1]) pick = c[1] > c[0];
    else if (ok[0]) pick = 0;
    else if (ok[1]) pick = 1;
    if (pick < 0) return e ? e : -EIO;
    memcpy(r, b[pick], sizeof *r);
    if (durable) *durable = r->h.commit;
    if (dslot) *dslot = pick;
    uint64_t d = r->h.commit;
    /* A newer visible root (group commit, blk_vroot.c) is the state every process sees. */
    struct blk_root v;
    if (blk_vr_read(s, &v, r->h.commit) == 0) *r = v;
    blk_nc_seen(s, r->h.commit, r->h.crc);
    uint64_t seq2;
    if (keep && blk_vr_seq(s, &seq2) == 0 && seq2 == seq) { /* no root written meanwhile */
        pthread_mutex_lock(&s->nc_lock);
        s->rc_root = *r;
        s->rc_durable = d;
        s->rc_dslot = pick;
        memcpy(&s->rc_dh[0], b[0], sizeof s->rc_dh[0]);
        memcpy(&s->rc_dh[1], b[1], sizeof s->rc_dh[1]);
        s->rc_seq = seq;
        s->rc_valid = 1;
        pthread_mutex_unlock(&s->nc_lock);
    }
    return 0;
}

int blk_newest_root(struct blk_store *s, struct blk_root *r, int *bad) { return blk_roots(s, r, NULL, NULL, bad); }

int blk_newest_tree(struct blk_store *s, uint64_t *tree, uint32_t *height, uint64_t *commit)
{
    if (!blk_held && s->vr) lookup_settle(s);
    if (kept_lock(s)) { /* (blk_roots without the copy of the whole root) */
        *tree = s->rc_root.tree;
        *height = s->rc_root.height;
        *commit = s->rc_root.h.commit;
        pthread_mutex_unlock(&s->nc_lock);
        atomic_fetch_add_explicit(&s->rc_hits, 1, memory_order_relaxed);
        return 0;
    }
    struct blk_root r;
    int e = blk_roots(s, &r, NULL, NULL, NULL);
    if (e < 0) return e;
    *tree = r.tree;
    *height = r.height;
    *commit = r.h.commit;
    return 0;
}

int blk_make_durable(struct blk_store *s)
{
    int e = blk_lock(s);
    if (e < 0) return e;
    struct blk_root r;
    uint64_t d;
    int dslot;
    if ((e = blk_roots(s, &r, &d, &dslot, NULL)) < 0 || r.h.commit <= d) {
        blk_unlock(s);
        return e;
    }
    uint64_t v = r.h.commit;
    blk_vr_set_pin(s, v, UINT64_MAX); /* commits from now on keep what root v reaches */
    blk_unlock(s);
    /* Every block root v reaches went to the device before v was published: one flush
     * makes them durable (and the object data). */
    e = blk_sync(s);
    uint8_t *b = aligned_alloc(64, BLK_BS);
    if (!b && !e) e = -ENOMEM;
    int le = blk_lock(s);
    if (le < 0) {
        free(b);
        return le;
    }
    /* Root v (as read: commits since are kept from reusing its blocks by the pin) into
     * the slot that does not hold the newest durable root, which stays the fallback while
     * this write is torn; unless someone made v durable meanwhile. */
    struct blk_root now;
    if (!e && (e = blk_roots(s, &now, &d, &dslot, NULL)) == 0 && d < v) {
        memset(b, 0, BLK_BS);
        memcpy(b, &r, sizeof r);
        uint64_t slot = BLK_ROOT_SLOT0 + (uint64_t)(1 - dslot);
        blk_seal(b, BK_ROOT, v, slot, s->sb.h.uuid);
        blk_vr_seq_begin(s);
        e = blk_write_block(s, slot, b);
        blk_vr_seq_end(s); /* (the roots kept are read again) */
    }
    blk_vr_set_pin(s, 0, v);
    blk_unlock(s);
    free(b);
    if (!e) e = blk_sync(s); /* the root itself, before fsync returns */
    return e;
}

/* The store's commit lock: the process's mutex, then an OFD lock on byte 0 (of type
 * F_RDLCK or F_WRLCK) that other processes see and SIGKILL releases. */
static int lock_store(struct blk_store *s, short type)
{
    pthread_mutex_lock(&s->lock);
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    while (sys.fcntl(s->fd, F_OFD_SETLKW, &fl) < 0) {
        if (errno == EINTR) continue;
        int e = -errno;
        pthread_mutex_unlock(&s->lock);
        return e;
    }
    blk_held++;
    return 0;
}

int blk_lock_shared(struct blk_store *s) { return lock_store(s, F_RDLCK); }

int blk_lock_raw(struct blk_store *s) { return lock_store(s, F_WRLCK); }

/* A writer first moves off a removed /dev/shm file and waits for roots published where it
 * cannot see them (blk_vroot.c). */
int blk_lock(struct blk_store *s)
{
    int e = lock_store(s, F_WRLCK);
    return e < 0 ? e : blk_vr_settle(s);
}

void blk_unlock(struct blk_store *s)
{
    struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    sys.fcntl(s->fd, F_OFD_SETLK, &fl);
    blk_held--;
    pthread_mutex_unlock(&s->lock);
}

void blk_atfork_child(struct blk_store *s)
{
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->nc_lock, NULL);
    blk_vr_atfork_child(s);
    int fd = sys.open(s->path, (s->rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return; /* keep the shared one: commits of this child then fail to lock apart */
    int old = s->fd;
    s->fd = fd;
    sys.close(old);
}

int blk_range_lock(int fd, uint64_t start, uint64_t len, int type)
{
    struct flock fl = {.l_type = (short)type, .l_whence = SEEK_SET, .l_start = (off_t)(start * BLK_BS),
                       .l_len = (off_t)(len * BLK_BS)};
    if (sys.fcntl(fd, F_OFD_SETLK, &fl) == 0) return 0;
    return errno == EACCES ? -EAGAIN : -errno;
}

int blk_byte_lock(int fd, int cmd, short type, off_t at)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = at, .l_len = 1};
    return sys.fcntl(fd, cmd, &fl) < 0 ? -errno : 0;
}

int blk_byte_held(int fd, int cmd, off_t at)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = 1};
    return sys.fcntl(fd, cmd, &fl) == 0 && fl.l_type != F_UNLCK;
}
