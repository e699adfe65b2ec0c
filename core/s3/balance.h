/* balance.h - choosing the endpoint for each request: shortest expected waiting time.
 *
 * Several addresses of one store (nodes of a cluster, gateways, replicas) are used as
 * one. Every request - each ranged GET, each uploaded part - asks bal_pick() where to
 * go and reports back with bal_done() when the transfer ends. Under the default policy
 * an endpoint's score is its expected waiting time for a request of that size:
 *
 *     (requests in flight + 1) x (time to first byte + size x transfer time per byte)
 *
 * The service time is measured per request and normalised twice: by size (first byte
 * and transfer are estimated apart) and by the requests that were in flight there when
 * it was sent (an answer that took 8 ms with two others ahead of it is 8/3 ms of the
 * endpoint's time): an endpoint that serves requests in parallel is then not scored as
 * if it queued them, and one that queues is.
 *
 * Latency and queueing estimates are peak-sensitive moving averages: a slower sample
 * is taken at once, faster ones pull the estimate down with a weight that grows with the
 * time since the last sample, so a slowdown is seen on the next answer and forgotten within seconds.
 * An idle endpoint's estimate halves every couple of seconds, so a slow endpoint gets
 * an occasional request and is seen again when it recovers; an endpoint whose oldest
 * request has waited longer than its estimate is scored by that wait (a dead endpoint
 * that swallows requests looks slower every moment). Failures raise the estimate;
 * several in a row eject the endpoint for a backoff that doubles each time, after which
 * a single probe request decides whether it is back.
 *
 * Up to 8 endpoints are all scored; above that two are sampled at random and the better
 * one taken (power of two choices). Ties go to a random one, so concurrent callers do
 * not herd. Selection takes no lock and allocates nothing. The same bookkeeping gives
 * the hedging delay: a read that has waited longer than its endpoint's recent p95 time
 * to first byte (plus its transfer time) may send one backup request elsewhere, within
 * a budget of about 5% extra requests. */
#ifndef S3SHIM_BALANCE_H
#define S3SHIM_BALANCE_H

#include "s3.h"

#include <stdatomic.h>
#include <stdint.h>

/* How an attempt ended, as far as the endpoint's health is concerned. */
enum bal_outcome {
    BAL_OK,      /* an answer, including 4xx: the endpoint works */
    BAL_FAIL,    /* reset, refused, 5xx, SlowDown, a broken body */
    BAL_TIMEOUT, /* stalled, or given up on because a backup request answered first */
};

#define BAL_RING 64 /* recent first-byte times kept for the p95 */

struct bal_ep {
    _Atomic int inflight;
    _Atomic uint64_t lat_ns;   /* estimated time to first byte */
    _Atomic uint64_t xfer_ps;  /* estimated transfer time per byte, picoseconds */
    _Atomic uint64_t queue_ns; /* what each request ahead adds to the wait */
    _Atomic uint64_t queue_samples;
    _Atomic uint64_t sampled_ns; /* when lat_ns last took a sample */
    _Atomic uint64_t mark_ns;  /* last completion, or when it went from idle to busy */
    _Atomic uint64_t samples;
    _Atomic unsigned fails;    /* consecutive failures */
    _Atomic unsigned ejections; /* consecutive ejections: the backoff's exponent */
    _Atomic uint64_t eject_until_ns; /* 0 = in service */
    _Atomic int probing;       /* a probe is out after an ejection */
    _Atomic uint32_t ring_us[BAL_RING];
    _Atomic unsigned ring_pos;
    _Atomic uint64_t p95_ns;   /* of ring_us, 0 until enough samples */
} __attribute__((aligned(64)));

struct balancer {
    enum bal_policy policy;
    int n;
    struct bal_ep *ep;
    _Atomic unsigned rr;
    _Atomic uint64_t reads, hedges; /* the hedging budget */
    /* tunables (bal_init sets defaults; tests may change them) */
    uint64_t tau_ns;         /* how fast faster samples pull an estimate down */
    uint64_t idle_half_ns;   /* an idle endpoint's estimate halves this often */
    unsigned eject_after;    /* consecutive failures that eject */
    uint64_t eject_base_ns, eject_max_ns;
    unsigned hedge_pct;      /* extra requests allowed, percent of reads */
};

/* Set up for n endpoints (n >= 1). Returns 0 or -ENOMEM. */
int bal_init(struct balancer *b, int n, enum bal_policy policy);
void bal_free(struct balancer *b);

/* The endpoint for a request moving about `bytes` of body, other than `avoid` when
 * there is another (-1: any). The request counts as in flight until bal_done(); *ahead
 * (if not NULL) gets the number of requests already in flight there. */
int bal_pick(struct balancer *b, uint64_t bytes, int avoid, uint64_t now, unsigned *ahead);
/* The same, but -1 (nothing taken) unless the best score is below max_score: a backup
 * request is only worth sending where it is expected to answer sooner. */
int bal_pick_below(struct balancer *b, uint64_t bytes, int avoid, uint64_t now, uint64_t max_score,
                   unsigned *ahead);
/* Count a request on endpoint i in flight without choosing (an upload pinned there). */
int bal_take(struct balancer *b, int i, uint64_t now, unsigned *ahead);
/* A request taken with bal_pick/bal_take was not sent after all. */
void bal_release(struct balancer *b, int i);
/* An attempt on endpoint i ended. ahead is what bal_pick/bal_take said (requests that
 * were in flight there when it was sent); t_first is its first response byte (0 if
 * none); bytes is the body moved. Returns 1 when this report ejected the endpoint. */
int bal_done(struct balancer *b, int i, enum bal_outcome o, unsigned ahead, uint64_t t_submit, uint64_t t_first,
             uint64_t t_done, uint64_t bytes);

/* bal_done for an answer whose body waited `held` ns, after its first byte, for someone
 * to receive it (a read-ahead body held for its reader): that time is left out. */
int bal_done_held(struct balancer *b, int i, enum bal_outcome o, unsigned ahead, uint64_t t_submit,
                  uint64_t t_first, uint64_t t_done, uint64_t held, uint64_t bytes);

/* The endpoint's current score for a request of `bytes` (what bal_pick compares;
 * exposed for tests and the benchmark). */
uint64_t bal_score(struct balancer *b, int i, uint64_t bytes, uint64_t now);
/* How long a read of `bytes` sent to endpoint i may wait before a backup request is
 * worth sending: its recent p95 time to first byte plus the transfer (with fewer than
 * 16 answers, 4x its estimate). 0 = never measured (no hedging). */
uint64_t bal_hedge_delay(struct balancer *b, int i, uint64_t bytes);
/* The estimated time to first byte of the nearest endpoint that has answered (0: none
 * has yet): how far away the store is, for the read-ahead's first ceiling. */
uint64_t bal_nearest_ns(struct balancer *b);
/* The shortest time to first byte among the recent answers (BAL_RING per endpoint) of
 * the endpoints in service: what a request costs the store when nothing waits ahead of
 * it (0: no answer yet). */
uint64_t bal_quickest_ttfb_ns(struct balancer *b);
/* The expected time of a body of `bytes` from the endpoint in service that sends fastest
 * (0: none has sent one yet). */
uint64_t bal_fastest_body_ns(struct balancer *b, uint64_t bytes);
/* The hedging budget: reads counted, backups allowed (about hedge_pct of reads) and sent. */
void bal_count_read(struct balancer *b);
int bal_hedge_allowed(struct balancer *b);
void bal_hedge_count(struct balancer *b);
/* In a forked child: the parent's requests in flight are not the child's. */
void bal_atfork_child(struct balancer *b);
/* Is endpoint i ejected at `now`? */
int bal_ejected(struct balancer *b, int i, uint64_t now);

#endif
