/* sys.c - the engine's table of kernel entry points (see sys.h), libc's until the shim
 * binds its own. */
#include "sys.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#define SYS_LIBC(ret, name, args) .name = name,
struct sys_calls sys = {SYS_CALLS(SYS_LIBC)};

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
