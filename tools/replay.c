/* replay.c - `s3shim replay LOG --mount PREFIX=URI... [--speed N | --asap] [--prepare]`.
 *
 * The replay runs under the shim (it starts itself through `s3shim run` when it is not
 * preloaded yet), so its calls take the path a program's would, and it has an op log and
 * statistics of its own (S3SHIM_OPLOG, S3SHIM_STATS_FILE): `s3shim ab --replay` and
 * `s3shim oplog diff` compare replays like any commands. One worker thread per recorded
 * thread issues that thread's ops in order, each at its recorded start time divided by the
 * speed, from a common start, so that a late op does not delay the ones after it; an op
 * on a descriptor waits for the open that made it, a close for the other threads' uses,
 * and an op on a path for the last op on that path another thread had finished before it
 * started (replay_plan.c). Reads check the recorded length, writes write a pattern. */
#define _GNU_SOURCE 1
#include "replay.h"
#include "tools.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LATE_NS 1000000ull /* "fell behind": an op issued more than 1 ms after its time */
#define MAX_SHOWN 10

static struct rp_plan P;
static atomic_uchar *done;
static uint64_t *late;
static uint64_t t_start;
static double scale; /* replay ns per recorded ns; 0: as soon as possible */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static atomic_int waiters;
static char shown[MAX_SHOWN][700];
static int nshown;

struct tally {
    uint64_t count, bytes, differ, skipped;
};

struct worker {
    pthread_t th;
    size_t *ops, nops;
    struct tally t[OL_NOPS];
    char *buf;
    struct lazy {
        const char *path;
        int wr, fd;
    } lazy[16];
    int nlazy;
    struct dirfd { /* descriptors this worker opened with O_DIRECTORY, and their streams */
        int32_t gen;
        DIR *d;
    } dirs[32];
    int ndirs;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define WAIT(cond) \
    do { \
        if (!(cond)) { \
            pthread_mutex_lock(&mu); \
            atomic_fetch_add(&waiters, 1); \
            while (!(cond)) pthread_cond_wait(&cv, &mu); \
            atomic_fetch_sub(&waiters, 1); \
            pthread_mutex_unlock(&mu); \
        } \
    } while (0)

static void notify(void)
{
    if (!atomic_load(&waiters)) return;
    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Sleep until `at` when it is further than SPIN_NS away (a sleep gives the CPU up, and on a
 * busy machine getting it back can take milliseconds), then spin the rest. */
#define SPIN_NS 200000ull
static void wait_until(uint64_t at)
{
    uint64_t now = now_ns();
    if (now + SPIN_NS < at) {
        uint64_t wake = at - SPIN_NS / 2;
        struct timespec ts = {(time_t)(wake / 1000000000ull), (long)(wake % 1000000000ull)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
    while (now_ns() < at) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ volatile("yield");
#endif
    }
}

static const char *op_label(const struct rp_op *o)
{
    return o->r->r.op == OL_META && o->name ? o->name : oplog_op_name(o->r->r.op);
}

static void say_differs(size_t i, const struct rp_op *o, int64_t got)
{
    pthread_mutex_lock(&mu);
    if (nshown < MAX_SHOWN) {
        const struct oplog_rec *r = &o->r->r;
        char res[64], rec[64];
        if (got < 0) snprintf(res, sizeof res, "%s", strerror((int)-got));
        else snprintf(res, sizeof res, "%lld", (long long)got);
        if (r->res < 0) snprintf(rec, sizeof rec, "%s", strerror((int)-r->res));
        else snprintf(rec, sizeof rec, "%lld", (long long)r->res);
        snprintf(shown[nshown++], sizeof shown[0], "op %zu (pid %d tid %d #%llu) %s %s off %lld len %llu: %s, recorded %s", i,
                 P.set.sess[o->r->sess].pid, o->r->tid, (unsigned long long)r->seq, op_label(o), o->path ? o->path : "-",
                 (long long)r->off, (unsigned long long)r->len, res, rec);
    }
    pthread_mutex_unlock(&mu);
}

/* A descriptor the worker opens itself by path: the log has no open for this one (a
 * forked child's inherited descriptor, a program's stdio served through a pipe). */
static int lazy_fd(struct worker *w, const char *path, int wr, int close_it)
{
    for (int i = 0; i < w->nlazy; i++)
        if (w->lazy[i].path == path && (close_it || w->lazy[i].wr == wr)) {
            int fd = w->lazy[i].fd;
            if (close_it) w->lazy[i] = w->lazy[--w->nlazy];
            return fd;
        }
    if (close_it || !path) return -1;
    int fd = open(path, (wr ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    if (fd >= 0 && w->nlazy < 16) w->lazy[w->nlazy++] = (struct lazy){path, wr, fd};
    return fd < 0 ? -errno : fd;
}

static int64_t ERR(int64_t x) { return x < 0 ? -(int64_t)errno : x; }

/* Issue one op; its result (-errno), and *skip when it cannot be replayed. */
static int64_t issue(struct worker *w, const struct rp_op *o, int *skip)
{
    const struct oplog_rec *r = &o->r->r;
    struct rp_gen *g = o->gen >= 0 ? &P.gens[o->gen] : NULL;
    int fd = -1;
    if (r->op == OL_READ || r->op == OL_WRITE || r->op == OL_FSTAT || r->op == OL_SYNC || r->op == OL_TRUNCATE ||
        r->op == OL_CLOSE || r->op == OL_SEEK) {
        if (g) {
            WAIT(atomic_load(&g->ready));
            if (r->op == OL_CLOSE) WAIT(atomic_load(&g->done) == g->uses);
            fd = atomic_load(&g->fd);
        } else {
            fd = lazy_fd(w, o->path, r->op == OL_WRITE || r->op == OL_TRUNCATE || r->op == OL_SYNC, r->op == OL_CLOSE);
            if (r->op == OL_CLOSE && fd < 0) {
                *skip = 1;
                return r->res;
            }
            if (fd < 0) return fd;
        }
        if (fd < 0) return -EBADF; /* its open failed here */
    }
    struct stat st;
    switch (r->op) {
    case OL_DUP: { /* a copy of a descriptor the replay opened: its own, sharing the offset */
        if (!g || o->src_gen < 0) break;
        struct rp_gen *sg = &P.gens[o->src_gen];
        WAIT(atomic_load(&sg->ready));
        int sf = atomic_load(&sg->fd);
        int f = sf >= 0 ? dup(sf) : -1;
        int64_t res = sf >= 0 ? ERR(f) : -EBADF;
        atomic_store(&g->fd, f);
        atomic_store(&g->ready, 1);
        notify();
        return res;
    }
    case OL_OPEN: {
        int f = open(o->path, (int)r->aux, 0644);
        int64_t res = ERR(f);
        if (g && f >= 0 && (r->aux & O_DIRECTORY) && w->ndirs < 32) w->dirs[w->ndirs++] = (struct dirfd){o->gen, NULL};
        if (g) {
            atomic_store(&g->fd, f);
            atomic_store(&g->ready, 1);
            notify();
        } else if (f >= 0) {
            close(f); /* failed when recorded: do not keep it */
        }
        return res;
    }
    case OL_CLOSE:
        for (int k = 0; g && k < w->ndirs; k++)
            if (w->dirs[k].gen == o->gen) {
                DIR *d = w->dirs[k].d;
                w->dirs[k] = w->dirs[--w->ndirs];
                if (d) return ERR(closedir(d)); /* the program's fdopendir .. closedir */
                break;
            }
        return ERR(close(fd));
    case OL_READ:
        return r->off >= 0 ? ERR(pread(fd, w->buf, r->len, r->off)) : ERR(read(fd, w->buf, r->len));
    case OL_WRITE:
        return r->off >= 0 ? ERR(pwrite(fd, rp_pattern(r->len), r->len, r->off)) : ERR(write(fd, rp_pattern(r->len), r->len));
    case OL_FSTAT:
        return ERR(fstat(fd, &st));
    case OL_SYNC:
        return ERR(fsync(fd));
    case OL_TRUNCATE:
        return ERR(ftruncate(fd, r->off));
    case OL_SEEK:
        return ERR(lseek(fd, r->off, (int)r->len));
    case OL_STAT:
        return ERR(stat(o->path, &st));
    case OL_OPENDIR: {
        for (int k = w->ndirs; k-- > 0;) /* a listing of a directory this thread opened: fdopendir */
            if (!w->dirs[k].d && P.ops[P.gens[w->dirs[k].gen].open_op].pi == o->pi) {
                DIR *d = fdopendir(atomic_load(&P.gens[w->dirs[k].gen].fd));
                w->dirs[k].d = d;
                return d ? 0 : -errno;
            }
        DIR *d = opendir(o->path);
        if (!d) return -errno;
        closedir(d);
        return 0;
    }
    case OL_META:
        if (!o->name || !o->path) break;
        if (strcmp(o->name, "unlink") == 0) return ERR(unlink(o->path));
        if (strcmp(o->name, "rmdir") == 0) return ERR(rmdir(o->path));
        if (strcmp(o->name, "mkdir") == 0) return ERR(mkdir(o->path, 0755));
        if (strcmp(o->name, "utimens") == 0) return ERR(utimensat(AT_FDCWD, o->path, NULL, 0));
        if (strcmp(o->name, "rename") == 0 && o->path2) return ERR(rename(o->path, o->path2));
        break; /* chmod, truncate: the log has no mode or length; rename of an older log: no target */
    default:
        break;
    }
    *skip = 1;
    return r->res;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    for (size_t j = 0; j < w->nops; j++) {
        size_t i = w->ops[j];
        const struct rp_op *o = &P.ops[i];
        const struct oplog_rec *r = &o->r->r;
        uint64_t at = t_start + (uint64_t)((double)(r->t - P.rec0) * scale);
        if (scale > 0) wait_until(at);
        if (o->dep >= 0) WAIT(atomic_load(&done[o->dep]));
        uint64_t t = now_ns();
        late[i] = scale > 0 && t > at ? t - at : 0;
        int skip = 0;
        int64_t got = issue(w, o, &skip);
        struct tally *x = &w->t[r->op < OL_NOPS ? r->op : 0];
        x->count++;
        if (skip) x->skipped++;
        else if ((r->op == OL_READ || r->op == OL_WRITE) && got > 0) x->bytes += (uint64_t)got;
        int same = got == r->res || (got >= 0 && r->res >= 0 && r->op != OL_READ && r->op != OL_WRITE);
        if (!skip && !same) {
            x->differ++;
            say_differs(i, o, got);
        }
        if (o->src_gen >= 0)
            atomic_fetch_add(&P.gens[o->src_gen].done, 1);
        else if (o->gen >= 0 && r->op != OL_OPEN && r->op != OL_CLOSE)
            atomic_fetch_add(&P.gens[o->gen].done, 1);
        atomic_store(&done[i], 1);
        notify();
    }
    for (int k = 0; k < w->nlazy; k++) close(w->lazy[k].fd);
    return NULL;
}

static int find_shim(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    return info->dlpi_name && strstr(info->dlpi_name, "libs3shim.so") ? 1 : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The prefixes of S3SHIM_MOUNTS (and the default /s3). */
static int mount_prefixes(char **pre, int max)
{
    int n = 0;
    pre[n++] = strdup("/s3");
    const char *env = getenv("S3SHIM_MOUNTS");
    char *copy = strdup(env ? env : ""), *save = NULL;
    for (char *e = strtok_r(copy, ";", &save); e && n < max; e = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(e, '=');
        if (!eq || e[0] != '/') continue;
        *eq = 0;
        size_t l = strlen(e);
        while (l > 1 && e[l - 1] == '/') e[--l] = 0;
        pre[n++] = strdup(e);
    }
    free(copy);
    return n;
}

static int mounted(const char *path, char *const *pre, int npre)
{
    if (strncmp(path, "s3://", 5) == 0) return 1;
    for (int i = 0; i < npre; i++) {
        size_t l = strlen(pre[i]);
        if (strncmp(path, pre[i], l) == 0 && (path[l] == '/' || path[l] == 0)) return 1;
    }
    return 0;
}

static int usage(void)
{
    fputs("usage: s3shim replay LOG [--mount PREFIX=URI]... [--remap OLD=NEW]... [--speed N | --asap] [--prepare | --prepare-only]\n",
          stderr);
    return 2;
}

/* Not preloaded yet: `s3shim run --mount ... -- THIS replay ARGS` (without the mounts). */
static int start_under_shim(int argc, char **argv)
{
    char **a = calloc((size_t)argc + 8, sizeof *a);
    int n = 0;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--mount") == 0 && i + 1 < argc) {
            a[n++] = argv[i];
            a[n++] = argv[++i];
        }
    a[n++] = "--";
    a[n++] = "/proc/self/exe";
    a[n++] = "replay";
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--mount") == 0 && i + 1 < argc) i++;
        else a[n++] = argv[i];
    }
    a[n] = NULL;
    setenv("REPLAY_UNDER_S3SHIM", "1", 1); /* a loop guard: the child must find the shim */
    return cmd_run(n, a);
}

int cmd_replay(int argc, char **argv)
{
    const char *log = NULL;
    struct rp_remap rm = {0};
    int prepare = 0, prepare_only = 0, asap = 0;
    double speed = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (strcmp(a, "--mount") == 0 && more) {
            i++;
        } else if (strcmp(a, "--remap") == 0 && more && strchr(argv[i + 1], '=') && rm.n < 32) {
            char *x = strdup(argv[++i]), *eq = strchr(x, '='); /* argv stays whole: it may be passed on */
            *eq = 0;
            rm.from[rm.n] = x;
            rm.to[rm.n++] = eq + 1;
        } else if (strcmp(a, "--speed") == 0 && more) {
            char *end;
            const char *v = argv[++i];
            if (strcmp(v, "max") == 0) {
                asap = 1;
            } else if ((speed = strtod(v, &end)) <= 0 || *end || speed > 1e9) {
                fprintf(stderr, "s3shim replay: --speed wants a number above 0 or 'max', not '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--asap") == 0) {
            asap = 1;
        } else if (strcmp(a, "--prepare") == 0) {
            prepare = 1;
        } else if (strcmp(a, "--prepare-only") == 0) {
            prepare_only = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "s3shim replay: unknown option '%s'\n", a);
            return usage();
        } else if (!log) {
            log = a;
        } else {
            fprintf(stderr, "s3shim replay: one LOG only\n");
            return usage();
        }
    }
    if (!log) return usage();
    if (!dl_iterate_phdr(find_shim, NULL)) {
        if (getenv("REPLAY_UNDER_S3SHIM")) {
            fprintf(stderr, "s3shim replay: error: the shim library is not loaded in the replay (LD_PRELOAD)\n");
            return 2;
        }
        return start_under_shim(argc, argv);
    }
    unsetenv("REPLAY_UNDER_S3SHIM");
    char err[800];
    if (rp_plan_build(&P, log, &rm, err, sizeof err) < 0) {
        fprintf(stderr, "s3shim replay: error: %s\n", err);
        return 2;
    }
    char *pre[80];
    int npre = mount_prefixes(pre, 80);
    for (size_t i = 0; i < P.nops; i++) {
        const struct rp_op *o = &P.ops[i];
        const char *bad = o->path && !mounted(o->path, pre, npre) ? o->path : o->path2 && !mounted(o->path2, pre, npre) ? o->path2 : NULL;
        if (bad) {
            const char *m = ol_str(&P.set, o->r, OLS_MOUNT, o->r->r.mount);
            fprintf(stderr, "s3shim replay: error: %s (recorded on %s) is under none of the replay's mounts: give --mount PREFIX=URI or --remap OLD=NEW\n",
                    bad, m ? m : "an unknown mount");
            return 2;
        }
    }
    if (prepare_only) return rp_prepare(&P, pre, npre) < 0 ? 2 : 0;
    if (prepare) { /* in a process of its own, without this one's op log and statistics */
        pid_t pid = fork();
        if (pid == 0) {
            unsetenv("S3SHIM_OPLOG");
            unsetenv("S3SHIM_STATS");
            unsetenv("S3SHIM_STATS_FILE");
            char *a[80] = {"s3shim", "replay", (char *)log, "--prepare-only"};
            int n = 4;
            for (int i = 0; i < rm.n && n < 76; i++) {
                char *x = malloc(strlen(rm.from[i]) + strlen(rm.to[i]) + 2);
                sprintf(x, "%s=%s", rm.from[i], rm.to[i]);
                a[n++] = "--remap";
                a[n++] = x;
            }
            execv("/proc/self/exe", a);
            _exit(127);
        }
        int st = 0;
        while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "s3shim replay: error: --prepare failed\n");
            return 2;
        }
    }
    /* workers, buffers, and the start */
    struct worker *w = calloc(P.nworkers, sizeof *w);
    size_t *idx = calloc(P.nops, sizeof *idx), maxwrite = 1;
    size_t *maxread = calloc(P.nworkers, sizeof *maxread); /* per worker: its largest read */
    done = calloc(P.nops, sizeof *done);
    late = calloc(P.nops, sizeof *late);
    for (size_t i = 0; i < P.nops; i++) {
        size_t k = (size_t)P.ops[i].worker;
        w[k].nops++;
        const struct oplog_rec *r = &P.ops[i].r->r;
        if (r->op == OL_READ && r->len > maxread[k]) maxread[k] = r->len;
        if (r->op == OL_WRITE && r->len > maxwrite) maxwrite = r->len;
    }
    for (size_t k = 0, at = 0; k < P.nworkers; k++) {
        w[k].ops = idx + at;
        at += w[k].nops;
        w[k].nops = 0;
    }
    for (size_t i = 0; i < P.nops; i++) w[P.ops[i].worker].ops[w[P.ops[i].worker].nops++] = i;
    if (!rp_pattern(maxwrite)) return 2;
    scale = asap ? 0 : 1.0 / speed;
    t_start = now_ns() + 2000000; /* every worker is waiting by then */
    for (size_t k = 0; k < P.nworkers; k++) {
        w[k].buf = malloc(maxread[k] ? maxread[k] : 1);
        if (!w[k].buf || pthread_create(&w[k].th, NULL, run_worker, &w[k]) != 0) {
            fprintf(stderr, "s3shim replay: error: cannot start worker %zu\n", k);
            return 2;
        }
    }
    for (size_t k = 0; k < P.nworkers; k++) pthread_join(w[k].th, NULL);
    double took = (double)(now_ns() - t_start) / 1e9, rec = (double)(P.rec_end - P.rec0) / 1e9;
    /* the result (stdout: the same for every replay that matched) */
    struct tally all[OL_NOPS] = {{0}}, sum = {0};
    for (size_t k = 0; k < P.nworkers; k++)
        for (int op = 0; op < OL_NOPS; op++) {
            all[op].count += w[k].t[op].count;
            all[op].bytes += w[k].t[op].bytes;
            all[op].differ += w[k].t[op].differ;
            all[op].skipped += w[k].t[op].skipped;
        }
    for (int op = 0; op < OL_NOPS; op++) {
        sum.count += all[op].count;
        sum.differ += all[op].differ;
        sum.skipped += all[op].skipped;
    }
    printf("replay of %s: %zu ops of %zu threads in %zu processes: %llu %s, %llu differed, %llu not replayed\n", log,
           P.nops, P.nworkers, P.nproc, (unsigned long long)(sum.count - sum.differ - sum.skipped),
           sum.differ ? "matched" : "matched the recording", (unsigned long long)sum.differ,
           (unsigned long long)sum.skipped);
    printf("  %-9s %9s %14s %9s %13s\n", "op", "count", "bytes", "differed", "not replayed");
    for (int op = 1; op < OL_NOPS; op++)
        if (all[op].count)
            printf("  %-9s %9llu %14llu %9llu %13llu\n", oplog_op_name((unsigned)op), (unsigned long long)all[op].count,
                   (unsigned long long)all[op].bytes, (unsigned long long)all[op].differ, (unsigned long long)all[op].skipped);
    fflush(stdout);
    /* timing (stderr: it is different every time) */
    if (asap) {
        fprintf(stderr, "s3shim replay: %.3f s as soon as possible (recorded: %.3f s), order and concurrency kept\n", took, rec);
    } else {
        uint64_t *v = malloc(P.nops * sizeof *v);
        size_t behind = 0, first = P.nops;
        for (size_t i = 0; i < P.nops; i++) {
            v[i] = late[i];
            if (late[i] > LATE_NS && behind++ == 0) first = i;
        }
        qsort(v, P.nops, sizeof *v, cmp_u64);
        fprintf(stderr,
                "s3shim replay: %.3f s at speed %g (recorded: %.3f s, scheduled: %.3f s); ops issued late by p50 %.1f us, p99 %.1f us, max %.1f us\n",
                took, speed, rec, rec * scale, (double)pct_sorted(v, P.nops, 0.5) / 1e3, (double)pct_sorted(v, P.nops, 0.99) / 1e3,
                (double)v[P.nops - 1] / 1e3);
        if (behind)
            fprintf(stderr,
                    "s3shim replay: fell behind: %zu of %zu ops (%.1f%%) issued more than 1 ms late, the first at %.3f s (op %zu, %s %s)\n",
                    behind, P.nops, 100.0 * (double)behind / (double)P.nops,
                    (double)(P.ops[first].r->r.t - P.rec0) * scale / 1e9, first, op_label(&P.ops[first]),
                    P.ops[first].path ? P.ops[first].path : "-");
        else
            fprintf(stderr, "s3shim replay: kept up: every op issued within 1 ms of its time\n");
        free(v);
    }
    for (int i = 0; i < nshown; i++) fprintf(stderr, "s3shim replay: differs: %s\n", shown[i]);
    if (sum.differ > (uint64_t)nshown)
        fprintf(stderr, "s3shim replay: differs: ... %llu more\n", (unsigned long long)(sum.differ - (uint64_t)nshown));
    for (size_t k = 0; k < P.nworkers; k++) free(w[k].buf);
    for (int i = 0; i < npre; i++) free(pre[i]);
    free(w);
    free(idx);
    free(maxread);
    free((void *)done);
    free(late);
    rp_plan_free(&P);
    return sum.differ ? 1 : 0;
}
