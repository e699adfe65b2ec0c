/* s3_mount.h - a mounted S3 store, shared inside the S3 wing: the mount state
 * (backend_s3.c), keys, stat answers and their cache (s3_meta.c), open files
 * (s3_file.c). Calls run one way: backend_s3.c -> s3_file.c -> s3_meta.c. */
#ifndef S3SHIM_S3_MOUNT_H
#define S3SHIM_S3_MOUNT_H

#include "s3_client.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct s3_meta;      /* cached stat of one key (s3_meta.c) */
struct s3_list_page; /* s3_xml.h */
struct s3_list_entry;

struct s3_mount {
    struct s3_client client;
    char bucket[256]; /* "" for a mount of all buckets (s3://) */
    char prefix[1024]; /* key prefix inside the bucket, "" or ending in '/' */
    size_t part_size;
    int concurrency;
    size_t ra_memory; /* a sequential reader's bytes fetched ahead, at most (ra_split) */
    int read_hold;    /* CFG_HOLD_*: read-ahead bodies wait for the reader's buffer (s3_read.c) */
    uint64_t stat_ttl_ns;
    dev_t dev; /* st_dev of everything on this mount: no real device uses it */
    time_t mounted_at; /* the time shown for directories (prefixes have none) */
    pthread_mutex_t meta_lock;
    struct s3_meta *meta; /* uthash by bucket/key */
};

/* A mount key resolved to an object: bucket and key inside it. */
struct s3_path {
    char bucket[256];
    char *key;       /* heap; "" for the bucket, the mount's prefix less its '/' for it */
    int is_service;  /* the root of an all-buckets mount */
    int is_root;     /* a bucket, the mount's own root (its prefix) or is_service: a directory always */
    int bad_bucket;  /* s3://: the first component cannot be a bucket name (-ENOENT) */
};

/* One error line for a create under a name no bucket can have; a lookup stays quiet. */
void s3_path_why_enoent(const struct s3_path *p, const char *mkey, const char *what);

int s3_path_resolve(struct s3_mount *m, const char *mkey, struct s3_path *p);
void s3_path_free(struct s3_path *p);

/* Metadata cache (s3_meta.c): answers live stat_ttl_ns; a NULL st records "no such key".
 * An answer is kept with the key's generation (s3_gen.h), which every process of the run
 * bumps when it changes the key or anything below it: read it with s3_meta_gen() before
 * sending the request whose answer is cached, and give it to s3_meta_fill(). */
uint64_t s3_meta_gen(const char *bucket, const char *key);
void s3_meta_fill(struct s3_mount *m, const char *bucket, const char *key, const struct stat *st, const char *etag,
                  uint64_t gen);
/* The same with the generation read now (a change made while the request was out may be
 * missed for the TTL): prefer s3_meta_fill. */
void s3_meta_put(struct s3_mount *m, const char *bucket, const char *key, const struct stat *st, const char *etag);
/* An entry of a listing of directory `dir` whose generation was dir_gen before the listing
 * was asked for (nothing is cached if anything below dir changed since). */
void s3_meta_fill_listed(struct s3_mount *m, const char *bucket, const char *key, const struct stat *st,
                         const char *etag, const char *dir, uint64_t dir_gen);
/* This process changed key on the server (created, replaced, deleted, renamed; call it
 * once the server answered, whatever the answer): tells every process of the run. st is
 * what the key is now if known (NULL: not known or gone); it is cached only if nobody
 * changed the key since gen0, its generation read before the change was sent. */
void s3_meta_changed(struct s3_mount *m, const char *bucket, const char *key, uint64_t gen0, const struct stat *st,
                     const char *etag);
void s3_meta_forget(struct s3_mount *m, const char *bucket, const char *key);
/* This process made directory key, and nothing was below it while its generation was
 * gen (s3_meta_changed filled it with gen): until its entry's TTL ends, a child that has
 * no entry of its own is absent (s3_meta.c, "Known directories"). */
void s3_meta_made_dir(struct s3_mount *m, const char *bucket, const char *key, uint64_t gen);
/* 1 = cached (st filled, or *neg set for a missing key), 0 = not cached. */
int s3_meta_get(struct s3_mount *m, const char *bucket, const char *key, struct stat *st, int *neg);
/* 1 when an open with these flags is an exclusive create (O_CREAT|O_EXCL) of a key known
 * absent: an answer of its own, or its directory known whole (listed again if that ended
 * with its TTL). It needs no HEAD. Any other open asks the server. */
int s3_meta_create_is_new(struct s3_mount *m, const char *bucket, const char *key, int flags);
/* What the stat cache knows against creating key as an object: -EISDIR (it is a
 * directory), -ENOTDIR (an ancestor is an object), else 0. No request: a name the
 * cache does not know is let through, as S3 itself would. */
int s3_meta_create_conflict(struct s3_mount *m, const char *bucket, const char *key);
/* key was found missing (HEAD 404): learn its directory (one listing page) unless it is
 * known already or too large, so that its other names are answered from the cache. */
void s3_meta_learn_dir(struct s3_mount *m, const char *bucket, const char *key);
void s3_meta_clear(struct s3_mount *m);
/* st_ino of a key: a hash, stable across processes and runs. */
uint64_t s3_key_hash(const char *bucket, const char *key);
void s3_fill_stat(struct s3_mount *m, struct stat *st, const char *bucket, const char *key, int64_t size,
                  time_t mtime, int is_dir);

/* stat of a resolved path: an object (HEAD), a prefix with keys below it (a directory),
 * a bucket or the mount root; cached. 0 or -errno. */
int s3_stat_path(struct s3_mount *m, struct s3_path *p, struct stat *st);
/* Does the bucket exist (cached like any stat)? 0 with a directory stat, or -errno. */
int s3_bucket_stat(struct s3_mount *m, const char *bucket, struct stat *st);
/* One ListObjectsV2 page of `prefix` (delimiter '/' unless flat), after `token`. */
int s3_list_dir(struct s3_mount *m, const char *bucket, const char *prefix, const char *token, int max_keys,
                int flat, struct s3_list_page *page);
/* The length of the name an entry of a listing of `prefix` (pl bytes) gives its child:
 * past the prefix, without a common prefix's '/'; 0 for the directory's own marker or a
 * key outside prefix. */
size_t s3_list_child(const struct s3_list_entry *e, const char *prefix, size_t pl);
/* Cache what a page of the listing of directory `dir` (prefix "dir/", "" for a bucket's
 * top) says of its children, asked for with dir's generation dir_gen: a file's size, time
 * and ETag, and that a common prefix is a directory. Files after prefixes: a name that is
 * both (keys "a" and "a/b") is the file, as a HEAD finds it. 0 or -ENOMEM. */
int s3_meta_fill_page(struct s3_mount *m, const char *bucket, const struct s3_list_page *page, const char *prefix,
                      const char *dir, uint64_t dir_gen);
/* Is there anything below "key/"? 1, 0 or -errno; *only_marker: just a "key/" marker. */
int s3_has_children(struct s3_mount *m, const char *bucket, const char *key, int *only_marker);

/* Whole objects on the server (s3_object.c). A copy of `size` bytes from src to dst
 * (CopyObject, or UploadPartCopy parts above two parts); a delete (the stat cache and the
 * run's counters told); a move is the copy, then the delete of a. 0 or -errno. */
int s3_object_copy(struct s3_mount *m, const struct s3_path *src, const struct s3_path *dst, int64_t size);
int s3_object_delete(struct s3_mount *m, const char *bucket, const char *key);
int s3_object_move(struct s3_mount *m, const struct s3_path *a, const struct s3_path *b, int64_t size);

/* Files (s3_file.c). */
int s3f_open(struct s3_mount *m, const char *mkey, int flags, mode_t mode, void **fh);
ssize_t s3f_pread(void *fh, void *buf, size_t len, off_t off);
ssize_t s3f_pwrite(void *fh, const void *buf, size_t len, off_t off);
ssize_t s3f_append(void *fh, const void *buf, size_t len, off_t *at);
int s3f_fsync(void *fh, int datasync);
int s3f_commit(void *fh);
int s3f_share(void *fh);
int s3f_close_shared(void *fh);
int s3f_ftruncate(void *fh, off_t len);
int s3f_fstat(void *fh, struct stat *st);
int s3f_close(void *fh);
/* Staging (s3_stage.c behind s3_file.c): mmap, locks, inherited descriptors. */
int s3f_open_fd(struct s3_mount *m, int fd, int flags, void **fh);
int s3f_fallocate(void *fh, int mode, off_t off, off_t len);
int s3f_fadvise(void *fh, off_t off, off_t len, int advice);
int s3f_local_fd(void *fh);
int s3f_local_map(void *fh, off_t off, size_t len, int prot, int flags);
int s3f_lock_fd(void *fh);

#endif
