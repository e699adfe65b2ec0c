/* test_backend_file.c - the file:// backend (core/backend_file.c) through its vtable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tmpdir.h"

#include "../../core/local/local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct backend_ops *const B = &bk_file_ops;

struct fx {
    char top[512];     /* the test's temporary directory */
    char root[600];    /* top/root: the mounted directory */
    char outside[600]; /* top/outside: must stay unreachable */
    void *ms;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    umask(022);
    if (tmpdir_make(f->top, sizeof f->top) < 0) return -1;
    snprintf(f->root, sizeof f->root, "%s/root", f->top);
    snprintf(f->outside, sizeof f->outside, "%s/outside", f->top);
    if (mkdir(f->root, 0755) || mkdir(f->outside, 0755)) return -1;
    char err[256] = "";
    int r = B->mount(f->root, NULL, NULL, &f->ms, err, sizeof err);
    if (r < 0) {
        print_error("mount %s: %s\n", f->root, err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    B->unmount(f->ms);
    int r = tmpdir_remove(f->top);
    free(f);
    return r;
}

/* Write a real file (outside the backend) with the given content. */
static void put_real(const char *dir, const char *name, const char *content)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), strlen(content));
    close(fd);
}

static void get_real(const char *dir, const char *name, char *buf, size_t len)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, len - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
}

static void bk_put(struct fx *f, const char *key, const char *content)
{
    void *fh = NULL;
    assert_int_equal(B->open(f->ms, key, O_CREAT | O_WRONLY | O_TRUNC, 0644, &fh), 0);
    assert_int_equal(B->pwrite(fh, content, strlen(content), 0), strlen(content));
    assert_int_equal(B->close(fh), 0);
}

static void test_write_read_back(void **state)
{
    struct fx *f = *state;
    void *fh = NULL;
    assert_int_equal(B->open(f->ms, "wr", O_CREAT | O_RDWR | O_EXCL, 0640, &fh), 0);
    assert_non_null(fh);
    assert_int_equal(B->pwrite(fh, "hello", 5, 0), 5);
    assert_int_equal(B->pwrite(fh, "world", 5, 5), 5);
    assert_int_equal(B->pwrite(fh, "!", 1, 20), 1); /* leaves a hole */
    char buf[64] = {0};
    assert_int_equal(B->pread(fh, buf, sizeof buf, 0), 21);
    assert_memory_equal(buf, "helloworld\0\0\0\0\0\0\0\0\0\0!", 21);
    assert_int_equal(B->pread(fh, buf, 3, 2), 3);
    assert_memory_equal(buf, "llo", 3);
    assert_int_equal(B->pread(fh, buf, sizeof buf, 100), 0); /* EOF */
    struct stat st;
    assert_int_equal(B->fstat(fh, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 21);
    assert_int_equal(st.st_mode & 0777, 0640); /* umask 022 (setup) clears none of 0640 */
    assert_int_equal(B->fsync(fh, 0), 0);
    assert_int_equal(B->fsync(fh, 1), 0);
    /* The kernel descriptor behind it is the same file. */
    int lfd = B->local_fd(fh);
    assert_true(lfd >= 0);
    struct stat lst;
    assert_int_equal(fstat(lfd, &lst), 0);
    assert_int_equal(lst.st_ino, st.st_ino);
    assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(B->ftruncate(fh, 4), 0);
    assert_int_equal(B->fstat(fh, &st), 0);
    assert_int_equal(st.st_size, 4);
    assert_int_equal(B->close(fh), 0);

    /* It is a real file in the mounted directory. */
    get_real(f->root, "wr", buf, sizeof buf);
    assert_string_equal(buf, "hell");

    /* Re-open read-only and read it back; writing to it fails. */
    assert_int_equal(B->open(f->ms, "wr", O_RDONLY, 0, &fh), 0);
    assert_int_equal(B->pread(fh, buf, sizeof buf, 0), 4);
    assert_int_equal(B->pwrite(fh, "x", 1, 0), -EBADF);
    assert_int_equal(B->close(fh), 0);

    /* A file created outside the backend is visible through it. */
    put_real(f->root, "ext", "external");
    assert_int_equal(B->open(f->ms, "ext", O_RDONLY, 0, &fh), 0);
    memset(buf, 0, sizeof buf);
    assert_int_equal(B->pread(fh, buf, sizeof buf, 0), 8);
    assert_string_equal(buf, "external");
    assert_int_equal(B->close(fh), 0);

    assert_int_equal(B->unlink(f->ms, "wr"), 0);
    assert_int_equal(B->unlink(f->ms, "ext"), 0);
}

static void test_excl(void **state)
{
    struct fx *f = *state;
    void *fh = NULL;
    bk_put(f, "ex", "x");
    assert_int_equal(B->open(f->ms, "ex", O_CREAT | O_EXCL | O_WRONLY, 0644, &fh), -EEXIST);
    assert_int_equal(B->open(f->ms, "ex", O_CREAT | O_WRONLY, 0644, &fh), 0); /* without O_EXCL: fine */
    assert_int_equal(B->close(fh), 0);
    assert_int_equal(B->unlink(f->ms, "ex"), 0);
    assert_int_equal(B->open(f->ms, "ex", O_CREAT | O_EXCL | O_WRONLY, 0644, &fh), 0);
    assert_int_equal(B->close(fh), 0);
    assert_int_equal(B->unlink(f->ms, "ex"), 0);
}

static void test_enoent(void **state)
{
    struct fx *f = *state;
    void *fh = NULL;
    struct stat st;
    assert_int_equal(B->open(f->ms, "missing", O_RDONLY, 0, &fh), -ENOENT);
    assert_int_equal(B->open(f->ms, "no/such/dir/file", O_CREAT | O_WRONLY, 0644, &fh), -ENOENT);
    assert_int_equal(B->stat(f->ms, "missing", &st, 0), -ENOENT);
    assert_int_equal(B->stat(f->ms, "missing", &st, 1), -ENOENT);
    assert_int_equal(B->unlink(f->ms, "missing"), -ENOENT);
    assert_int_equal(B->rmdir(f->ms, "missing"), -ENOENT);
    assert_int_equal(B->rename(f->ms, "missing", "other", 0), -ENOENT);
    assert_int_equal(B->truncate(f->ms, "missing", 0), -ENOENT);
    assert_int_equal(B->access(f->ms, "missing", F_OK, 0), -ENOENT);
    void *dh = NULL;
    assert_int_equal(B->opendir(f->ms, "missing", &dh), -ENOENT);
}

static void test_eisdir(void **state)
{
    struct fx *f = *state;
    void *fh = NULL;
    assert_int_equal(B->mkdir(f->ms, "adir", 0755), 0);
    assert_int_equal(B->open(f->ms, "adir", O_RDONLY, 0, &fh), -EISDIR);
    assert_int_equal(B->open(f->ms, "adir", O_RDWR, 0, &fh), -EISDIR);
    assert_int_equal(B->open(f->ms, "adir", O_WRONLY | O_CREAT, 0644, &fh), -EISDIR);
    /* The mount root too. */
    assert_int_equal(B->open(f->ms, "", O_RDONLY, 0, &fh), -EISDIR);
    /* Asking for a directory is allowed. */
    assert_int_equal(B->open(f->ms, "adir", O_RDONLY | O_DIRECTORY, 0, &fh), 0);
    assert_int_equal(B->close(fh), 0);
    /* ...and a file is not a directory. */
    bk_put(f, "afile", "x");
    assert_int_equal(B->open(f->ms, "afile", O_RDONLY | O_DIRECTORY, 0, &fh), -ENOTDIR);
    assert_int_equal(B->open(f->ms, "afile/below", O_RDONLY, 0, &fh), -ENOTDIR);
    assert_int_equal(B->unlink(f->ms, "adir"), -EISDIR);
    assert_int_equal(B->rmdir(f->ms, "adir"), 0);
    assert_int_equal(B->unlink(f->ms, "afile"), 0);
}

static void test_stat(void **state)
{
    struct fx *f = *state;
    struct stat st;
    assert_int_equal(B->stat(f->ms, "", &st, 0), 0);
    assert_true(S_ISDIR(st.st_mode));
    struct stat real;
    assert_int_equal(stat(f->root, &real), 0);
    assert_int_equal(st.st_ino, real.st_ino);

    bk_put(f, "st", "12345");
    assert_int_equal(B->stat(f->ms, "st", &st, 0), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 5);
    assert_int_equal(B->access(f->ms, "st", R_OK | W_OK, 0), 0);
    assert_int_equal(B->access(f->ms, "", F_OK, 0), 0);

    char lp[1024];
    assert_true(symlink("st", (snprintf(lp, sizeof lp, "%s/st-link", f->root), lp)) == 0);
    assert_int_equal(B->stat(f->ms, "st-link", &st, 1), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(B->stat(f->ms, "st-link", &st, 0), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 5);

    struct statvfs sv;
    assert_int_equal(B->statvfs(f->ms, "", &sv), 0);
    assert_true(sv.f_bsize > 0);

    assert_int_equal(B->truncate(f->ms, "st", 2), 0);
    assert_int_equal(B->stat(f->ms, "st", &st, 0), 0);
    assert_int_equal(st.st_size, 2);

    struct timespec ts[2] = {{.tv_sec = 1000000000, .tv_nsec = 0}, {.tv_sec = 1234567890, .tv_nsec = 0}};
    assert_int_equal(B->utimens(f->ms, "st", ts, 0), 0);
    assert_int_equal(B->stat(f->ms, "st", &st, 0), 0);
    assert_int_equal(st.st_mtim.tv_sec, 1234567890);

    assert_int_equal(B->unlink(f->ms, "st-link"), 0);
    assert_int_equal(B->stat(f->ms, "st", &st, 0), 0); /* unlinking a link leaves its target */
    assert_int_equal(B->unlink(f->ms, "st"), 0);
}

static int collect(void *ms, const char *key, char names[][256], unsigned char *types, int max)
{
    void *dh = NULL;
    int r = B->opendir(ms, key, &dh);
    if (r < 0) return r;
    struct bk_dirent ent;
    int n = 0;
    while ((r = B->readdir(dh, &ent)) == 1) {
        if (strcmp(ent.name, ".") == 0 || strcmp(ent.name, "..") == 0) continue;
        assert_true(n < max);
        snprintf(names[n], 256, "%s", ent.name);
        types[n] = ent.type;
        assert_true(ent.ino != 0);
        n++;
    }
    assert_int_equal(r, 0);
    assert_int_equal(B->readdir(dh, &ent), 0); /* stays at the end */
    B->closedir(dh);
    return n;
}

static int find_name(char names[][256], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

static void test_readdir(void **state)
{
    struct fx *f = *state;
    assert_int_equal(B->mkdir(f->ms, "ls", 0755), 0);
    bk_put(f, "ls/x", "1");
    bk_put(f, "ls/y", "22");
    assert_int_equal(B->mkdir(f->ms, "ls/sub", 0755), 0);
    bk_put(f, "ls/sub/deep", "3");

    char names[16][256];
    unsigned char types[16];
    int n = collect(f->ms, "ls", names, types, 16);
    assert_int_equal(n, 3);
    int ix = find_name(names, n, "x"), iy = find_name(names, n, "y"), isub = find_name(names, n, "sub");
    assert_true(ix >= 0 && iy >= 0 && isub >= 0);
    assert_true(types[isub] == DT_DIR || types[isub] == DT_UNKNOWN);
    assert_true(types[ix] == DT_REG || types[ix] == DT_UNKNOWN);

    n = collect(f->ms, "ls/sub", names, types, 16);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "deep");

    /* The mount root lists too. */
    n = collect(f->ms, "", names, types, 16);
    assert_true(find_name(names, n, "ls") >= 0);

    /* An empty directory lists nothing. */
    assert_int_equal(B->mkdir(f->ms, "ls/empty", 0755), 0);
    assert_int_equal(collect(f->ms, "ls/empty", names, types, 16), 0);

    void *dh = NULL;
    assert_int_equal(B->opendir(f->ms, "ls/x", &dh), -ENOTDIR);

    /* rmdir: non-empty, a file, the root. */
    assert_int_equal(B->rmdir(f->ms, "ls"), -ENOTEMPTY);
    assert_int_equal(B->rmdir(f->ms, "ls/x"), -ENOTDIR);
    assert_int_equal(B->rmdir(f->ms, ""), -EBUSY);
    assert_int_equal(B->rmdir(f->ms, "ls/empty"), 0);
    assert_int_equal(B->unlink(f->ms, "ls/sub/deep"), 0);
    assert_int_equal(B->rmdir(f->ms, "ls/sub"), 0);
    assert_int_equal(B->unlink(f->ms, "ls/x"), 0);
    assert_int_equal(B->unlink(f->ms, "ls/y"), 0);
    assert_int_equal(B->rmdir(f->ms, "ls"), 0);
}

static void test_mkdir_rmdir(void **state)
{
    struct fx *f = *state;
    struct stat st;
    assert_int_equal(B->mkdir(f->ms, "md", 0750), 0);
    assert_int_equal(B->stat(f->ms, "md", &st, 0), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(B->mkdir(f->ms, "md", 0750), -EEXIST);
    assert_int_equal(B->mkdir(f->ms, "md/a/b", 0750), -ENOENT);
    assert_int_equal(B->mkdir(f->ms, "md/a", 0750), 0);
    assert_int_equal(B->mkdir(f->ms, "", 0750), -EEXIST);
    assert_int_equal(B->rmdir(f->ms, "md/a"), 0);
    assert_int_equal(B->rmdir(f->ms, "md"), 0);
    assert_int_equal(B->stat(f->ms, "md", &st, 0), -ENOENT);
    assert_int_equal(B->rmdir(f->ms, "md"), -ENOENT);
}

static void test_rename(void **state)
{
    struct fx *f = *state;
    struct stat st;
    bk_put(f, "r1", "one");
    bk_put(f, "r2", "two");
    assert_int_equal(B->rename(f->ms, "r1", "r3", 0), 0);
    assert_int_equal(B->stat(f->ms, "r1", &st, 0), -ENOENT);
    assert_int_equal(B->stat(f->ms, "r3", &st, 0), 0);
    assert_int_equal(st.st_size, 3);
    /* RENAME_NOREPLACE refuses to overwrite; plain rename replaces. */
    assert_int_equal(B->rename(f->ms, "r3", "r2", RENAME_NOREPLACE), -EEXIST);
    assert_int_equal(B->rename(f->ms, "r3", "r2", 0), 0);
    char buf[16];
    get_real(f->root, "r2", buf, sizeof buf);
    assert_string_equal(buf, "one");
    /* Into a subdirectory and back. */
    assert_int_equal(B->mkdir(f->ms, "rd", 0755), 0);
    assert_int_equal(B->rename(f->ms, "r2", "rd/r2", 0), 0);
    assert_int_equal(B->stat(f->ms, "rd/r2", &st, 0), 0);
    assert_int_equal(B->rename(f->ms, "rd", "rd2", 0), 0);
    assert_int_equal(B->stat(f->ms, "rd2/r2", &st, 0), 0);
    assert_int_equal(B->unlink(f->ms, "rd2/r2"), 0);
    assert_int_equal(B->rmdir(f->ms, "rd2"), 0);
}

static void test_local_path(void **state)
{
    struct fx *f = *state;
    char buf[1024], want[1100];
    assert_int_equal(B->local_path(f->ms, "", buf, sizeof buf), strlen(f->root));
    assert_string_equal(buf, f->root);
    snprintf(want, sizeof want, "%s/a/b", f->root);
    assert_int_equal(B->local_path(f->ms, "a/b", buf, sizeof buf), strlen(want));
    assert_string_equal(buf, want);
    assert_int_equal(B->local_path(f->ms, "a/b", buf, 8), -ENAMETOOLONG);
    assert_int_equal(B->local_path(f->ms, "a/b", buf, strlen(want)), -ENAMETOOLONG);
    assert_int_equal(B->local_path(f->ms, "a/b", buf, strlen(want) + 1), strlen(want));
}

/* A symlink inside the mounted directory must not lead an open outside it. */
static void test_symlink_escape(void **state)
{
    struct fx *f = *state;
    put_real(f->outside, "secret", "top secret");
    char link[1024], target[1024];
    void *fh = NULL;

    /* Absolute symlink to a file outside. */
    snprintf(link, sizeof link, "%s/evil-abs", f->root);
    snprintf(target, sizeof target, "%s/secret", f->outside);
    assert_int_equal(symlink(target, link), 0);
    /* Relative symlink climbing out. */
    snprintf(link, sizeof link, "%s/evil-rel", f->root);
    assert_int_equal(symlink("../outside/secret", link), 0);
    /* Symlinked directory pointing outside. */
    snprintf(link, sizeof link, "%s/evil-dir", f->root);
    assert_int_equal(symlink(f->outside, link), 0);
    snprintf(link, sizeof link, "%s/evil-reldir", f->root);
    assert_int_equal(symlink("..", link), 0);
    /* A symlink that stays inside is fine. */
    bk_put(f, "inside", "ok");
    snprintf(link, sizeof link, "%s/good", f->root);
    assert_int_equal(symlink("inside", link), 0);

    static const char *const evil[] = {"evil-abs", "evil-rel", "evil-dir/secret", "evil-reldir/outside/secret"};
    static const int flags[] = {O_RDONLY, O_RDWR, O_WRONLY | O_TRUNC, O_WRONLY | O_CREAT};
    for (size_t i = 0; i < sizeof evil / sizeof *evil; i++) {
        for (size_t j = 0; j < sizeof flags / sizeof *flags; j++) {
            fh = NULL;
            int r = B->open(f->ms, evil[i], flags[j], 0644, &fh);
            if (r >= 0) {
                B->close(fh);
                fail_msg("open('%s', 0%o) escaped the mount root", evil[i], flags[j]);
            }
            assert_true(r == -EXDEV || r == -ELOOP || r == -EACCES || r == -EPERM);
        }
    }
    /* Creating through a symlinked directory is refused too. */
    assert_true(B->open(f->ms, "evil-dir/new", O_WRONLY | O_CREAT, 0644, &fh) < 0);
    char p[1100];
    snprintf(p, sizeof p, "%s/new", f->outside);
    assert_int_equal(access(p, F_OK), -1);
    /* truncate goes through the same confinement. */
    assert_true(B->truncate(f->ms, "evil-abs", 0) < 0);
    assert_true(B->truncate(f->ms, "evil-dir/secret", 0) < 0);
    void *dh = NULL;
    assert_true(B->opendir(f->ms, "evil-dir", &dh) < 0);
    assert_true(B->opendir(f->ms, "evil-reldir", &dh) < 0);

    char buf[64];
    get_real(f->outside, "secret", buf, sizeof buf);
    assert_string_equal(buf, "top secret");

    /* ...while the inside link works. */
    assert_int_equal(B->open(f->ms, "good", O_RDONLY, 0, &fh), 0);
    assert_int_equal(B->pread(fh, buf, sizeof buf, 0), 2);
    assert_int_equal(B->close(fh), 0);
}

/* The same holds for the namespace operations: a key never contains '..', but a symlinked
 * directory inside the mount must not let unlink/rename/mkdir/... act on files outside it
 * (rename("link/secret", "x") followed by open("x") would otherwise undo the confinement
 * of opens). Every operation is tried and all escapes are reported together. */
static void test_symlink_escape_namespace(void **state)
{
    struct fx *f = *state;
    char link[1024], p[1100], failures[2048] = "";
    put_real(f->outside, "ns-victim", "v");
    put_real(f->outside, "ns-victim2", "v");
    snprintf(p, sizeof p, "%s/ns-dir", f->outside);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(link, sizeof link, "%s/ns-link", f->root);
    assert_int_equal(symlink(f->outside, link), 0);
    bk_put(f, "ns-inside", "i");

    struct stat st;
    struct timespec ts[2] = {{.tv_sec = 1, .tv_nsec = 0}, {.tv_sec = 1, .tv_nsec = 0}};
    struct {
        const char *what;
        int r;
    } ops[] = {
        {"stat(ns-link/ns-victim)", B->stat(f->ms, "ns-link/ns-victim", &st, 0)},
        {"stat(ns-link/ns-victim, nofollow)", B->stat(f->ms, "ns-link/ns-victim", &st, 1)},
        {"access(ns-link/ns-victim)", B->access(f->ms, "ns-link/ns-victim", F_OK, 0)},
        {"utimens(ns-link/ns-victim)", B->utimens(f->ms, "ns-link/ns-victim", ts, 0)},
        {"mkdir(ns-link/ns-new)", B->mkdir(f->ms, "ns-link/ns-new", 0755)},
        {"rmdir(ns-link/ns-dir)", B->rmdir(f->ms, "ns-link/ns-dir")},
        {"rename(ns-link/ns-victim2 -> ns-stolen)", B->rename(f->ms, "ns-link/ns-victim2", "ns-stolen", 0)},
        {"rename(ns-inside -> ns-link/ns-planted)", B->rename(f->ms, "ns-inside", "ns-link/ns-planted", 0)},
        {"unlink(ns-link/ns-victim)", B->unlink(f->ms, "ns-link/ns-victim")},
    };
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        if (ops[i].r >= 0) {
            size_t l = strlen(failures);
            snprintf(failures + l, sizeof failures - l, "%s%s", l ? ", " : "", ops[i].what);
        }
    }
    if (failures[0]) fail_msg("these reached outside the mount through a symlinked directory: %s", failures);
}

static void test_mount_errors(void **state)
{
    void *ms = NULL;
    char err[256] = "";
    assert_int_equal(B->mount("relative", NULL, NULL, &ms, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "relative"));
    err[0] = '\0';
    assert_int_equal(B->mount("/nonexistent/s3shim/unit/dir", NULL, NULL, &ms, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/s3shim/unit/dir"));
    err[0] = '\0';
    assert_int_equal(B->mount("/dev/null", NULL, NULL, &ms, err, sizeof err), -ENOTDIR);
    assert_non_null(strstr(err, "/dev/null"));
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_read_back),
        cmocka_unit_test(test_excl),
        cmocka_unit_test(test_enoent),
        cmocka_unit_test(test_eisdir),
        cmocka_unit_test(test_stat),
        cmocka_unit_test(test_readdir),
        cmocka_unit_test(test_mkdir_rmdir),
        cmocka_unit_test(test_rename),
        cmocka_unit_test(test_local_path),
        cmocka_unit_test(test_symlink_escape),
        cmocka_unit_test(test_symlink_escape_namespace),
        cmocka_unit_test(test_mount_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
