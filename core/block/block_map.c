/* block_map.c - mmap of a block:// object: the mapped range copied into memory.
 *
 * A block:// object has no kernel file of its own to map: its blocks sit anywhere on the
 * device (copy-on-write moves them at every commit), and the device's page cache would
 * show other objects' bytes past its end. So a mapping is served from a copy:
 *  - read-only and private mappings map a memfd per open file, as large as the object,
 *    into which the ranges asked for are read (1 MiB at a time, each once) through the
 *    file's own reads (a private one may still be written, copy-on-write);
 *  - shared writable mappings (sqlite's -shm, numpy's mmap_mode='r+') map one copy per
 *    key for the whole host: a file in the store's lock directory in /dev/shm, filled
 *    whole from the object by its first user, so that every process mapping the key sees
 *    every other's stores at once, as with a file on a disk (two sqlite3 processes in WAL
 *    mode share their wal-index so). The file's own writes and truncations go to it too
 *    while this open file uses it; fsync and the last close of each user write back the
 *    1 MiB chunks whose bytes differ from the object's, before their commit (as the S3
 *    wing uploads a mapped staging file at close). The last user to go empties it.
 * What this does not give: msync as a commit point (fsync or close is), a read-only
 * mapping that sees writes made through other descriptors or processes (it has its copy,
 * taken when the range was first mapped), writes made through another process's
 * descriptor that has no shared mapping seen in the shared copy, and laziness (mapping
 * 10 GiB reads 10 GiB into memory). */
#include "block.h"
#include "bmount.h"

#include "../efd.h"
#include "../sys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define MAP_CHUNK ((off_t)1 << 20)

/* Bytes of the shared copy's file that its users lock (far past any data): one at a time
 * fills or empties it (a write lock on COPY_INIT), every user holds a read lock on
 * COPY_USERS through its descriptor (so through a forked child's too). */
#define COPY_INIT ((off_t)1 << 62)
#define COPY_USERS (COPY_INIT + 1)

struct bmap {
    void *fh;
    int memfd, rofd; /* the copy: a memfd, or the key's shared copy (shared_w) */
    int shared_w; /* a shared writable mapping was made: written back, kept across writes */
    off_t size;
    uint8_t *have; /* per chunk: copied */
    struct bmap *next;
};

static struct bmap *maps;
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int writing_back; /* bf_map_flush's own writes: not copied back into it */

static int copy_used(int fd) { return blk_byte_held(fd, F_OFD_GETLK, COPY_USERS); }

/* This open file stops using the key's shared copy; the last user empties it. */
static void copy_leave(struct bmap *b)
{
    int fd = bf_copy_file(b->fh); /* a description of its own for the locks */
    if (fd >= 0 && bf_copy_lock(b->fh, fd, COPY_INIT, "left without emptying it (its next user fills it afresh)") < 0) {
        sys.close(fd);
        fd = -1;
    }
    efd_close(b->memfd); /* its read lock on COPY_USERS goes with the last descriptor of it */
    if (fd >= 0) {
        if (!copy_used(fd)) sys.ftruncate(fd, 0);
        sys.close(fd);
    }
}

static void bmap_free(struct bmap *b)
{
    if (b->shared_w) copy_leave(b);
    else efd_close(b->memfd);
    efd_close(b->rofd);
    free(b->have);
    free(b);
}

static struct bmap *bmap_new(void *fh, off_t size)
{
    struct bmap *b = calloc(1, sizeof *b);
    size_t n = (size_t)((size + MAP_CHUNK - 1) / MAP_CHUNK);
    if (!b || !(b->have = calloc(n ? n : 1, 1))) {
        free(b);
        return NULL;
    }
    b->fh = fh;
    b->size = size;
    b->memfd = b->rofd = -1;
    int fd = memfd_create("s3shim-block-map", MFD_CLOEXEC);
    if (fd >= 0 && sys.ftruncate(fd, size) == 0) {
        int ro = sys_reopen(fd, O_RDONLY | O_CLOEXEC);
        b->memfd = efd_park(fd);
        b->rofd = ro >= 0 ? efd_park(ro) : -1;
    } else if (fd >= 0) {
        sys.close(fd);
    }
    if (b->memfd < 0 || b->rofd < 0) {
        bmap_free(b);
        return NULL;
    }
    return b;
}

/* A shared writable mapping's copy grown with its file (sqlite's -shm grows 32 KiB at a
 * time and is mapped again): the memfd, and chunks past the old end to be copied. A
 * mapping past the memfd's end faulted with SIGBUS. */
static int grow(struct bmap *b, off_t size)
{
    size_t had = (size_t)((b->size + MAP_CHUNK - 1) / MAP_CHUNK), n = (size_t)((size + MAP_CHUNK - 1) / MAP_CHUNK);
    if (had == 0) had = 1; /* (bmap_new's table has one entry at least) */
    if (size <= b->size) return 0;
    /* The shared copy: never shortened by this (another user may have grown it further),
     * and what grows is zeros, its own, never copied over. */
    if (b->shared_w ? sys.fallocate(b->memfd, 0, 0, size) < 0 : sys.ftruncate(b->memfd, size) < 0) return -errno;
    if (n > had) {
        uint8_t *h = realloc(b->have, n);
        if (!h) return -ENOMEM;
        memset(h + had, b->shared_w, n - had);
        b->have = h;
    }
    b->size = size;
    return 0;
}

/* The chunk of the file at `at` (of `size` bytes in all) into fd at the same place,
 * through buf (MAP_CHUNK bytes): 0 or -errno. */
static int copy_chunk(void *fh, int fd, char *buf, off_t at, off_t size)
{
    size_t want = (size_t)(size - at < MAP_CHUNK ? size - at : MAP_CHUNK), got = 0;
    while (got < want) {
        ssize_t r = bf_pread(fh, buf + got, want - got, at + (off_t)got);
        if (r < 0) return (int)r;
        if (r == 0) break; /* shortened meanwhile: the rest reads as zeros */
        got += (size_t)r;
    }
    for (size_t w = 0; w < got;) {
        ssize_t r = sys.pwrite(fd, buf + w, got - w, at + (off_t)w);
        if (r <= 0) return r < 0 ? -errno : -EIO;
        w += (size_t)r;
    }
    return 0;
}

/* Copy the chunks of [off, end) not copied yet. */
static int fill(struct bmap *b, off_t off, off_t end)
{
    if (end > b->size) end = b->size;
    char *buf = NULL;
    int e = 0;
    for (off_t c = off / MAP_CHUNK; c * MAP_CHUNK < end && e == 0; c++) {
        if (b->have[c]) continue;
        if (!buf && !(buf = malloc((size_t)MAP_CHUNK))) return -ENOMEM;
        if ((e = copy_chunk(b->fh, b->memfd, buf, c * MAP_CHUNK, b->size)) == 0) b->have[c] = 1;
    }
    free(buf);
    return e;
}

/* b moves to the key's shared copy: joined if another open file uses it (what they
 * stored stands; only what lies past its end is copied from this file), else made from
 * this file's bytes, whole. */
static int copy_join(struct bmap *b, off_t size)
{
    int fd = bf_copy_file(b->fh);
    if (fd < 0) return fd;
    int e = bf_copy_lock(b->fh, fd, COPY_INIT, "this mapping fails (EIO)");
    struct stat st;
    if (!e && sys.fstat(fd, &st) < 0) e = -errno;
    off_t from = 0;
    if (!e && copy_used(fd)) from = st.st_size;
    else if (!e && sys.ftruncate(fd, 0) < 0) e = -errno;
    if (!e && size > from && sys.fallocate(fd, 0, 0, size) < 0) e = -errno;
    char *buf = NULL;
    if (!e && size > from && !(buf = malloc((size_t)MAP_CHUNK))) e = -ENOMEM;
    for (off_t at = from; !e && at < size; at += MAP_CHUNK) e = copy_chunk(b->fh, fd, buf, at, size);
    free(buf);
    if (!e) e = blk_byte_lock(fd, F_OFD_SETLK, F_RDLCK, COPY_USERS);
    if (!e && sys.fstat(fd, &st) < 0) e = -errno;
    int ro = e ? -1 : sys_reopen(fd, O_RDONLY | O_CLOEXEC);
    if (!e && ro < 0) e = -errno;
    blk_byte_lock(fd, F_OFD_SETLK, F_UNLCK, COPY_INIT);
    if (e) {
        sys.close(fd);
        return e;
    }
    /* The memfd's bytes stand in mappings made from it; from now on the copy serves. */
    efd_close(b->memfd);
    efd_close(b->rofd);
    b->memfd = efd_park(fd);
    b->rofd = efd_park(ro);
    b->shared_w = 1;
    b->size = 0;
    e = grow(b, st.st_size > size ? st.st_size : size);
    for (off_t c = 0; c * MAP_CHUNK < b->size; c++) b->have[c] = 1;
    return e;
}

int bf_local_map(void *fh, off_t off, size_t len, int prot, int flags)
{
    int shared_w = (flags & MAP_TYPE) == MAP_SHARED && (prot & PROT_WRITE);
    if (shared_w && !bf_writable(fh)) return -EACCES; /* as for a file open read-only */
    if (off < 0 || len == 0) return -EINVAL;
    struct stat st;
    int e = bf_fstat(fh, &st);
    if (e < 0) return e;
    pthread_mutex_lock(&maps_lock);
    struct bmap **pp = &maps, *b;
    for (; (b = *pp) && b->fh != fh; pp = &b->next) {
    }
    if (b && b->shared_w && (e = grow(b, st.st_size)) < 0) { /* (ENOMEM, ENOSPC of the memfd) */
        pthread_mutex_unlock(&maps_lock);
        return e;
    }
    if (b && !b->shared_w && b->size != st.st_size) { /* changed since: a new copy (mappings keep theirs) */
        *pp = b->next;
        bmap_free(b);
        b = NULL;
    }
    if (!b && (b = bmap_new(fh, st.st_size))) {
        b->next = maps;
        maps = b;
    }
    if (b && shared_w && !b->shared_w) e = copy_join(b, st.st_size);
    off_t end = off + (off_t)len;
    if (end > st.st_size || end < off) end = st.st_size;
    e = e < 0 ? e : !b ? -ENOMEM : off < end ? fill(b, off, end) : 0;
    int fd = e < 0 ? e : shared_w ? b->memfd : b->rofd;
    pthread_mutex_unlock(&maps_lock);
    return fd;
}

void bf_map_forget(void *fh)
{
    pthread_mutex_lock(&maps_lock);
    for (struct bmap **pp = &maps, *b; (b = *pp);)
        if (b->fh == fh) {
            *pp = b->next;
            bmap_free(b); /* mappings made from it keep the memory alive */
        } else {
            pp = &b->next;
        }
    pthread_mutex_unlock(&maps_lock);
}

static struct bmap *find(void *fh)
{
    struct bmap *b = maps;
    while (b && b->fh != fh) b = b->next;
    return b;
}

int bf_map_any(void *fh)
{
    if (!__atomic_load_n(&maps, __ATOMIC_RELAXED)) return 0;
    pthread_mutex_lock(&maps_lock);
    int r = find(fh) != NULL;
    pthread_mutex_unlock(&maps_lock);
    return r;
}

void bf_map_written(void *fh, const void *buf, size_t len, off_t off)
{
    if (!__atomic_load_n(&maps, __ATOMIC_RELAXED)) return;
    pthread_mutex_lock(&maps_lock);
    struct bmap *b = find(fh);
    int keep = b && b->shared_w;
    off_t end = buf ? off + (off_t)len : off; /* (a truncation: to off) */
    if (keep && end > b->size && grow(b, end) < 0) keep = 0; /* written or truncated past its end */
    if (keep && buf && !writing_back) { /* the shared mapping shows the file's own writes */
        if (sys.pwrite(b->memfd, buf, len, off) != (ssize_t)len) keep = 0;
    } else if (keep && !buf && off < b->size) { /* shortened: so is the copy, as a file on a disk */
        if (sys.ftruncate(b->memfd, off) == 0) b->size = off;
        else keep = 0;
    }
    pthread_mutex_unlock(&maps_lock);
    if (b && !keep) bf_map_forget(fh); /* later mappings copy afresh */
}

/* Write back what a shared writable mapping changed: the chunks whose bytes differ from
 * the object's. Called with the file's own lock not held (bf_pwrite takes it). */
int bf_map_flush(void *fh)
{
    if (!__atomic_load_n(&maps, __ATOMIC_RELAXED)) return 0;
    pthread_mutex_lock(&maps_lock);
    struct bmap *b = find(fh);
    int e = 0;
    char *mine = NULL, *theirs = NULL;
    if (b && b->shared_w && (!(mine = malloc((size_t)MAP_CHUNK)) || !(theirs = malloc((size_t)MAP_CHUNK)))) e = -ENOMEM;
    for (off_t c = 0; e == 0 && b && b->shared_w && c * MAP_CHUNK < b->size; c++) {
        if (!b->have[c]) continue;
        off_t at = c * MAP_CHUNK;
        size_t n = (size_t)(b->size - at < MAP_CHUNK ? b->size - at : MAP_CHUNK);
        ssize_t got = sys.pread(b->memfd, mine, n, at);
        if (got != (ssize_t)n) {
            e = -EIO;
            break;
        }
        ssize_t old = bf_pread(fh, theirs, n, at);
        if (old == (ssize_t)n && memcmp(mine, theirs, n) == 0) continue;
        for (size_t w = 0; e == 0 && w < n;) { /* (bf_pwrite writes the same bytes through to the memfd) */
            pthread_mutex_unlock(&maps_lock);
            writing_back = 1; /* (the copy may have changed since: another process's stores) */
            ssize_t r = bf_pwrite(fh, mine + w, n - w, at + (off_t)w);
            writing_back = 0;
            pthread_mutex_lock(&maps_lock);
            if (r <= 0) e = r < 0 ? (int)r : -EIO;
            else w += (size_t)r;
        }
    }
    pthread_mutex_unlock(&maps_lock);
    free(mine);
    free(theirs);
    return e;
}

void bf_map_atfork_child(void) { pthread_mutex_init(&maps_lock, NULL); }
