/* s3_xml.c - see s3_xml.h
 *
 * One small driver (struct xp) wraps expat for all documents: it keeps the nesting depth,
 * refuses DOCTYPE, collects the text of the one element a document parser asked for
 * (bounded), and turns the first problem into an errno that stops the parse. Each document
 * type supplies a start hook (which may ask for the element's text) and an end hook (which
 * gets it). Handlers check x->err first: expat may still call a few after XML_StopParser. */
#include "s3_xml.h"

/* Debian's expat is built with XML_DTD but its header only declares the billion-laughs
 * knobs when the includer defines it too. */
#ifndef XML_DTD
#define XML_DTD 1
#endif
#include <expat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NS_SEP '|' /* never part of an XML local name */

/* ---- the driver ----------------------------------------------------------------------- */

struct xp;
typedef void (*xp_start_fn)(struct xp *x, const char *local);
typedef void (*xp_end_fn)(struct xp *x, const char *local, const char *text, size_t len);

struct xp {
    XML_Parser p;
    int depth;         /* of the element now open; 1 = the root */
    int err;           /* first failure, 0 while fine */
    int cap_depth;     /* depth whose text is being collected, 0 = none */
    char *text;        /* collected text, NUL-terminated while collecting */
    size_t tlen, tcap;
    xp_start_fn start;
    xp_end_fn end;
    void *ud;          /* the document parser's own state */
};

static void xp_fail(struct xp *x, int err)
{
    if (x->err) return;
    x->err = err;
    XML_StopParser(x->p, XML_FALSE);
}

/* Fail and leave the hook. */
#define FAIL(x, e)          \
    do {                    \
        xp_fail((x), (e));  \
        return;             \
    } while (0)

/* From a start hook: keep the text of the element just opened. */
static void xp_capture(struct xp *x)
{
    x->cap_depth = x->depth;
    x->tlen = 0;
    if (x->text) x->text[0] = '\0';
}

static const char *local_name(const XML_Char *name)
{
    const char *s = strrchr(name, NS_SEP);
    return s ? s + 1 : name;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct xp *x = ud;
    if (x->err) return;
    if (x->cap_depth) { /* markup inside a value we read: not an S3 document */
        xp_fail(x, -EPROTO);
        return;
    }
    if (++x->depth > S3_XML_MAX_DEPTH) {
        xp_fail(x, -EPROTO);
        return;
    }
    x->start(x, local_name(name));
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct xp *x = ud;
    if (x->err) return;
    if (x->cap_depth == x->depth) {
        x->cap_depth = 0;
        x->end(x, local_name(name), x->text ? x->text : "", x->tlen);
    } else {
        x->end(x, local_name(name), NULL, 0);
    }
    x->depth--;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct xp *x = ud;
    if (x->err || x->cap_depth != x->depth || len <= 0) return;
    size_t n = (size_t)len;
    if (n > S3_XML_MAX_TEXT - x->tlen) {
        xp_fail(x, -EPROTO);
        return;
    }
    if (x->tlen + n + 1 > x->tcap) {
        size_t cap = x->tcap ? x->tcap : 256;
        while (cap < x->tlen + n + 1) cap *= 2;
        char *t = realloc(x->text, cap);
        if (!t) {
            xp_fail(x, -ENOMEM);
            return;
        }
        x->text = t;
        x->tcap = cap;
    }
    memcpy(x->text + x->tlen, s, n);
    x->tlen += n;
    x->text[x->tlen] = '\0';
}

/* A DTD is where entities are declared (billion laughs, external entities): S3 never
 * sends one, so any DOCTYPE ends the parse before its internal subset is read. */
static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    xp_fail(ud, -EPROTO);
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
                                   int value_len, const XML_Char *base, const XML_Char *sysid,
                                   const XML_Char *pubid, const XML_Char *notation)
{
    xp_fail(ud, -EPROTO);
}

/* Parse a whole document with the hooks; returns 0 or -errno. */
static int xp_run(const char *xml, size_t len, xp_start_fn start, xp_end_fn end, void *ud)
{
    if (!xml) return -EPROTO;
    while (len && (*xml == ' ' || *xml == '\t' || *xml == '\r' || *xml == '\n')) {
        xml++;
        len--;
    }
    if (len == 0 || len > S3_XML_MAX_DOC) return -EPROTO;

    struct xp x = {.start = start, .end = end, .ud = ud};
    x.p = XML_ParserCreateNS(NULL, NS_SEP);
    if (!x.p) return -ENOMEM;
    XML_SetUserData(x.p, &x);
    XML_SetElementHandler(x.p, on_start, on_end);
    XML_SetCharacterDataHandler(x.p, on_text);
    XML_SetStartDoctypeDeclHandler(x.p, on_doctype);
    XML_SetEntityDeclHandler(x.p, on_entity_decl);
    XML_SetParamEntityParsing(x.p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 4)
    /* Belt and braces: no entity can be declared anyway. */
    XML_SetBillionLaughsAttackProtectionMaximumAmplification(x.p, 10.0f);
    XML_SetBillionLaughsAttackProtectionActivationThreshold(x.p, 1u << 20);
#endif

    enum XML_Status st = XML_Parse(x.p, xml, (int)len, XML_TRUE);
    int rc = x.err;
    if (!rc && st != XML_STATUS_OK)
        rc = XML_GetErrorCode(x.p) == XML_ERROR_NO_MEMORY ? -ENOMEM : -EPROTO;
    XML_ParserFree(x.p);
    free(x.text);
    return rc;
}

/* ---- small value helpers ---------------------------------------------------------------- */

/* Copy src (len bytes) into dst of size dstsz, cut to fit. */
static void copy_cut(char *dst, size_t dstsz, const char *src, size_t len)
{
    if (!dst || dstsz == 0) return;
    if (len >= dstsz) len = dstsz - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Strip surrounding whitespace and one pair of quotes from an ETag. */
static void etag_trim(const char **s, size_t *len)
{
    const char *p = *s;
    size_t n = *len;
    while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n')) n--;
    if (n && p[0] == '"') p++, n--;
    if (n && p[n - 1] == '"') n--;
    *s = p;
    *len = n;
}

/* An entity-tag's opaque part (RFC 7232 etagc, ASCII only): what S3 sends (hex and '-'),
 * what If-Match and the CompleteMultipartUpload body can carry back unchanged. */
static int etag_valid(const char *s, size_t len)
{
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e || s[i] == '"') return 0;
    return 1;
}

/* Whitespace-trimmed view of a value. */
static void ws_trim(const char **s, size_t *len)
{
    const char *p = *s;
    size_t n = *len;
    while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n')) n--;
    *s = p;
    *len = n;
}

/* A non-negative decimal that fits in int64_t. */
static int parse_size(const char *s, size_t len, int64_t *out)
{
    ws_trim(&s, &len);
    if (len == 0 || len > 19) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, size_t len, int *out)
{
    ws_trim(&s, &len);
    if ((len == 4 && strncasecmp(s, "true", 4) == 0) || (len == 1 && s[0] == '1')) {
        *out = 1;
        return 0;
    }
    if ((len == 5 && strncasecmp(s, "false", 5) == 0) || (len == 1 && s[0] == '0')) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* ---- ListObjectsV2 ---------------------------------------------------------------------- */

enum { IN_NONE, IN_CONTENTS, IN_PREFIXES };

struct list_st {
    struct s3_list_page pg;
    int in;              /* IN_* at depth 2 */
    struct s3_list_entry cur;
    int have_size, have_mtime, have_etag;
    int seen_truncated, seen_token, seen_encoding;
};

static void entry_free(struct s3_list_entry *e)
{
    free(e->name);
    e->name = NULL;
}

static int page_push(struct s3_list_page *pg, struct s3_list_entry *e)
{
    if (pg->n >= S3_XML_MAX_ENTRIES) return -EPROTO;
    if (pg->n == pg->cap) {
        size_t cap = pg->cap ? pg->cap * 2 : 64;
        struct s3_list_entry *v = realloc(pg->v, cap * sizeof *v);
        if (!v) return -ENOMEM;
        pg->v = v;
        pg->cap = cap;
    }
    pg->v[pg->n++] = *e;
    memset(e, 0, sizeof *e);
    return 0;
}

static void list_start(struct xp *x, const char *el)
{
    struct list_st *L = x->ud;
    if (x->depth == 1) {
        if (strcmp(el, "ListBucketResult") != 0) xp_fail(x, -EPROTO);
    } else if (x->depth == 2) {
        if (strcmp(el, "Contents") == 0) {
            L->in = IN_CONTENTS;
            memset(&L->cur, 0, sizeof L->cur);
            L->have_size = L->have_mtime = L->have_etag = 0;
        } else if (strcmp(el, "CommonPrefixes") == 0) {
            L->in = IN_PREFIXES;
        } else if (strcmp(el, "IsTruncated") == 0 || strcmp(el, "NextContinuationToken") == 0 ||
                   strcmp(el, "EncodingType") == 0) {
            xp_capture(x);
        }
    } else if (x->depth == 3) {
        if (L->in == IN_CONTENTS) {
            if (strcmp(el, "Key") == 0 || strcmp(el, "Size") == 0 || strcmp(el, "LastModified") == 0 ||
                strcmp(el, "ETag") == 0)
                xp_capture(x);
        } else if (L->in == IN_PREFIXES) {
            if (strcmp(el, "Prefix") == 0) xp_capture(x);
        }
    }
}

static char *dup_text(const char *text, size_t len)
{
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, text, len);
        s[len] = '\0';
    }
    return s;
}

static void list_end_contents_field(struct xp *x, struct list_st *L, const char *el, const char *text,
                                    size_t len)
{
    struct s3_list_entry *e = &L->cur;
    if (strcmp(el, "Key") == 0) {
        /* Expat delivers NUL only if the document held &#0;, which XML forbids anyway. */
        if (e->name || len == 0 || memchr(text, '\0', len)) FAIL(x, -EPROTO);
        if (!(e->name = dup_text(text, len))) FAIL(x, -ENOMEM);
    } else if (strcmp(el, "Size") == 0) {
        if (L->have_size || parse_size(text, len, &e->size) < 0) FAIL(x, -EPROTO);
        L->have_size = 1;
    } else if (strcmp(el, "LastModified") == 0) {
        if (L->have_mtime++) FAIL(x, -EPROTO);
        ws_trim(&text, &len);
        char buf[64];
        if (len < sizeof buf) {
            memcpy(buf, text, len);
            buf[len] = '\0';
            time_t t = s3_parse_iso8601(buf);
            e->mtime = t < 0 ? 0 : t;
        }
    } else if (strcmp(el, "ETag") == 0) {
        if (L->have_etag++) FAIL(x, -EPROTO);
        etag_trim(&text, &len);
        if (len < sizeof e->etag && etag_valid(text, len)) copy_cut(e->etag, sizeof e->etag, text, len);
    }
}

static void list_end(struct xp *x, const char *el, const char *text, size_t len)
{
    struct list_st *L = x->ud;
    int rc;
    if (x->depth == 2) {
        if (L->in == IN_CONTENTS && strcmp(el, "Contents") == 0) {
            L->in = IN_NONE;
            if (!L->cur.name || !L->have_size) FAIL(x, -EPROTO);
            if ((rc = page_push(&L->pg, &L->cur)) < 0) FAIL(x, rc);
        } else if (L->in == IN_PREFIXES && strcmp(el, "CommonPrefixes") == 0) {
            L->in = IN_NONE;
        } else if (text && strcmp(el, "IsTruncated") == 0) {
            if (L->seen_truncated++ || parse_bool(text, len, &L->pg.truncated) < 0) xp_fail(x, -EPROTO);
        } else if (text && strcmp(el, "NextContinuationToken") == 0) {
            if (L->seen_token++ || memchr(text, '\0', len)) FAIL(x, -EPROTO);
            ws_trim(&text, &len);
            if (len && !(L->pg.next_token = dup_text(text, len))) xp_fail(x, -ENOMEM);
        } else if (text && strcmp(el, "EncodingType") == 0) {
            if (L->seen_encoding++) FAIL(x, -EPROTO);
            ws_trim(&text, &len);
            L->pg.url_encoded = len == 3 && strncasecmp(text, "url", 3) == 0;
        }
    } else if (x->depth == 3 && text) {
        if (L->in == IN_CONTENTS) {
            list_end_contents_field(x, L, el, text, len);
        } else if (L->in == IN_PREFIXES) { /* Prefix */
            if (len == 0 || memchr(text, '\0', len)) FAIL(x, -EPROTO);
            struct s3_list_entry e = {.is_prefix = 1, .size = -1};
            if (!(e.name = dup_text(text, len))) FAIL(x, -ENOMEM);
            if ((rc = page_push(&L->pg, &e)) < 0) {
                entry_free(&e);
                xp_fail(x, rc);
            }
        }
    }
}

void s3_list_page_free(struct s3_list_page *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) free(p->v[i].name);
    free(p->v);
    free(p->next_token);
    memset(p, 0, sizeof *p);
}

int s3_xml_list_parse(const char *xml, size_t len, struct s3_list_page *out)
{
    struct list_st L;
    memset(&L, 0, sizeof L);
    memset(out, 0, sizeof *out);
    int rc = xp_run(xml, len, list_start, list_end, &L);
    entry_free(&L.cur); /* a Contents left open by an error */
    if (!rc && L.pg.truncated && !L.pg.next_token) rc = -EPROTO; /* could never continue */
    if (!rc && L.pg.url_encoded) {
        for (size_t i = 0; i < L.pg.n && !rc; i++)
            if (s3_url_decode(L.pg.v[i].name) < 0 || !L.pg.v[i].name[0]) rc = -EPROTO;
    }
    if (rc) {
        s3_list_page_free(&L.pg);
        return rc;
    }
    *out = L.pg;
    return 0;
}

/* ---- Error and the one-value results ----------------------------------------------------- */

/* A document whose root is one of `roots` (with one interesting child `field`) or Error. */
struct one_st {
    const char *const *roots; /* accepted roots besides Error, NULL-terminated; NULL = none */
    const char *field;
    int is_error;      /* the root was Error */
    char *value;       /* ROOT/field, or Error/Code */
    char *msg, *reqid; /* Error/Message, Error/RequestId */
};

static void one_start(struct xp *x, const char *el)
{
    struct one_st *o = x->ud;
    if (x->depth == 1) {
        if (strcmp(el, "Error") == 0) {
            o->is_error = 1;
            return;
        }
        for (const char *const *r = o->roots; r && *r; r++)
            if (strcmp(el, *r) == 0) return;
        xp_fail(x, -EPROTO);
    } else if (x->depth == 2) {
        if (o->is_error ? (strcmp(el, "Code") == 0 || strcmp(el, "Message") == 0 || strcmp(el, "RequestId") == 0)
                        : strcmp(el, o->field) == 0)
            xp_capture(x);
    }
}

static void one_end(struct xp *x, const char *el, const char *text, size_t len)
{
    struct one_st *o = x->ud;
    if (x->depth != 2 || !text) return;
    char **slot = &o->value;
    if (o->is_error && strcmp(el, "Message") == 0) slot = &o->msg;
    if (o->is_error && strcmp(el, "RequestId") == 0) slot = &o->reqid;
    if (*slot || memchr(text, '\0', len)) FAIL(x, -EPROTO); /* twice, or NUL */
    if (!(*slot = dup_text(text, len))) xp_fail(x, -ENOMEM);
}

static void one_free(struct one_st *o)
{
    free(o->value);
    free(o->msg);
    free(o->reqid);
}

/* Server text bound for log lines: control characters become spaces. */
static void unctrl(char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = ' ';
}

int s3_xml_error_parse(const char *xml, size_t len, char *code, size_t codesz, char *msg, size_t msgsz)
{
    copy_cut(code, codesz, "", 0);
    copy_cut(msg, msgsz, "", 0);
    struct one_st o = {0};
    int rc = xp_run(xml, len, one_start, one_end, &o);
    if (!rc && !o.is_error) rc = -EPROTO;
    if (!rc) {
        const char *c = o.value ? o.value : "";
        size_t cl = strlen(c);
        ws_trim(&c, &cl);
        copy_cut(code, codesz, c, cl);
        if (msg && msgsz) {
            if (o.reqid)
                snprintf(msg, msgsz, "%s (RequestId: %s)", o.msg ? o.msg : "", o.reqid);
            else
                snprintf(msg, msgsz, "%s", o.msg ? o.msg : "");
        }
        if (codesz) unctrl(code);
        if (msgsz) unctrl(msg);
    }
    one_free(&o);
    return rc;
}

int s3_xml_initiate_parse(const char *xml, size_t len, char *upload_id, size_t sz)
{
    copy_cut(upload_id, sz, "", 0);
    static const char *const roots[] = {"InitiateMultipartUploadResult", NULL};
    struct one_st o = {.roots = roots, .field = "UploadId"};
    int rc = xp_run(xml, len, one_start, one_end, &o);
    if (!rc && o.is_error) rc = -EPROTO;
    if (!rc) {
        const char *v = o.value ? o.value : "";
        size_t vl = strlen(v);
        ws_trim(&v, &vl);
        if (vl == 0 || !upload_id || vl >= sz)
            rc = -EPROTO;
        else
            copy_cut(upload_id, sz, v, vl);
    }
    one_free(&o);
    return rc;
}

/* Complete and copy: the result's ETag, or -EIO and the Code of a 200-with-Error. */
static int etag_result_parse(const char *const *roots, const char *xml, size_t len, char *etag, size_t etagsz,
                             char *err_code, size_t errsz)
{
    copy_cut(etag, etagsz, "", 0);
    copy_cut(err_code, errsz, "", 0);
    struct one_st o = {.roots = roots, .field = "ETag"};
    int rc = xp_run(xml, len, one_start, one_end, &o);
    if (!rc && o.is_error) {
        const char *c = o.value ? o.value : "";
        size_t cl = strlen(c);
        ws_trim(&c, &cl);
        copy_cut(err_code, errsz, c, cl);
        if (errsz) unctrl(err_code);
        rc = -EIO;
    } else if (!rc) {
        const char *v = o.value ? o.value : "";
        size_t vl = strlen(v);
        etag_trim(&v, &vl);
        if (!etag_valid(v, vl) || !etag || vl >= etagsz)
            rc = -EPROTO;
        else
            copy_cut(etag, etagsz, v, vl);
    }
    one_free(&o);
    return rc;
}

int s3_xml_complete_parse(const char *xml, size_t len, char *etag, size_t etagsz, char *err_code, size_t errsz)
{
    static const char *const roots[] = {"CompleteMultipartUploadResult", NULL};
    return etag_result_parse(roots, xml, len, etag, etagsz, err_code, errsz);
}

int s3_xml_copy_parse(const char *xml, size_t len, char *etag, size_t etagsz, char *err_code, size_t errsz)
{
    static const char *const roots[] = {"CopyObjectResult", "CopyPartResult", NULL};
    return etag_result_parse(roots, xml, len, etag, etagsz, err_code, errsz);
}

/* ---- CompleteMultipartUpload body -------------------------------------------------------- */

struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->oom = 1;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_escaped(struct sbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': sb_str(b, "&amp;"); break;
        case '<': sb_str(b, "&lt;"); break;
        case '>': sb_str(b, "&gt;"); break;
        default: sb_add(b, &s[i], 1);
        }
    }
}

char *s3_xml_complete_build(const struct s3_part_etag *parts, int n, size_t *len)
{
    if (!parts || n < 1 || n > S3_XML_MAX_PARTS) {
        errno = EINVAL;
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const char *e = parts[i].etag;
        if (parts[i].part < 1 || parts[i].part > S3_XML_MAX_PARTS || (i && parts[i].part <= parts[i - 1].part) ||
            !e) {
            errno = EINVAL;
            return NULL;
        }
        size_t el = strlen(e);
        etag_trim(&e, &el);
        if (!etag_valid(e, el)) {
            errno = EINVAL;
            return NULL;
        }
    }

    struct sbuf b = {0};
    sb_str(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (int i = 0; i < n; i++) {
        char num[48];
        snprintf(num, sizeof num, "<Part><PartNumber>%d</PartNumber><ETag>\"", parts[i].part);
        sb_str(&b, num);
        const char *e = parts[i].etag;
        size_t el = strlen(e);
        etag_trim(&e, &el);
        sb_escaped(&b, e, el);
        sb_str(&b, "\"</ETag></Part>");
    }
    sb_str(&b, "</CompleteMultipartUpload>");
    if (b.oom) {
        free(b.s);
        errno = ENOMEM;
        return NULL;
    }
    if (len) *len = b.len;
    return b.s;
}

/* ---- time -------------------------------------------------------------------------------- */

/* Exactly n decimal digits at *p; advances. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Seconds since the epoch for a UTC civil time, after range checks; -1 if invalid. Days
 * from the civil date by Howard Hinnant's algorithm: no libc time zone state involved. */
static time_t utc_time(int y, int mon, int d, int h, int mi, int s)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || y > 9999 || mon < 1 || mon > 12 || d < 1 || h > 23 || mi > 59 || s > 60) return -1;
    if (d > mdays[mon - 1] + (mon == 2 && is_leap(y))) return -1;
    int64_t yy = y - (mon <= 2);
    int64_t era = yy / 400;
    int64_t yoe = yy - era * 400;
    int64_t mp = (mon + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    return (time_t)(days * 86400 + h * 3600 + mi * 60 + s); /* second 60 rolls over, as timegm does */
}

time_t s3_parse_iso8601(const char *s)
{
    if (!s) return -1;
    const char *p = s;
    int y, mon, d, h, mi, sec;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mon) || *p++ != '-' || digits(&p, 2, &d)) return -1;
    if (*p != 'T' && *p != 't') return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &sec)) return -1;
    if (*p == '.' || *p == ',') {
        p++;
        if (*p < '0' || *p > '9') return -1;
        for (int i = 0; *p >= '0' && *p <= '9'; i++, p++)
            if (i >= 9) return -1;
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh)) return -1;
        if (*p == ':') p++;
        if (digits(&p, 2, &om) || oh > 23 || om > 59) return -1;
        off = sign * (oh * 3600 + om * 60);
    }
    if (*p) return -1;
    time_t t = utc_time(y, mon, d, h, mi, sec);
    if (t < 0 || t - off < 0) return -1;
    return t - off;
}

static int month_index(const char *p)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (strncasecmp(p, names + 3 * i, 3) == 0) return i + 1;
    return 0;
}

static int skip_wkday(const char **p, int long_form)
{
    static const char *const shortn[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const longn[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
    for (int i = 0; i < 7; i++) {
        const char *n = long_form ? longn[i] : shortn[i];
        size_t l = strlen(n);
        if (strncasecmp(*p, n, l) == 0) {
            *p += l;
            return 0;
        }
    }
    return -1;
}

static int hms(const char **p, int *h, int *mi, int *s)
{
    if (digits(p, 2, h) || *(*p)++ != ':' || digits(p, 2, mi) || *(*p)++ != ':' || digits(p, 2, s)) return -1;
    return 0;
}

time_t s3_parse_http_date(const char *s)
{
    if (!s) return -1;
    int y, mon, d, h, mi, sec;
    const char *p = s;

    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (skip_wkday(&p, 0) == 0 && *p == ',') {
        p++;
        if (*p++ != ' ' || digits(&p, 2, &d) || *p++ != ' ' || !(mon = month_index(p))) return -1;
        p += 3;
        if (*p++ != ' ' || digits(&p, 4, &y) || *p++ != ' ' || hms(&p, &h, &mi, &sec)) return -1;
        if (strcmp(p, " GMT") != 0 && strcmp(p, " UTC") != 0) return -1;
        return utc_time(y, mon, d, h, mi, sec);
    }

    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
    p = s;
    if (skip_wkday(&p, 1) == 0 && *p == ',') {
        p++;
        if (*p++ != ' ' || digits(&p, 2, &d) || *p++ != '-' || !(mon = month_index(p))) return -1;
        p += 3;
        if (*p++ != '-' || digits(&p, 2, &y) || *p++ != ' ' || hms(&p, &h, &mi, &sec)) return -1;
        if (strcmp(p, " GMT") != 0) return -1;
        y += y < 70 ? 2000 : 1900;
        return utc_time(y, mon, d, h, mi, sec);
    }

    /* asctime: Sun Nov  6 08:49:37 1994 */
    p = s;
    if (skip_wkday(&p, 0) == 0 && *p == ' ') {
        p++;
        if (!(mon = month_index(p))) return -1;
        p += 3;
        if (*p++ != ' ') return -1;
        if (*p == ' ') {
            p++;
            if (digits(&p, 1, &d)) return -1;
        } else if (digits(&p, 2, &d)) {
            return -1;
        }
        if (*p++ != ' ' || hms(&p, &h, &mi, &sec) || *p++ != ' ' || digits(&p, 4, &y) || *p) return -1;
        return utc_time(y, mon, d, h, mi, sec);
    }
    return -1;
}

/* ---- URL decoding -------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int s3_url_decode(char *s)
{
    if (!s) return -EINVAL;
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '%') {
            int hi = hexval(r[1]), lo = hi < 0 ? -1 : hexval(r[2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0) return -EINVAL;
            *w++ = (char)(hi << 4 | lo);
            r += 2;
        } else if (*r == '+') {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}
