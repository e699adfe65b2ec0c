/* http_lite.h - a process's first requests, on the calling thread, without libcurl.
 *
 * libcurl brings some twenty-five libraries (TLS, Kerberos, LDAP, SSH, RTMP...) and the
 * engine its threads: milliseconds a small program (cat, head, stat, ls of one key) would
 * otherwise spend before its first byte. Until the engine has started, a plain-HTTP
 * request that uploads nothing and brings back little is made here instead: one
 * blocking HTTP/1.1 exchange on one kept-alive connection, on the thread that asked.
 * Anything else (https, an upload, a large or parallel read, a second request while one
 * is under way here, a proxy named by http_proxy/all_proxy, which libcurl would use)
 * starts the engine, which then takes every request (http.c).
 *
 * Internal to http.c: it decides, this file talks to the server. */
#ifndef S3SHIM_HTTP_LITE_H
#define S3SHIM_HTTP_LITE_H

#include "http.h"

/* The largest response body a lite request may ask for: the first window of a read
 * (s3_file.c), a HEAD, a listing page. */
#define HTTP_LITE_MAX ((size_t)1 << 20)

/* The parser callbacks the engine gives libcurl; lite feeds them the same way (header
 * lines with their CRLF, body bytes), so both paths fill a request alike. */
size_t http_on_header(char *p, size_t sz, size_t n, void *arg);
size_t http_on_body(char *p, size_t sz, size_t n, void *arg);

/* Shared with the engine's own receive path (http_rx.h), which speaks the same HTTP/1.1:
 * libcurl would send plain-HTTP requests through a proxy named by http_proxy/all_proxy
 * (1: leave them to it); split "http://authority/path?q" (-1: malformed); the request
 * head "METHOD path HTTP/1.1", Host, the caller's headers in curl's conventions ("Name:"
 * with no value leaves the header out, "Name;" sends it empty), the blank line (malloc'd,
 * NULL without memory). */
int http_proxied(void);
int http_host_port(const char *authority, char *host, size_t hcap, char *port, size_t pcap); /* -1: malformed */
int http_split_url(const char *url, char *authority, size_t cap, const char **path);
char *http_request_text(const struct http_req *r, const char *method, const char *authority, const char *path);

/* Whether r is one for this path (plain http, GET or HEAD, no body, a bounded answer);
 * on 1 the caller owns the lite connection until http_lite_run returns. 0: use the
 * engine (nothing was taken). */
int http_lite_claim(const struct http_req *r);
/* Make the claimed request; fills r's response fields (status, curl_code, curl_err...)
 * as the engine would. The caller then completes r. */
void http_lite_run(struct http_req *r, const struct http_settings *set);
/* The engine has started: the kept connection is closed when it is next free. */
void http_lite_retire(void);
/* In a forked child: the parent's connection is not ours. */
void http_lite_atfork_child(void);

#endif
