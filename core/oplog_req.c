/* oplog_req.c - S3 request records in the op log (see oplog.h, docs/oplog.md).
 *
 * One record per HTTP attempt, written by the thread that sees the attempt end (an HTTP
 * engine thread, or the caller's own when the request ran on its thread) into that
 * thread's own stream: the same lossless per-thread chunks, numbering and claiming as the
 * op records, so a request can no more be lost than an op. What the engine knows and the
 * op does not (endpoint, attempt, status, time to first byte) is here; the op that caused
 * it is named by the thread that sent it, and a reader finds that thread's op whose time
 * span holds the send. The S3 client calls in only when the log is on. */
#define _GNU_SOURCE 1
#include "oplog.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const kind_names[OLR_NKINDS] = {
    "other",      "get",  "get-range",  "head",         "put",       "put-part",   "copy",
    "copy-part",  "list", "mpu-create", "mpu-complete", "mpu-abort", "delete",     "delete-multi"};

const char *oplog_req_kind_name(unsigned kind) { return kind < OLR_NKINDS ? kind_names[kind] : "?"; }

uint32_t oplog_req_id(void)
{
    static _Atomic uint32_t next;
    uint32_t id = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1;
    return id ? id : oplog_req_id(); /* 0 is "none", after 4 billion */
}

uint16_t oplog_endpoint_id(const char *url, uint16_t *cache)
{
    uint16_t id = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (!id) {
        uint32_t x = oplog_intern_(OLS_ENDPOINT, url, strlen(url));
        id = x <= 0xffff ? (uint16_t)x : 0;
        __atomic_store_n(cache, id, __ATOMIC_RELAXED);
    }
    return id;
}

/* A query parameter's presence: "name" or "name=..." among &-separated parameters. */
static int has_param(const char *q, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == '=' || p[n] == '&' || !p[n])) return 1;
    return 0;
}

static unsigned kind_of(const struct oplog_req_info *q)
{
    const char *m = q->method, *qs = q->query ? q->query : "";
    int part = has_param(qs, "partNumber"), upload = has_param(qs, "uploadId");
    if (strcmp(m, "GET") == 0) {
        if (!q->key[0] || has_param(qs, "list-type") || has_param(qs, "uploads")) return OLR_LIST;
        return q->ranged ? OLR_GET_RANGE : OLR_GET;
    }
    if (strcmp(m, "HEAD") == 0) return OLR_HEAD;
    if (strcmp(m, "PUT") == 0) return q->copy ? part ? OLR_COPY_PART : OLR_COPY : part ? OLR_PUT_PART : OLR_PUT;
    if (strcmp(m, "POST") == 0) return has_param(qs, "uploads") ? OLR_MPU_INIT : upload ? OLR_MPU_COMPLETE
                                       : has_param(qs, "delete") ? OLR_DELETE_MULTI : OLR_OTHER;
    if (strcmp(m, "DELETE") == 0) return upload ? OLR_MPU_ABORT : OLR_DELETE;
    return OLR_OTHER;
}

void oplog_req(const struct oplog_req_info *q)
{
    char kb[1100];
    int kl = snprintf(kb, sizeof kb, "%s%s%s", q->bucket, q->key[0] ? "/" : "", q->key);
    uint32_t key = oplog_intern_(OLS_KEY, kb, kl < 0 ? 0 : (size_t)kl < sizeof kb ? (size_t)kl : sizeof kb - 1);
    uint16_t ep = oplog_endpoint_id(q->url, q->ep_cache);
    uint64_t seq;
    struct oplog_req *r = (struct oplog_req *)oplog_slot_(&seq);
    if (!r) return;
    r->t = q->t_submit;
    r->lat = q->t_done > q->t_submit ? q->t_done - q->t_submit : 0;
    r->off = q->off;
    r->bytes = q->bytes;
    uint64_t fb = q->t_first_byte > q->t_submit ? (q->t_first_byte - q->t_submit + 999) / 1000 : 0;
    r->ttfb_us = fb > UINT32_MAX ? UINT32_MAX : (uint32_t)fb;
    r->id = q->id;
    r->key = key;
    r->cause_tid = q->cause_tid;
    r->op = OL_REQ;
    r->endpoint = ep;
    r->status = q->curl_code ? (int16_t)-q->curl_code : (int16_t)(q->status > 0 && q->status < 1000 ? q->status : 0);
    r->kind = (uint8_t)kind_of(q);
    r->attempt = (uint8_t)((q->attempt > OLQ_ATTEMPT ? OLQ_ATTEMPT : q->attempt) | (q->flags & ~OLQ_ATTEMPT));
    __atomic_store_n(&r->seq, seq, __ATOMIC_RELEASE);
}
