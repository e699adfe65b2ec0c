/* wrap_dir.c - directory streams on shim paths.
 *
 * Our DIR handles come from a fixed pool, so "is this DIR ours?" is an address-range
 * test with no lock, and a glibc DIR is never dereferenced by us. Each handle owns a
 * shim directory descriptor (dirfd() returns it, openat() resolves against it) and a
 * backend listing. */
#define _GNU_SOURCE 1
#include "anc_dir.h"
#include "fdtable.h"
#include "guard.h"
#include "io.h"
#include "real.h"
#include "shim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR_POOL 1024

struct sdir {
    _Atomic int used;
    int fd;
    struct ofd *o; /* reference held while open */
    void *dh;      /* backend listing */
    long pos;      /* entries returned so far (telldir) */
    pthread_mutex_t lock;
    struct dirent ent;
};

static struct sdir pool[DIR_POOL];

static inline struct sdir *ours(DIR *d)
{
    char *p = (char *)d;
    if (p < (char *)pool || p >= (char *)(pool + DIR_POOL)) return NULL;
    struct sdir *s = (struct sdir *)d;
    return s->used ? s : NULL;
}

static int listing_open(struct sdir *s)
{
    struct ofd *o = s->o;
    if (!o->m->ops->opendir) return -ENOTSUP;
    uint64_t t0 = stats_now_ns();
    int r = IO_BACKEND(o->m->ops->opendir(o->m->ms, ofd_key(o), &s->dh));
    uint64_t t1 = stats_record(&o->m->stats, STK_DIR, t0, 0, r < 0);
    OPLOG(OL_OPENDIR, -1, o->m, ofd_path(o), &o->oplog_path, -1, 0, r, t0, t1, NULL);
    s->pos = 0;
    return r;
}

static void listing_close(struct sdir *s)
{
    if (s->dh) IO_BACKEND((s->o->m->ops->closedir(s->dh), 0));
    s->dh = NULL;
}

/* A stream over shim directory descriptor fd (which it then owns). */
static DIR *stream_on(int fd)
{
    struct ofd *o = fdt_get(fd);
    if (!o) {
        errno = EBADF;
        return NULL;
    }
    if (o->type != OFD_DIR) {
        ofd_put(o);
        errno = ENOTDIR;
        return NULL;
    }
    struct sdir *s = NULL;
    for (int i = 0; i < DIR_POOL && !s; i++) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&pool[i].used, &expect, 1)) s = &pool[i];
    }
    if (!s) {
        ofd_put(o);
        errno = EMFILE;
        return NULL;
    }
    s->fd = fd;
    s->o = o;
    s->dh = NULL;
    pthread_mutex_init(&s->lock, NULL);
    int r = listing_open(s);
    if (r < 0) {
        ofd_put(o);
        atomic_store(&s->used, 0);
        errno = -r;
        return NULL;
    }
    return (DIR *)s;
}

SHIM_EXPORT DIR *opendir(const char *path)
{
    struct route r;
    switch (route_path(path, &r)) {
    case ROUTE_FOREIGN: {
        DIR *d = REAL(opendir)(r.pass);
        if (d && r.ancestor) anc_dir_track(d, r.path, 0); /* the mounts' names after its entries */
        if (d || errno != ENOENT || !r.ancestor) return d;
        int fd = route_open_ancestor(r.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* lists them alone */
        if (fd >= 0 && (d = REAL(fdopendir)(fd))) anc_dir_track(d, r.path, 1);
        if (fd < 0 || d) return d;
        int e = errno;
        REAL(close)(fd);
        errno = e;
        return NULL;
    }
    case ROUTE_ERROR:
        return NULL;
    default:
        break;
    }
    int fd = io_open(&r, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) return NULL;
    DIR *d = stream_on(fd);
    if (!d) {
        int e = errno;
        io_close_fd(fd);
        errno = e;
    }
    return d;
}

SHIM_EXPORT DIR *fdopendir(int fd)
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) {
        DIR *d = REAL(fdopendir)(fd);
        if (d) anc_dir_track_fd(d, fd);
        return d;
    }
    return stream_on(fd);
}

static struct dirent *next_entry(struct sdir *s, int *err)
{
    struct bk_dirent be;
    *err = 0;
    if (!s->dh) return NULL;
    int r = IO_BACKEND(s->o->m->ops->readdir(s->dh, &be));
    if (r <= 0) {
        *err = -r;
        return NULL;
    }
    s->pos++;
    struct dirent *e = &s->ent;
    e->d_ino = be.ino;
    e->d_off = s->pos;
    e->d_type = be.type;
    memcpy(e->d_name, be.name, sizeof e->d_name);
    e->d_reclen = (unsigned short)(offsetof(struct dirent, d_name) + strlen(e->d_name) + 1);
    return e;
}

SHIM_EXPORT struct dirent *readdir(DIR *d)
{
    struct sdir *s = ours(d);
    if (__builtin_expect(!s, 1)) {
        struct dirent *e;
        if (__builtin_expect(atomic_load_explicit(&anc_dir_n, memory_order_relaxed) != 0, 0) && anc_dir_read(d, &e))
            return e;
        return REAL(readdir)(d);
    }
    pthread_mutex_lock(&s->lock);
    int err;
    struct dirent *e = next_entry(s, &err);
    pthread_mutex_unlock(&s->lock);
    if (!e && err) errno = err;
    return e;
}

SHIM_EXPORT struct dirent64 *readdir64(DIR *d) { return (struct dirent64 *)readdir(d); }

static int readdir_r_impl(DIR *d, struct dirent *entry, struct dirent **result)
{
    struct sdir *s = ours(d);
    if (!s && atomic_load_explicit(&anc_dir_n, memory_order_relaxed)) {
        struct dirent *a;
        int saved = errno;
        errno = 0;
        if (anc_dir_read(d, &a)) {
            int err = a ? 0 : errno; /* (0 at the end) */
            if (a) memcpy(entry, a, offsetof(struct dirent, d_name) + strlen(a->d_name) + 1);
            *result = a ? entry : NULL;
            errno = saved;
            return err;
        }
        errno = saved;
    }
    if (!s) return REAL(readdir_r)(d, entry, result);
    pthread_mutex_lock(&s->lock);
    int err;
    struct dirent *e = next_entry(s, &err);
    if (e) memcpy(entry, e, sizeof *entry);
    pthread_mutex_unlock(&s->lock);
    *result = e ? entry : NULL;
    return err;
}

SHIM_EXPORT int readdir_r(DIR *d, struct dirent *entry, struct dirent **result)
{
    return readdir_r_impl(d, entry, result);
}

SHIM_EXPORT int readdir64_r(DIR *d, struct dirent64 *entry, struct dirent64 **result)
{
    return readdir_r_impl(d, (struct dirent *)entry, (struct dirent **)result);
}

SHIM_EXPORT int closedir(DIR *d)
{
    struct sdir *s = ours(d);
    if (!s) {
        if (atomic_load_explicit(&anc_dir_n, memory_order_relaxed)) anc_dir_forget(d);
        return REAL(closedir)(d);
    }
    listing_close(s);
    struct ofd *o = s->o;
    int fd = s->fd;
    pthread_mutex_destroy(&s->lock);
    atomic_store(&s->used, 0);
    ofd_put(o);
    int r = io_close_fd(fd);
    return r < 0 ? shim_fail(r) : 0;
}

SHIM_EXPORT int dirfd(DIR *d)
{
    struct sdir *s = ours(d);
    return s ? s->fd : REAL(dirfd)(d);
}

/* Reposition by re-listing and skipping: backends list forward only. */
static void seek_to(struct sdir *s, long pos)
{
    pthread_mutex_lock(&s->lock);
    if (pos < s->pos || !s->dh) {
        listing_close(s);
        listing_open(s);
    }
    int err;
    while (s->pos < pos && next_entry(s, &err)) {
    }
    pthread_mutex_unlock(&s->lock);
}

SHIM_EXPORT void rewinddir(DIR *d)
{
    struct sdir *s = ours(d);
    if (!s) {
        if (!atomic_load_explicit(&anc_dir_n, memory_order_relaxed) || !anc_dir_seek(d, 0)) REAL(rewinddir)(d);
        return;
    }
    seek_to(s, 0);
}

SHIM_EXPORT void seekdir(DIR *d, long pos)
{
    struct sdir *s = ours(d);
    if (!s) {
        if (!atomic_load_explicit(&anc_dir_n, memory_order_relaxed) || !anc_dir_seek(d, pos)) REAL(seekdir)(d, pos);
        return;
    }
    seek_to(s, pos);
}

SHIM_EXPORT long telldir(DIR *d)
{
    struct sdir *s = ours(d);
    long pos;
    if (!s && atomic_load_explicit(&anc_dir_n, memory_order_relaxed) && anc_dir_tell(d, &pos)) return pos;
    return s ? s->pos : REAL(telldir)(d);
}

typedef int (*scan_filter)(const struct dirent *);
typedef int (*scan_cmp)(const struct dirent **, const struct dirent **);

/* The listing of stream d (closed here) into *list, as scandir gives it. */
static int scan_stream(DIR *d, struct dirent ***list, scan_filter filter, scan_cmp cmp)
{
    struct dirent **v = NULL, *e;
    size_t n = 0, cap = 0;
    int err = 0;
    errno = 0;
    while ((e = readdir(d))) {
        if (filter && !filter(e)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct dirent **nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                err = ENOMEM;
                break;
            }
            v = nv;
        }
        if (!(v[n] = malloc(sizeof *e))) {
            err = ENOMEM;
            break;
        }
        memcpy(v[n++], e, sizeof *e);
    }
    if (!err && errno) err = errno;
    closedir(d);
    if (err) {
        while (n) free(v[--n]);
        free(v);
        errno = err;
        return -1;
    }
    if (cmp && n > 1) qsort(v, n, sizeof *v, (int (*)(const void *, const void *))cmp);
    *list = v;
    return (int)n;
}

SHIM_EXPORT int scandir(const char *path, struct dirent ***list, scan_filter filter, scan_cmp cmp)
{
    struct route r;
    if (route_path(path, &r) == ROUTE_FOREIGN && !r.ancestor) return REAL(scandir)(r.pass, list, filter, cmp);
    DIR *d = opendir(path);
    return d ? scan_stream(d, list, filter, cmp) : -1;
}

/* glibc's scandirat opens and lists with its own calls: ENOTDIR inside a mount. */
SHIM_EXPORT int scandirat(int dirfd, const char *path, struct dirent ***list, scan_filter filter, scan_cmp cmp)
{
    struct route r;
    if (route_at(dirfd, path, &r, 0) == ROUTE_FOREIGN && !r.ancestor && !fdt_is_ours(dirfd))
        return REAL(scandirat)(dirfd, r.pass, list, filter, cmp);
    int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return scan_stream(d, list, filter, cmp);
}

SHIM_EXPORT int scandir64(const char *path, struct dirent64 ***list, int (*filter)(const struct dirent64 *),
                          int (*cmp)(const struct dirent64 **, const struct dirent64 **))
{
    return scandir(path, (struct dirent ***)list, (scan_filter)filter, (scan_cmp)cmp);
}

SHIM_EXPORT int scandirat64(int dirfd, const char *path, struct dirent64 ***list, int (*filter)(const struct dirent64 *),
                            int (*cmp)(const struct dirent64 **, const struct dirent64 **))
{
    return scandirat(dirfd, path, (struct dirent ***)list, (scan_filter)filter, (scan_cmp)cmp);
}
