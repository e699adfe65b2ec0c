/* http.c - see http.h */
#include "http.h"

#include "../efd.h"
#include "../log.h"
#include "../stats.h"

#include "curl_api.h"
#include "http_lite.h"
#include "http_rx.h"
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EASY_POOL 64

struct worker {
    pthread_t thr;
    CURLM *multi;
    pthread_mutex_t qlock;
    struct http_req *qhead, *qtail; /* submitted, not yet added (linked by engine_private) */
    struct http_req *chead;         /* to cancel (linked by cancel_next) */
    CURL *idle[EASY_POOL];          /* easy handles to reuse */
    int nidle;
    struct http_rx *rx;             /* plain-HTTP GETs received without libcurl (NULL: none) */
    struct curl_waitfd *wfds;       /* their descriptors, for curl_multi_poll */
    unsigned wcap;
};

static struct engine {
    pthread_mutex_t lock; /* start-up */
    int started, failed;
    struct http_settings set;
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    struct worker *w;
    int nw;
    _Atomic unsigned rr;
    /* the process-wide budget of requests in flight: taken at submit, given back when
     * the engine completes the transfer (not when its owner collects it) */
    pthread_mutex_t flight_lock;
    pthread_cond_t flight_cv;
    int inflight;
    char ca_bundle[1024]; /* our copy: the caller's string may not outlive the call */
    /* fork: the threads park while it happens (http_atfork_prepare) */
    pthread_mutex_t fork_mu;
    pthread_cond_t fork_cv;
    _Atomic int fork_pending;
    int parked;
} eng = {.lock = PTHREAD_MUTEX_INITIALIZER,
         .set = {.threads = 2, .connect_timeout_ms = 5000, .stall_timeout_s = 30, .max_inflight = 128},
         .flight_lock = PTHREAD_MUTEX_INITIALIZER,
         .flight_cv = PTHREAD_COND_INITIALIZER,
         .fork_mu = PTHREAD_MUTEX_INITIALIZER,
         .fork_cv = PTHREAD_COND_INITIALIZER};

static void flight_take(void)
{
    pthread_mutex_lock(&eng.flight_lock);
    while (eng.set.max_inflight > 0 && eng.inflight >= eng.set.max_inflight)
        pthread_cond_wait(&eng.flight_cv, &eng.flight_lock);
    eng.inflight++;
    pthread_mutex_unlock(&eng.flight_lock);
}

int http_flights_scarce(void)
{
    pthread_mutex_lock(&eng.flight_lock);
    int scarce = eng.set.max_inflight > 0 && eng.inflight >= eng.set.max_inflight / 2;
    pthread_mutex_unlock(&eng.flight_lock);
    return scarce;
}

static void flight_give(void)
{
    pthread_mutex_lock(&eng.flight_lock);
    eng.inflight--;
    pthread_cond_signal(&eng.flight_cv);
    pthread_mutex_unlock(&eng.flight_lock);
}

void http_configure(const struct http_settings *s)
{
    pthread_mutex_lock(&eng.lock);
    if (!eng.started) {
        eng.set = *s;
        snprintf(eng.ca_bundle, sizeof eng.ca_bundle, "%s", s->ca_bundle ? s->ca_bundle : "");
        eng.set.ca_bundle = eng.ca_bundle[0] ? eng.ca_bundle : NULL;
    }
    pthread_mutex_unlock(&eng.lock);
}

static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

void http_req_init(struct http_req *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->dst_mu, NULL);
    cond_init_monotonic(&r->cv);
    r->content_length = -1;
    r->range_total = -1;
}

void http_req_cleanup(struct http_req *r)
{
    free(r->resp);
    r->resp = NULL;
    free(r->errbody);
    r->errbody = NULL;
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->dst_mu);
    pthread_cond_destroy(&r->cv);
}

size_t http_redirect(struct http_req *r, void *ndst)
{
    pthread_mutex_lock(&r->dst_mu);
    size_t got = r->got;
    r->dst = ndst;
    pthread_mutex_unlock(&r->dst_mu);
    http_release_hold(r);
    return got;
}

void http_release_hold(struct http_req *r)
{
    /* its engine thread left the socket out of its poll: wake it */
    if (atomic_exchange(&r->hold_until, 0) && r->engine_worker)
        curlapi.multi_wakeup(((struct worker *)r->engine_worker)->multi);
}

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
    (void)h, (void)a, (void)u;
    pthread_mutex_lock(&eng.share_locks[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
    (void)h, (void)u;
    pthread_mutex_unlock(&eng.share_locks[d]);
}

/* Sockets are the engine's own: parked high and kept from the program's closefrom(). */
static curl_socket_t open_socket(void *u, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)u, (void)purpose;
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : efd_park(fd);
}

static int close_socket(void *u, curl_socket_t fd)
{
    (void)u;
    efd_close(fd);
    return 0;
}

size_t http_on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct http_req *r = arg;
    size_t len = sz * n;
    if (!r->t_first_byte) r->t_first_byte = stats_now_ns();
    pthread_mutex_lock(&r->dst_mu); /* dst and got against http_redirect() */
    int has_dst = r->dst != NULL;
    if (has_dst && r->hdr_status < 300) {
        size_t took = 0;
        if (r->got + len > r->dst_cap) {
            r->overflow = 1; /* abort: more than asked for (a server ignoring Range) */
        } else {
            memcpy((char *)r->dst + r->got, p, len);
            r->got += len;
            took = len;
            if (r->rx_tally) atomic_fetch_add_explicit(r->rx_tally, len, memory_order_relaxed);
        }
        pthread_mutex_unlock(&r->dst_mu);
        return took;
    }
    pthread_mutex_unlock(&r->dst_mu);
    if (has_dst) { /* an error document: keep it apart, bounded */
        if (r->errbody_len + len > 65536) return len;
        char *nb = realloc(r->errbody, r->errbody_len + len + 1);
        if (!nb) return 0;
        r->errbody = nb;
        memcpy(nb + r->errbody_len, p, len);
        r->errbody_len += len;
        nb[r->errbody_len] = '\0';
        return len;
    }
    if (r->grow) {
        if (r->got + len + 1 > r->resp_len) {
            size_t cap = r->resp_len ? r->resp_len : 4096;
            while (cap < r->got + len + 1) cap *= 2;
            char *nr = realloc(r->resp, cap);
            if (!nr) return 0;
            r->resp = nr;
            r->resp_len = cap;
        }
        memcpy(r->resp + r->got, p, len);
        r->resp[r->got + len] = '\0';
    }
    r->got += len;
    return len;
}

/* Copy a header's value (after "Name:"), trimmed, into out. */
static void header_value(const char *line, size_t len, size_t namelen, char *out, size_t outsz)
{
    const char *v = line + namelen, *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) e--;
    size_t n = (size_t)(e - v) < outsz - 1 ? (size_t)(e - v) : outsz - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

size_t http_on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct http_req *r = arg;
    size_t len = sz * n;
    char val[256];
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (after 100, a redirect) */
        if (!r->t_first_byte) r->t_first_byte = stats_now_ns();
        r->etag[0] = r->last_modified[0] = '\0';
        r->content_length = r->range_total = -1;
        const char *sp = memchr(p, ' ', len);
        r->hdr_status = sp ? strtol(sp + 1, NULL, 10) : 0;
    } else if (len > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        header_value(p, len, 5, r->etag, sizeof r->etag);
    } else if (len > 14 && strncasecmp(p, "Last-Modified:", 14) == 0) {
        header_value(p, len, 14, r->last_modified, sizeof r->last_modified);
    } else if (len > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
        header_value(p, len, 15, val, sizeof val);
        r->content_length = strtoll(val, NULL, 10);
    } else if (len > 14 && strncasecmp(p, "Content-Range:", 14) == 0) {
        header_value(p, len, 14, val, sizeof val);
        const char *slash = strrchr(val, '/');
        if (slash && slash[1] != '*') r->range_total = strtoll(slash + 1, NULL, 10);
    }
    return len;
}

struct upload {
    const char *p;
    size_t left;
};

static size_t on_read(char *buf, size_t sz, size_t n, void *arg)
{
    struct http_req *r = arg;
    struct upload *u = r->engine_private;
    size_t len = sz * n < u->left ? sz * n : u->left;
    memcpy(buf, u->p, len);
    u->p += len;
    u->left -= len;
    return len;
}

static int setup(CURL *h, struct http_req *r)
{
    curlapi.easy_setopt(h, CURLOPT_URL, r->url);
    curlapi.easy_setopt(h, CURLOPT_PRIVATE, r);
    curlapi.easy_setopt(h, CURLOPT_SHARE, eng.share);
    curlapi.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curlapi.easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curlapi.easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curlapi.easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
    curlapi.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, eng.set.connect_timeout_ms);
    curlapi.easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curlapi.easy_setopt(h, CURLOPT_LOW_SPEED_TIME, eng.set.stall_timeout_s);
    curlapi.easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curlapi.easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    if (eng.set.ca_bundle && *eng.set.ca_bundle) curlapi.easy_setopt(h, CURLOPT_CAINFO, eng.set.ca_bundle);
    if (eng.set.insecure) {
        curlapi.easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curlapi.easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curlapi.easy_setopt(h, CURLOPT_HTTPHEADER, r->headers);
    curlapi.easy_setopt(h, CURLOPT_WRITEFUNCTION, http_on_body);
    curlapi.easy_setopt(h, CURLOPT_WRITEDATA, r);
    curlapi.easy_setopt(h, CURLOPT_HEADERFUNCTION, http_on_header);
    curlapi.easy_setopt(h, CURLOPT_HEADERDATA, r);
    curlapi.easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_err);
    const char *m = r->method ? r->method : "GET";
    if (strcmp(m, "HEAD") == 0) {
        curlapi.easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "PUT") == 0) {
        struct upload *u = malloc(sizeof *u);
        if (!u) return -ENOMEM;
        *u = (struct upload){r->body, r->body_len};
        r->engine_private = u;
        curlapi.easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curlapi.easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curlapi.easy_setopt(h, CURLOPT_READDATA, r);
        curlapi.easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(m, "POST") == 0) {
        curlapi.easy_setopt(h, CURLOPT_POST, 1L);
        curlapi.easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curlapi.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(m, "GET") != 0) {
        curlapi.easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
    }
    return 0;
}

static void complete(struct http_req *r)
{
    flight_give();
    r->t_done = stats_now_ns();
    free(r->engine_private);
    r->engine_private = NULL;
    struct worker *w = r->engine_worker;
    if (w) { /* no cancel may name it from now on */
        pthread_mutex_lock(&w->qlock);
        r->finished = 1;
        if (r->cancel_queued)
            for (struct http_req **pp = &w->chead; *pp; pp = (struct http_req **)&(*pp)->cancel_next)
                if (*pp == r) {
                    *pp = r->cancel_next;
                    break;
                }
        pthread_mutex_unlock(&w->qlock);
    }
    if (r->observe) r->observe(r, r->observe_arg);
    if (r->on_done) { /* the owner takes it from here; r may be gone after this */
        r->on_done(r, r->on_done_arg);
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    pthread_cond_broadcast(&r->cv);
    if (r->group) { /* under r->mu: its waiter cannot finish (http_wait) before we are out */
        pthread_mutex_lock(&r->group->mu);
        pthread_cond_broadcast(&r->group->cv);
        pthread_mutex_unlock(&r->group->mu);
    }
    pthread_mutex_unlock(&r->mu);
}

static CURL *easy_get(struct worker *w)
{
    if (w->nidle) return w->idle[--w->nidle];
    return curlapi.easy_init();
}

static void easy_put(struct worker *w, CURL *h)
{
    if (w->nidle < EASY_POOL) {
        curlapi.easy_reset(h); /* options only: connections live in the shared cache */
        w->idle[w->nidle++] = h;
    } else {
        curlapi.easy_cleanup(h);
    }
}

static void start_queued(struct worker *w)
{
    pthread_mutex_lock(&w->qlock);
    struct http_req *q = w->qhead;
    w->qhead = w->qtail = NULL;
    pthread_mutex_unlock(&w->qlock);
    while (q) {
        struct http_req *next = q->engine_private;
        q->engine_private = NULL;
        if (q->engine_rx && w->rx && http_rx_start(w->rx, q) == 0) {
            q = next;
            continue;
        }
        q->engine_rx = 0; /* libcurl, then: it receives at once */
        atomic_store(&q->hold_until, 0);
        CURL *h = easy_get(w);
        int e = h ? setup(h, q) : -ENOMEM;
        if (e == 0 && curlapi.multi_add_handle(w->multi, h) == CURLM_OK) {
            q->engine_handle = h;
            q = next;
            continue;
        }
        if (h) easy_put(w, h);
        q->curl_code = CURLE_OUT_OF_MEMORY;
        snprintf(q->curl_err, sizeof q->curl_err, "cannot start the transfer");
        complete(q);
        q = next;
    }
}

/* Every request on the cancel list was queued before it was cancelled, so once the
 * queue is started each of them has a handle to remove. */
static void cancel_queued(struct worker *w)
{
    pthread_mutex_lock(&w->qlock);
    struct http_req *c = w->chead;
    w->chead = NULL;
    pthread_mutex_unlock(&w->qlock);
    if (!c) return;
    start_queued(w);
    while (c) {
        struct http_req *next = c->cancel_next;
        c->cancel_queued = 0;
        CURL *h = c->engine_handle;
        if (c->engine_rx ? http_rx_abort(w->rx, c) == 0 : h != NULL) {
            if (!c->engine_rx) {
                curlapi.multi_remove_handle(w->multi, h);
                easy_put(w, h);
            }
            c->engine_handle = NULL;
            c->curl_code = CURLE_ABORTED_BY_CALLBACK;
            snprintf(c->curl_err, sizeof c->curl_err, "cancelled: another request answered first");
            c->cancelled = 1;
            complete(c);
        }
        c = next;
    }
}

/* A fork is under way (http_atfork_prepare): wait here, outside libcurl and the
 * allocator, until it is done. */
static void park_for_fork(void)
{
    pthread_mutex_lock(&eng.fork_mu);
    eng.parked++;
    pthread_cond_broadcast(&eng.fork_cv);
    while (atomic_load_explicit(&eng.fork_pending, memory_order_acquire)) pthread_cond_wait(&eng.fork_cv, &eng.fork_mu);
    eng.parked--;
    pthread_mutex_unlock(&eng.fork_mu);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    efd_engine_thread();
    for (;;) {
        if (atomic_load_explicit(&eng.fork_pending, memory_order_acquire)) park_for_fork();
        start_queued(w);
        cancel_queued(w);
        int running = 0;
        curlapi.multi_perform(w->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curlapi.multi_info_read(w->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *h = msg->easy_handle;
            struct http_req *r = NULL;
            curlapi.easy_getinfo(h, CURLINFO_PRIVATE, (char **)&r);
            r->curl_code = msg->data.result;
            curlapi.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
            curlapi.multi_remove_handle(w->multi, h);
            easy_put(w, h);
            r->engine_handle = NULL;
            complete(r);
        }
        int timeout_ms = 1000, nfd = 0;
        if (w->rx) {
            http_rx_perform(w->rx, &eng.set, complete);
            nfd = http_rx_waitfds(w->rx, &eng.set, &w->wfds, &w->wcap, &timeout_ms);
            if (nfd < 0) { /* no memory for the list: look again soon */
                nfd = 0;
                timeout_ms = 1;
            }
        }
        curlapi.multi_poll(w->multi, w->wfds, (unsigned)nfd, timeout_ms, NULL);
    }
    return NULL;
}

static int start_engine(void)
{
    if (eng.started) return eng.failed ? -EIO : 0;
    eng.started = 1;
    eng.failed = 1;
    http_lite_retire();
    if (curl_api_load() < 0) return -ENOSYS;
    if (curlapi.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -EIO;
    efd_prepare(); /* before our threads exist: growing the fd table later is slow */
    eng.share = curlapi.share_init();
    if (!eng.share) return -ENOMEM;
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&eng.share_locks[i], NULL);
    curlapi.share_setopt(eng.share, CURLSHOPT_LOCKFUNC, share_lock);
    curlapi.share_setopt(eng.share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curlapi.share_setopt(eng.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curlapi.share_setopt(eng.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curlapi.share_setopt(eng.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    eng.nw = eng.set.threads > 0 ? eng.set.threads : 1;
    eng.w = calloc((size_t)eng.nw, sizeof *eng.w);
    if (!eng.w) return -ENOMEM;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the program's signals are not ours */
    int ok = 0;
    for (int i = 0; i < eng.nw; i++) {
        struct worker *w = &eng.w[i];
        pthread_mutex_init(&w->qlock, NULL);
        efd_parking++; /* its wake-up socketpair */
        w->multi = curlapi.multi_init();
        efd_parking--;
        w->rx = eng.set.curl_only ? NULL : http_rx_new(); /* none: libcurl takes every request */
        if (w->multi && pthread_create(&w->thr, NULL, worker_main, w) == 0) ok++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ok < eng.nw) {
        slog_error("HTTP engine: only %d of %d threads started", ok, eng.nw);
        if (!ok) return -EAGAIN;
        eng.nw = ok;
    }
    eng.failed = 0;
    return 0;
}

int http_submit(struct http_req *r)
{
    r->t_submit = stats_now_ns();
    r->done = 0;
    r->got = 0;
    r->t_first_byte = 0;
    r->held_ns = 0;
    r->overflow = 0;
    r->group = NULL;
    r->hdr_status = r->status = 0;
    r->curl_code = 0;
    r->curl_err[0] = '\0';
    free(r->errbody);
    r->errbody = NULL;
    r->errbody_len = 0;
    if (r->grow && r->resp) r->resp[0] = '\0';
    pthread_mutex_lock(&eng.lock);
    int lite = !eng.started && !eng.set.curl_only && http_lite_claim(r);
    int e = lite ? 0 : start_engine();
    pthread_mutex_unlock(&eng.lock);
    if (lite) { /* on this thread, now: see http_lite.h */
        atomic_store(&r->hold_until, 0); /* received at once */
        int saved = errno; /* the program's: readdir() callers tell its end from an error by errno */
        r->engine_private = r->engine_worker = r->engine_handle = NULL;
        r->finished = r->cancel_queued = r->cancelled = 0;
        flight_take();
        http_lite_run(r, &eng.set);
        complete(r);
        errno = saved;
        return 0;
    }
    if (e < 0) {
        flight_take(); /* complete() gives it back */
        r->curl_code = CURLE_FAILED_INIT;
        snprintf(r->curl_err, sizeof r->curl_err, "HTTP engine cannot start: %s", strerror(-e));
        complete(r);
        return e;
    }
    struct worker *w = &eng.w[atomic_fetch_add(&eng.rr, 1) % (unsigned)eng.nw];
    r->engine_private = NULL;
    r->engine_worker = w;
    r->engine_handle = NULL;
    r->finished = r->cancel_queued = r->cancelled = 0;
    r->engine_rx = http_rx_wants(r, &eng.set); /* here: it reads the environment, which is the program's */
    if (!r->engine_rx) atomic_store(&r->hold_until, 0); /* libcurl receives at once */
    flight_take();
    pthread_mutex_lock(&w->qlock);
    if (w->qtail)
        w->qtail->engine_private = r;
    else
        w->qhead = r;
    w->qtail = r;
    pthread_mutex_unlock(&w->qlock);
    curlapi.multi_wakeup(w->multi);
    return 0;
}

void http_wait(struct http_req *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

int http_wait_until(struct http_req *r, uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000ull), (long)(deadline_ns % 1000000000ull)};
    pthread_mutex_lock(&r->mu);
    while (!r->done && pthread_cond_timedwait(&r->cv, &r->mu, &ts) != ETIMEDOUT) {
    }
    int done = r->done;
    pthread_mutex_unlock(&r->mu);
    return done;
}

void http_cancel(struct http_req *r)
{
    struct worker *w = r->engine_worker;
    if (!w) return;
    pthread_mutex_lock(&w->qlock);
    int queue = !r->finished && !r->cancel_queued;
    if (queue) {
        r->cancel_queued = 1;
        r->cancel_next = w->chead;
        w->chead = r;
    }
    pthread_mutex_unlock(&w->qlock);
    if (queue) curlapi.multi_wakeup(w->multi);
}

void http_group_init(struct http_group *g)
{
    pthread_mutex_init(&g->mu, NULL);
    cond_init_monotonic(&g->cv);
}

void http_group_destroy(struct http_group *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

void http_group_attach(struct http_req *r, struct http_group *g)
{
    pthread_mutex_lock(&r->mu);
    r->group = g;
    pthread_mutex_unlock(&r->mu);
}

int http_group_wait(struct http_group *g, struct http_req *const *rs, int n, uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000ull), (long)(deadline_ns % 1000000000ull)};
    int found = -1;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        for (int i = 0; i < n && found < 0; i++)
            if (rs[i]->done) found = i;
        if (found >= 0) break;
        if (!deadline_ns)
            pthread_cond_wait(&g->cv, &g->mu);
        else if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&g->mu);
    return found;
}

/* fork: every engine thread is woken and parks (park_for_fork) before the address space
 * is copied, and stays parked until the fork is done. A thread caught inside libcurl,
 * OpenSSL or the allocator would leave the child a lock nobody releases: ASan's allocator
 * (gcc 12) has no fork handler, and a forked shell hung in malloc now and then. Only the
 * forking thread runs these, once however many mounts share the engine. */
static int fork_held;

void http_atfork_prepare(void)
{
    if (fork_held || !eng.started || eng.failed) return;
    pthread_mutex_lock(&eng.fork_mu);
    atomic_store_explicit(&eng.fork_pending, 1, memory_order_release);
    for (int i = 0; i < eng.nw; i++) curlapi.multi_wakeup(eng.w[i].multi);
    while (eng.parked < eng.nw) pthread_cond_wait(&eng.fork_cv, &eng.fork_mu);
    fork_held = 1; /* fork_mu stays locked across the fork */
}

void http_atfork_parent(void)
{
    if (!fork_held) return;
    fork_held = 0;
    atomic_store_explicit(&eng.fork_pending, 0, memory_order_release);
    pthread_cond_broadcast(&eng.fork_cv);
    pthread_mutex_unlock(&eng.fork_mu);
}

void http_atfork_child(void)
{
    fork_held = 0;
    atomic_store_explicit(&eng.fork_pending, 0, memory_order_relaxed);
    eng.parked = 0;
    pthread_mutex_init(&eng.fork_mu, NULL);
    pthread_cond_init(&eng.fork_cv, NULL);
    /* The parent's threads are gone and its connections are not ours to close: leave
     * them, start afresh on first use. */
    pthread_mutex_init(&eng.lock, NULL);
    pthread_mutex_init(&eng.flight_lock, NULL);
    pthread_cond_init(&eng.flight_cv, NULL);
    eng.inflight = 0;
    eng.started = eng.failed = 0;
    eng.w = NULL;
    eng.nw = 0;
    eng.share = NULL;
    http_lite_atfork_child();
}

const char *http_strerror(const struct http_req *r)
{
    if (r->overflow) return "the server sent more than was asked for (Range ignored?)";
    if (r->curl_err[0]) return r->curl_err;
    if (!r->curl_code) return "no error"; /* no reason to load libcurl for that */
    return curl_api_load() == 0 ? curlapi.easy_strerror((CURLcode)r->curl_code) : "libcurl is not available";
}

int http_header_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = malloc(sizeof *n);
    char *d = strdup(line);
    if (!n || !d) {
        free(n);
        free(d);
        return -ENOMEM;
    }
    n->data = d;
    n->next = NULL;
    struct curl_slist **pp = list;
    while (*pp) pp = &(*pp)->next;
    *pp = n;
    return 0;
}

void http_headers_free(struct curl_slist **list)
{
    for (struct curl_slist *n = *list, *next; n; n = next) {
        next = n->next;
        free(n->data);
        free(n);
    }
    *list = NULL;
}
