/* populate.c - fill a block:// store with N empty objects quickly (many per commit), for
 * the start-up and memory measurements of bench/block/startup.sh: the shim itself commits
 * one object per close, far too slow to make a million.
 *
 *   populate STORE N [KEYLEN]      keys "d%03d/" + zero-padded numbers, KEYLEN bytes long */
#include "../../core/block/blk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: populate STORE N [KEYLEN]\n");
        return 2;
    }
    long n = atol(argv[2]);
    int kl = argc > 3 ? atoi(argv[3]) : 40;
    struct blk_store s;
    char err[512];
    if (blk_open(&s, argv[1], 1, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct blk_obj *o = calloc(1, sizeof *o);
    for (long i = 0; i < n;) {
        struct blk_txn *t;
        if (tx_begin(&s, &t) < 0) return 1;
        for (long j = 0; j < 20000 && i < n; j++, i++) {
            memset(o, 0, sizeof *o);
            int len = snprintf(o->key, sizeof o->key, "d%03ld/%0*ld", i % 1000, kl - 5, i);
            o->klen = (uint16_t)len;
            o->mode = S_IFREG | 0644;
            o->ino = tx_root(t)->next_ino++;
            o->mtime_ns = 1600000000000000000ll;
            o->gen = tx_root(t)->h.commit + 1;
            if (tx_put(t, o) < 0) {
                fprintf(stderr, "put failed at %ld\n", i);
                return 1;
            }
        }
        if (tx_commit(t) < 0) return 1;
    }
    free(o);
    blk_close(&s);
    return 0;
}
