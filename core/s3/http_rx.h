/* http_rx.h - plain-HTTP GETs received straight into the caller's buffer, on the engine
 * threads, beside libcurl.
 *
 * libcurl always receives into its own buffer and hands the body to a write callback,
 * which copies it into the read buffer (chunk memory): on a sequential read of a large
 * object that copy was the biggest user-space cost (bench/RESULTS.md, issue 13). A GET
 * into a caller's buffer over plain http (no TLS, no proxy) is made here instead: the
 * request head from http_lite's formatter (the same SigV4 headers libcurl would send),
 * the response head parsed from a small buffer, and the body recv()'d at r->dst + r->got,
 * so the kernel's copy is the only one. Each engine thread drives its transfers
 * non-blocking in its libcurl loop (their sockets are extra descriptors of
 * curl_multi_poll) and keeps its own kept-alive connections per endpoint.
 *
 * Why not http_lite itself: lite is one blocking exchange on the calling thread; this
 * path multiplexes many transfers on one thread and so is a state machine. They share
 * the request formatting, the URL split, the proxy rule and the header and body
 * callbacks (http_on_header/http_on_body), so a request is filled alike on all three
 * paths: status, curl_code and curl_err (libcurl's CURLE_* codes for the same failure),
 * got, overflow, errbody, the timestamps. Retries, hedging, balancing, stats and the
 * op log above cannot tell the paths apart.
 *
 * Internal to http.c. */
#ifndef S3SHIM_HTTP_RX_H
#define S3SHIM_HTTP_RX_H

#include "http.h"

struct curl_waitfd;
struct http_rx; /* one engine thread's transfers and idle connections */

/* Whether r is for this path: a GET into r->dst over plain http, no proxy, and the
 * setting does not ask for libcurl. */
int http_rx_wants(const struct http_req *r, const struct http_settings *set);
struct http_rx *http_rx_new(void);
/* Begin r (connect or take a kept connection, send). 0, or -ENOMEM (nothing taken). */
int http_rx_start(struct http_rx *x, struct http_req *r);
/* Move every transfer as far as it goes without blocking; each one that ends (done or
 * failed) is handed to done() after being forgotten here. */
void http_rx_perform(struct http_rx *x, const struct http_settings *set, void (*done)(struct http_req *r));
/* The descriptors to wait on (*fds grows as needed; *cap its size) and how long the
 * wait may last before a timeout is due (never above max_ms). Returns the count or
 * -ENOMEM. */
int http_rx_waitfds(struct http_rx *x, const struct http_settings *set, struct curl_waitfd **fds, unsigned *cap,
                    int *timeout_ms);
/* Stop r's transfer (its connection is closed); the caller completes r. 0 if r was
 * one of ours. */
int http_rx_abort(struct http_rx *x, struct http_req *r);

#endif
