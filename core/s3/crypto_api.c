/* crypto_api.c - see crypto_api.h */
#include "crypto_api.h"

#include "../log.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

#define LIBCRYPTO "libcrypto.so.3"

struct crypto_api cryptoapi;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_result = -ENOSYS;

static void load(void)
{
    void *h = dlopen(LIBCRYPTO, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        slog_error("cannot load %s (needed to sign S3 requests and digest uploads): %s", LIBCRYPTO, dlerror());
        load_result = -ENOENT;
        return;
    }
#define SYM(field, name) \
    if (!(*(void **)&cryptoapi.field = dlsym(h, name))) { \
        slog_error("%s has no %s", LIBCRYPTO, name); \
        load_result = -ENOSYS; \
        return; \
    }
    SYM(init_crypto, "OPENSSL_init_crypto")
    SYM(Q_mac, "EVP_Q_mac")
    SYM(Digest, "EVP_Digest")
    SYM(DigestInit_ex, "EVP_DigestInit_ex")
    SYM(DigestUpdate, "EVP_DigestUpdate")
    SYM(DigestFinal_ex, "EVP_DigestFinal_ex")
    SYM(EncodeBlock, "EVP_EncodeBlock")
    SYM(MD_CTX_new, "EVP_MD_CTX_new")
    SYM(MD_CTX_free, "EVP_MD_CTX_free")
    SYM(md5, "EVP_md5")
    SYM(sha256, "EVP_sha256")
#undef SYM
    /* before anything of ours initialises it: see "OpenSSL's life" in sigv4.c */
    (void)cryptoapi.init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
    load_result = 0;
}

int crypto_api_load(void)
{
    pthread_once(&once, load);
    return load_result;
}

int crypto_api_present(void)
{
    void *h = dlopen(LIBCRYPTO, RTLD_NOW | RTLD_NOLOAD);
    if (h) dlclose(h);
    return h != NULL;
}
