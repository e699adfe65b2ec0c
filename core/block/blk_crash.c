/* blk_crash.c - power-loss simulation (`s3shim blk crashtest`), the way storage engines
 * test themselves (RocksDB's fault-injection environment, dm-log-writes): prove that a
 * store survives a power cut at any point.
 *
 * Each workload runs on a freshly formatted 8 MiB store through the backend itself (the
 * same open/pwrite/close/rename/unlink a program reaches through the shim), with
 * blk_recorder set: every device write (metadata and data, with its bytes) and every
 * flush is recorded in order, and every operation's span of records is noted with what
 * it changes once it returned 0. Then, for each of `states` cut points (every flush
 * boundary, every point just after a root write, then random points between, then the
 * same points again with other choices),
 * the device is rebuilt: the format image, every write before the last flush preceding
 * the cut, and the writes after it (not yet flushed, so in any state) each dropped,
 * applied, or torn at 512-byte sectors, in a random order. A state holds when `blk check`
 * finds the store clean (an invalid root slot is allowed: the interrupted commit's) and
 * the objects it holds are exactly those after the first j operations, j at least the
 * operations that returned before the last durable root (a root write, then a flush) and
 * at most up to the one in flight: every close durable at once (S3SHIM_BLOCK_COMMIT_MS=0),
 * that is the operations done before the last flush, the one in flight done or not; with
 * group commit (every other workload) a close is only visible, and a power cut may take
 * it, but only with every operation after it (never a mix, never out of order). */
#include "block.h"

#include "blk.h"
#include "bmount.h"

#include "../config.h"
#include "../sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CT_SIZE (8u << 20)
#define CT_KEYS 256
#define CT_SECTOR 512

struct rec {
    int op;
    uint64_t off;
    uint32_t len;
    uint8_t *data;
};

static struct {
    struct rec *v;
    size_t n, cap;
} R;

static void recorder(int op, uint64_t off, const void *buf, size_t len)
{
    if (R.n == R.cap) {
        size_t nc = R.cap ? R.cap * 2 : 1024;
        struct rec *v = realloc(R.v, nc * sizeof *v);
        if (!v) abort(); /* a test harness out of memory cannot go on */
        R.v = v;
        R.cap = nc;
    }
    struct rec *r = &R.v[R.n++];
    *r = (struct rec){op, off, (uint32_t)len, NULL};
    if (len) {
        if (!(r->data = malloc(len))) abort();
        memcpy(r->data, buf, len);
    }
}

/* The model: what each key holds. */
struct val {
    int present;
    uint8_t *data;
    size_t len;
};
struct model {
    struct val k[CT_KEYS];
};
struct change {
    int key;
    struct val v;
};
struct op {
    size_t start, end; /* records [start, end) */
    int nch;
    struct change ch[2];
};

struct run {
    struct op *ops;
    int nops, cap;
    uint64_t seed;
    int batched; /* group commit: closes only visible; some puts fsync first */
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void keyname(int k, char *buf, size_t len) { snprintf(buf, len, "obj-%03d", k); }

static struct op *op_begin(struct run *r)
{
    if (r->nops == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        struct op *n = realloc(r->ops, (size_t)r->cap * sizeof *n);
        if (!n) abort();
        r->ops = n;
    }
    struct op *o = &r->ops[r->nops];
    memset(o, 0, sizeof *o);
    o->start = R.n;
    return o;
}

static void op_end(struct run *r, struct op *o, int ok)
{
    o->end = R.n;
    if (ok) r->nops++; /* a failed operation changes nothing anyone may rely on */
    else
        for (int i = 0; i < o->nch; i++) free(o->ch[i].v.data);
}

/* --- workload steps through the backend ------------------------------------------------- */

static int put(struct run *r, void *ms, int k, size_t len, int append_to, struct model *m)
{
    char key[32];
    keyname(k, key, sizeof key);
    struct op *o = op_begin(r);
    size_t old = append_to && m->k[k].present ? m->k[k].len : 0;
    uint8_t *data = malloc(old + len + 1);
    if (!data) abort();
    if (old) memcpy(data, m->k[k].data, old);
    for (size_t i = 0; i < len; i++) data[old + i] = (uint8_t)rnd(&r->seed);
    void *fh;
    int flags = append_to ? O_RDWR | O_CREAT : O_WRONLY | O_CREAT | O_TRUNC;
    int e = bk_block_ops.open(ms, key, flags, 0644, &fh);
    for (size_t done = 0; !e && done < len;) { /* writes of odd sizes */
        size_t n = 1 + rnd(&r->seed) % 20000;
        if (n > len - done) n = len - done;
        ssize_t w = bk_block_ops.pwrite(fh, data + old + done, n, (off_t)(old + done));
        if (w < 0) e = (int)w;
        else done += (size_t)w;
    }
    if (!e && r->batched && rnd(&r->seed) % 4 == 0) e = bk_block_ops.fsync(fh, 0); /* a durable commit */
    if (!e) e = bk_block_ops.close(fh);
    else bk_block_ops.close(fh);
    if (!e && r->batched && rnd(&r->seed) % 4 == 0 && bk_block_ops.open(ms, key, O_RDONLY, 0, &fh) == 0) {
        e = bk_block_ops.fsync(fh, 0); /* a reader's fsync: every commit so far made durable */
        bk_block_ops.close(fh);
    }
    o->nch = 1;
    o->ch[0] = (struct change){k, {1, data, old + len}};
    op_end(r, o, e == 0);
    if (e == 0) {
        free(m->k[k].data);
        m->k[k].present = 1;
        m->k[k].data = malloc(old + len + 1);
        memcpy(m->k[k].data, data, old + len);
        m->k[k].len = old + len;
    }
    return e;
}

static struct val copyval(const struct val *v)
{
    struct val c = *v;
    if (v->present) {
        c.data = malloc(v->len + 1);
        memcpy(c.data, v->data, v->len);
    } else {
        c.data = NULL;
    }
    return c;
}

static int ren(struct run *r, void *ms, int from, int to, struct model *m)
{
    char a[32], b[32];
    keyname(from, a, sizeof a);
    keyname(to, b, sizeof b);
    struct op *o = op_begin(r);
    int e = bk_block_ops.rename(ms, a, b, 0);
    o->nch = 2;
    o->ch[0] = (struct change){to, copyval(&m->k[from])};
    o->ch[1] = (struct change){from, {0, NULL, 0}};
    op_end(r, o, e == 0);
    if (e == 0) {
        free(m->k[to].data);
        m->k[to] = m->k[from];
        m->k[from] = (struct val){0, NULL, 0};
    }
    return e;
}

static int del(struct run *r, void *ms, int k, struct model *m)
{
    char key[32];
    keyname(k, key, sizeof key);
    struct op *o = op_begin(r);
    int e = bk_block_ops.unlink(ms, key);
    o->nch = 1;
    o->ch[0] = (struct change){k, {0, NULL, 0}};
    op_end(r, o, e == 0);
    if (e == 0) {
        free(m->k[k].data);
        m->k[k] = (struct val){0, NULL, 0};
    }
    return e;
}

/* Two writers open at once, interleaved, closed one after the other. */
static int two(struct run *r, void *ms, int k1, int k2, struct model *m)
{
    char a[32], b[32];
    keyname(k1, a, sizeof a);
    keyname(k2, b, sizeof b);
    size_t len = 30000 + rnd(&r->seed) % 60000;
    uint8_t *d1 = malloc(len), *d2 = malloc(len);
    for (size_t i = 0; i < len; i++) d1[i] = (uint8_t)rnd(&r->seed), d2[i] = (uint8_t)rnd(&r->seed);
    void *f1, *f2;
    if (bk_block_ops.open(ms, a, O_WRONLY | O_CREAT | O_TRUNC, 0644, &f1)) return -1;
    if (bk_block_ops.open(ms, b, O_WRONLY | O_CREAT | O_TRUNC, 0644, &f2)) return -1;
    for (size_t off = 0; off < len; off += 7000) {
        size_t n = len - off < 7000 ? len - off : 7000;
        bk_block_ops.pwrite(f1, d1 + off, n, (off_t)off);
        bk_block_ops.pwrite(f2, d2 + off, n, (off_t)off);
    }
    int e = 0;
    for (int i = 0; i < 2; i++) {
        struct op *o = op_begin(r);
        int rc = bk_block_ops.close(i ? f2 : f1);
        int k = i ? k2 : k1;
        uint8_t *d = i ? d2 : d1;
        o->nch = 1;
        o->ch[0] = (struct change){k, {1, d, len}};
        op_end(r, o, rc == 0);
        if (rc == 0) {
            free(m->k[k].data);
            m->k[k] = (struct val){1, malloc(len), len};
            memcpy(m->k[k].data, d, len);
        } else {
            e = rc;
        }
    }
    return e;
}

static int workload(int w, struct run *r, void *ms, struct model *m)
{
    int e = 0;
    switch (w) {
    case 0: /* create */
        for (int i = 0; i < 12 && !e; i++) e = put(r, ms, i, rnd(&r->seed) % 70000, 0, m);
        break;
    case 1: /* overwrite */
        for (int i = 0; i < 6 && !e; i++) e = put(r, ms, i, 5000 + rnd(&r->seed) % 30000, 0, m);
        for (int i = 0; i < 10 && !e; i++) e = put(r, ms, (int)(rnd(&r->seed) % 6), rnd(&r->seed) % 50000, 0, m);
        break;
    case 2: /* append (copy-on-write of the last block) */
        for (int i = 0; i < 4 && !e; i++) e = put(r, ms, i, 3000 + rnd(&r->seed) % 9000, 0, m);
        for (int i = 0; i < 12 && !e; i++) e = put(r, ms, (int)(rnd(&r->seed) % 4), 1 + rnd(&r->seed) % 9000, 1, m);
        break;
    case 3: /* rename over */
        for (int i = 0; i < 4 && !e; i++) e = put(r, ms, i, 2000 + rnd(&r->seed) % 20000, 0, m);
        for (int i = 0; i < 8 && !e; i++) {
            e = put(r, ms, 100, rnd(&r->seed) % 30000, 0, m);
            if (!e) e = ren(r, ms, 100, (int)(rnd(&r->seed) % 4), m);
        }
        break;
    case 4: /* unlink */
        for (int i = 0; i < 10 && !e; i++) e = put(r, ms, i, rnd(&r->seed) % 40000, 0, m);
        for (int i = 0; i < 10 && !e; i += 2) e = del(r, ms, i, m);
        for (int i = 10; i < 14 && !e; i++) e = put(r, ms, i, rnd(&r->seed) % 40000, 0, m);
        break;
    case 5: /* many small objects */
        for (int i = 0; i < 120 && !e; i++) e = put(r, ms, i, rnd(&r->seed) % 300, 0, m);
        break;
    case 7: /* rewrite a big object until the space held by visible commits runs out */
        for (int i = 0; i < 14 && !e; i++) e = put(r, ms, i % 2, 1200000 + rnd(&r->seed) % 300000, 0, m);
        break;
    default: /* two writers */
        for (int i = 0; i < 4 && !e; i++) e = two(r, ms, 2 * i, 2 * i + 1, m);
        break;
    }
    return e;
}

static const char *const wname[] = {"create", "overwrite", "append", "rename-over", "unlink", "many small",
                                    "two writers", "rewrite to full"};
#define NWORK 8

/* --- one crash state ----------------------------------------------------------------------- */

struct seen {
    struct model *want[2];
    const uint8_t *img;
    int bad;
    char why[200];
    int keys[CT_KEYS];
    int nkeys;
    const uint8_t *obs_data[CT_KEYS];
    size_t obs_len[CT_KEYS];
    uint8_t *scratch;
};

static int seen_entry(void *d, const struct blk_obj *o)
{
    struct seen *s = d;
    if (S_ISDIR(o->mode)) return 0;
    int k;
    if (sscanf(o->key, "obj-%d", &k) != 1 || k < 0 || k >= CT_KEYS) {
        s->bad = 1;
        snprintf(s->why, sizeof s->why, "unexpected key '%.100s'", o->key);
        return -1;
    }
    uint8_t *buf = malloc(o->size + 1);
    memset(buf, 0, o->size);
    for (int i = 0; i < o->next; i++) {
        uint64_t off = o->ext[i].lblk * BLK_BS, n = (uint64_t)o->ext[i].len * BLK_BS;
        if (off >= o->size) continue;
        if (off + n > o->size) n = o->size - off;
        if ((o->ext[i].pblk + o->ext[i].len) * BLK_BS > CT_SIZE) continue;
        memcpy(buf + off, s->img + o->ext[i].pblk * BLK_BS, n);
    }
    s->obs_data[k] = buf;
    s->obs_len[k] = o->size;
    s->keys[s->nkeys++] = k;
    return 0;
}

static int matches(const struct seen *s, const struct model *m)
{
    for (int k = 0; k < CT_KEYS; k++) {
        int present = s->obs_data[k] != NULL;
        if (present != m->k[k].present) return 0;
        if (present && (s->obs_len[k] != m->k[k].len || memcmp(s->obs_data[k], m->k[k].data, m->k[k].len))) return 0;
    }
    return 1;
}

static void apply_ch(struct model *m, const struct op *o)
{
    for (int i = 0; i < o->nch; i++) m->k[o->ch[i].key] = o->ch[i].v; /* shares data: read only */
}

static int is_root_write(const struct rec *r)
{
    return r->op == BLK_REC_WRITE && (r->off == BLK_ROOT_SLOT0 * BLK_BS || r->off == (BLK_ROOT_SLOT0 + 1) * BLK_BS);
}

/* Rebuild the device for cut k into img; last flush before k in *durable. */
static void build(uint8_t *img, const uint8_t *base, size_t k, uint64_t *rs, size_t *durable)
{
    memcpy(img, base, CT_SIZE);
    size_t d = 0; /* records [0, d) are durable */
    for (size_t i = 0; i < k; i++)
        if (R.v[i].op == BLK_REC_FLUSH) d = i + 1;
    for (size_t i = 0; i < d; i++)
        if (R.v[i].op == BLK_REC_WRITE && R.v[i].off + R.v[i].len <= CT_SIZE) memcpy(img + R.v[i].off, R.v[i].data, R.v[i].len);
    size_t nu = k - d;
    size_t *perm = malloc((nu + 1) * sizeof *perm);
    for (size_t i = 0; i < nu; i++) perm[i] = d + i;
    for (size_t i = nu; i > 1; i--) { /* reordered */
        size_t j = rnd(rs) % i, t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < nu; i++) {
        const struct rec *r = &R.v[perm[i]];
        if (r->op != BLK_REC_WRITE || r->off + r->len > CT_SIZE) continue;
        unsigned how = (unsigned)(rnd(rs) % 3);
        if (how == 0) continue; /* dropped */
        if (how == 1) {
            memcpy(img + r->off, r->data, r->len);
            continue;
        }
        for (uint32_t sct = 0; sct < r->len / CT_SECTOR; sct++) /* torn: some sectors */
            if (rnd(rs) & 1) memcpy(img + r->off + sct * CT_SECTOR, r->data + sct * CT_SECTOR, CT_SECTOR);
    }
    free(perm);
    *durable = d;
}

int blk_crashtest(const char *path, int states, unsigned seed, int force, FILE *out)
{
    struct stat st;
    int is_dev = sys.fstatat(AT_FDCWD, path, &st, 0) == 0 && S_ISBLK(st.st_mode);
    if (!is_dev) {
        int fd = sys.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || sys.ftruncate(fd, CT_SIZE) < 0) {
            fprintf(out, "crashtest: %s: %s\n", path, strerror(errno));
            if (fd >= 0) sys.close(fd);
            return 2;
        }
        sys.close(fd);
    } else if (!force) {
        fprintf(out, "crashtest: %s is a block device: its first 8 MiB will be overwritten; --force to go on\n", path);
        return 2;
    }
    if (states < 1) states = 1000;
    struct cfg cfg;
    cfg_load(&cfg, cfg_process_env, NULL);
    uint8_t *base = malloc(CT_SIZE), *img = malloc(CT_SIZE), *cur = malloc(CT_SIZE);
    uint64_t rs = seed ? seed : 0x9e3779b97f4a7c15ull;
    long total = 0, failed = 0;
    int rc = 0;
    for (int w = 0; w < NWORK && rc != 2; w++) {
        char err[512];
        if (blk_format_size(path, 1, "crashtest", CT_SIZE, err, sizeof err) < 0) {
            fprintf(out, "crashtest: %s\n", err);
            rc = 2;
            break;
        }
        int fd = sys.open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0 || sys.pread(fd, base, CT_SIZE, 0) != (ssize_t)CT_SIZE) {
            fprintf(out, "crashtest: reading %s: %s\n", path, strerror(errno));
            rc = 2;
            if (fd >= 0) sys.close(fd);
            break;
        }
        void *ms;
        struct run run = {.seed = rs + (uint64_t)w * 7919, .batched = w % 2 == 1};
        /* Group commit in every other workload (many small objects among them): closes
         * only visible, durable at the fsyncs and the unmount (no timer inside the run). */
        cfg.block_commit_ms = run.batched ? 60000 : 0;
        struct model *live = calloc(1, sizeof *live);
        if (bk_block_ops.mount(path, &cfg, NULL, &ms, err, sizeof err) < 0) {
            fprintf(out, "crashtest: mount: %s\n", err);
            rc = 2;
            sys.close(fd);
            break;
        }
        R.n = 0;
        blk_recorder = recorder;
        int we = workload(w, &run, ms, live);
        bk_block_ops.unmount(ms); /* group commit: the durable root, recorded */
        blk_recorder = NULL;
        struct blk_store vs; /* the run's visible roots: the states below are other devices */
        if (blk_open(&vs, path, 0, err, sizeof err) == 0) {
            blk_vr_unlink(&vs);
            blk_close(&vs);
        }
        if (we) fprintf(out, "crashtest: workload %s: an operation failed (%s); testing what it recorded\n", wname[w],
                        strerror(-we));
        if (sys.pwrite(fd, base, CT_SIZE, 0) != (ssize_t)CT_SIZE) { /* the workload's own state out */
            fprintf(out, "crashtest: rewriting %s: %s\n", path, strerror(errno));
            rc = 2;
        }
        memcpy(cur, base, CT_SIZE);
        size_t nflush = 0, nroot = 0;
        for (size_t i = 0; i < R.n; i++) nflush += R.v[i].op == BLK_REC_FLUSH, nroot += is_root_write(&R.v[i]);
        long wfail = 0;
        for (int sidx = 0; sidx < states; sidx++) {
            /* the cut: flush boundaries first, then random points */
            size_t k;
            if ((size_t)sidx < nflush) {
                size_t f = 0, i = 0;
                for (; i < R.n; i++)
                    if (R.v[i].op == BLK_REC_FLUSH && f++ == (size_t)sidx) break;
                k = i + 1;
            } else if ((size_t)sidx < nflush + nroot) { /* just after a root write, before its flush */
                size_t f = 0, i = 0;
                for (; i < R.n; i++)
                    if (is_root_write(&R.v[i]) && f++ == (size_t)sidx - nflush) break;
                k = i + 1;
            } else {
                k = R.n ? 1 + rnd(&rs) % R.n : 0;
            }
            size_t durable;
            build(img, base, k, &rs, &durable);
            for (size_t b = 0; b < CT_SIZE / BLK_BS; b++) /* only the blocks that differ */
                if (memcmp(img + b * BLK_BS, cur + b * BLK_BS, BLK_BS)) {
                    sys.pwrite(fd, img + b * BLK_BS, BLK_BS, (off_t)(b * BLK_BS));
                    memcpy(cur + b * BLK_BS, img + b * BLK_BS, BLK_BS);
                }
            /* What may be there: the objects after the first j operations, for any j from
             * those done before the last durable root (written, then flushed) up to the
             * one in flight (commits are in order, so a state is always such a prefix;
             * without group commit every close is durable and j is that or one more). */
            size_t droot = 0; /* records [0, droot) hold a durable root */
            int rootw = 0;
            for (size_t i = 0; i < durable; i++) {
                if (is_root_write(&R.v[i])) rootw = 1;
                if (R.v[i].op == BLK_REC_FLUSH) {
                    if (rootw) droot = i + 1;
                    rootw = 0;
                }
            }
            int jmin = 0, jmax = 0;
            while (jmin < run.nops && run.ops[jmin].end <= droot) jmin++;
            while (jmax < run.nops && run.ops[jmax].start < k) jmax++;
            struct model *m0 = calloc(1, sizeof *m0);
            for (int i = 0; i < jmin; i++) apply_ch(m0, &run.ops[i]);
            char *cbuf = NULL;
            size_t clen = 0;
            FILE *cf = open_memstream(&cbuf, &clen);
            int crc = blk_check_ex(path, 0, 0, 1, cf);
            fclose(cf);
            struct seen *sn = calloc(1, sizeof *sn);
            sn->img = img;
            int ok = crc == 0;
            if (ok) {
                struct blk_store s;
                struct blk_root r;
                if (blk_open(&s, path, 0, err, sizeof err) < 0 || blk_newest_root(&s, &r, NULL) < 0) {
                    ok = 0;
                    snprintf(sn->why, sizeof sn->why, "cannot open the state");
                } else {
                    struct bt_walker wk = {.entry = seen_entry, .data = sn};
                    bt_walk(&s, &r, &wk);
                    blk_close(&s);
                    int j = jmin, hit = !sn->bad && matches(sn, m0);
                    while (!sn->bad && !hit && j < jmax) {
                        apply_ch(m0, &run.ops[j++]);
                        hit = matches(sn, m0);
                    }
                    if (sn->bad) ok = 0;
                    else if (!hit) {
                        ok = 0;
                        snprintf(sn->why, sizeof sn->why,
                                 "objects differ from the state after each of operations %d to %d", jmin, jmax);
                    }
                }
            }
            if (!ok) {
                wfail++;
                if (wfail <= 3)
                    fprintf(out, "crashtest: %s, cut %zu of %zu records: %s%s\n", wname[w], k, R.n,
                            crc ? "check: " : "", crc ? (cbuf ? cbuf : "?") : sn->why);
            }
            for (int i = 0; i < CT_KEYS; i++) free((void *)sn->obs_data[i]);
            free(sn);
            free(cbuf);
            free(m0);
        }
        fprintf(out, "crashtest: %-12s %5zu writes, %4zu flushes, %3d operations%s: %d crash states, %ld inconsistent\n",
                wname[w], R.n - nflush, nflush, run.nops, run.batched ? " (group commit)" : "", states, wfail);
        total += states;
        failed += wfail;
        for (size_t i = 0; i < R.n; i++) free(R.v[i].data);
        for (int i = 0; i < run.nops; i++)
            for (int c = 0; c < run.ops[i].nch; c++) free(run.ops[i].ch[c].v.data);
        free(run.ops);
        for (int i = 0; i < CT_KEYS; i++) free(live->k[i].data);
        free(live);
        sys.close(fd);
        if (failed) rc = 1;
    }
    free(R.v);
    R.v = NULL;
    R.n = R.cap = 0;
    free(base);
    free(img);
    free(cur);
    cfg_free(&cfg);
    if (rc != 2) fprintf(out, "crashtest: %ld crash states tried, %ld inconsistent\n", total, failed);
    return rc;
}
