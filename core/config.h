/* config.h - the effective configuration, read once from the environment.
 *
 * Parsing is separate from acting: cfg_load() only records what the variables say and
 * which entries are malformed (with a one-line reason each), so the same code serves the
 * library at start-up, `s3shim config`, and the unit tests. */
#ifndef S3SHIM_CONFIG_H
#define S3SHIM_CONFIG_H

#include <stddef.h>

#define CFG_MAX_MOUNTS 64
#define CFG_MAX_ERRORS 16

struct cfg_mount {
    char *prefix; /* normalised absolute path, or "s3:" for literal s3:// paths */
    char *uri;
    int is_default;
};

struct cfg {
    int log_level;
    char *log_file;
    int stats;
    char *stats_file;
    char *oplog; /* S3SHIM_OPLOG */
    int nmounts;
    struct cfg_mount mounts[CFG_MAX_MOUNTS];
    /* engine and S3 settings (S3SHIM_*) */
    size_t part_size;    /* bytes per ranged GET / uploaded part */
    int concurrency;     /* requests in flight per file */
    int max_inflight;    /* requests in flight for the whole process */
    size_t memory;       /* buffer memory budget for the whole process */
    size_t ra_memory;    /* bytes one sequential S3 reader keeps fetched ahead, at most */
    int addressing;      /* CFG_ADDR_* */
    int stat_ttl_ms;     /* metadata cache lifetime; 0 = off */
    int io_threads;      /* HTTP engine threads */
    int timeout_s;       /* a transfer that stalls this long is retried */
    char *endpoints;     /* S3SHIM_ENDPOINTS: URL,URL,... (NULL: the AWS settings') */
    int balance;         /* enum bal_policy */
    int curl_only;       /* libcurl receives every response (S3SHIM_HTTP_RECV=curl) */
    int read_hold;       /* CFG_HOLD_*: read-ahead bodies wait for the reader's buffer (S3SHIM_READ_HOLD) */
    int hedge;           /* backup requests for slow reads (S3SHIM_HEDGE=auto) */
    int shared_uploads;  /* endpoints share multipart uploads (nodes of one cluster) */
    char *staging_dir;   /* S3SHIM_STAGING_DIR (NULL: the default) */
    unsigned long long staging_limit; /* S3SHIM_STAGING_LIMIT: bytes of staging files per host */
    int write_behind;    /* S3SHIM_WRITE_BEHIND: parts a staged new file sends ahead, 0 = off */
    int staging_defer;   /* S3SHIM_STAGING_DEFER: mkstemp-style files upload at rename, not close */
    /* direct:// (S3SHIM_DIRECT_*) */
    size_t direct_chunk;  /* aligned read/write size of the engine */
    int direct_depth;     /* chunks in flight per sequential reader or writer */
    int direct_threads;   /* io_uring engine threads (one ring each) */
    int direct_buffers;   /* registered buffers (of direct_chunk bytes) */
    int direct_sqpoll;    /* kernel submission polling */
    int direct_engine;    /* 0 auto, 1 io_uring, 2 threads (URING_ENGINE_*) */
    int direct_fallback;  /* 0: buffered with a warning when O_DIRECT is refused, 1: error */
    int direct_gather;    /* 1: gather small writes across calls (visible at close/fsync) */
    int kernel_files;     /* 1: local descriptors exposed to kernel I/O from the start (shim/kio.h) */
    int block_discard;    /* block://: discard freed blocks as they become reusable */
    int block_share_wait_ms; /* block://: a read waits this long for another process's commit */
    int block_commit_ms;  /* block://: a close or namespace change is durable within this (0: at once) */
    int block_batch_ms;   /* block://: a lone process's closes of new files committed together within this (0: each at once) */
    int nerrors;
    char errors[CFG_MAX_ERRORS][320];
};

enum { CFG_ADDR_AUTO = 0, CFG_ADDR_PATH, CFG_ADDR_VIRTUAL };
enum { CFG_HOLD_AUTO = 0, CFG_HOLD_ON, CFG_HOLD_OFF };

/* Parse "8M", "512k", "1G", "1048576" (binary multiples). -1 if malformed. */
long long cfg_parse_size(const char *v);

/* getenv-like lookup, so tests and the C API can feed their own environment. */
typedef const char *(*cfg_getenv_fn)(const char *name, void *ctx);
/* The process environment, as a cfg_getenv_fn. */
const char *cfg_process_env(const char *name, void *ctx);

/* Fill c from the environment. Never fails: bad values are recorded in c->errors and
 * the affected setting keeps its default (a bad mount entry is left out). */
void cfg_load(struct cfg *c, cfg_getenv_fn get, void *ctx);
void cfg_free(struct cfg *c);

/* Parse an S3SHIM_MOUNTS value and append its entries (exposed for tests). */
void cfg_parse_mounts(struct cfg *c, const char *spec);

/* Is NAME (e.g. "S3SHIM_MOUNTS") a setting this build understands? */
int cfg_is_known(const char *name);
/* The names this build understands, NULL-terminated: {name, one-line description,
 * default as written in the variable or NULL when the default is to leave it unset}. */
extern const char *const cfg_known[][3];

/* Parse a boolean-ish value ("1", "yes", "true", "on" / "0", "no", "false", "off").
 * Returns 0/1, or -1 if it is neither. */
int cfg_parse_bool(const char *v);

#endif
