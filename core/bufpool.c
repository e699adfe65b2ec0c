/* bufpool.c - see bufpool.h */
#include "bufpool.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static size_t budget = (size_t)1 << 30, in_use;

/* Large buffers given back are kept for the next request of the same size: a fresh
 * 8 MiB buffer is a new mapping and 2048 page faults, a reused one is none. */
#define KEEP_MIN ((size_t)1 << 20)
#define KEEP_MAX_BYTES ((size_t)64 << 20)
#define KEEP_SLOTS 16
static struct {
    void *p;
    size_t len;
} kept[KEEP_SLOTS];
static size_t kept_bytes;

static void *take_kept(size_t len)
{
    for (int i = 0; i < KEEP_SLOTS; i++)
        if (kept[i].p && kept[i].len == len) {
            void *p = kept[i].p;
            kept[i].p = NULL;
            kept_bytes -= len;
            return p;
        }
    return NULL;
}

/* Keep p if there is room; returns 1 if kept. */
static int keep(void *p, size_t len)
{
    if (!p || len < KEEP_MIN || kept_bytes + len > KEEP_MAX_BYTES) return 0;
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
    void *p = take_kept(len);
    pthread_mutex_unlock(&pool_lock);
    if (!p) p = malloc(len ? len : 1);
    if (!p) bufpool_put(NULL, len);
    return p;
}

void bufpool_put(void *p, size_t len)
{
    pthread_mutex_lock(&pool_lock);
    if (!keep(p, len)) {
        pthread_mutex_unlock(&pool_lock);
        free(p);
        pthread_mutex_lock(&pool_lock);
    }
    in_use -= len;
    pthread_cond_broadcast(&pool_cv);
    pthread_mutex_unlock(&pool_lock);
}
