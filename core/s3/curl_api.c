/* curl_api.c - see curl_api.h */
#include "curl_api.h"

#include "../log.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

struct curl_api curlapi;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_result = -ENOSYS;

static void load(void)
{
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        slog_error("cannot load libcurl (needed for s3://): %s", dlerror());
        load_result = -ENOENT;
        return;
    }
#define SYM(field, name) \
    if (!(*(void **)&curlapi.field = dlsym(h, name))) { \
        slog_error("libcurl has no %s: too old?", name); \
        load_result = -ENOSYS; \
        return; \
    }
    SYM(global_init, "curl_global_init")
    SYM(easy_init, "curl_easy_init")
    SYM(easy_setopt, "curl_easy_setopt")
    SYM(easy_getinfo, "curl_easy_getinfo")
    SYM(easy_reset, "curl_easy_reset")
    SYM(easy_cleanup, "curl_easy_cleanup")
    SYM(easy_strerror, "curl_easy_strerror")
    SYM(multi_init, "curl_multi_init")
    SYM(multi_add_handle, "curl_multi_add_handle")
    SYM(multi_remove_handle, "curl_multi_remove_handle")
    SYM(multi_perform, "curl_multi_perform")
    SYM(multi_info_read, "curl_multi_info_read")
    SYM(multi_poll, "curl_multi_poll")
    SYM(multi_wakeup, "curl_multi_wakeup")
    SYM(share_init, "curl_share_init")
    SYM(share_setopt, "curl_share_setopt")
    SYM(slist_append, "curl_slist_append")
    SYM(slist_free_all, "curl_slist_free_all")
#undef SYM
    load_result = 0;
}

int curl_api_load(void)
{
    pthread_once(&once, load);
    return load_result;
}
