/* libc_calls.c - libc functions whose glibc versions make their system calls themselves
 * (or call other libc functions internally), run in a directory: futimes, futimesat,
 * lockf (a child tests the parent's lock), syncfs, sync_file_range, readahead,
 * pathconf, fpathconf, scandirat, remove. Prints one line per call, the same in a
 * mount as in a real directory (tests/integration/run.sh compares them).
 *
 *   libc_calls DIR        (makes and removes DIR/lc.txt and DIR/lcdir)
 *   libc_calls fifo PATH  (mkfifo PATH: prints 0 or the errno name) */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *what, long r) { printf("%s %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : ""); }

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "fifo") == 0) {
        int r = mkfifo(argv[2], 0644);
        printf("mkfifo %s\n", r == 0 ? "0" : strerrorname_np(errno));
        return 0;
    }
    if (argc != 2) return 2;
    char f[4096], d[4096];
    snprintf(f, sizeof f, "%s/lc.txt", argv[1]);
    snprintf(d, sizeof d, "%s/lcdir", argv[1]);
    int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "0123456789", 10) != 10) return 3;
    struct timeval tv[2] = {{1000000000, 0}, {1200000000, 500000}};
    say("futimes", futimes(fd, tv));
    struct stat st;
    fstat(fd, &st);
    printf("mtime %ld\n", (long)st.st_mtime);
    tv[1].tv_sec = 1300000000;
    close(fd); /* (by name: a new object of an object store has one from its first close) */
    fd = open(f, O_RDWR);
    int dfd = open(argv[1], O_RDONLY | O_DIRECTORY);
    say("futimesat", futimesat(dfd, "lc.txt", tv));
    stat(f, &st);
    printf("mtime %ld\n", (long)st.st_mtime);
    lseek(fd, 2, SEEK_SET);
    say("lockf F_TLOCK", lockf(fd, F_TLOCK, 4));
    say("lockf F_TEST (own)", lockf(fd, F_TEST, 4));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* another process: bytes 2..5 locked, 6.. free */
        int c = open(f, O_RDWR);
        lseek(c, 3, SEEK_SET);
        int a = lockf(c, F_TEST, 1), ae = errno;
        lseek(c, 6, SEEK_SET);
        int b = lockf(c, F_TLOCK, 2);
        printf("child F_TEST %d %s, F_TLOCK past it %d\n", a, a < 0 ? strerrorname_np(ae) : "", b);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    say("lockf F_ULOCK", lockf(fd, F_ULOCK, 4));
    say("syncfs", syncfs(fd));
    say("sync_file_range", sync_file_range(fd, 0, 10, SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER));
    say("readahead", (long)readahead(fd, 0, 10));
    say("pathconf NAME_MAX", pathconf(f, _PC_NAME_MAX));
    say("fpathconf NAME_MAX", fpathconf(fd, _PC_NAME_MAX));
    char nope[4200];
    snprintf(nope, sizeof nope, "%s/nope", argv[1]);
    say("pathconf of a missing file", pathconf(nope, _PC_NAME_MAX));
    close(fd);
    mkdir(d, 0755);
    struct dirent **v;
    int n = scandirat(dfd, ".", &v, NULL, alphasort);
    printf("scandirat%s:", n < 0 ? " failed" : "");
    for (int i = 0; i < n; i++) {
        if (strcmp(v[i]->d_name, "lc.txt") == 0 || strcmp(v[i]->d_name, "lcdir") == 0) printf(" %s", v[i]->d_name);
        free(v[i]);
    }
    if (n >= 0) free(v);
    printf("\n");
    say("remove file", remove(f));
    say("remove dir", remove(d));
    say("remove missing", remove(f));
    close(dfd);
    return 0;
}
