/* curl_api.h - libcurl, loaded on first use.
 *
 * libcurl brings some twenty-five libraries with it (TLS, Kerberos, LDAP, SSH...), and
 * mapping them costs about 8 ms at the start of every process. The shim is loaded into
 * every program of a pipeline, most of which never touch S3, so libcurl is opened with
 * dlopen() when the engine starts (the first request http_lite.c cannot make) and
 * called through this table. */
#ifndef S3SHIM_CURL_API_H
#define S3SHIM_CURL_API_H

#include <curl/curl.h>

struct curl_api {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_reset)(CURL *);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
    CURLMcode (*multi_wakeup)(CURLM *);
    CURLSH *(*share_init)(void);
    CURLSHcode (*share_setopt)(CURLSH *, CURLSHoption, ...);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
};

extern struct curl_api curlapi;

/* Open libcurl and resolve the table (once; thread-safe). 0, or -errno with a log line. */
int curl_api_load(void);

#endif
