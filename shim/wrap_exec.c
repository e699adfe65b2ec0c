/* wrap_exec.c - exec: hand fds 0-2 back to the placeholders before the program image is
 * replaced (see pump.h), and take them up again if exec fails. Everything else about
 * shim descriptors survives exec by itself (ofd.h). */
#define _GNU_SOURCE 1
#include "pump.h"
#include "real.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

extern char **environ;

#define AROUND_EXEC(call) \
    ({ \
        pump_before_exec(); \
        int r_ = (call); \
        int e_ = errno; \
        pump_after_exec_failed(); \
        errno = e_; \
        r_; \
    })

SHIM_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    return AROUND_EXEC(REAL(execve)(path, argv, envp));
}

SHIM_EXPORT int execv(const char *path, char *const argv[]) { return AROUND_EXEC(REAL(execve)(path, argv, environ)); }

SHIM_EXPORT int execvp(const char *file, char *const argv[]) { return AROUND_EXEC(REAL(execvpe)(file, argv, environ)); }

SHIM_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    return AROUND_EXEC(REAL(execvpe)(file, argv, envp));
}

SHIM_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    return AROUND_EXEC(REAL(fexecve)(fd, argv, envp));
}

SHIM_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    return AROUND_EXEC(REAL(execveat)(dirfd, path, argv, envp, flags));
}

/* execl, execlp, execle: collect the variadic arguments into an argv. */
static char **collect(const char *arg0, va_list ap, char ***envp)
{
    size_t n = 1, cap = 16;
    char **v = malloc(cap * sizeof *v);
    if (!v) return NULL;
    v[0] = (char *)arg0;
    for (char *a = arg0 ? va_arg(ap, char *) : NULL;; a = va_arg(ap, char *)) {
        if (n + 1 >= cap) {
            char **nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return NULL;
            }
            v = nv;
        }
        v[n++] = a;
        if (!a) break;
    }
    if (envp) *envp = va_arg(ap, char **);
    return v;
}

SHIM_EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    char **v = collect(arg, ap, NULL);
    va_end(ap);
    if (!v) return errno = ENOMEM, -1;
    int r = execv(path, v);
    free(v);
    return r;
}

SHIM_EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    char **v = collect(arg, ap, NULL);
    va_end(ap);
    if (!v) return errno = ENOMEM, -1;
    int r = execvp(file, v);
    free(v);
    return r;
}

SHIM_EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    char **envp = NULL;
    char **v = collect(arg, ap, &envp);
    va_end(ap);
    if (!v) return errno = ENOMEM, -1;
    int r = execve(path, v, envp);
    free(v);
    return r;
}
