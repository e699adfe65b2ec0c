/* s3_stage_dir.c - the host's staging directory: settings, names, the size limit, and the
 * removal of staging files that processes which died left behind.
 *
 * Why a module of its own: everything here is about the directory as a whole (its lock,
 * its .active count, its usage against S3SHIM_STAGING_LIMIT), not about one staged
 * object; the opening, the fetches and the upload of an object (s3_stage_open.c,
 * s3_stage_fetch.c, s3_stage.c) call it. The semantics are in s3_stage.c's header. */
#include "../config.h"
#include "../efd.h"
#include "../log.h"
#include "../sys.h"
#include "s3.h"
#include "s3_stage.h"
#include "s3_stage_int.h"
#include "s3_stage_wb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define USAGE_STEP ((int64_t)64 << 20) /* re-count the directory's usage every 64 MiB of growth */

pthread_mutex_t stg_lock = PTHREAD_MUTEX_INITIALIZER;
char stg_dir[PATH_MAX - 256]; /* room for "/HASH.data" */
unsigned long long stg_limit = 16ULL << 30;
static int g_configured, g_ready; /* g_ready: atomic */
/* DIR/.active, mapped: how many objects are staged on this host (changed under the
 * directory's lock, recounted by every process's first scan). stat and open of S3 keys
 * look for a staging file only when it is not 0: an atomic load, no system call. */
static uint64_t *g_active;

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
    pthread_mutex_lock(&stg_lock);
    if (!g_configured) {
        bk_s3_staging_dir(cfg ? cfg->staging_dir : NULL, stg_dir, sizeof stg_dir);
        if (cfg) stg_limit = cfg->staging_limit;
        if (cfg) wb_configure(cfg->write_behind);
        if (cfg) stg_tmp_configure(cfg->staging_defer);
        g_configured = 1;
    }
    pthread_mutex_unlock(&stg_lock);
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
int stg_remove_if_unheld(const char *base, int quiet)
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
            if (h != MAP_FAILED && stg_tmp_orphan(h)) { /* a closed file: kept for its upload */
                munmap(h, sizeof *h);
                sys.close(fd);
                stg_tmp_orphan_note(base);
                return 0;
            }
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

void stg_bases_add(struct stg_bases *l, const char *base)
{
    pthread_mutex_lock(&l->lock);
    char(*nv)[PATH_MAX] = realloc(l->v, (size_t)(l->n + 1) * sizeof *nv);
    if (nv) {
        l->v = nv;
        snprintf(l->v[l->n], PATH_MAX, "%s", base);
        __atomic_store_n(&l->n, l->n + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&l->lock);
}

void stg_bases_each(struct stg_bases *l, struct s3_mount *m, int (*fn)(struct s3_mount *m, const char *base))
{
    if (!__atomic_load_n(&l->n, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&l->lock);
    for (int i = 0; i < l->n;) {
        char base[PATH_MAX];
        snprintf(base, sizeof base, "%s", l->v[i]);
        if (fn(m, base)) {
            i++;
            continue;
        }
        memmove(l->v[i], l->v[i + 1], (size_t)(l->n - i - 1) * sizeof *l->v);
        __atomic_store_n(&l->n, l->n - 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&l->lock);
}

/* Make the directory; remove staging files that processes which died left behind. */
int stg_dir_ready(void)
{
    if (__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) return 0;
    pthread_mutex_lock(&stg_lock);
    if (!g_configured) {
        pthread_mutex_unlock(&stg_lock);
        s3_stage_configure(NULL);
        pthread_mutex_lock(&stg_lock);
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
                if (stg_remove_if_unheld(base, 0))
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
    pthread_mutex_unlock(&stg_lock);
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

int stg_over_limit(struct s3_stage *s, int64_t want, const char *what)
{
    int64_t used = 0;
    int over = (unsigned long long)want > stg_limit;
    if (!over && want - s->counted >= USAGE_STEP) {
        used = dir_usage();
        over = (unsigned long long)(used + (want - s->counted)) > stg_limit;
        if (!over) s->counted = want;
    }
    if (!over) return 0;
    if (!used) used = dir_usage();
    slog_error("s3: %s/%s: %s would take staging past S3SHIM_STAGING_LIMIT=%llu bytes (%lld bytes wanted, %lld "
               "held in %s); raise S3SHIM_STAGING_LIMIT or free the space: ENOSPC", s->path.bucket, s->path.key, what,
               stg_limit, (long long)want, (long long)used, stg_dir);
    return -ENOSPC;
}

int stg_maybe_staged(void)
{
    if (stg_dir_ready() < 0) return 0;
    return !g_active || __atomic_load_n(g_active, __ATOMIC_ACQUIRE) != 0;
}
