/* blk_cache.c - verified metadata blocks kept across commits (docs/block-format.md,
 * "Readers").
 *
 * A commit writes only blocks that no node of the root before it reaches (what it frees is
 * reused at the next commit at the earliest). So a block verified under root N (reached
 * from it) still holds the same bytes under root N+1, and if a walk from root N+1 reaches
 * it again, under N+2 as well, and so on. An entry is stamped with the newest root it was
 * reached from; it serves a walk under that root or the next one, and the walk restamps
 * it. A program writing one file after another (one commit each) then finds the index
 * path and the free map in memory instead of reading and checksumming them again after
 * every commit; the blocks its own commit wrote go in as they are published. A root older
 * than one seen before, or the same commit with another checksum (the store went back:
 * its visible roots were lost, and commits were made again), drops it all. */
#include "blk.h"

#include "../sys.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BLK_NC_SIZE (BLK_NC_SLOTS * sizeof(struct blk_ncslot))

/* The slots: anonymous memory, zero until touched. A process that looks up a few keys
 * (`stat`, `ls` of one directory) touches a few slots; zeroing the whole MiB at the first
 * lookup was a quarter of such a process's time (page faults). */
static struct blk_ncslot *slot_of(struct blk_store *s, uint64_t addr)
{
    if (!s->nc) {
        void *p = sys.mmap(NULL, BLK_NC_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
        s->nc = p;
    }
    return &s->nc[addr % BLK_NC_SLOTS];
}

void blk_nc_free(struct blk_store *s)
{
    if (s->nc) munmap(s->nc, BLK_NC_SIZE);
    s->nc = NULL;
}

int blk_nc_get(struct blk_store *s, uint64_t addr, int kind, uint64_t root, void *buf)
{
    int hit = 0;
    pthread_mutex_lock(&s->nc_lock);
    struct blk_ncslot *e = slot_of(s, addr);
    if (e && e->addr == addr && e->kind == kind && (e->stamp == root || e->stamp + 1 == root) &&
        ((const struct blk_hdr *)e->buf)->commit <= root) {
        memcpy(buf, e->buf, BLK_BS);
        e->stamp = root; /* reached from root: good for the next one too */
        hit = 1;
        atomic_fetch_add_explicit(&s->nc_hits, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->nc_lock);
    return hit;
}

void blk_nc_put(struct blk_store *s, uint64_t addr, int kind, const void *blk, uint64_t root)
{
    pthread_mutex_lock(&s->nc_lock);
    struct blk_ncslot *e = slot_of(s, addr);
    if (e && !(e->addr == addr && e->stamp > root)) {
        memcpy(e->buf, blk, BLK_BS);
        e->addr = addr;
        e->kind = kind;
        e->stamp = root;
    }
    pthread_mutex_unlock(&s->nc_lock);
}

void blk_nc_seen(struct blk_store *s, uint64_t newest, uint32_t crc)
{
    pthread_mutex_lock(&s->nc_lock);
    /* Older than one seen, or the same commit with other bytes: the store's history is
     * not the one the entries were stamped in (its visible roots were lost). */
    if ((newest < s->nc_newest || (newest == s->nc_newest && crc != s->nc_newest_crc)) && s->nc) {
        for (int i = 0; i < BLK_NC_SLOTS; i++) s->nc[i].addr = 0;
        atomic_fetch_add_explicit(&s->nc_drops, 1, memory_order_relaxed);
    }
    s->nc_newest = newest;
    s->nc_newest_crc = crc;
    pthread_mutex_unlock(&s->nc_lock);
}
