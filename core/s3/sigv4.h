/* sigv4.h - AWS Signature Version 4 for S3 requests, and the digests S3 asks for.
 *
 * The S3 backend signs every request with the Authorization header form of SigV4
 * (header-based, payload in one piece or UNSIGNED-PAYLOAD). The per-day signing key is
 * four HMACs away from the secret, so it is cached per credential set and recomputed
 * only when the UTC day changes. All crypto is OpenSSL 3 EVP; nothing is hand-written.
 *
 * Encoding is the caller's job for the path and query (s3_uri_encode does it the way S3
 * wants); canonicalising the headers (lowercase names, trimmed values, sorted, duplicates
 * joined with ',') is done here so that what is signed matches what S3 reconstructs. */
#ifndef S3SHIM_SIGV4_H
#define S3SHIM_SIGV4_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

struct sigv4_header {
    const char *name; /* lowercase expected; folded to lowercase anyway */
    const char *value;
};

/* One per endpoint/credential set; sigv4_sign may be called from many threads at once. */
struct sigv4 {
    char region[64], service[16];
    char access_key[256], secret_key[256];
    char *session_token; /* NULL if none (heap, may be long) */
    /* cached signing key for one day (YYYYMMDD), guarded by lock */
    pthread_mutex_t lock;
    char key_day[9];
    unsigned char key[32];
};

/* Copy the credentials in. access_key, secret_key, region and service are required;
 * session_token may be NULL or "". Returns 0, -EINVAL (empty, too long, or characters
 * that cannot appear in a credential scope or a header) or -ENOMEM. On failure *s is
 * left zeroed, so sigv4_free(s) is harmless either way. */
int sigv4_init(struct sigv4 *s, const char *access_key, const char *secret_key, const char *session_token,
               const char *region, const char *service);
/* Wipe the secrets and release. Safe on a zeroed struct. */
void sigv4_free(struct sigv4 *s);

struct sigv4_out {
    char amz_date[17];        /* "20260102T030405Z" -> send as x-amz-date */
    char authorization[1024]; /* full value of the Authorization header */
};

/* Sign one request.
 *   uri      the already-encoded absolute path ("/bucket/a%20b"); "" means "/".
 *   query    the canonical query string ("list-type=2&prefix=a%2Fb": sorted by name then
 *            value, names and values URI-encoded, "name=" for a bare name); "" if none.
 *   headers  extra headers to sign besides host, x-amz-date, x-amz-content-sha256 and
 *            x-amz-security-token, which are always signed (the last only with a session
 *            token). The caller sends those four itself: host (curl does), x-amz-date =
 *            out->amz_date, x-amz-content-sha256 = payload_hash, x-amz-security-token =
 *            s->session_token. Passing one of them in headers is -EINVAL.
 *   payload_hash  lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD".
 *   now      time(NULL)-style UTC seconds.
 * Header values are trimmed and inner runs of blanks collapsed to one space; a value or
 * name with CR, LF or another control character is -EINVAL. Returns 0, -EINVAL, -ENOMEM,
 * -E2BIG (Authorization would not fit in out->authorization) or -EIO (OpenSSL failed). */
int sigv4_sign(struct sigv4 *s, const char *method, const char *host, const char *uri, const char *query,
               const struct sigv4_header *headers, int nheaders, const char *payload_hash, time_t now,
               struct sigv4_out *out);

/* The canonical request sigv4_sign would sign for amz_date ("YYYYMMDDTHHMMSSZ"), as a
 * malloc'd string in *outp. For tests and for logging next to a SignatureDoesNotMatch
 * (S3 returns its own canonical request in that error). Same returns as sigv4_sign. */
int sigv4_canonical_request(const struct sigv4 *s, const char *method, const char *host, const char *uri,
                            const char *query, const struct sigv4_header *headers, int nheaders,
                            const char *payload_hash, const char *amz_date, char **outp);

/* S3 URI-encoding: unreserved A-Za-z0-9-._~ kept, every other byte %XX (uppercase hex);
 * '/' kept when keep_slash (for object keys in a path). Returns the output length, or
 * -ENAMETOOLONG if it does not fit, in which case out is "" (out is always NUL-terminated
 * when outsz > 0). */
int s3_uri_encode(const char *in, size_t len, int keep_slash, char *out, size_t outsz);

/* OpenSSL for the whole life of the process: called once an S3 mount exists, so that
 * uploads still open at exit can be committed from the library destructor (sigv4.c says
 * how). */
void crypto_keep_at_exit(void);
/* 0 once the program has shut OpenSSL down (OPENSSL_cleanup): nothing may be signed,
 * digested or sent over TLS any more. Every digest here checks it and fails cleanly. */
int crypto_alive(void);

/* Lowercase hex SHA-256 of data. out is "" in the (out of memory) case OpenSSL fails. */
void sha256_hex(const void *data, size_t len, char out[65]);
/* base64 of the MD5 of data (for Content-MD5): 24 characters and a NUL; "" on failure. */
void md5_base64(const void *data, size_t len, char out[25]);

/* Incremental SHA-256 for large buffers fed in pieces. sha256_begin returns NULL when out
 * of memory; sha256_update on NULL is a no-op; sha256_end_hex writes the digest (or "" if
 * anything failed, including a NULL ctx) and frees ctx. sha256_abort frees without a
 * result. */
struct sha256_ctx;
struct sha256_ctx *sha256_begin(void);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
void sha256_end_hex(struct sha256_ctx *c, char out[65]);
void sha256_abort(struct sha256_ctx *c);

#endif
