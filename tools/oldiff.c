/* oldiff.c - `s3shim oplog diff A B`: two runs of the same work (a program and its replay,
 * or two replays on other mounts) op by op. Latency per op kind, per mount (with the URI
 * each run had) and per file (its path below the mount, so that a remapped replay lines
 * up); then each thread's sequence of ops against the other run's thread that agrees
 * with it longest, and the first op where they part ways. The S3 requests the runs made
 * are compared per kind (whatever their endpoint) and per endpoint.
 * Exit status: 0 the sequences agree, 1 they part ways, 2 a log cannot be read. */
#define _GNU_SOURCE 1
#include "olread.h"
#include "olreq.h"
#include "tools.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lat {
    uint64_t *v;
    size_t n, cap;
    uint64_t bytes, sum;
};

struct key {
    char name[300];
    char uri[2][300];
    struct lat l[2];
};

struct keys {
    struct key *k;
    size_t n;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static struct key *key_of(struct keys *ks, const char *name)
{
    for (size_t i = ks->n; i-- > 0;)
        if (strcmp(ks->k[i].name, name) == 0) return &ks->k[i];
    ks->k = realloc(ks->k, (ks->n + 1) * sizeof *ks->k);
    struct key *k = &ks->k[ks->n++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    return k;
}

static void add_lat(struct lat *l, uint64_t lat, uint64_t bytes)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = lat;
    l->sum += lat;
    l->bytes += bytes;
}

static void add(struct lat *l, const struct ol_rec *r)
{
    add_lat(l, r->r.lat, (r->r.op == OL_READ || r->r.op == OL_WRITE) && r->r.res > 0 ? (uint64_t)r->r.res : 0);
}

/* The path below its mount prefix ("/x/y" of "/data/x/y"): runs on other prefixes line up. */
static const char *rel_path(const struct ol_set *s, const struct ol_rec *r)
{
    const char *p = ol_str(s, r, OLS_PATH, r->r.path);
    if (!p) return "";
    const char *m = ol_mount(s, r);
    size_t l = strlen(m);
    return strncmp(p, m, l) == 0 && m[0] != '?' ? p + l : p;
}

static const char *label(const struct ol_set *s, const struct ol_rec *r)
{
    const char *n = r->r.op == OL_META ? ol_str(s, r, OLS_NAME, r->r.aux) : NULL;
    return n ? n : oplog_op_name(r->r.op);
}

static void print_keys(const char *what, struct keys *ks, size_t limit)
{
    printf("\n  %-28s %9s %9s %9s %9s %9s %7s %11s %11s %7s\n", what, "count_A", "count_B", "p50_A_us", "p50_B_us", "p99_B_us",
           "p50_B/A", "total_A_ms", "total_B_ms", "B/A");
    for (size_t i = 0; i < ks->n && i < limit; i++) {
        struct key *k = &ks->k[i];
        double p50[2], p99[2];
        for (int j = 0; j < 2; j++) {
            if (k->l[j].n) qsort(k->l[j].v, k->l[j].n, sizeof *k->l[j].v, cmp_u64);
            p50[j] = (double)pct_sorted(k->l[j].v, k->l[j].n, 0.5) / 1e3;
            p99[j] = (double)pct_sorted(k->l[j].v, k->l[j].n, 0.99) / 1e3;
        }
        char r1[16] = "-", r2[16] = "-";
        if (p50[0] > 0 && k->l[1].n) snprintf(r1, sizeof r1, "%.2f", p50[1] / p50[0]);
        if (k->l[0].sum && k->l[1].n) snprintf(r2, sizeof r2, "%.2f", (double)k->l[1].sum / (double)k->l[0].sum);
        printf("  %-28.28s %9zu %9zu %9.1f %9.1f %9.1f %7s %11.3f %11.3f %7s\n", k->name, k->l[0].n, k->l[1].n, p50[0], p50[1],
               p99[1], r1, (double)k->l[0].sum / 1e6, (double)k->l[1].sum / 1e6, r2);
        if (k->uri[0][0] || k->uri[1][0])
            printf("  %-28s A: %s   B: %s\n", "", k->uri[0][0] ? k->uri[0] : "-", k->uri[1][0] ? k->uri[1] : "-");
    }
    if (ks->n > limit) printf("  ... %zu more\n", ks->n - limit);
}

static void free_keys(struct keys *ks)
{
    for (size_t i = 0; i < ks->n; i++) free(ks->k[i].l[0].v), free(ks->k[i].l[1].v);
    free(ks->k);
}

static int by_total_desc(const void *a, const void *b)
{
    const struct key *x = a, *y = b;
    uint64_t tx = x->l[0].sum + x->l[1].sum, ty = y->l[0].sum + y->l[1].sum;
    return tx > ty ? -1 : tx < ty;
}

/* Threads of a set: their records in order (pointers), ordered by their first op. */
struct thr {
    int32_t pid, tid;
    const struct ol_rec **r;
    size_t n, cap;
};

static int by_first(const void *a, const void *b)
{
    const struct thr *x = a, *y = b;
    return x->r[0]->r.t < y->r[0]->r.t ? -1 : x->r[0]->r.t > y->r[0]->r.t;
}

static size_t threads_of(const struct ol_set *s, struct thr **out)
{
    struct thr *t = NULL;
    size_t n = 0, last = 0;
    for (size_t i = 0; i < s->nrec; i++) { /* s is sorted by time */
        const struct ol_rec *r = &s->rec[i];
        int32_t pid = s->sess[r->sess].pid;
        if (!(last < n && t[last].pid == pid && t[last].tid == r->tid))
            for (last = 0; last < n && !(t[last].pid == pid && t[last].tid == r->tid); last++) {
            }
        if (last == n) {
            t = realloc(t, (n + 1) * sizeof *t);
            memset(&t[n++], 0, sizeof *t);
            t[last].pid = pid;
            t[last].tid = r->tid;
        }
        struct thr *x = &t[last];
        if (x->n == x->cap) {
            x->cap = x->cap ? 2 * x->cap : 64;
            x->r = realloc(x->r, x->cap * sizeof *x->r);
        }
        x->r[x->n++] = r;
    }
    if (n) qsort(t, n, sizeof *t, by_first);
    *out = t;
    return n;
}

/* The same op: kind (call), path below the mount, offset, length, flags, and result
 * (bytes for reads and writes; otherwise success, or the same errno). A dup's length is
 * a descriptor number, which runs do not share. */
static int same_op(const struct ol_set *a, const struct ol_rec *x, const struct ol_set *b, const struct ol_rec *y)
{
    if (x->r.op != y->r.op || x->r.off != y->r.off || (x->r.len != y->r.len && x->r.op != OL_DUP)) return 0;
    if (strcmp(label(a, x), label(b, y)) || strcmp(rel_path(a, x), rel_path(b, y))) return 0;
    if (x->r.op == OL_OPEN && x->r.aux != y->r.aux) return 0;
    if (x->r.op == OL_READ || x->r.op == OL_WRITE || x->r.res < 0 || y->r.res < 0) return x->r.res == y->r.res;
    return 1;
}

static void show_op(const char *side, const struct ol_set *s, const struct ol_rec *r)
{
    if (!r) {
        printf("      %s: (no more ops)\n", side);
        return;
    }
    printf("      %s: %s %s off %lld len %llu -> %lld\n", side, label(s, r), ol_str(s, r, OLS_PATH, r->r.path) ? ol_str(s, r, OLS_PATH, r->r.path) : "-",
           (long long)r->r.off, (unsigned long long)r->r.len, (long long)r->r.res);
}

static size_t common(const struct ol_set *a, const struct thr *x, const struct ol_set *b, const struct thr *y, size_t cap)
{
    size_t k = 0, m = x->n < y->n ? x->n : y->n;
    if (m > cap) m = cap;
    while (k < m && same_op(a, x->r[k], b, y->r[k])) k++;
    return k;
}

/* Threads are paired greedily, in the order of A's first ops, with the B thread whose ops
 * agree longest from the start (the first unpaired one when none agrees). */
static int sequences(const struct ol_set *a, const struct ol_set *b)
{
    struct thr *ta, *tb;
    size_t na = threads_of(a, &ta), nb = threads_of(b, &tb);
    char *used = calloc(nb + 1, 1);
    int parted = na != nb;
    printf("\n  sequences (each thread of A against the thread of B that agrees longest):\n");
    if (na != nb) printf("    the runs part ways: A has %zu threads, B %zu\n", na, nb);
    for (size_t i = 0; i < na; i++) {
        size_t best = nb, bk = 0;
        for (size_t j = 0; j < nb; j++) {
            if (used[j]) continue;
            size_t c = common(a, &ta[i], b, &tb[j], 4096);
            if (best == nb || c > bk) best = j, bk = c;
        }
        if (best == nb) {
            printf("    thread %zu (A pid %d tid %d, %zu ops): no thread of B left\n", i + 1, ta[i].pid, ta[i].tid, ta[i].n);
            continue;
        }
        used[best] = 1;
        struct thr *y = &tb[best];
        size_t k = common(a, &ta[i], b, y, SIZE_MAX);
        if (k == ta[i].n && k == y->n) {
            printf("    thread %zu (A pid %d tid %d, B pid %d tid %d): the same %zu ops\n", i + 1, ta[i].pid, ta[i].tid, y->pid,
                   y->tid, k);
            continue;
        }
        parted = 1;
        printf("    thread %zu (A pid %d tid %d, B pid %d tid %d): the sequences part ways at op %zu of %zu/%zu:\n", i + 1,
               ta[i].pid, ta[i].tid, y->pid, y->tid, k + 1, ta[i].n, y->n);
        show_op("A", a, k < ta[i].n ? ta[i].r[k] : NULL);
        show_op("B", b, k < y->n ? y->r[k] : NULL);
    }
    for (size_t j = 0; j < nb; j++)
        if (!used[j]) printf("    a thread of B (pid %d tid %d, %zu ops) has none in A\n", tb[j].pid, tb[j].tid, tb[j].n);
    for (size_t i = 0; i < na; i++) free(ta[i].r);
    for (size_t i = 0; i < nb; i++) free(tb[i].r);
    free(ta);
    free(tb);
    free(used);
    printf(parted ? "\n  the sequences part ways\n" : "\n  the sequences are the same\n");
    return parted;
}

int cmd_oplog_diff(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: s3shim oplog diff A B   (A and B: op log files or directories)\n");
        return 2;
    }
    struct ol_set s[2] = {{0}};
    char err[600];
    for (int j = 0; j < 2; j++)
        if (ol_load(&s[j], argv[j], err, sizeof err) < 0) {
            fprintf(stderr, "s3shim oplog diff: error: %s\n", err);
            ol_free(&s[0]);
            ol_free(&s[1]);
            return 2;
        }
    struct keys ops = {0}, mounts = {0}, files = {0}, eps = {0}, reqs = {0};
    for (int j = 0; j < 2; j++) {
        ol_sort(&s[j]);
        for (size_t i = 0; i < s[j].nrec; i++) {
            const struct ol_rec *r = &s[j].rec[i];
            add(&key_of(&ops, label(&s[j], r))->l[j], r);
            struct key *m = key_of(&mounts, ol_mount(&s[j], r));
            add(&m->l[j], r);
            const char *u = ol_str(&s[j], r, OLS_MOUNT, r->r.mount), *eq = u ? strchr(u, '=') : NULL;
            if (eq) snprintf(m->uri[j], sizeof m->uri[j], "%s", eq + 1);
            if (r->r.path) add(&key_of(&files, rel_path(&s[j], r))->l[j], r);
        }
        /* S3 requests: per endpoint (by URL), and per kind whatever the endpoint (runs on
         * other endpoints line up there) */
        for (size_t i = 0; i < s[j].nreq; i++) {
            const struct ol_req *q = &s[j].req[i];
            add_lat(&key_of(&eps, olreq_endpoint(&s[j], q))->l[j], q->q.lat, q->q.bytes);
            char k[64];
            snprintf(k, sizeof k, "%s%s", oplog_req_kind_name(q->q.kind),
                     q->q.attempt & OLQ_HEDGE ? " backup" : (q->q.attempt & OLQ_ATTEMPT) > 1 ? " retry" : "");
            add_lat(&key_of(&reqs, k)->l[j], q->q.lat, q->q.bytes);
        }
    }
    for (int j = 0; j < 2; j++)
        printf("%s: %s: %zu records (%zu S3 requests) of %zu file(s), %zu lost or missing\n", j ? "B" : "A", argv[j],
               s[j].nrec + s[j].nreq, s[j].nreq, s[j].files, (size_t)s[j].missing);
    print_keys("op", &ops, 1000);
    print_keys("mount", &mounts, 1000);
    if (files.n) qsort(files.k, files.n, sizeof *files.k, by_total_desc);
    print_keys("file (below its mount)", &files, 20);
    if (reqs.n) {
        print_keys("S3 request (any endpoint)", &reqs, 1000);
        print_keys("S3 endpoint", &eps, 1000);
    }
    int parted = sequences(&s[0], &s[1]);
    free_keys(&ops);
    free_keys(&mounts);
    free_keys(&files);
    free_keys(&eps);
    free_keys(&reqs);
    ol_free(&s[0]);
    ol_free(&s[1]);
    return parted ? 1 : 0;
}
