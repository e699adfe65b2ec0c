/* s3_stage_mv.c - rename of an object that a process of this host has staged (open
 * read-write, appended to, patched, or created and not closed yet).
 *
 * On a disk the descriptors of a renamed file stay with it: what was written before the
 * rename is under the new name at once, and what they write afterwards lands there too.
 * So the staged bytes, as its openers see them now, are uploaded under the new name
 * (ranges that are still the source's are copied on the server, not fetched), and the
 * staging entry follows the name: its files take the new name's staging names (every
 * process of the host finds the object staged under b), and its openers' later closes
 * upload under the new name (the header's `moved`: their own idea of the entry's names
 * is stale, the header's name is the one). Copying the server's version, as for
 * an object nobody has open, would lose what the openers wrote. Temporaries have their
 * own rename (s3_stage_tmp.c: uploaded under the new name only). */
#include "../log.h"
#include "../sys.h"
#include "s3.h"
#include "s3_stage.h"
#include "s3_stage_int.h"
#include "s3_stage_wb.h"

#include <errno.h>
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
    /* One hold of h->lock for the upload and the move: an opener's close between them
     * would upload to a, which the caller then deletes. */
    hlock(h);
    e = stg_upload_as(s, b->bucket, b->key);
    if (e < 0) {
        hunlock(h);
        slog_error("s3: renaming %s/%s to %s/%s failed: its staged bytes could not be uploaded under the new name; "
                   "the rename fails with EIO and both names stay as they were", a->bucket, a->key, b->bucket, b->key);
        s3_stage_close(s);
        return -EIO;
    }
    s3_stage_unlinked(m, b); /* as over a local file: b's openers keep their bytes, upload nothing */
    /* The entry takes b's staging names, so that b is found staged (stat, open, a second
     * rename) by every process of the host; h->lock, then the directory's. */
    char from[PATH_MAX + 8], to[PATH_MAX + 8], nb[PATH_MAX];
    stg_name(m, b->bucket, b->key, nb, sizeof nb);
    int dl = stg_dir_lock();
    wb_abort_recorded(m, s->base); /* a write-behind upload to a: a close uploads b whole */
    stg_suffix(s->base, ".data", from, sizeof from);
    stg_suffix(nb, ".data", to, sizeof to);
    int r = sys.renameat2(AT_FDCWD, from, AT_FDCWD, to, 0);
    stg_suffix(s->base, ".map", from, sizeof from);
    stg_suffix(nb, ".map", to, sizeof to);
    if (r == 0) r = sys.renameat2(AT_FDCWD, from, AT_FDCWD, to, 0);
    if (r < 0) { /* (the same directory: should not happen) the entry leaves it, as a removal */
        slog_warn("s3: %s/%s: its staging files could not take the new name (%s); its openers upload to %s/%s",
                  a->bucket, a->key, strerror(errno), b->bucket, b->key);
        stg_suffix(s->base, ".data", from, sizeof from);
        sys.unlink(from);
        stg_suffix(nb, ".data", to, sizeof to);
        sys.unlink(to);
        stg_suffix(s->base, ".map", from, sizeof from);
        sys.unlink(from);
        __atomic_store_n(&h->unlinked, 1, __ATOMIC_RELEASE);
        stg_active_add(-1);
    }
    snprintf(h->bucket, sizeof h->bucket, "%s", b->bucket);
    snprintf(h->key, sizeof h->key, "%s", b->key);
    __atomic_store_n(&h->moved, 1, __ATOMIC_RELEASE);
    stg_dir_unlock(dl);
    hunlock(h);
    s3_stage_close(s); /* joined read-only: uploads nothing */
    slog_debug("s3: %s/%s: renamed to %s/%s while staged: uploaded under the new name, and staged there", a->bucket,
               a->key, b->bucket, b->key);
    return 1;
}
