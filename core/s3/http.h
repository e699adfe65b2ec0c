/* http.h - the engine's HTTP client: libcurl multi handles driven by engine threads.
 *
 * A caller fills a struct http_req, submits it, and waits (or submits many and waits
 * for each: that is how a large read becomes parallel ranged GETs). Each engine thread
 * owns one multi handle; all of them share one connection cache, DNS cache and TLS
 * session cache, so connections are reused across requests, files and threads, and no
 * connection or handle is set up per request once the pool is warm. A response body is
 * written straight into the caller's buffer when one is given (a ranged GET into the
 * program's read buffer), else into a growing heap buffer (XML).
 *
 * The engine is created on first use and rebuilt in a forked child: its threads do not
 * survive fork, and the child must not touch the parent's connections. */
#ifndef S3SHIM_HTTP_H
#define S3SHIM_HTTP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct curl_slist;

struct http_settings {
    int threads;          /* engine threads (multi handles) */
    long connect_timeout_ms;
    long stall_timeout_s; /* abort a transfer that moves < 1 byte/s for this long */
    const char *ca_bundle; /* NULL = system default */
    int insecure;          /* skip TLS verification (never by default) */
    int max_inflight;      /* requests in flight for the whole process; 0 = no limit */
    int curl_only;         /* libcurl for every request (S3SHIM_HTTP_RECV=curl): no http_lite, no http_rx */
};

struct http_req {
    /* --- request, set by the caller --- */
    const char *method;        /* "GET", "PUT", "HEAD", "POST", "DELETE" */
    const char *url;
    struct curl_slist *headers; /* owned by the caller */
    const void *body;          /* upload from memory (PUT/POST), body_len bytes */
    size_t body_len;
    void *dst;                 /* write the response body here (up to dst_cap bytes)... */
    size_t dst_cap;
    int grow;                  /* ...or into heap memory (resp, resp_len) when set */
    _Atomic uint64_t *rx_tally; /* optional: body bytes landing in dst are added here */
    int no_lite;               /* never on the calling thread (http_lite): its waiter may want a backup */
    /* optional, 0 = none: the body waits in the socket, not received, until
     * http_redirect() hands over a buffer or the stats_now_ns() clock passes this; for a
     * reader about to read the whole range, whose buffer it then lands in without a copy
     * (honoured by http_rx.c only; libcurl and http_lite receive at once) */
    _Atomic uint64_t hold_until;

    /* --- response, set by the engine --- */
    long status;     /* HTTP status, 0 if no response */
    int curl_code;   /* CURLcode, 0 = transfer fine */
    char curl_err[256];
    size_t got;      /* body bytes received */
    char *resp;      /* with grow: the body, NUL-terminated; free() it */
    size_t resp_len;
    char etag[128];  /* quotes kept, as the server sent it */
    char last_modified[64];
    int64_t content_length;   /* -1 if absent */
    int64_t range_total;      /* from Content-Range ".../TOTAL", -1 if absent */
    int overflow;             /* the server sent more than dst_cap */
    long hdr_status;          /* status line as it arrived (error bodies never reach dst) */
    char *errbody;            /* body of a >= 300 response when dst was given; free() it */
    size_t errbody_len;
    uint64_t t_submit, t_first_byte, t_done; /* stats_now_ns() clock */
    uint64_t held_ns; /* of that, how long the body waited for a buffer (hold_until) */

    /* --- completion --- */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC, like stats_now_ns() */
    pthread_mutex_t dst_mu; /* dst and got while the body lands there (http_redirect) */
    _Atomic int done;
    int cancelled; /* ended by http_cancel() (curl_code is CURLE_ABORTED_BY_CALLBACK) */
    void (*on_done)(struct http_req *r, void *arg); /* optional, runs on an engine thread */
    void *on_done_arg;
    /* optional, runs on the engine thread as the transfer ends, before anyone is woken:
     * the place for bookkeeping that must not wait until the owner collects the result */
    void (*observe)(struct http_req *r, void *arg);
    void *observe_arg;
    struct http_group *group; /* also woken at completion (http_group_attach) */
    void *engine_private, *engine_worker, *engine_handle, *cancel_next;
    int finished, cancel_queued; /* under the worker's queue lock */
    int engine_rx;               /* received by http_rx.c, not libcurl */
};

/* Waiting for the first of several requests: attach each to one group, then wait on
 * the group. The group must outlive every attached request's completion. */
struct http_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Initialise the process-wide engine's settings (before first use; later calls after
 * start-up are ignored). */
void http_configure(const struct http_settings *s);
/* Prepare a request structure (zeroes it, sets up its wait state). */
void http_req_init(struct http_req *r);
void http_req_cleanup(struct http_req *r); /* frees resp; the caller owns headers */
/* Start a transfer; returns 0, or -errno if the engine cannot run (the request is then
 * complete with curl_code set). */
int http_submit(struct http_req *r);
void http_wait(struct http_req *r);
/* Wait until the request completes or stats_now_ns() reaches deadline_ns. 1 if done. */
int http_wait_until(struct http_req *r, uint64_t deadline_ns);
/* Abort a submitted transfer (it completes promptly with r->cancelled set; wait for it
 * with http_wait before reusing its buffers). Does nothing if it already completed. */
void http_cancel(struct http_req *r);
/* Give a transfer in flight another destination of the same capacity: the rest of the
 * body lands in ndst. Returns how many bytes had already landed in the old dst (the
 * caller copies them over itself; nothing writes below that offset of either buffer
 * any more). The caller must own ndst until http_wait() returns, and must itself update
 * whatever later attempts are sent with. A held body (hold_until) goes on at once. */
size_t http_redirect(struct http_req *r, void *ndst);
/* A held body (hold_until) goes on now, into dst as it is. */
void http_release_hold(struct http_req *r);
/* Are half or more of the process's requests in flight (S3SHIM_MAX_REQUESTS) taken? A
 * held body keeps its slot until its reader comes, and a reader that waits for a slot
 * (http_submit) while others' held bodies wait for it would stall them all. */
int http_flights_scarce(void);
void http_group_init(struct http_group *g);
void http_group_destroy(struct http_group *g);
void http_group_attach(struct http_req *r, struct http_group *g);
/* Wait until one of the n requests (all attached to g) is done, or the deadline
 * (0 = none) passes. Returns the index of a done request, or -1 at the deadline. */
int http_group_wait(struct http_group *g, struct http_req *const *rs, int n, uint64_t deadline_ns);
/* Request headers ("Name: value" lines), built without libcurl: the list is libcurl's
 * public struct curl_slist, which it only reads, but made and freed here, so that a
 * request the engine never sees (http_lite.h) does not load libcurl. */
int http_header_add(struct curl_slist **list, const char *line); /* 0 or -ENOMEM */
void http_headers_free(struct curl_slist **list);
/* fork: prepare wakes every engine thread and holds it parked outside libcurl until
 * parent runs; in the child the parent's engine is forgotten (its threads are gone) and
 * a new one starts on first use. */
void http_atfork_prepare(void);
void http_atfork_parent(void);
void http_atfork_child(void);
/* A short text for a failed transfer ("connection refused", "timeout"...). */
const char *http_strerror(const struct http_req *r);

#endif
