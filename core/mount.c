/* mount.c - see mount.h */
#include "mount.h"

#include "log.h"
#include "path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set up one mount; with lookup_only, only find its backend (a mount that will share
 * another's state). */
static void mount_one(struct mount *m, const char *prefix, const char *uri, const struct cfg *cfg, int lookup_only)
{
    memset(m, 0, sizeof *m);
    m->prefix = strdup(prefix);
    m->plen = strlen(prefix);
    m->uri = strdup(uri);
    snprintf(m->stats.name, sizeof m->stats.name, "%s", strcmp(prefix, "s3:") == 0 ? "s3://" : prefix);
    snprintf(m->stats.detail, sizeof m->stats.detail, "%s", uri);

    const char *rest = NULL;
    int planned = 0;
    const struct backend_ops *ops = bk_lookup(uri, &rest, &planned);
    if (!ops) {
        m->disabled = 1;
        snprintf(m->reason, sizeof m->reason,
                 planned ? "the %.*s:// backend is not built into this version of s3shim"
                         : "unknown URI scheme in '%.*s' (want s3://, file://, direct:// or block://)",
                 planned ? (int)(strstr(uri, "://") - uri) : (int)strlen(uri), uri);
        return;
    }
    if (lookup_only) return;
    char err[256] = "";
    int r = ops->mount(rest, cfg, &m->stats, &m->ms, err, sizeof err);
    if (r < 0) {
        m->disabled = 1;
        snprintf(m->reason, sizeof m->reason, "%s", err[0] ? err : strerror(-r));
        return;
    }
    m->ops = ops;
}

static int by_len_desc(const void *a, const void *b)
{
    const struct mount *x = a, *y = b;
    return x->plen < y->plen ? 1 : x->plen > y->plen ? -1 : strcmp(x->prefix, y->prefix);
}

void mnt_build(struct mount_table *t, const struct cfg *c)
{
    t->cap = c->nmounts + 8; /* room for a few ad hoc mounts */
    t->cfg = c;
    t->m = calloc((size_t)t->cap, sizeof *t->m);
    t->n = 0;
    if (!t->m) return;
    for (int i = 0; i < c->nmounts; i++) {
        struct mount *m = &t->m[t->n++], *same = NULL;
        for (int j = 0; j < t->n - 1 && !same; j++)
            if (strcmp(t->m[j].uri, c->mounts[i].uri) == 0) same = &t->m[j];
        mount_one(m, c->mounts[i].prefix, c->mounts[i].uri, c, same != NULL);
        if (same && !m->disabled) { /* mount_one only looked the backend up */
            m->ops = same->ops;
            m->ms = same->ms;
            m->shares = 1;
            m->disabled = same->disabled;
            snprintf(m->reason, sizeof m->reason, "%s", same->reason);
        }
    }
    qsort(t->m, (size_t)t->n, sizeof *t->m, by_len_desc);
}

void mnt_free(struct mount_table *t)
{
    for (int i = 0; i < t->n; i++) {
        struct mount *m = &t->m[i];
        if (m->ops && m->ops->unmount && !m->shares) m->ops->unmount(m->ms);
        free(m->prefix);
        free(m->uri);
    }
    free(t->m);
    t->m = NULL;
    t->n = 0;
}

struct mount *mnt_route(const struct mount_table *t, const char *path, const char **key)
{
    for (int i = 0; i < t->n; i++) {
        struct mount *m = &t->m[i];
        if (m->prefix[0] == '\0') continue; /* ad hoc: reachable only by URI */
        size_t off = path_under(path, m->prefix, m->plen);
        if (!off) continue;
        const char *k = path + off;
        while (*k == '/') k++;
        *key = k;
        return m;
    }
    return NULL;
}

struct mount *mnt_adhoc(struct mount_table *t, const char *uri)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->m[i].uri, uri) == 0) return &t->m[i];
    /* Runs only at start-up, single-threaded, into the room mnt_build left. */
    if (!t->m || t->n >= t->cap) return NULL;
    struct mount *m = &t->m[t->n];
    mount_one(m, "", uri, t->cfg, 0);
    snprintf(m->stats.name, sizeof m->stats.name, "(inherited)");
    t->n++;
    return m->disabled ? NULL : m;
}

struct stats_set *mnt_stats_list(const struct mount_table *t)
{
    struct stats_set *head = NULL;
    for (int i = t->n - 1; i >= 0; i--) {
        if (t->m[i].ops && t->m[i].ops->describe && t->m[i].ms && !t->m[i].shares) t->m[i].ops->describe(t->m[i].ms);
        t->m[i].stats.next = head;
        head = &t->m[i].stats;
    }
    return head;
}
