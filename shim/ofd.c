/* ofd.c - see ofd.h */
#define _GNU_SOURCE 1
#include "ofd.h"

#include "../core/efd.h"
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
#define OFD_LOCAL_NAME "s3shim-local"

/* The descriptor every unpromoted placeholder is a copy of: O_PATH, engine-owned. */
static _Atomic int base_placeholder = -1;
static pthread_mutex_t base_lock = PTHREAD_MUTEX_INITIALIZER;

static int get_base(void)
{
    int b = atomic_load(&base_placeholder);
    if (b >= 0) return b;
    pthread_mutex_lock(&base_lock);
    b = atomic_load(&base_placeholder);
    if (b < 0) {
        int mfd = memfd_create(OFD_LOCAL_NAME, MFD_CLOEXEC);
        if (mfd >= 0) {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", mfd);
            b = REAL(open)(link, O_PATH | O_CLOEXEC);
            REAL(close)(mfd);
        }
        if (b < 0) b = REAL(open)("/dev/null", O_PATH | O_CLOEXEC); /* no /proc */
        if (b >= 0) atomic_store(&base_placeholder, efd_park(b));
        b = atomic_load(&base_placeholder);
    }
    pthread_mutex_unlock(&base_lock);
    return b;
}

static void init_shared_lock(struct ofd_shared *sh)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&sh->lock, &a);
    pthread_mutexattr_destroy(&a);
}

int ofd_create(struct mount *m, const char *path, const char *key, int type, int oflags, void *fh,
               struct ofd **out)
{
    int base = get_base();
    if (base < 0) return -EMFILE;
    struct ofd *o = calloc(1, sizeof *o);
    struct ofd_shared *sh = malloc(sizeof *sh); /* the two strings' tails not zeroed: 5 KiB at every open */
    if (!o || !sh) {
        free(o);
        free(sh);
        return -ENOMEM;
    }
    memset(sh, 0, offsetof(struct ofd_shared, uri));
    int fd = REAL(fcntl)(base, (oflags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    if (fd < 0) {
        int e = errno;
        free(o);
        free(sh);
        return -e;
    }
    pthread_mutex_init(&o->lock, NULL);
    sh->magic = OFD_MAGIC;
    sh->version = OFD_VERSION;
    sh->xfd = -1;
    o->xfd = -1;
    o->kph = -1;
    sh->type = type;
    sh->oflags = oflags;
    sh->status = oflags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW);
    snprintf(sh->uri, sizeof sh->uri, "%s", m->uri);
    snprintf(sh->path, sizeof sh->path, "%s", path);
    sh->key_off = (uint32_t)(key - path);
    o->sh = sh;
    o->type = type;
    o->m = m;
    o->fh = fh;
    atomic_init(&o->refs, 0);
    *out = o;
    return fd;
}

/* Caller holds the fd table lock: the placeholders are re-pointed while no other thread
 * can copy one (dup) or replace one (dup2). */
static int promote_locked(struct ofd *o)
{
    if (o->mapped) return -EEXIST;
    int mfd = memfd_create(OFD_MEMFD_NAME, MFD_CLOEXEC);
    if (mfd < 0) return -errno;
    struct ofd_shared *map = MAP_FAILED;
    if (ftruncate(mfd, (off_t)OFD_MAP_SIZE) == 0)
        map = mmap(NULL, OFD_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", mfd);
    int ph = map == MAP_FAILED ? -1 : REAL(open)(link, O_PATH | O_CLOEXEC);
    int e = errno;
    REAL(close)(mfd);
    if (ph < 0) {
        if (map != MAP_FAILED) munmap(map, OFD_MAP_SIZE);
        return -e;
    }
    pthread_mutex_lock(&o->lock);
    memcpy(map, o->sh, sizeof *map);
    init_shared_lock(map);
    o->priv = o->sh; /* threads may still be reading it; freed with the ofd */
    __atomic_store_n(&o->sh, map, __ATOMIC_RELEASE);
    o->mapped = 1;
    pthread_mutex_unlock(&o->lock);
    /* Every placeholder of it (not a pumped pipe end) now names the memfd: whichever of
     * them a child or the next program inherits, it finds the shared state. */
    int lim = fdt_ofd_limit();
    for (int g = 0; g < lim; g++)
        if (fdt_peek(g) == o) ofd_dup_over(ph, g);
    return ph;
}

int ofd_dup_over(int from, int fd)
{
    int cl = REAL(fcntl)(fd, F_GETFD);
    return REAL(dup3)(from, fd, cl > 0 && (cl & FD_CLOEXEC) ? O_CLOEXEC : 0);
}

int ofd_promote(struct ofd *o)
{
    fdt_lock();
    int ph = promote_locked(o);
    fdt_unlock();
    return ph;
}

void ofd_promote_all(void)
{
    fdt_lock();
    int lim = fdt_ofd_limit();
    for (int fd = 0; fd < lim; fd++) {
        struct ofd *o = fdt_raw_ofd(fdt_peek(fd));
        if (!o || o->mapped) continue;
        int ph = promote_locked(o);
        if (ph < 0) {
            slog_warn("%s: cannot share its offset with child processes: %s", ofd_path(o), strerror(-ph));
            continue;
        }
        REAL(close)(ph);
    }
    fdt_unlock();
}

void ofd_export_local(void)
{
    fdt_lock();
    int lim = fdt_ofd_limit();
    for (int fd = 0; fd < lim; fd++) {
        struct ofd *o = fdt_raw_ofd(fdt_peek(fd));
        if (!o || !o->mapped || !o->fh || !o->m->ops->local_fd || o->xfd >= 0) continue;
        int lfd = o->m->ops->local_fd(o->fh);
        struct stat st;
        if (lfd < 0 || REAL(fstat)(lfd, &st) < 0) continue;
        int x = REAL(fcntl)(lfd, F_DUPFD, 64);
        if (x < 0) continue;
        o->xfd = x;
        fdt_set_locked(x, FDT_ENGINE);
        o->sh->xdev = st.st_dev;
        o->sh->xino = st.st_ino;
        o->sh->xfd = x;
    }
    fdt_unlock();
}

/* The descriptions in the fd table open for writing on an object store whose bytes are
 * a streaming upload or a version not yet committed (not a local file), each once, with a reference taken, that `keep`
 * accepts (called with the table locked). Returns how many are in *out (free it). */
static int stream_writers(struct ofd ***out, int (*keep)(struct ofd *o, int lim))
{
    struct ofd **list = NULL;
    int n = 0, cap = 0;
    fdt_lock();
    int lim = fdt_ofd_limit();
    for (int fd = 0; fd < lim; fd++) {
        struct ofd *o = fdt_raw_ofd(fdt_peek(fd));
        if (!o || o->type != OFD_FILE || !o->fh || !(o->m->ops->commit || o->m->ops->share) ||
            (ofd_status(o) & O_ACCMODE) == O_RDONLY)
            continue;
        /* A staged file lives in a local file the next program shares. */
        if (o->m->ops->local_fd && o->m->ops->local_fd(o->fh) >= 0) continue;
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = list[i] == o;
        if (seen || !keep(o, lim)) continue;
        if (n == cap) {
            struct ofd **nl = realloc(list, (size_t)(cap = cap ? cap * 2 : 8) * sizeof *nl);
            if (!nl) break;
            list = nl;
        }
        ofd_ref(o);
        list[n++] = o;
    }
    fdt_unlock();
    *out = list;
    return n;
}

/* Committed before exec: all but one the next program inherits with nothing written yet
 * (`cmd > /s3/b/out` from a shell: the new program takes it up). */
static int needs_commit(struct ofd *o, int lim)
{
    if (!o->m->ops->commit) return 0; /* block://: shared instead (ofd_share_writers) */
    int inherited = 0;
    for (int g = 0; g < lim && !inherited; g++) { /* every descriptor of it, pumped ends too */
        if (fdt_raw_ofd(fdt_peek(g)) != o) continue;
        int cl = REAL(fcntl)(g, F_GETFD);
        inherited = cl >= 0 && !(cl & FD_CLOEXEC);
    }
    return !(inherited && ofd_sh(o)->offset == 0);
}

static int child_may_write(struct ofd *o, int lim);
static void share_list(struct ofd **list, int n);

/* A block:// writer (committed versions, no upload): at exec all of them, since what this
 * program wrote is its data, as the kernel would keep it in a file; the new program goes
 * on with those it inherits. */
static int version_writer(struct ofd *o, int lim)
{
    (void)lim;
    return !o->m->ops->commit;
}

void ofd_commit_before_exec(void)
{
    struct ofd **list;
    int n = stream_writers(&list, version_writer);
    share_list(list, n);
    n = stream_writers(&list, needs_commit);
    for (int i = 0; i < n; i++) { /* outside the table lock: these are network round trips */
        struct ofd *o = list[i];
        int r = IO_BACKEND(o->m->ops->commit(o->fh));
        if (r < 0) slog_error("%s: committing before exec failed: %s", ofd_path(o), strerror(-r));
        ofd_put(o);
    }
    free(list);
}

/* Shared with a child: held by a placeholder that survives exec (a pumped fd 0-2
 * reaches a child as the pump's pipe, whose bytes this process still writes in order; a
 * close-on-exec one is gone when the child execs, as subprocess modules do at once). */
static int child_may_write(struct ofd *o, int lim)
{
    for (int g = 0; g < lim; g++) {
        if (fdt_peek(g) != o) continue;
        int cl = REAL(fcntl)(g, F_GETFD);
        if (cl >= 0 && !(cl & FD_CLOEXEC)) return 1;
    }
    return 0;
}

/* At fork, a block:// writer even if close-on-exec: the child has it until it execs. */
static int forked_may_write(struct ofd *o, int lim)
{
    if (o->m->ops->commit) return child_may_write(o, lim);
    for (int g = 0; g < lim; g++)
        if (fdt_peek(g) == o) return 1;
    return 0;
}

void ofd_share_writers(int fork)
{
    struct ofd **list;
    int n = stream_writers(&list, fork ? forked_may_write : child_may_write);
    share_list(list, n);
}

static void share_list(struct ofd **list, int n)
{
    for (int i = 0; i < n; i++) {
        struct ofd *o = list[i];
        if (o->m->ops->share) {
            int r = IO_BACKEND(o->m->ops->share(o->fh));
            if (r < 0 && r != -EBUSY)
                slog_warn("%s: cannot be shared with a child process for writing: %s", ofd_path(o), strerror(-r));
        }
        ofd_put(o);
    }
    free(list);
}

void ofd_atfork_child(void)
{
    int lim = fdt_ofd_limit();
    for (int fd = 0; fd < lim; fd++) {
        struct ofd *o = fdt_raw_ofd(fdt_peek(fd));
        if (o) pthread_mutex_init(&o->lock, NULL);
    }
}

void ofd_ref(struct ofd *o) { atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed); }

int ofd_put(struct ofd *o)
{
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1) return 0;
    int r = 0;
    if (o->fh && o->m->ops->close) {
        uint64_t t0 = stats_now_ns();
        /* `exec 3>/s3/b/x; cat f >&3`: cat took the upload up and committed x; the
         * shell's own upload of the description is empty and must not replace it. */
        if (o->m->ops->close_shared && o->mapped && (ofd_status(o) & O_ACCMODE) != O_RDONLY &&
            ofd_sh(o)->offset > 0)
            r = IO_BACKEND(o->m->ops->close_shared(o->fh));
        else
            r = IO_BACKEND(o->m->ops->close(o->fh));
        stats_record(&o->m->stats, STK_CLOSE, t0, 0, r < 0);
    }
    if (o->mapped)
        munmap(o->sh, OFD_MAP_SIZE);
    else
        free(o->sh);
    free(o->priv);
    if (o->xfd >= 0) efd_close(o->xfd);
    if (o->kph >= 0) efd_close(o->kph);
    pthread_mutex_destroy(&o->lock);
    free(o);
    return r;
}

void ofd_lock(struct ofd *o)
{
    pthread_mutex_lock(&o->lock);
    if (o->mapped && pthread_mutex_lock(&o->sh->lock) == EOWNERDEAD) pthread_mutex_consistent(&o->sh->lock);
}

void ofd_unlock(struct ofd *o)
{
    if (o->mapped) pthread_mutex_unlock(&o->sh->lock);
    pthread_mutex_unlock(&o->lock);
}

/* Re-attach one inherited description (first descriptor seen for its memfd). */
static struct ofd *adopt(int fd)
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
    int xfd = -1;
    if (m && m->ops && m->ops->commit && sh->type == OFD_FILE && (sh->oflags & O_ACCMODE) != O_RDONLY &&
        sh->offset > 0 && sh->xfd < 0) {
        /* An upload already under way lives in the memory of the program that began it,
         * which commits it when it ends (exec included): it cannot go on here. A staged
         * file (a local file behind it, xfd) is shared like any local file and goes on. */
        slog_warn("inherited descriptor %d (%s) is an upload another program has begun: it cannot be continued "
                  "here; it will fail with EBADF", fd, sh->path);
        m = NULL;
    }
    if (m && sh->type == OFD_FILE) {
        /* Re-open as the parent did, without re-creating: but a writer that has written
         * nothing yet (the shell's `cmd > /s3/b/out`) is opened exactly as it was, since
         * an object store creates the object only when this program closes it. */
        int fl = sh->oflags & ~(O_CREAT | O_EXCL | O_TRUNC);
        /* (Not a read-write or appending one: an object store stages those, and the staged
         * file the parent may have written already is shared, never to be truncated.) */
        if ((sh->oflags & O_ACCMODE) == O_WRONLY && !(sh->oflags & O_APPEND) && sh->offset == 0)
            fl = sh->oflags & ~O_EXCL;
        struct stat st;
        if (sh->xfd >= 0 && m->ops->open_fd && REAL(fstat)(sh->xfd, &st) == 0 && (uint64_t)st.st_dev == sh->xdev &&
            (uint64_t)st.st_ino == sh->xino)
            xfd = sh->xfd; /* the very file the parent had open */
        int r = IO_BACKEND(xfd >= 0 ? m->ops->open_fd(m->ms, xfd, fl, &fh) : m->ops->open(m->ms, key, fl, 0, &fh));
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
    pthread_mutex_init(&o->lock, NULL);
    o->xfd = xfd;
    if (xfd >= 0) fdt_set(xfd, FDT_ENGINE); /* kept for our own children */
    o->sh = sh;
    o->mapped = 1;
    o->type = sh->type;
    o->m = m;
    o->fh = fh;
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
            o = adopt(fd);
            if (!o) continue;
            if (nseen < (int)(sizeof seen / sizeof *seen)) seen[nseen++] = (typeof(seen[0])){(uint64_t)st.st_ino, o};
        }
        fdt_set(fd, o);
        if (fd <= 2) pending[npending++] = fd;
    }
    REAL(closedir)(d);
    for (int i = 0; i < npending; i++) io_adopted(pending[i]); /* may start threads: after the scan */
}
