/* wrap_exec.c - exec and spawn: before another program can inherit shim descriptors,
 * their descriptions get shared state (ofd.h) and fds 0-2 are handed back to their
 * placeholders (pump.h); if exec fails the pumps start again. posix_spawn, system and
 * popen are here because glibc runs them without fork handlers. */
#define _GNU_SOURCE 1
#include "../core/block/block.h"
#include "../core/s3/s3.h"
#include "../core/oplog.h"
#include "exec_path.h"
#include "guard.h"
#include "kio.h"
#include "ofd.h"
#include "pump.h"
#include "shim.h"
#include "real.h"

#include <errno.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

extern char **environ;

/* In a child sharing our memory, or forked behind libc's back, nothing of ours may change. */
static int own_process(void) { return atomic_load(&shim.ready) && !shim_foreign_child(); }

static void before_child(void)
{
    if (!own_process()) return;
    ofd_share_writers(0);
    ofd_promote_all();
    ofd_export_local();
    kio_hide(); /* the new program finds its descriptors by their memfds */
}

/* Back in this program after a spawn or a failed exec. */
static void after_child(void)
{
    if (own_process()) kio_reexpose();
}

/* Will the program exec'd with envp have the shim? LD_PRELOAD names it, or
 * /etc/ld.so.preload does. (A static program has it in neither case: not seen here.) */
static int shim_follows(char *const envp[])
{
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0 && strstr(*e, "libs3shim")) return 1;
    char buf[4096];
    int fd = REAL(open)("/etc/ld.so.preload", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? REAL(read)(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) REAL(close)(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    return strstr(buf, "libs3shim") != NULL;
}

/* The program ends at exec: what the pumps hold is stored first, then what cannot live on
 * in the new program is committed (ofd.h), and block:// commits made durable. */
static void before_exec(char *const envp[])
{
    pump_before_exec(shim_follows(envp));
    if (own_process()) {
        ofd_commit_before_exec();
        guard_enter();
        bk_s3_tmp_at_end(); /* S3 temporaries not renamed: under their names (s3_stage_tmp.c) */
        guard_leave();
        bk_block_at_exit(); /* block:// group commit: nothing of ours left only visible */
    }
}

#define AROUND_EXEC(envp, call) \
    ({ \
        before_child(); \
        if (own_process()) oplog_finish(OLE_EXEC); \
        before_exec(envp); \
        int r_ = (call); \
        int e_ = errno; \
        pump_after_exec_failed(); \
        after_child(); \
        errno = e_; \
        r_; \
    })

/* A program under a mount runs from what exec_target or exec_search (search) gives
 * (exec_path.c); nothing of ours in a child that must keep off our tables. */
static int target(const char *path, int search, struct exec_target *t)
{
    t->fd = -1;
    if (!own_process()) return 0;
    return search ? exec_search(path, t) : exec_target(path, t);
}

/* The copy goes if the exec fails. */
static int exec_done(struct exec_target *t, int r)
{
    int e = errno;
    exec_target_done(t);
    errno = e;
    return r;
}

SHIM_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    struct exec_target t;
    int found = target(path, 0, &t);
    if (found < 0) return -1;
    return exec_done(&t, AROUND_EXEC(envp, REAL(execve)(found ? t.path : path, argv, envp)));
}

SHIM_EXPORT int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }

SHIM_EXPORT int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

/* execvp's rule, which execve lacks: a file the kernel cannot run (ENOEXEC: a script
 * without "#!") is run by /bin/sh, which opens t->path (a copy's descriptor stays open
 * for it, as for a "#!" script). */
static int execve_or_sh(struct exec_target *t, char *const argv[], char *const envp[])
{
    const char *path = t->path;
    REAL(execve)(path, argv, envp);
    if (errno != ENOEXEC) return -1;
    if (t->fd >= 0) REAL(fcntl)(t->fd, F_SETFD, 0);
    size_t n = 0;
    while (argv[n]) n++;
    char **v = malloc((n + 3) * sizeof *v);
    if (!v) {
        errno = ENOEXEC;
        return -1;
    }
    size_t k = 0;
    v[k++] = (char *)"/bin/sh";
    v[k++] = (char *)path;
    for (size_t i = 1; i < n; i++) v[k++] = argv[i];
    v[k] = NULL;
    REAL(execve)("/bin/sh", v, envp);
    free(v);
    errno = ENOEXEC;
    return -1;
}

SHIM_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    struct exec_target t;
    int found = target(file, 1, &t);
    if (found < 0) return -1;
    if (found) return exec_done(&t, AROUND_EXEC(envp, execve_or_sh(&t, argv, envp)));
    return AROUND_EXEC(envp, REAL(execvpe)(file, argv, envp));
}

SHIM_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    return AROUND_EXEC(envp, REAL(fexecve)(fd, argv, envp));
}

SHIM_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    return AROUND_EXEC(envp, REAL(execveat)(dirfd, path, argv, envp, flags));
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

/* posix_spawn returns an error number, and only once the child has exec'd (or failed). */
SHIM_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                            const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    before_child();
    struct exec_target t;
    int found = target(path, 0, &t);
    if (found < 0) return errno;
    int r = REAL(posix_spawn)(pid, found ? t.path : path, fa, attr, argv, envp);
    exec_target_done(&t);
    after_child();
    return r;
}

SHIM_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                             const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    before_child();
    struct exec_target t;
    int found = target(file, 1, &t);
    if (found < 0) return errno;
    int r = found ? REAL(posix_spawn)(pid, t.path, fa, attr, argv, envp)
                  : REAL(posix_spawnp)(pid, file, fa, attr, argv, envp);
    exec_target_done(&t);
    after_child();
    return r;
}

SHIM_EXPORT int system(const char *cmd)
{
    before_child();
    int r = REAL(system)(cmd);
    after_child();
    return r;
}

SHIM_EXPORT FILE *popen(const char *cmd, const char *mode)
{
    before_child();
    FILE *f = REAL(popen)(cmd, mode);
    after_child();
    return f;
}

/* vfork: the child shares our memory, so nothing of ours could be prepared in it. It is
 * served by fork, which POSIX allows and which runs our fork handlers. */
SHIM_EXPORT pid_t vfork(void) { return REAL(fork)(); }

/* clone: a child that shares our memory but not our pid (CLONE_VM without CLONE_THREAD)
 * makes every later wrapper ask getpid() where it runs (shim_foreign_child). The optional
 * arguments are passed on as glibc's own clone reads them. (A memory-sharing child made
 * with syscall(2) is not seen: it must not call the file API on our descriptors. Forks
 * made that way are: the fork mark, shim.h.) */
SHIM_EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    pid_t *ptid = va_arg(ap, pid_t *);
    void *tls = va_arg(ap, void *);
    pid_t *ctid = va_arg(ap, pid_t *);
    va_end(ap);
    if ((flags & CLONE_VM) && !(flags & CLONE_THREAD)) atomic_store(&shim.vm_children, 1);
    return REAL(clone)(fn, stack, flags, arg, ptid, tls, ctid);
}
