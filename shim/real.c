/* real.c - resolve the next definition of every interposed symbol (see real.h).
 *
 * On x86-64 and arm64 the 64-bit variants (open64, pread64, stat64, ...) are the same
 * functions as the plain ones, so one pointer serves both. The pre-2.33 stat entry
 * points (__xstat and friends) exist only as compat versions and need dlvsym. */
#include "real.h"

#include "../core/sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* --- bootstrap stubs ------------------------------------------------------------------ */

/* What a stub answers for a function this libc does not have: -1 (or NULL, or nothing,
 * whatever the caller reads of the return register... -1 is what the system calls among
 * the optional ones return) with errno ENOSYS. */
static long missing(void)
{
    errno = ENOSYS;
    return -1;
}

/* One stub per slot, with no prototype of its own: __builtin_apply_args() takes the
 * argument registers and stack as the caller left them (variadic calls included) and
 * __builtin_apply() passes them on unchanged. 128 bytes of stack arguments cover every
 * signature here (at most 6 arguments, all in registers on x86-64 and arm64). */
#define SHIM_REAL_STUB(ret, name, args) \
    static void boot_##name(void) \
    { \
        void *a_ = __builtin_apply_args(); \
        real_resolve(); \
        void (*f_)(void) = real.name ? (void (*)(void))real.name : (void (*)(void))missing; \
        __builtin_return(__builtin_apply((void (*)())f_, a_, 128)); \
    }
SHIM_REAL_FUNCS(SHIM_REAL_STUB)
#undef SHIM_REAL_STUB

#define SHIM_REAL_BOOT(ret, name, args) .name = (ret(*) args)boot_##name,
struct shim_real real = {SHIM_REAL_FUNCS(SHIM_REAL_BOOT)};
#undef SHIM_REAL_BOOT

static void *next_sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
#if defined(__x86_64__)
    if (!p) p = dlvsym(RTLD_NEXT, name, "GLIBC_2.2.5");
#elif defined(__aarch64__)
    if (!p) p = dlvsym(RTLD_NEXT, name, "GLIBC_2.17");
#endif
    return p;
}

/* Resolution is idempotent and races benignly (every thread stores the same values). */
void real_resolve(void)
{
#define SHIM_REAL_LOOKUP(ret, name, args) \
    if ((void *)real.name == (void *)boot_##name) *(void **)&real.name = next_sym(#name);
    SHIM_REAL_FUNCS(SHIM_REAL_LOOKUP)
#undef SHIM_REAL_LOOKUP
    /* A libc without these (very old or non-glibc) must not crash us on first use of an
     * entry that is never called; the wrappers check the ones that may be absent. */
    if (!real.read || !real.open || !real.close) abort();
    /* The engine's own calls go straight to these too (core/sys.h). */
#define SHIM_REAL_BIND(ret, name, args) \
    if (real.name) sys.name = real.name;
    SYS_CALLS(SHIM_REAL_BIND)
#undef SHIM_REAL_BIND
}
