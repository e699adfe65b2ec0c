/* ofd.c - see ofd.h */
#define _GNU_SOURCE 1
#include "ofd.h"

#include "../core/log.h"
#include "../core/mount.h"
#include "fdtable.h"
#include "guard.h"
#include "io.h"
#include "real.h"
#include "shim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFD_MAP_SIZE ((sizeof(struct ofd_shared) + 4095) & ~(size_t)4095)

static void init_shared(struct ofd_shared *sh)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&sh->lock, &a);
    pthread_mutexattr_destroy(&a);
    sh->magic = OFD_MAGIC;
    sh->version = OFD_VERSION;
}

/* The placeholder: an O_PATH reference to a fresh memfd that holds the shared state.
 * Any call we fail to intercept on it fails with EBADF instead of reading garbage. */
static int make_placeholder(int cloexec, struct ofd_shared **shp, uint64_t *ino)
{
    int mfd = memfd_create(OFD_MEMFD_NAME, MFD_CLOEXEC);
    if (mfd < 0) return -errno;
    void *map = MAP_FAILED;
    if (ftruncate(mfd, (off_t)OFD_MAP_SIZE) == 0)
        map = mmap(NULL, OFD_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        REAL(close)(mfd);
        return -e;
    }
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", mfd);
    int pfd = REAL(open)(link, O_PATH | O_CLOEXEC);
    if (pfd < 0) /* no /proc: a placeholder that cannot carry state across exec */
        pfd = REAL(open)("/dev/null", O_PATH | O_CLOEXEC);
    if (pfd < 0) {
        int e = errno;
        munmap(map, OFD_MAP_SIZE);
        REAL(close)(mfd);
        return -e;
    }
    /* The memfd took the lowest free number; give it to the placeholder, as open(2)
     * would have. */
    if (REAL(dup3)(pfd, mfd, cloexec ? O_CLOEXEC : 0) < 0) {
        int e = errno;
        munmap(map, OFD_MAP_SIZE);
        REAL(close)(mfd);
        REAL(close)(pfd);
        return -e;
    }
    REAL(close)(pfd);
    struct stat st;
    *ino = REAL(fstat)(mfd, &st) == 0 ? (uint64_t)st.st_ino : 0;
    *shp = map;
    return mfd;
}

int ofd_create(struct mount *m, const char *path, const char *key, int type, int oflags, void *fh,
               struct ofd **out)
{
    struct ofd *o = calloc(1, sizeof *o);
    if (!o) return -ENOMEM;
    int fd = make_placeholder(oflags & O_CLOEXEC, &o->sh, &o->ino);
    if (fd < 0) {
        free(o);
        return fd;
    }
    o->mapped = 1;
    init_shared(o->sh);
    o->type = type;
    o->m = m;
    o->fh = fh;
    o->sh->type = type;
    o->sh->oflags = oflags;
    o->sh->status = oflags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW);
    snprintf(o->sh->uri, sizeof o->sh->uri, "%s", m->uri);
    snprintf(o->sh->path, sizeof o->sh->path, "%s", path);
    o->sh->key_off = (uint32_t)(key - path);
    atomic_init(&o->refs, 0);
    *out = o;
    return fd;
}

void ofd_ref(struct ofd *o) { atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed); }

int ofd_put(struct ofd *o)
{
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1) return 0;
    int r = 0;
    if (o->fh && o->m->ops->close) {
        uint64_t t0 = stats_now_ns();
        guard_enter();
        r = o->m->ops->close(o->fh);
        guard_leave();
        stats_record(&o->m->stats, STK_CLOSE, t0, 0, r < 0);
    }
    if (o->mapped)
        munmap(o->sh, OFD_MAP_SIZE);
    else
        free(o->sh);
    free(o);
    return r;
}

void ofd_lock(struct ofd *o)
{
    if (pthread_mutex_lock(&o->sh->lock) == EOWNERDEAD) pthread_mutex_consistent(&o->sh->lock);
}

void ofd_unlock(struct ofd *o) { pthread_mutex_unlock(&o->sh->lock); }

/* Re-attach one inherited description (first descriptor seen for its memfd). */
static struct ofd *adopt(int fd, uint64_t ino)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int mfd = REAL(open)(link, O_RDWR | O_CLOEXEC);
    if (mfd < 0) return NULL;
    struct ofd_shared *sh = mmap(NULL, OFD_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    REAL(close)(mfd);
    if (sh == MAP_FAILED) return NULL;
    if (sh->magic != OFD_MAGIC || sh->version != OFD_VERSION || sh->key_off >= sizeof sh->path) {
        munmap(sh, OFD_MAP_SIZE);
        return NULL;
    }
    struct mount *m = mnt_adhoc(&shim.mounts, sh->uri);
    const char *key = sh->path + sh->key_off;
    void *fh = NULL;
    if (m && sh->type == OFD_FILE) {
        int fl = sh->oflags & ~(O_CREAT | O_EXCL | O_TRUNC);
        guard_enter();
        int r = m->ops->open(m->ms, key, fl, 0, &fh);
        guard_leave();
        if (r < 0) {
            slog_warn("inherited descriptor %d (%s) cannot be re-opened: %s; it will fail with EBADF", fd,
                      sh->path, strerror(-r));
            m = NULL;
        }
    }
    if (!m) {
        munmap(sh, OFD_MAP_SIZE);
        return NULL;
    }
    struct ofd *o = calloc(1, sizeof *o);
    if (!o) {
        if (fh) m->ops->close(fh);
        munmap(sh, OFD_MAP_SIZE);
        return NULL;
    }
    o->sh = sh;
    o->mapped = 1;
    o->type = sh->type;
    o->m = m;
    o->fh = fh;
    o->ino = ino;
    return o;
}

void ofd_inherit_scan(void)
{
    DIR *d = REAL(opendir)("/proc/self/fd");
    if (!d) return;
    int dfd = REAL(dirfd)(d);
    struct {
        uint64_t ino;
        struct ofd *o;
    } seen[256];
    int nseen = 0, pending[3], npending = 0;
    struct dirent *e;
    while ((e = REAL(readdir)(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        int fd = atoi(e->d_name);
        if (fd == dfd) continue;
        char target[128];
        ssize_t n = REAL(readlinkat)(dfd, e->d_name, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        if (strncmp(target, "/memfd:" OFD_MEMFD_NAME, sizeof "/memfd:" OFD_MEMFD_NAME - 1) != 0) continue;
        /* An O_PATH placeholder, not an engine mapping fd of another process: check. */
        int fl = REAL(fcntl)(fd, F_GETFL);
        if (fl < 0 || !(fl & O_PATH)) continue;
        struct stat st;
        if (REAL(fstat)(fd, &st) != 0) continue;
        struct ofd *o = NULL;
        for (int i = 0; i < nseen; i++)
            if (seen[i].ino == (uint64_t)st.st_ino) o = seen[i].o;
        if (!o) {
            o = adopt(fd, (uint64_t)st.st_ino);
            if (!o) continue;
            if (nseen < (int)(sizeof seen / sizeof *seen)) seen[nseen++] = (typeof(seen[0])){(uint64_t)st.st_ino, o};
        }
        fdt_set(fd, o);
        if (fd <= 2) pending[npending++] = fd;
    }
    REAL(closedir)(d);
    for (int i = 0; i < npending; i++) io_adopted(pending[i]); /* may start threads: after the scan */
}
