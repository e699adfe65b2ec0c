/* s3_stage_ns.c - the namespace's view of staged objects: a key staged by a live process
 * of this host exists for stat, open and readdir before its first upload, and removing it
 * stops its uploads. Everything here is a question put to the staging directory under
 * its lock; the usual answer, "nothing is staged", costs one atomic load (DIR/.active).
 * A temporary whose process died after closing it is uploaded under its name by the
 * first process that asks anything here (ns_ready), so that stat, ls and mv of it work in
 * every process, not only in the next one that stages something. */
#include "../log.h"
#include "../sys.h"
#include "s3.h"
#include "s3_stage.h"
#include "s3_stage_int.h"
#include "s3_stage_wb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Might anything be staged on this host? Temporaries left by processes that died are
 * uploaded first (once per process that found them; never from within that upload). */
static int ns_ready(struct s3_mount *m)
{
    static __thread int adopting;
    if (!stg_maybe_staged()) return 0;
    if (!adopting) {
        adopting = 1;
        stg_tmp_orphans_adopt(m);
        adopting = 0;
    }
    return 1;
}

/* Is p staged by a live process of this host: 0 no, 1 yes, 2 a temporary (its creator in
 * *owner when asked). */
static int live_state(struct s3_mount *m, const struct s3_path *p, pid_t *owner)
{
    if (!ns_ready(m)) return 0;
    char base[PATH_MAX], mp[PATH_MAX + 8];
    stg_name(m, p->bucket, p->key, base, sizeof base);
    stg_suffix(base, ".map", mp, sizeof mp);
    struct stat st;
    if (sys.stat(mp, &st) < 0) return 0; /* the usual case: one failed stat */
    int dl = stg_dir_lock();
    int fd = sys.open(mp, O_RDONLY | O_CLOEXEC), live = 0;
    struct stat ms;
    if (fd >= 0) {
        live = sys.flock(fd, LOCK_EX | LOCK_NB) < 0;
        if (live && sys.fstat(fd, &ms) == 0 && ms.st_size >= (off_t)sizeof(struct stage_hdr)) {
            struct stage_hdr *h = sys.mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
            if (h != MAP_FAILED) {
                if (h->magic == STAGE_MAGIC && strcmp(h->bucket, p->bucket) == 0 && strcmp(h->key, p->key) == 0 &&
                    stg_is_tmp(h)) {
                    live = 2;
                    if (owner) *owner = __atomic_load_n(&h->tmp_pid, __ATOMIC_ACQUIRE);
                }
                munmap(h, sizeof *h);
            }
        }
        sys.close(fd);
    }
    stg_dir_unlock(dl);
    return live;
}

int s3_stage_live(struct s3_mount *m, const struct s3_path *p) { return live_state(m, p, NULL); }

pid_t stg_tmp_owner(struct s3_mount *m, const struct s3_path *p)
{
    pid_t owner = 0;
    if (p->is_root || live_state(m, p, &owner) != 2) return 0;
    return owner;
}

int s3_stage_stat(struct s3_mount *m, const struct s3_path *p, struct stat *st)
{
    if (p->is_root || !ns_ready(m)) return -ENOENT;
    char base[PATH_MAX], mp[PATH_MAX + 8], dp[PATH_MAX + 8];
    stg_name(m, p->bucket, p->key, base, sizeof base);
    stg_suffix(base, ".map", mp, sizeof mp);
    stg_suffix(base, ".data", dp, sizeof dp);
    struct stat ms;
    if (sys.stat(mp, &ms) < 0) return -ENOENT; /* nothing staged for this key */
    int dl = stg_dir_lock(), r = -ENOENT;
    int fd = sys.open(mp, O_RDONLY | O_CLOEXEC);
    struct stat ds;
    if (fd >= 0 && sys.flock(fd, LOCK_EX | LOCK_NB) < 0 && sys.fstat(fd, &ms) == 0 && ms.st_size >= (off_t)sizeof(struct stage_hdr) &&
        sys.stat(dp, &ds) == 0) {
        struct stage_hdr *h = sys.mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
        if (h != MAP_FAILED) {
            if (h->magic == STAGE_MAGIC && strcmp(h->bucket, p->bucket) == 0 && strcmp(h->key, p->key) == 0) {
                time_t mt = dirty(h) ? ds.st_mtime : (time_t)h->mtime;
                s3_fill_stat(m, st, p->bucket, p->key, (int64_t)ds.st_size, mt ? mt : ds.st_mtime, 0);
                r = 0;
            }
            munmap(h, sizeof *h);
        }
    }
    if (fd >= 0) sys.close(fd);
    stg_dir_unlock(dl);
    return r;
}

void s3_stage_unlinked(struct s3_mount *m, const struct s3_path *p)
{
    if (p->is_root || !stg_maybe_staged()) return;
    char base[PATH_MAX], mp[PATH_MAX + 8], dp[PATH_MAX + 8];
    stg_name(m, p->bucket, p->key, base, sizeof base);
    stg_suffix(base, ".map", mp, sizeof mp);
    stg_suffix(base, ".data", dp, sizeof dp);
    struct stat ms;
    if (sys.stat(mp, &ms) < 0) return;
    int dl = stg_dir_lock();
    int fd = sys.open(mp, O_RDWR | O_CLOEXEC);
    if (fd >= 0 && sys.fstat(fd, &ms) == 0 && ms.st_size >= (off_t)sizeof(struct stage_hdr)) {
        struct stage_hdr *h = sys.mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (h != MAP_FAILED) {
            if (h->magic == STAGE_MAGIC && strcmp(h->bucket, p->bucket) == 0 && strcmp(h->key, p->key) == 0) {
                /* Open descriptors keep working on the files; their closes upload nothing;
                 * a new open stages the object afresh. */
                __atomic_store_n(&h->unlinked, 1, __ATOMIC_RELEASE);
                wb_abort_recorded(m, base); /* a writer's write-behind upload: nothing to complete */
                sys.unlink(dp);
                sys.unlink(mp);
                stg_active_add(-1);
            }
            munmap(h, sizeof *h);
        }
    }
    if (fd >= 0) sys.close(fd);
    stg_dir_unlock(dl);
}


static int name_cmp(const void *a, const void *b)
{
    const struct s3_staged_name *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->is_dir - y->is_dir;
}

void s3_names_sort(struct s3_staged_name *v, size_t *np)
{
    size_t n = *np;
    if (n < 2) return;
    qsort(v, n, sizeof *v, name_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++) {
        if (name_cmp(&v[i], &v[k - 1]) == 0)
            free(v[i].name);
        else
            v[k++] = v[i];
    }
    *np = k;
}

/* The header of a live staging file (held by some process), mapped; NULL otherwise. */
static struct stage_hdr *live_header(int dirfd, const char *mapname, int *fdp)
{
    int fd = sys.openat(dirfd, mapname, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (sys.flock(fd, LOCK_EX | LOCK_NB) == 0 || sys.fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(struct stage_hdr)) {
        sys.close(fd); /* nobody holds it: left by a process that died, or being removed */
        return NULL;
    }
    struct stage_hdr *h = sys.mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED) {
        sys.close(fd);
        return NULL;
    }
    *fdp = fd;
    return h;
}

int s3_names_add(struct s3_staged_name **v, size_t *n, size_t *cap, const char *name, size_t len, int is_dir,
                 int64_t size, time_t mtime)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct s3_staged_name *nv = realloc(*v, nc * sizeof *nv);
        if (!nv) return -ENOMEM;
        *v = nv;
        *cap = nc;
    }
    char *s = strndup(name, len);
    if (!s) return -ENOMEM;
    (*v)[(*n)++] = (struct s3_staged_name){.name = s, .is_dir = is_dir, .size = size, .mtime = mtime};
    return 0;
}

int s3_stage_list(struct s3_mount *m, const char *bucket, const char *prefix, struct s3_staged_name **out, size_t *np)
{
    *out = NULL;
    *np = 0;
    if (!ns_ready(m)) return 0;
    int dl = stg_dir_lock();
    if (dl < 0) return 0; /* no staging directory: nothing staged */
    DIR *d = sys.opendir(stg_dir);
    struct s3_staged_name *v = NULL;
    size_t n = 0, cap = 0, pl = strlen(prefix);
    int e = 0;
    struct dirent *de;
    while (e == 0 && d && (de = sys.readdir(d))) {
        if (strlen(de->d_name) != 32 + 4 || strcmp(de->d_name + 32, ".map") != 0) continue;
        int fd;
        struct stage_hdr *h = live_header(sys.dirfd(d), de->d_name, &fd);
        if (!h) continue;
        char base[PATH_MAX], dp[PATH_MAX + 8];
        const char *key = h->key;
        /* The same bucket through the same endpoints: the name is the hash of all three. */
        if (h->magic == STAGE_MAGIC && !__atomic_load_n(&h->unlinked, __ATOMIC_ACQUIRE) &&
            strcmp(h->bucket, bucket) == 0 && strncmp(key, prefix, pl) == 0 && key[pl]) {
            stg_name(m, bucket, key, base, sizeof base);
            const char *slash = strchr(key + pl, '/');
            struct stat ds;
            stg_suffix(base, ".data", dp, sizeof dp);
            if (strncmp(base + strlen(stg_dir) + 1, de->d_name, 32) != 0)
                ; /* another endpoint set's object of the same name */
            else if (slash)
                e = slash > key + pl ? s3_names_add(&v, &n, &cap, key + pl, (size_t)(slash - (key + pl)), 1, 0, 0) : 0;
            else if (sys.stat(dp, &ds) == 0)
                e = s3_names_add(&v, &n, &cap, key + pl, strlen(key + pl), 0, (int64_t)ds.st_size,
                             dirty(h) || !h->mtime ? ds.st_mtime : (time_t)h->mtime);
        }
        munmap(h, sizeof *h);
        sys.close(fd);
    }
    if (d) sys.closedir(d);
    stg_dir_unlock(dl);
    if (e < 0) {
        s3_stage_list_free(v, n);
        return e;
    }
    s3_names_sort(v, &n);
    *out = v;
    *np = n;
    return 0;
}

void s3_stage_list_free(struct s3_staged_name *v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i].name);
    free(v);
}

/* --- lock files ------------------------------------------------------------------------------
 * fcntl and flock locks of an S3 descriptor are taken on DIR/HASH.lock, one file per object,
 * so that the kernel does the waiting, F_GETLK, and the release at close and at death. The
 * program may take any lock on that file, so who still has it open is kept apart: each
 * open of it comes with a "guard", an OFD read lock on one byte of DIR/.lock chosen by the
 * object's name (a byte-range lock there does not touch the flock that is the directory's
 * lock). The last close, under the directory's lock, removes the file when a write lock
 * on that byte shows no guard is left. Opening and removing both happen under the
 * directory's lock, so an opener never keeps a file that was just removed. Two objects
 * whose names share the byte only delay each other's removal. */

/* The guard's byte for DIR/HASH or HASH.lock: the name's first 15 hex digits. */
static off_t guard_byte(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *s = slash ? slash + 1 : name;
    char hex[16];
    size_t n = strnlen(s, sizeof hex - 1);
    memcpy(hex, s, n);
    hex[n] = '\0';
    return (off_t)strtoull(hex, NULL, 16);
}

static void guard_take(int fd, const char *name)
{
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = guard_byte(name), .l_len = 1};
    (void)sys.fcntl(fd, F_OFD_SETLK, &fl);
}

/* No guard of the name is left (fd: the directory's lock, held). */
static int guard_free(int fd, const char *name)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = guard_byte(name), .l_len = 1};
    if (sys.fcntl(fd, F_OFD_SETLK, &fl) < 0) return 0;
    fl.l_type = F_UNLCK;
    (void)sys.fcntl(fd, F_OFD_SETLK, &fl);
    return 1;
}

int s3_lock_fd(struct s3_mount *m, const struct s3_path *p, int acc, int *fdp, int *guardp)
{
    if (*fdp >= 0) return *fdp;
    int e = stg_dir_ready();
    if (e < 0) return e;
    char base[PATH_MAX], lp[PATH_MAX + 8], gp[PATH_MAX + 16];
    stg_name(m, p->bucket, p->key, base, sizeof base);
    stg_suffix(base, ".lock", lp, sizeof lp);
    snprintf(gp, sizeof gp, "%s/.lock", stg_dir);
    int dl = stg_dir_lock();
    int fd = sys.open(lp, acc | O_CREAT | O_CLOEXEC, 0600);
    e = fd < 0 ? -errno : 0;
    int g = fd < 0 ? -1 : sys.open(gp, O_RDWR | O_CLOEXEC);
    if (g >= 0) guard_take(g, base); /* no write lock can be there: its taker holds dl */
    stg_dir_unlock(dl);
    if (fd < 0) {
        slog_error("s3: %s/%s: cannot open its lock file %s: %s", p->bucket, p->key, lp, strerror(-e));
        return e;
    }
    *fdp = fd;
    *guardp = g;
    return fd;
}

void s3_lock_close(struct s3_mount *m, const struct s3_path *p, int fd, int guard)
{
    if (fd < 0) return;
    sys.close(fd);
    if (guard < 0) return; /* nothing known about others: the file stays */
    sys.close(guard); /* the guard goes, unless a forked child still shares it */
    char base[PATH_MAX], lp[PATH_MAX + 8];
    stg_name(m, p->bucket, p->key, base, sizeof base);
    stg_suffix(base, ".lock", lp, sizeof lp);
    int dl = stg_dir_lock();
    if (dl >= 0 && guard_free(dl, base)) sys.unlink(lp);
    stg_dir_unlock(dl);
}

void s3_lock_sweep(int dirlock, const char *name)
{
    char lp[PATH_MAX + 16];
    snprintf(lp, sizeof lp, "%s/%s", stg_dir, name);
    if (dirlock >= 0 && guard_free(dirlock, name)) sys.unlink(lp);
}
