/* no_uring - run a command where io_uring is refused, as a container's default seccomp
 * profile (Docker's, since 2023) or kernel.io_uring_disabled=2 refuses it.
 *
 *   no_uring CMD [ARG...]
 *
 * io_uring_setup, io_uring_enter and io_uring_register fail with EPERM in CMD and in
 * everything it starts; every other call is untouched. Exit status: CMD's, or 127. */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: no_uring CMD [ARG...]\n");
        return 127;
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) {
        fprintf(stderr, "no_uring: seccomp_init failed\n");
        return 127;
    }
    const char *calls[] = {"io_uring_setup", "io_uring_enter", "io_uring_register"};
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        int nr = seccomp_syscall_resolve_name(calls[i]);
        int e = nr == __NR_SCMP_ERROR ? -ENOSYS : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (e < 0) {
            fprintf(stderr, "no_uring: cannot refuse %s: %s\n", calls[i], strerror(-e));
            return 127;
        }
    }
    int e = seccomp_load(ctx);
    seccomp_release(ctx);
    if (e < 0) {
        fprintf(stderr, "no_uring: seccomp_load: %s\n", strerror(-e));
        return 127;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "no_uring: %s: %s\n", argv[1], strerror(errno));
    return 127;
}
