/* sys.c - the engine's table of kernel entry points (see sys.h), libc's until the shim
 * binds its own. */
#include "sys.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

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

/* Each cache holds (generation + 1) << 32 | id and counts only while the generation is
 * the current one: a thread that asked the kernel before a change and stores after it
 * stores under the old generation. */
static _Atomic uint64_t ids_gen, uid_cached, gid_cached;

static uint32_t cached_id(_Atomic uint64_t *c, int gid)
{
    uint64_t g = atomic_load(&ids_gen), v = atomic_load_explicit(c, memory_order_relaxed);
    if (v >> 32 == g + 1) return (uint32_t)v;
    uint32_t id = gid ? (uint32_t)getgid() : (uint32_t)getuid();
    atomic_store_explicit(c, (g + 1) << 32 | id, memory_order_relaxed);
    return id;
}

uid_t sys_uid(void) { return (uid_t)cached_id(&uid_cached, 0); }
gid_t sys_gid(void) { return (gid_t)cached_id(&gid_cached, 1); }
void sys_ids_changed(void) { atomic_fetch_add(&ids_gen, 1); }

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

int sys_reopen(int fd, int flags)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    return sys.open(link, flags);
}

int sys_under_valgrind(void)
{
    static _Atomic int known = -1;
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v >= 0) return v;
#ifdef RUNNING_ON_VALGRIND
    v = RUNNING_ON_VALGRIND ? 1 : 0;
#else
    const char *p = getenv("LD_PRELOAD"); /* valgrind preloads its own core first */
    v = p && strstr(p, "vgpreload_core") != NULL;
#endif
    atomic_store_explicit(&known, v, memory_order_relaxed);
    return v;
}
