/* exit_writer - writes a file and ends without closing it, in one of many ways: the
 * program side of tests/s3/exit.sh (what happens to an upload when its program ends).
 *
 * usage: exit_writer HOW REFERENCE DEST
 *
 * Copies REFERENCE (a local file) into DEST (under the shim: a path in an s3:// mount)
 * with write() calls of 1 MiB, never closing DEST, then ends by HOW:
 *   exit        exit(0)                   return     return 0 from main
 *   _exit       _exit(0)                  _Exit      _Exit(0)
 *   quick_exit  quick_exit(0)
 *   exec        execl /bin/true (DEST is inherited by it)
 *   exec-cloexec DEST opened O_CLOEXEC, then execl /bin/true
 *   abort       abort()                   sigterm    raise(SIGTERM), default disposition
 *   thread-exit a second thread calls exit(0) while main waits in pause()
 *   atexit-tail an atexit handler registered before DEST was opened writes the last
 *               MiB, then exit(0)
 *   stdio       fopen/fwrite, no fclose, exit(0)
 *   ssl-cleanup the program shuts OpenSSL down itself (OPENSSL_cleanup, from the
 *               libcrypto the shim has opened), then exit(0)
 *   fork-exit / fork-_exit  half is written, a forked child writes "child" (as on a
 *               local file; "exit_writer: child: wrote" on stderr) or is refused with
 *               EBADF when the parent's upload already sent parts ("child: EBADF"),
 *               and ends by exit(0) / _exit(0) without closing; the parent checks it
 *               ended with 0, writes the rest and exit(0)s
 * Exit status 0 (or the signal), 3 when something that must work did not. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK ((size_t)1 << 20)

static const char *ref;
static size_t ref_len, done;
static int fd = -1;
static FILE *fp;

static void die(const char *what)
{
    fprintf(stderr, "exit_writer: %s: %s\n", what, strerror(errno));
    exit(3);
}

static void write_upto(size_t end)
{
    while (done < end) {
        size_t n = end - done < CHUNK ? end - done : CHUNK;
        ssize_t w = fp ? (ssize_t)fwrite(ref + done, 1, n, fp) : write(fd, ref + done, n);
        if (w <= 0) die("write");
        done += (size_t)w;
    }
}

static void tail_at_exit(void) { write_upto(ref_len); }

static void *exiter(void *arg)
{
    (void)arg;
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: exit_writer HOW REFERENCE DEST\n");
        return 2;
    }
    const char *how = argv[1];
    int rfd = open(argv[2], O_RDONLY);
    struct stat st;
    if (rfd < 0 || fstat(rfd, &st) < 0) die(argv[2]);
    ref_len = (size_t)st.st_size;
    ref = ref_len ? mmap(NULL, ref_len, PROT_READ, MAP_PRIVATE, rfd, 0) : "";
    if (ref == MAP_FAILED) die("mmap");
    if (!strcmp(how, "atexit-tail")) atexit(tail_at_exit); /* before anything of DEST */
    if (!strcmp(how, "stdio")) {
        if (!(fp = fopen(argv[3], "w"))) die(argv[3]);
    } else {
        int cl = !strcmp(how, "exec-cloexec") ? O_CLOEXEC : 0;
        if ((fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | cl, 0644)) < 0) die(argv[3]);
    }
    if (!strncmp(how, "fork-", 5)) {
        write_upto(ref_len / 2);
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            ssize_t w = write(fd, "child", 5);
            if (w == 5) {
                fprintf(stderr, "exit_writer: child: wrote\n");
            } else if (w < 0 && errno == EBADF) {
                fprintf(stderr, "exit_writer: child: EBADF\n");
            } else {
                fprintf(stderr, "exit_writer: child: write returned %zd (%s)\n", w, strerror(errno));
                _exit(3);
            }
            if (!strcmp(how, "fork-_exit")) _exit(0);
            exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "exit_writer: the child ended with status 0x%x\n", status);
            exit(3);
        }
        write_upto(ref_len);
        exit(0);
    }
    write_upto(!strcmp(how, "atexit-tail") && ref_len > CHUNK ? ref_len - CHUNK : ref_len);
    if (!strcmp(how, "exit") || !strcmp(how, "atexit-tail") || !strcmp(how, "stdio")) exit(0);
    if (!strcmp(how, "return")) return 0;
    if (!strcmp(how, "_exit")) _exit(0);
    if (!strcmp(how, "_Exit")) _Exit(0);
    if (!strcmp(how, "quick_exit")) quick_exit(0);
    if (!strncmp(how, "exec", 4)) {
        execl("/bin/true", "true", (char *)NULL);
        die("exec");
    }
    if (!strcmp(how, "abort")) abort();
    if (!strcmp(how, "sigterm")) {
        signal(SIGTERM, SIG_DFL);
        raise(SIGTERM);
        return 3;
    }
    if (!strcmp(how, "thread-exit")) {
        pthread_t t;
        if (pthread_create(&t, NULL, exiter, NULL) != 0) die("pthread_create");
        for (;;) pause();
    }
    if (!strcmp(how, "ssl-cleanup")) {
        /* the process's one libcrypto: the shim's (it opens it on first use), or a new one */
        void *h = dlopen("libcrypto.so.3", RTLD_NOW);
        void (*cleanup)(void) = h ? (void (*)(void))dlsym(h, "OPENSSL_cleanup") : NULL;
        if (cleanup) cleanup();
        exit(0);
    }
    fprintf(stderr, "exit_writer: unknown way to end: %s\n", how);
    return 2;
}
