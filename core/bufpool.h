/* bufpool.h - the process's budget of buffer memory (S3SHIM_MEMORY).
 *
 * Every prefetch chunk and every part waiting to be uploaded takes its memory from
 * here. A caller that would exceed the budget waits until others give memory back, so
 * a process stays within it however many files it has open; one request is always let
 * through on an empty pool so that a single large part can never wait forever. Buffers
 * of 1 MiB and up are mappings of their own; up to 64 MiB of freed ones are kept, pages
 * populated, for the next request of the same size (outside the budget's count). */
#ifndef S3SHIM_BUFPOOL_H
#define S3SHIM_BUFPOOL_H

#include <stddef.h>

void bufpool_configure(size_t budget);
/* Allocate len bytes within the budget, waiting if need be (wait = 0: NULL instead). */
void *bufpool_get(size_t len, int wait);
void bufpool_put(void *p, size_t len);

#endif
