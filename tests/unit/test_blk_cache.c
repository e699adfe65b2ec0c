/* test_blk_cache.c - the per-process cache of verified metadata blocks (core/block/
 * blk_cache.c): its rules one by one (an entry serves its root and the next, a walk
 * restamps it, a block newer than the root is never served, an older root or the same
 * commit with other bytes drops everything), then two handles on one store (two caches,
 * as two processes have) where one commits replacements and deletes, published only
 * (group commit: freed metadata blocks are reused at the very next commit) or durable,
 * and the other looks every key up after each commit and after many: its answers must
 * be the model's, and the test checks that addresses it had kept were in fact rewritten
 * with other blocks meanwhile (else it would prove nothing). */
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

static void fake_block(uint8_t *b, int kind, uint64_t commit, uint64_t addr, uint8_t fill)
{
    memset(b, fill, BLK_BS);
    struct blk_hdr *h = (struct blk_hdr *)b;
    memset(h, 0, sizeof *h);
    h->kind = (uint16_t)kind;
    h->commit = commit;
    h->addr = addr;
}

static void test_rules(void **state)
{
    (void)state;
    struct blk_store s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.nc_lock, NULL);
    uint8_t *b = aligned_alloc(64, BLK_BS), *out = aligned_alloc(64, BLK_BS);
    assert_non_null(b);
    assert_non_null(out);

    blk_nc_seen(&s, 5, 0x55);
    fake_block(b, BK_LEAF, 4, 100, 0xab);
    blk_nc_put(&s, 100, BK_LEAF, b, 5);
    assert_int_equal(blk_nc_get(&s, 100, BK_LEAF, 5, out), 1); /* its root */
    assert_memory_equal(out, b, BLK_BS);
    assert_int_equal(blk_nc_get(&s, 100, BK_BRANCH, 5, out), 0); /* another kind */
    assert_int_equal(blk_nc_get(&s, 101, BK_LEAF, 5, out), 0);   /* another address */
    assert_int_equal(blk_nc_get(&s, 100, BK_LEAF, 4, out), 0);   /* an older root */
    assert_int_equal(blk_nc_get(&s, 100, BK_LEAF, 7, out), 0);   /* two roots later */
    assert_int_equal(blk_nc_get(&s, 100, BK_LEAF, 6, out), 1);   /* the next: restamped */
    assert_int_equal(blk_nc_get(&s, 100, BK_LEAF, 7, out), 1);   /* so the one after too */
    assert_int_equal(blk_nc_get(&s, 100, BK_LEAF, 9, out), 0);
    assert_int_equal(blk_nc_get(&s, 100, BK_LEAF, 5, out), 0); /* restamped past it */

    /* an older walk does not replace a newer entry of the same address */
    fake_block(b, BK_LEAF, 3, 100, 0xcd);
    blk_nc_put(&s, 100, BK_LEAF, b, 3);
    assert_int_equal(blk_nc_get(&s, 100, BK_LEAF, 7, out), 1);
    assert_int_equal(out[BLK_HDR], 0xab);

    /* a block written after the root asked for is never served */
    fake_block(b, BK_LEAF, 12, 200, 0x11);
    blk_nc_put(&s, 200, BK_LEAF, b, 11);
    assert_int_equal(blk_nc_get(&s, 200, BK_LEAF, 11, out), 0);
    assert_int_equal(blk_nc_get(&s, 200, BK_LEAF, 12, out), 1);

    /* the history went back, or was made again: everything goes */
    fake_block(b, BK_DIR, 20, 300, 0x22);
    blk_nc_seen(&s, 20, 0x20);
    blk_nc_put(&s, 300, BK_DIR, b, 20);
    blk_nc_seen(&s, 20, 0x20); /* the same root again: kept */
    assert_int_equal(blk_nc_get(&s, 300, BK_DIR, 20, out), 1);
    blk_nc_seen(&s, 20, 0x21); /* commit 20 with other bytes */
    assert_int_equal(blk_nc_get(&s, 300, BK_DIR, 20, out), 0);
    blk_nc_put(&s, 300, BK_DIR, b, 20);
    blk_nc_seen(&s, 19, 0x19); /* an older newest root */
    assert_int_equal(blk_nc_get(&s, 300, BK_DIR, 20, out), 0);
    assert_int_equal(atomic_load(&s.nc_drops), 2);

    blk_nc_free(&s);
    pthread_mutex_destroy(&s.nc_lock);
    free(b);
    free(out);
}

#define NK 600
static char keys[NK][48];
static uint64_t vals[NK]; /* 0: absent; else the object's size */
static uint64_t seed = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

/* Every key looked up through s (a cache of its own) agrees with the model. */
static void agree(struct blk_store *s)
{
    struct blk_obj *o = malloc(sizeof *o);
    assert_non_null(o);
    for (int i = 0; i < NK; i++) {
        int r = bt_get(s, keys[i], strlen(keys[i]), o, NULL);
        if (vals[i]) {
            assert_int_equal(r, 1);
            assert_int_equal(o->size, vals[i]);
        } else {
            assert_int_equal(r, 0);
        }
    }
    free(o);
}

/* How many of the addresses kept in s's cache now hold a block of another commit. */
static int rewritten(struct blk_store *s)
{
    int n = 0;
    uint8_t *b = aligned_alloc(64, BLK_BS);
    assert_non_null(b);
    for (int i = 0; s->nc && i < BLK_NC_SLOTS; i++) {
        if (!s->nc[i].addr) continue;
        assert_int_equal(blk_read_block(s, s->nc[i].addr, b), 0);
        if (((struct blk_hdr *)b)->commit != ((struct blk_hdr *)s->nc[i].buf)->commit) n++;
    }
    free(b);
    return n;
}

static void commit_round(struct blk_store *w, int how, int n)
{
    struct blk_txn *t;
    assert_int_equal(tx_begin(w, &t), 0);
    struct blk_obj *o = calloc(1, sizeof *o);
    assert_non_null(o);
    for (int k = 0; k < n; k++) {
        int i = (int)(rnd() % NK);
        if (rnd() % 3) { /* replace or create: a new size */
            memset(o, 0, sizeof *o);
            o->klen = (uint16_t)strlen(keys[i]);
            memcpy(o->key, keys[i], o->klen);
            o->mode = S_IFREG | 0644;
            o->ino = tx_root(t)->next_ino++;
            o->size = 1 + rnd() % 100000;
            o->gen = tx_root(t)->h.commit + 1;
            assert_int_equal(tx_put(t, o), 0);
            vals[i] = o->size;
        } else if (vals[i]) {
            assert_int_equal(tx_del(t, keys[i], strlen(keys[i])), 0);
            vals[i] = 0;
        }
    }
    free(o);
    assert_int_equal(tx_commit(t, how, NULL), 0);
}

static void two_handles(int how)
{
    char path[256];
    snprintf(path, sizeof path, "%s/s3shim-blk-cache-%d-%d.img", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid(), how);
    FILE *img = fopen(path, "w");
    assert_non_null(img);
    fclose(img);
    assert_int_equal(truncate(path, 64 << 20), 0);
    char err[512];
    assert_int_equal(blk_format(path, 1, "unit", err, sizeof err), 0);
    struct blk_store *w = calloc(1, sizeof *w), *r = calloc(1, sizeof *r);
    assert_non_null(w);
    assert_non_null(r);
    assert_int_equal(blk_open(w, path, 1, err, sizeof err), 0);
    int ro = blk_open(r, path, 0, err, sizeof err);
    if (ro) print_message("%s\n", err);
    unlink(path); /* both handles hold it open: a failed assertion below leaves no image behind */
    assert_int_equal(ro, 0);
    for (int i = 0; i < NK; i++) snprintf(keys[i], sizeof keys[i], "dir%02d/file-%05d-%08llx", i % 7, i,
                                          (unsigned long long)(rnd() & 0xffffffff));
    memset(vals, 0, sizeof vals);
    commit_round(w, how, 2 * NK);
    agree(r);
    int seen_rewritten = 0;
    for (int step = 0; step < 60; step++) {
        /* one commit between lookups (entries carried root to root), or several (the
         * reader's entries two or more roots old) */
        int commits = step % 3 == 2 ? 4 : 1;
        for (int c = 0; c < commits; c++) commit_round(w, how, 20);
        seen_rewritten += rewritten(r);
        agree(r);
        agree(w);
    }
    print_message("%s: %d kept addresses rewritten under the reader, %llu served from its cache\n",
                  how == TX_VISIBLE ? "published commits" : "durable commits", seen_rewritten,
                  (unsigned long long)atomic_load(&r->nc_hits));
    assert_true(seen_rewritten > 0);
    assert_true(atomic_load(&r->nc_hits) > 0);
    blk_close(r);
    blk_close(w);
    free(r);
    free(w);
}

static void test_two_handles_visible(void **state)
{
    (void)state;
    two_handles(TX_VISIBLE);
}

static void test_two_handles_durable(void **state)
{
    (void)state;
    two_handles(TX_DURABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rules), cmocka_unit_test(test_two_handles_visible),
                                       cmocka_unit_test(test_two_handles_durable)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
