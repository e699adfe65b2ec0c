/* fuzz_s3_xml.c - fuzz every reader in core/s3_xml.c with one input.
 *
 * LLVMFuzzerTestOneInput feeds the bytes to all five document parsers, the two date
 * parsers, the URL decoder and the CompleteMultipartUpload builder, and checks the
 * contracts of s3_xml.h (return codes, NUL-terminated bounded outputs, empty outputs on
 * failure, a built body that is well-formed XML and reads back). A broken contract
 * aborts, so the fuzzer reports it like a crash.
 *
 * Built with -DS3_XML_LIBFUZZER and clang -fsanitize=fuzzer, libFuzzer drives it. Built
 * without, a small driver (main below) mutates a seed corpus for a bounded time, so the
 * harness also runs where clang is missing (see README.md). */
#include "../../core/s3/s3_xml.h"

#include <dirent.h>
#include <errno.h>
#include <expat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void save_input(void);

#define CHECK(c)                                                                             \
    do {                                                                                     \
        if (!(c)) {                                                                          \
            fprintf(stderr, "fuzz_s3_xml: contract broken: %s (line %d)\n", #c, __LINE__); \
            save_input();                                                                    \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* The input being checked, for the standalone driver to save when a contract breaks
 * (libFuzzer saves its own). */
static const uint8_t *cur_data;
static size_t cur_size;

static void save_input(void)
{
#ifndef S3_XML_LIBFUZZER
    const char *path = getenv("FUZZ_CRASH_FILE");
    if (!path) path = "crash-fuzz_s3_xml.bin";
    FILE *f = fopen(path, "wb");
    if (f && fwrite(cur_data, 1, cur_size, f) == cur_size) fprintf(stderr, "fuzz_s3_xml: input saved to %s\n", path);
    if (f) fclose(f);
#endif
}

static size_t bounded_strlen(const char *s, size_t cap)
{
    const char *z = memchr(s, 0, cap);
    CHECK(z != NULL); /* NUL-terminated inside its buffer */
    return (size_t)(z - s);
}

static void check_list(const uint8_t *data, size_t size)
{
    struct s3_list_page pg;
    int rc = s3_xml_list_parse((const char *)data, size, &pg);
    CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
    if (rc) {
        CHECK(pg.v == NULL && pg.n == 0 && pg.next_token == NULL);
        return;
    }
    CHECK(pg.n <= pg.cap);
    CHECK(!pg.truncated || pg.next_token);
    for (size_t i = 0; i < pg.n; i++) {
        const struct s3_list_entry *e = &pg.v[i];
        CHECK(e->name && e->name[0]);
        CHECK(strlen(e->name) <= S3_XML_MAX_TEXT);
        CHECK(e->is_prefix ? e->size == -1 : e->size >= 0);
        CHECK(e->mtime >= 0);
        bounded_strlen(e->etag, sizeof e->etag);
        CHECK(!e->is_prefix || e->etag[0] == 0);
        CHECK(strpbrk(e->etag, "\" \t\r\n") == NULL);
    }
    s3_list_page_free(&pg);
    CHECK(pg.v == NULL && pg.n == 0);
}

static void check_error(const uint8_t *data, size_t size)
{
    static const size_t sizes[] = {1, 5, 64, 512};
    for (size_t k = 0; k < 4; k++) {
        char code[512], msg[512];
        memset(code, 'X', sizeof code);
        memset(msg, 'X', sizeof msg);
        int rc = s3_xml_error_parse((const char *)data, size, code, sizes[k], msg, sizes[3 - k]);
        CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
        bounded_strlen(code, sizes[k]);
        bounded_strlen(msg, sizes[3 - k]);
        if (rc) CHECK(code[0] == 0 && msg[0] == 0);
    }
    CHECK(s3_xml_error_parse((const char *)data, size, NULL, 0, NULL, 0) != -EIO);
}

static void check_initiate(const uint8_t *data, size_t size)
{
    char id[40];
    memset(id, 'X', sizeof id);
    int rc = s3_xml_initiate_parse((const char *)data, size, id, sizeof id);
    CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
    size_t l = bounded_strlen(id, sizeof id);
    CHECK(rc == 0 ? l > 0 : l == 0);
}

typedef int (*etag_fn)(const char *, size_t, char *, size_t, char *, size_t);

static void check_etag_result(etag_fn fn, const uint8_t *data, size_t size)
{
    char etag[48], code[16];
    memset(etag, 'X', sizeof etag);
    memset(code, 'X', sizeof code);
    int rc = fn((const char *)data, size, etag, sizeof etag, code, sizeof code);
    CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM || rc == -EIO);
    size_t el = bounded_strlen(etag, sizeof etag);
    size_t cl = bounded_strlen(code, sizeof code);
    CHECK(rc == 0 ? el > 0 : el == 0);
    if (rc != -EIO) CHECK(cl == 0);
    if (rc == 0) {
        for (size_t i = 0; i < el; i++) CHECK(etag[i] > 0x20 && etag[i] < 0x7f && etag[i] != '"');
        /* what a result gave, the CompleteMultipartUpload builder takes */
        struct s3_part_etag pe = {1, etag};
        size_t bl;
        char *body = s3_xml_complete_build(&pe, 1, &bl);
        CHECK(body != NULL || errno == ENOMEM);
        free(body);
    }
    /* The same document through the error reader agrees on what it is. */
    int erc = s3_xml_error_parse((const char *)data, size, NULL, 0, NULL, 0);
    if (rc == -EIO) CHECK(erc == 0 || erc == -ENOMEM);
    if (rc == 0) CHECK(erc == -EPROTO || erc == -ENOMEM);
    CHECK(fn((const char *)data, size, NULL, 0, NULL, 0) != 0); /* nowhere to put an ETag */
}

static void check_dates(const uint8_t *data, size_t size)
{
    char s[72];
    size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
    memcpy(s, data, n);
    s[n] = 0;
    time_t t = s3_parse_iso8601(s);
    CHECK(t >= -1);
    struct tm tm;
    /* The canonical spelling of the same instant reads back the same (a zone offset or a
     * leap second may carry it past 9999, which has no four-digit spelling). */
    if (t >= 0 && gmtime_r(&t, &tm) && tm.tm_year + 1900 <= 9999) {
        char c[64];
        strftime(c, sizeof c, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        CHECK(s3_parse_iso8601(c) == t);
    }
    t = s3_parse_http_date(s);
    CHECK(t >= -1);
    if (t >= 0 && gmtime_r(&t, &tm) && tm.tm_year + 1900 <= 9999) {
        char c[64];
        strftime(c, sizeof c, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        CHECK(s3_parse_http_date(c) == t);
    }
}

static void check_url_decode(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return;
    memcpy(s, data, size);
    s[size] = 0;
    size_t before = strlen(s);
    int rc = s3_url_decode(s);
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0) CHECK(strlen(s) <= before);
    free(s);
}

/* Reads a built body back: counts Parts and compares each ETag's text. */
struct readback {
    int parts, nparts, in_etag, bad;
    char *etag; /* the text of the ETag being read */
    size_t elen, ecap;
    const char *const *want;
};

static void XMLCALL rb_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct readback *r = ud;
    if (strcmp(name, "Part") == 0) r->parts++;
    r->in_etag = strcmp(name, "ETag") == 0;
    r->elen = 0;
}

static void XMLCALL rb_end(void *ud, const XML_Char *name)
{
    struct readback *r = ud;
    if (r->in_etag && (r->parts < 1 || r->parts > r->nparts)) r->bad = 1;
    if (r->in_etag && !r->bad) {
        const char *w = r->want[r->parts - 1];
        size_t wl = strlen(w);
        /* '"' + the ETag without surrounding white space and quotes + '"' */
        while (wl && strchr(" \t\r\n", *w)) w++, wl--;
        while (wl && strchr(" \t\r\n", w[wl - 1])) wl--;
        if (wl && *w == '"') w++, wl--;
        if (wl && w[wl - 1] == '"') wl--;
        if (r->elen != wl + 2 || r->etag[0] != '"' || r->etag[wl + 1] != '"' || memcmp(r->etag + 1, w, wl) != 0)
            r->bad = 1;
    }
    r->in_etag = 0;
}

static void XMLCALL rb_text(void *ud, const XML_Char *s, int len)
{
    struct readback *r = ud;
    if (!r->in_etag) return;
    if (r->elen + (size_t)len >= r->ecap) {
        r->bad = 1;
        return;
    }
    memcpy(r->etag + r->elen, s, (size_t)len);
    r->elen += (size_t)len;
}

static void check_build(const uint8_t *data, size_t size)
{
    /* Up to 8 ETags: the input split at '\n'. */
    char *copy = malloc(size + 1);
    if (!copy) return;
    memcpy(copy, data, size);
    copy[size] = 0;
    struct s3_part_etag parts[8];
    const char *etags[8];
    int n = 0;
    for (char *p = copy; n < 8;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        parts[n].part = n * 3 + 1;
        parts[n].etag = etags[n] = p;
        n++;
        if (!nl) break;
        p = nl + 1;
    }
    size_t len = 0;
    errno = 0;
    char *body = s3_xml_complete_build(parts, n, &len);
    if (!body) {
        CHECK(errno == EINVAL || errno == ENOMEM);
    } else {
        CHECK(strlen(body) == len);
        struct readback r = {.want = etags, .nparts = n, .ecap = size + 3};
        r.etag = malloc(r.ecap);
        XML_Parser xp = XML_ParserCreate(NULL);
        CHECK(xp != NULL && r.etag != NULL);
        XML_SetUserData(xp, &r);
        XML_SetElementHandler(xp, rb_start, rb_end);
        XML_SetCharacterDataHandler(xp, rb_text);
        CHECK(XML_Parse(xp, body, (int)len, XML_TRUE) == XML_STATUS_OK);
        XML_ParserFree(xp);
        CHECK(r.parts == n && !r.bad);
        free(r.etag);
        free(body);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cur_data = data;
    cur_size = size;
    check_list(data, size);
    check_error(data, size);
    check_initiate(data, size);
    check_etag_result(s3_xml_complete_parse, data, size);
    check_etag_result(s3_xml_copy_parse, data, size);
    check_dates(data, size);
    check_url_decode(data, size);
    check_build(data, size);
    return 0;
}

#ifndef S3_XML_LIBFUZZER
/* ---- standalone driver: mutate seeds for a bounded time -------------------------------- */

struct buf {
    uint8_t *p;
    size_t n;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}
static size_t rndn(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static const char *const dict[] = {
    "<ListBucketResult>", "</ListBucketResult>", "<Contents>", "</Contents>", "<Key>", "</Key>", "<Size>",
    "</Size>", "<ETag>", "</ETag>", "<LastModified>", "</LastModified>", "<CommonPrefixes>",
    "</CommonPrefixes>", "<Prefix>", "</Prefix>", "<IsTruncated>true</IsTruncated>",
    "<NextContinuationToken>", "</NextContinuationToken>", "<EncodingType>url</EncodingType>", "<Error>",
    "</Error>", "<Code>", "</Code>", "<Message>", "<RequestId>", "<UploadId>", "</UploadId>",
    "<InitiateMultipartUploadResult>", "<CompleteMultipartUploadResult>", "<CopyObjectResult>",
    "<CopyPartResult>", " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"", "xmlns:s3=\"x\"", "s3:", "&amp;",
    "&lt;", "&quot;", "&#x1F600;", "&#0;", "&#65;", "&foo;", "<![CDATA[", "]]>", "<!--", "-->", "<?xml version=\"1.0\"?>",
    "<!DOCTYPE r [<!ENTITY a \"b\">]>", "<!ENTITY", "%25", "%2B", "%00", "%", "+", "\"", "9223372036854775807",
    "9223372036854775808", "-1", "2026-11-22T01:02:03.000Z", "+01:00", "Sun, 22 Nov 2026 01:02:03 GMT",
    "Sunday, 22-Nov-26 01:02:03 GMT", "Sun Nov  6 08:49:37 1994", "\xef\xbb\xbf", "\xff\xfe", "\xc3\xa9", "\xed\xa0\x80",
    "\n", "\r\n", " ", "\t", "/>", "<a>", "</a>",
};

static void mutate(struct buf *b, const struct buf *seeds, size_t nseeds, size_t maxlen)
{
    int rounds = 1; /* usually few, so that many mutants still parse and reach deep code */
    while (rounds < 8 && rndn(2)) rounds++;
    for (int r = 0; r < rounds; r++) {
        size_t at = rndn(b->n + 1);
        switch (rndn(9)) {
        case 0: /* flip a bit */
            if (b->n) b->p[rndn(b->n)] ^= (uint8_t)(1u << rndn(8));
            break;
        case 1: /* random byte */
            if (b->n) b->p[rndn(b->n)] = (uint8_t)rnd();
            break;
        case 2: /* interesting byte */
            if (b->n) b->p[rndn(b->n)] = (uint8_t) "<>&;/\"'=\0 ]%+-.:0\xff\x80"[rndn(20)];
            break;
        case 3:   /* insert a token */
        case 4: { /* (twice as likely) */
            const char *t = dict[rndn(sizeof dict / sizeof dict[0])];
            size_t tl = strlen(t);
            if (b->n + tl > maxlen) break;
            memmove(b->p + at + tl, b->p + at, b->n - at);
            memcpy(b->p + at, t, tl);
            b->n += tl;
            break;
        }
        case 5: { /* delete a range */
            if (at >= b->n) break;
            size_t l = rndn(b->n - at + 1);
            memmove(b->p + at, b->p + at + l, b->n - at - l);
            b->n -= l;
            break;
        }
        case 6: { /* duplicate a range */
            if (!b->n || at >= b->n) break;
            size_t l = 1 + rndn(b->n - at < 256 ? b->n - at : 256);
            if (b->n + l > maxlen) break;
            memmove(b->p + at + l, b->p + at, b->n - at); /* at..at+l keeps its bytes */
            b->n += l;
            break;
        }
        case 7: { /* splice a piece of another seed */
            const struct buf *s = &seeds[rndn(nseeds)];
            if (!s->n) break;
            size_t from = rndn(s->n), l = 1 + rndn(s->n - from);
            if (b->n + l > maxlen) break;
            memmove(b->p + at + l, b->p + at, b->n - at);
            memcpy(b->p + at, s->p + from, l);
            b->n += l;
            break;
        }
        case 8: /* truncate */
            b->n = at;
            break;
        }
    }
}

static int add_seed(struct buf **seeds, size_t *n, const uint8_t *p, size_t len)
{
    struct buf *s = realloc(*seeds, (*n + 1) * sizeof **seeds);
    if (!s) return -1;
    *seeds = s;
    s[*n].p = malloc(len ? len : 1);
    if (!s[*n].p) return -1;
    memcpy(s[*n].p, p, len);
    s[*n].n = len;
    (*n)++;
    return 0;
}

static int add_file(struct buf **seeds, size_t *n, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint8_t tmp[1 << 16];
    size_t len = fread(tmp, 1, sizeof tmp, f);
    fclose(f);
    return add_seed(seeds, n, tmp, len);
}

static void add_path(struct buf **seeds, size_t *n, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        perror(path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (add_file(seeds, n, path) < 0) perror(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) add_file(seeds, n, p);
    }
    closedir(d);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run one input from an exact-size heap copy, so ASan sees any read past its end. */
static void run_one(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (!c) abort();
    memcpy(c, p, n);
    LLVMFuzzerTestOneInput(c, n);
    free(c);
}

int main(int argc, char **argv)
{
    double secs = 10;
    unsigned long long max_iter = 0, seed = (unsigned long long)time(NULL);
    int opt_i = 1;
    for (; opt_i < argc && argv[opt_i][0] == '-'; opt_i++) {
        const char *o = argv[opt_i];
        if (opt_i + 1 >= argc) goto usage;
        if (strcmp(o, "-t") == 0)
            secs = atof(argv[++opt_i]);
        else if (strcmp(o, "-n") == 0)
            max_iter = strtoull(argv[++opt_i], NULL, 10);
        else if (strcmp(o, "-s") == 0)
            seed = strtoull(argv[++opt_i], NULL, 10);
        else
            goto usage;
    }
    rng_state ^= seed * 0x2545F4914F6CDD1DULL;
    if (!rng_state) rng_state = 1;

    struct buf *seeds = NULL;
    size_t nseeds = 0;
    for (int i = opt_i; i < argc; i++) add_path(&seeds, &nseeds, argv[i]);
    size_t nfiles = nseeds; /* whole documents: mutated most of the time */
    for (size_t i = 0; i < sizeof dict / sizeof dict[0]; i++)
        add_seed(&seeds, &nseeds, (const uint8_t *)dict[i], strlen(dict[i]));

    /* Every seed as it is, then mutants until the time or the count runs out. */
    for (size_t i = 0; i < nseeds; i++) run_one(seeds[i].p, seeds[i].n);

    const size_t maxlen = 1 << 17;
    struct buf b = {malloc(maxlen), 0};
    if (!b.p) return 1;
    double t0 = now_s(), dt = 0;
    unsigned long long iter = 0, lists_ok = 0;
    while ((!max_iter || iter < max_iter) && (dt = now_s() - t0) < secs) {
        for (int k = 0; k < 64 && (!max_iter || iter < max_iter); k++, iter++) {
            const struct buf *s = &seeds[nfiles && rndn(8) ? rndn(nfiles) : rndn(nseeds)];
            b.n = s->n < maxlen ? s->n : maxlen;
            memcpy(b.p, s->p, b.n);
            mutate(&b, seeds, nseeds, maxlen);
            run_one(b.p, b.n);
            struct s3_list_page pg;
            if (s3_xml_list_parse((const char *)b.p, b.n, &pg) == 0) {
                lists_ok++;
                s3_list_page_free(&pg);
            }
        }
    }
    printf("fuzz_s3_xml: %zu seeds, %llu mutated inputs in %.1f s (seed %llu), %llu parsed as listings, no failures\n",
           nseeds, iter, dt, seed, lists_ok);
    free(b.p);
    for (size_t i = 0; i < nseeds; i++) free(seeds[i].p);
    free(seeds);
    return 0;

usage:
    fprintf(stderr, "usage: %s [-t SECONDS] [-n ITERATIONS] [-s SEED] [CORPUS_DIR_OR_FILE]...\n", argv[0]);
    return 2;
}
#endif
