/* api.c - include/s3shim.h: the engine without interposition. A thin layer over the
 * mount table and the backends, with its own configuration instead of the process's. */
#include "../include/s3shim.h"

#include "config.h"
#include "mount.h"
#include "path.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct s3shim {
    struct cfg cfg;
    struct mount_table mounts;
};

struct s3shim_file {
    struct mount *m;
    void *fh;
};

/* The process environment, except that S3SHIM_MOUNTS is the caller's map. */
static const char *api_getenv(const char *name, void *mounts)
{
    if (strcmp(name, "S3SHIM_MOUNTS") == 0) return mounts;
    return cfg_process_env(name, NULL);
}

s3shim *s3shim_new(const char *mounts, char *err, size_t errlen)
{
    s3shim *s = calloc(1, sizeof *s);
    if (!s) {
        if (err) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cfg_load(&s->cfg, api_getenv, (void *)(mounts ? mounts : cfg_process_env("S3SHIM_MOUNTS", NULL)));
    mnt_build(&s->mounts, &s->cfg);
    if (err && errlen) {
        err[0] = '\0';
        if (s->cfg.nerrors) snprintf(err, errlen, "%s", s->cfg.errors[0]);
    }
    return s;
}

void s3shim_free(s3shim *s)
{
    if (!s) return;
    mnt_free(&s->mounts);
    cfg_free(&s->cfg);
    free(s);
}

/* Route a program-style path to a usable mount; returns 0 or -errno. */
static int api_route(s3shim *s, const char *path, char *buf, size_t len, struct mount **m, const char **key)
{
    int n;
    if (path[0] != '/' && strncmp(path, "s3://", 5) != 0) return -EINVAL; /* no cwd here */
    if (strncmp(path, "s3://", 5) == 0) {
        n = path_normalize(path + 4, buf + 3, len - 3);
        memcpy(buf, "s3:", 3);
    } else {
        n = path_normalize(path, buf, len);
    }
    if (n < 0) return -ENAMETOOLONG;
    *m = mnt_route(&s->mounts, buf, key);
    if (!*m) return -ENOENT;
    if (!(*m)->ops) return -ENODEV;
    return 0;
}

int s3shim_open(s3shim *s, const char *path, int flags, mode_t mode, s3shim_file **out)
{
    char buf[PATH_MAX];
    struct mount *m;
    const char *key;
    int r = api_route(s, path, buf, sizeof buf, &m, &key);
    if (r < 0) return r;
    s3shim_file *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    r = m->ops->open(m->ms, key, flags, mode, &f->fh);
    if (r < 0) {
        free(f);
        return r;
    }
    f->m = m;
    *out = f;
    return 0;
}

ssize_t s3shim_pread(s3shim_file *f, void *buf, size_t len, off_t off) { return f->m->ops->pread(f->fh, buf, len, off); }

ssize_t s3shim_pwrite(s3shim_file *f, const void *buf, size_t len, off_t off)
{
    return f->m->ops->pwrite(f->fh, buf, len, off);
}

int s3shim_fstat(s3shim_file *f, struct stat *st) { return f->m->ops->fstat(f->fh, st); }
int s3shim_fsync(s3shim_file *f) { return f->m->ops->fsync ? f->m->ops->fsync(f->fh, 0) : 0; }

int s3shim_close(s3shim_file *f)
{
    int r = f->m->ops->close(f->fh);
    free(f);
    return r;
}

int s3shim_stat(s3shim *s, const char *path, struct stat *st)
{
    char buf[PATH_MAX];
    struct mount *m;
    const char *key;
    int r = api_route(s, path, buf, sizeof buf, &m, &key);
    return r < 0 ? r : m->ops->stat(m->ms, key, st, 0);
}

int s3shim_unlink(s3shim *s, const char *path)
{
    char buf[PATH_MAX];
    struct mount *m;
    const char *key;
    int r = api_route(s, path, buf, sizeof buf, &m, &key);
    if (r < 0) return r;
    return m->ops->unlink ? m->ops->unlink(m->ms, key) : -ENOTSUP;
}

const char *s3shim_version(void) { return S3SHIM_VERSION; }
