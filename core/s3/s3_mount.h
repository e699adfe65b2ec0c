/* s3_backend.h - state shared by the S3 backend's files (backend_s3.c: mount, metadata,
 * namespace, listings; s3_file.c: reading and writing objects). Private to them. */
#ifndef S3SHIM_S3_BACKEND_H
#define S3SHIM_S3_BACKEND_H

#include "s3_client.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct s3_meta; /* cached stat of one key (backend_s3.c) */

struct s3_mount {
    struct s3_client client;
    char bucket[256]; /* "" for a mount of all buckets (s3://) */
    char prefix[1024]; /* key prefix inside the bucket, "" or ending in '/' */
    size_t part_size;
    int concurrency;
    uint64_t stat_ttl_ns;
    dev_t dev; /* st_dev of everything on this mount: no real device uses it */
    time_t mounted_at; /* the time shown for directories (prefixes have none) */
    pthread_mutex_t meta_lock;
    struct s3_meta *meta; /* uthash by bucket/key */
};

/* A mount key resolved to an object: bucket and key inside it. */
struct s3_path {
    char bucket[256];
    char *key;       /* heap; "" for the bucket (or the mount's prefix) itself */
    int is_service;  /* the root of an all-buckets mount */
};

int s3_path_resolve(struct s3_mount *m, const char *mkey, struct s3_path *p);
void s3_path_free(struct s3_path *p);

/* Metadata cache (backend_s3.c). */
void s3_meta_put(struct s3_mount *m, const char *bucket, const char *key, const struct stat *st, const char *etag);
void s3_meta_forget(struct s3_mount *m, const char *bucket, const char *key);
void s3_fill_stat(struct s3_mount *m, struct stat *st, const char *bucket, const char *key, int64_t size,
                  time_t mtime, int is_dir);

/* Does the bucket exist (cached like any stat)? 0 with a directory stat, or -errno. */
int s3_bucket_stat(struct s3_mount *m, const char *bucket, struct stat *st);

/* Files (s3_file.c). */
int s3f_open(struct s3_mount *m, const char *mkey, int flags, mode_t mode, void **fh);
ssize_t s3f_pread(void *fh, void *buf, size_t len, off_t off);
ssize_t s3f_pwrite(void *fh, const void *buf, size_t len, off_t off);
int s3f_fsync(void *fh, int datasync);
int s3f_commit(void *fh);
int s3f_close_shared(void *fh);
int s3f_ftruncate(void *fh, off_t len);
int s3f_fstat(void *fh, struct stat *st);
int s3f_close(void *fh);

#endif
