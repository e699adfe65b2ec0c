/* readahead.h - the sequential-reader detector and its growing window, shared by every
 * backend that prefetches (the S3 reader and the direct:// reader).
 *
 * A read that starts where the previous one ended is sequential: each such read doubles
 * the window (from `first` up to `max`) that the caller keeps fetched ahead; any other
 * read resets it. The state is per open file and the caller serialises access to it. */
#ifndef S3SHIM_READAHEAD_H
#define S3SHIM_READAHEAD_H

#include <stddef.h>
#include <sys/types.h>

struct readahead {
    off_t next;    /* where a sequential reader's next read starts */
    size_t window; /* bytes to keep fetched ahead of it */
    size_t first, max;
};

void ra_init(struct readahead *ra, size_t first, size_t max);

/* Does a read at off continue the sequence? */
static inline int ra_sequential(const struct readahead *ra, off_t off) { return off == ra->next; }

/* After a read of `done` bytes at off that ra_sequential() classed as `seq`: a sequential
 * reader's window doubles (up to max), anyone else's goes back to `first`. */
void ra_advance(struct readahead *ra, off_t off, size_t done, int seq);

#endif
