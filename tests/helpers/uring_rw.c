/* uring_rw FILE - a liburing program (its system calls are its own: the shim cannot see
 * them): writes 64 blocks of 4 KiB to FILE at scattered offsets through an io_uring,
 * several in flight, reads them back through the ring and with pread(), and compares.
 * Prints "uring: ok N" or the first difference; with a request's error, prints it
 * ("uring: error EBADF") and exits 3, so a caller can expect that too. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BS = 4096, N = 64, QD = 8 };

static int run(struct io_uring *ring, int fd, char *bufs, int write)
{
    for (int i = 0; i < N;) {
        int batch = 0;
        for (; batch < QD && i + batch < N; batch++) {
            int k = i + batch;
            struct io_uring_sqe *e = io_uring_get_sqe(ring);
            off_t off = (off_t)((k * 37) % N) * BS; /* scattered, every block once */
            if (write)
                io_uring_prep_write(e, fd, bufs + (size_t)k * BS, BS, off);
            else
                io_uring_prep_read(e, fd, bufs + (size_t)k * BS, BS, off);
        }
        io_uring_submit(ring);
        for (int j = 0; j < batch; j++) {
            struct io_uring_cqe *c;
            if (io_uring_wait_cqe(ring, &c) < 0) return -EIO;
            int res = c->res;
            io_uring_cqe_seen(ring, c);
            if (res != BS) return res < 0 ? res : -EIO;
        }
        i += batch;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: uring_rw FILE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 2;
    }
    char *want, *got;
    if (posix_memalign((void **)&want, 4096, (size_t)N * BS) || posix_memalign((void **)&got, 4096, (size_t)N * BS)) return 2;
    for (size_t i = 0; i < (size_t)N * BS; i++) want[i] = (char)(i * 13 + i / 4093);
    struct io_uring ring;
    if (io_uring_queue_init(QD, &ring, 0) < 0) {
        printf("uring: no io_uring here\n");
        return 4;
    }
    int e = run(&ring, fd, want, 1);
    if (e == 0) e = run(&ring, fd, got, 0);
    if (e < 0) {
        printf("uring: error %s\n", e == -EBADF ? "EBADF" : strerror(-e));
        return 3;
    }
    if (memcmp(got, want, (size_t)N * BS) != 0) {
        printf("uring: read back through the ring differs\n");
        return 1;
    }
    for (int k = 0; k < N; k++) { /* and through the shim's own path */
        off_t off = (off_t)((k * 37) % N) * BS;
        char b[BS];
        if (pread(fd, b, BS, off) != BS || memcmp(b, want + (size_t)k * BS, BS) != 0) {
            printf("uring: pread of block %d differs\n", k);
            return 1;
        }
    }
    io_uring_queue_exit(&ring);
    close(fd);
    printf("uring: ok %d\n", N);
    return 0;
}
