/* test_blk_tree.c - the block:// index (core/block/blk_tree.c over blk_txn.c) against a
 * model: random inserts, replacements and deletes of keys of every length (so nodes split,
 * empty out, and the tree grows and shrinks in height), many per commit, an aborted commit
 * in between; after each commit every key's lookup, the ordered walk, and `blk check`
 * must agree with the model. The store lives in a file under $TMPDIR (metadata only). */
#include "../../core/block/blk.h"
#include "../../core/block/block.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define NK 3000

struct mk {
    char key[BLK_MAX_KEY + 1];
    size_t len;
    uint64_t ino;
    int present;
};

static struct mk model[NK];
static uint64_t seed = 88172645463325252ull;
static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static int cmpk(const void *a, const void *b)
{
    const struct mk *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void make_keys(void)
{
    for (int i = 0; i < NK; i++) {
        /* mostly short keys, some long ones (up to 1000 bytes) that fill nodes fast */
        size_t len = rnd() % 10 == 0 ? 200 + rnd() % 800 : 1 + rnd() % 60;
        for (size_t j = 0; j < len; j++) model[i].key[j] = (char)('a' + rnd() % 26);
        char num[16];
        snprintf(num, sizeof num, "%06d", i % 1000000);
        memcpy(model[i].key + (len > 6 ? len - 6 : 0), num, 7); /* unique, and the end */
        model[i].len = strlen(model[i].key);
    }
    qsort(model, NK, sizeof *model, cmpk);
}

static void verify(struct blk_store *s, const char *path)
{
    struct blk_obj *o = malloc(sizeof *o);
    assert_non_null(o);
    for (int i = 0; i < NK; i += 7) {
        int r = bt_get(s, model[i].key, model[i].len, o, NULL);
        assert_int_equal(r, model[i].present);
        if (r == 1) assert_int_equal(o->ino, model[i].ino);
    }
    /* the ordered walk gives exactly the present keys, in order */
    char after[BLK_MAX_KEY + 1] = "";
    size_t al = 0;
    int incl = 1, i = 0;
    for (;;) {
        int r = bt_next(s, after, al, incl, o);
        assert_true(r >= 0);
        while (i < NK && !model[i].present) i++;
        if (r == 0) {
            assert_int_equal(i, NK);
            break;
        }
        assert_true(i < NK);
        assert_int_equal(o->klen, model[i].len);
        assert_memory_equal(o->key, model[i].key, model[i].len);
        memcpy(after, o->key, o->klen);
        al = o->klen;
        incl = 0;
        i++;
    }
    free(o);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int c = blk_check(path, 0, 0, f);
    fclose(f);
    if (c != 0) print_error("%s", buf);
    free(buf);
    assert_int_equal(c, 0);
}

static void test_tree_random(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/s3shim-blk-tree-%d.img", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    FILE *img = fopen(path, "w");
    assert_non_null(img);
    fclose(img);
    assert_int_equal(truncate(path, 64 << 20), 0);
    char err[512];
    assert_int_equal(blk_format(path, 1, "unit", err, sizeof err), 0);
    struct blk_store s;
    assert_int_equal(blk_open(&s, path, 1, err, sizeof err), 0);
    make_keys();
    struct blk_obj *o = calloc(1, sizeof *o);
    int height_max = 0;
    for (int round = 0; round < 40; round++) {
        struct blk_txn *t;
        assert_int_equal(tx_begin(&s, &t), 0);
        int grow = round < 20; /* first mostly inserts, then mostly deletes */
        for (int n = 0; n < 300; n++) {
            int i = (int)(rnd() % NK);
            if ((rnd() % 100) < (grow ? 75u : 25u)) {
                memset(o, 0, sizeof *o);
                memcpy(o->key, model[i].key, model[i].len);
                o->klen = (uint16_t)model[i].len;
                o->mode = S_IFREG | 0644;
                o->ino = tx_root(t)->next_ino++;
                o->gen = tx_root(t)->h.commit + 1;
                assert_int_equal(tx_put(t, o), 0);
                model[i].present = 1;
                model[i].ino = o->ino;
            } else {
                int r = tx_del(t, model[i].key, model[i].len);
                assert_int_equal(r, model[i].present ? 0 : -ENOENT);
                model[i].present = 0;
            }
        }
        if (tx_root(t)->height > (uint32_t)height_max) height_max = (int)tx_root(t)->height;
        assert_int_equal(tx_commit(t, TX_DURABLE, NULL), 0);
        verify(&s, path);
        if (round % 10 == 5) { /* an aborted commit changes nothing */
            assert_int_equal(tx_begin(&s, &t), 0);
            for (int i = 0; i < NK; i += 3)
                if (model[i].present) assert_int_equal(tx_del(t, model[i].key, model[i].len), 0);
            tx_abort(t);
            verify(&s, path);
        }
    }
    /* empty it: the tree shrinks back to one leaf */
    struct blk_txn *t;
    assert_int_equal(tx_begin(&s, &t), 0);
    for (int i = 0; i < NK; i++)
        if (model[i].present) {
            assert_int_equal(tx_del(t, model[i].key, model[i].len), 0);
            model[i].present = 0;
        }
    assert_int_equal(tx_root(t)->height, 1);
    assert_int_equal(tx_root(t)->objects, 0);
    assert_int_equal(tx_commit(t, TX_DURABLE, NULL), 0);
    verify(&s, path);
    assert_true(height_max >= 3);
    free(o);
    blk_close(&s);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tree_random)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
