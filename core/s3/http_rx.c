/* http_rx.c - see http_rx.h */
#include "http_rx.h"

#include "../efd.h"
#include "../log.h"
#include "../stats.h"
#include "../sys.h"
#include "http_lite.h"

#include <curl/curl.h> /* CURLE_* codes and struct curl_waitfd only */
#include <errno.h>
#include <stdatomic.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define HB_CAP 16384 /* the response head, chunk lines, error bodies; also the longest line */
#define POOL_MAX 32  /* idle connections one engine thread keeps */
#define ROUNDS 8     /* receive calls per transfer per pass: the thread's others get a turn */
#define AUTH_CAP 320

enum { ST_CONNECT, ST_SEND, ST_HEAD, ST_BODY, ST_CHUNK_SIZE, ST_CHUNK_END, ST_TRAILER, ST_DONE };

struct xfer {
    struct xfer *next;
    struct http_req *r;
    int fd, st;
    int reused;     /* the connection came from the pool (may be stale) */
    int retried;    /* a stale kept connection was replaced once already */
    int keep;       /* the connection may serve the next request */
    size_t room;    /* the receive buffer asked for on this connection (hold_room_for), 0 = the kernel's */
    size_t want_room; /* what a new connection for this request asks for (a stale kept one's redial too) */
    int chunked;    /* the body comes in chunks (ST_BODY returns to ST_CHUNK_END) */
    int head_line;  /* the next line is a status line */
    int64_t clen;   /* Content-Length of the response being read, -1 = none */
    int64_t left;   /* body bytes of this piece still to come, -1 = up to the end of stream */
    uint64_t t_progress, t_conn_deadline;
    uint64_t t_held; /* when its body began to wait for a buffer (hold_until), 0 = not waiting */
    struct addrinfo *ai, *ai_next; /* addresses still to try while connecting */
    char authority[AUTH_CAP];
    char *req;
    size_t req_len, sent;
    size_t beg, end; /* unread bytes in hb */
    char hb[HB_CAP];
};

struct idle {
    int fd;
    size_t room; /* as xfer.room */
    char authority[AUTH_CAP];
};

struct http_rx {
    struct xfer *xs;
    struct idle pool[POOL_MAX];
    int npool;
};

/* --- the outcome, as libcurl would tell it -------------------------------------------- */

static void fail(struct http_req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct http_req *r, int code, const char *fmt, ...)
{
    if (r->curl_code) return; /* the first failure is the one to tell */
    r->curl_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->curl_err, sizeof r->curl_err, fmt, ap);
    va_end(ap);
}

int http_rx_wants(const struct http_req *r, const struct http_settings *set)
{
    if (set->curl_only || !r->dst || r->grow || r->body || r->body_len) return 0;
    if (r->method && strcmp(r->method, "GET") != 0) return 0;
    return r->url && strncmp(r->url, "http://", 7) == 0 && !http_proxied();
}

struct http_rx *http_rx_new(void) { return calloc(1, sizeof(struct http_rx)); }

/* --- kept connections ------------------------------------------------------------------ */

static int pool_take(struct http_rx *x, const char *authority, size_t min_room, size_t *room)
{
    for (int i = x->npool - 1; i >= 0; i--) /* the most recently used first: least likely closed */
        if (x->pool[i].room >= min_room && strcmp(x->pool[i].authority, authority) == 0) {
            int fd = x->pool[i].fd;
            *room = x->pool[i].room;
            x->pool[i] = x->pool[--x->npool];
            return fd;
        }
    return -1;
}

static void pool_put(struct http_rx *x, int fd, size_t room, const char *authority)
{
    if (x->npool == POOL_MAX) { /* the oldest goes */
        efd_close(x->pool[0].fd);
        memmove(&x->pool[0], &x->pool[1], sizeof x->pool[0] * (POOL_MAX - 1));
        x->npool--;
    }
    x->pool[x->npool].fd = fd;
    x->pool[x->npool].room = room;
    snprintf(x->pool[x->npool].authority, AUTH_CAP, "%s", authority);
    x->npool++;
}

/* --- connecting ------------------------------------------------------------------------ */

/* Start connecting to the next address; ST_CONNECT or ST_SEND, or -1 with r failed. */
static int dial_next(struct xfer *t)
{
    int e = -ECONNREFUSED;
    while (t->ai_next) {
        struct addrinfo *a = t->ai_next;
        t->ai_next = a->ai_next;
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        t->room = 0; /* a new connection: the kernel's buffer, unless a held body wants room */
        int v = (int)t->want_room;
        if (fd >= 0 && v > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) == 0) {
            t->room = t->want_room;
            slog_debug("s3: a connection to %s with a receive buffer of %d bytes, for held bodies", t->authority, v);
        }
        if (fd < 0) {
            e = -errno;
            continue;
        }
        fd = efd_park(fd);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS || errno == EINTR) {
            t->fd = fd;
            t->st = ST_CONNECT;
            return 0;
        }
        e = -errno;
        efd_close(fd);
    }
    fail(t->r, CURLE_COULDNT_CONNECT, "Failed to connect to %.200s: %s", t->authority, strerror(-e));
    return -1;
}

static int dial(struct xfer *t, const struct http_settings *set)
{
    char host[300], port[16];
    if (http_host_port(t->authority, host, sizeof host, port, sizeof port) < 0) {
        fail(t->r, CURLE_URL_MALFORMAT, "bad host in URL: %.200s", t->authority);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    if (t->ai) freeaddrinfo(t->ai);
    t->ai = NULL;
    if (getaddrinfo(host, port, &hints, &t->ai) != 0 || !t->ai) {
        t->ai = NULL;
        fail(t->r, CURLE_COULDNT_RESOLVE_HOST, "Could not resolve host: %.200s", host);
        return -1;
    }
    t->ai_next = t->ai;
    t->reused = 0;
    t->t_conn_deadline = stats_now_ns() + (uint64_t)(set->connect_timeout_ms > 0 ? set->connect_timeout_ms : 300000) * 1000000ull;
    return dial_next(t);
}

/* A connect under way: connected (ST_SEND), still waiting, or the next address. */
static int connected(struct xfer *t)
{
    int e = 0;
    socklen_t sl = sizeof e;
    struct pollfd p = {t->fd, POLLOUT, 0};
    if (poll(&p, 1, 0) == 0) return 0; /* not yet */
    if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0) e = errno;
    if (e == 0) {
        slog_debug("s3: connected to %s (own receiver, body into the read buffer)", t->authority);
        freeaddrinfo(t->ai);
        t->ai = t->ai_next = NULL;
        t->st = ST_SEND;
        return 0;
    }
    efd_close(t->fd);
    t->fd = -1;
    errno = e;
    if (!t->ai_next) {
        fail(t->r, CURLE_COULDNT_CONNECT, "Failed to connect to %.200s: %s", t->authority, strerror(e));
        return -1;
    }
    return dial_next(t);
}

/* --- receiving ------------------------------------------------------------------------- */

/* Bytes into hb: > 0 read, 0 end of stream, -EAGAIN, -errno, -E2BIG (a line too long). */
static ssize_t hb_fill(struct xfer *t)
{
    if (t->beg == t->end) t->beg = t->end = 0;
    if (t->end == HB_CAP && t->beg) {
        memmove(t->hb, t->hb + t->beg, t->end - t->beg);
        t->end -= t->beg;
        t->beg = 0;
    }
    if (t->end == HB_CAP) return -E2BIG;
    for (;;) {
        ssize_t k = recv(t->fd, t->hb + t->end, HB_CAP - t->end, 0);
        if (k >= 0) {
            t->end += (size_t)k;
            if (k) t->t_progress = stats_now_ns();
            return k;
        }
        if (errno != EINTR) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* The next complete line in hb (with its LF), or NULL. */
static char *hb_line(struct xfer *t, size_t *len)
{
    char *s = t->hb + t->beg, *nl = memchr(s, '\n', t->end - t->beg);
    if (!nl) return NULL;
    *len = (size_t)(nl + 1 - s);
    t->beg += *len;
    return s;
}

static void fail_rx(struct xfer *t, ssize_t e)
{
    struct http_req *r = t->r;
    if (e == 0 && t->left > 0)
        fail(r, CURLE_PARTIAL_FILE, "transfer closed with %lld bytes remaining to read", (long long)t->left);
    else if (e == 0)
        fail(r, CURLE_PARTIAL_FILE, "transfer closed with outstanding read data remaining");
    else if (e == -E2BIG)
        fail(r, CURLE_WEIRD_SERVER_REPLY, "header line too long");
    else
        fail(r, CURLE_RECV_ERROR, "Recv failure: %s", strerror((int)-e));
}

/* One header line of the response being read. 1 at the end of a final response head,
 * 0 otherwise, -1 with r failed. */
static int head_line(struct xfer *t, char *line, size_t len)
{
    struct http_req *r = t->r;
    if (t->head_line) {
        if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0) {
            fail(r, CURLE_WEIRD_SERVER_REPLY, "Unsupported HTTP version in response");
            return -1;
        }
        t->head_line = 0;
        t->keep = line[7] != '0';
        t->clen = -1;
        t->chunked = 0;
        http_on_header(line, 1, len, r);
        return 0;
    }
    http_on_header(line, 1, len, r);
    if (len > 2) {
        if (len > 15 && strncasecmp(line, "Content-Length:", 15) == 0) t->clen = strtoll(line + 15, NULL, 10);
        if (len > 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strcasestr(line, "chunked")) t->chunked = 1;
        if (len > 11 && strncasecmp(line, "Connection:", 11) == 0) {
            if (strcasestr(line, "close")) t->keep = 0;
            if (strcasestr(line, "keep-alive")) t->keep = 1;
        }
        return 0;
    }
    r->status = r->hdr_status; /* the head is complete */
    if (r->status >= 100 && r->status < 200) { /* 100 Continue and the like: another head follows */
        t->head_line = 1;
        return 0;
    }
    if (r->status == 204 || r->status == 304) {
        t->st = ST_DONE;
    } else if (t->chunked) {
        t->st = ST_CHUNK_SIZE;
    } else {
        t->left = t->clen;
        if (t->clen < 0) t->keep = 0; /* the body ends with the connection */
        t->st = t->clen == 0 ? ST_DONE : ST_BODY;
    }
    return 1;
}

/* Hand body bytes that are in hb to the request (the error document, the overflow, the
 * few body bytes that came with the head). 0, or -1 with r failed. */
static int body_from_hb(struct xfer *t)
{
    size_t k = t->end - t->beg;
    if (t->left >= 0 && (uint64_t)t->left < k) k = (size_t)t->left;
    if (!k) return 0;
    size_t took = http_on_body(t->hb + t->beg, 1, k, t->r);
    t->beg += k;
    if (t->left > 0) t->left -= (int64_t)k;
    if (took != k) {
        fail(t->r, CURLE_WRITE_ERROR, "Failure writing output to destination, passed %zu returned %zu", k, took);
        return -1;
    }
    return 0;
}

/* The body: into r->dst at r->got, straight from the socket, as far as it fits; what does
 * not fit (or an error document) through hb and http_on_body. Returns 1 when this piece
 * of the body is complete, 0 on EAGAIN, -1 with r failed. */
static int body(struct xfer *t, int *budget)
{
    struct http_req *r = t->r;
    while (t->left != 0) {
        if (t->beg < t->end) {
            if (body_from_hb(t) < 0) return -1;
            continue;
        }
        if (*budget <= 0) return 0;
        (*budget)--;
        ssize_t k;
        pthread_mutex_lock(&r->dst_mu); /* dst and got against http_redirect() */
        if (r->dst && r->hdr_status < 300 && r->got < r->dst_cap) {
            size_t n = r->dst_cap - r->got;
            if (t->left > 0 && (uint64_t)t->left < n) n = (size_t)t->left;
            do
                k = recv(t->fd, (char *)r->dst + r->got, n, 0);
            while (k < 0 && errno == EINTR);
            if (k > 0) r->got += (size_t)k;
            if (k > 0 && r->rx_tally) atomic_fetch_add_explicit(r->rx_tally, (uint64_t)k, memory_order_relaxed);
            if (k < 0) k = errno == EWOULDBLOCK ? -EAGAIN : -errno;
            pthread_mutex_unlock(&r->dst_mu);
            if (k > 0) {
                if (!r->t_first_byte) r->t_first_byte = stats_now_ns();
                if (t->left > 0) t->left -= k;
                t->t_progress = stats_now_ns();
                continue;
            }
        } else {
            pthread_mutex_unlock(&r->dst_mu);
            k = hb_fill(t);
            if (k > 0) continue;
        }
        if (k == -EAGAIN) return 0;
        if (k == 0 && t->left < 0 && !t->chunked) { /* a body without a length ends here */
            t->keep = 0;
            return 1;
        }
        fail_rx(t, k);
        return -1;
    }
    return 1;
}

/* --- one transfer ---------------------------------------------------------------------- */

/* A kept connection the server had closed before this request: nothing of a response
 * came. Like libcurl, send once more on a fresh connection. 0 = retrying, -1 = not. */
static int stale_retry(struct xfer *t, const struct http_settings *set, ssize_t e)
{
    if (!t->reused || t->retried || t->end != 0 || t->r->hdr_status || !(e == 0 || e == -ECONNRESET || e == -EPIPE))
        return -1;
    efd_close(t->fd);
    t->fd = -1;
    t->retried = 1;
    t->sent = 0;
    t->beg = t->end = 0;
    return dial(t, set) < 0 ? -2 : 0;
}

/* Does t's body wait in the socket for a buffer (http_req.hold_until)? Once it goes on,
 * the time it waited is the request's held_ns and counts as progress. */
static int held(struct xfer *t)
{
    struct http_req *r = t->r;
    uint64_t h = atomic_load_explicit(&r->hold_until, memory_order_acquire);
    uint64_t now = h || t->t_held ? stats_now_ns() : 0;
    if (h && now < h && r->hdr_status < 300) { /* (an error document goes on at once) */
        if (!t->t_held) t->t_held = now;
        return 1;
    }
    if (h) { /* nobody came in time (or an error): into dst as it is */
        atomic_store(&r->hold_until, 0);
        if (t->t_held && r->hdr_status < 300)
            slog_debug("http: %s: nobody took the held body within its hold: received now", r->url);
    }
    if (t->t_held) {
        r->held_ns += now - t->t_held;
        t->t_progress = now;
        t->t_held = 0;
    }
    return 0;
}

/* A held body is received at memory speed only as far as the socket kept it: the kernel
 * stops the sender at the receive window, and what is left then comes at the server's
 * pace, one connection among many for its workers (on loopback nginx the rest of a
 * 4 MiB body took 0.6 to 6 ms after the reader came; with room for all of it, the read
 * ran 13% faster). So before a held request is sent its connection gets a receive
 * buffer for the whole body, where the system allows one that large
 * (net.core.rmem_max): fixed, the kernel's autotuning off for that connection, which
 * only ever talks to a nearby store (bodies are held only for those). Beyond rmem_max it
 * is left as it is: a smaller fixed buffer would hold less than autotuning's. */
static size_t rmem_max(void)
{
    static _Atomic long max = -1;
    long v = atomic_load_explicit(&max, memory_order_relaxed);
    if (v >= 0) return (size_t)v;
    char buf[32];
    v = sys_read_small("/proc/sys/net/core/rmem_max", buf, sizeof buf) > 0 ? strtol(buf, NULL, 10) : 0;
    if (v < 0) v = 0;
    atomic_store_explicit(&max, v, memory_order_relaxed);
    return (size_t)v;
}

#define HOLD_SLACK (64 << 10) /* the response head (the kernel doubles the size asked for its own accounting) */
static size_t hold_room_for(size_t body)
{
    size_t want = body + HOLD_SLACK, max = rmem_max();
    if (want > max) want = max;
    return want < body || want > INT32_MAX ? 0 : want;
}

/* Move t as far as it goes. 1 when it ended (r filled), 0 when it waits. */
static int step(struct xfer *t, const struct http_settings *set)
{
    struct http_req *r = t->r;
    int budget = ROUNDS;
    for (;;) {
        switch (t->st) {
        case ST_CONNECT: {
            if (connected(t) < 0) return 1;
            if (t->st == ST_CONNECT) return 0;
            t->t_progress = stats_now_ns();
            break;
        }
        case ST_SEND: {
            ssize_t k = send(t->fd, t->req + t->sent, t->req_len - t->sent, MSG_NOSIGNAL);
            if (k > 0) {
                t->sent += (size_t)k;
                t->t_progress = stats_now_ns();
                if (t->sent == t->req_len) {
                    t->st = ST_HEAD;
                    t->head_line = 1;
                }
                break;
            }
            if (k < 0 && errno == EINTR) break;
            if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
            int e = k < 0 ? -errno : -EPIPE;
            int s = stale_retry(t, set, e);
            if (s == 0) break;
            if (s == -1) fail(r, CURLE_SEND_ERROR, "Send failure: %s", strerror(-e));
            return 1;
        }
        case ST_HEAD:
        case ST_CHUNK_SIZE:
        case ST_CHUNK_END:
        case ST_TRAILER: {
            size_t len;
            char *line = hb_line(t, &len);
            if (!line) {
                if (budget-- <= 0) return 0;
                ssize_t k = hb_fill(t);
                if (k > 0) break;
                if (k == -EAGAIN) return 0;
                if (t->st == ST_HEAD) {
                    int s = stale_retry(t, set, k);
                    if (s == 0) break;
                    if (s == -2) return 1;
                    if (k == 0 && t->end == 0 && !r->hdr_status) {
                        fail(r, CURLE_GOT_NOTHING, "Empty reply from server");
                        return 1;
                    }
                }
                fail_rx(t, k);
                return 1;
            }
            if (t->st == ST_HEAD) {
                if (head_line(t, line, len) < 0) return 1;
            } else if (t->st == ST_CHUNK_SIZE) {
                char *e;
                unsigned long long n = strtoull(line, &e, 16);
                if (e == line) {
                    fail(r, CURLE_RECV_ERROR, "Illegal or missing hexadecimal sequence in chunked-encoding");
                    return 1;
                }
                t->left = (int64_t)n;
                t->st = n ? ST_BODY : ST_TRAILER;
            } else if (t->st == ST_CHUNK_END) {
                t->st = ST_CHUNK_SIZE;
            } else if (len <= 2) {
                t->st = ST_DONE;
            }
            break;
        }
        case ST_BODY: {
            if (held(t)) return 0;
            int b = body(t, &budget);
            if (b < 0) return 1;
            if (b == 0) return 0;
            t->st = t->chunked ? ST_CHUNK_END : ST_DONE;
            break;
        }
        default:
            if (t->beg != t->end) t->keep = 0; /* bytes past the response: not a clean end */
            return 1;
        }
    }
}

int http_rx_start(struct http_rx *x, struct http_req *r)
{
    struct xfer *t = calloc(1, sizeof *t);
    const char *path;
    if (!t) return -ENOMEM;
    t->r = r;
    t->fd = -1;
    t->st = ST_CONNECT;
    if (http_split_url(r->url, t->authority, sizeof t->authority, &path) == 0) {
        t->req = http_request_text(r, "GET", t->authority, path);
        if (!t->req) {
            free(t);
            return -ENOMEM;
        }
        t->req_len = strlen(t->req);
    } else {
        fail(r, CURLE_URL_MALFORMAT, "URL rejected: Malformed input to a URL function");
        t->st = ST_DONE;
    }
    t->t_progress = stats_now_ns();
    r->engine_handle = t;
    t->next = x->xs;
    x->xs = t;
    return 0;
}

static void forget(struct http_rx *x, struct xfer *t)
{
    for (struct xfer **pp = &x->xs; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    t->r->engine_handle = NULL;
    if (t->ai) freeaddrinfo(t->ai);
    free(t->req);
    free(t);
}

void http_rx_perform(struct http_rx *x, const struct http_settings *set, void (*done)(struct http_req *r))
{
    uint64_t now = stats_now_ns();
    uint64_t stall = set->stall_timeout_s > 0 ? (uint64_t)set->stall_timeout_s * 1000000000ull : 0;
    for (struct xfer *t = x->xs, *next; t; t = next) {
        next = t->next;
        struct http_req *r = t->r;
        int ended;
        if (t->st == ST_CONNECT && t->fd < 0 && !r->curl_code) { /* new: a kept connection, or dial */
            t->want_room = atomic_load_explicit(&r->hold_until, memory_order_relaxed) ? hold_room_for(r->dst_cap) : 0;
            t->fd = pool_take(x, t->authority, t->want_room, &t->room);
            t->reused = t->fd >= 0;
            if (t->reused)
                t->st = ST_SEND;
            else if (dial(t, set) < 0)
                t->st = ST_DONE;
        }
        ended = r->curl_code ? 1 : step(t, set);
        if (!ended && t->st == ST_CONNECT && now > t->t_conn_deadline) {
            fail(r, CURLE_OPERATION_TIMEDOUT, "Connection timed out after %ld milliseconds", set->connect_timeout_ms);
            ended = 1;
        } else if (!ended && stall && t->st != ST_CONNECT && !t->t_held && now > t->t_progress + stall) {
            fail(r, CURLE_OPERATION_TIMEDOUT,
                 "Operation too slow. Less than 1 bytes/sec transferred the last %ld seconds", set->stall_timeout_s);
            ended = 1;
        }
        if (!ended) continue;
        if (t->fd >= 0) {
            if (!r->curl_code && t->st == ST_DONE && t->keep)
                pool_put(x, t->fd, t->room, t->authority);
            else
                efd_close(t->fd);
            t->fd = -1;
        }
        forget(x, t);
        done(r);
    }
}

int http_rx_waitfds(struct http_rx *x, const struct http_settings *set, struct curl_waitfd **fds, unsigned *cap,
                    int *timeout_ms)
{
    uint64_t now = stats_now_ns(), due = UINT64_MAX;
    uint64_t stall = set->stall_timeout_s > 0 ? (uint64_t)set->stall_timeout_s * 1000000000ull : 0;
    unsigned n = 0;
    for (struct xfer *t = x->xs; t; t = t->next) {
        if (n == *cap) {
            unsigned nc = *cap ? *cap * 2 : 16;
            struct curl_waitfd *nf = realloc(*fds, nc * sizeof *nf);
            if (!nf) return -ENOMEM;
            *fds = nf;
            *cap = nc;
        }
        if (t->fd < 0) { /* not started yet: no waiting */
            due = now;
            continue;
        }
        uint64_t h = t->t_held ? atomic_load_explicit(&t->r->hold_until, memory_order_acquire) : 0;
        if (h) { /* its socket is left alone until then, or until http_redirect() wakes us */
            if (h < due) due = h;
            continue;
        }
        (*fds)[n].fd = t->fd;
        (*fds)[n].events = t->st == ST_CONNECT || t->st == ST_SEND ? CURL_WAIT_POLLOUT : CURL_WAIT_POLLIN;
        (*fds)[n].revents = 0;
        n++;
        uint64_t d = t->st == ST_CONNECT ? t->t_conn_deadline : stall ? t->t_progress + stall : UINT64_MAX;
        if (d < due) due = d;
    }
    if (due != UINT64_MAX) {
        uint64_t ms = due > now ? (due - now) / 1000000 + 1 : 0;
        if (ms < (uint64_t)*timeout_ms) *timeout_ms = (int)ms;
    }
    return (int)n;
}

int http_rx_abort(struct http_rx *x, struct http_req *r)
{
    for (struct xfer *t = x->xs; t; t = t->next)
        if (t->r == r) {
            if (t->fd >= 0) efd_close(t->fd); /* mid-response: the connection cannot serve another */
            forget(x, t);
            return 0;
        }
    return -1;
}
