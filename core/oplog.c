/* oplog.c - the op log recorder (see oplog.h, docs/oplog.md).
 *
 * The calling thread appends a 64-byte record to its own chunk of a file mapped
 * MAP_SHARED: no lock, no system call, no copy. The kernel's writeback is the background
 * writer; the page cache holds every record from the moment it is stored, so nothing is
 * lost when the process exits by any route, execs, or is killed. Locks are taken only to
 * claim a chunk (once per 1023 records of a thread), to intern a new string, and at fork
 * and exit. The file grows 4 MiB at a time with fallocate (so that a full disk is an
 * error here, never a SIGBUS in the program) and is cut back to its last chunk when the
 * program image ends. In a multi-threaded program a helper thread grows, maps and
 * prefaults the next 4 MiB ahead of the writers, so page faults stay off their threads;
 * in a single-threaded one (or a forked child) the writer grows and maps it and the
 * kernel's io_uring worker faults it in (oplog_ring.c), so glibc stays single-threaded. */
#define _GNU_SOURCE 1
#include "oplog.h"

#include "efd.h"
#include "log.h"
#include "mount.h"
#include "oplog_ring.h"
#include "stats.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#define SEG_BYTES ((uint64_t)OPLOG_CHUNK * OPLOG_SEG_CHUNKS)
#define MAX_SEGS 65536u /* 64 GiB per program image */
#define PAYLOAD (OPLOG_CHUNK - sizeof(struct oplog_chunk_hdr))
#define RECS_PER_CHUNK ((uint32_t)(PAYLOAD / sizeof(struct oplog_rec)))
#define MAX_STR 4000u

static const char *const op_names[OL_NOPS] = {"?",    "open",     "close", "read", "write", "stat", "fstat", "opendir",
                                              "meta", "sync", "truncate", "lseek", "req", "dup"};

const char *oplog_op_name(unsigned op) { return op < OL_NOPS ? op_names[op] : "?"; }

/* --- CRC-32C (Castagnoli), ISA-L's (as block://'s): it folds several streams of the CPU's
 * crc32 instruction at once, about 3x the one-stream loop on a sealed 64 KiB chunk. --- */

uint32_t oplog_crc32c(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    crc = ~crc;
    for (; n > INT32_MAX; n -= INT32_MAX, b += INT32_MAX) crc = crc32_iscsi((unsigned char *)(uintptr_t)b, INT32_MAX, crc);
    return ~crc32_iscsi((unsigned char *)(uintptr_t)b, (int)n, crc);
}

/* --- state ------------------------------------------------------------------------------- */

int oplog_on;
__thread int oplog_fd __attribute__((tls_model("initial-exec")));

struct olt { /* one thread's writer */
    struct olt *next;
    struct oplog_chunk_hdr *ch;
    uint64_t idx; /* ch's chunk number */
    uint32_t n, gen;
    uint64_t seq;
    int32_t tid;
    int dead;
};
static __thread struct olt *self __attribute__((tls_model("initial-exec")));

struct istr {
    UT_hash_handle hh;
    uint32_t id;
    uint16_t kind, len;
    char s[]; /* the kind as one byte, then the text: the hash key */
};

static struct {
    pthread_mutex_t mu;  /* strings, threads, opening the file, sealing */
    pthread_mutex_t map; /* claiming chunks, growing and mapping the file (after mu) */
    char spec[PATH_MAX - 64];
    int dir, root;
    const struct mount_table *mt;
    uint32_t gen; /* changes in a forked child: thread writers of the parent are stale */
    int fd, failed;
    struct oplog_file_hdr *_Atomic hdr;
    char *_Atomic seg[MAX_SEGS];
    unsigned nseg; /* segments ever mapped: bounds the walk at fork */
    uint8_t done[MAX_SEGS]; /* chunks of a segment their writer is finished with */
    uint64_t fsize;
    uint16_t session;
    struct oplog_chunk_hdr *sch; /* strings chunk being filled */
    uint64_t sidx;
    uint32_t sused;
    struct istr *strs;
    uint32_t next_id, next_ep;
    struct olt *threads;
    uint64_t retired;  /* records of threads that have exited (this image) */
    uint32_t nthreads; /* threads that logged (this image) */
    _Atomic uint64_t wait_ns, lost;
    pthread_key_t key;
    char path[PATH_MAX];
    /* the helper thread that readies segments ahead of the writers (map held) */
    pthread_cond_t cv;
    int ahead_up, ahead_stop;
    uint64_t ahead_want; /* segment to ready next, 0 = none */
    char *unmap[8];      /* finished segments for the helper to unmap */
    unsigned nunmap;
    int no_ring; /* oplog_ring.c cannot fault segments in for us */
} G = {.mu = PTHREAD_MUTEX_INITIALIZER, .map = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .fd = -1, .gen = 1};

static void now_pair(uint64_t *mono, uint64_t *wall)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_REALTIME, &b);
    *mono = (uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec;
    *wall = (uint64_t)b.tv_sec * 1000000000u + (uint64_t)b.tv_nsec;
}

static uint64_t start_ticks(void)
{
    char buf[1024];
    if (sys_read_small("/proc/self/stat", buf, sizeof buf) < 0) return 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    /* fields after ')': 3 state ... 22 starttime */
    for (int f = 2; f < 22 && p; f++) p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* --- the file ------------------------------------------------------------------------------ */

/* Make the file at least `size` bytes, blocks allocated (map held). */
static int grow_locked(uint64_t size)
{
    if (size <= G.fsize) return 0;
    uint64_t want = (size + SEG_BYTES - 1) / SEG_BYTES * SEG_BYTES;
    int r = sys.fallocate(G.fd, 0, (off_t)G.fsize, (off_t)(want - G.fsize));
    if (r < 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) r = sys.ftruncate(G.fd, (off_t)want);
    if (r < 0) {
        if (!G.failed) slog_error("S3SHIM_OPLOG: cannot grow '%s': %s; later records are lost", G.path, strerror(errno));
        G.failed = 1;
        return -1;
    }
    G.fsize = want;
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Map segment s and fault its first `ready` bytes in writable in one call, instead of a
 * page fault (and a filesystem page_mkwrite) every 64 records on the callers' threads. */
static char *seg_map(uint64_t s, size_t ready)
{
    char *p = sys.mmap(NULL, SEG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, G.fd, (off_t)(s * SEG_BYTES));
    if (p == MAP_FAILED) return NULL;
    madvise(p, ready, MADV_POPULATE_WRITE);
    return p;
}

static void seg_publish(uint64_t s, char *p)
{
    atomic_store_explicit(&G.seg[s], p, memory_order_release);
    if (s + 1 > G.nseg) G.nseg = (unsigned)s + 1;
}

/* Segment s, mapped here when the helper has not readied it (map held). Only its first
 * two chunks are faulted in at once: a short program (one `cat`) would otherwise pay 3-4 ms
 * to ready 4 MiB it never writes; the rest faults in as records reach it. */
static char *seg_locked(uint64_t s)
{
    char *p = atomic_load_explicit(&G.seg[s], memory_order_acquire);
    if (p) return p;
    if (!(p = seg_map(s, 2 * (size_t)OPLOG_CHUNK))) {
        slog_error("S3SHIM_OPLOG: cannot map '%s': %s", G.path, strerror(errno));
        return NULL;
    }
    seg_publish(s, p);
    return p;
}

/* --- the helper: the next segment allocated, mapped and faulted in before a writer
 * needs it, and finished segments unmapped, off the callers' threads. It only does what
 * a caller would otherwise do itself in claim(), so the log is the same without it. --- */

static void *ahead_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&G.map);
    while (!G.ahead_stop) {
        if (G.nunmap) {
            char *p = G.unmap[--G.nunmap];
            pthread_mutex_unlock(&G.map);
            munmap(p, SEG_BYTES);
            pthread_mutex_lock(&G.map);
            continue;
        }
        uint64_t s = G.ahead_want;
        if (!s) {
            pthread_cond_wait(&G.cv, &G.map);
            continue;
        }
        G.ahead_want = 0;
        if (s >= MAX_SEGS || atomic_load(&G.seg[s]) || grow_locked((s + 1) * SEG_BYTES) < 0) continue;
        pthread_mutex_unlock(&G.map);
        char *p = seg_map(s, SEG_BYTES);
        pthread_mutex_lock(&G.map);
        if (!p) continue; /* claim() maps it itself, and says why it cannot */
        if (G.ahead_stop || atomic_load(&G.seg[s]) || G.done[s]) munmap(p, SEG_BYTES);
        else seg_publish(s, p);
    }
    G.ahead_up = 0;
    pthread_mutex_unlock(&G.map);
    return NULL;
}

/* Start the helper (mu held, once per process image, when the program is multi-threaded;
 * never in a forked child). Without it callers do the work themselves. */
static void ahead_start(void)
{
    pthread_mutex_lock(&G.map);
    int want = !G.ahead_up && !G.ahead_stop;
    if (want) G.ahead_up = 1;
    pthread_mutex_unlock(&G.map);
    if (!want) return;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the program's signals are not ours */
    pthread_t th;
    int e = pthread_create(&th, &a, ahead_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    if (e) {
        pthread_mutex_lock(&G.map);
        G.ahead_up = 0;
        G.ahead_stop = 1;
        pthread_mutex_unlock(&G.map);
    }
}

/* The writer of chunk idx will not touch it again: once every chunk of a segment is in
 * that state the segment is unmapped, so a long run's log does not stay mapped (and
 * counted in the program's RSS). Segment 0 holds the file header and stays. */
static void release(uint64_t idx)
{
    uint64_t s = idx / OPLOG_SEG_CHUNKS;
    pthread_mutex_lock(&G.map);
    if (s < MAX_SEGS && ++G.done[s] == OPLOG_SEG_CHUNKS && s != 0) {
        char *p = atomic_load(&G.seg[s]);
        atomic_store(&G.seg[s], NULL);
        if (p && G.ahead_up && G.nunmap < sizeof G.unmap / sizeof G.unmap[0]) {
            G.unmap[G.nunmap++] = p;
            pthread_cond_signal(&G.cv);
        } else if (p) {
            munmap(p, SEG_BYTES);
        }
    }
    pthread_mutex_unlock(&G.map);
}

/* Without the helper (a single-threaded program, a forked child): segment s grown and
 * mapped here, and faulted in by the kernel's io_uring worker (oplog_ring.c) while the
 * writers finish the one before (map held). */
static void ring_ahead(uint64_t s)
{
    if (grow_locked((s + 1) * SEG_BYTES) < 0) return;
    char *p = sys.mmap(NULL, SEG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, G.fd, (off_t)(s * SEG_BYTES));
    if (p == MAP_FAILED) return; /* claim() maps it itself, and says why it cannot */
    if (oplog_ring_populate(p, SEG_BYTES) < 0) {
        munmap(p, SEG_BYTES); /* no ring here: claim() maps and faults in each segment itself */
        G.no_ring = 1;
        return;
    }
    seg_publish(s, p);
}

static struct oplog_chunk_hdr *claim(unsigned type, int32_t tid, uint64_t first_seq, uint64_t *idx_out)
{
    uint64_t t0 = stats_now_ns();
    pthread_mutex_lock(&G.map);
    struct oplog_file_hdr *h = G.hdr;
    struct oplog_chunk_hdr *ch = NULL;
    uint64_t idx = h->nchunks;
    if (idx / OPLOG_SEG_CHUNKS < MAX_SEGS && grow_locked((idx + 1) * OPLOG_CHUNK) == 0) {
        char *base = seg_locked(idx / OPLOG_SEG_CHUNKS);
        if (base) {
            h->nchunks = idx + 1;
            if (idx_out) *idx_out = idx;
            ch = (struct oplog_chunk_hdr *)(base + (idx % OPLOG_SEG_CHUNKS) * OPLOG_CHUNK);
            memset(ch, 0, sizeof *ch);
            ch->type = (uint16_t)type;
            ch->session = G.session;
            ch->tid = tid;
            ch->first_seq = first_seq;
            now_pair(&ch->mono0, &ch->wall0);
            __atomic_store_n(&ch->magic, OPLOG_CHUNK_MAGIC, __ATOMIC_RELEASE);
            /* entering a segment: have the next one ready before it is needed */
            uint64_t nx = idx / OPLOG_SEG_CHUNKS + 1;
            if (G.ahead_up && !G.ahead_stop && nx < MAX_SEGS && !atomic_load(&G.seg[nx]) &&
                G.ahead_want != nx) {
                G.ahead_want = nx;
                pthread_cond_signal(&G.cv);
            } else if (!G.ahead_up && !G.no_ring && idx % OPLOG_SEG_CHUNKS >= OPLOG_SEG_CHUNKS / 2 && nx < MAX_SEGS &&
                       !atomic_load(&G.seg[nx])) {
                ring_ahead(nx); /* half way through: a short program never pays for a segment it does not use */
            }
        }
    }
    pthread_mutex_unlock(&G.map);
    atomic_fetch_add_explicit(&G.wait_ns, stats_now_ns() - t0, memory_order_relaxed);
    return ch;
}

static void seal(struct oplog_chunk_hdr *ch, uint32_t nbytes)
{
    ch->nbytes = nbytes;
    ch->crc = oplog_crc32c(0, ch + 1, nbytes);
    __atomic_store_n(&ch->sealed, 1, __ATOMIC_RELEASE);
}

/* One string entry into the strings chunk (mu held). */
static void emit(uint32_t id, unsigned kind, const char *s, size_t len)
{
    if (!G.hdr) return;
    if (len > MAX_STR) len = MAX_STR;
    size_t need = (sizeof(struct oplog_str) + len + 7) & ~(size_t)7;
    if (!G.sch || G.sused + need + sizeof(struct oplog_str) > PAYLOAD) {
        if (G.sch) {
            seal(G.sch, G.sused);
            release(G.sidx);
        }
        G.sch = claim(OLC_STRINGS, 0, 0, &G.sidx);
        G.sused = 0;
        if (!G.sch) return;
    }
    char *at = (char *)(G.sch + 1) + G.sused;
    struct oplog_str *e = (struct oplog_str *)at;
    e->kind = (uint16_t)kind;
    e->len = (uint16_t)len;
    memcpy(at + sizeof *e, s, len);
    __atomic_store_n(&e->id, id, __ATOMIC_RELEASE);
    G.sused += (uint32_t)need;
}

static size_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = sys.open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t got = 0;
    ssize_t n;
    while (got < cap && (n = sys.read(fd, buf + got, cap - got)) > 0) got += (size_t)n;
    sys.close(fd);
    return got;
}

extern char **environ;

/* What this program image is: argv, executable, mounts, S3SHIM_* settings; then every
 * string interned so far (a forked child's file starts with its parent's). (mu held) */
static void emit_session(void)
{
    static char buf[MAX_STR];
    size_t n = read_small("/proc/self/cmdline", buf, sizeof buf);
    emit(1, OLS_ARGV, buf, n);
    long l = sys.syscall(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", buf, sizeof buf); /* readlink is interposed */
    if (l > 0) emit(1, OLS_EXE, buf, (size_t)l);
    for (int i = 0; G.mt && i < G.mt->n; i++) {
        const struct mount *m = &G.mt->m[i];
        int k = snprintf(buf, sizeof buf, "%s=%s", m->prefix, m->uri);
        emit((uint32_t)i + 1, OLS_MOUNT, buf, k < (int)sizeof buf ? (size_t)k : sizeof buf - 1);
    }
    uint32_t sid = 0;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "S3SHIM_", 7) == 0) emit(++sid, OLS_SETTING, *e, strlen(*e));
    for (struct istr *s = G.strs; s; s = s->hh.next) emit(s->id, s->kind, s->s + 1, s->len);
}

static void file_name(void)
{
    long pid = (long)getpid();
    const char *pp = strstr(G.spec, "%p");
    if (G.dir)
        snprintf(G.path, sizeof G.path, "%s/%ld" OPLOG_EXT, G.spec, pid);
    else if (pp)
        snprintf(G.path, sizeof G.path, "%.*s%ld%s", (int)(pp - G.spec), G.spec, pid, pp + 2);
    else if (G.root)
        snprintf(G.path, sizeof G.path, "%s", G.spec);
    else
        snprintf(G.path, sizeof G.path, "%s.%ld", G.spec, pid);
}

/* Open (or, after exec, continue) this process's file. (mu held) */
static int open_file(void)
{
    if (G.hdr) return 0;
    if (G.failed) return -1;
    file_name();
    int fd = sys.open(G.path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        slog_error("S3SHIM_OPLOG: cannot open '%s': %s; no op log for pid %ld", G.path, strerror(errno),
                   (long)getpid());
        G.failed = 1;
        return -1;
    }
    G.fd = efd_park(fd);
    struct stat st;
    if (sys.fstat(G.fd, &st) < 0) st.st_size = 0;
    uint64_t ticks = start_ticks();
    struct oplog_file_hdr *h = NULL;
    pthread_mutex_lock(&G.map);
    G.fsize = (uint64_t)st.st_size;
    if (G.fsize >= OPLOG_CHUNK) { /* ours before an exec? */
        h = (struct oplog_file_hdr *)seg_locked(0);
        if (h && !(memcmp(h->magic, OPLOG_MAGIC, 8) == 0 && h->version == OPLOG_VERSION && h->pid == getpid() &&
                   h->start_ticks == ticks && h->nchunks >= 1)) {
            munmap(h, SEG_BYTES);
            atomic_store(&G.seg[0], NULL);
            h = NULL;
        }
    }
    if (!h) {
        G.fsize = 0;
        if (sys.ftruncate(G.fd, 0) == 0 && grow_locked(SEG_BYTES) == 0) h = (struct oplog_file_hdr *)seg_locked(0);
        if (h) {
            memset(h, 0, sizeof *h);
            memcpy(h->magic, OPLOG_MAGIC, 8);
            h->version = OPLOG_VERSION;
            h->chunk_size = OPLOG_CHUNK;
            h->rec_size = sizeof(struct oplog_rec);
            h->chdr_size = sizeof(struct oplog_chunk_hdr);
            h->pid = getpid();
            h->hdr_crc = oplog_crc32c(0, h, offsetof(struct oplog_file_hdr, hdr_crc));
            h->start_ticks = ticks;
            h->nchunks = 1;
        }
    }
    pthread_mutex_unlock(&G.map);
    if (!h) {
        slog_error("S3SHIM_OPLOG: cannot set up '%s'; no op log for pid %ld", G.path, (long)getpid());
        G.failed = 1;
        return -1;
    }
    G.session = (uint16_t)__atomic_fetch_add(&h->sessions, 1, __ATOMIC_RELAXED);
    atomic_store_explicit(&G.hdr, h, memory_order_release);
    G.sch = NULL;
    emit_session();
    return 0;
}

/* --- strings ------------------------------------------------------------------------------- */

/* Keyed by kind and text: a path and a call name (or a key) of the same text are two
 * strings. Endpoints have ids of their own (a record holds 16 bits of one). */
static uint32_t intern_n(unsigned kind, const char *s, size_t len)
{
    if (len > MAX_STR) len = MAX_STR;
    char k[MAX_STR + 1];
    k[0] = (char)kind;
    memcpy(k + 1, s, len);
    struct istr *e;
    pthread_mutex_lock(&G.mu);
    open_file();
    HASH_FIND(hh, G.strs, k, len + 1, e);
    if (!e && (e = malloc(sizeof *e + len + 2))) {
        e->id = kind == OLS_ENDPOINT ? ++G.next_ep : ++G.next_id;
        e->kind = (uint16_t)kind;
        e->len = (uint16_t)len;
        memcpy(e->s, k, len + 1);
        e->s[len + 1] = 0;
        HASH_ADD(hh, G.strs, s[0], len + 1, e);
        emit(e->id, kind, e->s + 1, len);
    }
    pthread_mutex_unlock(&G.mu);
    return e ? e->id : 0;
}

static uint32_t intern(unsigned kind, const char *s) { return intern_n(kind, s, strnlen(s, MAX_STR)); }

uint32_t oplog_intern_(unsigned kind, const char *s, size_t len) { return intern_n(kind, s, len); }

uint32_t oplog_path_id(const char *path) { return oplog_on && path ? intern(OLS_PATH, path) : 0; }

/* --- threads ------------------------------------------------------------------------------- */

static void thread_gone(void *p)
{
    struct olt *t = p;
    pthread_mutex_lock(&G.mu);
    if (t->gen == G.gen && t->ch) {
        seal(t->ch, t->n * (uint32_t)sizeof(struct oplog_rec));
        release(t->idx);
    }
    if (t->gen == G.gen && !t->dead) G.retired += t->seq;
    t->ch = NULL;
    t->dead = 1;
    pthread_mutex_unlock(&G.mu);
    self = NULL;
}

/* The thread's writer with room for one record, or NULL (record lost). */
static __attribute__((noinline)) struct olt *next_chunk(void)
{
    struct olt *t = self;
    pthread_mutex_lock(&G.mu);
    if (open_file() < 0) {
        pthread_mutex_unlock(&G.mu);
        return NULL;
    }
    if (!t || t->gen != G.gen || t->dead) {
        if (!t) {
            for (t = G.threads; t && !t->dead; t = t->next) {
            }
            if (!t && (t = calloc(1, sizeof *t))) {
                t->next = G.threads;
                G.threads = t;
            }
            if (!t) {
                pthread_mutex_unlock(&G.mu);
                return NULL;
            }
        } else if (t->gen != G.gen) { /* the thread that forked, in the child */
            t->next = G.threads;
            G.threads = t;
        }
        t->ch = NULL;
        t->n = 0;
        t->seq = 0;
        t->dead = 0;
        G.nthreads++;
        t->gen = G.gen;
        t->tid = (int32_t)sys.syscall(SYS_gettid);
        pthread_setspecific(G.key, t);
        self = t;
    }
    if (t->ch) {
        seal(t->ch, t->n * (uint32_t)sizeof(struct oplog_rec));
        release(t->idx);
    }
    /* The helper only once the program has threads of its own: a second thread turns on
     * glibc's multi-threaded paths (cancellation points around every system call), which
     * cost a single-threaded program more per call than the helper saves it. */
    if (!__libc_single_threaded) ahead_start();
    pthread_mutex_unlock(&G.mu);
    t->ch = claim(OLC_RECORDS, t->tid, t->seq + 1, &t->idx);
    t->n = 0;
    return t->ch ? t : NULL;
}

void oplog_log(unsigned op, int fd, const struct mount *m, const char *path, uint32_t *path_cache, int64_t off,
               uint64_t len, int64_t res, uint64_t t0, uint64_t t1, const char *name)
{
    uint32_t pid = 0, aux = 0;
    if (path) {
        /* the description's cache: threads sharing it store the same id */
        pid = path_cache ? __atomic_load_n(path_cache, __ATOMIC_RELAXED) : 0;
        if (!pid) {
            pid = intern(OLS_PATH, path);
            if (path_cache) __atomic_store_n(path_cache, pid, __ATOMIC_RELAXED);
        }
    }
    if (name) aux = intern(OLS_NAME, name);
    else if (op == OL_OPEN) aux = (uint32_t)len, len = 0;
    struct olt *t = self;
    if (__builtin_expect(!t || t->gen != G.gen || !t->ch || t->n >= RECS_PER_CHUNK, 0)) {
        t = next_chunk();
        if (!t) {
            atomic_fetch_add_explicit(&G.lost, 1, memory_order_relaxed);
            return;
        }
    }
    /* Slot and number first: a signal handler that logs in between takes the next ones
     * instead of writing over this record. */
    struct oplog_rec *r = (struct oplog_rec *)(t->ch + 1) + t->n++;
    uint64_t seq = ++t->seq;
    /* The line of a record 4 ahead, for writing: its fetch (the page was faulted in by
     * the helper, on another CPU) overlaps the calls in between instead of stalling the
     * store buffer at the next system call. Within the chunk: its payload ends 64 bytes
     * before the next chunk header at most, which is mapped or harmlessly not (a hint). */
    if (t->n + 4 <= RECS_PER_CHUNK) __builtin_prefetch(r + 4, 1, 3);
    r->t = t0;
    r->lat = t1 - t0;
    r->off = off;
    r->len = len;
    r->res = res;
    r->path = pid;
    r->aux = aux;
    r->op = (uint16_t)op;
    r->mount = m && G.mt ? (uint16_t)(m - G.mt->m + 1) : 0;
    r->fd = fd;
    __atomic_store_n(&r->seq, seq, __ATOMIC_RELEASE);
}

/* This thread's next record slot and its number, for a request record (oplog_req.c):
 * the same stream, numbering and chunk claiming as oplog_log's. NULL: lost (counted). */
struct oplog_rec *oplog_slot_(uint64_t *seq)
{
    struct olt *t = self;
    if (!t || t->gen != G.gen || !t->ch || t->n >= RECS_PER_CHUNK) {
        t = next_chunk();
        if (!t) {
            atomic_fetch_add_explicit(&G.lost, 1, memory_order_relaxed);
            return NULL;
        }
    }
    *seq = ++t->seq;
    return (struct oplog_rec *)(t->ch + 1) + t->n++;
}

/* The cause a request records: the id of the thread sending it. */
int32_t oplog_tid(void)
{
    static __thread int32_t tid;
    static __thread uint32_t gen;
    struct olt *t = self;
    if (t && t->gen == G.gen && !t->dead) return t->tid;
    if (gen != G.gen) tid = (int32_t)sys.syscall(SYS_gettid), gen = G.gen;
    return tid;
}

/* --- life cycle ---------------------------------------------------------------------------- */

void oplog_init(const char *spec, int root, const struct mount_table *t)
{
    if (!spec || !*spec) return;
    char cwd[PATH_MAX] = ""; /* a relative name: from the directory the program starts in (forks keep it) */
    if (spec[0] != '/' && sys.syscall(SYS_getcwd, cwd, sizeof cwd - 1) > 0 && cwd[0] == '/') strcat(cwd, "/");
    else cwd[0] = 0;
    int n = snprintf(G.spec, sizeof G.spec, "%s%s", cwd, spec);
    if (n < 0 || (size_t)n >= sizeof G.spec) {
        slog_error("S3SHIM_OPLOG: the path '%s' is too long; no op log", spec);
        G.spec[0] = 0;
        return;
    }
    size_t l = strlen(G.spec);
    struct stat st;
    if (l > 1 && G.spec[l - 1] == '/') {
        G.spec[l - 1] = 0;
        G.dir = 1;
    } else if (sys.fstatat(AT_FDCWD, G.spec, &st, 0) == 0 && S_ISDIR(st.st_mode)) {
        G.dir = 1;
    }
    G.root = root;
    G.mt = t;
    if (pthread_key_create(&G.key, thread_gone) != 0) return;
    oplog_on = 1;
}

void oplog_atfork_prepare(void)
{
    if (!oplog_on) return;
    pthread_mutex_lock(&G.mu);
    pthread_mutex_lock(&G.map);
}

void oplog_atfork_parent(void)
{
    if (!oplog_on) return;
    pthread_mutex_unlock(&G.map);
    pthread_mutex_unlock(&G.mu);
}

/* The child writes a file of its own: forget the parent's mapping (without touching it)
 * and its threads; the strings stay interned, and go into the child's file when it opens. */
void oplog_atfork_child(void)
{
    if (!oplog_on) return;
    pthread_mutex_init(&G.mu, NULL);
    pthread_mutex_init(&G.map, NULL);
    pthread_cond_init(&G.cv, NULL);
    for (unsigned i = 0; i < G.nunmap; i++) munmap(G.unmap[i], SEG_BYTES); /* the parent's */
    G.nunmap = 0;
    /* The helper is the parent's. The child does the work itself: only async-signal-safe
     * calls are allowed in the child of a multi-threaded program, and creating a thread
     * is not one (ThreadSanitizer kills such a child). An exec starts afresh. */
    G.ahead_up = 0;
    G.ahead_stop = 1;
    G.ahead_want = 0;
    oplog_ring_atfork_child();
    for (unsigned s = 0; s < G.nseg; s++) {
        char *p = atomic_load(&G.seg[s]);
        if (!p) continue;
        munmap(p, SEG_BYTES);
        atomic_store(&G.seg[s], NULL);
    }
    if (G.fd >= 0) efd_close(G.fd);
    G.fd = -1;
    G.hdr = NULL;
    G.sch = NULL;
    G.fsize = 0;
    memset(G.done, 0, G.nseg);
    G.nseg = 0;
    G.threads = NULL;
    G.retired = 0;
    G.nthreads = 0;
    G.gen++;
    atomic_store(&G.wait_ns, 0);
    atomic_store(&G.lost, 0);
}

void oplog_finish(enum oplog_end why)
{
    if (!oplog_on || !G.hdr) return;
    pthread_mutex_lock(&G.mu);
    struct oplog_footer f = {.reason = why, .lost = atomic_load(&G.lost), .threads = G.nthreads, .records = G.retired};
    for (struct olt *t = G.threads; t; t = t->next) {
        if (t->gen != G.gen || t->dead) continue;
        f.records += t->seq;
        if (t->ch) seal(t->ch, t->n * (uint32_t)sizeof(struct oplog_rec)); /* others may go on */
    }
    if (G.sch) seal(G.sch, G.sused);
    uint64_t fidx;
    struct oplog_chunk_hdr *ch = claim(OLC_FOOTER, (int32_t)sys.syscall(SYS_gettid), 0, &fidx);
    if (ch) {
        now_pair(&f.mono_end, &f.wall_end);
        f.wait_ns = atomic_load(&G.wait_ns);
        memcpy(ch + 1, &f, sizeof f);
        seal(ch, sizeof f);
        release(fidx);
    }
    /* Give back the space no chunk uses; a later claim grows it again (itself: the
     * helper stops here, so it does not grow the file again behind this). */
    pthread_mutex_lock(&G.map);
    G.ahead_stop = 1;
    pthread_cond_signal(&G.cv);
    uint64_t end = G.hdr->nchunks * OPLOG_CHUNK;
    if (end < G.fsize && sys.ftruncate(G.fd, (off_t)end) == 0) G.fsize = end;
    pthread_mutex_unlock(&G.map);
    pthread_mutex_unlock(&G.mu);
}
