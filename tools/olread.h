/* olread.h - reading op logs (docs/oplog.md) into memory, for `s3shim oplog` and `s3shim ab`. */
#ifndef S3SHIM_OLREAD_H
#define S3SHIM_OLREAD_H

#include "../core/oplog.h"

#include <stddef.h>
#include <stdint.h>

struct ol_sess {
    char *file;      /* the op log file */
    int32_t pid;
    uint16_t session;
    char **str[OLS_NKINDS]; /* [kind][id] */
    uint32_t nstr[OLS_NKINDS];
    struct oplog_footer footer;
    int has_footer;
    uint64_t mono0, wall0; /* a clock pair of this session (first chunk) */
};

struct ol_rec {
    struct oplog_rec r;
    uint32_t sess; /* index in ol_set.sess */
    int32_t tid;
};

/* An S3 request record, and the op that caused it (found by ol_load). */
struct ol_req {
    struct oplog_req q;
    uint32_t sess;
    int32_t tid;        /* the thread whose stream holds it */
    uint64_t cause_seq; /* seq of the op (same session, thread q.cause_tid) whose span holds q.t; 0: none */
};

struct ol_set {
    struct ol_rec *rec; /* the ops of programs (op records) */
    size_t nrec, caprec;
    struct ol_req *req; /* the S3 requests (kept apart: readers of ops never see them) */
    size_t nreq, capreq;
    struct ol_sess *sess;
    size_t nsess, capsess;
    size_t files, unsealed, missing, no_footer;
};

/* Load a file or every *.s3ol / oplog file of a directory. 0, or -1 with one line in err. */
/* Format an error into err (errlen bytes) and return -1: how the readers fail. */
int ol_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int ol_load(struct ol_set *s, const char *path, char *err, size_t errlen);
void ol_free(struct ol_set *s);
/* Sort records by start time. */
void ol_sort(struct ol_set *s);
/* A string of a record's session, or NULL. */
const char *ol_str(const struct ol_set *s, const struct ol_rec *r, unsigned kind, uint32_t id);
/* The mount prefix of a record ("?" when unknown). */
const char *ol_mount(const struct ol_set *s, const struct ol_rec *r);
/* A string of a session by kind and id, or NULL. */
const char *ol_sess_str(const struct ol_set *s, uint32_t sess, unsigned kind, uint32_t id);

#endif
