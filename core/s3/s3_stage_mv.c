/* s3_stage_mv.c - rename of an object that a process of this host has staged (open
 * read-write, appended to, patched, or created and not closed yet).
 *
 * On a disk the descriptors of a renamed file stay with it: what was written before the
 * rename is under the new name at once, and what they write afterwards lands there too.
 * So the staged bytes, as its openers see them now, are uploaded under the new name
 * (ranges that are still the source's are copied on the server, not fetched), and the
 * staging entry follows the name: its files leave the directory (a new open of either
 * name stages afresh) but stay with their openers, whose later changes their closes
 * upload under the new name (the header's `moved`). Copying the server's version, as for
 * an object nobody has open, would lose what the openers wrote. Temporaries have their
 * own rename (s3_stage_tmp.c: uploaded under the new name only). */
#include "../log.h"
#include "../sys.h"
#include "s3.h"
#include "s3_stage.h"
#include "s3_stage_int.h"
#include "s3_stage_wb.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

int s3_stage_rename(struct s3_mount *m, const struct s3_path *a, const struct s3_path *b)
{
    if (b->is_root || s3_stage_live(m, a) != 1) return 0;
    struct s3_stage *s;
    int e = s3_stage_open(m, a, O_RDONLY, NULL, &s); /* join it: the staging file is there */
    if (e < 0) return e;
    struct stage_hdr *h = s->h;
    hlock(h);
    e = stg_upload_as(s, b->bucket, b->key);
    hunlock(h);
    if (e < 0) {
        slog_error("s3: renaming %s/%s to %s/%s failed: its staged bytes could not be uploaded under the new name; "
                   "the rename fails with EIO and both names stay as they were", a->bucket, a->key, b->bucket, b->key);
        s3_stage_close(s);
        return -EIO;
    }
    s3_stage_unlinked(m, b); /* as over a local file: b's openers keep their bytes, upload nothing */
    char mp[PATH_MAX + 8], dp[PATH_MAX + 8];
    stg_suffix(s->base, ".map", mp, sizeof mp);
    stg_suffix(s->base, ".data", dp, sizeof dp);
    /* h->lock, then the directory's: the order an ending upload takes them in. */
    hlock(h);
    int dl = stg_dir_lock();
    snprintf(h->bucket, sizeof h->bucket, "%s", b->bucket);
    snprintf(h->key, sizeof h->key, "%s", b->key);
    __atomic_store_n(&h->moved, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&h->unlinked, 1, __ATOMIC_RELEASE);
    wb_abort_recorded(m, s->base); /* a write-behind upload to a: a close uploads b whole */
    sys.unlink(dp);
    sys.unlink(mp);
    stg_active_add(-1);
    stg_dir_unlock(dl);
    hunlock(h);
    s3_stage_close(s); /* joined read-only: uploads nothing, and the names are gone already */
    slog_debug("s3: %s/%s: renamed to %s/%s while staged: uploaded under the new name; its openers' closes "
               "upload there", a->bucket, a->key, b->bucket, b->key);
    return 1;
}
