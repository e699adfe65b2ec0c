/* sys.c - the engine's table of kernel entry points (see sys.h), libc's until the shim
 * binds its own. */
#include "sys.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define SYS_LIBC(ret, name, args) .name = name,
struct sys_calls sys = {SYS_CALLS(SYS_LIBC)};
