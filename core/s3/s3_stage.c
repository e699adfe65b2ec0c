/* s3_stage.c - S3 objects for programs that do not write strictly sequentially: writes,
 * truncation and mappings of staged objects, and their upload at fsync and close.
 *
 * Which opens stage. O_RDWR (any), O_APPEND, and O_WRONLY without O_TRUNC on an object
 * that has content. A plain O_RDONLY open keeps the streaming reader and O_WRONLY|O_TRUNC
 * (or a new object) keeps the streaming upload, with no local copy, except that:
 *   - a streaming writer that writes anywhere but its end, ftruncates, fallocates or is
 *     mapped becomes staged; while it has uploaded nothing yet (less than one part, the
 *     bytes are still in memory) that is free. Once parts are on the server the write fails
 *     with EINVAL and one log line (open it O_RDWR, or raise S3SHIM_PART_SIZE): the upload
 *     is abandoned, close returns EIO, nothing partial appears;
 *   - a streaming writer that has sent no part yet becomes staged when its process forks
 *     or spawns with it on a descriptor that survives exec (s3f_share): the child, or the
 *     program it execs, writes at the shared offset too;
 *   - a streaming reader that is mapped becomes staged (mmap needs a real file);
 *   - an O_RDONLY open of an object that a live process of this host has staged reads the
 *     staging file, so it sees that process's writes.
 *
 * The staging file. One per object and host, shared by every process that has the object
 * open staged, in S3SHIM_STAGING_DIR (default $XDG_CACHE_HOME/s3shim-staging, else
 * /var/tmp/s3shim-staging-UID: /tmp is often small and in RAM), named by a hash of the
 * endpoint set, bucket and key: HASH.data (sparse, the object's bytes) and HASH.map (a
 * small shared map: the source object's ETag and size, one byte per 1 MiB block saying
 * whether it has been fetched, a change counter and a process-shared robust mutex). The
 * object is fetched lazily: a read, a partial write or a mapping fetches the blocks it
 * touches that are not there yet (parallel ranged GETs with If-Match, under the mutex, so
 * one block is fetched once per host); a sequential reader fetches ahead (a window of up
 * to 64 MiB in parallel ranges, started once half of it has been read), and those bytes
 * go from memory to the reader, not into the staging file (s3_stage_fetch.c).
 * Opening a 10 GiB object O_RDWR to patch a header fetches a few MiB.
 *
 * Upload. At close or fsync of a descriptor open for writing, when the staging file
 * changed since the last upload (any write, truncation, fallocate, a shared writable
 * mapping, or the object was created), the whole object is uploaded through the same
 * multipart code as a streaming writer (s3f_upload_fd in s3_file.c: parallel parts, MD5
 * checked); parts the program never touched are copied on the server (UploadPartCopy with
 * If-Match) instead of being fetched and sent back. A new file (created or truncated at
 * open: nothing to fetch) sends its parts while the program writes (write-behind,
 * s3_stage_wb.c), and close sends only the rest. A file that was never written is not
 * uploaded. Close returns 0 only when the object is on the server. A temporary (a file
 * this process created O_RDWR|O_CREAT|O_EXCL: mkstemp) is the exception: its close keeps
 * it in the staging file, and its rename uploads it under the new name (s3_stage_tmp.c). If the object changed
 * on the server while it was staged, the close still replaces it (last close wins) and a
 * warning says so; blocks that were not fetched yet can then no longer be read (412): the
 * read or the upload fails with EIO and a log line.
 *
 * Sharing. Processes of one host that open the object staged at once share the staging
 * file: they see each other's writes at once (and mmap, fstat, sendfile work on the real
 * file); each close of a writer uploads what is there, so the last close wins on the
 * server. While an object is staged, stat of its key answers from the staging file (a
 * new object exists for the host before its first upload); unlink of it stops its
 * uploads (open descriptors keep their bytes, as with a removed local file), and rename
 * uploads it under the new name, where its openers' later closes upload too
 * (s3_stage_mv.c).
 * DIR/.active counts the host's staged objects, so that stat and open look for staging
 * files only while there are some. fcntl (F_SETLK, F_OFD_*) and flock locks of every S3 descriptor, staged or not,
 * go to HASH.lock, a file per object: they work between the processes of one host, never
 * between hosts.
 *
 * Lifetime. Every opener holds a shared flock on HASH.map; the last close (a LOCK_EX that
 * succeeds, under a lock of the directory) removes HASH.data and HASH.map. A process that
 * dies (SIGKILL) loses what it had not closed; its staging files are removed by the next
 * process that stages anything (the same test finds them unheld). Nothing partial is ever
 * visible on the server: an interrupted multipart upload is never completed.
 *
 * Limit. S3SHIM_STAGING_LIMIT (default 16G) caps the bytes staging files of the host hold:
 * opening an object larger than that staged, or writing past it, fails with ENOSPC and one
 * log line naming the object and the setting.
 *
 * fork and exec. A forked child shares the staging file (it takes its own hold on the map
 * at fork); across exec the shim hands the data file's descriptor over (local_fd) and the
 * new program joins the same staging file (s3_stage_open_fd).
 *
 * Modules. The staging code is split by concern: s3_stage_dir.c (the directory, names, limit,
 * cleanup of dead processes' files), s3_stage_open.c (joining or creating a staging file,
 * exec, fork), s3_stage_fetch.c (lazy range fetch, reads), s3_stage_wb.c (write-behind),
 * s3_stage_ns.c (stat, listing, removal of staged keys), s3_stage_tmp.c (temporaries)
 * and this file. */
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
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A write at off; `locked`: the header's lock is held already (s3_stage_append). */
static ssize_t stage_write(struct s3_stage *s, const void *buf, size_t len, off_t off, int locked)
{
    if (len == 0) return 0;
    struct stage_hdr *h = s->h;
    int64_t end = off + (int64_t)len;
    struct stat st;
    if (sys.fstat(s->dfd, &st) < 0) return -errno;
    if (end > st.st_size) {
        int e = stg_over_limit(s, end, "this write");
        if (e < 0) return e;
    }
    int e;
    set_written(h, off, end);
    if (all_present(h, off, end)) {
        e = stg_write_all(s->dfd, buf, len, off);
    } else { /* partly covered blocks are fetched first; whole ones are simply written */
        if (!locked) hlock(h);
        int64_t lim = flimit(h);
        int64_t fb = off >> BLK_SHIFT, lb = (end - 1) >> BLK_SHIFT;
        e = 0;
        if (!present(h, fb) && off > fb * BLK) e = stg_fetch_locked(s, fb * BLK, fb * BLK + BLK);
        int64_t lend = lb * BLK + BLK < lim ? lb * BLK + BLK : lim;
        if (e == 0 && !present(h, lb) && end < lend) e = stg_fetch_locked(s, lb * BLK, lend);
        if (e == 0) e = stg_write_all(s->dfd, buf, len, off);
        if (e == 0)
            for (int64_t b = fb; b <= lb; b++) set_present(h, b);
        if (!locked) hunlock(h);
    }
    if (e < 0) {
        if (e == -ENOSPC || e == -EDQUOT)
            slog_error("s3: %s/%s: the staging directory %s is full; free space there or set S3SHIM_STAGING_DIR",
                       s->path.bucket, s->path.key, stg_dir);
        return e;
    }
    mark_wrote(s);
    wb_own_change(s->wb);
    uint64_t g = changed(h);
    wb_written(s->wb, off, end, g, stg_wb_gone(h));
    return (ssize_t)len;
}

ssize_t s3_stage_pwrite(struct s3_stage *s, const void *buf, size_t len, off_t off)
{
    return s->acc == O_RDONLY ? -EBADF : stage_write(s, buf, len, off, 0);
}

/* The end found and written under the header's lock: processes of the host appending to
 * one staged object (parallel jobs' `>>`, python logging from several processes) share
 * its staging file, and an fstat then a pwrite in each let two of them write at the same
 * end (one line in 400 lost). */
ssize_t s3_stage_append(struct s3_stage *s, const void *buf, size_t len, off_t *at)
{
    if (s->acc == O_RDONLY) return -EBADF;
    struct stat st;
    hlock(s->h);
    ssize_t r = sys.fstat(s->dfd, &st) < 0 ? -errno : stage_write(s, buf, len, st.st_size, 1);
    hunlock(s->h);
    if (r >= 0) *at = st.st_size;
    return r;
}

/* Upload when something changed (h->lock held): parts never touched are copied on the
 * server; the others are fetched where needed and sent. */
struct up_ctx {
    struct s3_stage *s;
    int can_copy;
    int err;
};

/* s3f_upload_fd's copy_ok: the bytes from off that are still the source's (below the
 * fetch limit, in blocks nobody wrote; with a writable shared mapping, whose writes go
 * unseen, in blocks never fetched either), or the range made ready for reading. */
static int64_t up_prepare(void *ctx, int64_t off, int64_t len, int prepare)
{
    struct up_ctx *u = ctx;
    struct stage_hdr *h = u->s->h;
    if (prepare) {
        int e = stg_fetch_locked(u->s, off, off + len);
        if (e < 0 && !u->err) u->err = e;
        return e < 0 ? e : 0;
    }
    int64_t lim = flimit(h), end = off + len < lim ? off + len : lim;
    if (!u->can_copy || off >= end) return 0;
    int mapped = __atomic_load_n(&h->mapped_w, __ATOMIC_ACQUIRE) != 0;
    int64_t b = off >> BLK_SHIFT;
    for (; b * BLK < end; b++)
        if (written(h, b) || (mapped && present(h, b))) break;
    int64_t n = b * BLK - off;
    return n < 0 ? 0 : n > end - off ? end - off : n;
}

/* Two ETags name the same version: a header's is quoted, a CompleteMultipartUpload
 * answer's is not (s3_xml.c trims it). */
static int etag_same(const char *a, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    if (al >= 2 && a[0] == '"' && a[al - 1] == '"') a++, al -= 2;
    if (bl >= 2 && b[0] == '"' && b[bl - 1] == '"') b++, bl -= 2;
    return al == bl && al > 0 && memcmp(a, b, al) == 0;
}

int stg_upload_as(struct s3_stage *s, const char *bucket, const char *key)
{
    struct stage_hdr *h = s->h;
    uint64_t g = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
    struct stat st;
    if (sys.fstat(s->dfd, &st) < 0) return -EIO;
    /* Did the object change on the server while it was staged? Last close wins: say so,
     * and copy nothing from it (what was not fetched can then no longer be: EIO). */
    struct s3_op op;
    s3_op_init(&op, "HEAD", h->src_bucket, h->src_key);
    op.quiet_404 = 1;
    int same = s3_run(&s->m->client, &op) == 0 && etag_same(op.req.etag, h->etag);
    if (!same && h->etag[0] && strcmp(h->src_key, h->key) == 0)
        slog_warn("s3: %s/%s changed on the server while it was staged (ETag %s, now %s); this close replaces "
                  "it (last close wins)", h->bucket, h->key, h->etag, op.req.etag[0] ? op.req.etag : "none");
    s3_op_cleanup(&op);
    /* Copies only inside a multipart upload (more than one part), from the very source
     * just checked. Swift's s3api refuses x-amz-copy-source-if-match for multipart
     * sources ("...-N" ETags), so those are copied on the strength of that check alone. */
    struct up_ctx u = {s, same && flimit(h) > 0 && (int64_t)st.st_size > (int64_t)s->m->part_size, 0};
    char etag[128] = "";
    /* Parts write-behind sent that are still what the file holds are kept. */
    struct s3_resume rs;
    int resumed = wb_resume(s->wb, (int64_t)st.st_size, g, stg_wb_gone(h), &rs);
    struct s3_path to = {.key = (char *)key};
    snprintf(to.bucket, sizeof to.bucket, "%s", bucket);
    int e = s3f_upload_fd(s->m, &to, s->dfd, (int64_t)st.st_size, up_prepare, &u, h->src_bucket, h->src_key,
                          strchr(h->etag, '-') ? "" : h->etag, resumed ? &rs : NULL, etag, sizeof etag);
    if (resumed) wb_handed(s->wb, e);
    if (e == 0 && u.err) e = -EIO;
    if (e < 0) return -EIO;
    /* The server now has these bytes: blocks not fetched read from the new object, and a
     * temporary uploaded under its name (by another process's close) is one no longer. */
    __atomic_store_n(&h->tmp_pid, 0, __ATOMIC_RELEASE);
    if (__atomic_load_n(&h->up_gen, __ATOMIC_ACQUIRE) < g) __atomic_store_n(&h->up_gen, g, __ATOMIC_RELEASE);
    snprintf(h->etag, sizeof h->etag, "%s", etag);
    snprintf(h->src_bucket, sizeof h->src_bucket, "%s", bucket);
    snprintf(h->src_key, sizeof h->src_key, "%s", key);
    h->mtime = time(NULL); /* (s3f_upload_fd told the metadata cache, like any upload) */
    slog_debug("s3: %s/%s: staged object uploaded (%lld bytes)", bucket, key, (long long)st.st_size);
    return 0;
}

/* Uploads go to the header's name: the one the object had when it was staged, or the
 * one a rename while it was open gave it (s3_stage_mv.c). */
static int upload_locked(struct s3_stage *s) { return stg_upload_as(s, s->h->bucket, s->h->key); }

int stg_upload_if_dirty(struct s3_stage *s)
{
    if (s->acc == O_RDONLY || !dirty(s->h) || !stg_uploads(s->h)) return 0;
    hlock(s->h);
    int e = dirty(s->h) ? upload_locked(s) : 0;
    hunlock(s->h);
    return e;
}

/* fsync asks for durability: a temporary is uploaded under its name now and is an
 * ordinary staged object from then on (s3_stage_tmp.c). */
int s3_stage_fsync(struct s3_stage *s)
{
    if (s->acc != O_RDONLY && __atomic_exchange_n(&s->h->tmp_pid, 0, __ATOMIC_ACQ_REL))
        slog_debug("s3: %s/%s: temporary fsynced: uploaded under its name now", s->path.bucket, s->path.key);
    return stg_upload_if_dirty(s);
}

int s3_stage_ftruncate(struct s3_stage *s, off_t len)
{
    if (s->acc == O_RDONLY) return -EINVAL;
    struct stat st;
    if (sys.fstat(s->dfd, &st) < 0) return -errno;
    if (len == st.st_size) return 0;
    if (len > st.st_size) {
        int e = stg_over_limit(s, len, "ftruncate");
        if (e < 0) return e;
    }
    struct stage_hdr *h = s->h;
    wb_drop(s->wb, "ftruncate");
    hlock(h);
    int e = 0;
    if (len < flimit(h)) {
        __atomic_store_n(&h->fetch_limit, (int64_t)len, __ATOMIC_RELEASE);
        if (len > 0) e = stg_fetch_locked(s, ((len - 1) >> BLK_SHIFT) * BLK, len); /* the block kept in part */
    }
    if (e == 0 && sys.ftruncate(s->dfd, len) < 0) e = -errno;
    if (e == 0) {
        mark_wrote(s);
        changed(h);
    }
    hunlock(h);
    return e;
}

int s3_stage_fallocate(struct s3_stage *s, int mode, off_t off, off_t len)
{
    struct stage_hdr *h = s->h;
    struct stat st;
    if (sys.fstat(s->dfd, &st) < 0) return -errno;
    if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > st.st_size) {
        int e = stg_over_limit(s, off + len, "fallocate");
        if (e < 0) return e;
    }
    wb_drop(s->wb, "fallocate");
    hlock(h);
    int shifts = mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE);
    int e = 0;
    if (shifts) set_written(h, off, (int64_t)h->nblocks * BLK); /* everything after moves */
    else if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) set_written(h, off, off + len);
    if (shifts) e = stg_fetch_locked(s, off, INT64_MAX); /* everything after moves */
    else if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) e = stg_fetch_locked(s, off, off + len);
    if (e == 0 && sys.fallocate(s->dfd, mode, off, len) < 0) e = -errno;
    if (e == 0) {
        struct stat st2;
        if ((mode & ~FALLOC_FL_KEEP_SIZE) || (sys.fstat(s->dfd, &st2) == 0 && st2.st_size != st.st_size)) {
            mark_wrote(s);
            changed(h);
        }
    }
    hunlock(h);
    return e;
}

int s3_stage_fadvise(struct s3_stage *s, off_t off, off_t len, int advice)
{
    if (advice != POSIX_FADV_WILLNEED) return 0;
    return stg_ensure(s, off, len ? off + len : INT64_MAX);
}

int s3_stage_fstat(struct s3_stage *s, struct stat *st)
{
    struct stat d;
    if (sys.fstat(s->dfd, &d) < 0) return -errno;
    time_t mt = dirty(s->h) ? d.st_mtime : (time_t)s->h->mtime;
    const char *bucket = s->path.bucket, *key = s->path.key;
    char mb[sizeof s->h->bucket], mk[sizeof s->h->key];
    if (__atomic_load_n(&s->h->moved, __ATOMIC_ACQUIRE)) { /* renamed while open: the new name's inode */
        memcpy(mb, s->h->bucket, sizeof mb); /* (not under h->lock: an upload holds it) */
        memcpy(mk, s->h->key, sizeof mk);
        mb[sizeof mb - 1] = mk[sizeof mk - 1] = '\0';
        bucket = mb;
        key = mk;
    }
    s3_fill_stat(s->m, st, bucket, key, (int64_t)d.st_size, mt ? mt : d.st_mtime, 0);
    return 0;
}

int s3_stage_local_fd(struct s3_stage *s) { return s->pfd; }

int s3_stage_map(struct s3_stage *s, off_t off, size_t len, int prot, int flags)
{
    if ((prot & PROT_WRITE) && (flags & MAP_SHARED)) {
        if (s->acc != O_RDWR) return -EACCES;
        mark_wrote(s);
        wb_drop(s->wb, "a writable shared mapping");
        __atomic_store_n(&s->h->mapped_w, 1, __ATOMIC_RELEASE);
    }
    int e = stg_ensure(s, off, off + (int64_t)len);
    return e < 0 ? e : s->pfd;
}

int s3_stage_close(struct s3_stage *s)
{
    int t = stg_tmp_close(s); /* a temporary waits for its rename, removal or the process's end */
    if (t == 1) return 0;
    int e = t == 0 && __atomic_load_n(&s->wrote, __ATOMIC_RELAXED) ? stg_upload_if_dirty(s) : 0;
    if (e < 0)
        slog_error("s3: %s/%s: the staged object could not be uploaded; close fails with EIO and the server keeps "
                   "the previous version", s->path.bucket, s->path.key);
    wb_free(s->wb); /* what write-behind started and close did not take over is aborted */
    s->wb = NULL;
    stg_list_del(s);
    int dl = stg_dir_lock();
    if (sys.flock(s->mapfd, LOCK_EX | LOCK_NB) == 0) { /* the last holder of this host */
        if (dirty(s->h) && e == 0 && s->acc == O_RDONLY && __atomic_load_n(&s->h->gen, __ATOMIC_ACQUIRE) !=
                                                               __atomic_load_n(&s->h->up_gen, __ATOMIC_ACQUIRE))
            slog_warn("s3: %s/%s: staged changes of a process that ended without closing it were not uploaded",
                      s->path.bucket, s->path.key);
        char mp[PATH_MAX + 8], dp[PATH_MAX + 8], base[PATH_MAX];
        if (__atomic_load_n(&s->h->moved, __ATOMIC_ACQUIRE)) /* renamed: its names are the new name's */
            stg_name(s->m, s->h->bucket, s->h->key, base, sizeof base);
        else
            snprintf(base, sizeof base, "%s", s->base);
        stg_suffix(base, ".map", mp, sizeof mp);
        stg_suffix(base, ".data", dp, sizeof dp);
        if (!__atomic_load_n(&s->h->unlinked, __ATOMIC_ACQUIRE)) { /* else the names are another entry's now */
            wb_abort_recorded(s->m, base); /* of a writer that exec'd and is gone */
            sys.unlink(dp);
            sys.unlink(mp);
            stg_active_add(-1);
        }
    }
    efd_close(s->mapfd);
    s->mapfd = -1;
    stg_dir_unlock(dl);
    stg_free(s);
    return e;
}
