/* backend_s3.c - s3://[BUCKET[/PREFIX]]: objects as files, common prefixes as directories.
 *
 * This file is the namespace: mounting (credentials, endpoints), directories from
 * ListObjectsV2 with '/' as delimiter (their entries fill the metadata cache, so `ls -l`
 * costs one request per page, not one per file), and unlink, rename (copy and delete;
 * multipart copy above 5 GiB; a temporary is uploaded under the new name instead,
 * s3_stage_tmp.c), mkdir (a "dir/" marker) and rmdir. Keys, stat and the
 * cache are s3_meta.c; reading and writing objects is s3_file.c. Every change made here
 * is announced to the run's other processes with s3_meta_changed() once the server has
 * answered (s3_gen.h). */
#include "../backend.h"
#include "../bufpool.h"
#include "../config.h"
#include "http.h"
#include "../log.h"
#include "s3_gen.h"
#include "s3_mount.h"
#include "s3_stage.h"
#include "s3_writers.h"
#include "s3_xml.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define S3_DEV_MAJOR 0x5333                /* "S3": no real device has this major */


static _Atomic int mount_seq;

/* --- mounting -------------------------------------------------------------------------- */

/* Options of one mount after '?' in its URI: endpoints=URL,URL&balance=rr&hedge=off&
 * shared_uploads=no. They override the S3SHIM_* settings for that mount only. */
static int mount_options(const char *q, char *endpoints, size_t eplen, struct s3_client_opts *o, char *err,
                         size_t errlen)
{
    while (*q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t kl = eq ? (size_t)(eq - q) : n;
        const char *v = eq ? eq + 1 : q + n;
        int vl = (int)(q + n - v);
        char val[64];
        snprintf(val, sizeof val, "%.*s", vl, v);
        int b;
        if (kl == 9 && !strncmp(q, "endpoints", 9) && vl > 0 && (size_t)vl < eplen) {
            snprintf(endpoints, eplen, "%.*s", vl, v);
        } else if (kl == 7 && !strncmp(q, "balance", 7) && (b = bal_policy_parse(val)) >= 0) {
            o->policy = (enum bal_policy)b;
        } else if (kl == 5 && !strncmp(q, "hedge", 5) &&
                   (b = !strcasecmp(val, "auto") ? 1 : cfg_parse_bool(val)) >= 0) {
            o->hedge = b;
        } else if (kl == 14 && !strncmp(q, "shared_uploads", 14) && (b = cfg_parse_bool(val)) >= 0) {
            o->pin_uploads = !b;
        } else {
            snprintf(err, errlen, "bad mount option '%.*s' (want endpoints=URL,URL, balance=sewt|least|rr, "
                                  "hedge=auto|off, shared_uploads=yes|no)", (int)(n > 80 ? 80 : n), q);
            return -EINVAL;
        }
        q += n + (q[n] == '&');
    }
    return 0;
}

static int s3_mount(const char *uri, const struct cfg *cfg, struct stats_set *stats, void **msp, char *err,
                    size_t errlen)
{
    char where[2048], endpoints[1024] = "";
    struct s3_client_opts opt = {cfg ? (enum bal_policy)cfg->balance : BAL_SEWT, cfg ? cfg->hedge : 1,
                                 cfg ? !cfg->shared_uploads : 0};
    if (cfg && cfg->endpoints) snprintf(endpoints, sizeof endpoints, "%s", cfg->endpoints);
    size_t wl = strcspn(uri, "?");
    if (wl >= sizeof where) {
        snprintf(err, errlen, "URI '%.40s...' is too long", uri);
        return -EINVAL;
    }
    snprintf(where, sizeof where, "%.*s", (int)wl, uri);
    if (uri[wl]) {
        int e = mount_options(uri + wl + 1, endpoints, sizeof endpoints, &opt, err, errlen);
        if (e < 0) return e;
    }
    struct s3_mount *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    const char *slash = strchr(where, '/');
    size_t blen = slash ? (size_t)(slash - where) : strlen(where);
    if (blen >= sizeof m->bucket) {
        snprintf(err, errlen, "bucket name '%.40s...' is too long", where);
        free(m);
        return -EINVAL;
    }
    memcpy(m->bucket, where, blen);
    if (slash && slash[1]) {
        size_t pl = strlen(slash + 1);
        while (pl && slash[pl] == '/') pl--; /* no trailing slashes */
        snprintf(m->prefix, sizeof m->prefix, "%.*s/", (int)pl, slash + 1);
    }
    m->part_size = cfg ? cfg->part_size : (size_t)8 << 20;
    m->concurrency = cfg ? cfg->concurrency : 16;
    m->ra_memory = cfg ? cfg->ra_memory : (size_t)32 << 20;
    m->read_hold = cfg ? cfg->read_hold : CFG_HOLD_AUTO;
    m->stat_ttl_ns = (uint64_t)(cfg ? cfg->stat_ttl_ms : 5000) * 1000000ull;
    m->dev = makedev(S3_DEV_MAJOR, (unsigned)atomic_fetch_add(&mount_seq, 1) + 1);
    m->mounted_at = time(NULL);
    s3_stage_configure(cfg);
    pthread_mutex_init(&m->meta_lock, NULL);
    s3_gen_init();

    struct aws_settings aws;
    char why[512] = "";
    int e = aws_settings_load(&aws, cfg_process_env, NULL, why, sizeof why);
    if (e < 0) {
        snprintf(err, errlen, "%s", why[0] ? why : "bad AWS configuration");
        free(m);
        return e;
    }
    if (!aws.anonymous && !aws.have_creds) {
        snprintf(err, errlen, "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or "
                              "S3SHIM_NO_SIGN=1 for public buckets");
        aws_settings_free(&aws);
        free(m);
        return -EACCES;
    }
    if (endpoints[0]) snprintf(aws.endpoint, sizeof aws.endpoint, "%s", endpoints);
    int addressing = cfg ? cfg->addressing : CFG_ADDR_AUTO;
    /* AWS itself prefers virtual hosts; S3-compatible servers on an address prefer paths. */
    int vhost = addressing == CFG_ADDR_VIRTUAL || (addressing == CFG_ADDR_AUTO && !aws.endpoint[0]);
    if (cfg) {
        struct http_settings hs = {cfg->io_threads, 5000, cfg->timeout_s, aws.ca_bundle[0] ? aws.ca_bundle : NULL, 0,
                                   cfg->max_inflight, cfg->curl_only};
        http_configure(&hs);
        bufpool_configure(cfg->memory);
    }
    e = s3_client_init(&m->client, &aws, vhost, &opt, stats, err, errlen);
    aws_settings_free(&aws);
    if (e < 0) {
        free(m);
        return e;
    }
    crypto_keep_at_exit(); /* uploads open at exit are committed after main: see sigv4.c */
    *msp = m;
    return 0;
}

static void s3_unmount(void *ms)
{
    struct s3_mount *m = ms;
    s3_meta_clear(m);
    s3_client_free(&m->client);
    free(m);
}

static void s3_atfork_prepare(void *ms)
{
    (void)ms;
    s3w_atfork_prepare();
    http_atfork_prepare(); /* one engine for every S3 mount: the first call holds it */
}

static void s3_atfork_parent(void *ms)
{
    (void)ms;
    http_atfork_parent();
    s3w_atfork_release();
}

static void s3_atfork_child(void *ms)
{
    struct s3_mount *m = ms;
    http_atfork_child();
    s3w_atfork_child();
    bal_atfork_child(&m->client.bal);
    s3_stage_atfork_child();
}
#define WITH_PATH(m, mkey, body) \
    ({ \
        struct s3_path p_; \
        int r_ = s3_path_resolve(m, mkey, &p_); \
        if (r_ == 0) { \
            struct s3_path *P = &p_; \
            r_ = (body); \
        } \
        s3_path_free(&p_); \
        r_; \
    })


/* A prefix the server does not know is still a directory while a live process of this
 * host has a key below it staged (created, not uploaded yet), or this process is
 * uploading one. */
static int stat_path_or_staged_dir(struct s3_mount *m, struct s3_path *p, struct stat *st)
{
    int e = s3_stat_path(m, p, st);
    if (e != -ENOENT || p->is_root) return e;
    size_t kl = strlen(p->key);
    char *prefix = malloc(kl + 2);
    if (!prefix) return e;
    memcpy(prefix, p->key, kl);
    memcpy(prefix + kl, "/", 2);
    struct s3_staged_name *v;
    size_t n = 0;
    if (s3w_below(m, p->bucket, prefix) || (s3_stage_list(m, p->bucket, prefix, &v, &n) == 0 && n)) {
        s3_fill_stat(m, st, p->bucket, p->key, 0, 0, 1);
        e = 0;
    }
    if (n) s3_stage_list_free(v, n);
    free(prefix);
    return e;
}

/* What a path names, as this process sees it: its own upload under way there, an object
 * staged on this host, or the server's (a directory too). */
static int stat_any(struct s3_mount *m, struct s3_path *p, struct stat *st)
{
    if (s3w_stat(m, p, st) == 0 || s3_stage_stat(m, p, st) == 0) return 0;
    return stat_path_or_staged_dir(m, p, st);
}

static int s3_stat(void *ms, const char *key, struct stat *st, int nofollow)
{
    (void)nofollow;
    /* This process's upload under way answers first (s3_writers.h), then an object staged
     * on this host, from its staging file (s3_stage.c). */
    return WITH_PATH(ms, key, stat_any(ms, P, st));
}

static int s3_access(void *ms, const char *key, int mode, int flags)
{
    (void)flags;
    struct stat st;
    int e = s3_stat(ms, key, &st, 0);
    if (e < 0) return e;
    if ((mode & X_OK) && !S_ISDIR(st.st_mode)) return -EACCES;
    return 0;
}

static int unlink_path(struct s3_mount *m, struct s3_path *p)
{
    if (s3_stage_tmp_unlink(m, p)) return 0; /* a temporary of ours: never sent */
    int mine = s3w_drop(m, p); /* this process's upload to it: abandoned */
    struct stat st;
    int e = s3_stat_path(m, p, &st);
    if (e == -ENOENT && s3_stage_stat(m, p, &st) == 0) { /* created here, not uploaded yet */
        s3_stage_unlinked(m, p);
        return 0;
    }
    if (e == -ENOENT && mine) return 0;
    if (e < 0) return e;
    if (S_ISDIR(st.st_mode)) return -EISDIR;
    e = s3_object_delete(m, p->bucket, p->key);
    if (e == 0) s3_stage_unlinked(m, p);
    return e;
}

static int s3_unlink(void *ms, const char *key) { return WITH_PATH(ms, key, unlink_path(ms, P)); }

/* b is replaced: openers of it keep their bytes but store nothing more under it. */
static void replaced(struct s3_mount *m, const struct s3_path *b)
{
    s3w_drop(m, b);
    s3_stage_unlinked(m, b);
}

static int rename_path(struct s3_mount *m, struct s3_path *a, struct s3_path *b, unsigned flags)
{
    if (flags & ~RENAME_NOREPLACE) return -EINVAL;
    int t = s3_stage_tmp_rename(m, a, b, flags); /* a temporary: uploaded as b */
    if (t > 0) s3w_drop(m, b);
    if (t != 0) return t < 0 ? t : 0;
    struct stat st, dst;
    int e = stat_any(m, a, &st);
    if (e < 0) return e;
    if (S_ISDIR(st.st_mode)) return -EXDEV; /* mv copies a directory tree itself */
    if (a->is_root || b->is_root) return a->is_root ? -EBUSY : -EISDIR;
    if (strcmp(a->bucket, b->bucket) == 0 && strcmp(a->key, b->key) == 0) return 0;
    if ((flags & RENAME_NOREPLACE) && stat_any(m, b, &dst) == 0) return -EEXIST;
    e = s3_meta_create_conflict(m, b->bucket, b->key); /* over a directory it listed */
    if (e < 0) return e;
    /* This process's upload to a: staged now while its bytes are all in memory, else it
     * completes under a and moves to b at its commit (replacing b then). */
    int w = s3w_rename(m, a, b);
    if (w < 0) return w;
    if (w == 1) {
        s3_stage_unlinked(m, b);
    } else {
        e = s3_stage_rename(m, a, b); /* staged on this host: what its openers see goes up as b */
        if (e < 0) return e;
        if (e == 0) { /* on the server only */
            e = s3_object_copy(m, a, b, st.st_size);
            s3_meta_changed(m, b->bucket, b->key, 0, NULL, NULL);
            if (e < 0) return e;
            replaced(m, b);
        } else {
            s3w_drop(m, b);
        }
    }
    /* a goes from the server (if it is there: an upload or staging may be all it was). */
    if (s3_stat_path(m, a, &st) == 0 && !S_ISDIR(st.st_mode)) return s3_object_delete(m, a->bucket, a->key);
    s3_meta_changed(m, a->bucket, a->key, 0, NULL, NULL);
    return 0;
}

static int s3_rename(void *ms, const char *from, const char *to, unsigned flags)
{
    struct s3_mount *m = ms;
    struct s3_path a, b;
    int e = s3_path_resolve(m, from, &a);
    if (e == 0) e = s3_path_resolve(m, to, &b);
    else b.key = NULL;
    if (e == 0) e = rename_path(m, &a, &b, flags);
    s3_path_free(&a);
    s3_path_free(&b);
    return e;
}

/* A directory is a prefix; mkdir leaves a zero-byte "name/" marker so it exists empty. */
static int mkdir_path(struct s3_mount *m, struct s3_path *p)
{
    struct stat st;
    if (p->is_root) return -EEXIST;
    int c = s3_meta_create_conflict(m, p->bucket, p->key);
    if (c) return c == -EISDIR ? -EEXIST : c;
    uint64_t gen_seen = s3_meta_gen(p->bucket, p->key); /* before the stat proves nothing is below it */
    int e = s3_stat_path(m, p, &st);
    if (e == 0) return -EEXIST;
    if (e != -ENOENT) return e;
    size_t n = strlen(p->key) + 2;
    char *marker = malloc(n);
    if (!marker) return -ENOMEM;
    snprintf(marker, n, "%s/", p->key);
    char md5[25];
    md5_base64("", 0, md5);
    uint64_t gen0 = s3_meta_gen(p->bucket, p->key);
    struct s3_op op;
    s3_op_init(&op, "PUT", p->bucket, marker);
    s3_op_header(&op, "content-md5", md5);
    e = s3_run(&m->client, &op);
    s3_op_cleanup(&op);
    free(marker);
    if (e == 0) s3_fill_stat(m, &st, p->bucket, p->key, 0, 0, 1); /* cd, stat and mkdir -p ask next */
    s3_meta_changed(m, p->bucket, p->key, gen0, e == 0 ? &st : NULL, NULL);
    if (e == 0 && gen0 == gen_seen) s3_meta_made_dir(m, p->bucket, p->key, gen0 + 1);
    return e;
}

static int s3_mkdir(void *ms, const char *key, mode_t mode)
{
    (void)mode;
    struct s3_path p;
    int e = s3_path_resolve(ms, key, &p);
    if (e == 0) e = mkdir_path(ms, &p);
    else if (e == -ENOENT) s3_path_why_enoent(&p, key, "make directory");
    s3_path_free(&p);
    return e;
}

static int rmdir_path(struct s3_mount *m, struct s3_path *p)
{
    if (p->is_root) return -EBUSY;
    struct stat st;
    int e = s3_stat_path(m, p, &st);
    if (e < 0) return e;
    if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    int only_marker = 0;
    int c = s3_has_children(m, p->bucket, p->key, &only_marker);
    if (c < 0) return c;
    if (c && !only_marker) return -ENOTEMPTY;
    if (only_marker) {
        size_t n = strlen(p->key) + 2;
        char *marker = malloc(n);
        if (!marker) return -ENOMEM;
        snprintf(marker, n, "%s/", p->key);
        struct s3_op op;
        s3_op_init(&op, "DELETE", p->bucket, marker);
        op.grow = 1;
        e = s3_run(&m->client, &op);
        s3_op_cleanup(&op);
        free(marker);
    }
    s3_meta_changed(m, p->bucket, p->key, 0, NULL, NULL);
    return e;
}

static int s3_rmdir(void *ms, const char *key) { return WITH_PATH(ms, key, rmdir_path(ms, P)); }

static int s3_truncate(void *ms, const char *key, off_t len)
{
    struct stat st;
    int e = s3_stat(ms, key, &st, 0);
    if (e < 0) return e;
    if (S_ISDIR(st.st_mode)) return -EISDIR;
    if (len == st.st_size) return 0;
    /* This process's upload there is staged first (the truncation must reach its bytes);
     * one that has sent parts cannot be cut. */
    int w = WITH_PATH(ms, key, s3w_settle(ms, P, "truncated by name"));
    if (w == 1) {
        slog_error("s3: %s: truncate by name of a file this process is writing as a sequential stream, with parts "
                   "of it uploaded already, is not supported (EBUSY); open it read-write (O_RDWR) instead", key);
        return -EBUSY;
    }
    if (w < 0) return w;
    void *fh;
    if (len != 0 || WITH_PATH(ms, key, s3_stage_live(ms, P))) { /* staged: fetch what stays, upload the result;
                                                                  * a staged one is cut where its openers see it */
        e = s3f_open(ms, key, O_RDWR, 0, &fh);
        if (e < 0) return e;
        e = s3f_ftruncate(fh, len);
        int c = s3f_close(fh);
        return e < 0 ? e : c;
    }
    e = s3f_open(ms, key, O_WRONLY | O_TRUNC, 0, &fh); /* an empty object replaces it */
    return e < 0 ? e : s3f_close(fh);
}

/* S3 keeps its own Last-Modified; times cannot be set. Succeeds if the key exists. */
static int s3_utimens(void *ms, const char *key, const struct timespec ts[2], int nofollow)
{
    (void)ts, (void)nofollow;
    struct stat st;
    return s3_stat(ms, key, &st, 0);
}

static int s3_futimens(void *fh, const struct timespec ts[2])
{
    (void)fh, (void)ts;
    return 0;
}

static int s3_statvfs(void *ms, const char *key, struct statvfs *sv)
{
    struct s3_mount *m = ms;
    (void)key;
    memset(sv, 0, sizeof *sv);
    sv->f_bsize = sv->f_frsize = 4096;
    sv->f_blocks = sv->f_bfree = sv->f_bavail = (fsblkcnt_t)1 << 40; /* 4 PiB: no limit we know */
    sv->f_files = sv->f_ffree = sv->f_favail = (fsfilcnt_t)1 << 40;
    sv->f_namemax = 1024;
    sv->f_fsid = (unsigned long)m->dev;
    return 0;
}

/* --- directories --------------------------------------------------------------------------- */

struct s3_dir {
    struct s3_mount *m;
    struct s3_path path;
    char *prefix;      /* "key/" or "" */
    struct s3_list_page page;
    size_t next;       /* index in page */
    int dots;          /* "." and ".." given out */
    int done;          /* no more pages */
    int started;
    uint64_t gen;      /* the directory's generation before the page was asked for */
    struct s3_staged_name *staged; /* names of keys staged on this host or being uploaded by this
                                    * process, not on the server yet */
    size_t nstaged, next_staged;
};

static int s3_opendir(void *ms, const char *key, void **dhp)
{
    struct s3_mount *m = ms;
    struct s3_dir *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->m = m;
    int e = s3_path_resolve(m, key, &d->path);
    struct stat st;
    if (e == 0) e = stat_path_or_staged_dir(m, &d->path, &st);
    if (e == 0 && !S_ISDIR(st.st_mode)) e = -ENOTDIR;
    if (e == 0 && d->path.is_service) e = -ENOTSUP; /* listing all buckets: not yet */
    if (e == 0) {
        size_t n = strlen(d->path.key);
        d->prefix = malloc(n + 2);
        if (!d->prefix) e = -ENOMEM;
        else snprintf(d->prefix, n + 2, "%s%s", d->path.key, n ? "/" : "");
    }
    if (e == 0) e = s3_stage_list(m, d->path.bucket, d->prefix, &d->staged, &d->nstaged);
    if (e == 0) { /* and this process's uploads under way */
        size_t cap = d->nstaged;
        e = s3w_list(m, d->path.bucket, d->prefix, &d->staged, &d->nstaged, &cap);
        s3_names_sort(d->staged, &d->nstaged);
    }
    if (e < 0) {
        s3_stage_list_free(d->staged, d->nstaged);
        s3_path_free(&d->path);
        free(d->prefix);
        free(d);
        return e;
    }
    *dhp = d;
    return 0;
}

/* The next entry of the server's listing: 1, 0 at its end, or -errno. */
static int listed_next(struct s3_dir *d, struct bk_dirent *ent)
{
    size_t pl = strlen(d->prefix);
    for (;;) {
        if (d->next >= d->page.n) {
            if (d->started && (d->done || !d->page.truncated || !d->page.next_token)) return 0;
            char *token = d->page.next_token ? strdup(d->page.next_token) : NULL;
            s3_list_page_free(&d->page);
            d->gen = s3_meta_gen(d->path.bucket, d->path.key);
            int e = s3_list_dir(d->m, d->path.bucket, d->prefix, token, 1000, 0, &d->page);
            free(token);
            d->started = 1;
            d->next = 0;
            if (e < 0) return e;
            if (!d->page.truncated) d->done = 1;
            if (!d->page.n) return 0;
            s3_meta_fill_page(d->m, d->path.bucket, &d->page, d->prefix, d->path.key, d->gen); /* ls -l stats each */
        }
        struct s3_list_entry *x = &d->page.v[d->next++];
        const char *name = x->name + pl;
        size_t nl = s3_list_child(x, d->prefix, pl);
        if (nl == 0) continue; /* the directory's own marker, or not below it */
        if (memchr(name, '/', nl) || (nl == 1 && name[0] == '.') || (nl == 2 && name[0] == '.' && name[1] == '.')) {
            slog_warn("s3: %s/%s: a key that cannot be a directory entry ('.', '..' or an empty component); "
                      "skipped", d->path.bucket, x->name);
            continue;
        }
        if (nl >= sizeof ent->name) {
            slog_warn("s3: %s/%s: a name longer than 255 bytes cannot be listed; skipped", d->path.bucket, x->name);
            continue;
        }
        memcpy(ent->name, name, nl);
        ent->name[nl] = '\0';
        ent->type = x->is_prefix ? DT_DIR : DT_REG;
        char *full = strndup(x->name, pl + nl);
        ent->ino = full ? s3_key_hash(d->path.bucket, full) : 0;
        free(full);
        return 1;
    }
}


/* Mark a listed name that is also staged, so that it is given once. */
static void staged_seen(struct s3_dir *d, const struct bk_dirent *ent)
{
    if (!d->nstaged) return;
    struct s3_staged_name key = {.name = (char *)ent->name, .is_dir = ent->type == DT_DIR};
    for (size_t lo = 0, hi = d->nstaged; lo < hi;) {
        size_t mid = (lo + hi) / 2;
        struct s3_staged_name *x = &d->staged[mid];
        int c = strcmp(key.name, x->name);
        if (!c) c = key.is_dir - x->is_dir;
        if (!c) {
            x->seen = 1;
            return;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
}

static int s3_readdir(void *dh, struct bk_dirent *ent)
{
    struct s3_dir *d = dh;
    if (d->dots < 2) {
        snprintf(ent->name, sizeof ent->name, "%s", d->dots ? ".." : ".");
        ent->type = DT_DIR;
        ent->ino = s3_key_hash(d->path.bucket, d->prefix) + (uint64_t)d->dots;
        d->dots++;
        return 1;
    }
    if (d->next_staged == 0) {
        int r = listed_next(d, ent);
        if (r != 0) {
            if (r > 0) staged_seen(d, ent);
            return r;
        }
    }
    /* Then what only this host has: keys created here and not uploaded yet. */
    while (d->next_staged < d->nstaged) {
        struct s3_staged_name *x = &d->staged[d->next_staged++];
        if (x->seen || strlen(x->name) >= sizeof ent->name) continue;
        snprintf(ent->name, sizeof ent->name, "%s", x->name);
        ent->type = x->is_dir ? DT_DIR : DT_REG;
        size_t pl = strlen(d->prefix), nl = strlen(x->name);
        char *full = malloc(pl + nl + 1);
        ent->ino = 0;
        if (full) {
            memcpy(full, d->prefix, pl);
            memcpy(full + pl, x->name, nl + 1);
            ent->ino = s3_key_hash(d->path.bucket, full);
            free(full);
        }
        return 1;
    }
    d->next_staged = d->nstaged + 1; /* the listing is not asked again */
    return 0;
}

static void s3_closedir(void *dh)
{
    struct s3_dir *d = dh;
    s3_list_page_free(&d->page);
    s3_stage_list_free(d->staged, d->nstaged);
    s3_path_free(&d->path);
    free(d->prefix);
    free(d);
}

static int s3_open(void *ms, const char *key, int flags, mode_t mode, void **fh)
{
    if (flags & O_DIRECTORY) return -ENOTDIR;
    int e = s3f_open(ms, key, flags, mode, fh);
    if (e == -ENOENT && !(flags & O_CREAT)) { /* a prefix: the caller opens it as a directory */
        struct stat st;
        if (s3_stat(ms, key, &st, 0) == 0 && S_ISDIR(st.st_mode)) e = -EISDIR;
    }
    return e;
}

/* A staged file inherited across exec (s3_stage.c); `key` is not needed. */
static int s3_open_fd(void *ms, int fd, int flags, void **fh) { return s3f_open_fd(ms, fd, flags, fh); }

const struct backend_ops bk_s3_ops = {
    .scheme = "s3",
    .mount = s3_mount,
    .unmount = s3_unmount,
    .atfork_prepare = s3_atfork_prepare,
    .atfork_parent = s3_atfork_parent,
    .atfork_child = s3_atfork_child,
    .open = s3_open,
    .pread = s3f_pread,
    .pwrite = s3f_pwrite,
    .append = s3f_append,
    .fsync = s3f_fsync,
    .commit = s3f_commit,
    .share = s3f_share,
    .close_shared = s3f_close_shared,
    .ftruncate = s3f_ftruncate,
    .fstat = s3f_fstat,
    .futimens = s3_futimens,
    .close = s3f_close,
    .fallocate = s3f_fallocate,
    .fadvise = s3f_fadvise,
    .local_fd = s3f_local_fd,
    .open_fd = s3_open_fd,
    .lock_fd = s3f_lock_fd,
    .local_map = s3f_local_map,
    .stat = s3_stat,
    .access = s3_access,
    .unlink = s3_unlink,
    .rename = s3_rename,
    .mkdir = s3_mkdir,
    .rmdir = s3_rmdir,
    .truncate = s3_truncate,
    .utimens = s3_utimens,
    .statvfs = s3_statvfs,
    .opendir = s3_opendir,
    .readdir = s3_readdir,
    .closedir = s3_closedir,
};
