/* block_map.c - mmap of a block:// object: the mapped range copied into memory.
 *
 * A block:// object has no kernel file of its own to map: its blocks sit anywhere on the
 * device (copy-on-write moves them at every commit), and the device's page cache would
 * show other objects' bytes past its end. So a mapping is served from a memfd per open
 * file, as large as the object, into which the ranges asked for are read (1 MiB at a
 * time, each once) through the file's own reads. Read-only and private mappings map a
 * read-only descriptor of it (a private one may still be written, copy-on-write; a shared
 * one cannot be made writable later). A shared writable mapping (a file open for writing,
 * numpy's mmap_mode='r+') maps the memfd itself: the file's own writes go to the memfd
 * too while it exists, and fsync and the last close write back the 1 MiB chunks whose
 * bytes differ from the object's, before their commit (as the S3 wing uploads a mapped
 * staging file at close).
 *
 * What this does not give: msync as a commit point (fsync or close is), a mapping that
 * sees writes made through other descriptors or processes (each open file has its copy,
 * taken when the range was first mapped), and laziness below the mapped range (mapping
 * 10 GiB reads 10 GiB into memory). So two shared writable mappings of one object by two
 * open files (two processes of sqlite3 in WAL mode, both mapping the -shm file) would
 * each write into a copy of its own and lose the other's writes without a word: the
 * second is refused (ENODEV, and a log line) while the first's open file lives
 * (bf_map_mark). A forked child shares its parent's mapping and mark. */
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

struct bmap {
    void *fh;
    int memfd, rofd;
    int shared_w; /* a shared writable mapping was made: written back, kept across writes */
    int markfd;   /* the object's mark while shared_w (bf_map_mark) */
    off_t size;
    uint8_t *have; /* per chunk: copied */
    struct bmap *next;
};

static struct bmap *maps;
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;

static void bmap_free(struct bmap *b)
{
    efd_close(b->memfd);
    efd_close(b->rofd);
    efd_close(b->markfd);
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
    b->memfd = b->rofd = b->markfd = -1;
    int fd = memfd_create("s3shim-block-map", MFD_CLOEXEC);
    if (fd >= 0 && sys.ftruncate(fd, size) == 0) {
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        int ro = sys.open(p, O_RDONLY | O_CLOEXEC);
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
    if (sys.ftruncate(b->memfd, size) < 0) return -errno;
    if (n > had) {
        uint8_t *h = realloc(b->have, n);
        if (!h) return -ENOMEM;
        memset(h + had, 0, n - had);
        b->have = h;
    }
    b->size = size;
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
        off_t at = c * MAP_CHUNK;
        size_t want = (size_t)(b->size - at < MAP_CHUNK ? b->size - at : MAP_CHUNK), got = 0;
        while (got < want && e == 0) {
            ssize_t r = bf_pread(b->fh, buf + got, want - got, at + (off_t)got);
            if (r < 0) e = (int)r;
            else if (r == 0) break; /* shortened meanwhile: the rest reads as zeros */
            else got += (size_t)r;
        }
        for (size_t w = 0; e == 0 && w < got;) {
            ssize_t r = sys.pwrite(b->memfd, buf + w, got - w, at + (off_t)w);
            if (r <= 0) e = r < 0 ? -errno : -EIO;
            else w += (size_t)r;
        }
        if (e == 0) b->have[c] = 1;
    }
    free(buf);
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
    if (b && shared_w && b->markfd < 0 && (e = bf_map_mark(fh)) >= 0) {
        b->markfd = e;
        e = 0;
    }
    off_t end = off + (off_t)len;
    if (end > st.st_size || end < off) end = st.st_size;
    e = e < 0 ? e : !b ? -ENOMEM : off < end ? fill(b, off, end) : 0;
    if (e == 0 && shared_w) b->shared_w = 1;
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

void bf_map_written(void *fh, const void *buf, size_t len, off_t off)
{
    if (!__atomic_load_n(&maps, __ATOMIC_RELAXED)) return;
    pthread_mutex_lock(&maps_lock);
    struct bmap *b = find(fh);
    int keep = b && b->shared_w;
    off_t end = buf ? off + (off_t)len : off; /* (a truncation: to off) */
    if (keep && end > b->size && grow(b, end) < 0) keep = 0; /* written or truncated past its end */
    if (keep && buf) { /* the shared mapping shows the file's own writes */
        if (sys.pwrite(b->memfd, buf, len, off) != (ssize_t)len) keep = 0;
    } else if (keep && !buf && off < b->size) {
        keep = 0; /* shortened: the mapping cannot follow it */
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
            ssize_t r = bf_pwrite(fh, mine + w, n - w, at + (off_t)w);
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
