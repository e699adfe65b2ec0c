/* efd.c - see efd.h */
#include "efd.h"
#include "sys.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct efd_hooks *hooks;
__thread int efd_parking __attribute__((tls_model("initial-exec")));

/* The kernel's own fcntl and close: an engine descriptor can get a number the program's
 * table still names (fd 1 while a redirected stdout is being finished, for instance),
 * and the interposed calls would then act on the program's file instead. */
static int sys_dupfd_cloexec(int fd, long floor) { return (int)sys.syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, floor); }
static int sys_close(int fd) { return (int)sys.syscall(SYS_close, fd); }

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
    int probe = sys.syscall(SYS_fcntl, 0, F_GETFD) >= 0 ? 0 : sys.syscall(SYS_fcntl, 1, F_GETFD) >= 0 ? 1 : 2;
    int fd = sys_dupfd_cloexec(probe, park_floor());
    if (fd >= 0) sys_close(fd);
}

int efd_park(int fd)
{
    long floor = park_floor();
    int nfd = sys_dupfd_cloexec(fd, floor);
    if (nfd >= 0) {
        sys_close(fd);
        fd = nfd;
    } else {
        sys.syscall(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
    }
    if (hooks) hooks->own(fd);
    return fd;
}

void efd_close(int fd)
{
    if (fd < 0) return;
    if (hooks) hooks->disown(fd);
    sys_close(fd);
}

void efd_engine_thread(void)
{
    if (hooks && hooks->engine_thread) hooks->engine_thread();
}
