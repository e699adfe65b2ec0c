/* s3_stage_int.h - what the modules of staged S3 files share (s3_stage.c, s3_stage_dir.c,
 * s3_stage_open.c, s3_stage_fetch.c, s3_stage_wb.c, and the namespace view of them,
 * s3_stage_ns.c: stat, listing and removal of staged keys). Private to those.
 *
 * The map file (HASH.map) starts with this header, shared by every process of the host that
 * has the object staged; DIR/.lock serialises joining, creating and removing staging files. */
#ifndef S3SHIM_S3_STAGE_INT_H
#define S3SHIM_S3_STAGE_INT_H

#include "../efd.h"
#include "s3_mount.h"
#include "s3_stage.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STAGE_MAGIC 0x53335354u        /* "S3ST" */
#define STAGE_VERSION 5u
#define BLK_SHIFT 20
#define BLK ((int64_t)1 << BLK_SHIFT)

struct stage_hdr {
    uint32_t magic, version;
    pthread_mutex_t lock; /* process-shared, robust: fetches, partial writes, uploads */
    uint64_t gen;         /* changes so far */
    uint64_t up_gen;      /* the change count the server has */
    int64_t base_size;    /* size of the source when staged: blocks below it may need fetching */
    int64_t fetch_limit;  /* bytes at or past this are never fetched (truncated away) */
    uint32_t nblocks;
    int32_t mapped_w;     /* a shared writable mapping exists: always upload */
    int32_t unlinked;     /* the object was removed while open: never upload, files already gone */
    int32_t moved;        /* renamed while open: bucket/key is the new name, and the staging names are
                           * its (an opener's base is stale: stg_base()) */
    int32_t tmp_pid;      /* a temporary of this process, never uploaded (s3_stage_tmp.c); 0: ordinary */
    uint64_t closed_gen;  /* a temporary: `gen` at its creator's last close (every write closed if equal) */
    int64_t mtime;        /* of the source object */
    char etag[128];       /* of the source (If-Match) */
    char src_bucket[256], src_key[1100];
    char bucket[256], key[1100];
    uint8_t present[];    /* per block: BLK_PRESENT (fetched or written whole), BLK_WRITTEN */
};

/* Changed since the last upload (or mapped writable: always). */
static inline int dirty(const struct stage_hdr *h)
{
    return __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE) != __atomic_load_n(&h->up_gen, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&h->mapped_w, __ATOMIC_ACQUIRE);
}

/* One open of a staged object in this process (s3_stage_open.c makes it). */
struct s3_stage {
    struct s3_mount *m;
    struct s3_path path;
    char base[PATH_MAX]; /* DIR/HASH */
    int mapfd, dfd, pfd; /* the map (our hold), the data (ours, O_RDWR), the program's view */
    struct stage_hdr *h;
    size_t maplen;
    int acc, flags;
    off_t last_end; /* sequential detection */
    size_t ra;
    int64_t counted; /* size at the last usage count */
    /* This process may have changed the bytes through it, so its close uploads: set by an
     * open for writing, a write, truncate, fallocate or a shared writable mapping; 0 in a
     * forked child until it changes something (a child that only closes what it inherited,
     * as subprocess modules do before exec, uploads nothing); an exec'd program that takes
     * it up inherits the changes not uploaded yet. */
    int wrote; /* atomic: threads of the process write at once */
    int created; /* this open made the staging file */
    struct stage_wb *wb; /* write-behind (s3_stage_wb.c), or NULL */
    struct stg_ahead *ahead; /* a sequential reader's window in flight (s3_stage_fetch.c), or NULL */
    struct s3_stage *next;
};

/* --- the shared map (every module that touches the bytes) --- */

static inline void hlock(struct stage_hdr *h)
{
    if (pthread_mutex_lock(&h->lock) == EOWNERDEAD) pthread_mutex_consistent(&h->lock); /* a fetcher died */
}

static inline void hunlock(struct stage_hdr *h) { pthread_mutex_unlock(&h->lock); }

/* A block's state: its bytes are in the staging file (fetched from the source, or written
 * whole); something was written into it since it was staged (the bit is never cleared:
 * an upload may race with a write, so a block once written is sent, not copied, for as
 * long as the object stays staged). */
enum { BLK_PRESENT = 1, BLK_WRITTEN = 2 };

static inline int present(const struct stage_hdr *h, int64_t b)
{
    return b >= (int64_t)h->nblocks || (__atomic_load_n(&h->present[b], __ATOMIC_ACQUIRE) & BLK_PRESENT);
}

static inline void set_present(struct stage_hdr *h, int64_t b)
{
    if (b < (int64_t)h->nblocks) __atomic_fetch_or(&h->present[b], BLK_PRESENT, __ATOMIC_RELEASE);
}

/* Blocks past the source's are never copied from it either. */
static inline int written(const struct stage_hdr *h, int64_t b)
{
    return b >= (int64_t)h->nblocks || (__atomic_load_n(&h->present[b], __ATOMIC_ACQUIRE) & BLK_WRITTEN);
}

/* Mark the blocks of [off, end) written (before the bytes go in: an upload that does not
 * see the mark yet copies the source's bytes, and the write's change count sends them at
 * the next upload). */
static inline void set_written(struct stage_hdr *h, int64_t off, int64_t end)
{
    for (int64_t b = off >> BLK_SHIFT; b <= (end - 1) >> BLK_SHIFT && b < (int64_t)h->nblocks; b++)
        __atomic_fetch_or(&h->present[b], BLK_WRITTEN, __ATOMIC_ACQ_REL);
}

static inline int64_t flimit(const struct stage_hdr *h) { return __atomic_load_n(&h->fetch_limit, __ATOMIC_ACQUIRE); }

static inline void mark_wrote(struct s3_stage *s) { __atomic_store_n(&s->wrote, 1, __ATOMIC_RELAXED); }
static inline uint64_t changed(struct stage_hdr *h) { return __atomic_add_fetch(&h->gen, 1, __ATOMIC_ACQ_REL); }

/* Is every block of [off, end) (below the fetch limit) there? */
static inline int all_present(struct stage_hdr *h, int64_t off, int64_t end)
{
    int64_t lim = flimit(h);
    if (end > lim) end = lim;
    if (off >= end) return 1;
    for (int64_t b = off >> BLK_SHIFT; b <= (end - 1) >> BLK_SHIFT; b++)
        if (!present(h, b)) return 0;
    return 1;
}

/* The descriptors a staging file keeps open live high and engine-owned (efd.h): a
 * program that dup2()s onto a low number it thinks is free (a shell's `exec 3>>f`, right
 * after the open that made them) must not replace them. */
static inline int stg_park(int fd) { return fd < 0 ? fd : efd_park(fd); }

/* s3_stage_dir.c */
extern pthread_mutex_t stg_lock;       /* settings, the directory's set-up, the list of opens */
extern unsigned long long stg_limit;   /* S3SHIM_STAGING_LIMIT */
/* Remove the staging files of base if nobody holds them (dir lock held). 1 if removed. */
int stg_remove_if_unheld(const char *base, int quiet);
/* Would s growing to `want` bytes take staging past the limit? 0, or -ENOSPC (logged). */
int stg_over_limit(struct s3_stage *s, int64_t want, const char *what);
extern char stg_dir[PATH_MAX - 256]; /* room for "/HASH.data" */

int stg_dir_ready(void);   /* the directory made; leftovers of dead processes removed */
int stg_dir_lock(void);    /* a descriptor holding DIR/.lock, or -errno */
void stg_dir_unlock(int fd);
void stg_name(struct s3_mount *m, const char *bucket, const char *key, char *out, size_t len); /* DIR/HASH */
void stg_suffix(const char *base, const char *sfx, char *out, size_t len);
void stg_active_add(int64_t d);
/* Can anything be staged on this host now? (one atomic load once the directory is ready) */
int stg_maybe_staged(void);
/* Remove DIR/name (a HASH.lock) if no process uses it (dirlock: stg_dir_lock()'s, held). */
void s3_lock_sweep(int dirlock, const char *name);
/* Staging bases a process's first scan noted for work it can only do under a mount (a
 * dead process's temporary to upload, its write-behind upload to abort): most processes
 * note none, and then stg_bases_each() costs one atomic load. */
struct stg_bases {
    pthread_mutex_t lock;
    char (*v)[PATH_MAX];
    int n; /* atomic reads */
};
#define STG_BASES_INIT {PTHREAD_MUTEX_INITIALIZER, NULL, 0}
void stg_bases_add(struct stg_bases *l, const char *base);
/* fn(m, base) on each noted base, under l's lock; fn returns nonzero to keep the base for
 * another mount (it belongs to another endpoint set), 0 when it is done with it. */
void stg_bases_each(struct stg_bases *l, struct s3_mount *m, int (*fn)(struct s3_mount *m, const char *base));

/* s3_stage_fetch.c */
int stg_write_all(int fd, const char *buf, size_t len, off_t off);
/* Fetch the missing blocks of [off, end) from the source (h->lock held). */
int stg_fetch_locked(struct s3_stage *s, int64_t off, int64_t end);
/* The same, taking h->lock when something is missing. */
int stg_ensure(struct s3_stage *s, int64_t off, int64_t end);
/* Wait for the window's fetches still in flight and drop them (closing). */
void stg_ahead_end(struct s3_stage *s);

/* s3_stage_open.c */
void stg_free(struct s3_stage *s);
void stg_list_del(struct s3_stage *s);
/* Is base open in this process (another open than `except`)? (stg_lock not held) */
int stg_list_has(const char *base, const struct s3_stage *except);
/* Upload this process's open temporaries under their names (ordinary from then on). */
int stg_list_tmp_upload(void);

/* s3_stage.c */
/* Upload s when it changed since the last upload (not read-only, not removed). */
int stg_upload_if_dirty(struct s3_stage *s);
/* Upload what s holds now as bucket/key (h->lock held); the server's copy there is its
 * source from then on. 0, or -EIO (logged). */
int stg_upload_as(struct s3_stage *s, const char *bucket, const char *key);
/* Uploads of h still go somewhere: not removed. */
static inline int stg_uploads(const struct stage_hdr *h) { return !__atomic_load_n(&h->unlinked, __ATOMIC_ACQUIRE); }
/* Write-behind's upload (to the name it was opened as) is no use any more: removed or renamed. */
static inline int stg_wb_gone(const struct stage_hdr *h)
{
    return __atomic_load_n(&h->unlinked, __ATOMIC_ACQUIRE) || __atomic_load_n(&h->moved, __ATOMIC_ACQUIRE);
}

/* s3_stage_tmp.c: temporaries (files made O_RDWR|O_CREAT|O_EXCL) */
void stg_tmp_configure(int on);
/* A new staging file s (created by this open): a temporary? Marks it. 1 if so. */
int stg_tmp_begin(struct s3_stage *s);
/* Close of s: 1 if s was kept as a temporary (nothing to upload, s is taken), 2 if it is a
 * temporary another open of this process holds (nothing to upload), 0 otherwise. */
int stg_tmp_close(struct s3_stage *s);
/* Is h a temporary of a live process, not yet renamed or removed? */
static inline int stg_is_tmp(const struct stage_hdr *h)
{
    return __atomic_load_n(&h->tmp_pid, __ATOMIC_ACQUIRE) != 0 && !__atomic_load_n(&h->unlinked, __ATOMIC_ACQUIRE);
}
void stg_tmp_atfork_child(void);
/* The staging file base, held by no process: if it is a closed temporary whose process
 * died (every write of it closed), upload it under its name, as that process's end would
 * have, and leave it an ordinary staged copy the server has (the caller removes it).
 * 1 uploaded, 0 not such a file, 2 one of another endpoint set (left for its mount),
 * -errno when the upload failed (it stays as it was). */
int stg_tmp_adopt(struct s3_mount *m, const char *base);
/* Is h a closed temporary (every write closed) whose creator is gone? (h unheld) */
static inline int stg_tmp_orphan(const struct stage_hdr *h)
{
    return h->magic == STAGE_MAGIC && h->version == STAGE_VERSION && stg_is_tmp(h) &&
           __atomic_load_n(&h->closed_gen, __ATOMIC_ACQUIRE) == __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
}
/* Scans (s3_stage_dir.c) note such files; a process that stages adopts those of its
 * mount's endpoints (stg_tmp_orphans_adopt, s3_stage_tmp.c). */
void stg_tmp_orphan_note(const char *base);
void stg_tmp_orphans_adopt(struct s3_mount *m);
/* s3_stage_ns.c: the creating process of p if p is a live temporary of this host, else 0. */
pid_t stg_tmp_owner(struct s3_mount *m, const struct s3_path *p);

#endif
