/* s3_gen.c - see s3_gen.h */
#include "../sys.h"
#include "s3_gen.h"

#include "../log.h"
#include "s3.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GEN_DIR "/dev/shm"
#define GEN_SIZE (sizeof(uint64_t) * (S3GEN_SLOTS + 1)) /* the counters, then the once-flags */

static _Atomic(_Atomic uint64_t *) table;     /* the shared or the private table, once chosen */
static _Atomic uint64_t private_table[S3GEN_SLOTS + 1];
static _Atomic long root_pid;                 /* the run's first process; 0 = no run */
static char gen_path[80];                     /* set once with root_pid */
static _Atomic int is_shared;

void s3_gen_init(void)
{
    if (atomic_load(&root_pid)) return;
    const char *v = getenv("S3SHIM_ROOT_PID");
    char *end;
    long pid = v && *v ? strtol(v, &end, 10) : 0;
    if (pid <= 0 || *end) return;
    long zero = 0;
    if (!atomic_compare_exchange_strong(&root_pid, &zero, -1)) return; /* another thread is at it */
    snprintf(gen_path, sizeof gen_path, GEN_DIR "/s3shim-gen-%u-%ld", (unsigned)geteuid(), pid);
    atomic_store(&root_pid, pid);
}

/* Remove the files of runs whose first process is gone (killed before it could). */
static void sweep(long self)
{
    DIR *d = sys.opendir(GEN_DIR);
    if (!d) return;
    char pre[48];
    int pl = snprintf(pre, sizeof pre, "s3shim-gen-%u-", (unsigned)geteuid());
    struct dirent *e;
    while ((e = sys.readdir(d))) {
        if (strncmp(e->d_name, pre, (size_t)pl) != 0) continue;
        char *end;
        long pid = strtol(e->d_name + pl, &end, 10);
        if (pid <= 0 || *end || pid == self) continue;
        if (kill((pid_t)pid, 0) < 0 && errno == ESRCH) sys.unlinkat(sys.dirfd(d), e->d_name, 0);
    }
    sys.closedir(d);
}

/* Map the run's file, creating it if this is the first process of the run to need it. */
static _Atomic uint64_t *map_shared(void)
{
    long pid = atomic_load(&root_pid);
    if (pid <= 0) return NULL;
    int created = 1;
    int fd = sys.open(gen_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        created = 0;
        fd = sys.open(gen_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        slog_debug("s3: %s: %s; stat answers are shared by TTL only", gen_path, strerror(errno));
        return NULL;
    }
    struct stat st;
    void *p = MAP_FAILED;
    /* Only a file of ours that nobody else may write: anything else is ignored. */
    if (sys.fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 077) &&
        ((size_t)st.st_size >= GEN_SIZE || sys.ftruncate(fd, (off_t)GEN_SIZE) == 0))
        p = sys.mmap(NULL, GEN_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    else
        slog_warn("s3: %s is not a private file of this user; stat answers are shared by TTL only", gen_path);
    sys.close(fd);
    if (p == MAP_FAILED) return NULL;
    if (created) sweep(pid);
    return p;
}

static __attribute__((noinline, cold)) _Atomic uint64_t *attach(void)
{
    _Atomic uint64_t *t = map_shared();
    _Atomic uint64_t *want = t ? t : private_table, *none = NULL;
    if (!atomic_compare_exchange_strong(&table, &none, want)) { /* another thread won */
        if (t) munmap((void *)t, GEN_SIZE);
        return none;
    }
    if (t) atomic_store(&is_shared, 1);
    return want;
}

static inline _Atomic uint64_t *tab(void)
{
    _Atomic uint64_t *t = atomic_load_explicit(&table, memory_order_acquire);
    return __builtin_expect(t != NULL, 1) ? t : attach();
}

static inline uint64_t step(uint64_t h, unsigned char c) { return (h ^ c) * 1099511628211ull; }
static inline unsigned slot(uint64_t h) { return (unsigned)((h ^ (h >> 29) ^ (h >> 47)) & (S3GEN_SLOTS - 1)); }

static uint64_t bucket_hash(const char *bucket)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *s = bucket; *s; s++) h = step(h, (unsigned char)*s);
    return step(h, '/');
}

static size_t key_len(const char *key)
{
    size_t n = strlen(key);
    while (n && key[n - 1] == '/') n--;
    return n;
}

unsigned s3_gen_slot(const char *bucket, const char *key)
{
    uint64_t h = bucket_hash(bucket);
    size_t n = key_len(key);
    for (size_t i = 0; i < n; i++) h = step(h, (unsigned char)key[i]);
    return slot(h);
}

uint64_t s3_gen_at(unsigned i) { return atomic_load(&tab()[i & (S3GEN_SLOTS - 1)]); }

uint64_t s3_gen_get(const char *bucket, const char *key) { return s3_gen_at(s3_gen_slot(bucket, key)); }

uint64_t s3_gen_bump(const char *bucket, const char *key)
{
    _Atomic uint64_t *t = tab();
    uint64_t h = bucket_hash(bucket);
    size_t n = key_len(key);
    if (n == 0) return atomic_fetch_add(&t[slot(h)], 1);
    atomic_fetch_add(&t[slot(h)], 1); /* the bucket: its listing changed */
    for (size_t i = 0; i < n; i++) {
        if (key[i] == '/' && i > 0 && key[i - 1] != '/') atomic_fetch_add(&t[slot(h)], 1); /* a directory above */
        h = step(h, (unsigned char)key[i]);
    }
    return atomic_fetch_add(&t[slot(h)], 1);
}

int s3_gen_once(unsigned bit)
{
    uint64_t b = 1ull << (bit & 63);
    return !(atomic_fetch_or(&tab()[S3GEN_SLOTS], b) & b);
}

int s3_gen_shared(void)
{
    tab();
    return atomic_load(&is_shared);
}

const char *s3_gen_path(void) { return atomic_load(&root_pid) > 0 ? gen_path : ""; }

void bk_s3_at_exit(void)
{
    long pid = atomic_load(&root_pid);
    if (pid > 0 && pid == (long)getpid()) sys.unlink(gen_path);
}

/* The run's first process removes the file when it exits (by name: it may never have
 * mapped it itself). Programs that end with _exit() skip destructors: without a call of
 * bk_s3_at_exit() there, the next run's sweep removes it. */
__attribute__((destructor)) static void gen_fini(void) { bk_s3_at_exit(); }
