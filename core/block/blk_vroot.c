/* blk_vroot.c - visible roots: the newest commits of a store that every process sees but
 * that are not durable yet (group commit, docs/block-format.md "Group commit").
 *
 * A batched commit writes its blocks through the device's page cache without a flush and
 * publishes its root here instead of in a root slot on the device: a file in /dev/shm
 * (tmpfs: gone at reboot, like the page cache it stands for), named after the store's UUID
 * and the device's identity, holding two root blocks (slot = commit % 2), each sealed like
 * an on-device root. Every process maps it and takes the newest valid root among the two
 * device slots and these two. Only page-cache state is ever published here, so within
 * one boot it is exactly what any reader of the device sees; after a power cut the file
 * is gone and the newest durable root on the device is the store's state. Writes happen
 * under the commit lock; a reader that catches a slot half-copied fails its CRC and uses
 * the other (one commit older: as if it had looked a moment earlier).
 *
 * The pin: a durable step in progress (blk_make_durable) flushes without the commit lock,
 * so commits go on meanwhile; until it has written its root, the blocks that root reaches
 * must not be reused. It publishes the root's commit number here, and commits hold every
 * block written up to that commit instead of freeing it at the next commit (blk_txn.c).
 *
 * The change counter (docs/block-format.md, "Shared change counter"): a seqlock every
 * process that maps the file for writing bumps before and after each root it writes, in
 * a device slot or here, so a lookup reuses the root it verified last instead of reading
 * both slots again while the counter has not moved (blk_meta.c). */
#include "blk.h"

#include "../efd.h"
#include "../sys.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#define VR_SIZE (3 * BLK_BS) /* two roots, then the pin (u64) and, 64 bytes on, the change counter */
#define VR_SEQ_OFF (2 * BLK_BS + 64)

void blk_vr_name(const struct blk_store *s, char *buf, size_t len)
{
    char u[33];
    for (int i = 0; i < 16; i++) snprintf(u + 2 * i, 3, "%02x", s->sb.h.uuid[i]);
    snprintf(buf, len, "/dev/shm/s3shim-blk-%s-%llx-%llx", u, (unsigned long long)s->dev_id,
             (unsigned long long)s->dev_ino);
}

/* Open the file and hold it (a shared flock) as long as the store is open here: the
 * process ending last removes it (blk_vr_release) under an exclusive flock; one that
 * opened the name just before that finds its file unlinked once it gets its hold, and
 * opens the name again. */
static int open_held(const char *name, int *rw)
{
    for (int tries = 0; tries < 8; tries++) {
        *rw = 1; /* opened so even for a read-only store: the size is set by whoever comes first */
        int fd = sys.open(name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0) {
            *rw = 0;
            fd = sys.open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        }
        if (fd < 0) return -errno;
        int held;
        while ((held = sys.flock(fd, LOCK_SH)) < 0 && errno == EINTR) {}
        struct stat st;
        if (held < 0 || (sys.fstat(fd, &st) == 0 && st.st_nlink > 0))
            return fd; /* (no flock here: used without a hold, and never removed) */
        sys.close(fd); /* removed by the last process while we waited: a new one */
    }
    return -EAGAIN;
}

int blk_vr_open(struct blk_store *s)
{
    if (s->vr) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (s->vr_retry_ns && now < s->vr_retry_ns) return -ENOENT;
    s->vr_retry_ns = now + 100000000ull; /* a file we could not use is looked for again in 0.1 s */
    char name[PATH_MAX];
    blk_vr_name(s, name, sizeof name);
    int rw;
    int fd = open_held(name, &rw);
    if (fd < 0) return fd;
    struct stat st;
    if (sys.fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (st.st_size < VR_SIZE && (!rw || sys.ftruncate(fd, VR_SIZE) < 0))) {
        sys.close(fd);
        return -EIO;
    }
    rw = rw && s->rw; /* publishes roots */
    void *p = sys.mmap(NULL, VR_SIZE, rw ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = -errno;
        sys.close(fd);
        return e;
    }
    s->vr_fd = efd_park(fd); /* a program closing descriptors it does not know keeps it */
    s->vr_rw = rw;
    s->vr = p;
    return 0;
}

void blk_vr_close(struct blk_store *s)
{
    if (s->vr) munmap(s->vr, VR_SIZE);
    if (s->vr_fd >= 0) efd_close(s->vr_fd);
    s->vr = NULL;
    s->vr_fd = -1;
    s->vr_rw = 0;
}

static void lock_dir_name(const struct blk_store *s, char *buf, size_t len)
{
    char vr[PATH_MAX - 8];
    blk_vr_name(s, vr, sizeof vr);
    snprintf(buf, len, "%s.locks", vr);
}

/* The lock files of a store no process uses: nobody holds a lock in them. */
static void remove_lock_dir(const struct blk_store *s)
{
    char dn[PATH_MAX];
    lock_dir_name(s, dn, sizeof dn);
    int dfd = sys.open(dn, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0) return;
    DIR *d = sys.fdopendir(dfd);
    if (!d) {
        sys.close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = sys.readdir(d)))
        if (e->d_name[0] != '.') sys.unlinkat(dfd, e->d_name, 0);
    sys.closedir(d);
    sys.unlinkat(AT_FDCWD, dn, AT_REMOVEDIR);
}

void blk_vr_unlink(struct blk_store *s)
{
    char name[PATH_MAX];
    blk_vr_name(s, name, sizeof name);
    remove_lock_dir(s);
    sys.unlink(name);
    blk_vr_close(s);
}

void blk_vr_release(struct blk_store *s)
{
    if (s->vr_fd < 0 || sys.flock(s->vr_fd, LOCK_EX | LOCK_NB) < 0) return; /* others use the store */
    /* The last process: what a killed one left only visible is made durable first (a
     * process that cannot write the store leaves it, and the file, to one that can). */
    struct blk_root r;
    uint64_t d;
    if (blk_roots(s, &r, &d, NULL, NULL) < 0) return;
    if (r.h.commit > d &&
        (!s->rw || blk_make_durable(s) < 0 || blk_roots(s, &r, &d, NULL, NULL) < 0 || r.h.commit > d))
        return;
    char name[PATH_MAX];
    blk_vr_name(s, name, sizeof name);
    remove_lock_dir(s);
    sys.unlink(name);
}

void blk_vr_atfork_child(struct blk_store *s)
{
    if (s->vr_fd < 0) return;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", s->vr_fd);
    int fd = sys.open(link, O_RDONLY | O_CLOEXEC); /* a description of its own */
    if (fd < 0) return; /* keeps sharing the parent's hold */
    if (sys.flock(fd, LOCK_SH | LOCK_NB) == 0) sys.dup3(fd, s->vr_fd, O_CLOEXEC);
    sys.close(fd);
}

int blk_lockfile_open(struct blk_store *s, const char *key, size_t klen, int acc)
{
    char dn[PATH_MAX], fn[PATH_MAX + 40];
    lock_dir_name(s, dn, sizeof dn);
    /* Named after two 64-bit hashes of the key (a key is longer than a name may be); two
     * keys sharing a name would only share their locks. */
    uint64_t h1 = 1469598103934665603ull, h2 = 0x6c62272e07bb0142ull;
    for (size_t i = 0; i < klen; i++) {
        h1 = (h1 ^ (unsigned char)key[i]) * 1099511628211ull;
        h2 = (h2 ^ (unsigned char)key[i]) * 0x100000001b3ull;
        h2 ^= h2 >> 29;
    }
    snprintf(fn, sizeof fn, "%s/%016llx%016llx", dn, (unsigned long long)h1, (unsigned long long)h2);
    if (sys.mkdir(dn, 0777) < 0 && errno != EEXIST) return -errno;
    int fd = sys.open(fn, acc | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    return fd < 0 ? -errno : fd;
}

int blk_vr_read(struct blk_store *s, struct blk_root *r, uint64_t above)
{
    if (!s->vr && blk_vr_open(s) < 0) return -ENOENT;
    uint8_t b[BLK_BS] __attribute__((aligned(64)));
    /* The newer slot first; a slot not above `above` is not even checked. */
    uint64_t c0 = ((const struct blk_hdr *)s->vr)->commit, c1 = ((const struct blk_hdr *)(s->vr + BLK_BS))->commit;
    int first = c1 > c0;
    for (int k = 0; k < 2; k++) {
        int i = k ? !first : first;
        memcpy(b, s->vr + i * BLK_BS, BLK_BS);
        const struct blk_root *x = (const void *)b;
        if (x->h.commit <= above) continue;
        if (blk_verify(b, BK_ROOT, BLK_ROOT_SLOT0 + (uint64_t)i, s->sb.h.uuid, UINT64_MAX, NULL, 0) < 0 ||
            x->h.commit % 2 != (uint64_t)i || x->ndir > BLK_ROOT_DIRS)
            continue;
        memcpy(r, b, sizeof *r);
        return 0;
    }
    return -ENOENT;
}

static _Atomic uint64_t *pin_of(struct blk_store *s) { return (_Atomic uint64_t *)(void *)(s->vr + 2 * BLK_BS); }

uint64_t blk_vr_pin(struct blk_store *s)
{
    if (!s->vr && blk_vr_open(s) < 0) return 0;
    return atomic_load(pin_of(s));
}

void blk_vr_set_pin(struct blk_store *s, uint64_t commit, uint64_t if_was)
{
    if (!s->vr_rw) return;
    uint64_t old = atomic_load(pin_of(s));
    if (if_was == UINT64_MAX || old == if_was) atomic_store(pin_of(s), commit);
}

int blk_vr_write(struct blk_store *s, const void *root_block)
{
    if (!s->vr_rw) return -EROFS;
    const struct blk_hdr *h = root_block;
    memcpy(s->vr + (h->commit % 2) * BLK_BS, root_block, BLK_BS);
    return 0;
}

static _Atomic uint64_t *seq_of(struct blk_store *s) { return (_Atomic uint64_t *)(void *)(s->vr + VR_SEQ_OFF); }

int blk_vr_seq(struct blk_store *s, uint64_t *seq)
{
    if (!s->vr) return -1;
    uint64_t v = atomic_load(seq_of(s));
    if (v & 1) return -1; /* a root being written, or a writer killed while it wrote one */
    *seq = v;
    return 0;
}

void blk_vr_seq_begin(struct blk_store *s)
{
    if (!s->vr_rw) return;
    _Atomic uint64_t *q = seq_of(s);
    uint64_t v = atomic_load(q);
    while (!atomic_compare_exchange_weak(q, &v, (v + 1) | 1)) {} /* odd: from even +1, from odd (cut short) +2 */
}

uint64_t blk_vr_seq_end(struct blk_store *s)
{
    if (!s->vr_rw) return 0;
    _Atomic uint64_t *q = seq_of(s);
    uint64_t v = atomic_load(q), n;
    do
        n = (v | 1) + 1; /* even, and always forward */
    while (!atomic_compare_exchange_weak(q, &v, n));
    return n;
}
