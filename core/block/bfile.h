/* bfile.h - an open block:// object, shared by block_file.c (data, commit, open) and
 * block_share.c (locks, sharing with other processes, fork). Private to core/block/. */
#ifndef S3SHIM_BFILE_H
#define S3SHIM_BFILE_H

#include "bmount.h"

#include "../readahead.h"
#include "../uring.h"

struct bext {
    uint64_t lblk, pblk;
    uint32_t len;
    int owned;
};

struct bfile {
    struct block_mount *m;
    char key[BLK_MAX_KEY + 1];
    size_t klen;
    int fd, writable, dirty, err;
    int acc;       /* O_RDONLY, O_WRONLY, O_RDWR */
    int lockfd;    /* the key's lock file (fcntl and flock locks), opened at the first lock */
    int shared;    /* shared with another process (bf_share), or locked (bf_lock_fd): other
                    * processes commit versions it must follow (follow_shared) */
    uint64_t new_ino; /* a new object's st_ino before its first commit, and after it if shown */
    int ino_shown;
    int at_commit; /* wb_flush from the commit */
    int detached;  /* unlinked while open (bf_detach): never committed again */
    mode_t mode;
    pthread_mutex_t lock;
    struct blk_obj base; /* the committed version this file builds on (base.gen 0: none) */
    uint64_t size;
    int64_t mtime;
    int mtime_set;
    int mode_set; /* fchmod of a writer: the mode its commit gives */
    struct bext *map;
    int n, cap;
    uint64_t rstart, rlen; /* the reserved run not yet used */
    /* write buffer: valid bytes [wb_lblk * BS, + wb_len) */
    struct ubuf wb;
    uint64_t wb_lblk;
    size_t wb_len;
    /* read cache: logical [rc_off, rc_off + rc_len) */
    struct ubuf rc;
    uint64_t rc_off;
    size_t rc_len;
    struct readahead ra;
    struct bfile *nw_next, **nw_pprev; /* in m->nw: this process's open files */
};

/* block_file.c */
int bf_commit(struct bfile *f, int how);     /* f->lock held */
int bf_lookup_pinned(struct bfile *f);       /* f->base from the newest root, pinned: 1, 0, -errno */

/* block_share.c */
int bf_follow_shared(struct bfile *f);       /* f->lock held */
void bf_list_add(struct bfile *f);
void bf_list_remove(struct bfile *f);

#endif
