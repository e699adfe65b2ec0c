/* dio_align.c - see dio_align.h */
#include "dio_align.h"
#include "../sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>

unsigned dio_pow2(unsigned x)
{
    unsigned p = 1;
    while (p < x && p < (1u << 31)) p <<= 1;
    return p;
}

int dio_io_aligned(const struct dio_align *a, const void *buf, size_t len, off_t off)
{
    return dio_is((uint64_t)(uintptr_t)buf, a->mem) && dio_is((uint64_t)off, a->off) && dio_is(len, a->off);
}

void dio_cover(const struct dio_align *a, off_t off, size_t len, off_t *start, size_t *span)
{
    uint64_t s = dio_down((uint64_t)off, a->off), e = dio_up((uint64_t)off + len, a->off);
    *start = (off_t)s;
    *span = (size_t)(e - s);
}

int dio_sanitize(struct dio_align *a)
{
    if (!a->mem || !a->off || a->mem > (1u << 16) || a->off > (1u << 16)) return -1;
    a->mem = dio_pow2(a->mem);
    a->off = dio_pow2(a->off);
    if (a->off < 512) a->off = 512;
    return 0;
}

const char *dio_source_name(int source)
{
    return source == DIO_SRC_STATX ? "statx" : source == DIO_SRC_BLKSSZ ? "BLKSSZGET" : "default";
}

int dio_probe(int fd, const struct stat *st, struct dio_align *a, char *why, size_t whylen)
{
    struct statx sx;
    memset(&sx, 0, sizeof sx);
    memset(a, 0, sizeof *a);
    if (sys.statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN)) {
        if (!sx.stx_dio_mem_align || !sx.stx_dio_offset_align) {
            snprintf(why, whylen, "the filesystem reports no direct I/O support (statx DIOALIGN is 0)");
            return 1;
        }
        a->mem = sx.stx_dio_mem_align;
        a->off = sx.stx_dio_offset_align;
        a->source = DIO_SRC_STATX;
    } else if (S_ISBLK(st->st_mode)) {
        int ssz = 0;
        if (sys.ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0) {
            a->mem = a->off = (unsigned)ssz;
            a->source = DIO_SRC_BLKSSZ;
        }
    } else {
        struct statfs sf;
        if (sys.fstatfs(fd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)) {
            snprintf(why, whylen, "%s keeps files in memory: O_DIRECT would still go through the page cache",
                     sf.f_type == TMPFS_MAGIC ? "tmpfs" : "ramfs");
            return 1;
        }
    }
    if (!a->source) {
        a->mem = a->off = 4096;
        a->source = DIO_SRC_DEFAULT;
    }
    if (dio_sanitize(a) < 0) {
        snprintf(why, whylen, "unusable direct I/O alignment (memory %u, offset %u)", a->mem, a->off);
        return 1;
    }
    return 0;
}
