/* oplog.c - `s3shim oplog FILE|DIR --summary | --jsonl | --perfetto OUT.json | --fio OUT`; `diff` is oldiff.c. */
#define _GNU_SOURCE 1
#include "tools.h"
#include "olread.h"
#include "olreq.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t pct_sorted(const uint64_t *v, size_t n, double q)
{
    if (!n) return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

struct group {
    unsigned op;
    char mount[256];
    uint64_t *lat;
    size_t n, cap, errors, bytes, seq, rnd;
};

struct stream {
    uint32_t sess, path;
    int32_t fd;
    uint64_t end;
};

static struct group *group_of(struct group **g, size_t *ng, unsigned op, const char *mount)
{
    for (size_t i = 0; i < *ng; i++)
        if ((*g)[i].op == op && strcmp((*g)[i].mount, mount) == 0) return &(*g)[i];
    *g = realloc(*g, (*ng + 1) * sizeof **g);
    struct group *x = &(*g)[(*ng)++];
    memset(x, 0, sizeof *x);
    x->op = op;
    snprintf(x->mount, sizeof x->mount, "%s", mount);
    return x;
}

static void add_lat(struct group *x, const struct ol_rec *r)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 256;
        x->lat = realloc(x->lat, x->cap * sizeof *x->lat);
    }
    x->lat[x->n++] = r->r.lat;
    if (r->r.res < 0) x->errors++;
}

/* A path's class: its mount and its extension ("/data *.csv"), for reads and writes. */
static const char *path_class(const struct ol_set *s, const struct ol_rec *r)
{
    static char buf[300];
    const char *p = ol_str(s, r, OLS_PATH, r->r.path);
    const char *base = p ? strrchr(p, '/') : NULL;
    const char *dot = base ? strrchr(base, '.') : NULL;
    if (dot && dot > base + 1 && strlen(dot) <= 12)
        snprintf(buf, sizeof buf, "%.200s *%s", ol_mount(s, r), dot);
    else
        snprintf(buf, sizeof buf, "%.200s (no ext)", ol_mount(s, r));
    return buf;
}

static void print_groups(FILE *out, const char *what, struct group *g, size_t ng, double dur)
{
    fprintf(out, "\n  %-9s %-20s %9s %7s %14s %9s %9s %9s %9s %9s %8s\n", "op", what, "count", "errors", "bytes",
            "p50_us", "p90_us", "p99_us", "max_us", "MB/s", "seq%");
    for (size_t i = 0; i < ng; i++) {
        struct group *x = &g[i];
        qsort(x->lat, x->n, sizeof *x->lat, cmp_u64);
        char seqs[16] = "-";
        if (x->seq + x->rnd) snprintf(seqs, sizeof seqs, "%.1f", 100.0 * (double)x->seq / (double)(x->seq + x->rnd));
        fprintf(out, "  %-9s %-20s %9zu %7zu %14zu %9.1f %9.1f %9.1f %9.1f %9.1f %8s\n", oplog_op_name(x->op),
                x->mount, x->n, x->errors, x->bytes, (double)pct_sorted(x->lat, x->n, 0.5) / 1e3,
                (double)pct_sorted(x->lat, x->n, 0.9) / 1e3, (double)pct_sorted(x->lat, x->n, 0.99) / 1e3,
                (double)x->lat[x->n - 1] / 1e3, dur > 0 ? (double)x->bytes / 1e6 / dur : 0.0, seqs);
        free(x->lat);
    }
    free(g);
}

static const char *end_name(uint32_t r)
{
    return r == OLE_EXIT ? "exit" : r == OLE_UNDERSCORE_EXIT ? "_exit" : r == OLE_EXEC ? "exec" : "?";
}

static int summary(struct ol_set *s, FILE *out)
{
    ol_sort(s);
    uint64_t lost = 0, wait = 0, t_first = UINT64_MAX, t_last = 0;
    size_t threads = 0;
    for (size_t i = 0; i < s->nsess; i++) {
        lost += s->sess[i].footer.lost;
        wait += s->sess[i].footer.wait_ns;
        threads += s->sess[i].footer.threads;
    }
    struct group *g = NULL, *gc = NULL;
    size_t ng = 0, ngc = 0;
    struct stream *st = NULL;
    size_t nst = 0, last = 0;
    uint64_t rsizes[64] = {0};
    for (size_t i = 0; i < s->nrec; i++) {
        const struct ol_rec *r = &s->rec[i];
        if (r->r.t < t_first) t_first = r->r.t;
        if (r->r.t + r->r.lat > t_last) t_last = r->r.t + r->r.lat;
        struct group *x = group_of(&g, &ng, r->r.op, ol_mount(s, r));
        add_lat(x, r);
        struct group *y = NULL;
        if (r->r.op == OL_READ || r->r.op == OL_WRITE) add_lat(y = group_of(&gc, &ngc, r->r.op, path_class(s, r)), r);
        if ((r->r.op == OL_READ || r->r.op == OL_WRITE) && r->r.res > 0) {
            x->bytes += (uint64_t)r->r.res;
            y->bytes += (uint64_t)r->r.res;
#define SAME_STREAM(k) (st[k].sess == r->sess && st[k].path == r->r.path && st[k].fd == r->r.fd)
            size_t k = last < nst && SAME_STREAM(last) ? last : 0;
            if (!(k < nst && SAME_STREAM(k)))
                for (k = nst; k-- > 0;) /* the latest streams first */
                    if (SAME_STREAM(k)) break;
            if (k >= nst) k = nst;
#undef SAME_STREAM
            last = k;
            int seq;
            if (k == nst) {
                st = realloc(st, (nst + 1) * sizeof *st);
                st[nst++] = (struct stream){r->sess, r->r.path, r->r.fd, 0};
                seq = r->r.off == 0;
            } else {
                seq = (uint64_t)r->r.off == st[k].end;
            }
            st[k].end = (uint64_t)r->r.off + (uint64_t)r->r.res;
            if (seq) x->seq++, y->seq++;
            else x->rnd++, y->rnd++;
            if (r->r.op == OL_READ) rsizes[63 - __builtin_clzll(r->r.len | 1)]++;
        }
    }
    double dur = t_last > t_first ? (double)(t_last - t_first) / 1e9 : 0;
    fprintf(out, "s3shim oplog: %zu file(s), %zu session(s), %zu thread(s), %zu records, %llu lost, %zu missing", s->files,
            s->nsess, threads, s->nrec + s->nreq, (unsigned long long)lost, s->missing);
    if (s->nreq) fprintf(out, "; %zu of the records are S3 requests", s->nreq);
    fputc('\n', out);
    fprintf(out, "  %.3f s from the first operation to the end of the last; callers waited %.3f ms for the log\n", dur,
            (double)wait / 1e6);
    if (s->no_footer)
        fprintf(out, "  %zu session(s) ended without a footer (killed): their records were recovered up to the last one stored\n",
                s->no_footer);
    print_groups(out, "mount", g, ng, dur);
    if (ngc) print_groups(out, "path class", gc, ngc, dur);
    free(st);
    int any = 0;
    for (int k = 0; k < 64; k++)
        if (rsizes[k]) {
            if (!any) fprintf(out, "\n  read sizes asked for:");
            any = 1;
            unsigned long long b = 1ull << k;
            if (b >= (1u << 20)) fprintf(out, " %lluM+: %llu", b >> 20, (unsigned long long)rsizes[k]);
            else if (b >= 1024) fprintf(out, " %lluK+: %llu", b >> 10, (unsigned long long)rsizes[k]);
            else fprintf(out, " %llu+: %llu", b, (unsigned long long)rsizes[k]);
        }
    if (any) fputc('\n', out);
    olreq_summary(s, out);
    fprintf(out, "\n  processes:\n");
    size_t *per = calloc(s->nsess + 1, sizeof *per);
    for (size_t i = 0; i < s->nrec; i++) per[s->rec[i].sess]++;
    for (size_t i = 0; i < s->nreq; i++) per[s->req[i].sess]++;
    for (size_t i = 0; i < s->nsess; i++) {
        struct ol_sess *x = &s->sess[i];
        const char *argv = x->nstr[OLS_ARGV] > 1 ? x->str[OLS_ARGV][1] : NULL;
        fprintf(out, "    pid %-8d session %u  %-6s %8zu records", x->pid, x->session,
                x->has_footer ? end_name(x->footer.reason) : "killed", per[i]);
        if (x->has_footer && x->footer.records != per[i])
            fprintf(out, " (footer says %llu)", (unsigned long long)x->footer.records);
        fprintf(out, "  %s\n", argv ? argv : "?");
    }
    free(per);
    return 0;
}

static void rec_json(const struct ol_set *s, const struct ol_rec *r, FILE *out)
{
    const struct ol_sess *x = &s->sess[r->sess];
    fprintf(out, "{\"pid\":%d,\"tid\":%d,\"session\":%u,\"seq\":%llu,\"t_ns\":%llu,\"wall_ns\":%llu,\"op\":\"%s\"",
            x->pid, r->tid, x->session, (unsigned long long)r->r.seq, (unsigned long long)r->r.t,
            (unsigned long long)(x->wall0 + (r->r.t - x->mono0)), oplog_op_name(r->r.op));
    fprintf(out, ",\"fd\":%d,\"mount\":", r->r.fd);
    stats_json_str(out, ol_mount(s, r));
    fputs(",\"path\":", out);
    const char *p = ol_str(s, r, OLS_PATH, r->r.path);
    if (p) stats_json_str(out, p);
    else fputs("null", out);
    if (r->r.op == OL_META) {
        fputs(",\"call\":", out);
        stats_json_str(out, ol_str(s, r, OLS_NAME, r->r.aux));
    }
    if (r->r.op == OL_OPEN) fprintf(out, ",\"flags\":%u", r->r.aux);
    fprintf(out, ",\"off\":%lld,\"len\":%llu,\"res\":%lld,\"lat_ns\":%llu}\n", (long long)r->r.off,
            (unsigned long long)r->r.len, (long long)r->r.res, (unsigned long long)r->r.lat);
}

static int perfetto(struct ol_set *s, FILE *out)
{
    ol_sort(s);
    olreq_sort(s);
    uint64_t t0 = s->nrec ? s->rec[0].r.t : 0;
    if (s->nreq && (!s->nrec || s->req[0].q.t < t0)) t0 = s->req[0].q.t;
    fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n", out);
    int first = 1;
    for (size_t i = 0; i < s->nsess; i++) {
        const struct ol_sess *x = &s->sess[i];
        const char *argv = x->nstr[OLS_ARGV] > 1 ? x->str[OLS_ARGV][1] : NULL;
        char name[600];
        snprintf(name, sizeof name, "%.500s (pid %d%s)", argv ? argv : "?", x->pid, x->session ? ", after exec" : "");
        fprintf(out, "%s{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":", first ? "" : ",\n",
                x->pid);
        stats_json_str(out, name);
        fputs("}}", out);
        first = 0;
    }
    for (size_t i = 0; i < s->nrec; i++) {
        const struct ol_rec *r = &s->rec[i];
        const struct ol_sess *x = &s->sess[r->sess];
        const char *p = ol_str(s, r, OLS_PATH, r->r.path);
        fprintf(out, "%s{\"ph\":\"X\",\"cat\":\"s3shim\",\"name\":\"%s\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"path\":",
                first ? "" : ",\n", r->r.op == OL_META ? ol_str(s, r, OLS_NAME, r->r.aux) ? ol_str(s, r, OLS_NAME, r->r.aux) : "meta"
                                                        : oplog_op_name(r->r.op),
                x->pid, r->tid, (double)(r->r.t - t0) / 1e3, (double)r->r.lat / 1e3);
        stats_json_str(out, p ? p : "");
        fprintf(out, ",\"fd\":%d,\"off\":%lld,\"len\":%llu,\"res\":%lld}}", r->r.fd, (long long)r->r.off,
                (unsigned long long)r->r.len, (long long)r->r.res);
        first = 0;
    }
    olreq_perfetto(s, out, t0, &first);
    fputs("\n]}\n", out);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* fio's trace format version 3 (fio --read_iolog): per file "add" once, "open" and "close"
 * when the first description opens and the last closes (and around reads and writes on a
 * descriptor the log has no open for), reads and writes with their offset and the bytes
 * they moved, "sync"; timestamps in microseconds from the first op. fio has one file
 * handle per name and replays in one job: threads and descriptors are merged. */
static int fio_log(struct ol_set *s, FILE *out)
{
    ol_sort(s);
    const char **names = calloc(s->nrec + 1, sizeof *names);
    size_t n = 0;
    for (size_t i = 0; i < s->nrec; i++) {
        const char *p = ol_str(s, &s->rec[i], OLS_PATH, s->rec[i].r.path);
        if (p) names[n++] = p;
    }
    qsort(names, n, sizeof *names, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (!u || strcmp(names[u - 1], names[i])) names[u++] = names[i];
    int *opens = calloc(u + 1, sizeof *opens);
    char *added = calloc(u + 1, 1);
    uint64_t t0 = s->nrec ? s->rec[0].r.t : 0;
    fputs("fio version 3 iolog\n", out);
    for (size_t i = 0; i < s->nrec; i++) {
        const struct ol_rec *r = &s->rec[i];
        const char *p = ol_str(s, r, OLS_PATH, r->r.path);
        if (!p || r->r.res < 0) continue;
        const char **f = bsearch(&p, names, u, sizeof *names, cmp_str);
        size_t k = (size_t)(f - names);
        unsigned long long us = (unsigned long long)((r->r.t - t0) / 1000);
        if (r->r.op == OL_DUP) { /* one more descriptor of an open file: its close is not fio's */
            if (opens[k] > 0) opens[k]++;
            continue;
        }
        int io = (r->r.op == OL_READ || r->r.op == OL_WRITE) && r->r.res > 0 && r->r.off >= 0;
        if (!(io || r->r.op == OL_OPEN || r->r.op == OL_CLOSE || r->r.op == OL_SYNC)) continue;
        if (r->r.op == OL_OPEN && (r->r.aux & O_DIRECTORY)) continue;
        if (!added[k]) fprintf(out, "%llu %s add\n", us, p), added[k] = 1;
        if (r->r.op == OL_OPEN || (r->r.op != OL_CLOSE && opens[k] == 0)) {
            if (opens[k]++ == 0) fprintf(out, "%llu %s open\n", us, p);
            if (r->r.op == OL_OPEN) continue;
        }
        if (r->r.op == OL_CLOSE) {
            if (opens[k] > 0 && --opens[k] == 0) fprintf(out, "%llu %s close\n", us, p);
        } else if (r->r.op == OL_SYNC) {
            fprintf(out, "%llu %s sync\n", us, p);
        } else {
            fprintf(out, "%llu %s %s %lld %lld\n", us, p, r->r.op == OL_READ ? "read" : "write", (long long)r->r.off,
                    (long long)r->r.res);
        }
    }
    for (size_t k = 0; k < u; k++)
        if (opens[k] > 0) fprintf(out, "%llu %s close\n", s->nrec ? (unsigned long long)((s->rec[s->nrec - 1].r.t - t0) / 1000) : 0ull, names[k]);
    free(names);
    free(opens);
    free(added);
    return 0;
}

int cmd_oplog(int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "diff") == 0) return cmd_oplog_diff(argc - 1, argv + 1);
    const char *file = NULL, *mode = NULL, *trace = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--summary") == 0 || strcmp(argv[i], "--jsonl") == 0)
            mode = argv[i];
        else if ((strcmp(argv[i], "--perfetto") == 0 || strcmp(argv[i], "--fio") == 0) && i + 1 < argc)
            mode = argv[i], trace = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "s3shim oplog: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!file)
            file = argv[i];
        else {
            fprintf(stderr, "s3shim oplog: one FILE or DIR only\n");
            return 2;
        }
    }
    if (!file) {
        fprintf(stderr, "usage: s3shim oplog FILE|DIR [--summary | --jsonl | --perfetto OUT.json | --fio OUT.iolog]\n"
                        "       s3shim oplog diff A B\n");
        return 2;
    }
    struct ol_set s = {0};
    char err[600];
    if (ol_load(&s, file, err, sizeof err) < 0) {
        fprintf(stderr, "s3shim oplog: error: %s\n", err);
        ol_free(&s);
        return 1;
    }
    int rc = 0;
    if (!mode || strcmp(mode, "--summary") == 0) {
        rc = summary(&s, stdout);
    } else if (strcmp(mode, "--jsonl") == 0) {
        ol_sort(&s);
        olreq_sort(&s);
        for (size_t i = 0, j = 0; i < s.nrec || j < s.nreq;) /* by start time, ops and requests merged */
            if (j < s.nreq && (i >= s.nrec || s.req[j].q.t < s.rec[i].r.t)) olreq_json(&s, &s.req[j++], stdout);
            else rec_json(&s, &s.rec[i++], stdout);
    } else {
        FILE *out = strcmp(trace, "-") == 0 ? stdout : fopen(trace, "w");
        if (!out) {
            perror(trace);
            rc = 1;
        } else {
            if (strcmp(mode, "--fio") == 0) fio_log(&s, out);
            else perfetto(&s, out);
            if (out != stdout && fclose(out) != 0) {
                perror(trace);
                rc = 1;
            }
        }
    }
    ol_free(&s);
    return rc;
}
