/* replay_prep.c - `s3shim replay --prepare`: make the replay mount look as it did when the
 * recording started. From the log alone: a path the log first opens without O_CREAT,
 * stats, reads, unlinks or renames existed (a file as long as the furthest byte read from
 * it before anything changed it; a directory when opened as one, listed, removed with
 * rmdir, or holding other paths); a path the log first creates with O_EXCL or mkdir, or
 * finds missing, did not exist, and is removed (with what is under it) so that a second
 * replay starts from the same state. Only paths strictly under a mount prefix are
 * touched; the calls go through the shim like the replay's. */
#define _GNU_SOURCE 1
#include "replay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { UNKNOWN, DECIDED, EXISTED, ABSENT };

const char *rp_pattern(size_t len)
{
    static char *pat;
    static size_t have;
    if (len <= have) return pat;
    size_t n = len < (1u << 20) ? (1u << 20) : len;
    char *q = malloc(n);
    if (!q) return NULL;
    for (size_t i = 0; i < n; i++) q[i] = (char)('a' + (i * 7 + i / 251) % 26);
    free(pat); /* callers take it before threads start (rp_pattern(largest write)) */
    pat = q;
    have = n;
    return pat;
}

static size_t under_prefix(const char *path, char *const *pre, int npre)
{
    size_t best = 0;
    for (int i = 0; i < npre; i++) {
        size_t l = strlen(pre[i]);
        if (strncmp(path, pre[i], l) == 0 && path[l] == '/' && path[l + 1] && l > best) best = l;
    }
    return best; /* 0: not strictly under any */
}

static int remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char sub[8192];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                remove_tree(sub);
            }
        closedir(d);
    }
    return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int write_file(const char *path, uint64_t size)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size) return 0; /* as it was */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    const char *pat = rp_pattern(1u << 20);
    for (uint64_t at = 0; at < size;) {
        size_t n = size - at < (1u << 20) ? (size_t)(size - at) : (1u << 20);
        ssize_t w = pwrite(fd, pat, n, (off_t)at);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        at += (uint64_t)w;
    }
    return close(fd);
}

static size_t find(const struct rp_plan *p, const char *path)
{
    size_t k = 0;
    while (k < p->npaths && strcmp(p->paths[k], path)) k++;
    return k;
}

static int by_len_desc(const void *a, const void *b)
{
    size_t x = strlen(*(char *const *)a), y = strlen(*(char *const *)b);
    return x > y ? -1 : x < y;
}

int rp_prepare(const struct rp_plan *p, char *const *pre, int npre)
{
    size_t n = p->npaths;
    uint8_t *state = calloc(n + 1, 1), *dir = calloc(n + 1, 1), *changed = calloc(n + 1, 1);
    uint64_t *size = calloc(n + 1, sizeof *size);
    if (!state || !dir || !changed || !size) return -1;
    for (size_t i = 0; i < p->nops; i++) {
        const struct rp_op *o = &p->ops[i];
        const struct oplog_rec *r = &o->r->r;
        int k = o->pi;
        if (k < 0) continue;
        int was = state[k];
        int now = UNKNOWN;
        switch (r->op) {
        case OL_OPEN:
            if (r->res >= 0)
                now = (r->aux & O_CREAT) ? ((r->aux & O_EXCL) ? ABSENT : DECIDED) : EXISTED;
            else
                now = r->res == -ENOENT ? ABSENT : r->res == -EEXIST ? EXISTED : UNKNOWN;
            if (r->res >= 0 && (r->aux & O_DIRECTORY)) dir[k] = 1;
            if (r->res >= 0 && (r->aux & (O_CREAT | O_TRUNC))) changed[k] = 1;
            break;
        case OL_STAT:
        case OL_OPENDIR:
            now = r->res == 0 ? EXISTED : r->res == -ENOENT ? ABSENT : UNKNOWN;
            if (r->op == OL_OPENDIR && r->res == 0) dir[k] = 1;
            break;
        case OL_READ:
            now = EXISTED;
            if (!changed[k] && r->res >= 0 && r->off >= 0 && (uint64_t)r->off + (uint64_t)r->res > size[k])
                size[k] = (uint64_t)r->off + (uint64_t)r->res;
            break;
        case OL_WRITE:
        case OL_TRUNCATE:
            changed[k] = 1;
            break;
        case OL_META:
            if (!o->name) break;
            if (strcmp(o->name, "mkdir") == 0) {
                now = r->res == 0 ? ABSENT : r->res == -EEXIST ? EXISTED : UNKNOWN;
                dir[k] = 1;
            } else if (strcmp(o->name, "rmdir") == 0) {
                now = r->res == 0 ? EXISTED : r->res == -ENOENT ? ABSENT : UNKNOWN;
                dir[k] = 1;
            } else {
                now = r->res == 0 ? EXISTED : r->res == -ENOENT ? ABSENT : UNKNOWN;
            }
            if (strcmp(o->name, "utimens") && strcmp(o->name, "chmod")) changed[k] = 1;
            if (o->pi2 >= 0 && r->res == 0 && !state[o->pi2]) state[o->pi2] = DECIDED, changed[o->pi2] = 1;
            break;
        default:
            break;
        }
        if (was == UNKNOWN && now != UNKNOWN) state[k] = (uint8_t)now;
    }
    /* a path with others under it is a directory */
    for (size_t k = 0; k < n; k++) {
        char *slash = strrchr(p->paths[k], '/');
        while (slash && slash != p->paths[k]) {
            size_t l = (size_t)(slash - p->paths[k]);
            for (size_t j = 0; j < n; j++)
                if (strlen(p->paths[j]) == l && strncmp(p->paths[j], p->paths[k], l) == 0) dir[j] = 1;
            slash = memrchr(p->paths[k], '/', l);
        }
    }
    int rc = 0;
    size_t removed = 0, dirs = 0, files = 0;
    uint64_t bytes = 0;
    char **v = calloc(n + 1, sizeof *v);
    size_t nv = 0;
    for (size_t k = 0; k < n; k++)
        if (state[k] == ABSENT && under_prefix(p->paths[k], pre, npre)) v[nv++] = p->paths[k];
    qsort(v, nv, sizeof *v, by_len_desc);
    for (size_t i = 0; i < nv; i++) {
        struct stat st;
        if (lstat(v[i], &st) < 0) continue;
        if (remove_tree(v[i]) < 0) {
            fprintf(stderr, "s3shim replay: prepare: cannot remove %s: %s\n", v[i], strerror(errno));
            rc = -1;
        }
        removed++;
    }
    /* then, shortest first: the ancestors of every path (up to one the log creates), the
     * directories and the files that existed */
    nv = 0;
    for (size_t k = 0; k < n; k++)
        if (under_prefix(p->paths[k], pre, npre)) v[nv++] = p->paths[k];
    qsort(v, nv, sizeof *v, by_len_desc);
    for (size_t i = nv; i-- > 0;) {
        size_t k = find(p, v[i]), plen = under_prefix(v[i], pre, npre);
        char d[8192];
        snprintf(d, sizeof d, "%s", v[i]);
        int blocked = 0;
        for (char *c = d + plen + 1; !blocked && (c = strchr(c, '/')); c++) {
            *c = 0;
            size_t a = find(p, d);
            if (a < n && state[a] == ABSENT) blocked = 1;
            else if (mkdir(d, 0755) == 0) dirs++;
            *c = '/';
        }
        if (blocked || state[k] == ABSENT || state[k] == DECIDED) continue;
        if (dir[k]) {
            if (mkdir(d, 0755) == 0) dirs++;
            else if (errno != EEXIST) {
                fprintf(stderr, "s3shim replay: prepare: cannot make directory %s: %s\n", d, strerror(errno));
                rc = -1;
            }
        } else if (state[k] == EXISTED) {
            if (write_file(d, size[k]) < 0) {
                fprintf(stderr, "s3shim replay: prepare: cannot write %s: %s\n", d, strerror(errno));
                rc = -1;
            }
            files++;
            bytes += size[k];
        }
    }
    fprintf(stderr, "s3shim replay: prepare: %zu removed, %zu directories made, %zu files of %llu bytes in all\n", removed,
            dirs, files, (unsigned long long)bytes);
    free(v);
    free(state);
    free(dir);
    free(changed);
    free(size);
    return rc;
}
