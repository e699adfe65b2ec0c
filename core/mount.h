/* mount.h - the mount table: path prefixes mapped to mounted backends.
 *
 * Built once at start-up from the configuration and never changed afterwards, so that
 * routing a path needs no lock: a lookup is a walk over a short array sorted by prefix
 * length (longest first). */
#ifndef S3SHIM_MOUNT_H
#define S3SHIM_MOUNT_H

#include "backend.h"
#include "config.h"
#include "stats.h"

#include <stddef.h>

struct mount {
    char *prefix; /* "/data", or "s3:" for literal s3:// paths */
    size_t plen;
    char *uri;
    const struct backend_ops *ops; /* NULL when disabled */
    void *ms;                      /* backend's per-mount state */
    int shares;                    /* ms belongs to an earlier mount of the same URI */
    int disabled;                  /* paths below it fail with ENODEV */
    int warned;                    /* the disabled reason was logged in this process */
    char reason[320];
    struct stats_set stats;
};

struct mount_table {
    struct mount *m;
    int n, cap;
    const struct cfg *cfg; /* the settings the mounts were made with (kept by the owner) */
};

/* Mount every configured backend. A mount that cannot be set up is kept, disabled, with
 * its reason (so its paths fail clearly instead of reaching the real filesystem). Mounts
 * of the same URI (the default /s3 and literal s3:// paths) share one backend state: one
 * set of connections, one balancer, one metadata cache; its per-endpoint figures hang
 * below the first of them. */
void mnt_build(struct mount_table *t, const struct cfg *c);
void mnt_free(struct mount_table *t);

/* Route a normalised path ("/x/y" or "s3:/b/k"). Returns the mount and sets *key to the
 * remainder without a leading '/', or NULL if no mount covers the path. */
struct mount *mnt_route(const struct mount_table *t, const char *path, const char **key);

/* Mount a URI outside the table (descriptors inherited across exec whose mount is not
 * configured in this process). */
struct mount *mnt_adhoc(struct mount_table *t, const char *uri);

/* Link every mount's stats set into one list, for printing. */
struct stats_set *mnt_stats_list(const struct mount_table *t);

#endif
