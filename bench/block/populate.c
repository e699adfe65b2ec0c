/* populate.c - fill a block:// store with N empty objects quickly (many per commit), for
 * the start-up and metadata measurements of bench/block/startup.sh: the shim itself
 * commits one object per close, far too slow to make a million.
 *
 *   populate STORE N [KEYLEN [ORDER [EXTENTS]]]
 *
 * Keys "d%03d/" + a zero-padded number, KEYLEN bytes long, object i in directory i % 1000.
 * ORDER is how the keys arrive: "dirs" (default: i = 0, 1, 2, ..., so 1000 directories
 * each fill in order at once, like many writers), "sorted" (in key order, like `cp -r`
 * of one tree) or "random" (a random permutation, fixed seed). EXTENTS (default 0) gives
 * every object that many one-block extents (allocated, never written: the data zone must
 * hold N * EXTENTS blocks), as a small file has one. */
#include "../../core/block/blk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The i-th object in the order asked for. */
static long nth(const char *order, long i, long n, long *perm)
{
    if (!strcmp(order, "sorted")) { /* directory by directory, numbers ascending */
        long per = n / 1000, extra = n % 1000, d = 0, base = 0;
        for (; d < 1000; d++) { /* directory d holds per (+1 for d < extra) objects */
            long m = per + (d < extra);
            if (i < base + m) return d + (i - base) * 1000;
            base += m;
        }
        return i;
    }
    return perm ? perm[i] : i;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: populate STORE N [KEYLEN [dirs|sorted|random [EXTENTS]]]\n");
        return 2;
    }
    long n = atol(argv[2]);
    int kl = argc > 3 ? atoi(argv[3]) : 40;
    const char *order = argc > 4 ? argv[4] : "dirs";
    int next = argc > 5 ? atoi(argv[5]) : 0;
    if (n <= 0 || kl < 10 || kl > 200 || next < 0 || next > BLK_MAX_EXT ||
        (strcmp(order, "dirs") && strcmp(order, "sorted") && strcmp(order, "random"))) {
        fprintf(stderr, "populate: bad arguments\n");
        return 2;
    }
    long *perm = NULL;
    if (!strcmp(order, "random")) {
        if (!(perm = malloc(n * sizeof *perm))) return 1;
        for (long i = 0; i < n; i++) perm[i] = i;
        srand48(42);
        for (long i = n - 1; i > 0; i--) {
            long j = lrand48() % (i + 1), x = perm[i];
            perm[i] = perm[j];
            perm[j] = x;
        }
    }
    struct blk_store s;
    char err[512];
    if (blk_open(&s, argv[1], 1, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct blk_obj *o = calloc(1, sizeof *o);
    if (!o) return 1;
    for (long i = 0; i < n;) {
        struct blk_txn *t;
        if (tx_begin(&s, &t) < 0) return 1;
        for (long j = 0; j < 20000 && i < n; j++, i++) {
            long k = nth(order, i, n, perm);
            memset(o, 0, sizeof *o);
            int len = snprintf(o->key, sizeof o->key, "d%03ld/%0*ld", k % 1000, kl - 5, k);
            o->klen = (uint16_t)len;
            o->mode = S_IFREG | 0644;
            o->ino = tx_root(t)->next_ino++;
            o->mtime_ns = 1600000000000000000ll;
            o->gen = tx_root(t)->h.commit + 1;
            if (next) o->size = 4096u * (uint64_t)next;
            for (int e = 0; e < next; e++) {
                uint64_t pb = s.sb.data_start + (uint64_t)k * (uint64_t)next + (uint64_t)e;
                o->ext[e] = (struct blk_ext){.lblk = (uint64_t)e, .pblk = pb, .len = 1};
                if (tx_use_data(t, pb, 1) < 0) {
                    fprintf(stderr, "populate: no room for the extents\n");
                    return 1;
                }
            }
            o->next = next;
            if (tx_put(t, o) < 0) {
                fprintf(stderr, "put failed at %ld\n", i);
                return 1;
            }
        }
        if (tx_commit(t, TX_DURABLE, NULL) < 0) return 1;
    }
    free(o);
    free(perm);
    blk_close(&s);
    return 0;
}
