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
#include "../log.h"
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
#include <unistd.h>

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
    if (s->vr_fd < 0) return;
    if (blk_vr_orphaned(s) && s->rw) { /* moved to the new file first */
        atomic_store(&s->vr_suspect, 1);
        if (blk_lock(s) == 0) blk_unlock(s);
    }
    if (blk_vr_orphaned(s)) return; /* (the name is someone else's file: not ours to remove) */
    if (sys.flock(s->vr_fd, LOCK_EX | LOCK_NB) < 0) return; /* others use the store */
    if (s->vr_last && s->rw) s->vr_last(s->vr_last_arg);
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
    int fd = sys_reopen(s->vr_fd, O_RDONLY | O_CLOEXEC); /* a description of its own */
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
    int fd = sys.open(fn, acc | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0 && errno == ENOENT) { /* the directory first (a mkdir at every open was one call in ten of an append) */
        if (sys.mkdir(dn, 0777) < 0 && errno != EEXIST) return -errno;
        fd = sys.open(fn, acc | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    }
    return fd < 0 ? -errno : fd;
}

/* --- The file removed under us (docs/block-format.md, "The /dev/shm file removed") ----

 * Someone removed the name (rm, systemd's RemoveIPC) while this process had it mapped:
 * processes started since made a new file, and the two sides no longer see each other's
 * visible roots, pin or change counter. So the file's link count is looked at under a
 * commit lock (blk_meta.c) every 20 ms and whenever someone's root is marked past the
 * newest this process sees (a root published in a file this process does not see always
 * is, below), and now and then at lookups; once it is 0 the process
 * moves to the file the name now holds, carrying over what only its old file knew: a
 * visible root newer than everything durable and everything the new file holds, the pin
 * of a durable step in progress, and a change counter at least as far on. The new file
 * is mapped over the old mapping (MAP_FIXED): threads reading it meanwhile see one file's
 * bytes or the other's, and a half-copied root fails its CRC as before.
 *
 * A process that made the new file cannot see a root published only in the old one: it
 * would commit on an older base and reuse that root's blocks. So a process publishing a
 * visible root also holds an OFD read lock on bytes [2^61, 2^61 + commit] of the device
 * (never data: the device is far smaller; O_EXCL claims live at 2^62), and a writer,
 * under the commit lock, waits while someone holds such a lock past the newest root it
 * sees (blk_vr_settle): a root is then published where it cannot see it, and its
 * publisher moves it over at its next commit lock, lookup or durable step (at most
 * S3SHIM_BLOCK_COMMIT_MS away). A publisher's lock below what everyone sees means
 * nothing, so it is only ever moved up, never taken down. */
#define VR_MARK_BASE (1ull << 61)

int blk_vr_due(struct blk_store *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint64_t due = atomic_load_explicit(&s->vr_check_ns, memory_order_relaxed);
    return now >= due && atomic_compare_exchange_strong(&s->vr_check_ns, &due, now + 20000000ull);
}

int blk_vr_orphaned(struct blk_store *s)
{
    struct stat st;
    return s->vr && s->vr_fd >= 0 && sys.fstat(s->vr_fd, &st) == 0 && st.st_nlink == 0;
}

void blk_vr_mark(struct blk_store *s, uint64_t commit)
{
    if (commit >= VR_MARK_BASE) return;
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = (off_t)VR_MARK_BASE,
                       .l_len = (off_t)(commit + 1)};
    sys.fcntl(s->fd, F_OFD_SETLK, &fl); /* (a failure only makes the guard below blind) */
}

/* The commit of someone's visible root published past `seen` where this process cannot
 * see it (0: none). */
uint64_t blk_vr_marked_past(struct blk_store *s, uint64_t seen)
{
    if (seen + 1 >= VR_MARK_BASE) return 0;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)(VR_MARK_BASE + seen + 1),
                       .l_len = (off_t)(VR_MARK_BASE - seen - 1)};
    if (sys.fcntl(s->fd, F_OFD_GETLK, &fl) < 0 || fl.l_type == F_UNLCK) return 0;
    return (uint64_t)(fl.l_start + fl.l_len) - 1 - VR_MARK_BASE;
}

/* The newest valid root of mapping m: its commit, its slot in *slot; 0 if none. */
static uint64_t vr_newest(const struct blk_store *s, const uint8_t *m, int *slot)
{
    uint64_t best = 0;
    for (int i = 0; i < 2; i++) {
        uint8_t b[BLK_BS] __attribute__((aligned(64)));
        memcpy(b, m + i * BLK_BS, BLK_BS);
        const struct blk_root *x = (const void *)b;
        if (x->h.commit > best && x->h.commit % 2 == (uint64_t)i && x->ndir <= BLK_ROOT_DIRS &&
            blk_verify(b, BK_ROOT, BLK_ROOT_SLOT0 + (uint64_t)i, s->sb.h.uuid, UINT64_MAX, NULL, 0) == 0) {
            best = x->h.commit;
            if (slot) *slot = i;
        }
    }
    return best;
}

int blk_vr_reattach(struct blk_store *s, uint64_t durable)
{
    char name[PATH_MAX];
    blk_vr_name(s, name, sizeof name);
    int rw;
    int fd = open_held(name, &rw);
    if (fd < 0) return fd;
    struct stat st;
    if (sys.fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (s->vr_rw && !rw) ||
        (st.st_size < VR_SIZE && (!rw || sys.ftruncate(fd, VR_SIZE) < 0))) {
        sys.close(fd);
        return -EIO;
    }
    int prot = s->vr_rw ? PROT_READ | PROT_WRITE : PROT_READ;
    uint8_t *n = sys.mmap(NULL, VR_SIZE, prot, MAP_SHARED, fd, 0);
    if (n == MAP_FAILED) {
        int e = -errno;
        sys.close(fd);
        return e;
    }
    if (s->vr_rw) { /* under the commit lock: carry over what only the old file knows */
        int os = 0;
        uint64_t ov = vr_newest(s, s->vr, &os), nv = vr_newest(s, n, NULL);
        if (ov > durable && ov > nv) {
            if (nv <= durable) {
                memcpy(n + os * BLK_BS, s->vr + os * BLK_BS, BLK_BS);
                slog_info("block: %s: %s was removed while in use: commit %llu (not durable yet) moved to the new one",
                          s->path, name, (unsigned long long)ov);
            } else { /* (this process's mark means nothing any more) */
                struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = (off_t)VR_MARK_BASE,
                                   .l_len = (off_t)VR_MARK_BASE};
                sys.fcntl(s->fd, F_OFD_SETLK, &fl);
                slog_error("block: %s: %s was removed while in use and commits %llu.. were made on an older "
                           "base meanwhile: this process's commits up to %llu are lost", s->path, name,
                           (unsigned long long)nv, (unsigned long long)ov);
            }
        }
        _Atomic uint64_t *op = (_Atomic uint64_t *)(void *)(s->vr + 2 * BLK_BS);
        _Atomic uint64_t *np = (_Atomic uint64_t *)(void *)(n + 2 * BLK_BS);
        uint64_t pin = atomic_load(op);
        if (pin > atomic_load(np)) atomic_store(np, pin);
        _Atomic uint64_t *oq = (_Atomic uint64_t *)(void *)(s->vr + VR_SEQ_OFF);
        _Atomic uint64_t *nq = (_Atomic uint64_t *)(void *)(n + VR_SEQ_OFF);
        uint64_t want = (atomic_load(oq) | 1) + 1, v = atomic_load(nq);
        while (v < want && !atomic_compare_exchange_weak(nq, &v, want)) {} /* only forward */
        atomic_fetch_add(nq, 2); /* every kept root is read again */
    }
    munmap(n, VR_SIZE);
    void *p = sys.mmap(s->vr, VR_SIZE, prot, MAP_SHARED | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) { /* (the old mapping is gone: map it anywhere, leaking nothing but the address) */
        int e = -errno;
        sys.close(fd);
        s->vr = NULL;
        return e;
    }
    if (sys.dup3(fd, s->vr_fd, O_CLOEXEC) < 0) {
        int e = -errno;
        sys.close(fd);
        return e;
    }
    sys.close(fd);
    pthread_mutex_lock(&s->nc_lock);
    s->rc_valid = 0;
    pthread_mutex_unlock(&s->nc_lock);
    return 0;
}

int blk_vr_settle(struct blk_store *s)
{
    struct blk_root r;
    uint64_t d;
    /* Not an fstat per commit: a file removed under us matters to a commit only once
     * someone published a root in the new one, and that root is marked (below). */
    if ((atomic_exchange(&s->vr_suspect, 0) || blk_vr_due(s)) && blk_vr_orphaned(s) &&
        blk_roots(s, &r, &d, NULL, NULL) == 0)
        blk_vr_reattach(s, d);
    if (!s->rw) return 0;
    uint64_t waited = 0;
    int looked = 0;
    for (;;) {
        uint64_t c;
        if (blk_roots(s, &r, &d, NULL, NULL) < 0 || !(c = blk_vr_marked_past(s, r.h.commit))) return 0;
        if (!looked++ && blk_vr_orphaned(s)) { /* the root is in the file the name holds now */
            blk_vr_reattach(s, d);
            continue;
        }
        if (waited == 2000)
            slog_warn("block: %s: waiting for commit %llu, published in a /dev/shm file this process does not "
                      "see (removed while in use?), to be moved to the one it sees or made durable",
                      s->path, (unsigned long long)c);
        if (waited >= 60000) return 0; /* (a process stopped for a minute: go on without it) */
        blk_unlock(s);
        usleep(1000);
        waited++;
        int e = blk_lock_raw(s);
        if (e < 0) return e;
        if (blk_vr_orphaned(s) && blk_roots(s, &r, &d, NULL, NULL) == 0) blk_vr_reattach(s, d);
    }
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
