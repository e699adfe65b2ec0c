/* block_dir.c - directories of a block:// mount: keys are flat, '/' delimits.
 *
 * A listing walks the keys under "dir/" in order, one index lookup per entry, never
 * holding more than one entry: a name with a '/' after it is a subdirectory, listed once,
 * and the walk jumps over everything below it ("name0" follows every "name/..."). "."
 * and ".." come first, as the other object stores give them. Files this process has
 * created and not committed yet come last: a disk lists a file from its creation. The link count of a
 * directory (2 + subdirectories) is counted the same way, up to a limit. */
#include "block.h"

#include "bmount.h"

#include "../log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A directory's link count as a filesystem gives it: 2 + its subdirectories. Counted
 * over at most 256 entries (each subdirectory is skipped whole); beyond that 1, which
 * find and friends read as "unknown". */
nlink_t bm_dir_links(struct block_mount *m, const char *prefix, size_t pl)
{
    struct blk_obj *o = malloc(sizeof *o);
    char after[BLK_MAX_KEY + 2];
    if (!o || pl > BLK_MAX_KEY) {
        free(o);
        return 1;
    }
    memcpy(after, prefix, pl);
    size_t al = pl;
    int incl = 1;
    nlink_t n = 2;
    struct blk_root r = {0}; /* one root for the whole count */
    for (int seen = 0;; seen++) {
        if (seen >= 256) {
            n = 1;
            break;
        }
        if (bt_next_at(&m->st, &r, after, al, incl, o) != 1 || o->klen < pl || memcmp(o->key, prefix, pl) != 0) break;
        const char *rest = o->key + pl, *slash = memchr(rest, '/', o->klen - pl);
        if (slash) {
            size_t nl = (size_t)(slash - rest);
            if (nl) n++;
            memcpy(after, o->key, pl + nl);
            after[pl + nl] = '/' + 1;
            al = pl + nl + 1;
            incl = 1;
        } else {
            memcpy(after, o->key, o->klen);
            al = o->klen;
            incl = 0;
        }
    }
    free(o);
    return n;
}

struct bdir {
    struct block_mount *m;
    char *prefix; /* "key/" or "" */
    size_t pl;
    char after[BLK_MAX_KEY + 2]; /* where the next search starts */
    size_t al;
    int incl, dots, done;
    uint64_t ino;
    char **fresh; /* bf_new_names at opendir */
    int nfresh, ifresh;
};

int bd_opendir(void *ms, const char *key, void **dhp)
{
    int be = bb_enter(ms, key, BB_ALL);
    if (be) return be;
    struct stat st;
    int e = bm_stat_quick(ms, key, &st);
    if (e) return e;
    if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    struct bdir *d = calloc(1, sizeof *d);
    size_t kl = strlen(key);
    if (!d || !(d->prefix = malloc(kl + 2))) {
        free(d);
        return -ENOMEM;
    }
    d->m = ms;
    snprintf(d->prefix, kl + 2, "%s%s", key, kl ? "/" : "");
    d->pl = strlen(d->prefix);
    memcpy(d->after, d->prefix, d->pl);
    d->al = d->pl;
    d->incl = 1;
    d->ino = st.st_ino;
    d->fresh = bf_new_names(ms, d->prefix, d->pl, &d->nfresh);
    *dhp = d;
    return 0;
}

/* The next name of d->fresh still uncommitted (one committed meanwhile was listed, or
 * will be, by the walk): 1 with ent filled, 0 for one to skip. */
static int next_fresh(struct bdir *d, struct blk_obj *o, struct bk_dirent *ent)
{
    const char *name = d->fresh[d->ifresh++];
    size_t nl = strlen(name);
    char key[BLK_MAX_KEY + 1];
    struct stat st;
    if (d->pl + nl > BLK_MAX_KEY || nl >= sizeof ent->name) return 0;
    memcpy(key, d->prefix, d->pl);
    memcpy(key + d->pl, name, nl + 1);
    if (bt_get(&d->m->st, key, d->pl + nl, o, NULL) != 0 || bf_stat_writing(d->m, key, 0, &st) < 0) return 0;
    memcpy(ent->name, name, nl + 1);
    ent->type = DT_REG;
    ent->ino = st.st_ino;
    return 1;
}

int bd_readdir(void *dh, struct bk_dirent *ent)
{
    struct bdir *d = dh;
    if (d->dots < 2) {
        snprintf(ent->name, sizeof ent->name, "%s", d->dots ? ".." : ".");
        ent->type = DT_DIR;
        ent->ino = d->ino + (uint64_t)d->dots;
        d->dots++;
        return 1;
    }
    struct blk_obj *o = malloc(sizeof *o);
    if (!o) return -ENOMEM;
    int r = 0;
    while (!d->done || d->ifresh < d->nfresh) {
        if (d->done) {
            r = next_fresh(d, o, ent);
            if (r) break;
            continue;
        }
        r = bt_next(&d->m->st, d->after, d->al, d->incl, o);
        if (r <= 0 || o->klen < d->pl || memcmp(o->key, d->prefix, d->pl) != 0) {
            d->done = 1;
            if (r < 0) break;
            r = 0;
            continue; /* on to d->fresh */
        }
        const char *rest = o->key + d->pl;
        size_t rl = o->klen - d->pl;
        const char *slash = memchr(rest, '/', rl);
        size_t nl = slash ? (size_t)(slash - rest) : rl;
        if (slash) { /* a directory: skip every key below it ("name0" follows "name/...") */
            memcpy(d->after, o->key, d->pl + nl);
            d->after[d->pl + nl] = '/' + 1;
            d->al = d->pl + nl + 1;
            d->incl = 1;
        } else {
            memcpy(d->after, o->key, o->klen);
            d->al = o->klen;
            d->incl = 0;
        }
        if (nl == 0) continue; /* this directory's own entry */
        if (nl >= sizeof ent->name) {
            slog_warn("block: %s: a name of %zu bytes under '%s' is not listed (readdir's limit is 255)", d->m->uri,
                      nl, d->prefix);
            continue;
        }
        memcpy(ent->name, rest, nl);
        ent->name[nl] = 0;
        ent->type = slash ? DT_DIR : DT_REG;
        ent->ino = slash ? bm_key_hash(o->key, d->pl + nl + 1) : o->ino;
        if (slash && o->klen == d->pl + nl + 1) ent->ino = o->ino; /* its own entry */
        r = 1;
        break;
    }
    free(o);
    return r;
}

void bd_closedir(void *dh)
{
    struct bdir *d = dh;
    for (int i = 0; i < d->nfresh; i++) free(d->fresh[i]);
    free(d->fresh);
    free(d->prefix);
    free(d);
}

