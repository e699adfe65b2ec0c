/* s3_stress.c - the S3 data path under ThreadSanitizer.
 *
 * Linked against the TSan build of libs3shim.so (not preloaded), so its file calls go
 * through the shim and every engine thread (HTTP workers) is instrumented too. Against
 * a real S3 server (the test rig):
 *   preads  THREADS threads of random preads on one shared descriptor of an object,
 *           each compared with the same range of the local source file;
 *   seq     THREADS threads each read the object from a descriptor of its own in blocks
 *           of st_blksize (one part, like cat): waiting for prefetched parts, whose bodies
 *           the engine threads then receive straight into the reader's buffer;
 *   writes  THREADS threads each upload their own multipart object with write() calls
 *           of odd sizes, close, and read it back whole, comparing every byte;
 *   staged  THREADS threads on one O_RDWR (staged) descriptor of the object (every third
 *           reading front to back, its window fetched ahead while the others write): random
 *           preads compared with the source and pwrites of the source's own bytes (lazy
 *           block fetches racing with partial-block writes), then close uploads it;
 *   behind  THREADS threads filling one new O_RDWR file in interleaved 256 KiB chunks,
 *           rewriting earlier ones now and then (write-behind sends parts while they
 *           write and close re-sends the rewritten ones), then read back whole;
 *   temps   THREADS threads each making temporaries (O_RDWR|O_CREAT|O_EXCL, as mkstemp):
 *           written, closed (kept in staging), read back, then renamed (uploaded under
 *           the new name) or removed (never sent), all at once; each final object read
 *           back whole.
 * Usage: s3_stress DIR SOURCE   (DIR = /s3/BUCKET/prefix; SOURCE = local copy of DIR/obj)
 * Prints one summary line; exits non-zero on any mismatch or error. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define THREADS 6
#define PREADS 60
#define WRITE_SIZE ((size_t)11 << 20) /* three 5 MiB parts */

static const char *dir, *source;
static int shared_fd, local_fd;
static off_t obj_size;
static _Atomic int failures;

static void fail(const char *what, long a, long b)
{
    fprintf(stderr, "FAIL %s (%ld, %ld): %s\n", what, a, b, strerror(errno));
    failures++;
}

static unsigned rnd(unsigned *s)
{
    *s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
    return *s;
}

static void *seqreads(void *arg)
{
    int id = (int)(uintptr_t)arg;
    char path[512];
    snprintf(path, sizeof path, "%s/obj", dir);
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fail("open for sequential reads", id, 0);
        if (fd >= 0) close(fd);
        return NULL;
    }
    size_t bs = st.st_blksize > 0 ? (size_t)st.st_blksize : 65536;
    char *a = malloc(bs), *b = malloc(bs);
    off_t off = 0;
    for (ssize_t n; (n = read(fd, a, bs)) != 0; off += n) {
        ssize_t m = pread(local_fd, b, bs, off);
        if (n < 0 || n != m || memcmp(a, b, (size_t)n) != 0) {
            fail("sequential read differs", id, (long)off);
            break;
        }
    }
    if (off != obj_size) fail("sequential read: short", id, (long)off);
    close(fd);
    free(a);
    free(b);
    return NULL;
}

static void *preads(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    char *a = malloc(256 << 10), *b = malloc(256 << 10);
    for (int i = 0; i < PREADS; i++) {
        size_t len = 1 + rnd(&seed) % (256 << 10);
        off_t off = (off_t)(rnd(&seed) % (unsigned)obj_size);
        ssize_t n = pread(shared_fd, a, len, off), m = pread(local_fd, b, len, off);
        if (n != m || (n > 0 && memcmp(a, b, (size_t)n) != 0)) fail("pread differs", (long)off, (long)len);
    }
    free(a);
    free(b);
    return NULL;
}

static int staged_fd;

static void *staged(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 40503u + 7;
    char *a = malloc(256 << 10), *b = malloc(256 << 10);
    int seq = (uintptr_t)arg % 3 == 0; /* reads front to back: the window fetched ahead */
    off_t next = 0;
    for (int i = 0; i < PREADS; i++) {
        size_t len = seq ? 64 << 10 : 1 + rnd(&seed) % (256 << 10);
        off_t off = seq ? next : (off_t)(rnd(&seed) % (unsigned)obj_size);
        next = off + (off_t)len < (off_t)obj_size ? off + (off_t)len : 0;
        ssize_t m = pread(local_fd, b, len, off);
        if (i % 2 && !seq) {
            if (m > 0 && pwrite(staged_fd, b, (size_t)m, off) != m) fail("staged pwrite", (long)off, (long)m);
        } else {
            ssize_t n = pread(staged_fd, a, len, off);
            if (n != m || (n > 0 && memcmp(a, b, (size_t)n) != 0)) fail("staged pread differs", (long)off, (long)len);
        }
    }
    free(a);
    free(b);
    return NULL;
}

#define BEHIND_SIZE ((size_t)23 << 20)
#define CHUNK ((size_t)256 << 10)
static int run(void *(*fn)(void *));
static int behind_fd;
static unsigned char *behind_data;

static void *behind(void *arg)
{
    int id = (int)(uintptr_t)arg - 1;
    unsigned seed = (unsigned)id * 31u + 5;
    for (size_t k = (size_t)id; k * CHUNK < BEHIND_SIZE; k += THREADS) {
        size_t n = BEHIND_SIZE - k * CHUNK < CHUNK ? BEHIND_SIZE - k * CHUNK : CHUNK;
        if (pwrite(behind_fd, behind_data + k * CHUNK, n, (off_t)(k * CHUNK)) != (ssize_t)n)
            fail("write-behind pwrite", (long)k, (long)n);
        if (k >= THREADS * 8 && rnd(&seed) % 4 == 0) { /* an earlier chunk of ours again */
            size_t j = k - THREADS * (1 + rnd(&seed) % 8);
            if (pwrite(behind_fd, behind_data + j * CHUNK, CHUNK, (off_t)(j * CHUNK)) != (ssize_t)CHUNK)
                fail("write-behind rewrite", (long)j, 0);
        }
    }
    return NULL;
}

static void behind_run(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/behind", dir);
    behind_data = malloc(BEHIND_SIZE);
    unsigned char *back = malloc(BEHIND_SIZE);
    unsigned seed = 99;
    for (size_t i = 0; i < BEHIND_SIZE; i++) behind_data[i] = (unsigned char)rnd(&seed);
    if ((behind_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)) < 0) {
        fail("open O_RDWR|O_CREAT (write-behind)", 0, 0);
    } else {
        run(behind);
        if (close(behind_fd) != 0) fail("close of the write-behind file (upload)", 0, 0);
        int fd = open(path, O_RDONLY);
        size_t got = 0;
        for (ssize_t r; fd >= 0 && got < BEHIND_SIZE && (r = read(fd, back + got, 300000)) > 0;) got += (size_t)r;
        if (fd < 0 || got != BEHIND_SIZE || memcmp(back, behind_data, BEHIND_SIZE) != 0)
            fail("write-behind: read back differs", (long)got, 0);
        if (fd >= 0) close(fd);
        unlink(path);
    }
    free(back);
    free(behind_data);
}

static void *writes(void *arg)
{
    int id = (int)(uintptr_t)arg;
    char path[512];
    snprintf(path, sizeof path, "%s/w%d", dir, id);
    unsigned char *data = malloc(WRITE_SIZE), *back = malloc(WRITE_SIZE);
    unsigned seed = (unsigned)id * 7919u + 3;
    for (size_t i = 0; i < WRITE_SIZE; i++) data[i] = (unsigned char)rnd(&seed);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fail("open for writing", id, 0);
        goto out;
    }
    for (size_t done = 0; done < WRITE_SIZE;) {
        size_t n = 1 + rnd(&seed) % (700u << 10);
        if (n > WRITE_SIZE - done) n = WRITE_SIZE - done;
        ssize_t w = write(fd, data + done, n);
        if (w <= 0) {
            fail("write", id, (long)done);
            break;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0) fail("close (upload)", id, 0);
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        fail("open for reading back", id, 0);
        goto out;
    }
    size_t got = 0;
    for (ssize_t r; got < WRITE_SIZE && (r = read(fd, back + got, 300000)) > 0;) got += (size_t)r;
    if (got != WRITE_SIZE || memcmp(data, back, WRITE_SIZE) != 0) fail("read back differs", id, (long)got);
    close(fd);
    if (unlink(path) != 0) fail("unlink", id, 0);
out:
    free(data);
    free(back);
    return NULL;
}

#define TEMP_SIZE ((size_t)6 << 20) /* two 5 MiB parts at the rename */

static void *temps(void *arg)
{
    int id = (int)(uintptr_t)arg;
    char tmp[512], fin[512];
    unsigned char *data = malloc(TEMP_SIZE), *back = malloc(TEMP_SIZE);
    unsigned seed = (unsigned)id * 104729u + 11;
    for (size_t i = 0; i < TEMP_SIZE; i++) data[i] = (unsigned char)rnd(&seed);
    for (int k = 0; k < 3; k++) {
        snprintf(tmp, sizeof tmp, "%s/t%d.%d.tmp", dir, id, k);
        snprintf(fin, sizeof fin, "%s/t%d.%d", dir, id, k);
        int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0) {
            fail("open O_RDWR|O_CREAT|O_EXCL (temporary)", id, k);
            continue;
        }
        if (write(fd, data, TEMP_SIZE) != (ssize_t)TEMP_SIZE) fail("write (temporary)", id, k);
        if (close(fd) != 0) fail("close (temporary)", id, k);
        fd = open(tmp, O_RDONLY);
        if (fd < 0 || pread(fd, back, TEMP_SIZE, 0) != (ssize_t)TEMP_SIZE || memcmp(data, back, TEMP_SIZE) != 0)
            fail("reading the temporary back", id, k);
        if (fd >= 0) close(fd);
        if (k == 1) { /* removed: nothing is sent */
            if (unlink(tmp) != 0) fail("unlink (temporary)", id, k);
            continue;
        }
        if (rename(tmp, fin) != 0) {
            fail("rename (temporary)", id, k);
            continue;
        }
        memset(back, 0, TEMP_SIZE);
        fd = open(fin, O_RDONLY);
        size_t got = 0;
        for (ssize_t r; fd >= 0 && got < TEMP_SIZE && (r = read(fd, back + got, TEMP_SIZE - got)) > 0;)
            got += (size_t)r;
        if (got != TEMP_SIZE || memcmp(data, back, TEMP_SIZE) != 0) fail("the renamed temporary differs", id, k);
        if (fd >= 0) close(fd);
        if (unlink(fin) != 0) fail("unlink (renamed temporary)", id, k);
    }
    free(data);
    free(back);
    return NULL;
}

static int run(void *(*fn)(void *))
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    return failures;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: s3_stress /s3/BUCKET/DIR LOCAL-COPY-OF-DIR/obj\n");
        return 2;
    }
    dir = argv[1];
    source = argv[2];
    char obj[512];
    snprintf(obj, sizeof obj, "%s/obj", dir);
    struct stat st;
    if ((shared_fd = open(obj, O_RDONLY)) < 0 || (local_fd = open(source, O_RDONLY)) < 0 || fstat(local_fd, &st)) {
        perror("open");
        return 1;
    }
    obj_size = st.st_size;
    run(preads);
    run(seqreads);
    if ((staged_fd = open(obj, O_RDWR)) < 0) {
        fail("open O_RDWR (staged)", 0, 0);
    } else {
        run(staged);
        if (close(staged_fd) != 0) fail("close of the staged descriptor (upload)", 0, 0);
    }
    run(writes);
    behind_run();
    run(temps);
    close(shared_fd);
    close(local_fd);
    printf("%d threads: %d preads each, a sequential read each, %d staged preads/pwrites each, %zu-byte uploads each, one %zu-byte "
           "file written behind, 3 %zu-byte temporaries each (2 renamed, 1 removed); %d failures\n",
           THREADS, PREADS, PREADS, WRITE_SIZE, BEHIND_SIZE, TEMP_SIZE, (int)failures);
    return failures ? 1 : 0;
}
