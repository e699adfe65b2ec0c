/* blk_check.c - `s3shim blk check`: prove a store consistent, or say what is wrong.
 *
 * Reads the superblock and its copy, both roots, every node of the newest root's tree,
 * the bitmap and its directory, both pending-free lists; marks every block each of them
 * references in a map of its own (a block referenced twice is damage), then compares that
 * map with the committed bitmap bit by bit (a set bit nobody references is a leak, a
 * referenced block whose bit is clear could be handed out twice). With --repair it
 * rewrites a bad superblock (primary or copy) from the good one, and replaces an invalid
 * root slot by making an empty commit into it. */
#include "block.h"

#include "blk.h"

#include "../sys.h"

#include <errno.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

struct ck {
    struct blk_store *s;
    const struct blk_root *r;
    FILE *out;
    uint8_t *ref; /* a bit per block */
    uint64_t damage, objects, dirs, nodes, max_ino;
    char last[BLK_MAX_KEY + 1];
    size_t lastlen;
    int have_last, verbose;
};

static void say(struct ck *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct ck *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
}

static void damage(struct ck *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void damage(struct ck *c, const char *fmt, ...)
{
    c->damage++;
    if (c->damage > 50) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("damage: ", c->out);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
}

static void mark(struct ck *c, uint64_t start, uint64_t len, const char *what)
{
    if (start + len > c->s->sb.dev_blocks || start + len < start) {
        damage(c, "%s: blocks %llu+%llu lie outside the device", what, (unsigned long long)start,
               (unsigned long long)len);
        return;
    }
    for (uint64_t k = start; k < start + len; k++) {
        uint8_t m = (uint8_t)(1u << (k % 8));
        if (c->ref[k / 8] & m) damage(c, "block %llu is referenced twice (again by %s)", (unsigned long long)k, what);
        c->ref[k / 8] |= m;
    }
}

static int ck_bad(void *d, uint64_t addr, const char *why)
{
    struct ck *c = d;
    damage(c, "index block %llu: %s", (unsigned long long)addr, why);
    return 0;
}

static const char *kind_name(int kind)
{
    static const char *const n[] = {"?", "super", "root", "branch", "leaf", "bitmap", "bitmapdir", "pendingfree"};
    return kind >= 1 && kind <= 7 ? n[kind] : "?";
}

static void live(struct ck *c, int kind, uint64_t addr)
{
    if (c->verbose >= 2) fprintf(c->out, "block %s %llu\n", kind_name(kind), (unsigned long long)addr);
}

static int ck_node(void *d, uint64_t addr, int kind, const uint8_t *blk)
{
    struct ck *c = d;
    (void)blk;
    c->nodes++;
    live(c, kind, addr);
    if (addr < c->s->sb.meta_start || addr >= c->s->sb.data_start)
        damage(c, "index block %llu lies outside the metadata zone", (unsigned long long)addr);
    mark(c, addr, 1, "an index node");
    return 0;
}

static int ck_entry(void *d, const struct blk_obj *o)
{
    struct ck *c = d;
    int cmp = 0;
    if (c->have_last) {
        size_t n = c->lastlen < o->klen ? c->lastlen : o->klen;
        cmp = memcmp(c->last, o->key, n);
        if (!cmp) cmp = c->lastlen < o->klen ? -1 : c->lastlen > o->klen;
    }
    if (c->have_last && cmp >= 0) damage(c, "key '%s' out of order after '%s'", o->key, c->last);
    memcpy(c->last, o->key, o->klen + 1u);
    c->lastlen = o->klen;
    c->have_last = 1;
    if (o->klen == 0 || memchr(o->key, 0, o->klen)) damage(c, "an empty key or a key with a NUL byte");
    if (S_ISDIR(o->mode)) {
        c->dirs++;
        if (o->key[o->klen - 1] != '/' || o->next) damage(c, "directory entry '%s' is malformed", o->key);
    } else {
        c->objects++;
        if (!S_ISREG(o->mode)) damage(c, "object '%s' has mode %o", o->key, o->mode);
    }
    if (o->ino > c->max_ino && o->ino < BLK_INO_CHOSEN) c->max_ino = o->ino; /* (chosen at open: apart) */
    uint64_t nblk = (o->size + BLK_BS - 1) / BLK_BS, prev_end = 0;
    for (int i = 0; i < o->next; i++) {
        const struct blk_ext *x = &o->ext[i];
        if (x->len == 0 || x->lblk < prev_end || x->lblk + x->len > nblk)
            damage(c, "object '%s': extent %d (logical %llu+%u) is out of order or past the size %llu", o->key, i,
                   (unsigned long long)x->lblk, x->len, (unsigned long long)o->size);
        if (x->pblk < c->s->sb.data_start || x->pblk + x->len > c->s->sb.data_end)
            damage(c, "object '%s': extent %d (blocks %llu+%u) is outside the data zone", o->key, i,
                   (unsigned long long)x->pblk, x->len);
        else
            mark(c, x->pblk, x->len, o->key);
        prev_end = x->lblk + x->len;
    }
    if (c->verbose == 1) say(c, "  %s %llu bytes, %d extents", o->key, (unsigned long long)o->size, o->next);
    return 0;
}

static void ck_pending(struct ck *c, uint64_t head, uint64_t nblocks, const char *which)
{
    uint8_t *b = malloc(BLK_BS);
    uint64_t seen = 0, hops = 0;
    char why[120];
    while (b && head && hops++ < c->s->sb.dev_blocks) {
        if (blk_read_block(c->s, head, b) < 0 ||
            blk_verify(b, BK_FREE, head, c->s->sb.h.uuid, c->r->h.commit, why, sizeof why) < 0) {
            damage(c, "%s pending-free block %llu: %s", which, (unsigned long long)head, why);
            break;
        }
        mark(c, head, 1, "a pending-free list");
        live(c, BK_FREE, head);
        const struct blk_hdr *h = (const void *)b;
        for (uint32_t i = 0; i < h->count && i < BLK_EXT_PER_FL; i++) {
            struct blk_fext x;
            memcpy(&x, b + BLK_HDR + 8 + i * 16, 16);
            mark(c, x.start, x.len, "a pending-free extent");
            seen += x.len;
        }
        memcpy(&head, b + BLK_HDR, 8);
    }
    if (seen != nblocks)
        damage(c, "%s pending-free list holds %llu blocks, the root says %llu", which, (unsigned long long)seen,
               (unsigned long long)nblocks);
    free(b);
}

static int super_ok(struct blk_store *s, uint64_t addr, char *why, size_t len)
{
    uint8_t b[BLK_BS] __attribute__((aligned(64)));
    if (blk_read_block(s, addr, b) < 0) {
        snprintf(why, len, "unreadable");
        return 0;
    }
    if (blk_verify(b, BK_SUPER, addr, s->sb.h.uuid, 0, why, len) < 0) return 0;
    struct blk_super x = *(struct blk_super *)b, y = s->sb;
    x.h = y.h;
    if (memcmp(&x, &y, sizeof x) != 0) {
        snprintf(why, len, "differs from the other copy");
        return 0;
    }
    return 1;
}

static int is_zero(const uint8_t *b)
{
    for (unsigned i = 0; i < BLK_BS; i++)
        if (b[i]) return 0;
    return 1;
}

int blk_check(const char *path, int repair, int verbose, FILE *out) { return blk_check_ex(path, repair, verbose, 0, out); }

int blk_check_ex(const char *path, int repair, int verbose, int crash, FILE *out)
{
    struct blk_store s;
    char err[512];
    if (blk_open(&s, path, repair, err, sizeof err) < 0) {
        fprintf(out, "error: %s\n", err);
        return 8;
    }
    struct ck c = {.s = &s, .out = out, .verbose = verbose};
    int repaired = 0;
    char why[160];
    uint64_t ends[2] = {0, s.sb.dev_blocks - 1};
    for (int i = 0; i < 2; i++) {
        if (super_ok(&s, ends[i], why, sizeof why)) continue;
        if (repair) {
            uint8_t b[BLK_BS] __attribute__((aligned(64)));
            memcpy(b, &s.sb, sizeof s.sb);
            memset(b + sizeof s.sb, 0, BLK_BS - sizeof s.sb);
            blk_seal(b, BK_SUPER, 0, ends[i], s.sb.h.uuid);
            if (blk_write_block(&s, ends[i], b) == 0 && blk_sync(&s) == 0) {
                say(&c, "repaired: superblock %s (block %llu): %s; rewritten from the other copy",
                    i ? "copy" : "primary", (unsigned long long)ends[i], why);
                repaired++;
                continue;
            }
        }
        damage(&c, "superblock %s (block %llu): %s", i ? "copy" : "primary", (unsigned long long)ends[i], why);
    }
    struct blk_root r;
    int bad = 0;
    uint64_t durable0 = 0;
    if (blk_roots(&s, &r, &durable0, NULL, &bad) < 0) {
        damage(&c, "no valid root in either slot: the store cannot be read");
        blk_close(&s);
        return 4;
    }
    for (int i = 0; i < 2; i++) {
        if (!(bad & (1 << i))) continue;
        uint8_t b[BLK_BS] __attribute__((aligned(64)));
        int zero = blk_read_block(&s, BLK_ROOT_SLOT0 + (uint64_t)i, b) == 0 && is_zero(b);
        if (zero && durable0 == 1) continue; /* never written since format */
        if (crash) { /* after a simulated power cut an interrupted commit's root is expected */
            say(&c, "note: root slot %d invalid (an interrupted commit); the store is at commit %llu", i,
                (unsigned long long)r.h.commit);
            continue;
        }
        blk_verify(b, BK_ROOT, BLK_ROOT_SLOT0 + (uint64_t)i, s.sb.h.uuid, UINT64_MAX, why, sizeof why);
        if (repair) {
            struct blk_txn *t;
            if (tx_begin(&s, &t) == 0 && tx_commit(t, TX_DURABLE, NULL) == 0) {
                say(&c, "repaired: root slot %d: %s; an empty commit rewrote it", i, why);
                repaired++;
                blk_newest_root(&s, &r, NULL);
                continue;
            }
        }
        damage(&c, "root slot %d (block %d): %s (an interrupted commit, or damage); the store is at commit %llu", i,
               BLK_ROOT_SLOT0 + i, zero ? "empty" : why, (unsigned long long)r.h.commit);
    }
    /* From here on no commit runs (a writer elsewhere waits): the view is one commit's. */
    uint64_t durable = 0;
    int dslot = 0;
    if (blk_lock_shared(&s) < 0 || blk_roots(&s, &r, &durable, &dslot, NULL) < 0) {
        damage(&c, "cannot lock the store or read its root");
        blk_close(&s);
        return 8;
    }
    c.r = &r;
    live(&c, BK_SUPER, 0);
    live(&c, BK_SUPER, s.sb.dev_blocks - 1);
    live(&c, BK_ROOT, BLK_ROOT_SLOT0 + (uint64_t)dslot); /* the newest durable root */
    if (r.h.commit > durable)
        say(&c, "note: commits %llu to %llu are visible, not yet durable (group commit)", (unsigned long long)durable + 1,
            (unsigned long long)r.h.commit);
    if (!(c.ref = calloc(s.sb.dev_blocks / 8 + 1, 1))) {
        blk_close(&s);
        return 8;
    }
    mark(&c, 0, 3, "the superblock and roots");
    mark(&c, s.sb.dev_blocks - 1, 1, "the superblock copy");
    struct bt_walker w = {.node = ck_node, .entry = ck_entry, .bad = ck_bad, .data = &c};
    bt_walk(&s, &r, &w);
    ck_pending(&c, r.pend_prev, r.pend_prev_n, "older");
    ck_pending(&c, r.pend_cur, r.pend_cur_n, "newer");
    ck_pending(&c, r.vol, r.vol_n, "visible-only");
    /* The bitmap against the references. */
    uint8_t *b = malloc(BLK_BS), *bm = malloc(BLK_BS);
    uint64_t nbm = (s.sb.dev_blocks + BLK_BITS_PER_BM - 1) / BLK_BITS_PER_BM, used = 0, meta_used = 0;
    uint64_t leaked = 0, unmarked = 0;
    for (uint32_t j = 0; b && bm && j < r.ndir; j++) {
        if (blk_read_block(&s, r.dir[j], b) < 0 ||
            blk_verify(b, BK_DIR, r.dir[j], s.sb.h.uuid, r.h.commit, why, sizeof why) < 0) {
            damage(&c, "bitmap directory block %llu: %s", (unsigned long long)r.dir[j], why);
            continue;
        }
        mark(&c, r.dir[j], 1, "the bitmap directory");
        live(&c, BK_DIR, r.dir[j]);
        for (uint64_t i = (uint64_t)j * BLK_ADDRS_PER_DIR; i < nbm && i < (uint64_t)(j + 1) * BLK_ADDRS_PER_DIR; i++) {
            uint64_t a;
            memcpy(&a, b + BLK_HDR + (i % BLK_ADDRS_PER_DIR) * 8, 8);
            if (blk_read_block(&s, a, bm) < 0 || blk_verify(bm, BK_BITMAP, a, s.sb.h.uuid, r.h.commit, why, sizeof why) < 0) {
                damage(&c, "bitmap block %llu (number %llu): %s", (unsigned long long)a, (unsigned long long)i, why);
                continue;
            }
            mark(&c, a, 1, "the bitmap");
            live(&c, BK_BITMAP, a);
            if (((struct blk_hdr *)bm)->count != i) damage(&c, "bitmap block %llu has the wrong number", (unsigned long long)a);
        }
    }
    /* Second pass, now that every reference is marked (the bitmap's own blocks too). */
    for (uint64_t i = 0; b && bm && i < nbm; i++) {
        if (blk_bm_read(&s, &r, i, bm) < 0) continue; /* reported above */
        for (uint64_t k = i * BLK_BITS_PER_BM; k < (i + 1) * BLK_BITS_PER_BM && k < s.sb.dev_blocks; k++) {
            uint64_t bit = k % BLK_BITS_PER_BM;
            int set = (bm[BLK_HDR + bit / 8] >> (bit % 8)) & 1, ref = (c.ref[k / 8] >> (k % 8)) & 1;
            if (set) {
                used++;
                if (k < s.sb.data_start || k >= s.sb.data_end) meta_used++;
            }
            if (set && !ref && leaked++ < 20) damage(&c, "block %llu is allocated but nothing uses it (leaked)", (unsigned long long)k);
            if (!set && ref && unmarked++ < 20) damage(&c, "block %llu is in use but free in the bitmap", (unsigned long long)k);
        }
    }
    free(b);
    free(bm);
    if (used != r.used || meta_used != r.meta_used)
        damage(&c, "the root counts %llu blocks in use (%llu metadata), the bitmap %llu (%llu)", (unsigned long long)r.used,
               (unsigned long long)r.meta_used, (unsigned long long)used, (unsigned long long)meta_used);
    if (c.objects != r.objects || c.dirs != r.dirs)
        damage(&c, "the root counts %llu objects and %llu directories, the index holds %llu and %llu",
               (unsigned long long)r.objects, (unsigned long long)r.dirs, (unsigned long long)c.objects,
               (unsigned long long)c.dirs);
    if (c.max_ino >= r.next_ino) damage(&c, "an object has inode %llu, not below the next one", (unsigned long long)c.max_ino);
    say(&c, "%s: commit %llu, %llu objects, %llu directories, %llu index blocks, %llu blocks in use: %s", path,
        (unsigned long long)r.h.commit, (unsigned long long)c.objects, (unsigned long long)c.dirs,
        (unsigned long long)c.nodes, (unsigned long long)used,
        c.damage ? "DAMAGED" : repaired ? "repaired" : "clean");
    if (leaked || unmarked)
        say(&c, "%llu leaked blocks, %llu used blocks marked free", (unsigned long long)leaked, (unsigned long long)unmarked);
    free(c.ref);
    blk_unlock(&s);
    blk_close(&s);
    return c.damage ? 4 : repaired ? 1 : 0;
}
