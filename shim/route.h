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

/* The vector form of "no '..' in p", inline in every wrapper's fast path, where a call
 * would cost a frame (the wrapper's arguments live across it) on top of the call. x86-64
 * CPUs with AVX2 and BMI2 (route_avx2, set by route_init): 64 bytes a step, each of 32
 * bytes compared with '.' at p and at p + 1 (a pair of dots shows in both) and with NUL,
 * the first hit deciding. Loads are unaligned, so such a step runs only while p + 64
 * stays in p's page; the last 64 bytes of a page go by aligned blocks. The bytes after
 * the string that it reads are in a page the string's end is in, and are ignored.
 * Written as assembly rather than intrinsics because the wrappers themselves are built
 * for every x86-64 CPU: a function compiled for AVX2 could not be inlined into them.
 * Falls to "maybe" (the routed path, which asks route_has_dotdot) when p has "..", when
 * a '.' ends a page, or when the byte before p and p's first are dots. Reads past the
 * NUL like glibc's own string functions; AddressSanitizer does not see assembly. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(S3SHIM_NO_ASM)
#define ROUTE_VECTOR_SCAN 1
extern unsigned char route_avx2 ROUTE_HIDDEN;
extern const char route_dot ROUTE_HIDDEN;
#define ROUTE_DOTDOT_STEP(off) \
    "vpcmpeqb " off "(%%r10), %%ymm1, %%ymm2\n\t" \
    "vpcmpeqb " off "+1(%%r10), %%ymm1, %%ymm3\n\t" \
    "vpand %%ymm3, %%ymm2, %%ymm2\n\t" \
    "vpcmpeqb " off "(%%r10), %%ymm0, %%ymm3\n\t" \
    "vpor %%ymm3, %%ymm2, %%ymm2\n\t" \
    "vpmovmskb %%ymm2, %%eax\n\t"
#endif

/* 1: p has no ".."; 0: it may have (or, on x86-64, this CPU has no AVX2: the caller then
 * takes its routed path, which tests with route_foreign() before anything else; a call
 * here would cost every caller a frame). */
static inline __attribute__((always_inline)) int route_no_dotdot(const char *p)
{
#ifdef ROUTE_VECTOR_SCAN
    if (__builtin_expect(route_avx2, 1)) {
        __asm__ goto("vpbroadcastb %[dot], %%ymm1\n\t"
                     "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
                     "mov %[p], %%r10\n"
                     "1:\n\t" /* r10: the next byte to look at */
                     "mov %%r10d, %%r11d\n\t"
                     "and $4095, %%r11d\n\t"
                     "cmp $4031, %%r11d\n\t" /* r10 + 64 in the page? */
                     "ja 3f\n\t"
                     ROUTE_DOTDOT_STEP("0")
                     "test %%eax, %%eax\n\t"
                     "jnz 2f\n\t"
                     "add $32, %%r10\n\t"
                     ROUTE_DOTDOT_STEP("0")
                     "test %%eax, %%eax\n\t"
                     "jnz 2f\n\t"
                     "add $32, %%r10\n\t"
                     "jmp 1b\n"
                     "2:\n\t"
                     "bsf %%eax, %%eax\n\t" /* the first NUL or pair of dots */
                     "vzeroupper\n\t"
                     "cmpb $0, (%%r10,%%rax)\n\t"
                     "je %l[clean]\n\t"
                     "jmp 4f\n"
                     /* The last 64 bytes of a page: aligned blocks, which never cross
                      * it, each compared at its start and one byte before (a pair of
                      * dots then shows ending in the block); the bits before r10 are
                      * shifted out (shrx takes the count modulo 32). */
                     "3:\n\t"
                     "mov %%r10, %%r11\n\t"
                     "and $-32, %%r11\n\t"
                     "vpcmpeqb -1(%%r11), %%ymm1, %%ymm2\n\t"
                     "vpcmpeqb (%%r11), %%ymm1, %%ymm3\n\t"
                     "vpand %%ymm3, %%ymm2, %%ymm2\n\t"
                     "vpcmpeqb (%%r11), %%ymm0, %%ymm3\n\t"
                     "vpor %%ymm3, %%ymm2, %%ymm2\n\t"
                     "vpmovmskb %%ymm2, %%eax\n\t"
                     "shrx %%r10d, %%eax, %%eax\n\t"
                     "test %%eax, %%eax\n\t"
                     "jnz 2b\n\t"
                     "lea 32(%%r11), %%r10\n\t"
                     "test $4095, %%r10d\n\t"
                     "jnz 3b\n\t"
                     "cmpb $46, -1(%%r10)\n\t" /* a '.' that may pair with the next page's */
                     "jne 1b\n\t"
                     "vzeroupper\n"
                     "4:"
                     :
                     : [p] "r"(p), [dot] "m"(route_dot)
                     : "rax", "r10", "r11", "xmm0", "xmm1", "xmm2", "xmm3", "cc", "memory"
                     : clean);
        return 0;
    clean:
        return 1;
    }
    return 0; /* an x86-64 CPU without AVX2: the routed path asks route_has_dotdot */
#else
    return !route_has_dotdot(p); /* elsewhere: the call, as before the vector form */
#endif
}

/* The test of the wrappers' fast path (open, stat, access...): certainly foreign, and
 * nothing to retry if libc says ENOENT. A path relative to a real directory descriptor
 * is never fast: when libc does not find it, the routed path checks whether that
 * directory lies above a mount (route_real_dirfd). The routed path tests again with
 * route_foreign() before it normalises anything. */
static inline __attribute__((always_inline)) int route_foreign_fast(int dirfd, const char *p)
{
    /* p may be NULL whatever glibc's nonnull prototype says (libc answers EFAULT): hide
     * it from the compiler, which would drop the test (-fno-delete-null-pointer-checks
     * does not stop that). */
    __asm__("" : "+r"(p));
    if (__builtin_expect(p == NULL, 0)) return 0;
    if (__builtin_expect(p[0] == '/', 1)) return !route_lead[(unsigned char)p[1]] && route_no_dotdot(p);
    if (dirfd != AT_FDCWD) return 0;
    if (atomic_load_explicit(&route_cwd_state, memory_order_relaxed) != CWD_FAR || route_is_url(p)) return 0;
    return route_no_dotdot(p);
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
 * ROUTE_OURS with r filled, or ROUTE_FOREIGN (the caller keeps libc's answer). Costs a
 * readlink, on that failure path only. */
int route_real_dirfd(int dirfd, const char *p, struct route *r);

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
