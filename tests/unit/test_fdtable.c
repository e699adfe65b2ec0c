/* test_fdtable.c - the shim's descriptor table (shim/fdtable.c), on its own.
 *
 * fdtable.c is compiled into this test directly (the shim is not part of the core
 * library). Its only outside dependency is ofd_ref(), stubbed here: the table's job is
 * to take and hand over references, so the test counts them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "../../shim/fdtable.c"

#include <pthread.h>
#include <string.h>

void ofd_ref(struct ofd *o) { atomic_fetch_add(&o->refs, 1); }

static int refs(struct ofd *o) { return atomic_load(&o->refs); }

/* Every test leaves the table empty, so the fast path can be checked between them. */
static int table_empty(void **state)
{
    int n = fdt_limit();
    for (int fd = 0; fd < n; fd++)
        if (fdt_peek(fd) != NULL) return -1;
    if (atomic_load(&fdt_filter_used) != 0 || atomic_load(&fdt_filter_ours) != 0) return -1;
    return atomic_load(&fdt_used) == 0 ? 0 : -1;
}

static void test_fast_path_when_empty(void **state)
{
    assert_int_equal(atomic_load(&fdt_used), 0);
    for (int fd = -2; fd < 2000; fd++) {
        assert_null(fdt_peek(fd));
        assert_false(fdt_is_ours(fd));
        assert_null(fdt_get(fd));
    }
    assert_null(fdt_take(3));
    assert_null(fdt_take(-1));
}

static void test_set_get_take(void **state)
{
    struct ofd o = {.refs = 1};
    assert_null(fdt_set(3, &o));
    assert_int_equal(refs(&o), 2); /* the table took its own reference */
    assert_int_equal(atomic_load(&fdt_used), 1);
    assert_true(fdt_is_ours(3));
    assert_false(fdt_is_ours(4));
    assert_false(fdt_is_ours(2));
    assert_ptr_equal(fdt_peek(3), &o);
    assert_int_equal(refs(&o), 2); /* peeking takes none */

    assert_ptr_equal(fdt_get(3), &o);
    assert_int_equal(refs(&o), 3); /* fdt_get gives the caller one */
    atomic_fetch_sub(&o.refs, 1);  /* (the caller's ofd_put) */
    assert_null(fdt_get(4));

    assert_ptr_equal(fdt_take(3), &o);
    assert_int_equal(refs(&o), 2); /* the table's reference is handed over, not dropped */
    atomic_fetch_sub(&o.refs, 1);
    assert_false(fdt_is_ours(3));
    assert_null(fdt_get(3));
    assert_null(fdt_take(3));
    assert_int_equal(atomic_load(&fdt_used), 0);
    assert_int_equal(refs(&o), 1);
}

static void test_replace(void **state)
{
    struct ofd a = {.refs = 1}, b = {.refs = 1};
    assert_null(fdt_set(5, &a));
    /* Installing over a slot returns the previous ofd with its reference. */
    assert_ptr_equal(fdt_set(5, &b), &a);
    assert_int_equal(refs(&a), 2);
    assert_int_equal(refs(&b), 2);
    assert_int_equal(atomic_load(&fdt_used), 1);
    assert_ptr_equal(fdt_peek(5), &b);
    /* The same ofd at two descriptors (dup). */
    assert_null(fdt_set(6, &b));
    assert_int_equal(refs(&b), 3);
    assert_int_equal(atomic_load(&fdt_used), 2);
    assert_ptr_equal(fdt_take(5), &b);
    assert_ptr_equal(fdt_take(6), &b);
    assert_int_equal(refs(&b), 3); /* two references handed back to us */
    /* Setting NULL is a take. */
    assert_null(fdt_set(7, &a));
    assert_ptr_equal(fdt_set(7, NULL), &a);
    assert_int_equal(refs(&a), 3);
    assert_int_equal(atomic_load(&fdt_used), 0);
}

static void test_engine_marker(void **state)
{
    struct ofd o = {.refs = 1};
    assert_null(fdt_set(10, FDT_ENGINE));
    assert_int_equal(atomic_load(&fdt_used), 1);
    assert_ptr_equal(fdt_peek(10), FDT_ENGINE);
    assert_false(fdt_is_ours(10)); /* engine descriptors are not program-visible */
    assert_null(fdt_get(10));      /* and never handed out as an ofd */
    /* Replacing or taking the marker never returns it. */
    assert_null(fdt_set(10, &o));
    assert_int_equal(atomic_load(&fdt_used), 1);
    assert_true(fdt_is_ours(10));
    assert_ptr_equal(fdt_set(10, FDT_ENGINE), &o);
    assert_int_equal(refs(&o), 2);
    assert_false(fdt_is_ours(10));
    assert_null(fdt_take(10));
    assert_null(fdt_peek(10));
    assert_int_equal(atomic_load(&fdt_used), 0);
}

/* Any other slot mark (e.g. FDT_PUMPED, where the shim has one) behaves like the engine's. */
static void test_other_marks(void **state)
{
#ifdef FDT_PUMPED
    struct ofd o = {.refs = 1};
    assert_null(fdt_set(1, FDT_PUMPED));
    assert_ptr_equal(fdt_peek(1), FDT_PUMPED);
    assert_false(fdt_is_ours(1));
    assert_null(fdt_get(1));
    assert_null(fdt_set(1, &o));
    assert_true(fdt_is_ours(1));
    assert_ptr_equal(fdt_set(1, FDT_PUMPED), &o);
    assert_int_equal(refs(&o), 2);
    assert_null(fdt_take(1));
    assert_int_equal(atomic_load(&fdt_used), 0);
#else
    skip();
#endif
}

static void test_limit_and_chunks(void **state)
{
    struct ofd o = {.refs = 1};
    /* A descriptor in another chunk; the limit follows the highest one ever used. */
    int far = 3 * (int)FDT_CHUNK + 17;
    assert_null(fdt_set(far, &o));
    assert_int_equal(fdt_limit(), far + 1);
    assert_true(fdt_is_ours(far));
    assert_false(fdt_is_ours(far - 1));
    assert_false(fdt_is_ours(far + 1));
    assert_false(fdt_is_ours(far - (int)FDT_CHUNK)); /* same slot, other chunk */
    assert_ptr_equal(fdt_take(far), &o);
    assert_int_equal(fdt_limit(), far + 1); /* "ever had a slot" */
    assert_null(fdt_set(4, &o));
    assert_int_equal(fdt_limit(), far + 1);
    assert_ptr_equal(fdt_take(4), &o);

    /* Last slot of the table, and out of range. */
    int last = (int)(FDT_CHUNK * FDT_CHUNKS) - 1;
    assert_null(fdt_set(last, &o));
    assert_true(fdt_is_ours(last));
    assert_int_equal(fdt_limit(), last + 1);
    assert_ptr_equal(fdt_take(last), &o);
    int refs_before = refs(&o);
    assert_null(fdt_set(last + 1, &o));
    assert_null(fdt_set(-1, &o));
    assert_int_equal(refs(&o), refs_before); /* no reference taken for a refused slot */
    assert_false(fdt_is_ours(last + 1));
    assert_false(fdt_is_ours(-1));
    assert_null(fdt_get(-1));
    assert_null(fdt_get(last + 1));
    assert_null(fdt_take(-1));
    assert_int_equal(atomic_load(&fdt_used), 0);
}

static void test_locked_variants(void **state)
{
    struct ofd o = {.refs = 1};
    fdt_lock();
    assert_null(fdt_set_locked(20, &o));
    assert_true(fdt_is_ours(20)); /* peeking needs no lock */
    assert_ptr_equal(fdt_take_locked(20), &o);
    assert_null(fdt_take_locked(20));
    fdt_unlock();
    assert_int_equal(refs(&o), 2);
    assert_int_equal(atomic_load(&fdt_used), 0);
}

/* Readers take and drop references while writers install and remove: every reference
 * the table hands out or hands back must balance. */
#define NTHREADS 4
#define ROUNDS 20000

static struct ofd shared = {.refs = 1};

static void *reader(void *arg)
{
    for (int i = 0; i < ROUNDS; i++) {
        struct ofd *o = fdt_get(30 + i % 4);
        if (o) {
            if (o != &shared) abort();
            atomic_fetch_sub(&o->refs, 1);
        }
    }
    return NULL;
}

static void *writer(void *arg)
{
    int fd = 30 + (int)(intptr_t)arg;
    for (int i = 0; i < ROUNDS; i++) {
        struct ofd *old = fdt_set(fd, &shared);
        if (old) atomic_fetch_sub(&old->refs, 1);
        old = fdt_take(fd);
        if (old) atomic_fetch_sub(&old->refs, 1);
    }
    return NULL;
}

static void test_concurrent_refcounts(void **state)
{
    pthread_t r[NTHREADS], w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_create(&r[i], NULL, reader, NULL), 0);
        assert_int_equal(pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(r[i], NULL);
        pthread_join(w[i], NULL);
    }
    assert_int_equal(refs(&shared), 1);
    assert_int_equal(atomic_load(&fdt_used), 0);
}

/* The filters in front of the table: one bit per remainder modulo 64, set while any
 * descriptor with that remainder has a slot (used) or a description (ours). */
static void test_filters(void **state)
{
    struct ofd o = {.refs = 1};
    assert_false(fdt_maybe_used(5));
    assert_null(fdt_set(5, &o));
    assert_true(fdt_maybe_used(5));
    assert_true(fdt_maybe_ours(5));
    assert_true(fdt_maybe_used(69)); /* same remainder: the table decides */
    assert_false(fdt_is_ours(69));
    assert_false(fdt_maybe_used(6));
    assert_false(fdt_maybe_used(-1)); /* remainder 63 */
    /* A second descriptor with the same remainder: the bit stays until both are gone. */
    assert_null(fdt_set(5 + 64 * 100, &o));
    assert_ptr_equal(fdt_take(5), &o);
    assert_true(fdt_maybe_used(5));
    assert_true(fdt_is_ours(5 + 64 * 100));
    assert_ptr_equal(fdt_take(5 + 64 * 100), &o);
    assert_false(fdt_maybe_used(5));
    assert_false(fdt_maybe_ours(5));
    /* An engine descriptor is used but not ours; replacing it by a description and back. */
    fdt_mark_engine(7, 1);
    assert_true(fdt_maybe_used(7));
    assert_false(fdt_maybe_ours(7));
    assert_null(fdt_set(7, &o));
    assert_true(fdt_maybe_ours(7));
    assert_ptr_equal(fdt_set(7, FDT_ENGINE), &o); /* hands back o's reference */
    atomic_fetch_sub(&o.refs, 1);
    assert_false(fdt_maybe_ours(7));
    assert_true(fdt_maybe_used(7));
    fdt_mark_engine(7, 0);
    assert_false(fdt_maybe_used(7));
    /* Negative descriptors look at their low 6 bits only. */
    assert_null(fdt_set(63, &o));
    assert_true(fdt_maybe_used(-1));
    assert_false(fdt_is_ours(-1));
    assert_ptr_equal(fdt_take(63), &o);
    assert_int_equal(refs(&o), 4); /* four installs, one reference handed back and dropped */
}

/* Engine marks change without the table's lock while locked changes go on beside them on
 * the same remainder: whatever the interleaving, a bit is set while its count is not 0. */
static void *marker(void *arg)
{
    for (int i = 0; i < ROUNDS; i++) {
        fdt_mark_engine(11, 1);
        if (!fdt_maybe_used(11)) abort();
        fdt_mark_engine(11, 0);
    }
    return NULL;
}

static void test_filters_concurrent(void **state)
{
    struct ofd o = {.refs = 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, marker, NULL), 0);
    for (int i = 0; i < ROUNDS; i++) {
        assert_null(fdt_set(11 + 64, &o));
        assert_true(fdt_maybe_ours(11 + 64));
        assert_ptr_equal(fdt_take(11 + 64), &o);
    }
    pthread_join(t, NULL);
    assert_int_equal(refs(&o), 1 + ROUNDS);
}

static void test_atfork_hooks(void **state)
{
    struct ofd o = {.refs = 1};
    fdt_atfork_prepare();
    fdt_atfork_parent();
    /* The lock is usable again afterwards. */
    assert_null(fdt_set(40, &o));
    fdt_atfork_prepare();
    fdt_atfork_child(); /* the child gets a fresh lock, and keeps the table */
    assert_ptr_equal(fdt_get(40), &o);
    assert_ptr_equal(fdt_take(40), &o);
    assert_int_equal(refs(&o), 3);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fast_path_when_empty, table_empty),
        cmocka_unit_test_teardown(test_set_get_take, table_empty),
        cmocka_unit_test_teardown(test_replace, table_empty),
        cmocka_unit_test_teardown(test_engine_marker, table_empty),
        cmocka_unit_test_teardown(test_other_marks, table_empty),
        cmocka_unit_test_teardown(test_limit_and_chunks, table_empty),
        cmocka_unit_test_teardown(test_locked_variants, table_empty),
        cmocka_unit_test_teardown(test_concurrent_refcounts, table_empty),
        cmocka_unit_test_teardown(test_filters, table_empty),
        cmocka_unit_test_teardown(test_filters_concurrent, table_empty),
        cmocka_unit_test_teardown(test_atfork_hooks, table_empty),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    for (unsigned i = 1; i < FDT_CHUNKS; i++) free(atomic_load(&fdt_chunks[i])); /* chunk 0 is static */
    return r;
}
