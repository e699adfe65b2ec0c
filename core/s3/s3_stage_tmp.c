/* s3_stage_tmp.c - temporaries: S3 files a process creates O_RDWR|O_CREAT|O_EXCL (the
 * signature of mkstemp, Python's tempfile, git's *.lock, rsync's .name.XXXXXX, sed -i,
 * zip, sort -T).
 *
 * Why: such a file is nearly always written, closed, then renamed over its final name or
 * removed. S3 has no rename: uploading it at close and renaming it after costs a second
 * transfer of every byte (a server-side copy) and a DELETE, and a temporary that is
 * removed was sent for nothing. So a temporary stays in its staging file until:
 *   - its rename: uploaded under the new name (the only transfer; nothing is ever written
 *     under the temporary name, so no copy and no DELETE); the rename returns 0 only once
 *     the new name is on the server, and on failure the temporary stays as it was;
 *   - its removal: dropped, nothing reaches the server;
 *   - fsync: uploaded under its name now (durability asked), an ordinary staged object
 *     from then on (s3_stage.c);
 *   - the end of its process (exit with it open or closed, _exit, exec): uploaded under its
 *     name, as every write not closed is committed then (bk_s3_tmp_at_end);
 *   - a fatal signal or SIGKILL: a temporary closed before (closed_gen == gen) is a file on
 *     a disk would be: kept, and uploaded under its name by the next process of the host
 *     that stages, opens, stats or lists anything (stg_tmp_adopt; s3_stage_ns.c's
 *     ns_ready), before it answers; one written since its last close
 *     is lost, as any write not closed is, and its staging file removed (s3_stage_dir.c).
 * Its close returns 0 once the bytes are in the staging file.
 *
 * The mark is stage_hdr.tmp_pid (the creating process), in the map every process of the
 * host shares; every upload under its name clears it. The creating process keeps its hold
 * on the staging file after the close (a kept struct s3_stage in g_kept), so the object
 * stays live for the host: other processes stat, list, open and read it from the staging
 * file (s3_stage_ns.c); an O_WRONLY open of it is staged too (never a stream beside it);
 * one that renames it does what its creator would; one that writes to it and closes it
 * uploads it under its name (then it is ordinary). A forked child does not own its
 * parent's temporaries (it leaves them at its end); S3SHIM_STAGING_DEFER=0 turns it off. */
#include "../efd.h"
#include "../log.h"
#include "../sys.h"
#include "s3.h"
#include "s3_stage.h"
#include "s3_stage_int.h"
#include "s3_stage_wb.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int g_on = 1; /* atomic: set by the first mount, read at every staged open */
static struct s3_stage *g_kept; /* closed temporaries of this process, under stg_lock */

void stg_tmp_configure(int on) { __atomic_store_n(&g_on, on, __ATOMIC_RELAXED); }

int stg_tmp_begin(struct s3_stage *s)
{
    if (!__atomic_load_n(&g_on, __ATOMIC_RELAXED) || s->acc != O_RDWR ||
        (s->flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL))
        return 0;
    __atomic_store_n(&s->h->tmp_pid, (int32_t)getpid(), __ATOMIC_RELEASE);
    return 1;
}

static int mine(const struct stage_hdr *h)
{
    return stg_is_tmp(h) && __atomic_load_n(&h->tmp_pid, __ATOMIC_ACQUIRE) == (int32_t)getpid();
}

/* The kept temporary of base, taken off the list; NULL if none. */
static struct s3_stage *kept_take(const char *base)
{
    pthread_mutex_lock(&stg_lock);
    struct s3_stage *k = NULL;
    for (struct s3_stage **pp = &g_kept; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->base, base) == 0) {
            k = *pp;
            *pp = k->next;
            break;
        }
    pthread_mutex_unlock(&stg_lock);
    return k;
}

int stg_tmp_close(struct s3_stage *s)
{
    if (!mine(s->h)) return 0;
    stg_list_del(s);
    pthread_mutex_lock(&stg_lock);
    int held = 0;
    for (struct s3_stage *k = g_kept; k && !held; k = k->next) held = strcmp(k->base, s->base) == 0;
    pthread_mutex_unlock(&stg_lock);
    if (held || stg_list_has(s->base, s)) return 2; /* another open of ours keeps it */
    wb_free(s->wb);
    s->wb = NULL;
    if (s->pfd >= 0) efd_close(s->pfd);
    s->pfd = -1;
    sys.fcntl(s->mapfd, F_SETFD, FD_CLOEXEC); /* no program this one runs holds it for us */
    /* every write so far closed: if we die now, the next process uploads it */
    __atomic_store_n(&s->h->closed_gen, __atomic_load_n(&s->h->gen, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
    pthread_mutex_lock(&stg_lock);
    s->next = g_kept;
    g_kept = s;
    pthread_mutex_unlock(&stg_lock);
    slog_debug("s3: %s/%s: temporary closed, upload deferred: sent at its rename under the new name, never if it "
               "is removed, else at fsync or the end of the process (S3SHIM_STAGING_DEFER)",
               s->path.bucket, s->path.key);
    return 1;
}

/* Our kept hold of base goes (the temporary was renamed or removed: nothing to upload). */
static void drop_kept(struct s3_mount *m, const struct s3_path *p)
{
    char base[PATH_MAX];
    stg_name(m, p->bucket, p->key, base, sizeof base);
    struct s3_stage *k = kept_take(base);
    if (k) s3_stage_close(k);
}

int s3_stage_tmp_unlink(struct s3_mount *m, const struct s3_path *p)
{
    if (!stg_maybe_staged() || stg_tmp_owner(m, p) != getpid()) return 0;
    s3_stage_unlinked(m, p); /* open descriptors keep their bytes; nothing is uploaded */
    drop_kept(m, p);
    slog_debug("s3: %s/%s: temporary removed: nothing of it was sent", p->bucket, p->key);
    return 1;
}

/* Upload the whole staging data file dfd as p; *size: its size. 0 or -errno. */
static int upload_whole(struct s3_mount *m, const struct s3_path *p, int dfd, int64_t *size)
{
    struct stat st;
    char etag[128];
    if (sys.fstat(dfd, &st) < 0) return -errno;
    *size = (int64_t)st.st_size;
    return s3f_upload_fd(m, p, dfd, *size, NULL, NULL, NULL, NULL, NULL, NULL, etag, sizeof etag);
}

int s3_stage_tmp_rename(struct s3_mount *m, const struct s3_path *a, const struct s3_path *b, unsigned flags)
{
    if (b->is_root || !stg_maybe_staged() || !stg_tmp_owner(m, a)) return 0;
    if (flags & ~RENAME_NOREPLACE) return -EINVAL;
    if (strcmp(a->bucket, b->bucket) == 0 && strcmp(a->key, b->key) == 0) return 1;
    struct stat st;
    struct s3_path bb = *b;
    if ((flags & RENAME_NOREPLACE) && (s3_stage_stat(m, b, &st) == 0 || s3_stat_path(m, &bb, &st) == 0))
        return -EEXIST;
    struct s3_stage *s;
    int e = s3_stage_open(m, a, O_RDONLY, NULL, &s); /* join it: the staging file is there */
    if (e < 0) return e;
    struct stage_hdr *h = s->h;
    hlock(h);
    if (!stg_is_tmp(h)) { /* uploaded under its name meanwhile: an ordinary rename */
        hunlock(h);
        s3_stage_close(s);
        return 0;
    }
    uint64_t g = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
    int64_t size = 0;
    e = upload_whole(m, b, s->dfd, &size);
    if (e == 0) __atomic_store_n(&h->up_gen, g, __ATOMIC_RELEASE); /* on the server, if under another name */
    hunlock(h);
    if (e < 0) {
        s3_stage_close(s);
        int r = s3_rename_errno(e);
        slog_error("s3: renaming the temporary %s/%s to %s/%s failed on the server (%s): the rename fails with %s; "
                   "the temporary stays as it was (uploaded under its name when its process ends, unless renamed or "
                   "removed before)", a->bucket, a->key, b->bucket, b->key, strerror(-e), r == -EIO ? "EIO" : strerror(-r));
        return r;
    }
    /* As over a local file: b's openers of this host keep their bytes and upload nothing. */
    s3_stage_unlinked(m, b);
    s3_stage_unlinked(m, a);
    s3_stage_close(s);
    drop_kept(m, a);
    s3_meta_changed(m, a->bucket, a->key, 0, NULL, NULL);
    slog_debug("s3: %s/%s: temporary renamed to %s/%s: uploaded under the new name only (%lld bytes)", a->bucket,
               a->key, b->bucket, b->key, (long long)size);
    return 1;
}

int bk_s3_tmp_at_end(void)
{
    /* Open ones (at exec: they may live on in the next program, as ordinary staged files;
     * at exit the shim has closed them, so they are kept ones by now)... */
    int failed = stg_list_tmp_upload();
    /* ...and kept ones: uploaded under their names, then let go. */
    pthread_mutex_lock(&stg_lock);
    struct s3_stage *k = g_kept;
    g_kept = NULL;
    pthread_mutex_unlock(&stg_lock);
    while (k) {
        struct s3_stage *next = k->next;
        if (mine(k->h)) {
            __atomic_store_n(&k->h->tmp_pid, 0, __ATOMIC_RELEASE);
            slog_debug("s3: %s/%s: the process ends with this temporary neither renamed nor removed: uploaded "
                       "under its name", k->path.bucket, k->path.key);
        }
        if (s3_stage_close(k) < 0) failed++;
        k = next;
    }
    return failed;
}

void stg_tmp_atfork_child(void)
{
    struct s3_stage *k = g_kept; /* the parent's: it renames, removes or uploads them */
    g_kept = NULL;
    while (k) {
        struct s3_stage *next = k->next;
        stg_free(k); /* our copies of its descriptors; its holds stay */
        k = next;
    }
}

/* --- temporaries whose process died --------------------------------------------------------- */

int stg_tmp_adopt(struct s3_mount *m, const char *base)
{
    char mp[PATH_MAX + 8], dp[PATH_MAX + 8], mine[PATH_MAX];
    stg_suffix(base, ".map", mp, sizeof mp);
    stg_suffix(base, ".data", dp, sizeof dp);
    int fd = sys.open(mp, O_RDWR | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    struct stage_hdr *h = MAP_FAILED;
    /* our claim: nobody joins or removes it while we upload (they take the flock too) */
    if (sys.flock(fd, LOCK_EX | LOCK_NB) == 0 && sys.fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof *h)
        h = sys.mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int r = 0;
    if (h != MAP_FAILED && stg_tmp_orphan(h)) {
        stg_name(m, h->bucket, h->key, mine, sizeof mine);
        int ours = strcmp(mine, base) == 0, dfd = ours ? sys.open(dp, O_RDONLY | O_CLOEXEC) : -1;
        if (!ours) r = 2; /* another endpoint set's: its own mount adopts it */
        if (dfd >= 0) {
            struct s3_path p = {.key = h->key};
            snprintf(p.bucket, sizeof p.bucket, "%s", h->bucket);
            pid_t dead = (pid_t)h->tmp_pid;
            uint64_t g = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
            int64_t size = 0;
            r = upload_whole(m, &p, dfd, &size);
            if (r == 0) {
                __atomic_store_n(&h->up_gen, g, __ATOMIC_RELEASE);
                __atomic_store_n(&h->tmp_pid, 0, __ATOMIC_RELEASE); /* an ordinary copy of what the server has */
                s3_meta_changed(m, p.bucket, p.key, 0, NULL, NULL);
                slog_info("s3: %s/%s: a temporary that process %d closed and never renamed or removed before it "
                          "died: uploaded under its name (%lld bytes)", p.bucket, p.key, (int)dead,
                          (long long)size);
                r = 1;
            } else {
                slog_error("s3: %s/%s: uploading the temporary process %d left when it died failed (%s); it stays in "
                           "%s for the next try", p.bucket, p.key, (int)dead, strerror(-r), dp);
            }
        }
        if (dfd >= 0) sys.close(dfd);
    }
    if (h != MAP_FAILED) munmap(h, sizeof *h);
    sys.close(fd); /* releases the flock */
    return r;
}

static struct stg_bases g_orph = STG_BASES_INIT; /* noted by this process's scan, not yet adopted */

void stg_tmp_orphan_note(const char *base) { stg_bases_add(&g_orph, base); }

static int adopt_one(struct s3_mount *m, const char *base)
{
    int r = stg_tmp_adopt(m, base);
    if (r == 2) return 1; /* another endpoint set's */
    if (r == 1) {         /* now an unheld copy the server has: removed like any */
        int dl = stg_dir_lock();
        if (dl >= 0) {
            stg_remove_if_unheld(base, 0);
            stg_dir_unlock(dl);
        }
    }
    return 0;
}

void stg_tmp_orphans_adopt(struct s3_mount *m) { stg_bases_each(&g_orph, m, adopt_one); }
