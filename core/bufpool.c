/* bufpool.c - see bufpool.h */
#include "bufpool.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static size_t budget = (size_t)1 << 30, in_use, high_water;

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
    if (in_use > high_water) high_water = in_use;
    pthread_mutex_unlock(&pool_lock);
    void *p = malloc(len ? len : 1);
    if (!p) bufpool_put(NULL, len);
    return p;
}

void bufpool_put(void *p, size_t len)
{
    free(p);
    pthread_mutex_lock(&pool_lock);
    in_use -= len;
    pthread_cond_broadcast(&pool_cv);
    pthread_mutex_unlock(&pool_lock);
}

size_t bufpool_in_use(void)
{
    pthread_mutex_lock(&pool_lock);
    size_t n = in_use;
    pthread_mutex_unlock(&pool_lock);
    return n;
}

size_t bufpool_high_water(void)
{
    pthread_mutex_lock(&pool_lock);
    size_t n = high_water;
    pthread_mutex_unlock(&pool_lock);
    return n;
}
