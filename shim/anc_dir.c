/* anc_dir.c - listings of the directories above mount prefixes.
 *
 * A mount at /data/train makes /data a directory for stat even when nothing is on disk
 * there (route.c), but its listing showed nothing: `ls /data`, `find /data` and Python's
 * os.walk saw an empty tree. So a directory stream on such a directory (a stand-in for
 * one not on disk, which has no entries of its own; or a real directory in which a mount's
 * name is missing) is noted here, and once the kernel's entries are done the stream goes
 * on with the names of the mounts one level below it that are not on disk (nor disabled:
 * `ls /` does not show the default /s3 of a run without credentials). libc's other
 * streams are never touched: their readdir costs one load of a counter.
 *
 * A stream is found from its descriptor too (fdopendir: find, Python's os.fwalk): a dead
 * directory is one of our stand-ins (its path says which), a live one is compared with the
 * real directories that miss a mount's name, found once per process. */
#define _GNU_SOURCE 1
#include "anc_dir.h"
#include "real.h"
#include "route.h"
#include "shim.h"

#include "../core/path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ANC_STREAMS 64 /* open at once; more list without the mounts' names */
#define ANC_REAL 64    /* real directories missing a mount's name */

struct anc_stream {
    DIR *d;       /* NULL: a free slot */
    int virt;     /* a stand-in: "." and ".." made here, no entries of its own */
    int dots;     /* of those, given so far */
    int kernel_done; /* the real directory's own entries all given */
    char *names;  /* the mounts' names below it, each ended by a NUL */
    char *dir;    /* its path */
    size_t len, off;
    long pos; /* entries given since the start: telldir, seekdir, each entry's d_off */
    struct dirent ent;
};

_Atomic int anc_dir_n;
static struct anc_stream streams[ANC_STREAMS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
    dev_t dev;
    ino_t ino;
    char *path;
} real_anc[ANC_REAL];
static int nreal;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

/* The names one level below dir of the mount prefixes under it, each once, NUL-ended, in
 * a new buffer (*len bytes); NULL if none. */
static char *children(const char *dir, size_t *len)
{
    size_t dl = strlen(dir), cap = 0;
    char *out = NULL;
    *len = 0;
    for (int i = 0; i < shim.mounts.n; i++) {
        const struct mount *m = &shim.mounts.m[i];
        if (m->prefix[0] != '/' || m->disabled || m->plen <= dl || !path_under(m->prefix, dir, dl)) continue;
        const char *c = m->prefix + (dl == 1 ? 1 : dl + 1), *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || n > NAME_MAX) continue;
        int dup = 0;
        for (size_t o = 0; o < *len && !dup; o += strlen(out + o) + 1) dup = strlen(out + o) == n && !memcmp(out + o, c, n);
        if (dup) continue;
        if (*len + n + 1 > cap) {
            cap = (*len + n + 1) * 2;
            char *g = realloc(out, cap);
            if (!g) break;
            out = g;
        }
        memcpy(out + *len, c, n);
        out[*len + n] = '\0';
        *len += n + 1;
    }
    return out;
}

/* Every real directory above a mount prefix in which the next name of that prefix is
 * not on disk. */
static void find_real(void)
{
    for (int i = 0; i < shim.mounts.n; i++) {
        const char *p = shim.mounts.m[i].prefix;
        if (p[0] != '/' || shim.mounts.m[i].disabled) continue;
        for (const char *c = p; c && nreal < ANC_REAL; c = strchr(c + 1, '/')) {
            char dir[PATH_MAX], below[PATH_MAX];
            size_t dl = c == p ? 1 : (size_t)(c - p);
            const char *e = strchr(c + 1, '/');
            size_t bl = e ? (size_t)(e - p) : strlen(p);
            if (dl >= sizeof dir || bl >= sizeof below) break;
            memcpy(dir, p, dl);
            dir[dl] = '\0';
            memcpy(below, p, bl);
            below[bl] = '\0';
            struct stat st, bs;
            if (REAL(stat)(dir, &st) < 0 || !S_ISDIR(st.st_mode)) break; /* nothing real below either */
            if (REAL(lstat)(below, &bs) == 0 || errno != ENOENT) continue;
            int known = 0;
            for (int k = 0; k < nreal && !known; k++) known = real_anc[k].dev == st.st_dev && real_anc[k].ino == st.st_ino;
            if (known || !(real_anc[nreal].path = strdup(dir))) continue;
            real_anc[nreal].dev = st.st_dev;
            real_anc[nreal++].ino = st.st_ino;
        }
    }
}

void anc_dir_track(DIR *d, const char *vpath, int virt)
{
    size_t len;
    char *names = children(vpath, &len), *dir = strdup(vpath);
    if ((!names && !virt) || !dir) {
        free(names);
        free(dir);
        return;
    }
    pthread_mutex_lock(&lock);
    struct anc_stream *s = NULL;
    for (int i = 0; i < ANC_STREAMS && !s; i++)
        if (!streams[i].d) s = &streams[i];
    if (s) {
        memset(s, 0, offsetof(struct anc_stream, ent));
        s->d = d;
        s->virt = virt;
        s->names = names;
        s->dir = dir;
        s->len = len;
        atomic_fetch_add(&anc_dir_n, 1);
    }
    pthread_mutex_unlock(&lock);
    if (!s) {
        free(names);
        free(dir);
    }
}

void anc_dir_track_fd(DIR *d, int fd)
{
    struct stat st;
    if (!d || REAL(fstatat)(fd, "", &st, AT_EMPTY_PATH) < 0 || !S_ISDIR(st.st_mode)) return;
    if (st.st_nlink == 0) { /* removed: one of our stand-ins? */
        char link[40], rpath[PATH_MAX], vpath[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = REAL(readlink)(link, rpath, sizeof rpath - 1);
        if (n <= 0) return;
        rpath[n] = '\0';
        if (route_standin_vpath(rpath, vpath, sizeof vpath)) anc_dir_track(d, vpath, 1);
        return;
    }
    pthread_once(&real_once, find_real);
    for (int k = 0; k < nreal; k++)
        if (real_anc[k].dev == st.st_dev && real_anc[k].ino == st.st_ino) {
            anc_dir_track(d, real_anc[k].path, 0);
            return;
        }
}

static struct anc_stream *find(DIR *d)
{
    for (int i = 0; i < ANC_STREAMS; i++)
        if (streams[i].d == d) return &streams[i];
    return NULL;
}

static struct dirent *entry(struct anc_stream *s, const char *name)
{
    struct dirent *e = &s->ent;
    e->d_ino = (ino_t)anc_dir_ino(s->dir, name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])) ? NULL : name);
    e->d_off = ++s->pos;
    e->d_type = DT_DIR;
    snprintf(e->d_name, sizeof e->d_name, "%s", name);
    e->d_reclen = (unsigned short)(offsetof(struct dirent, d_name) + strlen(e->d_name) + 1);
    return e;
}

int anc_dir_read(DIR *d, struct dirent **out)
{
    int saved = errno;
    pthread_mutex_lock(&lock);
    struct anc_stream *s = find(d);
    if (!s) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    if (s->virt && s->dots < 2) {
        *out = entry(s, s->dots++ ? ".." : ".");
        pthread_mutex_unlock(&lock);
        return 1;
    }
    if (!s->virt && !s->kernel_done) {
        pthread_mutex_unlock(&lock); /* (libc's stream has a lock of its own) */
        errno = 0;
        struct dirent *e = REAL(readdir)(d);
        if (e || errno) {
            if (!e) saved = errno;
            pthread_mutex_lock(&lock);
            if (e && (s = find(d))) s->pos++;
            pthread_mutex_unlock(&lock);
            *out = e;
            errno = saved;
            return 1;
        }
        pthread_mutex_lock(&lock);
        if (!(s = find(d))) { /* (closed meanwhile by another thread: the program's race) */
            pthread_mutex_unlock(&lock);
            *out = NULL;
            errno = saved;
            return 1;
        }
        s->kernel_done = 1;
    }
    *out = NULL;
    while (s->off < s->len && !*out) {
        const char *name = s->names + s->off;
        s->off += strlen(name) + 1;
        struct stat st; /* on disk after all (made since, or a real file): listed by the kernel */
        if (!s->virt && REAL(fstatat)(REAL(dirfd)(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0) continue;
        *out = entry(s, name);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return 1;
}

int anc_dir_tell(DIR *d, long *pos)
{
    pthread_mutex_lock(&lock);
    struct anc_stream *s = find(d);
    if (s) *pos = s->pos;
    pthread_mutex_unlock(&lock);
    return s != NULL;
}

int anc_dir_seek(DIR *d, long pos)
{
    pthread_mutex_lock(&lock);
    struct anc_stream *s = find(d);
    if (s) s->dots = s->kernel_done = 0, s->off = 0, s->pos = 0;
    pthread_mutex_unlock(&lock);
    if (!s) return 0;
    REAL(rewinddir)(d); /* from the start, skipping what was given before pos */
    struct dirent *e;
    int saved = errno;
    for (long i = 0; i < pos && anc_dir_read(d, &e) && e; i++) {
    }
    errno = saved;
    return 1;
}

void anc_dir_forget(DIR *d)
{
    pthread_mutex_lock(&lock);
    struct anc_stream *s = find(d);
    if (s) {
        free(s->names);
        free(s->dir);
        s->names = s->dir = NULL;
        s->d = NULL;
        atomic_fetch_sub(&anc_dir_n, 1);
    }
    pthread_mutex_unlock(&lock);
}

void anc_dir_atfork_child(void) { pthread_mutex_init(&lock, NULL); }
