/* s3_writers.h - the streaming uploads of this process by name (s3_writers.c).
 *
 * A file open for writing exists on a disk from its open; an upload exists on the server
 * only from its close. So that the writing process itself sees what it would on a disk,
 * the path calls of the S3 wing ask here first: stat (and so chmod, utimes, access) answers
 * from the open upload, a listing shows it, unlink drops it, and rename or a second open
 * stage it (free while no part has been sent: the bytes are still in memory) or, once
 * parts are on the server, rename it at its commit. Other processes see it at close, as
 * any upload. Private to core/s3/. */
#ifndef S3SHIM_S3_WRITERS_H
#define S3SHIM_S3_WRITERS_H

#include "s3_mount.h"
#include "s3_stage.h"

#include <stddef.h>
#include <sys/stat.h>

struct s3_file;

/* A streaming writer opened (s3f_open) / freed (s3f_file_free; a no-op if never added). */
void s3w_add(struct s3_file *f);
void s3w_del(struct s3_file *f);

/* stat of p if this process streams an upload to it: its size so far. 0, or -ENOENT. */
int s3w_stat(struct s3_mount *m, const struct s3_path *p, struct stat *st);
/* Does this process stream an upload to a key below "prefix" (ending in '/')? */
int s3w_below(struct s3_mount *m, const char *bucket, const char *prefix);
/* unlink(p), or p replaced by a rename: its upload is abandoned (its descriptor takes
 * and drops what is written from then on, close returns 0). 1 if there was one, else 0. */
int s3w_drop(struct s3_mount *m, const struct s3_path *p);
/* Before p is opened again: an upload to p that has sent no part becomes staged
 * (s3_stage.c, which answers from then on). 0 (none, or staged), 1 one has sent parts and
 * stays streamed, -EBUSY p is where an upload renamed away is still to be completed,
 * -errno (staging failed). */
int s3w_settle(struct s3_mount *m, const struct s3_path *p, const char *why);
/* rename(a, b) of this process's upload to a, in one hold of the list (a close cannot
 * come between): one that has sent no part is staged (0: the caller renames the staged
 * object); one that has is completed under a at its commit and then moved to b on the
 * server, answering for b from now (1). 0 also when there is none; -errno. */
int s3w_rename(struct s3_mount *m, const struct s3_path *a, const struct s3_path *b);
/* Append the names uploads of this process make directly below prefix ("dir/" or "") to
 * *v (n used, cap allocated; s3_staged_name entries, as s3_stage_list gives). 0 or -ENOMEM. */
int s3w_list(struct s3_mount *m, const char *bucket, const char *prefix, struct s3_staged_name **v, size_t *n,
             size_t *cap);

/* fork: the list's lock is held across it (s3_atfork_*; nested for several mounts). */
void s3w_atfork_prepare(void);
void s3w_atfork_release(void);
void s3w_atfork_child(void); /* (the child forgets the parent's uploads, then releases) */

#endif
