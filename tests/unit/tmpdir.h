/* tmpdir.h - scratch files for unit tests that need real files, and an environment
 * that keeps this machine's AWS credentials out of them. */
#ifndef S3SHIM_TEST_TMPDIR_H
#define S3SHIM_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

static char tmpdir_empty_aws[] = "/tmp/s3shim-unit-aws-XXXXXX"; /* an empty file: no profiles */

static inline void tmpdir_remove_empty_aws(void) { unlink(tmpdir_empty_aws); }

/* No credentials from this machine may leak into the tests: S3 mounts are disabled. */
static inline void no_aws_credentials(void)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    unsetenv("S3SHIM_NO_SIGN");
    int fd = mkstemp(tmpdir_empty_aws);
    if (fd >= 0) close(fd);
    setenv("AWS_SHARED_CREDENTIALS_FILE", tmpdir_empty_aws, 1);
    setenv("AWS_CONFIG_FILE", tmpdir_empty_aws, 1);
    atexit(tmpdir_remove_empty_aws);
}

#endif
