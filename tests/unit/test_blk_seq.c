/* test_blk_seq.c - the shared change counter (core/block/blk_vroot.c) and the roots a
 * lookup keeps under it (blk_meta.c blk_roots): the counter's rules (odd while a root is
 * written, even and always forward after, forward too after a write cut short); a reader
 * handle that keeps its roots and must still see, at its very next lookup, a commit of
 * another handle (published, durable), of a writer with no /dev/shm file (it cannot bump
 * the counter: its root slot's header is what gives it away), and of a child process
 * SIGKILLed between its root write and the counter's second bump. Each case checks that
 * the kept roots were in fact used in between (else it would prove nothing). */
#include "../../core/block/blk.h"
#include "../../core/block/block.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char path[256];

static void make_store(const char *tag)
{
    snprintf(path, sizeof path, "%s/s3shim-blk-seq-%d-%s.img", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid(), tag);
    FILE *img = fopen(path, "w");
    assert_non_null(img);
    fclose(img);
    assert_int_equal(truncate(path, 32 << 20), 0);
    char err[512];
    assert_int_equal(blk_format(path, 1, "unit", err, sizeof err), 0);
}

static struct blk_store *open_store(int rw)
{
    char err[512];
    struct blk_store *s = calloc(1, sizeof *s);
    assert_non_null(s);
    int r = blk_open(s, path, rw, err, sizeof err);
    if (r) print_message("%s\n", err);
    assert_int_equal(r, 0);
    return s;
}

static void close_store(struct blk_store *s)
{
    blk_close(s);
    free(s);
}

/* One commit through w: key gets an object of size (0: removed). */
static void put(struct blk_store *w, const char *key, uint64_t size, int how)
{
    struct blk_txn *t;
    assert_int_equal(tx_begin(w, &t), 0);
    if (size) {
        struct blk_obj *o = calloc(1, sizeof *o);
        assert_non_null(o);
        o->klen = (uint16_t)strlen(key);
        memcpy(o->key, key, o->klen);
        o->mode = S_IFREG | 0644;
        o->ino = tx_root(t)->next_ino++;
        o->size = size;
        o->gen = tx_root(t)->h.commit + 1;
        assert_int_equal(tx_put(t, o), 0);
        free(o);
    } else {
        int x = tx_del(t, key, strlen(key));
        assert_true(x == 0 || x == -ENOENT); /* (not there: an empty commit) */
    }
    assert_int_equal(tx_commit(t, how, NULL), 0);
}

/* What r finds under key: its size, or 0. */
static uint64_t look(struct blk_store *r, const char *key)
{
    struct blk_obj *o = malloc(sizeof *o);
    assert_non_null(o);
    int x = bt_get(r, key, strlen(key), o, NULL);
    assert_true(x >= 0);
    uint64_t size = x ? o->size : 0;
    free(o);
    return size;
}

static void test_counter_rules(void **state)
{
    (void)state;
    make_store("rules");
    struct blk_store *s = open_store(1);
    unlink(path);
    uint64_t a, b;
    assert_int_equal(blk_vr_seq(s, &a), 0);
    assert_int_equal(a % 2, 0);
    blk_vr_seq_begin(s);
    assert_int_equal(blk_vr_seq(s, &b), -1); /* a root being written: not to be relied on */
    uint64_t e = blk_vr_seq_end(s);
    assert_int_equal(e, a + 2);
    assert_int_equal(blk_vr_seq(s, &b), 0);
    assert_int_equal(b, e);
    blk_vr_seq_begin(s); /* a writer killed between its two bumps ... */
    blk_vr_seq_begin(s); /* ... and the next one: still odd */
    assert_int_equal(blk_vr_seq(s, &b), -1);
    e = blk_vr_seq_end(s);
    assert_int_equal(e % 2, 0);
    assert_true(e > a + 2);
    /* a commit moves it by exactly one pair */
    assert_int_equal(blk_vr_seq(s, &a), 0);
    put(s, "k", 1, TX_VISIBLE);
    assert_int_equal(blk_vr_seq(s, &b), 0);
    assert_int_equal(b, a + 2);
    put(s, "k", 2, TX_DURABLE);
    assert_int_equal(blk_vr_seq(s, &b), 0);
    assert_int_equal(b, a + 4);
    close_store(s);
}

/* r keeps its roots across lookups, and sees every commit of w at its next one. */
static void reader_sees(struct blk_store *w, struct blk_store *r, int how)
{
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "d/key-%d", i % 7);
        uint64_t size = i % 5 == 4 ? 0 : (uint64_t)(100 + i);
        put(w, key, size, how);
        uint64_t before = atomic_load(&r->rc_hits);
        assert_int_equal(look(r, key), size);
        assert_int_equal(look(r, key), size); /* the second under the kept roots */
        assert_true(atomic_load(&r->rc_hits) > before);
    }
}

static void test_other_handle_visible(void **state)
{
    (void)state;
    make_store("vis");
    struct blk_store *w = open_store(1), *r = open_store(0);
    unlink(path);
    reader_sees(w, r, TX_VISIBLE);
    close_store(r);
    close_store(w);
}

static void test_other_handle_durable(void **state)
{
    (void)state;
    make_store("dur");
    struct blk_store *w = open_store(1), *r = open_store(0);
    unlink(path);
    reader_sees(w, r, TX_DURABLE);
    close_store(r);
    close_store(w);
}

/* A writer that has no /dev/shm file (it could not be made or mapped) commits durably and
 * cannot bump the counter: the reader must notice by the root slot's header. */
static void test_writer_without_counter(void **state)
{
    (void)state;
    make_store("nobump");
    struct blk_store *w = open_store(1), *r = open_store(0);
    unlink(path);
    blk_vr_close(w);
    w->vr_retry_ns = UINT64_MAX; /* and does not look for it again */
    uint64_t s0, s1;
    assert_int_equal(blk_vr_seq(r, &s0), 0);
    reader_sees(w, r, TX_VISIBLE); /* (falls back to durable commits) */
    assert_int_equal(blk_vr_seq(r, &s1), 0);
    assert_int_equal(s1, s0); /* the counter never moved */
    close_store(r);
    close_store(w);
}

/* The child's recorder: SIGKILL at the first flush after a root slot write, i.e. after
 * the root is in the page cache and before the counter's second bump. */
static int root_written;
static void kill_after_root(int op, uint64_t off, const void *buf, size_t len)
{
    (void)buf, (void)len;
    if (op == BLK_REC_WRITE && (off == BLK_ROOT_SLOT0 * BLK_BS || off == (BLK_ROOT_SLOT0 + 1) * BLK_BS))
        root_written = 1;
    else if (op == BLK_REC_FLUSH && root_written)
        raise(SIGKILL);
}

static void test_writer_killed_between_root_and_bump(void **state)
{
    (void)state;
    make_store("kill");
    struct blk_store *w = open_store(1), *r = open_store(0);
    put(w, "a", 10, TX_DURABLE);
    assert_int_equal(look(r, "a"), 10);
    assert_int_equal(look(r, "b"), 0);
    uint64_t hits = atomic_load(&r->rc_hits);
    assert_int_equal(look(r, "b"), 0);
    assert_true(atomic_load(&r->rc_hits) > hits); /* r keeps its roots */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct blk_store c;
        char err[512];
        if (blk_open(&c, path, 1, err, sizeof err) < 0) _exit(2);
        blk_recorder = kill_after_root;
        struct blk_txn *t;
        if (tx_begin(&c, &t) < 0) _exit(3);
        struct blk_obj o;
        memset(&o, 0, sizeof o);
        o.klen = 1;
        o.key[0] = 'b';
        o.mode = S_IFREG | 0644;
        o.ino = tx_root(t)->next_ino++;
        o.size = 20;
        o.gen = tx_root(t)->h.commit + 1;
        if (tx_put(t, &o) < 0) _exit(4);
        tx_commit(t, TX_DURABLE, NULL);
        _exit(5); /* not reached: killed at the root's flush */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    uint64_t seq;
    assert_int_equal(blk_vr_seq(r, &seq), -1); /* left odd */
    assert_int_equal(look(r, "b"), 20);        /* the root it wrote is the store's newest */
    hits = atomic_load(&r->rc_hits);
    assert_int_equal(look(r, "b"), 20);
    assert_int_equal(atomic_load(&r->rc_hits), hits); /* nothing kept while the counter is odd */
    put(w, "c", 30, TX_VISIBLE); /* the next commit sets it right */
    assert_int_equal(blk_vr_seq(r, &seq), 0);
    assert_int_equal(look(r, "c"), 30);
    assert_int_equal(look(r, "b"), 20);
    assert_true(atomic_load(&r->rc_hits) > hits);
    unlink(path);
    close_store(r);
    close_store(w);
}

/* A failed assertion leaves the test early: its 32 MiB image goes here, not at its end. */
static int remove_store(void **state)
{
    (void)state;
    if (path[0]) unlink(path);
    path[0] = '\0';
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_counter_rules, remove_store),
        cmocka_unit_test_teardown(test_other_handle_visible, remove_store),
        cmocka_unit_test_teardown(test_other_handle_durable, remove_store),
        cmocka_unit_test_teardown(test_writer_without_counter, remove_store),
        cmocka_unit_test_teardown(test_writer_killed_between_root_and_bump, remove_store)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
