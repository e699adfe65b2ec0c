/* stats.c - see stats.h */
#include "stats.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

static const char *const kind_names[STK_NKINDS] = {"open", "read", "write", "stat", "dir",
                                                    "meta", "sync", "close", "ttfb", "retry",
                                                    "req",  "hedge", "eject"};

const char *stats_kind_name(enum stats_kind k) { return kind_names[k]; }

uint64_t stats_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned bucket_of(uint64_t ns)
{
    if (ns < 4) return (unsigned)ns;
    unsigned p = 63u - (unsigned)__builtin_clzll(ns);     /* top bit */
    unsigned sub = (unsigned)(ns >> (p - 2)) & 3u;           /* next two bits */
    unsigned b = p * 4 + sub;
    return b < STATS_BUCKETS ? b : STATS_BUCKETS - 1;
}

static uint64_t bucket_upper(unsigned b)
{
    if (b < 4) return b;
    unsigned p = b / 4, sub = b % 4;
    return ((uint64_t)(4 + sub + 1) << (p - 2)) - 1;
}

uint64_t stats_record(struct stats_set *s, enum stats_kind k, uint64_t t0, uint64_t bytes, int failed)
{
    uint64_t t1 = stats_now_ns();
    if (!s) return t1;
    struct stats_op *op = &s->op[k];
    uint64_t dt = t1 - t0;
    atomic_fetch_add_explicit(&op->count, 1, memory_order_relaxed);
    if (failed) atomic_fetch_add_explicit(&op->errors, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&op->bytes, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&op->ns, dt, memory_order_relaxed);
    atomic_fetch_add_explicit(&op->hist[bucket_of(dt)], 1, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&op->max_ns, memory_order_relaxed);
    while (dt > m && !atomic_compare_exchange_weak_explicit(&op->max_ns, &m, dt, memory_order_relaxed,
                                                            memory_order_relaxed)) {
    }
    return t1;
}

void stats_unrecord_bytes(struct stats_set *s, enum stats_kind k, uint64_t bytes)
{
    if (s && bytes) atomic_fetch_sub_explicit(&s->op[k].bytes, bytes, memory_order_relaxed);
}

uint64_t stats_quantile(const struct stats_op *op, double q)
{
    uint64_t n = atomic_load_explicit(&op->count, memory_order_relaxed);
    if (!n) return 0;
    uint64_t want = (uint64_t)(q * (double)n + 0.5), seen = 0;
    if (want < 1) want = 1;
    for (unsigned b = 0; b < STATS_BUCKETS; b++) {
        seen += atomic_load_explicit(&op->hist[b], memory_order_relaxed);
        if (seen >= want) {
            uint64_t up = bucket_upper(b), mx = atomic_load_explicit(&op->max_ns, memory_order_relaxed);
            return up < mx ? up : mx;
        }
    }
    return atomic_load_explicit(&op->max_ns, memory_order_relaxed);
}

void stats_reset(struct stats_set *s)
{
    memset(s->op, 0, sizeof s->op);
    for (struct stats_set *c = s->children; c; c = c->next) stats_reset(c);
}

int stats_touched(const struct stats_set *s)
{
    for (int k = 0; k < STK_NKINDS; k++)
        if (atomic_load_explicit(&s->op[k].count, memory_order_relaxed)) return 1;
    for (const struct stats_set *c = s->children; c; c = c->next)
        if (stats_touched(c)) return 1;
    return 0;
}

/* Requests sent to the children of s (endpoints), for each one's share of traffic. */
static uint64_t children_requests(const struct stats_set *s)
{
    uint64_t n = 0;
    for (const struct stats_set *c = s->children; c; c = c->next)
        n += atomic_load_explicit(&c->op[STK_REQ].count, memory_order_relaxed);
    return n;
}

static double share_of(const struct stats_set *s, uint64_t total)
{
    return total ? (double)atomic_load_explicit(&s->op[STK_REQ].count, memory_order_relaxed) / (double)total : 0.0;
}

static void text_set(FILE *out, const struct stats_set *s, double elapsed, const char *indent, uint64_t siblings)
{
    if (siblings)
        fprintf(out, "%s%s  %s  (%.1f%% of requests)\n", indent, s->name, s->detail, 100.0 * share_of(s, siblings));
    else
        fprintf(out, "%s%s  %s\n", indent, s->name, s->detail);
    fprintf(out, "%s  %-6s %10s %7s %14s %10s %9s %9s %9s %9s\n", indent, "op", "count", "errors", "bytes",
            "time_ms", "p50_us", "p99_us", "max_us", "MB/s");
    for (int k = 0; k < STK_NKINDS; k++) {
        const struct stats_op *op = &s->op[k];
        uint64_t n = atomic_load_explicit(&op->count, memory_order_relaxed);
        if (!n) continue;
        uint64_t bytes = op->bytes, ns = op->ns;
        double mbs = elapsed > 0 && bytes ? (double)bytes / 1e6 / elapsed : 0.0;
        fprintf(out, "%s  %-6s %10llu %7llu %14llu %10.1f %9.1f %9.1f %9.1f %9.1f\n", indent, kind_names[k],
                (unsigned long long)n, (unsigned long long)op->errors, (unsigned long long)bytes, (double)ns / 1e6,
                (double)stats_quantile(op, 0.5) / 1e3, (double)stats_quantile(op, 0.99) / 1e3,
                (double)op->max_ns / 1e3, mbs);
    }
    uint64_t total = children_requests(s);
    for (const struct stats_set *c = s->children; c; c = c->next) text_set(out, c, elapsed, "    ", total);
}

void stats_print_text(FILE *out, const struct stats_set *list, double elapsed_s)
{
    fprintf(out, "s3shim stats: %.3f s\n", elapsed_s);
    for (const struct stats_set *s = list; s; s = s->next)
        if (stats_touched(s)) text_set(out, s, elapsed_s, "  ", 0);
}

void stats_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void json_set(FILE *out, const struct stats_set *s, double elapsed, uint64_t siblings)
{
    fputs("{\"name\":", out);
    stats_json_str(out, s->name);
    fputs(",\"uri\":", out);
    stats_json_str(out, s->detail);
    if (siblings) fprintf(out, ",\"share\":%.4f", share_of(s, siblings));
    fputs(",\"ops\":{", out);
    int first = 1;
    for (int k = 0; k < STK_NKINDS; k++) {
        const struct stats_op *op = &s->op[k];
        if (!op->count) continue;
        fprintf(out,
                "%s\"%s\":{\"count\":%llu,\"errors\":%llu,\"bytes\":%llu,\"time_ns\":%llu,"
                "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,\"mb_per_s\":%.2f}",
                first ? "" : ",", kind_names[k], (unsigned long long)op->count, (unsigned long long)op->errors,
                (unsigned long long)op->bytes, (unsigned long long)op->ns, (double)stats_quantile(op, 0.5) / 1e3,
                (double)stats_quantile(op, 0.99) / 1e3, (double)op->max_ns / 1e3,
                elapsed > 0 ? (double)op->bytes / 1e6 / elapsed : 0.0);
        first = 0;
    }
    fputs("},\"children\":[", out);
    uint64_t total = children_requests(s);
    for (const struct stats_set *c = s->children; c; c = c->next) {
        json_set(out, c, elapsed, total);
        if (c->next) fputc(',', out);
    }
    fputs("]}", out);
}

void stats_print_json(FILE *out, const struct stats_set *list, double elapsed_s, long pid)
{
    fprintf(out, "{\"pid\":%ld,\"elapsed_s\":%.6f,\"mounts\":[", pid, elapsed_s);
    for (const struct stats_set *s = list; s; s = s->next) {
        json_set(out, s, elapsed_s, 0);
        if (s->next) fputc(',', out);
    }
    fputs("]}\n", out);
}
