/* s3_file_int.h - one open S3 object, as s3_file.c (opening, the calls on an open file,
 * closing), s3_read.c (ranged GETs, prefetch) and s3_write.c (multipart uploads) share
 * it. Private to core/s3/. */
#ifndef S3SHIM_S3_FILE_INT_H
#define S3SHIM_S3_FILE_INT_H

#include "../bufpool.h"
#include "../readahead.h"
#include "s3_mount.h"
#include "s3_stage.h"

#include <pthread.h>
#include <sys/types.h>
#include <time.h>

#define CHUNK_SLOTS 32
#define FIRST_WINDOW ((size_t)1 << 20)
#define RANDOM_MIN ((size_t)64 << 10) /* a random read's fetch: neighbours hit, little waste */
#define MAX_PART ((size_t)5 << 30)

enum { CH_FREE = 0, CH_PENDING, CH_READY, CH_FAILED };

struct chunk {
    int state;
    int collecting; /* a reader is waiting for its response */
    off_t off;
    size_t len, got;
    int err;
    char *buf;
    uint64_t used_at;
    char range[64];
    struct s3_op op;
};

struct part {
    int num;
    int copy; /* UploadPartCopy of a range of the staged object's source (s3f_upload_fd) */
    int known; /* already on the server (sent by write-behind): never sent here */
    char *csrc, range[80], ifmatch[128];
    char *buf;
    size_t len, cap;
    char md5[25];
    char query[1600]; /* partNumber and the encoded upload id */
    char etag[128];
    struct s3_op op;
};

struct s3_file {
    struct s3_mount *m;
    struct s3_path path;
    int writing;
    pid_t owner; /* a forked child has a copy: it must not touch the parent's requests */
    pthread_mutex_t lock;
    pthread_cond_t cv;

    /* reading */
    int64_t size;
    char etag[128];
    time_t mtime;
    struct chunk ch[CHUNK_SLOTS];
    struct readahead ra; /* sequential detection and the prefetch window */
    size_t last_len;     /* what the reader's last read asked for */
    uint64_t t_read;     /* when the last read began (stats clock) */
    uint64_t gap_ns;     /* the time from one large sequential read to the next, averaged */
    uint64_t body_ps;    /* picoseconds per byte of its recent GETs' bodies (note_body), 0 = none yet */
    int far_seen;        /* the store's distance was looked at for the first ceiling */
    _Atomic uint64_t rx; /* body bytes of this file's GETs received so far: the probe's measure */
    int eof_seen;        /* read to the end: follows newer versions from then on (s3f_follow) */
    unsigned eof_reads;  /* reads at the end so far: the second and later follow */
    uint64_t tick;

    /* writing */
    char upload_id[512];
    int upload_ep; /* the endpoint an upload stays on, when endpoints do not share them */
    struct part **parts; /* every part so far, in order */
    int nparts, cap_parts;
    int oldest_inflight; /* parts[oldest_inflight..nparts-1] may still be in flight */
    struct part *cur;    /* filling */
    off_t written;
    size_t psize;
    int err;
    int cause; /* why the commit failed (-errno; the commit itself says -EIO, as close does) */
    int committed;
    int dropped;          /* removed by name while open: writes are taken and dropped (s3_writers.c) */
    char *moved_key;      /* renamed once parts were sent: moved there on the server at the commit */
    char moved_bucket[256];
    struct s3_file *w_prev, *w_next; /* the process's streaming uploads (s3_writers.c) */
    int w_listed;

    /* staged (s3_stage.c): every call goes there */
    struct s3_stage *stg;
    int flags;
    int lockfd; /* the object's lock file (fcntl/flock), -1 until asked for */
    int lockguard; /* says the lock file is in use (s3_lock_fd) */
};

static inline struct s3_stage *stg_of(struct s3_file *f) { return __atomic_load_n(&f->stg, __ATOMIC_ACQUIRE); }

static inline void chunk_release(struct chunk *c)
{
    if (c->state == CH_PENDING) return;
    if (c->buf) bufpool_put(c->buf, c->len);
    c->buf = NULL;
    c->state = CH_FREE;
}

/* s3_file.c */
struct s3_file *s3f_file_new(struct s3_mount *m);
void s3f_file_free(struct s3_file *f);
/* In a forked child: a reader forgets the parent's requests and goes on (0); a writer's
 * upload stays the parent's (-EBADF). 0 at once in the owner. */
int s3f_adopt_after_fork(struct s3_file *f);

/* s3_read.c (f->lock held) */
/* Drop every chunk, waiting for those in flight. */
void s3f_chunks_drop(struct s3_file *f);
/* A reader that read to the end takes up a newer version of its object, if there is one. */
void s3f_follow(struct s3_file *f);

/* s3_write.c (f->lock held) */
/* The part being filled goes, unsent (staged, removed, or the file freed). */
void s3f_cur_drop(struct s3_file *f);
/* A streaming file becomes staged (a reader that is mapped, a writer that goes back,
 * truncates or is mapped). */
int s3f_to_stage(struct s3_file *f, const char *why);
/* Make the object exist on the server with everything written so far (the last part
 * and CompleteMultipartUpload, or one PUT); on failure the upload is aborted. */
int s3f_upload_commit(struct s3_file *f);

#endif
