/* s3_stage_int.h - what the staging files (s3_stage.c) share with the namespace view of
 * them (s3_stage_ns.c: stat, listing and removal of staged keys). Private to those two.
 *
 * The map file (HASH.map) starts with this header, shared by every process of the host that
 * has the object staged; DIR/.lock serialises joining, creating and removing staging files. */
#ifndef S3SHIM_S3_STAGE_INT_H
#define S3SHIM_S3_STAGE_INT_H

#include "s3_mount.h"

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define STAGE_MAGIC 0x53335354u        /* "S3ST" */
#define STAGE_VERSION 1u

struct stage_hdr {
    uint32_t magic, version;
    pthread_mutex_t lock; /* process-shared, robust: fetches, partial writes, uploads */
    uint64_t gen;         /* changes so far */
    uint64_t up_gen;      /* the change count the server has */
    int64_t base_size;    /* size of the source when staged: blocks below it may need fetching */
    int64_t fetch_limit;  /* bytes at or past this are never fetched (truncated away) */
    uint32_t nblocks;
    int32_t mapped_w;     /* a shared writable mapping exists: always upload */
    int32_t unlinked;     /* the object was removed while open: never upload, files already gone */
    int64_t mtime;        /* of the source object */
    char etag[128];       /* of the source (If-Match) */
    char src_bucket[256], src_key[1100];
    char bucket[256], key[1100];
    uint8_t present[];    /* per block: fetched (or written whole) */
};

/* Changed since the last upload (or mapped writable: always). */
static inline int dirty(const struct stage_hdr *h)
{
    return __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE) != __atomic_load_n(&h->up_gen, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&h->mapped_w, __ATOMIC_ACQUIRE);
}

extern char stg_dir[PATH_MAX - 256]; /* room for "/HASH.data" */

int stg_dir_ready(void);   /* the directory made; leftovers of dead processes removed */
int stg_dir_lock(void);    /* a descriptor holding DIR/.lock, or -errno */
void stg_dir_unlock(int fd);
void stg_name(struct s3_mount *m, const char *bucket, const char *key, char *out, size_t len); /* DIR/HASH */
void stg_suffix(const char *base, const char *sfx, char *out, size_t len);
void stg_active_add(int64_t d);
/* Can anything be staged on this host now? (one atomic load once the directory is ready) */
int stg_maybe_staged(void);
/* Remove DIR/name (a HASH.lock) if no process uses it (dirlock: stg_dir_lock()'s, held). */
void s3_lock_sweep(int dirlock, const char *name);

#endif
