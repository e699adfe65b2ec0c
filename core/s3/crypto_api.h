/* crypto_api.h - OpenSSL's libcrypto, loaded on first use.
 *
 * Mapping libcrypto costs about a millisecond of CPU at the start of every process (a
 * 4.7 MB library, thousands of relocations), more than the rest of the shim together.
 * The shim is loaded into every program of a pipeline, and even one that reads S3 needs
 * no digest when its requests are anonymous, so libcrypto is opened with dlopen() when
 * the first signature or digest is made and called through this table. A program that
 * uses OpenSSL itself shares the one instance (dlopen finds it loaded). */
#ifndef S3SHIM_CRYPTO_API_H
#define S3SHIM_CRYPTO_API_H

#include <openssl/crypto.h>
#include <openssl/evp.h>

struct crypto_api {
    __typeof__(OPENSSL_init_crypto) *init_crypto;
    __typeof__(EVP_Q_mac) *Q_mac;
    __typeof__(EVP_Digest) *Digest;
    __typeof__(EVP_DigestInit_ex) *DigestInit_ex;
    __typeof__(EVP_DigestUpdate) *DigestUpdate;
    __typeof__(EVP_DigestFinal_ex) *DigestFinal_ex;
    __typeof__(EVP_EncodeBlock) *EncodeBlock;
    __typeof__(EVP_MD_CTX_new) *MD_CTX_new;
    __typeof__(EVP_MD_CTX_free) *MD_CTX_free;
    __typeof__(EVP_md5) *md5;
    __typeof__(EVP_sha256) *sha256;
};

extern struct crypto_api cryptoapi;

/* Open libcrypto and resolve the table (once; thread-safe): 0, or -errno with a log
 * line. The first load also asks OpenSSL not to tear itself down at exit (sigv4.c). */
int crypto_api_load(void);
/* 1 if libcrypto is in the process already (the program's own, or ours). */
int crypto_api_present(void);

#endif
