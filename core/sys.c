/* sys.c - the engine's table of kernel entry points (see sys.h), libc's until the shim
 * binds its own. */
#include "sys.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#define SYS_LIBC(ret, name, args) .name = name,
struct sys_calls sys = {SYS_CALLS(SYS_LIBC)};

static _Atomic int umask_now = -1;

mode_t sys_umask(void)
{
    int u = umask_now;
    if (u >= 0) return (mode_t)u;
    char buf[2048];
    const char *p = sys_read_small("/proc/self/status", buf, sizeof buf) > 0 ? strstr(buf, "Umask:") : NULL;
    u = p ? (int)(strtoul(p + 6, NULL, 8) & 0777) : 022;
    int unset = -1;
    atomic_compare_exchange_strong(&umask_now, &unset, u); /* umask() may have set it meanwhile */
    return (mode_t)umask_now;
}

void sys_umask_set(mode_t mask) { umask_now = (int)(mask & 0777); }

ssize_t sys_read_small(const char *path, char *buf, size_t cap)
{
    int fd = sys.open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = sys.read(fd, buf, cap - 1);
    sys.close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return n;
}
