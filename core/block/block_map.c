/* block_map.c - mmap of a block:// object: the mapped range copied into memory.
 *
 * A block:// object has no kernel file of its own to map: its blocks sit anywhere on the
 * device (copy-on-write moves them at every commit), and the device's page cache would
 * show other objects' bytes past its end. So a mapping is served from a memfd per open
 * file, as large as the object, into which the ranges asked for are read (1 MiB at a
 * time, each once) through the file's own reads. The program maps a read-only descriptor
 * of that memfd: MAP_PRIVATE mappings may still be written (copy-on-write, as on any
 * file), and a shared mapping cannot later be made writable.
 *
 * What this gives: git's read-only mappings (config, index, pack windows), Python's and
 * numpy's mmap_mode='r' and 'c', any MAP_PRIVATE use. What it does not: a shared writable
 * mapping (ENODEV: nothing would write it back), a shared mapping that sees later writes
 * (it is a copy of the object as it was when the range was first mapped), and laziness
 * below the mapped range (mapping 10 GiB reads 10 GiB into memory). */
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

/* Copy the chunks of [off, end) not copied yet. */
static int fill(struct bmap *b, off_t off, off_t end)
{
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
    if ((flags & MAP_TYPE) == MAP_SHARED && (prot & PROT_WRITE)) return -ENODEV;
    if (off < 0 || len == 0) return -EINVAL;
    struct stat st;
    int e = bf_fstat(fh, &st);
    if (e < 0) return e;
    pthread_mutex_lock(&maps_lock);
    struct bmap **pp = &maps, *b;
    for (; (b = *pp) && b->fh != fh; pp = &b->next) {
    }
    if (b && b->size != st.st_size) { /* written through this file since: a new copy (mappings keep theirs) */
        *pp = b->next;
        bmap_free(b);
        b = NULL;
    }
    if (!b && (b = bmap_new(fh, st.st_size))) {
        b->next = maps;
        maps = b;
    }
    off_t end = off + (off_t)len;
    if (end > st.st_size || end < off) end = st.st_size;
    e = !b ? -ENOMEM : off < end ? fill(b, off, end) : 0;
    int fd = e < 0 ? e : b->rofd;
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

void bf_map_written(void *fh)
{
    if (__atomic_load_n(&maps, __ATOMIC_RELAXED)) bf_map_forget(fh); /* later mappings copy afresh */
}

void bf_map_atfork_child(void) { pthread_mutex_init(&maps_lock, NULL); }
