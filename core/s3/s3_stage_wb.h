/* s3_stage_wb.h - write-behind of staged S3 files (s3_stage_wb.c), private to s3_stage.c.
 *
 * A staged file this process created (nothing to fetch from the server) uploads its
 * part-sized ranges while the program is still writing, once the program has written past
 * them by a part, so that close sends only what was left or written again. */
#ifndef S3SHIM_S3_STAGE_WB_H
#define S3SHIM_S3_STAGE_WB_H

#include "s3_mount.h"
#include "s3_stage.h"

#include <stdint.h>

struct stage_wb;

/* S3SHIM_WRITE_BEHIND: parts in flight per file (default 8), 0 = off. */
void wb_configure(int parts);
int wb_enabled(void);

/* Start write-behind for the staging file base (DIR/HASH) whose data descriptor is dfd;
 * gen is the change count of the shared map now. NULL when off or out of memory. */
struct stage_wb *wb_start(struct s3_mount *m, const struct s3_path *p, const char *base, int dfd, uint64_t gen);

/* This process is about to count a change of its own in the shared map (before the
 * increment: a change counted that this process did not announce is another's). */
void wb_own_change(struct stage_wb *w);

/* After this process wrote [off, end): note it, and send the parts the program has moved
 * past. gen: the map's change count now; unlinked: the object was removed. */
void wb_written(struct stage_wb *w, int64_t off, int64_t end, uint64_t gen, int unlinked);

/* No more write-behind for this file (truncate, fallocate, a writable mapping): the
 * upload started is aborted; close uploads the whole file as without write-behind. */
void wb_drop(struct stage_wb *w, const char *why);

/* At the final upload of `size` bytes (the map's lock held): wait for the parts in
 * flight and fill rs with what can be kept. 1: rs is to be passed to s3f_upload_fd(),
 * which takes the upload over (completes or aborts it); 0: upload as without write-behind
 * (what was started is aborted here). */
int wb_resume(struct stage_wb *w, int64_t size, uint64_t gen, int unlinked, struct s3_resume *rs);
/* s3f_upload_fd() returned e for the upload wb_resume() handed over. */
void wb_handed(struct stage_wb *w, int e);

/* Close: abort what was started and not handed over; free. In a forked child (not its
 * upload) nothing is sent or aborted. */
void wb_free(struct stage_wb *w);

/* The upload recorded beside the staging file base (HASH.wb) by a process that is gone
 * (killed, or replaced by exec): abort it and remove the record. */
void wb_abort_recorded(struct s3_mount *m, const char *base);

/* At a process's first look at the staging directory (its lock held): note the records
 * of uploads whose staging file nobody holds (dead processes)... */
void wb_orphans_scan(void);
/* ...and abort those of this mount's endpoints. */
void wb_orphans_abort(struct s3_mount *m);

#endif
