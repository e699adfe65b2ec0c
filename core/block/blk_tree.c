/* blk_tree.c - the index: a copy-on-write B+tree of keys (docs/block-format.md, "B+tree").
 *
 * Readers outside a commit walk the newest root with no lock: each node is read through
 * the page cache and verified; a node that fails, or was written after the root the walk
 * started from, means a commit moved the tree, so the walk starts again from the newest
 * root (only a failure under an unmoved root is damage). Changes happen inside a commit
 * (blk_txn.c): the path from the root to the changed leaf is rewritten, nodes split in
 * two by bytes when full, merge with a neighbour when a delete leaves them under a
 * quarter full, and vanish when empty. */
#include "blk.h"

#include "../log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Keys in order (bytes unsigned, a prefix first). Eight bytes at a time: a store's keys
 * share long prefixes ("dir/sub/file0001"), and the call to memcmp per item was a tenth
 * of a small file's commit. */
static int kcmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y) return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
    }
    for (; i < n; i++)
        if (a[i] != b[i]) return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
    return (al > bl) - (al < bl);
}

static uint16_t ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Size of the item at p (0 if it would run past end). */
static size_t item_size(const uint8_t *p, const uint8_t *end, int leaf)
{
    if (end - p < (leaf ? 40 : 10)) return 0;
    size_t k = ld16(p);
    size_t n = leaf ? 40 + k + 24u * ld16(p + 2) : 2 + k + 8;
    if (k > BLK_MAX_KEY || (leaf && ld16(p + 2) > BLK_MAX_EXT) || n > (size_t)(end - p)) return 0;
    return n;
}
static const char *item_key(const uint8_t *p, int leaf) { return (const char *)p + (leaf ? 40 : 2); }

/* Items per node at most (the smallest is a branch item with an empty key). */
#define MAX_ITEMS (BLK_BODY / 10 + 1)

/* The offsets in node n's body of its items, and where they end (*used); their count, or
 * -1 if an item is malformed. Finding them costs a few instructions an item, and then a
 * key is found in a node with a binary search instead of a compare per item before it. */
static int item_offsets(const uint8_t *n, int leaf, uint16_t *off, size_t *used)
{
    const struct blk_hdr *h = (const void *)n;
    const uint8_t *body = n + BLK_HDR, *p = body, *end = n + BLK_BS;
    if (h->count > MAX_ITEMS) return -1;
    for (uint32_t i = 0; i < h->count; i++) {
        size_t sz = item_size(p, end, leaf);
        if (!sz) return -1;
        off[i] = (uint16_t)(p - body);
        p += sz;
    }
    if (used) *used = (size_t)(p - body);
    return (int)h->count;
}

/* The first item whose key is > key (after: 1), or >= key (after: 0); count if none. */
static uint32_t bound(const uint8_t *body, const uint16_t *off, uint32_t count, int leaf, const char *key, size_t klen,
                      int after)
{
    uint32_t lo = 0, hi = count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const uint8_t *p = body + off[mid];
        int c = kcmp(item_key(p, leaf), ld16(p), key, klen);
        if (c < 0 || (after && c == 0)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

void bt_decode(const uint8_t *p, struct blk_obj *o)
{
    struct blk_item it;
    memcpy(&it, p, sizeof it);
    o->klen = it.klen;
    memcpy(o->key, p + 40, it.klen);
    o->key[it.klen] = 0;
    o->mode = it.mode;
    o->ino = it.ino;
    o->size = it.size;
    o->mtime_ns = it.mtime_ns;
    o->gen = it.gen;
    o->next = it.next;
    memcpy(o->ext, p + 40 + it.klen, 24u * it.next);
}

static size_t encode(const struct blk_obj *o, uint8_t *p)
{
    struct blk_item it = {.klen = o->klen, .next = (uint16_t)o->next, .mode = o->mode, .ino = o->ino,
                          .size = o->size, .mtime_ns = o->mtime_ns, .gen = o->gen};
    memcpy(p, &it, sizeof it);
    memcpy(p + 40, o->key, o->klen);
    memcpy(p + 40 + o->klen, o->ext, 24u * (size_t)o->next);
    return 40 + o->klen + 24u * (size_t)o->next;
}

/* --- reading ------------------------------------------------------------------------- */

struct view {
    struct blk_store *s;
    struct blk_txn *t; /* inside a commit, else NULL */
    struct {           /* of the root walked from (not the whole root: copied per lookup) */
        uint64_t tree, commit;
        uint32_t height;
    } r;
};

/* Node at addr: from the commit's view, or read into buf and verified against the root.
 * NULL: *err = -EAGAIN (invalid: the tree may have moved) or -errno. */
static const uint8_t *vnode(struct view *v, uint64_t addr, int level, uint8_t *buf, int *err)
{
    int kind = level ? BK_BRANCH : BK_LEAF;
    if (v->t) {
        const uint8_t *n = tx_node(v->t, addr, kind);
        if (!n) *err = tx_error(v->t) ? tx_error(v->t) : -EIO;
        else if (((const struct blk_hdr *)n)->level != level) n = NULL, *err = -EIO;
        return n;
    }
    struct blk_store *s = v->s;
    if (blk_nc_get(s, addr, kind, v->r.commit, buf) && ((const struct blk_hdr *)buf)->level == level) return buf;
    int e = blk_read_block(s, addr, buf);
    if (e) {
        *err = e;
        return NULL;
    }
    if (blk_verify(buf, kind, addr, s->sb.h.uuid, v->r.commit, NULL, 0) < 0 ||
        ((const struct blk_hdr *)buf)->level != level) {
        *err = -EAGAIN;
        return NULL;
    }
    blk_nc_put(s, addr, kind, buf, v->r.commit); /* verified, reached from this root */
    return buf;
}

/* The items each level of branch last descended through, per thread: lookups of
 * neighbouring keys (a program creating files one after another, and the parent
 * directory of each) go through the same few children, and two compares confirm one
 * instead of a compare per item before it. Only for sealed nodes, whose address, commit
 * and checksum name one content. */
#define FINGERS 4
static __thread struct finger {
    uint64_t addr, commit;
    uint32_t crc, ci;
    uint16_t off, next; /* the item's offset in the body; the next one's (0: it is the last) */
} fingers[8][FINGERS];
static __thread unsigned finger_turn;

/* Index of the child of branch n to descend into for key (and its address; next, if
 * given: the item after it, NULL if it is the last). */
static int pick_child(const uint8_t *n, const char *key, size_t klen, uint64_t *child, const uint8_t **next)
{
    const struct blk_hdr *h = (const void *)n;
    const uint8_t *body = n + BLK_HDR;
    struct finger *fl = h->level < 8 && h->commit ? fingers[h->level] : NULL;
    for (int f = 0; fl && f < FINGERS; f++) {
        const struct finger *fg = &fl[f];
        if (fg->addr != h->addr || fg->commit != h->commit || fg->crc != h->crc || fg->ci >= h->count) continue;
        const uint8_t *q = body + fg->off, *nx = body + fg->next;
        if ((fg->ci == 0 || kcmp(item_key(q, 0), ld16(q), key, klen) <= 0) &&
            (!fg->next || kcmp(key, klen, item_key(nx, 0), ld16(nx)) < 0)) {
            *child = ld64(q + 2 + ld16(q));
            if (next) *next = fg->next ? nx : NULL;
            return (int)fg->ci;
        }
    }
    uint16_t off[MAX_ITEMS];
    int count = item_offsets(n, 0, off, NULL);
    if (count <= 0) return -1;
    uint32_t ub = bound(body, off, (uint32_t)count, 0, key, klen, 1), ci = ub ? ub - 1 : 0; /* (the first: any key) */
    const uint8_t *q = body + off[ci];
    *child = ld64(q + 2 + ld16(q));
    if (next) *next = ci + 1 < (uint32_t)count ? body + off[ci + 1] : NULL;
    if (fl)
        fl[finger_turn++ % FINGERS] = (struct finger){h->addr, h->commit, h->crc, ci, off[ci],
                                                      (uint16_t)(ci + 1 < (uint32_t)count ? off[ci + 1] : 0)};
    return (int)ci;
}

/* Is there a key below key + "/" (a directory of that name)? What a key qk known to be
 * the first after key, or no further than it, says: 1 it is one, 0 there is none before
 * it, -1 it cannot tell ("key-x" and "key.x" sort between key and key + "/"). */
static int dir_after(const char *qk, size_t ql, const char *key, size_t klen)
{
    if (ql <= klen || memcmp(qk, key, klen) != 0) return 0; /* past everything key + "..." */
    return qk[klen] == '/' ? 1 : (unsigned char)qk[klen] > '/' ? 0 : -1;
}

/* dir (if given): when key is not there, whether a directory of that name is (dir_after). */
static int get_in(struct view *v, const char *key, size_t klen, struct blk_obj *o, int *dir)
{
    uint8_t buf[BLK_BS] __attribute__((aligned(64)));
    char ub[BLK_MAX_KEY]; /* the separator after the path taken: every key past the leaf is >= it */
    size_t ubl = 0;
    int has_ub = 0;
    uint64_t addr = v->r.tree;
    int err = 0;
    for (int level = (int)v->r.height - 1; level >= 0; level--) {
        const uint8_t *n = vnode(v, addr, level, buf, &err);
        if (!n) return err;
        if (level > 0) {
            const uint8_t *nx = NULL;
            if (pick_child(n, key, klen, &addr, dir ? &nx : NULL) < 0) return -EAGAIN;
            if (nx && (ubl = ld16(nx)) <= BLK_MAX_KEY) {
                memcpy(ub, item_key(nx, 0), ubl);
                has_ub = 1;
            } else if (nx) {
                has_ub = -1; /* (a key too long to be one: no answer) */
            }
            continue;
        }
        uint16_t off[MAX_ITEMS];
        int count = item_offsets(n, 1, off, NULL);
        if (count < 0) return -EAGAIN;
        uint32_t i = bound(n + BLK_HDR, off, (uint32_t)count, 1, key, klen, 0);
        if (i == (uint32_t)count) { /* past the leaf: the next key is the separator's or later */
            if (dir) { /* (a separator need not be a key still there: "one" is "cannot tell") */
                int d = has_ub > 0 ? dir_after(ub, ubl, key, klen) : has_ub; /* (none: the last leaf) */
                *dir = d == 1 ? -1 : d;
            }
            return 0;
        }
        const uint8_t *p = n + BLK_HDR + off[i];
        if (kcmp(item_key(p, 1), ld16(p), key, klen) != 0) {
            if (dir) *dir = dir_after(item_key(p, 1), ld16(p), key, klen);
            return 0;
        }
        if (o) bt_decode(p, o);
        return 1;
    }
    return -EAGAIN;
}

/* First entry > after (>= if incl) in the subtree at addr. */
static int next_in(struct view *v, uint64_t addr, int level, const char *after, size_t alen, int incl,
                   struct blk_obj *o)
{
    uint8_t buf[BLK_BS] __attribute__((aligned(64)));
    int err = 0;
    const uint8_t *n = vnode(v, addr, level, buf, &err);
    if (!n) return err;
    const struct blk_hdr *h = (const void *)n;
    const uint8_t *p = n + BLK_HDR, *end = n + BLK_BS;
    if (level == 0) {
        uint16_t off[MAX_ITEMS];
        int count = item_offsets(n, 1, off, NULL);
        if (count < 0) return -EAGAIN;
        uint32_t i = bound(n + BLK_HDR, off, (uint32_t)count, 1, after, alen, !incl);
        if (i == (uint32_t)count) return 0;
        bt_decode(n + BLK_HDR + off[i], o);
        return 1;
    }
    uint64_t child;
    int ci = pick_child(n, after, alen, &child, NULL);
    if (ci < 0) return -EAGAIN;
    /* From child ci on (n may be overwritten by the recursion when it is buf: copy). */
    uint8_t copy[BLK_BS] __attribute__((aligned(64)));
    if (n == buf) {
        memcpy(copy, buf, BLK_BS);
        n = copy;
        p = n + BLK_HDR;
        end = n + BLK_BS;
    }
    for (uint32_t i = 0; i < h->count; i++) {
        size_t sz = item_size(p, end, 0);
        if (!sz) return -EAGAIN;
        if ((int)i >= ci) {
            int r = next_in(v, ld64(p + 2 + ld16(p)), level - 1, after, alen, incl, o);
            if (r != 0) return r;
        }
        p += sz;
    }
    return 0;
}

/* Run f on the newest root, again while the tree moves under it. */
static int retry_view(struct blk_store *s, struct view *v, uint64_t *gen)
{
    v->s = s;
    v->t = NULL;
    int e = blk_newest_tree(s, &v->r.tree, &v->r.height, &v->r.commit);
    if (e < 0) return e;
    if (gen) *gen = v->r.commit;
    return 0;
}

static int moved(struct blk_store *s, const struct view *v)
{
    uint64_t tree, commit;
    uint32_t height;
    return blk_newest_tree(s, &tree, &height, &commit) == 0 && commit != v->r.commit;
}

int bt_get(struct blk_store *s, const char *key, size_t klen, struct blk_obj *o, uint64_t *gen)
{
    return bt_lookup(s, key, klen, o, gen, NULL);
}

int bt_lookup(struct blk_store *s, const char *key, size_t klen, struct blk_obj *o, uint64_t *gen, int *dir)
{
    struct view v;
    for (int tries = 0;; tries++) {
        int e = retry_view(s, &v, gen);
        if (e < 0) return e;
        int r = get_in(&v, key, klen, o, dir);
        if (r != -EAGAIN) return r;
        if (!moved(s, &v) || tries > 100) {
            slog_error("block: %s: damaged index under commit %llu looking up '%.*s' (run s3shim blk check)", s->path,
                       (unsigned long long)v.r.commit, (int)klen, key);
            return -EIO;
        }
    }
}

int bt_next(struct blk_store *s, const char *after, size_t alen, int incl, struct blk_obj *o)
{
    struct view v;
    for (int tries = 0;; tries++) {
        int e = retry_view(s, &v, NULL);
        if (e < 0) return e;
        int r = next_in(&v, v.r.tree, (int)v.r.height - 1, after, alen, incl, o);
        if (r != -EAGAIN) return r;
        if (!moved(s, &v) || tries > 100) {
            slog_error("block: %s: damaged index under commit %llu (run s3shim blk check)", s->path,
                       (unsigned long long)v.r.commit);
            return -EIO;
        }
    }
}

int bt_next_at(struct blk_store *s, struct blk_root *r, const char *after, size_t alen, int incl, struct blk_obj *o)
{
    struct view v = {.s = s, .r = {r->tree, r->h.commit, r->height}};
    if (r->h.commit) {
        int x = next_in(&v, v.r.tree, (int)v.r.height - 1, after, alen, incl, o);
        if (x != -EAGAIN) return x;
    }
    int x = bt_next(s, after, alen, incl, o); /* the newest root, retrying while it moves */
    if (x >= 0 && blk_newest_root(s, r, NULL) < 0) memset(r, 0, sizeof *r);
    return x;
}

int tx_get(struct blk_txn *t, const char *key, size_t klen, struct blk_obj *o)
{
    const struct blk_root *rt = tx_root(t);
    struct view v = {.t = t, .r = {rt->tree, rt->h.commit, rt->height}};
    int r = get_in(&v, key, klen, o, NULL);
    return r == -EAGAIN ? -EIO : r;
}

int tx_next(struct blk_txn *t, const char *after, size_t alen, int incl, struct blk_obj *o)
{
    const struct blk_root *rt = tx_root(t);
    struct view v = {.t = t, .r = {rt->tree, rt->h.commit, rt->height}};
    int r = next_in(&v, v.r.tree, (int)v.r.height - 1, after, alen, incl, o);
    return r == -EAGAIN ? -EIO : r;
}

/* --- changing (inside a commit) ----------------------------------------------------------- */

struct res {
    int n;   /* 0: the node is gone, 1: addr[0], 2: split, key2 starts addr[1] */
    int seq; /* split after keys arriving in order (store's keep) */
    uint64_t addr[2];
    uint16_t klen2;
    char key2[BLK_MAX_KEY];
};

#define SCRATCH (BLK_BODY + 2 * (40 + BLK_MAX_KEY + 24 * BLK_MAX_EXT))

/* A leaf body (count items) that overflowed with a new key at item ins: if keys are
 * arriving in order there (the item before it is the node's newest, by the commit that
 * wrote it, and every item after it is older: one writer filling a directory in order,
 * with other keys after it in the node), the number of items to keep on the left (up to
 * the new one); else 0. A wrong guess only leaves a node less full. */
static uint32_t in_order(const uint8_t *body, size_t size, uint32_t count, uint32_t ins)
{
    if (ins == 0 || ins >= count) return 0;
    const uint8_t *p = body, *end = body + size;
    uint64_t pred = 0, newest_other = 0, newest_after = 0;
    for (uint32_t i = 0; i < count; i++) {
        size_t sz = item_size(p, end, 1);
        if (!sz) return 0;
        uint64_t g = ld64(p + offsetof(struct blk_item, gen));
        if (i + 1 == ins) pred = g;
        else if (i > ins && g > newest_after) newest_after = g;
        else if (i < ins && g > newest_other) newest_other = g;
        p += sz;
    }
    if (ins + 1 == count) return pred >= newest_other ? ins : 0; /* at the end: it starts the new node */
    return pred > newest_after && pred >= newest_other ? ins + 1 : 0;
}

/* Bytes used by the items of node n. 0 if it is damaged. */
static size_t used(const uint8_t *n, int leaf)
{
    const uint8_t *p = n + BLK_HDR, *end = n + BLK_BS;
    for (uint32_t i = 0; i < ((const struct blk_hdr *)n)->count; i++) {
        size_t sz = item_size(p, end, leaf);
        if (!sz) return 0;
        p += sz;
    }
    return (size_t)(p - (n + BLK_HDR));
}

/* Address of child i of branch n (0 if it is damaged). */
static uint64_t child_at(const uint8_t *n, uint32_t i)
{
    const uint8_t *p = n + BLK_HDR, *end = n + BLK_BS;
    for (uint32_t j = 0; j < i; j++) {
        size_t sz = item_size(p, end, 0);
        if (!sz) return 0;
        p += sz;
    }
    return item_size(p, end, 0) ? ld64(p + 2 + ld16(p)) : 0;
}

struct shifted { /* two neighbouring children lo, lo + 1 rewritten; key2 starts the second */
    int lo;
    uint64_t a1, a2;
    uint16_t klen2;
    char key2[BLK_MAX_KEY];
};

/* Leaf child ci of branch n (count children) split in two (r), not in order: if a
 * neighbour can take the overflow, spread the items of the three over two nodes
 * instead, so no node is added (random inserts then leave leaves about 3/4 full
 * instead of 2/3). 1 done (r's second node freed), 0 not, -errno. */
static int shift_leaf(struct blk_txn *t, const uint8_t *n, uint32_t count, int ci, const struct res *r,
                      struct shifted *sh)
{
    for (int side = 0; side < 2; side++) {
        int si = side == 0 ? ci + 1 : ci - 1;
        if (si < 0 || si >= (int)count) continue;
        uint64_t saddr = child_at(n, (uint32_t)si);
        const uint8_t *sn = saddr ? tx_node(t, saddr, BK_LEAF) : NULL;
        const uint8_t *an = tx_node(t, r->addr[0], BK_LEAF), *bn = tx_node(t, r->addr[1], BK_LEAF);
        if (!sn || !an || !bn || ((const struct blk_hdr *)sn)->level != 0) return tx_error(t) ? tx_error(t) : -EIO;
        const uint8_t *part[3] = {an, bn, sn};
        if (si < ci) part[0] = sn, part[1] = an, part[2] = bn;
        size_t total = 0, sz[3];
        uint32_t cnt = 0;
        for (int i = 0; i < 3; i++) {
            if (!(sz[i] = used(part[i], 1))) return -EIO;
            total += sz[i];
            cnt += ((const struct blk_hdr *)part[i])->count;
        }
        if (total > 2 * BLK_BODY) continue;
        uint8_t *body = malloc(2 * BLK_BODY);
        if (!body) return -ENOMEM;
        for (size_t i = 0, off = 0; i < 3; off += sz[i], i++) memcpy(body + off, part[i] + BLK_HDR, sz[i]);
        const uint8_t *p = body, *end = body + total;
        size_t left = 0;
        uint32_t k = 0;
        while (k < cnt && left < total / 2) {
            size_t isz = item_size(p, end, 1);
            if (!isz) {
                free(body);
                return -EIO;
            }
            if (left + isz > BLK_BODY) break;
            left += isz;
            p += isz;
            k++;
        }
        if (k == 0 || k == cnt || total - left > BLK_BODY) {
            free(body);
            continue;
        }
        uint64_t x1 = si > ci ? r->addr[0] : saddr, x2 = si > ci ? saddr : r->addr[0];
        sh->lo = si < ci ? si : ci;
        sh->klen2 = ld16(p);
        memcpy(sh->key2, item_key(p, 1), sh->klen2);
        sh->a1 = tx_put_node(t, x1, BK_LEAF, 0, k, body, left);
        sh->a2 = sh->a1 ? tx_put_node(t, x2, BK_LEAF, 0, cnt - k, p, total - left) : 0;
        free(body);
        if (!sh->a2) return tx_error(t) ? tx_error(t) : -EIO;
        tx_free_node(t, r->addr[1]);
        return tx_error(t) ? tx_error(t) : 1;
    }
    return 0;
}

/* Item i of branch n and its size (NULL if it is damaged). */
static const uint8_t *item_at(const uint8_t *n, uint32_t i, size_t *sz)
{
    const uint8_t *p = n + BLK_HDR, *end = n + BLK_BS;
    for (uint32_t j = 0; j < i; j++) {
        size_t k = item_size(p, end, 0);
        if (!k) return NULL;
        p += k;
    }
    return (*sz = item_size(p, end, 0)) ? p : NULL;
}

/* A delete left child ci of branch n (count children; now at address a, level clevel)
 * less than a quarter full: if it and a neighbour fit in one node, make them one (the
 * right one's first item takes the parent's separator key: a branch's item 0 key stands
 * for "below every key", so it has to be a real one now), so deletes give nodes back and
 * the tree shrinks in height as it grows. 1 done (sh->lo the left one's slot, a1 the
 * merged node, a2 0: the right slot goes), 0 not, -errno. */
static int merge_child(struct blk_txn *t, const uint8_t *n, uint32_t count, int ci, uint64_t a, int clevel,
                       struct shifted *sh)
{
    int kind = clevel ? BK_BRANCH : BK_LEAF, leaf = clevel == 0;
    for (int side = 0; side < 2; side++) {
        int si = side == 0 ? ci + 1 : ci - 1;
        if (si < 0 || si >= (int)count) continue;
        int lo = si < ci ? si : ci;
        size_t ssz;
        const uint8_t *sep = item_at(n, (uint32_t)lo + 1, &ssz); /* the right one's separator */
        uint64_t saddr = child_at(n, (uint32_t)si);
        const uint8_t *cn = tx_node(t, a, kind), *sn = saddr ? tx_node(t, saddr, kind) : NULL;
        if (!sep || !cn || !sn || ((const struct blk_hdr *)sn)->level != clevel ||
            ((const struct blk_hdr *)cn)->level != clevel)
            return tx_error(t) ? tx_error(t) : -EIO;
        size_t csz = used(cn, leaf);
        if (!csz || csz > BLK_BODY / 4) return 0;
        const uint8_t *ln = lo == ci ? cn : sn, *rn = lo == ci ? sn : cn;
        size_t lsz = lo == ci ? csz : used(sn, leaf), rsz = lo == ci ? used(sn, leaf) : csz;
        if (!lsz || !rsz) return -EIO;
        const uint8_t *r0 = rn + BLK_HDR, *rest = r0;
        size_t total = lsz + rsz;
        if (!leaf) { /* item 0 of the right one: (separator key, its child) */
            size_t r0sz = item_size(r0, rn + BLK_BS, 0);
            if (!r0sz) return -EIO;
            rest = r0 + r0sz;
            total = total - r0sz + 2u + ld16(sep) + 8u;
        }
        if (total > BLK_BODY) continue;
        uint8_t *body = malloc(BLK_BODY);
        if (!body) return -ENOMEM;
        size_t off = lsz;
        memcpy(body, ln + BLK_HDR, lsz);
        if (!leaf) {
            uint16_t kl = ld16(sep);
            memcpy(body + off, sep, 2u + kl);
            memcpy(body + off + 2 + kl, r0 + 2 + ld16(r0), 8);
            off += 2u + kl + 8u;
        }
        memcpy(body + off, rest, rsz - (size_t)(rest - r0));
        uint32_t cnt = ((const struct blk_hdr *)ln)->count + ((const struct blk_hdr *)rn)->count;
        uint64_t la = lo == ci ? a : saddr, ra = lo == ci ? saddr : a;
        sh->lo = lo;
        sh->a2 = 0;
        sh->a1 = tx_put_node(t, la, kind, clevel, cnt, body, total);
        free(body);
        if (!sh->a1) return tx_error(t) ? tx_error(t) : -EIO;
        tx_free_node(t, ra);
        return tx_error(t) ? tx_error(t) : 1;
    }
    return 0;
}

/* Write body (count items, size bytes) as node addr's new version, splitting if needed:
 * after item keep - 1 when keep is not 0 and both halves fit, else near the middle. */
static int store(struct blk_txn *t, uint64_t addr, int level, const uint8_t *body, uint32_t count, size_t size,
                 uint32_t keep, struct res *out)
{
    int kind = level ? BK_BRANCH : BK_LEAF, leaf = level == 0;
    if (count == 0) {
        tx_free_node(t, addr);
        out->n = 0;
        return tx_error(t);
    }
    if (size <= BLK_BODY) {
        out->n = 1;
        out->addr[0] = tx_put_node(t, addr, kind, level, count, body, size);
        return out->addr[0] ? 0 : tx_error(t);
    }
    /* Split by bytes near the middle; items are under half a node, so both halves fit.
     * Keys arriving in order (the caller's keep, see change()) split after the newest
     * one instead: the left node is then filled up by the keys that follow, and left
     * full, instead of every node being left half full. */
    const uint8_t *p = body, *end = body + size;
    size_t left = 0;
    uint32_t k = 0;
    if (keep > 0 && keep < count) {
        while (k < keep) {
            size_t sz = item_size(p, end, leaf);
            if (!sz) return -EIO;
            left += sz;
            p += sz;
            k++;
        }
        if (left > BLK_BODY || size - left > BLK_BODY) keep = 0; /* does not fit: the middle */
    } else {
        keep = 0;
    }
    if (!keep) {
        p = body;
        left = 0;
        k = 0;
    }
    while (!keep && k < count) {
        size_t sz = item_size(p, end, leaf);
        if (!sz) return -EIO;
        if (left + sz > BLK_BODY || (left >= size / 2 && k > 0)) break;
        left += sz;
        p += sz;
        k++;
    }
    if (size - left > BLK_BODY || k == 0 || k == count) return -EIO;
    out->n = 2;
    out->seq = keep != 0;
    out->klen2 = ld16(p);
    memcpy(out->key2, item_key(p, leaf), out->klen2);
    out->addr[0] = tx_put_node(t, addr, kind, level, k, body, left);
    out->addr[1] = out->addr[0] ? tx_put_node(t, 0, kind, level, count - k, p, size - left) : 0;
    return out->addr[1] ? 0 : tx_error(t) ? tx_error(t) : -EIO;
}

/* Put item (ilen > 0) or delete key (ilen == 0) in the subtree at addr. *found: the key
 * was there (a delete copies the old entry into *old if given). */
static int change(struct blk_txn *t, uint64_t addr, int level, const char *key, size_t klen, const uint8_t *item,
                  size_t ilen, struct res *out, int *found, struct blk_obj *old)
{
    uint8_t *body = tx_scratch(t, level, SCRATCH);
    if (!body) return tx_error(t) ? tx_error(t) : -EIO;
    int kind = level ? BK_BRANCH : BK_LEAF, leaf = level == 0;
    const uint8_t *n = tx_node(t, addr, kind);
    if (!n || ((const struct blk_hdr *)n)->level != level) return tx_error(t) ? tx_error(t) : -EIO;
    uint32_t count = ((const struct blk_hdr *)n)->count, nc = 0;
    const uint8_t *p = n + BLK_HDR, *end = n + BLK_BS;
    size_t size = 0;
    if (leaf) {
        /* Where the key goes (a binary search); the items before and after it are then
         * copied in one piece each. */
        uint16_t off[MAX_ITEMS];
        size_t used;
        int cnt = item_offsets(n, 1, off, &used);
        if (cnt < 0) return -EIO;
        uint32_t i = bound(p, off, count, 1, key, klen, 0);
        size_t pre = i < count ? off[i] : used;
        const uint8_t *q = p + pre, *qe = p + used; /* the items after it */
        uint32_t rest = count - i;
        if (i < count && kcmp(key, klen, item_key(q, 1), ld16(q)) == 0) {
            *found = 1;
            if (old) bt_decode(q, old);
            q = p + (i + 1 < count ? off[i + 1] : used);
            rest--;
        }
        if (!ilen && !*found) {
            out->n = 1;
            out->addr[0] = addr;
            return 0;
        }
        memcpy(body, n + BLK_HDR, pre);
        size = pre;
        nc = i;
        int last = i == count && ilen;
        uint32_t ins = UINT32_MAX; /* where a new key went */
        if (ilen) {
            if (!*found && !last) ins = nc;
            memcpy(body + size, item, ilen);
            size += ilen;
            nc++;
        }
        memcpy(body + size, q, (size_t)(qe - q));
        size += (size_t)(qe - q);
        nc += rest;
        uint32_t keep = 0;
        if (size > BLK_BODY) keep = last ? nc - 1 : ins != UINT32_MAX ? in_order(body, size, nc, ins) : 0;
        return store(t, addr, 0, body, nc, size, keep, out);
    }
    uint64_t child = 0;
    int ci = pick_child(n, key, klen, &child, NULL);
    if (ci < 0) return -EIO;
    struct res r;
    int e = change(t, child, level - 1, key, klen, item, ilen, &r, found, old);
    if (e) return e;
    if (r.n == 1 && r.addr[0] == child && (ilen || !*found)) {
        out->n = 1;
        out->addr[0] = addr;
        return 0;
    }
    n = tx_node(t, addr, kind); /* the cache may have grown: look it up again */
    if (!n) return tx_error(t) ? tx_error(t) : -EIO;
    struct shifted sh;
    sh.lo = -1;
    if (level == 1 && r.n == 2 && !r.seq && count > 1) {
        int x = shift_leaf(t, n, count, ci, &r, &sh);
        if (x < 0) return x;
        if (!x) sh.lo = -1;
        if (!(n = tx_node(t, addr, kind))) return tx_error(t) ? tx_error(t) : -EIO;
    }
    if (!ilen && r.n == 1 && count > 1) {
        int x = merge_child(t, n, count, ci, r.addr[0], level - 1, &sh);
        if (x < 0) return x;
        if (!x) sh.lo = -1;
        if (!(n = tx_node(t, addr, kind))) return tx_error(t) ? tx_error(t) : -EIO;
    }
    if (sh.lo < 0 && r.n == 1 && r.addr[0] == child) { /* (a delete that merged nothing) */
        out->n = 1;
        out->addr[0] = addr;
        return 0;
    }
    if (sh.lo < 0 && r.n == 1) { /* only the child's address changed (the usual case): patched in a copy */
        uint16_t off[MAX_ITEMS];
        if (item_offsets(n, 0, off, &size) < 0) return -EIO;
        memcpy(body, n + BLK_HDR, size);
        memcpy(body + off[ci] + 2u + ld16(n + BLK_HDR + off[ci]), &r.addr[0], 8);
        return store(t, addr, level, body, count, size, 0, out);
    }
    p = n + BLK_HDR;
    end = n + BLK_BS;
    for (uint32_t i = 0; i < count; i++) {
        size_t sz = item_size(p, end, 0);
        if (!sz) return -EIO;
        if (sh.lo >= 0 && !sh.a2 && (i == (uint32_t)sh.lo || i == (uint32_t)sh.lo + 1)) { /* merged */
            if (i == (uint32_t)sh.lo) {
                uint16_t kl = ld16(p);
                memcpy(body + size, p, 2u + kl);
                memcpy(body + size + 2 + kl, &sh.a1, 8);
                size += 2u + kl + 8u;
                nc++;
            }
        } else if (sh.lo >= 0 && (i == (uint32_t)sh.lo || i == (uint32_t)sh.lo + 1)) {
            uint16_t kl = i == (uint32_t)sh.lo ? ld16(p) : sh.klen2;
            const char *k = i == (uint32_t)sh.lo ? item_key(p, 0) : sh.key2;
            uint64_t a = i == (uint32_t)sh.lo ? sh.a1 : sh.a2;
            memcpy(body + size, &kl, 2);
            memcpy(body + size + 2, k, kl);
            memcpy(body + size + 2 + kl, &a, 8);
            size += 2u + kl + 8u;
            nc++;
        } else if ((int)i != ci) {
            memcpy(body + size, p, sz);
            size += sz;
            nc++;
        } else {
            for (int j = 0; j < r.n; j++) {
                uint16_t kl = j == 0 ? ld16(p) : r.klen2;
                const char *k = j == 0 ? item_key(p, 0) : r.key2;
                memcpy(body + size, &kl, 2);
                memcpy(body + size + 2, k, kl);
                memcpy(body + size + 2 + kl, &r.addr[j], 8);
                size += 2u + kl + 8u;
                nc++;
            }
        }
        p += sz;
    }
    int grew = r.n == 2 && sh.lo < 0;
    return store(t, addr, level, body, nc, size, grew && ci == (int)count - 1 ? nc - 1 : 0, out);
}

/* Apply a change at the root and fix the tree's height. */
static int root_change(struct blk_txn *t, const char *key, size_t klen, const uint8_t *item, size_t ilen, int *found,
                       struct blk_obj *old)
{
    struct blk_root *rt = tx_root(t);
    struct res r;
    *found = 0;
    int e = change(t, rt->tree, (int)rt->height - 1, key, klen, item, ilen, &r, found, old);
    if (e) return e;
    if (r.n == 0) {
        rt->tree = tx_put_node(t, 0, BK_LEAF, 0, 0, "", 0);
        rt->height = 1;
    } else if (r.n == 1) {
        rt->tree = r.addr[0];
    } else {
        uint8_t body[2 * 10 + BLK_MAX_KEY];
        uint16_t z = 0;
        memcpy(body, &z, 2);
        memcpy(body + 2, &r.addr[0], 8);
        memcpy(body + 10, &r.klen2, 2);
        memcpy(body + 12, r.key2, r.klen2);
        memcpy(body + 12 + r.klen2, &r.addr[1], 8);
        rt->tree = tx_put_node(t, 0, BK_BRANCH, (int)rt->height, 2, body, 20u + r.klen2);
        rt->height++;
    }
    while (rt->height > 1 && rt->tree) { /* a root branch with one child gives way to it */
        const uint8_t *n = tx_node(t, rt->tree, BK_BRANCH);
        if (!n) break;
        if (((const struct blk_hdr *)n)->count != 1) break;
        uint64_t child = ld64(n + BLK_HDR + 2 + ld16(n + BLK_HDR));
        tx_free_node(t, rt->tree);
        rt->tree = child;
        rt->height--;
    }
    return rt->tree ? tx_error(t) : (tx_error(t) ? tx_error(t) : -EIO);
}

int tx_put(struct blk_txn *t, const struct blk_obj *o)
{
    uint8_t item[40 + BLK_MAX_KEY + 24 * BLK_MAX_EXT];
    if (o->klen == 0 || o->klen > BLK_MAX_KEY || o->next > BLK_MAX_EXT) return -EINVAL;
    size_t n = encode(o, item);
    int found;
    struct blk_obj *old = malloc(sizeof *old);
    if (!old) return -ENOMEM;
    int e = root_change(t, o->key, o->klen, item, n, &found, old);
    if (!e) {
        struct blk_root *rt = tx_root(t);
        if (found) {
            if (S_ISDIR(old->mode)) rt->dirs--;
            else rt->objects--;
        }
        if (S_ISDIR(o->mode)) rt->dirs++;
        else rt->objects++;
    }
    free(old);
    return e;
}

int tx_del(struct blk_txn *t, const char *key, size_t klen)
{
    int found;
    struct blk_obj *old = malloc(sizeof *old);
    if (!old) return -ENOMEM;
    int e = root_change(t, key, klen, NULL, 0, &found, old);
    if (!e && found) {
        struct blk_root *rt = tx_root(t);
        if (S_ISDIR(old->mode)) rt->dirs--;
        else rt->objects--;
    }
    free(old);
    return e ? e : found ? 0 : -ENOENT;
}

/* --- walking (check, ls) ------------------------------------------------------------------- */

static int walk(struct blk_store *s, const struct blk_root *r, uint64_t addr, int level, const struct bt_walker *w)
{
    uint8_t buf[BLK_BS] __attribute__((aligned(64)));
    char why[120];
    int kind = level ? BK_BRANCH : BK_LEAF;
    int e = blk_read_block(s, addr, buf);
    if (e) return w->bad ? w->bad(w->data, addr, strerror(-e)) : e;
    if (blk_verify(buf, kind, addr, s->sb.h.uuid, r->h.commit, why, sizeof why) < 0)
        return w->bad ? w->bad(w->data, addr, why) : -EIO;
    if (((const struct blk_hdr *)buf)->level != level)
        return w->bad ? w->bad(w->data, addr, "wrong level") : -EIO;
    if (w->node && (e = w->node(w->data, addr, kind, buf)) < 0) return e;
    const struct blk_hdr *h = (const void *)buf;
    const uint8_t *p = buf + BLK_HDR, *end = buf + BLK_BS;
    const uint8_t *prev = NULL;
    for (uint32_t i = 0; i < h->count; i++) {
        size_t sz = item_size(p, end, level == 0);
        if (!sz) return w->bad ? w->bad(w->data, addr, "item runs past the block") : -EIO;
        if (prev && (level == 0 || i > 1) &&
            kcmp(item_key(prev, level == 0), ld16(prev), item_key(p, level == 0), ld16(p)) >= 0)
            if (w->bad && (e = w->bad(w->data, addr, "keys out of order")) < 0) return e;
        if (level == 0) {
            struct blk_obj o;
            bt_decode(p, &o);
            if (w->entry && (e = w->entry(w->data, &o)) < 0) return e;
        } else if ((e = walk(s, r, ld64(p + 2 + ld16(p)), level - 1, w)) < 0) {
            return e;
        }
        prev = p;
        p += sz;
    }
    return 0;
}

int bt_walk(struct blk_store *s, const struct blk_root *r, const struct bt_walker *w)
{
    if (r->height < 1 || r->height > 8) return w->bad ? w->bad(w->data, r->tree, "impossible tree height") : -EIO;
    return walk(s, r, r->tree, (int)r->height - 1, w);
}
