/* test_blk_tree.c - the block:// index (core/block/blk_tree.c over blk_txn.c) against a
 * model: random inserts, replacements and deletes of keys of every length (so nodes split,
 * empty out, and the tree grows and shrinks in height), many per commit, an aborted commit
 * in between; after each commit every key's lookup, the ordered walk, and `blk check`
 * must agree with the model; and deletes that merge nodes back (test_tree_merge). The
 * store lives in a file under $TMPDIR (metadata only). */
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

/* A new store of `mib` MiB in a file under $TMPDIR named after `name` and the pid, open. */
static void new_store(const char *name, int mib, char *path, size_t plen, struct blk_store *s)
{
    snprintf(path, plen, "%s/s3shim-blk-%s-%d.img", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name, (int)getpid());
    FILE *img = fopen(path, "w");
    assert_non_null(img);
    fclose(img);
    assert_int_equal(truncate(path, (off_t)mib << 20), 0);
    char err[512];
    assert_int_equal(blk_format(path, 1, "unit", err, sizeof err), 0);
    assert_int_equal(blk_open(s, path, 1, err, sizeof err), 0);
}

static void test_tree_random(void **state)
{
    (void)state;
    char path[256];
    struct blk_store s;
    new_store("tree", 64, path, sizeof path, &s);
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

static int count_node(void *data, uint64_t addr, int kind, const uint8_t *blk)
{
    (void)addr;
    (void)kind;
    (void)blk;
    ++*(int *)data;
    return 0;
}

static int tree_nodes(struct blk_store *s)
{
    struct blk_root r;
    assert_int_equal(blk_newest_root(s, &r, NULL), 0);
    int n = 0;
    struct bt_walker w = {.node = count_node, .data = &n};
    assert_int_equal(bt_walk(s, &r, &w), 0);
    return n;
}

/* Deletes give nodes back: 20,000 keys, then all but every 20th deleted (a few thousand
 * per commit, in key order and scattered): the tree ends with a fraction of its nodes
 * and no taller than before, every remaining key found, check clean. */
static void test_tree_merge(void **state)
{
    (void)state;
    char path[256];
    struct blk_store s;
    new_store("merge", 256, path, sizeof path, &s);
    enum { N = 20000 };
    struct blk_obj *o = calloc(1, sizeof *o);
    assert_non_null(o);
    struct blk_txn *t;
    for (int i = 0; i < N; i++) {
        if (i % 4000 == 0) assert_int_equal(tx_begin(&s, &t), 0);
        memset(o, 0, sizeof *o);
        o->klen = (uint16_t)snprintf(o->key, sizeof o->key, "dir%02d/file-%06d.bin", i % 37, i);
        o->mode = S_IFREG | 0644;
        o->ino = tx_root(t)->next_ino++;
        assert_int_equal(tx_put(t, o), 0);
        if (i % 4000 == 3999) assert_int_equal(tx_commit(t, TX_DURABLE, NULL), 0);
    }
    int before = tree_nodes(&s);
    struct blk_root r0;
    assert_int_equal(blk_newest_root(&s, &r0, NULL), 0);
    /* first the keys of the even directories in order, then the rest scattered */
    for (int pass = 0; pass < 2; pass++) {
        int n = 0;
        assert_int_equal(tx_begin(&s, &t), 0);
        for (int j = 0; j < N; j++) {
            int i = pass == 0 ? j : (int)((uint64_t)j * 7919 % N);
            if (i % 20 == 0 || (i % 37) % 2 != pass) continue;
            char key[64];
            int kl = snprintf(key, sizeof key, "dir%02d/file-%06d.bin", i % 37, i);
            assert_int_equal(tx_del(t, key, (size_t)kl), 0);
            if (++n % 3000 == 0) {
                assert_int_equal(tx_commit(t, TX_DURABLE, NULL), 0);
                assert_int_equal(tx_begin(&s, &t), 0);
            }
        }
        assert_int_equal(tx_commit(t, TX_DURABLE, NULL), 0);
    }
    int after = tree_nodes(&s);
    struct blk_root r1;
    assert_int_equal(blk_newest_root(&s, &r1, NULL), 0);
    print_message("tree nodes %d -> %d, height %u -> %u, metadata blocks %llu -> %llu\n", before, after,
                  r0.height, r1.height, (unsigned long long)r0.meta_used, (unsigned long long)r1.meta_used);
    assert_int_equal(r1.objects, N / 20);
    assert_true(after * 5 < before);
    assert_true(r1.height <= r0.height);
    for (int i = 0; i < N; i += 3) {
        char key[64];
        int kl = snprintf(key, sizeof key, "dir%02d/file-%06d.bin", i % 37, i);
        assert_int_equal(bt_get(&s, key, (size_t)kl, o, NULL), i % 20 == 0);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int c = blk_check(path, 0, 0, f);
    fclose(f);
    if (c != 0) print_error("%s", buf);
    free(buf);
    assert_int_equal(c, 0);
    free(o);
    blk_close(&s);
    unlink(path);
}

/* bt_lookup's answer for a key that is not there: is a directory of that name (a key
 * below key + "/")? 1 or 0 when the first key after it in the leaf tells, -1 when it
 * cannot ("key-x" and "key.x" sort between key and key + "/"; nothing after it in the
 * leaf); whatever it says must agree with bt_next from key + "/", over many keys and
 * leaves. */
static void test_lookup_dir(void **state)
{
    (void)state;
    char path[256];
    struct blk_store s;
    new_store("dir", 64, path, sizeof path, &s);
    struct blk_obj *o = calloc(1, sizeof *o);
    assert_non_null(o);
    struct blk_txn *t;
    assert_int_equal(tx_begin(&s, &t), 0);
    const char *fixed[] = {"d/x", "e-1", "e/f", "g", "h0"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        memset(o, 0, sizeof *o);
        o->klen = (uint16_t)strlen(fixed[i]);
        memcpy(o->key, fixed[i], o->klen);
        o->mode = S_IFREG | 0644;
        assert_int_equal(tx_put(t, o), 0);
    }
    /* then many, in many leaves: names of 1-3 letters from "ab-./", some below others */
    const char al[] = "ab-./";
    for (int i = 0; i < 4000; i++) {
        memset(o, 0, sizeof *o);
        int n = 1 + (int)(rnd() % 6);
        for (int j = 0; j < n; j++) o->key[j] = al[rnd() % 5];
        o->key[0] = 'k'; /* (no key starts with '/') */
        snprintf(o->key + n, 16, "%04d", i % 300);
        o->klen = (uint16_t)strlen(o->key);
        if (strstr(o->key, "//") || o->key[o->klen - 1] == '/') continue;
        o->mode = S_IFREG | 0644;
        assert_true(tx_put(t, o) == 0);
    }
    assert_int_equal(tx_commit(t, TX_DURABLE, NULL), 0);
    int dir;
    assert_int_equal(bt_lookup(&s, "d", 1, o, NULL, &dir), 0);
    assert_int_equal(dir, 1); /* "d/x" follows */
    assert_int_equal(bt_lookup(&s, "e", 1, o, NULL, &dir), 0);
    assert_int_equal(dir, -1); /* "e-1" follows: cannot tell ("e/f" exists) */
    assert_int_equal(bt_lookup(&s, "f", 1, o, NULL, &dir), 0);
    assert_int_equal(dir, 0); /* "g" follows */
    assert_int_equal(bt_lookup(&s, "h", 1, o, NULL, &dir), 0);
    assert_int_equal(dir, 0); /* "h0": '0' sorts after '/' */
    int told = 0, asked = 0;
    for (int i = 0; i < 20000; i++) {
        char key[32];
        int n = 1 + (int)(rnd() % 7);
        for (int j = 0; j < n; j++) key[j] = al[rnd() % 5];
        key[0] = 'k';
        key[n] = 0;
        if (rnd() % 2) snprintf(key + n, 8, "%04d", (int)(rnd() % 300));
        size_t kl = strlen(key);
        if (key[kl - 1] == '/') continue;
        int r = bt_lookup(&s, key, kl, o, NULL, &dir);
        assert_true(r >= 0);
        if (r == 1) continue;
        char mk[40];
        snprintf(mk, sizeof mk, "%s/", key);
        int nx = bt_next(&s, mk, kl + 1, 1, o);
        assert_true(nx >= 0);
        int truth = nx == 1 && o->klen > kl && memcmp(o->key, mk, kl + 1) == 0;
        asked++;
        if (dir < 0) continue;
        told++;
        if (dir != truth) {
            print_error("bt_lookup('%s'): dir %d, but bt_next from '%s' says %d\n", key, dir, mk, truth);
            fail();
        }
    }
    print_message("dir answered by the lookup for %d of %d absent keys\n", told, asked);
    assert_true(told > asked / 2);
    free(o);
    blk_close(&s);
    unlink(path);
}

/* blk_bits_run (the metadata allocator's search, a word at a time) against a loop over
 * each bit: random bitmaps from nearly empty to nearly full, in holes of every size, any
 * range, run length and run carried in from the bits before. */
static void test_bits_run(void **state)
{
    (void)state;
    uint8_t bits[64 * 8];
    for (int round = 0; round < 20000; round++) {
        int density = (int)(rnd() % 100), hole = 1 + (int)(rnd() % 20);
        for (size_t i = 0; i < sizeof bits * 8;) { /* runs of used and free bits */
            int used = (int)(rnd() % 100) < density;
            size_t len = 1 + rnd() % (size_t)(used ? 20 : hole);
            for (size_t k = 0; k < len && i < sizeof bits * 8; k++, i++) {
                if (used) bits[i / 8] |= (uint8_t)(1u << (i % 8));
                else bits[i / 8] &= (uint8_t)~(1u << (i % 8));
            }
        }
        uint64_t from = rnd() % (sizeof bits * 8), to = from + rnd() % (sizeof bits * 8 - from + 1);
        uint64_t want = 1 + rnd() % (round % 4 ? 16 : 64), carry = rnd() % 3 ? 0 : rnd() % want; /* (< want) */
        /* the model */
        uint64_t mrun = carry;
        int64_t mstart = 0;
        int mfound = 0;
        for (uint64_t b = from; b < to; b++) {
            if ((bits[b / 8] >> (b % 8)) & 1) {
                mrun = 0;
            } else if (++mrun >= want) {
                mstart = (int64_t)b + 1 - (int64_t)mrun;
                mfound = 1;
                break;
            }
        }
        uint64_t run = carry;
        int64_t start = 0;
        int found = blk_bits_run(bits, from, to, want, &run, &start);
        if (found != mfound || (found && start != mstart) || (!found && run != mrun)) {
            print_error("bits_run: from %llu to %llu want %llu carry %llu: got %d start %lld run %llu, model start "
                        "%lld run %llu\n",
                        (unsigned long long)from, (unsigned long long)to, (unsigned long long)want,
                        (unsigned long long)carry, found, (long long)start, (unsigned long long)run, (long long)mstart,
                        (unsigned long long)mrun);
            fail();
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tree_random), cmocka_unit_test(test_tree_merge),
                                       cmocka_unit_test(test_bits_run), cmocka_unit_test(test_lookup_dir)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
