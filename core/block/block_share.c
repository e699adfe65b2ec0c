/* block_share.c - a block:// file among processes: the kernel locks on its key's lock
 * file, the versions a description shared with a child or an exec'd program (or locked)
 * follows, this process's list of open files (stat of a new one, fork), and the claims
 * of new names (O_EXCL, and new files opened O_RDWR).
 * docs/block-format.md, "Locks, shared writers and the files in /dev/shm". */
#include "block.h"
#include "bmount.h"
#include "bfile.h"

#include "../efd.h"
#include "../log.h"
#include "../sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bf_pin_diff(struct bfile *f, const struct blk_ext *a, int na, const struct blk_ext *b, int nb, int type)
{
    int err = 0;
    for (int i = 0; i < na; i++) {
        uint64_t pos = a[i].pblk, end = a[i].pblk + a[i].len;
        while (pos < end) {
            uint64_t cut = end; /* where the piece from pos stops: the end, or where one of b starts or ends */
            int inside = 0;
            for (int j = 0; j < nb && !inside; j++) {
                uint64_t bs = b[j].pblk, be = bs + b[j].len;
                if (bs <= pos && pos < be) {
                    inside = 1;
                    cut = be < end ? be : end;
                } else if (bs > pos && bs < cut) {
                    cut = bs;
                }
            }
            if (!inside) {
                if (type != F_UNLCK) f->fd_locked = 1;
                int e = blk_range_lock(f->fd, pos, cut - pos, type);
                if (e && !err) err = e;
                if (e && type != F_UNLCK) return err;
            }
            pos = cut;
        }
    }
    return err;
}

/* Go on from the newest committed version of the same object, if there is one; the old
 * version's blocks stay pinned while a read without f->lock may still be reading them,
 * else they are let go. The map is rebuilt whole: only a file with nothing unwritten. */
static int follow(struct bfile *f)
{
    if (f->dirty || f->err) return 0;
    /* Nothing committed by anyone since the last look: nothing newer (the newest root,
     * kept while the change counter says so: no tree walk). */
    struct blk_root nr;
    int rooted = blk_roots(&f->m->st, &nr, NULL, NULL, NULL) == 0;
    if (rooted && f->seen_commit == nr.h.commit) return 0;
    struct blk_obj *o = malloc(sizeof *o);
    if (!o) return -ENOMEM;
    int r = bt_get(&f->m->st, f->key, f->klen, o, NULL);
    if (r >= 0 && rooted) f->seen_commit = nr.h.commit; /* (the lookup saw that root or a newer one) */
    int same = r == 1 && o->gen == f->base.gen && o->ino == f->base.ino;
    uint64_t o_ino = o->ino;
    if (r < 0 || same || r == 0) { /* unchanged, or removed: this version goes on */
        free(o);
        return r < 0 ? r : 0;
    }
    if (f->base.gen && o_ino != f->base.ino) { /* another object now has the name: ours was
                                                * renamed away or replaced (bf_commit) */
        free(o);
        return 0;
    }
    *o = f->base; /* the old version, back if the new one cannot be had */
    r = bf_lookup_pinned_from(f, NULL, o->ext, o->next); /* (its pins stay as they are) */
    if (r <= 0) {
        f->base = *o;
        free(o);
        f->seen_commit = 0; /* (not taken: look again next time) */
        return r == -EAGAIN ? 0 : r; /* a writer busy on the key: this version goes on */
    }
    if (bf_map_from_base(f) < 0) {
        free(o);
        f->seen_commit = 0;
        return -ENOMEM;
    }
    f->size = f->base.size;
    bf_ra_drop(f);
    /* The old pins go unless a read without f->lock may be using them, or a fork since the
     * descriptor was taken may share them (OFD locks belong to the description, and the
     * other process may still read that version). */
    if (!f->unlocked_reads && f->forks == bp_forks()) bf_pin_diff(f, o->ext, o->next, f->base.ext, f->base.next, F_UNLCK);
    free(o);
    return 0;
}

/* A description shared with another process (a child writing through it, a program the
 * shell exec'd with it as stdout), or one the program locks, whose last version here is
 * committed: if another process committed a newer one, go on from it, as one file shared
 * in the kernel would. While two write at once without committing (and without locks),
 * the last commit wins (docs/block-format.md). */
int bf_follow_shared(struct bfile *f)
{
    if (!f->shared && !bf_coherent(f)) return 0;
    int e = bf_see_others(f);
    return e ? e : follow(f);
}

/* A reader that got to the end of its version sees what was appended (or written) since,
 * as a reader of a local file does: tail -f, a program polling a log. Only there: a
 * reader in the middle of a file keeps the version it opened. */
int bf_follow_eof(struct bfile *f) { return f->eof_seen && !f->writable && !f->shared ? follow(f) : 0; }

void bf_list_add(struct bfile *f)
{
    struct block_mount *m = f->m;
    pthread_mutex_lock(&m->nw_lock);
    f->nw_next = m->nw;
    if (m->nw) m->nw->nw_pprev = &f->nw_next;
    f->nw_pprev = &m->nw;
    m->nw = f;
    pthread_mutex_unlock(&m->nw_lock);
}

void bf_list_remove(struct bfile *f)
{
    pthread_mutex_lock(&f->m->nw_lock);
    if (f->nw_pprev) {
        *f->nw_pprev = f->nw_next;
        if (f->nw_next) f->nw_next->nw_pprev = f->nw_pprev;
        f->nw_pprev = NULL;
    }
    pthread_mutex_unlock(&f->m->nw_lock);
}

void bf_atfork_child(struct block_mount *m)
{
    bf_ino_forked();
    for (struct bfile *f = m->nw; f; f = f->nw_next) {
        pthread_mutex_init(&f->lock, NULL);
        pthread_mutex_init(&f->wlock, NULL);
        /* The reservation left is the parent's to use: two copies writing into it would
         * hand the same blocks to two versions. The child reserves its own. */
        f->rlen = 0;
        f->npool = 0; /* so are the runs it carved from the mount's kept one */
        /* Registered buffers are the parent's rings' (the child's arena slots were all
         * freed for it): what the write buffer holds moves to a buffer of the child's;
         * what was read ahead is dropped. A buffer of the process budget is a private copy. */
        bf_ra_forget(f);
        bf_ws_forget(f);
        if (f->wb.p && !f->wb.raw) { /* an arena slot, registered (index >= 0) or not (-2) */
            struct ubuf old = f->wb, nb;
            memset(&f->wb, 0, sizeof f->wb);
            f->wb.index = -1;
            if (f->wb_len && ubuf_get(&nb, old.len, 1) == 0) {
                memcpy(nb.p, old.p, f->wb_len);
                f->wb = nb;
            } else if (f->wb_len) {
                f->wb_len = 0;
                f->err = -ENOMEM;
            }
        }
    }
}

/* A file this process created and has not committed, nor unlinked (f->lock held): the
 * files a disk would already show under their name. */
static int is_new(const struct bfile *f) { return !f->base.gen && !f->err && !f->detached; }

int bf_stat_writing(struct block_mount *m, const char *key, uint64_t ino, struct stat *st)
{
    int e = -ENOENT;
    pthread_mutex_lock(&m->nw_lock); /* before a file's lock, never after */
    for (struct bfile *f = m->nw; f && e; f = f->nw_next) {
        if (strcmp(f->key, key) != 0) continue;
        pthread_mutex_lock(&f->lock);
        int live = ino ? f->writable && f->dirty && !f->err && !f->detached && f->base.gen && f->base.ino == ino
                       : is_new(f);
        pthread_mutex_unlock(&f->lock);
        if (live) e = bf_fstat(f, st);
    }
    pthread_mutex_unlock(&m->nw_lock);
    return e;
}

int bf_chmod_new(struct block_mount *m, const char *key, mode_t mode)
{
    int e = -ENOENT;
    pthread_mutex_lock(&m->nw_lock); /* before a file's lock, never after */
    for (struct bfile *f = m->nw; f; f = f->nw_next) {
        if (strcmp(f->key, key) != 0) continue;
        pthread_mutex_lock(&f->lock);
        if (is_new(f) && f->writable) { /* its commit gives the mode */
            f->mode = mode & 07777;
            f->mode_set = 1;
            f->dirty = 1;
            e = 0;
        }
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&m->nw_lock);
    return e;
}

/* This process's files open for writing on key that still commit (not unlinked, not
 * failed), each given to fn (nw_lock held; fn takes the file's lock). The first error,
 * 0, or -ENOENT if there was none. */
static int each_writer(struct block_mount *m, const char *key, int (*fn)(struct bfile *f, const void *arg),
                       const void *arg)
{
    int e = -ENOENT;
    pthread_mutex_lock(&m->nw_lock); /* before a file's lock, never after */
    for (struct bfile *f = m->nw; f; f = f->nw_next) {
        if (strcmp(f->key, key) != 0 || !f->writable) continue;
        pthread_mutex_lock(&f->lock);
        int live = !f->detached && !f->err && !f->closing;
        pthread_mutex_unlock(&f->lock);
        if (!live) continue;
        int r = fn(f, arg);
        if (e == -ENOENT || (e == 0 && r < 0)) e = r;
    }
    pthread_mutex_unlock(&m->nw_lock);
    return e;
}

static int truncate_one(struct bfile *f, const void *arg)
{
    int e = bf_ftruncate(f, *(const off_t *)arg);
    pthread_mutex_lock(&f->lock);
    if (!e) e = bf_commit(f, bg_how(f->m));
    pthread_mutex_unlock(&f->lock);
    return e;
}

int bf_truncate_writers(struct block_mount *m, const char *key, off_t len)
{
    return each_writer(m, key, truncate_one, &len);
}

static int utimens_one(struct bfile *f, const void *arg) { return bf_futimens(f, (const struct timespec *)arg); }

int bf_utimens_writers(struct block_mount *m, const char *key, const struct timespec ts[2])
{
    return each_writer(m, key, utimens_one, ts);
}

int bf_publish_new(struct block_mount *m, const char *key)
{
    int done = 0;
    pthread_mutex_lock(&m->nw_lock); /* before a file's lock, never after */
    for (struct bfile *f = m->nw; f && !done; f = f->nw_next) {
        if (strcmp(f->key, key) != 0) continue;
        pthread_mutex_lock(&f->lock);
        if (is_new(f) && f->writable && f->dirty) done = bf_commit(f, bg_how(m)) == 0;
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&m->nw_lock);
    return done;
}

int bf_share(void *fh)
{
    struct bfile *f = fh;
    if (!f->writable) return 0;
    pthread_mutex_lock(&f->lock);
    /* What this process wrote, committed: the other process re-opens the key (a program
     * it execs) or commits its copy of this file (a forked child) and finds it there. */
    int e = f->dirty ? bf_commit(f, bg_how(f->m)) : f->err;
    if (!e) f->shared = 1;
    pthread_mutex_unlock(&f->lock);
    return e;
}

int bf_lock_fd(void *fh)
{
    struct bfile *f = fh;
    pthread_mutex_lock(&f->lock);
    if (f->lockfd < 0) {
        int fd = blk_lockfile_open(&f->m->st, f->key, f->klen, f->acc);
        if (fd < 0) slog_error("block: %s: %s: cannot open its lock file: %s", f->m->uri, f->key, strerror(-fd));
        else f->lockfd = efd_park(fd);
    }
    int r = f->lockfd >= 0 ? f->lockfd : -ENOLCK;
    /* A program that locks coordinates with other processes through the file (sqlite):
     * from now on every read, write and fstat starts from the newest committed version
     * when this one has nothing uncommitted, as it would on a file shared in the kernel. */
    if (r >= 0) f->shared = f->locked = 1;
    pthread_mutex_unlock(&f->lock);
    return r;
}

int bf_detach(struct block_mount *m, const char *key)
{
    int fresh = 0;
    pthread_mutex_lock(&m->nw_lock); /* before a file's lock, never after */
    for (struct bfile *f = m->nw; f; f = f->nw_next) {
        if (strcmp(f->key, key) != 0) continue;
        pthread_mutex_lock(&f->lock);
        fresh += is_new(f);
        f->detached = 1;
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&m->nw_lock);
    return fresh;
}

char **bf_new_names(struct block_mount *m, const char *prefix, size_t pl, int *n)
{
    char **v = NULL;
    *n = 0;
    pthread_mutex_lock(&m->nw_lock);
    for (struct bfile *f = m->nw; f; f = f->nw_next) {
        if (f->klen <= pl || memcmp(f->key, prefix, pl) != 0 || memchr(f->key + pl, '/', f->klen - pl)) continue;
        pthread_mutex_lock(&f->lock);
        int fresh = is_new(f);
        pthread_mutex_unlock(&f->lock);
        int dup = 0;
        for (int i = 0; fresh && i < *n && !dup; i++) dup = strcmp(v[i], f->key + pl) == 0;
        if (!fresh || dup) continue;
        char **nv = realloc(v, (size_t)(*n + 1) * sizeof *v);
        char *name = strdup(f->key + pl);
        if (!nv || !name) { /* a listing without them, as before they were listed */
            free(name);
            v = nv ? nv : v;
            break;
        }
        v = nv;
        v[(*n)++] = name;
    }
    pthread_mutex_unlock(&m->nw_lock);
    return v;
}

int bf_commit_new(struct block_mount *m, const char *key)
{
    int r = 0;
    pthread_mutex_lock(&m->nw_lock); /* before a file's lock, never after */
    for (struct bfile *f = m->nw; f && r == 0; f = f->nw_next) {
        if (strcmp(f->key, key) != 0) continue;
        pthread_mutex_lock(&f->lock);
        if (is_new(f) && f->writable) {
            int e = bf_commit(f, bg_how(m));
            r = e < 0 ? e : 1;
        }
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&m->nw_lock);
    return r;
}

void bf_renamed(struct block_mount *m, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    pthread_mutex_lock(&m->nw_lock);
    for (struct bfile *f = m->nw; f; f = f->nw_next) {
        if (f->klen < fl || memcmp(f->key, from, fl) != 0 || (f->klen > fl && f->key[fl] != '/')) continue;
        if (f->klen - fl + tl > BLK_MAX_KEY) continue; /* the rename itself refused such a key */
        pthread_mutex_lock(&f->lock);
        memmove(f->key + tl, f->key + fl, f->klen - fl + 1);
        memcpy(f->key, to, tl);
        f->klen = f->klen - fl + tl;
        bf_mark_moved(f); /* its dirty mark is the new name's now */
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&m->nw_lock);
}

/* --- names claimed among processes ---------------------------------------------------- */

/* O_CREAT|O_EXCL (mkstemp, lock files): of several processes creating one new name,
 * one wins. The name is claimed with an OFD write lock on f's descriptor at an offset past
 * any device (2^62 + a 61-bit hash of the key), held until close; a second claimant gets
 * EEXIST, and so does one that finds the object committed after its claim. No commit:
 * the object still appears at close, like any other. */
static off_t claim_at(const struct bfile *f)
{
    return (off_t)((1ull << 62) + (bm_key_hash(f->key, f->klen) & ((1ull << 61) - 1)));
}

/* 0: claimed, and no object has the name; 1: claimed, but the object is there (the claim
 * is held); -EAGAIN: another open file holds the claim; -errno. */
static int claim(struct bfile *f)
{
    f->fd_locked = 1;
    int e = blk_byte_lock(f->fd, F_OFD_SETLK, F_WRLCK, claim_at(f));
    if (e == -EACCES) e = -EAGAIN;
    if (e < 0) return e;
    struct blk_obj *o = malloc(sizeof *o);
    if (!o) return -ENOMEM;
    int r = bt_get(&f->m->st, f->key, f->klen, o, NULL);
    free(o);
    return r;
}

int bf_claim_name(struct bfile *f)
{
    int r = claim(f);
    return r == 1 || r == -EAGAIN ? -EEXIST : r;
}

void bf_claim_drop(struct bfile *f) { blk_byte_lock(f->fd, F_OFD_SETLK, F_UNLCK, claim_at(f)); }

/* A new file opened read-write (not O_EXCL): another process opening the same new name
 * before this one's first commit must open this one, as on a disk (two sqlite3 processes
 * opening one new -wal). The name is claimed as for O_EXCL until that commit; a process
 * that finds it claimed asks the claimant for its commit (block_coherent.c) and opens
 * what it committed. A claimant that shows no writes (an O_WRONLY one) is not waited for
 * past 50 ms: the last commit wins then, as before. 1: claimed, 0: it exists now, -errno. */
int bf_claim_shared(struct bfile *f)
{
    uint64_t t0 = 0;
    for (;;) {
        int r = claim(f);
        if (r == 0) {
            f->claimed = 1;
            return 1;
        }
        if (r == 1) bf_claim_drop(f); /* (the object is there: not ours to hold) */
        if (r != -EAGAIN) return r < 0 ? r : 0;
        struct blk_obj *o = malloc(sizeof *o); /* claimed by another: committed yet? */
        if (!o) return -ENOMEM;
        r = bt_get(&f->m->st, f->key, f->klen, o, NULL);
        free(o);
        if (r != 0) return r < 0 ? r : 0;
        if ((r = bf_see_others(f)) < 0) return r;
        uint64_t now = stats_now_ns();
        if (!t0) t0 = now;
        else if (now - t0 > 50000000ull) return 1; /* (unclaimed: this file makes it) */
        usleep(200);
    }
}
