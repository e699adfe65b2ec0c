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
 * there; its uploads come back through s3f_upload_fd() below, the same parts as here. */
#include "../bufpool.h"
#include "../readahead.h"
#include "../log.h"
#include "../sys.h"
#include "s3_mount.h"
#include "s3_stage.h"
#include "s3_xml.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_SLOTS 32
#define FIRST_WINDOW ((size_t)1 << 20)
#define RANDOM_MIN ((size_t)64 << 10) /* a random read's fetch: neighbours hit, little waste */
#define MAX_PART ((size_t)5 << 30)

enum { CH_FREE = 0, CH_PENDING, CH_READY, CH_FAILED };

struct chunk {
    int state;
    int collecting; /* a reader is waiting for its response */
    off_t off;
    size_t len, got;
    int err;
    char *buf;
    uint64_t used_at;
    char range[64];
    struct s3_op op;
};

struct part {
    int num;
    int copy; /* UploadPartCopy of a range of the staged object's source (s3f_upload_fd) */
    int known; /* already on the server (sent by write-behind): never sent here */
    char *csrc, range[80], ifmatch[128];
    char *buf;
    size_t len, cap;
    char md5[25];
    char query[1600]; /* partNumber and the encoded upload id */
    char etag[128];
    struct s3_op op;
};

struct s3_file {
    struct s3_mount *m;
    struct s3_path path;
    int writing;
    pid_t owner; /* a forked child has a copy: it must not touch the parent's requests */
    pthread_mutex_t lock;
    pthread_cond_t cv;

    /* reading */
    int64_t size;
    char etag[128];
    time_t mtime;
    struct chunk ch[CHUNK_SLOTS];
    struct readahead ra; /* sequential detection and the prefetch window */
    uint64_t tick;

    /* writing */
    char upload_id[512];
    int upload_ep; /* the endpoint an upload stays on, when endpoints do not share them */
    struct part **parts; /* every part so far, in order */
    int nparts, cap_parts;
    int oldest_inflight; /* parts[oldest_inflight..nparts-1] may still be in flight */
    struct part *cur;    /* filling */
    off_t written;
    size_t psize;
    int err;
    int committed;

    /* staged (s3_stage.c): every call goes there */
    struct s3_stage *stg;
    int flags;
    int lockfd; /* the object's lock file (fcntl/flock), -1 until asked for */
    int lockguard; /* says the lock file is in use (s3_lock_fd) */
};

static struct s3_stage *stg_of(struct s3_file *f) { return __atomic_load_n(&f->stg, __ATOMIC_ACQUIRE); }

static void chunk_release(struct chunk *c)
{
    if (c->state == CH_PENDING) return;
    if (c->buf) bufpool_put(c->buf, c->len);
    c->buf = NULL;
    c->state = CH_FREE;
}

/* --- opening ------------------------------------------------------------------------- */

static struct s3_file *file_new(struct s3_mount *m)
{
    struct s3_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->m = m;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->upload_ep = -1;
    size_t maxw = m->part_size * (size_t)m->concurrency;
    ra_init(&f->ra, FIRST_WINDOW, maxw > ((size_t)256 << 20) ? (size_t)256 << 20 : maxw);
    ra_probe_start(&f->ra, m->part_size); /* grown while it pays: readahead.h */
    f->psize = m->part_size;
    f->owner = getpid();
    f->lockfd = f->lockguard = -1;
    return f;
}

/* In a forked child, requests the parent had in flight will never complete here. A
 * reader forgets them and goes on with its own; a writer's upload stays the parent's. */
static int adopt_after_fork(struct s3_file *f)
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

static void file_free(struct s3_file *f)
{
    for (int i = 0; i < CHUNK_SLOTS; i++) {
        struct chunk *c = &f->ch[i];
        if (c->state == CH_PENDING) { /* a prefetch nobody read: let it land, then drop */
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
    if (f->cur) {
        if (f->cur->buf) bufpool_put(f->cur->buf, f->cur->cap);
        free(f->cur);
    }
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
    struct s3_file *f = file_new(m);
    if (!f) return -ENOMEM;
    f->flags = flags;
    int acc = flags & O_ACCMODE;
    int e = s3_path_resolve(m, mkey, &f->path);
    if (e == -ENOENT && (flags & O_CREAT)) s3_path_why_enoent(&f->path, mkey, "create");
    if (e == 0 && (f->path.is_service || !f->path.key[0])) e = -EISDIR;
    /* Staged: read-write, append, and readers of an object another process of this host
     * has staged (they see its writes). See s3_stage.c. */
    if (e == 0 && (acc == O_RDWR || (flags & O_APPEND) || (acc == O_RDONLY && s3_stage_live(m, &f->path)))) {
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
            int h = s3_run(&m->client, &op);
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
        file_free(f);
        return e;
    }
    *fhp = f;
    return 0;
}

/* Take up a staged file inherited across exec (its staging file's descriptor). */
int s3f_open_fd(struct s3_mount *m, int fd, int flags, void **fhp)
{
    struct s3_file *f = file_new(m);
    if (!f) return -ENOMEM;
    f->flags = flags;
    int e = s3_stage_open_fd(m, fd, flags, &f->path, &f->stg);
    if (e < 0) {
        f->path.key = NULL;
        file_free(f);
        return e;
    }
    f->writing = (flags & O_ACCMODE) != O_RDONLY;
    *fhp = f;
    return 0;
}

/* --- reading --------------------------------------------------------------------------- */

/* Start fetching [off, off+len) into a free chunk; NULL when no slot or memory is free. */
static struct chunk *chunk_start(struct s3_file *f, off_t off, size_t len, int ahead)
{
    struct chunk *c = NULL;
    for (int i = 0; i < CHUNK_SLOTS && !c; i++)
        if (f->ch[i].state == CH_FREE) c = &f->ch[i];
    if (!c) { /* evict the least recently used chunk that is complete */
        for (int i = 0; i < CHUNK_SLOTS; i++) {
            struct chunk *k = &f->ch[i];
            if ((k->state == CH_READY || k->state == CH_FAILED) && !k->collecting && (!c || k->used_at < c->used_at))
                c = k;
        }
        if (!c) return NULL;
        s3_op_cleanup(&c->op);
        chunk_release(c);
    }
    c->buf = bufpool_get(len, 0);
    if (!c->buf) return NULL;
    c->off = off;
    c->len = len;
    c->got = 0;
    c->err = 0;
    c->used_at = ++f->tick;
    s3_op_init(&c->op, "GET", f->path.bucket, f->path.key);
    snprintf(c->range, sizeof c->range, "bytes=%lld-%lld", (long long)off, (long long)(off + (off_t)len - 1));
    s3_op_header(&c->op, "range", c->range);
    if (f->etag[0]) s3_op_header(&c->op, "if-match", f->etag);
    c->op.dst = c->buf;
    c->op.dst_cap = len;
    c->op.prefetch = ahead;
    c->state = CH_PENDING;
    s3_start(&f->m->client, &c->op);
    return c;
}

static int read_error(struct s3_file *f, int e)
{
    if (e == -ESTALE) {
        slog_error("s3: %s/%s changed while it was being read (ETag %s no longer matches): EIO", f->path.bucket,
                   f->path.key, f->etag);
        return -EIO;
    }
    return e;
}

/* Wait for a pending chunk (f->lock held; released while waiting). */
static void chunk_collect(struct s3_file *f, struct chunk *c)
{
    if (c->collecting) {
        while (c->state == CH_PENDING) pthread_cond_wait(&f->cv, &f->lock);
        return;
    }
    c->collecting = 1;
    pthread_mutex_unlock(&f->lock);
    int e = s3_finish(&f->m->client, &c->op);
    pthread_mutex_lock(&f->lock);
    c->got = c->op.req.got;
    if (e == -ERANGE) { /* past the end */
        c->got = 0;
        e = 0;
    }
    c->err = read_error(f, e);
    c->state = e ? CH_FAILED : CH_READY;
    c->collecting = 0;
    pthread_cond_broadcast(&f->cv);
}

/* Wait for a pending chunk whose whole range the waiting reader's buffer covers, the
 * rest of its body received straight into that buffer (dst) instead of chunk memory
 * and a copy; the chunk is then released. The buffer is the reader's only while it
 * waits, and it waits here until s3_finish() returns, retries and backups included.
 * f->lock held, released while waiting. Returns the bytes in dst or -errno. */
static ssize_t chunk_collect_into(struct s3_file *f, struct chunk *c, char *dst)
{
    c->collecting = 1; /* nobody else collects it, releases it or reads its memory */
    pthread_mutex_unlock(&f->lock);
    size_t have = s3_redirect(&c->op, dst);
    memcpy(dst, c->buf, have); /* what had landed before */
    slog_debug("s3: %s/%s bytes %lld-%lld go straight into the reader's buffer (%zu were in chunk memory)",
               f->path.bucket, f->path.key, (long long)c->off, (long long)(c->off + (off_t)c->len - 1), have);
    int e = s3_finish(&f->m->client, &c->op);
    pthread_mutex_lock(&f->lock);
    ssize_t got = (ssize_t)c->op.req.got;
    if (e == -ERANGE) { /* past the end */
        got = 0;
        e = 0;
    }
    s3_op_cleanup(&c->op);
    c->collecting = 0;
    c->state = CH_READY;
    chunk_release(c); /* its bytes are in dst only */
    pthread_cond_broadcast(&f->cv);
    return e ? read_error(f, e) : got;
}

static struct chunk *chunk_find(struct s3_file *f, off_t pos)
{
    for (int i = 0; i < CHUNK_SLOTS; i++) {
        struct chunk *c = &f->ch[i];
        if (c->state != CH_FREE && pos >= c->off && pos < c->off + (off_t)c->len) return c;
    }
    return NULL;
}

/* The start of the first chunk beginning after pos (or limit). */
static off_t next_cached(struct s3_file *f, off_t pos, off_t limit)
{
    for (int i = 0; i < CHUNK_SLOTS; i++) {
        struct chunk *c = &f->ch[i];
        if (c->state != CH_FREE && c->off > pos && c->off < limit) limit = c->off;
    }
    return limit;
}

/* Parallel ranged GETs straight into buf: [off, off+len), len > 0. Returns bytes or -errno. */
static ssize_t direct_read(struct s3_file *f, char *buf, off_t off, size_t len)
{
    struct s3_mount *m = f->m;
    size_t psz = m->part_size;
    int n = (int)((len + psz - 1) / psz), conc = m->concurrency;
    struct s3_op *ops = calloc((size_t)(n < conc ? n : conc), sizeof *ops);
    char(*ranges)[64] = calloc((size_t)(n < conc ? n : conc), 64);
    if (!ops || !ranges) {
        free(ops);
        free(ranges);
        return -ENOMEM;
    }
    int err = 0;
    size_t total = 0;
    for (int base = 0; base < n && !err; base += conc) {
        int k = n - base < conc ? n - base : conc;
        for (int i = 0; i < k; i++) {
            off_t o = off + (off_t)((size_t)(base + i) * psz);
            size_t l = len - (size_t)(o - off) < psz ? len - (size_t)(o - off) : psz;
            s3_op_init(&ops[i], "GET", f->path.bucket, f->path.key);
            snprintf(ranges[i], 64, "bytes=%lld-%lld", (long long)o, (long long)(o + (off_t)l - 1));
            s3_op_header(&ops[i], "range", ranges[i]);
            if (f->etag[0]) s3_op_header(&ops[i], "if-match", f->etag);
            ops[i].dst = buf + (o - off);
            ops[i].dst_cap = l;
            s3_start(&m->client, &ops[i]);
        }
        for (int i = 0; i < k; i++) {
            int e = s3_finish(&m->client, &ops[i]);
            if (e == -ERANGE) e = 0;
            if (e && !err) err = read_error(f, e);
            size_t want = ops[i].dst_cap;
            if (!e && ops[i].req.got != want && !err) {
                /* A short answer inside the known size: the object is not what it was. */
                if ((int64_t)(off + (off_t)((size_t)(base + i) * psz) + (off_t)ops[i].req.got) < f->size) err = -EIO;
            }
            if (!err) total += ops[i].req.got;
            s3_op_cleanup(&ops[i]);
        }
    }
    free(ops);
    free(ranges);
    return err ? err : (ssize_t)total;
}

/* Keep [from, from + window) fetched ahead, in part-sized chunks. */
static void prefetch(struct s3_file *f, off_t from)
{
    off_t end = from + (off_t)f->ra.window;
    if (end > f->size) end = f->size;
    int pending = 0;
    for (int i = 0; i < CHUNK_SLOTS; i++) pending += f->ch[i].state == CH_PENDING;
    off_t pos = from;
    while (pos < end && pending < f->m->concurrency) {
        struct chunk *c = chunk_find(f, pos);
        if (c) {
            pos = c->off + (off_t)c->len;
            continue;
        }
        size_t len = f->ra.window < f->m->part_size ? f->ra.window : f->m->part_size;
        off_t stop = next_cached(f, pos, pos + (off_t)len);
        if (stop > end) stop = end;
        if (!chunk_start(f, pos, (size_t)(stop - pos), 1)) break;
        pending++;
        pos = stop;
    }
}

/* direct_read() with the file unlocked, added to *done (buf is the read's start);
 * returns 0 at the end of the object, 1 to go on (with *err set on failure). */
static int direct_step(struct s3_file *f, char *buf, off_t pos, size_t len, size_t *done, int *err)
{
    pthread_mutex_unlock(&f->lock);
    ssize_t n = direct_read(f, buf + *done, pos, len);
    pthread_mutex_lock(&f->lock);
    if (n < 0) *err = (int)n;
    if (n == 0) return 0;
    if (n > 0) *done += (size_t)n;
    return 1;
}

ssize_t s3f_pread(void *fh, void *buf, size_t len, off_t off)
{
    struct s3_file *f = fh;
    struct s3_stage *stg = stg_of(f);
    if (stg) return s3_stage_pread(stg, buf, len, off);
    if (f->writing) return -EBADF;
    adopt_after_fork(f);
    if (off >= f->size || len == 0) return 0;
    if ((int64_t)len > f->size - off) len = (size_t)(f->size - off);
    pthread_mutex_lock(&f->lock);
    int seq = ra_sequential(&f->ra, off);
    size_t done = 0;
    int err = 0, waited = 0; /* waited: for data still on its way */
    while (done < len && !err) {
        off_t pos = off + (off_t)done;
        size_t rem = len - done;
        struct chunk *c = chunk_find(f, pos);
        if (c && c->state == CH_PENDING && !c->collecting && pos == c->off && c->len <= rem) {
            size_t clen = c->len;
            ssize_t n = chunk_collect_into(f, c, (char *)buf + done);
            waited = 1;
            if (n < 0) err = (int)n;
            if (n > 0) done += (size_t)n;
            if (n < (ssize_t)clen) break; /* failed, or the object ended early */
            continue;
        }
        if (c && c->state == CH_PENDING) {
            chunk_collect(f, c);
            waited = 1;
            continue;
        }
        if (c && c->state == CH_FAILED) {
            err = c->err;
            s3_op_cleanup(&c->op);
            chunk_release(c);
            break;
        }
        if (c) {
            off_t have = c->off + (off_t)c->got - pos;
            if (have <= 0) break; /* the object ended early */
            size_t n = (size_t)have < rem ? (size_t)have : rem;
            memcpy((char *)buf + done, c->buf + (pos - c->off), n);
            c->used_at = ++f->tick;
            done += n;
            if (seq && pos + (off_t)n == c->off + (off_t)c->got && !c->collecting) {
                /* a sequential reader has passed it: its memory goes to the next prefetch */
                s3_op_cleanup(&c->op);
                chunk_release(c);
            }
            continue;
        }
        if (rem >= f->m->part_size) { /* big enough to be its own parallel GETs */
            off_t stop = next_cached(f, pos, pos + (off_t)rem);
            if (seq) prefetch(f, stop); /* keep the pipeline full behind this read */
            waited = 1;
            if (direct_step(f, (char *)buf, pos, (size_t)(stop - pos), &done, &err) == 0) break;
            continue;
        }
        size_t want = seq ? (f->ra.window > rem ? f->ra.window : rem) : (rem > RANDOM_MIN ? rem : RANDOM_MIN);
        if (want > f->m->part_size && want > rem) want = f->m->part_size > rem ? f->m->part_size : rem;
        off_t stop = next_cached(f, pos, pos + (off_t)want);
        if (stop > f->size) stop = f->size;
        if (!chunk_start(f, pos, (size_t)(stop - pos), 0)) { /* no memory or slot: exactly what is asked */
            waited = 1;
            if (direct_step(f, (char *)buf, pos, rem, &done, &err) == 0) break;
        }
    }
    ra_advance(&f->ra, off, done, seq);
    if (seq && done) {
        ra_probe_note(&f->ra, off + (off_t)done, stats_now_ns(), waited);
        prefetch(f, off + (off_t)done);
    }
    pthread_mutex_unlock(&f->lock);
    return done ? (ssize_t)done : err;
}

/* --- writing --------------------------------------------------------------------------- */

static void upload_query(const struct s3_file *f, int part, char *q, size_t len)
{
    s3_upload_query(f->upload_id, part, q, len);
}

/* A request of this file's multipart upload (create, part, complete, abort): the query
 * names the upload, and the request stays on the upload's endpoint when the endpoints
 * do not share uploads (S3SHIM_SHARED_UPLOADS=no). */
static void upload_op(struct s3_file *f, struct s3_op *op, const char *method, const char *query)
{
    s3_op_init(op, method, f->path.bucket, f->path.key);
    op->pin = &f->upload_ep;
    op->query = query;
}

static int initiate(struct s3_file *f)
{
    return s3_upload_create(&f->m->client, f->path.bucket, f->path.key, &f->upload_ep, f->upload_id,
                            sizeof f->upload_id);
}

/* Collect one part's answer; its buffer goes back to the pool either way. */
static int part_finish(struct s3_file *f, struct part *p)
{
    int e = s3_finish(&f->m->client, &p->op);
    char xe[128] = "", code[64] = "";
    if (e == 0 && p->copy) {
        if (!p->op.req.resp || s3_xml_copy_parse(p->op.req.resp, p->op.req.got, xe, sizeof xe, code, sizeof code) < 0) {
            slog_error("s3: %s/%s: UploadPartCopy of %s failed: %s", f->path.bucket, f->path.key, p->range,
                       code[0] ? code : "unreadable answer");
            e = -EIO;
        }
    }
    if (e == 0) {
        const char *t = p->copy ? xe : p->op.req.etag;
        size_t n = strlen(t);
        if (n >= 2 && t[0] == '"') snprintf(p->etag, sizeof p->etag, "%.*s", (int)(n - 2), t + 1);
        else snprintf(p->etag, sizeof p->etag, "%s", t);
        if (!p->etag[0]) e = -EIO;
    }
    s3_op_cleanup(&p->op);
    if (p->buf) bufpool_put(p->buf, p->cap);
    p->buf = NULL;
    free(p->csrc);
    p->csrc = NULL;
    return e;
}

static int finish_oldest(struct s3_file *f)
{
    struct part *p = f->parts[f->oldest_inflight++];
    if (p->known) return 0;
    int e = part_finish(f, p);
    if (e && !f->err) f->err = e == -ENOENT ? -EIO : e;
    return e;
}

static int part_send(struct s3_file *f)
{
    struct part *p = f->cur;
    f->cur = NULL;
    if (!f->upload_id[0]) {
        int e = initiate(f);
        if (e < 0) {
            if (p->buf) bufpool_put(p->buf, p->cap);
            free(p->csrc);
            free(p);
            return f->err = e;
        }
    }
    if (f->nparts == f->cap_parts) {
        int nc = f->cap_parts ? f->cap_parts * 2 : 64;
        struct part **np = realloc(f->parts, (size_t)nc * sizeof *np);
        if (!np) return f->err = -ENOMEM;
        f->parts = np;
        f->cap_parts = nc;
    }
    f->parts[f->nparts++] = p;
    p->num = f->nparts;
    upload_query(f, p->num, p->query, sizeof p->query);
    upload_op(f, &p->op, "PUT", p->query);
    if (p->copy) { /* headers set by copy_part() point into p */
        s3_op_header(&p->op, "x-amz-copy-source", p->csrc);
        s3_op_header(&p->op, "x-amz-copy-source-range", p->range);
        if (p->ifmatch[0]) s3_op_header(&p->op, "x-amz-copy-source-if-match", p->ifmatch);
        p->op.grow = 1;
    } else {
        md5_base64(p->buf, p->len, p->md5);
        s3_op_header(&p->op, "content-md5", p->md5);
        p->op.body = p->buf;
        p->op.body_len = p->len;
    }
    s3_start(&f->m->client, &p->op);
    /* Keep at most `concurrency` parts in flight; bigger parts for huge files, so that
     * 10,000 parts are never reached. */
    while (f->nparts - f->oldest_inflight > f->m->concurrency) finish_oldest(f);
    if (f->nparts % 1000 == 0 && f->psize * 2 <= MAX_PART) f->psize *= 2;
    return f->err;
}

/* The next part is already on the server (write-behind sent it): only its ETag is kept. */
static int part_known(struct s3_file *f, const char *etag)
{
    struct part *p = calloc(1, sizeof *p);
    if (!p) return f->err = -ENOMEM;
    if (f->nparts == f->cap_parts) {
        int nc = f->cap_parts ? f->cap_parts * 2 : 64;
        struct part **np = realloc(f->parts, (size_t)nc * sizeof *np);
        if (!np) {
            free(p);
            return f->err = -ENOMEM;
        }
        f->parts = np;
        f->cap_parts = nc;
    }
    p->known = 1;
    snprintf(p->etag, sizeof p->etag, "%s", etag);
    f->parts[f->nparts++] = p;
    p->num = f->nparts;
    if (f->nparts % 1000 == 0 && f->psize * 2 <= MAX_PART) f->psize *= 2;
    return 0;
}

/* A part buffer to fill, within the memory budget: finishing our own parts frees it. */
static int part_new(struct s3_file *f)
{
    struct part *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->cap = f->psize;
    while (!(p->buf = bufpool_get(p->cap, 0))) {
        if (f->oldest_inflight < f->nparts) {
            finish_oldest(f);
        } else {
            p->buf = bufpool_get(p->cap, 1);
            break;
        }
    }
    if (!p->buf) {
        free(p);
        return -ENOMEM;
    }
    f->cur = p;
    return 0;
}

/* A streaming file becomes staged (f->lock held): a reader that is mapped, a writer that
 * goes back (Python's zipfile, tar), truncates or is mapped. A writer that has uploaded
 * nothing yet hands its bytes over; one that has already sent parts cannot (yet). */
static int to_stage(struct s3_file *f, const char *why)
{
    if (f->stg) return 0;
    struct s3_stage *stg = NULL;
    int e;
    if (!f->writing) {
        struct s3_stage_base b = {1, f->size, "", f->mtime};
        snprintf(b.etag, sizeof b.etag, "%s", f->etag);
        e = s3_stage_open(f->m, &f->path, f->flags & ~(O_CREAT | O_EXCL | O_TRUNC), &b, &stg);
    } else if (f->committed) { /* after fsync: the object is there, stage it from the server */
        e = s3_stage_open(f->m, &f->path, (f->flags & ~(O_CREAT | O_EXCL | O_TRUNC)), NULL, &stg);
    } else if (f->upload_id[0] || f->nparts || f->err) {
        slog_error("s3: %s/%s: %s after %lld bytes were written as a sequential stream (parts of them already "
                   "uploaded) is not supported; open the file read-write (O_RDWR, Python 'w+b') so that it is staged from the "
                   "start, or raise S3SHIM_PART_SIZE above the file's size",
                   f->path.bucket, f->path.key, why, (long long)f->written);
        if (!f->err) f->err = -EIO; /* what the program meant can no longer be stored */
        /* Let the parts in flight land before close aborts the upload and frees them. */
        while (f->oldest_inflight < f->nparts) finish_oldest(f);
        return -EINVAL;
    } else {
        e = s3_stage_from_bytes(f->m, &f->path, f->flags, f->cur ? f->cur->buf : "", f->cur ? f->cur->len : 0, &stg);
        if (e == 0 && f->cur) {
            bufpool_put(f->cur->buf, f->cur->cap);
            free(f->cur);
            f->cur = NULL;
        }
    }
    if (e == 0) {
        slog_debug("s3: %s/%s: staged (%s)", f->path.bucket, f->path.key, why);
        __atomic_store_n(&f->stg, stg, __ATOMIC_RELEASE);
    }
    return e;
}

ssize_t s3f_pwrite(void *fh, const void *buf, size_t len, off_t off)
{
    struct s3_file *f = fh;
    struct s3_stage *stg = stg_of(f);
    if (stg) return s3_stage_pwrite(stg, buf, len, off);
    if (!f->writing) return -EBADF;
    if (off != f->written && f->owner == getpid()) { /* not sequential: stage it */
        pthread_mutex_lock(&f->lock);
        int e = to_stage(f, "a write at another offset");
        pthread_mutex_unlock(&f->lock);
        if (e < 0) return e;
        return s3_stage_pwrite(stg_of(f), buf, len, off);
    }
    if (adopt_after_fork(f) < 0) {
        slog_error("s3: %s/%s: a forked child cannot write to its parent's upload", f->path.bucket, f->path.key);
        return -EBADF;
    }
    pthread_mutex_lock(&f->lock);
    ssize_t r;
    if (f->committed) {
        slog_error("s3: %s/%s: writing after fsync is not supported (the object is already complete)",
                   f->path.bucket, f->path.key);
        r = -ENOTSUP;
    } else if (off != f->written) {
        slog_error("s3: %s/%s: writes must be sequential on S3 (at %lld, expected %lld); the upload is abandoned",
                   f->path.bucket, f->path.key, (long long)off, (long long)f->written);
        /* What the program meant can no longer be stored: close fails, nothing partial. */
        if (!f->err) f->err = -EIO;
        r = -EINVAL;
    } else if (f->err) {
        r = f->err;
    } else {
        size_t done = 0;
        while (done < len && !f->err) {
            if (!f->cur && part_new(f) < 0) break;
            size_t n = len - done < f->cur->cap - f->cur->len ? len - done : f->cur->cap - f->cur->len;
            memcpy(f->cur->buf + f->cur->len, (const char *)buf + done, n);
            f->cur->len += n;
            done += n;
            if (f->cur->len == f->cur->cap) part_send(f);
        }
        f->written += (off_t)done;
        r = done ? (ssize_t)done : f->err ? f->err : -ENOMEM;
    }
    pthread_mutex_unlock(&f->lock);
    return r;
}

static void abort_upload(struct s3_file *f)
{
    if (!f->upload_id[0]) return;
    if (s3_upload_abort(&f->m->client, f->path.bucket, f->path.key, f->upload_id, &f->upload_ep, 0) < 0)
        slog_error("s3: %s/%s: could not abort upload %s; the bucket may keep its parts until a lifecycle rule "
                   "removes them", f->path.bucket, f->path.key, f->upload_id);
    f->upload_id[0] = '\0';
}

static int put_whole(struct s3_file *f)
{
    struct part *p = f->cur;
    const void *body = p ? p->buf : "";
    size_t len = p ? p->len : 0;
    char md5[25];
    md5_base64(body, len, md5);
    struct s3_op op;
    s3_op_init(&op, "PUT", f->path.bucket, f->path.key);
    s3_op_header(&op, "content-md5", md5);
    op.body = body;
    op.body_len = len;
    int e = s3_run(&f->m->client, &op);
    if (e == 0) snprintf(f->etag, sizeof f->etag, "%s", op.req.etag);
    s3_op_cleanup(&op);
    return e;
}

static int complete(struct s3_file *f)
{
    if (f->cur && f->cur->len) part_send(f);
    while (f->oldest_inflight < f->nparts) finish_oldest(f);
    if (f->err) return f->err;
    struct s3_part_etag *pe = calloc((size_t)f->nparts, sizeof *pe);
    if (!pe) return -ENOMEM;
    for (int i = 0; i < f->nparts; i++) pe[i] = (struct s3_part_etag){f->parts[i]->num, f->parts[i]->etag};
    size_t blen = 0;
    char *body = s3_xml_complete_build(pe, f->nparts, &blen);
    int build_err = errno;
    free(pe);
    if (!body) return -build_err;
    char q[sizeof f->upload_id * 3 + 16];
    upload_query(f, 0, q, sizeof q);
    struct s3_op op;
    upload_op(f, &op, "POST", q);
    op.body = body;
    op.body_len = blen;
    op.grow = 1;
    int e = s3_run(&f->m->client, &op);
    char code[64] = "";
    if (e == 0 && (!op.req.resp || s3_xml_complete_parse(op.req.resp, op.req.got, f->etag, sizeof f->etag, code,
                                                        sizeof code) < 0)) {
        slog_error("s3: %s/%s: CompleteMultipartUpload failed: %s", f->path.bucket, f->path.key,
                   code[0] ? code : "unreadable answer");
        e = -EIO;
    }
    s3_op_cleanup(&op);
    free(body);
    if (e == 0) f->upload_id[0] = '\0';
    return e;
}

/* Make the object exist on the server, with everything written so far. */
static int commit(struct s3_file *f)
{
    if (!crypto_alive()) { /* nothing can be signed or digested any more, not even an abort */
        slog_error("s3: %s/%s: the program shut OpenSSL down (OPENSSL_cleanup) before this upload was closed; "
                   "the object was not written", f->path.bucket, f->path.key);
        while (f->oldest_inflight < f->nparts) finish_oldest(f); /* our buffers: let them land */
        f->err = -EIO;
        f->upload_id[0] = '\0';
        return -EIO;
    }
    uint64_t gen0 = s3_meta_gen(f->path.bucket, f->path.key);
    int e = f->err ? f->err : f->upload_id[0] || f->nparts ? complete(f) : put_whole(f);
    if (e < 0) {
        abort_upload(f);
        slog_error("s3: %s/%s: upload failed (%s); the object was not written", f->path.bucket, f->path.key,
                   strerror(-e));
        s3_meta_forget(f->m, f->path.bucket, f->path.key);
        return -EIO;
    }
    struct stat st;
    s3_fill_stat(f->m, &st, f->path.bucket, f->path.key, f->written, time(NULL), 0);
    s3_meta_changed(f->m, f->path.bucket, f->path.key, gen0, &st, f->etag); /* the run's other processes see it */
    f->committed = 1;
    return 0;
}

int s3f_fsync(void *fh, int datasync)
{
    (void)datasync;
    struct s3_file *f = fh;
    struct s3_stage *stg = stg_of(f);
    if (stg) return f->writing ? s3_stage_fsync(stg) : 0;
    if (!f->writing) return 0;
    if (adopt_after_fork(f) < 0) return -EBADF;
    pthread_mutex_lock(&f->lock);
    int e = f->committed ? 0 : commit(f);
    pthread_mutex_unlock(&f->lock);
    return e;
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
    else if (!f->committed) e = to_stage(f, "shared with a child process");
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
    int e = len == f->written && !f->committed ? 0 : f->owner != getpid() ? -EBADF : to_stage(f, "ftruncate");
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
    if (f->writing)
        s3_fill_stat(f->m, st, f->path.bucket, f->path.key, f->written, time(NULL), 0);
    else
        s3_fill_stat(f->m, st, f->path.bucket, f->path.key, f->size, f->mtime, 0);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

int s3f_fallocate(void *fh, int mode, off_t off, off_t len)
{
    struct s3_file *f = fh;
    if (!stg_of(f)) {
        if (!f->writing || f->owner != getpid()) return -EBADF;
        pthread_mutex_lock(&f->lock);
        int e = to_stage(f, "fallocate");
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
        int e = to_stage(f, "mmap");
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

/* Upload a local file (a staged object) through the same parts as a streaming writer. */
int s3f_upload_fd(struct s3_mount *m, const struct s3_path *p, int fd, int64_t size, s3_copy_ok_fn copy_ok,
                  void *ctx, const char *src_bucket, const char *src_key, const char *src_etag,
                  const struct s3_resume *rs, char *etag, size_t etaglen)
{
    struct s3_file *f = file_new(m);
    if (!f) return -ENOMEM;
    f->writing = 1;
    snprintf(f->path.bucket, sizeof f->path.bucket, "%s", p->bucket);
    f->path.key = strdup(p->key);
    if (!f->path.key) {
        file_free(f);
        return -ENOMEM;
    }
    char *csrc = NULL;
    if (copy_ok && src_key) {
        size_t kl = strlen(src_key), n = strlen(src_bucket) * 3 + kl * 3 + 8;
        csrc = malloc(n);
        if (csrc) {
            int o = snprintf(csrc, n, "/%s/", src_bucket);
            s3_uri_encode(src_key, kl, 1, csrc + o, n - (size_t)o);
        }
    }
    if (rs) { /* go on with write-behind's upload: close aborts it on failure */
        snprintf(f->upload_id, sizeof f->upload_id, "%s", rs->upload_id);
        f->upload_ep = rs->ep;
    }
    int64_t off = 0;
    while (off < size && !f->err) {
        int64_t plen = size - off < (int64_t)f->psize ? size - off : (int64_t)f->psize;
        if (rs && !f->cur && f->nparts < rs->nparts && rs->etag[f->nparts][0] && plen == (int64_t)f->psize) {
            part_known(f, rs->etag[f->nparts]);
            off += plen;
            f->written = off;
            continue;
        }
        /* The caller makes the range ready in fd (0), or says it is to be copied on the
         * server from the source (1: a part the program never touched; multipart only). */
        int how = copy_ok ? copy_ok(ctx, off, plen) : 0;
        if (how < 0 || (how == 1 && !csrc)) {
            f->err = -EIO;
            break;
        }
        if (how == 1) {
            struct part *cp = calloc(1, sizeof *cp);
            if (!cp || !(cp->csrc = strdup(csrc))) {
                free(cp);
                f->err = -ENOMEM;
                break;
            }
            cp->copy = 1;
            cp->len = (size_t)plen;
            snprintf(cp->range, sizeof cp->range, "bytes=%lld-%lld", (long long)off, (long long)(off + plen - 1));
            snprintf(cp->ifmatch, sizeof cp->ifmatch, "%s", src_etag ? src_etag : "");
            f->cur = cp;
            part_send(f);
            off += plen;
            f->written = off;
            continue;
        }
        if (!f->cur && part_new(f) < 0) {
            f->err = -ENOMEM;
            break;
        }
        size_t want = (size_t)plen - f->cur->len;
        while (want > 0) {
            ssize_t r = sys.pread(fd, f->cur->buf + f->cur->len, want, off);
            if (r <= 0) {
                slog_error("s3: %s/%s: reading the staging file failed: %s", p->bucket, p->key,
                           r < 0 ? strerror(errno) : "it is shorter than expected");
                f->err = -EIO;
                break;
            }
            f->cur->len += (size_t)r;
            want -= (size_t)r;
            off += r;
        }
        f->written = off;
        if (!f->err && f->cur->len == f->cur->cap) part_send(f);
    }
    free(csrc);
    int e = commit(f);
    if (e == 0 && etag) snprintf(etag, etaglen, "%s", f->etag);
    file_free(f);
    return e;
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
    file_free(f);
    return 0;
}

int s3f_close(void *fh)
{
    struct s3_file *f = fh;
    int e = 0;
    s3_lock_close(f->m, &f->path, f->lockfd, f->lockguard);
    f->lockfd = f->lockguard = -1;
    struct s3_stage *stg = stg_of(f);
    if (stg) {
        e = s3_stage_close(stg);
        f->stg = NULL;
        if (f->owner != getpid()) { /* a staged writer never has parts in flight; a reader's prefetches are dropped */
            f->writing = 0;
            adopt_after_fork(f);
        }
        file_free(f);
        return e;
    }
    if (f->owner != getpid()) { /* a forked child's copy: the parent's requests and upload */
        if (f->writing) return 0; /* stay the parent's; nothing to free safely here */
        adopt_after_fork(f);
    }
    if (f->writing) {
        pthread_mutex_lock(&f->lock);
        if (!f->committed) e = commit(f);
        pthread_mutex_unlock(&f->lock);
    }
    file_free(f);
    return e;
}
