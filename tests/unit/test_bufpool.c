/* test_bufpool.c - the process's buffer budget (core/bufpool.c): large buffers are kept
 * and handed out again (their pages stay populated), the budget makes a caller wait or
 * fail, and what is kept is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/bufpool.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define M ((size_t)1 << 20)

static void test_reuse(void **state)
{
    (void)state;
    bufpool_configure((size_t)1 << 30);
    char *a = bufpool_get(8 * M, 1);
    assert_non_null(a);
    memset(a, 0x5a, 8 * M); /* populated */
    bufpool_put(a, 8 * M);
    char *b = bufpool_get(8 * M, 1);
    assert_ptr_equal(a, b);   /* the same buffer again, */
    assert_int_equal(b[8 * M - 1], 0x5a); /* its pages as they were (no fresh zeroed ones) */
    assert_int_equal(b[0], 0x5a);
    char *c = bufpool_get(4 * M, 1); /* another size: another buffer */
    assert_non_null(c);
    assert_ptr_not_equal(c, b);
    c[4 * M - 1] = 1;
    bufpool_put(c, 4 * M);
    bufpool_put(b, 8 * M);
    /* small buffers are malloc's, and usable */
    char *s = bufpool_get(100, 1);
    assert_non_null(s);
    memset(s, 1, 100);
    bufpool_put(s, 100);
}

static void test_kept_bounded(void **state)
{
    (void)state;
    bufpool_configure((size_t)1 << 30);
    enum { N = 12 };
    char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = bufpool_get(8 * M, 1);
        assert_non_null(p[i]);
        p[i][0] = (char)(i + 1); /* a fresh mapping reads 0 */
    }
    for (int i = 0; i < N; i++) bufpool_put(p[i], 8 * M); /* 96 MiB back: at most 64 are kept */
    int again = 0;
    char *q[N];
    for (int i = 0; i < N; i++) {
        q[i] = bufpool_get(8 * M, 1);
        assert_non_null(q[i]);
        again += q[i][0] != 0; /* a kept buffer, pages and all (addresses alone could be reused) */
        q[i][8 * M - 1] = 2; /* writable whatever it is */
    }
    assert_int_equal(again, 8); /* 64 MiB of them came back, the rest were unmapped */
    for (int i = 0; i < N; i++) bufpool_put(q[i], 8 * M);
}

static void *putter(void *arg)
{
    usleep(20000);
    bufpool_put(arg, 8 * M);
    return NULL;
}

static void test_budget(void **state)
{
    (void)state;
    bufpool_configure(16 * M);
    char *a = bufpool_get(8 * M, 1), *b = bufpool_get(8 * M, 1);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(bufpool_get(8 * M, 0)); /* over the budget, not waiting: NULL */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, putter, a), 0);
    char *c = bufpool_get(8 * M, 1); /* waits for the other thread's put */
    assert_non_null(c);
    pthread_join(t, NULL);
    bufpool_put(b, 8 * M);
    bufpool_put(c, 8 * M);
    /* one request always goes through on an empty pool, however large */
    char *big = bufpool_get(32 * M, 1);
    assert_non_null(big);
    big[32 * M - 1] = 1;
    bufpool_put(big, 32 * M);
    bufpool_configure((size_t)1 << 30);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_bounded), /* first: it counts on an empty pool */
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
