/* efd.c - see efd.h */
#include "efd.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

static const struct efd_hooks *hooks;

void efd_set_hooks(const struct efd_hooks *h) { hooks = h; }

/* Half the soft limit: above what programs use, below what they may raise it to. */
static long park_floor(void)
{
    static _Atomic long floor_cache;
    long f = floor_cache;
    if (f) return f;
    struct rlimit rl;
    f = 512;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= 64)
        f = (long)rl.rlim_cur / 2;
    floor_cache = f;
    return f;
}

void efd_prepare(void)
{
    int probe = fcntl(0, F_GETFD) >= 0 ? 0 : fcntl(1, F_GETFD) >= 0 ? 1 : 2;
    int fd = fcntl(probe, F_DUPFD_CLOEXEC, (int)park_floor());
    if (fd >= 0) close(fd);
}

int efd_park(int fd)
{
    long floor = park_floor();
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (nfd >= 0) {
        close(fd);
        fd = nfd;
    } else {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    if (hooks) hooks->own(fd);
    return fd;
}

void efd_close(int fd)
{
    if (fd < 0) return;
    if (hooks) hooks->disown(fd);
    close(fd);
}

void efd_engine_thread(void)
{
    if (hooks && hooks->engine_thread) hooks->engine_thread();
}
