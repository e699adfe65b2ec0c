/* olreq.h - S3 request records in `s3shim oplog`'s summary, JSON lines and Perfetto trace (olreq.c). */
#ifndef S3SHIM_OLREQ_H
#define S3SHIM_OLREQ_H

#include "olread.h"

#include <stdio.h>

const char *olreq_endpoint(const struct ol_set *s, const struct ol_req *q);
const char *olreq_status(const struct ol_req *q, char *buf, size_t len);
/* The per-endpoint section of --summary (nothing when the log has no requests). */
void olreq_summary(const struct ol_set *s, FILE *out);
void olreq_json(const struct ol_set *s, const struct ol_req *q, FILE *out);
/* Request slices of a trace whose time 0 is t0; *first: no event written yet. */
void olreq_perfetto(const struct ol_set *s, FILE *out, uint64_t t0, int *first);
/* Requests by start time. */
void olreq_sort(struct ol_set *s);

#endif
