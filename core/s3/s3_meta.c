/* s3_meta.c - what the S3 wing knows about keys: mount keys resolved to bucket and object
 * key, stat answers built from HEAD and listings, and a short-lived cache of them
 * (answers for missing keys too), shared by the namespace (backend_s3.c) and open files
 * (s3_file.c). Below both of them: it calls only the client.
 *
 * Coherence: every cached answer also records its key's generation (s3_gen.h) as read
 * before the request that produced it. Any process of the run that changes the key, or
 * anything below it, bumps that generation once the server has answered, so the answer
 * is dropped at its next lookup in every process of the run; unchanged keys are served
 * from the cache for the whole TTL. Only the bucket itself ("" key: it exists or not,
 * whatever its objects do) is cached by TTL alone.
 *
 * Known directories: a directory this process made (mkdir found nothing below it) is
 * known whole until its entry's TTL ends: a child without an entry of its own does not
 * exist, and is answered without a HEAD (cp -r, tar x, rsync and git into a new directory
 * asked the server once per file they then created). The process's own changes below it
 * keep it known (each one fills the child's entry); anyone else's change below it, seen
 * through its generation, or a forgotten child end it. When its TTL ends, one listing
 * page makes it known again (learn_parent): a long cp -r into one directory would
 * otherwise go back to a HEAD per file. A directory is also learnt, listed whole, when a
 * name in it is found missing: cp of many files into an existing directory asks about
 * the first one only. */
#include "../sys.h"
#include "../log.h"
#include "../stats.h"
#include "s3_gen.h"
#include "s3_mount.h"
#include "s3_xml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uthash.h>

struct s3_meta {
    char *id; /* "bucket/key" */
    int exists;
    struct stat st;
    char etag[128];
    uint64_t expires;
    uint64_t gen;  /* the key's generation before the answer was asked for */
    unsigned slot; /* where that generation is (s3_gen_slot) */
    uint64_t whole_until; /* a directory known whole until then (0: not known) */
    uint64_t nolist_until; /* a directory larger than a listing page: not listed to learn it */
    UT_hash_handle hh;
};


/* --- keys ------------------------------------------------------------------------------ */

/* S3 bucket naming rules (3-63 of a-z 0-9 . -, starting and ending alphanumeric);
 * underscores and capitals are let through for older and compatible servers. */
static int bucket_name_ok(const char *b, size_t n)
{
    if (n < 3 || n > 63) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && ((c != '.' && c != '-' && c != '_') || i == 0 || i == n - 1)) return 0;
    }
    return 1;
}

int s3_path_resolve(struct s3_mount *m, const char *mkey, struct s3_path *p)
{
    memset(p, 0, sizeof *p);
    const char *rest = mkey;
    if (m->bucket[0]) {
        snprintf(p->bucket, sizeof p->bucket, "%s", m->bucket);
    } else { /* s3://: the first component is the bucket */
        if (!mkey[0]) {
            p->is_service = p->is_root = 1;
            p->key = strdup("");
            return p->key ? 0 : -ENOMEM;
        }
        const char *sl = strchr(mkey, '/');
        size_t bl = sl ? (size_t)(sl - mkey) : strlen(mkey);
        if (!bucket_name_ok(mkey, bl)) { /* cannot exist: ask nobody */
            p->bad_bucket = 1;
            slog_debug("s3: '%.*s' cannot be a bucket name: no such file", (int)(bl > 80 ? 80 : bl), mkey);
            return -ENOENT;
        }
        memcpy(p->bucket, mkey, bl);
        rest = sl ? sl + 1 : "";
    }
    size_t n = strlen(m->prefix) + strlen(rest) + 1;
    if (n > 1025) return -ENAMETOOLONG; /* S3 keys are at most 1024 bytes */
    for (const char *c = rest; *c;) { /* a name no directory listing can give back (NAME_MAX) */
        size_t cl = strcspn(c, "/");
        if (cl > 255) return -ENAMETOOLONG;
        c += cl + (c[cl] == '/');
    }
    p->key = malloc(n);
    if (!p->key) return -ENOMEM;
    snprintf(p->key, n, "%s%s", m->prefix, rest);
    if (!rest[0] && m->prefix[0]) p->key[strlen(p->key) - 1] = '\0'; /* the prefix itself, as a directory */
    p->is_root = !rest[0];
    return 0;
}

void s3_path_why_enoent(const struct s3_path *p, const char *mkey, const char *what)
{
    if (!p->bad_bucket) return;
    size_t bl = strcspn(mkey, "/");
    slog_error("s3: cannot %s '%s': '%.*s' is not a bucket name (3 to 63 letters, digits, '.', '-' or '_', "
               "starting and ending with a letter or digit): ENOENT",
               what, mkey, (int)(bl > 80 ? 80 : bl), mkey);
}

void s3_path_free(struct s3_path *p)
{
    free(p->key);
    p->key = NULL;
}

uint64_t s3_key_hash(const char *bucket, const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *s = bucket; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ '/') * 1099511628211ull;
    for (const char *s = key; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1;
}

void s3_fill_stat(struct s3_mount *m, struct stat *st, const char *bucket, const char *key, int64_t size,
                  time_t mtime, int is_dir)
{
    memset(st, 0, sizeof *st);
    st->st_dev = m->dev;
    st->st_ino = s3_key_hash(bucket, key);
    st->st_mode = is_dir ? S_IFDIR | 0755 : S_IFREG | 0644;
    st->st_nlink = is_dir ? 2 : 1;
    st->st_uid = sys_uid();
    st->st_gid = sys_gid();
    st->st_size = size < 0 ? 0 : size;
    st->st_blksize = (blksize_t)m->part_size;
    st->st_blocks = (st->st_size + 511) / 512;
    st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = is_dir && !mtime ? m->mounted_at : mtime;
}

/* --- metadata cache ------------------------------------------------------------------------ */

static char *meta_id(const char *bucket, const char *key)
{
    size_t n = strlen(bucket) + strlen(key) + 2;
    char *id = malloc(n);
    if (id) snprintf(id, n, "%s/%s", bucket, key);
    return id;
}

uint64_t s3_meta_gen(const char *bucket, const char *key) { return s3_gen_get(bucket, key); }

/* The entry of id if it is current: not expired, and its key's generation unchanged
 * (the bucket's, key "", by TTL alone). meta_lock held. */
static struct s3_meta *meta_live(struct s3_mount *m, const char *id, int is_bucket, uint64_t now)
{
    struct s3_meta *x;
    HASH_FIND_STR(m->meta, id, x);
    return x && x->expires > now && (is_bucket || s3_gen_at(x->slot) == x->gen) ? x : NULL;
}

/* Length of the directory above key ("a/b" in "a/b/c"); 0 for a key at the top or one
 * that ends in '/'. */
static size_t parent_len(const char *key)
{
    const char *sl = strrchr(key, '/');
    return sl && sl > key && sl[1] ? (size_t)(sl - key) : 0;
}

/* Directory bucket/dir, generation gen, known whole until `until` (0: until its entry
 * expires), if the entry is still the one of that generation. */
static void set_whole(struct s3_mount *m, const char *bucket, const char *dir, uint64_t gen, uint64_t until)
{
    char *id = meta_id(bucket, dir);
    if (!id) return;
    pthread_mutex_lock(&m->meta_lock);
    struct s3_meta *x = meta_live(m, id, 0, stats_now_ns());
    if (x && x->exists && S_ISDIR(x->st.st_mode) && x->gen == gen) x->whole_until = until ? until : x->expires;
    pthread_mutex_unlock(&m->meta_lock);
    free(id);
}

void s3_meta_made_dir(struct s3_mount *m, const char *bucket, const char *key, uint64_t gen)
{
    if (m->stat_ttl_ns && key[0]) set_whole(m, bucket, key, gen, 0);
}

void s3_meta_fill(struct s3_mount *m, const char *bucket, const char *key, const struct stat *st, const char *etag,
                  uint64_t gen)
{
    if (!m->stat_ttl_ns) return;
    char *id = meta_id(bucket, key);
    if (!id) return;
    unsigned slot = s3_gen_slot(bucket, key);
    pthread_mutex_lock(&m->meta_lock);
    struct s3_meta *x;
    HASH_FIND_STR(m->meta, id, x);
    if (!x && (x = calloc(1, sizeof *x))) {
        x->id = id;
        id = NULL;
        HASH_ADD_KEYPTR(hh, m->meta, x->id, strlen(x->id), x);
    }
    if (x) {
        x->exists = st != NULL;
        if (st) x->st = *st;
        snprintf(x->etag, sizeof x->etag, "%s", etag ? etag : "");
        x->expires = stats_now_ns() + m->stat_ttl_ns;
        x->gen = gen;
        x->slot = slot;
        x->whole_until = 0;
    }
    pthread_mutex_unlock(&m->meta_lock);
    free(id);
}

void s3_meta_put(struct s3_mount *m, const char *bucket, const char *key, const struct stat *st, const char *etag)
{
    s3_meta_fill(m, bucket, key, st, etag, s3_gen_get(bucket, key));
}

void s3_meta_fill_listed(struct s3_mount *m, const char *bucket, const char *key, const struct stat *st,
                         const char *etag, const char *dir, uint64_t dir_gen)
{
    /* The key's generation first, the directory's second: a change bumps the directory
     * before the key, so a key bumped after the listing was served is either seen here
     * through its directory (nothing cached) or bumped again later than this read. */
    uint64_t g = s3_gen_get(bucket, key);
    if (s3_gen_get(bucket, dir) == dir_gen) s3_meta_fill(m, bucket, key, st, etag, g);
}

void s3_meta_changed(struct s3_mount *m, const char *bucket, const char *key, uint64_t gen0, const struct stat *st,
                     const char *etag)
{
    /* The directories this process saw the key in stay directories for it, as real ones
     * would, even when the change emptied them and S3 forgets the prefixes (rm -r and mv
     * of a tree remove the files, then rmdir the directories bottom up). The run's other
     * processes ask the server again. A directory known whole stays so when this change
     * was the only one below it since (its generation moved by exactly this bump) and the
     * path below it is still known: the key's own entry, or the next directory's. */
    size_t n = strlen(key), nkeep = 0;
    char *dir = strdup(key);
    struct kept {
        size_t len;
        struct stat st;
        uint64_t gen, whole_until;
    } *kept = NULL;
    uint64_t now = stats_now_ns();
    for (size_t i = n; dir && i-- > 1;) {
        if (dir[i] != '/') continue;
        dir[i] = '\0';
        char *id = meta_id(bucket, dir);
        if (!id) break;
        struct kept k = {i, {0}, 0, 0};
        pthread_mutex_lock(&m->meta_lock);
        struct s3_meta *x = meta_live(m, id, 0, now);
        int is_dir = x && x->exists && S_ISDIR(x->st.st_mode);
        if (is_dir) k = (struct kept){i, x->st, x->gen, x->whole_until}; /* (also once ended: learn_parent) */
        pthread_mutex_unlock(&m->meta_lock);
        free(id);
        if (!is_dir) continue;
        struct kept *v = realloc(kept, (nkeep + 1) * sizeof *kept);
        if (!v) break;
        kept = v;
        kept[nkeep++] = k;
    }
    uint64_t before = s3_gen_bump(bucket, key);
    int known = st && before == gen0; /* nobody else changed it since gen0: what we made is what is there */
    if (known)
        s3_meta_fill(m, bucket, key, st, etag, gen0 + 1);
    else
        s3_meta_forget(m, bucket, key);
    for (size_t j = 0; j < nkeep; j++) { /* deepest first */
        memcpy(dir, key, kept[j].len); /* the loop above cut it at the top one */
        dir[kept[j].len] = '\0';
        uint64_t g = s3_gen_get(bucket, dir);
        s3_meta_fill(m, bucket, dir, &kept[j].st, NULL, g);
        /* the path below it: the key itself for its parent, else the next directory down */
        int below = kept[j].len == parent_len(key) ? known
                                                   : j > 0 && memchr(key + kept[j].len + 1, '/', kept[j - 1].len - kept[j].len - 1) == NULL;
        if (kept[j].whole_until && below && g == kept[j].gen + 1) set_whole(m, bucket, dir, g, kept[j].whole_until);
    }
    free(kept);
    free(dir);
}

void s3_meta_forget(struct s3_mount *m, const char *bucket, const char *key)
{
    char *id = meta_id(bucket, key);
    if (!id) return;
    pthread_mutex_lock(&m->meta_lock);
    struct s3_meta *x;
    HASH_FIND_STR(m->meta, id, x);
    if (x) {
        HASH_DEL(m->meta, x);
        free(x->id);
        free(x);
    }
    size_t pl = parent_len(key); /* a child without an entry: its directory is not known whole */
    if (pl) {
        id[strlen(bucket) + 1 + pl] = '\0';
        HASH_FIND_STR(m->meta, id, x);
        if (x) x->whole_until = 0;
    }
    pthread_mutex_unlock(&m->meta_lock);
    free(id);
}

/* 1 = cached (st filled, or -ENOENT in *neg), 0 = not cached. */
int s3_meta_get(struct s3_mount *m, const char *bucket, const char *key, struct stat *st, int *neg)
{
    char *id = meta_id(bucket, key);
    if (!id) return 0;
    int hit = 0;
    uint64_t now = stats_now_ns();
    size_t pl = parent_len(key);
    pthread_mutex_lock(&m->meta_lock);
    struct s3_meta *x = meta_live(m, id, !key[0], now), *own = x;
    if (!x) HASH_FIND_STR(m->meta, id, own);
    if (x) {
        hit = 1;
        *neg = !x->exists;
        if (x->exists) *st = x->st;
    } else if (pl && !own) {
        /* No entry of its own: absent if its directory is known whole, or absent. One
         * that is there but stale (its counter moved: a change, or another key's bump in
         * the same slot) says nothing either way: the server is asked. Taking it for
         * absent made a directory this process had made, below a directory it had made,
         * "no such file" now and then (s3shim replay of tar x, then find, on S3). */
        id[strlen(bucket) + 1 + pl] = '\0';
        struct s3_meta *d = meta_live(m, id, 0, now);
        if (d && (!d->exists || (S_ISDIR(d->st.st_mode) && d->whole_until > now))) hit = *neg = 1;
    }
    pthread_mutex_unlock(&m->meta_lock);
    free(id);
    return hit;
}

size_t s3_list_child(const struct s3_list_entry *e, const char *prefix, size_t pl)
{
    if (strncmp(e->name, prefix, pl) != 0) return 0;
    size_t n = strlen(e->name + pl);
    if (e->is_prefix && n && e->name[pl + n - 1] == '/') n--;
    return n;
}

int s3_meta_fill_page(struct s3_mount *m, const char *bucket, const struct s3_list_page *page, const char *prefix,
                      const char *dir, uint64_t dir_gen)
{
    size_t pl = strlen(prefix);
    for (int files = 0; files < 2; files++)
        for (size_t i = 0; i < page->n; i++) {
            const struct s3_list_entry *e = &page->v[i];
            size_t n = s3_list_child(e, prefix, pl);
            if (!n || e->is_prefix == files || memchr(e->name + pl, '/', n)) continue; /* not a child */
            char *full = strndup(e->name, pl + n);
            if (!full) return -ENOMEM;
            struct stat st;
            s3_fill_stat(m, &st, bucket, full, e->is_prefix ? 0 : e->size, e->is_prefix ? 0 : e->mtime, e->is_prefix);
            s3_meta_fill_listed(m, bucket, full, &st, e->is_prefix ? NULL : e->etag, dir, dir_gen);
            free(full);
        }
    return 0;
}

/* List directory `dir` (one page) and learn it: its names' answers are cached, and if the
 * page holds all of it and nothing below it changed since its generation was `gen`, it is
 * known whole for a TTL from `now`. A directory larger than a page is not listed so again
 * for a TTL. Returns 1 when the cache can now answer for every name in it, 2 when there is
 * nothing at all below it, else 0. */
static int learn_dir(struct s3_mount *m, const char *bucket, const char *dir, uint64_t gen, uint64_t now)
{
    size_t pl = strlen(dir);
    char *prefix = malloc(pl + 2);
    if (!prefix) return 0;
    snprintf(prefix, pl + 2, "%s/", dir);
    struct s3_list_page page = {0};
    int listed = s3_list_dir(m, bucket, prefix, NULL, 1000, 0, &page);
    int whole = listed == 0 && !page.truncated && page.n > 0;
    if (listed == 0 && s3_meta_fill_page(m, bucket, &page, prefix, dir, gen) < 0) whole = 0;
    int big = page.truncated, none = !whole && !big && page.n == 0 && listed == 0;
    s3_list_page_free(&page);
    free(prefix);
    if (none) /* no marker, nothing below: nothing in it (an object by its name may exist) */
        return s3_gen_get(bucket, dir) == gen ? 2 : 0;
    if (!whole && !big) return 0;
    struct stat dst;
    s3_fill_stat(m, &dst, bucket, dir, 0, 0, 1); /* it has names: it is a directory */
    if (s3_gen_get(bucket, dir) != gen) return 0; /* something below it changed meanwhile */
    s3_meta_fill(m, bucket, dir, &dst, NULL, gen);
    if (whole) {
        set_whole(m, bucket, dir, gen, now + m->stat_ttl_ns);
        return 1;
    }
    char *id = meta_id(bucket, dir);
    if (!id) return 0;
    pthread_mutex_lock(&m->meta_lock);
    struct s3_meta *x;
    HASH_FIND_STR(m->meta, id, x);
    if (x) x->nolist_until = now + m->stat_ttl_ns;
    pthread_mutex_unlock(&m->meta_lock);
    free(id);
    return 0;
}

/* key is not an object: learn its directory, unless that is known whole already, too large
 * to list, or (`again`) only when it was known whole and its TTL ended with no process of
 * the run changing anything below it. As learn_dir(), or 0 when not listed. */
static int learn_parent(struct s3_mount *m, const char *bucket, const char *key, int again)
{
    size_t pl = parent_len(key);
    if (!pl || !m->stat_ttl_ns) return 0;
    char *dir = strndup(key, pl), *id = meta_id(bucket, dir ? dir : "");
    int go = 0;
    uint64_t now = stats_now_ns(), gen = dir ? s3_gen_get(bucket, dir) : 0;
    if (dir && id) {
        pthread_mutex_lock(&m->meta_lock);
        struct s3_meta *x;
        HASH_FIND_STR(m->meta, id, x);
        int cur = x && s3_gen_at(x->slot) == x->gen;
        if (again) { /* a copy into one directory that outlives the TTL */
            go = cur && x->whole_until && x->whole_until <= now && x->exists && S_ISDIR(x->st.st_mode);
            if (go) gen = x->gen;
        } else {
            go = !(x && x->nolist_until > now) && !(cur && x->expires > now && (!x->exists || x->whole_until > now));
        }
        if (go && x) x->whole_until = 0; /* once */
        pthread_mutex_unlock(&m->meta_lock);
    }
    int r = go ? learn_dir(m, bucket, dir, gen, now) : 0;
    free(dir);
    free(id);
    return r;
}

void s3_meta_learn_dir(struct s3_mount *m, const char *bucket, const char *key) { learn_parent(m, bucket, key, 0); }

int s3_meta_create_conflict(struct s3_mount *m, const char *bucket, const char *key)
{
    struct stat st;
    int neg = 0;
    char part[1025];
    size_t n = strlen(key);
    for (size_t i = 1; i < n && i < sizeof part; i++) { /* an object where a directory goes */
        if (key[i] != '/') continue;
        memcpy(part, key, i);
        part[i] = '\0';
        if (s3_meta_get(m, bucket, part, &st, &neg) && !neg && !S_ISDIR(st.st_mode)) return -ENOTDIR;
    }
    if (s3_meta_get(m, bucket, key, &st, &neg) && !neg && S_ISDIR(st.st_mode)) return -EISDIR;
    return 0;
}

int s3_meta_create_is_new(struct s3_mount *m, const char *bucket, const char *key, int flags)
{
    struct stat st;
    int neg = 0;
    /* Only an exclusive create: an open that keeps or appends to existing bytes must get
     * the server's, never a stale "absent" of another run's object (it would replace it). */
    if ((flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL) || !key[0]) return 0;
    if (s3_meta_get(m, bucket, key, &st, &neg)) return neg;
    int w = learn_parent(m, bucket, key, 1);
    return w == 2 || (w == 1 && s3_meta_get(m, bucket, key, &st, &neg) && neg);
}

/* --- listing ------------------------------------------------------------------------------- */

/* One ListObjectsV2 page of `prefix` (with delimiter '/' unless flat). */
int s3_list_dir(struct s3_mount *m, const char *bucket, const char *prefix, const char *token, int max_keys,
                     int flat, struct s3_list_page *page)
{
    size_t pl = strlen(prefix), tl = token ? strlen(token) : 0;
    char *ep = malloc(pl * 3 + 1), *et = malloc(tl * 3 + 1);
    char *q = malloc(pl * 3 + tl * 3 + 160);
    int e = -ENOMEM;
    if (ep && et && q) {
        s3_uri_encode(prefix, pl, 0, ep, pl * 3 + 1);
        if (token) s3_uri_encode(token, tl, 0, et, tl * 3 + 1);
        /* Canonical order: continuation-token, delimiter, encoding-type, list-type, max-keys,
         * prefix. Keys come URL-encoded: control characters are not valid XML 1.0. */
        sprintf(q, "%s%s%s%sencoding-type=url&list-type=2&max-keys=%d&prefix=%s", token ? "continuation-token=" : "",
                token ? et : "", token ? "&" : "", flat ? "" : "delimiter=%2F&", max_keys, ep);
        struct s3_op op;
        s3_op_init(&op, "GET", bucket, "");
        op.query = q;
        op.grow = 1;
        e = s3_run(&m->client, &op);
        memset(page, 0, sizeof *page);
        if (e == 0 && (!op.req.resp || s3_xml_list_parse(op.req.resp, op.req.got, page) < 0)) {
            slog_error("s3: listing %s/%s: the server's answer is not a ListObjectsV2 result", bucket, prefix);
            e = -EIO;
        }
        s3_op_cleanup(&op);
    }
    free(ep);
    free(et);
    free(q);
    return e;
}

/* Is there anything below "key/"? 1, 0, or -errno. */
int s3_has_children(struct s3_mount *m, const char *bucket, const char *key, int *only_marker)
{
    size_t n = strlen(key);
    char *dir = malloc(n + 2);
    if (!dir) return -ENOMEM;
    snprintf(dir, n + 2, "%s%s", key, n ? "/" : "");
    struct s3_list_page page;
    int e = s3_list_dir(m, bucket, dir, NULL, 2, 0, &page);
    int r = e;
    if (e == 0) {
        int real = 0, marker = 0;
        for (size_t i = 0; i < page.n; i++) {
            if (!page.v[i].is_prefix && strcmp(page.v[i].name, dir) == 0)
                marker = 1;
            else
                real = 1;
        }
        if (only_marker) *only_marker = marker && !real;
        r = real || marker;
        s3_list_page_free(&page);
    }
    free(dir);
    return r;
}

/* --- stat ------------------------------------------------------------------------------- */

int s3_stat_path(struct s3_mount *m, struct s3_path *p, struct stat *st)
{
    if (p->is_root) { /* the mount root, a bucket, or the mount's prefix: a directory, empty or not */
        s3_fill_stat(m, st, p->bucket, p->key, 0, 0, 1);
        if (p->is_service) return 0;
        int neg = 0;
        if (s3_meta_get(m, p->bucket, p->key, st, &neg)) return neg ? -ENOENT : 0;
        int e = s3_has_children(m, p->bucket, p->key, NULL); /* also proves the bucket exists */
        if (e < 0) return e;
        s3_fill_stat(m, st, p->bucket, p->key, 0, 0, 1);
        s3_meta_fill(m, p->bucket, p->key, st, NULL, 0);
        return 0;
    }
    int neg = 0;
    if (s3_meta_get(m, p->bucket, p->key, st, &neg)) return neg ? -ENOENT : 0;
    int w = learn_parent(m, p->bucket, p->key, 1); /* a known-whole directory whose TTL ended */
    if (w == 2 || (w == 1 && s3_meta_get(m, p->bucket, p->key, st, &neg))) return w == 2 || neg ? -ENOENT : 0;
    uint64_t gen = s3_gen_get(p->bucket, p->key); /* before asking: a change meanwhile makes the answer stale */
    struct s3_op op;
    s3_op_init(&op, "HEAD", p->bucket, p->key);
    op.quiet_404 = 1;
    int e = s3_run(&m->client, &op);
    if (e == 0) {
        time_t mt = op.req.last_modified[0] ? s3_parse_http_date(op.req.last_modified) : 0;
        s3_fill_stat(m, st, p->bucket, p->key, op.req.content_length, mt < 0 ? 0 : mt, 0);
        s3_meta_fill(m, p->bucket, p->key, st, op.req.etag, gen);
    } else if (e == -ENOENT && ((w = learn_parent(m, p->bucket, p->key, 0)) == 2 ||
                                (w == 1 && s3_meta_get(m, p->bucket, p->key, st, &neg)))) {
        /* its directory's listing said (a prefix listed there is a directory; nothing
         * listed at all: no such key, nothing below it) */
        if (w == 2) s3_meta_fill(m, p->bucket, p->key, NULL, NULL, gen);
        e = w == 2 || neg ? -ENOENT : 0;
    } else if (e == -ENOENT) { /* a prefix with keys below it is a directory */
        int c = s3_has_children(m, p->bucket, p->key, NULL);
        if (c > 0) {
            s3_fill_stat(m, st, p->bucket, p->key, 0, 0, 1);
            s3_meta_fill(m, p->bucket, p->key, st, NULL, gen);
            e = 0;
        } else {
            if (c == 0) s3_meta_fill(m, p->bucket, p->key, NULL, NULL, gen);
            e = c < 0 ? c : -ENOENT;
        }
    }
    s3_op_cleanup(&op);
    return e;
}


int s3_bucket_stat(struct s3_mount *m, const char *bucket, struct stat *st)
{
    struct s3_path p = {.key = (char *)"", .is_root = 1};
    snprintf(p.bucket, sizeof p.bucket, "%s", bucket);
    return s3_stat_path(m, &p, st);
}

void s3_meta_clear(struct s3_mount *m)
{
    struct s3_meta *x, *tmp;
    HASH_ITER(hh, m->meta, x, tmp)
    {
        HASH_DEL(m->meta, x);
        free(x->id);
        free(x);
    }
}
