/* s3_write.c - writing an S3 object: part buffers filled by sequential writes, a
 * multipart upload started by the first full part with at most `concurrency` parts in
 * flight, Content-MD5 on every body, one PUT for a file that never fills a part; the
 * commit (complete, or abort and EIO) and the move to staging of a writer that goes back;
 * and s3f_upload_fd, which sends a staged file through the same parts. */
#include "s3_file_int.h"

#include "../log.h"
#include "../sys.h"
#include "s3_xml.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

void s3f_cur_drop(struct s3_file *f)
{
    if (!f->cur) return;
    if (f->cur->buf) bufpool_put(f->cur->buf, f->cur->cap);
    free(f->cur);
    f->cur = NULL;
}

/* A streaming file becomes staged (f->lock held): a reader that is mapped, a writer that
 * goes back (Python's zipfile, tar), truncates or is mapped. A writer that has uploaded
 * nothing yet hands its bytes over; one that has already sent parts cannot (yet). */
int s3f_to_stage(struct s3_file *f, const char *why)
{
    if (f->stg) return 0;
    if (f->dropped) return -ENOENT; /* removed by name: nothing may bring it back */
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
        if (e == 0) s3f_cur_drop(f);
    }
    if (e == 0) {
        slog_debug("s3: %s/%s: staged (%s)", f->path.bucket, f->path.key, why);
        __atomic_store_n(&f->stg, stg, __ATOMIC_RELEASE);
    }
    return e;
}

/* A file removed by name while open takes writes anywhere and drops them, as one nobody
 * can open again would (f->lock held, released). */
static ssize_t dropped_write(struct s3_file *f, size_t len, off_t off)
{
    if (off + (off_t)len > f->written) f->written = off + (off_t)len;
    pthread_mutex_unlock(&f->lock);
    return (ssize_t)len;
}

/* O_APPEND: a staged object appends under its staging header's lock (the processes of
 * the host that append to it share that file); an upload being streamed goes on at what
 * it has written. */
ssize_t s3f_append(void *fh, const void *buf, size_t len, off_t *at)
{
    struct s3_file *f = fh;
    struct s3_stage *stg = stg_of(f);
    if (stg) return s3_stage_append(stg, buf, len, at);
    *at = (off_t)__atomic_load_n(&f->written, __ATOMIC_RELAXED);
    return s3f_pwrite(fh, buf, len, *at);
}

ssize_t s3f_pwrite(void *fh, const void *buf, size_t len, off_t off)
{
    struct s3_file *f = fh;
    struct s3_stage *stg = stg_of(f);
    if (stg) return s3_stage_pwrite(stg, buf, len, off);
    if (!f->writing) return -EBADF;
    if (off != f->written && f->owner == getpid()) { /* not sequential: stage it */
        pthread_mutex_lock(&f->lock);
        if (f->dropped && !f->stg) return dropped_write(f, len, off);
        int e = s3f_to_stage(f, "a write at another offset");
        pthread_mutex_unlock(&f->lock);
        if (e < 0) return e;
        return s3_stage_pwrite(stg_of(f), buf, len, off);
    }
    if (s3f_adopt_after_fork(f) < 0) {
        slog_error("s3: %s/%s: a forked child cannot write to its parent's upload", f->path.bucket, f->path.key);
        return -EBADF;
    }
    pthread_mutex_lock(&f->lock);
    if (f->stg) { /* staged by another thread meanwhile (an open or rename by name) */
        pthread_mutex_unlock(&f->lock);
        return s3_stage_pwrite(stg_of(f), buf, len, off);
    }
    if (f->dropped) return dropped_write(f, len, off);
    ssize_t r;
    if (f->committed) { /* after fsync: the object is complete; go on staged from it */
        int e = f->owner == getpid() ? s3f_to_stage(f, "a write after fsync") : -EBADF;
        pthread_mutex_unlock(&f->lock);
        return e < 0 ? e : s3_stage_pwrite(stg_of(f), buf, len, off);
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
int s3f_upload_commit(struct s3_file *f)
{
    if (!crypto_alive()) { /* nothing can be signed or digested any more, not even an abort */
        slog_error("s3: %s/%s: the program shut OpenSSL down (OPENSSL_cleanup) before this upload was closed; "
                   "the object was not written", f->path.bucket, f->path.key);
        while (f->oldest_inflight < f->nparts) finish_oldest(f); /* our buffers: let them land */
        f->err = -EIO;
        f->upload_id[0] = '\0';
        return -EIO;
    }
    if (f->dropped) { /* removed by name while open: nothing is stored */
        while (f->oldest_inflight < f->nparts) finish_oldest(f);
        abort_upload(f);
        f->committed = 1;
        return 0;
    }
    uint64_t gen0 = s3_meta_gen(f->path.bucket, f->path.key);
    int e = f->err ? f->err : f->upload_id[0] || f->nparts ? complete(f) : put_whole(f);
    if (e < 0) {
        abort_upload(f);
        slog_error("s3: %s/%s: upload failed (%s); the object was not written", f->path.bucket, f->path.key,
                   strerror(-e));
        s3_meta_forget(f->m, f->path.bucket, f->path.key);
        f->cause = e;
        return -EIO;
    }
    struct stat st;
    s3_fill_stat(f->m, &st, f->path.bucket, f->path.key, f->written, time(NULL), 0);
    s3_meta_changed(f->m, f->path.bucket, f->path.key, gen0, &st, f->etag); /* the run's other processes see it */
    f->committed = 1;
    return 0;
}

#define PLAN_MIN ((int64_t)5 << 20) /* S3's smallest part but the last */
#define PLAN_STEP ((int64_t)1 << 20) /* how far an upload part grows over bytes not copyable */

/* The next part from off when some ranges may be copied (s3_stage.h): returns 1 with
 * *plen its length if it is copied, 0 if it is read from the file, or -errno. */
static int64_t plan_part(struct s3_file *f, s3_copy_ok_fn copy_ok, void *ctx, int64_t off, int64_t size,
                         int64_t *plen)
{
    int64_t ps = (int64_t)f->psize, minp = ps < PLAN_MIN ? ps : PLAN_MIN;
    /* A copied part: the object's share of the requests in flight, in whole part sizes.
     * The server copies its ranges in parallel, and per request: 1 GiB rewritten by
     * sqlite3 took 5.3-5.6 s in 126 copies of 8 MiB, 4.7-5.1 s in 16 of 64 MiB; fewer
     * copies than requests in flight were slower (a 256 MiB object in 4 of 64 MiB). */
    int conc = f->m->concurrency > 0 ? f->m->concurrency : 1;
    int64_t share = (size + conc - 1) / conc, maxc = (share + ps - 1) / ps * ps;
    if (maxc > (int64_t)MAX_PART) maxc = (int64_t)MAX_PART;
    int64_t c = copy_ok(ctx, off, size - off < maxc ? size - off : maxc, 0);
    if (c < 0) return c;
    if (c > 0 && (c >= minp || off + c == size)) {
        *plen = c;
        return 1;
    }
    /* Read from the file: at least the smallest part, grown over what cannot be copied
     * (and copyable runs too short to be parts) up to the part size; a run that can be a
     * part of its own ends it. */
    int64_t most = size - off < ps ? size - off : ps, len = minp < most ? minp : most;
    while (len < most) {
        int64_t at = off + len;
        int64_t run = copy_ok(ctx, at, size - at < maxc ? size - at : maxc, 0);
        if (run < 0) return run;
        if (run >= minp || (run > 0 && at + run == size)) break;
        len += run > 0 ? run : PLAN_STEP;
    }
    *plen = len < most ? len : most;
    return 0;
}

/* Upload a local file (a staged object) through the same parts as a streaming writer. */
int s3f_upload_fd(struct s3_mount *m, const struct s3_path *p, int fd, int64_t size, s3_copy_ok_fn copy_ok,
                  void *ctx, const char *src_bucket, const char *src_key, const char *src_etag,
                  const struct s3_resume *rs, char *etag, size_t etaglen)
{
    struct s3_file *f = s3f_file_new(m);
    if (!f) return -ENOMEM;
    f->writing = 1;
    snprintf(f->path.bucket, sizeof f->path.bucket, "%s", p->bucket);
    f->path.key = strdup(p->key);
    if (!f->path.key) {
        s3f_file_free(f);
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
    /* Planned parts (see s3_stage.h) where something may be copied; write-behind's resumed
     * upload keeps its fixed parts. */
    int plan = copy_ok && csrc && !rs;
    int64_t off = 0;
    while (off < size && !f->err) {
        int64_t plen = size - off < (int64_t)f->psize ? size - off : (int64_t)f->psize;
        if (rs && !f->cur && f->nparts < rs->nparts && rs->etag[f->nparts][0] && plen == (int64_t)f->psize) {
            part_known(f, rs->etag[f->nparts]);
            off += plen;
            f->written = off;
            continue;
        }
        int how = 0;
        if (plan) {
            int64_t c = plan_part(f, copy_ok, ctx, off, size, &plen);
            if (c < 0) {
                f->err = (int)c;
                break;
            }
            how = c > 0;
        }
        /* The caller makes the range ready in fd, or says it is to be copied on the server
         * from the source (a range the program never changed; multipart only). */
        if (!how && copy_ok) {
            int64_t r = plan ? copy_ok(ctx, off, plen, 1) : copy_ok(ctx, off, plen, 0) == plen ? 1 : copy_ok(ctx, off, plen, 1);
            if (r < 0 || (r == 1 && !csrc)) {
                f->err = -EIO;
                break;
            }
            how = !plan && r == 1;
        }
        if (how) {
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
        /* a planned part ends where the plan says (the last one goes with the commit) */
        if (!f->err && (f->cur->len == f->cur->cap || (plan && off < size))) part_send(f);
    }
    free(csrc);
    int e = s3f_upload_commit(f);
    if (e < 0 && f->cause < 0) e = f->cause;
    if (e == 0 && etag) snprintf(etag, etaglen, "%s", f->etag);
    s3f_file_free(f);
    return e;
}

