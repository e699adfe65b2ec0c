/* stats.h - counters and latency histograms, per mount and (later) per endpoint.
 *
 * A stats_set is one named thing that does I/O (a mount, an S3 endpoint, a device); it
 * holds one stats_op per kind of operation. Recording is lock-free (relaxed atomics) so
 * it can sit on every I/O path; reading takes a snapshot. A mount owns a list of child
 * sets so that the S3 backend can hang its endpoints below the mount that uses them. */
#ifndef S3SHIM_STATS_H
#define S3SHIM_STATS_H

#include <stdint.h>
#include <stdio.h>

enum stats_kind {
    STK_OPEN,
    STK_READ,
    STK_WRITE,
    STK_STAT,
    STK_DIR,
    STK_META, /* unlink, rename, mkdir, rmdir, truncate, utimens */
    STK_SYNC,
    STK_CLOSE,
    STK_TTFB,  /* request to first response byte (endpoints); count = responses */
    STK_RETRY, /* retried requests (endpoints); time = the backoff slept */
    STK_REQ,   /* every attempt sent to an endpoint: bytes both ways, errors = failed */
    STK_HEDGE, /* backup requests sent to an endpoint; errors = the original won */
    STK_EJECT, /* times the endpoint was taken out of service */
    STK_NKINDS
};

#define STATS_BUCKETS 256 /* 4 per power of two of nanoseconds */

struct stats_op {
    _Atomic uint64_t count, errors, bytes, ns, max_ns;
    _Atomic uint64_t hist[STATS_BUCKETS];
};

struct stats_set {
    char name[128];  /* "/data" or "endpoint http://..." */
    char detail[256]; /* the URI it maps to */
    struct stats_op op[STK_NKINDS];
    struct stats_set *children; /* endpoints etc.; appended, never removed */
    struct stats_set *next;
};

uint64_t stats_now_ns(void);
/* Record one operation that started at t0 (from stats_now_ns) and moved `bytes`.
 * Returns the end time it took (for the op log, which reuses both timestamps). */
uint64_t stats_record(struct stats_set *s, enum stats_kind k, uint64_t t0, uint64_t bytes, int failed);
/* Bytes an earlier record of kind k counted but the program never received (a redirected
 * stream's read-ahead given back when it seeks or closes): the totals stay what the
 * program moved, not what the shim read for it. */
void stats_unrecord_bytes(struct stats_set *s, enum stats_kind k, uint64_t bytes);
/* Quantile q (0..1) of an op's latency in ns (upper bound of its bucket). */
uint64_t stats_quantile(const struct stats_op *op, double q);
const char *stats_kind_name(enum stats_kind k);
void stats_reset(struct stats_set *s);
/* Did anything happen on this set or its children? */
int stats_touched(const struct stats_set *s);

/* Render a list of sets (linked by next) as a human table / as JSON. */
void stats_print_text(FILE *out, const struct stats_set *list, double elapsed_s);
void stats_print_json(FILE *out, const struct stats_set *list, double elapsed_s, long pid);

/* s as a JSON string (quotes, escapes); NULL as "". Shared with the command's JSON output. */
void stats_json_str(FILE *out, const char *s);

#endif
