/* s3_client.c - see s3_client.h */
#include "s3_client.h"

#include "../bufpool.h"
#include "../log.h"
#include "../oplog.h"
#include "s3_xml.h"

#include "curl_api.h"
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_BASE_NS 50000000ull  /* 50 ms */
#define BACKOFF_CAP_NS 2000000000ull /* 2 s */

/* --- endpoints ------------------------------------------------------------------------- */

static int parse_endpoint(const char *spec, size_t n, struct s3_endpoint *ep, char *err, size_t errlen)
{
    char u[512];
    while (n && (*spec == ' ' || *spec == '\t')) spec++, n--;
    while (n && (spec[n - 1] == ' ' || spec[n - 1] == '\t' || spec[n - 1] == '/')) n--;
    if (n == 0 || n >= sizeof u) {
        snprintf(err, errlen, "endpoint '%.*s' is empty or too long", (int)(n > 64 ? 64 : n), spec);
        return -EINVAL;
    }
    memcpy(u, spec, n);
    u[n] = '\0';
    const char *rest;
    if (strncasecmp(u, "http://", 7) == 0) {
        snprintf(ep->scheme, sizeof ep->scheme, "http");
        rest = u + 7;
    } else if (strncasecmp(u, "https://", 8) == 0) {
        snprintf(ep->scheme, sizeof ep->scheme, "https");
        rest = u + 8;
    } else {
        snprintf(err, errlen, "endpoint '%s' must start with http:// or https://", u);
        return -EINVAL;
    }
    if (!*rest || strchr(rest, '/') || strchr(rest, '?')) {
        snprintf(err, errlen, "endpoint '%s' must be scheme://host[:port] with no path", u);
        return -EINVAL;
    }
    /* The Host header curl sends leaves out a default port; the signature must match. */
    const char *colon = strrchr(rest, ':');
    int default_port = colon && !strchr(colon, ']') &&
                       ((strcmp(ep->scheme, "http") == 0 && strcmp(colon, ":80") == 0) ||
                        (strcmp(ep->scheme, "https") == 0 && strcmp(colon, ":443") == 0));
    snprintf(ep->host, sizeof ep->host, "%.*s", default_port ? (int)(colon - rest) : (int)strlen(rest), rest);
    snprintf(ep->url, sizeof ep->url, "%s://%s", ep->scheme, ep->host);
    snprintf(ep->stats.name, sizeof ep->stats.name, "endpoint");
    snprintf(ep->stats.detail, sizeof ep->stats.detail, "%.*s", (int)sizeof ep->stats.detail - 1, ep->url);
    return 0;
}

int s3_client_init(struct s3_client *c, const struct aws_settings *aws, int vhost,
                   const struct s3_client_opts *opt, struct stats_set *mount_stats, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (opt) c->opt = *opt;
    c->aws = *aws;
    c->aws.session_token = aws->session_token ? strdup(aws->session_token) : NULL;
    c->vhost = vhost;
    c->max_attempts = aws->max_attempts > 0 ? aws->max_attempts : AWS_DEFAULT_ATTEMPTS;
    c->retry_budget_ns = 60ull * 1000000000ull;
    pthread_mutex_init(&c->log_lock, NULL);
    char def[256];
    const char *list = aws->endpoint;
    if (!list[0]) { /* AWS itself */
        snprintf(def, sizeof def, "https://s3.%s.amazonaws.com", aws->region);
        list = def;
    }
    int n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    c->ep = calloc((size_t)n, sizeof *c->ep);
    if (!c->ep) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (const char *p = list;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int r = parse_endpoint(p, len, &c->ep[c->nep], err, errlen);
        if (r < 0) {
            s3_client_free(c);
            return r;
        }
        c->nep++;
        if (!e) break;
        p = e + 1;
    }
    if (bal_init(&c->bal, c->nep, c->opt.policy) < 0) {
        snprintf(err, errlen, "out of memory");
        s3_client_free(c);
        return -ENOMEM;
    }
    /* Endpoints report below the mount, in the order given. */
    for (int i = c->nep - 1; i >= 0 && mount_stats; i--) {
        c->ep[i].stats.next = mount_stats->children;
        mount_stats->children = &c->ep[i].stats;
    }
    if (!aws->anonymous) {
        int r = sigv4_init(&c->signer, aws->access_key, aws->secret_key, aws->session_token, aws->region, "s3");
        if (r < 0) {
            snprintf(err, errlen, "cannot set up request signing: %s", strerror(-r));
            s3_client_free(c);
            return r;
        }
    }
    return 0;
}

void s3_client_free(struct s3_client *c)
{
    if (!c->aws.anonymous && c->signer.region[0]) sigv4_free(&c->signer);
    free(c->aws.session_token);
    free(c->ep);
    bal_free(&c->bal);
    pthread_mutex_destroy(&c->log_lock);
    memset(c, 0, sizeof *c);
}

/* --- requests -------------------------------------------------------------------------- */

void s3_op_init(struct s3_op *op, const char *method, const char *bucket, const char *key)
{
    memset(op, 0, sizeof *op);
    op->method = method;
    op->bucket = bucket;
    op->key = key;
    op->query = "";
    http_req_init(&op->req);
}

void s3_op_header(struct s3_op *op, const char *name, const char *value)
{
    if (op->nhdrs < S3_MAX_HDRS) op->hdrs[op->nhdrs++] = (struct sigv4_header){name, value};
}

void s3_op_cleanup(struct s3_op *op)
{
    http_headers_free(&op->hl);
    free(op->url);
    op->url = NULL;
    http_req_cleanup(&op->req);
}

static int add_header(struct s3_op *op, const char *name, const char *value)
{
    char line[2048 + 64];
    snprintf(line, sizeof line, "%s: %s", name, value);
    return http_header_add(&op->hl, line);
}

/* How an attempt ended, for the balancer. */
static enum bal_outcome outcome(const struct http_req *r)
{
    if (r->cancelled || r->curl_code == CURLE_OPERATION_TIMEDOUT) return BAL_TIMEOUT;
    if (r->curl_code || r->status == 0 || r->status >= 500 || r->status == 429) return BAL_FAIL;
    return BAL_OK;
}

/* The first byte of a Range header's range ("bytes=A-B"), or -1. */
static int64_t range_start(const struct s3_op *op)
{
    for (int i = 0; i < op->nhdrs; i++)
        if (strcmp(op->hdrs[i].name, "range") == 0 && strncmp(op->hdrs[i].value, "bytes=", 6) == 0)
            return strtoll(op->hdrs[i].value + 6, NULL, 10);
    return -1;
}

/* The attempt's record in the op log, on the thread that saw it end. */
static void log_attempt(struct s3_op *op, struct http_req *r, struct s3_endpoint *ep)
{
    int put = strcmp(op->method, "PUT") == 0 || strcmp(op->method, "POST") == 0, copy = 0;
    for (int i = 0; i < op->nhdrs; i++) copy |= strcmp(op->hdrs[i].name, "x-amz-copy-source") == 0;
    int ok = !r->curl_code && r->status >= 200 && r->status < 300;
    int64_t off = range_start(op);
    struct oplog_req_info q = {
        .method = op->method, .bucket = op->bucket, .key = op->key, .query = op->query, .copy = copy,
        .ranged = off >= 0, .url = ep->url, .ep_cache = &ep->ol_id, .off = off,
        .bytes = (ok ? r->got : 0) + (put ? op->body_len : 0), .status = r->status, .curl_code = r->curl_code,
        .t_submit = r->t_submit, .t_first_byte = r->t_first_byte, .t_done = r->t_done, .id = op->ol_id,
        .cause_tid = op->ol_tid, .attempt = op->hedge ? (unsigned)op->hedge : (unsigned)op->attempts,
        .flags = (op->hedge ? OLQ_HEDGE : 0) | (op->prefetch ? OLQ_PREFETCH : 0)};
    oplog_req(&q);
}

/* On the engine thread as an attempt ends: the balancer learns at once, not when the
 * owner of the request gets round to collecting it. */
static void attempt_ended(struct http_req *r, void *arg)
{
    struct s3_op *op = arg;
    struct s3_client *c = op->client;
    struct s3_endpoint *ep = &c->ep[op->epi];
    enum bal_outcome o = outcome(r);
    uint64_t bytes = r->got + (strcmp(op->method, "PUT") == 0 ? op->body_len : 0);
    /* The time a body waited for the reader's buffer (hold_ns) is the reader's, not the
     * endpoint's; and what the body took after the wait was mostly a copy out of the
     * socket, which says nothing about the endpoint's bandwidth (no bytes for that). */
    stats_record(&ep->stats, STK_REQ, r->t_submit + r->held_ns, bytes, o != BAL_OK);
    if (op->ol_id) log_attempt(op, r, ep);
    if (bal_done_held(&c->bal, op->epi, o, op->ahead, r->t_submit, r->t_first_byte, r->t_done, r->held_ns,
                      r->held_ns ? 0 : bytes)) {
        stats_record(&ep->stats, STK_EJECT, r->t_done, 0, 0);
        slog_warn("s3: endpoint %s is failing (%s); sending requests elsewhere until a probe succeeds", ep->url,
                  r->curl_code ? http_strerror(r) : "HTTP error");
    }
}

/* Where the next attempt goes: the balancer's choice (only if it expects an answer
 * within max_wait, for a backup request), or the endpoint an upload is pinned to.
 * -1 if there is no such endpoint. */
static int choose_endpoint(struct s3_client *c, struct s3_op *op, int avoid, uint64_t max_wait)
{
    uint64_t now = stats_now_ns();
    if (op->pin && c->opt.pin_uploads) {
        if (*op->pin >= 0 && *op->pin < c->nep) return bal_take(&c->bal, *op->pin, now, &op->ahead);
        return *op->pin = bal_pick(&c->bal, op->body_len, -1, now, &op->ahead);
    }
    uint64_t bytes = op->dst ? op->dst_cap : op->body_len;
    if (max_wait) return bal_pick_below(&c->bal, bytes, avoid, now, max_wait, &op->ahead);
    return bal_pick(&c->bal, bytes, avoid, now, &op->ahead);
}

/* URL and headers for endpoint ep, signed anew for every attempt. */
static int build_request(struct s3_client *c, struct s3_op *op, const struct s3_endpoint *ep)
{
    size_t klen = strlen(op->key);
    char *ekey = malloc(klen * 3 + 1);
    if (!ekey) return -ENOMEM;
    if (s3_uri_encode(op->key, klen, 1, ekey, klen * 3 + 1) < 0) {
        free(ekey);
        return -ENAMETOOLONG;
    }
    size_t cap = strlen(ep->url) + strlen(op->bucket) * 3 + klen * 3 + strlen(op->query) + 16;
    char *uri = malloc(cap), host[512];
    free(op->url);
    op->url = malloc(cap + sizeof host);
    if (!uri || !op->url) {
        free(ekey);
        free(uri);
        return -ENOMEM;
    }
    if (c->vhost && op->bucket[0]) {
        snprintf(host, sizeof host, "%s.%s", op->bucket, ep->host);
        snprintf(uri, cap, "/%s", ekey);
    } else {
        snprintf(host, sizeof host, "%s", ep->host);
        if (!op->bucket[0])
            snprintf(uri, cap, "/");
        else if (klen)
            snprintf(uri, cap, "/%s/%s", op->bucket, ekey);
        else
            snprintf(uri, cap, "/%s", op->bucket);
    }
    snprintf(op->url, cap + sizeof host, "%s://%s%s%s%s", ep->scheme, host, uri, op->query[0] ? "?" : "", op->query);
    free(ekey);

    http_headers_free(&op->hl);
    int e = 0;
    for (int i = 0; i < op->nhdrs && !e; i++) e = add_header(op, op->hdrs[i].name, op->hdrs[i].value);
    if (!c->aws.anonymous && !e) {
        struct sigv4_out out;
        e = sigv4_sign(&c->signer, op->method, host, uri, op->query, op->hdrs, op->nhdrs, "UNSIGNED-PAYLOAD",
                       time(NULL), &out);
        if (!e) e = add_header(op, "x-amz-date", out.amz_date);
        if (!e) e = add_header(op, "x-amz-content-sha256", "UNSIGNED-PAYLOAD");
        if (!e && c->aws.session_token) e = add_header(op, "x-amz-security-token", c->aws.session_token);
        if (!e) e = add_header(op, "Authorization", out.authorization);
    }
    free(uri);
    if (!e) { /* no 100-continue round trip; no form encoding on POST */
        e = http_header_add(&op->hl, "Expect:");
        if (!e && strcmp(op->method, "POST") == 0) e = http_header_add(&op->hl, "Content-Type: application/xml");
    }
    return e;
}

/* Signing, or TLS (libcurl's OpenSSL is the same libcrypto). Anonymous plain-HTTP
 * requests need neither, so they never load libcrypto (crypto_api.h). */
static int needs_crypto(const struct s3_client *c)
{
    if (!c->aws.anonymous) return 1;
    for (int i = 0; i < c->nep; i++)
        if (strcmp(c->ep[i].scheme, "https") == 0) return 1;
    return 0;
}

/* A read into a buffer that may get a backup on another endpoint (wait_attempt). */
static int may_hedge(const struct s3_client *c, const struct s3_op *op)
{
    return c->opt.hedge && c->nep > 1 && op->dst && !op->pin && strcmp(op->method, "GET") == 0;
}

/* Send the next attempt to the endpoint chosen for it (not `avoid` when there is
 * another; with max_wait, only to one expected to answer within it, else -EAGAIN). */
static int send_attempt(struct s3_client *c, struct s3_op *op, int avoid, uint64_t max_wait)
{
    if (needs_crypto(c) && !crypto_alive()) return -EIO; /* the program shut OpenSSL down: no signing, no TLS */
    int epi = choose_endpoint(c, op, avoid, max_wait);
    if (epi < 0) return -EAGAIN;
    op->ep = &c->ep[epi];
    op->epi = epi;
    op->client = c;
    int e = build_request(c, op, op->ep);
    if (e) {
        bal_release(&c->bal, epi); /* never sent: says nothing about the endpoint */
        return e;
    }
    struct http_req *r = &op->req;
    r->observe = attempt_ended;
    r->observe_arg = op;
    r->method = op->method;
    r->url = op->url;
    r->headers = op->hl;
    r->body = op->body;
    r->body_len = op->body_len;
    r->dst = op->dst;
    r->dst_cap = op->dst_cap;
    r->rx_tally = op->rx_tally;
    r->grow = op->grow;
    /* A read that may get a backup (wait_attempt) must be under way while its waiter
     * watches the clock: a first GET made on the calling thread (http_lite) that stalled
     * waited out the stall, with several endpoints there to ask. */
    r->no_lite = may_hedge(c, op);
    /* A held body would look late to a waiter's backup clock, which starts at the send. */
    atomic_store(&r->hold_until, op->hold_ns && !r->no_lite ? stats_now_ns() + op->hold_ns : 0);
    op->attempts++;
    if (op->ol_id) op->ol_tid = oplog_tid();
    return http_submit(r);
}

int s3_start(struct s3_client *c, struct s3_op *op)
{
    op->t_begin = stats_now_ns();
    op->attempts = 0;
    op->err = 0;
    op->code[0] = op->message[0] = '\0';
    op->ol_id = oplog_on ? oplog_req_id() : 0;
    if (op->dst && strcmp(op->method, "GET") == 0) bal_count_read(&c->bal);
    int e = send_attempt(c, op, -1, 0);
    if (e < 0 && !op->req.curl_code) op->err = e; /* never sent */
    return e;
}

/* errno for a finished attempt; *retry says whether another attempt may help. */
static int classify(struct s3_op *op, int *retry)
{
    struct http_req *r = &op->req;
    *retry = 0;
    if (r->curl_code) {
        if (r->overflow) return -EIO;
        *retry = r->curl_code != CURLE_OUT_OF_MEMORY && r->curl_code != CURLE_FAILED_INIT;
        return -EIO;
    }
    long st = r->status;
    if (st >= 200 && st < 300) return 0;
    const char *body = r->errbody ? r->errbody : r->resp;
    size_t blen = r->errbody ? r->errbody_len : r->got;
    if (body && blen) s3_xml_error_parse(body, blen, op->code, sizeof op->code, op->message, sizeof op->message);
    switch (st) {
    case 404:
        return -ENOENT;
    case 403:
        return -EACCES;
    case 416:
        return -ERANGE; /* the caller's end of file */
    case 412:
        return -ESTALE; /* If-Match failed: the object changed */
    case 400:
        if (strcmp(op->code, "RequestTimeout") == 0) *retry = 1;
        return *retry ? -EIO : -EINVAL;
    case 409:
        *retry = strcmp(op->code, "OperationAborted") == 0;
        return -EIO;
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
        *retry = 1;
        return -EIO;
    default:
        return -EIO;
    }
}

static uint64_t jitter(uint64_t limit)
{
    static __thread uint64_t x;
    if (!x) x = (uint64_t)stats_now_ns() ^ ((uint64_t)(uintptr_t)&x << 17) ^ 0x9e3779b97f4a7c15ull;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return limit ? x % limit : 0;
}

static void record(struct s3_op *op, int failed)
{
    struct http_req *r = &op->req;
    if (!op->ep) return;
    struct stats_set *s = &op->ep->stats;
    enum stats_kind k = strcmp(op->method, "GET") == 0   ? STK_READ
                        : strcmp(op->method, "PUT") == 0 ? STK_WRITE
                        : strcmp(op->method, "HEAD") == 0 ? STK_STAT
                                                          : STK_META;
    uint64_t bytes = k == STK_WRITE ? op->body_len : r->got;
    /* stats_record measures from its t0 to now; r->t_submit is when this attempt left */
    stats_record(s, k, r->t_submit, bytes, failed);
    if (r->t_first_byte) {
        uint64_t ttfb = r->t_first_byte - r->t_submit;
        stats_record(s, STK_TTFB, stats_now_ns() - ttfb, 0, 0);
    }
}

/* Human hint for an S3 error code ("check AWS_SECRET_ACCESS_KEY"), or "". */
static const char *s3_error_hint(const char *code)
{
    static const char *const hints[][2] = {
        {"SignatureDoesNotMatch", "check AWS_SECRET_ACCESS_KEY"},
        {"InvalidAccessKeyId", "check AWS_ACCESS_KEY_ID"},
        {"AccessDenied", "the credentials may not access this object"},
        {"NoSuchBucket", "the bucket does not exist"},
        {"ExpiredToken", "refresh AWS_SESSION_TOKEN"},
        {"InvalidToken", "check AWS_SESSION_TOKEN"},
        {"RequestTimeTooSkewed", "the system clock is off"},
        {"AuthorizationHeaderMalformed", "check AWS_REGION"},
        {"PermanentRedirect", "the bucket is in another region: set AWS_REGION"},
        {"SlowDown", "the server asks for fewer requests"},
    };
    for (size_t i = 0; i < sizeof hints / sizeof *hints; i++)
        if (strcmp(code, hints[i][0]) == 0) return hints[i][1];
    return "";
}

/* A 403 or 400 answer to HEAD has no body, so no S3 error code: ask once with a one-byte
 * GET of the same key, only to be able to say what is wrong. */
static void learn_code(struct s3_client *c, struct s3_op *op)
{
    if (strcmp(op->method, "HEAD") != 0 || op->code[0] || (op->req.status != 403 && op->req.status != 400)) return;
    struct s3_op probe;
    char byte[1];
    s3_op_init(&probe, "GET", op->bucket, op->key);
    s3_op_header(&probe, "range", "bytes=0-0");
    probe.dst = byte;
    probe.dst_cap = sizeof byte;
    probe.quiet = 1;
    s3_run(c, &probe); /* retried like any request: a transient fault must not hide the code */
    if (probe.code[0]) {
        snprintf(op->code, sizeof op->code, "%s", probe.code);
        snprintf(op->message, sizeof op->message, "%s", probe.message);
    }
    s3_op_cleanup(&probe);
}

/* One line per distinct failure (status and code), naming the first object it hit. */
static void log_failure(struct s3_client *c, struct s3_op *op)
{
    learn_code(c, op);
    char id[96];
    snprintf(id, sizeof id, "%s %ld %s %d", op->method, op->req.status, op->code, op->req.curl_code);
    pthread_mutex_lock(&c->log_lock);
    int seen = 0;
    for (int i = 0; i < c->nlogged && !seen; i++) seen = strcmp(c->logged[i], id) == 0;
    if (!seen && c->nlogged < 32) snprintf(c->logged[c->nlogged++], sizeof c->logged[0], "%s", id);
    pthread_mutex_unlock(&c->log_lock);
    if (seen) return;
    const char *hint = s3_error_hint(op->code);
    if (op->req.curl_code)
        slog_error("s3: %s %s/%s via %s failed after %d attempt(s): %s", op->method, op->bucket, op->key,
                   op->ep ? op->ep->url : "?", op->attempts, http_strerror(&op->req));
    else
        slog_error("s3: %s %s/%s: HTTP %ld %s%s%s%s%s%s", op->method, op->bucket, op->key, op->req.status,
                   op->code[0] ? op->code : "", op->message[0] ? " (" : "", op->message, op->message[0] ? ")" : "",
                   hint[0] ? ": " : "", hint);
}

static int answered(const struct http_req *r)
{
    return !r->curl_code && !r->overflow && r->status >= 200 && r->status < 300;
}

/* The backup's answer becomes the op's own: body into the caller's buffer, then the
 * response fields. */
static void adopt_answer(struct s3_op *op, struct s3_op *h)
{
    struct http_req *r = &op->req, *b = &h->req;
    memcpy(op->dst, h->dst, b->got);
    r->status = b->status;
    r->curl_code = b->curl_code;
    memcpy(r->curl_err, b->curl_err, sizeof r->curl_err);
    r->got = b->got;
    memcpy(r->etag, b->etag, sizeof r->etag);
    memcpy(r->last_modified, b->last_modified, sizeof r->last_modified);
    r->content_length = b->content_length;
    r->range_total = b->range_total;
    r->overflow = b->overflow;
    r->hdr_status = b->hdr_status;
    free(r->errbody);
    r->errbody = b->errbody, r->errbody_len = b->errbody_len;
    b->errbody = NULL;
    r->t_submit = b->t_submit, r->t_first_byte = b->t_first_byte, r->t_done = b->t_done;
    op->ep = h->ep;
    op->epi = h->epi;
}

/* Send a backup of op's GET to an endpoint other than op's that is expected to answer
 * within max_wait, into a buffer of its own. NULL if there is none (or no memory). */
static struct s3_op *send_backup(struct s3_client *c, struct s3_op *op, uint64_t max_wait)
{
    struct s3_op *h = malloc(sizeof *h);
    void *buf = h ? bufpool_get(op->dst_cap, 0) : NULL;
    if (!buf) {
        free(h);
        return NULL;
    }
    s3_op_init(h, op->method, op->bucket, op->key);
    h->query = op->query;
    memcpy(h->hdrs, op->hdrs, sizeof h->hdrs);
    h->nhdrs = op->nhdrs;
    h->dst = buf;
    h->dst_cap = op->dst_cap;
    h->hedge = op->attempts;
    h->prefetch = op->prefetch;
    h->ol_id = op->ol_id;
    if (send_attempt(c, h, op->epi, max_wait) < 0) {
        s3_op_cleanup(h);
        free(h);
        bufpool_put(buf, op->dst_cap);
        return NULL;
    }
    return h;
}

/* Wait for the current attempt. A read that has waited w, at first its endpoint's
 * recent p95 (d), then 2d, 4d..., sends one backup request to another endpoint expected
 * to answer within 2w, within the hedging budget (a stalled answer thus gets a backup
 * even if the only other endpoint is slower; a merely slow one is not doubled by a
 * slower one). The first good answer is kept and the other cancelled. */
static void wait_attempt(struct s3_client *c, struct s3_op *op)
{
    struct http_req *r = &op->req;
    uint64_t d = 0;
    if (may_hedge(c, op)) d = bal_hedge_delay(&c->bal, op->epi, op->dst_cap);
    struct s3_op *h = NULL;
    for (uint64_t w = d; w && !h; w *= 2) {
        if (http_wait_until(r, r->t_submit + w)) return;
        if (w > c->retry_budget_ns) break;
        if (bal_hedge_allowed(&c->bal)) h = send_backup(c, op, 2 * w);
    }
    if (!h) {
        http_wait(r);
        return;
    }
    bal_hedge_count(&c->bal);
    uint64_t t_hedge = stats_now_ns();
    struct http_group g;
    http_group_init(&g);
    http_group_attach(r, &g);
    http_group_attach(&h->req, &g);
    struct http_req *rs[2] = {r, &h->req};
    int win = http_group_wait(&g, rs, 2, 0);
    if (!answered(rs[win])) { /* the first to finish failed: the other may still answer */
        http_wait(rs[!win]);
        if (answered(rs[!win])) win = !win;
    }
    http_cancel(rs[!win]);
    http_wait(rs[!win]);
    http_wait(rs[win]);
    r->group = h->req.group = NULL;
    http_group_destroy(&g);
    stats_record(&h->ep->stats, STK_HEDGE, t_hedge, win ? h->req.got : 0, !win);
    if (win) adopt_answer(op, h);
    void *buf = h->dst;
    s3_op_cleanup(h);
    free(h);
    bufpool_put(buf, op->dst_cap);
}

int s3_finish(struct s3_client *c, struct s3_op *op)
{
    if (op->err) return op->err; /* never sent */
    for (;;) {
        wait_attempt(c, op);
        int retry;
        int e = classify(op, &retry);
        record(op, e != 0 && e != -ENOENT && e != -ERANGE && e != -ESTALE);
        uint64_t now = stats_now_ns();
        if (!retry || op->attempts >= c->max_attempts || now - op->t_begin > c->retry_budget_ns) {
            op->err = e;
            break;
        }
        uint64_t lim = BACKOFF_BASE_NS << (op->attempts < 6 ? op->attempts : 6);
        if (lim > BACKOFF_CAP_NS) lim = BACKOFF_CAP_NS;
        /* The first retry of a request that failed on one of several endpoints goes to
         * another at once (a dead node is not a reason to wait); SlowDown always waits. */
        if (op->attempts == 1 && c->nep > 1 && !(op->pin && c->opt.pin_uploads)) lim = BACKOFF_BASE_NS / 10;
        if (strcmp(op->code, "SlowDown") == 0) lim = BACKOFF_CAP_NS;
        uint64_t nap = lim / 2 + jitter(lim / 2);
        struct timespec ts = {(time_t)(nap / 1000000000ull), (long)(nap % 1000000000ull)};
        nanosleep(&ts, NULL);
        if (op->ep) stats_record(&op->ep->stats, STK_RETRY, now, 0, 0);
        slog_info("s3: retrying %s %s/%s (attempt %d): %s", op->method, op->bucket, op->key, op->attempts + 1,
                  op->req.curl_code ? http_strerror(&op->req) : op->code);
        op->code[0] = op->message[0] = '\0';
        int se = send_attempt(c, op, c->nep > 1 ? op->epi : -1, 0);
        if (se < 0 && !op->req.curl_code) {
            op->err = se;
            break;
        }
    }
    int quiet = op->quiet || (op->err == -ENOENT && op->quiet_404);
    if (op->err && op->err != -ERANGE && !quiet) log_failure(c, op);
    return op->err;
}

size_t s3_redirect(struct s3_op *op, void *ndst)
{
    op->dst = ndst; /* for retries and adopt_answer(), both on this thread */
    op->hold_ns = 0;
    return http_redirect(&op->req, ndst);
}

void s3_release_hold(struct s3_op *op)
{
    if (!op->hold_ns) return;
    op->hold_ns = 0; /* (retries are sent as usual) */
    http_release_hold(&op->req);
}

int s3_run(struct s3_client *c, struct s3_op *op)
{
    s3_start(c, op);
    return s3_finish(c, op);
}

/* --- multipart upload requests ---------------------------------------------------------------- */

void s3_upload_query(const char *id, int part, char *q, size_t len)
{
    char eid[512 * 3];
    s3_uri_encode(id, strlen(id), 0, eid, sizeof eid);
    if (part > 0)
        snprintf(q, len, "partNumber=%d&uploadId=%s", part, eid);
    else
        snprintf(q, len, "uploadId=%s", eid);
}

int s3_upload_create(struct s3_client *c, const char *bucket, const char *key, int *pin, char *id, size_t idlen)
{
    struct s3_op op;
    s3_op_init(&op, "POST", bucket, key);
    op.query = "uploads=";
    op.pin = pin;
    op.grow = 1;
    int e = s3_run(c, &op);
    if (e == 0 && (!op.req.resp || s3_xml_initiate_parse(op.req.resp, op.req.got, id, idlen) < 0)) {
        slog_error("s3: %s/%s: the server's answer to CreateMultipartUpload has no UploadId", bucket, key);
        e = -EIO;
    }
    s3_op_cleanup(&op);
    if (e < 0 && idlen) id[0] = '\0';
    return e;
}

int s3_upload_abort(struct s3_client *c, const char *bucket, const char *key, const char *id, int *pin,
                    int quiet_gone)
{
    char q[512 * 3 + 16];
    s3_upload_query(id, 0, q, sizeof q);
    struct s3_op op;
    s3_op_init(&op, "DELETE", bucket, key);
    op.query = q;
    op.pin = pin;
    op.grow = 1;
    op.quiet_404 = quiet_gone;
    int e = s3_run(c, &op);
    s3_op_cleanup(&op);
    return e == -ENOENT && quiet_gone ? 0 : e;
}
