/* olreq.c - the S3 request records of an op log in `s3shim oplog`'s outputs: the
 * per-endpoint section of --summary, request objects in --jsonl and request slices on
 * their engine thread's track in --perfetto. Kept apart from oplog.c, whose readers of
 * program ops never see requests (olread.h keeps them in their own array). */
#define _GNU_SOURCE 1
#include "olreq.h"
#include "tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *olreq_endpoint(const struct ol_set *s, const struct ol_req *q)
{
    const char *e = ol_sess_str(s, q->sess, OLS_ENDPOINT, q->q.endpoint);
    return e ? e : "?";
}

/* "503" for HTTP 503; "curl 28" for a failed transfer; "-" for none. */
const char *olreq_status(const struct ol_req *q, char *buf, size_t len)
{
    if (q->q.status > 0) snprintf(buf, len, "%d", q->q.status);
    else if (q->q.status < 0) snprintf(buf, len, "curl %d", -q->q.status);
    else snprintf(buf, len, "-");
    return buf;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct rgroup {
    char ep[256];
    unsigned kind;
    uint64_t *lat;
    size_t n, cap, requests, retries, hedges, prefetch, linked;
    uint64_t bytes;
    struct {
        int status;
        size_t n;
    } st[16];
    int nst;
};

static struct rgroup *rgroup_of(struct rgroup **g, size_t *ng, const char *ep, unsigned kind)
{
    for (size_t i = 0; i < *ng; i++)
        if ((*g)[i].kind == kind && strcmp((*g)[i].ep, ep) == 0) return &(*g)[i];
    *g = realloc(*g, (*ng + 1) * sizeof **g);
    struct rgroup *x = &(*g)[(*ng)++];
    memset(x, 0, sizeof *x);
    snprintf(x->ep, sizeof x->ep, "%s", ep);
    x->kind = kind;
    return x;
}

static int by_ep_kind(const void *a, const void *b)
{
    const struct rgroup *x = a, *y = b;
    int c = strcmp(x->ep, y->ep);
    return c ? c : (int)x->kind - (int)y->kind;
}

void olreq_summary(const struct ol_set *s, FILE *out)
{
    if (!s->nreq) return;
    struct rgroup *g = NULL;
    size_t ng = 0, linked = 0, prefetch = 0;
    for (size_t i = 0; i < s->nreq; i++) {
        const struct ol_req *q = &s->req[i];
        struct rgroup *x = rgroup_of(&g, &ng, olreq_endpoint(s, q), q->q.kind);
        if (x->n == x->cap) {
            x->cap = x->cap ? 2 * x->cap : 64;
            x->lat = realloc(x->lat, x->cap * sizeof *x->lat);
        }
        x->lat[x->n++] = q->q.lat;
        x->bytes += q->q.bytes;
        unsigned att = q->q.attempt & OLQ_ATTEMPT;
        if (q->q.attempt & OLQ_HEDGE) x->hedges++;
        else if (att > 1) x->retries++;
        else x->requests++;
        if (q->q.attempt & OLQ_PREFETCH) x->prefetch++, prefetch++;
        if (q->cause_seq) x->linked++, linked++;
        int k = 0;
        while (k < x->nst && x->st[k].status != q->q.status) k++;
        if (k == x->nst && k < 16) x->st[x->nst++].status = q->q.status;
        if (k < 16) x->st[k].n++;
    }
    qsort(g, ng, sizeof *g, by_ep_kind);
    fprintf(out, "\n  S3 requests: %zu HTTP requests (attempts), %zu sent during an op of the log, %zu prefetches\n",
            s->nreq, linked, prefetch);
    fprintf(out, "  %-12s %8s %8s %7s %6s %14s %9s %9s %9s  %s\n", "request", "requests", "attempts", "retries", "hedges",
            "bytes", "p50_us", "p90_us", "p99_us", "statuses");
    const char *cur = NULL;
    for (size_t i = 0; i < ng; i++) {
        struct rgroup *x = &g[i];
        if (!cur || strcmp(cur, x->ep) != 0) fprintf(out, "  endpoint %s\n", cur = x->ep);
        qsort(x->lat, x->n, sizeof *x->lat, cmp_u64);
        char sts[200] = "";
        size_t at = 0;
        for (int k = 0; k < x->nst && at < sizeof sts; k++) {
            struct ol_req tmp = {.q.status = (int16_t)x->st[k].status};
            char b[32];
            at += (size_t)snprintf(sts + at, sizeof sts - at, "%s%s:%zu", k ? " " : "", olreq_status(&tmp, b, sizeof b),
                                   x->st[k].n);
        }
        fprintf(out, "    %-10s %8zu %8zu %7zu %6zu %14llu %9.1f %9.1f %9.1f  %s\n", oplog_req_kind_name(x->kind),
                x->requests, x->n, x->retries, x->hedges, (unsigned long long)x->bytes,
                (double)pct_sorted(x->lat, x->n, 0.5) / 1e3, (double)pct_sorted(x->lat, x->n, 0.9) / 1e3,
                (double)pct_sorted(x->lat, x->n, 0.99) / 1e3, sts);
        free(x->lat);
    }
    free(g);
}

void olreq_json(const struct ol_set *s, const struct ol_req *q, FILE *out)
{
    const struct ol_sess *x = &s->sess[q->sess];
    fprintf(out, "{\"pid\":%d,\"tid\":%d,\"session\":%u,\"seq\":%llu,\"t_ns\":%llu,\"wall_ns\":%llu,\"op\":\"req\"", x->pid,
            q->tid, x->session, (unsigned long long)q->q.seq, (unsigned long long)q->q.t,
            (unsigned long long)(x->wall0 + (q->q.t - x->mono0)));
    fprintf(out, ",\"kind\":\"%s\",\"id\":%u,\"endpoint\":", oplog_req_kind_name(q->q.kind), q->q.id);
    stats_json_str(out, olreq_endpoint(s, q));
    fputs(",\"key\":", out);
    const char *k = ol_sess_str(s, q->sess, OLS_KEY, q->q.key);
    if (k) stats_json_str(out, k);
    else fputs("null", out);
    fprintf(out, ",\"off\":%lld,\"bytes\":%llu,\"status\":%d,\"attempt\":%u,\"hedge\":%s,\"prefetch\":%s", (long long)q->q.off,
            (unsigned long long)q->q.bytes, q->q.status, q->q.attempt & OLQ_ATTEMPT,
            q->q.attempt & OLQ_HEDGE ? "true" : "false", q->q.attempt & OLQ_PREFETCH ? "true" : "false");
    fprintf(out, ",\"lat_ns\":%llu,\"ttfb_us\":%u,\"cause_tid\":%d", (unsigned long long)q->q.lat, q->q.ttfb_us,
            q->q.cause_tid);
    if (q->cause_seq) fprintf(out, ",\"cause_seq\":%llu}\n", (unsigned long long)q->cause_seq);
    else fputs(",\"cause_seq\":null}\n", out);
}

/* Requests overlap on their engine thread (one thread drives many transfers), so they
 * are async slices ("b"/"e"), one per request, on the track of that thread's process,
 * with the op that caused them in their args. */
void olreq_perfetto(const struct ol_set *s, FILE *out, uint64_t t0, int *first)
{
    for (size_t i = 0; i < s->nreq; i++) {
        const struct ol_req *q = &s->req[i];
        const struct ol_sess *x = &s->sess[q->sess];
        const char *k = ol_sess_str(s, q->sess, OLS_KEY, q->q.key);
        char st[32], name[64];
        snprintf(name, sizeof name, "%s%s", oplog_req_kind_name(q->q.kind),
                 q->q.attempt & OLQ_HEDGE ? " (backup)" : (q->q.attempt & OLQ_ATTEMPT) > 1 ? " (retry)" : "");
        double ts = (double)(q->q.t - t0) / 1e3;
        fprintf(out, "%s{\"ph\":\"b\",\"cat\":\"s3\",\"name\":\"%s\",\"id2\":{\"local\":\"0x%zx\"},\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"args\":{\"endpoint\":",
                *first ? "" : ",\n", name, i + 1, x->pid, q->tid, ts);
        stats_json_str(out, olreq_endpoint(s, q));
        fputs(",\"key\":", out);
        stats_json_str(out, k ? k : "");
        fprintf(out, ",\"off\":%lld,\"bytes\":%llu,\"status\":\"%s\",\"attempt\":%u,\"prefetch\":%s,\"ttfb_us\":%u,\"cause_tid\":%d,\"cause_seq\":%llu}}",
                (long long)q->q.off, (unsigned long long)q->q.bytes, olreq_status(q, st, sizeof st), q->q.attempt & OLQ_ATTEMPT,
                q->q.attempt & OLQ_PREFETCH ? "true" : "false", q->q.ttfb_us, q->q.cause_tid,
                (unsigned long long)q->cause_seq);
        fprintf(out, ",\n{\"ph\":\"e\",\"cat\":\"s3\",\"name\":\"%s\",\"id2\":{\"local\":\"0x%zx\"},\"pid\":%d,\"tid\":%d,\"ts\":%.3f}",
                name, i + 1, x->pid, q->tid, (double)(q->q.t + q->q.lat - t0) / 1e3);
        *first = 0;
    }
}

static int cmp_req_time(const void *a, const void *b)
{
    const struct ol_req *x = a, *y = b;
    return x->q.t < y->q.t ? -1 : x->q.t > y->q.t;
}

void olreq_sort(struct ol_set *s)
{
    if (s->nreq) qsort(s->req, s->nreq, sizeof *s->req, cmp_req_time);
}
