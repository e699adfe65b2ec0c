/* s3_object.c - whole objects on the server: a server-side copy (one CopyObject, or a
 * multipart upload of UploadPartCopy parts sent in parallel) and a delete. A rename is
 * both; the namespace (backend_s3.c) and an upload renamed while open (s3_file.c) use
 * them. */
#include "../log.h"
#include "s3_mount.h"
#include "s3_stage.h"
#include "s3_xml.h"
#include "sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A rename copies everything, in parts of the part size (parallel requests). */
static int64_t copy_every_part(void *ctx, int64_t off, int64_t len, int prepare)
{
    int64_t ps = (int64_t)((struct s3_mount *)ctx)->part_size;
    return prepare ? -EIO : len < ps ? len : ps;
}

/* Server-side copy of src to dst. One CopyObject for an object of up to two parts; above
 * that a multipart upload whose parts are all UploadPartCopy, sent in parallel through the
 * writers' part pipeline (a rename of a 1 GiB object is one long request otherwise, and
 * CopyObject stops at 5 GiB). Every part copies the version a HEAD just saw (if-match),
 * except where Swift refuses that for a multipart source ("-N" ETags; as for staging). */
int s3_object_copy(struct s3_mount *m, const struct s3_path *src, const struct s3_path *dst, int64_t size)
{
    if (size > 2 * (int64_t)m->part_size) {
        struct s3_op op;
        s3_op_init(&op, "HEAD", src->bucket, src->key);
        int e = s3_run(&m->client, &op);
        char etag[128];
        snprintf(etag, sizeof etag, "%s", strchr(op.req.etag, '-') ? "" : op.req.etag);
        s3_op_cleanup(&op);
        if (e < 0) return e;
        char got[128];
        e = s3f_upload_fd(m, dst, -1, size, copy_every_part, m, src->bucket, src->key, etag, NULL, got, sizeof got);
        return e < 0 ? s3_rename_errno(e) : 0;
    }
    size_t kl = strlen(src->key), n = strlen(src->bucket) * 3 + kl * 3 + 8;
    char *csrc = malloc(n);
    if (!csrc) return -ENOMEM;
    int off = snprintf(csrc, n, "/%s/", src->bucket);
    s3_uri_encode(src->key, kl, 1, csrc + off, n - (size_t)off);
    struct s3_op op;
    s3_op_init(&op, "PUT", dst->bucket, dst->key);
    s3_op_header(&op, "x-amz-copy-source", csrc);
    op.grow = 1;
    int e = s3_run(&m->client, &op);
    char etag[128], code[64] = "";
    if (e == 0 && (!op.req.resp ||
                   s3_xml_copy_parse(op.req.resp, op.req.got, etag, sizeof etag, code, sizeof code) < 0)) {
        slog_error("s3: copying %s/%s failed: %s", src->bucket, src->key, code[0] ? code : "unreadable answer");
        e = -EIO;
    }
    s3_op_cleanup(&op);
    free(csrc);
    return e;
}

int s3_object_delete(struct s3_mount *m, const char *bucket, const char *key)
{
    struct s3_op op;
    s3_op_init(&op, "DELETE", bucket, key);
    op.grow = 1;
    int e = s3_run(&m->client, &op);
    s3_op_cleanup(&op);
    s3_meta_changed(m, bucket, key, 0, NULL, NULL);
    return e;
}

int s3_object_move(struct s3_mount *m, const struct s3_path *a, const struct s3_path *b, int64_t size)
{
    int e = s3_object_copy(m, a, b, size);
    s3_meta_changed(m, b->bucket, b->key, 0, NULL, NULL);
    return e < 0 ? e : s3_object_delete(m, a->bucket, a->key);
}
