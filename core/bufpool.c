/* bufpool.c - see bufpool.h
 *
 * Large buffers (1 MiB and up: prefetch chunks, parts) are mappings of their own, not
 * malloc's: glibc serves an 8 MiB malloc from a fresh mapping or from a heap it trims
 * on free, so every chunk used to land on new, zeroed pages (2048 faults per 8 MiB).
 * Here a freed large buffer is kept for the next request of the same size, and its
 * pages stay populated: a sequential reader cycles through the same few buffers. (They
 * are not offered to transparent huge pages: with the usual defrag=madvise a fault in
 * such a region may compact memory synchronously, which cost seconds of CPU per GiB
 * on this busy machine; a reused buffer faults once anyway.) */
#include "bufpool.h"
#include "sys.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static size_t budget = (size_t)1 << 30, in_use;

#define BIG_MIN ((size_t)1 << 20) /* from here on: a mapping, and kept on put */
#define KEEP_MAX_BYTES ((size_t)64 << 20)
#define KEEP_SLOTS 32
static struct {
    void *p;
    size_t len;
} kept[KEEP_SLOTS];
static size_t kept_bytes;

static size_t map_len(size_t len) { return (len + 4095) & ~(size_t)4095; }

static void *big_map(size_t len)
{
    void *p = sys.mmap(NULL, map_len(len), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void big_unmap(void *p, size_t len) { munmap(p, map_len(len)); }

/* A kept buffer of len bytes, or NULL. On a miss, one kept buffer of another size is
 * handed back in *stale to be unmapped: a reader whose GETs changed size (its window
 * grew, or split: readahead.h) does not go back to the old size, and those populated
 * pages would stay in the process's resident memory for nothing. */
static void *take_kept(size_t len, void **stale, size_t *stale_len)
{
    int other = -1;
    for (int i = 0; i < KEEP_SLOTS; i++) {
        if (kept[i].p && kept[i].len == len) {
            void *p = kept[i].p;
            kept[i].p = NULL;
            kept_bytes -= len;
            return p;
        }
        if (kept[i].p && other < 0) other = i;
    }
    if (other >= 0) {
        *stale = kept[other].p;
        *stale_len = kept[other].len;
        kept[other].p = NULL;
        kept_bytes -= *stale_len;
    }
    return NULL;
}

/* Keep p if there is room; returns 1 if kept. */
static int keep(void *p, size_t len)
{
    if (kept_bytes + len > KEEP_MAX_BYTES) return 0;
    for (int i = 0; i < KEEP_SLOTS; i++)
        if (!kept[i].p) {
            kept[i].p = p;
            kept[i].len = len;
            kept_bytes += len;
            return 1;
        }
    return 0;
}

void bufpool_configure(size_t b)
{
    pthread_mutex_lock(&pool_lock);
    budget = b;
    pthread_mutex_unlock(&pool_lock);
}

void *bufpool_get(size_t len, int wait)
{
    pthread_mutex_lock(&pool_lock);
    while (in_use && in_use + len > budget) {
        if (!wait) {
            pthread_mutex_unlock(&pool_lock);
            return NULL;
        }
        pthread_cond_wait(&pool_cv, &pool_lock);
    }
    in_use += len;
    void *stale = NULL;
    size_t stale_len = 0;
    void *p = len >= BIG_MIN ? take_kept(len, &stale, &stale_len) : NULL;
    pthread_mutex_unlock(&pool_lock);
    if (stale) big_unmap(stale, stale_len);
    if (!p) p = len >= BIG_MIN ? big_map(len) : malloc(len ? len : 1);
    if (!p) bufpool_put(NULL, len);
    return p;
}

void bufpool_put(void *p, size_t len)
{
    pthread_mutex_lock(&pool_lock);
    int big = len >= BIG_MIN;
    if (p && big && keep(p, len)) p = NULL;
    in_use -= len;
    pthread_cond_broadcast(&pool_cv);
    pthread_mutex_unlock(&pool_lock);
    if (p) {
        if (big)
            big_unmap(p, len);
        else
            free(p);
    }
}
