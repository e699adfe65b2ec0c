/* s3_file.c - reading and writing one S3 object: the data path of the S3 backend.
 *
 * Reading. Open issues one ranged GET for the first window (1 MiB): it learns the size
 * and ETag and brings the first bytes, so a small file costs one round trip. Every
 * later GET carries If-Match, so a changed object gives EIO, never mixed bytes. A
 * sequential reader gets a prefetch window that doubles up to part size x concurrency,
 * fetched as parallel part-sized chunks; a read of a part or more that misses the cache
 * goes straight into the caller's buffer as parallel ranged GETs, and a prefetched chunk
 * such a read waits for is handed that buffer (chunk_collect_into). Random readers fetch
 * what they ask for, rounded up to 64 KiB so that neighbouring reads hit. Chunk memory
 * comes from the process budget (bufpool.h); the chunk table is per file, under a lock,
 * and a chunk's response is collected by whichever reader needs it first.
 *
 * Writing. Sequential writes fill part buffers; a full part starts a multipart upload
 * and goes up while the next fills (at most `concurrency` in flight). Every body carries
 * Content-MD5, which the server verifies. A file that never fills a part is one PUT at
 * close. Close completes the upload and returns 0 only once the object is there; on any
 * failure the upload is aborted, close returns EIO and nothing partial is visible.
 *
 * Staging. O_RDWR, O_APPEND, O_WRONLY on an object with content, and streaming files that
 * go back, truncate or are mapped are staged (s3_stage.c): every call of such a file goes
 * there; its uploads come back through s3f_upload_fd() (s3_write.c), the same parts as here.
 *
 * Files: s3_file.c opens, answers the calls on an open file and closes; s3_read.c reads;
 * s3_write.c uploads (s3_file_int.h holds what they share). */
#include "s3_file_int.h"

#include "../log.h"
#include "../sys.h"
#include "s3_writers.h"
#include "s3_xml.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- opening ------------------------------------------------------------------------- */

struct s3_file *s3f_file_new(struct s3_mount *m)
{
    struct s3_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->m = m;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->upload_ep = -1;
    size_t maxw = m->part_size * (size_t)m->concurrency;
    ra_init(&f->ra, FIRST_WINDOW, maxw > ((size_t)256 << 20) ? (size_t)256 << 20 : maxw);
    ra_probe_start(&f->ra, 2 * m->part_size); /* grown while it pays: readahead.h */
    f->psize = m->part_size;
    f->owner = getpid();
    f->lockfd = f->lockguard = -1;
    return f;
}

/* In a forked child, requests the parent had in flight will never complete here. A
 * reader forgets them and goes on with its own; a writer's upload stays the parent's. */
int s3f_adopt_after_fork(struct s3_file *f)
{
    if (f->owner == getpid()) return 0;
    if (f->writing) return -EBADF;
    for (int i = 0; i < CHUNK_SLOTS; i++)
        if (f->ch[i].state == CH_PENDING) {
            memset(&f->ch[i], 0, sizeof f->ch[i]); /* the parent's request: leaked, not waited for */
        }
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->owner = getpid();
    return 0;
}

void s3f_file_free(struct s3_file *f)
{
    s3w_del(f);
    free(f->moved_key);
    for (int i = 0; i < CHUNK_SLOTS; i++) {
        struct chunk *c = &f->ch[i];
        if (c->state == CH_PENDING) { /* a prefetch nobody read: let it land, then drop */
            s3_release_hold(&c->op); /* held: now, not at its deadline */
            s3_finish(&f->m->client, &c->op);
            c->state = CH_READY;
        }
        if (c->state != CH_FREE) s3_op_cleanup(&c->op);
        chunk_release(c);
    }
    for (int i = 0; i < f->nparts; i++) {
        if (f->parts[i]->buf) bufpool_put(f->parts[i]->buf, f->parts[i]->cap);
        free(f->parts[i]);
    }
    free(f->parts);
    s3f_cur_drop(f);
    s3_path_free(&f->path);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cv);
    free(f);
}

/* The first GET: size, ETag, modification time and the first window, in one request. */
static int open_read(struct s3_file *f)
{
    struct s3_mount *m = f->m;
    struct chunk *c = &f->ch[0];
    c->len = FIRST_WINDOW;
    c->buf = bufpool_get(c->len, 1);
    if (!c->buf) return -ENOMEM;
    uint64_t gen = s3_meta_gen(f->path.bucket, f->path.key); /* before asking (s3_mount.h) */
    s3_op_init(&c->op, "GET", f->path.bucket, f->path.key);
    snprintf(c->range, sizeof c->range, "bytes=0-%zu", c->len - 1);
    s3_op_header(&c->op, "range", c->range);
    c->op.dst = c->buf;
    c->op.dst_cap = c->len;
    c->op.quiet_404 = 1;
    int e = s3_run(&m->client, &c->op);
    struct http_req *r = &c->op.req;
    if (e == -ERANGE) { /* an empty object has no byte 0: ask for its metadata */
        s3_op_cleanup(&c->op);
        s3_op_init(&c->op, "HEAD", f->path.bucket, f->path.key);
        c->op.quiet_404 = 1;
        e = s3_run(&m->client, &c->op);
        r = &c->op.req;
        f->size = 0;
    } else if (e == 0) {
        f->size = r->range_total >= 0 ? r->range_total : (int64_t)r->got; /* 200: no Range support */
    }
    if (e == 0) {
        snprintf(f->etag, sizeof f->etag, "%s", r->etag);
        f->mtime = r->last_modified[0] ? s3_parse_http_date(r->last_modified) : 0;
        if (f->mtime < 0) f->mtime = 0;
        c->off = 0;
        c->got = r->got;
        c->state = CH_READY;
        c->used_at = ++f->tick;
        f->ra.next = 0;
        struct stat st;
        s3_fill_stat(m, &st, f->path.bucket, f->path.key, f->size, f->mtime, 0);
        s3_meta_fill(m, f->path.bucket, f->path.key, &st, f->etag, gen);
    } else {
        s3_op_cleanup(&c->op);
        c->state = CH_READY;
        chunk_release(c);
        /* no negative cache entry here: the key may be a prefix (a directory) */
    }
    return e == -ESTALE ? -EIO : e;
}

int s3f_open(struct s3_mount *m, const char *mkey, int flags, mode_t mode, void **fhp)
{
    (void)mode;
    struct s3_file *f = s3f_file_new(m);
    if (!f) return -ENOMEM;
    f->flags = flags;
    int acc = flags & O_ACCMODE;
    int e = s3_path_resolve(m, mkey, &f->path);
    if (e == -ENOENT && (flags & O_CREAT)) s3_path_why_enoent(&f->path, mkey, "create");
    if (e == 0 && (f->path.is_root)) e = -EISDIR;
    if (e == 0 && acc != O_RDONLY) e = s3_meta_create_conflict(m, f->path.bucket, f->path.key);
    /* An upload of this process to the same name: staged now, so that this open shares its
     * bytes; one that has sent parts cannot be read or patched (a second O_TRUNC writer
     * is a new upload: the last close wins, as ever). */
    if (e == 0 && !(acc == O_WRONLY && (flags & O_TRUNC))) {
        int w = s3w_settle(m, &f->path, "opened again");
        if (w == 1) {
            slog_error("s3: %s/%s: this process is writing it as a sequential stream and has uploaded parts of it "
                       "already: it cannot be opened again until that descriptor is closed (EBUSY); open the "
                       "writer read-write (O_RDWR, Python 'w+b') so that it is staged from the start",
                       f->path.bucket, f->path.key);
            e = -EBUSY;
        } else if (w < 0) {
            e = w;
        }
    }
    /* Staged: read-write, append, readers of an object another process of this host has
     * staged (they see its writes), and writers of a temporary (s3_stage_tmp.c: never a
     * stream beside it). See s3_stage.c. */
    if (e == 0 && (acc == O_RDWR || (flags & O_APPEND) || (acc == O_RDONLY && s3_stage_live(m, &f->path)) ||
                   (acc == O_WRONLY && s3_stage_live(m, &f->path) == 2))) {
        e = s3_stage_open(m, &f->path, flags, NULL, &f->stg);
        f->writing = acc != O_RDONLY;
    } else if (e == 0 && acc == O_RDONLY) {
        e = open_read(f);
    } else if (e == 0) {
        f->writing = 1;
        /* Like a file in a missing directory: a missing bucket fails the open, not the close. */
        struct stat bst;
        if (s3_bucket_stat(m, f->path.bucket, &bst) == -ENOENT) e = -ENOENT;
        if (e == 0 && (!(flags & O_TRUNC) || (flags & O_EXCL))) {
            /* Without O_TRUNC an object with content is staged (writes patch it); a new or
             * empty one is streamed. */
            struct s3_op op;
            s3_op_init(&op, "HEAD", f->path.bucket, f->path.key);
            op.quiet_404 = 1;
            /* an O_EXCL create the cache knows to be new (cp -r and tar x into a
             * directory they made) sends no HEAD */
            int known = s3_meta_create_is_new(m, f->path.bucket, f->path.key, flags);
            int h = known ? -ENOENT : s3_run(&m->client, &op);
            /* tar x into an existing directory: its first create learns the directory,
             * the next ones are known new */
            if (h == -ENOENT && !known && (flags & O_CREAT) && (flags & O_EXCL))
                s3_meta_learn_dir(m, f->path.bucket, f->path.key);
            if (h == 0 && (flags & O_EXCL) && (flags & O_CREAT))
                e = -EEXIST;
            else if (h == 0 && !(flags & O_TRUNC) && op.req.content_length > 0) {
                struct s3_stage_base b = {1, op.req.content_length, "", 0};
                snprintf(b.etag, sizeof b.etag, "%s", op.req.etag);
                b.mtime = op.req.last_modified[0] ? s3_parse_http_date(op.req.last_modified) : 0;
                e = s3_stage_open(m, &f->path, flags, &b, &f->stg);
            } else if (h == -ENOENT && !(flags & O_CREAT))
                e = -ENOENT;
            else if (h < 0 && h != -ENOENT)
                e = h;
            s3_op_cleanup(&op);
        }
    }
    if (e < 0) {
        s3f_file_free(f);
        return e;
    }
    if (f->writing && !f->stg) s3w_add(f); /* the process's path calls see it (s3_writers.h) */
    *fhp = f;
    return 0;
}

/* Take up a staged file inherited across exec (its staging file's descriptor). */
int s3f_open_fd(struct s3_mount *m, int fd, int flags, void **fhp)
{
    struct s3_file *f = s3f_file_new(m);
    if (!f) return -ENOMEM;
    f->flags = flags;
    int e = s3_stage_open_fd(m, fd, flags, &f->path, &f->stg);
    if (e < 0) {
        f->path.key = NULL;
        s3f_file_free(f);
        return e;
    }
    f->writing = (flags & O_ACCMODE) != O_RDONLY;
    *fhp = f;
    return 0;
}

/* An upload renamed once it had sent parts was committed under its first name: it moves
 * to the new one now (f->lock not held: the list of uploads is taken before it). */
static int finish_move(struct s3_file *f, int e)
{
    pthread_mutex_lock(&f->lock);
    char *to_key = f->moved_key;
    f->moved_key = NULL;
    pthread_mutex_unlock(&f->lock);
    if (!to_key) return e;
    struct s3_path to = {.key = to_key};
    snprintf(to.bucket, sizeof to.bucket, "%s", f->moved_bucket);
    if (e == 0 && f->committed && !f->dropped) { /* (removed after the rename: nothing to move) */
        e = s3_object_move(f->m, &f->path, &to, f->written);
        if (e < 0) {
            slog_error("s3: %s/%s: written, but moving it to %s/%s, the name a rename gave it while it was open, "
                       "failed (%s): it stays under its first name; close fails with EIO", f->path.bucket,
                       f->path.key, to.bucket, to.key, strerror(-e));
            e = -EIO;
        }
    }
    pthread_mutex_lock(&f->lock); /* from now on it is the object under its new name */
    free(f->path.key);
    f->path.key = to_key;
    snprintf(f->path.bucket, sizeof f->path.bucket, "%s", to.bucket);
    pthread_mutex_unlock(&f->lock);
    return e;
}

int s3f_fsync(void *fh, int datasync)
{
    (void)datasync;
    struct s3_file *f = fh;
    struct s3_stage *stg = stg_of(f);
    if (stg) return f->writing ? s3_stage_fsync(stg) : 0;
    if (!f->writing) return 0;
    if (s3f_adopt_after_fork(f) < 0) return -EBADF;
    pthread_mutex_lock(&f->lock);
    if (f->stg) { /* staged by another thread meanwhile */
        pthread_mutex_unlock(&f->lock);
        return s3_stage_fsync(stg_of(f));
    }
    int e = f->committed ? 0 : s3f_upload_commit(f);
    pthread_mutex_unlock(&f->lock);
    return finish_move(f, e);
}

/* The writing program ends without closing (exec): what it wrote becomes the object, as
 * the kernel would have the bytes in the file. A forked child's copy is not its upload. */
int s3f_commit(void *fh)
{
    struct s3_file *f = fh;
    if (!f->writing || f->owner != getpid()) return 0;
    return s3f_fsync(fh, 0);
}

/* A parent's streaming upload is its own: a child (or the program it execs) writing at
 * the shared offset would have nowhere to put its bytes. Staged, the bytes live in a
 * local file the whole process tree shares, and each writer's close uploads it. */
int s3f_share(void *fh)
{
    struct s3_file *f = fh;
    if (!f->writing || stg_of(f) || f->owner != getpid()) return 0;
    pthread_mutex_lock(&f->lock);
    int e = 0;
    if (f->upload_id[0] || f->nparts || f->err) e = -EBUSY; /* parts are on the server */
    else if (!f->committed) e = s3f_to_stage(f, "shared with a child process");
    pthread_mutex_unlock(&f->lock);
    return e;
}

int s3f_ftruncate(void *fh, off_t len)
{
    struct s3_file *f = fh;
    struct s3_stage *stg = stg_of(f);
    if (stg) return s3_stage_ftruncate(stg, len);
    if (!f->writing) return -EINVAL;
    pthread_mutex_lock(&f->lock);
    if (f->dropped && !f->stg) { /* removed by name: nothing is kept */
        f->written = len;
        pthread_mutex_unlock(&f->lock);
        return 0;
    }
    int e = len == f->written && !f->committed ? 0 : f->owner != getpid() ? -EBADF : s3f_to_stage(f, "ftruncate");
    pthread_mutex_unlock(&f->lock);
    if (e < 0 || len == f->written) return e;
    return s3_stage_ftruncate(stg_of(f), len);
}

int s3f_fstat(void *fh, struct stat *st)
{
    struct s3_file *f = fh;
    struct s3_stage *stg = stg_of(f);
    if (stg) return s3_stage_fstat(stg, st);
    pthread_mutex_lock(&f->lock);
    if (f->writing) {
        s3_fill_stat(f->m, st, f->path.bucket, f->path.key, f->written, time(NULL), 0);
    } else {
        s3f_follow(f); /* tail -f polls the size */
        s3_fill_stat(f->m, st, f->path.bucket, f->path.key, f->size, f->mtime, 0);
    }
    pthread_mutex_unlock(&f->lock);
    return 0;
}

int s3f_fallocate(void *fh, int mode, off_t off, off_t len)
{
    struct s3_file *f = fh;
    if (!stg_of(f)) {
        if (!f->writing || f->owner != getpid()) return -EBADF;
        pthread_mutex_lock(&f->lock);
        int e = s3f_to_stage(f, "fallocate");
        pthread_mutex_unlock(&f->lock);
        if (e < 0) return e;
    }
    return s3_stage_fallocate(stg_of(f), mode, off, len);
}

int s3f_fadvise(void *fh, off_t off, off_t len, int advice)
{
    struct s3_stage *stg = stg_of(fh);
    return stg ? s3_stage_fadvise(stg, off, len, advice) : 0;
}

int s3f_local_fd(void *fh)
{
    struct s3_stage *stg = stg_of(fh);
    return stg ? s3_stage_local_fd(stg) : -1;
}

int s3f_local_map(void *fh, off_t off, size_t len, int prot, int flags)
{
    struct s3_file *f = fh;
    if (!stg_of(f)) {
        if (f->owner != getpid()) return -ENODEV;
        pthread_mutex_lock(&f->lock);
        int e = s3f_to_stage(f, "mmap");
        pthread_mutex_unlock(&f->lock);
        if (e < 0) return e;
    }
    return s3_stage_map(stg_of(f), off, len, prot, flags);
}

int s3f_lock_fd(void *fh)
{
    struct s3_file *f = fh;
    pthread_mutex_lock(&f->lock);
    int r = s3_lock_fd(f->m, &f->path, f->flags & O_ACCMODE, &f->lockfd, &f->lockguard);
    pthread_mutex_unlock(&f->lock);
    return r;
}

int s3f_close_shared(void *fh)
{
    struct s3_file *f = fh;
    if (f->owner != getpid() || !f->writing || stg_of(f)) return s3f_close(fh); /* a child's copy, or staged */
    pthread_mutex_lock(&f->lock);
    int mine = f->committed || f->written > 0 || f->nparts > 0 || f->upload_id[0] || f->err;
    pthread_mutex_unlock(&f->lock);
    if (mine) return s3f_close(fh);
    slog_debug("s3: %s/%s: written by a program this one exec'd, which committed it: nothing to commit here",
               f->path.bucket, f->path.key);
    s3_lock_close(f->m, &f->path, f->lockfd, f->lockguard);
    s3f_file_free(f);
    return 0;
}

int s3f_close(void *fh)
{
    struct s3_file *f = fh;
    int e = 0;
    s3_lock_close(f->m, &f->path, f->lockfd, f->lockguard);
    f->lockfd = f->lockguard = -1;
    /* Out of the list first: nothing stages it by name from now on (s3_writers.c). */
    s3w_del(f);
    struct s3_stage *stg = stg_of(f);
    if (stg) {
        e = s3_stage_close(stg);
        f->stg = NULL;
        if (f->owner != getpid()) { /* a staged writer never has parts in flight; a reader's prefetches are dropped */
            f->writing = 0;
            s3f_adopt_after_fork(f);
        }
        s3f_file_free(f);
        return e;
    }
    if (f->owner != getpid()) { /* a forked child's copy: the parent's requests and upload */
        if (f->writing) return 0; /* stay the parent's; nothing to free safely here */
        s3f_adopt_after_fork(f);
    }
    if (f->writing) {
        pthread_mutex_lock(&f->lock);
        if (!f->committed) e = s3f_upload_commit(f);
        pthread_mutex_unlock(&f->lock);
        e = finish_move(f, e);
    }
    s3f_file_free(f);
    return e;
}
