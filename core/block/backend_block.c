/* backend_block.c - block:///DEV: an object store on a block device (or a plain file)
 * formatted by `s3shim blk format`, served through the backend vtable.
 *
 * Keys are flat as in S3; '/' shows as directories: a name is a directory if it has an
 * entry "name/" (mkdir, and the parents of every object committed, so that directories
 * stay when emptied) or if any key starts with "name/". Every change of the namespace
 * (unlink, rename, mkdir, rmdir, utimens) is one metadata commit, atomic: a rename that
 * replaces its target does it in the same commit, and a directory rename moves every key
 * below it at once. Open files are block_file.c's, directories block_dir.c's. The mount opens the device and reads
 * its superblock only; lookups read the index through the page cache as they go. */
#include "block.h"

#include "bmount.h"

#include "../config.h"
#include "../efd.h"
#include "../log.h"
#include "../sys.h"
#include "../uring.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int64_t bm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t bm_key_hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: st_ino of directories that have no entry */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return h | (uint64_t)1 << 63;
}

void bm_fill_stat(struct block_mount *m, const struct blk_obj *o, int is_dir, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_dev = m->dev;
    st->st_ino = (ino_t)(o->ino ? o->ino : bm_key_hash(o->key, o->klen));
    st->st_mode = is_dir ? (S_IFDIR | (o->mode & 07777 ? o->mode & 07777 : 0755)) : (mode_t)o->mode;
    st->st_nlink = is_dir ? 2 : 1;
    st->st_uid = sys_uid();
    st->st_gid = sys_gid();
    st->st_size = is_dir ? BLK_BS : (off_t)o->size;
    st->st_blksize = BLK_BS; /* as a filesystem's; an open file's fstat says the engine's chunk */
    uint64_t blocks = 0;
    for (int i = 0; i < o->next; i++) blocks += o->ext[i].len;
    st->st_blocks = (blkcnt_t)(is_dir ? 8 : blocks * (BLK_BS / 512));
    st->st_mtim.tv_sec = (time_t)(o->mtime_ns / 1000000000);
    st->st_mtim.tv_nsec = (long)(o->mtime_ns % 1000000000);
    st->st_atim = st->st_ctim = st->st_mtim;
}

/* The block child's detail line, made when the stats are collected (mnt_stats_list). */
static void bm_describe(struct block_mount *m)
{
    uint64_t n = atomic_load(&m->st.commits), ns = atomic_load(&m->st.commit_ns);
    pthread_mutex_lock(&m->detail_lock);
    snprintf(m->dev_stats.detail, sizeof m->dev_stats.detail,
             "O_DIRECT requests; %llu commits (mean %.2f ms), %llu metadata blocks read, %llu kept ones used, "
             "%llu lookups on kept roots",
             (unsigned long long)n, n ? (double)ns / (double)n / 1e6 : 0.0,
             (unsigned long long)atomic_load(&m->st.meta_reads), (unsigned long long)atomic_load(&m->st.nc_hits),
             (unsigned long long)atomic_load(&m->st.rc_hits));
    pthread_mutex_unlock(&m->detail_lock);
}

/* --- helpers inside a commit ----------------------------------------------------------- */

static char *join(const char *a, size_t al, const char *b, size_t bl, size_t *len)
{
    char *k = malloc(al + bl + 1);
    if (!k) return NULL;
    memcpy(k, a, al);
    memcpy(k + al, b, bl);
    k[al + bl] = 0;
    *len = al + bl;
    return k;
}

/* Is key a directory in the commit's view: 2 explicit, 1 implied by keys below, 0 not. */
static int tx_dir(struct blk_txn *t, const char *key, size_t kl, struct blk_obj *o)
{
    size_t ml;
    char *marker = join(key, kl, "/", 1, &ml);
    if (!marker) return -ENOMEM;
    int r = tx_get(t, marker, ml, o);
    if (r == 0) {
        r = tx_next(t, marker, ml, 1, o);
        r = r == 1 && o->klen > ml && memcmp(o->key, marker, ml) == 0 ? 1 : r < 0 ? r : 0;
    } else if (r == 1) {
        r = 2;
    }
    free(marker);
    return r;
}

static int put_dir(struct blk_txn *t, const char *marker, size_t ml, mode_t mode, int64_t mtime)
{
    struct blk_obj *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    struct blk_root *r = tx_root(t);
    d->klen = (uint16_t)ml;
    memcpy(d->key, marker, ml);
    d->mode = S_IFDIR | (mode & 07777);
    d->ino = r->next_ino++;
    d->mtime_ns = mtime;
    d->gen = r->h.commit + 1;
    int e = tx_put(t, d);
    free(d);
    return e;
}

int bm_ensure_parents(struct blk_txn *t, const char *key, size_t klen, mode_t mode, int touch)
{
    const char *last = memrchr(key, '/', klen);
    if (touch && !last) return bm_touch_parent(t, key, klen, mode); /* the root's mtime */
    struct blk_obj *o = malloc(sizeof *o);
    if (!o) return -ENOMEM;
    int e = 0;
    for (size_t p = 1; p < klen && !e; p++) {
        if (key[p] != '/') continue;
        int r = tx_get(t, key, p, o); /* an object where a parent directory should be */
        if (r == 1) e = -ENOTDIR;
        else if (r < 0) e = r;
        else if ((r = tx_get(t, key, p + 1, o)) == 0) e = put_dir(t, key, p + 1, mode, bm_now_ns());
        else if (r < 0) e = r;
        else if (touch && key + p == last) { /* the parent, found: its mtime is now */
            o->mtime_ns = bm_now_ns();
            e = tx_put(t, o);
        }
    }
    free(o);
    return e;
}

int bm_touch_parent(struct blk_txn *t, const char *key, size_t klen, mode_t mode)
{
    const char *slash = memrchr(key, '/', klen);
    if (!slash) { /* the mount's root: kept in the root block */
        tx_root(t)->top_mtime_ns = bm_now_ns();
        return 0;
    }
    size_t ml = (size_t)(slash - key) + 1;
    struct blk_obj *o = malloc(sizeof *o);
    if (!o) return -ENOMEM;
    int r = tx_get(t, key, ml, o);
    if (r == 1) {
        o->mtime_ns = bm_now_ns();
        r = tx_put(t, o);
    } else if (r == 0) {
        r = put_dir(t, key, ml, mode, bm_now_ns());
    }
    free(o);
    return r;
}

int bm_key_check(const char *key)
{
    size_t n = 0;
    for (const char *p = key;; p++) {
        if (*p == '/' || !*p) {
            if (n > 255) return -ENAMETOOLONG;
            n = 0;
            if (!*p) break;
        } else {
            n++;
        }
    }
    return strlen(key) > BLK_MAX_KEY - 1 ? -ENAMETOOLONG : 0;
}

/* Why key is missing, as a filesystem says it: ENOTDIR when an ancestor is an object,
 * else ENOENT. */
int bm_missing(struct block_mount *m, const char *key)
{
    struct blk_obj *o = malloc(sizeof *o);
    int e = -ENOENT;
    for (size_t p = 1; o && key[p]; p++)
        if (key[p] == '/' && bt_get(&m->st, key, p, o, NULL) == 1) {
            e = -ENOTDIR;
            break;
        }
    free(o);
    return e;
}

int bm_is_dir(struct block_mount *m, const char *key, size_t kl)
{
    struct blk_obj *o = malloc(sizeof *o);
    char *mk;
    size_t ml;
    if (!o || !(mk = join(key, kl, "/", 1, &ml))) {
        free(o);
        return -ENOMEM;
    }
    int r = bt_next(&m->st, mk, ml, 1, o); /* the first key from "key/" on */
    r = r == 1 ? o->klen >= ml && memcmp(o->key, mk, ml) == 0 : r;
    free(mk);
    free(o);
    return r;
}

/* The parent directory this thread last found or committed under, and the newest commit
 * that is known true under: a program creating files one after another in a directory
 * asks about the same parent each time, at its open (is it a directory?) and at its
 * commit (are all its ancestors directories, and what is its entry, whose mtime the
 * commit sets?). It stays true while the only commits since are this thread's own file
 * commits (bm_parent_seen), which add or replace objects and touch parents, and never
 * make or remove a directory or an object where an ancestor's name is (an open refuses
 * that name: EISDIR). The entry's fields are kept by the commit side only. */
#define PC_KEY 256
static __thread struct {
    const struct block_mount *m;
    uint64_t commit;
    size_t len; /* the parent's key, without its '/' */
    char key[PC_KEY];
    int entry; /* the fields below are its entry's */
    uint32_t mode;
    uint64_t ino, size, gen;
} pc;

void bm_parent_seen(struct block_mount *m, uint64_t base)
{
    if (pc.m == m && pc.commit == base) pc.commit = base + 1;
}

static int pc_is(const struct block_mount *m, uint64_t commit, const char *key, size_t len)
{
    return commit && pc.m == m && pc.commit == commit && pc.len == len && memcmp(pc.key, key, len) == 0;
}

static void pc_set(const struct block_mount *m, uint64_t commit, const char *key, size_t len, const struct blk_obj *entry)
{
    if (!commit || len >= PC_KEY) return;
    pc.m = m;
    pc.commit = commit;
    pc.len = len;
    memcpy(pc.key, key, len);
    pc.entry = entry != NULL;
    if (entry) {
        pc.mode = entry->mode;
        pc.ino = entry->ino;
        pc.size = entry->size;
        pc.gen = entry->gen;
    }
}

int bm_file_parents(struct block_mount *m, struct blk_txn *t, const char *key, size_t klen, int touch)
{
    const char *last = memrchr(key, '/', klen);
    mode_t mode = 0777 & ~sys_umask();
    uint64_t base = tx_root(t)->h.commit;
    size_t pl = last ? (size_t)(last - key) : 0;
    struct blk_obj *o = last ? malloc(sizeof *o) : NULL;
    if (!last || !o) {
        free(o);
        return bm_ensure_parents(t, key, klen, mode, touch);
    }
    int e;
    if (pc_is(m, base, key, pl) && pc.entry) { /* its ancestors checked, its entry known */
        e = 0;
        if (touch) {
            memset(o, 0, offsetof(struct blk_obj, ext));
            o->klen = (uint16_t)(pl + 1);
            memcpy(o->key, key, pl + 1); /* (with its '/') */
            o->mode = pc.mode;
            o->ino = pc.ino;
            o->size = pc.size;
            o->gen = pc.gen;
            o->mtime_ns = bm_now_ns();
            e = tx_put(t, o);
        }
    } else if (!(e = bm_ensure_parents(t, key, klen, mode, touch))) {
        int r = tx_get(t, key, pl + 1, o); /* the parent's entry as this commit leaves it */
        if (r == 1 && S_ISDIR(o->mode) && o->next == 0) pc_set(m, base, key, pl, o);
        else if (r < 0) e = r;
    }
    free(o);
    return e;
}

/* Can key be created: its parent a directory? 0, -ENOENT, -ENOTDIR. */
int bm_parent_ok(struct block_mount *m, const char *key)
{
    const char *slash = strrchr(key, '/');
    if (!slash) return 0;
    size_t pl = (size_t)(slash - key);
    uint64_t c = blk_kept_commit(&m->st);
    if (pc_is(m, c, key, pl)) return 0;
    if (bm_is_dir(m, key, pl) == 1) { /* one walk, the usual case */
        pc_set(m, c, key, pl, NULL); /* (found under commit c or later: kept only if it was c) */
        return 0;
    }
    char *parent = strndup(key, pl);
    if (!parent) return -ENOMEM;
    struct stat st;
    int e = bm_stat_quick(m, parent, &st);
    if (!e && !S_ISDIR(st.st_mode)) e = -ENOTDIR;
    free(parent);
    return e;
}

/* Run one change as a commit: fn(t, arg) then commit (or abort on error). */
static int in_commit(struct block_mount *m, int (*fn)(struct blk_txn *, struct block_mount *, void *), void *arg)
{
    uint64_t t0 = stats_now_ns();
    struct blk_txn *t;
    int e = tx_begin(&m->st, &t);
    if (e < 0) return e;
    e = fn(t, m, arg);
    if (e) {
        tx_abort(t);
    } else {
        uint64_t c0 = stats_now_ns();
        int durable = 0;
        e = tx_commit(t, bg_how(m), &durable);
        stats_record(&m->dev_stats, STK_SYNC, c0, 0, e != 0); /* the block child's "sync": commits */
        if (!e) bg_committed(m, durable);
    }
    stats_record(m->stats, STK_META, t0, 0, e != 0);
    return e;
}

/* --- mount ------------------------------------------------------------------------------- */

static int bm_mount(const char *where, const struct cfg *cfg, struct stats_set *stats, void **msp, char *err,
                    size_t errlen)
{
    struct block_mount *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int r = blk_open(&m->st, where, 1, err, errlen);
    if (r == -EACCES || r == -EROFS) r = blk_open(&m->st, where, 0, err, errlen); /* read-only */
    if (r < 0) {
        free(m);
        return r;
    }
    struct blk_root root;
    if (blk_newest_root(&m->st, &root, NULL) < 0) {
        snprintf(err, errlen, "%s: damaged block:// store: neither root is valid (run s3shim blk check)", where);
        blk_close(&m->st);
        free(m);
        return -EIO;
    }
    m->st.fd = efd_park(m->st.fd);
    size_t ul = strlen(where) + sizeof "block://";
    m->uri = malloc(ul);
    if (m->uri) snprintf(m->uri, ul, "block://%s", where);
    m->chunk = cfg->direct_chunk < 65536 ? 65536 : cfg->direct_chunk;
    m->chunk -= m->chunk % BLK_BS;
    m->depth = cfg->direct_depth; /* 1..16 */
    /* A program's buffer at the device's O_DIRECT alignment (a sector, from statx or
     * BLKSSZGET) is read and written straight; else, and if the probe fails, whole blocks. */
    struct stat dst;
    char why[160];
    if (sys.fstat(m->st.fd, &dst) < 0 || dio_probe(m->st.fd, &dst, &m->al, why, sizeof why) != 0 ||
        m->al.off > BLK_BS || m->al.mem > BLK_BS)
        m->al = (struct dio_align){.mem = BLK_BS, .off = BLK_BS, .source = DIO_SRC_DEFAULT};
    const uint8_t *u = m->st.sb.h.uuid;
    m->dev = makedev(0xb10cu + u[0], (unsigned)u[1] << 16 | (unsigned)u[2] << 8 | u[3]);
    m->stats = stats;
    pthread_mutex_init(&m->detail_lock, NULL);
    pthread_mutex_init(&m->nw_lock, NULL);
    bp_init(m);
    snprintf(m->dev_stats.name, sizeof m->dev_stats.name, "block");
    bm_describe(m);
    if (stats) {
        m->dev_stats.next = stats->children;
        stats->children = &m->dev_stats;
    }
    struct uring_settings us = {.threads = cfg->direct_threads, .entries = 256, .slot_size = m->chunk,
                                .slots = cfg->direct_buffers, .sqpoll = cfg->direct_sqpoll, .engine = cfg->direct_engine};
    uring_configure(&us);
    m->commit_ms = cfg->block_commit_ms;
    m->share_wait_ms = cfg->block_share_wait_ms;
    m->batch_ms = cfg->block_commit_ms > 0 && m->st.rw ? cfg->block_batch_ms : 0; /* (durable closes: none) */
    pthread_mutex_init(&m->r_lock, NULL);
    pthread_mutex_init(&m->mk_lock, NULL);
    pthread_mutex_init(&m->bt_lock, NULL);
    m->bt_tail = &m->bt;
    m->bt_fd = -1;
    m->bt_seen = UINT64_MAX;
    m->st.vr_last = bb_last;
    m->st.vr_last_arg = m;
    m->st.discard = cfg->block_discard;
    bg_start(m);
    *msp = m;
    return 0;
}

static void bm_unmount(void *ms)
{
    struct block_mount *m = ms;
    bb_unmount(m); /* (its commits before the threads stop) */
    bc_stop(m);
    bg_stop(m);
    bp_close(m);
    blk_vr_release(&m->st); /* the last process using the store: its file in /dev/shm goes */
    blk_vr_close(&m->st);
    if (m->st.fd >= 0) {
        efd_close(m->st.fd);
        m->st.fd = -1;
        pthread_mutex_destroy(&m->st.lock);
    }
    pthread_mutex_destroy(&m->detail_lock);
    pthread_mutex_destroy(&m->nw_lock);
    pthread_mutex_destroy(&m->bt_lock);
    free(m->uri);
    free(m);
}

static void bm_atfork_prepare(void *ms) { bg_atfork_prepare(ms); }
static void bm_atfork_parent(void *ms) { bg_atfork_parent(ms); }

static void bm_atfork_child(void *ms)
{
    struct block_mount *m = ms;
    pthread_mutex_init(&m->detail_lock, NULL);
    pthread_mutex_init(&m->nw_lock, NULL);
    bp_atfork_child(m);
    bg_atfork_child(m);
    bc_atfork_child(m);
    bf_map_atfork_child();
    blk_atfork_child(&m->st);
    m->st.fd = efd_park(m->st.fd);
    uring_atfork_child();
    bf_atfork_child(m); /* after the engine: buffers taken now are the child's */
    bb_atfork_child(m);
}

/* --- namespace ------------------------------------------------------------------------------ */

/* stat of a key; links: a directory's link count counted (up to 256 entries read). */
static int stat_key(struct block_mount *m, const char *key, struct stat *st, int links)
{
    uint64_t t0 = stats_now_ns();
    size_t kl = strlen(key);
    struct blk_obj *o = calloc(1, sizeof *o);
    if (!o) return -ENOMEM;
    int e = 0;
    if (kl == 0) {
        struct blk_root r;
        if ((e = blk_newest_root(&m->st, &r, NULL)) == 0) {
            o->ino = 1;
            o->mode = r.top_mode & 07777 ? r.top_mode & 07777 : 0755;
            o->mtime_ns = r.top_mtime_ns;
            bm_fill_stat(m, o, 1, st);
            if (links) st->st_nlink = bm_dir_links(m, "", 0);
        }
    } else if ((e = bm_key_check(key)) < 0) {
    } else {
        int r = bt_get(&m->st, key, kl, o, NULL);
        if (r == 1) {
            if (bf_stat_writing(m, key, o->ino, st) < 0) bm_fill_stat(m, o, 0, st);
        } else if (r == 0) {
            char *mk;
            size_t ml;
            if (!(mk = join(key, kl, "/", 1, &ml))) e = -ENOMEM;
            else if ((r = bt_get(&m->st, mk, ml, o, NULL)) == 1) {
                bm_fill_stat(m, o, 1, st);
                if (links) st->st_nlink = bm_dir_links(m, mk, ml);
            } else if (r == 0 && (r = bt_next(&m->st, mk, ml, 0, o)) == 1 && o->klen > ml && memcmp(o->key, mk, ml) == 0) {
                memset(o, 0, sizeof *o);
                memcpy(o->key, mk, ml);
                o->klen = (uint16_t)ml;
                bm_fill_stat(m, o, 1, st);
                if (links) st->st_nlink = bm_dir_links(m, mk, ml);
            } else if (r < 0 || bf_stat_writing(m, key, 0, st) < 0) {
                e = r < 0 ? r : bm_missing(m, key);
            }
            free(mk);
        } else {
            e = r;
        }
    }
    free(o);
    stats_record(m->stats, STK_STAT, t0, 0, e != 0 && e != -ENOENT);
    return e;
}

static int bm_stat(void *ms, const char *key, struct stat *st, int nofollow)
{
    int be = bb_enter(ms, key, BB_KEY);
    if (be) return be;
    (void)nofollow;
    return stat_key(ms, key, st, 1);
}

int bm_stat_quick(struct block_mount *m, const char *key, struct stat *st) { return stat_key(m, key, st, 0); }

static int bm_access(void *ms, const char *key, int mode, int flags)
{
    int be = bb_enter(ms, key, BB_KEY);
    if (be) return be;
    (void)flags;
    struct stat st;
    int e = stat_key(ms, key, &st, 0);
    if (e) return e;
    if ((mode & W_OK) && !((struct block_mount *)ms)->st.rw) return -EROFS;
    if ((mode & X_OK) && S_ISREG(st.st_mode) && !(st.st_mode & 0111)) return -EACCES;
    return 0;
}

struct ns_arg {
    const char *from, *to;
    unsigned flags;
    mode_t mode;
    const struct timespec *ts;
};

static int do_unlink(struct blk_txn *t, struct block_mount *m, void *arg)
{
    const char *key = ((struct ns_arg *)arg)->from;
    size_t kl = strlen(key);
    struct blk_obj *o = malloc(sizeof *o);
    if (!o) return -ENOMEM;
    int r = tx_get(t, key, kl, o);
    if (r == 0) r = tx_dir(t, key, kl, o) > 0 ? -EISDIR : -ENOENT;
    if (r == 1) {
        r = tx_del(t, key, kl);
        for (int i = 0; !r && i < o->next; i++) r = tx_free_data(t, o->ext[i].pblk, o->ext[i].len);
        if (!r) r = bm_touch_parent(t, key, kl, 0777 & ~sys_umask());
    }
    free(o);
    return r;
}

static int bm_unlink(void *ms, const char *key)
{
    int be = bb_enter(ms, key, BB_ALL);
    if (be) return be;
    if (!*key) return -EISDIR;
    struct ns_arg a = {.from = key};
    int e = in_commit(ms, do_unlink, &a);
    if (e == 0 || e == -ENOENT) {
        int fresh = bf_detach(ms, key);
        if (e == -ENOENT && fresh) e = 0; /* created here, not committed yet: gone with its last close */
    }
    return e;
}

/* Move one entry to a new key (its data stays where it is). */
static int move_entry(struct blk_txn *t, struct blk_obj *o, const char *to, size_t tl)
{
    if (tl > BLK_MAX_KEY) return -ENAMETOOLONG;
    char old[BLK_MAX_KEY + 1];
    size_t ol = o->klen;
    memcpy(old, o->key, ol);
    int e = tx_del(t, old, ol);
    if (e) return e;
    memcpy(o->key, to, tl);
    o->key[tl] = 0;
    o->klen = (uint16_t)tl;
    return tx_put(t, o);
}

static int do_rename(struct blk_txn *t, struct block_mount *m, void *arg)
{
    struct ns_arg *a = arg;
    size_t fl = strlen(a->from), tl = strlen(a->to);
    struct blk_obj *o = malloc(2 * sizeof *o), *d = o + 1;
    if (!o) return -ENOMEM;
    int e = 0, src = tx_get(t, a->from, fl, o), dfile = 0, ddir = 0;
    if (src == 0) src = tx_dir(t, a->from, fl, d) > 0 ? 2 : 0;
    if (src < 0) e = src;
    else if (src == 0) e = -ENOENT;
    if (!e) dfile = tx_get(t, a->to, tl, d);
    if (!e && dfile == 0) ddir = tx_dir(t, a->to, tl, d);
    if (!e && (dfile < 0 || ddir < 0)) e = dfile < 0 ? dfile : ddir;
    if (!e && (a->flags & RENAME_NOREPLACE) && (dfile || ddir)) e = -EEXIST;
    if (!e && src == 1) { /* an object */
        if (ddir) e = -EISDIR;
        if (!e && dfile == 1) { /* replaced in the same commit: d holds it */
            for (int i = 0; !e && i < d->next; i++) e = tx_free_data(t, d->ext[i].pblk, d->ext[i].len);
            if (!e) e = tx_del(t, a->to, tl);
        }
        if (!e) e = bm_ensure_parents(t, a->to, tl, 0777 & ~sys_umask(), 0);
        if (!e) e = move_entry(t, o, a->to, tl);
    } else if (!e && src == 2) { /* a directory: every key below it */
        if (dfile) e = -ENOTDIR;
        else if (ddir == 1) e = -ENOTEMPTY;
        else if (ddir == 2) { /* an explicit directory: only its own entry may be there */
            char *dm;
            size_t dl;
            if (!(dm = join(a->to, tl, "/", 1, &dl))) e = -ENOMEM;
            int r = e ? 0 : tx_next(t, dm, dl, 0, d);
            if (!e && r == 1 && d->klen > dl && memcmp(d->key, dm, dl) == 0) e = -ENOTEMPTY;
            if (!e) e = tx_del(t, dm, dl);
            free(dm);
        }
        if (!e) e = bm_ensure_parents(t, a->to, tl, 0777 & ~sys_umask(), 0);
        char *pf = NULL;
        size_t pl = 0;
        if (!e && !(pf = join(a->from, fl, "/", 1, &pl))) e = -ENOMEM;
        for (int incl = 1; !e;) {
            int r = tx_next(t, pf, pl, incl, o);
            if (r < 0) e = r;
            if (r != 1 || o->klen < pl || memcmp(o->key, pf, pl) != 0) break;
            char nk[BLK_MAX_KEY + 2];
            size_t nl = tl + 1 + (o->klen - pl);
            if (nl > BLK_MAX_KEY) {
                e = -ENAMETOOLONG;
                break;
            }
            memcpy(nk, a->to, tl);
            nk[tl] = '/';
            memcpy(nk + tl + 1, o->key + pl, o->klen - pl);
            e = move_entry(t, o, nk, nl); /* the next search starts again at the prefix */
        }
        free(pf);
    }
    if (!e) e = bm_touch_parent(t, a->from, fl, 0777 & ~sys_umask());
    if (!e) e = bm_touch_parent(t, a->to, tl, 0777 & ~sys_umask());
    free(o);
    return e;
}

static int bm_rename(void *ms, const char *from, const char *to, unsigned flags)
{
    int be = bb_enter(ms, from, BB_ALL);
    if (be) return be;
    if (flags & ~(unsigned)RENAME_NOREPLACE) return -EINVAL; /* RENAME_EXCHANGE, WHITEOUT: not supported */
    if (!*from || !*to) return -EBUSY;
    size_t fl = strlen(from);
    if (strcmp(from, to) == 0) return 0;
    if (strncmp(to, from, fl) == 0 && to[fl] == '/') return -EINVAL; /* into itself */
    int e = bm_key_check(to);
    if (!e) e = bm_parent_ok(ms, to);
    if (e) return e == -ENOENT ? -ENOENT : e;
    struct ns_arg a = {.from = from, .to = to, .flags = flags};
    e = in_commit(ms, do_rename, &a);
    if (e == -ENOENT) { /* perhaps a file this process is still writing: committed, then moved */
        int fresh = bf_commit_new(ms, from);
        e = fresh > 0 ? in_commit(ms, do_rename, &a) : fresh < 0 ? fresh : -ENOENT;
    }
    if (e == 0) bf_renamed(ms, from, to);
    return e;
}

static int do_mkdir(struct blk_txn *t, struct block_mount *m, void *arg)
{
    struct ns_arg *a = arg;
    size_t kl = strlen(a->from), ml;
    if (kl + 1 > BLK_MAX_KEY) return -ENAMETOOLONG;
    struct blk_obj *o = malloc(sizeof *o);
    if (!o) return -ENOMEM;
    int e = tx_get(t, a->from, kl, o);
    if (e == 0) e = tx_dir(t, a->from, kl, o);
    if (e > 0) e = -EEXIST;
    if (!e) e = bm_touch_parent(t, a->from, kl, 0777 & ~sys_umask());
    char *mk = e ? NULL : join(a->from, kl, "/", 1, &ml);
    if (!e && !mk) e = -ENOMEM;
    if (!e) e = put_dir(t, mk, ml, a->mode & ~sys_umask(), bm_now_ns());
    free(mk);
    free(o);
    return e;
}

static int bm_mkdir(void *ms, const char *key, mode_t mode)
{
    int be = bb_enter(ms, key, BB_ALL);
    if (be) return be;
    if (!*key) return -EEXIST;
    int e = bm_key_check(key);
    if (!e) {
        struct stat st;
        e = bm_stat_quick(ms, key, &st) == 0 ? -EEXIST : bm_parent_ok(ms, key);
    }
    if (e) return e;
    struct ns_arg a = {.from = key, .mode = mode};
    return in_commit(ms, do_mkdir, &a);
}

static int do_rmdir(struct blk_txn *t, struct block_mount *m, void *arg)
{
    const char *key = ((struct ns_arg *)arg)->from;
    size_t kl = strlen(key), ml;
    struct blk_obj *o = malloc(sizeof *o);
    char *mk = join(key, kl, "/", 1, &ml);
    int e = !o || !mk ? -ENOMEM : tx_get(t, key, kl, o);
    if (e == 1) e = -ENOTDIR;
    int d = e ? 0 : tx_dir(t, key, kl, o);
    if (!e && d < 0) e = d;
    if (!e && d == 0) e = -ENOENT;
    if (!e && d == 1) e = -ENOTEMPTY;
    if (!e) {
        int r = tx_next(t, mk, ml, 0, o);
        if (r < 0) e = r;
        else if (r == 1 && o->klen > ml && memcmp(o->key, mk, ml) == 0) e = -ENOTEMPTY;
        else e = tx_del(t, mk, ml);
    }
    if (!e) e = bm_touch_parent(t, key, kl, 0777 & ~sys_umask());
    free(mk);
    free(o);
    return e;
}

static int bm_rmdir(void *ms, const char *key)
{
    int be = bb_enter(ms, key, BB_ALL);
    if (be) return be;
    if (!*key) return -EBUSY;
    struct ns_arg a = {.from = key};
    return in_commit(ms, do_rmdir, &a);
}

static int bm_truncate(void *ms, const char *key, off_t len)
{
    int be = bb_enter(ms, key, BB_ALL);
    if (be) return be;
    if (len < 0) return -EINVAL;
    int w = bf_truncate_writers(ms, key, len); /* the file this process is writing */
    if (w != -ENOENT) return w;
    void *fh;
    int e = bf_open(ms, key, O_WRONLY, 0, &fh);
    if (e) return e;
    e = bf_ftruncate(fh, len);
    int c = bf_close(fh);
    return e ? e : c;
}

static int do_utimens(struct blk_txn *t, struct block_mount *m, void *arg)
{
    struct ns_arg *a = arg;
    size_t kl = strlen(a->from), ml;
    const struct timespec *ts = a->ts ? &a->ts[1] : NULL;
    if (ts && ts->tv_nsec == UTIME_OMIT) return 0;
    int64_t mt = !ts || ts->tv_nsec == UTIME_NOW ? bm_now_ns() : (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
    struct blk_obj *o = malloc(sizeof *o);
    char *mk = join(a->from, kl, "/", 1, &ml);
    int e = !o || !mk ? -ENOMEM : tx_get(t, a->from, kl, o);
    if (e == 0) {
        e = tx_dir(t, a->from, kl, o);
        if (e == 2) e = tx_get(t, mk, ml, o);
        else if (e == 1) { /* implied: give it an entry to hold the time */
            e = put_dir(t, mk, ml, 0777 & ~sys_umask(), mt);
            goto out;
        } else if (e == 0) {
            e = -ENOENT;
        }
    }
    if (e == 1) {
        o->mtime_ns = mt;
        e = tx_put(t, o);
    }
out:
    free(mk);
    free(o);
    return e;
}

static int do_top(struct blk_txn *t, struct block_mount *m, void *arg)
{
    (void)m;
    struct ns_arg *a = arg;
    struct blk_root *r = tx_root(t);
    if (a->ts) {
        const struct timespec *ts = &a->ts[1];
        if (ts->tv_nsec != UTIME_OMIT)
            r->top_mtime_ns = ts->tv_nsec == UTIME_NOW ? bm_now_ns() : (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
    } else if (a->flags) {
        r->top_mtime_ns = bm_now_ns();
    } else {
        r->top_mode = a->mode & 07777;
    }
    return 0;
}

static int bm_utimens(void *ms, const char *key, const struct timespec ts[2], int nofollow)
{
    int be = bb_enter(ms, key, BB_ALL);
    if (be) return be;
    (void)nofollow;
    if (!*key) { /* the mount's root */
        struct ns_arg a = {.from = key, .ts = ts, .flags = !ts};
        return in_commit(ms, do_top, &a);
    }
    struct ns_arg a = {.from = key, .ts = ts};
    int e = in_commit(ms, do_utimens, &a);
    /* Files this process writes there: their commits give this time (a new one, not
     * committed yet, has only theirs). */
    int w = bf_utimens_writers(ms, key, ts);
    return e == -ENOENT && w != -ENOENT ? w : e;
}

static int do_chmod(struct blk_txn *t, struct block_mount *m, void *arg)
{
    struct ns_arg *a = arg;
    size_t kl = strlen(a->from), ml;
    struct blk_obj *o = malloc(sizeof *o);
    char *mk = join(a->from, kl, "/", 1, &ml);
    int e = !o || !mk ? -ENOMEM : tx_get(t, a->from, kl, o);
    if (e == 0) {
        e = tx_dir(t, a->from, kl, o);
        if (e == 2) e = tx_get(t, mk, ml, o);
        else if (e == 1) e = put_dir(t, mk, ml, a->mode, bm_now_ns()) == 0 ? 0 : -EIO; /* implied: an entry to hold it */
        else if (e == 0) e = -ENOENT;
        if (e == 0) goto out;
    }
    if (e == 1) {
        o->mode = (o->mode & S_IFMT) | (a->mode & 07777);
        e = tx_put(t, o);
    }
out:
    (void)m;
    free(mk);
    free(o);
    return e;
}

int bm_chmod(void *ms, const char *key, mode_t mode)
{
    int be = bb_enter(ms, key, BB_ALL);
    if (be) return be;
    if (!*key) { /* the mount's root: kept in the root block */
        struct ns_arg a = {.from = key, .mode = mode};
        return in_commit(ms, do_top, &a);
    }
    struct ns_arg a = {.from = key, .mode = mode};
    int e = in_commit(ms, do_chmod, &a);
    /* A file this process created and has not committed yet (git's config.lock). */
    return e == -ENOENT && bf_chmod_new(ms, key, mode) == 0 ? 0 : e;
}

static int bm_statvfs(void *ms, const char *key, struct statvfs *sv)
{
    int be = bb_enter(ms, key, BB_ALL);
    if (be) return be;
    (void)key;
    struct block_mount *m = ms;
    struct blk_root r;
    uint64_t fr;
    int e = blk_free_blocks(&m->st, &fr, &r);
    if (e) return e;
    memset(sv, 0, sizeof *sv);
    sv->f_bsize = sv->f_frsize = BLK_BS;
    sv->f_blocks = m->st.sb.data_end - m->st.sb.data_start;
    sv->f_bfree = sv->f_bavail = fr;
    uint64_t zone = m->st.sb.data_start - m->st.sb.meta_start, mused = r.meta_used > 4 ? r.meta_used - 4 : 0;
    uint64_t meta_free = zone > mused ? zone - mused : 0; /* the superblocks and roots are not in the zone */
    sv->f_files = r.objects + r.dirs + meta_free * 20; /* ~20 entries per free index block */
    sv->f_ffree = sv->f_favail = meta_free * 20;
    sv->f_fsid = (unsigned long)m->dev;
    sv->f_flag = m->st.rw ? 0 : ST_RDONLY;
    sv->f_namemax = 255;
    return 0;
}

static void bm_describe_ms(void *ms) { bm_describe(ms); }

const struct backend_ops bk_block_ops = {
    .scheme = "block",
    .mount = bm_mount,
    .unmount = bm_unmount,
    .atfork_prepare = bm_atfork_prepare,
    .atfork_parent = bm_atfork_parent,
    .atfork_child = bm_atfork_child,
    .describe = bm_describe_ms,
    .open = bf_open,
    .pread = bf_pread,
    .pwrite = bf_pwrite,
    .append = bf_append,
    .fsync = bf_fsync,
    .ftruncate = bf_ftruncate,
    .fallocate = bf_fallocate,
    .fstat = bf_fstat,
    .futimens = bf_futimens,
    .close = bf_close,
    .share = bf_share,
    .lock_fd = bf_lock_fd,
    .stat = bm_stat,
    .access = bm_access,
    .unlink = bm_unlink,
    .rename = bm_rename,
    .mkdir = bm_mkdir,
    .rmdir = bm_rmdir,
    .truncate = bm_truncate,
    .utimens = bm_utimens,
    .statvfs = bm_statvfs,
    .opendir = bd_opendir,
    .readdir = bd_readdir,
    .closedir = bd_closedir,
    .chmod = bm_chmod,
    .fchmod = bf_fchmod,
    .local_map = bf_local_map,
};
