/* oplog.h - the op log: one fixed-size record per intercepted operation on a mount.
 *
 * S3SHIM_OPLOG=PATH turns it on. Each process writes its own file (PATH with %p = pid, or
 * PATH.PID for a process other than the first of the run, or DIR/PID.s3ol when PATH is a
 * directory). The file is mapped MAP_SHARED and cut into 64 KiB chunks; each thread
 * appends records to a chunk of its own with plain stores, so a record is in the page
 * cache the moment it is written: it survives exit, _exit, a fatal signal and SIGKILL,
 * and a reader recovers it from an unsealed chunk. The format is docs/oplog.md; the
 * structures below are that format (little-endian, x86-64 and aarch64 only).
 *
 * The shim calls OPLOG(...) next to its stats_record() of the same operation and passes
 * the timestamps the stats took. With the log off that is one load and a branch. */
#ifndef S3SHIM_OPLOG_H
#define S3SHIM_OPLOG_H

#include <stddef.h>
#include <stdint.h>

#define OPLOG_MAGIC "S3OPLOG"  /* 8 bytes with the NUL */
#define OPLOG_VERSION 1
#define OPLOG_CHUNK 65536u
#define OPLOG_SEG_CHUNKS 64u /* chunks mapped at a time: 4 MiB */
#define OPLOG_CHUNK_MAGIC 0x4b434c4fu /* "OLCK" */
#define OPLOG_EXT ".s3ol"

/* Chunk 0 of a file (only its first 128 bytes are used). */
struct oplog_file_hdr {
    char magic[8];       /* "S3OPLOG\0" */
    uint32_t version;    /* OPLOG_VERSION */
    uint32_t chunk_size; /* OPLOG_CHUNK */
    uint32_t rec_size;   /* sizeof(struct oplog_rec) = 64 */
    uint32_t chdr_size;  /* sizeof(struct oplog_chunk_hdr) = 64 */
    int32_t pid;
    uint32_t hdr_crc;    /* crc32c of the bytes before this field */
    uint64_t start_ticks; /* the process's start time (/proc/PID/stat field 22): same across exec */
    uint64_t nchunks;    /* chunks claimed so far, this one included (atomic) */
    uint32_t sessions;   /* program images that wrote to this file (exec keeps the pid) */
    uint32_t pad;
    uint64_t reserved[9];
};

enum oplog_chunk_type { OLC_RECORDS = 1, OLC_STRINGS = 2, OLC_FOOTER = 3 };

struct oplog_chunk_hdr {
    uint32_t magic;     /* OPLOG_CHUNK_MAGIC, stored last when the chunk is claimed */
    uint16_t type;      /* enum oplog_chunk_type */
    uint16_t session;   /* which program image of the process (0, then 1 after an exec...) */
    int32_t tid;        /* writing thread (records) */
    uint32_t sealed;    /* 1: nbytes and crc are valid */
    uint64_t first_seq; /* records: the thread's sequence number of the first record */
    uint32_t nbytes;    /* sealed: payload bytes covered by crc */
    uint32_t crc;       /* sealed: crc32c of payload[0..nbytes) */
    uint64_t mono0, wall0; /* CLOCK_MONOTONIC and CLOCK_REALTIME (ns) read together at claim */
    uint64_t reserved[2];
};

enum oplog_op {
    OL_OPEN = 1,
    OL_CLOSE,
    OL_READ,
    OL_WRITE,
    OL_STAT,
    OL_FSTAT,
    OL_OPENDIR,
    OL_META, /* aux = string id of the call: unlink, rename, mkdir... */
    OL_SYNC,
    OL_TRUNCATE,
    OL_SEEK, /* off = the offset asked, len = whence, res = the new offset */
    OL_REQ,  /* 12, not a call: an S3 request record (struct oplog_req), same slot and numbering */
    OL_DUP,  /* dup, dup2, dup3, F_DUPFD: fd = the new descriptor, len = the one copied, res =
              * fd or -errno; a dup2 over one of ours is recorded as its close first */
    OL_NOPS  /* a new kind takes 14, then 15... */
};

struct oplog_rec {
    uint64_t seq;   /* the thread's sequence number, from 1; stored last */
    uint64_t t;     /* start, CLOCK_MONOTONIC ns */
    uint64_t lat;   /* ns */
    int64_t off;    /* file offset, -1 when none */
    uint64_t len;   /* bytes asked for */
    int64_t res;    /* result, or -errno */
    uint32_t path;  /* string id (0: none) */
    uint32_t aux;   /* open: flags; meta: string id of the call's name */
    uint16_t op;    /* enum oplog_op */
    uint16_t mount; /* mount index + 1 (string of kind OLS_MOUNT with this id) */
    int32_t fd;
};

/* An S3 request (one HTTP attempt) the engine made, in the record slot of the thread
 * that saw it end (an HTTP engine thread, or the caller's own for a request made on its
 * thread). It says which op caused it by the thread that sent it: the op of that thread
 * whose time span holds `t` (docs/oplog.md). */
struct oplog_req {
    uint64_t seq;    /* the thread's sequence number, shared with its op records; stored last */
    uint64_t t;      /* sent, CLOCK_MONOTONIC ns */
    uint64_t lat;    /* until the answer was complete (or the transfer failed), ns */
    int64_t off;     /* first byte of the range asked for, -1: none */
    uint64_t bytes;  /* body bytes moved: received (2xx answers), or sent (PUT) */
    uint32_t ttfb_us; /* to the first byte of the body, us (0: none) */
    uint32_t id;     /* the logical request (per process, from 1): its attempts and backups share it */
    uint32_t key;    /* string id (kind OLS_KEY): "bucket/key" */
    int32_t cause_tid; /* the thread that sent it (0: unknown) */
    uint16_t op;     /* OL_REQ */
    uint16_t endpoint; /* string id (kind OLS_ENDPOINT) */
    int16_t status;  /* HTTP status; -CURLcode when the transfer failed; 0 none */
    uint8_t kind;    /* enum oplog_req_kind */
    uint8_t attempt; /* bits 0-5: attempt number (1 first, saturates at 63); OLQ_* flags */
};
#define OLQ_ATTEMPT 0x3f
#define OLQ_HEDGE 0x40    /* a backup request for a slow read (its attempt is the original's) */
#define OLQ_PREFETCH 0x80 /* fetched ahead for a sequential reader, not for the op that sent it */

enum oplog_req_kind {
    OLR_OTHER = 0,
    OLR_GET,       /* whole object */
    OLR_GET_RANGE,
    OLR_HEAD,
    OLR_PUT,
    OLR_PUT_PART,
    OLR_COPY,      /* PUT with x-amz-copy-source */
    OLR_COPY_PART, /* UploadPartCopy */
    OLR_LIST,
    OLR_MPU_INIT,
    OLR_MPU_COMPLETE,
    OLR_MPU_ABORT,
    OLR_DELETE,
    OLR_DELETE_MULTI,
    OLR_NKINDS
};

enum oplog_str_kind {
    OLS_PATH = 1,
    OLS_ARGV = 2,
    OLS_MOUNT = 3,
    OLS_EXE = 4,
    OLS_NAME = 5,
    OLS_SETTING = 6,
    OLS_KEY = 7,      /* an S3 "bucket/key" */
    OLS_ENDPOINT = 8, /* an S3 endpoint URL; ids of their own, from 1 */
    OLS_NKINDS
};

/* A strings chunk holds entries back to back, each padded to 8 bytes; id 0 ends it. */
struct oplog_str {
    uint32_t id;
    uint16_t kind; /* enum oplog_str_kind */
    uint16_t len;  /* bytes that follow (no NUL) */
};

enum oplog_end { OLE_EXIT = 1, OLE_UNDERSCORE_EXIT = 2, OLE_EXEC = 3 };

struct oplog_footer {
    uint32_t reason;   /* enum oplog_end */
    uint32_t threads;  /* threads that logged */
    uint64_t records;  /* written by this program image */
    uint64_t lost;     /* records that could not be stored (0 unless the file could not grow) */
    uint64_t wait_ns;  /* time callers spent waiting for the log (growing and mapping the file) */
    uint64_t mono_end, wall_end;
};

_Static_assert(sizeof(struct oplog_rec) == 64, "record size");
_Static_assert(sizeof(struct oplog_req) == 64, "request record size");
_Static_assert(offsetof(struct oplog_req, op) == offsetof(struct oplog_rec, op), "op at the same place");
_Static_assert(sizeof(struct oplog_chunk_hdr) == 64, "chunk header size");
_Static_assert(sizeof(struct oplog_file_hdr) == 128, "file header size");

const char *oplog_op_name(unsigned op);
const char *oplog_req_kind_name(unsigned kind);
uint32_t oplog_crc32c(uint32_t crc, const void *p, size_t n);

/* --- the recorder (libs3shim.so) --- */

struct mount;
struct mount_table;

extern int oplog_on;
extern __thread int oplog_fd __attribute__((tls_model("initial-exec"))); /* fd of the current fd call */

/* After the configuration is read: spec is S3SHIM_OPLOG (NULL: off); root = the first
 * process of the run (keeps PATH without a pid suffix). */
void oplog_init(const char *spec, int root, const struct mount_table *t);
void oplog_atfork_prepare(void);
void oplog_atfork_parent(void);
void oplog_atfork_child(void);
/* A footer for this program image (exit, _exit, exec): seals this thread's chunk. */
void oplog_finish(enum oplog_end why);

void oplog_log(unsigned op, int fd, const struct mount *m, const char *path, uint32_t *path_cache, int64_t off,
               uint64_t len, int64_t res, uint64_t t0, uint64_t t1, const char *name);

/* The string id of a path (interned now if new); for a record that names a second path. */
uint32_t oplog_path_id(const char *path);

/* --- S3 requests (oplog_req.c) --- */

/* The thread id a request records as its cause (cheap: cached per thread). */
int32_t oplog_tid(void);
/* A new logical request id (per process, from 1). */
uint32_t oplog_req_id(void);
/* The string id of an endpoint URL; *cache keeps it (ids survive fork). */
uint16_t oplog_endpoint_id(const char *url, uint16_t *cache);

struct oplog_req_info {
    const char *method, *bucket, *key, *query;
    int copy;          /* carries x-amz-copy-source */
    int ranged;        /* carries a Range header */
    const char *url;   /* the endpoint */
    uint16_t *ep_cache;
    int64_t off;
    uint64_t bytes;
    long status;
    int curl_code;
    uint64_t t_submit, t_first_byte, t_done;
    uint32_t id;
    int32_t cause_tid;
    unsigned attempt, flags;
};
/* One request record, on this thread's stream. */
void oplog_req(const struct oplog_req_info *q);
/* internal (oplog.c): this thread's next record slot, or NULL (then counted lost); and
 * a string's id (interned now if new) */
struct oplog_rec *oplog_slot_(uint64_t *seq);
uint32_t oplog_intern_(unsigned kind, const char *s, size_t len);

#define OPLOG(op, fd, m, path, cache, off, len, res, t0, t1, name) \
    do { \
        if (__builtin_expect(oplog_on, 0)) oplog_log(op, fd, m, path, cache, off, len, res, t0, t1, name); \
    } while (0)

#endif
