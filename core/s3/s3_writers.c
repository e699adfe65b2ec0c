/* s3_writers.c - the streaming uploads of this process by name: what the path calls of the
 * S3 wing ask before the staging directory and the server (see s3_writers.h).
 *
 * A plain list under one lock: a process rarely has more than a few uploads open, and
 * the usual answer, "none", costs one atomic load. Lock order: the list, then a file's
 * lock; a file's lock is never held while the list is taken (a commit that moves an
 * object does so after unlocking the file). Entries of a forked child's copies are the
 * parent's and are skipped. */
#include "s3_writers.h"

#include "../log.h"
#include "s3_file_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct s3_file *g_head;
static int g_count; /* atomic reads */
static int g_fork_depth;

void s3w_add(struct s3_file *f)
{
    pthread_mutex_lock(&g_lock);
    f->w_prev = NULL;
    f->w_next = g_head;
    if (g_head) g_head->w_prev = f;
    g_head = f;
    f->w_listed = 1;
    __atomic_add_fetch(&g_count, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_lock);
}

void s3w_del(struct s3_file *f)
{
    if (!f->w_listed) return;
    pthread_mutex_lock(&g_lock);
    if (f->w_prev) f->w_prev->w_next = f->w_next;
    else g_head = f->w_next;
    if (f->w_next) f->w_next->w_prev = f->w_prev;
    f->w_listed = 0;
    __atomic_sub_fetch(&g_count, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_lock);
}

void s3w_atfork_prepare(void)
{
    if (g_fork_depth++ == 0) pthread_mutex_lock(&g_lock);
}

void s3w_atfork_release(void)
{
    if (--g_fork_depth == 0) pthread_mutex_unlock(&g_lock);
}

void s3w_atfork_child(void)
{
    /* The parent's uploads: none is the child's, and their locks may be held by threads
     * that did not follow (one sending a part): the child forgets the list. */
    if (g_fork_depth == 1) {
        for (struct s3_file *f = g_head, *next; f; f = next) {
            next = f->w_next;
            f->w_listed = 0;
        }
        g_head = NULL;
        __atomic_store_n(&g_count, 0, __ATOMIC_RELEASE);
    }
    s3w_atfork_release();
}

/* The name f's bytes will have (f->lock held): its own, or where a rename sent it. */
static void name_of(const struct s3_file *f, const char **bucket, const char **key)
{
    *bucket = f->moved_key ? f->moved_bucket : f->path.bucket;
    *key = f->moved_key ? f->moved_key : f->path.key;
}

/* Does f stand for an upload of this process still under way (f->lock held)? Staged ones
 * are the staging directory's to answer, committed ones the server's. */
static int streaming(const struct s3_file *f)
{
    return f->owner == getpid() && !f->stg && !f->committed && !f->dropped;
}

/* The newest upload of this process to bucket/key, locked; NULL if none. g_lock held. */
static struct s3_file *find_locked(struct s3_mount *m, const char *bucket, const char *key)
{
    for (struct s3_file *f = g_head; f; f = f->w_next) {
        if (f->m != m || f->owner != getpid()) continue;
        pthread_mutex_lock(&f->lock);
        const char *b, *k;
        name_of(f, &b, &k);
        if (streaming(f) && strcmp(b, bucket) == 0 && strcmp(k, key) == 0) return f;
        pthread_mutex_unlock(&f->lock);
    }
    return NULL;
}

static int none(void) { return __atomic_load_n(&g_count, __ATOMIC_ACQUIRE) == 0; }

int s3w_stat(struct s3_mount *m, const struct s3_path *p, struct stat *st)
{
    if (none() || p->is_root) return -ENOENT;
    pthread_mutex_lock(&g_lock);
    struct s3_file *f = find_locked(m, p->bucket, p->key);
    if (f) {
        s3_fill_stat(m, st, p->bucket, p->key, f->written, time(NULL), 0);
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&g_lock);
    return f ? 0 : -ENOENT;
}

int s3w_below(struct s3_mount *m, const char *bucket, const char *prefix)
{
    if (none()) return 0;
    size_t pl = strlen(prefix);
    int found = 0;
    pthread_mutex_lock(&g_lock);
    for (struct s3_file *f = g_head; f && !found; f = f->w_next) {
        if (f->m != m || f->owner != getpid()) continue;
        pthread_mutex_lock(&f->lock);
        const char *b, *k;
        name_of(f, &b, &k);
        found = streaming(f) && strcmp(b, bucket) == 0 && strncmp(k, prefix, pl) == 0;
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&g_lock);
    return found;
}

/* f (locked) is removed by name: parts in flight land, the upload is aborted at close. */
static void drop_locked(struct s3_file *f, const char *why)
{
    const char *b, *k;
    name_of(f, &b, &k);
    slog_debug("s3: %s/%s: %s while open for writing: its upload is abandoned", b, k, why);
    f->dropped = 1;
    s3f_cur_drop(f); /* what is not sent yet never will be */
}

int s3w_drop(struct s3_mount *m, const struct s3_path *p)
{
    if (none() || p->is_root) return 0;
    int n = 0;
    pthread_mutex_lock(&g_lock);
    struct s3_file *f;
    while ((f = find_locked(m, p->bucket, p->key))) { /* every descriptor of it */
        drop_locked(f, "removed");
        pthread_mutex_unlock(&f->lock);
        n++;
    }
    pthread_mutex_unlock(&g_lock);
    return n > 0;
}

/* Is bucket/key still where an upload renamed away will be completed (g_lock held)? */
static int bound_elsewhere(struct s3_mount *m, const char *bucket, const char *key)
{
    int bound = 0;
    for (struct s3_file *f = g_head; f && !bound; f = f->w_next) {
        if (f->m != m || f->owner != getpid()) continue;
        pthread_mutex_lock(&f->lock);
        bound = f->moved_key && !f->stg && !f->committed && !f->dropped && strcmp(f->path.bucket, bucket) == 0 &&
                strcmp(f->path.key, key) == 0;
        pthread_mutex_unlock(&f->lock);
    }
    return bound;
}

/* An upload of p staged if it has sent no part (0), else 1; -errno. g_lock held. */
static int settle_locked(struct s3_mount *m, const struct s3_path *p, const char *why)
{
    int r = 0;
    struct s3_file *f;
    while (r == 0 && (f = find_locked(m, p->bucket, p->key))) {
        if (f->moved_key || f->upload_id[0] || f->nparts || f->err)
            r = 1; /* parts are on the server (or it failed): it stays a stream */
        else
            r = s3f_to_stage(f, why); /* then the staging directory answers for it */
        pthread_mutex_unlock(&f->lock);
    }
    return r;
}

int s3w_settle(struct s3_mount *m, const struct s3_path *p, const char *why)
{
    if (none() || p->is_root) return 0;
    pthread_mutex_lock(&g_lock);
    int r = settle_locked(m, p, why);
    if (r == 0 && bound_elsewhere(m, p->bucket, p->key)) {
        slog_error("s3: %s/%s: an upload this process renamed away is still completed under this name at its close; "
                   "it cannot be made again until then (EBUSY)", p->bucket, p->key);
        r = -EBUSY;
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

int s3w_rename(struct s3_mount *m, const struct s3_path *a, const struct s3_path *b)
{
    if (none() || a->is_root) return 0;
    pthread_mutex_lock(&g_lock);
    int r = settle_locked(m, a, "renamed while open");
    if (r != 1) { /* none, or staged now (or failed) */
        pthread_mutex_unlock(&g_lock);
        return r;
    }
    struct s3_file *f;
    while ((f = find_locked(m, b->bucket, b->key))) { /* b's own uploads: replaced */
        drop_locked(f, "replaced by a rename");
        pthread_mutex_unlock(&f->lock);
    }
    f = find_locked(m, a->bucket, a->key);
    r = 0;
    if (f) {
        char *k = strdup(b->key);
        if (!k) {
            r = -ENOMEM;
        } else {
            free(f->moved_key);
            f->moved_key = k;
            snprintf(f->moved_bucket, sizeof f->moved_bucket, "%s", b->bucket);
            slog_debug("s3: %s/%s: renamed to %s/%s while its upload is under way: moved there when it is "
                       "committed", a->bucket, a->key, b->bucket, b->key);
            r = 1;
        }
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

int s3w_list(struct s3_mount *m, const char *bucket, const char *prefix, struct s3_staged_name **v, size_t *n,
             size_t *cap)
{
    if (none()) return 0;
    size_t pl = strlen(prefix);
    int e = 0;
    pthread_mutex_lock(&g_lock);
    for (struct s3_file *f = g_head; f && e == 0; f = f->w_next) {
        if (f->m != m || f->owner != getpid()) continue;
        pthread_mutex_lock(&f->lock);
        const char *b, *k;
        name_of(f, &b, &k);
        if (streaming(f) && strcmp(b, bucket) == 0 && strncmp(k, prefix, pl) == 0 && k[pl]) {
            const char *slash = strchr(k + pl, '/');
            if (slash)
                e = slash > k + pl ? s3_names_add(v, n, cap, k + pl, (size_t)(slash - (k + pl)), 1, 0, 0) : 0;
            else
                e = s3_names_add(v, n, cap, k + pl, strlen(k + pl), 0, f->written, time(NULL));
        }
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&g_lock);
    return e;
}
