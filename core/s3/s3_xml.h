/* s3_xml.h - the XML documents of the S3 REST API, read and written with expat.
 *
 * S3 answers in XML: listings, multipart initiate/complete results, copy results and
 * <Error> bodies, sometimes inside a 200 OK. A server (or whatever sits between us and it)
 * may send anything, so every parser here treats its input as hostile: bounded text per
 * element, bounded nesting, no DOCTYPE at all (hence no entity declarations, no external
 * entities, no billion laughs), expat's amplification guard on top, and on any problem
 * -EPROTO with nothing allocated. Element names are compared by local name, so documents
 * with and without xmlns="http://s3.amazonaws.com/doc/2006-03-01/" read the same.
 *
 * Leading whitespace before the document is skipped: S3 sends spaces to keep a long
 * CompleteMultipartUpload or CopyObject connection alive before the real body.
 *
 * Everything is reentrant: no globals, no locale, no time zone. */
#ifndef S3SHIM_S3_XML_H
#define S3SHIM_S3_XML_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Limits on what a response may contain; beyond them the document is refused (-EPROTO). */
#define S3_XML_MAX_DOC (64u << 20)   /* bytes in one document */
#define S3_XML_MAX_TEXT (64u << 10)  /* bytes of text in one element we keep */
#define S3_XML_MAX_DEPTH 32          /* element nesting */
#define S3_XML_MAX_ENTRIES (1u << 20) /* entries in one listing page */
#define S3_XML_MAX_PARTS 10000       /* parts in one multipart upload (S3's own limit) */

struct s3_list_entry {
    char *name;    /* key (or common prefix) exactly as S3 returned it, XML-unescaped; if the
                      response used encoding-type=url, URL-decoded ('+' is a space) */
    int is_prefix; /* a CommonPrefixes/Prefix */
    int64_t size;  /* -1 for prefixes */
    time_t mtime;  /* from LastModified (ISO 8601, UTC); 0 if absent or unreadable */
    char etag[80]; /* quotes stripped; "" if absent, longer than 79 bytes or not a valid
                      entity-tag (printable ASCII without '"' or spaces) */
};

struct s3_list_page {
    struct s3_list_entry *v;
    size_t n, cap;
    int truncated;    /* IsTruncated */
    char *next_token; /* NextContinuationToken, or NULL */
    int url_encoded;  /* EncodingType was "url" */
};

/* Parse a ListObjectsV2 result (root ListBucketResult) into *out, which is overwritten
 * (free a previous page first). Entries keep document order: objects and prefixes as they
 * appear. Only Contents/Key and CommonPrefixes/Prefix make entries; the top-level Prefix is
 * the query's. Returns 0, -ENOMEM, or -EPROTO (not XML, not a listing, a Contents without
 * Key or Size, an unreadable Size or IsTruncated, IsTruncated true without a
 * NextContinuationToken, a key that does not URL-decode, a limit above); on error *out
 * is left empty. */
int s3_xml_list_parse(const char *xml, size_t len, struct s3_list_page *out);
void s3_list_page_free(struct s3_list_page *p);

/* An S3 <Error> body: Code into code, Message into msg followed by " (RequestId: ID)" when
 * the document has one. Both are truncated to fit, with control characters turned into
 * spaces (they go to log lines); either buffer may be NULL/0. Returns 0, or -EPROTO if
 * this is not an Error document (code and msg are then ""). */
int s3_xml_error_parse(const char *xml, size_t len, char *code, size_t codesz, char *msg, size_t msgsz);

/* InitiateMultipartUploadResult -> UploadId. -EPROTO if the document is anything else,
 * the UploadId is missing or empty, or it does not fit in sz (a cut id is useless). */
int s3_xml_initiate_parse(const char *xml, size_t len, char *upload_id, size_t sz);

/* CompleteMultipartUploadResult -> ETag (quotes stripped). S3 may answer 200 OK with an
 * <Error> document for Complete and for CopyObject: that returns -EIO with the Code in
 * err_code (as s3_xml_error_parse writes it; may be NULL/0). -EPROTO for anything else, for a missing
 * ETag, one that is not a valid entity-tag (after the quotes: printable ASCII, no '"', no
 * spaces), or one that does not fit in etagsz. */
int s3_xml_complete_parse(const char *xml, size_t len, char *etag, size_t etagsz, char *err_code,
                          size_t errsz);

/* CopyObjectResult / CopyPartResult -> ETag; the same rules as s3_xml_complete_parse. */
int s3_xml_copy_parse(const char *xml, size_t len, char *etag, size_t etagsz, char *err_code, size_t errsz);

/* Build the CompleteMultipartUpload body from part numbers and ETags. ETags are put in
 * quotes (quotes already there are not doubled) and XML-escaped. Returns a malloc'd
 * NUL-terminated string with its length in *len (len may be NULL), or NULL with errno
 * EINVAL (n outside 1..10000, a part number outside 1..10000 or not strictly ascending,
 * an ETag NULL or not a valid entity-tag as above) or ENOMEM. So an ETag that
 * s3_xml_complete_parse or s3_xml_copy_parse accepted is always accepted here. */
struct s3_part_etag {
    int part;
    const char *etag;
};
char *s3_xml_complete_build(const struct s3_part_etag *parts, int n, size_t *len);

/* ISO 8601 as S3 writes it, "2026-11-22T01:02:03.000Z": fraction optional, 'Z' or a
 * +hh:mm/-hh:mm offset (no zone is taken as UTC). Returns seconds since the epoch, or -1
 * if malformed or before 1970. */
time_t s3_parse_iso8601(const char *s);

/* An HTTP-date (RFC 7231 7.1.1.1): IMF-fixdate "Sun, 22 Nov 2026 01:02:03 GMT", and the
 * obsolete RFC 850 and asctime forms recipients must also accept. -1 if malformed. */
time_t s3_parse_http_date(const char *s);

/* Decode %XX escapes and '+' (a space, as S3's encoding-type=url writes it) in place.
 * Returns 0, or -EINVAL for a bad escape or one that decodes to NUL (s is then
 * unspecified). */
int s3_url_decode(char *s);

#endif
