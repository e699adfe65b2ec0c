/* passthrough.c - what the shim costs a call that is not for it.
 *
 * Times cheap libc calls on descriptors and paths that are NOT under any shim mount.
 * bench/passthrough.sh runs it alternately without and with LD_PRELOAD=libs3shim.so and
 * compares; the difference is the interposition cost on foreign descriptors and paths.
 *
 *   passthrough [-t SECONDS] [-s SHIM_PATH] DIR          time every test
 *   passthrough -n CALLS -o TEST|all [-s SHIM_PATH] DIR  untimed, for callgrind: run each
 *                                                         selected loop CALLS times, then
 *                                                         2*CALLS times
 *   passthrough -l                                        list the tests
 *
 * DIR is a real directory outside every mount; the program creates DIR/held.bin there
 * and makes DIR its working directory (for the one test on a relative path).
 * SHIM_PATH, if given, is opened read-only and kept open for the whole run: under the
 * shim it is a shim descriptor, so the descriptor table is not empty and the "is this fd
 * ours?" test cannot take its empty-table exit. Without the shim the open fails and is
 * ignored.
 *
 * Each test has two loops: loop_TEST calls the function the ordinary way (through the
 * PLT, so the shim's wrapper when it is preloaded) and direct_loop_TEST calls libc's own
 * definition through a pointer from dlsym(libc.so.6), bypassing any preloaded wrapper.
 * Timed runs calibrate a batch to >= 2 ms, then run batches of the two loops alternately
 * for SECONDS (default 0.3) and print, per test, one line:
 *
 *   TEST ns_per_call=P direct_ns=D pair_delta=X min=M batches=B iters=I
 *
 * P and D are the median batch of each loop, X the median of the per-pair differences
 * (P - D measured in adjacent batches), M the fastest batch of loop_TEST. In a run
 * without the shim X is the PLT-versus-pointer call difference, about 0; with the shim
 * it is that plus the wrapper's cost, measured in one process, paired in time, which is
 * far less noisy than comparing two processes. Lines starting with '#' are comments.
 * Every loop is a separate non-inlined function so that callgrind can count exactly its
 * instructions (--toggle-collect=loop_TEST). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NOINL __attribute__((noinline, used))

static int fd_zero = -1;        /* /dev/zero */
static int fd_file = -1;        /* DIR/held.bin: 4 KiB regular file, in the page cache */
/* Paths start a page (where they are does not matter to libc, but the shim's vector scan
 * needs 65 bytes of the page from the start of the string: see stat_pageend_enoent). */
static char path_file[4096] __attribute__((aligned(4096)));    /* its path */
static char path_missing[4096] __attribute__((aligned(4096))); /* DIR/no-such-file */
static char page_end[8192] __attribute__((aligned(4096)));     /* path_missing, near a page end */
static char *path_pageend;
static volatile long sink;

/* libc's own definitions, whatever is preloaded. */
static struct {
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*pread)(int, void *, size_t, off_t);
    off_t (*lseek)(int, off_t, int);
    int (*fstat)(int, struct stat *);
    int (*open)(const char *, int, ...);
    int (*close)(int);
    int (*stat)(const char *, struct stat *);
    int (*openat)(int, const char *, int, ...);
    int (*lstat)(const char *, struct stat *);
    int (*statx)(int, const char *, int, unsigned, struct statx *);
    int (*access)(const char *, int);
    FILE *(*fopen)(const char *, const char *);
    int (*fclose)(FILE *);
} libc;

/* The bodies, instantiated twice: F(name) is either the plain call or libc.name.
 * Each makes n calls (open_close: n pairs) and checks the results cheaply. */
#define BODY_read_devzero_1B(F) \
    char b; \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(read)(fd_zero, &b, 1) != 1; \
    sink += bad;
#define BODY_pread_file_1B(F) \
    char b; \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(pread)(fd_file, &b, 1, 0) != 1; \
    sink += bad;
#define BODY_read_ebadf(F) \
    char b; \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(read)(-1, &b, 1) != -1; \
    sink += bad;
#define BODY_lseek_cur(F) \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(lseek)(fd_file, 0, SEEK_CUR) != 0; \
    sink += bad;
#define BODY_fstat(F) \
    struct stat st; \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(fstat)(fd_file, &st) != 0; \
    sink += bad;
#define BODY_open_close(F) \
    long bad = 0; \
    for (long i = 0; i < n; i++) { \
        int fd = F(open)(path_file, O_RDONLY); \
        bad += fd < 0; \
        bad += F(close)(fd) != 0; \
    } \
    sink += bad;
#define BODY_stat_enoent(F) \
    struct stat st; \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(stat)(path_missing, &st) != -1; \
    sink += bad;

#define BODY_openat_close(F) \
    long bad = 0; \
    for (long i = 0; i < n; i++) { \
        int fd = F(openat)(AT_FDCWD, path_file, O_RDONLY); \
        bad += fd < 0; \
        bad += F(close)(fd) != 0; \
    } \
    sink += bad;
#define BODY_fopen_fclose(F) \
    long bad = 0; \
    for (long i = 0; i < n; i++) { \
        FILE *f = F(fopen)(path_file, "r"); \
        bad += f == NULL; \
        bad += f && F(fclose)(f) != 0; \
    } \
    sink += bad;
#define BODY_access(F) \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(access)(path_file, R_OK) != 0; \
    sink += bad;
#define BODY_lstat_enoent(F) \
    struct stat st; \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(lstat)(path_missing, &st) != -1; \
    sink += bad;
#define BODY_statx_enoent(F) \
    struct statx sx; \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(statx)(AT_FDCWD, path_missing, 0, STATX_BASIC_STATS, &sx) != -1; \
    sink += bad;
#define BODY_stat_pageend_enoent(F) \
    struct stat st; \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(stat)(path_pageend, &st) != -1; \
    sink += bad;
#define BODY_stat_lead_enoent(F) \
    struct stat st; \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(stat)("/benchmnt-not-a-mount/no-such-file", &st) != -1; \
    sink += bad;
#define BODY_stat_rel_enoent(F) \
    struct stat st; \
    long bad = 0; \
    for (long i = 0; i < n; i++) bad += F(stat)("no-such-file", &st) != -1; \
    sink += bad;

#define PLAIN(fn) fn
#define VIA_LIBC(fn) libc.fn
#define DEFINE_LOOPS(name) \
    NOINL void loop_##name(long n) { BODY_##name(PLAIN) } \
    NOINL void direct_loop_##name(long n) { BODY_##name(VIA_LIBC) }

DEFINE_LOOPS(read_devzero_1B)
DEFINE_LOOPS(pread_file_1B)
DEFINE_LOOPS(read_ebadf)
DEFINE_LOOPS(lseek_cur)
DEFINE_LOOPS(fstat)
DEFINE_LOOPS(open_close)
DEFINE_LOOPS(stat_enoent)
DEFINE_LOOPS(openat_close)
DEFINE_LOOPS(fopen_fclose)
DEFINE_LOOPS(access)
DEFINE_LOOPS(lstat_enoent)
DEFINE_LOOPS(statx_enoent)
DEFINE_LOOPS(stat_rel_enoent)
DEFINE_LOOPS(stat_pageend_enoent)
DEFINE_LOOPS(stat_lead_enoent)

struct test {
    const char *name;
    void (*loop)(long);
    void (*direct)(long);
    const char *what;
};

#define T(name, what) {#name, loop_##name, direct_loop_##name, what}
static const struct test tests[] = {
    T(read_devzero_1B, "read(fd, buf, 1) on /dev/zero"),
    T(pread_file_1B, "pread(fd, buf, 1, 0) on a 4 KiB regular file in the page cache"),
    T(read_ebadf, "read(-1, buf, 1): fails with EBADF in the kernel, the cheapest syscall here"),
    T(lseek_cur, "lseek(fd, 0, SEEK_CUR) on the regular file"),
    T(fstat, "fstat(fd) on the regular file"),
    T(open_close, "open(path, O_RDONLY) + close(fd) of the regular file (per pair)"),
    T(stat_enoent, "stat(path) of a missing file in the same directory"),
    T(openat_close, "openat(AT_FDCWD, path, O_RDONLY) + close(fd) of the regular file (per pair)"),
    T(fopen_fclose, "fopen(path, \"r\") + fclose(f) of the regular file (per pair)"),
    T(access, "access(path, R_OK) of the regular file"),
    T(lstat_enoent, "lstat(path) of the missing file"),
    T(statx_enoent, "statx(AT_FDCWD, path, 0, STATX_BASIC_STATS) of the missing file"),
    T(stat_rel_enoent, "stat(\"no-such-file\"): a relative path, the working directory being DIR"),
    T(stat_lead_enoent, "stat(\"/benchmnt-not-a-mount/no-such-file\"): first letters shared with passthrough.sh's mount /benchmnt"),
    T(stat_pageend_enoent, "stat(path) of the missing file, the path ending 16 bytes before the end of a page"),
};
#define NTESTS (int)(sizeof tests / sizeof tests[0])

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double time_batch(void (*loop)(long), long iters)
{
    uint64_t t0 = now_ns();
    loop(iters);
    return (double)(now_ns() - t0) / (double)iters;
}

#define MAX_PAIRS 1000

static void run_timed(const struct test *t, double seconds)
{
    /* Calibrate (this also warms up caches, branch predictors and the PLT). */
    long iters = 64;
    for (;;) {
        uint64_t t0 = now_ns();
        t->loop(iters);
        uint64_t dt = now_ns() - t0;
        if (dt >= 2000000 || iters >= (1L << 30)) break;
        iters *= dt < 200000 ? 8 : 2;
    }
    t->direct(iters / 8 + 1);
    static double plt[MAX_PAIRS], dir[MAX_PAIRS], diff[MAX_PAIRS];
    int np = 0;
    uint64_t start = now_ns(), budget = (uint64_t)(seconds * 1e9);
    while (np < MAX_PAIRS && (np < 5 || now_ns() - start < budget)) {
        if (np % 2) { /* alternate which goes first */
            dir[np] = time_batch(t->direct, iters);
            plt[np] = time_batch(t->loop, iters);
        } else {
            plt[np] = time_batch(t->loop, iters);
            dir[np] = time_batch(t->direct, iters);
        }
        diff[np] = plt[np] - dir[np];
        np++;
    }
    double d = median(diff, np), mp = median(plt, np), md = median(dir, np);
    printf("%s ns_per_call=%.2f direct_ns=%.2f pair_delta=%.2f min=%.2f batches=%d iters=%ld\n", t->name, mp, md, d,
           plt[0], np, iters);
    fflush(stdout);
}

static void die(const char *what)
{
    fprintf(stderr, "passthrough: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void usage(void)
{
    fprintf(stderr, "usage: passthrough [-t SECONDS] [-s SHIM_PATH] [-n CALLS -o TEST|all] DIR | -l\n");
    exit(2);
}

static void *libc_sym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "passthrough: dlsym(libc.so.6, %s): %s\n", name, dlerror());
        exit(2);
    }
    return p;
}

int main(int argc, char **argv)
{
    double seconds = 0.3;
    long count = 0;
    const char *only = NULL, *shim_path = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "t:s:n:o:l")) != -1) {
        switch (opt) {
        case 't': seconds = atof(optarg); break;
        case 's': shim_path = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'o': only = optarg; break;
        case 'l':
            for (int i = 0; i < NTESTS; i++) printf("%s\t%s\n", tests[i].name, tests[i].what);
            return 0;
        default: usage();
        }
    }
    if (optind != argc - 1 || (count > 0) != (only != NULL)) usage();
    const char *dir = argv[optind];

    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (!h) {
        fprintf(stderr, "passthrough: dlopen(libc.so.6): %s\n", dlerror());
        return 2;
    }
    libc.read = libc_sym(h, "read");
    libc.pread = libc_sym(h, "pread");
    libc.lseek = libc_sym(h, "lseek");
    libc.fstat = libc_sym(h, "fstat");
    libc.open = libc_sym(h, "open");
    libc.close = libc_sym(h, "close");
    libc.stat = libc_sym(h, "stat");
    libc.openat = libc_sym(h, "openat");
    libc.lstat = libc_sym(h, "lstat");
    libc.statx = libc_sym(h, "statx");
    libc.access = libc_sym(h, "access");
    libc.fopen = libc_sym(h, "fopen");
    libc.fclose = libc_sym(h, "fclose");

    snprintf(path_file, sizeof path_file, "%s/held.bin", dir);
    snprintf(path_missing, sizeof path_missing, "%s/no-such-file", dir);
    size_t ml = strlen(path_missing);
    if (ml + 17 > 4096) die("DIR is too long");
    path_pageend = page_end + 4096 - 17 - ml;
    memcpy(path_pageend, path_missing, ml + 1);
    int w = open(path_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (w < 0) die(path_file);
    char block[4096];
    memset(block, 'x', sizeof block);
    if (write(w, block, sizeof block) != (ssize_t)sizeof block) die("write");
    close(w);
    if ((fd_file = open(path_file, O_RDONLY)) < 0) die(path_file);
    if ((fd_zero = open("/dev/zero", O_RDONLY)) < 0) die("/dev/zero");
    char b;
    if (pread(fd_file, &b, 1, 0) != 1) die("pread"); /* now it is in the page cache */

    int shim_fd = shim_path ? open(shim_path, O_RDONLY) : -1;
    if (chdir(dir) != 0) die(dir); /* for the relative path of stat_rel_enoent */

    if (only) {
        /* Each selected loop runs N calls, then 2N: the difference is exactly N calls,
         * free of one-time costs (lazy PLT binding, first-touch page faults). */
        int found = 0;
        for (int i = 0; i < NTESTS; i++) {
            if (strcmp(only, "all") != 0 && strcmp(tests[i].name, only) != 0) continue;
            found = 1;
            tests[i].loop(count);
            tests[i].loop(2 * count);
        }
        if (!found) {
            fprintf(stderr, "passthrough: no test '%s' (-l lists them)\n", only);
            return 2;
        }
        printf("# shim_fd=%d\n", shim_fd);
        return sink != 0;
    }

    printf("# shim_fd=%d%s%s\n", shim_fd, shim_path ? " path=" : "", shim_path ? shim_path : "");
    printf("# preload=%s\n", getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
    for (int i = 0; i < NTESTS; i++) run_timed(&tests[i], seconds);
    if (sink) {
        fprintf(stderr, "passthrough: %ld calls returned an unexpected result\n", (long)sink);
        return 1;
    }
    return 0;
}
