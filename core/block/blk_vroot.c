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
 * block written up to that commit instead of freeing it at the next commit (blk_txn.c). */
#include "blk.h"

#include "../sys.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#define VR_SIZE (3 * BLK_BS) /* two roots, then the pin (u64) */

void blk_vr_name(const struct blk_store *s, char *buf, size_t len)
{
    char u[33];
    for (int i = 0; i < 16; i++) snprintf(u + 2 * i, 3, "%02x", s->sb.h.uuid[i]);
    snprintf(buf, len, "/dev/shm/s3shim-blk-%s-%llx-%llx", u, (unsigned long long)s->dev_id,
             (unsigned long long)s->dev_ino);
}

int blk_vr_open(struct blk_store *s)
{
    if (s->vr) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (s->vr_retry_ns && now < s->vr_retry_ns) return -ENOENT;
    s->vr_retry_ns = now + 100000000ull; /* a missing file is looked for again in 0.1 s */
    char name[PATH_MAX];
    blk_vr_name(s, name, sizeof name);
    int rw = s->rw;
    int fd = rw ? sys.open(name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666) : -1;
    if (fd < 0) {
        rw = 0;
        fd = sys.open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0) return -errno;
    struct stat st;
    if (sys.fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_size < VR_SIZE && (!rw || sys.ftruncate(fd, VR_SIZE) < 0))) {
        sys.close(fd);
        return -EIO;
    }
    void *p = sys.mmap(NULL, VR_SIZE, rw ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    sys.close(fd);
    if (p == MAP_FAILED) return -errno;
    s->vr_rw = rw;
    s->vr = p;
    return 0;
}

void blk_vr_close(struct blk_store *s)
{
    if (s->vr) munmap(s->vr, VR_SIZE);
    s->vr = NULL;
    s->vr_rw = 0;
}

void blk_vr_unlink(struct blk_store *s)
{
    char name[PATH_MAX];
    blk_vr_name(s, name, sizeof name);
    sys.unlink(name);
    blk_vr_close(s);
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
