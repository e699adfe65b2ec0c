/* http_lite.c - see http_lite.h */
#include "http_lite.h"

#include "../efd.h"

#include <curl/curl.h> /* CURLE_* codes only: the outcome reads as the engine's would */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define RX_CAP 65536 /* receive buffer; also the longest header line */
#define STALE 1      /* a kept connection the server had closed: nothing was received */

static struct {
    pthread_mutex_t mu;    /* held by the one request under way */
    int fd;                /* the kept-alive connection, -1 = none */
    char authority[320];   /* host[:port] it talks to */
    char *buf;             /* RX_CAP bytes, made on first use */
    size_t beg, end;       /* unread bytes of the current response in buf */
    _Atomic int retired;   /* the engine runs: keep no connection */
} lite = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static void drop(void)
{
    efd_close(lite.fd);
    lite.fd = -1;
    lite.beg = lite.end = 0;
}

int http_proxied(void)
{
    static const char *const vars[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return 1;
    }
    return 0;
}

int http_lite_claim(const struct http_req *r)
{
    const char *m = r->method ? r->method : "GET";
    int head = strcmp(m, "HEAD") == 0;
    if (r->on_done || r->no_lite || r->body_len || (!head && strcmp(m, "GET") != 0)) return 0;
    if (!r->url || strncmp(r->url, "http://", 7) != 0 || http_proxied()) return 0;
    if (!head && !r->grow && r->dst_cap > HTTP_LITE_MAX) return 0;
    if (atomic_load(&lite.retired)) return 0;
    return pthread_mutex_trylock(&lite.mu) == 0;
}

void http_lite_retire(void)
{
    atomic_store(&lite.retired, 1);
    if (pthread_mutex_trylock(&lite.mu) != 0) return; /* the request under way drops it */
    drop();
    pthread_mutex_unlock(&lite.mu);
}

void http_lite_atfork_child(void)
{
    pthread_mutex_init(&lite.mu, NULL);
    if (lite.fd >= 0) efd_close(lite.fd); /* our copy only: the parent keeps its own */
    lite.fd = -1;
    lite.beg = lite.end = 0;
    atomic_store(&lite.retired, 0);
}

static void fail(struct http_req *r, int code, const char *fmt, const char *arg)
{
    if (r->curl_code) return; /* the first failure is the one to tell */
    r->curl_code = code;
    snprintf(r->curl_err, sizeof r->curl_err, fmt, arg);
}

/* 1 ready, 0 timed out, -errno */
static int wait_fd(int fd, short ev, int timeout_ms)
{
    struct pollfd p = {fd, ev, 0};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
    }
}

/* --- connecting ------------------------------------------------------------------------ */

static int dial_one(const struct addrinfo *a, int timeout_ms)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) return -errno;
    fd = efd_park(fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int e = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
        e = -errno;
        if (e == -EINPROGRESS || e == -EINTR) {
            int w = wait_fd(fd, POLLOUT, timeout_ms);
            socklen_t sl = sizeof e;
            if (w == 0)
                e = -ETIMEDOUT;
            else if (w < 0)
                e = w;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
                e = -errno;
            else
                e = -e;
        }
    }
    if (e) {
        efd_close(fd);
        return e;
    }
    return fd;
}

int http_host_port(const char *authority, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    if (authority[0] == '[') {
        const char *close = strchr(authority, ']');
        if (!close) return -1;
        snprintf(host, hcap, "%.*s", (int)(close - authority - 1), authority + 1);
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = strrchr(authority, ':');
        snprintf(host, hcap, "%.*s", colon ? (int)(colon - authority) : (int)strlen(authority), authority);
    }
    snprintf(port, pcap, "80");
    if (colon) {
        if (!colon[1] || strlen(colon + 1) >= pcap) return -1;
        snprintf(port, pcap, "%s", colon + 1);
    }
    return 0;
}

/* A connection to authority (host, host:port, [v6]:port), or -1 with r failed. */
static int dial(struct http_req *r, const char *authority, int timeout_ms)
{
    char host[300], port[16];
    if (http_host_port(authority, host, sizeof host, port, sizeof port) < 0) goto bad;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res) {
        fail(r, CURLE_COULDNT_RESOLVE_HOST, "Could not resolve host: %.200s", host);
        return -1;
    }
    int fd = -ECONNREFUSED;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) fd = dial_one(a, timeout_ms);
    freeaddrinfo(res);
    if (fd == -ETIMEDOUT)
        fail(r, CURLE_OPERATION_TIMEDOUT, "Connection to %.200s timed out", authority);
    else if (fd < 0)
        fail(r, CURLE_COULDNT_CONNECT, "Failed to connect to %.200s", authority);
    return fd < 0 ? -1 : fd;
bad:
    fail(r, CURLE_URL_MALFORMAT, "bad host in URL: %.200s", authority);
    return -1;
}

/* --- sending and receiving ------------------------------------------------------------- */

static int send_all(int fd, const char *p, size_t n, int timeout_ms)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && errno != EAGAIN) return -errno;
        int w = wait_fd(fd, POLLOUT, timeout_ms);
        if (w <= 0) return w ? w : -ETIMEDOUT;
    }
    return 0;
}

/* More bytes into the buffer: > 0 read, 0 end of stream, -errno (-ETIMEDOUT: stalled). */
static int rx_fill(int timeout_ms)
{
    if (lite.beg == lite.end) lite.beg = lite.end = 0;
    if (lite.end == RX_CAP && lite.beg) {
        memmove(lite.buf, lite.buf + lite.beg, lite.end - lite.beg);
        lite.end -= lite.beg;
        lite.beg = 0;
    }
    if (lite.end == RX_CAP) return -E2BIG; /* a header line longer than the buffer */
    for (;;) {
        ssize_t k = recv(lite.fd, lite.buf + lite.end, RX_CAP - lite.end, 0);
        if (k >= 0) {
            lite.end += (size_t)k;
            return (int)(k > 0);
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return -errno;
        int w = wait_fd(lite.fd, POLLIN, timeout_ms);
        if (w <= 0) return w ? w : -ETIMEDOUT;
    }
}

/* The next line (with its LF) at *line, *len bytes; 0, or as rx_fill (0 there = -EPIPE). */
static int rx_line(char **line, size_t *len, int timeout_ms)
{
    for (;;) {
        char *s = lite.buf + lite.beg, *nl = memchr(s, '\n', lite.end - lite.beg);
        if (nl) {
            *line = s;
            *len = (size_t)(nl + 1 - s);
            lite.beg += *len;
            return 0;
        }
        int e = rx_fill(timeout_ms);
        if (e <= 0) return e ? e : -EPIPE;
    }
}

static void fail_rx(struct http_req *r, int e)
{
    if (e == -ETIMEDOUT)
        fail(r, CURLE_OPERATION_TIMEDOUT, "Operation too slow: no data%s", "");
    else if (e == -EPIPE)
        fail(r, CURLE_PARTIAL_FILE, "transfer closed with bytes remaining to read%s", "");
    else if (e == -E2BIG)
        fail(r, CURLE_WEIRD_SERVER_REPLY, "header line too long%s", "");
    else
        fail(r, CURLE_RECV_ERROR, "Recv failure: %s", strerror(-e));
}

/* Hand n body bytes to the request (-1 = up to the end of the stream). 0, or -1 with r
 * failed. */
static int body(struct http_req *r, int64_t n, int timeout_ms)
{
    while (n) {
        if (lite.beg == lite.end) {
            int e = rx_fill(timeout_ms);
            if (e == 0 && n < 0) return 0; /* the end of a body without a length */
            if (e <= 0) {
                fail_rx(r, e ? e : -EPIPE);
                return -1;
            }
        }
        size_t k = lite.end - lite.beg;
        if (n >= 0 && (uint64_t)n < k) k = (size_t)n;
        size_t took = http_on_body(lite.buf + lite.beg, 1, k, r);
        lite.beg += k;
        if (took != k) {
            fail(r, CURLE_WRITE_ERROR, "Failure writing output to destination%s", "");
            return -1;
        }
        if (n > 0) n -= (int64_t)k;
    }
    return 0;
}

static int chunked_body(struct http_req *r, int timeout_ms)
{
    char *line, *end;
    size_t len;
    int e;
    for (;;) {
        if ((e = rx_line(&line, &len, timeout_ms)) < 0) goto rx;
        unsigned long long n = strtoull(line, &end, 16);
        if (end == line) {
            fail(r, CURLE_WEIRD_SERVER_REPLY, "bad chunk size%s", "");
            return -1;
        }
        if (n == 0) break;
        if (body(r, (int64_t)n, timeout_ms) < 0) return -1;
        if ((e = rx_line(&line, &len, timeout_ms)) < 0) goto rx; /* the chunk's CRLF */
    }
    do /* trailers, up to the empty line */
        if ((e = rx_line(&line, &len, timeout_ms)) < 0) goto rx;
    while (len > 2);
    return 0;
rx:
    fail_rx(r, e);
    return -1;
}

/* One response: header lines to http_on_header, the body to http_on_body. 0 (keep is
 * whether the connection may serve the next request), STALE, or -1 with r failed. */
static int response(struct http_req *r, int head, int fresh, int timeout_ms, int *keep)
{
    char *line;
    size_t len;
    for (;;) {
        int e = rx_line(&line, &len, timeout_ms);
        if (e < 0) {
            if (!fresh && lite.end == 0 && (e == -EPIPE || e == -ECONNRESET)) return STALE;
            if (e == -EPIPE && lite.end == 0)
                fail(r, CURLE_GOT_NOTHING, "Empty reply from server%s", "");
            else
                fail_rx(r, e);
            return -1;
        }
        if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0) {
            fail(r, CURLE_WEIRD_SERVER_REPLY, "not an HTTP/1 response%s", "");
            return -1;
        }
        *keep = line[7] != '0';
        http_on_header(line, 1, len, r);
        long status = r->hdr_status;
        int64_t clen = -1;
        int chunked = 0;
        for (;;) {
            if ((e = rx_line(&line, &len, timeout_ms)) < 0) {
                fail_rx(r, e);
                return -1;
            }
            http_on_header(line, 1, len, r);
            if (len <= 2) break;
            if (len > 15 && strncasecmp(line, "Content-Length:", 15) == 0) clen = strtoll(line + 15, NULL, 10);
            if (len > 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strcasestr(line, "chunked"))
                chunked = 1;
            if (len > 11 && strncasecmp(line, "Connection:", 11) == 0) {
                if (strcasestr(line, "close")) *keep = 0;
                if (strcasestr(line, "keep-alive")) *keep = 1;
            }
        }
        r->status = status;
        if (status >= 100 && status < 200) continue; /* 100 Continue and the like */
        if (head || status == 204 || status == 304) return 0;
        if (chunked) return chunked_body(r, timeout_ms);
        if (clen < 0) *keep = 0; /* the body ends with the connection */
        return body(r, clen, timeout_ms);
    }
}

/* --- the request ----------------------------------------------------------------------- */

char *http_request_text(const struct http_req *r, const char *method, const char *authority, const char *path)
{
    size_t cap = strlen(method) + strlen(path) + strlen(authority) + 64;
    for (const struct curl_slist *h = r->headers; h; h = h->next) cap += strlen(h->data) + 2;
    char *t = malloc(cap), *p = t;
    if (!t) return NULL;
    p += sprintf(p, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, authority);
    for (const struct curl_slist *h = r->headers; h; h = h->next) {
        const char *d = h->data, *c = strchr(d, ':');
        size_t l = strlen(d);
        if (c) {
            const char *v = c + 1;
            while (*v == ' ' || *v == '\t') v++;
            if (!*v) continue;
            memcpy(p, d, l);
            p += l;
        } else if (l && d[l - 1] == ';') {
            memcpy(p, d, l - 1);
            p += l - 1;
            *p++ = ':';
        } else {
            continue;
        }
        *p++ = '\r';
        *p++ = '\n';
    }
    memcpy(p, "\r\n", 3);
    return t;
}

int http_split_url(const char *url, char *authority, size_t cap, const char **path)
{
    const char *a = url + 7;
    size_t al = strcspn(a, "/?");
    if (!al || al >= cap) return -1;
    snprintf(authority, cap, "%.*s", (int)al, a);
    *path = a[al] == '/' ? a + al : a[al] ? a + al : "/"; /* "http://host?q", "http://host" */
    return 0;
}

void http_lite_run(struct http_req *r, const struct http_settings *set)
{
    const char *method = r->method ? r->method : "GET", *p;
    char authority[sizeof lite.authority];
    int stall_ms = set->stall_timeout_s > 0 ? (int)set->stall_timeout_s * 1000 : -1;
    int conn_ms = set->connect_timeout_ms > 0 ? (int)set->connect_timeout_ms : -1;
    char *req = NULL;
    if (http_split_url(r->url, authority, sizeof authority, &p) < 0) {
        fail(r, CURLE_URL_MALFORMAT, "bad URL: %.200s", r->url);
        goto out;
    }
    req = http_request_text(r, method, authority, p);
    if (!req || (!lite.buf && !(lite.buf = malloc(RX_CAP)))) {
        fail(r, CURLE_OUT_OF_MEMORY, "out of memory%s", "");
        goto out;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (lite.fd >= 0 && strcmp(lite.authority, authority) != 0) drop();
        int fresh = lite.fd < 0;
        if (fresh) {
            lite.fd = dial(r, authority, conn_ms);
            if (lite.fd < 0) break;
            snprintf(lite.authority, sizeof lite.authority, "%s", authority);
        }
        lite.beg = lite.end = 0;
        int e = send_all(lite.fd, req, strlen(req), stall_ms), keep = 0;
        if (e < 0 && !fresh) { /* the server closed the kept connection */
            drop();
            continue;
        }
        if (e < 0) {
            fail(r, e == -ETIMEDOUT ? CURLE_OPERATION_TIMEDOUT : CURLE_SEND_ERROR, "Send failure: %s", strerror(-e));
            drop();
            break;
        }
        e = response(r, strcmp(method, "HEAD") == 0, fresh, stall_ms, &keep);
        if (e == STALE) {
            drop();
            continue;
        }
        if (e < 0 || !keep || lite.beg != lite.end) drop(); /* unread bytes: not a clean end */
        break;
    }
out:
    free(req);
    if (atomic_load(&lite.retired) && lite.fd >= 0) drop();
    pthread_mutex_unlock(&lite.mu);
}
