/* ab_oplog.c - per-run figures of `s3shim ab` beyond wait4: each op kind's latency
 * percentiles from the run's op logs (every process, read with tools/olread.c and taken
 * the way `s3shim oplog --summary` takes them, so the two agree), and each endpoint's
 * requests, bytes, retries and errors from the run's stats files (every process). */
#define _GNU_SOURCE 1
#include "ab.h"
#include "olread.h"
#include "tools.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int dir_has_files(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; !n && (e = readdir(d));) n = e->d_name[0] != '.';
    closedir(d);
    return n;
}

void ab_read_oplog(struct run *r)
{
    for (unsigned op = 0; op < OL_NOPS; op++)
        for (int q = 0; q < NQ; q++) r->lat[op][q] = NAN;
    if (!ab_oplog) return;
    char p[700], err[600];
    snprintf(p, sizeof p, "%s/oplog", r->dir);
    struct ol_set s = {0};
    if (ol_load(&s, p, err, sizeof err) < 0) {
        /* an arm may turn the log off (--env NAME=S3SHIM_OPLOG=): no files, no figures */
        if (dir_has_files(p)) fprintf(stderr, "s3shim ab: warning: %s\n", err);
        ol_free(&s);
        return;
    }
    uint64_t *lat[OL_NOPS] = {0};
    size_t cap[OL_NOPS] = {0};
    for (size_t i = 0; i < s.nrec; i++) {
        unsigned op = s.rec[i].r.op;
        if (op < OL_OPEN || op >= OL_NOPS) continue; /* kinds this ab does not know */
        size_t n = (size_t)r->lat_n[op];
        if (n == cap[op]) {
            size_t c = cap[op] ? 2 * cap[op] : 256;
            uint64_t *x = realloc(lat[op], c * sizeof *x);
            if (!x) continue;
            lat[op] = x;
            cap[op] = c;
        }
        lat[op][n] = s.rec[i].r.lat;
        r->lat_n[op]++;
    }
    ol_free(&s);
    for (unsigned op = OL_OPEN; op < OL_NOPS; op++) {
        size_t n = (size_t)r->lat_n[op];
        if (n) {
            qsort(lat[op], n, sizeof *lat[op], cmp_u64);
            for (int q = 0; q < NQ; q++) r->lat[op][q] = (double)pct_sorted(lat[op], n, ab_q[q]) / 1e3;
        }
        free(lat[op]);
    }
}

/* The number after key within [p, end), or 0. */
static uint64_t num_after(const char *p, const char *end, const char *key)
{
    const char *q = memmem(p, (size_t)(end - p), key, strlen(key));
    return q ? strtoull(q + strlen(key), NULL, 10) : 0;
}

/* The counters of op kind `kind` ("req") in the ops object [p, end). */
static void op_counts(const char *p, const char *end, const char *kind, uint64_t *count, uint64_t *errors,
                      uint64_t *bytes)
{
    char key[40];
    snprintf(key, sizeof key, "\"%s\":{", kind);
    const char *q = memmem(p, (size_t)(end - p), key, strlen(key));
    *count = *errors = 0;
    if (bytes) *bytes = 0;
    if (!q) return;
    const char *e = memchr(q, '}', (size_t)(end - q)); /* an op object holds no nested object */
    if (!e) return;
    *count = num_after(q, e, "\"count\":");
    *errors = num_after(q, e, "\"errors\":");
    if (bytes) *bytes = num_after(q, e, "\"bytes\":");
}

/* Endpoints appear in a stats JSON line (core/stats.c) as children of their mount:
 * {"name":"endpoint","uri":"...",["share":..,]"ops":{"req":{...},"retry":{...}},"children":[]} */
void ab_read_endpoints(struct run *r, const char *line)
{
    static const char key[] = "{\"name\":\"endpoint\",\"uri\":\"";
    for (const char *p = strstr(line, key); p; p = strstr(p, key)) {
        p += sizeof key - 1;
        char uri[256];
        size_t n = 0;
        for (; *p && *p != '"'; p++) { /* stats_json_str escapes only \" and \\ here */
            if (*p == '\\' && p[1]) p++;
            if (n + 1 < sizeof uri) uri[n++] = *p;
        }
        uri[n] = 0;
        const char *end = strstr(p, "\"children\":[");
        if (!end) break;
        uint64_t req, rerr, bytes, retries, x;
        op_counts(p, end, "req", &req, &rerr, &bytes);
        op_counts(p, end, "retry", &retries, &x, NULL);
        int i = 0;
        while (i < r->nep && strcmp(r->ep[i].uri, uri)) i++;
        if (i == r->nep) {
            if (r->nep == AB_MAX_EP) continue;
            snprintf(r->ep[r->nep++].uri, sizeof r->ep[0].uri, "%s", uri);
        }
        r->ep[i].req += req;
        r->ep[i].bytes += bytes;
        r->ep[i].errors += rerr;
        r->ep[i].retries += retries;
        p = end;
    }
}

static uint64_t median_u64(double *v, int n)
{
    double m = ab_median(v, (size_t)n);
    return isfinite(m) ? (uint64_t)llround(m) : 0;
}

int ab_arm_endpoints(const struct arm *a, struct ab_ep *out)
{
    int n = 0;
    for (int r = 0; r < a->nruns; r++)
        for (int i = 0; i < a->runs[r].nep; i++) {
            int k = 0;
            while (k < n && strcmp(out[k].uri, a->runs[r].ep[i].uri)) k++;
            if (k == n && n < AB_MAX_EP) memcpy(out[n++].uri, a->runs[r].ep[i].uri, sizeof out[0].uri);
        }
    for (int k = 0; k < n; k++) {
        double v[4][1001];
        for (int r = 0; r < a->nruns; r++) {
            const struct ab_ep *e = NULL;
            for (int i = 0; i < a->runs[r].nep && !e; i++)
                if (strcmp(a->runs[r].ep[i].uri, out[k].uri) == 0) e = &a->runs[r].ep[i];
            v[0][r] = e ? (double)e->req : 0; /* a run that never reached the endpoint */
            v[1][r] = e ? (double)e->bytes : 0;
            v[2][r] = e ? (double)e->retries : 0;
            v[3][r] = e ? (double)e->errors : 0;
        }
        out[k].req = median_u64(v[0], a->nruns);
        out[k].bytes = median_u64(v[1], a->nruns);
        out[k].retries = median_u64(v[2], a->nruns);
        out[k].errors = median_u64(v[3], a->nruns);
    }
    return n;
}
