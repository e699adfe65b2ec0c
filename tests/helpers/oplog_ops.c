/* oplog_ops - a known number of file operations in DIR (a mount), for tests/oplog/run.sh.
 *
 *   oplog_ops DIR          8 threads, a fork whose child _exits with a descriptor open,
 *                          then exec of itself (stage2) which exits with one open
 *   oplog_ops DIR kill     open, 100 writes, then SIGKILL to itself
 *   oplog_ops DIR abort    open, 100 writes, then abort()
 *   oplog_ops DIR loop N   open, N preads of 4096 bytes at offset 0, close; wall and thread CPU ns/op on stderr
 *   oplog_ops DIR loopkill N   the same, then SIGKILL to itself instead of the close
 *   oplog_ops DIR loopmt N     loop N with an idle second thread (a multi-threaded program)
 *   oplog_ops DIR loopnoring N loop N where io_uring_setup fails (ENOSYS, a seccomp filter):
 *                              a kernel or container without io_uring
 * The loops also print the calling thread's minor page faults during the preads.
 *
 * The counts are in tests/oplog/run.sh; change both together. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define THREADS 8
#define PER_THREAD 1500
#define MAIN_WRITES 3000

static const char *dir;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int open_in(const char *name, int flags)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, flags, 0644);
    if (fd < 0) die(p);
    return fd;
}

static void *worker(void *arg)
{
    char name[32], buf[100];
    snprintf(name, sizeof name, "t%ld.dat", (long)arg);
    memset(buf, 'a' + (int)(long)arg, sizeof buf);
    int fd = open_in(name, O_WRONLY | O_CREAT | O_TRUNC);
    for (int i = 0; i < PER_THREAD; i++)
        if (pwrite(fd, buf, sizeof buf, (off_t)i * 100) != 100) die("pwrite");
    if (close(fd) < 0) die("close");
    fd = open_in(name, O_RDONLY);
    for (int i = 0; i < PER_THREAD; i++)
        if (pread(fd, buf, sizeof buf, (off_t)i * 100) != 100) die("pread");
    if (close(fd) < 0) die("close");
    return NULL;
}

static void writes_then(int how)
{
    char buf[4096] = {0};
    int fd = open_in("victim.dat", O_WRONLY | O_CREAT | O_TRUNC);
    for (int i = 0; i < 100; i++)
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) die("write");
    if (how == SIGKILL) kill(getpid(), SIGKILL);
    abort();
}

static void *idle(void *arg)
{
    (void)arg;
    for (;;) pause();
    return NULL;
}

static int loop(long n, int killed)
{
    static char buf[4096];
    int fd = open_in("loop.dat", O_RDWR | O_CREAT);
    if (pwrite(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf) die("pwrite");
    struct timespec a, b, ca, cb; /* wall, and the CPU time of this (the calling) thread */
    struct rusage ra, rb;
    getrusage(RUSAGE_THREAD, &ra);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        if (pread(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf) die("pread");
    clock_gettime(CLOCK_MONOTONIC, &b);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
    getrusage(RUSAGE_THREAD, &rb);
    if (killed) kill(getpid(), SIGKILL);
    close(fd);
#define US(tv) ((double)(tv).tv_sec * 1e6 + (double)(tv).tv_usec)
    fprintf(stderr, "%.1f ns/op, thread CPU %.1f ns/op (user %.1f, system %.1f), %ld minor faults\n",
            ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)n,
            ((double)(cb.tv_sec - ca.tv_sec) * 1e9 + (double)(cb.tv_nsec - ca.tv_nsec)) / (double)n,
            (US(rb.ru_utime) - US(ra.ru_utime)) * 1e3 / (double)n, (US(rb.ru_stime) - US(ra.ru_stime)) * 1e3 / (double)n,
            rb.ru_minflt - ra.ru_minflt);
    return 0;
}

/* io_uring_setup fails with ENOSYS from here on, as on a kernel built without it. */
static void no_io_uring(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        die("seccomp");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: oplog_ops DIR [kill|abort|stage2|loop N|loopkill N]\n");
        return 2;
    }
    dir = argv[1];
    if (argc > 2 && strcmp(argv[2], "kill") == 0) writes_then(SIGKILL);
    if (argc > 2 && strcmp(argv[2], "abort") == 0) writes_then(SIGABRT);
    if (argc > 3 && strcmp(argv[2], "loop") == 0) return loop(atol(argv[3]), 0);
    if (argc > 3 && strcmp(argv[2], "loopmt") == 0) {
        pthread_t th;
        if (pthread_create(&th, NULL, idle, NULL) != 0) die("pthread_create");
        return loop(atol(argv[3]), 0);
    }
    if (argc > 3 && strcmp(argv[2], "loopkill") == 0) return loop(atol(argv[3]), 1);
    if (argc > 3 && strcmp(argv[2], "loopnoring") == 0) {
        no_io_uring();
        return loop(atol(argv[3]), 0);
    }
    char buf[4096];
    if (argc > 2 && strcmp(argv[2], "stage2") == 0) { /* after exec: 1 open, 5 reads, exit with it open */
        int fd = open_in("main.dat", O_RDONLY);
        for (int i = 0; i < 5; i++)
            if (read(fd, buf, sizeof buf) != (ssize_t)sizeof buf) die("read");
        return 0;
    }
    /* main thread: 1 open, 3000 writes, 1 close */
    memset(buf, 'm', sizeof buf);
    int fd = open_in("main.dat", O_WRONLY | O_CREAT | O_TRUNC);
    for (int i = 0; i < MAIN_WRITES; i++)
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) die("write");
    if (close(fd) < 0) die("close");
    /* 8 threads: each 2 opens, 1500 writes, 1500 reads, 2 closes */
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    /* fork: the child opens, reads 10 times, and _exits with the descriptor open */
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        int cfd = open_in("main.dat", O_RDONLY);
        for (int i = 0; i < 10; i++)
            if (read(cfd, buf, sizeof buf) != (ssize_t)sizeof buf) _exit(3);
        _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child failed\n");
        return 1;
    }
    /* 1 stat, then exec of this program (stage 2) */
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/main.dat", dir);
    if (stat(p, &st) < 0 || st.st_size != (off_t)MAIN_WRITES * 4096) die("stat");
    execl("/proc/self/exe", argv[0], dir, "stage2", (char *)NULL);
    die("exec");
}
