/* balance.c - see balance.h */
#include "balance.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FULL_SCAN_MAX 8            /* up to this many endpoints, score them all */
#define MIN_SAMPLES_FOR_HEDGE 16
#define HEDGE_COLD_NS 500000000ull       /* a cold endpoint's first answer: 0.5 s to first byte... */
#define HEDGE_COLD_PS_PER_BYTE 100000ull /* ...then 10 MB/s */
#define MAX_LAT_NS 60000000000ull  /* one minute: no estimate grows past it */
#define XFER_MIN_BYTES 65536       /* smaller bodies say nothing about bandwidth */

static inline uint64_t ld(_Atomic uint64_t *p) { return atomic_load_explicit(p, memory_order_relaxed); }
static inline void st(_Atomic uint64_t *p, uint64_t v) { atomic_store_explicit(p, v, memory_order_relaxed); }

/* A per-thread xorshift: tie breaks and sampling need speed, not quality. */
/* xorshift64, seeded per thread from its address, the pid and the clock, mixed (the
 * address alone fixed the low bits of every first draw: a new process broke a tie
 * between two endpoints the same way every time, as the library's TLS layout decided). */
static inline uint64_t rnd(void)
{
    static __thread uint64_t x;
    if (!x) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t z = (uint64_t)(uintptr_t)&x ^ (uint64_t)getpid() << 40 ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull; /* splitmix64's finalizer */
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        x = (z ^ (z >> 31)) | 1;
    }
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
}

int bal_policy_parse(const char *s)
{
    if (!strcmp(s, "sewt")) return BAL_SEWT;
    if (!strcmp(s, "least")) return BAL_LEAST;
    if (!strcmp(s, "rr")) return BAL_RR;
    return -1;
}

const char *bal_policy_name(enum bal_policy p)
{
    return p == BAL_LEAST ? "least" : p == BAL_RR ? "rr" : "sewt";
}

int bal_init(struct balancer *b, int n, enum bal_policy policy)
{
    memset(b, 0, sizeof *b);
    b->ep = aligned_alloc(64, sizeof *b->ep * (size_t)(n > 0 ? n : 1));
    if (!b->ep) return -ENOMEM;
    memset(b->ep, 0, sizeof *b->ep * (size_t)(n > 0 ? n : 1));
    b->n = n > 0 ? n : 1;
    b->policy = policy;
    b->tau_ns = 1000000000ull;       /* 1 s */
    b->idle_half_ns = 2000000000ull; /* 2 s */
    b->eject_after = 3;
    b->eject_base_ns = 1000000000ull; /* 1 s, 2 s, 4 s ... */
    b->eject_max_ns = 30000000000ull;
    b->hedge_pct = 5;
    return 0;
}

void bal_free(struct balancer *b)
{
    free(b->ep);
    b->ep = NULL;
    b->n = 0;
}

void bal_atfork_child(struct balancer *b)
{
    for (int i = 0; i < b->n; i++) {
        atomic_store(&b->ep[i].inflight, 0);
        atomic_store(&b->ep[i].probing, 0);
    }
}

int bal_ejected(struct balancer *b, int i, uint64_t now)
{
    uint64_t u = ld(&b->ep[i].eject_until_ns);
    return u && now < u;
}

uint64_t bal_score(struct balancer *b, int i, uint64_t bytes, uint64_t now)
{
    struct bal_ep *e = &b->ep[i];
    int q = atomic_load_explicit(&e->inflight, memory_order_relaxed);
    if (q < 0) q = 0;
    uint64_t t = ld(&e->lat_ns) + bytes * ld(&e->xfer_ps) / 1000;
    if (q == 0) { /* idle: let an old estimate fade so the endpoint gets looked at again */
        uint64_t idle = now - ld(&e->sampled_ns);
        unsigned halvings = (unsigned)(idle / b->idle_half_ns);
        t = halvings >= 64 ? 0 : t >> halvings;
    } else { /* busy: its oldest request has waited at least this long */
        uint64_t waited = now - ld(&e->mark_ns);
        if (waited > t) t = waited;
    }
    if (t < 1000) t = 1000; /* a cold endpoint still weighs its queue */
    /* Each request ahead costs what the endpoint has shown it costs, or, until it has
     * shown it, a whole service time: (q + 1) x t. */
    uint64_t c = ld(&e->queue_samples) ? ld(&e->queue_ns) : t;
    return t + (uint64_t)q * c;
}

/* Take endpoint i: count it in flight, remember when it went from idle to busy. */
int bal_take(struct balancer *b, int i, uint64_t now, unsigned *ahead)
{
    struct bal_ep *e = &b->ep[i];
    int q = atomic_fetch_add_explicit(&e->inflight, 1, memory_order_relaxed);
    if (q == 0) st(&e->mark_ns, now);
    if (ahead) *ahead = q > 0 ? (unsigned)q : 0;
    return i;
}

void bal_release(struct balancer *b, int i)
{
    atomic_fetch_sub_explicit(&b->ep[i].inflight, 1, memory_order_relaxed);
}

/* Ejected endpoints are skipped; once the ejection is over the first caller to see it
 * sends the probe, and nobody else uses it until the probe has answered. Returns 1 if
 * endpoint i may be scored, 2 if the caller just became its prober, 0 to skip it. */
static int usable(struct balancer *b, int i, uint64_t now)
{
    struct bal_ep *e = &b->ep[i];
    uint64_t u = ld(&e->eject_until_ns);
    if (!u) return 1;
    if (now < u) return 0;
    int zero = 0;
    return atomic_compare_exchange_strong(&e->probing, &zero, 1) ? 2 : 0;
}

/* Everything is ejected or avoided: go where the ejection ends soonest. */
static int fallback(struct balancer *b, int avoid, uint64_t now, unsigned *ahead)
{
    int best = avoid >= 0 && b->n > 1 ? (avoid + 1) % b->n : 0;
    for (int i = 0; i < b->n; i++) {
        if (i == avoid && b->n > 1) continue;
        if (ld(&b->ep[i].eject_until_ns) < ld(&b->ep[best].eject_until_ns)) best = i;
    }
    return bal_take(b, best, now, ahead);
}

static int pick(struct balancer *b, uint64_t bytes, int avoid, uint64_t now, uint64_t max_score, unsigned *ahead)
{
    int n = b->n;
    if (n == 1) return bal_take(b, 0, now, ahead);
    if (b->policy == BAL_RR) {
        for (int tries = 0; tries < n; tries++) {
            int i = (int)(atomic_fetch_add_explicit(&b->rr, 1, memory_order_relaxed) % (unsigned)n);
            if (i == avoid) continue;
            int u = usable(b, i, now);
            if (u) return bal_take(b, i, now, ahead);
        }
        return fallback(b, avoid, now, ahead);
    }
    int cand[2], ncand = n;
    if (n > FULL_SCAN_MAX) { /* power of two choices */
        cand[0] = (int)(rnd() % (unsigned)n);
        cand[1] = (int)(rnd() % (unsigned)(n - 1));
        if (cand[1] >= cand[0]) cand[1]++;
        ncand = 2;
    }
    unsigned start = (unsigned)rnd();
    int best = -1;
    uint64_t best_score = UINT64_MAX;
    for (int k = 0; k < ncand; k++) {
        int i = n > FULL_SCAN_MAX ? cand[k] : (int)((start + (unsigned)k) % (unsigned)n);
        if (i == avoid) continue;
        int u = usable(b, i, now);
        if (u == 2) return bal_take(b, i, now, ahead); /* the probe goes now */
        if (!u) continue;
        uint64_t s = b->policy == BAL_LEAST
                         ? (uint64_t)atomic_load_explicit(&b->ep[i].inflight, memory_order_relaxed)
                         : bal_score(b, i, bytes, now);
        if (s < best_score) best_score = s, best = i;
    }
    if (best < 0 && n > FULL_SCAN_MAX) { /* both samples out: look at everyone */
        for (int i = 0; i < n; i++) {
            if (i == avoid) continue;
            int u = usable(b, i, now);
            if (u) return bal_take(b, i, now, ahead);
        }
    }
    if (best >= 0 && best_score < max_score) return bal_take(b, best, now, ahead);
    if (max_score != UINT64_MAX) return -1;
    return best >= 0 ? bal_take(b, best, now, ahead) : fallback(b, avoid, now, ahead);
}

int bal_pick(struct balancer *b, uint64_t bytes, int avoid, uint64_t now, unsigned *ahead)
{
    return pick(b, bytes, avoid, now, UINT64_MAX, ahead);
}

int bal_pick_below(struct balancer *b, uint64_t bytes, int avoid, uint64_t now, uint64_t max_score,
                   unsigned *ahead)
{
    if (b->n == 1 || b->policy == BAL_RR) return -1;
    return pick(b, bytes, avoid, now, max_score, ahead);
}

/* Peak-sensitive moving average: a higher sample is taken as it is; a lower one is
 * blended in with weight dt / (tau + dt), dt being the time since the last sample. */
static void peak_ewma(_Atomic uint64_t *est, uint64_t x, uint64_t dt, uint64_t tau, int first)
{
    uint64_t old = ld(est);
    if (first || x >= old) {
        st(est, x > MAX_LAT_NS ? MAX_LAT_NS : x);
        return;
    }
    double w = (double)dt / ((double)tau + (double)dt);
    st(est, (uint64_t)((double)old * (1.0 - w) + (double)x * w));
}

static void ewma(_Atomic uint64_t *est, uint64_t x, uint64_t dt, uint64_t tau, int first)
{
    if (first) {
        st(est, x);
        return;
    }
    double w = (double)dt / ((double)tau + (double)dt);
    st(est, (uint64_t)((double)ld(est) * (1.0 - w) + (double)x * w));
}

static void ring_add(struct bal_ep *e, uint64_t ttfb_ns)
{
    uint64_t us = ttfb_ns / 1000;
    unsigned pos = atomic_fetch_add_explicit(&e->ring_pos, 1, memory_order_relaxed);
    atomic_store_explicit(&e->ring_us[pos % BAL_RING], us > UINT32_MAX ? UINT32_MAX : (uint32_t)us,
                          memory_order_relaxed);
    if ((pos + 1) % 8 || pos + 1 < MIN_SAMPLES_FOR_HEDGE) return;
    /* Every 8 samples: the p95 of what the ring holds (a small insertion sort). */
    unsigned n = pos + 1 < BAL_RING ? pos + 1 : BAL_RING;
    uint32_t v[BAL_RING];
    for (unsigned i = 0; i < n; i++) {
        uint32_t x = atomic_load_explicit(&e->ring_us[i], memory_order_relaxed);
        unsigned j = i;
        while (j && v[j - 1] > x) v[j] = v[j - 1], j--;
        v[j] = x;
    }
    st(&e->p95_ns, (uint64_t)v[(n * 95 + 99) / 100 - 1] * 1000);
}

static int eject(struct balancer *b, struct bal_ep *e, uint64_t now)
{
    unsigned k = atomic_fetch_add_explicit(&e->ejections, 1, memory_order_relaxed);
    uint64_t d = b->eject_base_ns << (k < 16 ? k : 16);
    if (d > b->eject_max_ns) d = b->eject_max_ns;
    st(&e->eject_until_ns, now + d);
    atomic_store_explicit(&e->fails, 0, memory_order_relaxed);
    atomic_store(&e->probing, 0);
    return 1;
}

int bal_done(struct balancer *b, int i, enum bal_outcome o, unsigned ahead, uint64_t t_submit, uint64_t t_first,
             uint64_t t_done, uint64_t bytes)
{
    return bal_done_held(b, i, o, ahead, t_submit, t_first, t_done, 0, bytes);
}

int bal_done_held(struct balancer *b, int i, enum bal_outcome o, unsigned ahead, uint64_t t_submit,
                  uint64_t t_first, uint64_t t_done, uint64_t held, uint64_t bytes)
{
    struct bal_ep *e = &b->ep[i];
    uint64_t now = t_done;
    atomic_fetch_sub_explicit(&e->inflight, 1, memory_order_relaxed);
    if (o != BAL_TIMEOUT) st(&e->mark_ns, now); /* a real answer: the endpoint moves */
    int first = ld(&e->samples) == 0;
    uint64_t dt = now - ld(&e->sampled_ns);
    uint64_t took = t_done - t_submit;
    took = took > held ? took - held : 0;
    if (o == BAL_OK) {
        uint64_t ttfb = t_first && t_first >= t_submit ? t_first - t_submit : took;
        uint64_t body_ns = t_first ? t_done - t_first : 0;
        body_ns = body_ns > held ? body_ns - held : 0;
        if (bytes >= XFER_MIN_BYTES && body_ns) /* bandwidth: a plain average */
            ewma(&e->xfer_ps, body_ns * 1000 / bytes, dt, b->tau_ns, !ld(&e->xfer_ps));
        /* Alone, the answer is the endpoint's service time; with requests ahead, what it
         * took beyond that is what each of them cost. */
        if (ahead == 0 || first || ttfb < ld(&e->lat_ns)) peak_ewma(&e->lat_ns, ttfb, dt, b->tau_ns, first);
        if (ahead > 0) {
            uint64_t base = ld(&e->lat_ns) + bytes * ld(&e->xfer_ps) / 1000;
            uint64_t c = took > base ? (took - base) / ahead : 0;
            peak_ewma(&e->queue_ns, c, dt, b->tau_ns, !ld(&e->queue_samples));
            atomic_fetch_add_explicit(&e->queue_samples, 1, memory_order_relaxed);
        }
        st(&e->sampled_ns, now);
        atomic_fetch_add_explicit(&e->samples, 1, memory_order_relaxed);
        ring_add(e, ttfb);
        atomic_store_explicit(&e->fails, 0, memory_order_relaxed);
        if (ld(&e->eject_until_ns)) { /* the probe came back: in service again */
            st(&e->eject_until_ns, 0);
            atomic_store_explicit(&e->ejections, 0, memory_order_relaxed);
            atomic_store(&e->probing, 0);
        }
        return 0;
    }
    /* A failure or a timeout costs at least twice the estimate and the time it took. */
    uint64_t pen = 2 * ld(&e->lat_ns);
    if (pen < took) pen = took;
    peak_ewma(&e->lat_ns, pen, dt, b->tau_ns, 1);
    st(&e->sampled_ns, now);
    if (ld(&e->eject_until_ns)) /* the probe failed: out again, for longer */
        return eject(b, e, now);
    unsigned f = atomic_fetch_add_explicit(&e->fails, 1, memory_order_relaxed) + 1;
    if (f >= b->eject_after) {
        /* Never eject the last endpoint in service: there is nowhere else to go. */
        int others = 0;
        for (int j = 0; j < b->n; j++)
            if (j != i && !bal_ejected(b, j, now)) others++;
        if (others) return eject(b, e, now);
    }
    return 0;
}

uint64_t bal_hedge_delay(struct balancer *b, int i, uint64_t bytes)
{
    struct bal_ep *e = &b->ep[i];
    uint64_t p95 = ld(&e->p95_ns), n = ld(&e->samples);
    /* Nothing measured yet (every new process: a pipeline's commands each start cold): a
     * generous guess, so that a first request that stalls still gets its backup. */
    if (!n) return HEDGE_COLD_NS + bytes * HEDGE_COLD_PS_PER_BYTE / 1000;
    if (n < MIN_SAMPLES_FOR_HEDGE || !p95) p95 = 4 * ld(&e->lat_ns); /* too few for a p95 */
    uint64_t xfer = bytes * ld(&e->xfer_ps) / 1000;
    return p95 + xfer + xfer / 2 + 200000; /* a little slack: 0.2 ms and half the transfer */
}

void bal_count_read(struct balancer *b) { atomic_fetch_add_explicit(&b->reads, 1, memory_order_relaxed); }

int bal_hedge_allowed(struct balancer *b)
{
    /* hedge_pct of reads, plus a small allowance so a quiet start can hedge at all */
    return ld(&b->hedges) * 100 < ld(&b->reads) * b->hedge_pct + 200;
}

void bal_hedge_count(struct balancer *b) { atomic_fetch_add_explicit(&b->hedges, 1, memory_order_relaxed); }

uint64_t bal_quickest_ttfb_ns(struct balancer *b)
{
    uint64_t best = 0;
    for (int i = 0; i < b->n; i++) {
        struct bal_ep *e = &b->ep[i];
        unsigned pos = atomic_load_explicit(&e->ring_pos, memory_order_relaxed);
        if (!pos || ld(&e->eject_until_ns)) continue;
        unsigned n = pos < BAL_RING ? pos : BAL_RING;
        for (unsigned k = 0; k < n; k++) {
            uint64_t t = (uint64_t)atomic_load_explicit(&e->ring_us[k], memory_order_relaxed) * 1000 + 1;
            if (!best || t < best) best = t;
        }
    }
    return best;
}

uint64_t bal_fastest_body_ns(struct balancer *b, uint64_t bytes)
{
    uint64_t best = 0;
    for (int i = 0; i < b->n; i++) {
        struct bal_ep *e = &b->ep[i];
        uint64_t ps = ld(&e->xfer_ps);
        if (!ps || ld(&e->eject_until_ns)) continue;
        uint64_t t = bytes * ps / 1000;
        if (!best || t < best) best = t ? t : 1;
    }
    return best;
}

uint64_t bal_nearest_ns(struct balancer *b)
{
    uint64_t best = 0;
    for (int i = 0; i < b->n; i++) {
        struct bal_ep *e = &b->ep[i];
        if (!ld(&e->samples) || ld(&e->eject_until_ns)) continue;
        uint64_t l = ld(&e->lat_ns);
        if (l && (!best || l < best)) best = l;
    }
    return best;
}
