/* clone_vm - a child that shares the parent's memory under another pid (clone with
 * CLONE_VM | CLONE_VFORK, as posix_spawn and some runtimes start children) closes a
 * descriptor it inherited; the parent then reads it. Under the shim the child's close
 * must go to the kernel only, never to the parent's tables (shim_foreign_child).
 *
 * usage: clone_vm FILE      prints "child N, parent read M: TEXT" */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int fd;

static int child(void *arg)
{
    (void)arg;
    close(fd);
    _exit(7);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: clone_vm FILE\n");
        return 2;
    }
    if ((fd = open(argv[1], O_RDONLY)) < 0) {
        perror(argv[1]);
        return 1;
    }
    size_t ss = 1 << 16;
    char *stack = malloc(ss);
    if (!stack) return 1;
    pid_t p = clone(child, stack + ss, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    if (p < 0) {
        perror("clone");
        return 1;
    }
    int st = 0;
    if (waitpid(p, &st, 0) != p) perror("waitpid");
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) perror("read after the child's close");
    printf("child %d, parent read %zd: %.*s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, n, n > 0 ? (int)n : 0, buf);
    free(stack);
    return n > 0 ? 0 : 1;
}
