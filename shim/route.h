/* route.h - from a path argument (and a directory descriptor) to a mount and key.
 *
 * The first test is inline and cheap: an absolute path already in normal form that no
 * mount prefix covers, or a relative path while the working directory is far from every
 * mount, is foreign and goes to libc untouched. Everything else is normalised and routed
 * in route_slow(). The working directory may be virtual (inside a mount): then the
 * process's real cwd is a shadow directory whose path encodes the virtual one, so that
 * programs started by exec inherit it. */
#ifndef S3SHIM_ROUTE_H
#define S3SHIM_ROUTE_H

#include "../core/mount.h"
#include "fdtable.h"

#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

enum { ROUTE_FOREIGN = 0, ROUTE_OURS = 1, ROUTE_ERROR = -1 };
enum { CWD_UNKNOWN = 0, CWD_FAR, CWD_NEAR, CWD_VIRTUAL };

enum { TRAIL_NONE = 0, TRAIL_SLASH, TRAIL_DOT, TRAIL_DOTDOT };

struct route {
    struct mount *m;
    const char *key;
    const char *pass; /* path to give libc when foreign (maybe rewritten into path) */
    int trail;        /* the path ended in '/', '/.' or '/..': it must name a directory */
    int ancestor;     /* foreign, but a directory above a mount prefix */
    char path[PATH_MAX];
};

/* Ours, not preemptible: addressed relative to the instruction pointer, with no GOT load. */
#define ROUTE_HIDDEN __attribute__((visibility("hidden")))

extern _Atomic int route_cwd_state ROUTE_HIDDEN;
/* Second bytes of absolute paths that need a closer look: the first letters of the
 * absolute mount prefixes, and '/', '.' and NUL ("//x", "/./x", "/..", "/"). */
extern unsigned char route_lead[256] ROUTE_HIDDEN;

int route_slow(int dirfd, const char *p, struct route *r, int flags);

/* Does a string contain ".." anywhere? */
extern int (*route_has_dotdot)(const char *p) ROUTE_HIDDEN; /* the best this CPU has */

/* The pass-through test, without a struct route, so that a wrapper answers the common
 * case before it sets up the (large) frame of its slow path. Normalising a path that has
 * no ".." collapses "//" and "/./" but keeps its components, so an absolute path whose
 * first component cannot start a mount prefix (route_lead), and that has no "..", is
 * foreign. A relative one is foreign if the working directory is far from every mount
 * (neither inside nor above one), it has no "..", and it is not an "s3:" URL. A path
 * relative to a descriptor is foreign if that descriptor is not ours. */

/* Is q's first component (q starts it) the first component of an absolute mount prefix? */
int route_first_maybe(const char *q);

/* The C form, used by the routed paths before anything else (and so where the vector
 * form below is missing or unsure). */
static inline int route_abs_maybe(const char *p)
{
    const char *q = p + 1;
    while (*q == '/') q++;
    if (*q == '\0' || *q == '.') return 1; /* "/" is above every mount; "." and ".." */
    if (route_lead[(unsigned char)*q] && route_first_maybe(q)) return 1;
    return route_has_dotdot(q);
}

static inline int route_is_url(const char *p) { return p[0] == 's' && p[1] == '3' && p[2] == ':'; }

static inline int route_rel_maybe(const char *p)
{
    if (atomic_load_explicit(&route_cwd_state, memory_order_relaxed) != CWD_FAR) return 1;
    if (route_is_url(p)) return 1;
    if (p[0] == '.' && p[1] == '.') return 1;
    return strstr(p, "/..") != NULL;
}

/* Is p (relative to dirfd) certainly foreign, to be passed to libc as it is? */
static inline __attribute__((always_inline)) int route_foreign(int dirfd, const char *p)
{
    if (__builtin_expect(p == NULL, 0)) return 1;
    if (p[0] == '/') return !route_abs_maybe(p);
    if (dirfd == AT_FDCWD) return !route_rel_maybe(p);
    return !fdt_is_ours(dirfd) && !route_is_url(p);
}

#include "route_scan.h"

/* The test of the wrappers' fast path (open, stat, access...): certainly foreign, and
 * nothing to retry if libc says ENOENT. A path relative to a real directory descriptor
 * is never fast: when libc does not find it, the routed path checks whether that
 * directory lies above a mount (route_real_dirfd). The routed path tests again with
 * route_foreign() before it normalises anything. NULL is routed (libc answers EFAULT). */
static inline __attribute__((always_inline)) int route_foreign_fast(int dirfd, const char *p)
{
#ifdef ROUTE_VECTOR_SCAN
    ROUTE_SCAN_FIRST(p); /* NULL and absolute paths: to route_clean or route_maybe */
    if (dirfd != AT_FDCWD) return 0;
    if (atomic_load_explicit(&route_cwd_state, memory_order_relaxed) != CWD_FAR || route_is_url(p)) return 0;
    ROUTE_SCAN_ANY(p);
route_maybe:
    return 0;
route_clean:
    return 1;
#else
    /* p may be NULL whatever glibc's nonnull prototype says: hide it from the compiler,
     * which would drop the test (-fno-delete-null-pointer-checks does not stop that). */
    __asm__("" : "+r"(p));
    if (__builtin_expect(p == NULL, 0)) return 0;
    if (__builtin_expect(p[0] == '/', 1)) return !route_lead[(unsigned char)p[1]] && !route_has_dotdot(p);
    if (dirfd != AT_FDCWD) return 0;
    if (atomic_load_explicit(&route_cwd_state, memory_order_relaxed) != CWD_FAR || route_is_url(p)) return 0;
    return !route_has_dotdot(p);
#endif
}

/* Route p relative to dirfd (AT_FDCWD or a descriptor). flags may hold AT_EMPTY_PATH.
 * Returns ROUTE_FOREIGN (call libc with r->pass), ROUTE_OURS (r->m, r->key) or
 * ROUTE_ERROR (errno set). */
static inline __attribute__((always_inline)) int route_at(int dirfd, const char *p, struct route *r, int flags)
{
    r->pass = p;
    r->ancestor = 0;
    if (__builtin_expect(route_foreign(dirfd, p), 1)) return ROUTE_FOREIGN;
    return route_slow(dirfd, p, r, flags);
}

static inline int route_path(const char *p, struct route *r) { return route_at(AT_FDCWD, p, r, 0); }

/* After libc answered ENOENT for p relative to a real directory descriptor: if that
 * directory is above a mount prefix (rsync 3.5 opens "/" and walks down the destination
 * with openat and fstatat, one component at a time), route the joined path. Returns
 * ROUTE_OURS with r filled, or ROUTE_FOREIGN (the caller keeps libc's answer; when the
 * joined path is itself above a mount prefix, r->ancestor is set and r->path holds it).
 * Costs a readlink, on that failure path only. */
int route_real_dirfd(int dirfd, const char *p, struct route *r);

/* Open (read-only, no O_CREAT) an ancestor of a mount prefix that does not exist on disk
 * (stat says it is a directory): a directory made under /tmp/.s3shim-anc-UID, opened and
 * removed at once, stands for it (nothing can be created in it); the mounts below it are
 * reached from that descriptor by name (route_real_dirfd). Returns the fd, or -1 with
 * errno. */
int route_open_ancestor(const char *vpath, int flags);

/* The virtual path a stand-in of route_open_ancestor stands for, from its path as
 * /proc/self/fd shows it, in out; NULL if rpath is not one. */
const char *route_standin_vpath(const char *rpath, char *out, size_t size);

/* Rebuild the prefix table after the mount table is built. */
void route_init(void);
/* The working directory changed (chdir/fchdir to a real directory). */
void route_cwd_changed(void);
/* Make a virtual path (inside a mount) the working directory. Returns 0 or -errno. */
int route_chdir_virtual(const char *vpath);
/* Copy the program-visible cwd if it is virtual; returns its length, 0 if the cwd is
 * real, -ERANGE if it does not fit. */
int route_getcwd_virtual(char *buf, size_t size);
/* Program-visible form of a virtual path ("s3:/b/k" becomes "s3://b/k"). */
void route_display(const char *vpath, char *buf, size_t size);
void route_atfork_child(void);

#endif
