/* route.c - see route.h */
#include "route.h"

#include "../core/log.h"
#include "../core/path.h"
#include "../core/sys.h"
#include "guard.h"
#include "ofd.h"
#include "real.h"
#include "shim.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

_Atomic int route_cwd_state = CWD_UNKNOWN;
#if defined(__SSE2__)
static int dotdot_avx2(const char *p);
#endif
static int dotdot_plain(const char *p) { return strstr(p, "..") != NULL; }
/* Under valgrind every path takes the routed C path: the scans read past a string's end
 * within its page, which is safe but which valgrind reports (it replaces glibc's string
 * functions, which do the same, but cannot replace inline code). */
static int route_plain;
unsigned char route_lead[256];
#ifdef ROUTE_VECTOR_SCAN
unsigned char route_avx2;
unsigned char route_sse42;
const unsigned char route_dotdot16[16] __attribute__((aligned(16))) = {'.', '.'};
struct route_tab route_tab;
const char route_dot = '.';
const unsigned char route_dots16[16] __attribute__((aligned(16))) = {'.', '.', '.', '.', '.', '.', '.', '.',
                                                                     '.', '.', '.', '.', '.', '.', '.', '.'};
#endif

/* The cwd as last seen (real path, or the virtual path when CWD_VIRTUAL). */
static pthread_mutex_t cwd_lock = PTHREAD_MUTEX_INITIALIZER;
static char cwd_buf[PATH_MAX];
static char shadow_root[64];
/* Stand-ins for ancestors of mount prefixes that do not exist on disk, opened by
 * descriptor (route_open_ancestor): a directory made under anc_root, opened, then
 * removed, so the descriptor names a dead, empty directory. The kernel finds nothing in
 * it and creates nothing in it (ENOENT), so a walk down from it (openat, fstatat: rsync
 * 3.5 from "/") fails there and is routed, and a write through it fails as the same
 * write by path fails, instead of landing under /tmp. Its path (/proc/self/fd) still
 * names the virtual directory: anc_root/UNIQUE/VPATH " (deleted)". */
static char anc_root[64];
static _Atomic unsigned anc_serial;

static const char LITERAL_PREFIX[] = "s3:";

/* The first components of the absolute mount prefixes ("s3" of /s3, "mnt" of /mnt/d), so
 * that "/sys/..." or "/srv/..." under a mount at /s3 passes without being normalised.
 * The prefixes live as long as the process. More mounts than fit: every path whose
 * first letter matches is looked at closely, as before this table. */
#define ROUTE_FIRST_MAX 64
static struct {
    const char *s;
    size_t n;
} route_first[ROUTE_FIRST_MAX];
static int route_nfirst = -1; /* -1: too many mounts to list */

int route_first_maybe(const char *q)
{
    if (route_nfirst < 0) return 1;
    for (int i = 0; i < route_nfirst; i++) {
        const char *s = route_first[i].s, *e = s + route_first[i].n;
        const char *c = q;
        while (s < e && *s == *c) s++, c++; /* stops at q's NUL: no prefix has one */
        if (s == e && (*c == '/' || *c == '\0')) return 1;
    }
    return 0;
}

#ifdef ROUTE_VECTOR_SCAN
static struct route_lead_ent route_lead_ents[ROUTE_FIRST_MAX];

/* Has route_first[i] the same component as one before it? */
static int first_seen(int i)
{
    for (int k = 0; k < i; k++)
        if (route_first[k].n == route_first[i].n && memcmp(route_first[k].s, route_first[i].s, route_first[i].n) == 0)
            return 1;
    return 0;
}

/* route_tab from route_lead and route_first (see route_scan.h). On AVX2 or SSE4.2 CPUs a
 * letter that starts mounts' first components gets their entries, side by side; '/',
 * '.', NUL, a component over 29 bytes or too many mounts send theirs to the routed path. */
static void route_tab_init(void)
{
    _Static_assert(offsetof(struct route_tab, lead) == 256, "the asm reads lead at cls + 256");
    memset(route_lead_ents, 0, sizeof route_lead_ents);
    int used = 0;
    for (int c = 0; c < 256; c++) {
        route_tab.lead[c] = NULL;
        if (route_plain) { /* the asm's scans are never run: see route_plain */
            route_tab.cls[c] = ROUTE_CLS_ROUTED;
            continue;
        }
        if (!route_lead[c]) {
            route_tab.cls[c] = route_avx2 ? ROUTE_CLS_AVX2 : ROUTE_CLS_SSE;
            continue;
        }
        route_tab.cls[c] = ROUTE_CLS_ROUTED;
        if (c == 0 || c == '/' || c == '.' || route_nfirst < 0 || (!route_avx2 && !route_sse42)) continue;
        int first = used, too_long = 0;
        for (int i = 0; i < route_nfirst; i++) {
            size_t n = route_first[i].n;
            if ((unsigned char)route_first[i].s[0] != c || first_seen(i)) continue;
            if (n > 29) {
                too_long = 1;
                break;
            }
            struct route_lead_ent *e = &route_lead_ents[used++];
            e->pat[0] = '/';
            memcpy(e->pat + 1, route_first[i].s, n);
            e->pat[n + 1] = '/';
            memset(e->care, 0xff, n + 2);
            if (e != &route_lead_ents[first]) e[-1].pat[31] = 1; /* another follows */
        }
        if (too_long || used == first) continue;
        route_tab.cls[c] = !route_avx2 ? ROUTE_CLS_LEAD_SSE42 : used - first == 1 ? ROUTE_CLS_LEAD1 : ROUTE_CLS_LEADN;
        route_tab.lead[c] = &route_lead_ents[first];
    }
}
#endif

void route_init(void)
{
    memset(route_lead, 0, sizeof route_lead);
    route_nfirst = 0;
    for (int i = 0; i < shim.mounts.n; i++) {
        const char *p = shim.mounts.m[i].prefix; /* normalised: "/a/b", never "/" */
        if (p[0] != '/') continue;
        route_lead[(unsigned char)p[1]] = 1;
        if (route_nfirst < 0) continue;
        if (route_nfirst == ROUTE_FIRST_MAX) {
            route_nfirst = -1;
            continue;
        }
        const char *e = strchr(p + 1, '/');
        route_first[route_nfirst].s = p + 1;
        route_first[route_nfirst].n = e ? (size_t)(e - (p + 1)) : strlen(p + 1);
        route_nfirst++;
    }
    route_lead[0] = 1;                     /* "/" itself: an ancestor of every mount */
    route_lead['/'] = route_lead['.'] = 1; /* "//x", "/./x", "/..": normalised first */
#if defined(__SSE2__)
    __builtin_cpu_init(); /* we run in a constructor, maybe before libgcc's own */
    if (__builtin_cpu_supports("avx2")) route_has_dotdot = dotdot_avx2;
#endif
    route_plain = sys_under_valgrind();
    if (route_plain) route_has_dotdot = dotdot_plain;
#ifdef ROUTE_VECTOR_SCAN
    /* S3SHIM_NO_AVX2 (testing): 1 as on a CPU without AVX2, "sse2" without SSE4.2 too */
    const char *no_avx2 = getenv("S3SHIM_NO_AVX2");
    route_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") && !no_avx2;
    route_sse42 = __builtin_cpu_supports("sse4.2") && !(no_avx2 && strcmp(no_avx2, "sse2") == 0);
    route_tab_init();
#endif
    snprintf(shadow_root, sizeof shadow_root, "/tmp/.s3shim-cwd-%u", (unsigned)getuid());
    snprintf(anc_root, sizeof anc_root, "/tmp/.s3shim-anc-%u", (unsigned)getuid());
    atomic_store(&route_cwd_state, CWD_UNKNOWN);
}

static int is_literal(const char *p) { return strncmp(p, LITERAL_PREFIX, 3) == 0; }

/* Is a real directory inside a mount, or an ancestor of one? */
static int near_mount(const char *dir)
{
    for (int i = 0; i < shim.mounts.n; i++) {
        const struct mount *m = &shim.mounts.m[i];
        if (m->prefix[0] != '/') continue;
        if (path_under(dir, m->prefix, m->plen) || path_under(m->prefix, dir, strlen(dir))) return 1;
    }
    return 0;
}

/* Is a normalised foreign path a directory above some mount prefix ("/mnt" for /mnt/m)? */
static int above_mount(const char *path)
{
    size_t n = strlen(path);
    for (int i = 0; i < shim.mounts.n; i++) {
        const struct mount *m = &shim.mounts.m[i];
        if (m->prefix[0] == '/' && m->plen > n && path_under(m->prefix, path, n)) return 1;
    }
    return 0;
}

/* The virtual path an ancestor's stand-in (its path as /proc/self/fd shows it) stands
 * for, in out; NULL if rpath is not one. */
const char *route_standin_vpath(const char *rpath, char *out, size_t size)
{
    static const char dead[] = " (deleted)";
    size_t al = strlen(anc_root), n = strlen(rpath), dl = sizeof dead - 1;
    if (strncmp(rpath, anc_root, al) != 0 || rpath[al] != '/' || n < dl || strcmp(rpath + n - dl, dead) != 0)
        return NULL;
    const char *v = strchr(rpath + al + 1, '/'); /* past UNIQUE */
    if (!v || (size_t)(v - rpath) >= n - dl || n - dl - (size_t)(v - rpath) >= size) return NULL;
    memcpy(out, v, n - dl - (size_t)(v - rpath));
    out[n - dl - (size_t)(v - rpath)] = '\0';
    return above_mount(out) ? out : NULL;
}

static void chdir_shadow(const char *vpath);

/* With cwd_lock held: make cwd_buf and the state current. */
static int cwd_refresh_locked(void)
{
    int st = atomic_load(&route_cwd_state);
    if (st != CWD_UNKNOWN) return st;
    char real_cwd[PATH_MAX], vpath[PATH_MAX];
    if (!REAL(getcwd)(real_cwd, sizeof real_cwd)) {
        ssize_t n = errno == ENOENT ? REAL(readlink)("/proc/self/cwd", real_cwd, sizeof real_cwd - 1) : -1;
        if (n > 0) real_cwd[n] = '\0';
        if (n > 0 && route_standin_vpath(real_cwd, vpath, sizeof vpath)) { /* fchdir to a stand-in */
            chdir_shadow(vpath); /* a live directory, for the programs it execs */
            snprintf(cwd_buf, sizeof cwd_buf, "%s", vpath);
            st = CWD_VIRTUAL;
        } else {
            cwd_buf[0] = '\0';
            st = CWD_FAR; /* unreachable cwd: relative paths cannot name a mount we can see */
        }
    } else {
        size_t sl = strlen(shadow_root);
        const char *v = real_cwd + sl;
        if (strncmp(real_cwd, shadow_root, sl) == 0 && v[0] == '/' && v[1]) {
            /* Inherited virtual cwd: shadow_root + "/s3:/b" or shadow_root + "/data/x". */
            const char *vp = v + 1;
            if (is_literal(vp))
                snprintf(cwd_buf, sizeof cwd_buf, "%s", vp);
            else
                snprintf(cwd_buf, sizeof cwd_buf, "%s", v);
            const char *key;
            st = mnt_route(&shim.mounts, cwd_buf, &key) || above_mount(cwd_buf) ? CWD_VIRTUAL : CWD_FAR;
            if (st == CWD_FAR) snprintf(cwd_buf, sizeof cwd_buf, "%s", real_cwd);
        } else {
            snprintf(cwd_buf, sizeof cwd_buf, "%s", real_cwd);
            st = near_mount(real_cwd) || route_plain ? CWD_NEAR : CWD_FAR; /* NEAR: routed in C */
        }
    }
    atomic_store(&route_cwd_state, st);
    return st;
}

/* Join base (absolute or "s3:/...") and a relative path into out. */
static int join(const char *base, const char *rel, char *out, size_t size)
{
    if (is_literal(base)) {
        if (path_join(base + 3, rel, out + 3, size - 3) < 0) return -1;
        memcpy(out, LITERAL_PREFIX, 3);
        return 0;
    }
    return path_join(base, rel, out, size) < 0 ? -1 : 0;
}

/* Aligned blocks of 16 (SSE2) or 32 (AVX2) bytes. Loads are aligned, so they never
 * cross into an unmapped page; bytes before the start and after the terminating NUL are
 * masked off. Like glibc's own string functions this reads past the string inside its
 * last block, which AddressSanitizer would report, so the functions are not
 * instrumented. A path of a few dozen bytes takes one or two AVX2 blocks. */
#if defined(__SSE2__)
__attribute__((no_sanitize("address", "thread")))
static int dotdot_sse2(const char *p)
{
    const __m128i dot = _mm_set1_epi8('.'), zero = _mm_setzero_si128();
    uintptr_t mis = (uintptr_t)p & 15;
    const __m128i *v = (const __m128i *)(p - mis);
    unsigned carry = 0; /* the previous block ended in '.' */
    unsigned keep = 0xffffu << mis;
    for (;; v++, keep = 0xffffu) {
        __m128i x = _mm_load_si128(v);
        unsigned nul = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, zero)) & keep;
        unsigned d = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, dot)) & keep;
        if (nul) d &= (nul & -nul) - 1; /* only bytes before the NUL */
        if ((d & ((d << 1) | carry)) != 0) return 1;
        if (nul) return 0;
        carry = (d >> 15) & 1;
    }
}

__attribute__((no_sanitize("address", "thread"), target("avx2")))
static int dotdot_avx2(const char *p)
{
    const __m256i dot = _mm256_set1_epi8('.'), zero = _mm256_setzero_si256();
    uintptr_t mis = (uintptr_t)p & 31;
    const __m256i *v = (const __m256i *)(p - mis);
    uint32_t carry = 0;
    uint32_t keep = 0xffffffffu << mis;
    for (;; v++, keep = 0xffffffffu) {
        __m256i x = _mm256_load_si256(v);
        uint32_t nul = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, zero)) & keep;
        uint32_t d = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, dot)) & keep;
        if (nul) d &= (nul & -nul) - 1;
        if ((d & ((d << 1) | carry)) != 0) return 1;
        if (nul) return 0;
        carry = d >> 31;
    }
}

int (*route_has_dotdot)(const char *p) = dotdot_sse2;
#else
int (*route_has_dotdot)(const char *p) = dotdot_plain;
#endif

/* How a path ends, which normalisation forgets: "x/", "x/." and "x/.." name directories. */
static int trail_of(const char *p)
{
    size_t n = strlen(p);
    if (n == 0) return TRAIL_NONE;
    if (p[n - 1] == '/') return n > 1 ? TRAIL_SLASH : TRAIL_NONE;
    if (p[n - 1] == '.' && (n == 1 || p[n - 2] == '/')) return TRAIL_DOT;
    if (n >= 2 && p[n - 1] == '.' && p[n - 2] == '.' && (n == 2 || p[n - 3] == '/')) return TRAIL_DOTDOT;
    return TRAIL_NONE;
}

int route_slow(int dirfd, const char *p, struct route *r, int flags)
{
    if (guard_active() || !atomic_load_explicit(&shim.ready, memory_order_acquire)) return ROUTE_FOREIGN;
    int rewritten = 0;
    if (p[0] == 's' && p[1] == '3' && p[2] == ':' && p[3] == '/' && p[4] == '/') {
        /* Literal s3://BUCKET/KEY: canonical form "s3:/BUCKET/KEY". */
        if (path_normalize(p + 4, r->path + 3, sizeof r->path - 3) < 0) {
            errno = ENAMETOOLONG;
            return ROUTE_ERROR;
        }
        memcpy(r->path, LITERAL_PREFIX, 3);
    } else if (p[0] == '/') {
        if (path_normalize(p, r->path, sizeof r->path) < 0) {
            errno = ENAMETOOLONG;
            return ROUTE_ERROR;
        }
    } else if (p[0] == '\0' && !(flags & AT_EMPTY_PATH)) {
        return ROUTE_FOREIGN; /* libc reports ENOENT */
    } else if (dirfd != AT_FDCWD) {
        struct ofd *o = fdt_get(dirfd);
        if (!o) return ROUTE_FOREIGN;
        int isdir = o->type == OFD_DIR;
        int ok = isdir ? join(ofd_path(o), p, r->path, sizeof r->path) : 0;
        if (!isdir && p[0] == '\0') { /* AT_EMPTY_PATH on a file */
            snprintf(r->path, sizeof r->path, "%s", ofd_path(o));
            isdir = 1;
        }
        ofd_put(o);
        if (!isdir) {
            errno = ENOTDIR;
            return ROUTE_ERROR;
        }
        if (ok < 0) {
            errno = ENAMETOOLONG;
            return ROUTE_ERROR;
        }
        rewritten = 1;
    } else {
        pthread_mutex_lock(&cwd_lock);
        int st = cwd_refresh_locked();
        int ok = 0;
        if (st == CWD_FAR && !(p[0] == '.' && p[1] == '.') && !strstr(p, "/..")) {
            pthread_mutex_unlock(&cwd_lock);
            return ROUTE_FOREIGN;
        }
        ok = cwd_buf[0] ? join(cwd_buf, p, r->path, sizeof r->path) : -1;
        pthread_mutex_unlock(&cwd_lock);
        if (ok < 0) return ROUTE_FOREIGN;
        rewritten = st == CWD_VIRTUAL;
    }
    const char *key;
    struct mount *m = mnt_route(&shim.mounts, r->path, &key);
    if (m) {
        r->m = m;
        r->key = key;
        r->trail = trail_of(p);
        return ROUTE_OURS;
    }
    if (rewritten) r->pass = r->path; /* relative to a virtual directory: now absolute */
    r->ancestor = r->path[0] == '/' && above_mount(r->path);
    return ROUTE_FOREIGN;
}

int route_real_dirfd(int dirfd, const char *p, struct route *r)
{
    if (dirfd < 0 || !p || !p[0] || p[0] == '/' || fdt_is_ours(dirfd) || guard_active() ||
        !atomic_load_explicit(&shim.ready, memory_order_acquire))
        return ROUTE_FOREIGN;
    char link[40], dir[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t n = REAL(readlink)(link, dir, sizeof dir - 1);
    if (n <= 0 || dir[0] != '/') return ROUTE_FOREIGN;
    dir[n] = '\0';
    char vdir[PATH_MAX];
    const char *d = route_standin_vpath(dir, vdir, sizeof vdir) ? vdir : dir;
    if (!above_mount(d)) return ROUTE_FOREIGN; /* only the directories above a mount prefix */
    if (path_join(d, p, r->path, sizeof r->path) < 0) return ROUTE_FOREIGN;
    const char *key;
    struct mount *m = mnt_route(&shim.mounts, r->path, &key);
    if (!m) {
        r->ancestor = above_mount(r->path); /* (r->path: the joined path, for the caller) */
        return ROUTE_FOREIGN;
    }
    r->m = m;
    r->key = key;
    r->trail = trail_of(p);
    r->ancestor = 0;
    return ROUTE_OURS;
}

void route_cwd_changed(void) { atomic_store(&route_cwd_state, CWD_UNKNOWN); }

/* mkdir -p of the shadow directory for vpath; returns 0 if it exists afterwards. */
static int shadow_mkdirs(const char *shadow, const char *root)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", shadow);
    size_t sl = strlen(root);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (REAL(mkdir)(tmp, 0700) != 0 && errno != EEXIST) return -1;
        if ((size_t)(s - tmp) == sl) { /* the root itself must be ours */
            struct stat st;
            if (REAL(lstat)(tmp, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) return -1;
        }
        *s = '/';
    }
    return REAL(mkdir)(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* chdir to the shadow directory of vpath, which exec'd programs map back to it. */
static void chdir_shadow(const char *vpath)
{
    char shadow[PATH_MAX];
    int n = snprintf(shadow, sizeof shadow, "%s%s%s", shadow_root, vpath[0] == '/' ? "" : "/", vpath);
    if (n <= 0 || (size_t)n >= sizeof shadow || shadow_mkdirs(shadow, shadow_root) != 0 || REAL(chdir)(shadow) != 0)
        slog_info("virtual cwd %s is not inherited by child programs (no shadow directory)", vpath);
}

int route_chdir_virtual(const char *vpath)
{
    pthread_mutex_lock(&cwd_lock);
    chdir_shadow(vpath);
    snprintf(cwd_buf, sizeof cwd_buf, "%s", vpath);
    atomic_store(&route_cwd_state, CWD_VIRTUAL);
    pthread_mutex_unlock(&cwd_lock);
    return 0;
}

int route_open_ancestor(const char *vpath, int flags)
{
    char dir[PATH_MAX];
    size_t base = 0; /* the length of anc_root/PID-N, a directory made here */
    int fd = -1;
    snprintf(dir, sizeof dir, "%s/", anc_root);
    if (vpath[0] == '/' && shadow_mkdirs(dir, anc_root) == 0)
        for (int tries = 0; tries < 100 && !base; tries++) {
            int n = snprintf(dir, sizeof dir, "%s/%ld-%u", anc_root, (long)getpid(), atomic_fetch_add(&anc_serial, 1));
            if (n <= 0 || (size_t)n >= sizeof dir) break;
            if (REAL(mkdir)(dir, 0700) == 0) base = (size_t)n;
            else if (errno != EEXIST) break;
        }
    if (!base) {
        errno = ENOENT;
        return -1;
    }
    if ((size_t)snprintf(dir + base, sizeof dir - base, "%s", vpath) < sizeof dir - base &&
        shadow_mkdirs(dir, anc_root) == 0)
        fd = REAL(open)(dir, flags & (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    int e = errno;
    for (size_t i = strlen(dir); i >= base; i--) /* remove it all, the leaf first */
        if (dir[i] == '/' || dir[i] == '\0') {
            dir[i] = '\0';
            REAL(rmdir)(dir);
        }
    if (fd < 0) errno = e;
    return fd;
}

void route_display(const char *vpath, char *buf, size_t size)
{
    if (is_literal(vpath))
        snprintf(buf, size, "s3://%s", vpath + 4);
    else
        snprintf(buf, size, "%s", vpath);
}

int route_getcwd_virtual(char *buf, size_t size)
{
    pthread_mutex_lock(&cwd_lock);
    int st = cwd_refresh_locked();
    int n = 0;
    if (st == CWD_VIRTUAL) {
        char disp[PATH_MAX + 8];
        route_display(cwd_buf, disp, sizeof disp);
        size_t len = strlen(disp);
        if (len + 1 > size)
            n = -ERANGE;
        else {
            memcpy(buf, disp, len + 1);
            n = (int)len;
        }
    }
    pthread_mutex_unlock(&cwd_lock);
    return n;
}

void route_atfork_child(void)
{
    pthread_mutex_init(&cwd_lock, NULL);
}
