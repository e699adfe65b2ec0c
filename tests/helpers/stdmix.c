/* stdmix - one program that mixes every way of reading its stdin (or writing its stdout)
 * that a redirected standard stream meets: read(), readv(), sendfile(), splice(), and
 * glibc's stdio, whose own reads and writes no preload library sees. Run on a plain file
 * and on a shim file, its output must be the same: tests/stdstream/run.sh checks that no
 * byte is lost, doubled or reordered between the two paths.
 *
 * usage: stdmix in     copy stdin to stdout (written with write(), unbuffered), byte for
 *                      byte in file order: read() runs, getchar() and getline(), whatever
 *                      stdio buffered then taken out of its buffer (so that the next
 *                      read() continues right after what stdio took from fd 0), readv(),
 *                      sendfile() and splice() from fd 0, until end of file
 *        stdmix out N  write to stdout N rounds of write(), printf() (flushed and not),
 *                      writev(), a large write() and fwrite(), and a forked child that
 *                      writes with both in the middle (the parent waits for it)
 *        stdmix badf   read(1) and write(0) must fail with EBADF (stdin open for reading,
 *                      stdout for writing); prints what they did
 *        stdmix fopen-in FILE   close(0), then fopen(FILE) lands on fd 0: wait 30 ms (a
 *                      pump would fill its pipe meanwhile), copy the stream to stdout
 *                      with fread() and getc()
 *        stdmix fopen-out FILE  close(1), then fopen(FILE, "w") lands on fd 1: fprintf,
 *                      fwrite and write(1) by turns (flushed in between), 30 ms pauses
 *        stdmix fclose-exec  printf, fclose(stdout) (glibc's internal close, which no
 *                      preload library sees), a socketpair whose first end lands on fd 1,
 *                      then exec bash: it writes a line to fd 1 and must read it back
 *                      from the other end. A shim that still took fd 1 for its own (at
 *                      exec or exit) would put the file back on it.
 * Exits 0, or 1 with a message on stderr when a call fails unexpectedly. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "stdmix: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void put(const void *buf, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t w = write(1, (const char *)buf + done, n - done);
        if (w <= 0) die("write(1)");
        done += (size_t)w;
    }
}

/* Copy up to n bytes from read(0); returns what was copied (short at end of file). */
static size_t copy_read(size_t n)
{
    static char buf[1 << 16];
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < sizeof buf ? n - got : sizeof buf;
        ssize_t r = read(0, buf, want);
        if (r < 0) die("read(0)");
        if (r == 0) break;
        put(buf, (size_t)r);
        got += (size_t)r;
    }
    return got;
}

/* Hand out what stdio holds of stdin without letting it read more. */
static void drain_stdio(void)
{
    size_t avail = (size_t)(stdin->_IO_read_end - stdin->_IO_read_ptr);
    char *buf = malloc(avail + 1);
    if (!buf) die("malloc");
    size_t n = avail ? fread(buf, 1, avail, stdin) : 0;
    if (n != avail) die("fread of the buffered bytes");
    put(buf, n);
    free(buf);
}

/* One byte through stdio (it fills its buffer from fd 0), then what it buffered. */
static int stdio_byte(void)
{
    int c = getchar();
    if (c == EOF) return 0;
    char ch = (char)c;
    put(&ch, 1);
    drain_stdio();
    return 1;
}

static int mode_in(void)
{
    copy_read(10);
    if (stdio_byte()) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, stdin); /* (the bytes may hold NULs) */
        if (n > 0) put(line, (size_t)n);
        free(line);
        drain_stdio();
    }
    copy_read(20);
    char a[7], b[13];
    struct iovec iov[2] = {{a, sizeof a}, {b, sizeof b}};
    ssize_t r = readv(0, iov, 2);
    if (r < 0) die("readv(0)");
    put(a, (size_t)r < sizeof a ? (size_t)r : sizeof a);
    if (r > (ssize_t)sizeof a) put(b, (size_t)r - sizeof a);
    r = sendfile(1, 0, NULL, 5000);
    if (r < 0) die("sendfile(1, 0)");
    int pp[2];
    if (pipe(pp) < 0) die("pipe");
    r = splice(0, NULL, pp[1], NULL, 3000, 0);
    if (r < 0) die("splice(0, pipe)");
    char sb[3000];
    if (r > 0 && read(pp[0], sb, (size_t)r) != r) die("read(pipe)");
    put(sb, (size_t)r);
    close(pp[0]);
    close(pp[1]);
    for (int round = 0;; round++) {
        if (round % 4 == 3) {
            if (!stdio_byte()) break;
            continue;
        }
        size_t want = round % 2 ? 4096 : 100000 + (size_t)round;
        if (copy_read(want) < want) break;
    }
    return 0;
}

static void say(const char *fmt, int who, int round)
{
    char line[128];
    int n = snprintf(line, sizeof line, fmt, who, round);
    put(line, (size_t)n);
}

static int mode_out(int rounds)
{
    static char big[300000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
    for (int i = 0; i < rounds; i++) {
        say("write %d.%d\n", 0, i);
        printf("printf %d, flushed\n", i);
        fflush(stdout);
        say("write %d.%d again\n", 0, i);
        printf("printf %d, left in the buffer until later\n", i); /* goes out at the next flush */
        char h[64];
        int n = snprintf(h, sizeof h, "writev %d: ", i);
        struct iovec iov[2] = {{h, (size_t)n}, {"two parts\n", 10}};
        if (writev(1, iov, 2) != n + 10) die("writev(1)");
        put(big, sizeof big - (size_t)i);
        fwrite(big, 1, sizeof big / 2, stdout);
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) { /* the buffer it inherited is empty: flushed above */
            say("child %d write %d\n", 1, i);
            printf("child printf %d\n", i);
            fflush(stdout);
            _exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) die("child");
        say("after child %d.%d\n", 0, i);
    }
    printf("last printf, flushed at exit\n");
    return 0;
}

static int mode_badf(void)
{
    char c = 'x';
    errno = 0;
    ssize_t r = write(0, &c, 1);
    fprintf(stderr, "write(0) = %zd (%s)\n", r, r < 0 ? strerror(errno) : "-");
    int ok = r < 0 && errno == EBADF;
    errno = 0;
    r = read(1, &c, 1);
    fprintf(stderr, "read(1) = %zd (%s)\n", r, r < 0 ? strerror(errno) : "-");
    ok &= r < 0 && errno == EBADF;
    return ok ? 0 : 1;
}

static void pause_30ms(void) { nanosleep(&(struct timespec){0, 30 * 1000000}, NULL); }

static int mode_fopen_in(const char *path)
{
    close(0);
    FILE *f = fopen(path, "r");
    if (!f) die(path);
    if (fileno(f) != 0) die("fopen did not land on fd 0");
    pause_30ms();
    char buf[5000];
    for (int i = 0;; i++) {
        if (i % 3 == 2) {
            int c = getc(f);
            if (c == EOF) break;
            char ch = (char)c;
            put(&ch, 1);
            continue;
        }
        size_t n = fread(buf, 1, sizeof buf - (size_t)i % 7, f);
        put(buf, n);
        if (n < sizeof buf - (size_t)i % 7) break;
        if (i % 50 == 0) pause_30ms();
    }
    return fclose(f) != 0;
}

static int mode_fopen_out(const char *path)
{
    close(1);
    FILE *f = fopen(path, "w");
    if (!f) die(path);
    if (fileno(f) != 1) die("fopen did not land on fd 1");
    static char big[100000];
    memset(big, 'z', sizeof big);
    for (int i = 0; i < 5; i++) {
        fprintf(f, "fprintf %d\n", i);
        fwrite(big, 1, sizeof big - (size_t)i, f);
        fflush(f);
        pause_30ms();
        char line[64];
        int n = snprintf(line, sizeof line, "write %d\n", i);
        if (write(1, line, (size_t)n) != n) die("write(1)");
    }
    return fclose(f) != 0;
}

static int mode_fclose_exec(void)
{
    printf("before the close\n");
    if (fclose(stdout) != 0) die("fclose(stdout)");
    int s[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) < 0) die("socketpair");
    if (s[0] != 1) {
        fprintf(stderr, "stdmix: socketpair landed on fd %d, not 1\n", s[0]);
        return 1;
    }
    int peer = fcntl(s[1], F_DUPFD, 10); /* without close-on-exec: bash reads it */
    if (peer < 0 || fcntl(1, F_SETFD, 0) < 0) die("fcntl");
    char cmd[200];
    snprintf(cmd, sizeof cmd, "echo via-socket; read -r -t 10 x <&%d; [ \"$x\" = via-socket ]", peer);
    execlp("bash", "bash", "-c", cmd, (char *)NULL);
    die("exec bash");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "fclose-exec") == 0) return mode_fclose_exec();
    if (argc >= 3 && strcmp(argv[1], "fopen-in") == 0) return mode_fopen_in(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "fopen-out") == 0) return mode_fopen_out(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "in") == 0) return mode_in();
    if (argc >= 3 && strcmp(argv[1], "out") == 0) return mode_out(atoi(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "badf") == 0) return mode_badf();
    fprintf(stderr, "usage: stdmix in | out ROUNDS | badf | fopen-in FILE | fopen-out FILE\n");
    return 2;
}
