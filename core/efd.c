/* efd.c - see efd.h */
#include "efd.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct efd_hooks *hooks;

void efd_set_hooks(const struct efd_hooks *h) { hooks = h; }

int efd_park(int fd)
{
    struct rlimit rl;
    long floor = 512;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        floor = (long)rl.rlim_cur / 2;
    int nfd = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, floor);
    if (nfd >= 0) {
        syscall(SYS_close, fd);
        fd = nfd;
    } else {
        syscall(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
    }
    if (hooks) hooks->own(fd);
    return fd;
}

void efd_close(int fd)
{
    if (fd < 0) return;
    if (hooks) hooks->disown(fd);
    syscall(SYS_close, fd);
}
