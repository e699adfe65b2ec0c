/* ab.c - `s3shim ab`: the same command under several mount maps (arms), alternated and
 * in random order, and a verdict per metric that says only what the noise allows.
 *
 * Each run is `s3shim run --mount ... -- CMD` in a child (so the command sees exactly what
 * a user would), with S3SHIM_STATS_FILE and S3SHIM_OPLOG pointing into the run's own
 * directory; wall time around fork..wait4, user/system CPU and max RSS from wait4 (they
 * cover the command's waited-for descendants), exit status, a SHA-256 of its stdout and,
 * with --compare PATH, of the tree under PATH as the arm sees it. The op logs' latency
 * percentiles and the endpoints of the stats files are tools/ab_oplog.c, the HTML page
 * tools/ab_report.c, the statistics core/abstat.c. */
#define _GNU_SOURCE 1
#include "ab.h"
#include "tools.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const met_name[NMET] = {"wall_s", "user_s", "sys_s", "cpu_s", "maxrss_mb"};
const double ab_q[NQ] = {0.5, 0.9, 0.99};

struct arm arms[MAX_ARMS];
int narms;
char **cmd;
int ab_oplog = 1;
static const char *setup_cmd, *cleanup_cmd, *compare;
static char base[512];

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* `s3shim run` with the arm's mounts and settings, run directory `dir`; argv after "--".
 * Returns the wait status; ru and wall filled when given. */
#define KEEP_STDOUT (1u << 20) /* bytes of a run's stdout kept in its directory; all are hashed */

static int run_in_arm(const struct arm *a, const char *dir, char *const *argv, const char *out_path, struct rusage *ru,
                      double *wall, int logs, char *hash)
{
    int pfd[2] = {-1, -1};
    if (hash && pipe2(pfd, O_CLOEXEC) < 0) return -1;
    char *args[128];
    int n = 0;
    args[n++] = "s3shim";
    args[n++] = "run";
    for (int i = 0; i < a->nmounts && n < 100; i++) {
        args[n++] = "--mount";
        args[n++] = a->mounts[i];
    }
    args[n++] = "--";
    for (int i = 0; argv[i] && n < 127; i++) args[n++] = argv[i];
    args[n] = NULL;
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setenv("AB_ARM", a->name, 1);
        setenv("AB_RUN_DIR", dir, 1);
        unsetenv("S3SHIM_ROOT_PID");
        if (logs) {
            char p[700];
            snprintf(p, sizeof p, "%s/stats/%%p.json", dir);
            setenv("S3SHIM_STATS_FILE", p, 1);
            snprintf(p, sizeof p, "%s/oplog/", dir);
            if (ab_oplog) setenv("S3SHIM_OPLOG", p, 1);
            else unsetenv("S3SHIM_OPLOG");
        } else {
            unsetenv("S3SHIM_STATS_FILE");
            unsetenv("S3SHIM_OPLOG");
        }
        for (int i = 0; i < a->nenv; i++) putenv(a->env[i]); /* the arm's settings win, S3SHIM_OPLOG= too */
        int fd = hash ? pfd[1] : open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) dup2(fd, 1);
        execv("/proc/self/exe", args);
        _exit(127);
    }
    if (hash) { /* hash all of stdout, keep its head */
        close(pfd[1]);
        int keep = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        EVP_DigestInit_ex(c, EVP_sha256(), NULL);
        static char buf[1 << 16];
        size_t kept = 0;
        ssize_t got;
        while ((got = read(pfd[0], buf, sizeof buf)) != 0) {
            if (got < 0) {
                if (errno == EINTR) continue;
                break;
            }
            EVP_DigestUpdate(c, buf, (size_t)got);
            if (keep >= 0 && kept < KEEP_STDOUT) {
                size_t w = (size_t)got < KEEP_STDOUT - kept ? (size_t)got : KEEP_STDOUT - kept;
                if (write(keep, buf, w) == (ssize_t)w) kept += w;
            }
        }
        close(pfd[0]);
        if (keep >= 0) close(keep);
        unsigned char md[32];
        unsigned len = 0;
        EVP_DigestFinal_ex(c, md, &len);
        EVP_MD_CTX_free(c);
        for (int i = 0; i < 32; i++) sprintf(hash + 2 * i, "%02x", md[i]);
    }
    int st = 0;
    struct rusage r;
    while (wait4(pid, &st, 0, &r) < 0 && errno == EINTR) {
    }
    if (wall) *wall = now_s() - t0;
    if (ru) *ru = r;
    return st;
}

static void shell_in_arm(const struct arm *a, const char *dir, const char *sh, const char *out)
{
    char *argv[] = {"/bin/sh", "-c", (char *)sh, NULL};
    int st = run_in_arm(a, dir, argv, out, NULL, NULL, 0, NULL);
    if (!out && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
        fprintf(stderr, "s3shim ab: warning: '%s' failed in arm %s (status %d)\n", sh, a->name, st);
}

/* Blank out every "children":[...] of a stats JSON line (endpoints, rings: their bytes are
 * already in their mount's), minding quoted strings. */
static void drop_children(char *s)
{
    static const char key[] = "\"children\":[";
    for (char *p = strstr(s, key); p; p = strstr(p, key)) {
        char *q = p + sizeof key - 1;
        int depth = 1, str = 0;
        for (; *q && depth; q++) {
            if (str) {
                if (*q == '\\' && q[1]) q++;
                else if (*q == '"') str = 0;
            } else if (*q == '"') {
                str = 1;
            } else if (*q == '[') {
                depth++;
            } else if (*q == ']') {
                depth--;
            }
        }
        memset(p, ' ', (size_t)(q - p));
        p = q;
    }
}

/* Sum the operations of every mount, and the bytes of read and write, over every stats
 * JSON of the run (one per process). */
static void read_stats(struct run *r)
{
    char p[700];
    snprintf(p, sizeof p, "%s/stats", r->dir);
    char sh[900];
    snprintf(sh, sizeof sh, "cat %s/*.json 2>/dev/null", p);
    FILE *f = popen(sh, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        ab_read_endpoints(r, line);
        drop_children(line);
        static const char *const ops[] = {"open", "read", "write", "stat", "dir", "meta", "sync", "close"};
        for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
            char key[32];
            snprintf(key, sizeof key, "\"%s\":{\"count\":", ops[k]);
            for (char *q = strstr(line, key); q; q = strstr(q + 1, key)) {
                unsigned long long c = strtoull(q + strlen(key), NULL, 10);
                char *b = strstr(q, "\"bytes\":");
                unsigned long long by = b ? strtoull(b + 8, NULL, 10) : 0;
                r->ops += c;
                if (k == 1) r->rbytes += by;
                if (k == 2) r->wbytes += by;
            }
        }
    }
    free(line);
    pclose(f);
}

static void one_run(struct arm *a, int idx, int warm)
{
    struct run *r = &a->runs[idx];
    memset(r, 0, sizeof *r); /* a warm-up run used this slot before run 1 */
    snprintf(r->dir, sizeof r->dir, "%s/%s-%s%d", base, a->name, warm ? "warmup" : "run", idx + 1);
    char p[700];
    mkdir(r->dir, 0755);
    snprintf(p, sizeof p, "%s/stats", r->dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/oplog", r->dir);
    if (ab_oplog) mkdir(p, 0755);
    if (setup_cmd) shell_in_arm(a, r->dir, setup_cmd, NULL);
    char out[700];
    snprintf(out, sizeof out, "%s/stdout", r->dir);
    struct rusage ru;
    double wall;
    r->status = run_in_arm(a, r->dir, cmd, out, &ru, &wall, 1, r->out_hash);
    r->m[M_WALL] = wall;
    r->m[M_USER] = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    r->m[M_SYS] = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    r->m[M_CPU] = r->m[M_USER] + r->m[M_SYS];
    r->m[M_RSS] = (double)ru.ru_maxrss / 1024.0;
    strcpy(r->tree_hash, "-");
    if (compare) {
        char sh[1400], tf[700];
        snprintf(sh, sizeof sh,
                 "cd '%s' && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-64",
                 compare);
        snprintf(tf, sizeof tf, "%s/tree", r->dir);
        shell_in_arm(a, r->dir, sh, tf);
        FILE *f = fopen(tf, "r");
        if (f) {
            if (fscanf(f, "%64s", r->tree_hash) != 1) strcpy(r->tree_hash, "-");
            fclose(f);
        }
    }
    if (cleanup_cmd) shell_in_arm(a, r->dir, cleanup_cmd, NULL);
    read_stats(r);
    ab_read_oplog(r);
}

static int parse_arm(char *spec)
{
    if (narms == MAX_ARMS) return -1;
    char *eq = strchr(spec, '=');
    struct arm *a = &arms[narms];
    if (eq) *eq = 0;
    snprintf(a->name, sizeof a->name, "%s", spec);
    if (!a->name[0]) return -1;
    for (int i = 0; i < narms; i++)
        if (strcmp(arms[i].name, a->name) == 0) return -1;
    if (eq && eq[1])
        for (char *m = strtok(eq + 1, ";"); m && a->nmounts < 32; m = strtok(NULL, ";")) {
            if (!strchr(m, '=')) return -1;
            a->mounts[a->nmounts++] = m;
        }
    narms++;
    return 0;
}

static int parse_env(char *spec)
{
    char *eq = strchr(spec, '=');
    if (!eq || !strchr(eq + 1, '=')) return -1;
    *eq = 0;
    for (int i = 0; i < narms; i++)
        if (strcmp(arms[i].name, spec) == 0 && arms[i].nenv < MAX_ENV) {
            arms[i].env[arms[i].nenv++] = eq + 1;
            return 0;
        }
    return -1;
}

const char *ab_met_name(int m)
{
    static char names[NMET_ALL][40];
    if (m < NMET) return met_name[m];
    char *n = names[m];
    if (!n[0]) {
        int op = (m - NMET) / NQ, q = (m - NMET) % NQ;
        snprintf(n, sizeof names[0], "%s_p%02.0f_us", oplog_op_name((unsigned)op), 100 * ab_q[q]);
    }
    return n;
}

double ab_met_value(const struct run *r, int m)
{
    if (m < NMET) return r->m[m];
    return r->lat[(m - NMET) / NQ][(m - NMET) % NQ];
}

int ab_met_present(int m)
{
    if (m < NMET) return 1;
    if ((m - NMET) / NQ < OL_OPEN) return 0;
    for (int k = 0; k < narms; k++)
        for (int r = 0; r < arms[k].nruns; r++)
            if (!isfinite(ab_met_value(&arms[k].runs[r], m))) return 0;
    return narms > 0;
}

void ab_values(const struct arm *a, int m, double *v)
{
    for (int i = 0; i < a->nruns; i++) v[i] = ab_met_value(&a->runs[i], m);
}

double ab_arm_median(const struct arm *a, int m)
{
    double v[1001];
    size_t n = 0;
    for (int i = 0; i < a->nruns; i++) /* the runs that have it */
        if (isfinite(v[n] = ab_met_value(&a->runs[i], m))) n++;
    return ab_median(v, n);
}

const char *ab_verdict_word(int met, enum ab_verdict v)
{
    if (v == AB_SAME) return "no difference at this noise";
    if (met == M_RSS) return v == AB_LOWER ? "less memory" : "more memory";
    return v == AB_LOWER ? "faster" : "slower";
}

int ab_results_differ(int i)
{
    const struct arm *a = &arms[i], *b = &arms[0];
    for (int r = 0; r < a->nruns; r++)
        if (strcmp(a->runs[r].out_hash, b->runs[0].out_hash) || a->runs[r].status != b->runs[0].status ||
            strcmp(a->runs[r].tree_hash, b->runs[0].tree_hash))
            return 1;
    return 0;
}

/* Op kinds with records in some run (the latency table's rows). */
static int op_seen(unsigned op)
{
    for (int k = 0; k < narms; k++)
        for (int r = 0; r < arms[k].nruns; r++)
            if (arms[k].runs[r].lat_n[op]) return 1;
    return 0;
}

static void print_latency_text(void)
{
    int any = 0;
    for (unsigned op = OL_OPEN; op < OL_NOPS; op++) any |= op_seen(op);
    if (!any) {
        printf("\n  latency: %s\n", ab_oplog ? "no op log records" : "op log off (--no-oplog)");
        return;
    }
    printf("\n  latency per op kind, us (each run's percentile from its op log; median over runs)\n  %-9s", "op");
    for (int k = 0; k < narms; k++) printf(" | %-10.10s %9s %9s %9s", arms[k].name, "p50", "p90", "p99");
    printf("\n");
    for (unsigned op = OL_OPEN; op < OL_NOPS; op++) {
        if (!op_seen(op)) continue;
        printf("  %-9s", oplog_op_name(op));
        for (int k = 0; k < narms; k++) {
            double n[1001];
            for (int r = 0; r < arms[k].nruns; r++) n[r] = (double)arms[k].runs[r].lat_n[op];
            printf(" | %10.0f", ab_median(n, (size_t)arms[k].nruns));
            for (int q = 0; q < NQ; q++) {
                double v = ab_arm_median(&arms[k], NMET + (int)op * NQ + q);
                if (isfinite(v)) printf(" %9.1f", v);
                else printf(" %9s", "-");
            }
        }
        printf("\n");
    }
    printf("  (the first column is the median number of records per run)\n");
}

static void print_endpoints_text(void)
{
    int head = 0;
    for (int k = 0; k < narms; k++) {
        struct ab_ep e[AB_MAX_EP];
        int n = ab_arm_endpoints(&arms[k], e);
        for (int i = 0; i < n; i++) {
            if (!head++)
                printf("\n  endpoints (stats files, every process; median per run)\n  %-12s %-40s %10s %14s %8s %7s\n",
                       "arm", "endpoint", "requests", "bytes", "retries", "errors");
            printf("  %-12s %-40.40s %10llu %14llu %8llu %7llu\n", arms[k].name, e[i].uri, (unsigned long long)e[i].req,
                   (unsigned long long)e[i].bytes, (unsigned long long)e[i].retries, (unsigned long long)e[i].errors);
        }
    }
}

static void print_text(const struct cmp *c, int nc, int runs, int warm, unsigned seed)
{
    printf("s3shim ab: %d arms x %d runs (+%d warm-up each), alternated in random order (seed %u); runs in %s\n\n",
           narms, runs, warm, seed, base);
    printf("  %-12s", "arm");
    for (int m = 0; m < NMET; m++) printf(" %12s %7s", met_name[m], "spread");
    printf(" %10s %14s %14s  %s\n", "shim ops", "read bytes", "written", "exit/stdout");
    double v[4096];
    for (int i = 0; i < narms; i++) {
        const struct arm *a = &arms[i];
        printf("  %-12s", a->name);
        for (int m = 0; m < NMET; m++) {
            ab_values(a, m, v);
            double med = ab_median(v, (size_t)a->nruns);
            printf(" %12.4f %6.1f%%", med, med > 0 ? 100 * ab_mad(v, (size_t)a->nruns) / med : 0.0);
        }
        const struct run *r0 = &a->runs[0];
        printf(" %10llu %14llu %14llu  %d/%.12s%s\n", (unsigned long long)r0->ops, (unsigned long long)r0->rbytes,
               (unsigned long long)r0->wbytes, WIFEXITED(r0->status) ? WEXITSTATUS(r0->status) : 128 + WTERMSIG(r0->status),
               r0->out_hash, compare ? "" : "");
    }
    print_latency_text();
    print_endpoints_text();
    printf("\n  %-14s %-12s %8s %18s %9s %9s  %s\n", "metric", "arm", "ratio", "95% interval", "p", narms > 2 ? "p(Holm)" : "",
           "verdict");
    for (int k = 0; k < nc; k++) {
        const struct cmp *x = &c[k];
        char iv[40];
        snprintf(iv, sizeof iv, isfinite(x->r.lo) ? "[%.3f, %.3f]" : "-", x->r.lo, x->r.hi);
        char adj[16] = "";
        if (narms > 2) snprintf(adj, sizeof adj, "%.4f", x->p_adj);
        char rt[16] = "-";
        if (isfinite(x->r.ratio)) snprintf(rt, sizeof rt, "%.3f", x->r.ratio);
        printf("  %-14s %-12s %8s %18s %9.4f %9s  %s", ab_met_name(x->met), arms[x->arm].name, rt, iv, x->p, adj,
               ab_verdict_word(x->met, x->v));
        if (x->v != AB_SAME) printf(" (%+.1f%%)", 100 * (x->r.ratio - 1));
        printf("\n");
    }
    printf("  (ratios are arm / %s)\n", arms[0].name);
}

/* A JSON number, or null for what has none (a ratio of zero CPU times). */
static void jd(FILE *o, const char *pre, double v)
{
    fputs(pre, o);
    if (isfinite(v)) fprintf(o, "%.6g", v);
    else fputs("null", o);
}

/* "latency_us":{"read":{"count":N,"p50":..,"p90":..,"p99":..},...} of one run, or of an
 * arm (medians over its runs) when r is NULL. */
static void json_latency(FILE *o, const struct arm *a, const struct run *r)
{
    fputs(",\"latency_us\":{", o);
    int first = 1;
    for (unsigned op = OL_OPEN; op < OL_NOPS; op++) {
        double n;
        if (r) {
            n = (double)r->lat_n[op];
        } else {
            double c[1001];
            for (int i = 0; i < a->nruns; i++) c[i] = (double)a->runs[i].lat_n[op];
            n = ab_median(c, (size_t)a->nruns);
        }
        if (!(n > 0) && !(r == NULL && op_seen(op))) continue;
        fprintf(o, "%s\"%s\":{\"count\":%.0f", first ? "" : ",", oplog_op_name(op), n);
        for (int q = 0; q < NQ; q++) {
            int m = NMET + (int)op * NQ + q;
            double v = r ? ab_met_value(r, m) : ab_arm_median(a, m);
            fprintf(o, ",\"p%02.0f\":", 100 * ab_q[q]);
            if (isfinite(v)) fprintf(o, "%.3f", v); /* us, to the ns */
            else fputs("null", o);
        }
        fputc('}', o);
        first = 0;
    }
    fputc('}', o);
}

static void json_endpoints(FILE *o, const struct ab_ep *e, int n)
{
    fputs(",\"endpoints\":[", o);
    for (int i = 0; i < n; i++) {
        fputs(i ? ",{\"uri\":" : "{\"uri\":", o);
        stats_json_str(o, e[i].uri);
        fprintf(o, ",\"requests\":%llu,\"bytes\":%llu,\"retries\":%llu,\"errors\":%llu}", (unsigned long long)e[i].req,
                (unsigned long long)e[i].bytes, (unsigned long long)e[i].retries, (unsigned long long)e[i].errors);
    }
    fputc(']', o);
}

static void print_json(FILE *o, const struct cmp *c, int nc, unsigned seed, int differ)
{
    fprintf(o, "{\"seed\":%u,\"dir\":", seed);
    stats_json_str(o, base);
    fputs(",\"command\":[", o);
    for (int i = 0; cmd[i]; i++) {
        if (i) fputc(',', o);
        stats_json_str(o, cmd[i]);
    }
    fprintf(o, "],\"results_differ\":%s,\"arms\":[", differ ? "true" : "false");
    double v[4096];
    for (int i = 0; i < narms; i++) {
        const struct arm *a = &arms[i];
        fprintf(o, "%s{\"name\":", i ? "," : "");
        stats_json_str(o, a->name);
        fputs(",\"mounts\":[", o);
        for (int k = 0; k < a->nmounts; k++) {
            if (k) fputc(',', o);
            stats_json_str(o, a->mounts[k]);
        }
        fputs("],\"env\":[", o);
        for (int k = 0; k < a->nenv; k++) {
            if (k) fputc(',', o);
            stats_json_str(o, a->env[k]);
        }
        fprintf(o, "],\"results_differ\":%s,\"median\":{", i && ab_results_differ(i) ? "true" : "false");
        for (int m = 0; m < NMET; m++) {
            ab_values(a, m, v);
            fprintf(o, "%s\"%s\":", m ? "," : "", met_name[m]);
            jd(o, "", ab_median(v, (size_t)a->nruns));
        }
        fputc('}', o);
        json_latency(o, a, NULL);
        struct ab_ep e[AB_MAX_EP];
        json_endpoints(o, e, ab_arm_endpoints(a, e));
        fputs(",\"runs\":[", o);
        for (int r = 0; r < a->nruns; r++) {
            const struct run *x = &a->runs[r];
            fprintf(o, "%s{", r ? "," : "");
            for (int m = 0; m < NMET; m++) fprintf(o, "\"%s\":%.6f,", met_name[m], x->m[m]);
            fprintf(o, "\"exit\":%d,\"stdout_sha256\":\"%s\",\"tree_sha256\":\"%s\",\"shim_ops\":%llu,\"read_bytes\":%llu,"
                       "\"written_bytes\":%llu,\"dir\":",
                    WIFEXITED(x->status) ? WEXITSTATUS(x->status) : 128 + WTERMSIG(x->status), x->out_hash, x->tree_hash,
                    (unsigned long long)x->ops, (unsigned long long)x->rbytes, (unsigned long long)x->wbytes);
            stats_json_str(o, x->dir);
            json_latency(o, a, x);
            json_endpoints(o, x->ep, x->nep);
            fputc('}', o);
        }
        fputs("]}", o);
    }
    fputs("],\"comparisons\":[", o);
    for (int k = 0; k < nc; k++) {
        const struct cmp *x = &c[k];
        fprintf(o, "%s{\"metric\":\"%s\",\"arm\":", k ? "," : "", ab_met_name(x->met));
        stats_json_str(o, arms[x->arm].name);
        fputs(",\"baseline\":", o);
        stats_json_str(o, arms[0].name);
        jd(o, ",\"ratio\":", x->r.ratio);
        jd(o, ",\"ci95\":[", x->r.lo);
        jd(o, ",", x->r.hi);
        jd(o, "],\"p\":", x->p);
        jd(o, ",\"p_holm\":", x->p_adj);
        fprintf(o, ",\"verdict\":\"%s\"}", ab_verdict_word(x->met, x->v));
    }
    fputs("]}\n", o);
}

int report_html(const char *path, const struct cmp *c, int nc); /* below */

/* --replay LOG [-- REPLAY-OPTIONS]: each run is `s3shim replay LOG OPTIONS`, after a set-up
 * (not timed) of `s3shim replay LOG --prepare-only` that puts back the files the log
 * started from, after the --setup command if there is one. */
static int replay_cmd(const char *log, char **opts, int nopts)
{
    static char self[4096], abs_log[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || !realpath(log, abs_log)) {
        fprintf(stderr, "s3shim ab: --replay %s: %s\n", log, strerror(errno));
        return -1;
    }
    self[n] = 0;
    char **c = calloc((size_t)nopts + 5, sizeof *c);
    int k = 0;
    c[k++] = self;
    c[k++] = "replay";
    c[k++] = abs_log;
    for (int j = 0; j < nopts; j++) c[k++] = opts[j];
    cmd = c;
    if (strchr(self, '\'') || strchr(abs_log, '\'')) {
        fprintf(stderr, "s3shim ab: --replay: a path with a quote (')\n");
        return -1;
    }
    static char setup[10000];
    snprintf(setup, sizeof setup, "%s%s'%s' replay '%s' --prepare-only", setup_cmd ? setup_cmd : "", setup_cmd ? " && " : "",
             self, abs_log);
    setup_cmd = setup;
    return 0;
}

static int usage(void)
{
    fputs("usage: s3shim ab --arm NAME=PREFIX=URI[;PREFIX=URI...] --arm NAME=... [--env NAME=VAR=VALUE]...\n"
          "                 [--runs N] [--warmup K] [--setup CMD] [--cleanup CMD] [--compare PATH]\n"
          "                 [--seed S] [--no-oplog] [--json] [--report FILE.html] -- CMD [ARGS...]\n"
          "       s3shim ab --replay LOG --arm ... [OPTIONS] [-- REPLAY-OPTIONS]   (s3shim replay LOG in each run, --prepare-only before)\n",
          stderr);
    return 2;
}

int cmd_ab(int argc, char **argv)
{
    int runs = 6, warm = 1, json = 0;
    const char *replay_log = NULL;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    const char *report = NULL;
    int i = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "--arm") == 0 && more) {
            if (parse_arm(argv[++i]) < 0) {
                fprintf(stderr, "s3shim ab: bad or repeated --arm '%s' (NAME=PREFIX=URI[;PREFIX=URI...])\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--env") == 0 && more) {
            if (parse_env(argv[++i]) < 0) {
                fprintf(stderr, "s3shim ab: bad --env '%s' (NAME=VAR=VALUE, after --arm NAME)\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--runs") == 0 && more) {
            runs = atoi(argv[++i]);
        } else if (strcmp(a, "--warmup") == 0 && more) {
            warm = atoi(argv[++i]);
        } else if (strcmp(a, "--seed") == 0 && more) {
            seed = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(a, "--setup") == 0 && more) {
            setup_cmd = argv[++i];
        } else if (strcmp(a, "--cleanup") == 0 && more) {
            cleanup_cmd = argv[++i];
        } else if (strcmp(a, "--compare") == 0 && more) {
            compare = argv[++i];
        } else if (strcmp(a, "--report") == 0 && more) {
            report = argv[++i];
        } else if (strcmp(a, "--replay") == 0 && more) {
            replay_log = argv[++i];
        } else if (strcmp(a, "--no-oplog") == 0) {
            ab_oplog = 0;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else {
            fprintf(stderr, "s3shim ab: unknown option '%s'\n", a);
            return usage();
        }
    }
    if ((i >= argc && !replay_log) || narms < 2 || runs < 2 || runs > 1000 || warm < 0) {
        if (narms < 2) fprintf(stderr, "s3shim ab: at least two --arm\n");
        if (runs < 2 || runs > 1000) fprintf(stderr, "s3shim ab: --runs must be 2 to 1000\n");
        if (i >= argc && !replay_log) fprintf(stderr, "s3shim ab: no command after -- (or --replay LOG)\n");
        return usage();
    }
    if (runs < 6) fprintf(stderr, "s3shim ab: warning: %d runs per arm; 6 or more are needed to see a 5%% level\n", runs);
    cmd = argv + i;
    if (replay_log && replay_cmd(replay_log, argv + i, argc - i) < 0) return 2;
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/s3shim-ab.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        perror("s3shim ab: mkdtemp");
        return 1;
    }
    for (int k = 0; k < narms; k++) arms[k].runs = calloc((size_t)(runs > warm ? runs : warm) + 1, sizeof(struct run));
    srand(seed);
    int tty = !json && isatty(2);
    int order[MAX_ARMS];
    for (int round = 0; round < warm + runs; round++) {
        for (int k = 0; k < narms; k++) order[k] = k;
        for (int k = narms - 1; k > 0; k--) { /* Fisher-Yates */
            int j = rand() % (k + 1), t = order[k];
            order[k] = order[j];
            order[j] = t;
        }
        for (int k = 0; k < narms; k++) {
            struct arm *a = &arms[order[k]];
            int w = round < warm;
            one_run(a, w ? 0 : round - warm, w);
            if (!w) a->nruns = round - warm + 1;
            if (tty) fprintf(stderr, "\r  %s %d/%d  %-12s", w ? "warm-up" : "run", w ? round + 1 : round - warm + 1,
                               w ? warm : runs, a->name);
        }
    }
    if (tty) fputs("\r\033[K", stderr);
    /* comparisons against the first arm, Holm over the arms per metric */
    static struct cmp c[MAX_ARMS * NMET_ALL];
    int nc = 0;
    double va[1001], vb[1001];
    for (int m = 0; m < NMET_ALL; m++) {
        if (!ab_met_present(m)) continue; /* a latency percentile needs the op kind in every run */
        int first = nc;
        double p[MAX_ARMS], adj[MAX_ARMS];
        ab_values(&arms[0], m, va);
        for (int k = 1; k < narms; k++) {
            ab_values(&arms[k], m, vb);
            struct cmp *x = &c[nc++];
            x->arm = k;
            x->met = m;
            x->p = ab_mwu_p(va, (size_t)runs, vb, (size_t)runs);
            int pos = 1;
            for (int r = 0; r < runs; r++) pos &= va[r] > 0 && vb[r] > 0;
            x->r = pos ? ab_hl_ratio(va, (size_t)runs, vb, (size_t)runs) : (struct ab_ratio){NAN, NAN, NAN};
            p[k - 1] = x->p;
        }
        ab_holm(p, (size_t)(narms - 1), adj);
        for (int k = first; k < nc; k++) {
            c[k].p_adj = adj[k - first];
            c[k].v = ab_verdict(c[k].p_adj, c[k].r.ratio, 0.05, 0.03);
        }
    }
    int differ = 0;
    for (int k = 1; k < narms; k++) differ |= ab_results_differ(k);
    /* within an arm, all runs should agree too */
    for (int k = 0; k < narms; k++)
        for (int r = 1; r < runs; r++)
            if (strcmp(arms[k].runs[r].out_hash, arms[k].runs[0].out_hash) ||
                arms[k].runs[r].status != arms[k].runs[0].status ||
                strcmp(arms[k].runs[r].tree_hash, arms[k].runs[0].tree_hash)) {
                fprintf(stderr, "s3shim ab: warning: arm %s run %d gave other results than its run 1\n", arms[k].name, r + 1);
                break;
            }
    for (int k = 0; k < narms; k++) {
        int fl[1001];
        ab_values(&arms[k], M_WALL, va);
        if (ab_outliers(va, (size_t)runs, 5, fl))
            for (int r = 0; r < runs; r++)
                if (fl[r])
                    fprintf(stderr, "s3shim ab: warning: arm %s run %d took %.3f s, an outlier (median %.3f s)\n",
                            arms[k].name, r + 1, va[r], ab_median(va, (size_t)runs));
    }
    if (json)
        print_json(stdout, c, nc, seed, differ);
    else
        print_text(c, nc, runs, warm, seed);
    for (int k = 1; k < narms; k++)
        if (ab_results_differ(k))
            fprintf(stderr,
                    "s3shim ab: RESULTS DIFFER: arm %s gave another %s than arm %s (exit status, stdout%s)\n",
                    arms[k].name, "result", arms[0].name, compare ? " or the tree under --compare" : "");
    int rc = differ ? 1 : 0;
    if (report && report_html(report, c, nc) < 0) rc = rc ? rc : 1;
    return rc;
}

