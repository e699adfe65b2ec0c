/* block.h - the block wing (block://) as the rest of s3shim sees it: the backend, and the
 * administration the `s3shim blk` command runs (format, check, ls, df).
 *
 * Everything else in core/block/ is private to the wing (blk.h lists its layers);
 * docs/block-format.md is the on-disk format and the commit protocol. */
#ifndef S3SHIM_BLOCK_H
#define S3SHIM_BLOCK_H

#include "../backend.h"

#include <stdio.h>

extern const struct backend_ops bk_block_ops;

/* The process is ending (or exec'ing): the closes waiting in a batch are committed, and
 * what its block:// commits left only visible (group commit, S3SHIM_BLOCK_COMMIT_MS) is
 * made durable. How many closed files could not be committed. */
int bk_block_at_exit(void);
/* The process is ending (not exec'ing, which may fail): the same, and a store no other
 * process uses loses its files in /dev/shm (visible roots, lock files). */
int bk_block_at_end(void);

/* Make a new, empty store on PATH (a block device or a regular file). Refuses a device
 * that holds a filesystem, a partition table, a block:// store, or is in use (mounted),
 * unless force. Returns 0 or -errno with one line in err. */
int blk_format(const char *path, int force, const char *label, char *err, size_t errlen);

/* Verify a store (docs/block-format.md, "What s3shim blk check verifies"), printing each
 * finding to out. Returns 0 clean, 1 repaired (repair), 4 damage found, 8 cannot run. */
int blk_check(const char *path, int repair, int verbose, FILE *out);

/* The same; crash: an invalid root slot is expected (an interrupted commit), not damage. */
int blk_check_ex(const char *path, int repair, int verbose, int crash, FILE *out);

/* Power-loss simulation (blk_crash.c): run workloads on a small store at PATH (a file it
 * creates, or a block device whose first 8 MiB it overwrites: force), recording every
 * write and flush; then rebuild the device at `states` cut points per workload, with the
 * writes not yet flushed dropped, reordered or torn at 512-byte sectors, and prove each
 * state: check clean, and exactly the objects whose close returned 0 present and intact,
 * the one in flight old or new, never a mix. Prints the counts; returns 0 if every state
 * held, 1 if one did not, 2 if it could not run. */
int blk_crashtest(const char *path, int states, unsigned seed, int force, FILE *out);

/* List the entries whose key starts with prefix: mode, size, mtime, key. 0 or -errno. */
int blk_ls(const char *path, const char *prefix, FILE *out, char *err, size_t errlen);

/* Capacity, use, objects and fragmentation. 0 or -errno. */
int blk_df(const char *path, FILE *out, char *err, size_t errlen);

/* Discard every free range of the store at once (like fstrim; blk_discard.c): one line
 * with the bytes discarded. 0, -EOPNOTSUPP (the device cannot), or -errno. */
int blk_trim(const char *path, FILE *out, char *err, size_t errlen);

#endif
