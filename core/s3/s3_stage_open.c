/* s3_stage_open.c - opening staged S3 objects: joining the host's staging file of an
 * object or creating it, taking one up across exec, and holding it in a forked child.
 *
 * Why a module of its own: who holds a staging file (a shared flock on HASH.map, handed
 * across exec with the program's descriptor, taken anew at fork) and how one comes to
 * exist (HEAD of the source, the limit, O_TRUNC, O_EXCL, a streaming writer's bytes) is
 * one concern, apart from what is done with an open one (s3_stage.c). The semantics are in
 * s3_stage.c's header. */
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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static struct s3_stage *g_list;

static void list_add(struct s3_stage *s)
{
    pthread_mutex_lock(&stg_lock);
    s->next = g_list;
    g_list = s;
    pthread_mutex_unlock(&stg_lock);
}

void stg_list_del(struct s3_stage *s)
{
    pthread_mutex_lock(&stg_lock);
    for (struct s3_stage **pp = &g_list; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&stg_lock);
}

int stg_list_has(const char *base, const struct s3_stage *except)
{
    int has = 0;
    pthread_mutex_lock(&stg_lock);
    for (struct s3_stage *x = g_list; x && !has; x = x->next) has = x != except && strcmp(x->base, base) == 0;
    pthread_mutex_unlock(&stg_lock);
    return has;
}

int stg_list_tmp_upload(void)
{
    int failed = 0;
    pthread_mutex_lock(&stg_lock); /* held: no close frees one meanwhile */
    for (struct s3_stage *x = g_list; x; x = x->next)
        if (x->acc != O_RDONLY && stg_is_tmp(x->h) &&
            __atomic_load_n(&x->h->tmp_pid, __ATOMIC_ACQUIRE) == (int32_t)getpid()) {
            __atomic_store_n(&x->h->tmp_pid, 0, __ATOMIC_RELEASE);
            slog_debug("s3: %s/%s: the process ends with this temporary open: uploaded under its name",
                       x->path.bucket, x->path.key);
            if (stg_upload_if_dirty(x) < 0) failed++;
        }
    pthread_mutex_unlock(&stg_lock);
    return failed;
}

void stg_free(struct s3_stage *s)
{
    stg_ahead_end(s); /* its requests name the object by the map's strings */
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
        pthread_mutex_lock(&stg_lock);
        for (struct s3_stage *x = g_list; x; x = x->next) taken |= x->mapfd == fd;
        pthread_mutex_unlock(&stg_lock);
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
        fd = stg_park(sys.open(mp, O_RDWR | O_CLOEXEC));
        if (fd < 0) return errno == ENOENT ? 0 : -errno;
        if (sys.flock(fd, LOCK_EX | LOCK_NB) == 0) { /* nobody holds it: left by a process that died */
            efd_close(fd);
            int a = stg_tmp_adopt(s->m, s->base); /* a temporary it had closed: on the server first */
            if (a < 0) return a;                  /* (it stays; the open fails as the upload did) */
            if (a == 2) return -EBUSY;            /* another object's name hashed alike: never clobbered */
            stg_remove_if_unheld(s->base, 0);
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
    int dfd = stg_park(sys.open(dp, O_RDWR | O_CLOEXEC));
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
    int fd = stg_park(sys.open(mp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (fd < 0) return -errno;
    struct stage_hdr *h = MAP_FAILED;
    if (sys.ftruncate(fd, (off_t)len) == 0) h = sys.mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int dfd = h == MAP_FAILED ? -1 : stg_park(sys.open(dp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
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
        s->pfd = stg_park(sys.dup(s->dfd));
        if (s->pfd >= 0) sys.fcntl(s->pfd, F_SETFD, FD_CLOEXEC);
    } else {
        s->pfd = stg_park(sys.open(dp, s->acc | O_CLOEXEC));
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
    stg_tmp_orphans_adopt(m);
    struct s3_stage *s = stage_new(m, p->bucket, p->key, flags);
    if (!s) return -ENOMEM;
    stg_name(m, p->bucket, p->key, s->base, sizeof s->base);
    int dl = stg_dir_lock();
    if (dl < 0) {
        slog_error("s3: %s/%s: cannot lock the staging directory %s: %s", p->bucket, p->key, stg_dir, strerror(-dl));
        stg_free(s);
        return dl;
    }
    int r = try_join(s, 1);
    stg_dir_unlock(dl);
    if (r == 1 && (flags & O_CREAT) && (flags & O_EXCL)) r = -EEXIST; /* created by another opener */
    if (r == 1 && bytes) { /* another process has it staged: our bytes replace its content */
        hlock(s->h);
        __atomic_store_n(&s->h->fetch_limit, 0, __ATOMIC_RELEASE);
        r = sys.ftruncate(s->dfd, 0) < 0 ? -errno : stg_write_all(s->dfd, bytes, nbytes, 0);
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
            int h = s3_meta_create_is_new(m, p->bucket, p->key, flags) ? -ENOENT : s3_run(&m->client, &op);
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
        if (r == 0 && !trunc && b.size > 0 && (unsigned long long)b.size > stg_limit) {
            slog_error("s3: %s/%s: %lld bytes cannot be staged (opened %s): S3SHIM_STAGING_LIMIT is %llu bytes; "
                       "raise it, or open the object read-only or write-only with O_TRUNC (streamed, not staged): "
                       "ENOSPC", p->bucket, p->key, (long long)b.size,
                       (flags & O_ACCMODE) == O_RDWR ? "read-write" : (flags & O_APPEND) ? "for appending" : "staged",
                       stg_limit);
            r = -ENOSPC;
        }
        if (r == 0) {
            dl = stg_dir_lock();
            r = try_join(s, 1); /* someone may have staged it meanwhile */
            if (r == 0) {
                r = create(s, trunc ? 0 : b.size, b.etag, b.mtime, !exists || bytes || (trunc && b.size > 0));
                s->created = r == 0;
                if (r == 0 && bytes && nbytes) r = stg_write_all(s->dfd, bytes, nbytes, 0);
            }
            stg_dir_unlock(dl);
            /* Joined after all: our bytes replace its content. Not under the directory's
             * lock: the order is h->lock, then the directory's (an upload that ends holds
             * the one and asks for the other, s3_stage_wb.c), never the reverse. */
            if (r == 1 && bytes) {
                hlock(s->h);
                __atomic_store_n(&s->h->fetch_limit, 0, __ATOMIC_RELEASE);
                r = sys.ftruncate(s->dfd, 0) < 0 ? -errno : stg_write_all(s->dfd, bytes, nbytes, 0);
                changed(s->h);
                hunlock(s->h);
            }
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
            stg_remove_if_unheld(s->base, 1);
            stg_dir_unlock(d2);
        }
        stg_free(s);
        return r;
    }
    if (s->created && stg_tmp_begin(s))
        ; /* a temporary: uploaded at its rename, under the new name, if at all */
    else if (s->created && s->acc != O_RDONLY && flimit(s->h) == 0) /* every byte is local: write-behind */
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
        stg_free(s);
        return r;
    }
    snprintf(p->bucket, sizeof p->bucket, "%s", s->path.bucket);
    p->key = strdup(s->path.key);
    p->is_service = 0;
    *out = s;
    return 0;
}

/* --- fork --------------------------------------------------------------------------- */

void s3_stage_atfork_child(void)
{
    pthread_mutex_init(&stg_lock, NULL); /* the child is single-threaded here */
    static pid_t done;
    if (done == getpid()) return; /* once per child, not once per mount */
    done = getpid();
    stg_tmp_atfork_child();
    for (struct s3_stage *s = g_list; s; s = s->next) {
        s->wrote = 0;
        s->ahead = NULL; /* the parent's requests in flight, never finished here: kept, never used */
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
