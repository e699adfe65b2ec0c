/* sigv4.c - see sigv4.h.
 *
 * Why the pieces look the way they do:
 * - the canonical request is built as one string (not hashed piecemeal) so that it can be
 *   compared byte for byte with AWS's published examples and logged on a mismatch;
 * - header canonicalisation copies every name and value once into a single block, sorts
 *   pointers into it, and joins repeated names with ',' as the spec says;
 * - the signing key is derived under the mutex and copied out, so the final HMAC runs
 *   without holding it. */
#include "sigv4.h"

#include "crypto_api.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------------------ */

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- OpenSSL's life ------------------------------------------------------------------ */

/* OpenSSL tears itself down from an atexit handler it registers the first time it is
 * initialised (OPENSSL_cleanup). For a process that initialises it in main() that handler
 * runs before the library destructors, where uploads still open at exit are committed:
 * digests and TLS after it crash. Asking first, with OPENSSL_INIT_NO_ATEXIT, means no such
 * handler is ever registered: the memory is the kernel's to reclaim when the process ends.
 * The choice is made once per process by whoever initialises OpenSSL first. We do it as
 * we load libcrypto (crypto_api.c: at the first signature or digest), or when the S3
 * mount is set up if the program has libcrypto loaded already: before the program can,
 * unless it initialised OpenSSL itself before either (its exit then loses what is
 * still open, with a log line saying why: s3_file.c). */
void crypto_keep_at_exit(void)
{
    if (crypto_api_present()) (void)crypto_api_load();
}

/* OPENSSL_init_crypto() answers 0 without touching anything once OPENSSL_cleanup() has
 * run (BASE_ONLY: not even the error queue): the one question that is safe to ask then.
 * The flag is not exported, but crypto.h reserves its value and OpenSSL's own error code
 * passes it for exactly this. */
#ifndef OPENSSL_INIT_BASE_ONLY
#define OPENSSL_INIT_BASE_ONLY 0x00040000L
#endif
int crypto_alive(void) { return crypto_api_load() == 0 && cryptoapi.init_crypto(OPENSSL_INIT_BASE_ONLY, NULL) == 1; }

static int hmac_sha256(const void *key, size_t klen, const void *data, size_t dlen, unsigned char out[32])
{
    size_t outlen = 0;
    if (!crypto_alive()) return -EIO;
    if (!cryptoapi.Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, klen, data, dlen, out, 32, &outlen) || outlen != 32)
        return -EIO;
    return 0;
}

/* Copy src into dst[dstsz]; -EINVAL if empty or too long. */
static int copy_field(char *dst, size_t dstsz, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n == 0 || n >= dstsz) return -EINVAL;
    memcpy(dst, src, n + 1);
    return 0;
}

/* Characters a credential-scope element (access key, region, service) may not contain:
 * '/' separates the scope, ',' and '=' the Authorization fields, blanks and controls
 * would corrupt the header. */
static int scope_safe(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '/' || *p == ',' || *p == '=') return 0;
    return 1;
}

/* No CR, LF or other control character (tab allowed): safe as an HTTP header value. */
static int header_value_safe(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < ' ' && *p != '\t') || *p == 0x7f) return 0;
    return 1;
}

/* RFC 7230 token character (what an HTTP header name is made of). */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* ---- init/free ---------------------------------------------------------------------- */

int sigv4_init(struct sigv4 *s, const char *access_key, const char *secret_key, const char *session_token,
               const char *region, const char *service)
{
    memset(s, 0, sizeof *s);
    if (copy_field(s->access_key, sizeof s->access_key, access_key) < 0 || !scope_safe(s->access_key) ||
        copy_field(s->secret_key, sizeof s->secret_key, secret_key) < 0 ||
        copy_field(s->region, sizeof s->region, region) < 0 || !scope_safe(s->region) ||
        copy_field(s->service, sizeof s->service, service) < 0 || !scope_safe(s->service))
        goto invalid;
    if (session_token && *session_token) {
        if (!header_value_safe(session_token)) goto invalid;
        s->session_token = strdup(session_token);
        if (!s->session_token) {
            explicit_bzero(s, sizeof *s);
            return -ENOMEM;
        }
    }
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s->session_token);
        explicit_bzero(s, sizeof *s);
        return -ENOMEM;
    }
    return 0;
invalid:
    explicit_bzero(s, sizeof *s);
    return -EINVAL;
}

void sigv4_free(struct sigv4 *s)
{
    if (s->session_token) {
        explicit_bzero(s->session_token, strlen(s->session_token));
        free(s->session_token);
    }
    pthread_mutex_destroy(&s->lock);
    explicit_bzero(s, sizeof *s);
}

/* ---- a growable string -------------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* ---- header canonicalisation -------------------------------------------------------- */

struct chdr {
    const char *name, *value; /* both inside the block */
    int order;                /* position given, so repeated names keep their order */
};

/* Lowercase name into dst; returns the bytes written including the NUL, or 0 if the name
 * is empty or not a token. */
static size_t canon_name(const char *name, char *dst)
{
    size_t i = 0;
    for (; name[i]; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!is_tchar(c)) return 0;
        dst[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    dst[i] = '\0';
    return i ? i + 1 : 0;
}

/* Trim blanks at both ends and collapse inner runs of blanks into one space; returns the
 * bytes written including the NUL. */
static size_t canon_value(const char *v, char *dst)
{
    size_t o = 0;
    int pending_space = 0;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            pending_space = o > 0;
            continue;
        }
        if (pending_space) dst[o++] = ' ';
        pending_space = 0;
        dst[o++] = *v;
    }
    dst[o] = '\0';
    return o + 1;
}

static int chdr_cmp(const void *a, const void *b)
{
    const struct chdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static int is_builtin_header(const char *lname)
{
    return strcmp(lname, "host") == 0 || strcmp(lname, "x-amz-date") == 0 ||
           strcmp(lname, "x-amz-content-sha256") == 0 || strcmp(lname, "x-amz-security-token") == 0;
}

/* Canonicalise the built-in and the caller's headers into h[] (pointing into *blockp,
 * which the caller frees), sorted. Returns the count or -errno. */
static int collect_headers(const struct sigv4 *s, const char *host, const char *amz_date, const char *payload_hash,
                           const struct sigv4_header *headers, int nheaders, struct chdr *h, char **blockp)
{
    const char *bn[4] = {"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"};
    const char *bv[4] = {host, amz_date, payload_hash, s->session_token};
    int nb = s->session_token ? 4 : 3;
    size_t total = 0;
    for (int i = 0; i < nb; i++) total += strlen(bn[i]) + strlen(bv[i]) + 2;
    for (int i = 0; i < nheaders; i++) {
        if (!headers[i].name || !headers[i].value) return -EINVAL;
        total += strlen(headers[i].name) + strlen(headers[i].value) + 2;
    }
    char *block = malloc(total), *w = block;
    if (!block) return -ENOMEM;
    *blockp = block;
    int n = 0;
    for (int i = 0; i < nb + nheaders; i++) {
        const char *name = i < nb ? bn[i] : headers[i - nb].name;
        const char *value = i < nb ? bv[i] : headers[i - nb].value;
        if (!header_value_safe(value)) return -EINVAL;
        size_t k = canon_name(name, w);
        if (k == 0 || (i >= nb && is_builtin_header(w))) return -EINVAL;
        h[n].name = w;
        w += k;
        h[n].value = w;
        w += canon_value(value, w);
        h[n].order = i;
        n++;
    }
    qsort(h, (size_t)n, sizeof *h, chdr_cmp);
    return n;
}

/* Append "name:value\n" lines (repeated names joined with ',') to canon and
 * "name;name..." to signed_hdrs. */
static void render_headers(const struct chdr *h, int n, struct sbuf *canon, struct sbuf *signed_hdrs)
{
    for (int i = 0; i < n; i++) {
        if (i > 0 && strcmp(h[i].name, h[i - 1].name) == 0) {
            if (!canon->oom) canon->len--; /* drop the '\n' and continue the previous line */
            sb_str(canon, ",");
        } else {
            if (i > 0) sb_str(signed_hdrs, ";");
            sb_str(signed_hdrs, h[i].name);
            sb_str(canon, h[i].name);
            sb_str(canon, ":");
        }
        sb_str(canon, h[i].value);
        sb_str(canon, "\n");
    }
}

static int simple_token(const char *v)
{
    if (!v || !*v) return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == 0x7f) return 0;
    return 1;
}

/* Build the canonical request into *canon and the signed-header list into *signed_hdrs
 * (both heap; freed by the caller even on error). */
static int build_canonical(const struct sigv4 *s, const char *method, const char *host, const char *uri,
                           const char *query, const struct sigv4_header *headers, int nheaders,
                           const char *payload_hash, const char *amz_date, struct sbuf *canon,
                           struct sbuf *signed_hdrs)
{
    if (!simple_token(method) || !simple_token(host) || !simple_token(payload_hash) || !uri || !query ||
        nheaders < 0 || (nheaders > 0 && !headers) || nheaders > 10000)
        return -EINVAL;
    if ((*uri && (*uri != '/' || !simple_token(uri))) || (*query && !simple_token(query))) return -EINVAL;
    struct chdr *h = malloc(sizeof *h * (size_t)(nheaders + 4));
    char *block = NULL;
    if (!h) return -ENOMEM;
    int n = collect_headers(s, host, amz_date, payload_hash, headers, nheaders, h, &block);
    if (n >= 0) {
        sb_str(canon, method);
        sb_str(canon, "\n");
        sb_str(canon, *uri ? uri : "/");
        sb_str(canon, "\n");
        sb_str(canon, query);
        sb_str(canon, "\n");
        render_headers(h, n, canon, signed_hdrs);
        sb_str(canon, "\n");
        sb_add(canon, signed_hdrs->p ? signed_hdrs->p : "", signed_hdrs->len);
        sb_str(canon, "\n");
        sb_str(canon, payload_hash);
        if (canon->oom || signed_hdrs->oom) n = -ENOMEM;
    }
    free(block);
    free(h);
    return n < 0 ? n : 0;
}

int sigv4_canonical_request(const struct sigv4 *s, const char *method, const char *host, const char *uri,
                            const char *query, const struct sigv4_header *headers, int nheaders,
                            const char *payload_hash, const char *amz_date, char **outp)
{
    struct sbuf canon = {0}, sh = {0};
    *outp = NULL;
    if (!simple_token(amz_date)) return -EINVAL;
    int r = build_canonical(s, method, host, uri, query, headers, nheaders, payload_hash, amz_date, &canon, &sh);
    free(sh.p);
    if (r < 0) {
        free(canon.p);
        return r;
    }
    *outp = canon.p;
    return 0;
}

/* ---- signing ------------------------------------------------------------------------ */

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request") */
static int derive_key(const struct sigv4 *s, const char *day, unsigned char key[32])
{
    char k0[4 + sizeof s->secret_key];
    int n = snprintf(k0, sizeof k0, "AWS4%s", s->secret_key);
    unsigned char a[32], b[32];
    int r = hmac_sha256(k0, (size_t)n, day, strlen(day), a);
    if (r == 0) r = hmac_sha256(a, 32, s->region, strlen(s->region), b);
    if (r == 0) r = hmac_sha256(b, 32, s->service, strlen(s->service), a);
    if (r == 0) r = hmac_sha256(a, 32, "aws4_request", 12, key);
    explicit_bzero(k0, sizeof k0);
    explicit_bzero(a, sizeof a);
    explicit_bzero(b, sizeof b);
    return r;
}

/* The signing key for day (YYYYMMDD), from the cache or freshly derived into it. */
static int signing_key(struct sigv4 *s, const char *day, unsigned char key[32])
{
    int r = 0;
    pthread_mutex_lock(&s->lock);
    if (strcmp(s->key_day, day) != 0) {
        r = derive_key(s, day, s->key);
        if (r == 0)
            memcpy(s->key_day, day, 9);
        else
            s->key_day[0] = '\0';
    }
    if (r == 0) memcpy(key, s->key, 32);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int format_amz_date(time_t now, char out[17])
{
    struct tm tm;
    if (!gmtime_r(&now, &tm) || tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999) return -EINVAL;
    return strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) == 16 ? 0 : -EINVAL;
}

int sigv4_sign(struct sigv4 *s, const char *method, const char *host, const char *uri, const char *query,
               const struct sigv4_header *headers, int nheaders, const char *payload_hash, time_t now,
               struct sigv4_out *out)
{
    out->amz_date[0] = out->authorization[0] = '\0';
    char amz_date[17], day[9], hash[65], sts[256], sig[65];
    unsigned char key[32], mac[32];
    int r = format_amz_date(now, amz_date);
    if (r < 0) return r;
    struct sbuf canon = {0}, sh = {0};
    r = build_canonical(s, method, host, uri, query, headers, nheaders, payload_hash, amz_date, &canon, &sh);
    if (r == 0) {
        sha256_hex(canon.p, canon.len, hash);
        if (!hash[0]) r = -EIO;
    }
    free(canon.p);
    memcpy(day, amz_date, 8);
    day[8] = '\0';
    if (r == 0) {
        snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amz_date, day, s->region,
                 s->service, hash);
        r = signing_key(s, day, key);
    }
    if (r == 0) r = hmac_sha256(key, sizeof key, sts, strlen(sts), mac);
    explicit_bzero(key, sizeof key);
    if (r == 0) {
        hex_encode(mac, sizeof mac, sig);
        int n = snprintf(out->authorization, sizeof out->authorization,
                         "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request,SignedHeaders=%s,Signature=%s",
                         s->access_key, day, s->region, s->service, sh.p, sig);
        if (n < 0 || (size_t)n >= sizeof out->authorization) {
            out->authorization[0] = '\0';
            r = -E2BIG;
        } else {
            memcpy(out->amz_date, amz_date, sizeof amz_date);
        }
    }
    free(sh.p);
    return r;
}

/* ---- URI encoding ------------------------------------------------------------------- */

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

int s3_uri_encode(const char *in, size_t len, int keep_slash, char *out, size_t outsz)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int plain = unreserved(c) || (keep_slash && c == '/');
        size_t need = plain ? 1 : 3;
        if (o + need >= outsz || o + need > INT32_MAX) {
            if (outsz) out[0] = '\0';
            return -ENAMETOOLONG;
        }
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = digits[c >> 4];
            out[o++] = digits[c & 15];
        }
    }
    if (o >= outsz) return -ENAMETOOLONG; /* only when outsz == 0 */
    out[o] = '\0';
    return (int)o;
}

/* ---- digests ------------------------------------------------------------------------ */

void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!crypto_alive() || !cryptoapi.Digest(data, len, md, &mdlen, cryptoapi.sha256(), NULL) || mdlen != 32) {
        out[0] = '\0';
        return;
    }
    hex_encode(md, 32, out);
}

void md5_base64(const void *data, size_t len, char out[25])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!crypto_alive() || !cryptoapi.Digest(data, len, md, &mdlen, cryptoapi.md5(), NULL) || mdlen != 16 ||
        cryptoapi.EncodeBlock((unsigned char *)out, md, 16) != 24)
        out[0] = '\0';
}

struct sha256_ctx {
    EVP_MD_CTX *md;
    int failed;
};

struct sha256_ctx *sha256_begin(void)
{
    if (!crypto_alive()) return NULL;
    struct sha256_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->md = cryptoapi.MD_CTX_new();
    if (!c->md || !cryptoapi.DigestInit_ex(c->md, cryptoapi.sha256(), NULL)) {
        cryptoapi.MD_CTX_free(c->md);
        free(c);
        return NULL;
    }
    return c;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
    if (c && !c->failed && len && !cryptoapi.DigestUpdate(c->md, data, len)) c->failed = 1;
}

void sha256_end_hex(struct sha256_ctx *c, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    if (!c) return;
    if (!c->failed && cryptoapi.DigestFinal_ex(c->md, md, &mdlen) && mdlen == 32) hex_encode(md, 32, out);
    sha256_abort(c);
}

void sha256_abort(struct sha256_ctx *c)
{
    if (!c) return;
    cryptoapi.MD_CTX_free(c->md);
    free(c);
}
