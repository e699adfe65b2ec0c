/* init.c - process life: the constructor, fork, and exit.
 *
 * The constructor resolves every real symbol, reads the configuration, mounts the
 * backends and adopts descriptors inherited across exec, all before main(). Calls that
 * arrive earlier (other constructors) see "not ready" and pass through. */
#define _GNU_SOURCE 1
#include "../core/block/block.h"
#include "../core/efd.h"
#include "../core/log.h"
#include "../core/s3/s3.h"
#include "../core/oplog.h"
#include "anc_dir.h"
#include "fdtable.h"
#include "guard.h"
#include "kio.h"
#include "ofd.h"
#include "pump.h"
#include "real.h"
#include "route.h"
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static const unsigned char no_fork_mark; /* before start-up: every check asks getpid() */
struct shim_state shim = {.fork_mark = &no_fork_mark};
static unsigned char *fork_mark_page;
/* A private copy of stderr for the exit summary: coreutils and others close stderr in
 * their own exit handlers, before ours run. Kept only when S3SHIM_STATS asks for it. */
static int stats_fd = -1;
__thread int shim_in_engine __attribute__((tls_model("initial-exec")));
extern char **environ;

static void own_fd(int fd) { fdt_mark_engine(fd, 1); }
static void disown_fd(int fd) { fdt_mark_engine(fd, 0); }
static void engine_thread(void) { guard_enter(); } /* for the thread's whole life */
static const struct efd_hooks hooks = {own_fd, disown_fd, engine_thread};

int shim_mount_usable(struct mount *m)
{
    if (m->ops) return 1;
    if (!__atomic_exchange_n(&m->warned, 1, __ATOMIC_RELAXED))
        slog_error("mount %s=%s is disabled: %s", m->prefix[0] ? m->prefix : "(inherited)", m->uri, m->reason);
    errno = ENODEV;
    return 0;
}

int shim_close_all(int writers_only)
{
    int failed = 0;
    int lim = fdt_ofd_limit();
    for (int fd = 0; fd < lim; fd++) {
        if (!fdt_is_ours(fd)) continue;
        if (writers_only) {
            struct ofd *w = fdt_raw_ofd(fdt_peek(fd));
            if (!w || w->type != OFD_FILE || (ofd_status(w) & O_ACCMODE) == O_RDONLY) continue;
        }
        struct ofd *o = fdt_take(fd);
        if (!o) continue;
        char path[PATH_MAX]; /* the last put frees o */
        snprintf(path, sizeof path, "%s", ofd_path(o));
        int r = ofd_put(o);
        if (r < 0) {
            slog_error("closing %s at exit failed: %s", path, strerror(-r));
            failed++;
        }
    }
    return failed;
}

/* Tell the run's later processes that the first one has reported the configuration:
 * an entry added to environ itself (the program's setenv may not work yet: bash's does
 * not before its main), which the program then passes on to its children. */
static void mark_root(void)
{
    static char entry[48];
    snprintf(entry, sizeof entry, "S3SHIM_ROOT_PID=%ld", (long)shim.pid);
    size_t n = 0;
    while (environ && environ[n]) n++;
    char **env = malloc((n + 2) * sizeof *env); /* kept for the life of the process */
    if (!env) return;
    if (n) memcpy(env, environ, n * sizeof *env);
    env[n] = entry;
    env[n + 1] = NULL;
    environ = env;
}

static void warn_unknown_vars(void)
{
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "S3SHIM_", 7) != 0) continue;
        const char *eq = strchr(*e, '=');
        char name[128];
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - *e) : (int)strlen(*e), *e);
        if (!cfg_is_known(name)) slog_warn("unknown setting %s ignored (see `s3shim config`)", name);
    }
}

static void report_config(void)
{
    for (int i = 0; i < shim.cfg.nerrors; i++) slog_error("%s", shim.cfg.errors[i]);
    for (int i = 0; i < shim.mounts.n; i++) {
        struct mount *m = &shim.mounts.m[i];
        int deflt = strcmp(m->uri, "s3://") == 0; /* the built-in /s3 mount stays quiet */
        if (m->disabled && !deflt && m->prefix[0]) {
            slog_error("S3SHIM_MOUNTS: mount %s=%s disabled: %s", m->prefix, m->uri, m->reason);
            m->warned = 1;
        }
    }
    warn_unknown_vars();
}

static void open_log_file(void)
{
    if (!shim.cfg.log_file) return;
    int fd = REAL(open)(shim.cfg.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        slog_error("S3SHIM_LOG_FILE: cannot open '%s': %s; logging to stderr", shim.cfg.log_file, strerror(errno));
        return;
    }
    slog_setup(shim.cfg.log_level, efd_park(fd));
}

static void exit_commit(void);
static void note_exit_status(int status, void *arg);

static void atfork_prepare(void)
{
    if (!atomic_load(&shim.ready)) return;
    ofd_share_writers(1); /* a streaming upload the child can write to is staged first */
    ofd_promote_all(); /* offsets must be shared with the child */
    pump_atfork_prepare(); /* no pump thread inside the engine: it takes the locks below */
    for (int i = 0; i < shim.mounts.n; i++) { /* then the engine threads, parked */
        struct mount *m = &shim.mounts.m[i];
        if (m->ops && m->ops->atfork_prepare && !m->shares) m->ops->atfork_prepare(m->ms);
    }
    /* The fd table's lock before the op log's, as everywhere (a promotion takes the table's,
     * then a description's; a read logged under a description's lock takes the op log's). */
    fdt_atfork_prepare();
    oplog_atfork_prepare();
    fdt_atfork_filter_prepare(); /* innermost: the engine marks descriptors under the op log's */
}
static void atfork_parent(void)
{
    if (!atomic_load(&shim.ready)) return;
    fdt_atfork_filter_release();
    oplog_atfork_parent();
    fdt_atfork_parent();
    for (int i = shim.mounts.n - 1; i >= 0; i--) {
        struct mount *m = &shim.mounts.m[i];
        if (m->ops && m->ops->atfork_parent && !m->shares) m->ops->atfork_parent(m->ms);
    }
    pump_atfork_parent();
    kio_reexpose(); /* the promotion pointed them at their memfds */
}
static void atfork_child(void)
{
    if (!atomic_load(&shim.ready)) return;
    fdt_atfork_filter_release();
    fdt_atfork_child();
    oplog_atfork_child();
    ofd_atfork_child();
    pump_atfork_child();
    route_atfork_child();
    anc_dir_atfork_child();
    shim.pid = getpid();
    shim.root = 0;
    shim.t0_ns = stats_now_ns();
    for (int i = 0; i < shim.mounts.n; i++) {
        struct mount *m = &shim.mounts.m[i];
        stats_reset(&m->stats); /* the parent reports its own work */
        if (m->ops && m->ops->atfork_child && !m->shares) m->ops->atfork_child(m->ms);
    }
    shim_fork_mark_set(); /* the child's own state is ready: no getpid() from now on */
    kio_reexpose();
}

void shim_fork_mark_set(void)
{
    if (!fork_mark_page) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED && madvise(p, 4096, MADV_WIPEONFORK) != 0) {
            munmap(p, 4096);
            p = MAP_FAILED;
        }
        if (p == MAP_FAILED) { /* (a kernel before 4.14) */
            atomic_store(&shim.vm_children, 1);
            return;
        }
        fork_mark_page = p;
        shim.fork_mark = fork_mark_page;
    }
    fork_mark_page[0] = 1;
}

__attribute__((constructor(101))) static void shim_init(void)
{
    int saved_errno = errno; /* the program starts with the errno it would have without us */
    real_resolve();
    shim.pid = getpid();
    shim_fork_mark_set();
    shim.t0_ns = stats_now_ns();
    guard_enter();
    cfg_load(&shim.cfg, cfg_process_env, NULL);
    slog_setup(shim.cfg.log_level, -1);
    efd_set_hooks(&hooks);
    open_log_file();
    const char *root = cfg_process_env("S3SHIM_ROOT_PID", NULL);
    shim.root = !root || !*root;
    if (shim.root) mark_root();
    mnt_build(&shim.mounts, &shim.cfg);
    if (shim.root)
        report_config();
    else /* the first process of the run said it already */
        for (int i = 0; i < shim.mounts.n; i++)
            if (strcmp(shim.mounts.m[i].uri, "s3://") != 0) shim.mounts.m[i].warned = 1;
    if (shim.cfg.stats) {
        int fd = REAL(fcntl)(2, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0) stats_fd = efd_park(fd);
    }
    long root_pid = root ? atol(root) : 0;
    oplog_init(shim.cfg.oplog, shim.root || root_pid == (long)shim.pid, &shim.mounts);
    route_init();
    ofd_inherit_scan();
    if (shim.cfg.kernel_files) kio_enable();
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    /* quick_exit() runs its handlers, then glibc's own _exit (which no preload library
     * sees): registered now, ours runs after every handler the program adds later. */
    at_quick_exit(exit_commit);
    guard_leave();
    atomic_store_explicit(&shim.ready, 1, memory_order_release);
    errno = saved_errno;
}

static void write_stats(void)
{
    int any = 0;
    for (int i = 0; i < shim.mounts.n; i++) any |= stats_touched(&shim.mounts.m[i].stats);
    if (!shim.cfg.stats && !shim.cfg.stats_file) return;
    double el = (double)(stats_now_ns() - shim.t0_ns) / 1e9;
    struct stats_set *list = mnt_stats_list(&shim.mounts);
    if (shim.cfg.stats && any) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (f) {
            char cmd[256] = "";
            int cfd = REAL(open)("/proc/self/comm", O_RDONLY | O_CLOEXEC);
            if (cfd >= 0) {
                ssize_t n = REAL(read)(cfd, cmd, sizeof cmd - 1);
                cmd[n > 0 ? n - 1 : 0] = '\0';
                REAL(close)(cfd);
            }
            fprintf(f, "[%s pid %ld] ", cmd, (long)shim.pid);
            stats_print_text(f, list, el);
            fclose(f);
            REAL(write)(stats_fd >= 0 ? stats_fd : 2, buf, len);
            free(buf);
        }
    }
    if (shim.cfg.stats_file && (any || shim.root)) {
        char path[PATH_MAX];
        const char *pp = strstr(shim.cfg.stats_file, "%p");
        if (pp)
            snprintf(path, sizeof path, "%.*s%ld%s", (int)(pp - shim.cfg.stats_file), shim.cfg.stats_file,
                     (long)shim.pid, pp + 2);
        else if (shim.root)
            snprintf(path, sizeof path, "%s", shim.cfg.stats_file);
        else
            snprintf(path, sizeof path, "%s.%ld", shim.cfg.stats_file, (long)shim.pid);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f) return;
        stats_print_json(f, list, el, (long)shim.pid);
        fclose(f);
        int fd = REAL(open)(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || REAL(write)(fd, buf, len) != (ssize_t)len)
            slog_error("S3SHIM_STATS_FILE: cannot write '%s': %s", path, strerror(errno));
        if (fd >= 0) REAL(close)(fd);
        free(buf);
    }
}

/* How a program's end reaches its open descriptors. "Exit without close" commits: a
 * program that wrote into a file and ended without closing it finds its bytes in the
 * file, because the kernel closes for it; an S3 object is the same bytes made visible.
 * - exit(), return from main: here, the last library destructor step, so that atexit
 *   handlers (coreutils' close_stdout), C++ static destructors and the program's own
 *   destructors have written everything; our stdio streams are flushed first (glibc
 *   flushes its streams only after the destructors). OpenSSL is still alive here: an S3
 *   mount asks it not to tear itself down at exit (sigv4.c), and if the program shut it
 *   down itself the S3 wing says so and gives up cleanly. The engine's threads live until
 *   the process does.
 * - _exit(), _Exit(), quick_exit(): exit_commit() below, without flushing stdio (as
 *   they do not).
 * - exec: wrap_exec.c commits what cannot live on in the new program.
 * - a fatal signal: nothing runs; the object is not written and nothing partial is
 *   visible (see README). No handler of ours is installed: the program's dispositions
 *   stay exactly as it set them.
 * - a forked child ending: its copies of its parent's uploads are not its own; the S3
 *   wing leaves them (s3f_close, s3f_commit check the owner).
 * A commit that fails at exit loses the program's data as surely as a failed close, but
 * nobody is left to see an error: a program that ends with status 0 then ends with
 * status 1 instead, so that the shell or pipeline that runs it notices (a non-zero
 * status is kept as it is). The status comes from an on_exit() handler registered as
 * main() starts (below), so after glibc registered the library destructors' runner:
 * handlers run in reverse order, so the status is known before shim_fini runs. */
static void note_exit_status(int status, void *arg)
{
    (void)arg;
    shim.exit_status = status;
    atomic_store(&shim.exit_status_known, 1);
}

typedef int (*main_fn)(int, char **, char **);
static main_fn program_main;

static int main_noting_exit(int argc, char **argv, char **envp)
{
    on_exit(note_exit_status, NULL);
    return program_main(argc, argv, envp);
}

/* Every dynamically linked program starts here; only main() is wrapped. */
SHIM_EXPORT int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                                  void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
    typedef int (*start_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *);
    start_fn next = (start_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    program_main = main;
    return next(main_noting_exit, argc, argv, init, fini, rtld_fini, stack_end);
}

/* The status a process ends with when `failed` files could not be written at exit. */
static int status_after(int failed, int status)
{
    if (!failed || status != 0) return status;
    slog_error("%d file(s) could not be written at exit: exit status 1 instead of 0", failed);
    return 1;
}

static int owns_exit(void)
{
    return atomic_load(&shim.ready) && !shim_foreign_child();
}

__attribute__((destructor)) static void shim_fini(void)
{
    if (!owns_exit()) return; /* vfork child: hands off */
    fflush(NULL); /* our stdio streams write through descriptors we are about to close */
    int failed = pump_finish_all();
    failed += shim_close_all(0);
    guard_enter();
    failed += bk_s3_tmp_at_end(); /* S3 temporaries not renamed: under their names */
    guard_leave();
    failed += bk_block_at_end(); /* block:// batches committed, group commit durable, before the end */
    guard_enter();
    oplog_finish(OLE_EXIT);
    write_stats();
    guard_leave();
    if (atomic_load(&shim.exit_status_known) && status_after(failed, shim.exit_status) != shim.exit_status) {
        fflush(NULL);
        for (;;) syscall(SYS_exit_group, 1);
    }
}

/* _exit() and _Exit() skip destructors, but what a program already wrote is the
 * program's data: the kernel would have it in the file by now. So the bytes still in the
 * pipe of a redirected stdout (pump.c) are stored (dash ends every shell this way), and
 * every description open for writing is closed, which commits an upload. Readers are
 * left to the kernel, and stdio buffers are not flushed, as _exit() does not. A forked
 * child's copies of its parent's uploads are left alone by the S3 wing.
 * Limit: _exit() is async-signal-safe and the commit is not. Called from a signal
 * handler that interrupted this shim's own work in the same thread (the engine guard is
 * up), nothing is committed, so nothing waits for a lock that thread holds; a handler
 * that interrupted malloc itself can still make the commit wait for malloc's lock.
 * Returns how many files could not be written. */
static int exit_commit_count(void)
{
    int failed = 0;
    if (owns_exit() && !guard_active()) {
        failed = pump_finish_all();
        failed += shim_close_all(1);
        guard_enter();
        failed += bk_s3_tmp_at_end();
        guard_leave();
        failed += bk_block_at_end();
        bk_s3_at_exit(); /* the run's shared counters go with its first process */
    }
    return failed;
}

/* quick_exit()'s handler: glibc then ends the process with the status it was given,
 * which the wrapper below noted. */
static void exit_commit(void)
{
    int failed = exit_commit_count();
    if (atomic_load(&shim.exit_status_known) && status_after(failed, shim.exit_status) != shim.exit_status)
        for (;;) syscall(SYS_exit_group, 1);
}

static __attribute__((noreturn)) void exit_now(int status)
{
    status = status_after(exit_commit_count(), status);
    if (owns_exit() && !guard_active()) oplog_finish(OLE_UNDERSCORE_EXIT);
    for (;;) syscall(SYS_exit_group, status);
}

/* Only to learn the status quick_exit() will end with; glibc's own does the rest. */
SHIM_EXPORT void quick_exit(int status)
{
    static void (*next)(int);
    note_exit_status(status, NULL);
    if (!next) next = (void (*)(int))dlsym(RTLD_NEXT, "quick_exit");
    next(status);
    for (;;) syscall(SYS_exit_group, status);
}

SHIM_EXPORT void _exit(int status) { exit_now(status); }
SHIM_EXPORT void _Exit(int status) { exit_now(status); }
