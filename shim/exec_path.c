/* exec_path.c - running a program stored under a mount.
 *
 * The kernel's execve opens the program's path itself, so a program built into a mount
 * (make into /data/build, then /data/build/tool) or a script kept there failed with
 * ENOENT. A file:// or direct:// program is exec'd from its real path; one in an object
 * store (S3, block://) is copied into a memfd and exec'd from /proc/self/fd/N, if its mode
 * lets anyone execute it (S3 objects read as 0644: EACCES, as on a noexec mount). A
 * script's memfd stays open across the exec, for its interpreter opens that path (the
 * script's $0 is then /proc/self/fd/N); a binary's is closed by the exec. */
#define _GNU_SOURCE 1
#include "exec_path.h"
#include "real.h"
#include "route.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_CHUNK (1 << 20)

/* A copy of the program at path (ours) in a memfd, into t. 0 or -errno. */
static int copy_to_memfd(const char *path, const struct stat *st, struct exec_target *t)
{
    int in = open(path, O_RDONLY | O_CLOEXEC); /* (ours: through the shim) */
    if (in < 0) return -errno;
    char *buf = malloc(COPY_CHUNK);
    int e = buf ? 0 : -ENOMEM, mfd = -1;
    ssize_t n = e ? -1 : read(in, buf, COPY_CHUNK);
    if (!e && n < 0) e = -errno;
    if (!e) { /* a script keeps its descriptor across the exec: its interpreter opens it */
        int script = n >= 2 && buf[0] == '#' && buf[1] == '!';
        mfd = memfd_create("s3shim-exec", script ? 0 : MFD_CLOEXEC);
        if (mfd < 0) e = -errno;
    }
    off_t done = 0;
    while (!e && n > 0) {
        for (ssize_t w = 0; w < n && !e;) {
            ssize_t k = REAL(write)(mfd, buf + w, (size_t)(n - w));
            if (k <= 0) e = k < 0 ? -errno : -EIO;
            else w += k;
        }
        done += n;
        if (!e && (n = read(in, buf, COPY_CHUNK)) < 0) e = -errno;
    }
    if (!e && done != st->st_size) e = -EIO; /* changed while copied */
    free(buf);
    close(in);
    if (e) {
        if (mfd >= 0) REAL(close)(mfd);
        return e;
    }
    t->fd = mfd;
    snprintf(t->path, sizeof t->path, "/proc/self/fd/%d", mfd);
    return 0;
}

int exec_target(const char *path, struct exec_target *t)
{
    t->fd = -1;
    struct route r;
    switch (route_path(path, &r)) {
    case ROUTE_FOREIGN:
        return 0;
    case ROUTE_OURS:
        break;
    default:
        return -1;
    }
    if (!shim_mount_usable(r.m)) return -1;
    if (r.m->ops->local_path) { /* a real file: the kernel checks and runs it */
        int e = r.m->ops->local_path(r.m->ms, r.key, t->path, sizeof t->path);
        return e < 0 ? shim_fail(e) : 1;
    }
    struct stat st;
    if (stat(path, &st) < 0) return -1;
    if (S_ISDIR(st.st_mode) || !(st.st_mode & 0111)) return shim_fail(-EACCES);
    int e = copy_to_memfd(path, &st, t);
    return e < 0 ? shim_fail(e) : 1;
}

int exec_search(const char *file, struct exec_target *t)
{
    t->fd = -1;
    if (!file || !file[0]) return 0;
    if (strchr(file, '/')) return exec_target(file, t);
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    /* Nothing to do unless a directory of PATH is under a mount (no system call then). */
    int any = 0;
    for (const char *d = path; *d && !any;) {
        char dir[PATH_MAX];
        size_t n = strcspn(d, ":");
        if (n > 0 && n < sizeof dir) {
            memcpy(dir, d, n);
            dir[n] = '\0';
            struct route r;
            any = route_path(dir, &r) == ROUTE_OURS;
        }
        d += n + (d[n] == ':');
    }
    if (!any) return 0;
    int denied = 0;
    for (const char *d = path;; d += strcspn(d, ":") + 1) {
        char cand[PATH_MAX];
        size_t n = strcspn(d, ":");
        if (snprintf(cand, sizeof cand, "%.*s%s%s", (int)n, d, n ? "/" : "", file) < (int)sizeof cand) {
            struct route r;
            int rt = route_path(cand, &r);
            struct stat st;
            if (rt == ROUTE_FOREIGN && REAL(access)(cand, X_OK) == 0) return 0; /* libc finds the same one */
            if (rt == ROUTE_OURS && stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
                if (st.st_mode & 0111) return exec_target(cand, t);
                denied = 1; /* as execvp: go on, EACCES if nothing else is found */
            }
        }
        if (!d[n]) break;
    }
    return denied ? shim_fail(-EACCES) : 0;
}

void exec_target_done(struct exec_target *t)
{
    if (t->fd >= 0) REAL(close)(t->fd);
    t->fd = -1;
}
