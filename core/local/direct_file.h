/* direct_file.h - an open direct:// file, shared by the four files that serve it, each
 * calling only those below it: direct_file.c (opening, closing, metadata, fork) ->
 * direct_read.c (reads, prefetch) -> direct_write.c (gathered writes, read-modify-write,
 * the padded tail) -> direct_io.c (one request, the chunk cache, errors, fork).
 * Private to them. */
#ifndef S3SHIM_DIRECT_FILE_H
#define S3SHIM_DIRECT_FILE_H

#include "dio_align.h"
#include "direct.h"
#include "../readahead.h"

#include <pthread.h>

#define RSLOTS 16
#define WSLOTS 16

enum { RS_FREE = 0, RS_PENDING, RS_READY };

struct rslot {
    int state, collecting;
    off_t off;
    size_t got;
    int err;
    uint64_t used;
    struct ubuf b;
    struct uio u;
};

struct wslot {
    int busy;
    struct ubuf b;
    struct uio u;
};

struct dfile {
    struct direct_mount *m;
    int fd;
    int buffered; /* plain pread/pwrite (fallback, or not a regular file or device) */
    int afd;      /* a buffered O_APPEND descriptor, opened at the first O_APPEND */
    int append;   /* the program's O_APPEND: writes go to afd */
    int kfd;      /* a buffered descriptor for the asynchronous I/O of a program without O_DIRECT */
    int kio;      /* the program does I/O on fd itself: nothing cached, nothing gathered */
    int is_blk, sync;
    struct dio_align al;
    size_t chunk;
    int depth;
    uint64_t devsize;
    unsigned gen;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    /* reading */
    struct readahead ra;
    struct rslot rs[RSLOTS];
    uint64_t tick;
    off_t size_hint; /* where prefetching stops */
    /* writing */
    struct ubuf wb;
    off_t wb_off; /* aligned file offset of wb.p[0] */
    size_t wb_len;
    int wb_dirty;
    struct wslot ws[WSLOTS];
    int ws_next;
    off_t pend_end; /* end of what was gathered or is in flight */
    int err;
    struct dfile *prev, *next;
};

/* direct_io.c */
ssize_t df_io_sync(struct dfile *f, int op, char *buf, size_t len, off_t off, int bidx);
void df_uio_setup(struct dfile *f, struct uio *u, int op, struct ubuf *b, size_t len, off_t off);
off_t df_disk_size(struct dfile *f);
void df_note_error(struct dfile *f, int e, const char *what, off_t off);
/* In a forked child, before its first use of f: forget the parent's requests and buffers. */
void df_adopt_after_fork(struct dfile *f);
/* The same without starting the child's rings (for a caller about to use the fd itself). */
void df_forget_parent(struct dfile *f);
void df_adopt_atfork_child(void);
void df_rs_release(struct rslot *s);
/* Wait for a pending slot (lock held; released while waiting). */
void df_rs_collect(struct dfile *f, struct rslot *s);
/* Forget cached chunks overlapping [from, to) (all: to < 0), waiting for pending ones
 * (lock held). */
void df_rs_drop(struct dfile *f, off_t from, off_t to);
/* direct_write.c (lock held) */
int df_wb_flush(struct dfile *f);
int df_ws_drain(struct dfile *f);
/* Everything gathered on the device, no cached chunk: the descriptor's own view is
 * exact. Returns the pending error, if any. */
int df_settle(struct dfile *f);

#endif
