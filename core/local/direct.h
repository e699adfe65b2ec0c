/* direct.h - the direct:// backend's shared declarations: its mount state (backend_direct.c)
 * and its open files (direct_file.c and below). Private to the local wing. */
#ifndef S3SHIM_DIRECT_H
#define S3SHIM_DIRECT_H

#include "backend_file.h"
#include "../stats.h"
#include "../uring.h"

#include <stdatomic.h>

enum { DIRECT_FALLBACK_BUFFERED = 0, DIRECT_FALLBACK_ERROR };

struct direct_mount {
    struct file_mount fm; /* first: the file:// namespace functions take this struct as theirs */
    char *uri;
    size_t chunk; /* large read/write size */
    int depth;    /* chunks a sequential reader keeps in flight */
    int fallback; /* DIRECT_FALLBACK_* */
    int gather;   /* keep small writes across calls until a chunk is full (visible later) */
    struct stats_set dev;     /* child: the io_uring requests themselves */
    struct uring_depth qd;
    _Atomic int warned;       /* the buffered-fallback warning was given in this process */
    _Atomic int fell_back;    /* some file of this mount runs buffered */
    pthread_mutex_t detail_lock;
    char align[96]; /* the alignment of the last file opened */
    char fallback_why[160]; /* why some file ran buffered, "" if none did */
};

/* Update the stats' detail lines: alignment last seen, queue depth, fallback (direct_io.c). */
void direct_describe(struct direct_mount *m, const char *align, const char *fallback_why);

int df_open(void *ms, const char *key, int flags, mode_t mode, void **fh);
int df_open_fd(void *ms, int fd, int flags, void **fh);
ssize_t df_pread(void *fh, void *buf, size_t len, off_t off);
ssize_t df_pwrite(void *fh, const void *buf, size_t len, off_t off);
int df_fsync(void *fh, int datasync);
int df_ftruncate(void *fh, off_t len);
int df_fstat(void *fh, struct stat *st);
int df_fallocate(void *fh, int mode, off_t off, off_t len);
int df_fadvise(void *fh, off_t off, off_t len, int advice);
int df_futimens(void *fh, const struct timespec ts[2]);
int df_close(void *fh);
int df_local_fd(void *fh);
int df_kernel_io(void *fh, int direct);
int df_setfl(void *fh, int flags);
/* Before fork: every open file's gathered writes go to the device. */
void df_flush_all(void);

#endif
