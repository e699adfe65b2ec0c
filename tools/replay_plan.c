/* replay_plan.c - what `s3shim replay` does before it issues anything: the recorded ops in
 * one global order (start time, then process, thread, sequence), a worker per recorded
 * thread, each descriptor's open/uses/close, the cross-thread order to keep (an op on a
 * path waits for the last op on that path that another thread had finished before it
 * started), and --prepare: the files and directories the log starts from. */
#define _GNU_SOURCE 1
#include "replay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "s3shim replay: out of memory\n");
        exit(2);
    }
    return p;
}

static int cmp_order(const void *a, const void *b)
{
    const struct ol_rec *x = a, *y = b;
    if (x->r.t != y->r.t) return x->r.t < y->r.t ? -1 : 1;
    if (x->sess != y->sess) return x->sess < y->sess ? -1 : 1;
    if (x->tid != y->tid) return x->tid < y->tid ? -1 : 1;
    return x->r.seq < y->r.seq ? -1 : x->r.seq > y->r.seq;
}

/* --- interned replay paths: a string hash (open addressing) ---------------------------- */

struct strtab {
    char **s; /* by id */
    size_t n, cap;
    int32_t *slot; /* id + 1, 0 empty */
    size_t nslot;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int32_t str_id(struct strtab *t, const char *s)
{
    if (2 * (t->n + 1) > t->nslot) {
        size_t ns = t->nslot ? t->nslot * 2 : 1024;
        int32_t *sl = xcalloc(ns, sizeof *sl);
        for (size_t i = 0; i < t->n; i++) {
            size_t k = fnv(t->s[i]) & (ns - 1);
            while (sl[k]) k = (k + 1) & (ns - 1);
            sl[k] = (int32_t)i + 1;
        }
        free(t->slot);
        t->slot = sl;
        t->nslot = ns;
    }
    size_t k = fnv(s) & (t->nslot - 1);
    for (; t->slot[k]; k = (k + 1) & (t->nslot - 1))
        if (strcmp(t->s[t->slot[k] - 1], s) == 0) return t->slot[k] - 1;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->s = realloc(t->s, t->cap * sizeof *t->s);
        if (!t->s) exit(2);
    }
    t->s[t->n] = strdup(s);
    t->slot[k] = (int32_t)t->n + 1;
    return (int32_t)t->n++;
}

/* A recorded path with the first matching --remap prefix replaced (on a '/' boundary). */
static void remap(const struct rp_remap *rm, const char *in, char *out, size_t len)
{
    for (int i = 0; rm && i < rm->n; i++) {
        size_t l = strlen(rm->from[i]);
        if (strncmp(in, rm->from[i], l) == 0 && (in[l] == '/' || in[l] == 0)) {
            snprintf(out, len, "%s%s", rm->to[i], in + l);
            return;
        }
    }
    snprintf(out, len, "%s", in);
}

/* --- the plan ----------------------------------------------------------------------------- */

#define RING 8

static int is_path_op(const struct rp_op *o)
{
    unsigned op = o->r->r.op;
    return op == OL_OPEN || op == OL_STAT || op == OL_OPENDIR || op == OL_META || o->gen < 0;
}

int rp_plan_build(struct rp_plan *p, const char *log, const struct rp_remap *rm, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (ol_load(&p->set, log, err, errlen) < 0) return -1;
    struct ol_set *s = &p->set;
    if (s->nrec == 0) return ol_errf(err, errlen, "%s: no operations in this op log", log);
    qsort(s->rec, s->nrec, sizeof *s->rec, cmp_order);
    p->nops = s->nrec;
    p->ops = xcalloc(p->nops, sizeof *p->ops);
    p->gens = xcalloc(p->nops, sizeof *p->gens);
    p->rec0 = s->rec[0].r.t;
    struct strtab st = {0};
    /* workers: (pid, tid); descriptors: (pid, fd) -> gen, linear (few are open at once) */
    struct wk {
        int32_t pid, tid;
    } *wk = xcalloc(p->nops, sizeof *wk);
    int32_t *pids = xcalloc(s->nsess + 1, sizeof *pids);
    struct open_fd {
        int32_t pid, fd, gen;
    } *fds = NULL;
    size_t nfds = 0, capfds = 0, lastw = 0;
    char buf[8192];
    for (size_t i = 0; i < p->nops; i++) {
        const struct ol_rec *r = &s->rec[i];
        struct rp_op *o = &p->ops[i];
        int32_t pid = s->sess[r->sess].pid;
        o->r = r;
        o->gen = o->src_gen = -1;
        o->dep = -1;
        o->pi = o->pi2 = -1;
        if (r->r.t + r->r.lat > p->rec_end) p->rec_end = r->r.t + r->r.lat;
        const char *path = ol_str(s, r, OLS_PATH, r->r.path);
        if (path) {
            remap(rm, path, buf, sizeof buf);
            o->pi = str_id(&st, buf);
        }
        if (r->r.op == OL_META) {
            o->name = ol_str(s, r, OLS_NAME, r->r.aux);
            const char *to = o->name && strcmp(o->name, "rename") == 0 && r->r.len ? ol_str(s, r, OLS_PATH, (uint32_t)r->r.len) : NULL;
            if (to) {
                remap(rm, to, buf, sizeof buf);
                o->pi2 = str_id(&st, buf);
            }
        }
        if (!(lastw < p->nworkers && wk[lastw].pid == pid && wk[lastw].tid == r->tid))
            for (lastw = 0; lastw < p->nworkers && !(wk[lastw].pid == pid && wk[lastw].tid == r->tid); lastw++) {
            }
        if (lastw == p->nworkers) {
            wk[p->nworkers].pid = pid;
            wk[p->nworkers++].tid = r->tid;
            size_t k = 0;
            while (k < p->nproc && pids[k] != pid) k++;
            if (k == p->nproc && p->nproc <= s->nsess) pids[p->nproc++] = pid;
        }
        o->worker = (int32_t)lastw;
        /* descriptors */
        size_t k = 0;
        int32_t fd = r->r.op == OL_OPEN ? (int32_t)r->r.res : r->r.fd;
        int32_t src = -1; /* a dup: the gen of the descriptor it copies */
        if (r->r.op == OL_DUP && r->r.res >= 0)
            for (size_t j = 0; j < nfds && src < 0; j++)
                if (fds[j].pid == pid && fds[j].fd == (int32_t)r->r.len) src = fds[j].gen;
        while (k < nfds && !(fds[k].pid == pid && fds[k].fd == fd)) k++;
        if ((r->r.op == OL_OPEN && r->r.res >= 0) || src >= 0) { /* a new descriptor: an open or a copy */
            if (k == nfds) {
                if (nfds == capfds) {
                    capfds = capfds ? capfds * 2 : 64;
                    fds = realloc(fds, capfds * sizeof *fds);
                    if (!fds) exit(2);
                }
                nfds++;
            }
            struct rp_gen *g = &p->gens[p->ngens];
            g->open_op = (int32_t)i;
            atomic_init(&g->fd, -1);
            fds[k] = (struct open_fd){pid, fd, (int32_t)p->ngens};
            o->gen = (int32_t)p->ngens++;
            if (src >= 0) { /* the copy is a use of its source: that one's close waits for it */
                o->src_gen = src;
                p->gens[src].uses++;
            }
        } else if (r->r.op != OL_OPEN && fd >= 0 && k < nfds && p->ops[p->gens[fds[k].gen].open_op].pi == o->pi) {
            o->gen = fds[k].gen;
            if (r->r.op == OL_CLOSE)
                fds[k] = fds[--nfds];
            else
                p->gens[o->gen].uses++;
        }
    }
    /* cross-thread order by path: the last RING ops on each path */
    int32_t(*ring)[RING] = xcalloc(st.n, sizeof *ring);
    uint32_t *nring = xcalloc(st.n, sizeof *nring);
    for (size_t i = 0; i < p->nops; i++) {
        struct rp_op *o = &p->ops[i];
        int32_t ids[2] = {o->pi, o->pi2};
        uint64_t best = 0;
        for (int j = 0; j < 2; j++) {
            if (ids[j] < 0) continue;
            for (uint32_t k = 0; is_path_op(o) && k < nring[ids[j]] && k < RING; k++) {
                int32_t y = ring[ids[j]][k];
                const struct rp_op *q = &p->ops[y];
                uint64_t end = q->r->r.t + q->r->r.lat;
                if (q->worker != o->worker && end <= o->r->r.t && (o->dep < 0 || end > best)) {
                    o->dep = y;
                    best = end;
                }
            }
            ring[ids[j]][nring[ids[j]]++ % RING] = (int32_t)i;
        }
    }
    free(ring);
    free(nring);
    for (size_t i = 0; i < p->nops; i++) {
        p->ops[i].path = p->ops[i].pi >= 0 ? st.s[p->ops[i].pi] : NULL;
        p->ops[i].path2 = p->ops[i].pi2 >= 0 ? st.s[p->ops[i].pi2] : NULL;
    }
    p->paths = st.s;
    p->npaths = st.n;
    free(st.slot);
    free(wk);
    free(pids);
    free(fds);
    return 0;
}

void rp_plan_free(struct rp_plan *p)
{
    for (size_t i = 0; i < p->npaths; i++) free(p->paths[i]);
    free(p->paths);
    free(p->ops);
    free(p->gens);
    ol_free(&p->set);
    memset(p, 0, sizeof *p);
}
