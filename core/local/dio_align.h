/* dio_align.h - O_DIRECT alignment: what a file or device demands, and the arithmetic
 * that turns any (offset, length) into the aligned span that covers it.
 *
 * Linux tells the memory and file-offset alignment of direct I/O through
 * statx(STATX_DIOALIGN) (6.1+); older kernels, and devices that do not say, fall back to
 * the logical block size (BLKSSZGET) or 4096. A filesystem that reports no direct I/O
 * support (tmpfs answers with zero alignment, or none at all) counts as refusing it. Every
 * alignment is a power of two. Pure functions except dio_probe(), so unit tests cover them. */
#ifndef S3SHIM_DIO_ALIGN_H
#define S3SHIM_DIO_ALIGN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct dio_align {
    unsigned mem; /* buffer address alignment */
    unsigned off; /* file offset and length alignment */
    int source;   /* DIO_SRC_*: where the figures came from */
};

enum { DIO_SRC_STATX = 1, DIO_SRC_BLKSSZ, DIO_SRC_DEFAULT };

static inline uint64_t dio_down(uint64_t x, unsigned a) { return x & ~(uint64_t)(a - 1); }
static inline uint64_t dio_up(uint64_t x, unsigned a) { return (x + a - 1) & ~(uint64_t)(a - 1); }
static inline int dio_is(uint64_t x, unsigned a) { return (x & (a - 1)) == 0; }

/* Smallest power of two >= x (x >= 1, at most 2^31). */
unsigned dio_pow2(unsigned x);

/* Can (buf, len, off) go to the device as it is? */
int dio_io_aligned(const struct dio_align *a, const void *buf, size_t len, off_t off);

/* The aligned span [*start, *start + *span) that covers [off, off + len). */
void dio_cover(const struct dio_align *a, off_t off, size_t len, off_t *start, size_t *span);

/* Clean up reported figures: powers of two, mem <= 4096 <= page, off >= 512, off >= mem
 * is not required. Returns 0, or -1 if they cannot be used. */
int dio_sanitize(struct dio_align *a);

/* What fd (a regular file or a block device, described by st) needs. Returns 0 with *a
 * filled, 1 if the filesystem refuses or ignores O_DIRECT (why says so), -errno. */
int dio_probe(int fd, const struct stat *st, struct dio_align *a, char *why, size_t whylen);

const char *dio_source_name(int source);

#endif
