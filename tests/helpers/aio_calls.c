/* aio_calls DIR [PLAIN_DIR] - POSIX AIO on files in DIR (a shim mount): every call and
 * every kind of notification, checked against what was written. With PLAIN_DIR, one
 * lio_listio also mixes requests on a file there (not the shim's, served by glibc).
 * Prints one line per failed check and "aio: N checks, M failed"; exit 1 on failure. */
#define _GNU_SOURCE 1
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int checks, failed;
#define CHECK(cond, ...) \
    do { \
        checks++; \
        if (!(cond)) { \
            failed++; \
            printf("FAIL line %d: ", __LINE__); \
            printf(__VA_ARGS__); \
            printf(" (errno %s)\n", strerror(errno)); \
        } \
    } while (0)

static volatile sig_atomic_t sig_hits, sig_code, sig_value;
static void on_sig(int s, siginfo_t *si, void *uc)
{
    (void)s, (void)uc;
    sig_hits++;
    sig_code = si->si_code;
    sig_value = si->si_value.sival_int;
}

static atomic_int thr_hits, thr_value;
static void on_done(union sigval v)
{
    atomic_store(&thr_value, v.sival_int);
    atomic_fetch_add(&thr_hits, 1);
}

/* Wait for one request as a program does: aio_suspend, then aio_error and aio_return. */
static ssize_t finish(struct aiocb *cb)
{
    const struct aiocb *list[1] = {cb};
    while (aio_error(cb) == EINPROGRESS) aio_suspend(list, 1, NULL);
    int e = aio_error(cb);
    ssize_t r = aio_return(cb);
    if (e) errno = e;
    return r;
}

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (char)(seed * 131 + i * 7 + (i >> 9));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: aio_calls DIR [PLAIN_DIR]\n");
        return 2;
    }
    char path[4096], plain[4096];
    snprintf(path, sizeof path, "%s/aio.bin", argv[1]);
    enum { N = 3 * 65536 + 1234 };
    char *want = malloc(N), *got = malloc(N);
    fill(want, N, 1);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sig;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 1, &sa, NULL);

    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0, "open %s", path);

    /* aio_write in three pieces, the middle one notified by a signal */
    struct aiocb w[3];
    memset(w, 0, sizeof w);
    size_t cut[4] = {0, 65536 + 100, 2 * 65536 + 333, N};
    for (int i = 0; i < 3; i++) {
        w[i].aio_fildes = fd;
        w[i].aio_buf = want + cut[i];
        w[i].aio_nbytes = cut[i + 1] - cut[i];
        w[i].aio_offset = (off_t)cut[i];
        if (i == 1) {
            w[i].aio_sigevent.sigev_notify = SIGEV_SIGNAL;
            w[i].aio_sigevent.sigev_signo = SIGRTMIN + 1;
            w[i].aio_sigevent.sigev_value.sival_int = 4242;
        }
        CHECK(aio_write(&w[i]) == 0, "aio_write %d", i);
    }
    for (int i = 0; i < 3; i++) CHECK(finish(&w[i]) == (ssize_t)w[i].aio_nbytes, "aio_write %d completes whole", i);
    for (int i = 0; i < 100 && !sig_hits; i++) usleep(1000);
    CHECK(sig_hits == 1 && sig_code == SI_ASYNCIO && sig_value == 4242, "SIGEV_SIGNAL: hits %d code %d value %d",
          (int)sig_hits, (int)sig_code, (int)sig_value);

    /* aio_fsync */
    struct aiocb s;
    memset(&s, 0, sizeof s);
    s.aio_fildes = fd;
    CHECK(aio_fsync(O_SYNC, &s) == 0 && finish(&s) == 0, "aio_fsync O_SYNC");
    memset(&s, 0, sizeof s);
    s.aio_fildes = fd;
    CHECK(aio_fsync(O_DSYNC, &s) == 0 && finish(&s) == 0, "aio_fsync O_DSYNC");
    CHECK(aio_fsync(12345, &s) == -1 && errno == EINVAL, "aio_fsync with a bad op: EINVAL");

    /* aio_read of the whole file, notified on a thread */
    struct aiocb r;
    memset(&r, 0, sizeof r);
    memset(got, 0, N);
    r.aio_fildes = fd;
    r.aio_buf = got;
    r.aio_nbytes = N + 4096; /* past the end: a short read */
    r.aio_sigevent.sigev_notify = SIGEV_THREAD;
    r.aio_sigevent.sigev_notify_function = on_done;
    r.aio_sigevent.sigev_value.sival_int = 77;
    CHECK(aio_read(&r) == 0, "aio_read");
    CHECK(finish(&r) == N, "aio_read returns the file's size (short read at the end)");
    CHECK(memcmp(got, want, N) == 0, "aio_read: the bytes written");
    for (int i = 0; i < 1000 && !atomic_load(&thr_hits); i++) usleep(1000);
    CHECK(atomic_load(&thr_hits) == 1 && atomic_load(&thr_value) == 77, "SIGEV_THREAD: hits %d value %d",
          atomic_load(&thr_hits), atomic_load(&thr_value));

    /* at the end: 0 */
    memset(&r, 0, sizeof r);
    r.aio_fildes = fd;
    r.aio_buf = got;
    r.aio_nbytes = 10;
    r.aio_offset = N;
    CHECK(aio_read(&r) == 0 && finish(&r) == 0, "aio_read at the end returns 0");
    r.aio_offset = -1;
    CHECK(aio_read(&r) == 0 && finish(&r) == -1 && errno == EINVAL, "aio_read at a negative offset: EINVAL");
    CHECK(aio_cancel(fd, NULL) == AIO_ALLDONE, "aio_cancel: all done");

    /* lio_listio, LIO_WAIT: two reads of ours (and one of a plain file) */
    int pfd = -1;
    if (argc > 2) {
        snprintf(plain, sizeof plain, "%s/aio-plain.bin", argv[2]);
        pfd = open(plain, O_RDWR | O_CREAT | O_TRUNC, 0644);
        CHECK(pfd >= 0 && pwrite(pfd, want, 5000, 0) == 5000, "plain file %s", plain);
    }
    char a[1000], b[2000], c[5000];
    struct aiocb l[3];
    memset(l, 0, sizeof l);
    l[0] = (struct aiocb){.aio_fildes = fd, .aio_lio_opcode = LIO_READ, .aio_buf = a, .aio_nbytes = sizeof a, .aio_offset = 70000};
    l[1] = (struct aiocb){.aio_fildes = fd, .aio_lio_opcode = LIO_READ, .aio_buf = b, .aio_nbytes = sizeof b, .aio_offset = 3};
    l[2] = (struct aiocb){.aio_fildes = pfd, .aio_lio_opcode = pfd >= 0 ? LIO_READ : LIO_NOP, .aio_buf = c, .aio_nbytes = sizeof c};
    struct aiocb *list[4] = {&l[0], NULL, &l[1], &l[2]};
    CHECK(lio_listio(LIO_WAIT, list, 4, NULL) == 0, "lio_listio LIO_WAIT");
    CHECK(aio_error(&l[0]) == 0 && aio_return(&l[0]) == (ssize_t)sizeof a && memcmp(a, want + 70000, sizeof a) == 0,
          "lio_listio: first read");
    CHECK(aio_error(&l[1]) == 0 && aio_return(&l[1]) == (ssize_t)sizeof b && memcmp(b, want + 3, sizeof b) == 0,
          "lio_listio: second read");
    if (pfd >= 0)
        CHECK(aio_error(&l[2]) == 0 && aio_return(&l[2]) == (ssize_t)sizeof c && memcmp(c, want, sizeof c) == 0,
              "lio_listio: the plain file's read, by glibc");

    /* lio_listio, LIO_NOWAIT: the list's signal once all are done */
    sig_hits = 0;
    struct sigevent se = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1, .sigev_value.sival_int = 99};
    struct aiocb *one[1] = {&l[0]};
    CHECK(lio_listio(LIO_NOWAIT, one, 1, &se) == 0, "lio_listio LIO_NOWAIT");
    CHECK(finish(&l[0]) == (ssize_t)sizeof a, "lio_listio LIO_NOWAIT: read");
    for (int i = 0; i < 100 && !sig_hits; i++) usleep(1000);
    CHECK(sig_hits == 1 && sig_value == 99, "lio_listio LIO_NOWAIT: the list's signal (hits %d value %d)",
          (int)sig_hits, (int)sig_value);

    /* O_APPEND: at the end whatever the offset */
    int afd = open(path, O_WRONLY | O_APPEND);
    struct aiocb ap = {.aio_fildes = afd, .aio_buf = "tail", .aio_nbytes = 4, .aio_offset = 0};
    CHECK(aio_write(&ap) == 0 && finish(&ap) == 4, "aio_write O_APPEND");
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && st.st_size == N + 4, "O_APPEND write went to the end (size %lld)", (long long)st.st_size);
    CHECK(pread(fd, got, 4, N) == 4 && memcmp(got, "tail", 4) == 0, "O_APPEND bytes at the end");

    /* errors come back through aio_error */
    struct aiocb bad = {.aio_fildes = afd, .aio_buf = got, .aio_nbytes = 10};
    CHECK(aio_read(&bad) == 0, "aio_read on a write-only descriptor is accepted");
    CHECK(finish(&bad) == -1 && errno == EBADF, "...and fails with EBADF through aio_error");
    close(afd);
    close(fd);
    if (pfd >= 0) close(pfd), unlink(plain);
    printf("aio: %d checks, %d failed\n", checks, failed);
    return failed ? 1 : 0;
}
