/* wrap_ns.c - the namespace: unlink, rename, mkdir, rmdir, the working directory,
 * realpath, times, modes, owners, links and extended attributes. */
#define _GNU_SOURCE 1
#include "../core/log.h"
#include "../core/path.h"
#include "../core/s3/s3_gen.h"
#include "../core/sys.h"
#include "fdtable.h"
#include "guard.h"
#include "io.h"
#include "real.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Run a namespace operation on a routed path with stats; returns 0 or -1/errno. The op
 * log's record carries `len` (rename: the string id of the new path, for s3shim replay). */
#define NS_OP(r, slot, ...) NS_OP_LEN(r, 0, slot, __VA_ARGS__)
#define NS_OP_LEN(r, len, slot, ...) \
    ({ \
        int _res; \
        if (!shim_mount_usable((r)->m)) \
            _res = -1; \
        else if (!(r)->m->ops->slot) \
            _res = shim_fail(-EOPNOTSUPP); \
        else { \
            uint64_t _t0 = stats_now_ns(); \
            int _e = IO_BACKEND((r)->m->ops->slot((r)->m->ms, __VA_ARGS__)); \
            uint64_t _t1 = stats_record(&(r)->m->stats, STK_META, _t0, 0, _e < 0); \
            OPLOG(OL_META, -1, (r)->m, (r)->path, NULL, -1, (len), _e, _t0, _t1, #slot); \
            _res = _e < 0 ? shim_fail(_e) : 0; \
        } \
        _res; \
    })

static int unlink_at(int dirfd, const char *path, int flags)
{
    struct route r;
    switch (route_at(dirfd, path, &r, 0)) {
    case ROUTE_FOREIGN:
        return REAL(unlinkat)(dirfd, r.pass, flags);
    case ROUTE_OURS:
        if (flags & AT_REMOVEDIR) {
            if (r.trail == TRAIL_DOT) return shim_fail(-EINVAL); /* rmdir("d/.") */
            if (r.trail == TRAIL_DOTDOT) return shim_fail(-ENOTEMPTY);
            int t = io_trail_check(&r);
            return t < 0 ? shim_fail(t) : NS_OP(&r, rmdir, r.key);
        }
        if (r.trail) { /* unlink("x/"): a directory is EISDIR, anything else ENOTDIR */
            struct stat st;
            int e = io_stat(&r, &st, 0);
            return shim_fail(e == 0 ? -EISDIR : e);
        }
        return NS_OP(&r, unlink, r.key);
    default:
        return -1;
    }
}

SHIM_EXPORT int unlink(const char *p) { return unlink_at(AT_FDCWD, p, 0); }
SHIM_EXPORT int unlinkat(int d, const char *p, int fl) { return unlink_at(d, p, fl); }
SHIM_EXPORT int rmdir(const char *p) { return unlink_at(AT_FDCWD, p, AT_REMOVEDIR); }
/* glibc's remove calls its own unlink and rmdir, which we never see: it removed the real
 * file under a mount's path (or failed with ENOENT: `zstd --rm`, `bzip2`). */
SHIM_EXPORT int remove(const char *p)
{
    int saved = errno;
    if (unlink_at(AT_FDCWD, p, 0) == 0) return 0;
    if (errno != EISDIR) return -1;
    errno = saved;
    return unlink_at(AT_FDCWD, p, AT_REMOVEDIR);
}

static int rename_at(int od, const char *op, int nd, const char *np, unsigned flags)
{
    struct route a, b;
    int ka = route_at(od, op, &a, 0), kb = route_at(nd, np, &b, 0);
    if (ka == ROUTE_ERROR || kb == ROUTE_ERROR) return -1;
    if (ka == ROUTE_FOREIGN && kb == ROUTE_FOREIGN) {
        if (flags) return REAL(renameat2)(od, a.pass, nd, b.pass, flags);
        return REAL(renameat)(od, a.pass, nd, b.pass);
    }
    if (ka != kb || a.m != b.m) return shim_fail(-EXDEV); /* mv falls back to copy+unlink */
    if (a.trail >= TRAIL_DOT || b.trail >= TRAIL_DOT) return shim_fail(-EBUSY);
    if (a.trail || b.trail) { /* "d/" renames only a directory */
        struct stat st;
        int e = io_stat(&a, &st, 0);
        if (e == 0 && !S_ISDIR(st.st_mode)) e = -ENOTDIR;
        if (e < 0) return shim_fail(e);
    }
    return NS_OP_LEN(&a, oplog_on ? oplog_path_id(b.path) : 0, rename, a.key, b.key, flags);
}

SHIM_EXPORT int rename(const char *o, const char *n) { return rename_at(AT_FDCWD, o, AT_FDCWD, n, 0); }
SHIM_EXPORT int renameat(int od, const char *o, int nd, const char *n) { return rename_at(od, o, nd, n, 0); }
SHIM_EXPORT int renameat2(int od, const char *o, int nd, const char *n, unsigned fl)
{
    return rename_at(od, o, nd, n, fl);
}

static int mkdir_at(int dirfd, const char *path, mode_t mode)
{
    struct route r;
    switch (route_at(dirfd, path, &r, 0)) {
    case ROUTE_FOREIGN: {
        struct stat st;
        /* The parent of a mount prefix exists for the program (mkdir -p walks it), and
         * must not be created on the real disk. */
        if (r.ancestor && REAL(stat)(r.pass, &st) < 0 && errno == ENOENT) return shim_fail(-EEXIST);
        return REAL(mkdirat)(dirfd, r.pass, mode);
    }
    case ROUTE_OURS:
        if (r.trail >= TRAIL_DOT) { /* "x/." exists exactly when x does */
            struct stat st;
            int e = io_stat(&r, &st, 0);
            return shim_fail(e == 0 ? -EEXIST : e);
        }
        return NS_OP(&r, mkdir, r.key, mode);
    default:
        return -1;
    }
}

SHIM_EXPORT int mkdir(const char *p, mode_t mode) { return mkdir_at(AT_FDCWD, p, mode); }
SHIM_EXPORT int mkdirat(int d, const char *p, mode_t mode) { return mkdir_at(d, p, mode); }

SHIM_EXPORT char *mkdtemp(char *tmpl)
{
    struct route r;
    if (route_path(tmpl, &r) != ROUTE_OURS) return REAL(mkdtemp)(tmpl);
    size_t len = strlen(tmpl);
    if (len < 6 || memcmp(tmpl + len - 6, "XXXXXX", 6) != 0) {
        errno = EINVAL;
        return NULL;
    }
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned char rnd[6];
        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) return NULL;
        for (int i = 0; i < 6; i++) tmpl[len - 6 + i] = letters[rnd[i] % 62];
        if (mkdir_at(AT_FDCWD, tmpl, 0700) == 0) return tmpl;
        if (errno != EEXIST) return NULL;
    }
    return NULL;
}

/* --- working directory ------------------------------------------------------------ */

static int chdir_ours(struct route *r)
{
    struct stat st;
    int res = io_stat(r, &st, 0);
    if (res < 0) return shim_fail(res);
    if (!S_ISDIR(st.st_mode)) return shim_fail(-ENOTDIR);
    return route_chdir_virtual(r->path);
}

SHIM_EXPORT int chdir(const char *p)
{
    struct route r;
    switch (route_path(p, &r)) {
    case ROUTE_FOREIGN: {
        int res = REAL(chdir)(r.pass);
        if (res == 0) route_cwd_changed();
        /* The parent of a mount prefix that is not on disk: a virtual directory too
         * (mkdir -p walks into it). */
        if (res < 0 && errno == ENOENT && r.ancestor) return route_chdir_virtual(r.path);
        return res;
    }
    case ROUTE_OURS:
        return chdir_ours(&r);
    default:
        return -1;
    }
}

SHIM_EXPORT int fchdir(int fd)
{
    if (!fdt_is_ours(fd)) {
        int res = REAL(fchdir)(fd);
        if (res == 0) route_cwd_changed();
        return res;
    }
    struct ofd *o = fdt_get(fd);
    if (!o) return shim_fail(-EBADF);
    int res = o->type == OFD_DIR ? route_chdir_virtual(ofd_path(o)) : -ENOTDIR;
    ofd_put(o);
    return res < 0 ? shim_fail(res) : 0;
}

SHIM_EXPORT char *getcwd(char *buf, size_t size)
{
    if (atomic_load_explicit(&route_cwd_state, memory_order_relaxed) == CWD_FAR ||
        !atomic_load_explicit(&shim.ready, memory_order_relaxed) || guard_active())
        return REAL(getcwd)(buf, size);
    char tmp[PATH_MAX + 8];
    int n = route_getcwd_virtual(tmp, sizeof tmp);
    if (n == 0) return REAL(getcwd)(buf, size);
    if (n < 0) {
        errno = -n;
        return NULL;
    }
    if (!buf) {
        if (size && size < (size_t)n + 1) {
            errno = ERANGE;
            return NULL;
        }
        return strdup(tmp);
    }
    if (size < (size_t)n + 1) {
        errno = size ? ERANGE : EINVAL;
        return NULL;
    }
    memcpy(buf, tmp, (size_t)n + 1);
    return buf;
}

SHIM_EXPORT char *get_current_dir_name(void) { return getcwd(NULL, 0); }

/* realpath inside a mount: lexical (object stores have no symlinks; file:// mounts are
 * resolved against the mount, never outside it), and the path must exist. */
static char *realpath_ours(struct route *r, char *resolved)
{
    struct stat st;
    int res = io_stat(r, &st, 0);
    if (res < 0) {
        errno = -res;
        return NULL;
    }
    char disp[PATH_MAX + 8];
    route_display(r->path, disp, sizeof disp);
    if (strlen(disp) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    if (!resolved) return strdup(disp);
    strcpy(resolved, disp);
    return resolved;
}

SHIM_EXPORT char *realpath(const char *p, char *resolved)
{
    struct route r;
    switch (route_path(p, &r)) {
    case ROUTE_FOREIGN:
        return REAL(realpath)(r.pass, resolved);
    case ROUTE_OURS:
        return realpath_ours(&r, resolved);
    default:
        return NULL;
    }
}

SHIM_EXPORT char *__realpath_chk(const char *p, char *resolved, size_t len)
{
    if (resolved && len < PATH_MAX) __builtin_trap();
    return realpath(p, resolved);
}

SHIM_EXPORT char *canonicalize_file_name(const char *p) { return realpath(p, NULL); }

/* --- calls meaningful only on real files: forwarded to the real path of a local
 * backend, otherwise a clean error ------------------------------------------------- */

/* The real path behind a routed path, or -errno (ENOTSUP on object stores). */
static int local_path(struct route *r, char *buf, size_t len)
{
    if (!shim_mount_usable(r->m)) return -errno;
    if (!r->m->ops->local_path) return -ENOTSUP;
    return r->m->ops->local_path(r->m->ms, r->key, buf, len);
}

/* Object stores have no owners or modes: chmod and chown succeed without effect on
 * anything that exists (tar x, cp -p, install must not fail on them). Returns 1 when
 * the call was answered that way, with the result in *res; 0 for a local backend. */
static int no_owner_or_mode(int dirfd, const char *path, int flags, int *res)
{
    struct route r;
    if (route_at(dirfd, path, &r, flags) != ROUTE_OURS || !r.m->ops || r.m->ops->local_path) return 0;
    struct stat st;
    int e = io_stat(&r, &st, 0);
    *res = e < 0 ? shim_fail(e) : 0;
    return 1;
}

static int fd_no_owner_or_mode(int fd, int *res)
{
    struct ofd *o = fdt_get(fd);
    if (!o) return 0;
    /* An object (staged or not) has no owner or mode to change: its staging file's are not the program's. */
    int objstore = o->m->ops && !o->m->ops->local_path && !(o->fh && o->m->ops->local_fd && !o->m->ops->lock_fd);
    ofd_put(o);
    if (objstore) *res = 0;
    return objstore;
}

/* Route path; when it is ours and local, point `lp` at its real path. Returns
 * ROUTE_FOREIGN (use r.pass), ROUTE_OURS (use lp), or -1 (errno set). */
static int to_local(int dirfd, const char *path, struct route *r, char *lp, size_t len, int flags)
{
    int k = route_at(dirfd, path, r, flags);
    if (k != ROUTE_OURS) return k;
    int n = local_path(r, lp, len);
    if (n < 0) return shim_fail(n);
    return ROUTE_OURS;
}

/* Body for a path-based call forwarded as `call(P)` where P is the path to use. */
#define FORWARD_PATH(dirfd, path, flags, on_foreign, on_local, errval) \
    do { \
        struct route r; \
        char lp[PATH_MAX]; \
        int k = to_local(dirfd, path, &r, lp, sizeof lp, flags); \
        if (k == ROUTE_FOREIGN) { \
            const char *P = r.pass; \
            return on_foreign; \
        } \
        if (k == ROUTE_OURS) { \
            const char *P = lp; \
            return on_local; \
        } \
        return errval; \
    } while (0)

/* --- links on object stores (S3, block://): they keep none. Answered as a filesystem
 * without links answers (vfat): EEXIST/ENOENT/ENOTDIR as usual, else EPERM for link and
 * symlink ("Operation not permitted", which ln reports and programs such as cp -l, tar and
 * git handle), EINVAL for readlink (nothing there is a symbolic link). One log line per
 * run says why the link was refused (git's processes would each repeat it). ---------- */

/* The route, when it is ours on a backend without real files (0 otherwise). */
static int objstore_at(int dirfd, const char *path, struct route *r, int flags)
{
    return route_at(dirfd, path, r, flags) == ROUTE_OURS && r->m->ops && !r->m->ops->local_path &&
           shim_mount_usable(r->m);
}

static int no_links(struct route *r, const char *what)
{
    static _Atomic int said;
    if (!atomic_exchange(&said, 1) && (s3_gen_init(), s3_gen_once(S3GEN_ONCE_LINKS)))
        slog_warn("%s (%s): %s refused with EPERM: this store keeps no hard or symbolic links", r->m->prefix,
                  r->m->uri, what);
    return shim_fail(-EPERM);
}

/* symlink/link target path on an object store: EEXIST if something is there, the stat
 * error of a missing parent, else 0 (the caller refuses the link itself). */
static int link_target_free(struct route *r)
{
    struct stat st;
    int e = io_stat(r, &st, 1);
    if (e == 0) return -EEXIST;
    if (e != -ENOENT) return e;
    if (r->trail) return -ENOENT; /* "x/" names a directory to be */
    return 0;
}

static ssize_t objstore_readlink(struct route *r)
{
    struct stat st;
    int e = io_stat(r, &st, 1);
    return shim_fail(e < 0 ? e : -EINVAL);
}

SHIM_EXPORT ssize_t readlink(const char *p, char *buf, size_t len)
{
    struct route ro;
    if (objstore_at(AT_FDCWD, p, &ro, 0)) return objstore_readlink(&ro);
    FORWARD_PATH(AT_FDCWD, p, 0, REAL(readlink)(P, buf, len), REAL(readlink)(P, buf, len), -1);
}

SHIM_EXPORT ssize_t readlinkat(int d, const char *p, char *buf, size_t len)
{
    struct route ro;
    if (objstore_at(d, p, &ro, AT_EMPTY_PATH)) return objstore_readlink(&ro);
    FORWARD_PATH(d, p, AT_EMPTY_PATH, REAL(readlinkat)(d, P, buf, len), REAL(readlink)(P, buf, len), -1);
}

/* An object store that keeps modes (ops->chmod): chmod through it. 1 when handled. */
static int backend_chmod(int dirfd, const char *path, int flags, mode_t mode, int *res)
{
    struct route r;
    if (route_at(dirfd, path, &r, flags) != ROUTE_OURS || !r.m->ops || !r.m->ops->chmod) return 0;
    *res = NS_OP(&r, chmod, r.key, mode);
    return 1;
}

SHIM_EXPORT int chmod(const char *p, mode_t mode)
{
    int res0;
    if (backend_chmod(AT_FDCWD, p, 0, mode, &res0)) return res0;
    if (no_owner_or_mode(AT_FDCWD, p, 0, &res0)) return res0;
    FORWARD_PATH(AT_FDCWD, p, 0, REAL(chmod)(P, mode), REAL(chmod)(P, mode), -1);
}

/* Stores that give modes themselves (block://) apply the umask of the moment, as the
 * kernel does: they learn it here (core/sys.h). */
SHIM_EXPORT mode_t umask(mode_t mask)
{
    mode_t old = REAL(umask)(mask);
    sys_umask_set(mask);
    return old;
}

/* Objects show the process's own uid and gid as their owner (core/sys.h keeps them):
 * a program that changes its ids sees the new ones at its next stat. */
#define IDS_SETTER(name, params, args) \
    SHIM_EXPORT int name params \
    { \
        int res_ = REAL(name) args; \
        if (res_ == 0) sys_ids_changed(); \
        return res_; \
    }
IDS_SETTER(setuid, (uid_t u), (u))
IDS_SETTER(setgid, (gid_t g), (g))
IDS_SETTER(seteuid, (uid_t u), (u))
IDS_SETTER(setegid, (gid_t g), (g))
IDS_SETTER(setreuid, (uid_t ru, uid_t eu), (ru, eu))
IDS_SETTER(setregid, (gid_t rg, gid_t eg), (rg, eg))
IDS_SETTER(setresuid, (uid_t ru, uid_t eu, uid_t su), (ru, eu, su))
IDS_SETTER(setresgid, (gid_t rg, gid_t eg, gid_t sg), (rg, eg, sg))

SHIM_EXPORT int fchmodat(int d, const char *p, mode_t mode, int fl)
{
    int res0;
    if (backend_chmod(d, p, fl, mode, &res0)) return res0;
    if (no_owner_or_mode(d, p, fl, &res0)) return res0;
    FORWARD_PATH(d, p, fl, REAL(fchmodat)(d, P, mode, fl), REAL(fchmodat)(AT_FDCWD, P, mode, fl & ~AT_EMPTY_PATH), -1);
}

SHIM_EXPORT int chown(const char *p, uid_t u, gid_t g)
{
    int res0;
    if (no_owner_or_mode(AT_FDCWD, p, 0, &res0)) return res0;
    FORWARD_PATH(AT_FDCWD, p, 0, REAL(chown)(P, u, g), REAL(chown)(P, u, g), -1);
}

SHIM_EXPORT int lchown(const char *p, uid_t u, gid_t g)
{
    int res0;
    if (no_owner_or_mode(AT_FDCWD, p, 0, &res0)) return res0;
    FORWARD_PATH(AT_FDCWD, p, 0, REAL(lchown)(P, u, g), REAL(lchown)(P, u, g), -1);
}

SHIM_EXPORT int fchownat(int d, const char *p, uid_t u, gid_t g, int fl)
{
    int res0;
    if (no_owner_or_mode(d, p, fl, &res0)) return res0;
    FORWARD_PATH(d, p, fl, REAL(fchownat)(d, P, u, g, fl), REAL(fchownat)(AT_FDCWD, P, u, g, fl & ~AT_EMPTY_PATH), -1);
}

/* A directory above a mount that is not on disk has no attributes (ls -l asks for one). */
static ssize_t xattr_foreign(ssize_t res, const struct route *r, int err)
{
    if (res < 0 && errno == ENOENT && r->ancestor) return err ? (errno = err, -1) : 0;
    return res;
}

SHIM_EXPORT ssize_t getxattr(const char *p, const char *n, void *v, size_t s)
{
    FORWARD_PATH(AT_FDCWD, p, 0, xattr_foreign(REAL(getxattr)(P, n, v, s), &r, ENODATA), REAL(getxattr)(P, n, v, s), -1);
}

SHIM_EXPORT ssize_t lgetxattr(const char *p, const char *n, void *v, size_t s)
{
    FORWARD_PATH(AT_FDCWD, p, 0, xattr_foreign(REAL(lgetxattr)(P, n, v, s), &r, ENODATA), REAL(lgetxattr)(P, n, v, s),
                 -1);
}

SHIM_EXPORT int setxattr(const char *p, const char *n, const void *v, size_t s, int fl)
{
    FORWARD_PATH(AT_FDCWD, p, 0, REAL(setxattr)(P, n, v, s, fl), REAL(setxattr)(P, n, v, s, fl), -1);
}

SHIM_EXPORT int lsetxattr(const char *p, const char *n, const void *v, size_t s, int fl)
{
    FORWARD_PATH(AT_FDCWD, p, 0, REAL(lsetxattr)(P, n, v, s, fl), REAL(lsetxattr)(P, n, v, s, fl), -1);
}

SHIM_EXPORT int removexattr(const char *p, const char *n)
{
    FORWARD_PATH(AT_FDCWD, p, 0, REAL(removexattr)(P, n), REAL(removexattr)(P, n), -1);
}

SHIM_EXPORT int lremovexattr(const char *p, const char *n)
{
    FORWARD_PATH(AT_FDCWD, p, 0, REAL(lremovexattr)(P, n), REAL(lremovexattr)(P, n), -1);
}

SHIM_EXPORT ssize_t listxattr(const char *p, char *l, size_t s)
{
    FORWARD_PATH(AT_FDCWD, p, 0, xattr_foreign(REAL(listxattr)(P, l, s), &r, 0), REAL(listxattr)(P, l, s), -1);
}

SHIM_EXPORT ssize_t llistxattr(const char *p, char *l, size_t s)
{
    FORWARD_PATH(AT_FDCWD, p, 0, xattr_foreign(REAL(llistxattr)(P, l, s), &r, 0), REAL(llistxattr)(P, l, s), -1);
}

static int objstore_symlink(struct route *r)
{
    int e = link_target_free(r);
    return e < 0 ? shim_fail(e) : no_links(r, "symlink");
}

SHIM_EXPORT int symlink(const char *target, const char *p)
{
    struct route ro;
    if (objstore_at(AT_FDCWD, p, &ro, 0)) return objstore_symlink(&ro);
    FORWARD_PATH(AT_FDCWD, p, 0, REAL(symlink)(target, P), REAL(symlink)(target, P), -1);
}

SHIM_EXPORT int symlinkat(const char *target, int d, const char *p)
{
    struct route ro;
    if (objstore_at(d, p, &ro, 0)) return objstore_symlink(&ro);
    FORWARD_PATH(d, p, 0, REAL(symlinkat)(target, d, P), REAL(symlink)(target, P), -1);
}

static int link_at(int od, const char *op, int nd, const char *np, int flags)
{
    struct route a, b;
    if (objstore_at(od, op, &a, flags)) {
        struct stat st;
        int e = io_stat(&a, &st, !(flags & AT_SYMLINK_FOLLOW));
        if (e < 0) return shim_fail(e);
        if (S_ISDIR(st.st_mode)) return shim_fail(-EPERM); /* as link(2) on a directory */
        int kb = route_at(nd, np, &b, 0);
        if (kb == ROUTE_ERROR) return -1;
        if (kb != ROUTE_OURS || b.m != a.m) return shim_fail(-EXDEV);
        if ((e = link_target_free(&b)) < 0) return shim_fail(e);
        return no_links(&a, "link");
    }
    char la[PATH_MAX], lb[PATH_MAX];
    int ka = to_local(od, op, &a, la, sizeof la, flags), kb = to_local(nd, np, &b, lb, sizeof lb, 0);
    if (ka < 0 || kb < 0) return -1;
    if (ka == ROUTE_FOREIGN && kb == ROUTE_FOREIGN) return REAL(linkat)(od, a.pass, nd, b.pass, flags);
    if (ka != kb || a.m != b.m) return shim_fail(-EXDEV);
    return REAL(linkat)(AT_FDCWD, la, AT_FDCWD, lb, flags & ~AT_EMPTY_PATH);
}

SHIM_EXPORT int link(const char *o, const char *n) { return link_at(AT_FDCWD, o, AT_FDCWD, n, 0); }
SHIM_EXPORT int linkat(int od, const char *o, int nd, const char *n, int fl) { return link_at(od, o, nd, n, fl); }

/* --- descriptor-based forms of the same --------------------------------------------- */

/* The local descriptor behind a shim fd, or -errno. The reference stays with *op. */
static int local_fd_of(int fd, struct ofd **op)
{
    struct ofd *o = fdt_get(fd);
    if (!o) return -EBADF;
    *op = o;
    if (o->fh && o->m->ops->local_fd) return o->m->ops->local_fd(o->fh);
    return -ENOTSUP;
}

/* Body for fd-based calls: foreign fds go to libc, ours to the local fd (as L) or, for a
 * directory or object, to the local path (as P). */
#define FORWARD_FD(fd, on_real, on_local_fd, on_local_path) \
    do { \
        if (__builtin_expect(!fdt_is_ours(fd), 1)) return on_real; \
        struct ofd *o_ = NULL; \
        int L = local_fd_of(fd, &o_); \
        __typeof__(on_real) res_; \
        if (L >= 0) { \
            res_ = on_local_fd; \
        } else if (o_ && o_->m->ops->local_path) { \
            char P[PATH_MAX]; \
            int n_ = o_->m->ops->local_path(o_->m->ms, ofd_key(o_), P, sizeof P); \
            res_ = n_ < 0 ? shim_fail(n_) : (on_local_path); \
        } else { \
            res_ = shim_fail(o_ ? -ENOTSUP : -EBADF); \
        } \
        if (o_) ofd_put(o_); \
        return res_; \
    } while (0)

SHIM_EXPORT int fchmod(int fd, mode_t mode)
{
    int res0;
    if (__builtin_expect(fdt_is_ours(fd), 0)) { /* an object store that keeps modes */
        struct ofd *o = fdt_get(fd);
        int done = 0;
        if (o && o->fh && o->m->ops->fchmod) {
            int e = IO_BACKEND(o->m->ops->fchmod(o->fh, mode));
            res0 = e < 0 ? shim_fail(e) : 0;
            done = 1;
        } else if (o && o->m->ops->chmod) {
            int e = IO_BACKEND(o->m->ops->chmod(o->m->ms, ofd_key(o), mode));
            res0 = e < 0 ? shim_fail(e) : 0;
            done = 1;
        }
        if (o) ofd_put(o);
        if (done) return res0;
    }
    if (__builtin_expect(fdt_is_ours(fd), 0) && fd_no_owner_or_mode(fd, &res0)) return res0;
    FORWARD_FD(fd, REAL(fchmod)(fd, mode), REAL(fchmod)(L, mode), REAL(chmod)(P, mode));
}

SHIM_EXPORT int fchown(int fd, uid_t u, gid_t g)
{
    int res0;
    if (__builtin_expect(fdt_is_ours(fd), 0) && fd_no_owner_or_mode(fd, &res0)) return res0;
    FORWARD_FD(fd, REAL(fchown)(fd, u, g), REAL(fchown)(L, u, g), REAL(chown)(P, u, g));
}

SHIM_EXPORT ssize_t fgetxattr(int fd, const char *n, void *v, size_t s)
{
    FORWARD_FD(fd, REAL(fgetxattr)(fd, n, v, s), REAL(fgetxattr)(L, n, v, s), REAL(getxattr)(P, n, v, s));
}

SHIM_EXPORT ssize_t flistxattr(int fd, char *l, size_t s)
{
    FORWARD_FD(fd, REAL(flistxattr)(fd, l, s), REAL(flistxattr)(L, l, s), REAL(listxattr)(P, l, s));
}

SHIM_EXPORT int fsetxattr(int fd, const char *n, const void *v, size_t s, int fl)
{
    FORWARD_FD(fd, REAL(fsetxattr)(fd, n, v, s, fl), REAL(fsetxattr)(L, n, v, s, fl), REAL(setxattr)(P, n, v, s, fl));
}

SHIM_EXPORT int fremovexattr(int fd, const char *n)
{
    FORWARD_FD(fd, REAL(fremovexattr)(fd, n), REAL(fremovexattr)(L, n), REAL(removexattr)(P, n));
}

SHIM_EXPORT int flock(int fd, int op)
{
    if (__builtin_expect(fdt_is_ours(fd), 0)) { /* object stores: the object's lock file */
        struct ofd *o = fdt_get(fd);
        if (o && o->fh && o->m->ops->lock_fd) {
            int L = IO_BACKEND(o->m->ops->lock_fd(o->fh));
            int r = L < 0 ? shim_fail(L) : REAL(flock)(L, op);
            ofd_put(o);
            return r;
        }
        if (o) ofd_put(o);
    }
    FORWARD_FD(fd, REAL(flock)(fd, op), REAL(flock)(L, op), shim_fail(-ENOLCK));
}

/* --- times ------------------------------------------------------------------------------ */

static int utimens_at(int dirfd, const char *path, const struct timespec ts[2], int flags)
{
    struct route r;
    switch (route_at(dirfd, path, &r, flags)) {
    case ROUTE_FOREIGN:
        return REAL(utimensat)(dirfd, r.pass, ts, flags);
    case ROUTE_OURS:
        return NS_OP(&r, utimens, r.key, ts, flags & AT_SYMLINK_NOFOLLOW);
    default:
        return -1;
    }
}

SHIM_EXPORT int utimensat(int d, const char *p, const struct timespec ts[2], int fl)
{
    const char *volatile pv = p; /* declared nonnull, yet glibc accepts NULL: "the fd itself" */
    if (pv == NULL) return futimens(d, ts);
    return utimens_at(d, p, ts, fl);
}

SHIM_EXPORT int futimens(int fd, const struct timespec ts[2])
{
    if (__builtin_expect(!fdt_is_ours(fd), 1)) return REAL(futimens)(fd, ts);
    struct ofd *o = fdt_get(fd);
    if (!o) return shim_fail(-EBADF);
    int r;
    if (o->fh && o->m->ops->futimens)
        r = IO_BACKEND(o->m->ops->futimens(o->fh, ts));
    else if (o->m->ops->utimens)
        r = IO_BACKEND(o->m->ops->utimens(o->m->ms, ofd_key(o), ts, 0));
    else
        r = -EOPNOTSUPP;
    ofd_put(o);
    return r < 0 ? shim_fail(r) : 0;
}

static const struct timespec *tv_to_ts(const struct timeval tv[2], struct timespec ts[2])
{
    if (!tv) return NULL;
    for (int i = 0; i < 2; i++) ts[i] = (struct timespec){tv[i].tv_sec, tv[i].tv_usec * 1000};
    return ts;
}

SHIM_EXPORT int utimes(const char *p, const struct timeval tv[2])
{
    struct timespec ts[2];
    struct route r;
    if (route_path(p, &r) == ROUTE_FOREIGN) return REAL(utimes)(r.pass, tv);
    return utimens_at(AT_FDCWD, p, tv_to_ts(tv, ts), 0);
}

SHIM_EXPORT int lutimes(const char *p, const struct timeval tv[2])
{
    struct timespec ts[2];
    struct route r;
    if (route_path(p, &r) == ROUTE_FOREIGN) return REAL(lutimes)(r.pass, tv);
    return utimens_at(AT_FDCWD, p, tv_to_ts(tv, ts), AT_SYMLINK_NOFOLLOW);
}

/* glibc's futimes and futimesat make the system call themselves (EBADF on our
 * descriptors, the real path for futimesat). */
SHIM_EXPORT int futimes(int fd, const struct timeval tv[2])
{
    struct timespec ts[2];
    return futimens(fd, tv_to_ts(tv, ts));
}

SHIM_EXPORT int futimesat(int d, const char *p, const struct timeval tv[2])
{
    struct timespec ts[2];
    const char *volatile pv = p; /* NULL: the descriptor itself */
    return pv ? utimens_at(d, p, tv_to_ts(tv, ts), 0) : futimens(d, tv_to_ts(tv, ts));
}

SHIM_EXPORT int utime(const char *p, const struct utimbuf *ub)
{
    struct route r;
    if (route_path(p, &r) == ROUTE_FOREIGN) return REAL(utime)(r.pass, ub);
    struct timespec ts[2];
    if (ub) {
        ts[0] = (struct timespec){ub->actime, 0};
        ts[1] = (struct timespec){ub->modtime, 0};
    }
    return utimens_at(AT_FDCWD, p, ub ? ts : NULL, 0);
}

/* --- truncate ----------------------------------------------------------------------------- */

SHIM_EXPORT int truncate(const char *p, off_t len)
{
    struct route r;
    switch (route_path(p, &r)) {
    case ROUTE_FOREIGN:
        return REAL(truncate)(r.pass, len);
    case ROUTE_OURS:
        if (len < 0) return shim_fail(-EINVAL);
        return NS_OP(&r, truncate, r.key, len);
    default:
        return -1;
    }
}

SHIM_EXPORT int truncate64(const char *p, off_t len) { return truncate(p, len); }
