/* olread.c - see olread.h. Every check of docs/oplog.md's format is here: a file that
 * fails one is refused with one line naming the file and what is wrong with it. */
#define _GNU_SOURCE 1
#include "olread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int ol_errf(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return p;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need) n *= 2;
    void *q = realloc(p, n * elem);
    if (!q) {
        fprintf(stderr, "s3shim: out of memory\n");
        exit(1);
    }
    memset((char *)q + *cap * elem, 0, (n - *cap) * elem);
    *cap = n;
    return q;
}

static uint32_t sess_of(struct ol_set *s, const char *file, int32_t pid, uint16_t session, size_t first)
{
    for (size_t i = first; i < s->nsess; i++)
        if (s->sess[i].session == session) return (uint32_t)i;
    s->sess = grow(s->sess, &s->capsess, s->nsess + 1, sizeof *s->sess);
    struct ol_sess *x = &s->sess[s->nsess];
    x->file = strdup(file);
    x->pid = pid;
    x->session = session;
    return (uint32_t)s->nsess++;
}

static void add_str(struct ol_sess *x, unsigned kind, uint32_t id, const char *p, size_t len)
{
    if (kind >= OLS_NKINDS || id > 50000000u) return;
    if (id >= x->nstr[kind]) {
        uint32_t n = x->nstr[kind] ? x->nstr[kind] : 16;
        while (n <= id) n *= 2;
        x->str[kind] = realloc(x->str[kind], n * sizeof(char *));
        memset(x->str[kind] + x->nstr[kind], 0, (n - x->nstr[kind]) * sizeof(char *));
        x->nstr[kind] = n;
    }
    free(x->str[kind][id]);
    char *c = malloc(len + 1);
    memcpy(c, p, len);
    c[len] = 0;
    while (kind == OLS_ARGV && len && !c[len - 1]) c[--len] = 0;
    for (size_t i = 0; kind == OLS_ARGV && i < len; i++) /* NUL-separated: show with spaces */
        if (!c[i]) c[i] = ' ';
    x->str[kind][id] = c;
}

static int load_file(struct ol_set *s, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ol_errf(err, errlen, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ol_errf(err, errlen, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    char magic[8];
    if (pread(fd, magic, 8, 0) != 8 || memcmp(magic, OPLOG_MAGIC, 8) != 0) {
        close(fd);
        return ol_errf(err, errlen, "%s: not an s3shim op log (bad magic)", path);
    }
    if (size < sizeof(struct oplog_file_hdr)) {
        close(fd);
        return ol_errf(err, errlen, "%s: truncated op log (%zu bytes, shorter than its header)", path, size);
    }
    const unsigned char *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return ol_errf(err, errlen, "%s: cannot map: %s", path, strerror(errno));
    int rc = -1;
    const struct oplog_file_hdr *h = (const void *)m;
    if (memcmp(h->magic, OPLOG_MAGIC, 8) != 0) {
        ol_errf(err, errlen, "%s: not an s3shim op log (bad magic)", path);
        goto out;
    }
    if (h->version > OPLOG_VERSION) {
        ol_errf(err, errlen, "%s: op log format version %u is newer than this s3shim reads (%u): use a newer s3shim",
             path, h->version, OPLOG_VERSION);
        goto out;
    }
    if (h->version == 0 || h->hdr_crc != oplog_crc32c(0, h, offsetof(struct oplog_file_hdr, hdr_crc)) ||
        h->chunk_size != OPLOG_CHUNK || h->rec_size != sizeof(struct oplog_rec) ||
        h->chdr_size != sizeof(struct oplog_chunk_hdr)) {
        ol_errf(err, errlen, "%s: corrupt op log header (checksum or sizes)", path);
        goto out;
    }
    uint64_t n = h->nchunks;
    if (n < 1 || n > (1ull << 32)) {
        ol_errf(err, errlen, "%s: corrupt op log header (%llu chunks)", path, (unsigned long long)n);
        goto out;
    }
    if ((uint64_t)size < n * OPLOG_CHUNK) {
        ol_errf(err, errlen, "%s: truncated op log: %zu bytes, the header claims %llu chunks of 64 KiB", path, size,
             (unsigned long long)n);
        goto out;
    }
    size_t first = s->nsess;
    for (uint64_t i = 1; i < n; i++) {
        const struct oplog_chunk_hdr *c = (const void *)(m + i * OPLOG_CHUNK);
        const unsigned char *pl = (const unsigned char *)(c + 1);
        size_t cap = OPLOG_CHUNK - sizeof *c;
        if (c->magic == 0) continue; /* claimed, never written (killed at that moment) */
        if (c->magic != OPLOG_CHUNK_MAGIC || c->type < OLC_RECORDS || c->type > OLC_FOOTER) {
            ol_errf(err, errlen, "%s: chunk %llu is corrupt (bad chunk header)", path, (unsigned long long)i);
            goto out;
        }
        if (c->sealed && (c->nbytes > cap || oplog_crc32c(0, pl, c->nbytes) != c->crc)) {
            ol_errf(err, errlen, "%s: chunk %llu is corrupt (checksum mismatch)", path, (unsigned long long)i);
            goto out;
        }
        uint32_t si = sess_of(s, path, h->pid, c->session, first);
        struct ol_sess *x = &s->sess[si];
        if (!x->mono0) {
            x->mono0 = c->mono0;
            x->wall0 = c->wall0;
        }
        if (c->type == OLC_FOOTER) {
            if (!c->sealed || c->nbytes < sizeof(struct oplog_footer)) continue;
            memcpy(&x->footer, pl, sizeof x->footer);
            x->has_footer = 1;
        } else if (c->type == OLC_STRINGS) {
            size_t at = 0;
            while (at + sizeof(struct oplog_str) <= cap) {
                const struct oplog_str *e = (const void *)(pl + at);
                if (!e->id) break;
                if (at + sizeof *e + e->len > cap) {
                    ol_errf(err, errlen, "%s: chunk %llu is corrupt (string past its end)", path, (unsigned long long)i);
                    goto out;
                }
                add_str(x, e->kind, e->id, (const char *)(e + 1), e->len);
                at += (sizeof *e + e->len + 7) & ~(size_t)7;
            }
        } else {
            const struct oplog_rec *r = (const void *)pl;
            uint32_t max = (uint32_t)(cap / sizeof *r), k = 0;
            for (; k < max && r[k].seq == c->first_seq + k; k++) {
                if (r[k].op == OL_REQ) {
                    s->req = grow(s->req, &s->capreq, s->nreq + 1, sizeof *s->req);
                    struct ol_req *q = &s->req[s->nreq++];
                    memcpy(&q->q, &r[k], sizeof q->q);
                    q->sess = si;
                    q->tid = c->tid;
                    continue;
                }
                s->rec = grow(s->rec, &s->caprec, s->nrec + 1, sizeof *s->rec);
                struct ol_rec *o = &s->rec[s->nrec++];
                o->r = r[k];
                o->sess = si;
                o->tid = c->tid;
            }
            if (c->sealed && k * sizeof *r < c->nbytes) {
                ol_errf(err, errlen, "%s: chunk %llu is corrupt (records out of sequence)", path, (unsigned long long)i);
                goto out;
            }
            if (!c->sealed || k * sizeof *r > c->nbytes) s->unsealed++;
        }
    }
    for (size_t i = first; i < s->nsess; i++)
        if (!s->sess[i].has_footer) s->no_footer++;
    s->files++;
    rc = 0;
out:
    munmap((void *)m, size);
    return rc;
}

static int is_oplog(const char *path)
{
    char magic[8];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, magic, sizeof magic);
    close(fd);
    return n == 8 && memcmp(magic, OPLOG_MAGIC, 8) == 0;
}

static int cmp_thread_seq(const void *a, const void *b)
{
    const struct ol_rec *x = a, *y = b;
    if (x->sess != y->sess) return x->sess < y->sess ? -1 : 1;
    if (x->tid != y->tid) return x->tid < y->tid ? -1 : 1;
    return x->r.seq < y->r.seq ? -1 : x->r.seq > y->r.seq;
}

static int cmp_req_thread_seq(const void *a, const void *b)
{
    const struct ol_req *x = a, *y = b;
    if (x->sess != y->sess) return x->sess < y->sess ? -1 : 1;
    if (x->tid != y->tid) return x->tid < y->tid ? -1 : 1;
    return x->q.seq < y->q.seq ? -1 : x->q.seq > y->q.seq;
}

static int key_before(uint32_t s1, int32_t t1, uint64_t q1, uint32_t s2, int32_t t2, uint64_t q2)
{
    return s1 != s2 ? s1 < s2 : t1 != t2 ? t1 < t2 : q1 < q2;
}

int ol_load(struct ol_set *s, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) return ol_errf(err, errlen, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        struct dirent **ents;
        int n = scandir(path, &ents, NULL, alphasort);
        if (n < 0) return ol_errf(err, errlen, "%s: %s", path, strerror(errno));
        int rc = 0;
        for (int i = 0; i < n; i++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, ents[i]->d_name);
            size_t l = strlen(ents[i]->d_name), el = strlen(OPLOG_EXT);
            int named = l > el && strcmp(ents[i]->d_name + l - el, OPLOG_EXT) == 0;
            if (rc == 0 && ents[i]->d_name[0] != '.' && (named || is_oplog(p))) rc = load_file(s, p, err, errlen);
            free(ents[i]);
        }
        free(ents);
        if (rc == 0 && s->files == 0) return ol_errf(err, errlen, "%s: no op log files in this directory", path);
        if (rc < 0) return rc;
    } else if (load_file(s, path, err, errlen) < 0) {
        return -1;
    }
    /* Each thread's records (ops and requests) are numbered from 1: count any that are missing. */
    if (s->nrec) qsort(s->rec, s->nrec, sizeof *s->rec, cmp_thread_seq);
    if (s->nreq) qsort(s->req, s->nreq, sizeof *s->req, cmp_req_thread_seq);
    uint32_t psess = 0;
    int32_t ptid = 0;
    uint64_t pseq = 0;
    for (size_t i = 0, j = 0; i < s->nrec || j < s->nreq;) {
        /* merge the two by (session, thread, seq) */
        int take_req = j < s->nreq && (i >= s->nrec || key_before(s->req[j].sess, s->req[j].tid, s->req[j].q.seq,
                                                                   s->rec[i].sess, s->rec[i].tid, s->rec[i].r.seq));
        uint32_t sess = take_req ? s->req[j].sess : s->rec[i].sess;
        int32_t tid = take_req ? s->req[j].tid : s->rec[i].tid;
        uint64_t seq = take_req ? s->req[j].q.seq : s->rec[i].r.seq;
        if (take_req) j++;
        else i++;
        int first = i + j == 1 || psess != sess || ptid != tid;
        uint64_t want = first ? 1 : pseq + 1;
        if (seq > want) s->missing += seq - want;
        psess = sess, ptid = tid, pseq = seq;
    }
    /* The op that caused each request: the op of its sending thread whose span holds it. */
    for (size_t j = 0; j < s->nreq; j++) {
        struct ol_req *q = &s->req[j];
        size_t lo = 0, hi = s->nrec; /* the first record not before (sess, cause_tid) */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            const struct ol_rec *r = &s->rec[mid];
            if (r->sess < q->sess || (r->sess == q->sess && r->tid < q->q.cause_tid)) lo = mid + 1;
            else hi = mid;
        }
        for (size_t i = lo; i < s->nrec && s->rec[i].sess == q->sess && s->rec[i].tid == q->q.cause_tid; i++) {
            const struct oplog_rec *r = &s->rec[i].r;
            if (r->t > q->q.t) break;
            if (q->q.t <= r->t + r->lat) q->cause_seq = r->seq; /* the innermost (latest) one that holds it */
        }
    }
    return 0;
}

static int cmp_time(const void *a, const void *b)
{
    const struct ol_rec *x = a, *y = b;
    return x->r.t < y->r.t ? -1 : x->r.t > y->r.t;
}

void ol_sort(struct ol_set *s)
{
    if (s->nrec) qsort(s->rec, s->nrec, sizeof *s->rec, cmp_time);
}

const char *ol_sess_str(const struct ol_set *s, uint32_t sess, unsigned kind, uint32_t id)
{
    const struct ol_sess *x = &s->sess[sess];
    if (kind >= OLS_NKINDS || id >= x->nstr[kind]) return NULL;
    return x->str[kind][id];
}

const char *ol_str(const struct ol_set *s, const struct ol_rec *r, unsigned kind, uint32_t id)
{
    return ol_sess_str(s, r->sess, kind, id);
}

const char *ol_mount(const struct ol_set *s, const struct ol_rec *r)
{
    static char buf[1100];
    const char *m = ol_str(s, r, OLS_MOUNT, r->r.mount);
    if (!m) return "?";
    const char *eq = strchr(m, '=');
    snprintf(buf, sizeof buf, "%.*s", eq ? (int)(eq - m) : (int)strlen(m), m);
    return buf;
}

void ol_free(struct ol_set *s)
{
    for (size_t i = 0; i < s->nsess; i++) {
        for (int k = 0; k < OLS_NKINDS; k++) {
            for (uint32_t j = 0; j < s->sess[i].nstr[k]; j++) free(s->sess[i].str[k][j]);
            free(s->sess[i].str[k]);
        }
        free(s->sess[i].file);
    }
    free(s->sess);
    free(s->rec);
    free(s->req);
    memset(s, 0, sizeof *s);
}
