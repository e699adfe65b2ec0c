/* s3_stage_wb.c - write-behind of staged S3 files.
 *
 * Why. A program that writes a new file through staging (mkstemp, O_RDWR, zip's temporary
 * archive, Python's zipfile) used to upload it only at close: the program wrote, then
 * waited for the whole upload. Here the parts it has moved past go up while it writes, so
 * close sends only the tail and the parts written again since.
 *
 * What. Only a staging file this process created, with nothing to fetch from the server
 * (a new object, or one truncated at open), and only in the process that created it (a
 * forked child or an exec'd program never sends, aborts or completes its upload). Part i
 * (S3SHIM_PART_SIZE bytes, the parts s3f_upload_fd cuts, the first 1000 of them) is sent
 * once the program has written at or past the end of part i+1, at most once in the
 * background, with at most S3SHIM_WRITE_BEHIND parts in flight. The program never waits
 * for write-behind: with that many in flight (or no buffer left in the memory budget) the
 * next part waits for a later write, or for close, which sends what is left with the
 * full concurrency; memory stays bounded. Each part carries the
 * write count it had when it was read from the file: close keeps a part only while that
 * count is unchanged and sends every other part itself (same part numbers: the server
 * keeps the last), then completes the upload (s3f_upload_fd with an s3_resume).
 *
 * Never a different result. Anything write-behind cannot follow ends it, and close then
 * uploads the whole file as before: a change another process (or another descriptor)
 * made (the shared change count went up by more than this process announced), ftruncate,
 * fallocate, a writable shared mapping, removal of the object, a part that failed after
 * its retries, a final size of one part or less (one PUT). Ending it aborts the multipart
 * upload, so nothing partial is ever visible and no parts are left behind.
 *
 * Killed processes. The upload id is recorded beside the staging file (HASH.wb) from its
 * start to its end; the next process that looks at the staging directory finds records
 * whose staging file nobody holds and aborts those uploads (with the first mount of the
 * same endpoints it stages on). The last holder of a staging file and the unlink of a
 * staged key abort what such a record names, too. */
#include "../bufpool.h"
#include "../log.h"
#include "../sys.h"
#include "s3.h"
#include "s3_stage_int.h"
#include "s3_stage_wb.h"
#include "s3_xml.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WB_MAXP 1000 /* s3f_upload_fd keeps the part size for the first 1000 parts */
#define WB_MAGIC "S3SHIM-WB 1\n"

struct wb_req {
    struct s3_op op;
    char query[1600];
    char md5[25];
    char *buf;
    int idx;
    uint32_t gen;
};

struct stage_wb {
    pthread_mutex_t lock;
    pid_t owner;
    struct s3_mount *m;
    char bucket[256];
    char *key;
    char base[PATH_MAX];
    int dfd;
    uint64_t gen0, own; /* own: atomic, changes this process counted since gen0 */
    int dead;           /* nothing more is sent */
    char upload_id[512];
    int ep;
    size_t psize;
    int64_t max_end;
    int next; /* the lowest part never sent in the background */
    int np;   /* parts tracked: wgen/sgen/etag */
    uint32_t wgen[WB_MAXP], sgen[WB_MAXP];
    char (*etag)[128];
    struct wb_req *q; /* in flight: q[(head + k) % qmax], k < qn */
    int qn, qmax, head;
};

static int g_parts = 8;
static struct stg_bases g_orph = STG_BASES_INIT; /* bases with an upload record and no staging file */
static struct stage_wb *g_forked[16]; /* a forked child's copies of its parent's: kept, never used */
static int g_nforked;

void wb_configure(int parts) { g_parts = parts < 0 ? 0 : parts > 64 ? 64 : parts; }
int wb_enabled(void) { return g_parts > 0; }

/* --- the record beside the staging file ------------------------------------------------ */

static int rec_write(const struct stage_wb *w)
{
    char p[PATH_MAX + 8];
    stg_suffix(w->base, ".wb", p, sizeof p);
    int fd = sys.open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    char *t = NULL;
    int n = asprintf(&t, WB_MAGIC "%s\n%s\n%s", w->upload_id, w->bucket, w->key);
    int e = n < 0 ? -ENOMEM : sys.write(fd, t, (size_t)n) == n ? 0 : -EIO;
    free(t);
    sys.close(fd);
    if (e < 0) sys.unlink(p);
    return e;
}

/* Read base's record: upload id, bucket and key (*key malloc'd). 0 or -errno. */
static int rec_read(const char *base, char *id, size_t idlen, char *bucket, size_t blen, char **key)
{
    char p[PATH_MAX + 8], t[2048];
    stg_suffix(base, ".wb", p, sizeof p);
    int fd = sys.open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = sys.read(fd, t, sizeof t - 1);
    sys.close(fd);
    if (n <= 0) return -EINVAL;
    t[n] = '\0';
    size_t ml = strlen(WB_MAGIC);
    char *a = t + ml, *b = strchr(a, '\n'), *c = b ? strchr(b + 1, '\n') : NULL;
    if ((size_t)n < ml || memcmp(t, WB_MAGIC, ml) != 0 || !c) return -EINVAL;
    snprintf(id, idlen, "%.*s", (int)(b - a), a);
    snprintf(bucket, blen, "%.*s", (int)(c - b - 1), b + 1);
    *key = strdup(c + 1);
    return *key ? 0 : -ENOMEM;
}

/* Remove base's record if it is still the one of upload id. */
static void rec_remove(const char *base, const char *id)
{
    char rid[512], bk[256], *key = NULL;
    if (rec_read(base, rid, sizeof rid, bk, sizeof bk, &key) == 0 && strcmp(rid, id) == 0) {
        char p[PATH_MAX + 8];
        stg_suffix(base, ".wb", p, sizeof p);
        sys.unlink(p);
    }
    free(key);
}

/* --- requests ------------------------------------------------------------------------------ */

/* AbortMultipartUpload: 0 when it is gone (also when it was already), else -errno. */
static int abort_id(struct s3_mount *m, const char *bucket, const char *key, const char *id, int *pin)
{
    if (!crypto_alive()) return -EIO; /* nothing can be signed at this point of exit: the next start aborts it */
    return s3_upload_abort(&m->client, bucket, key, id, pin, 1);
}

static int initiate(struct stage_wb *w)
{
    int e = s3_upload_create(&w->m->client, w->bucket, w->key, &w->ep, w->upload_id, sizeof w->upload_id);
    if (e == 0 && rec_write(w) < 0) { /* unrecorded, a killed process could leave it behind */
        abort_id(w->m, w->bucket, w->key, w->upload_id, &w->ep);
        e = -EIO;
    }
    if (e < 0) w->upload_id[0] = '\0';
    return e;
}

/* Collect the oldest part in flight (w->lock held). */
static int reap_one(struct stage_wb *w)
{
    struct wb_req *r = &w->q[w->head];
    int e = s3_finish(&w->m->client, &r->op);
    const char *t = r->op.req.etag;
    size_t n = strlen(t);
    if (e == 0 && n >= 2 && t[0] == '"')
        snprintf(w->etag[r->idx], sizeof w->etag[r->idx], "%.*s", (int)(n - 2), t + 1);
    else if (e == 0 && n)
        snprintf(w->etag[r->idx], sizeof w->etag[r->idx], "%s", t);
    else if (e == 0)
        e = -EIO;
    if (e == 0) w->sgen[r->idx] = r->gen;
    s3_op_cleanup(&r->op);
    bufpool_put(r->buf, w->psize);
    r->buf = NULL;
    w->head = (w->head + 1) % w->qmax;
    w->qn--;
    return e;
}

static void drop_locked(struct stage_wb *w, const char *why);

/* Collect every part that is done (all of them with wait). */
static void reap(struct stage_wb *w, int wait)
{
    int failed = 0;
    while (w->qn > 0 && (wait || __atomic_load_n(&w->q[w->head].op.req.done, __ATOMIC_ACQUIRE)))
        failed |= reap_one(w) < 0;
    if (failed) drop_locked(w, "a part sent ahead failed");
}

static void drop_locked(struct stage_wb *w, const char *why)
{
    int was = w->dead;
    __atomic_store_n(&w->dead, 1, __ATOMIC_RELEASE);
    while (w->qn > 0) reap_one(w);
    if (!w->upload_id[0]) return;
    if (!was) slog_debug("s3: %s/%s: write-behind ends (%s); close uploads the whole file", w->bucket, w->key, why);
    if (abort_id(w->m, w->bucket, w->key, w->upload_id, &w->ep) == 0) { /* else the record stays: aborted later */
        int dl = stg_dir_lock();
        rec_remove(w->base, w->upload_id);
        stg_dir_unlock(dl);
    } else {
        slog_warn("s3: %s/%s: could not abort write-behind's upload %s; the next start aborts it", w->bucket,
                  w->key, w->upload_id);
    }
    w->upload_id[0] = '\0';
}

static int foreign(const struct stage_wb *w, uint64_t gen)
{
    return gen - w->gen0 > __atomic_load_n(&w->own, __ATOMIC_ACQUIRE);
}

/* Send part i (w->lock held): read it from the staging file, then PUT it. */
static int send_part(struct stage_wb *w, int i, char *buf)
{
    struct wb_req *r = &w->q[(w->head + w->qn) % w->qmax];
    r->idx = i;
    r->gen = __atomic_load_n(&w->wgen[i], __ATOMIC_ACQUIRE); /* before reading: a later write shows */
    size_t got = 0;
    while (got < w->psize) {
        ssize_t n = sys.pread(w->dfd, buf + got, w->psize - got, (off_t)i * (off_t)w->psize + (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            bufpool_put(buf, w->psize);
            return -EIO;
        }
        got += (size_t)n;
    }
    r->buf = buf;
    s3_upload_query(w->upload_id, i + 1, r->query, sizeof r->query);
    s3_op_init(&r->op, "PUT", w->bucket, w->key);
    r->op.query = r->query;
    r->op.pin = &w->ep;
    md5_base64(buf, w->psize, r->md5);
    s3_op_header(&r->op, "content-md5", r->md5);
    r->op.body = buf;
    r->op.body_len = w->psize;
    s3_start(&w->m->client, &r->op);
    w->qn++;
    return 0;
}

/* Send the parts the program has moved past by a part (w->lock held). */
static void send_ready(struct stage_wb *w)
{
    while (!w->dead && w->next < WB_MAXP && (int64_t)(w->next + 2) * (int64_t)w->psize <= w->max_end) {
        int i = w->next;
        if (i >= w->np || !__atomic_load_n(&w->wgen[i], __ATOMIC_ACQUIRE)) { /* never written: left to close */
            w->next++;
            continue;
        }
        if (w->qn == w->qmax) return; /* never make the program wait: the next write, or close, sends it */
        if (!w->upload_id[0] && initiate(w) < 0) {
            drop_locked(w, "CreateMultipartUpload failed");
            return;
        }
        char *buf = bufpool_get(w->psize, 0);
        if (!buf) return; /* the memory budget is spent: later, or at close */
        if (send_part(w, i, buf) < 0) {
            drop_locked(w, "reading the staging file failed");
            return;
        }
        w->next++;
    }
}

/* --- the staged file's calls -------------------------------------------------------------- */

struct stage_wb *wb_start(struct s3_mount *m, const struct s3_path *p, const char *base, int dfd, uint64_t gen)
{
    if (!g_parts) return NULL;
    struct stage_wb *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->key = strdup(p->key);
    w->q = calloc((size_t)g_parts, sizeof *w->q);
    if (!w->key || !w->q) {
        free(w->key);
        free(w->q);
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->lock, NULL);
    w->owner = getpid();
    w->m = m;
    snprintf(w->bucket, sizeof w->bucket, "%s", p->bucket);
    snprintf(w->base, sizeof w->base, "%s", base);
    w->dfd = dfd;
    w->gen0 = gen;
    w->ep = -1;
    w->psize = m->part_size;
    w->qmax = g_parts;
    return w;
}

void wb_own_change(struct stage_wb *w)
{
    if (w) __atomic_add_fetch(&w->own, 1, __ATOMIC_ACQ_REL);
}

void wb_written(struct stage_wb *w, int64_t off, int64_t end, uint64_t gen, int unlinked)
{
    if (!w || w->owner != getpid() || __atomic_load_n(&w->dead, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&w->lock);
    if (unlinked)
        drop_locked(w, "the object was removed");
    else if (foreign(w, gen))
        drop_locked(w, "another descriptor or process changed the file");
    if (!w->dead) {
        if (end > w->max_end) w->max_end = end;
        int64_t last = (end - 1) / (int64_t)w->psize;
        if (last >= WB_MAXP) last = WB_MAXP - 1;
        if (last + 1 > w->np) {
            char(*ne)[128] = realloc(w->etag, (size_t)(last + 1) * sizeof *ne);
            if (!ne) {
                drop_locked(w, "out of memory");
            } else {
                memset(ne + w->np, 0, (size_t)(last + 1 - w->np) * sizeof *ne);
                w->etag = ne;
                w->np = (int)last + 1;
            }
        }
        for (int64_t i = off / (int64_t)w->psize; !w->dead && i <= last; i++)
            __atomic_add_fetch(&w->wgen[i], 1, __ATOMIC_ACQ_REL);
    }
    if (!w->dead) reap(w, 0);
    send_ready(w);
    pthread_mutex_unlock(&w->lock);
}

void wb_drop(struct stage_wb *w, const char *why)
{
    if (!w || w->owner != getpid()) return;
    pthread_mutex_lock(&w->lock);
    drop_locked(w, why);
    pthread_mutex_unlock(&w->lock);
}

int wb_resume(struct stage_wb *w, int64_t size, uint64_t gen, int unlinked, struct s3_resume *rs)
{
    if (!w || w->owner != getpid()) return 0;
    pthread_mutex_lock(&w->lock);
    if (unlinked)
        drop_locked(w, "the object was removed");
    else if (foreign(w, gen))
        drop_locked(w, "another descriptor or process changed the file");
    else if (size <= (int64_t)w->psize)
        drop_locked(w, "one part or less: one PUT");
    reap(w, 1);
    int kept = 0;
    if (!w->dead && w->upload_id[0]) {
        for (int i = 0; i < w->np; i++) {
            if (w->sgen[i] != __atomic_load_n(&w->wgen[i], __ATOMIC_ACQUIRE)) w->etag[i][0] = '\0';
            kept += w->etag[i][0] != '\0';
        }
        rs->upload_id = w->upload_id;
        rs->ep = w->ep;
        rs->nparts = w->np;
        rs->etag = w->etag;
        slog_debug("s3: %s/%s: %d part(s) sent ahead are kept", w->bucket, w->key, kept);
    }
    int r = !w->dead && w->upload_id[0];
    __atomic_store_n(&w->dead, 1, __ATOMIC_RELEASE); /* what happens to the upload is close's now */
    pthread_mutex_unlock(&w->lock);
    return r;
}

void wb_handed(struct stage_wb *w, int e)
{
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    /* Completed, or aborted by s3f_upload_fd; abort again to be sure of a failed one (an
     * upload already gone answers 404, which is fine). */
    if (e == 0 || abort_id(w->m, w->bucket, w->key, w->upload_id, &w->ep) == 0) {
        int dl = stg_dir_lock();
        rec_remove(w->base, w->upload_id);
        stg_dir_unlock(dl);
    }
    w->upload_id[0] = '\0';
    pthread_mutex_unlock(&w->lock);
}

void wb_free(struct stage_wb *w)
{
    if (!w) return;
    if (w->owner != getpid()) { /* the parent's requests and upload: leave them be */
        if (g_nforked < (int)(sizeof g_forked / sizeof g_forked[0])) g_forked[g_nforked++] = w;
        return;
    }
    pthread_mutex_lock(&w->lock);
    drop_locked(w, "closed without an upload");
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_destroy(&w->lock);
    free(w->etag);
    free(w->q);
    free(w->key);
    free(w);
}

/* --- uploads of processes that are gone ------------------------------------------------- */

void wb_abort_recorded(struct s3_mount *m, const char *base)
{
    char id[512], bk[256], *key = NULL;
    if (rec_read(base, id, sizeof id, bk, sizeof bk, &key) < 0) return;
    if (abort_id(m, bk, key, id, NULL) == 0) {
        char p[PATH_MAX + 8];
        stg_suffix(base, ".wb", p, sizeof p);
        sys.unlink(p);
        slog_info("s3: %s/%s: aborted the multipart upload %s a process that ended without closing the file had "
                  "started", bk, key, id);
    }
    free(key);
}

void wb_orphans_scan(void)
{
    DIR *d = sys.opendir(stg_dir);
    struct dirent *de;
    while (d && (de = sys.readdir(d))) {
        if (strlen(de->d_name) != 32 + 3 || strcmp(de->d_name + 32, ".wb") != 0) continue;
        char mp[48];
        struct stat st;
        snprintf(mp, sizeof mp, "%.32s.map", de->d_name);
        if (sys.fstatat(sys.dirfd(d), mp, &st, 0) == 0) continue; /* staged: its process is alive */
        char base[PATH_MAX];
        snprintf(base, sizeof base, "%s/%.32s", stg_dir, de->d_name);
        stg_bases_add(&g_orph, base);
    }
    if (d) sys.closedir(d);
}

static int abort_one(struct s3_mount *m, const char *base)
{
    char id[512], bk[256], *key = NULL, mine[PATH_MAX];
    int r = rec_read(base, id, sizeof id, bk, sizeof bk, &key);
    if (r == 0) stg_name(m, bk, key, mine, sizeof mine);
    free(key);
    if (r != 0) return 0; /* no record (any more) */
    if (strcmp(mine, base) != 0) return 1; /* another endpoint set's: its own mount */
    int dl = stg_dir_lock();
    char mp[PATH_MAX + 8];
    struct stat st;
    stg_suffix(base, ".map", mp, sizeof mp);
    if (sys.stat(mp, &st) < 0) wb_abort_recorded(m, base); /* still nobody's */
    stg_dir_unlock(dl);
    return 0;
}

void wb_orphans_abort(struct s3_mount *m) { stg_bases_each(&g_orph, m, abort_one); }
