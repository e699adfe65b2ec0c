/* test_sigv4.c - SigV4 signing, S3 URI encoding and digests (core/sigv4.c).
 *
 * The four signing vectors are the worked examples of AWS's "Signature Calculations for
 * the Authorization Header: Transferring Payload in a Single Chunk" page (S3 API
 * reference): GET Object with Range, PUT Object, GET Bucket lifecycle, GET Bucket (list
 * objects). Their canonical requests are checked byte for byte, then the signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/s3/sigv4.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define HOST "examplebucket.s3.amazonaws.com"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SCOPE "Credential=" AK "/20130524/us-east-1/s3/aws4_request"
#define GET_SIG "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"

static time_t at(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return timegm(&tm);
}

static time_t example_time(void) { return at(2013, 5, 24, 0, 0, 0); }

static int setup(void **state)
{
    struct sigv4 *s = calloc(1, sizeof *s);
    if (!s || sigv4_init(s, AK, SK, NULL, "us-east-1", "s3") != 0) return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    sigv4_free(*state);
    free(*state);
    return 0;
}

static const struct sigv4_header range_hdr[] = {{"range", "bytes=0-9"}};

static void sign_get(struct sigv4 *s, time_t now, struct sigv4_out *o)
{
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/test.txt", "", range_hdr, 1, EMPTY_SHA, now, o), 0);
}

static const char *sig_of(const struct sigv4_out *o)
{
    const char *p = strstr(o->authorization, "Signature=");
    assert_non_null(p);
    return p + 10;
}

static void expect_canonical(const struct sigv4 *s, const char *method, const char *uri, const char *query,
                             const struct sigv4_header *h, int nh, const char *payload, const char *want,
                             const char *want_hash)
{
    char *c = NULL;
    assert_int_equal(sigv4_canonical_request(s, method, HOST, uri, query, h, nh, payload, "20130524T000000Z", &c), 0);
    assert_string_equal(c, want);
    char hash[65];
    sha256_hex(c, strlen(c), hash);
    assert_string_equal(hash, want_hash);
    free(c);
}

/* ---- the AWS examples ----------------------------------------------------------------- */

static void test_example_get_object(void **state)
{
    struct sigv4 *s = *state;
    expect_canonical(s, "GET", "/test.txt", "", range_hdr, 1, EMPTY_SHA,
                     "GET\n/test.txt\n\n"
                     "host:examplebucket.s3.amazonaws.com\n"
                     "range:bytes=0-9\n"
                     "x-amz-content-sha256:" EMPTY_SHA "\n"
                     "x-amz-date:20130524T000000Z\n\n"
                     "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA,
                     "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    struct sigv4_out o;
    sign_get(s, example_time(), &o);
    assert_string_equal(o.amz_date, "20130524T000000Z");
    assert_string_equal(o.authorization, "AWS4-HMAC-SHA256 " SCOPE
                                         ",SignedHeaders=host;range;x-amz-content-sha256;x-amz-date"
                                         ",Signature=" GET_SIG);
}

static void test_example_put_object(void **state)
{
    struct sigv4 *s = *state;
    const char *body = "Welcome to Amazon S3.";
    char hash[65], uri[64] = "/";
    sha256_hex(body, strlen(body), hash);
    assert_string_equal(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    assert_int_equal(s3_uri_encode("test$file.text", 14, 1, uri + 1, sizeof uri - 1), 16);
    assert_string_equal(uri, "/test%24file.text");
    /* given out of order and with a capital, on purpose */
    const struct sigv4_header h[] = {{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                                     {"Date", "Fri, 24 May 2013 00:00:00 GMT"}};
    expect_canonical(s, "PUT", uri, "", h, 2, hash,
                     "PUT\n/test%24file.text\n\n"
                     "date:Fri, 24 May 2013 00:00:00 GMT\n"
                     "host:examplebucket.s3.amazonaws.com\n"
                     "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
                     "x-amz-date:20130524T000000Z\n"
                     "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
                     "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
                     "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
                     "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
    struct sigv4_out o;
    assert_int_equal(sigv4_sign(s, "PUT", HOST, uri, "", h, 2, hash, example_time(), &o), 0);
    assert_string_equal(o.authorization,
                        "AWS4-HMAC-SHA256 " SCOPE
                        ",SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class"
                        ",Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

static void test_example_get_lifecycle(void **state)
{
    struct sigv4 *s = *state;
    expect_canonical(s, "GET", "/", "lifecycle=", NULL, 0, EMPTY_SHA,
                     "GET\n/\nlifecycle=\n"
                     "host:examplebucket.s3.amazonaws.com\n"
                     "x-amz-content-sha256:" EMPTY_SHA "\n"
                     "x-amz-date:20130524T000000Z\n\n"
                     "host;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA,
                     "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
    struct sigv4_out o;
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/", "lifecycle=", NULL, 0, EMPTY_SHA, example_time(), &o), 0);
    assert_string_equal(o.authorization,
                        "AWS4-HMAC-SHA256 " SCOPE ",SignedHeaders=host;x-amz-content-sha256;x-amz-date"
                        ",Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    /* "" stands for "/" */
    assert_int_equal(sigv4_sign(s, "GET", HOST, "", "lifecycle=", NULL, 0, EMPTY_SHA, example_time(), &o), 0);
    assert_string_equal(sig_of(&o), "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

static void test_example_list_objects(void **state)
{
    struct sigv4 *s = *state;
    expect_canonical(s, "GET", "/", "max-keys=2&prefix=J", NULL, 0, EMPTY_SHA,
                     "GET\n/\nmax-keys=2&prefix=J\n"
                     "host:examplebucket.s3.amazonaws.com\n"
                     "x-amz-content-sha256:" EMPTY_SHA "\n"
                     "x-amz-date:20130524T000000Z\n\n"
                     "host;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA,
                     "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
    struct sigv4_out o;
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/", "max-keys=2&prefix=J", NULL, 0, EMPTY_SHA, example_time(), &o), 0);
    assert_string_equal(o.authorization,
                        "AWS4-HMAC-SHA256 " SCOPE ",SignedHeaders=host;x-amz-content-sha256;x-amz-date"
                        ",Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

/* ---- header canonicalisation ---------------------------------------------------------- */

static void test_header_values_trimmed_and_collapsed(void **state)
{
    struct sigv4 *s = *state;
    const struct sigv4_header messy[] = {{"x-amz-storage-class", "  REDUCED_REDUNDANCY\t "},
                                         {"DATE", "Fri,   24 May\t\t2013  00:00:00   GMT"}};
    const char *hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    struct sigv4_out o;
    assert_int_equal(sigv4_sign(s, "PUT", HOST, "/test%24file.text", "", messy, 2, hash, example_time(), &o), 0);
    assert_string_equal(sig_of(&o), "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    /* an empty value is signed as "name:" */
    const struct sigv4_header empty[] = {{"x-amz-meta-e", "   "}};
    char *c = NULL;
    assert_int_equal(sigv4_canonical_request(s, "GET", HOST, "/k", "", empty, 1, EMPTY_SHA, "20130524T000000Z", &c), 0);
    assert_non_null(strstr(c, "\nx-amz-meta-e:\n"));
    assert_non_null(strstr(c, "\nhost;x-amz-content-sha256;x-amz-date;x-amz-meta-e\n"));
    free(c);
}

static void test_repeated_header_names_joined(void **state)
{
    struct sigv4 *s = *state;
    const struct sigv4_header h[] = {{"x-amz-meta-b", "2"}, {"x-amz-meta-a", "z"}, {"X-Amz-Meta-B", " 1 "}};
    char *c = NULL;
    assert_int_equal(sigv4_canonical_request(s, "GET", HOST, "/k", "", h, 3, EMPTY_SHA, "20130524T000000Z", &c), 0);
    assert_string_equal(c, "GET\n/k\n\nhost:" HOST "\nx-amz-content-sha256:" EMPTY_SHA
                           "\nx-amz-date:20130524T000000Z\nx-amz-meta-a:z\nx-amz-meta-b:2,1\n\n"
                           "host;x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-meta-b\n" EMPTY_SHA);
    free(c);
}

static void test_header_order_does_not_matter(void **state)
{
    struct sigv4 *s = *state;
    const struct sigv4_header a[] = {{"x-amz-meta-1", "a"}, {"content-type", "text/plain"}, {"if-match", "\"e\""}};
    const struct sigv4_header b[] = {{"if-match", "\"e\""}, {"x-amz-meta-1", "a"}, {"content-type", "text/plain"}};
    struct sigv4_out oa, ob;
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", a, 3, "UNSIGNED-PAYLOAD", example_time(), &oa), 0);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", b, 3, "UNSIGNED-PAYLOAD", example_time(), &ob), 0);
    assert_string_equal(oa.authorization, ob.authorization);
    assert_non_null(strstr(oa.authorization, "SignedHeaders=content-type;host;if-match;x-amz-content-sha256;"
                                             "x-amz-date;x-amz-meta-1,"));
}

static void test_unsigned_payload(void **state)
{
    struct sigv4 *s = *state;
    char *c = NULL;
    assert_int_equal(sigv4_canonical_request(s, "GET", HOST, "/test.txt", "", range_hdr, 1, "UNSIGNED-PAYLOAD",
                                             "20130524T000000Z", &c),
                     0);
    assert_non_null(strstr(c, "\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n"));
    size_t n = strlen(c);
    assert_true(n > 17 && strcmp(c + n - 17, "\nUNSIGNED-PAYLOAD") == 0);
    free(c);
    struct sigv4_out o;
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/test.txt", "", range_hdr, 1, "UNSIGNED-PAYLOAD", example_time(), &o), 0);
    assert_string_not_equal(sig_of(&o), GET_SIG);
}

static void test_bad_requests_refused(void **state)
{
    struct sigv4 *s = *state;
    struct sigv4_out o;
    time_t t = example_time();
    const struct sigv4_header crlf[] = {{"x-amz-meta-a", "v\r\nx-evil: 1"}};
    const struct sigv4_header lf[] = {{"x-amz-meta-a", "v\nx"}};
    const struct sigv4_header badname[] = {{"x amz", "v"}};
    const struct sigv4_header colon[] = {{"x:y", "v"}};
    const struct sigv4_header emptyname[] = {{"", "v"}};
    const struct sigv4_header nullval[] = {{"x-a", NULL}};
    const struct sigv4_header dup_host[] = {{"Host", "other"}};
    const struct sigv4_header dup_date[] = {{"x-amz-date", "20130524T000000Z"}};
    const struct sigv4_header dup_sha[] = {{"x-amz-content-sha256", EMPTY_SHA}};
    const struct sigv4_header dup_tok[] = {{"x-amz-security-token", "t"}};
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", crlf, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_string_equal(o.authorization, "");
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", lf, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", badname, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", colon, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", emptyname, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", nullval, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", dup_host, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", dup_date, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", dup_sha, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", dup_tok, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", NULL, 1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", range_hdr, -1, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "", HOST, "/k", "", NULL, 0, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", "", "/k", "", NULL, 0, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", "h\r\nx", "/k", "", NULL, 0, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "k", "", NULL, 0, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/a b", "", NULL, 0, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "a=b c", NULL, 0, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", NULL, 0, "", t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, NULL, "", NULL, 0, EMPTY_SHA, t, &o), -EINVAL);
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", NULL, NULL, 0, EMPTY_SHA, t, &o), -EINVAL);
    /* a year that does not fit the 16-character x-amz-date */
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", NULL, 0, EMPTY_SHA, (time_t)400000000000LL, &o), -EINVAL);
    assert_string_equal(o.amz_date, "");
    /* and after all that, it still signs */
    sign_get(s, t, &o);
    assert_string_equal(sig_of(&o), GET_SIG);
}

static void test_authorization_too_long(void **state)
{
    struct sigv4 *s = *state;
    enum { N = 40 };
    struct sigv4_header h[N];
    char names[N][48];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "x-amz-meta-long-header-%02d", i);
        h[i] = (struct sigv4_header){names[i], "v"};
    }
    struct sigv4_out o;
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", h, N, EMPTY_SHA, example_time(), &o), -E2BIG);
    assert_string_equal(o.authorization, "");
    assert_int_equal(sigv4_sign(s, "GET", HOST, "/k", "", h, 10, EMPTY_SHA, example_time(), &o), 0);
}

/* ---- session token -------------------------------------------------------------------- */

static void test_session_token_signed(void **state)
{
    (void)state;
    struct sigv4 s;
    /* a long token, as STS hands out */
    char tok[2100];
    for (size_t i = 0; i < sizeof tok - 1; i++) tok[i] = "ABCDEFGHabcdefgh0123456789+/="[i % 29];
    tok[sizeof tok - 1] = '\0';
    assert_int_equal(sigv4_init(&s, AK, SK, tok, "us-east-1", "s3"), 0);
    assert_non_null(s.session_token);
    assert_string_equal(s.session_token, tok);
    char *c = NULL;
    assert_int_equal(sigv4_canonical_request(&s, "GET", HOST, "/test.txt", "", range_hdr, 1, EMPTY_SHA,
                                             "20130524T000000Z", &c),
                     0);
    char *want = NULL;
    assert_true(asprintf(&want,
                         "GET\n/test.txt\n\nhost:" HOST "\nrange:bytes=0-9\nx-amz-content-sha256:" EMPTY_SHA
                         "\nx-amz-date:20130524T000000Z\nx-amz-security-token:%s\n\n"
                         "host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token\n" EMPTY_SHA,
                         tok) > 0);
    assert_string_equal(c, want);
    free(want);
    free(c);
    struct sigv4_out o;
    sign_get(&s, example_time(), &o);
    assert_non_null(strstr(o.authorization,
                           ",SignedHeaders=host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token,"));
    assert_string_not_equal(sig_of(&o), GET_SIG);
    assert_null(strstr(o.authorization, tok));
    sigv4_free(&s);

    /* "" is no token */
    assert_int_equal(sigv4_init(&s, AK, SK, "", "us-east-1", "s3"), 0);
    assert_null(s.session_token);
    sign_get(&s, example_time(), &o);
    assert_string_equal(sig_of(&o), GET_SIG);
    sigv4_free(&s);
}

/* ---- the signing-key cache ------------------------------------------------------------ */

static void test_key_cached_per_day(void **state)
{
    struct sigv4 *s = *state;
    struct sigv4_out o;
    assert_string_equal(s->key_day, "");
    sign_get(s, example_time(), &o);
    assert_string_equal(s->key_day, "20130524");
    assert_string_equal(sig_of(&o), GET_SIG);
    unsigned char key[32];
    memcpy(key, s->key, 32);

    /* same day, later: the cached key is used (a spoiled cache shows in the signature) */
    s->key[0] ^= 0xff;
    struct sigv4_out late;
    sign_get(s, at(2013, 5, 24, 23, 59, 59), &late);
    assert_string_equal(s->key_day, "20130524");
    assert_string_equal(late.amz_date, "20130524T235959Z");
    assert_non_null(strstr(late.authorization, "/20130524/us-east-1/s3/aws4_request,"));
    s->key[0] ^= 0xff;
    struct sigv4_out late_ok;
    sign_get(s, at(2013, 5, 24, 23, 59, 59), &late_ok);
    assert_string_not_equal(sig_of(&late), sig_of(&late_ok));

    /* a new day derives a new key */
    sign_get(s, at(2013, 5, 25, 0, 0, 0), &o);
    assert_string_equal(s->key_day, "20130525");
    assert_string_equal(o.amz_date, "20130525T000000Z");
    assert_non_null(strstr(o.authorization, "Credential=" AK "/20130525/us-east-1/s3/aws4_request,"));
    assert_memory_not_equal(s->key, key, 32);

    /* and going back recomputes the first one */
    s->key[0] ^= 0xff;
    sign_get(s, example_time(), &o);
    assert_string_equal(s->key_day, "20130524");
    assert_memory_equal(s->key, key, 32);
    assert_string_equal(sig_of(&o), GET_SIG);
}

struct thr {
    struct sigv4 *s;
    char want24[65], want25[65];
    int bad;
};

static void *signer(void *arg)
{
    struct thr *t = arg;
    for (int i = 0; i < 300; i++) {
        struct sigv4_out o;
        int day25 = (i / 7) % 2;
        time_t now = day25 ? at(2013, 5, 25, 12, 0, 0) : at(2013, 5, 24, 0, 0, 0);
        if (sigv4_sign(t->s, "GET", HOST, "/test.txt", "", range_hdr, 1, EMPTY_SHA, now, &o) != 0 ||
            strcmp(strstr(o.authorization, "Signature=") + 10, day25 ? t->want25 : t->want24) != 0)
            t->bad++;
    }
    return NULL;
}

static void test_threads_share_one_signer(void **state)
{
    struct sigv4 *s = *state;
    struct sigv4 ref;
    assert_int_equal(sigv4_init(&ref, AK, SK, NULL, "us-east-1", "s3"), 0);
    struct sigv4_out o;
    sign_get(&ref, at(2013, 5, 25, 12, 0, 0), &o);
    sigv4_free(&ref);
    enum { T = 6 };
    struct thr t[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        t[i] = (struct thr){.s = s};
        strcpy(t[i].want24, GET_SIG);
        strcpy(t[i].want25, sig_of(&o));
        assert_int_equal(pthread_create(&th[i], NULL, signer, &t[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].bad, 0);
    }
}

/* ---- init ----------------------------------------------------------------------------- */

static void test_init_validates(void **state)
{
    (void)state;
    struct sigv4 s;
    char big[300];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sigv4_init(&s, "", SK, NULL, "us-east-1", "s3"), -EINVAL);
    sigv4_free(&s); /* harmless after a failed init */
    assert_int_equal(sigv4_init(&s, NULL, SK, NULL, "us-east-1", "s3"), -EINVAL);
    assert_int_equal(sigv4_init(&s, AK, "", NULL, "us-east-1", "s3"), -EINVAL);
    assert_int_equal(sigv4_init(&s, AK, SK, NULL, "", "s3"), -EINVAL);
    assert_int_equal(sigv4_init(&s, AK, SK, NULL, "us-east-1", ""), -EINVAL);
    assert_int_equal(sigv4_init(&s, big, SK, NULL, "us-east-1", "s3"), -EINVAL);
    assert_int_equal(sigv4_init(&s, AK, big, NULL, "us-east-1", "s3"), -EINVAL);
    assert_int_equal(sigv4_init(&s, AK, SK, NULL, big, "s3"), -EINVAL);
    assert_int_equal(sigv4_init(&s, AK, SK, NULL, "us-east-1", "a-very-long-service-name"), -EINVAL);
    assert_int_equal(sigv4_init(&s, "AK/IA", SK, NULL, "us-east-1", "s3"), -EINVAL);
    assert_int_equal(sigv4_init(&s, "AK IA", SK, NULL, "us-east-1", "s3"), -EINVAL);
    assert_int_equal(sigv4_init(&s, AK, SK, NULL, "us/east", "s3"), -EINVAL);
    assert_int_equal(sigv4_init(&s, AK, SK, NULL, "us-east-1 # c", "s3"), -EINVAL);
    assert_int_equal(sigv4_init(&s, AK, SK, "tok\r\nx: y", "us-east-1", "s3"), -EINVAL);
    assert_null(s.session_token);
    sigv4_free(&s);
    /* a secret may hold anything printable, '/' and '+' included (it is never sent) */
    assert_int_equal(sigv4_init(&s, AK, "a/b+c=d e", NULL, "eu-west-3", "s3"), 0);
    assert_string_equal(s.region, "eu-west-3");
    assert_string_equal(s.service, "s3");
    sigv4_free(&s);
    assert_string_equal(s.secret_key, ""); /* wiped */
    sigv4_free(&s);                        /* twice is harmless too */
}

static void test_other_region_and_service(void **state)
{
    (void)state;
    struct sigv4 s;
    assert_int_equal(sigv4_init(&s, AK, SK, NULL, "eu-central-1", "s3"), 0);
    struct sigv4_out o;
    sign_get(&s, example_time(), &o);
    assert_non_null(strstr(o.authorization, "Credential=" AK "/20130524/eu-central-1/s3/aws4_request,"));
    assert_string_not_equal(sig_of(&o), GET_SIG);
    sigv4_free(&s);
}

/* ---- URI encoding --------------------------------------------------------------------- */

static void expect_enc(const char *in, int keep_slash, const char *want)
{
    char out[512];
    int n = s3_uri_encode(in, strlen(in), keep_slash, out, sizeof out);
    if (n < 0 || strcmp(out, want) != 0)
        fail_msg("s3_uri_encode(\"%s\", %d) = %d \"%s\", want \"%s\"", in, keep_slash, n, out, want);
    assert_int_equal(n, strlen(want));
}

static void test_uri_encode(void **state)
{
    (void)state;
    expect_enc("", 1, "");
    expect_enc("plain-name_1.txt~", 0, "plain-name_1.txt~");
    expect_enc("ABCXYZabcxyz0189", 0, "ABCXYZabcxyz0189");
    expect_enc("a b", 1, "a%20b");
    expect_enc("my  file.txt", 1, "my%20%20file.txt");
    expect_enc("dir/sub/file", 1, "dir/sub/file");
    expect_enc("dir/sub/file", 0, "dir%2Fsub%2Ffile");
    expect_enc("a//b/", 1, "a//b/");
    expect_enc("//", 0, "%2F%2F");
    expect_enc("+=&?#%~", 1, "%2B%3D%26%3F%23%25~");
    expect_enc("a+b=c&d?e#f%g", 0, "a%2Bb%3Dc%26d%3Fe%23f%25g");
    expect_enc("!*'();:@$,[]\"<>\\^`{|}", 1, "%21%2A%27%28%29%3B%3A%40%24%2C%5B%5D%22%3C%3E%5C%5E%60%7B%7C%7D");
    expect_enc("caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80", 1, "caf%C3%A9/%E2%82%AC/%F0%9F%98%80");
    expect_enc("\x01\x7f\xff", 1, "%01%7F%FF");
    expect_enc("%2F", 1, "%252F"); /* already-encoded text is encoded again: keys are literal */
    /* a NUL inside the given length is a byte like any other */
    char out[16];
    assert_int_equal(s3_uri_encode("a\0b", 3, 1, out, sizeof out), 5);
    assert_string_equal(out, "a%00b");
    /* only the first len bytes */
    assert_int_equal(s3_uri_encode("abc def", 3, 1, out, sizeof out), 3);
    assert_string_equal(out, "abc");
}

static void test_uri_encode_bounds(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(s3_uri_encode("abcdefg", 7, 1, out, sizeof out), 7); /* exact fit */
    assert_string_equal(out, "abcdefg");
    memset(out, 'x', sizeof out);
    assert_int_equal(s3_uri_encode("abcdefgh", 8, 1, out, sizeof out), -ENAMETOOLONG);
    assert_string_equal(out, "");
    assert_int_equal(s3_uri_encode("ab ", 3, 1, out, 6), 5); /* "ab%20" + NUL */
    assert_int_equal(s3_uri_encode("ab  ", 4, 1, out, 8), -ENAMETOOLONG); /* the escape does not split */
    assert_string_equal(out, "");
    assert_int_equal(s3_uri_encode("abc ", 4, 1, out, 6), -ENAMETOOLONG);
    assert_int_equal(s3_uri_encode("", 0, 1, out, 1), 0);
    assert_string_equal(out, "");
    out[0] = 'x';
    assert_int_equal(s3_uri_encode("", 0, 1, out, 0), -ENAMETOOLONG);
    assert_int_equal(s3_uri_encode("a", 1, 1, out, 0), -ENAMETOOLONG);
    assert_int_equal(out[0], 'x'); /* outsz 0: not touched */
}

/* ---- digests -------------------------------------------------------------------------- */

static void test_sha256(void **state)
{
    (void)state;
    char h[65];
    sha256_hex("", 0, h);
    assert_string_equal(h, EMPTY_SHA);
    sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_incremental(void **state)
{
    (void)state;
    size_t n = 1000003;
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    char one[65], inc[65];
    sha256_hex(buf, n, one);
    struct sha256_ctx *c = sha256_begin();
    assert_non_null(c);
    size_t off = 0, piece = 1;
    while (off < n) {
        size_t k = piece < n - off ? piece : n - off;
        sha256_update(c, buf + off, k);
        off += k;
        piece = piece * 3 + 1;
    }
    sha256_update(c, buf, 0);
    sha256_end_hex(c, inc);
    assert_string_equal(one, inc);
    free(buf);

    c = sha256_begin();
    sha256_end_hex(c, inc); /* nothing fed */
    assert_string_equal(inc, EMPTY_SHA);
    sha256_update(NULL, "x", 1);
    sha256_end_hex(NULL, inc);
    assert_string_equal(inc, "");
    c = sha256_begin();
    sha256_update(c, "abc", 3);
    sha256_abort(c); /* no leak under ASan */
    sha256_abort(NULL);
}

static void test_md5_base64(void **state)
{
    (void)state;
    char m[25];
    md5_base64("", 0, m);
    assert_string_equal(m, "1B2M2Y8AsgTpgAmY7PhCfg==");
    md5_base64("The quick brown fox jumps over the lazy dog", 43, m);
    assert_string_equal(m, "nhB9nTcrtoJr2B01QqQZ1g==");
    md5_base64("Welcome to Amazon S3.", 21, m);
    assert_string_equal(m, "1EfQ6PKJ8WoS/2AnznfCWA==");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_example_get_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_put_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_get_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_list_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_values_trimmed_and_collapsed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_header_names_joined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_order_does_not_matter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsigned_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorization_too_long, setup, teardown),
        cmocka_unit_test(test_session_token_signed),
        cmocka_unit_test_setup_teardown(test_key_cached_per_day, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_one_signer, setup, teardown),
        cmocka_unit_test(test_init_validates),
        cmocka_unit_test(test_other_region_and_service),
        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_uri_encode_bounds),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_sha256_incremental),
        cmocka_unit_test(test_md5_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
