/* test_s3_xml.c - S3 XML documents, HTTP/ISO dates and URL decoding (core/s3_xml.c).
 *
 * Real documents (AWS, Swift s3api, MinIO-style), big pages, and the hostile ones: cut
 * at every byte, garbage, huge text, deep nesting, DOCTYPE and entity attacks, 200 OK
 * bodies that carry an <Error>. Leaks are caught by the ASan build of the same tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/s3/s3_xml.h"

#include <errno.h>
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S3NS "http://s3.amazonaws.com/doc/2006-03-01/"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static time_t utc(int y, int mon, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return timegm(&tm);
}

static int list(const char *doc, struct s3_list_page *pg) { return s3_xml_list_parse(doc, strlen(doc), pg); }

/* A failed parse must leave the page empty. */
static void expect_list_fails(const char *doc, int want)
{
    struct s3_list_page pg;
    memset(&pg, 0xa5, sizeof pg);
    int rc = list(doc, &pg);
    if (rc != want) fail_msg("list parse = %d, want %d for:\n%.300s", rc, want, doc);
    assert_null(pg.v);
    assert_int_equal(pg.n, 0);
    assert_null(pg.next_token);
}

/* ---- listings -------------------------------------------------------------------------- */

static const char aws_page[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"" S3NS "\">"
    "<Name>example-bucket</Name><Prefix>photos/</Prefix>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "<KeyCount>5</KeyCount><MaxKeys>5</MaxKeys><Delimiter>/</Delimiter>"
    "<IsTruncated>true</IsTruncated>"
    "<Contents><Key>photos/2006/index.html</Key><LastModified>2026-11-22T01:02:03.000Z</LastModified>"
    "<ETag>&quot;599bab3ed2c697f1d26842727561fd94&quot;</ETag><ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm>"
    "<ChecksumType>FULL_OBJECT</ChecksumType><Size>857</Size>"
    "<Owner><ID>6cf4ba6d24167d9655e8fcd86ca28fdab32c18c99169cbfeb3efe00ff8f4d2ae</ID><DisplayName>Key</DisplayName></Owner>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>photos/big.bin</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
    "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag><Size>5368709120</Size>"
    "<RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress></RestoreStatus>"
    "<StorageClass>GLACIER</StorageClass></Contents>"
    "<Contents>\n  <Key>photos/empty</Key>\n  <LastModified>2026-01-01T00:00:00.000Z</LastModified>\n"
    "  <ETag>\"d41d8cd98f00b204e9800998ecf8427e\"</ETag>\n  <Size>0</Size>\n</Contents>\n"
    "<CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes>"
    "<CommonPrefixes><Prefix>photos/2007/</Prefix></CommonPrefixes>"
    "</ListBucketResult>";

static void test_list_aws(void **state)
{
    struct s3_list_page pg;
    assert_int_equal(list(aws_page, &pg), 0);
    assert_int_equal(pg.n, 5);
    assert_true(pg.truncated);
    assert_false(pg.url_encoded);
    assert_string_equal(pg.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");

    assert_string_equal(pg.v[0].name, "photos/2006/index.html");
    assert_false(pg.v[0].is_prefix);
    assert_int_equal(pg.v[0].size, 857);
    assert_int_equal(pg.v[0].mtime, utc(2026, 11, 22, 1, 2, 3));
    assert_string_equal(pg.v[0].etag, "599bab3ed2c697f1d26842727561fd94");

    assert_string_equal(pg.v[1].name, "photos/big.bin");
    assert_int_equal(pg.v[1].size, 5368709120LL);
    assert_int_equal(pg.v[1].mtime, utc(2009, 10, 12, 17, 50, 30));
    assert_string_equal(pg.v[1].etag, "3858f62230ac3c915f300c664312c11f-9");

    assert_string_equal(pg.v[2].name, "photos/empty");
    assert_int_equal(pg.v[2].size, 0);
    assert_string_equal(pg.v[2].etag, "d41d8cd98f00b204e9800998ecf8427e");

    for (int i = 3; i < 5; i++) {
        assert_true(pg.v[i].is_prefix);
        assert_int_equal(pg.v[i].size, -1);
        assert_int_equal(pg.v[i].mtime, 0);
        assert_string_equal(pg.v[i].etag, "");
    }
    assert_string_equal(pg.v[3].name, "photos/2006/");
    assert_string_equal(pg.v[4].name, "photos/2007/");
    /* The query's own <Prefix>photos/</Prefix> and the Owner's fields are not entries. */
    for (size_t i = 0; i < pg.n; i++) {
        assert_string_not_equal(pg.v[i].name, "photos/");
        assert_string_not_equal(pg.v[i].name, "Key");
    }
    s3_list_page_free(&pg);
    assert_null(pg.v);
    assert_int_equal(pg.n, 0);
    s3_list_page_free(&pg); /* twice is harmless */
    s3_list_page_free(NULL);
}

/* OpenStack Swift's s3api (lxml): single-quoted declaration, empty <Prefix/>. */
static void test_list_swift(void **state)
{
    static const char doc[] =
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<ListBucketResult xmlns=\"" S3NS "\"><Name>bucket</Name><Prefix/><MaxKeys>1000</MaxKeys>"
        "<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated><KeyCount>2</KeyCount>"
        "<Contents><Key>obj</Key><LastModified>2011-01-05T02:19:14.275Z</LastModified>"
        "<ETag>\"0f343b0931126a20f133d67c2b018a3b\"</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>dir/obj%20two</Key><LastModified>2011-01-05T02:19:14.275Z</LastModified>"
        "<ETag>\"0f343b0931126a20f133d67c2b018a3b\"</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>"
        "</ListBucketResult>";
    struct s3_list_page pg;
    assert_int_equal(list(doc, &pg), 0);
    assert_int_equal(pg.n, 2);
    assert_false(pg.truncated);
    assert_null(pg.next_token);
    assert_true(pg.url_encoded);
    assert_string_equal(pg.v[0].name, "obj");
    assert_string_equal(pg.v[1].name, "dir/obj two");
    assert_int_equal(pg.v[1].mtime, utc(2011, 1, 5, 2, 19, 14));
    s3_list_page_free(&pg);
}

/* With a prefixed namespace, and with none at all. */
static void test_list_namespaces(void **state)
{
    static const char prefixed[] =
        "<s3:ListBucketResult xmlns:s3=\"" S3NS "\"><s3:IsTruncated>false</s3:IsTruncated>"
        "<s3:Contents><s3:Key>a</s3:Key><s3:Size>1</s3:Size></s3:Contents>"
        "<s3:CommonPrefixes><s3:Prefix>d/</s3:Prefix></s3:CommonPrefixes></s3:ListBucketResult>";
    static const char bare[] =
        "<ListBucketResult><IsTruncated>false</IsTruncated>"
        "<Contents><Key>a</Key><Size>1</Size></Contents>"
        "<CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes></ListBucketResult>";
    const char *docs[] = {prefixed, bare};
    for (int i = 0; i < 2; i++) {
        struct s3_list_page pg;
        assert_int_equal(list(docs[i], &pg), 0);
        assert_int_equal(pg.n, 2);
        assert_string_equal(pg.v[0].name, "a");
        assert_int_equal(pg.v[0].size, 1);
        assert_int_equal(pg.v[0].mtime, 0); /* absent */
        assert_string_equal(pg.v[0].etag, "");
        assert_string_equal(pg.v[1].name, "d/");
        assert_true(pg.v[1].is_prefix);
        s3_list_page_free(&pg);
    }
    /* An undeclared prefix is not well-formed namespaced XML. */
    expect_list_fails("<s3:ListBucketResult><s3:IsTruncated>false</s3:IsTruncated></s3:ListBucketResult>", -EPROTO);
}

static void test_list_escaped_keys(void **state)
{
    static const char doc[] =
        "<ListBucketResult xmlns=\"" S3NS "\"><IsTruncated>false</IsTruncated>"
        "<Contents><Key>a&amp;b &lt;c&gt; &quot;q&quot; &apos;s&apos;</Key><Size>1</Size></Contents>"
        "<Contents><Key>caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac/&#x1F600;&#233;</Key><Size>2</Size></Contents>"
        "<Contents><Key>  spaces  in key  </Key><Size>3</Size></Contents>"
        "<Contents><Key><![CDATA[cdata <raw> & ]]>tail</Key><Size>4</Size></Contents>"
        "<Contents><Key>100%.csv+x</Key><Size>5</Size></Contents>"
        "<Contents><Key>tab\there&#13;&#10;nl</Key><Size>6</Size></Contents>"
        "</ListBucketResult>";
    struct s3_list_page pg;
    assert_int_equal(list(doc, &pg), 0);
    assert_int_equal(pg.n, 6);
    assert_string_equal(pg.v[0].name, "a&b <c> \"q\" 's'");
    assert_string_equal(pg.v[1].name, "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80\xc3\xa9");
    assert_string_equal(pg.v[2].name, "  spaces  in key  "); /* kept exactly */
    assert_string_equal(pg.v[3].name, "cdata <raw> & tail");
    assert_string_equal(pg.v[4].name, "100%.csv+x"); /* not URL-decoded without EncodingType */
    assert_string_equal(pg.v[5].name, "tab\there\r\nnl");
    s3_list_page_free(&pg);
}

static void test_list_url_encoded(void **state)
{
    /* EncodingType after the entries still applies to them. */
    static const char doc[] =
        "<ListBucketResult xmlns=\"" S3NS "\"><IsTruncated>false</IsTruncated>"
        "<Contents><Key>a+b.txt</Key><Size>1</Size></Contents>"
        "<Contents><Key>a%2Bb.txt</Key><Size>1</Size></Contents>"
        "<Contents><Key>100%25.csv</Key><Size>1</Size></Contents>"
        "<Contents><Key>%ED%95%9C%EA%B8%80/x.txt</Key><Size>1</Size></Contents>"
        "<Contents><Key>ctl%01%0a</Key><Size>1</Size></Contents>"
        "<CommonPrefixes><Prefix>run+books/</Prefix></CommonPrefixes>"
        "<EncodingType>url</EncodingType></ListBucketResult>";
    struct s3_list_page pg;
    assert_int_equal(list(doc, &pg), 0);
    assert_true(pg.url_encoded);
    assert_int_equal(pg.n, 6);
    assert_string_equal(pg.v[0].name, "a b.txt");
    assert_string_equal(pg.v[1].name, "a+b.txt");
    assert_string_equal(pg.v[2].name, "100%.csv");
    assert_string_equal(pg.v[3].name, "\xed\x95\x9c\xea\xb8\x80/x.txt");
    assert_string_equal(pg.v[4].name, "ctl\x01\n");
    assert_string_equal(pg.v[5].name, "run books/");
    s3_list_page_free(&pg);

    expect_list_fails("<ListBucketResult><EncodingType>url</EncodingType>"
                      "<Contents><Key>bad%zz</Key><Size>1</Size></Contents></ListBucketResult>",
                      -EPROTO);
    expect_list_fails("<ListBucketResult><EncodingType>url</EncodingType>"
                      "<Contents><Key>nul%00</Key><Size>1</Size></Contents></ListBucketResult>",
                      -EPROTO);
    expect_list_fails("<ListBucketResult><EncodingType>url</EncodingType>"
                      "<Contents><Key>cut%4</Key><Size>1</Size></Contents></ListBucketResult>",
                      -EPROTO);
}

static void test_list_empty_and_unknown(void **state)
{
    struct s3_list_page pg;
    assert_int_equal(list("<ListBucketResult xmlns=\"" S3NS "\"><Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount>"
                          "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>",
                          &pg),
                     0);
    assert_int_equal(pg.n, 0);
    assert_false(pg.truncated);
    s3_list_page_free(&pg);
    assert_int_equal(list("<ListBucketResult/>", &pg), 0);
    assert_int_equal(pg.n, 0);
    s3_list_page_free(&pg);

    /* Unknown elements anywhere, attributes, comments, PIs; a Contents deeper down is not
     * an entry. */
    static const char doc[] =
        "<?xml version=\"1.0\"?><!-- hi --><?pi x?><ListBucketResult a=\"1\"><Future><Contents><Key>no</Key>"
        "<Size>1</Size></Contents></Future><Contents z=\"y\"><NewThing><Key>nested</Key></NewThing><Key>yes</Key>"
        "<Size> 42 </Size><!-- c --><LastModified>garbage</LastModified><ETag>\"0123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789\"</ETag></Contents>"
        "<CommonPrefixes></CommonPrefixes>junk text<IsTruncated>False</IsTruncated></ListBucketResult><!-- after -->";
    assert_int_equal(list(doc, &pg), 0);
    assert_int_equal(pg.n, 1);
    assert_string_equal(pg.v[0].name, "yes");
    assert_int_equal(pg.v[0].size, 42);
    assert_int_equal(pg.v[0].mtime, 0);      /* unreadable: as if absent */
    assert_string_equal(pg.v[0].etag, ""); /* 80 bytes: does not fit, left empty */
    s3_list_page_free(&pg);

    /* ETags that are not entity-tags are left empty; the entry stays. */
    assert_int_equal(list("<ListBucketResult><Contents><Key>a</Key><Size>1</Size><ETag>\"\"x\"</ETag></Contents>"
                          "<Contents><Key>b</Key><Size>1</Size><ETag>\"x y\"</ETag></Contents>"
                          "<Contents><Key>c</Key><Size>1</Size><ETag> \"x-1\" </ETag></Contents></ListBucketResult>",
                          &pg),
                     0);
    assert_int_equal(pg.n, 3);
    assert_string_equal(pg.v[0].etag, "");
    assert_string_equal(pg.v[1].etag, "");
    assert_string_equal(pg.v[2].etag, "x-1");
    s3_list_page_free(&pg);
}

static void test_list_semantic_errors(void **state)
{
#define LB(x) "<ListBucketResult xmlns=\"" S3NS "\">" x "</ListBucketResult>"
    expect_list_fails(LB("<Contents><Size>1</Size></Contents>"), -EPROTO);              /* no Key */
    expect_list_fails(LB("<Contents><Key></Key><Size>1</Size></Contents>"), -EPROTO);   /* empty Key */
    expect_list_fails(LB("<Contents><Key>a</Key></Contents>"), -EPROTO);                /* no Size */
    expect_list_fails(LB("<Contents><Key>a</Key><Size>-1</Size></Contents>"), -EPROTO);
    expect_list_fails(LB("<Contents><Key>a</Key><Size>12a</Size></Contents>"), -EPROTO);
    expect_list_fails(LB("<Contents><Key>a</Key><Size></Size></Contents>"), -EPROTO);
    expect_list_fails(LB("<Contents><Key>a</Key><Size>9223372036854775808</Size></Contents>"), -EPROTO);
    expect_list_fails(LB("<Contents><Key>a</Key><Size>99999999999999999999</Size></Contents>"), -EPROTO);
    expect_list_fails(LB("<Contents><Key>a</Key><Key>b</Key><Size>1</Size></Contents>"), -EPROTO);
    expect_list_fails(LB("<Contents><Key>a</Key><Size>1</Size><Size>1</Size></Contents>"), -EPROTO);
    expect_list_fails(LB("<Contents><Key>a<b/>c</Key><Size>1</Size></Contents>"), -EPROTO); /* markup in a value */
    expect_list_fails(LB("<CommonPrefixes><Prefix></Prefix></CommonPrefixes>"), -EPROTO);
    expect_list_fails(LB("<IsTruncated>maybe</IsTruncated>"), -EPROTO);
    expect_list_fails(LB("<IsTruncated>true</IsTruncated>"), -EPROTO); /* no token: could never continue */
    expect_list_fails(LB("<IsTruncated>false</IsTruncated><IsTruncated>true</IsTruncated>"), -EPROTO);
    expect_list_fails(LB("<IsTruncated>true</IsTruncated><NextContinuationToken>a</NextContinuationToken>"
                         "<NextContinuationToken>b</NextContinuationToken>"),
                      -EPROTO);
    expect_list_fails(LB("<Contents><Key>&#0;</Key><Size>1</Size></Contents>"), -EPROTO);
    expect_list_fails(LB("<Contents><Key>&#1;</Key><Size>1</Size></Contents>"), -EPROTO); /* not XML 1.0 */

    struct s3_list_page pg;
    assert_int_equal(list(LB("<Contents><Key>a</Key><Size>9223372036854775807</Size></Contents>"), &pg), 0);
    assert_int_equal(pg.v[0].size, INT64_MAX);
    s3_list_page_free(&pg);
#undef LB
}

/* Other documents are not listings. */
static void test_list_wrong_documents(void **state)
{
    expect_list_fails("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>"
                      "<Message>The specified bucket does not exist</Message></Error>",
                      -EPROTO);
    expect_list_fails("<ListAllMyBucketsResult/>", -EPROTO);
    expect_list_fails("<ListVersionsResult/>", -EPROTO);
    expect_list_fails("<html><body>502 Bad Gateway</body></html>", -EPROTO);
    expect_list_fails("{\"Contents\": []}", -EPROTO);
    expect_list_fails("", -EPROTO);
    expect_list_fails("   \r\n\t ", -EPROTO);
    expect_list_fails("<ListBucketResult>", -EPROTO);
    expect_list_fails("<ListBucketResult></ListBucketResult><ListBucketResult></ListBucketResult>", -EPROTO);
    expect_list_fails("<ListBucketResult></listbucketresult>", -EPROTO);
    expect_list_fails("<?xml version=\"1.0\" encoding=\"EBCDIC-nonsense\"?><ListBucketResult/>", -EPROTO);

    struct s3_list_page pg;
    assert_int_equal(s3_xml_list_parse(NULL, 0, &pg), -EPROTO);
    assert_int_equal(s3_xml_list_parse(NULL, 10, &pg), -EPROTO);
    /* An embedded NUL byte. */
    static const char nul[] = "<ListBucketResult>\0</ListBucketResult>";
    assert_int_equal(s3_xml_list_parse(nul, sizeof nul - 1, &pg), -EPROTO);
    /* Leading whitespace (keep-alive) is fine. */
    assert_int_equal(list("\n   \n<ListBucketResult/>", &pg), 0);
    s3_list_page_free(&pg);
}

/* Every strict prefix of a real document is refused, cleanly. */
static void test_list_truncated_everywhere(void **state)
{
    size_t len = strlen(aws_page);
    for (size_t i = 0; i < len; i++) {
        char *cut = malloc(i ? i : 1); /* exact size: ASan sees any overread */
        memcpy(cut, aws_page, i);
        struct s3_list_page pg;
        int rc = s3_xml_list_parse(cut, i, &pg);
        if (rc != -EPROTO) fail_msg("cut at %zu: rc %d", i, rc);
        assert_int_equal(pg.n, 0);
        free(cut);
    }
}

/* Random corruption: never a crash, and a success is a consistent page. */
static void test_list_garbage(void **state)
{
    unsigned seed = 12345;
    size_t len = strlen(aws_page);
    char *buf = malloc(len + 64);
    int ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, aws_page, len);
        size_t n = len;
        int flips = 1 + rand_r(&seed) % 4;
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)rand_r(&seed) % n;
            switch (rand_r(&seed) % 3) {
            case 0: buf[at] = (char)rand_r(&seed); break;
            case 1: buf[at] = "<>&;/\"\0 ]"[rand_r(&seed) % 9]; break;
            case 2: n = at + 1; break;
            }
        }
        struct s3_list_page pg;
        int rc = s3_xml_list_parse(buf, n, &pg);
        if (rc == 0) {
            ok++;
            for (size_t i = 0; i < pg.n; i++) {
                assert_non_null(pg.v[i].name);
                assert_true(pg.v[i].name[0] != '\0');
                assert_true(memchr(pg.v[i].etag, 0, sizeof pg.v[i].etag) != NULL);
                assert_true(pg.v[i].is_prefix ? pg.v[i].size == -1 : pg.v[i].size >= 0);
            }
            assert_true(!pg.truncated || pg.next_token);
        } else {
            assert_int_equal(rc, -EPROTO);
            assert_int_equal(pg.n, 0);
        }
        s3_list_page_free(&pg);
    }
    assert_true(ok > 0); /* some corruptions land in text and still parse */
    free(buf);
}

/* A full 1000-key page plus prefixes, keys of the maximum length S3 allows. */
static void test_list_1000(void **state)
{
    size_t cap = 8 << 20, n = 0;
    char *doc = malloc(cap);
    n += (size_t)sprintf(doc + n, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"" S3NS "\">"
                                  "<Name>b</Name><Prefix>p/</Prefix><KeyCount>1100</KeyCount><MaxKeys>1000</MaxKeys>"
                                  "<IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;en</NextContinuationToken>");
    char longkey[1025];
    memset(longkey, 'k', 1024);
    longkey[1024] = 0;
    for (int i = 0; i < 1000; i++) {
        n += (size_t)sprintf(doc + n,
                             "<Contents><Key>p/%06d-%s</Key><LastModified>2026-03-%02dT%02d:%02d:%02d.%03dZ</LastModified>"
                             "<ETag>&quot;%032x&quot;</ETag><Size>%d</Size><StorageClass>STANDARD</StorageClass>"
                             "</Contents>",
                             i, i % 100 == 0 ? longkey : "x&amp;y", 1 + i % 28, i % 24, i % 60, (i * 7) % 60, i,
                             i, i * 1000);
    }
    for (int i = 0; i < 100; i++) n += (size_t)sprintf(doc + n, "<CommonPrefixes><Prefix>p/d%03d/</Prefix></CommonPrefixes>", i);
    n += (size_t)sprintf(doc + n, "</ListBucketResult>");
    assert_true(n < cap);

    struct s3_list_page pg;
    double t0 = now_s();
    assert_int_equal(s3_xml_list_parse(doc, n, &pg), 0);
    double dt = now_s() - t0;
    assert_int_equal(pg.n, 1100);
    assert_true(pg.truncated);
    assert_string_equal(pg.next_token, "tok&en");
    for (int i = 0; i < 1000; i++) {
        char want[1100], etag[40];
        sprintf(want, "p/%06d-%s", i, i % 100 == 0 ? longkey : "x&y");
        sprintf(etag, "%032x", i);
        assert_string_equal(pg.v[i].name, want);
        assert_int_equal(pg.v[i].size, i * 1000);
        assert_string_equal(pg.v[i].etag, etag);
        assert_int_equal(pg.v[i].mtime, utc(2026, 3, 1 + i % 28, i % 24, i % 60, (i * 7) % 60));
    }
    for (int i = 0; i < 100; i++) {
        char want[32];
        sprintf(want, "p/d%03d/", i);
        assert_string_equal(pg.v[1000 + i].name, want);
        assert_true(pg.v[1000 + i].is_prefix);
    }
    s3_list_page_free(&pg);
    free(doc);
    assert_true(dt < 2.0); /* ~1.5 MB: milliseconds in practice, even under ASan */
}

static char *repeat_doc(const char *head, char fill, size_t count, const char *tail, size_t *len)
{
    size_t hl = strlen(head), tl = strlen(tail);
    char *d = malloc(hl + count + tl + 1);
    memcpy(d, head, hl);
    memset(d + hl, fill, count);
    memcpy(d + hl + count, tail, tl + 1);
    *len = hl + count + tl;
    return d;
}

static void test_list_huge_text(void **state)
{
    struct s3_list_page pg;
    size_t len;
    char *d;

    /* A key just under the text limit parses; one above is refused. */
    d = repeat_doc("<ListBucketResult><Contents><Key>", 'a', S3_XML_MAX_TEXT - 1, "</Key><Size>1</Size></Contents></ListBucketResult>", &len);
    assert_int_equal(s3_xml_list_parse(d, len, &pg), 0);
    assert_int_equal(strlen(pg.v[0].name), S3_XML_MAX_TEXT - 1);
    s3_list_page_free(&pg);
    free(d);
    d = repeat_doc("<ListBucketResult><Contents><Key>", 'a', 10 << 20, "</Key><Size>1</Size></Contents></ListBucketResult>", &len);
    assert_int_equal(s3_xml_list_parse(d, len, &pg), -EPROTO);
    free(d);
    d = repeat_doc("<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>", 't', 1 << 20,
                   "</NextContinuationToken></ListBucketResult>", &len);
    assert_int_equal(s3_xml_list_parse(d, len, &pg), -EPROTO);
    free(d);

    /* Huge text where nobody reads it is only scanned. */
    d = repeat_doc("<ListBucketResult><Contents><Key>k</Key><Size>1</Size><Owner><DisplayName>", 'z', 16 << 20,
                   "</DisplayName></Owner></Contents></ListBucketResult>", &len);
    double t0 = now_s();
    assert_int_equal(s3_xml_list_parse(d, len, &pg), 0);
    assert_true(now_s() - t0 < 5.0);
    assert_int_equal(pg.n, 1);
    s3_list_page_free(&pg);
    free(d);

    /* A huge attribute value, a huge element name. */
    d = repeat_doc("<ListBucketResult a=\"", 'v', 4 << 20, "\"/>", &len);
    assert_int_equal(s3_xml_list_parse(d, len, &pg), 0);
    s3_list_page_free(&pg);
    free(d);
    d = repeat_doc("<ListBucketResult><X", 'n', 4 << 20, "/></ListBucketResult>", &len);
    assert_int_equal(s3_xml_list_parse(d, len, &pg), 0);
    s3_list_page_free(&pg);
    free(d);

    /* Above the document limit: refused before parsing. */
    d = repeat_doc("<ListBucketResult>", 'x', S3_XML_MAX_DOC, "</ListBucketResult>", &len);
    assert_int_equal(s3_xml_list_parse(d, len, &pg), -EPROTO);
    free(d);
}

static void test_list_deep_nesting(void **state)
{
    size_t cap = 200000 * 8 + 64, n = 0;
    char *d = malloc(cap);
    n += (size_t)sprintf(d, "<ListBucketResult>");
    for (int i = 0; i < 200000; i++) memcpy(d + n, "<a>", 3), n += 3;
    for (int i = 0; i < 200000; i++) memcpy(d + n, "</a>", 4), n += 4;
    n += (size_t)sprintf(d + n, "</ListBucketResult>");
    struct s3_list_page pg;
    assert_int_equal(s3_xml_list_parse(d, n, &pg), -EPROTO);
    free(d);

    char ok[600];
    n = (size_t)sprintf(ok, "<ListBucketResult>");
    for (int i = 2; i <= S3_XML_MAX_DEPTH; i++) n += (size_t)sprintf(ok + n, "<a>");
    for (int i = 2; i <= S3_XML_MAX_DEPTH; i++) n += (size_t)sprintf(ok + n, "</a>");
    sprintf(ok + n, "</ListBucketResult>");
    assert_int_equal(list(ok, &pg), 0);
    s3_list_page_free(&pg);
}

/* A document in UTF-16 with a BOM: expat converts, names come out in UTF-8. */
static void test_list_utf16(void **state)
{
    const char *src = "<ListBucketResult><Contents><Key>\xc3\xa9t\xc3\xa9</Key><Size>7</Size></Contents></ListBucketResult>";
    char buf[512];
    size_t n = 0;
    buf[n++] = (char)0xff, buf[n++] = (char)0xfe;
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        unsigned cp = *p;
        if (cp >= 0xc0) cp = ((cp & 0x1f) << 6) | (p[1] & 0x3f), p++;
        buf[n++] = (char)(cp & 0xff), buf[n++] = (char)(cp >> 8);
    }
    struct s3_list_page pg;
    assert_int_equal(s3_xml_list_parse(buf, n, &pg), 0);
    assert_int_equal(pg.n, 1);
    assert_string_equal(pg.v[0].name, "\xc3\xa9t\xc3\xa9");
    s3_list_page_free(&pg);
}

/* ---- entity attacks -------------------------------------------------------------------- */

static const char *const attacks[] = {
    /* billion laughs */
    "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
    "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
    "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
    "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
    "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
    "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
    "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
    "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
    "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
    "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>"
    "<ListBucketResult><Contents><Key>&lol9;</Key><Size>1</Size></Contents></ListBucketResult>",
    /* external entity */
    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
    "<ListBucketResult><Contents><Key>&xxe;</Key><Size>1</Size></Contents></ListBucketResult>",
    /* parameter entities, external DTD */
    "<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://127.0.0.1:1/evil.dtd\"> %p;]><ListBucketResult/>",
    "<!DOCTYPE ListBucketResult SYSTEM \"http://127.0.0.1:1/x.dtd\"><ListBucketResult/>",
    /* a harmless-looking DOCTYPE is refused too */
    "<!DOCTYPE ListBucketResult><ListBucketResult/>",
    /* quadratic blowup: one big entity used many times */
    NULL, /* filled in at run time */
    /* undeclared entities */
    "<ListBucketResult><Contents><Key>&foo;</Key><Size>1</Size></Contents></ListBucketResult>",
    "<ListBucketResult><Contents><Key>&#xFFFFFFFF;</Key><Size>1</Size></Contents></ListBucketResult>",
};

static void test_entity_attacks(void **state)
{
    /* quadratic blowup document */
    size_t n = 0, cap = (1 << 20) + 200000 * 4 + 512;
    char *quad = malloc(cap);
    n += (size_t)sprintf(quad, "<!DOCTYPE r [<!ENTITY a \"");
    memset(quad + n, 'a', 1 << 20), n += 1 << 20;
    n += (size_t)sprintf(quad + n, "\">]><ListBucketResult><Contents><Key>");
    for (int i = 0; i < 200000; i++) memcpy(quad + n, "&a;", 3), n += 3;
    sprintf(quad + n, "</Key><Size>1</Size></Contents></ListBucketResult>");

    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        const char *doc = attacks[i] ? attacks[i] : quad;
        double t0 = now_s();
        struct s3_list_page pg;
        char a[64], b[64];
        assert_int_equal(list(doc, &pg), -EPROTO);
        assert_int_equal(s3_xml_error_parse(doc, strlen(doc), a, sizeof a, b, sizeof b), -EPROTO);
        assert_int_equal(s3_xml_initiate_parse(doc, strlen(doc), a, sizeof a), -EPROTO);
        assert_int_equal(s3_xml_complete_parse(doc, strlen(doc), a, sizeof a, b, sizeof b), -EPROTO);
        assert_int_equal(s3_xml_copy_parse(doc, strlen(doc), a, sizeof a, b, sizeof b), -EPROTO);
        double dt = now_s() - t0;
        if (dt > 1.0) fail_msg("attack %zu took %.2fs", i, dt);
    }
    /* The same attacks wrapped as Error documents. */
    const char *err_lol = "<!DOCTYPE e [<!ENTITY x \"y\">]><Error><Code>&x;</Code></Error>";
    char c[32] = "unchanged", m[32] = "unchanged";
    assert_int_equal(s3_xml_error_parse(err_lol, strlen(err_lol), c, sizeof c, m, sizeof m), -EPROTO);
    assert_string_equal(c, "");
    assert_string_equal(m, "");
    free(quad);
}

/* ---- Error documents --------------------------------------------------------------------- */

static void test_error_parse(void **state)
{
    static const char doc[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                              "<Error><Code>NoSuchKey</Code><Message>The resource you requested does not exist</Message>"
                              "<Resource>/mybucket/myfoto.jpg</Resource><RequestId>4442587FB7D0A2F9</RequestId>"
                              "<HostId>abc=</HostId></Error>";
    char code[64], msg[256];
    assert_int_equal(s3_xml_error_parse(doc, strlen(doc), code, sizeof code, msg, sizeof msg), 0);
    assert_string_equal(code, "NoSuchKey");
    assert_string_equal(msg, "The resource you requested does not exist (RequestId: 4442587FB7D0A2F9)");

    /* No RequestId; namespaced; escaped text. */
    static const char doc2[] = "<Error xmlns=\"" S3NS "\"><Code>SlowDown</Code><Message>a &lt; b &amp; c</Message></Error>";
    assert_int_equal(s3_xml_error_parse(doc2, strlen(doc2), code, sizeof code, msg, sizeof msg), 0);
    assert_string_equal(code, "SlowDown");
    assert_string_equal(msg, "a < b & c");

    /* Small buffers cut, NULL buffers are fine. */
    char c4[4], m8[8];
    assert_int_equal(s3_xml_error_parse(doc, strlen(doc), c4, sizeof c4, m8, sizeof m8), 0);
    assert_string_equal(c4, "NoS");
    assert_string_equal(m8, "The res");
    assert_int_equal(s3_xml_error_parse(doc, strlen(doc), NULL, 0, NULL, 0), 0);
    assert_int_equal(s3_xml_error_parse(doc, strlen(doc), code, sizeof code, NULL, 0), 0);
    assert_string_equal(code, "NoSuchKey");

    /* Control characters from the server do not reach log lines. */
    static const char doc3[] = "<Error><Code>Bad\tCode</Code><Message>line1\nline2&#13;&#9;end</Message>"
                               "<RequestId>r\r\n</RequestId></Error>"; /* \r\n reads as \n */
    assert_int_equal(s3_xml_error_parse(doc3, strlen(doc3), code, sizeof code, msg, sizeof msg), 0);
    assert_string_equal(code, "Bad Code");
    assert_string_equal(msg, "line1 line2  end (RequestId: r )");

    /* An Error without a Code is still an Error. */
    assert_int_equal(s3_xml_error_parse("<Error/>", 8, code, sizeof code, msg, sizeof msg), 0);
    assert_string_equal(code, "");
    assert_string_equal(msg, "");

    /* Not Error documents. */
    const char *bad[] = {"<ListBucketResult/>", "", "<Error><Code>x</Code>", "<html>Service Unavailable</html>",
                         "<Error><Code>a</Code><Code>b</Code></Error>", "<Errors><Error><Code>x</Code></Error></Errors>",
                         "Internal Server Error"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(code, "junk");
        strcpy(msg, "junk");
        assert_int_equal(s3_xml_error_parse(bad[i], strlen(bad[i]), code, sizeof code, msg, sizeof msg), -EPROTO);
        assert_string_equal(code, "");
        assert_string_equal(msg, "");
    }
}

/* ---- multipart and copy results ------------------------------------------------------------ */

static void test_initiate_parse(void **state)
{
    static const char doc[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                              "<InitiateMultipartUploadResult xmlns=\"" S3NS "\"><Bucket>example-bucket</Bucket>"
                              "<Key>example-object</Key>"
                              "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
                              "</InitiateMultipartUploadResult>";
    char id[128];
    assert_int_equal(s3_xml_initiate_parse(doc, strlen(doc), id, sizeof id), 0);
    assert_string_equal(id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");

    /* Swift's ids contain characters that need escaping in a URL but not in XML. */
    static const char swift[] = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                                "<UploadId>\n  ZDhjMzE0ZDQtOWU1Yi00YmRm  \n</UploadId></InitiateMultipartUploadResult>";
    assert_int_equal(s3_xml_initiate_parse(swift, strlen(swift), id, sizeof id), 0);
    assert_string_equal(id, "ZDhjMzE0ZDQtOWU1Yi00YmRm");

    char small[8] = "x";
    assert_int_equal(s3_xml_initiate_parse(doc, strlen(doc), small, sizeof small), -EPROTO); /* never a cut id */
    assert_string_equal(small, "");
    assert_int_equal(s3_xml_initiate_parse(doc, strlen(doc), NULL, 0), -EPROTO);

    const char *bad[] = {
        "<InitiateMultipartUploadResult><Bucket>b</Bucket></InitiateMultipartUploadResult>",
        "<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>",
        "<InitiateMultipartUploadResult><UploadId>a</UploadId><UploadId>b</UploadId></InitiateMultipartUploadResult>",
        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        "<CompleteMultipartUploadResult><UploadId>x</UploadId></CompleteMultipartUploadResult>",
        "<InitiateMultipartUploadResult><X><UploadId>deep</UploadId></X></InitiateMultipartUploadResult>",
        "<InitiateMultipartUploadResult><UploadId>abc",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(id, "junk");
        if (s3_xml_initiate_parse(bad[i], strlen(bad[i]), id, sizeof id) != -EPROTO) fail_msg("accepted: %s", bad[i]);
        assert_string_equal(id, "");
    }
}

static const char complete_ok[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                   "<CompleteMultipartUploadResult xmlns=\"" S3NS "\">"
                                   "<Location>https://example-bucket.s3.amazonaws.com/Example-Object</Location>"
                                   "<Bucket>example-bucket</Bucket><Key>Example-Object</Key>"
                                   "<ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>"
                                   "</CompleteMultipartUploadResult>";

static void test_complete_parse(void **state)
{
    char etag[80], code[64];
    assert_int_equal(s3_xml_complete_parse(complete_ok, strlen(complete_ok), etag, sizeof etag, code, sizeof code), 0);
    assert_string_equal(etag, "3858f62230ac3c915f300c664312c11f-9");
    assert_string_equal(code, "");

    /* 200 OK, keep-alive whitespace, then an Error. */
    static const char err200[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                 "                                                            \n"
                                 "<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message>"
                                 "<RequestId>656c76696e6727732072657175657374</RequestId>"
                                 "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>";
    strcpy(etag, "junk");
    assert_int_equal(s3_xml_complete_parse(err200, strlen(err200), etag, sizeof etag, code, sizeof code), -EIO);
    assert_string_equal(code, "InternalError");
    assert_string_equal(etag, "");
    char c3[3];
    assert_int_equal(s3_xml_complete_parse(err200, strlen(err200), etag, sizeof etag, c3, sizeof c3), -EIO);
    assert_string_equal(c3, "In");
    assert_int_equal(s3_xml_complete_parse(err200, strlen(err200), etag, sizeof etag, NULL, 0), -EIO);

    /* Whitespace before the declaration (keep-alive sent before the body started). */
    size_t pl = 4096 + strlen(err200);
    char *padded = malloc(pl + 1);
    memset(padded, ' ', 4096);
    strcpy(padded + 4096, err200);
    assert_int_equal(s3_xml_complete_parse(padded, pl, etag, sizeof etag, code, sizeof code), -EIO);
    assert_string_equal(code, "InternalError");
    free(padded);

    /* The connection died during keep-alive: whitespace only, or a cut document. */
    const char *bad[] = {"", "     ", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n      ",
                         "<CompleteMultipartUploadResult><ETag>\"abc\"</ETag>",
                         "<CompleteMultipartUploadResult><Bucket>b</Bucket></CompleteMultipartUploadResult>",
                         "<CompleteMultipartUploadResult><ETag></ETag></CompleteMultipartUploadResult>",
                         "<CompleteMultipartUploadResult><ETag>\"\"</ETag></CompleteMultipartUploadResult>",
                         "<CopyObjectResult><ETag>\"abc\"</ETag></CopyObjectResult>",
                         "<CompleteMultipartUploadResult><ETag>\"\"abc\"</ETag></CompleteMultipartUploadResult>",
                         "<CompleteMultipartUploadResult><ETag>\"a b\"</ETag></CompleteMultipartUploadResult>",
                         "<CompleteMultipartUploadResult><ETag>\"caf\xc3\xa9\"</ETag></CompleteMultipartUploadResult>",
                         "<Error><Code>InternalError</Code>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (s3_xml_complete_parse(bad[i], strlen(bad[i]), etag, sizeof etag, code, sizeof code) != -EPROTO)
            fail_msg("accepted: %s", bad[i]);

    /* An ETag that does not fit is refused, not cut. */
    char e8[8];
    assert_int_equal(s3_xml_complete_parse(complete_ok, strlen(complete_ok), e8, sizeof e8, code, sizeof code), -EPROTO);
}

static void test_copy_parse(void **state)
{
    static const char obj[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult xmlns=\"" S3NS "\">"
                              "<LastModified>2009-10-28T22:32:00.000Z</LastModified>"
                              "<ETag>\"9b2cf535f27731c974343645a3985328\"</ETag></CopyObjectResult>";
    static const char part[] = "<CopyPartResult><LastModified>2011-04-11T20:34:56.000Z</LastModified>"
                               "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyPartResult>";
    static const char err[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n   \n<Error><Code>SlowDown</Code>"
                              "<Message>Please reduce your request rate.</Message></Error>";
    char etag[80], code[64];
    assert_int_equal(s3_xml_copy_parse(obj, strlen(obj), etag, sizeof etag, code, sizeof code), 0);
    assert_string_equal(etag, "9b2cf535f27731c974343645a3985328");
    memset(etag, 0, sizeof etag);
    assert_int_equal(s3_xml_copy_parse(part, strlen(part), etag, sizeof etag, code, sizeof code), 0);
    assert_string_equal(etag, "9b2cf535f27731c974343645a3985328");
    assert_int_equal(s3_xml_copy_parse(err, strlen(err), etag, sizeof etag, code, sizeof code), -EIO);
    assert_string_equal(code, "SlowDown");
    assert_int_equal(s3_xml_copy_parse(complete_ok, strlen(complete_ok), etag, sizeof etag, code, sizeof code), -EPROTO);
    assert_int_equal(s3_xml_copy_parse("<CopyObjectResult/>", 19, etag, sizeof etag, code, sizeof code), -EPROTO);
    assert_int_equal(s3_xml_copy_parse(obj, strlen(obj) - 5, etag, sizeof etag, code, sizeof code), -EPROTO);
}

/* ---- CompleteMultipartUpload body ------------------------------------------------------------ */

/* Reads a CompleteMultipartUpload body back: how many Parts, and each ETag's text. */
struct part_rd {
    int n;
    char etags[16][64];
    int in_etag;
};

static void XMLCALL rd_start(void *ud, const XML_Char *name, const XML_Char **a)
{
    struct part_rd *r = ud;
    if (strcmp(name, "Part") == 0) r->n++;
    r->in_etag = strcmp(name, "ETag") == 0;
}
static void XMLCALL rd_end(void *ud, const XML_Char *name)
{
    struct part_rd *r = ud;
    r->in_etag = 0;
}
static void XMLCALL rd_text(void *ud, const XML_Char *s, int len)
{
    struct part_rd *r = ud;
    if (r->n < 1 || r->n > 16) return;
    size_t have = strlen(r->etags[r->n - 1]);
    if (r->in_etag && have + (size_t)len < sizeof r->etags[0]) strncat(r->etags[r->n - 1], s, (size_t)len);
}

static void test_complete_build(void **state)
{
    struct s3_part_etag p[] = {{1, "a54357aff0632cce46d942af68356b38"},
                               {2, "\"0c78aef83f66abc1fa1e8477f296d394\""},
                               {7, "odd&<>'\"chars"}};
    size_t len = 0;
    char *s = s3_xml_complete_build(p, 2, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    assert_string_equal(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                           "<CompleteMultipartUpload xmlns=\"" S3NS "\">"
                           "<Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag></Part>"
                           "<Part><PartNumber>2</PartNumber><ETag>\"0c78aef83f66abc1fa1e8477f296d394\"</ETag></Part>"
                           "</CompleteMultipartUpload>");
    free(s);

    /* Escaping, checked by reading the body back with expat. A quote inside is refused,
     * so use the part without it. */
    struct s3_part_etag q[] = {{1, "x"}, {3, "odd&<>'chars"}};
    s = s3_xml_complete_build(q, 2, &len);
    assert_non_null(s);
    struct part_rd rd = {0};
    XML_Parser xp = XML_ParserCreate(NULL);
    XML_SetUserData(xp, &rd);
    XML_SetElementHandler(xp, rd_start, rd_end);
    XML_SetCharacterDataHandler(xp, rd_text);
    assert_int_equal(XML_Parse(xp, s, (int)len, 1), XML_STATUS_OK);
    XML_ParserFree(xp);
    assert_int_equal(rd.n, 2);
    assert_string_equal(rd.etags[0], "\"x\"");
    assert_string_equal(rd.etags[1], "\"odd&<>'chars\"");
    free(s);

    /* len may be NULL. */
    s = s3_xml_complete_build(p, 1, NULL);
    assert_non_null(s);
    free(s);

    /* Refused inputs. */
    struct {
        struct s3_part_etag v[3];
        int n;
    } bad[] = {
        {{{1, "a"}}, 0},
        {{{0, "a"}}, 1},
        {{{10001, "a"}}, 1},
        {{{-5, "a"}}, 1},
        {{{2, "a"}, {1, "b"}}, 2}, /* not ascending */
        {{{1, "a"}, {1, "b"}}, 2}, /* duplicate */
        {{{1, NULL}}, 1},
        {{{1, ""}}, 1},
        {{{1, "\"\""}}, 1},
        {{{1, "ab\x01"}}, 1},
        {{{1, "a\nb"}}, 1},
        {{{1, "caf\xc3\xa9"}}, 1}, /* not ASCII */
        {{{1, "\xff"}}, 1},
        {{{1, "a b"}}, 1},
        {{{1, p[2].etag}}, 1}, /* a quote inside */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        if (s3_xml_complete_build(bad[i].v, bad[i].n, &len) != NULL) fail_msg("bad[%zu] accepted", i);
        assert_int_equal(errno, EINVAL);
    }
    errno = 0;
    assert_null(s3_xml_complete_build(NULL, 1, &len));
    assert_int_equal(errno, EINVAL);
    assert_null(s3_xml_complete_build(p, 10001, &len));

    /* All 10000 parts. */
    struct s3_part_etag *all = calloc(10000, sizeof *all);
    for (int i = 0; i < 10000; i++) all[i] = (struct s3_part_etag){i + 1, "d41d8cd98f00b204e9800998ecf8427e"};
    s = s3_xml_complete_build(all, 10000, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    assert_non_null(strstr(s, "<Part><PartNumber>10000</PartNumber><ETag>\"d41d8cd98f00b204e9800998ecf8427e\"</ETag></Part>"
                              "</CompleteMultipartUpload>"));
    free(s);
    free(all);
}

/* ---- time ------------------------------------------------------------------------------------ */

static void test_iso8601(void **state)
{
    assert_int_equal(s3_parse_iso8601("2026-11-22T01:02:03.000Z"), utc(2026, 11, 22, 1, 2, 3));
    assert_int_equal(s3_parse_iso8601("1970-01-01T00:00:00.000Z"), 0);
    assert_int_equal(s3_parse_iso8601("1970-01-01T00:00:01Z"), 1);
    assert_int_equal(s3_parse_iso8601("2026-11-22T01:02:03Z"), utc(2026, 11, 22, 1, 2, 3));
    assert_int_equal(s3_parse_iso8601("2026-11-22t01:02:03.5z"), utc(2026, 11, 22, 1, 2, 3));
    assert_int_equal(s3_parse_iso8601("2026-11-22T01:02:03.123456789Z"), utc(2026, 11, 22, 1, 2, 3));
    assert_int_equal(s3_parse_iso8601("2026-11-22T01:02:03"), utc(2026, 11, 22, 1, 2, 3)); /* no zone: UTC */
    assert_int_equal(s3_parse_iso8601("2026-11-22T02:02:03+01:00"), utc(2026, 11, 22, 1, 2, 3));
    assert_int_equal(s3_parse_iso8601("2026-11-21T23:32:03-0130"), utc(2026, 11, 22, 1, 2, 3));
    assert_int_equal(s3_parse_iso8601("2024-02-29T12:00:00.000Z"), utc(2024, 2, 29, 12, 0, 0));
    assert_int_equal(s3_parse_iso8601("2000-02-29T00:00:00Z"), utc(2000, 2, 29, 0, 0, 0));
    assert_int_equal(s3_parse_iso8601("2016-12-31T23:59:60Z"), utc(2017, 1, 1, 0, 0, 0)); /* leap second */
    assert_int_equal(s3_parse_iso8601("2038-01-19T03:14:08Z"), (time_t)2147483648LL);    /* past 2^31 */
    assert_int_equal(s3_parse_iso8601("9999-12-31T23:59:59Z"), utc(9999, 12, 31, 23, 59, 59));

    const char *bad[] = {"", "2026", "2026-11-22", "2026-11-22T01:02", "2026-11-22T01:02:03.", "2026-11-22T01:02:03.Z",
                         "2026-11-22 01:02:03Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-04-31T00:00:00Z",
                         "2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-01-32T00:00:00Z", "2026-01-00T00:00:00Z",
                         "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01T00:00:61Z", "2026-01-01T00:00:00ZZ",
                         "2026-01-01T00:00:00.0000000001Z", "2026-01-01T00:00:00+25:00", "2026-01-01T00:00:00+01",
                         "2026-1-01T00:00:00Z", " 2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z ", "1969-12-31T23:59:59Z",
                         "1970-01-01T00:30:00+01:00", "+2026-01-01T00:00:00Z", "２026-01-01T00:00:00Z",
                         "Sun, 22 Nov 2026 01:02:03 GMT"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (s3_parse_iso8601(bad[i]) != -1) fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(s3_parse_iso8601(NULL), -1);

    /* Against timegm over random instants. */
    unsigned seed = 7;
    for (int i = 0; i < 100000; i++) {
        time_t t = (time_t)(((uint64_t)rand_r(&seed) << 20 ^ (uint64_t)rand_r(&seed)) % 253402300800ULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        char buf[64];
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        if (s3_parse_iso8601(buf) != t) fail_msg("%s: got %lld want %lld", buf, (long long)s3_parse_iso8601(buf), (long long)t);
    }
}

static void test_http_date(void **state)
{
    time_t want = utc(2026, 11, 22, 1, 2, 3);
    assert_int_equal(s3_parse_http_date("Sun, 22 Nov 2026 01:02:03 GMT"), want);
    assert_int_equal(s3_parse_http_date("Sunday, 22-Nov-26 01:02:03 GMT"), want);
    assert_int_equal(s3_parse_http_date("Sun Nov 22 01:02:03 2026"), want);
    assert_int_equal(s3_parse_http_date("Sun Nov  6 08:49:37 1994"), utc(1994, 11, 6, 8, 49, 37));
    assert_int_equal(s3_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), utc(1994, 11, 6, 8, 49, 37));
    assert_int_equal(s3_parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    assert_int_equal(s3_parse_http_date("Thu, 29 Feb 2024 23:59:59 GMT"), utc(2024, 2, 29, 23, 59, 59));
    assert_int_equal(s3_parse_http_date("sun, 22 nov 2026 01:02:03 GMT"), want); /* lenient on case */

    const char *bad[] = {"", "Sun, 22 Nov 2026 01:02:03", "Sun, 22 Nov 2026 01:02:03 PST", "Sun, 22 Nov 2026 01:02:03 GMT ",
                         "Sun, 22 Nov 2026 01:02:03 +0000", "Sun, 2 Nov 2026 01:02:03 GMT", "Sun, 22 Foo 2026 01:02:03 GMT",
                         "Xyz, 22 Nov 2026 01:02:03 GMT", "Sun,22 Nov 2026 01:02:03 GMT", "Sun, 22 Nov 26 01:02:03 GMT",
                         "Sun, 31 Nov 2026 01:02:03 GMT", "Sun, 22 Nov 2026 25:02:03 GMT", "Sun, 22 Nov 2026 1:02:03 GMT",
                         "Sunday, 22-Nov-2026 01:02:03 GMT", "Sun Nov 22 01:02:03 2026 ", "Sun Nov 22 01:02:03 26",
                         "Sun Nov 2 01:02:03 2026", "Sun", "Sun,", "Sun, ", "Sunday,", "2026-11-22T01:02:03Z",
                         "Mon, 29 Feb 2023 00:00:00 GMT", "Thu, 31 Dec 1969 23:59:59 GMT"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (s3_parse_http_date(bad[i]) != -1) fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(s3_parse_http_date(NULL), -1);

    /* Round trip with the three formats over random instants (strftime in the C locale). */
    unsigned seed = 99;
    for (int i = 0; i < 50000; i++) {
        time_t t = (time_t)(((uint64_t)rand_r(&seed) << 20 ^ (uint64_t)rand_r(&seed)) % 253402300800ULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        char buf[64];
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        assert_int_equal(s3_parse_http_date(buf), t);
        strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
        assert_int_equal(s3_parse_http_date(buf), t);
        if (tm.tm_year >= 70 && tm.tm_year < 170) {
            strftime(buf, sizeof buf, "%A, %d-%b-%y %H:%M:%S GMT", &tm);
            assert_int_equal(s3_parse_http_date(buf), t);
        }
    }
}

/* ---- URL decoding ---------------------------------------------------------------------------- */

static void expect_decode(const char *in, const char *want)
{
    char buf[256];
    strcpy(buf, in);
    if (s3_url_decode(buf) != 0) fail_msg("decode(\"%s\") failed", in);
    if (strcmp(buf, want) != 0) fail_msg("decode(\"%s\") = \"%s\", want \"%s\"", in, buf, want);
}

static void test_url_decode(void **state)
{
    expect_decode("", "");
    expect_decode("plain/key.txt", "plain/key.txt");
    expect_decode("a+b", "a b");
    expect_decode("a%2Bb%2bc", "a+b+c");
    expect_decode("%25%2525", "%%25");
    expect_decode("%e2%82%AC", "\xe2\x82\xac");
    expect_decode("%2F%2f", "//");
    expect_decode("%7F%FF%01", "\x7f\xff\x01");
    const char *bad[] = {"%", "%2", "a%2", "%G0", "%0G", "%%", "%00", "x%00y", "%-1", "% 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[32];
        strcpy(buf, bad[i]);
        if (s3_url_decode(buf) != -EINVAL) fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(s3_url_decode(NULL), -EINVAL);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_aws),
        cmocka_unit_test(test_list_swift),
        cmocka_unit_test(test_list_namespaces),
        cmocka_unit_test(test_list_escaped_keys),
        cmocka_unit_test(test_list_url_encoded),
        cmocka_unit_test(test_list_empty_and_unknown),
        cmocka_unit_test(test_list_semantic_errors),
        cmocka_unit_test(test_list_wrong_documents),
        cmocka_unit_test(test_list_truncated_everywhere),
        cmocka_unit_test(test_list_garbage),
        cmocka_unit_test(test_list_1000),
        cmocka_unit_test(test_list_huge_text),
        cmocka_unit_test(test_list_deep_nesting),
        cmocka_unit_test(test_list_utf16),
        cmocka_unit_test(test_entity_attacks),
        cmocka_unit_test(test_error_parse),
        cmocka_unit_test(test_initiate_parse),
        cmocka_unit_test(test_complete_parse),
        cmocka_unit_test(test_copy_parse),
        cmocka_unit_test(test_complete_build),
        cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_http_date),
        cmocka_unit_test(test_url_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
