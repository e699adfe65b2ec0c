/* test_config.c - configuration parsing (core/config.c), with a fake environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/s3/s3.h"
#include "../../core/config.h"
#include "../../core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The configuration under test. A file-level object, freed after every test, so that a
 * failing assertion (which leaves the test early) does not show up as a leak under ASan. */
static struct cfg c;

static int free_cfg(void **state)
{
    cfg_free(&c);
    return 0;
}

/* A fake environment: NAME=VALUE pairs, NULL-terminated. */
struct fenv {
    const char *kv[16][2];
    int lookups;
};

static const char *fenv_get(const char *name, void *ctx)
{
    struct fenv *e = ctx;
    e->lookups++;
    for (int i = 0; e->kv[i][0]; i++)
        if (strcmp(e->kv[i][0], name) == 0) return e->kv[i][1];
    return NULL;
}

/* Load a configuration whose only setting is S3SHIM_MOUNTS=spec (NULL: unset). */
static void load_mounts(struct cfg *cf, const char *spec)
{
    struct fenv e = {.kv = {{spec ? "S3SHIM_MOUNTS" : NULL, spec}}};
    cfg_load(cf, fenv_get, &e);
}

static const struct cfg_mount *find(const struct cfg *cf, const char *prefix)
{
    for (int i = 0; i < cf->nmounts; i++)
        if (strcmp(cf->mounts[i].prefix, prefix) == 0) return &cf->mounts[i];
    return NULL;
}

static void expect_mount(const struct cfg *cf, const char *prefix, const char *uri, int is_default)
{
    const struct cfg_mount *m = find(cf, prefix);
    if (!m) fail_msg("no mount for prefix '%s'", prefix);
    if (strcmp(m->uri, uri) != 0) fail_msg("mount '%s' has uri '%s', want '%s'", prefix, m->uri, uri);
    assert_int_equal(m->is_default, is_default);
}

/* Every error names S3SHIM_MOUNTS and each of the given fragments (NULL-terminated). */
static void expect_error(const struct cfg *cf, int i, const char *var, ...)
{
    if (i >= cf->nerrors) fail_msg("want error #%d, have %d errors", i, cf->nerrors);
    const char *e = cf->errors[i];
    if (strstr(e, var) != e) fail_msg("error '%s' does not start with %s", e, var);
    va_list ap;
    va_start(ap, var);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        if (!strstr(e, frag)) fail_msg("error '%s' does not mention '%s'", e, frag);
    va_end(ap);
}

static void print_errors(const struct cfg *cf)
{
    for (int i = 0; i < cf->nerrors; i++) print_message("    error: %s\n", cf->errors[i]);
}

static void test_defaults(void **state)
{
    struct fenv e = {0};
    cfg_load(&c, fenv_get, &e);
    assert_true(e.lookups > 0);
    assert_int_equal(c.nerrors, 0);
    assert_int_equal(c.nmounts, 2);
    expect_mount(&c, "/s3", "s3://", 1);
    expect_mount(&c, "s3:", "s3://", 1);
    assert_int_equal(c.log_level, SLOG_WARN);
    assert_null(c.log_file);
    assert_int_equal(c.stats, 0);
    assert_null(c.stats_file);
    cfg_free(&c);
    cfg_free(&c); /* freeing twice is harmless (cfg_free clears) */
}

static void test_ctx_is_passed_through(void **state)
{
    struct fenv e = {.kv = {{"S3SHIM_LOG", "debug"}}};
    cfg_load(&c, fenv_get, &e);
    assert_true(e.lookups >= 4); /* at least LOG, LOG_FILE, STATS, STATS_FILE, MOUNTS */
    assert_int_equal(c.log_level, SLOG_DEBUG);
    cfg_free(&c);
}

static void test_settings(void **state)
{
    struct fenv e = {.kv = {{"S3SHIM_LOG", "info"},
                            {"S3SHIM_LOG_FILE", "/tmp/log.txt"},
                            {"S3SHIM_STATS", "yes"},
                            {"S3SHIM_STATS_FILE", "/tmp/stats-%p.json"}}};
    cfg_load(&c, fenv_get, &e);
    print_errors(&c);
    assert_int_equal(c.nerrors, 0);
    assert_int_equal(c.log_level, SLOG_INFO);
    assert_string_equal(c.log_file, "/tmp/log.txt");
    assert_int_equal(c.stats, 1);
    assert_string_equal(c.stats_file, "/tmp/stats-%p.json");
    cfg_free(&c);

    static const char *const levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        struct fenv e2 = {.kv = {{"S3SHIM_LOG", levels[i]}, {"S3SHIM_STATS", "0"}}};
        cfg_load(&c, fenv_get, &e2);
        assert_int_equal(c.nerrors, 0);
        assert_int_equal(c.log_level, i);
        assert_int_equal(c.stats, 0);
        cfg_free(&c);
    }

    /* Empty values: defaults, no error. */
    struct fenv e3 = {.kv = {{"S3SHIM_LOG", ""}, {"S3SHIM_LOG_FILE", ""}, {"S3SHIM_STATS", ""}, {"S3SHIM_STATS_FILE", ""}}};
    cfg_load(&c, fenv_get, &e3);
    assert_int_equal(c.nerrors, 0);
    assert_int_equal(c.log_level, SLOG_WARN);
    assert_null(c.log_file);
    assert_int_equal(c.stats, 0);
    assert_null(c.stats_file);
    cfg_free(&c);
}

static void test_bad_log_and_stats(void **state)
{
    struct fenv e = {.kv = {{"S3SHIM_LOG", "loud"}, {"S3SHIM_STATS", "maybe"}}};
    cfg_load(&c, fenv_get, &e);
    assert_int_equal(c.nerrors, 2);
    expect_error(&c, 0, "S3SHIM_LOG", "'loud'", NULL);
    expect_error(&c, 1, "S3SHIM_STATS", "'maybe'", NULL);
    assert_int_equal(c.log_level, SLOG_WARN);
    assert_int_equal(c.stats, 0);
    /* The mounts are unaffected. */
    assert_int_equal(c.nmounts, 2);
    cfg_free(&c);

    /* One bad value does not spoil the others. */
    struct fenv e2 = {.kv = {{"S3SHIM_LOG", "verbose"}, {"S3SHIM_STATS", "on"}, {"S3SHIM_MOUNTS", "/d=s3://b"}}};
    cfg_load(&c, fenv_get, &e2);
    assert_int_equal(c.nerrors, 1);
    expect_error(&c, 0, "S3SHIM_LOG", "'verbose'", NULL);
    assert_int_equal(c.log_level, SLOG_WARN);
    assert_int_equal(c.stats, 1);
    expect_mount(&c, "/d", "s3://b", 0);
    cfg_free(&c);
}

/* Several endpoints: S3SHIM_ENDPOINTS, S3SHIM_BALANCE, S3SHIM_HEDGE, S3SHIM_SHARED_UPLOADS. */
static void test_endpoint_settings(void **state)
{
    struct fenv e = {0};
    cfg_load(&c, fenv_get, &e);
    assert_null(c.endpoints);
    assert_int_equal(c.balance, BAL_SEWT);
    assert_int_equal(c.hedge, 1);
    assert_int_equal(c.shared_uploads, 1);
    cfg_free(&c);

    struct fenv e2 = {.kv = {{"S3SHIM_ENDPOINTS", "http://a:1,http://b:2"},
                             {"S3SHIM_BALANCE", "rr"},
                             {"S3SHIM_HEDGE", "off"},
                             {"S3SHIM_SHARED_UPLOADS", "no"}}};
    cfg_load(&c, fenv_get, &e2);
    print_errors(&c);
    assert_int_equal(c.nerrors, 0);
    assert_string_equal(c.endpoints, "http://a:1,http://b:2");
    assert_int_equal(c.balance, BAL_RR);
    assert_int_equal(c.hedge, 0);
    assert_int_equal(c.shared_uploads, 0);
    cfg_free(&c);

    struct fenv e3 = {.kv = {{"S3SHIM_BALANCE", "fastest"}, {"S3SHIM_HEDGE", "sometimes"}, {"S3SHIM_SHARED_UPLOADS", "2"}}};
    cfg_load(&c, fenv_get, &e3);
    assert_int_equal(c.nerrors, 3);
    expect_error(&c, 0, "S3SHIM_BALANCE", "'fastest'", "sewt, least or rr", "using sewt", NULL);
    expect_error(&c, 1, "S3SHIM_HEDGE", "'sometimes'", "auto or off", "using auto", NULL);
    expect_error(&c, 2, "S3SHIM_SHARED_UPLOADS", "'2'", "yes or no", "using yes", NULL);
    assert_int_equal(c.balance, BAL_SEWT);
    assert_int_equal(c.hedge, 1);
    assert_int_equal(c.shared_uploads, 1);
    cfg_free(&c);

    static const char *const bad[] = {"http://a:1,,http://b", "http://a:1, ftp://b", "http://a/path", "https://",
                                      "http://a b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct fenv eb = {.kv = {{"S3SHIM_ENDPOINTS", bad[i]}}};
        cfg_load(&c, fenv_get, &eb);
        assert_int_equal(c.nerrors, 1);
        expect_error(&c, 0, "S3SHIM_ENDPOINTS", "is not http://HOST[:PORT]", NULL);
        assert_string_equal(c.endpoints, bad[i]); /* kept: the S3 mounts stay disabled */
        cfg_free(&c);
    }
    struct fenv eg = {.kv = {{"S3SHIM_ENDPOINTS", " http://a:1/ , HTTPS://b.example:443,http://[::1]:9000"}}};
    cfg_load(&c, fenv_get, &eg);
    print_errors(&c);
    assert_int_equal(c.nerrors, 0);
    cfg_free(&c);

    struct fenv e4 = {.kv = {{"S3SHIM_HEDGE", "AUTO"}, {"S3SHIM_BALANCE", "least"}}};
    cfg_load(&c, fenv_get, &e4);
    assert_int_equal(c.nerrors, 0);
    assert_int_equal(c.hedge, 1);
    assert_int_equal(c.balance, BAL_LEAST);
    cfg_free(&c);
}

static void test_mounts_basic(void **state)
{
    load_mounts(&c, "/data=file:///srv/data;/x/y=s3://bucket/prefix;/blk=block:///dev/sdb");
    print_errors(&c);
    assert_int_equal(c.nerrors, 0);
    assert_int_equal(c.nmounts, 5);
    expect_mount(&c, "/data", "file:///srv/data", 0);
    expect_mount(&c, "/x/y", "s3://bucket/prefix", 0);
    expect_mount(&c, "/blk", "block:///dev/sdb", 0);
    expect_mount(&c, "/s3", "s3://", 1);
    expect_mount(&c, "s3:", "s3://", 1);
    cfg_free(&c);
}

static void test_mounts_prefix_normalised(void **state)
{
    load_mounts(&c, "/data/=s3://a;//x//y/./=s3://b;/p/q/../r=s3://c");
    print_errors(&c);
    assert_int_equal(c.nerrors, 0);
    expect_mount(&c, "/data", "s3://a", 0);
    expect_mount(&c, "/x/y", "s3://b", 0);
    expect_mount(&c, "/p/r", "s3://c", 0);
    cfg_free(&c);
}

static void test_mounts_uri_may_contain_equals(void **state)
{
    load_mounts(&c, "/q=s3://bucket/a=b");
    assert_int_equal(c.nerrors, 0);
    expect_mount(&c, "/q", "s3://bucket/a=b", 0);
    cfg_free(&c);
}

static void test_mounts_leading_whitespace(void **state)
{
    load_mounts(&c, "/a=s3://x; /b=s3://y;\t/c=s3://z;  \t /d=s3://w");
    print_errors(&c);
    assert_int_equal(c.nerrors, 0);
    expect_mount(&c, "/a", "s3://x", 0);
    expect_mount(&c, "/b", "s3://y", 0);
    expect_mount(&c, "/c", "s3://z", 0);
    expect_mount(&c, "/d", "s3://w", 0);
    cfg_free(&c);
}

static void test_mounts_trailing_whitespace(void **state)
{
    /* "PREFIX=URI ; PREFIX=URI" is as natural to write as "PREFIX=URI; PREFIX=URI": the
     * blank before ';' (or at the end of the value) belongs to neither the URI nor the
     * next entry. */
    load_mounts(&c, "/a=s3://x ;/b=s3://y\t; /c=s3://z  ");
    print_errors(&c);
    assert_int_equal(c.nerrors, 0);
    expect_mount(&c, "/a", "s3://x", 0);
    expect_mount(&c, "/b", "s3://y", 0);
    expect_mount(&c, "/c", "s3://z", 0);
    cfg_free(&c);
}

static void test_mounts_empty_entries(void **state)
{
    load_mounts(&c, ";;/a=s3://x;;  ;\t;");
    print_errors(&c);
    assert_int_equal(c.nerrors, 0);
    assert_int_equal(c.nmounts, 3);
    expect_mount(&c, "/a", "s3://x", 0);
    cfg_free(&c);

    load_mounts(&c, "");
    assert_int_equal(c.nerrors, 0);
    assert_int_equal(c.nmounts, 2);
    cfg_free(&c);

    load_mounts(&c, "   ");
    assert_int_equal(c.nerrors, 0);
    assert_int_equal(c.nmounts, 2);
    cfg_free(&c);
}

static void test_mounts_no_equals(void **state)
{
    load_mounts(&c, "/data;/ok=s3://b");
    assert_int_equal(c.nerrors, 1);
    expect_error(&c, 0, "S3SHIM_MOUNTS", "'/data'", NULL);
    assert_int_equal(c.nmounts, 3);
    assert_null(find(&c, "/data"));
    expect_mount(&c, "/ok", "s3://b", 0);
    cfg_free(&c);
}

static void test_mounts_relative_prefix(void **state)
{
    load_mounts(&c, "data=file:///srv/data;./x=s3://b;=s3://c");
    assert_int_equal(c.nerrors, 3);
    expect_error(&c, 0, "S3SHIM_MOUNTS", "'data'", "file:///srv/data", NULL);
    expect_error(&c, 1, "S3SHIM_MOUNTS", "'./x'", "s3://b", NULL);
    expect_error(&c, 2, "S3SHIM_MOUNTS", "''", "s3://c", NULL);
    assert_int_equal(c.nmounts, 2);
    cfg_free(&c);
}

static void test_mounts_root_prefix_rejected(void **state)
{
    static const char *const roots[] = {"/", "//", "/.", "/./", "/a/..", "/..", "///./../"};
    for (size_t i = 0; i < sizeof roots / sizeof *roots; i++) {
        char spec[64], quoted[64];
        snprintf(spec, sizeof spec, "%s=s3://everything", roots[i]);
        snprintf(quoted, sizeof quoted, "'%s'", roots[i]);
            load_mounts(&c, spec);
        assert_int_equal(c.nerrors, 1);
        expect_error(&c, 0, "S3SHIM_MOUNTS", quoted, "s3://everything", NULL);
        assert_int_equal(c.nmounts, 2);
        assert_null(find(&c, "/"));
        cfg_free(&c);
    }
}

static void test_mounts_uri_without_scheme(void **state)
{
    load_mounts(&c, "/a=/srv/data;/b=;/c=file:/x;/d=s3:bucket");
    assert_int_equal(c.nerrors, 4);
    expect_error(&c, 0, "S3SHIM_MOUNTS", "'/srv/data'", "'/a'", NULL);
    expect_error(&c, 1, "S3SHIM_MOUNTS", "''", "'/b'", NULL);
    expect_error(&c, 2, "S3SHIM_MOUNTS", "'file:/x'", "'/c'", NULL);
    expect_error(&c, 3, "S3SHIM_MOUNTS", "'s3:bucket'", "'/d'", NULL);
    assert_int_equal(c.nmounts, 2);
    cfg_free(&c);
}

static void test_mounts_duplicate(void **state)
{
    load_mounts(&c, "/a=s3://first;/a=s3://second");
    assert_int_equal(c.nerrors, 1);
    expect_error(&c, 0, "S3SHIM_MOUNTS", "'/a'", "s3://first", "s3://second", NULL);
    expect_mount(&c, "/a", "s3://first", 0);
    assert_int_equal(c.nmounts, 3);
    cfg_free(&c);

    /* Duplicates are detected after normalisation. */
    load_mounts(&c, "/a=s3://first;/a/=s3://second;//a/./=s3://third");
    assert_int_equal(c.nerrors, 2);
    expect_error(&c, 0, "S3SHIM_MOUNTS", "'/a'", "s3://second", NULL);
    expect_error(&c, 1, "S3SHIM_MOUNTS", "'/a'", "s3://third", NULL);
    expect_mount(&c, "/a", "s3://first", 0);
    assert_int_equal(c.nmounts, 3);
    cfg_free(&c);
}

static void test_mounts_user_replaces_default(void **state)
{
    load_mounts(&c, "/s3=file:///srv/fake-s3");
    print_errors(&c);
    assert_int_equal(c.nerrors, 0);
    assert_int_equal(c.nmounts, 2);
    expect_mount(&c, "/s3", "file:///srv/fake-s3", 0);
    expect_mount(&c, "s3:", "s3://", 1);
    cfg_free(&c);

    /* Also when written un-normalised; and a second user entry for it is a duplicate. */
    load_mounts(&c, "/s3/=s3://one;/s3=s3://two");
    assert_int_equal(c.nerrors, 1);
    expect_error(&c, 0, "S3SHIM_MOUNTS", "'/s3'", "s3://two", NULL);
    expect_mount(&c, "/s3", "s3://one", 0);
    assert_int_equal(c.nmounts, 2);
    cfg_free(&c);
}

static void test_mounts_bad_entries_do_not_spoil_good_ones(void **state)
{
    load_mounts(&c, "bogus;/a=s3://x;rel=s3://y;/=s3://z;/b=file:///b;/c=nope");
    assert_int_equal(c.nerrors, 4);
    for (int i = 0; i < c.nerrors; i++) expect_error(&c, i, "S3SHIM_MOUNTS", NULL);
    expect_error(&c, 0, "S3SHIM_MOUNTS", "bogus", NULL);
    expect_error(&c, 1, "S3SHIM_MOUNTS", "rel", NULL);
    expect_error(&c, 3, "S3SHIM_MOUNTS", "nope", NULL);
    assert_int_equal(c.nmounts, 4);
    expect_mount(&c, "/a", "s3://x", 0);
    expect_mount(&c, "/b", "file:///b", 0);
    cfg_free(&c);
}

static void test_mounts_limits(void **state)
{
    /* More errors than fit: the first ones are kept, nothing overflows. */
    char spec[4096] = "";
    for (int i = 0; i < CFG_MAX_ERRORS + 10; i++) {
        char ent[64];
        snprintf(ent, sizeof ent, "bad%d;", i);
        strcat(spec, ent);
    }
    load_mounts(&c, spec);
    assert_int_equal(c.nerrors, CFG_MAX_ERRORS);
    expect_error(&c, 0, "S3SHIM_MOUNTS", "'bad0'", NULL);
    for (int i = 0; i < c.nerrors; i++) assert_true(strlen(c.errors[i]) < sizeof c.errors[i]);
    cfg_free(&c);

    /* More mounts than fit: the rest are refused with an error. */
    spec[0] = '\0';
    for (int i = 0; i < CFG_MAX_MOUNTS + 5; i++) {
        char ent[64];
        snprintf(ent, sizeof ent, "/m%d=s3://b%d;", i, i);
        strcat(spec, ent);
    }
    load_mounts(&c, spec);
    assert_int_equal(c.nmounts, CFG_MAX_MOUNTS);
    assert_true(c.nerrors >= 1);
    expect_error(&c, 0, "S3SHIM_MOUNTS", NULL);
    cfg_free(&c);

    /* A very long entry: the message is truncated, still terminated. */
    char longp[1200];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    load_mounts(&c, longp);
    assert_int_equal(c.nerrors, 1);
    expect_error(&c, 0, "S3SHIM_MOUNTS", NULL);
    assert_true(strlen(c.errors[0]) < sizeof c.errors[0]);
    cfg_free(&c);
}

static void test_parse_mounts_appends(void **state)
{
    load_mounts(&c, "/a=s3://x");
    cfg_parse_mounts(&c, "/b=s3://y;/a=s3://z");
    assert_int_equal(c.nmounts, 4);
    expect_mount(&c, "/a", "s3://x", 0);
    expect_mount(&c, "/b", "s3://y", 0);
    assert_int_equal(c.nerrors, 1);
    expect_error(&c, 0, "S3SHIM_MOUNTS", "'/a'", NULL);
    cfg_free(&c);
}

static void test_is_known(void **state)
{
    static const char *const names[] = {"S3SHIM_MOUNTS", "S3SHIM_LOG", "S3SHIM_LOG_FILE", "S3SHIM_STATS",
                                        "S3SHIM_STATS_FILE"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!cfg_is_known(names[i])) fail_msg("%s is not known", names[i]);
    assert_false(cfg_is_known("S3SHIM_MOUNT"));
    assert_false(cfg_is_known("S3SHIM_MOUNTSX"));
    assert_false(cfg_is_known("s3shim_mounts"));
    assert_false(cfg_is_known("S3SHIM_"));
    assert_false(cfg_is_known(""));
    assert_false(cfg_is_known("PATH"));
    /* Every known name has a description, and is known. */
    int n = 0;
    for (; cfg_known[n][0]; n++) {
        assert_non_null(cfg_known[n][1]);
        assert_true(strlen(cfg_known[n][1]) > 0);
        assert_true(cfg_is_known(cfg_known[n][0]));
        assert_true(strncmp(cfg_known[n][0], "S3SHIM_", 7) == 0);
    }
    assert_true(n >= 5);
}

static void test_parse_bool(void **state)
{
    static const char *const yes[] = {"1", "yes", "true", "on", "YES", "True", "On", "TRUE"};
    static const char *const no[] = {"0", "no", "false", "off", "", "NO", "False", "OFF"};
    static const char *const neither[] = {"2", "-1", "yess", "y", "n", " 1", "1 ", "maybe", "enable", "10", "onn"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (cfg_parse_bool(yes[i]) != 1) fail_msg("cfg_parse_bool(\"%s\") != 1", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (cfg_parse_bool(no[i]) != 0) fail_msg("cfg_parse_bool(\"%s\") != 0", no[i]);
    for (size_t i = 0; i < sizeof neither / sizeof *neither; i++)
        if (cfg_parse_bool(neither[i]) != -1) fail_msg("cfg_parse_bool(\"%s\") != -1", neither[i]);
}

static void test_process_env(void **state)
{
    setenv("S3SHIM_UNIT_TEST_VAR", "value", 1);
    assert_string_equal(cfg_process_env("S3SHIM_UNIT_TEST_VAR", NULL), "value");
    unsetenv("S3SHIM_UNIT_TEST_VAR");
    assert_null(cfg_process_env("S3SHIM_UNIT_TEST_VAR", NULL));
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults, free_cfg),
        cmocka_unit_test_teardown(test_ctx_is_passed_through, free_cfg),
        cmocka_unit_test_teardown(test_settings, free_cfg),
        cmocka_unit_test_teardown(test_bad_log_and_stats, free_cfg),
        cmocka_unit_test_teardown(test_endpoint_settings, free_cfg),
        cmocka_unit_test_teardown(test_mounts_basic, free_cfg),
        cmocka_unit_test_teardown(test_mounts_prefix_normalised, free_cfg),
        cmocka_unit_test_teardown(test_mounts_uri_may_contain_equals, free_cfg),
        cmocka_unit_test_teardown(test_mounts_leading_whitespace, free_cfg),
        cmocka_unit_test_teardown(test_mounts_trailing_whitespace, free_cfg),
        cmocka_unit_test_teardown(test_mounts_empty_entries, free_cfg),
        cmocka_unit_test_teardown(test_mounts_no_equals, free_cfg),
        cmocka_unit_test_teardown(test_mounts_relative_prefix, free_cfg),
        cmocka_unit_test_teardown(test_mounts_root_prefix_rejected, free_cfg),
        cmocka_unit_test_teardown(test_mounts_uri_without_scheme, free_cfg),
        cmocka_unit_test_teardown(test_mounts_duplicate, free_cfg),
        cmocka_unit_test_teardown(test_mounts_user_replaces_default, free_cfg),
        cmocka_unit_test_teardown(test_mounts_bad_entries_do_not_spoil_good_ones, free_cfg),
        cmocka_unit_test_teardown(test_mounts_limits, free_cfg),
        cmocka_unit_test_teardown(test_parse_mounts_appends, free_cfg),
        cmocka_unit_test_teardown(test_is_known, free_cfg),
        cmocka_unit_test_teardown(test_parse_bool, free_cfg),
        cmocka_unit_test_teardown(test_process_env, free_cfg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
