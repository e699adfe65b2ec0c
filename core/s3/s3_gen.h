/* s3_gen.h - generation counters shared by the processes of one run, so that what one
 * process creates, replaces, renames or deletes is seen at once by the others (forked
 * children, exec'd programs, the parent), while their stat caches keep serving answers
 * nothing has changed.
 *
 * A counter belongs to a key (bucket + object key, trailing '/' ignored), by hash, in a
 * fixed table of S3GEN_SLOTS counters: a collision only makes a cached answer look stale.
 * A process that changes a key bumps the counters of the key and of every directory
 * above it, the bucket itself included, once the server has answered. A cached answer
 * records the key's counter as read *before* its request was sent and is good only while
 * the counter still holds that value.
 *
 * The table lives in a file in /dev/shm named by uid and the pid of the run's first
 * process (S3SHIM_ROOT_PID), mode 0600, mapped MAP_SHARED on first use; forked children
 * keep the mapping, exec'd programs map it again by name. The run's first process
 * removes it when it exits; a run killed before that leaves it behind, and the next
 * run's first user removes files of pids that no longer exist. Without a run (the C
 * library used alone) or when the file cannot be used, the table is private to the
 * process: coherence within it stays, other processes fall back to the TTL.
 *
 * One more word after the counters holds flags for things said once per run
 * (s3_gen_once), for every backend.
 *
 * Checking a cached answer is one atomic load (the entry keeps its slot): no lock, no
 * hashing, no system call (after the first use in a process, which maps the file). */
#ifndef S3SHIM_S3_GEN_H
#define S3SHIM_S3_GEN_H

#include <stdint.h>

#define S3GEN_SLOTS 4096 /* 32 KiB */

/* Called when a mount is made: remembers the run (S3SHIM_ROOT_PID) from the environment
 * as it is at start-up. Cheap, no system call; may be called more than once. */
void s3_gen_init(void);
/* The counter of bucket/key now. */
uint64_t s3_gen_get(const char *bucket, const char *key);
/* The same in two steps, for a cache entry that keeps the slot of its key: the hash once,
 * then one load per lookup. */
unsigned s3_gen_slot(const char *bucket, const char *key);
uint64_t s3_gen_at(unsigned slot);
/* A change of bucket/key reached the server: bump the counters of every directory above
 * it (the bucket first), then its own. Returns the key's own counter as it was just
 * before this bump. */
uint64_t s3_gen_bump(const char *bucket, const char *key);
/* Things said once per run (a log line every process of a pipeline would repeat): 1 for
 * the first process of the run (and its first thread) to ask for this bit, 0 after. With
 * a private table, once per process. */
#define S3GEN_ONCE_LINKS 0 /* "this store keeps no hard or symbolic links" */
int s3_gen_once(unsigned bit);
/* 1 when the table is shared with the run, 0 when it is private to this process. */
int s3_gen_shared(void);
/* The file's path (for tests and `s3shim config`); "" when none. */
const char *s3_gen_path(void);

#endif
