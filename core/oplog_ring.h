/* oplog_ring.h - faulting in the op log's next segment off the calling thread without a
 * thread of ours (see oplog_ring.c). Called with the op log's map lock held. */
#ifndef S3SHIM_OPLOG_RING_H
#define S3SHIM_OPLOG_RING_H

#include <stddef.h>

/* Queue MADV_POPULATE_WRITE of [p, p+len) to the kernel's io_uring worker; 0 if queued,
 * -1 if there is no ring (then the caller's writes fault the pages in themselves). */
int oplog_ring_populate(void *p, size_t len);
/* In a forked child: drop the parent's ring (never used here); a ring of its own comes
 * with the next segment. */
void oplog_ring_atfork_child(void);

#endif
