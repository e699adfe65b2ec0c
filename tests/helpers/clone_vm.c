/* clone_vm - a child that must not touch the parent's tables closes a descriptor it
 * inherited, then the parent goes on with it. Two kinds of such children:
 *   (default)  clone with CLONE_VM | CLONE_VFORK: the parent's memory under another pid
 *              (as posix_spawn and some runtimes start children);
 *   raw-fork   a fork made by the clone system call itself, behind libc's back: no fork
 *              handlers ran in it, its tables are copies of the parent's.
 * Under the shim the child's close must go to the kernel only (shim_foreign_child).
 *
 * usage: clone_vm read FILE [raw-fork]    the parent reads FILE after the child's close;
 *                                         prints "child N, parent read M: TEXT"
 *        clone_vm write FILE [raw-fork]   the parent writes "one\n", the child closes, the
 *                                         parent writes "two\n" and closes; prints FILE */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int fd;

static int child(void *arg)
{
    (void)arg;
    close(fd);
    _exit(7);
}

/* Start the child, wait for it; its exit status (or -1). */
static int run_child(int raw)
{
    size_t ss = 1 << 16;
    char *stack = malloc(ss);
    if (!stack) return -1;
    pid_t p;
    if (raw) {
        p = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (p == 0) child(NULL);
    } else {
        p = clone(child, stack + ss, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    }
    int st = 0;
    if (p < 0 || waitpid(p, &st, 0) != p) perror("clone/waitpid");
    free(stack);
    return p > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv)
{
    int wr = argc >= 3 && strcmp(argv[1], "write") == 0;
    if (argc < 3 || argc > 4 || (!wr && strcmp(argv[1], "read") != 0) || (argc == 4 && strcmp(argv[3], "raw-fork"))) {
        fprintf(stderr, "usage: clone_vm read|write FILE [raw-fork]\n");
        return 2;
    }
    int raw = argc == 4;
    char buf[256];
    if ((fd = open(argv[2], wr ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644)) < 0) {
        perror(argv[2]);
        return 1;
    }
    if (wr) {
        if (write(fd, "one\n", 4) != 4) perror("write one");
        int st = run_child(raw);
        if (write(fd, "two\n", 4) != 4) perror("write two");
        if (close(fd) != 0) perror("close");
        int rfd = open(argv[2], O_RDONLY);
        ssize_t n = rfd < 0 ? -1 : read(rfd, buf, sizeof buf - 1);
        if (rfd >= 0) close(rfd);
        printf("child %d, file %zd: %.*s", st, n, n > 0 ? (int)n : 0, buf);
        return n == 8 ? 0 : 1;
    }
    int st = run_child(raw);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) perror("read after the child's close");
    printf("child %d, parent read %zd: %.*s", st, n, n > 0 ? (int)n : 0, buf);
    return n > 0 ? 0 : 1;
}
