/* test_mount.c - the mount table (core/mount.c): building, disabling, routing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tmpdir.h"

#include "../../core/block/block.h"
#include "../../core/local/local.h"
#include "../../core/s3/s3.h"
#include "../../core/config.h"
#include "../../core/mount.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[512];    /* .../s3shim-unit-XXXXXX */
static char dir_a[600];  /* tmp/a */
static char dir_b[600];  /* tmp/b */
static char file_f[600]; /* tmp/regular */

static int setup(void **state)
{
    if (tmpdir_make(tmp, sizeof tmp) < 0) return -1;
    snprintf(dir_a, sizeof dir_a, "%s/a", tmp);
    snprintf(dir_b, sizeof dir_b, "%s/b", tmp);
    snprintf(file_f, sizeof file_f, "%s/regular", tmp);
    if (mkdir(dir_a, 0755) || mkdir(dir_b, 0755)) return -1;
    int fd = open(file_f, O_CREAT | O_WRONLY, 0644);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    return tmpdir_remove(tmp);
}

static const char *env_mounts(const char *name, void *ctx)
{
    return strcmp(name, "S3SHIM_MOUNTS") == 0 ? ctx : NULL;
}

/* Build a table from an S3SHIM_MOUNTS value; fails the test on a configuration error. */
static void build(struct mount_table *t, struct cfg *c, const char *spec)
{
    cfg_load(c, env_mounts, (void *)spec);
    for (int i = 0; i < c->nerrors; i++) fail_msg("config error: %s", c->errors[i]);
    mnt_build(t, c);
    assert_non_null(t->m);
    assert_int_equal(t->n, c->nmounts);
}

static void done(struct mount_table *t, struct cfg *c)
{
    mnt_free(t);
    assert_null(t->m);
    assert_int_equal(t->n, 0);
    cfg_free(c);
}

static struct mount *by_prefix(const struct mount_table *t, const char *prefix)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->m[i].prefix, prefix) == 0) return &t->m[i];
    fail_msg("no mount '%s' in the table", prefix);
    return NULL;
}

static void expect_route(const struct mount_table *t, const char *path, const char *prefix, const char *key)
{
    const char *k = "unset";
    struct mount *m = mnt_route(t, path, &k);
    if (!prefix) {
        if (m) fail_msg("'%s' routed to '%s', want no mount", path, m->prefix);
        return;
    }
    if (!m) fail_msg("'%s' not routed, want '%s'", path, prefix);
    if (strcmp(m->prefix, prefix) != 0) fail_msg("'%s' routed to '%s', want '%s'", path, m->prefix, prefix);
    if (strcmp(k, key) != 0) fail_msg("'%s' routed with key '%s', want '%s'", path, k, key);
    assert_true(k >= path && k <= path + strlen(path)); /* the key points into the path */
}

static void check_enabled(const struct mount *m)
{
    if (m->disabled) fail_msg("mount '%s' (%s) is disabled: %s", m->prefix, m->uri, m->reason);
    assert_ptr_equal(m->ops, &bk_file_ops);
    assert_non_null(m->ms);
}

static void test_build_file_mounts(void **state)
{
    char spec[2048];
    snprintf(spec, sizeof spec, "/a=file://%s;/a/b=file://%s", dir_a, dir_b);
    struct cfg c;
    struct mount_table t;
    build(&t, &c, spec);
    assert_int_equal(t.n, 4);
    assert_true(t.cap >= t.n);
    check_enabled(by_prefix(&t, "/a"));
    check_enabled(by_prefix(&t, "/a/b"));
    assert_int_equal(by_prefix(&t, "/a")->plen, 2);
    assert_string_equal(by_prefix(&t, "/a/b")->uri, strchr(spec, ';') + 6);
    /* Sorted longest prefix first. */
    for (int i = 1; i < t.n; i++) assert_true(t.m[i - 1].plen >= t.m[i].plen);
    /* The default s3 mounts exist; without credentials (main() clears them) they are
     * disabled and say why. */
    struct mount *s3 = by_prefix(&t, "/s3"), *lit = by_prefix(&t, "s3:");
    assert_true(s3->disabled);
    assert_null(s3->ops);
    assert_non_null(strstr(s3->reason, "no credentials"));
    assert_true(lit->disabled);
    assert_non_null(strstr(lit->reason, "no credentials"));
    /* Stats sets are named after the mount. */
    assert_string_equal(by_prefix(&t, "/a")->stats.name, "/a");
    assert_string_equal(lit->stats.name, "s3://");
    assert_string_equal(lit->stats.detail, "s3://");
    done(&t, &c);
}

static void route_checks(const struct mount_table *t)
{
    expect_route(t, "/a/b/c", "/a/b", "c");
    expect_route(t, "/a/b/c/d", "/a/b", "c/d");
    expect_route(t, "/a/b", "/a/b", "");
    expect_route(t, "/a/bc", "/a", "bc");
    expect_route(t, "/a/x/y", "/a", "x/y");
    expect_route(t, "/a/...", "/a", "...");
    expect_route(t, "/a", "/a", "");
    expect_route(t, "/ab", NULL, NULL);
    expect_route(t, "/ab/c", NULL, NULL);
    expect_route(t, "/b", NULL, NULL);
    expect_route(t, "/", NULL, NULL);
    expect_route(t, "/s3", "/s3", "");
    expect_route(t, "/s3/bucket/key", "/s3", "bucket/key");
    expect_route(t, "/s3x/bucket", NULL, NULL);
    expect_route(t, "s3:/bucket/key", "s3:", "bucket/key");
    expect_route(t, "s3:/bucket", "s3:", "bucket");
    expect_route(t, "s3:/", "s3:", "");
    expect_route(t, "s3:", "s3:", "");
    expect_route(t, "s3:bucket", NULL, NULL);
}

static void test_route_longest_prefix(void **state)
{
    char spec[2048];
    struct cfg c;
    struct mount_table t;

    /* The same answers whichever order the configuration lists the mounts in. */
    snprintf(spec, sizeof spec, "/a=file://%s;/a/b=file://%s", dir_a, dir_b);
    build(&t, &c, spec);
    route_checks(&t);
    done(&t, &c);

    snprintf(spec, sizeof spec, "/a/b=file://%s;/a=file://%s", dir_b, dir_a);
    build(&t, &c, spec);
    route_checks(&t);
    done(&t, &c);
}

static void test_route_key_has_no_leading_slash(void **state)
{
    char spec[2048];
    struct cfg c;
    struct mount_table t;
    snprintf(spec, sizeof spec, "/deep/er/mount=file://%s", dir_a);
    build(&t, &c, spec);
    static const char *const paths[] = {"/deep/er/mount", "/deep/er/mount/x", "/deep/er/mount/x/y/z",
                                        "/s3/b", "s3:/b/k", "/s3"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        const char *k = NULL;
        struct mount *m = mnt_route(&t, paths[i], &k);
        assert_non_null(m);
        assert_non_null(k);
        if (k[0] == '/') fail_msg("key for '%s' starts with '/': '%s'", paths[i], k);
    }
    expect_route(&t, "/deep/er/mount/x/y/z", "/deep/er/mount", "x/y/z");
    expect_route(&t, "/deep/er", NULL, NULL);
    expect_route(&t, "/deep/er/mountain", NULL, NULL);
    done(&t, &c);
}

static struct mount *single_bad(struct mount_table *t, struct cfg *c, const char *uri)
{
    char spec[2048];
    snprintf(spec, sizeof spec, "/m=%s", uri);
    build(t, c, spec);
    struct mount *m = by_prefix(t, "/m");
    if (!m->disabled) fail_msg("mount of '%s' is not disabled", uri);
    assert_null(m->ops);
    assert_true(strlen(m->reason) > 0);
    print_message("    %s -> %s\n", uri, m->reason);
    /* Its paths still route to it (so that they fail with ENODEV rather than fall through
     * to the real filesystem). */
    expect_route(t, "/m/x", "/m", "x");
    return m;
}

static void test_disabled_missing_dir(void **state)
{
    char uri[700];
    snprintf(uri, sizeof uri, "file://%s/does-not-exist", tmp);
    struct cfg c;
    struct mount_table t;
    struct mount *m = single_bad(&t, &c, uri);
    assert_non_null(strstr(m->reason, "does-not-exist"));
    done(&t, &c);
}

static void test_disabled_not_a_dir(void **state)
{
    char uri[700];
    snprintf(uri, sizeof uri, "file://%s", file_f);
    struct cfg c;
    struct mount_table t;
    struct mount *m = single_bad(&t, &c, uri);
    assert_non_null(strstr(m->reason, file_f));
    done(&t, &c);
}

static void test_disabled_relative_file_uri(void **state)
{
    struct cfg c;
    struct mount_table t;
    struct mount *m = single_bad(&t, &c, "file://relative/dir");
    assert_non_null(strstr(m->reason, "relative/dir"));
    done(&t, &c);
}

static void test_disabled_unknown_scheme(void **state)
{
    struct cfg c;
    struct mount_table t;
    struct mount *m = single_bad(&t, &c, "ftp://host/dir");
    assert_non_null(strstr(m->reason, "unknown URI scheme"));
    assert_non_null(strstr(m->reason, "ftp://host/dir"));
    done(&t, &c);

    m = single_bad(&t, &c, "://nothing");
    assert_non_null(strstr(m->reason, "unknown URI scheme"));
    done(&t, &c);

    /* Scheme names are not prefixes of each other. */
    m = single_bad(&t, &c, "files:///tmp");
    assert_non_null(strstr(m->reason, "unknown URI scheme"));
    done(&t, &c);
}

/* Every scheme of DESIGN.md is built now: a block:// mount of a device that is not there
 * is disabled with a reason naming it (the "not built" path is left for future schemes). */
static void test_disabled_block_missing(void **state)
{
    struct cfg c;
    struct mount_table t;
    struct mount *m = single_bad(&t, &c, "block:///nonexistent-s3shim/dev/sdb");
    assert_non_null(strstr(m->reason, "/nonexistent-s3shim/dev/sdb"));
    assert_non_null(strstr(m->reason, "No such file"));
    done(&t, &c);
}

static void test_stats_list(void **state)
{
    char spec[2048];
    snprintf(spec, sizeof spec, "/a=file://%s", dir_a);
    struct cfg c;
    struct mount_table t;
    build(&t, &c, spec);
    int n = 0;
    for (struct stats_set *s = mnt_stats_list(&t); s; s = s->next) {
        assert_ptr_equal(s, &t.m[n].stats);
        n++;
    }
    assert_int_equal(n, t.n);
    done(&t, &c);
}

static void test_adhoc(void **state)
{
    char spec[2048], uri[700];
    snprintf(spec, sizeof spec, "/a=file://%s", dir_a);
    snprintf(uri, sizeof uri, "file://%s", dir_b);
    struct cfg c;
    struct mount_table t;
    build(&t, &c, spec);
    int n0 = t.n;

    /* A configured URI is found again. */
    char a_uri[700];
    snprintf(a_uri, sizeof a_uri, "file://%s", dir_a);
    assert_ptr_equal(mnt_adhoc(&t, a_uri), by_prefix(&t, "/a"));
    assert_int_equal(t.n, n0);

    /* A new one is mounted once, and is not reachable by path. */
    struct mount *m = mnt_adhoc(&t, uri);
    assert_non_null(m);
    check_enabled(m);
    assert_string_equal(m->prefix, "");
    assert_int_equal(t.n, n0 + 1);
    assert_ptr_equal(mnt_adhoc(&t, uri), m);
    assert_int_equal(t.n, n0 + 1);
    expect_route(&t, "/b", NULL, NULL);
    expect_route(&t, "/x/y", NULL, NULL);
    expect_route(&t, "/a/k", "/a", "k");

    /* One that cannot be mounted is refused. */
    assert_null(mnt_adhoc(&t, "nosuch://x"));
    done(&t, &c);
}

static void test_lookup(void **state)
{
    const char *rest = NULL;
    int planned = -1;
    assert_ptr_equal(bk_lookup("file:///x/y", &rest, &planned), &bk_file_ops);
    assert_string_equal(rest, "/x/y");
    assert_int_equal(planned, 0);
    assert_ptr_equal(bk_lookup("s3://b/k", &rest, &planned), &bk_s3_ops);
    assert_string_equal(rest, "b/k");
    assert_int_equal(planned, 0);
    assert_ptr_equal(bk_lookup("direct:///x", &rest, &planned), &bk_direct_ops);
    assert_string_equal(rest, "/x");
    assert_int_equal(planned, 0);
    assert_ptr_equal(bk_lookup("block:///dev/x", &rest, &planned), &bk_block_ops);
    assert_string_equal(rest, "/dev/x");
    assert_int_equal(planned, 0);
    assert_null(bk_lookup("gopher://x", &rest, &planned));
    assert_int_equal(planned, 0);
    assert_null(bk_lookup("no-scheme", &rest, &planned));
    assert_int_equal(planned, 0);
    assert_null(bk_lookup("fil://x", &rest, &planned));
    assert_null(bk_lookup("filex://x", &rest, &planned));
    assert_string_equal(bk_file_ops.scheme, "file");
}

int main(void)
{
    no_aws_credentials();
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_file_mounts),
        cmocka_unit_test(test_route_longest_prefix),
        cmocka_unit_test(test_route_key_has_no_leading_slash),
        cmocka_unit_test(test_disabled_missing_dir),
        cmocka_unit_test(test_disabled_not_a_dir),
        cmocka_unit_test(test_disabled_relative_file_uri),
        cmocka_unit_test(test_disabled_unknown_scheme),
        cmocka_unit_test(test_disabled_block_missing),
        cmocka_unit_test(test_stats_list),
        cmocka_unit_test(test_adhoc),
        cmocka_unit_test(test_lookup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
