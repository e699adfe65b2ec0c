/* s3_client.h - S3 requests: addressing, signing, retries, errors, per-endpoint stats.
 *
 * One s3_client per S3 mount. An s3_op is one logical request (GET a range, PUT a part,
 * list a page...); s3_start() sends it and s3_finish() waits for it, retrying
 * transient failures (5xx, SlowDown, resets, timeouts) with exponential backoff and
 * jitter, re-signing every attempt. Starting several ops before finishing any is how a
 * large read or write becomes parallel requests. HTTP status becomes an errno, and each
 * distinct failure is logged once with the object, the status and the S3 error code. */
#ifndef S3SHIM_S3_CLIENT_H
#define S3SHIM_S3_CLIENT_H

#include "aws_config.h"
#include "balance.h"
#include "http.h"
#include "sigv4.h"
#include "../stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct s3_endpoint {
    char url[512];  /* "http://127.0.0.1:8080" without a trailing slash */
    char scheme[8]; /* "http" or "https" */
    char host[256]; /* host[:port] as sent in the Host header */
    struct stats_set stats; /* hung below the mount's stats */
    uint16_t ol_id;         /* its string id in the op log, 0 until first needed */
};

/* How a client spreads requests over its endpoints. */
struct s3_client_opts {
    enum bal_policy policy; /* S3SHIM_BALANCE */
    int hedge;              /* S3SHIM_HEDGE=auto: backup requests for slow reads */
    int pin_uploads;        /* S3SHIM_SHARED_UPLOADS=no: an upload stays on one endpoint */
};

struct s3_client {
    struct aws_settings aws;
    struct sigv4 signer;
    int vhost;      /* virtual-hosted addressing (bucket.host) instead of path style */
    struct s3_endpoint *ep;
    int nep;
    struct balancer bal;
    struct s3_client_opts opt;
    int max_attempts;      /* per request, the first included */
    uint64_t retry_budget_ns; /* total time a request may spend retrying */
    pthread_mutex_t log_lock;
    char logged[32][96];   /* distinct failures already logged */
    int nlogged;
};

#define S3_MAX_HDRS 8

struct s3_op {
    /* request */
    const char *method;
    const char *bucket; /* "" only for service-level requests */
    const char *key;    /* not encoded; "" for bucket-level requests */
    const char *query;  /* canonical query string, already encoded, or "" */
    struct sigv4_header hdrs[S3_MAX_HDRS]; /* extra signed headers (lowercase names) */
    int nhdrs;
    const void *body;
    size_t body_len;
    void *dst; /* response body target (ranged GET), dst_cap bytes... */
    size_t dst_cap;
    int grow;  /* ...or collect it in req.resp */
    int quiet_404; /* a missing object is an expected answer: do not log it */
    int quiet;     /* never log a failure (the caller explains it) */
    int prefetch;  /* fetched ahead for a sequential reader (the op log says so) */
    uint64_t hold_ns; /* 0, or how long after it is sent the body may wait in the socket for
                       * the reader's own buffer (s3_redirect): http_req.hold_until */
    _Atomic uint64_t *rx_tally; /* optional: body bytes received are added here as they land */
    int *pin;      /* requests of one upload: the endpoint they stay on, -1 until chosen
                    * (used only when the client pins uploads) */

    /* result */
    int err;   /* 0 or -errno */
    char code[64], message[256]; /* S3 error code and message, if any */
    struct http_req req;         /* status, etag, got, resp... */

    /* private */
    struct curl_slist *hl;
    char *url;
    int attempts;
    uint64_t t_begin;
    struct s3_endpoint *ep;
    int epi; /* index of ep */
    unsigned ahead; /* requests in flight on ep when this attempt was sent */
    int hedge;      /* a backup: the attempt of the request it backs up */
    uint32_t ol_id; /* the op log's request id (0: the log is off) */
    int32_t ol_tid; /* the op log: the thread that sent this attempt */
    struct s3_client *client;
};

/* Set up a client from AWS settings (endpoint list, credentials, region) and balancing
 * options (NULL: defaults). On failure returns -errno with a one-line reason in err. */
int s3_client_init(struct s3_client *c, const struct aws_settings *aws, int vhost,
                   const struct s3_client_opts *opt, struct stats_set *mount_stats, char *err, size_t errlen);
void s3_client_free(struct s3_client *c);

void s3_op_init(struct s3_op *op, const char *method, const char *bucket, const char *key);
void s3_op_header(struct s3_op *op, const char *name, const char *value); /* value is copied by pointer */
void s3_op_cleanup(struct s3_op *op);
int s3_start(struct s3_client *c, struct s3_op *op);
int s3_finish(struct s3_client *c, struct s3_op *op); /* returns op->err */
int s3_run(struct s3_client *c, struct s3_op *op);
/* A started GET lands the rest of its body in ndst (dst_cap bytes) instead of op->dst,
 * and so do its retries and a backup's answer. Returns how many bytes are already in
 * the old buffer: the caller copies them. Only the thread that will call s3_finish()
 * may call it, before it does: ndst is written until s3_finish() returns. */
size_t s3_redirect(struct s3_op *op, void *ndst);
/* A started GET whose body waits for the reader's buffer (hold_ns) lands it in op->dst
 * now instead; nothing if it was not held. The same thread rule as s3_redirect. */
void s3_release_hold(struct s3_op *op);

/* Multipart upload requests shared by the streaming writer (s3_file.c) and staged
 * write-behind (s3_stage_wb.c). `pin` keeps them on the upload's endpoint. */
/* "uploadId=ID", prefixed "partNumber=N&" when part > 0; the ID URI-encoded. */
void s3_upload_query(const char *id, int part, char *q, size_t len);
/* CreateMultipartUpload: the upload's id into id, or -errno (-EIO, logged, when the
 * answer names none). */
int s3_upload_create(struct s3_client *c, const char *bucket, const char *key, int *pin, char *id, size_t idlen);
/* AbortMultipartUpload: 0 when it is gone; with quiet_gone an upload the server no
 * longer knows is gone too, without an error line. */
int s3_upload_abort(struct s3_client *c, const char *bucket, const char *key, const char *id, int *pin,
                    int quiet_gone);


#endif
