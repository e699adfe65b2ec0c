/* s3_stage.c - S3 objects for programs that do not write strictly sequentially.
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
 * to 64 MiB, fetched in batches of parallel ranges once half of it has been read).
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
 * uploaded. Close returns 0 only when the object is on the server. If the object changed
 * on the server while it was staged, the close still replaces it (last close wins) and a
 * warning says so; blocks that were not fetched yet can then no longer be read (412): the
 * read or the upload fails with EIO and a log line.
 *
 * Sharing. Processes of one host that open the object staged at once share the staging
 * file: they see each other's writes at once (and mmap, fstat, sendfile work on the real
 * file); each close of a writer uploads what is there, so the last close wins on the
 * server. While an object is staged, stat of its key answers from the staging file (a
 * new object exists for the host before its first upload) and unlink or rename of it
 * stops its uploads (open descriptors keep their bytes, as with a removed local file).
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
 * new program joins the same staging file (s3_stage_open_fd). */
#include "../config.h"
#include "../bufpool.h"
#include "../efd.h"
#include "../log.h"
#include "../sys.h"
#include "s3.h"
#include "s3_stage.h"
#include "s3_stage_int.h"
#include "s3_stage_wb.h"
#include "s3_xml.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLK_SHIFT 20
#define BLK ((int64_t)1 << BLK_SHIFT)
#define RA_MIN ((size_t)4 << 20)
#define RA_MAX ((size_t)64 << 20)
#define USAGE_STEP ((int64_t)64 << 20) /* re-count the directory's usage every 64 MiB of growth */


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
    struct s3_stage *next;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
char stg_dir[PATH_MAX - 256]; /* room for "/HASH.data" */
static unsigned long long g_limit = 16ULL << 30;
static int g_configured, g_ready; /* g_ready: atomic */
static struct s3_stage *g_list;
/* DIR/.active, mapped: how many objects are staged on this host (changed under the
 * directory's lock, recounted by every process's first scan). stat and open of S3 keys
 * look for a staging file only when it is not 0: an atomic load, no system call. */
static uint64_t *g_active;

/* The descriptors a staging file keeps open live high and engine-owned (efd.h): a
 * program that dup2()s onto a low number it thinks is free (a shell's `exec 3>>f`, right
 * after the open that made them) must not replace them. */
static int park(int fd) { return fd < 0 ? fd : efd_park(fd); }

void stg_active_add(int64_t d)
{
    if (!g_active) return;
    if (d < 0 && __atomic_load_n(g_active, __ATOMIC_ACQUIRE) < (uint64_t)-d) {
        __atomic_store_n(g_active, 0, __ATOMIC_RELEASE);
        return;
    }
    __atomic_add_fetch(g_active, (uint64_t)d, __ATOMIC_ACQ_REL);
}

/* --- settings, directory, names --------------------------------------------------------- */

void bk_s3_staging_dir(const char *configured, char *buf, size_t len)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (configured && configured[0])
        snprintf(buf, len, "%s", configured);
    else if (xdg && xdg[0] == '/') /* never /tmp: often small and in RAM */
        snprintf(buf, len, "%s/s3shim-staging", xdg);
    else
        snprintf(buf, len, "/var/tmp/s3shim-staging-%u", (unsigned)getuid());
}

void s3_stage_configure(const struct cfg *cfg)
{
    pthread_mutex_lock(&g_lock);
    if (!g_configured) {
        bk_s3_staging_dir(cfg ? cfg->staging_dir : NULL, stg_dir, sizeof stg_dir);
        if (cfg) g_limit = cfg->staging_limit;
        if (cfg) wb_configure(cfg->write_behind);
        g_configured = 1;
    }
    pthread_mutex_unlock(&g_lock);
}

/* The directory's lock: joining, creating and removing staging files happen under it. */
int stg_dir_lock(void)
{
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/.lock", stg_dir);
    int fd = sys.open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    while (sys.flock(fd, LOCK_EX) < 0 && errno == EINTR) {
    }
    return fd;
}

void stg_dir_unlock(int fd)
{
    if (fd >= 0) sys.close(fd); /* releases the flock */
}

void stg_suffix(const char *base, const char *sfx, char *out, size_t len) { snprintf(out, len, "%s%s", base, sfx); }

/* Remove the staging files of base if nobody holds them (dir lock held). 1 if removed. */
static int remove_if_unheld(const char *base, int quiet)
{
    char mp[PATH_MAX + 8], dp[PATH_MAX + 8];
    stg_suffix(base, ".map", mp, sizeof mp);
    stg_suffix(base, ".data", dp, sizeof dp);
    int fd = sys.open(mp, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) sys.unlink(dp); /* an orphan data file */
        return 0;
    }
    int r = 0;
    if (sys.flock(fd, LOCK_EX | LOCK_NB) == 0) {
        struct stat st;
        if (!quiet && sys.fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(struct stage_hdr)) {
            struct stage_hdr *h = sys.mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
            if (h != MAP_FAILED) {
                if (h->magic == STAGE_MAGIC && h->gen != h->up_gen)
                    slog_warn("s3: %s/%s: staged changes of a process that ended without closing it were never "
                              "uploaded; discarding its staging file", h->bucket, h->key);
                munmap(h, sizeof *h);
            }
        }
        sys.unlink(dp);
        sys.unlink(mp);
        stg_active_add(-1);
        r = 1;
    }
    sys.close(fd);
    return r;
}

/* Make the directory; remove staging files that processes which died left behind. */
int stg_dir_ready(void)
{
    if (__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) return 0;
    pthread_mutex_lock(&g_lock);
    if (!g_configured) {
        pthread_mutex_unlock(&g_lock);
        s3_stage_configure(NULL);
        pthread_mutex_lock(&g_lock);
    }
    int e = 0;
    if (!g_ready) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s", stg_dir);
        for (char *s = p + 1; *s; s++) /* mkdir -p */
            if (*s == '/') {
                *s = '\0';
                sys.mkdir(p, 0700);
                *s = '/';
            }
        if (sys.mkdir(p, 0700) < 0 && errno != EEXIST) e = -errno;
        struct stat st;
        if (e == 0 && (sys.stat(p, &st) < 0 || !S_ISDIR(st.st_mode))) e = errno ? -errno : -ENOTDIR;
        if (e < 0) {
            slog_error("s3: the staging directory %s cannot be used (%s); set S3SHIM_STAGING_DIR to a writable "
                       "directory on a disk", stg_dir, strerror(-e));
        } else {
            char ap[PATH_MAX + 16];
            snprintf(ap, sizeof ap, "%s/.active", stg_dir);
            int afd = sys.open(ap, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            struct stat ast;
            if (afd >= 0 && sys.fstat(afd, &ast) == 0 && (ast.st_size >= 4096 || sys.ftruncate(afd, 4096) == 0)) {
                void *a = sys.mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, afd, 0);
                if (a != MAP_FAILED) g_active = a;
            }
            if (afd >= 0) sys.close(afd);
            int dl = stg_dir_lock(), removed = 0;
            uint64_t kept = 0;
            DIR *d = sys.opendir(stg_dir);
            struct dirent *de;
            while (d && (de = sys.readdir(d))) {
                size_t n = strlen(de->d_name);
                if (n == 32 + 5 && strcmp(de->d_name + 32, ".lock") == 0) { /* nobody's: remove */
                    s3_lock_sweep(dl, de->d_name);
                    continue;
                }
                if (n != 32 + 4 || strcmp(de->d_name + 32, ".map") != 0) continue;
                char base[PATH_MAX];
                snprintf(base, sizeof base, "%s/%.32s", stg_dir, de->d_name);
                if (remove_if_unheld(base, 0))
                    removed++;
                else
                    kept++;
            }
            if (d) sys.closedir(d);
            if (g_active) __atomic_store_n(g_active, kept, __ATOMIC_RELEASE); /* the count, right again */
            wb_orphans_scan(); /* write-behind uploads of the processes that died */
            stg_dir_unlock(dl);
            __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
            if (removed) slog_info("s3: removed %d staging file(s) left by processes that died", removed);
        }
    }
    pthread_mutex_unlock(&g_lock);
    return e;
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* DIR/HASH of an object: the endpoints, bucket and key. */
void stg_name(struct s3_mount *m, const char *bucket, const char *key, char *out, size_t len)
{
    uint64_t a = 1469598103934665603ull, b = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < m->client.nep; i++) {
        a = fnv(fnv(a, m->client.ep[i].url), ",");
        b = fnv(fnv(b, m->client.ep[i].url), ",");
    }
    a = fnv(fnv(fnv(a, "\n"), bucket), "/");
    b = fnv(fnv(fnv(b, "\n"), bucket), "/");
    a = fnv(a, key);
    b = fnv(fnv(b, key), "#");
    snprintf(out, len, "%s/%016" PRIx64 "%016" PRIx64, stg_dir, a, b);
}

/* Bytes the host's staging files hold (allocated, not apparent: they are sparse). */
static int64_t dir_usage(void)
{
    DIR *d = sys.opendir(stg_dir);
    if (!d) return 0;
    int64_t sum = 0;
    struct dirent *de;
    while ((de = sys.readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 5, ".data") != 0) continue;
        struct stat st;
        if (sys.fstatat(sys.dirfd(d), de->d_name, &st, 0) == 0) sum += (int64_t)st.st_blocks * 512;
    }
    sys.closedir(d);
    return sum;
}

static int over_limit(struct s3_stage *s, int64_t want, const char *what)
{
    int64_t used = 0;
    int over = (unsigned long long)want > g_limit;
    if (!over && want - s->counted >= USAGE_STEP) {
        used = dir_usage();
        over = (unsigned long long)(used + (want - s->counted)) > g_limit;
        if (!over) s->counted = want;
    }
    if (!over) return 0;
    if (!used) used = dir_usage();
    slog_error("s3: %s/%s: %s would take staging past S3SHIM_STAGING_LIMIT=%llu bytes (%lld bytes wanted, %lld "
               "held in %s); raise S3SHIM_STAGING_LIMIT or free the space: ENOSPC", s->path.bucket, s->path.key, what,
               g_limit, (long long)want, (long long)used, stg_dir);
    return -ENOSPC;
}

/* --- the shared map ------------------------------------------------------------------------ */

static void hlock(struct stage_hdr *h)
{
    if (pthread_mutex_lock(&h->lock) == EOWNERDEAD) pthread_mutex_consistent(&h->lock); /* a fetcher died */
}

static void hunlock(struct stage_hdr *h) { pthread_mutex_unlock(&h->lock); }

static int present(const struct stage_hdr *h, int64_t b)
{
    return b >= (int64_t)h->nblocks || __atomic_load_n(&h->present[b], __ATOMIC_ACQUIRE);
}

static void set_present(struct stage_hdr *h, int64_t b)
{
    if (b < (int64_t)h->nblocks) __atomic_store_n(&h->present[b], 1, __ATOMIC_RELEASE);
}

static int64_t flimit(const struct stage_hdr *h) { return __atomic_load_n(&h->fetch_limit, __ATOMIC_ACQUIRE); }

static void mark_wrote(struct s3_stage *s) { __atomic_store_n(&s->wrote, 1, __ATOMIC_RELAXED); }
static uint64_t changed(struct stage_hdr *h) { return __atomic_add_fetch(&h->gen, 1, __ATOMIC_ACQ_REL); }

/* Is every block of [off, end) (below the fetch limit) there? */
static int all_present(struct stage_hdr *h, int64_t off, int64_t end)
{
    int64_t lim = flimit(h);
    if (end > lim) end = lim;
    if (off >= end) return 1;
    for (int64_t b = off >> BLK_SHIFT; b <= (end - 1) >> BLK_SHIFT; b++)
        if (!present(h, b)) return 0;
    return 1;
}

static int write_all(int fd, const char *buf, size_t len, off_t off)
{
    while (len) {
        ssize_t r = sys.pwrite(fd, buf, len, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? -errno : -EIO;
        buf += r;
        len -= (size_t)r;
        off += r;
    }
    return 0;
}

struct fetch {
    struct s3_op op;
    char range[64];
    char *buf;
    int64_t off;
    size_t len;
};

/* Fetch the missing blocks of [off, end) from the source (h->lock held). */
static int fetch_locked(struct s3_stage *s, int64_t off, int64_t end)
{
    struct stage_hdr *h = s->h;
    int64_t lim = flimit(h);
    if (end > lim) end = lim;
    if (off >= end) return 0;
    int conc = s->m->concurrency < 64 ? s->m->concurrency : 64;
    int64_t maxrun = (int64_t)s->m->part_size;
    struct fetch *fv = calloc((size_t)conc, sizeof *fv);
    if (!fv) return -ENOMEM;
    int err = 0;
    int64_t b = off >> BLK_SHIFT, last = (end - 1) >> BLK_SHIFT;
    while (b <= last && !err) {
        int n = 0;
        while (b <= last && n < conc) { /* up to conc runs of missing blocks, each at most a part */
            if (present(h, b)) {
                b++;
                continue;
            }
            int64_t rs = b;
            while (b <= last && !present(h, b) && (b + 1 - rs) * BLK <= maxrun) b++;
            struct fetch *f = &fv[n];
            f->off = rs * BLK;
            int64_t fe = b * BLK < lim ? b * BLK : lim;
            f->len = (size_t)(fe - f->off);
            f->buf = bufpool_get(f->len, 1);
            if (!f->buf) {
                err = -ENOMEM;
                break;
            }
            s3_op_init(&f->op, "GET", h->src_bucket, h->src_key);
            snprintf(f->range, sizeof f->range, "bytes=%lld-%lld", (long long)f->off,
                     (long long)(f->off + (int64_t)f->len - 1));
            s3_op_header(&f->op, "range", f->range);
            if (h->etag[0]) s3_op_header(&f->op, "if-match", h->etag);
            f->op.dst = f->buf;
            f->op.dst_cap = f->len;
            s3_start(&s->m->client, &f->op);
            n++;
        }
        for (int i = 0; i < n; i++) {
            struct fetch *f = &fv[i];
            int e = s3_finish(&s->m->client, &f->op);
            if (e == 0 && f->op.req.got != f->len) e = -EIO;
            if (e == 0) e = write_all(s->dfd, f->buf, f->len, f->off);
            if (e == 0)
                for (int64_t k = f->off >> BLK_SHIFT; k < (f->off + (int64_t)f->len + BLK - 1) >> BLK_SHIFT; k++)
                    set_present(h, k);
            else if (!err) {
                err = e == -ESTALE || e == -ERANGE ? -EIO : e;
                if (e == -ESTALE || e == -ERANGE || e == -ENOENT)
                    slog_error("s3: %s/%s changed on the server while it was staged (ETag %s no longer matches); "
                               "the bytes at %s that were not fetched yet cannot be read: EIO",
                               h->bucket, h->key, h->etag, f->range);
                else
                    slog_error("s3: %s/%s: fetching %s into the staging file failed: %s", h->bucket, h->key,
                               f->range, strerror(-e));
                if (err == -ENOENT) err = -EIO;
            }
            s3_op_cleanup(&f->op);
            bufpool_put(f->buf, f->len);
            f->buf = NULL;
        }
    }
    free(fv);
    return err;
}

static int ensure(struct s3_stage *s, int64_t off, int64_t end)
{
    if (all_present(s->h, off, end)) return 0;
    hlock(s->h);
    int e = fetch_locked(s, off, end);
    hunlock(s->h);
    return e;
}

/* --- opening ------------------------------------------------------------------------------- */

static void list_add(struct s3_stage *s)
{
    pthread_mutex_lock(&g_lock);
    s->next = g_list;
    g_list = s;
    pthread_mutex_unlock(&g_lock);
}

static void list_del(struct s3_stage *s)
{
    pthread_mutex_lock(&g_lock);
    for (struct s3_stage **pp = &g_list; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&g_lock);
}

static void stage_free(struct s3_stage *s)
{
    if (s->h && s->h != MAP_FAILED) munmap(s->h, s->maplen);
    if (s->pfd >= 0) efd_close(s->pfd);
    if (s->dfd >= 0) efd_close(s->dfd);
    if (s->mapfd >= 0) efd_close(s->mapfd);
    s3_path_free(&s->path);
    free(s);
}

static struct s3_stage *stage_new(struct s3_mount *m, const char *bucket, const char *key, int flags)
{
    struct s3_stage *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->m = m;
    s->mapfd = s->dfd = s->pfd = -1;
    s->acc = flags & O_ACCMODE;
    s->flags = flags;
    s->wrote = s->acc != O_RDONLY;
    snprintf(s->path.bucket, sizeof s->path.bucket, "%s", bucket);
    s->path.key = strdup(key);
    if (!s->path.key) {
        free(s);
        return NULL;
    }
    return s;
}

/* Our hold on the map goes along to a program this one execs when the program's own
 * descriptor does (opened without O_CLOEXEC, like a shell's redirection): the program
 * exec'd takes it up (find_inherited_map), so the staging file lives on in between. */
static void keep_across_exec(struct s3_stage *s, int fd)
{
    if (!(s->flags & O_CLOEXEC)) sys.fcntl(fd, F_SETFD, 0);
}

/* A hold on base's map inherited across exec and not taken up yet, or -1. */
static int find_inherited_map(const char *base)
{
    char want[PATH_MAX + 8];
    stg_suffix(base, ".map", want, sizeof want);
    DIR *d = sys.opendir("/proc/self/fd");
    if (!d) return -1;
    int found = -1;
    struct dirent *de;
    while (found < 0 && (de = sys.readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        int fd = atoi(de->d_name);
        if (fd == sys.dirfd(d)) continue;
        char t[PATH_MAX];
        ssize_t n = sys.readlinkat(sys.dirfd(d), de->d_name, t, sizeof t - 1);
        if (n <= 0) continue;
        t[n] = '\0';
        if (strcmp(t, want) != 0) continue;
        int taken = 0;
        pthread_mutex_lock(&g_lock);
        for (struct s3_stage *x = g_list; x; x = x->next) taken |= x->mapfd == fd;
        pthread_mutex_unlock(&g_lock);
        if (!taken) found = fd;
    }
    sys.closedir(d);
    return found;
}

/* Join a live staging file of base (dir lock held): 1 joined, 0 none (a dead one is
 * removed), or -errno. */
static int try_join(struct s3_stage *s, int check_key)
{
    char mp[PATH_MAX + 8], dp[PATH_MAX + 8];
    stg_suffix(s->base, ".map", mp, sizeof mp);
    stg_suffix(s->base, ".data", dp, sizeof dp);
    int fd = s->mapfd; /* an inherited hold (s3_stage_open_fd) */
    s->mapfd = -1;
    if (fd < 0) {
        fd = park(sys.open(mp, O_RDWR | O_CLOEXEC));
        if (fd < 0) return errno == ENOENT ? 0 : -errno;
        if (sys.flock(fd, LOCK_EX | LOCK_NB) == 0) { /* nobody holds it: left by a process that died */
            efd_close(fd);
            remove_if_unheld(s->base, 0);
            return 0;
        }
        sys.flock(fd, LOCK_SH);
        keep_across_exec(s, fd);
    }
    struct stat st;
    struct stage_hdr *h = MAP_FAILED;
    if (sys.fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof *h)
        h = sys.mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED || h->magic != STAGE_MAGIC || h->version != STAGE_VERSION ||
        (size_t)st.st_size < sizeof *h + h->nblocks ||
        (check_key && (strcmp(h->bucket, s->path.bucket) != 0 || strcmp(h->key, s->path.key) != 0))) {
        slog_error("s3: %s/%s: the staging file %s belongs to another object or another version of s3shim; "
                   "remove it or set S3SHIM_STAGING_DIR", s->path.bucket, s->path.key, mp);
        if (h != MAP_FAILED) munmap(h, (size_t)st.st_size);
        efd_close(fd);
        return -EBUSY;
    }
    int dfd = park(sys.open(dp, O_RDWR | O_CLOEXEC));
    if (dfd < 0) {
        int e = -errno;
        munmap(h, (size_t)st.st_size);
        efd_close(fd);
        return e;
    }
    s->mapfd = fd;
    s->h = h;
    s->maplen = (size_t)st.st_size;
    s->dfd = dfd;
    return 1;
}

/* Create the staging files of a source of `size` bytes (dir lock held). */
static int create(struct s3_stage *s, int64_t size, const char *etag, time_t mtime, int dirty_from_start)
{
    char mp[PATH_MAX + 8], dp[PATH_MAX + 8];
    stg_suffix(s->base, ".map", mp, sizeof mp);
    stg_suffix(s->base, ".data", dp, sizeof dp);
    uint32_t nb = (uint32_t)((size + BLK - 1) >> BLK_SHIFT);
    size_t len = sizeof(struct stage_hdr) + nb;
    int fd = park(sys.open(mp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (fd < 0) return -errno;
    struct stage_hdr *h = MAP_FAILED;
    if (sys.ftruncate(fd, (off_t)len) == 0) h = sys.mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int dfd = h == MAP_FAILED ? -1 : park(sys.open(dp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (dfd < 0 || sys.ftruncate(dfd, size) < 0) {
        int e = -errno;
        slog_error("s3: %s/%s: cannot create the staging file %s: %s", s->path.bucket, s->path.key, dp, strerror(-e));
        if (dfd >= 0) efd_close(dfd);
        if (h != MAP_FAILED) munmap(h, len);
        efd_close(fd);
        sys.unlink(mp);
        sys.unlink(dp);
        return e;
    }
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&h->lock, &a);
    pthread_mutexattr_destroy(&a);
    h->base_size = size;
    h->fetch_limit = size;
    h->nblocks = nb;
    h->mtime = mtime;
    snprintf(h->etag, sizeof h->etag, "%s", etag ? etag : "");
    snprintf(h->src_bucket, sizeof h->src_bucket, "%s", s->path.bucket);
    snprintf(h->src_key, sizeof h->src_key, "%s", s->path.key);
    snprintf(h->bucket, sizeof h->bucket, "%s", s->path.bucket);
    snprintf(h->key, sizeof h->key, "%s", s->path.key);
    h->gen = dirty_from_start ? 1 : 0;
    h->version = STAGE_VERSION;
    __atomic_store_n(&h->magic, STAGE_MAGIC, __ATOMIC_RELEASE);
    sys.flock(fd, LOCK_SH);
    keep_across_exec(s, fd);
    stg_active_add(1);
    s->mapfd = fd;
    s->h = h;
    s->maplen = len;
    s->dfd = dfd;
    return 0;
}

/* The program's descriptor (its access mode) and the truncation O_TRUNC asks for. */
static int finish_open(struct s3_stage *s)
{
    char dp[PATH_MAX + 8];
    stg_suffix(s->base, ".data", dp, sizeof dp);
    if (s->acc == O_RDWR) {
        s->pfd = park(sys.dup(s->dfd));
        if (s->pfd >= 0) sys.fcntl(s->pfd, F_SETFD, FD_CLOEXEC);
    } else {
        s->pfd = park(sys.open(dp, s->acc | O_CLOEXEC));
    }
    if (s->pfd < 0) return -errno;
    if ((s->flags & O_TRUNC) && s->acc != O_RDONLY) {
        struct stat st;
        hlock(s->h);
        if (sys.fstat(s->dfd, &st) == 0 && st.st_size > 0) {
            __atomic_store_n(&s->h->fetch_limit, 0, __ATOMIC_RELEASE);
            if (sys.ftruncate(s->dfd, 0) == 0) changed(s->h);
        }
        hunlock(s->h);
    }
    struct stat st;
    if (sys.fstat(s->dfd, &st) == 0) s->counted = (int64_t)st.st_size;
    list_add(s);
    return 0;
}

/* Might anything be staged on this host? (Sets up the directory once per process.) */
/* Open staged; bytes != NULL: a streaming writer's bytes become the whole object. */
static int stage_open(struct s3_mount *m, const struct s3_path *p, int flags, const struct s3_stage_base *base,
                      const void *bytes, size_t nbytes, struct s3_stage **out)
{
    int e = stg_dir_ready();
    if (e < 0) return e;
    wb_orphans_abort(m);
    struct s3_stage *s = stage_new(m, p->bucket, p->key, flags);
    if (!s) return -ENOMEM;
    stg_name(m, p->bucket, p->key, s->base, sizeof s->base);
    int dl = stg_dir_lock();
    if (dl < 0) {
        slog_error("s3: %s/%s: cannot lock the staging directory %s: %s", p->bucket, p->key, stg_dir, strerror(-dl));
        stage_free(s);
        return dl;
    }
    int r = try_join(s, 1);
    stg_dir_unlock(dl);
    if (r == 1 && (flags & O_CREAT) && (flags & O_EXCL)) r = -EEXIST; /* created by another opener */
    if (r == 1 && bytes) { /* another process has it staged: our bytes replace its content */
        hlock(s->h);
        __atomic_store_n(&s->h->fetch_limit, 0, __ATOMIC_RELEASE);
        r = sys.ftruncate(s->dfd, 0) < 0 ? -errno : write_all(s->dfd, bytes, nbytes, 0);
        changed(s->h);
        hunlock(s->h);
        if (r == 0) r = 1;
    }
    if (r == 0) { /* not staged here yet: what is on the server? */
        struct s3_stage_base b = {0, 0, "", 0};
        int exists = 0;
        if (bytes) {
            b.known = 1;
        } else if (base && base->known) {
            b = *base;
            exists = 1;
        } else {
            struct s3_op op;
            s3_op_init(&op, "HEAD", p->bucket, p->key);
            op.quiet_404 = 1;
            int h = s3_run(&m->client, &op);
            if (h == 0) {
                exists = 1;
                b.size = op.req.content_length;
                snprintf(b.etag, sizeof b.etag, "%s", op.req.etag);
                b.mtime = op.req.last_modified[0] ? s3_parse_http_date(op.req.last_modified) : 0;
                if (b.mtime < 0) b.mtime = 0;
            } else if (h == -ENOENT) {
                struct stat bst;
                if (!(flags & O_CREAT) || s3_bucket_stat(m, p->bucket, &bst) == -ENOENT) r = -ENOENT;
            } else {
                r = h;
            }
            s3_op_cleanup(&op);
        }
        if (r == 0 && exists && (flags & O_CREAT) && (flags & O_EXCL)) r = -EEXIST;
        int trunc = bytes || ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY);
        if (r == 0 && !trunc && b.size > 0 && (unsigned long long)b.size > g_limit) {
            slog_error("s3: %s/%s: %lld bytes cannot be staged (opened %s): S3SHIM_STAGING_LIMIT is %llu bytes; "
                       "raise it, or open the object read-only or write-only with O_TRUNC (streamed, not staged): "
                       "ENOSPC", p->bucket, p->key, (long long)b.size,
                       (flags & O_ACCMODE) == O_RDWR ? "read-write" : (flags & O_APPEND) ? "for appending" : "staged",
                       g_limit);
            r = -ENOSPC;
        }
        if (r == 0) {
            dl = stg_dir_lock();
            r = try_join(s, 1); /* someone may have staged it meanwhile */
            if (r == 0) {
                r = create(s, trunc ? 0 : b.size, b.etag, b.mtime, !exists || bytes || (trunc && b.size > 0));
                s->created = r == 0;
                if (r == 0 && bytes && nbytes) r = write_all(s->dfd, bytes, nbytes, 0);
            } else if (r == 1 && bytes) {
                hlock(s->h);
                __atomic_store_n(&s->h->fetch_limit, 0, __ATOMIC_RELEASE);
                r = sys.ftruncate(s->dfd, 0) < 0 ? -errno : write_all(s->dfd, bytes, nbytes, 0);
                changed(s->h);
                hunlock(s->h);
            }
            stg_dir_unlock(dl);
            if (r == 1) r = 0;
        }
    } else if (r == 1) {
        r = 0;
    }
    if (r == 0) r = finish_open(s);
    if (r < 0) {
        if (s->mapfd >= 0) { /* drop our hold; remove what nobody else holds */
            int d2 = stg_dir_lock();
            efd_close(s->mapfd);
            s->mapfd = -1;
            remove_if_unheld(s->base, 1);
            stg_dir_unlock(d2);
        }
        stage_free(s);
        return r;
    }
    if (s->created && s->acc != O_RDONLY && flimit(s->h) == 0) /* every byte is local: write-behind */
        s->wb = wb_start(m, p, s->base, s->dfd, __atomic_load_n(&s->h->gen, __ATOMIC_ACQUIRE));
    slog_debug("s3: %s/%s: staged in %s.data", p->bucket, p->key, s->base);
    *out = s;
    return 0;
}

int s3_stage_open(struct s3_mount *m, const struct s3_path *p, int flags, const struct s3_stage_base *base,
                  struct s3_stage **out)
{
    return stage_open(m, p, flags, base, NULL, 0, out);
}

int s3_stage_from_bytes(struct s3_mount *m, const struct s3_path *p, int flags, const void *buf, size_t len,
                        struct s3_stage **out)
{
    return stage_open(m, p, flags & ~O_TRUNC, NULL, buf, len, out);
}

int s3_stage_open_fd(struct s3_mount *m, int fd, int flags, struct s3_path *p, struct s3_stage **out)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = sys.readlink(link, target, sizeof target - 1);
    if (n <= 0) return -EBADF;
    target[n] = '\0';
    size_t tl = (size_t)n;
    if (tl < 5 + 33 || strcmp(target + tl - 5, ".data") != 0) return -EBADF; /* not ours, or " (deleted)" */
    /* the program that exec'd us opened it already: never truncate or create it again */
    struct s3_stage *s = stage_new(m, "", "", flags & ~(O_CREAT | O_EXCL | O_TRUNC));
    if (!s) return -ENOMEM;
    snprintf(s->base, sizeof s->base, "%.*s", (int)(tl - 5), target);
    s->mapfd = find_inherited_map(s->base);
    int dl = stg_dir_lock();
    int r = try_join(s, 0);
    stg_dir_unlock(dl);
    if (r == 1) {
        s->wrote = s->acc != O_RDONLY && dirty(s->h);
        snprintf(s->path.bucket, sizeof s->path.bucket, "%s", s->h->bucket);
        free(s->path.key);
        s->path.key = strdup(s->h->key);
        r = s->path.key ? finish_open(s) : -ENOMEM;
    } else if (r == 0) {
        r = -ESTALE; /* its staging file is gone */
    }
    if (r < 0) {
        stage_free(s);
        return r;
    }
    snprintf(p->bucket, sizeof p->bucket, "%s", s->path.bucket);
    p->key = strdup(s->path.key);
    p->is_service = 0;
    *out = s;
    return 0;
}

/* --- data ------------------------------------------------------------------------------------ */

ssize_t s3_stage_pread(struct s3_stage *s, void *buf, size_t len, off_t off)
{
    if (len == 0) return 0;
    /* a sequential reader fetches ahead, doubling up to 64 MiB */
    size_t ra = __atomic_load_n(&s->ra, __ATOMIC_RELAXED);
    if (off == __atomic_load_n(&s->last_end, __ATOMIC_RELAXED) && off > 0)
        ra = ra < RA_MIN ? RA_MIN : ra * 2 > RA_MAX ? RA_MAX : ra * 2;
    else
        ra = 0;
    __atomic_store_n(&s->ra, ra, __ATOMIC_RELAXED);
    /* The window is fetched in batches: once less than half of it is there, all of it. A
     * window that slid one block at a time would fetch one 1 MiB block per MiB read, each
     * a synchronous round trip (a full-table scan in sqlite3 ran at 15 MB/s so). */
    int64_t end = off + (int64_t)len;
    int e = 0;
    if (!all_present(s->h, off, end) || (ra && !all_present(s->h, end, end + (int64_t)ra / 2)))
        e = ensure(s, off, end + (int64_t)ra);
    if (e < 0) return e;
    size_t done = 0;
    while (done < len) {
        ssize_t r = sys.pread(s->dfd, (char *)buf + done, len - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return done ? (ssize_t)done : -errno;
        if (r == 0) break;
        done += (size_t)r;
    }
    __atomic_store_n(&s->last_end, off + (off_t)done, __ATOMIC_RELAXED);
    return (ssize_t)done;
}

ssize_t s3_stage_pwrite(struct s3_stage *s, const void *buf, size_t len, off_t off)
{
    if (s->acc == O_RDONLY) return -EBADF;
    if (len == 0) return 0;
    struct stage_hdr *h = s->h;
    int64_t end = off + (int64_t)len;
    struct stat st;
    if (sys.fstat(s->dfd, &st) < 0) return -errno;
    if (end > st.st_size) {
        int e = over_limit(s, end, "this write");
        if (e < 0) return e;
    }
    int e;
    if (all_present(h, off, end)) {
        e = write_all(s->dfd, buf, len, off);
    } else { /* partly covered blocks are fetched first; whole ones are simply written */
        hlock(h);
        int64_t lim = flimit(h);
        int64_t fb = off >> BLK_SHIFT, lb = (end - 1) >> BLK_SHIFT;
        e = 0;
        if (!present(h, fb) && off > fb * BLK) e = fetch_locked(s, fb * BLK, fb * BLK + BLK);
        int64_t lend = lb * BLK + BLK < lim ? lb * BLK + BLK : lim;
        if (e == 0 && !present(h, lb) && end < lend) e = fetch_locked(s, lb * BLK, lend);
        if (e == 0) e = write_all(s->dfd, buf, len, off);
        if (e == 0)
            for (int64_t b = fb; b <= lb; b++) set_present(h, b);
        hunlock(h);
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
    wb_written(s->wb, off, end, g, __atomic_load_n(&h->unlinked, __ATOMIC_ACQUIRE));
    return (ssize_t)len;
}

/* Upload when something changed (h->lock held): parts never touched are copied on the
 * server; the others are fetched where needed and sent. */
struct up_ctx {
    struct s3_stage *s;
    int can_copy;
    int err;
};

static int up_prepare(void *ctx, int64_t off, int64_t len)
{
    struct up_ctx *u = ctx;
    struct stage_hdr *h = u->s->h;
    int64_t lim = flimit(h);
    if (u->can_copy && off + len <= lim) {
        int untouched = 1;
        for (int64_t b = off >> BLK_SHIFT; b <= (off + len - 1) >> BLK_SHIFT && untouched; b++)
            untouched = !present(h, b);
        if (untouched) return 1;
    }
    int e = fetch_locked(u->s, off, off + len);
    if (e < 0 && !u->err) u->err = e;
    return e < 0 ? e : 0;
}

static int upload_locked(struct s3_stage *s)
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
    int same = s3_run(&s->m->client, &op) == 0 && h->etag[0] && strcmp(op.req.etag, h->etag) == 0;
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
    int resumed = wb_resume(s->wb, (int64_t)st.st_size, g, __atomic_load_n(&h->unlinked, __ATOMIC_ACQUIRE), &rs);
    int e = s3f_upload_fd(s->m, &s->path, s->dfd, (int64_t)st.st_size, up_prepare, &u, h->src_bucket, h->src_key,
                          strchr(h->etag, '-') ? "" : h->etag, resumed ? &rs : NULL, etag, sizeof etag);
    if (resumed) wb_handed(s->wb, e);
    if (e == 0 && u.err) e = -EIO;
    if (e < 0) return -EIO;
    /* The server now has these bytes: blocks not fetched read from the new object. */
    if (__atomic_load_n(&h->up_gen, __ATOMIC_ACQUIRE) < g) __atomic_store_n(&h->up_gen, g, __ATOMIC_RELEASE);
    snprintf(h->etag, sizeof h->etag, "%s", etag);
    snprintf(h->src_bucket, sizeof h->src_bucket, "%s", h->bucket);
    snprintf(h->src_key, sizeof h->src_key, "%s", h->key);
    h->mtime = time(NULL); /* (s3f_upload_fd told the metadata cache, like any upload) */
    slog_debug("s3: %s/%s: staged object uploaded (%lld bytes)", h->bucket, h->key, (long long)st.st_size);
    return 0;
}

static int upload_if_dirty(struct s3_stage *s)
{
    if (s->acc == O_RDONLY || !dirty(s->h) || __atomic_load_n(&s->h->unlinked, __ATOMIC_ACQUIRE)) return 0;
    hlock(s->h);
    int e = dirty(s->h) ? upload_locked(s) : 0;
    hunlock(s->h);
    return e;
}

int s3_stage_fsync(struct s3_stage *s) { return upload_if_dirty(s); }

int s3_stage_ftruncate(struct s3_stage *s, off_t len)
{
    if (s->acc == O_RDONLY) return -EINVAL;
    struct stat st;
    if (sys.fstat(s->dfd, &st) < 0) return -errno;
    if (len == st.st_size) return 0;
    if (len > st.st_size) {
        int e = over_limit(s, len, "ftruncate");
        if (e < 0) return e;
    }
    struct stage_hdr *h = s->h;
    wb_drop(s->wb, "ftruncate");
    hlock(h);
    int e = 0;
    if (len < flimit(h)) {
        __atomic_store_n(&h->fetch_limit, (int64_t)len, __ATOMIC_RELEASE);
        if (len > 0) e = fetch_locked(s, ((len - 1) >> BLK_SHIFT) * BLK, len); /* the block kept in part */
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
        int e = over_limit(s, off + len, "fallocate");
        if (e < 0) return e;
    }
    wb_drop(s->wb, "fallocate");
    hlock(h);
    int shifts = mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE);
    int e = 0;
    if (shifts) e = fetch_locked(s, off, INT64_MAX); /* everything after moves */
    else if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) e = fetch_locked(s, off, off + len);
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
    return ensure(s, off, len ? off + len : INT64_MAX);
}

int s3_stage_fstat(struct s3_stage *s, struct stat *st)
{
    struct stat d;
    if (sys.fstat(s->dfd, &d) < 0) return -errno;
    time_t mt = dirty(s->h) ? d.st_mtime : (time_t)s->h->mtime;
    s3_fill_stat(s->m, st, s->path.bucket, s->path.key, (int64_t)d.st_size, mt ? mt : d.st_mtime, 0);
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
    int e = ensure(s, off, off + (int64_t)len);
    return e < 0 ? e : s->pfd;
}

int s3_stage_close(struct s3_stage *s)
{
    int e = __atomic_load_n(&s->wrote, __ATOMIC_RELAXED) ? upload_if_dirty(s) : 0;
    if (e < 0)
        slog_error("s3: %s/%s: the staged object could not be uploaded; close fails with EIO and the server keeps "
                   "the previous version", s->path.bucket, s->path.key);
    wb_free(s->wb); /* what write-behind started and close did not take over is aborted */
    s->wb = NULL;
    list_del(s);
    int dl = stg_dir_lock();
    if (sys.flock(s->mapfd, LOCK_EX | LOCK_NB) == 0) { /* the last holder of this host */
        if (dirty(s->h) && e == 0 && s->acc == O_RDONLY && __atomic_load_n(&s->h->gen, __ATOMIC_ACQUIRE) !=
                                                               __atomic_load_n(&s->h->up_gen, __ATOMIC_ACQUIRE))
            slog_warn("s3: %s/%s: staged changes of a process that ended without closing it were not uploaded",
                      s->path.bucket, s->path.key);
        char mp[PATH_MAX + 8], dp[PATH_MAX + 8];
        stg_suffix(s->base, ".map", mp, sizeof mp);
        stg_suffix(s->base, ".data", dp, sizeof dp);
        if (!__atomic_load_n(&s->h->unlinked, __ATOMIC_ACQUIRE)) { /* else the names are another entry's now */
            wb_abort_recorded(s->m, s->base); /* of a writer that exec'd and is gone */
            sys.unlink(dp);
            sys.unlink(mp);
            stg_active_add(-1);
        }
    }
    efd_close(s->mapfd);
    s->mapfd = -1;
    stg_dir_unlock(dl);
    stage_free(s);
    return e;
}

int stg_maybe_staged(void)
{
    if (stg_dir_ready() < 0) return 0;
    return !g_active || __atomic_load_n(g_active, __ATOMIC_ACQUIRE) != 0;
}

/* --- fork --------------------------------------------------------------------------- */

void s3_stage_atfork_child(void)
{
    pthread_mutex_init(&g_lock, NULL); /* the child is single-threaded here */
    static pid_t done;
    if (done == getpid()) return; /* once per child, not once per mount */
    done = getpid();
    for (struct s3_stage *s = g_list; s; s = s->next) {
        s->wrote = 0;
        /* The inherited map descriptor shares the parent's hold: take our own. */
        char mp[PATH_MAX + 8];
        stg_suffix(s->base, ".map", mp, sizeof mp);
        int fd = sys.open(mp, O_RDWR | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat a, b;
        if (sys.fstat(fd, &a) < 0 || sys.fstat(s->mapfd, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            sys.close(fd); /* the object was removed and staged anew: keep the inherited hold */
            continue;
        }
        sys.flock(fd, LOCK_SH);
        sys.dup3(fd, s->mapfd, s->flags & O_CLOEXEC);
        sys.close(fd);
    }
}
