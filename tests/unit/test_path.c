/* test_path.c - lexical path arithmetic (core/path.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/path.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Normalise `in` into a PATH_MAX buffer and check both the text and the returned length. */
static void expect_norm(const char *in, const char *want)
{
    char out[PATH_MAX];
    int n = path_normalize(in, out, sizeof out);
    if (n < 0) fail_msg("path_normalize(\"%s\") failed, want \"%s\"", in, want);
    if (strcmp(out, want) != 0) fail_msg("path_normalize(\"%s\") = \"%s\", want \"%s\"", in, out, want);
    assert_int_equal(n, strlen(want));
}

static void expect_join(const char *base, const char *rel, const char *want)
{
    char out[PATH_MAX];
    int n = path_join(base, rel, out, sizeof out);
    if (n < 0) fail_msg("path_join(\"%s\", \"%s\") failed, want \"%s\"", base, rel, want);
    if (strcmp(out, want) != 0)
        fail_msg("path_join(\"%s\", \"%s\") = \"%s\", want \"%s\"", base, rel, out, want);
    assert_int_equal(n, strlen(want));
}

static void test_normalize_root_and_slashes(void **state)
{
    expect_norm("/", "/");
    expect_norm("//", "/");
    expect_norm("///", "/");
    expect_norm("/a", "/a");
    expect_norm("//a", "/a");
    expect_norm("/a//b", "/a/b");
    expect_norm("///a///b///", "/a/b");
    expect_norm("/a/", "/a");
    expect_norm("/a/b/", "/a/b");
    expect_norm("/a/b//", "/a/b");
}

static void test_normalize_dot(void **state)
{
    expect_norm("/.", "/");
    expect_norm("/./", "/");
    expect_norm("/./a", "/a");
    expect_norm("/a/./b", "/a/b");
    expect_norm("/a/.", "/a");
    expect_norm("/a/./", "/a");
    expect_norm("/./././a/./././b/.", "/a/b");
}

static void test_normalize_dotdot(void **state)
{
    expect_norm("/a/..", "/");
    expect_norm("/a/../", "/");
    expect_norm("/a/b/..", "/a");
    expect_norm("/a/b/../c", "/a/c");
    expect_norm("/a/b/../../c", "/c");
    expect_norm("/ab/cd/../ef", "/ab/ef");
    expect_norm("/a/b/c/../../d/./e/..", "/a/d");
    expect_norm("/a/../b/../c", "/c");
}

static void test_normalize_dotdot_at_root(void **state)
{
    expect_norm("/..", "/");
    expect_norm("/../", "/");
    expect_norm("/../..", "/");
    expect_norm("/../../a", "/a");
    expect_norm("/a/../../..", "/");
    expect_norm("/a/../../../b/c", "/b/c");
    expect_norm("/../a/../../b", "/b");
}

static void test_normalize_dot_names_are_names(void **state)
{
    /* Only "." and ".." are special; anything else with dots is an ordinary name. */
    expect_norm("/...", "/...");
    expect_norm("/a/.../b", "/a/.../b");
    expect_norm("/..../..", "/");
    expect_norm("/.a", "/.a");
    expect_norm("/..a", "/..a");
    expect_norm("/a..", "/a..");
    expect_norm("/a./.b/..c/c..", "/a./.b/..c/c..");
    expect_norm("/.hidden/../x", "/x");
    expect_norm("/x/.../..", "/x");
}

static void test_normalize_rejects_relative(void **state)
{
    char out[64];
    assert_int_equal(path_normalize("", out, sizeof out), -1);
    assert_int_equal(path_normalize("a", out, sizeof out), -1);
    assert_int_equal(path_normalize("a/b", out, sizeof out), -1);
    assert_int_equal(path_normalize(".", out, sizeof out), -1);
    assert_int_equal(path_normalize("./a", out, sizeof out), -1);
    assert_int_equal(path_normalize("../a", out, sizeof out), -1);
    assert_int_equal(path_normalize("s3://bucket/key", out, sizeof out), -1);
    assert_int_equal(path_normalize(" /a", out, sizeof out), -1);
}

static void test_normalize_overlong(void **state)
{
    char out[16];

    /* Exact fit: length + NUL == outsz. */
    memset(out, 'Z', sizeof out);
    assert_int_equal(path_normalize("/abc", out, 5), 4);
    assert_string_equal(out, "/abc");
    assert_int_equal(path_normalize("/abc", out, 4), -1);
    assert_int_equal(path_normalize("/a/b", out, 5), 4);
    assert_string_equal(out, "/a/b");
    assert_int_equal(path_normalize("/a/b", out, 4), -1);
    assert_int_equal(path_normalize("/a/b", out, 3), -1);
    assert_int_equal(path_normalize("/", out, 2), 1);
    assert_string_equal(out, "/");
    assert_int_equal(path_normalize("/", out, 1), -1);
    assert_int_equal(path_normalize("/", out, 0), -1);
    /* Redundant parts do not count against the size: only the result has to fit. */
    assert_int_equal(path_normalize("//a//./b//", out, 5), 4);
    assert_string_equal(out, "/a/b");

    /* Never write past outsz, whatever the outcome. */
    static const char *const ins[] = {"/abcdefghijklmnop", "/a/b/c/d/e/f/g/h/i", "/abcdefg/hijklmn", "/abcdefg",
                                      "/abc/defgh", "//////////a", "/abcdefgh/../x"};
    for (size_t i = 0; i < sizeof ins / sizeof *ins; i++) {
        for (size_t sz = 0; sz <= 8; sz++) {
            memset(out, 'Z', sizeof out);
            int n = path_normalize(ins[i], out, sz);
            for (size_t j = sz; j < sizeof out; j++)
                if (out[j] != 'Z') fail_msg("path_normalize(\"%s\", outsz=%zu) wrote byte %zu", ins[i], sz, j);
            if (n >= 0) {
                assert_true((size_t)n < sz);
                assert_int_equal(strlen(out), n);
            }
        }
    }

    /* A path longer than PATH_MAX does not fit a PATH_MAX buffer. */
    size_t len = PATH_MAX + 100;
    char *big = malloc(len + 1), *res = malloc(PATH_MAX);
    assert_non_null(big);
    assert_non_null(res);
    for (size_t i = 0; i < len; i++) big[i] = (i % 8 == 0) ? '/' : 'x';
    big[len] = '\0';
    assert_int_equal(path_normalize(big, res, PATH_MAX), -1);
    /* ...but fits a bigger one, unchanged. */
    char *res2 = malloc(len + 1);
    assert_non_null(res2);
    assert_int_equal(path_normalize(big, res2, len + 1), len);
    assert_string_equal(res2, big);
    free(big);
    free(res);
    free(res2);
}

static void test_join(void **state)
{
    expect_join("/a/b", "c", "/a/b/c");
    expect_join("/a/b", "c/d", "/a/b/c/d");
    expect_join("/a/b", "c/", "/a/b/c");
    expect_join("/a/b", "./c", "/a/b/c");
    expect_join("/a/b", "..", "/a");
    expect_join("/a/b", "../c", "/a/c");
    expect_join("/a/b", "../../c", "/c");
    expect_join("/a/b", "../../../../../c", "/c");
    expect_join("/a/b", "", "/a/b");
    expect_join("/a/b", ".", "/a/b");
    expect_join("/", "x", "/x");
    expect_join("/", "..", "/");
    expect_join("/", "", "/");
    expect_join("/a", "...", "/a/...");
    expect_join("/a", "c//d/./e/..", "/a/c/d");
}

static void test_join_absolute_rel(void **state)
{
    expect_join("/a/b", "/x", "/x");
    expect_join("/a/b", "/x/./y/../z/", "/x/z");
    expect_join("/a/b", "//", "/");
    expect_join("/a/b", "/..", "/");
}

static void test_join_overlong(void **state)
{
    char out[9];
    assert_int_equal(path_join("/abc", "def", out, sizeof out), 8);
    assert_string_equal(out, "/abc/def");
    assert_int_equal(path_join("/abc", "defg", out, sizeof out), -1);
    assert_int_equal(path_join("/abc", "/defghijk", out, sizeof out), -1);
    /* Relative base: the result is not absolute, so it is refused. */
    assert_int_equal(path_join("a", "b", out, sizeof out), -1);
}

static void test_is_normal(void **state)
{
    static const char *const yes[] = {"/", "/a", "/a/b", "/...", "/a/.b", "/a..", "/.../x", "/..a/b..", "/a/b/c.d"};
    static const char *const no[] = {"", "a", "a/b", "//", "/a/", "/a//b", "/.", "/..", "/./a", "/a/./b",
                                     "/a/../b", "/a/.", "/a/..", "/a/b/", "//a"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (!path_is_normal(yes[i])) fail_msg("path_is_normal(\"%s\") is false", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (path_is_normal(no[i])) fail_msg("path_is_normal(\"%s\") is true", no[i]);
}

static void test_under(void **state)
{
    assert_int_equal(path_under("/a/b", "/a", 2), 2);
    assert_int_equal(path_under("/a", "/a", 2), 2);
    assert_int_equal(path_under("/ab", "/a", 2), 0);
    assert_int_equal(path_under("/abc/d", "/a", 2), 0);
    assert_int_equal(path_under("/b", "/a", 2), 0);
    assert_int_equal(path_under("/", "/a", 2), 0);
    assert_int_equal(path_under("/a", "/a/b", 4), 0);
    assert_int_equal(path_under("/a/b/c", "/a/b", 4), 4);
    assert_int_equal(path_under("/a/bc", "/a/b", 4), 0);
    assert_int_equal(path_under("/data/x/y", "/data", 5), 5);
    assert_int_equal(path_under("/data", "/data", 5), 5);
    assert_int_equal(path_under("/database", "/data", 5), 0);
    assert_int_equal(path_under("/data.old", "/data", 5), 0);
    /* "/" covers everything. */
    assert_int_equal(path_under("/", "/", 1), 1);
    assert_int_equal(path_under("/x", "/", 1), 1);
    assert_int_equal(path_under("/x/y", "/", 1), 1);
    /* Literal s3: paths. */
    assert_int_equal(path_under("s3:/bucket/key", "s3:", 3), 3);
    assert_int_equal(path_under("s3:", "s3:", 3), 3);
    assert_int_equal(path_under("s3:x", "s3:", 3), 0);
    assert_int_equal(path_under("/s3/b", "s3:", 3), 0);
}

/* --- property test: random paths against a reference normaliser ---------------------- */

/* The obvious stack-of-components normaliser. */
static void ref_normalize(const char *in, char *out)
{
    const char *comp[256];
    size_t clen[256];
    int n = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/') p++;
        if (!*p) break;
        const char *e = strchrnul(p, '/');
        size_t l = (size_t)(e - p);
        if (l == 1 && p[0] == '.') {
        } else if (l == 2 && p[0] == '.' && p[1] == '.') {
            if (n > 0) n--;
        } else {
            comp[n] = p;
            clen[n] = l;
            n++;
        }
        p = e;
    }
    size_t o = 0;
    out[o++] = '/';
    for (int i = 0; i < n; i++) {
        if (i) out[o++] = '/';
        memcpy(out + o, comp[i], clen[i]);
        o += clen[i];
    }
    out[o] = '\0';
}

static int has_dotdot_component(const char *s)
{
    for (const char *p = s; (p = strstr(p, "..")) != NULL; p++) {
        int start = p == s || p[-1] == '/';
        int end = p[2] == '\0' || p[2] == '/';
        if (start && end) return 1;
    }
    return 0;
}

static void test_random_against_reference(void **state)
{
    static const char *const parts[] = {"", ".", "..", "...", "a", "bc", ".x", "x.", "..y", "s3"};
    unsigned seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        char in[512], out[512], again[512], want[512];
        size_t o = 0;
        int ncomp = (int)(rand_r(&seed) % 12);
        for (int i = 0; i < ncomp; i++) {
            int slashes = 1 + (rand_r(&seed) % 4 == 0);
            while (slashes--) in[o++] = '/';
            const char *c = parts[rand_r(&seed) % (sizeof parts / sizeof *parts)];
            memcpy(in + o, c, strlen(c));
            o += strlen(c);
        }
        if (o == 0 || rand_r(&seed) % 3 == 0) in[o++] = '/';
        in[o] = '\0';
        if (in[0] != '/') {
            memmove(in + 1, in, o + 1);
            in[0] = '/';
        }

        int n = path_normalize(in, out, sizeof out);
        ref_normalize(in, want);
        if (n < 0) fail_msg("path_normalize(\"%s\") failed", in);
        if (strcmp(out, want) != 0) fail_msg("path_normalize(\"%s\") = \"%s\", want \"%s\"", in, out, want);
        assert_int_equal(n, strlen(out));
        /* Normal form: idempotent, recognised by path_is_normal, no '..' anywhere. */
        if (!path_is_normal(out)) fail_msg("path_is_normal(\"%s\") is false (from \"%s\")", out, in);
        assert_int_equal(path_normalize(out, again, sizeof again), n);
        assert_string_equal(again, out);
        assert_int_equal(path_is_normal(in), strcmp(in, out) == 0);
        if (has_dotdot_component(out)) fail_msg("\"%s\" normalises to \"%s\" with a '..'", in, out);

        /* A key below a mount never contains '..', even if the input tried to climb out:
         * joining a hostile relative path to a mount path stays under '/'. */
        char joined[1024];
        n = path_join("/mnt/m", in + 1, joined, sizeof joined);
        assert_true(n > 0);
        if (has_dotdot_component(joined)) fail_msg("join(\"/mnt/m\", \"%s\") = \"%s\"", in + 1, joined);
        size_t off = path_under(joined, "/mnt/m", 6);
        if (off) {
            const char *key = joined + off;
            while (*key == '/') key++;
            if (has_dotdot_component(key)) fail_msg("key \"%s\" has '..'", key);
        }
    }
}

static void test_cannot_climb_out(void **state)
{
    char out[PATH_MAX];
    /* However many '..' follow, the result stays at or below '/', and a path that starts
     * at a mount and climbs out lands outside the mount (never in a key with '..'). */
    assert_true(path_normalize("/m/../../../../etc/passwd", out, sizeof out) > 0);
    assert_string_equal(out, "/etc/passwd");
    assert_int_equal(path_under(out, "/m", 2), 0);
    assert_true(path_normalize("/m/a/../../m/b", out, sizeof out) > 0);
    assert_string_equal(out, "/m/b");
    assert_int_equal(path_under(out, "/m", 2), 2);
    assert_true(path_join("/m/sub", "../../../x", out, sizeof out) > 0);
    assert_string_equal(out, "/x");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_root_and_slashes),
        cmocka_unit_test(test_normalize_dot),
        cmocka_unit_test(test_normalize_dotdot),
        cmocka_unit_test(test_normalize_dotdot_at_root),
        cmocka_unit_test(test_normalize_dot_names_are_names),
        cmocka_unit_test(test_normalize_rejects_relative),
        cmocka_unit_test(test_normalize_overlong),
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_join_absolute_rel),
        cmocka_unit_test(test_join_overlong),
        cmocka_unit_test(test_is_normal),
        cmocka_unit_test(test_under),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_cannot_climb_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
