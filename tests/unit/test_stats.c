/* test_stats.c - counters, latency histograms and their reports (core/stats.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/stats.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull

static struct stats_set *new_set(const char *name, const char *detail)
{
    struct stats_set *s = calloc(1, sizeof *s);
    assert_non_null(s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->detail, sizeof s->detail, "%s", detail);
    return s;
}

/* Record an operation that took (at least) ns nanoseconds. */
static void record_ns(struct stats_set *s, enum stats_kind k, uint64_t ns, uint64_t bytes, int failed)
{
    stats_record(s, k, stats_now_ns() - ns, bytes, failed);
}

static void test_now_is_monotonic(void **state)
{
    uint64_t a = stats_now_ns(), b = stats_now_ns();
    assert_true(a > 0);
    assert_true(b >= a);
}

static void test_kind_names(void **state)
{
    static const char *const want[STK_NKINDS] = {"open", "read", "write", "stat", "dir",
                                                 "meta", "sync", "close", "ttfb", "retry", "req", "hedge", "eject"};
    for (int k = 0; k < STK_NKINDS; k++) assert_string_equal(stats_kind_name((enum stats_kind)k), want[k]);
}

static void test_empty(void **state)
{
    struct stats_set *s = new_set("/e", "file:///e");
    assert_false(stats_touched(s));
    for (int k = 0; k < STK_NKINDS; k++) {
        assert_int_equal(stats_quantile(&s->op[k], 0.5), 0);
        assert_int_equal(stats_quantile(&s->op[k], 0.99), 0);
    }
    stats_record(NULL, STK_READ, stats_now_ns(), 1, 0); /* no set: ignored */
    free(s);
}

static void test_counts(void **state)
{
    struct stats_set *s = new_set("/c", "file:///c");
    uint64_t t0 = stats_now_ns();
    stats_record(s, STK_READ, t0, 100, 0);
    stats_record(s, STK_READ, t0, 200, 0);
    stats_record(s, STK_READ, t0, 0, 1);
    stats_record(s, STK_WRITE, t0, 4096, 0);
    stats_record(s, STK_OPEN, t0, 0, 1);
    assert_int_equal(s->op[STK_READ].count, 3);
    assert_int_equal(s->op[STK_READ].errors, 1);
    assert_int_equal(s->op[STK_READ].bytes, 300);
    assert_int_equal(s->op[STK_WRITE].count, 1);
    assert_int_equal(s->op[STK_WRITE].errors, 0);
    assert_int_equal(s->op[STK_WRITE].bytes, 4096);
    assert_int_equal(s->op[STK_OPEN].count, 1);
    assert_int_equal(s->op[STK_OPEN].errors, 1);
    assert_int_equal(s->op[STK_STAT].count, 0);
    uint64_t hsum = 0;
    for (int b = 0; b < STATS_BUCKETS; b++) hsum += s->op[STK_READ].hist[b];
    assert_int_equal(hsum, 3);
    assert_true(stats_touched(s));
    free(s);
}

static void check_near(const char *what, uint64_t got, uint64_t want)
{
    /* Bucket upper bound: never below the true value, at most a quarter above it (4
     * buckets per power of two), plus a little for the time the call itself takes. */
    if (got < want || got > want + want / 4 + 50000)
        fail_msg("%s = %llu ns, want %llu ns (+25%%)", what, (unsigned long long)got, (unsigned long long)want);
}

static void test_quantiles(void **state)
{
    struct stats_set *s = new_set("/q", "file:///q");
    /* 60 fast, 39 medium, 1 slow: p50 is fast, p99 medium, max slow. Latencies are chosen
     * well inside a bucket, so scheduling noise does not move them into the next one. */
    const uint64_t fast = 1100000, medium = 10000000, slow = 70000000;
    for (int i = 0; i < 60; i++) record_ns(s, STK_READ, fast, 10, 0);
    for (int i = 0; i < 39; i++) record_ns(s, STK_READ, medium, 10, 0);
    record_ns(s, STK_READ, slow, 10, 0);
    const struct stats_op *op = &s->op[STK_READ];
    assert_int_equal(op->count, 100);

    uint64_t p50 = stats_quantile(op, 0.5), p99 = stats_quantile(op, 0.99), p100 = stats_quantile(op, 1.0);
    uint64_t p0 = stats_quantile(op, 0.0), p60 = stats_quantile(op, 0.60), p61 = stats_quantile(op, 0.61);
    print_message("    p0=%llu p50=%llu p60=%llu p61=%llu p99=%llu max=%llu\n", (unsigned long long)p0,
                  (unsigned long long)p50, (unsigned long long)p60, (unsigned long long)p61,
                  (unsigned long long)p99, (unsigned long long)op->max_ns);
    check_near("p0", p0, fast);
    check_near("p50", p50, fast);
    check_near("p60", p60, fast);
    check_near("p61", p61, medium);
    check_near("p99", p99, medium);
    /* The top quantile is the maximum itself (never a bucket bound above it). */
    assert_true(op->max_ns >= slow && op->max_ns < slow + 20 * MS);
    assert_int_equal(p100, op->max_ns);
    /* Monotonic in q. */
    uint64_t prev = 0;
    for (double q = 0; q <= 1.0001; q += 0.01) {
        uint64_t v = stats_quantile(op, q);
        assert_true(v >= prev);
        assert_true(v <= op->max_ns);
        prev = v;
    }
    /* The total time is at least the sum of the latencies. */
    assert_true(op->ns >= 60 * fast + 39 * medium + slow);
    free(s);
}

static void test_single_sample(void **state)
{
    struct stats_set *s = new_set("/one", "");
    record_ns(s, STK_STAT, 5 * MS, 0, 0);
    const struct stats_op *op = &s->op[STK_STAT];
    /* One sample: every quantile is that sample, capped by the recorded maximum. */
    assert_int_equal(stats_quantile(op, 0.5), op->max_ns);
    assert_int_equal(stats_quantile(op, 0.99), op->max_ns);
    assert_true(op->max_ns >= 5 * MS);
    free(s);
}

static void test_max(void **state)
{
    struct stats_set *s = new_set("/max", "");
    record_ns(s, STK_WRITE, 3 * MS, 0, 0);
    uint64_t m1 = s->op[STK_WRITE].max_ns;
    assert_true(m1 >= 3 * MS);
    record_ns(s, STK_WRITE, 1 * MS, 0, 0);
    assert_int_equal(s->op[STK_WRITE].max_ns, m1); /* a faster op does not lower it */
    record_ns(s, STK_WRITE, 8 * MS, 0, 0);
    assert_true(s->op[STK_WRITE].max_ns >= 8 * MS);
    free(s);
}

static void test_touched_and_reset(void **state)
{
    struct stats_set *parent = new_set("/p", "file:///p"), *c1 = new_set("endpoint a", "http://a"),
                     *c2 = new_set("endpoint b", "http://b");
    parent->children = c1;
    c1->next = c2;
    assert_false(stats_touched(parent));
    record_ns(c2, STK_READ, 1000, 1, 0);
    assert_true(stats_touched(c2));
    assert_false(stats_touched(c1));
    assert_true(stats_touched(parent)); /* through its child */
    record_ns(parent, STK_META, 1000, 0, 0);
    stats_reset(parent);
    assert_false(stats_touched(parent));
    assert_false(stats_touched(c2));
    assert_int_equal(c2->op[STK_READ].count, 0);
    assert_int_equal(c2->op[STK_READ].max_ns, 0);
    assert_int_equal(stats_quantile(&c2->op[STK_READ], 0.5), 0);
    for (int b = 0; b < STATS_BUCKETS; b++) assert_int_equal(parent->op[STK_META].hist[b], 0);
    /* Names survive a reset. */
    assert_string_equal(parent->name, "/p");
    assert_string_equal(c2->detail, "http://b");
    free(parent);
    free(c1);
    free(c2);
}

/* --- a minimal JSON syntax checker --------------------------------------------------- */

static const char *js_value(const char *p, int depth);

static const char *js_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static const char *js_string(const char *p)
{
    if (*p++ != '"') return NULL;
    for (;;) {
        unsigned char c = (unsigned char)*p++;
        if (c == '"') return p;
        if (c < 0x20) return NULL; /* includes the terminating NUL */
        if (c == '\\') {
            c = (unsigned char)*p++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++)
                    if (!isxdigit((unsigned char)*p++)) return NULL;
            } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
                return NULL;
            }
        }
    }
}

static const char *js_number(const char *p)
{
    if (*p == '-') p++;
    if (*p == '0')
        p++;
    else if (isdigit((unsigned char)*p))
        while (isdigit((unsigned char)*p)) p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    return p;
}

static const char *js_value(const char *p, int depth)
{
    if (depth > 64) return NULL;
    p = js_ws(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        p = js_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (obj) {
                p = js_string(js_ws(p));
                if (!p) return NULL;
                p = js_ws(p);
                if (*p++ != ':') return NULL;
            }
            p = js_value(p, depth + 1);
            if (!p) return NULL;
            p = js_ws(p);
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == close) return p + 1;
            return NULL;
        }
    }
    if (*p == '"') return js_string(p);
    if (strncmp(p, "true", 4) == 0) return p + 4;
    if (strncmp(p, "false", 5) == 0) return p + 5;
    if (strncmp(p, "null", 4) == 0) return p + 4;
    return js_number(p);
}

static void expect_valid_json(const char *doc)
{
    const char *end = js_value(doc, 0);
    if (!end) fail_msg("not valid JSON: %s", doc);
    end = js_ws(end);
    if (*end) fail_msg("trailing text after JSON: %s", end);
}

static void expect_has(const char *doc, const char *frag)
{
    if (!strstr(doc, frag)) fail_msg("'%s' not found in: %s", frag, doc);
}

static void test_json_checker_self_test(void **state)
{
    static const char *const good[] = {"{}", "[]", "{\"a\":1}", "{\"a\":[1,2.5,-3e2,\"x\\\"\\u00e9\"],\"b\":{}}",
                                       " [ true , false , null ] \n"};
    static const char *const bad[] = {"", "{", "{\"a\"}", "{\"a\":}", "[1,]", "{\"a\":1,}", "\"\n\"",
                                      "[01]", "{a:1}", "[1 2]", "\"\\x\""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        const char *e = js_value(good[i], 0);
        assert_non_null(e);
        assert_int_equal(*js_ws(e), 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *e = js_value(bad[i], 0);
        if (e && !*js_ws(e)) fail_msg("checker accepts '%s'", bad[i]);
    }
}

static char *render_json(const struct stats_set *list, double elapsed, long pid)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    stats_print_json(m, list, elapsed, pid);
    assert_int_equal(fclose(m), 0);
    assert_non_null(buf);
    assert_int_equal(strlen(buf), len);
    return buf;
}

static void test_json(void **state)
{
    struct stats_set *a = new_set("/data", "file:///srv/data"), *b = new_set("s3://", "s3://"),
                     *ep = new_set("endpoint http://minio:9000", "http://minio:9000");
    a->next = b;
    b->children = ep;
    record_ns(a, STK_READ, 2 * MS, 1000, 0);
    record_ns(a, STK_READ, 2 * MS, 500, 0);
    record_ns(a, STK_READ, 2 * MS, 0, 1);
    record_ns(a, STK_OPEN, 1 * MS, 0, 0);
    record_ns(ep, STK_WRITE, 3 * MS, 2000000, 0);

    char *doc = render_json(a, 2.0, 4242);
    print_message("    %s", doc);
    expect_valid_json(doc);
    assert_int_equal(doc[strlen(doc) - 1], '\n');
    assert_true(strncmp(doc, "{\"pid\":4242,\"elapsed_s\":2.0", 27) == 0);
    expect_has(doc, "\"mounts\":[{\"name\":\"/data\",\"uri\":\"file:///srv/data\",\"ops\":{");
    expect_has(doc, "\"read\":{\"count\":3,\"errors\":1,\"bytes\":1500,\"time_ns\":");
    expect_has(doc, "\"open\":{\"count\":1,\"errors\":0,\"bytes\":0,");
    expect_has(doc, "\"p50_us\":");
    expect_has(doc, "\"p99_us\":");
    expect_has(doc, "\"max_us\":");
    expect_has(doc, "\"mb_per_s\":0.00"); /* 1500 bytes in 2 s */
    expect_has(doc, "{\"name\":\"s3://\",\"uri\":\"s3://\",\"ops\":{},\"children\":[{\"name\":\"endpoint http://minio:9000\"");
    expect_has(doc, "\"write\":{\"count\":1,\"errors\":0,\"bytes\":2000000,");
    expect_has(doc, "\"mb_per_s\":1.00"); /* 2 MB in 2 s */
    /* Operations that never happened are left out. */
    assert_null(strstr(doc, "\"stat\":"));
    assert_null(strstr(doc, "\"close\":"));
    /* Each set is listed once. */
    assert_null(strstr(strstr(doc, "\"/data\"") + 1, "\"/data\""));
    free(doc);

    /* Untouched and empty lists. */
    stats_reset(a);
    stats_reset(b);
    doc = render_json(a, 0.0, 1);
    expect_valid_json(doc);
    expect_has(doc, "\"ops\":{}");
    free(doc);
    doc = render_json(NULL, 0.5, 7);
    expect_valid_json(doc);
    expect_has(doc, "\"mounts\":[]");
    free(doc);
    free(a);
    free(b);
    free(ep);
}

static void test_json_escaping(void **state)
{
    struct stats_set *s = new_set("/we\"ird\\na\tme\n", "file:///x\x01y");
    record_ns(s, STK_DIR, 1000, 0, 0);
    char *doc = render_json(s, 1.0, 1);
    expect_valid_json(doc);
    expect_has(doc, "\"name\":\"/we\\\"ird\\\\na\\u0009me\\u000a\"");
    expect_has(doc, "\"uri\":\"file:///x\\u0001y\"");
    expect_has(doc, "\"dir\":{\"count\":1");
    free(doc);
    free(s);
}

static void test_text(void **state)
{
    struct stats_set *a = new_set("/data", "file:///srv/data"), *b = new_set("/idle", "file:///idle");
    a->next = b;
    record_ns(a, STK_READ, 2 * MS, 1000000, 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    stats_print_text(m, a, 1.0);
    assert_int_equal(fclose(m), 0);
    print_message("%s", buf);
    assert_true(strncmp(buf, "s3shim stats:", 13) == 0);
    expect_has(buf, "/data");
    expect_has(buf, "file:///srv/data");
    expect_has(buf, "read");
    expect_has(buf, "p99_us");
    assert_null(strstr(buf, "/idle")); /* untouched sets are not shown */
    assert_null(strstr(buf, "write"));
    free(buf);
    free(a);
    free(b);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_now_is_monotonic),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_single_sample),
        cmocka_unit_test(test_max),
        cmocka_unit_test(test_touched_and_reset),
        cmocka_unit_test(test_json_checker_self_test),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
