/* tmpdir.h - a scratch directory for unit tests that need real files. */
#ifndef S3SHIM_TEST_TMPDIR_H
#define S3SHIM_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

/* Create $TMPDIR/s3shim-unit-XXXXXX into buf; 0 or -1. */
static inline int tmpdir_make(char *buf, size_t len)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, len, "%s/s3shim-unit-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(buf) ? 0 : -1;
}

static inline int tmpdir_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

/* Remove a scratch directory and everything below it. */
static inline int tmpdir_remove(const char *dir) { return nftw(dir, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS); }

#endif
