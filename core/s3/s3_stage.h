/* s3_stage.h - staged S3 objects (s3_stage.c), private to the S3 wing.
 *
 * A staged object lives in a sparse local file shared by every process of the host that
 * has it open; s3_file.c dispatches to these functions for opens that are not a plain
 * sequential read or write (see the header comment of s3_stage.c for the semantics). */
#ifndef S3SHIM_S3_STAGE_H
#define S3SHIM_S3_STAGE_H

#include "s3_mount.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

struct cfg;
struct s3_stage;

/* What is known about the object already (an open reader's first GET). */
struct s3_stage_base {
    int known;   /* 0: the staging code asks the server (HEAD) */
    int64_t size;
    char etag[128];
    time_t mtime;
};

/* S3SHIM_STAGING_DIR, S3SHIM_STAGING_LIMIT (called at every mount; the first wins). */
void s3_stage_configure(const struct cfg *cfg);

/* Is the object staged by a live process of this host right now? 1, or 2 when it is a
 * temporary (created O_RDWR|O_CREAT|O_EXCL, never uploaded: s3_stage_tmp.c); 0 if not. */
int s3_stage_live(struct s3_mount *m, const struct s3_path *p);

/* Temporaries (s3_stage_tmp.c). rename(a, b) where a is a live temporary: a's bytes are
 * uploaded as b and a is dropped (no copy, no DELETE). 1 done, 0 a is no temporary (the
 * caller renames as usual), -errno (a stays, as it was). */
int s3_stage_tmp_rename(struct s3_mount *m, const struct s3_path *a, const struct s3_path *b, unsigned flags);
/* rename(a, b) where a is staged on this host and no temporary (s3_stage_mv.c): what
 * its openers see now is uploaded as b, and their later changes go there at their
 * closes. The caller deletes a on the server. 1 done, 0 a is not staged, -errno (a
 * stays). */
int s3_stage_rename(struct s3_mount *m, const struct s3_path *a, const struct s3_path *b);
/* unlink(p) where p is a temporary of this process: dropped, nothing sent. 1, or 0 if p is
 * none (the caller goes on). */
int s3_stage_tmp_unlink(struct s3_mount *m, const struct s3_path *p);

/* stat of an object staged by a live process of this host: the staging file's size (the
 * object as its openers see it, also before its first upload). 0, or -ENOENT if not staged. */
int s3_stage_stat(struct s3_mount *m, const struct s3_path *p, struct stat *st);

/* The names directly below prefix ("dir/" or "") that keys staged by live processes of
 * this host make: a file (the staging file's size and time) or a directory (a key further
 * down). Sorted by name, then files before directories; each once. The caller frees the
 * vector with s3_stage_list_free(). 0 or -errno. */
struct s3_staged_name {
    char *name;
    int is_dir;
    int seen; /* the caller's: the server's listing had it too */
    int64_t size;
    time_t mtime;
};
int s3_stage_list(struct s3_mount *m, const char *bucket, const char *prefix, struct s3_staged_name **out, size_t *n);
void s3_stage_list_free(struct s3_staged_name *v, size_t n);
/* Add a name to such a vector (n used, cap allocated); sort one (files before
 * directories of the same name) and drop repeats. */
int s3_names_add(struct s3_staged_name **v, size_t *n, size_t *cap, const char *name, size_t len, int is_dir,
                 int64_t size, time_t mtime);
void s3_names_sort(struct s3_staged_name *v, size_t *n);

/* p was deleted (unlink, the source of a rename): open descriptors of it on this host keep
 * their bytes but upload nothing at close, as with a removed local file. */
void s3_stage_unlinked(struct s3_mount *m, const struct s3_path *p);

/* Open p staged with the program's flags. 0 or -errno (with one log line when the cause
 * is the staging itself: the limit, the directory). */
int s3_stage_open(struct s3_mount *m, const struct s3_path *p, int flags, const struct s3_stage_base *base,
                  struct s3_stage **out);
/* A streaming writer that has written [0, len) from buf (nothing uploaded yet) becomes
 * staged: the object is replaced by those bytes. */
int s3_stage_from_bytes(struct s3_mount *m, const struct s3_path *p, int flags, const void *buf, size_t len,
                        struct s3_stage **out);
/* Take up a staging file inherited across exec (fd is its data file). */
int s3_stage_open_fd(struct s3_mount *m, int fd, int flags, struct s3_path *p, struct s3_stage **out);

ssize_t s3_stage_pread(struct s3_stage *s, void *buf, size_t len, off_t off);
ssize_t s3_stage_pwrite(struct s3_stage *s, const void *buf, size_t len, off_t off);
ssize_t s3_stage_append(struct s3_stage *s, const void *buf, size_t len, off_t *at); /* O_APPEND: *at, where */
int s3_stage_fsync(struct s3_stage *s);
int s3_stage_ftruncate(struct s3_stage *s, off_t len);
int s3_stage_fstat(struct s3_stage *s, struct stat *st);
int s3_stage_fallocate(struct s3_stage *s, int mode, off_t off, off_t len);
int s3_stage_fadvise(struct s3_stage *s, off_t off, off_t len, int advice);
int s3_stage_close(struct s3_stage *s); /* uploads when changed; the result of that */
int s3_stage_local_fd(struct s3_stage *s);
/* Fetch what a mapping of [off, off+len) needs, note a shared writable mapping, and
 * return the descriptor to map. */
int s3_stage_map(struct s3_stage *s, off_t off, size_t len, int prot, int flags);

/* The per-object lock file of the host (fcntl and flock locks of every S3 descriptor go
 * there, staged or not). Opened once per open file into *fdp with the access mode acc,
 * with *guardp, which says the file is in use (s3_stage_ns.c). */
int s3_lock_fd(struct s3_mount *m, const struct s3_path *p, int acc, int *fdp, int *guardp);
/* Close what s3_lock_fd() gave; the lock file goes with the host's last user. */
void s3_lock_close(struct s3_mount *m, const struct s3_path *p, int fd, int guard);

/* In a forked child: hold the staged objects for this process too. */
void s3_stage_atfork_child(void);

/* A multipart upload write-behind started (s3_stage_wb.c): parts 1..nparts of part_size
 * bytes each whose etag[i] is not empty are on the server with the bytes the file has now,
 * so the final upload sends only the others. */
struct s3_resume {
    const char *upload_id;
    int ep;              /* the endpoint it stays on (S3SHIM_SHARED_UPLOADS=no), -1 until chosen */
    int nparts;
    char (*etag)[128];
};

/* s3_file.c: upload `size` bytes of the local file fd as p (multipart, parallel; one PUT
 * when small). Ranges that copy_ok() says are the source's are copied on the server from
 * src_bucket/src_key (If-Match src_etag) instead of being read from fd: copy_ok(ctx, off,
 * len, 0) says how many bytes from off (up to len) are (a probe, nothing done);
 * copy_ok(ctx, off, len, 1) makes [off, off + len) ready in fd, 0 or -errno. The parts are
 * planned around the copyable runs: a run of at least 5 MiB (S3's smallest part) or one
 * that ends the object is copied in parts of the part size, everything else is
 * read from fd in parts of 5 MiB and more (the part size at most). With rs, the
 * upload goes on in rs's multipart upload (its parts already sent are not sent again);
 * on failure that upload is aborted. The new ETag goes to etag. 0 or -errno, the cause
 * (logged; nothing partial is visible): a close says EIO whatever it was, a rename
 * passes on what rename(2) would say (s3_rename_errno). */
typedef int64_t (*s3_copy_ok_fn)(void *ctx, int64_t off, int64_t len, int prepare);
/* A failed upload's cause as rename(2) would say it: a bucket that does not exist is
 * ENOENT (a missing directory), refusals EACCES/EPERM, a full store ENOSPC/EDQUOT; any
 * other failure EIO. */
static inline int s3_rename_errno(int e)
{
    return e == -ENOENT || e == -EACCES || e == -EPERM || e == -ENOSPC || e == -EDQUOT ? e : -EIO;
}
int s3f_upload_fd(struct s3_mount *m, const struct s3_path *p, int fd, int64_t size, s3_copy_ok_fn copy_ok,
                  void *ctx, const char *src_bucket, const char *src_key, const char *src_etag,
                  const struct s3_resume *rs, char *etag, size_t etaglen);

#endif
