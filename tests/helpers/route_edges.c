/* route_edges.c - the shim's pass-through test against the paths that must not pass.
 *
 * Run under the shim with a mount MP (a prefix that does not exist on disk) whose
 * backend holds NAME, and a real file REALFILE outside every mount:
 *
 *   route_edges MP NAME SIZE REALFILE [MP2...]
 *
 * The shim lets a path go to libc untouched when its first byte after '/' cannot start a
 * mount prefix and it has no ".."; the scan for ".." reads whole vector blocks, so the
 * cases are placed at every offset around 32-byte blocks and at the very end of a page
 * followed by an inaccessible page (a read past it would crash), and starting at every
 * offset of a page's last bytes. Each path is tried with
 * stat, lstat, open, openat, access, statx and fopen: a path that climbs into the mount
 * must find NAME there (SIZE bytes); a real path must find the real file; NULL must fail
 * with EFAULT as libc's does. Then the first-component compare (a path whose second byte
 * is a mount's first letter) for MP and each MP2 (other mount prefixes whose backend also
 * holds NAME): the mount's first component itself, one byte longer or shorter, changed,
 * followed by "-x", ".d", non-ASCII bytes, "//", "/./", a ".." that climbs back, bytes
 * after a NUL that would complete it, each at a page end and at every offset of a page's
 * last bytes; each must get what the same path with a second '/' in front gets (that one
 * always takes the routed path). Prints one line per failure and "checked N" at the end;
 * exit status 1 if anything failed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static long checked, failed;
static long want_size;
static ino_t real_ino;

static void bad(const char *call, const char *path, const char *what)
{
    failed++;
    if (failed <= 40) printf("FAIL %s(\"%s\"): %s\n", call, path, what);
}

/* ours: the path names NAME in the mount; otherwise the real file. */
static void probe(const char *path, int ours)
{
    struct stat st;
    char what[128];
    int r;
#define EXPECT_STAT(call, expr) \
    do { \
        checked++; \
        r = (expr); \
        if (r != 0) { \
            snprintf(what, sizeof what, "rc %d errno %d", r, errno); \
            bad(call, path, what); \
        } else if (ours ? st.st_size != want_size : st.st_ino != real_ino) { \
            snprintf(what, sizeof what, "size %lld ino %llu: not the %s file", (long long)st.st_size, \
                     (unsigned long long)st.st_ino, ours ? "mount's" : "real"); \
            bad(call, path, what); \
        } \
    } while (0)
    EXPECT_STAT("stat", stat(path, &st));
    EXPECT_STAT("lstat", lstat(path, &st));
    EXPECT_STAT("fstatat", fstatat(AT_FDCWD, path, &st, 0));
    int fd = open(path, O_RDONLY);
    EXPECT_STAT("open+fstat", fd < 0 ? -1 : fstat(fd, &st));
    if (fd >= 0) close(fd);
    fd = openat(AT_FDCWD, path, O_RDONLY);
    EXPECT_STAT("openat+fstat", fd < 0 ? -1 : fstat(fd, &st));
    if (fd >= 0) close(fd);
    FILE *f = fopen(path, "r");
    EXPECT_STAT("fopen+fstat", f ? fstat(fileno(f), &st) : -1);
    if (f) fclose(f);
    struct statx sx;
    checked++;
    if ((r = statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &sx)) != 0)
        bad("statx", path, "failed");
    else if (ours ? (long long)sx.stx_size != want_size : sx.stx_ino != real_ino)
        bad("statx", path, "not the expected file");
    checked++;
    if (access(path, R_OK) != 0) bad("access", path, "failed");
}

/* A path that is not under the mount, whatever it shares with its prefix: the shim's
 * stat must say what the kernel says (a raw system call, which no wrapper sees). */
static void same_as_kernel(const char *path)
{
    struct stat a, b;
    errno = 0;
    int ra = stat(path, &a), ea = errno;
    errno = 0;
    int rb = (int)syscall(SYS_newfstatat, AT_FDCWD, path, &b, 0), eb = errno;
    checked++;
    if (ra != rb || (ra != 0 && ea != eb) || (ra == 0 && (a.st_ino != b.st_ino || a.st_dev != b.st_dev))) {
        char what[96];
        snprintf(what, sizeof what, "shim rc %d errno %d, kernel rc %d errno %d", ra, ea, rb, eb);
        bad("stat", path, what);
    }
}

/* stat (and access) of path must answer what they answer for "/" + path, which always
 * takes the routed path (its second byte is '/'): the fast path's first-component
 * compare against the routed path's. */
static void same_as_routed(const char *path)
{
    static char alt[8192];
    struct stat a, b;
    alt[0] = '/';
    snprintf(alt + 1, sizeof alt - 1, "%s", path);
    errno = 0;
    int ra = stat(path, &a), ea = errno;
    errno = 0;
    int rb = stat(alt, &b), eb = errno;
    checked++;
    if (ra != rb || (ra != 0 && ea != eb) ||
        (ra == 0 && (a.st_ino != b.st_ino || a.st_dev != b.st_dev || a.st_mode != b.st_mode || a.st_size != b.st_size))) {
        char what[96];
        snprintf(what, sizeof what, "rc %d errno %d, but \"/%.20s...\": rc %d errno %d", ra, ea, path, rb, eb);
        bad("stat", path, what);
    }
    errno = 0;
    ra = access(path, F_OK), ea = errno;
    errno = 0;
    rb = access(alt, F_OK), eb = errno;
    checked++;
    if (ra != rb || (ra != 0 && ea != eb)) bad("access", path, "not what the routed path answers");
}

/* A copy of s whose terminating NUL is the last byte before an inaccessible page. */
static char *at_page_end(const char *s, char *two_pages, long page)
{
    size_t n = strlen(s) + 1;
    char *p = two_pages + page - n;
    memcpy(p, s, n);
    return p;
}

/* The first-component battery for the mount prefix mp (see the header). */
static void first_component(const char *mp, const char *name, char *two, long page)
{
    const char *slash = strchr(mp + 1, '/');
    int fl = slash ? (int)(slash - (mp + 1)) : (int)strlen(mp + 1); /* first component's length */
    const char *f = mp + 1, *rest = slash ? slash : "";             /* rest: "" or "/m" */
    char v[64][512];
    int nv = 0;
#define V(...) snprintf(v[nv++], sizeof v[0], __VA_ARGS__)
    V("/%.*s", fl, f);                       /* the first component itself */
    V("/%.*s/", fl, f);
    V("%s", mp);
    V("%s/%s", mp, name);                    /* ours */
    V("/%.*s//%s/%s", fl, f, rest[0] ? rest + 1 : ".", name);
    V("/%.*s/.%s/%s", fl, f, rest, name);
    V("/%.*s/../%.*s%s/%s", fl, f, fl, f, rest, name);   /* a ".." that climbs back */
    V("/%.*sx/../%.*s%s/%s", fl, f, fl, f, rest, name);  /* one longer, then climbs in */
    V("/%.*sx", fl, f);                      /* one byte longer */
    V("/%.*sx%s/%s", fl, f, rest, name);
    V("/%.*s", fl - 1, f);                   /* one byte shorter */
    V("/%.*s%s/%s", fl - 1, f, rest, name);
    V("/%.*s-x%s/%s", fl, f, rest, name);
    V("/%.*s.d", fl, f);
    V("/%.*s\xc3\xa9%s", fl, f, rest);
    V("/%.*s\xff", fl, f);
    V("/%.*s%c%s/%s", fl - 1, f, f[fl - 1] ^ 1, rest, name); /* last byte changed */
    V("/%c%.*s%s/%s", f[0], fl - 1, f + 1, rest, name);     /* (the same as ours: a control) */
    if (fl > 1) V("/%c%.*s%s/%s", f[0], fl - 2, f + 2, rest, name); /* a byte dropped inside */
#undef V
    for (int i = 0; i < nv; i++) {
        size_t n = strlen(v[i]) + 1;
        same_as_routed(v[i]);
        same_as_routed(at_page_end(v[i], two, page));
        for (size_t o = n; o <= n + 100; o++) { /* every start in a page's last bytes */
            memcpy(two + page - o, v[i], n);
            same_as_routed(two + page - o);
        }
    }
    /* ours, as the other calls see it */
    char path[600];
    snprintf(path, sizeof path, "%s/%s", mp, name);
    probe(path, 1);
    probe(at_page_end(path, two, page), 1);
    /* "/" + the component but its last byte, a NUL where that byte was, then "/": the
     * bytes after the NUL complete the compare's pattern (foreign all the same) */
    static char buf[1024] __attribute__((aligned(64)));
    snprintf(buf, sizeof buf, "/%.*s/", fl, f);
    buf[fl] = '\0';
    same_as_routed(buf);
    memcpy(two + page - 64, buf, (size_t)fl + 2);
    same_as_routed(two + page - 64);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: route_edges MP NAME SIZE REALFILE [MP2...]\n");
        return 2;
    }
    const char *mp = argv[1], *name = argv[2], *realfile = argv[4];
    want_size = atol(argv[3]);
    struct stat rst;
    if (stat(realfile, &rst) != 0 || realfile[0] != '/') {
        fprintf(stderr, "route_edges: %s: need an absolute path of a real file\n", realfile);
        return 2;
    }
    real_ino = rst.st_ino;
    long page = sysconf(_SC_PAGESIZE);
    char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (two == MAP_FAILED || mprotect(two + page, page, PROT_NONE) != 0) {
        perror("route_edges: mmap");
        return 2;
    }
    static char buf[8192] __attribute__((aligned(64)));
    char path[4096], pad[200], dirpart[2048];

    /* 1. "/" + k x's + "/.." + MP + "/" + NAME: the ".." at every offset from 2 to 150,
     * across 32- and 64-byte blocks; then each of those at every shift 0..63 of an
     * aligned buffer and ending at a page end. */
    for (int k = 1; k <= 150; k++) {
        memset(pad, 'x', (size_t)k);
        pad[k] = '\0';
        snprintf(path, sizeof path, "/%s/..%s/%s", pad, mp, name);
        probe(path, 1);
        if (k % 7 == 0)
            for (int shift = 0; shift < 64; shift++) {
                memcpy(buf + shift, path, strlen(path) + 1);
                probe(buf + shift, 1);
            }
        probe(at_page_end(path, two, page), 1);
        /* the same with the ".." as the very last component: the parent of MP... */
        snprintf(path, sizeof path, "/%s/..%s/%s/../%s", pad, mp, name, name);
        probe(at_page_end(path, two, page), 1);
    }
    /* 1b. The same strings across a page boundary (two accessible pages, then an
     * inaccessible one), the boundary at every position of the string: the pair of dots
     * split by it, the string continuing into the next page. */
    char *three = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (three == MAP_FAILED || mprotect(three + 2 * page, page, PROT_NONE) != 0) {
        perror("route_edges: mmap");
        return 2;
    }
    for (int k = 1; k <= 70; k += 3) {
        memset(pad, 'x', (size_t)k);
        pad[k] = '\0';
        snprintf(path, sizeof path, "/%s/..%s/%s", pad, mp, name);
        size_t n = strlen(path) + 1;
        for (size_t o = 1; o < n; o++) {
            memset(three + page - 80, 'y', 80); /* no stray dots before the string */
            memcpy(three + page - o, path, n);
            probe(three + page - o, 1);
        }
    }
    for (size_t o = 1; o <= strlen(realfile); o++) {
        memcpy(three + page - o, realfile, strlen(realfile) + 1);
        probe(three + page - o, 0);
    }
    /* 1c. Strings that start in the last 140 bytes of a page followed by an inaccessible
     * one, at every offset, their NUL anywhere before the page end: the fast path reads
     * 65 bytes from the start when they stay in the page, and goes another way when not.
     * A climb into the mount, and the real file (foreign). */
    for (int k = 1; k <= 40; k += 13) {
        memset(pad, 'x', (size_t)k);
        pad[k] = '\0';
        snprintf(path, sizeof path, "/%s/..%s/%s", pad, mp, name);
        size_t n = strlen(path) + 1;
        for (size_t o = n; o <= n + 140; o++) {
            memcpy(two + page - o, path, n);
            probe(two + page - o, 1);
        }
    }
    for (size_t o = strlen(realfile) + 1; o <= strlen(realfile) + 141; o++) {
        memcpy(two + page - o, realfile, strlen(realfile) + 1);
        probe(two + page - o, 0);
    }
    /* 1d. Foreign paths of 33 to 103 bytes with no "..", starting at every offset of a
     * page's last 150 bytes before an inaccessible one: the steps that end at the page
     * end must not read past it (whatever REALFILE's length). */
    for (int len = 33; len <= 103; len += 5) {
        char s[128];
        memset(s, 'y', sizeof s);
        memcpy(s, "/no-such-dir/", 13);
        s[len] = '\0';
        for (int o = len + 1; o <= len + 150; o++) {
            memcpy(two + page - o, s, (size_t)len + 1);
            same_as_kernel(two + page - o);
        }
    }
    /* 2. The real file (its name has dots, none a ".."), at many offsets and at a page end. */
    const char *rdir = strrchr(realfile, '/');
    snprintf(dirpart, sizeof dirpart, "%.*s", (int)(rdir - realfile), realfile);
    for (int shift = 0; shift < 64; shift += 5) {
        memcpy(buf + shift, realfile, strlen(realfile) + 1);
        probe(buf + shift, 0);
    }
    probe(at_page_end(realfile, two, page), 0);
    /* through "/./": routed, normalised, still the real file */
    snprintf(path, sizeof path, "%s/./%s", dirpart, rdir + 1);
    probe(path, 0);
    probe(at_page_end(path, two, page), 0);
    /* 3. "//", "/./" and "/../" in front of the mount prefix: ours. */
    snprintf(path, sizeof path, "/%s/%s", mp, name);
    probe(path, 1);
    probe(at_page_end(path, two, page), 1);
    snprintf(path, sizeof path, "/.%s/%s", mp, name);
    probe(path, 1);
    snprintf(path, sizeof path, "/..%s/%s", mp, name);
    probe(path, 1);
    snprintf(path, sizeof path, "%s//./%s", mp, name);
    probe(path, 1);
    /* 3b. Paths that share a first letter, or a first component, with the mount prefix
     * but are not under it (the first-component filter), and system directories. */
    const char *sys_paths[] = {"/sys", "/sys/kernel", "/srv", "/sbin", "/s", "/tmp", "/proc/self", "//tmp", "/./tmp"};
    for (size_t i = 0; i < sizeof sys_paths / sizeof sys_paths[0]; i++) same_as_kernel(sys_paths[i]);
    const char *slash = strchr(mp + 1, '/');
    int first_len = slash ? (int)(slash - mp) : (int)strlen(mp);
    snprintf(path, sizeof path, "%.*sx", first_len, mp); /* "/s3shim-test-PIDx" */
    same_as_kernel(path);
    snprintf(path, sizeof path, "%.*s", first_len - 1, mp); /* "/s3shim-test-PI" */
    same_as_kernel(path);
    if (slash) {
        snprintf(path, sizeof path, "%.*s/other", first_len, mp); /* beside the mount */
        same_as_kernel(path);
    }
    /* 3c. The first-component compare, for MP and each MP2. */
    for (int i = 4; i < argc; i++) first_component(i == 4 ? mp : argv[i], name, two, page);
    /* 4. Relative paths from a real working directory far from the mount. */
    if (chdir(dirpart) != 0) {
        perror("route_edges: chdir");
        return 2;
    }
    probe(rdir + 1, 0);
    snprintf(path, sizeof path, "./%s", rdir + 1);
    probe(path, 0);
    /* ... at every offset of the last 100 bytes of a page, and longer than a vector round */
    for (size_t o = strlen(path) + 1; o <= strlen(path) + 100; o++) {
        memcpy(two + page - o, path, strlen(path) + 1);
        probe(two + page - o, 0);
    }
    snprintf(path, sizeof path, ".////////////////////////////////////////////////////////////////////////%s", rdir + 1);
    probe(path, 0);
    int depth = 0;
    for (const char *s = dirpart; *s; s++) depth += *s == '/';
    path[0] = '\0';
    for (int i = 0; i < depth; i++) strcat(path, "../");
    snprintf(path + strlen(path), sizeof path - strlen(path), "%s/%s", mp + 1, name);
    probe(path, 1);
    probe(at_page_end(path, two, page), 1);
    for (size_t o = strlen(path) + 1; o <= strlen(path) + 100; o += 3) {
        memcpy(two + page - o, path, strlen(path) + 1);
        probe(two + page - o, 1);
    }
    snprintf(path, sizeof path, "x/..");
    for (int i = 0; i < depth; i++) strcat(path, "/..");
    snprintf(path + strlen(path), sizeof path - strlen(path), "%s/%s", mp, name);
    probe(path, 1);
    /* 5. NULL: EFAULT, as libc answers. */
    struct stat st;
    const char *volatile nul = NULL; /* hidden from the compiler's nonnull checks */
    checked += 5;
    errno = 0;
    if (stat(nul, &st) != -1 || errno != EFAULT) bad("stat", "(null)", "not EFAULT");
    errno = 0;
    if (lstat(nul, &st) != -1 || errno != EFAULT) bad("lstat", "(null)", "not EFAULT");
    errno = 0;
    if (open(nul, O_RDONLY) != -1 || errno != EFAULT) bad("open", "(null)", "not EFAULT");
    errno = 0;
    if (access(nul, F_OK) != -1 || errno != EFAULT) bad("access", "(null)", "not EFAULT");
    errno = 0;
    if (openat(AT_FDCWD, nul, O_RDONLY) != -1 || errno != EFAULT) bad("openat", "(null)", "not EFAULT");
    printf("checked %ld, failed %ld\n", checked, failed);
    return failed != 0;
}
